"""End to end, annotation teams: `dvc repro` writes Label Studio tasks, stops for answers,
reads a Label Studio JSON export with two annotators per sample (a hand-written fixture in the
documented export format), refuses bad or ambiguous answers without writing anything, and
continues; and the simulated multi-annotator oracle runs through the real pipeline."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from builders import deep_merge, rounds_param, write_params
from test_human_oracle_e2e import CLASSES, TINY  # tiny digits, random queries, 1 epoch per round

from alr_core.common import paths
from alr_core.common.params import default_params

pytestmark = pytest.mark.e2e  # `pytest -m "not e2e"` skips the slow end-to-end runs

FIXTURE = Path(__file__).parent / "fixtures" / "labelstudio_export.json"


def set_params(project, budget: int, al: dict, rounds: int) -> None:
    raw = deep_merge(deep_merge(default_params(), TINY), {"budget": budget, "al": al})
    raw["rounds"] = rounds_param(rounds)
    write_params(project.root, raw=raw)


def read(project, r: int, name: str) -> pd.DataFrame:
    return pd.read_parquet(project.root / paths.round_dir(r) / name)


def filled_export(query: pd.DataFrame) -> list:
    """The fixture with its placeholders set from the round's query: @item:k is the item id
    of rank k, @current:k / @suggested:k its current / suggested class, @other:k a class that
    is not its current one."""
    by_rank = query.set_index("rank")
    values = {}
    for rank, row in by_rank.iterrows():
        values[f"@item:{rank}"] = row["item_id"]
        values[f"@current:{rank}"] = CLASSES[row["current_label"]]
        values[f"@suggested:{rank}"] = CLASSES[row["predicted_label"]]
        values[f"@other:{rank}"] = CLASSES[(row["current_label"] + 1) % 10]
    text = re.sub(r'"(@[a-z]+:\d+)"', lambda m: json.dumps(values[m.group(1)]), FIXTURE.read_text())
    return json.loads(text)


def failed(result) -> str:
    assert result.returncode != 0
    return result.stdout + result.stderr


def test_label_studio_round_trip_with_two_annotators(project_copy):
    set_params(project_copy, budget=6, al={"oracle": "human", "annotators": 2}, rounds=1)  # 3 samples, 2 answers each
    message = failed(project_copy.dvc("repro", check=False))
    assert "annotations/round_1.csv does not exist" in message
    assert "import data/rounds/1/labelstudio_tasks.json into Label Studio" in message
    assert "annotations/round_1.json" in message

    round_dir = project_copy.root / paths.round_dir(1)
    query = read(project_copy, 1, paths.QUERY)
    assert len(query) == 3 and len(query["probabilities"][0]) == 10
    tasks = json.loads((round_dir / paths.LABELSTUDIO_TASKS).read_text())
    assert [t["data"]["item_id"] for t in tasks] == sorted(query["item_id"])  # shown in item-id order
    assert all(t["data"]["image"].startswith("data:image/png;base64,") for t in tasks)
    prediction = tasks[0]["predictions"][0]
    first = query.set_index("item_id").loc[tasks[0]["data"]["item_id"]]
    assert prediction["score"] == first["confidence"]
    assert prediction["result"][0]["value"]["choices"] == [CLASSES[first["predicted_label"]]]
    assert (prediction["result"][0]["from_name"], prediction["result"][0]["to_name"]) == ("label", "image")
    config = (round_dir / paths.LABELSTUDIO_CONFIG).read_text()
    assert config.count("<Choice value=") == 10 and 'name="label" toName="image"' in config

    export = filled_export(query)
    export_path = project_copy.root / "annotations" / "round_1.json"
    csv_path = project_copy.root / "annotations" / "round_1.csv"
    # both answers files at once: ambiguous
    export_path.write_text(json.dumps(export))
    csv_path.write_text("sample_id,label\n" + "".join(f"{s},0\n" for s in query["sample_id"]))
    message = failed(project_copy.dvc("repro", check=False))
    assert "annotations/round_1.csv and annotations/round_1.json" in message
    csv_path.unlink()
    # a task from elsewhere: the error names the task id, nothing is written
    stray = copy.deepcopy(export[0])
    stray["id"], stray["data"]["item_id"] = 999, "r1-0000000000"
    export_path.write_text(json.dumps(export + [stray]))
    message = failed(project_copy.dvc("repro", check=False))
    assert ("task 999, annotation 5001: unknown item_id 'r1-0000000000': not one of the 3 items on this round's "
            "page data/rounds/1/annotate.html") in message
    assert not (round_dir / paths.WORKING_LABELS).exists() and not (round_dir / paths.ANSWERS).exists()

    export_path.write_text(json.dumps(export))
    project_copy.dvc("repro")
    labels = read(project_copy, 1, paths.WORKING_LABELS).set_index("sample_id")
    first, second, third = query["sample_id"]
    assert labels.loc[first, "label"] == query["predicted_label"][0]  # two agreeing answers
    assert labels.loc[second, "label"] == (query["current_label"][1] + 1) % 10  # one answer, one skip
    assert labels.loc[third, "label"] == query["current_label"][2]  # 1 vs 1: a tie keeps the label
    assert labels.loc[[first, second, third], "label_source"].tolist() == ["expert", "expert", "tied"]
    answers = read(project_copy, 1, paths.ANSWERS)
    assert sorted(answers["annotator"].unique()) == ["1", "2"] and len(answers) == 6
    metrics = json.loads((project_copy.root / paths.round_metrics(1)).read_text())
    annotation = metrics["annotation"]
    assert metrics["budget_used"] == 6 and annotation["answers_used"] == 6 and annotation["skipped_answers"] == 1
    assert (annotation["samples_relabelled"], annotation["samples_tied"], annotation["samples_skipped"]) == (2, 1, 0)
    assert annotation["samples_multi_answered"] == 2 and annotation["agreement_rate"] == 0.5
    assert set(annotation["annotator_accuracy"]) == {"1", "2"}


def test_simulated_annotators_through_the_pipeline(project_copy):
    al = {"annotators": 3, "annotator_noise": 0.3, "aggregate": "cleanlab"}
    set_params(project_copy, budget=13, al=al, rounds=2)  # ⌊13 / 3⌋ = 4 samples: 2 per round
    project_copy.dvc("repro")
    for r in (1, 2):
        answers = read(project_copy, r, paths.ANSWERS)
        assert len(answers) == 6 and answers.groupby("sample_id").size().tolist() == [3, 3]
        assert sorted(answers["annotator"].unique()) == ["simulated_1", "simulated_2", "simulated_3"]
        metrics = json.loads((project_copy.root / paths.round_metrics(r)).read_text())
        assert metrics["budget_round"] == 6 and metrics["budget_used"] == 6 * r
        annotation = metrics["annotation"]
        assert annotation["answers_used"] == 6 and annotation["samples_multi_answered"] == 2
        assert set(annotation["annotator_accuracy"]) == {"simulated_1", "simulated_2", "simulated_3"}
        labels = read(project_copy, r, paths.WORKING_LABELS).set_index("sample_id")
        decided = answers.drop_duplicates("sample_id").set_index("sample_id")["decided_label"]
        assert (labels.loc[decided.index, "label"] == decided).all()
        assert (labels.loc[decided.index, "label_source"] == "oracle").all()
