"""End to end, human oracle: `dvc repro` stops at the round that needs expert answers, says
what to do, continues once the answers file is there, and re-runs exactly what an edited
answer affects. Also: switching later rounds of a simulated run to experts keeps the
simulated rounds."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from builders import deep_merge, ran_stages, rounds_param, run_module, write_params

from alr_core.common import paths
from alr_core.common.params import default_params

pytestmark = pytest.mark.e2e  # `pytest -m "not e2e"` skips the slow end-to-end runs

TINY = {
    "seed": 0,
    "budget": 6,  # two rounds of 3
    "data": {"source": "digits", "image_size": 8, "val_per_class": 5, "test_per_class": 5},
    "noise": {"type": "symmetric", "rate": 0.4},
    "train": {"device": "cpu", "batch_size": 32},
    "pretrain": {"epochs": 1},
    "lnl": {"method": "coteaching", "epochs": 2, "num_gradual": 1},
    # random scores do not depend on the model, so round 2 queries the same samples after an
    # edited round-1 answer changes the round-1 model, and its answers file stays valid
    "al": {"strategy": "random", "epochs": 1},
}
CLASSES = [str(k) for k in range(10)]


def set_params(project, al: dict, rounds: dict) -> None:
    raw = deep_merge(deep_merge(default_params(), TINY), {"al": al})
    raw["rounds"] = rounds
    write_params(project.root, raw=raw)


def query_of(project, r: int) -> pd.DataFrame:
    return pd.read_parquet(project.root / paths.round_dir(r) / paths.QUERY)


def labels_of(project, r: int) -> pd.DataFrame:
    return pd.read_parquet(project.root / paths.round_dir(r) / paths.WORKING_LABELS)


def report_status(project) -> dict:
    """metrics/report.json's status block: which rounds the report shows, which one waits."""
    return json.loads((project.root / paths.REPORT_METRICS).read_text())["status"]


def exported_labels(project) -> pd.DataFrame:
    """data/report/labels.csv as text, by sample id."""
    return pd.read_csv(project.root / paths.REPORT_LABELS, dtype=str, keep_default_na=False).set_index("sample_id")


def waiting_for(r: int) -> dict:
    return {"finished_rounds": r - 1, "planned_rounds": 2, "waiting_round": r,
            "answers_file": f"annotations/round_{r}.csv", "failed": None}  # fmt: skip


def write_answers(project, r: int, rows: list[tuple[str, str]], column: str = "item_id") -> None:
    """The answers file as the page saves it (``item_id``), or as a data team writes it from
    annotate.csv (``sample_id``)."""
    text = f"{column},label\n" + "".join(f"{shown},{label}\n" for shown, label in rows)
    (project.root / "annotations" / f"round_{r}.csv").write_text(text)


def other_class(label: int) -> str:
    return CLASSES[(label + 1) % 10]


def test_repro_stops_for_answers_continues_and_reruns_what_an_edit_affects(project_copy):
    set_params(project_copy, {"oracle": "human"}, rounds_param(2))

    first = project_copy.dvc("repro", check=False)
    assert first.returncode != 0
    message = first.stdout + first.stderr
    assert ("round 1 waits for expert answers on 3 queried images: annotations/round_1.csv does not exist; "
            "open data/rounds/1/annotate.html in a browser") in message
    page = (project_copy.root / "data/rounds/1/annotate.html").read_text()
    assert page.count("data:image/png;base64,") >= 3 and "http://" not in page and "https://" not in page
    assert not (project_copy.root / "data/rounds/1/labels.parquet").exists()
    # the pause rewrote the report for phase 1 alone, and is no failure: no restore hint
    assert report_status(project_copy) == waiting_for(1) and "hint:" not in message

    query1 = query_of(project_copy, 1)
    for shown in (page, (project_copy.root / "data/rounds/1/labelstudio_tasks.json").read_text()):
        text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", shown)
        assert all(item_id in text for item_id in query1["item_id"]) and "digits/" not in text
    # answered on the page: keyed by item id, in an order of the expert's choosing
    answers1 = [(query1["item_id"][2], "skip"),
                (query1["item_id"][0], other_class(query1["current_label"][0])),
                (query1["item_id"][1], str(query1["current_label"][1]))]  # fmt: skip
    write_answers(project_copy, 1, answers1)
    second = project_copy.dvc("repro", check=False)
    assert second.returncode != 0 and "annotations/round_2.csv does not exist" in second.stdout + second.stderr
    assert report_status(project_copy) == waiting_for(2)
    labels1 = labels_of(project_copy, 1)
    by_id = labels1.set_index("sample_id")
    first_sample, _, skipped_sample = query1["sample_id"]
    assert by_id.loc[first_sample, "label"] == int(answers1[1][1])
    assert by_id.loc[first_sample, "label_source"] == "expert"
    assert by_id.loc[skipped_sample, "label_source"] == "skipped"
    assert by_id.loc[skipped_sample, "label"] == query1["current_label"][2]
    assert (labels1["relabel_round"] == 1).sum() == 3
    # the labels to take back to the data, after round 1 while round 2 waits
    exported = exported_labels(project_copy)
    columns = ["given_label", "label", "changed", "label_source", "relabel_round"]
    assert exported.loc[first_sample, columns].tolist() == [str(query1["current_label"][0]), answers1[1][1], "True",
                                                            "expert", "1"]  # fmt: skip
    assert exported.loc[skipped_sample, ["label_source", "checked"]].tolist() == ["skipped", "False"]

    query2 = query_of(project_copy, 2)
    write_answers(project_copy, 2, [(s, "0") for s in query2["sample_id"]], column="sample_id")  # a data team's file
    third = project_copy.dvc("repro")
    # annotations/ is one dependency of every oracle stage: round 1's re-runs in a second with
    # the same output, so nothing after it does
    assert ran_stages(third.stdout) == ["oracle_relabel@1", "oracle_relabel@2", "retrain@2", "report"]
    assert report_status(project_copy) == {"finished_rounds": 2, "planned_rounds": 2, "waiting_round": None,
                                           "answers_file": None, "failed": None}  # fmt: skip
    assert (labels_of(project_copy, 2).set_index("sample_id").loc[query2["sample_id"], "label"] == 0).all()
    answered2 = exported_labels(project_copy).loc[query2["sample_id"]]
    assert (answered2["label"] == "0").all() and (answered2["label_source"] == "expert").all()
    assert (answered2["relabel_round"] == "2").all()

    edited = answers1[:1] + [(answers1[1][0], "skip")] + answers1[2:]
    write_answers(project_copy, 1, edited)
    fourth = project_copy.dvc("repro")
    stages = ran_stages(fourth.stdout)
    assert stages[:2] == ["oracle_relabel@1", "retrain@1"] and stages[-1] == "report"
    assert not {"prepare", "inject_noise", "lnl_train", "score_samples@1", "query@1"} & set(stages)
    assert labels_of(project_copy, 1).set_index("sample_id").loc[first_sample, "label_source"] == "skipped"
    assert query_of(project_copy, 2)["sample_id"].tolist() == query2["sample_id"].tolist()

    # round 2's file with a label that is no class: refused, and the report no longer shows the
    # earlier round 2 and its labels as current
    write_answers(project_copy, 2, [(s, "one") for s in query2["sample_id"]], column="sample_id")
    fifth = project_copy.dvc("repro", check=False)
    assert fifth.returncode != 0 and "annotations/round_2.csv: line 2: label 'one'" in fifth.stderr
    failed = report_status(project_copy)["failed"]
    assert report_status(project_copy)["finished_rounds"] == 1 and failed["stage"] == "oracle_relabel@2"
    assert failed["error"].startswith("annotations/round_2.csv: line 2: label 'one'")
    assert (exported_labels(project_copy).loc[query2["sample_id"], "relabel_round"] != "2").all()
    summary = " ".join(run_module("stages.summary", project_copy.root).stdout.split())
    assert "stopped: oracle_relabel@2 failed (annotations/round_2.csv: line 2:" in summary


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
    # the simulated run's round-2 metrics are still on disk; the report leaves them out
    assert (project_copy.root / paths.round_metrics(2)).is_file()
    assert report_status(project_copy) == waiting_for(2)
    assert pd.read_csv(project_copy.root / paths.ROUNDS_PLOT)["round"].tolist() == [0, 1]
    assert not {"lnl_train", "retrain@1"} & set(ran_stages(switched.stdout))
    assert labels_of(project_copy, 1).equals(simulated_round1)
    assert (project_copy.root / "data/rounds/2/annotate.html").is_file()


def test_a_round_asked_again_with_more_images_takes_its_earlier_answers_back(project_copy):
    # budget raised after the experts answered round 1: the error says how many of the file's answers
    # the round's new page takes back, and the file that page saves (the earlier answers and the new
    # images') finishes the round with the earlier answers unchanged
    set_params(project_copy, {"oracle": "human"}, rounds_param(2))
    project_copy.dvc("repro", check=False)
    asked = query_of(project_copy, 1)
    earlier = [(item_id, other_class(label)) for item_id, label in zip(asked["item_id"], asked["current_label"])]
    write_answers(project_copy, 1, earlier)

    raw = deep_merge(deep_merge(default_params(), TINY), {"budget": 10, "al": {"oracle": "human"}})
    raw["rounds"] = rounds_param(2)
    write_params(project_copy.root, raw=raw)
    grown = project_copy.dvc("repro", check=False)
    message = grown.stdout + grown.stderr
    assert grown.returncode != 0 and "annotations/round_1.csv: 2 of 5 queried items have no answer" in message
    assert ("open the round's new page data/rounds/1/annotate.html, click 'Load answers' and choose this file, "
            "which fills in its answers to the images still asked (3 of its 3 answers)") in message

    asked_again = query_of(project_copy, 1)
    new = [(item_id, "skip") for item_id in asked_again["item_id"] if item_id not in set(asked["item_id"])]
    write_answers(project_copy, 1, earlier + new)  # what the page saves after Load answers
    resumed = project_copy.dvc("repro", check=False)
    assert "annotations/round_2.csv does not exist" in resumed.stdout + resumed.stderr
    labels = labels_of(project_copy, 1).set_index("sample_id")
    assert labels.loc[asked["sample_id"], "label"].tolist() == [int(label) for _, label in earlier]
    assert (labels.loc[asked["sample_id"], "label_source"] == "expert").all()
    assert (labels["relabel_round"] == 1).sum() == 5
