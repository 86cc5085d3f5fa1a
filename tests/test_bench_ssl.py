"""bench/ssl_evidence.py's paired intervals and the safety-net rows, on hand-made records."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.ssl_evidence import CEILING, DEFAULT_RULE, SAFETY_NET, paired, with_safety_net


def records(variant: str, values: list[float], vals: list[float] | None = None) -> list[dict]:
    return [{"dataset": "d", "rate": 0.4, "budget": None, "init": "scratch", "variant": variant, "seed": seed,
             "test_balanced_accuracy": value, "val_balanced_accuracy": (vals or values)[seed]}
            for seed, value in enumerate(values)]  # fmt: skip


def test_paired_differences_and_their_t_interval():
    frame = pd.DataFrame(records("ce", [0.5, 0.5, 0.5]) + records(CEILING, [0.6, 0.7, 0.8]))
    rows = paired(frame, "test_balanced_accuracy", "ce").set_index("variant")
    assert pd.isna(rows.loc["ce", "diff"]) and rows.loc["ce", "mean"] == pytest.approx(0.5)
    # differences 0.1, 0.2, 0.3: mean 0.2, sd 0.1, t(0.975, 2) = 4.3027
    assert rows.loc[CEILING, "diff"] == pytest.approx(0.2)
    half = 4.302653 * 0.1 / 3**0.5
    assert rows.loc[CEILING, "low"] == pytest.approx(0.2 - half, abs=1e-6)
    assert rows.loc[CEILING, "high"] == pytest.approx(0.2 + half, abs=1e-6)
    assert rows.loc[CEILING, "pairs"] == 3


def test_paired_uses_only_the_seeds_both_have():
    frame = pd.DataFrame(records("ce", [0.5, 0.5, 0.5]) + records(CEILING, [0.6, 0.9])[:2])
    row = paired(frame, "test_balanced_accuracy", "ce").set_index("variant").loc[CEILING]
    assert row["pairs"] == 2 and row["diff"] == pytest.approx(0.25)


def test_safety_net_rows_take_the_run_with_the_higher_validation_score():
    frame = pd.DataFrame(records("ce", [0.70, 0.70, 0.70], vals=[0.80, 0.60, 0.70])
                         + records(DEFAULT_RULE, [0.90, 0.65, 0.75], vals=[0.70, 0.90, 0.70]))  # fmt: skip
    picked = with_safety_net(frame)
    net = picked[picked["variant"] == SAFETY_NET].set_index("seed")["test_balanced_accuracy"]
    # seed 0: CE's validation is higher → CE's test score; seed 1: the rule's; seed 2: a tie keeps the rule
    assert net.tolist() == [0.70, 0.65, 0.75]
    assert len(picked) == len(frame) + 3
