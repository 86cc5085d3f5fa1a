"""The safety net of phase 1 (``lnl.safety_net``): a noisy-label method should never leave the
user worse off than plain cross-entropy from the same initialisation.

Phase 1 cannot see the test split, but it has a clean validation split: with ``check`` the
stage also trains plain CE (same data, seed and initialisation, one network, no selection) and
records both validation balanced accuracies, so the report can say when the method lost;
``pick`` also hands on the better of the two — CE's model and, since CE trusts every label, a
clean guess C of every sample — when CE scored higher (ties keep the method).

The record also says how much a validation lead means: a paired sign-flip test over the
validation samples the two models disagree on gives CE's lead a p-value, and the report calls a
lead with p ≥ 5 % (one-sided) within the split's noise. The choice itself stays with the score:
picking CE only on a significant lead was measured against it (bench/safety_net.md) — on
validation splits of 35–150 images the test never fired, and it drew with the score in both
phases: small leads' picks lost on test, large leads' picks won, and the test dropped both.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from alr_core.common import paths
from alr_core.common.params import Params
from alr_core.common.seeding import rng_for
from alr_core.common.text import method_name
from alr_core.data.datasets import PipelineData
from alr_core.evaluation.metrics import paired_balanced_accuracy_test
from alr_core.lnl.phase1 import Phase1Result, train_phase1

SIGNIFICANCE = 0.05  # one-sided level below which the report calls CE's validation lead significant


def ce_lead(labels: np.ndarray, ce_predictions: np.ndarray, method_predictions: np.ndarray, seed: int) -> dict:
    """{"diff", "p_value", "significant"}: CE's validation balanced accuracy minus the method's,
    the p-value of the paired test that CE is the better, and whether it is below
    :data:`SIGNIFICANCE`. ``labels``, ``*_predictions``: int (N_val,); ``seed``: the run's, so
    the test's draws repeat with it."""
    test = paired_balanced_accuracy_test(labels, ce_predictions, method_predictions, rng_for(seed, "safety_net"))
    return test | {"significant": test["p_value"] < SIGNIFICANCE}


def plain_ce(params: Params) -> Params:
    """``params`` with phase 1's method set to the safety net's baseline: plain CE on every label."""
    return dataclasses.replace(params, lnl=dataclasses.replace(params.lnl, method="ce", selection="global"))


def method_handed_on(params: Params, lnl_metrics: dict) -> Params:
    """``params`` for the rounds that continue phase 1's loop (``al.train_on: lnl``): with
    :func:`plain_ce`'s method when the safety net handed on CE's model (``lnl_metrics``: the
    stage's lnl.json), else unchanged — Co-teaching cannot go on from CE's single network, and
    CE is what the validation split preferred."""
    if (lnl_metrics.get("safety_net") or {}).get("used") == "ce":
        return plain_ce(params)
    return params


def train_with_safety_net(data: PipelineData, params: Params, progress: bool = True,
                          encoder_path=paths.PRETRAIN_ENCODER) -> Phase1Result:  # fmt: skip
    """:func:`train_phase1`, and under ``lnl.safety_net`` check or pick also plain CE; the
    returned result's ``metrics["safety_net"]`` records the comparison (absent when off, or
    when the method is plain CE already)."""
    lnl = params.lnl
    result = train_phase1(data, params, progress, encoder_path=encoder_path)
    if lnl.safety_net == "off" or (lnl.method == "ce" and lnl.selection == "global"):
        return result  # plain CE: nothing to compare with
    baseline = train_phase1(data, plain_ce(params), progress, encoder_path=encoder_path)
    method_score = result.metrics["val"]["balanced_accuracy"]
    ce_score = baseline.metrics["val"]["balanced_accuracy"]
    ce_is_better = ce_score > method_score
    chosen = baseline if ce_is_better and lnl.safety_net == "pick" else result
    chosen.metrics["safety_net"] = {
        "mode": lnl.safety_net,
        "method_val_balanced_accuracy": method_score,
        "ce_val_balanced_accuracy": ce_score,
        # CE's balanced accuracy minus the method's, and the p-value that CE is the better
        "ce_lead": ce_lead(data.val.labels, baseline.val_predictions, result.val_predictions, params.seed),
        "ce_is_better": ce_is_better,
        "used": "ce" if chosen is baseline else method_name(lnl.method, result.metrics.get("selection_rule")),
        # test scores of both, for the report only: the choice above never reads them
        "method_test_balanced_accuracy": (result.metrics["test"] or {}).get("balanced_accuracy"),
        "ce_test_balanced_accuracy": (baseline.metrics["test"] or {}).get("balanced_accuracy"),
    }
    chosen.timing["safety_net_seconds"] = round(sum(baseline.timing["seconds"].values()), 3)
    return chosen
