"""bench/conformal_selection.py: the oracle thresholds and C's quality on hand arrays, the tables
on hand-made records, and a tiny sweep end to end."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from builders import write_params

from bench import conformal_selection
from bench.conformal_selection import oracle_keep, quality


def test_oracle_is_the_most_precise_c_with_the_recall_in_every_class():
    labels = np.array([0, 0, 0, 0, 0, 1, 1, 1])
    truth = np.array([0, 0, 0, 0, 1, 1, 1, 0])
    scores = np.array([0.9, 0.8, 0.2, 0.1, 0.85, 0.7, 0.3, 0.6])
    # at 0.5: class 0 (right 0.9 0.8 0.2 0.1, wrong 0.85) keeps 2, 3 or 4 right with its one wrong, class 1
    # (right 0.7 0.3, wrong 0.6) 1 right alone or 2 with its wrong: 4 + 1 right of 6 kept is the best
    assert oracle_keep(scores, labels, truth, 0.5).tolist() == [1, 1, 1, 1, 1, 1, 0, 0]
    # at 0.75 class 1 must keep both right labels, so its wrong one: then all of class 0 (6 of 8) beats 5 of 7
    assert oracle_keep(scores, labels, truth, 0.75).all()
    assert not oracle_keep(scores, labels, np.full(8, 2), 0.5).any()  # no right label: nothing


def test_oracle_matches_a_search_over_every_pair_of_thresholds():
    rng = np.random.default_rng(0)
    for _ in range(20):
        labels, truth = rng.integers(0, 2, 14), rng.integers(0, 2, 14)
        truth[:2] = labels[:2] = [0, 1]  # a right label in each class
        scores = rng.integers(0, 6, 14) / 5  # ties
        keep = oracle_keep(scores, labels, truth, 0.6)
        best = 0.0
        for t0 in np.unique(scores[labels == 0]):
            for t1 in np.unique(scores[labels == 1]):
                kept = np.where(labels == 0, scores >= t0, scores >= t1)
                right = [(truth == c) & (labels == c) for c in (0, 1)]
                if all((kept & r).sum() >= np.ceil(0.6 * r.sum()) for r in right):
                    best = max(best, (labels == truth)[kept].mean())
        assert (labels == truth)[keep].mean() == pytest.approx(best)


def test_quality_of_a_keep_mask():
    labels = np.array([0, 0, 0, 0, 1, 1, 2])
    truth = np.array([0, 0, 0, 1, 1, 1, 0])
    keep = np.array([1, 1, 0, 1, 1, 0, 0], dtype=bool)
    # kept: 3 right of 4; class 0 keeps 2 of its 3 right labels, class 1 1 of 2; 3 of 5 right kept
    assert quality(keep, labels, truth, ["a", "b", "c"]) == {"precision": 0.75, "worst_class_recall": 0.5,
                                                             "recall": 0.6, "kept_share": 4 / 7}  # fmt: skip


def record(seed: int, rule: str, precision: float, worst: float) -> dict:
    return {"dataset": "d", "rate": 0.4, "seed": seed, "rule": rule, "rarest_val_images": 6, "precision": precision,
            "worst_class_recall": worst, "recall": 0.9, "kept_share": 0.5}  # fmt: skip


def test_the_table_pairs_each_rule_with_cleanlab_kfold_per_seed():
    records = [record(s, "cleanlab_kfold", p, 0.4) for s, p in enumerate([0.8, 0.7, 0.9])]
    records += [record(s, "conformal_kfold 0.9", p, w) for s, (p, w) in enumerate([(0.7, 0.9), (0.7, 0.8), (0.7, 0.7)])]
    rows = {cells[4]: cells for line in conformal_selection.tables(records).splitlines()
            if line.startswith("| d ") and len(cells := line.split(" | ")) == 11}  # fmt: skip
    assert rows["cleanlab_kfold"][5:] == ["0.800", "0.400", "0.900", "0.500", "—", "— |"]
    # precision differences −0.1, 0, −0.2: mean −0.1, sd 0.1, t(0.975, 2) = 4.3027 → ±0.248;
    # worst-class recall differences 0.5, 0.4, 0.3: mean 0.4, the same half-width
    assert rows["conformal_kfold 0.9"][1:] == ["0.4", "3", "6", "conformal_kfold 0.9", "0.700", "0.800", "0.900",
                                               "0.500", "-0.100 [-0.348, +0.148]", "+0.400 [+0.152, +0.648] |"]


def test_a_tiny_sweep_measures_every_rule_against_the_truth(tmp_path):
    write_params(tmp_path)
    with contextlib.chdir(tmp_path):
        records = conformal_selection.selection_records("tiny", {"source": "digits", "image_size": 8}, [0.4], [0, 1],
                                                        tmp_path / "cache", pretrain_epochs=1)  # fmt: skip
    rules = ["cleanlab_kfold", "conformal_kfold 0.8", "oracle 0.8", "conformal_kfold 0.9", "oracle 0.9"]
    assert [(r["seed"], r["rule"]) for r in records] == [(s, rule) for s in (0, 1) for rule in rules]
    for r in records:
        assert r["rarest_val_images"] == 15  # digits: 15 validation images per class
        assert 0 < r["worst_class_recall"] <= r["recall"] <= 1 and 0 < r["kept_share"] < 1
        if r["rule"].startswith("oracle"):
            assert r["worst_class_recall"] >= float(r["rule"].split()[1])
    by_rule = {(r["seed"], r["rule"]): r for r in records}
    for seed in (0, 1):  # a higher share lowers every calibrated threshold
        assert by_rule[seed, "conformal_kfold 0.9"]["kept_share"] >= by_rule[seed, "conformal_kfold 0.8"]["kept_share"]
        # no rule keeping 0.8 of every class is more precise than the oracle
        assert by_rule[seed, "oracle 0.8"]["precision"] >= max(by_rule[seed, rule]["precision"] for rule in rules
                                                                if by_rule[seed, rule]["worst_class_recall"] >= 0.8)
