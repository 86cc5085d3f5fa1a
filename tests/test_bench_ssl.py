"""bench/ssl_evidence.py's paired intervals, the safety-net rows and the phase-2 tables, on hand-made records;
the pretraining behind each initialisation."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.ssl_evidence import (CEILING, DEFAULT_RULE, PHASE2_DEFAULT, ROUND_RULE, SAFETY_NET, SAFETY_NETS,
                                TRAINED_ALWAYS, UNNAMED_MACHINE, machines_table, paired, paired_text, phase2_config,
                                pretrain_settings, split_variant, tables, with_safety_net)


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


def test_a_safety_net_row_that_picked_ce_describes_ces_clean_guess_every_sample():
    """The net hands on CE's C, every train sample: worst-class recall 1, precision the share of
    right train labels; without that share the row's mean says over how many seeds it is."""
    frame = pd.DataFrame(records("ce", [0.70, 0.70], vals=[0.80, 0.60])
                         + records(DEFAULT_RULE, [0.90, 0.65], vals=[0.70, 0.90])).assign(
        phase=1, precision=[None, None, 0.9, 0.95], worst_class_recall=[None, None, 0.4, 0.5])  # fmt: skip
    net = with_safety_net(frame, {("d", 0.4, 0): 0.6}).query("variant == @SAFETY_NET").set_index("seed")
    assert net["precision"].tolist() == [0.6, 0.95] and net["worst_class_recall"].tolist() == [1.0, 0.5]
    table = tables(frame.to_dict("records")).split("## Phase 1")[1].split("##")[0]
    row = next(line for line in table.splitlines() if f"| {SAFETY_NET} |" in line)
    assert "| 0.950 (1 of 2) | 0.750 |" in row  # no label share in these records: precision from seed 1 only


def test_paired_text_says_how_many_seeds_a_difference_pairs():
    row = {"diff": 0.089, "low": -0.023, "high": 0.2, "n": 10, "pairs": 5}
    assert paired_text(row) == "+0.089 [-0.023, +0.200] (5 pairs)"
    assert paired_text(row | {"pairs": 10}) == "+0.089 [-0.023, +0.200]"


def test_every_rule_in_safety_nets_gets_its_row_and_is_paired_with_the_default_rule():
    frame = pd.DataFrame(records("ce", [0.70, 0.70, 0.70], vals=[0.80, 0.60, 0.70])
                         + records(DEFAULT_RULE, [0.90, 0.65, 0.75], vals=[0.70, 0.90, 0.70])
                         + records("cleanlab_kfold", [0.60, 0.85, 0.95], vals=[0.90, 0.50, 0.80])).assign(
        phase=1, precision=None, worst_class_recall=None)  # fmt: skip
    picked = with_safety_net(frame)
    net = picked[picked["variant"] == SAFETY_NETS["cleanlab_kfold"]].set_index("seed")["test_balanced_accuracy"]
    assert net.tolist() == [0.60, 0.70, 0.95]  # seed 1: CE validates higher
    table = tables(frame.to_dict("records")).split("### Each rule with the safety net")[1].split("###")[0]
    # against the default's picks 0.70, 0.65, 0.75: differences −0.10, +0.05, +0.20 → +0.05 ± 4.3027 · 0.15 / √3
    assert "| d | 0.4 | scratch | cleanlab_kfold + safety net (pick) | 3 | 0.750 | +0.050 [-0.323, +0.423] |" in table


def round_records(variant: str, rule: str, after: list[float], before: list[float]) -> list[dict]:
    return [{"dataset": "d", "rate": 0.4, "budget": 0.1, "init": "scratch", "variant": variant, "seed": seed,
             "phase": 2, "round_rule": rule, "test_balanced_accuracy": a, "phase1_test_balanced_accuracy": b,
             "cleaning_efficiency": 2.0, "cleaning_efficiency_ceiling": 2.5}
            for seed, (a, b) in enumerate(zip(after, before))]  # fmt: skip


def test_paired_by_another_column_within_finer_keys():
    frame = pd.DataFrame(round_records("x", TRAINED_ALWAYS, [0.5, 0.6, 0.7], [0.6] * 3)
                         + round_records("x", ROUND_RULE, [0.6, 0.6, 0.9], [0.6] * 3)
                         + round_records("y", ROUND_RULE, [0.0] * 3, [0.6] * 3))  # fmt: skip
    rows = paired(frame, "test_balanced_accuracy", TRAINED_ALWAYS, column="round_rule",
                  keys=("dataset", "rate", "budget", "init", "variant")).set_index(["variant", "round_rule"])
    # x: differences 0.1, 0.0, 0.2 → mean 0.1; y has no baseline, so no difference
    assert rows.loc[("x", ROUND_RULE), "diff"] == pytest.approx(0.1)
    assert pd.isna(rows.loc[("y", ROUND_RULE), "diff"])


def test_phase2_tables_use_the_current_round_rule_and_pair_the_two_rules():
    before = [0.6, 0.6, 0.6]
    frame = (round_records("ce + random", TRAINED_ALWAYS, [0.5, 0.5, 0.5], before)
             + round_records("ce + random", ROUND_RULE, [0.6, 0.65, 0.7], before)
             + round_records("ce + label_disagreement", ROUND_RULE, [0.7, 0.75, 0.8], before))  # fmt: skip
    for record, kept in zip(frame[3:6], ([True, False], [True, True], [False, False])):
        record["kept_previous"] = kept  # 1 + 2 + 0 of 6 rounds
    text = tables(frame)
    phase2 = text.split("## Phase 2")[1].split("###")[0]
    # the main table holds only the current rule's runs: ce + random's mean is 0.650, not 0.575
    assert "| ce + random | 3 | 0.650 |" in phase2 and "0.575" not in phase2
    assert "| ce + label_disagreement | 3 | 0.750 | +0.100 [+0.100, +0.100] |" in phase2
    add = text.split("### What the rounds add")[1].split("###")[0]
    assert f"| ce + random | {TRAINED_ALWAYS} | 3 | -0.100 [-0.100, -0.100] | — |" in add  # kept not recorded
    assert f"| ce + random | {ROUND_RULE} | 3 | +0.050 [-0.074, +0.174] | 50% |" in add
    one_seed = tables(frame[:1] + frame[3:4]).split("### What the rounds add")[1]
    assert f"| ce + random | {ROUND_RULE} | 1 | +0.000 [—] | 50% |" in one_seed  # no interval from one seed
    rules = text.split("### The previous model competing")[1]
    assert "| d | 0.4 | 10% | scratch | ce + random | 3 | +0.150 [+0.026, +0.274] |" in rules


def test_vicreg_initialisations_pretrain_with_vicreg():
    assert pretrain_settings("vicreg frozen", 50) == pretrain_settings("vicreg finetune", 50) == {
        "method": "vicreg", "epochs": 50, "projection_dim": 512}
    assert pretrain_settings("simclr 512 frozen", 50) == {"method": "simclr", "epochs": 50, "projection_dim": 512}
    # the SimCLR encoder's settings are what the cache of earlier runs is keyed on
    assert pretrain_settings("ssl frozen", 50) == pretrain_settings("scratch", 50) == {"method": "simclr", "epochs": 50}
    # the pipeline's own use, VICReg at its projection width
    assert pretrain_settings("scratch vicreg", 15) == {"method": "vicreg", "epochs": 15}


def test_other_pretrainings_are_paired_with_simclr_under_the_same_use_of_the_encoder():
    def runs(init, values, phase=1, budget=None):
        return [{"dataset": "d", "rate": 0.4, "budget": budget, "init": init, "variant": "ce", "seed": seed,
                 "phase": phase, "test_balanced_accuracy": value, "val_balanced_accuracy": value,
                 "round_rule": ROUND_RULE if phase == 2 else None, "precision": None, "worst_class_recall": None,
                 "cleaning_efficiency": 2.0, "cleaning_efficiency_ceiling": 2.5, "phase1_test_balanced_accuracy": 0.5}
                for seed, value in enumerate(values)]  # fmt: skip

    frame = pd.DataFrame(runs("ssl frozen", [0.5, 0.6, 0.7]) + runs("vicreg frozen", [0.6, 0.8, 0.8])
                         + runs("ssl finetune", [0.9, 0.9, 0.9])  # another use of the encoder: not paired
                         + runs("ssl finetune slow backbone", [1.0, 0.9, 0.8])  # paired with ssl finetune
                         + runs("ssl frozen", [0.5, 0.5], phase=2, budget=0.1)
                         + runs("vicreg frozen", [0.4, 0.4], phase=2, budget=0.1))  # fmt: skip
    table = tables(frame).split("## Other pretrainings and fine-tunings against the default SimCLR")[1]
    # phase 1: differences 0.1, 0.2, 0.1 → +0.133 ± 4.3027 · 0.0577 / √3
    assert "| 1 | d | 0.4 | — | vicreg frozen | ce | 3 | 0.733 | +0.133 [-0.010, +0.277] |" in table
    assert "| 2 | d | 0.4 | 10% | vicreg frozen | ce | 2 | 0.400 | -0.100 [-0.100, -0.100] |" in table
    # differences 0.1, 0, −0.1 → 0 ± 4.3027 · 0.1 / √3
    assert "| 1 | d | 0.4 | — | ssl finetune slow backbone | ce | 3 | 0.900 | +0.000 [-0.248, +0.248] |" in table
    assert "| ssl finetune | ce |" not in table  # ssl finetune is a default, never an alternative


def test_other_pretrainings_pair_within_one_pretraining_length():
    def runs(init, values, epochs):
        return [{"dataset": "d", "rate": 0.4, "budget": None, "init": init, "variant": "cleanlab_kfold", "seed": seed,
                 "phase": 1, "pretrain_epochs": epochs, "test_balanced_accuracy": value,
                 "val_balanced_accuracy": value, "precision": None, "worst_class_recall": None}
                for seed, value in enumerate(values)]  # fmt: skip

    frame = pd.DataFrame(runs("scratch", [0.5, 0.6, 0.7], 15) + runs("scratch vicreg", [0.5, 0.7, 0.7], 15)
                         + runs("scratch", [0.9, 0.9, 0.9], 50))  # another length: never paired with 15 epochs
    table = tables(frame).split("## Other pretrainings and fine-tunings against the default SimCLR")[1]
    # differences 0, 0.1, 0 → +0.033 ± 4.3027 · 0.0577 / √3
    row = "| 1 | d | 0.4 | — | scratch vicreg, pretrain 15 epochs | cleanlab_kfold | 3 | 0.633 | +0.033 [-0.110, +0.177] |"
    assert row in table
    assert table.count("scratch vicreg") == 2  # the text names it once, one row


def test_larger_images_are_paired_with_the_same_set_at_28_px_per_seed_and_configuration():
    def runs(dataset, values, variant="ce", init="scratch", phase=1, budget=None):
        return [{"dataset": dataset, "rate": 0.4, "budget": budget, "init": init, "variant": variant, "seed": seed,
                 "phase": phase, "test_balanced_accuracy": value, "val_balanced_accuracy": value,
                 "round_rule": ROUND_RULE if phase == 2 else None, "precision": None, "worst_class_recall": None,
                 "cleaning_efficiency": 2.0, "cleaning_efficiency_ceiling": 2.5, "phase1_test_balanced_accuracy": 0.5}
                for seed, value in enumerate(values)]  # fmt: skip

    frame = pd.DataFrame(runs("bccd", [0.5, 0.6, 0.7]) + runs("bccd64", [0.7, 0.7, 0.8])
                         + runs("bccd64", [0.9, 0.9], init="ssl frozen")  # no 28-px twin: no row
                         + runs("digits", [0.1, 0.1, 0.1])  # another set: never paired
                         + runs("bccd", [0.5, 0.6], "ce + random", phase=2, budget=0.1)
                         + runs("bccd64", [0.6, 0.8], "ce + random", phase=2, budget=0.1))  # fmt: skip
    table = tables(frame).split("## Larger images against 28 px")[1].split("##")[0]
    # differences 0.2, 0.1, 0.1 → +0.133 ± 4.3027 · 0.0577 / √3
    assert "| 1 | bccd64 against bccd | 0.4 | — | scratch | ce | 3 | 0.733 | +0.133 [-0.010, +0.277] |" in table
    assert "| 2 | bccd64 against bccd | 0.4 | 10% | scratch | ce + random | 2 | 0.700 | +0.150 [" in table
    assert "ssl frozen" not in table and "digits" not in table
    assert "## Larger images" not in tables(frame[frame["dataset"] != "bccd64"])


def test_phase2_configuration_names_and_their_modifiers():
    assert phase2_config("ce + random") == ("ce", {"strategy": "random"})
    rule, al = phase2_config("class_gmm + safety net + label_disagreement, pool selected, no class balance")
    assert rule == SAFETY_NET
    assert al == {"strategy": "label_disagreement", "pool": "selected", "class_balance": "none"}
    assert phase2_config("ce + random, rounds afresh")[1] == {"strategy": "random", "retrain": "scratch",
                                                              "epochs": 40, "lr": 0.05}  # fmt: skip
    with pytest.raises(SystemExit, match=r"'ce \+ random, pool everything'"):
        phase2_config("ce + random, pool everything")
    assert split_variant("ce + random, pool selected, rounds afresh") == ("ce + random, pool selected", "rounds afresh")
    assert split_variant("ce + random") == ("ce + random", "")


def test_phase2_pairs_within_a_round_recipe_and_each_modifier_with_its_absence():
    before = [0.6, 0.6, 0.6]
    frame = (round_records("ce + random", ROUND_RULE, [0.60, 0.60, 0.60], before)
             + round_records("x", ROUND_RULE, [0.70, 0.70, 0.70], before)
             + round_records("x, pool selected", ROUND_RULE, [0.80, 0.75, 0.70], before)
             + round_records("ce + random, rounds afresh", ROUND_RULE, [0.50, 0.50, 0.50], before)
             + round_records("x, rounds afresh", ROUND_RULE, [0.70, 0.80, 0.90], before))  # fmt: skip
    phase2 = tables(frame).split("## Phase 2")[1].split("###")[0]
    # "pool selected" changes what is queried: paired with plain CE + random
    assert "| x, pool selected | 3 | 0.750 | +0.150 [+0.026, +0.274] |" in phase2
    # "rounds afresh" changes how the rounds train: paired with CE + random trained the same way
    assert "| x, rounds afresh | 3 | 0.800 | +0.300 [+0.052, +0.548] |" in phase2
    modifiers = tables(frame).split("### Each modifier")[1].split("###")[0]
    assert "| d | 0.4 | 10% | scratch | x | pool selected | 3 | +0.050 [-0.074, +0.174] |" in modifiers
    assert "| d | 0.4 | 10% | scratch | x | rounds afresh | 3 | +0.100 [-0.148, +0.348] |" in modifiers
    assert "| ce + random | rounds afresh | 3 | -0.100 [-0.100, -0.100] |" in modifiers


def test_fixes_table_sums_over_runs():
    frame = round_records("x", ROUND_RULE, [0.7, 0.7], [0.6, 0.6]) + round_records("y", ROUND_RULE, [0.7], [0.6])
    for record, (fixed, predicted, inside, before, after) in zip(frame[:2], [(10, 9, 0, 20, 20), (30, 21, 10, 40, 30)]):
        record |= {"fixed_by_queries": fixed, "fixed_already_predicted": predicted, "fixed_in_trusted": inside,
                   "wrong_in_trusted_before": before, "wrong_in_trusted": after}
    fixes = tables(frame).split("### What the fixes can teach the model")[1].split("###")[0]
    # 40 fixes over 2 runs, 30 of them already predicted, 10 in C; y (no diagnostics) is left out
    assert "| d | 0.4 | 10% | scratch | x | 2 | 20.0 | 75% | 25% | 30.0 → 25.0 |" in fixes
    assert "| y |" not in fixes


def test_headroom_pairs_the_ceiling_of_the_same_initialisation_and_seed_whatever_the_noise():
    ceiling = [{"dataset": "d", "rate": 0.2, "budget": None, "init": init, "variant": CEILING, "seed": seed,
                "phase": 1, "test_balanced_accuracy": value, "val_balanced_accuracy": value, "precision": None,
                "worst_class_recall": None}
               for init, values in (("scratch", [0.9, 0.8, 0.7]), ("ssl frozen", [0.0, 0.0, 0.0]))
               for seed, value in enumerate(values)]  # fmt: skip
    before = [0.5, 0.5, 0.5]
    frame = (ceiling + round_records("ce + random", ROUND_RULE, [0.6, 0.6, 0.6], before)
             + round_records(PHASE2_DEFAULT, ROUND_RULE, [0.8, 0.8], before)  # seed 2 missing
             + round_records("ce + random, pool selected", ROUND_RULE, [0.0, 0.0, 0.0], before))  # fmt: skip
    headroom = tables(frame).split("### Headroom")[1].split("##")[0]
    # CE + random: 0.3, 0.2, 0.1 below the ceiling; the default: 0.1, 0.0 on the two seeds it has
    assert ("| d | 0.4 | 10% | scratch | 3 | 0.800 | 0.600 | +0.200 [-0.048, +0.448] | 0.800 | "
            "+0.050 [-0.585, +0.685] |") in headroom
    assert headroom.count("| d |") == 1  # one block: the pool-selected twin and the other init are not paired


def test_runs_pair_only_within_one_pretraining_length():
    ce_long = records("ce", [0.2, 0.2, 0.2])  # no pretrain_epochs: the bench default of 50
    ce_short, rule_short = records("ce", [0.5, 0.5, 0.5]), records("cleanlab_kfold", [0.6, 0.7, 0.8])
    for record in ce_short + rule_short:
        record["pretrain_epochs"] = 15
    frame = [r | {"phase": 1, "precision": None, "worst_class_recall": None} for r in ce_long + ce_short + rule_short]
    phase1 = tables(frame).split("## Phase 1")[1].split("###")[0]
    # paired with CE at 15 epochs (differences 0.1, 0.2, 0.3), not with CE at 50
    assert "| d | 0.4 | scratch, pretrain 15 epochs | cleanlab_kfold | 3 | — | — | 0.700 | +0.200 [-0.048, +0.448] |" \
        in phase1
    assert "| d | 0.4 | scratch | ce | 3 | — | — | 0.200 | — |" in phase1
    # and no initialisation row compares CE after 15 epochs' pretraining with CE at 50
    assert "pretrain 15" not in tables(frame).split("### Initialisations against scratch")[1]
    # an encoder pretrained 15 epochs is compared with scratch at the same length
    finetuned = [r | {"init": "ssl finetune", "test_balanced_accuracy": 0.6} for r in frame[3:6]]
    inits = tables(frame + finetuned).split("### Initialisations against scratch")[1].split("##")[0]
    assert "| d | 0.4 | ce | ssl finetune, pretrain 15 epochs | 3 | 0.600 | +0.100 [+0.100, +0.100] |" in inits
    assert inits.count("| d |") == 1


def test_phase2_configurations_are_also_paired_with_the_default():
    before = [0.6, 0.6, 0.6]
    frame = (round_records("ce + random", ROUND_RULE, [0.60, 0.60, 0.60], before)
             + round_records(PHASE2_DEFAULT, ROUND_RULE, [0.70, 0.70, 0.70], before)
             + round_records("x", ROUND_RULE, [0.80, 0.75, 0.70], before))  # fmt: skip
    phase2 = tables(frame).split("## Phase 2")[1].split("###")[0]
    assert "| x | 3 | 0.750 | +0.150 [+0.026, +0.274] | +0.050 [-0.074, +0.174] | 2.00 | 2.50 |" in phase2
    assert f"| {PHASE2_DEFAULT} | 3 | 0.700 | +0.100 [+0.100, +0.100] | — | 2.00 | 2.50 |" in phase2
    for record in frame:  # records from before the ceiling was recorded
        del record["cleaning_efficiency_ceiling"]
    assert f"| {PHASE2_DEFAULT} | 3 | 0.700 | +0.100 [+0.100, +0.100] | — | 2.00 | — |" in tables(frame)


def test_machines_table_counts_records_and_names_blocks_measured_on_two_machines():
    frame = [r | {"phase": 1} for r in records("ce", [0.5, 0.5]) + records("cleanlab_kfold", [0.6, 0.6])]
    frame[0]["machine"], frame[2]["machine"] = "cpu A", "cpu B"  # one block, two named machines
    other = records("ce", [0.5])[0] | {"phase": 1, "dataset": "e", "machine": "cpu A"}
    text = "\n".join(machines_table(pd.DataFrame(frame + [other])))
    assert "| cpu A | 1 | 2 |" in text and "| cpu B | 1 | 1 |" in text
    assert f"| {UNNAMED_MACHINE} | 1 | 2 |" in text
    assert "(phase, dataset, noise, init): 1, d, 0.4, scratch." in text  # the block of "e" has one machine
    assert "No block" in "\n".join(machines_table(pd.DataFrame([other])))


def test_flags_on_the_sets_own_labels_get_their_table_and_stay_out_of_the_ranking_table():
    alarms = {"dataset": "d", "rate": 0.0, "seed": 0, "init": "ssl frozen", "variant": "label issues, false alarms",
              "budget": None, "pretrain_epochs": 50, "phase": 0, "flagged_knn_vote": 0.25,
              "flagged_cleanlab_kfold": 0.125, "flagged_any": 0.3, "flagged_any_rarest_class": 0.5,
              "suggestion_val_balanced_accuracy": 0.75}  # fmt: skip
    embeddings = (("simclr embeddings", 0.9), ("random initialisation embeddings", 0.8))
    ranking = [{"dataset": "d", "rate": 0.4, "seed": seed, "init": "ssl frozen", "variant": f"label issues, {name}",
                "budget": None, "pretrain_epochs": 50, "phase": 0, "auroc": auroc, "precision_at_n": 0.5}
               for seed in (0, 1) for name, auroc in embeddings]  # fmt: skip
    text = tables([alarms] + ranking)
    flags = text.split("## Flags on the sets' own labels")[1].split("##")[0]
    assert "| d | ssl frozen | 0.250 | 0.125 | 0.300 | 0.500 | 0.750 |" in flags
    issues = text.split("## The label-issue ranking")[1].split("##")[0]
    assert "| d | 0.4 | ssl frozen | simclr embeddings | 2 | 0.900 | +0.100 [+0.100, +0.100] | 0.500 |" in issues
    assert "| d | 0.0 |" not in issues and "false alarms" not in issues
