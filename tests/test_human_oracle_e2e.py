"""End to end, human oracle: `dvc repro` stops at the round that needs expert answers, says
what to do, continues once the answers file is there, and re-runs exactly what an edited
answer affects. Also: switching later rounds of a simulated run to experts keeps the
simulated rounds."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from builders import deep_merge, repo_params, rounds_param, write_params

from alr_core.common import paths

pytestmark = pytest.mark.e2e  # `pytest -m "not e2e"` skips the slow end-to-end runs

TINY = {
    "seed": 0,
    "budget": 6,  # two rounds of 3
    "data": {"source": "digits", "image_size": 8, "val_per_class": 5, "test_per_class": 5},
    "noise": {"type": "symmetric", "rate": 0.4},
    "train": {"device": "cpu", "batch_size": 32},
    "lnl": {"method": "coteaching", "epochs": 2, "num_gradual": 1},
    # random scores do not depend on the model, so round 2 queries the same samples after an
    # edited round-1 answer changes the round-1 model, and its answers file stays valid
    "al": {"strategy": "random", "epochs": 1},
}
CLASSES = [str(k) for k in range(10)]


def set_params(project, al: dict, rounds: dict) -> None:
    raw = deep_merge(deep_merge(repo_params(), TINY), {"al": al})
    raw["rounds"] = rounds
    write_params(project.root, raw=raw)


def ran(result) -> list[str]:
    return re.findall(r"^Running stage '([^']+)'", result.stdout, flags=re.MULTILINE)


def query_of(project, r: int) -> pd.DataFrame:
    return pd.read_parquet(project.root / paths.round_dir(r) / paths.QUERY)


def labels_of(project, r: int) -> pd.DataFrame:
    return pd.read_parquet(project.root / paths.round_dir(r) / paths.WORKING_LABELS)


def write_answers(project, r: int, rows: list[tuple[str, str]]) -> None:
    text = "sample_id,label\n" + "".join(f"{sample},{label}\n" for sample, label in rows)
    (project.root / "annotations" / f"round_{r}.csv").write_text(text)


def other_class(label: int) -> str:
    return CLASSES[(label + 1) % 10]


def test_repro_stops_for_answers_continues_and_reruns_what_an_edit_affects(project_copy):
    set_params(project_copy, {"oracle": "human"}, rounds_param(2))

    first = project_copy.dvc("repro", check=False)
    assert first.returncode != 0
    message = first.stdout + first.stderr
    assert "round needs 3 expert answers and annotations/round_1.csv does not exist" in message
    assert "open data/rounds/1/annotate.html" in message
    page = (project_copy.root / "data/rounds/1/annotate.html").read_text()
    assert page.count("data:image/png;base64,") >= 3 and "http://" not in page and "https://" not in page
    assert not (project_copy.root / "data/rounds/1/labels.parquet").exists()

    query1 = query_of(project_copy, 1)
    answers1 = [(query1["sample_id"][0], other_class(query1["current_label"][0])),
                (query1["sample_id"][1], str(query1["current_label"][1])),
                (query1["sample_id"][2], "skip")]  # fmt: skip
    write_answers(project_copy, 1, answers1)
    second = project_copy.dvc("repro", check=False)
    assert second.returncode != 0 and "annotations/round_2.csv does not exist" in second.stdout + second.stderr
    labels1 = labels_of(project_copy, 1)
    by_id = labels1.set_index("sample_id")
    assert by_id.loc[answers1[0][0], "label"] == int(answers1[0][1])
    assert by_id.loc[answers1[0][0], "label_source"] == "expert"
    assert by_id.loc[answers1[2][0], "label_source"] == "skipped"
    assert by_id.loc[answers1[2][0], "label"] == query1["current_label"][2]
    assert (labels1["relabel_round"] == 1).sum() == 3

    query2 = query_of(project_copy, 2)
    write_answers(project_copy, 2, [(s, "0") for s in query2["sample_id"]])
    third = project_copy.dvc("repro")
    # annotations/ is one dependency of every oracle stage: round 1's re-runs in a second with
    # the same output, so nothing after it does
    assert ran(third) == ["oracle_relabel@1", "oracle_relabel@2", "retrain@2", "report"]
    assert (labels_of(project_copy, 2).set_index("sample_id").loc[query2["sample_id"], "label"] == 0).all()

    edited = [(answers1[0][0], "skip")] + answers1[1:]
    write_answers(project_copy, 1, edited)
    fourth = project_copy.dvc("repro")
    stages = ran(fourth)
    assert stages[:2] == ["oracle_relabel@1", "retrain@1"] and stages[-1] == "report"
    assert not {"prepare", "inject_noise", "lnl_train", "score_samples@1", "query@1"} & set(stages)
    assert labels_of(project_copy, 1).set_index("sample_id").loc[answers1[0][0], "label_source"] == "skipped"
    assert query_of(project_copy, 2)["sample_id"].tolist() == query2["sample_id"].tolist()


def test_switching_later_rounds_to_experts_keeps_the_simulated_rounds(project_copy):
    set_params(project_copy, {"oracle": "simulated"}, rounds_param(2))
    project_copy.dvc("repro")
    simulated_round1 = labels_of(project_copy, 1)

    rounds = rounds_param(2)
    rounds["2"]["oracle"] = "human"
    set_params(project_copy, {"oracle": "simulated"}, rounds)
    switched = project_copy.dvc("repro", check=False)
    assert switched.returncode != 0
    assert "annotations/round_2.csv does not exist" in switched.stdout + switched.stderr
    assert not {"lnl_train", "retrain@1"} & set(ran(switched))
    assert labels_of(project_copy, 1).equals(simulated_round1)
    assert (project_copy.root / "data/rounds/2/annotate.html").is_file()
