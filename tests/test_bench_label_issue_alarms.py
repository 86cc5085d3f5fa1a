"""bench/label_issue_alarms.py: the tables on hand-made records, and a tiny sweep end to end."""

from __future__ import annotations

import contextlib

import numpy as np
from builders import write_params

from bench import label_issue_alarms


def record(rate: float, seed: int, estimate: float, actual: float, flagged_right: int) -> dict:
    shares = {f"{kind}_{rule}": value for kind, value in (("estimate", estimate), ("actual", actual))
              for rule in ("knn_vote", "cleanlab_kfold", "either")}  # fmt: skip
    return {"dataset": "d", "rate": rate, "seed": seed, "num_train": 100, "num_val": 20, "flagged": 40,
            "flagged_right": flagged_right, "if_labels_right": round(estimate * 100)} | shares  # fmt: skip


def test_the_tables_pair_the_estimate_with_the_actual_share_per_noise_seed():
    records = [record(0.0, 0, 0.30, 0.25, 40)]
    records += [record(0.4, s, e, a, r) for s, (e, a, r) in enumerate([(0.3, 0.2, 20), (0.3, 0.1, 31), (0.2, 0.2, 10)])]
    lines = label_issue_alarms.tables(records).splitlines()
    shares = {(cells[1], cells[4]): cells for line in lines if line.startswith("| d ") and
              len(cells := line.split(" | ")) == 8}  # fmt: skip
    # one seed at noise 0: the difference alone
    assert shares["0.0", "either"][5:] == ["0.300", "0.250", "+0.050 |"]
    # differences 0.1, 0.2, 0.0: mean 0.1, sd 0.1, t(0.975, 2) = 4.3027 → ±0.248
    assert shares["0.4", "either"][2:] == ["3", "20", "either", "0.267", "0.167", "+0.100 [-0.148, +0.348] |"]
    counts = {cells[1]: cells for line in lines if line.startswith("| d ") and len(cells := line.split(" | ")) == 7}
    # counts 30, 30, 20 against 20, 31, 10: the count reached the actual one on seeds 0 and 2
    assert counts["0.4"][2:] == ["100", "40.0", "26.7", "20.3", "2 of 3 |"]
    assert counts["0.0"][-1] == "0 of 1 |"  # 30 against 40


def test_a_tiny_sweep_estimates_against_the_truth(tmp_path):
    write_params(tmp_path)
    with contextlib.chdir(tmp_path):
        records = label_issue_alarms.alarm_records("tiny", {"source": "digits", "image_size": 8}, [0.0, 0.4], [0, 1],
                                                   tmp_path / "cache", pretrain_epochs=1)  # fmt: skip
    assert [(r["rate"], r["seed"]) for r in records] == [(0.0, 0), (0.4, 0), (0.4, 1)]  # noise 0 on one seed
    for r in records:
        assert r["num_train"] == 528 and r["num_val"] == 150
        assert 0 <= r["flagged_right"] <= r["flagged"] <= r["num_train"]
        assert r["if_labels_right"] == min(r["flagged"], int(np.floor(r["estimate_either"] * 528 + 0.5)))
        for kind in ("estimate", "actual"):
            assert max(r[f"{kind}_knn_vote"], r[f"{kind}_cleanlab_kfold"]) <= r[f"{kind}_either"] <= 1.0
    assert records[0]["flagged_right"] == records[0]["flagged"]  # every label right at noise 0
    assert records[1]["flagged_right"] < records[1]["flagged"]
