"""bench/safety_net.py's decisions and tables on hand-made records: which run each net hands on."""

from __future__ import annotations

import numpy as np
import pytest

from bench.safety_net import NETTED_DEFAULT, RULE, decisions, phase2_effect, picks_by_lead, reproduced, tables

LABELS = np.repeat([0, 1], 50)


def right_on(count: int) -> list[int]:
    """Validation predictions right on the first ``count`` samples of each class of LABELS."""
    return np.where(np.tile(np.arange(50) < count, 2), LABELS, 1 - LABELS).tolist()


def pair(seed: int, ce_right: int, rule_right: int, ce_test: float, rule_test: float) -> list[dict]:
    base = {"dataset": "d", "rate": 0.4, "seed": seed, "init": "scratch", "pretrain_epochs": 15,
            "val_labels": LABELS.tolist()}  # fmt: skip
    return [base | {"variant": "ce", "val_balanced_accuracy": ce_right / 50, "val_predictions": right_on(ce_right),
                    "test_balanced_accuracy": ce_test},
            base | {"variant": RULE, "val_balanced_accuracy": rule_right / 50,
                    "val_predictions": right_on(rule_right), "test_balanced_accuracy": rule_test}]  # fmt: skip


RECORDS = [*pair(0, 45, 30, 0.80, 0.60),  # CE far ahead: both nets pick it
           *pair(1, 31, 30, 0.60, 0.70),  # CE ahead by 2 samples: only "higher" picks it
           *pair(2, 30, 40, 0.50, 0.90)]  # the rule ahead: neither  # fmt: skip


def test_decisions_apply_both_rules_to_each_pair():
    found = decisions(RECORDS).set_index("seed")
    assert found["higher_picks_ce"].tolist() == [True, True, False]
    assert found["test_picks_ce"].tolist() == [True, False, False]
    assert found["net_higher"].tolist() == [0.80, 0.60, 0.90]
    assert found["net_test"].tolist() == [0.80, 0.70, 0.90]
    assert found.loc[1, "lead"] == pytest.approx(0.02) and found.loc[1, "p_value"] > 0.2
    assert found.loc[0, "p_value"] < 0.001


def test_a_seed_without_both_runs_is_left_out():
    assert decisions(RECORDS[:-1])["seed"].tolist() == [0, 1]


def test_tables_count_the_picks_and_pair_the_nets():
    text = tables(decisions(RECORDS))
    # net, test − net, higher per seed: 0, +0.1, 0 -> mean +0.033
    assert "| d | 0.4 | 3 | 100 | 2 / 1 | 0.633 | 0.733 | 0.767 | 0.800 | +0.033 [" in text
    assert "The nets disagree on 1 of 3 pairs" in text
    assert "the rule's run scored above CE's in 1, below in 0, level in 0, mean +0.100" in text
    assert "The test picks CE in 1 pair, where CE's test score minus the rule's is +0.200" in text


def test_reproduced_counts_exact_matches_with_the_evidence_records():
    evidence = [{"phase": 1, "dataset": "d", "rate": 0.4, "seed": 0, "init": "scratch", "variant": "ce",
                 "pretrain_epochs": 15, "test_balanced_accuracy": 0.80},
                {"phase": 1, "dataset": "d", "rate": 0.4, "seed": 1, "init": "scratch", "variant": "ce",
                 "pretrain_epochs": 15, "test_balanced_accuracy": 0.61}]  # fmt: skip
    assert reproduced(RECORDS, evidence).startswith("1 of 2 runs that bench/ssl_evidence.jsonl also holds scored "
                                                    "exactly its test balanced accuracy (4 runs it does not hold)")


def test_picks_by_lead_bucket_the_picks_by_validation_lead():
    def run(seed, variant, val, test):
        return {"phase": 1, "dataset": "d", "rate": 0.4, "init": "scratch", "seed": seed, "pretrain_epochs": 15,
                "variant": variant, "val_balanced_accuracy": val, "test_balanced_accuracy": test}

    evidence = [run(0, "ce", 0.71, 0.60), run(0, RULE, 0.70, 0.70),  # lead 0.01: CE 0.10 worse on test
                run(1, "ce", 0.80, 0.75), run(1, RULE, 0.70, 0.70),  # lead 0.10: CE 0.05 better
                run(2, "ce", 0.60, 0.90), run(2, RULE, 0.70, 0.70),  # the rule ahead: no pick
                run(3, "ce", 0.90, 0.90), {**run(3, "knn_vote", 0.1, 0.1)}]  # no pair  # fmt: skip
    text = picks_by_lead(evidence)
    assert text.startswith('Over the 3 pairs of plain CE and cleanlab_kfold in bench/ssl_evidence.jsonl, "higher" '
                           "picked CE 2 times")
    assert "| ≤ 0.02 | 1 | 0 | 1 | -0.100 |" in text and "| > 0.05 | 1 | 1 | 0 | +0.050 |" in text
    assert "| all | 2 | 1 | 1 | -0.025 |" in text


def test_phase2_effect_takes_the_unnetted_run_where_only_higher_picked_ce():
    from bench.ssl_evidence import PHASE2_BASELINE, ROUND_RULE

    def run(seed, variant, test, budget=0.1):
        return {"phase": 2, "dataset": "d", "rate": 0.4, "init": "scratch", "pretrain_epochs": 15, "budget": budget,
                "round_rule": ROUND_RULE, "seed": seed, "variant": variant, "test_balanced_accuracy": test}

    evidence = [run(s, PHASE2_BASELINE, 0.5) for s in range(3)] + [run(s, NETTED_DEFAULT, 0.6) for s in range(3)]
    found = decisions(RECORDS)  # seed 1: "higher" picked CE, the test kept the rule
    text, commands = phase2_effect(found, evidence)
    assert "| d | 0.4 | 10% | 3 | 1 | `cleanlab_kfold + label_disagreement` not yet run for seeds 1 |" in text
    assert commands == ['python -m bench.ssl_evidence --dataset d --rates 0.4 --phase 2 --inits scratch '
                        '--pretrain-epochs 15 --budgets 0.1 --variants "cleanlab_kfold + label_disagreement" --seeds 1']
    text, commands = phase2_effect(found, evidence + [run(1, "cleanlab_kfold + label_disagreement", 0.9)])
    # test's runs: 0.6, 0.9, 0.6 against 0.6 each under "higher": +0.1 on average
    assert "| d | 0.4 | 10% | 3 | 1 | 0.500 | 0.600 | 0.700 | +0.100 [" in text and not commands
    assert "| all | all | both | 3 | 1 | 0.500 | 0.600 | 0.700 | +0.100 [" in text
    # a seed without phase-1 pairs is left out of its block, which says how many seeds it reads
    undecided = evidence + [run(1, "cleanlab_kfold + label_disagreement", 0.9), run(3, PHASE2_BASELINE, 0.1),
                            run(3, NETTED_DEFAULT, 0.9)]  # fmt: skip
    assert "| d | 0.4 | 10% | 3 of 4 | 1 | 0.500 | 0.600 | 0.700 | +0.100 [" in phase2_effect(found, undecided)[0]
    # a block needs two seeds with pairs to be read at all
    text = phase2_effect(decisions(RECORDS[:2]), undecided)[0]
    assert "| d | 0.4 | 10% | 4 | ? | phase-1 pairs not yet run for seeds 1 2 3 |" in text
    # a set or rate without any pair here is not this bench's: no row
    elsewhere = [r | {"dataset": "e"} for r in evidence] + [r | {"rate": 0.6} for r in evidence]
    assert phase2_effect(found, evidence + elsewhere)[0] == phase2_effect(found, evidence)[0]
