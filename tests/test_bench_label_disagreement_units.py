"""bench/label_disagreement_units.py: the thresholds of both variants and the paired table."""

from __future__ import annotations

import math

import numpy as np

from alr_core.active import strategies
from bench import label_disagreement_units as units


def test_the_nats_variant_gives_the_scores_alr_gave_before_the_unit_change():
    probs = np.random.default_rng(0).dirichlet(np.ones(4) * 0.5, size=30)
    labels = np.arange(30) % 4
    before = -np.log(probs[np.arange(30), labels] + 1e-12) - np.maximum(
        -(probs * np.log(probs + 1e-12)).sum(axis=1) - 0.3, 0)  # γ = 0.3 nats
    np.testing.assert_allclose(strategies.label_disagreement(probs, labels, units.THRESHOLDS[units.NATS](4)), before)
    assert units.THRESHOLDS[units.DEFAULT](4) == 0.3 and math.isclose(units.THRESHOLDS[units.NATS](10), 0.3 / math.log(10))


def record(variant: str, seed: int, accuracy: float) -> dict:
    return {"dataset": "d", "K": 4, "seed": seed, "variant": variant, "test_balanced_accuracy": accuracy,
            "label_accuracy": 0.7, "cleaning_efficiency": 2.0, "fixed_by_queries": 10}  # fmt: skip


def test_the_table_pairs_the_variants_per_seed():
    records = [record(units.NATS, s, a) for s, a in enumerate([0.5, 0.6, 0.7])]
    records += [record(units.DEFAULT, s, a) for s, a in enumerate([0.6, 0.8, 1.0])]  # +0.1, +0.2, +0.3
    records.append(record(units.DEFAULT, 3, 0.0))  # no nats run for seed 3: left out of the pairs
    rows = [line.split(" | ") for line in units.table(records).splitlines() if line.startswith("| d ")]
    accuracy = next(row for row in rows if row[3] == "test_balanced_accuracy")
    # mean 0.2, sd 0.1, t(0.975, 2) = 4.3027 → ±0.248
    assert accuracy[2:] == ["3", "test_balanced_accuracy", "0.600", "0.800", "+0.200 [-0.048, +0.448] |"]
    assert [row[3] for row in rows] == list(units.METRICS)
