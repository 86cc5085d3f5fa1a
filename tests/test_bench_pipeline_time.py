"""bench/pipeline_time.py: per-stage grouping and the paired table (no dvc run)."""

from __future__ import annotations

import subprocess
import sys

from bench.pipeline_time import REPO, paired_markdown, stage_groups


def result(commit: str, stages: list[tuple[str, float]], noop: float) -> dict:
    return {"commit": commit, "dirty": False, "clone_seconds": 0.1,
            "fresh": {"seconds": sum(s for _, s in stages) + 0.5, "stages": stages},
            "noop": {"seconds": noop, "stages": []}}  # fmt: skip


def test_stage_groups_sum_the_rounds_in_first_run_order():
    stages = [("pretrain", 10.0), ("score_samples@1", 4.0), ("retrain@1", 8.0), ("score_samples@2", 3.5),
              ("retrain@2", 7.0), ("report", 1.0)]  # fmt: skip
    assert list(stage_groups(stages).items()) == [("pretrain", 10.0), ("score_samples", 7.5), ("retrain", 15.0),
                                                  ("report", 1.0)]  # fmt: skip


def test_paired_table_gives_means_and_the_difference_of_every_repeat():
    base = "a" * 40
    head = "b" * 40
    pairs = [
        (result(base, [("lnl_train", 50.0), ("score_samples@1", 4.0)], 2.0),
         result(head, [("lnl_train", 46.0), ("score_samples@1", 2.0)], 2.5)),
        (result(base, [("lnl_train", 48.0), ("score_samples@1", 4.2)], 2.2),
         result(head, [("lnl_train", 47.0), ("score_samples@1", 2.2), ("extra", 1.0)], 2.1)),
    ]
    lines = paired_markdown(pairs)
    assert lines[0].startswith("Baseline aaaaaaaaaa against bbbbbbbbbb, 2 repeat(s)")
    rows = {line.split(" | ")[0].lstrip("| "): line for line in lines[4:]}
    assert rows["`dvc repro` (all stages)"] == "| `dvc repro` (all stages) | 53.6 | 49.6 | -6.0, -2.0 |"
    assert rows["lnl_train"] == "| lnl_train | 49.0 | 46.5 | -4.0, -1.0 |"
    assert rows["score_samples"] == "| score_samples | 4.1 | 2.1 | -2.0, -2.0 |"
    assert rows["extra"] == "| extra | 0.0 | 0.5 | +0.0, +1.0 |"  # a stage only one side ran counts 0 s on the other
    assert rows["no-op `dvc repro`"] == "| no-op `dvc repro` | 2.1 | 2.3 | +0.5, -0.1 |"


def test_an_unknown_baseline_is_refused_before_anything_runs():
    run = subprocess.run([sys.executable, "-m", "bench.pipeline_time", "--baseline", "no-such-revision"],
                         cwd=REPO, capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 2
    assert "--baseline 'no-such-revision' is not a commit of" in run.stderr
