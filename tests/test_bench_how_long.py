"""bench/how_long.py: the default schedule it scales to and its arithmetic (no dvc run)."""

from __future__ import annotations

import pytest

from alr_core.common.params import parse_params
from bench.how_long import DEFAULT_EPOCHS, minutes, table


def test_the_schedule_is_alr_s_built_in_default():
    defaults = parse_params({})
    assert defaults.pretrain.method != "none"  # SimCLR's epochs are part of the default run
    assert DEFAULT_EPOCHS == {"pretrain": defaults.pretrain.epochs, "lnl_train": defaults.lnl.epochs,
                              "retrain": defaults.al.epochs}  # fmt: skip


def test_minutes_scale_the_epochs_linearly_and_add_the_rest():
    row = {"size": 28, "num_train": 2000, "epoch": {"pretrain": 2.0, "lnl_train": 1.0, "retrain": 6.0},
           "constant": 60.0, "slope": 0.01}  # fmt: skip
    trained = 2.0 * DEFAULT_EPOCHS["pretrain"] + 1.0 * DEFAULT_EPOCHS["lnl_train"] + 6.0 * DEFAULT_EPOCHS["retrain"]
    assert minutes(row, 2000) == pytest.approx((60 + 20 + trained) / 60)
    assert minutes(row, 10_000) == pytest.approx((60 + 100 + 5 * trained) / 60)
    text = table([row], "header")
    assert "| 28 px | 2.0 | 1.0 | 6.0 | 60 + 10.0 per 1k images |" in text
    assert f"({DEFAULT_EPOCHS['pretrain']} SimCLR epochs, {DEFAULT_EPOCHS['lnl_train']} phase-1 epochs" in text
