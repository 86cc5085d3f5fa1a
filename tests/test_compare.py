"""Aggregating a sweep (alr_core.report.compare, stages.compare) from `dvc exp show --json` output.

The inputs are built in the layout DVC 3 writes (checked against a real queue in
test_sweep_e2e.py): a list of commits, each with ``experiments``, a list of ranges with
``revs``, ``executor`` (state) and ``name``.
"""

from __future__ import annotations

import json
import math
import re
import sys

import numpy as np
import pandas as pd
import pytest
from builders import REPO_ROOT, run

from alr_core.common.errors import AlrError
from alr_core.report.compare import (COMMIT_KEY, CURVE_METRIC, Experiment, curves_figure, group_curves,
                                     markdown_report, parse_baseline, read_experiments, summary_table)


def lnl_metrics(test_ba: float) -> dict:
    return {"method": "coteaching_vog", "test": {"balanced_accuracy": test_ba, "macro_f1": test_ba - 0.1,
                                                  "accuracy": test_ba}}  # fmt: skip


def round_metrics(r: int, budget_used: int, test_ba: float) -> dict:
    return {"round": r, "budget_used": budget_used, "test": {"balanced_accuracy": test_ba, "macro_f1": test_ba - 0.1,
                                                             "accuracy": test_ba},
            "cleaning": {"label_accuracy": 0.5 + r / 10, "label_accuracy_before": 0.5}}  # fmt: skip


def report(curve: list[float], label_accuracy: float = 0.7) -> dict:
    return {"final_test_balanced_accuracy": curve[-1], "final_test_macro_f1": curve[-1] - 0.1,
            "final_label_accuracy": label_accuracy, "learning_curve_area": float(np.mean(curve)),
            "phase1_test_balanced_accuracy": curve[0]}  # fmt: skip


def experiment(name, seed, strategy="entropy", state="success", curve=(0.5, 0.6, 0.7), budget=10,
               metrics=True, error=None, **params) -> dict:  # fmt: skip
    """One experiment range as `dvc exp show --json` writes it (rounds spend budget/2 each)."""
    files = {}
    if metrics:
        files["metrics/lnl.json"] = {"data": lnl_metrics(curve[0])}
        for r in range(1, len(curve)):
            files[f"metrics/rounds/{r}.json"] = {"data": round_metrics(r, r * budget // 2, curve[r])}
        files["metrics/report.json"] = {"data": report(list(curve))}
    values = {"seed": seed, "budget": budget, "data": {"path": None, "image_size": 28},
              "al": {"strategy": strategy, "epochs": 2}, "rounds": {"1": {"prev": "data/lnl"}}}  # fmt: skip
    for group, overrides in params.items():
        values[group] = values.get(group, {}) | overrides
    rev = {"rev": name.ljust(40, "0"), "name": name, "error": error and {"msg": error, "type": ""},
           "data": {"rev": name, "params": {"params.yaml": {"data": values}}, "metrics": files}}  # fmt: skip
    return {"revs": [rev], "executor": {"state": state, "name": "dvc-task"}, "name": name}


def exp_show(*experiments) -> list:
    return [{"rev": "workspace", "name": None, "data": {}, "error": None, "experiments": None},
            {"rev": "a" * 40, "name": "main", "data": {}, "error": None, "experiments": list(experiments)}]  # fmt: skip


SWEEP = exp_show(
    experiment("e-r1", 1, "random", curve=(0.5, 0.55, 0.6)),
    experiment("e-e1", 1, "entropy", curve=(0.5, 0.7, 0.8)),
    experiment("e-r0", 0, "random", curve=(0.4, 0.45, 0.5)),
    experiment("e-e0", 0, "entropy", curve=(0.4, 0.6, 0.7)),
    experiment("e-broken", 0, state="failed", error="Experiment run failed", data={"image_size": 2}),
    experiment("e-waiting", 5, state="queued", metrics=False),
)


def test_states_of_every_experiment_are_read():
    experiments = {e.name: e for e in read_experiments(SWEEP)}
    assert {n: e.state for n, e in experiments.items()} == {
        "e-r1": "success", "e-e1": "success", "e-r0": "success", "e-e0": "success",
        "e-broken": "failed", "e-waiting": "queued",
    }  # fmt: skip
    finished = experiments["e-e1"]
    assert finished.params["al.strategy"] == "entropy" and finished.params["rounds.1.prev"] == "data/lnl"
    assert finished.curve["budget_used"].tolist() == [0, 5, 10]
    assert finished.curve["test_balanced_accuracy"].tolist() == [0.5, 0.7, 0.8]
    assert experiments["e-broken"].summary is None and experiments["e-broken"].error == "Experiment run failed"


def test_an_experiment_run_outside_the_queue_has_no_executor_and_counts_as_finished():
    plain = experiment("e-plain", 0)
    plain["executor"] = None
    (read,) = read_experiments(exp_show(plain))
    assert read.state == "success" and read.summary["final_test_balanced_accuracy"] == 0.7


def test_finished_without_a_report_is_incomplete():
    missing = experiment("e-half", 0)
    del missing["revs"][0]["data"]["metrics"]["metrics/report.json"]
    broken = experiment("e-bad", 1)
    broken["revs"][0]["data"]["metrics"]["metrics/rounds/2.json"] = {"error": {"msg": "unreadable"}}
    (half, bad) = read_experiments(exp_show(missing, broken))
    assert half.state == bad.state == "incomplete" and not half.finished
    assert "metrics/report.json" in half.error
    # dvc's own error for the run, where it gave one, is kept rather than said to be a missing file
    erred = experiment("e-erred", 2, error="Experiment run failed")
    del erred["revs"][0]["data"]["metrics"]["metrics/report.json"]
    (read,) = read_experiments(exp_show(erred))
    assert read.state == "incomplete" and read.error == "Experiment run failed"


def test_groups_by_every_parameter_but_the_seed():
    table = summary_table(read_experiments(SWEEP))
    assert table.columns[:3].tolist() == ["al.strategy", "n", "seeds"]  # only what varies is shown
    assert table["al.strategy"].tolist() == ["entropy", "random"]
    assert table["n"].tolist() == [2, 2] and table["seeds"].tolist() == ["0 1", "0 1"]
    entropy = table.iloc[0]
    assert entropy["final_test_balanced_accuracy_mean"] == pytest.approx(0.75)
    assert entropy["final_test_balanced_accuracy_std"] == pytest.approx(np.std([0.7, 0.8], ddof=1))
    assert entropy["learning_curve_area_mean"] == pytest.approx((1.7 / 3 + 2.0 / 3) / 2)  # mean of each curve, then of the seeds
    assert table.iloc[1]["final_label_accuracy_std"] == 0.0


def test_the_same_parameters_on_two_commits_are_two_groups():
    """dvc exp show --all-commits: experiments of two baseline commits (two versions of the code)
    with equal parameters are not replicates of one configuration; the commit column and the
    heading say so, and a single commit adds neither."""
    two_commits = exp_show(experiment("a", 0, curve=(0.5, 0.6, 0.9)), experiment("b", 1, curve=(0.5, 0.6, 0.7)))
    two_commits.append({"rev": "b" * 40, "name": None, "data": {}, "error": None,
                        "experiments": [experiment("c", 0, curve=(0.5, 0.6, 0.2))]})  # fmt: skip
    experiments = read_experiments(two_commits)
    table = summary_table(experiments)
    assert table[COMMIT_KEY].tolist() == ["aaaaaaa", "bbbbbbb"] and table["n"].tolist() == [2, 1]
    assert table["final_test_balanced_accuracy_mean"].tolist() == pytest.approx([0.8, 0.2])
    assert "except seed and data.split_seed, and by baseline commit)" in markdown_report(experiments)
    one_commit = summary_table(read_experiments(SWEEP))
    assert COMMIT_KEY not in one_commit and "and by baseline commit" not in markdown_report(read_experiments(SWEEP))
    # a queued experiment on another commit: one commit among the finished, and the list of what
    # was not aggregated gives what -S would set, not the commit
    queued_elsewhere = exp_show(experiment("a", 0), experiment("b", 1))
    queued_elsewhere.append({"rev": "c" * 40, "name": None, "data": {}, "error": None,
                             "experiments": [experiment("q", 2, state="queued", metrics=False)]})  # fmt: skip
    text = markdown_report(read_experiments(queued_elsewhere))
    assert "in 1 group (grouped by every parameter except seed and data.split_seed);" in text
    assert "| q            | queued  | seed=2   |" in text and "baseline commit=" not in text


def test_a_run_repeated_with_the_same_seed_is_listed_not_counted_as_a_replicate():
    """`dvc exp run` twice, or a sweep queued twice: the older run of the same parameters and
    seeds on the same commit is a repeat (the newest, listed first, counts), not a replicate
    whose equal numbers would shrink the spread; other results mean the code or data differed."""
    sweep = exp_show(experiment("new-0", 0, curve=(0.5, 0.6, 0.7)), experiment("new-1", 1, curve=(0.5, 0.6, 0.9)),
                     experiment("old-0", 0, curve=(0.5, 0.6, 0.7)), experiment("old-1", 1, curve=(0.5, 0.6, 0.1)),
                     experiment("old-2", 2, state="failed", metrics=False, error="Experiment run failed"))  # fmt: skip
    experiments = read_experiments(sweep)
    assert {e.name: e.repeat_of for e in experiments} == {"new-0": None, "new-1": None, "old-0": "new-0",
                                                          "old-1": "new-1", "old-2": None}  # fmt: skip
    (row,) = summary_table(experiments).to_dict("records")
    assert row["n"] == 2 and row["seeds"] == "0 1"
    assert row["final_test_balanced_accuracy_mean"] == pytest.approx(0.8)
    assert row["final_test_balanced_accuracy_std"] == pytest.approx(np.std([0.7, 0.9], ddof=1))
    text = markdown_report(experiments)
    assert text.startswith("4 of 5 experiments finished (2 of them repeats, not counted), in 1 group")
    lines = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| old-")}
    assert "| repeat " in lines["old-0"] and "a repeat of new-0 (the same parameters and seeds)" in lines["old-0"]
    assert "with other results" not in lines["old-0"] and "with other results" in lines["old-1"]
    assert "| failed " in lines["old-2"] and "seed=2" in lines["old-2"]
    (label, curve), = group_curves(experiments)
    assert curve["n"].tolist() == [2, 2, 2]


def test_a_parameter_an_older_commits_params_lack_reads_unset_not_nan():
    # lnl.clean_recall did not exist on commit b: its run took the default, which "nan" would hide
    commits = exp_show(experiment("a", 0, lnl={"clean_recall": 0.8}))
    commits.append({"rev": "b" * 40, "name": None, "data": {}, "error": None, "experiments": [experiment("c", 0)]})
    text = markdown_report(read_experiments(commits))
    rows = {line.split("|")[1].strip(): [cell.strip() for cell in line.strip("|").split("|")]
            for line in text.splitlines() if line.startswith("| aaaaaaa") or line.startswith("| bbbbbbb")}
    header = [cell.strip() for cell in next(line for line in text.splitlines() if "lnl.clean_recall" in line)
              .strip("|").split("|")]  # fmt: skip
    column = header.index("lnl.clean_recall")
    assert (rows["aaaaaaa"][column], rows["bbbbbbb"][column]) == ("0.8", "unset") and "nan" not in text


def test_a_parameter_other_than_the_strategy_splits_groups_too():
    sweep = exp_show(experiment("a", 0, lnl={"epochs": 2}), experiment("b", 1, lnl={"epochs": 2}),
                     experiment("c", 0, lnl={"epochs": 4}))  # fmt: skip
    table = summary_table(read_experiments(sweep))
    assert table["lnl.epochs"].tolist() == [2, 4] and table["n"].tolist() == [2, 1]
    assert math.isnan(table.iloc[1]["final_test_balanced_accuracy_std"])  # one replicate: no spread


def test_mean_curve_and_band_per_group():
    (entropy_label, entropy), (random_label, _) = group_curves(read_experiments(SWEEP))
    assert (entropy_label, random_label) == ("al.strategy=entropy", "al.strategy=random")
    assert entropy["budget_used"].tolist() == [0, 5, 10] and entropy["n"].tolist() == [2, 2, 2]
    np.testing.assert_allclose(entropy["mean"], [0.45, 0.65, 0.75])
    np.testing.assert_allclose(entropy["std"], np.std([[0.4, 0.6, 0.7], [0.5, 0.7, 0.8]], axis=0, ddof=1))


def test_mean_curve_n_counts_only_the_replicates_that_report_the_metric():
    # seed 1 has no test balanced accuracy in round 1 (NaN): the mean is seed 0's, over n = 1
    def finished(seed, values):
        curve = pd.DataFrame({"round": [0, 1], "budget_used": [0, 5], CURVE_METRIC: values})
        return Experiment(f"e{seed}", f"e{seed}", "success", {"seed": seed, COMMIT_KEY: "a" * 40}, curve=curve)

    (_label, curve), = group_curves([finished(0, [0.5, 0.7]), finished(1, [0.4, math.nan])])
    assert curve["n"].tolist() == [2, 1]
    np.testing.assert_allclose(curve["mean"], [0.45, 0.7])



def test_mean_curve_is_the_mean_not_the_median_of_three_seeds():
    sweep = exp_show(*[experiment(f"e{seed}", seed, curve=(0.4, 0.5, last))
                       for seed, last in ((0, 0.6), (1, 0.6), (2, 0.9))])  # fmt: skip
    (_label, curve), = group_curves(read_experiments(sweep))
    assert curve["n"].tolist() == [3, 3, 3]
    np.testing.assert_allclose(curve["mean"], [0.4, 0.5, 0.7])  # the median of the last round would be 0.6


def test_curves_legend_counts_the_replicates_of_the_round_with_fewest():
    # seed 1 has no test balanced accuracy in round 1: the legend says n=1, not the 2 of round 0
    def finished(seed, values):
        curve = pd.DataFrame({"round": [0, 1], "budget_used": [0, 5], CURVE_METRIC: values})
        return Experiment(f"e{seed}", f"e{seed}", "success", {"seed": seed, COMMIT_KEY: "a" * 40}, curve=curve)

    figure = curves_figure([finished(0, [0.5, 0.7]), finished(1, [0.4, math.nan])])
    assert [text.get_text() for text in figure.axes[0].get_legend().get_texts()] == ["all experiments (n=1)"]


def test_numbers_sort_as_numbers_not_as_text():
    # budget 20 before 100, and seed 2 before seed 10 (as text, "100" < "20" and "10" < "2")
    sweep = exp_show(experiment("a", 10, budget=100), experiment("b", 2, budget=100), experiment("c", 10, budget=20),
                     experiment("d", 2, budget=20))  # fmt: skip
    table = summary_table(read_experiments(sweep))
    assert table["budget"].tolist() == [20, 100] and table["seeds"].tolist() == ["2 10", "2 10"]


def test_a_list_parameter_groups_like_any_other():
    # params.yaml holds lists (noise.keep_clean_classes): they must group and tell groups apart
    sweep = exp_show(experiment("a", 0, noise={"keep_clean_classes": [0]}),
                     experiment("b", 1, noise={"keep_clean_classes": [0]}),
                     experiment("c", 0, noise={"keep_clean_classes": [1, 2]}))  # fmt: skip
    table = summary_table(read_experiments(sweep))
    assert table["noise.keep_clean_classes"].tolist() == [(0,), (1, 2)] and table["n"].tolist() == [2, 1]


def test_a_finished_run_queued_again_still_counts_until_the_new_one_finishes():
    # the newer run of the same parameters and seed is only queued (or failed): the finished one
    # is no repeat of it and stays in the table; the queued one is listed as queued
    sweep = exp_show(experiment("again", 0, state="queued", metrics=False),
                     experiment("broken", 0, state="failed", error="Experiment run failed"),
                     experiment("first", 0, curve=(0.5, 0.6, 0.8)))  # fmt: skip
    experiments = read_experiments(sweep)
    assert {e.name: e.repeat_of for e in experiments} == {"again": None, "broken": None, "first": None}
    (row,) = summary_table(experiments).to_dict("records")
    assert row["n"] == 1 and row["final_test_balanced_accuracy_mean"] == pytest.approx(0.8)
    lines = {line.split("|")[1].strip(): line for line in markdown_report(experiments).splitlines()
             if line.startswith("| again") or line.startswith("| broken")}  # fmt: skip
    assert "| queued " in lines["again"] and "| failed " in lines["broken"]


def test_curves_band_spans_one_std_either_side_of_the_mean():
    figure = curves_figure(read_experiments(SWEEP))
    entropy_band = figure.axes[0].collections[0].get_paths()[0].vertices
    at_phase1 = entropy_band[np.isclose(entropy_band[:, 0], 0.0), 1]  # seeds 0.4 and 0.5 at budget 0
    spread = np.std([0.4, 0.5], ddof=1)
    assert at_phase1.min() == pytest.approx(0.45 - spread) and at_phase1.max() == pytest.approx(0.45 + spread)


def test_a_metric_no_replicate_reports_reads_as_a_dash():
    # unknown truth: every report.json has final_label_accuracy None
    sweep = exp_show(experiment("a", 0), experiment("b", 1))
    for exp_range in sweep[1]["experiments"]:
        exp_range["revs"][0]["data"]["metrics"]["metrics/report.json"]["data"]["final_label_accuracy"] = None
    experiments = read_experiments(sweep)
    (row,) = summary_table(experiments).to_dict("records")
    assert row["final_label_accuracy_n"] == 0 and math.isnan(row["final_label_accuracy_mean"])
    lines = markdown_report(experiments).splitlines()
    def cells(line: str) -> list[str]:
        return [cell.strip() for cell in line.strip("|").split("|")]

    header = cells(next(line for line in lines if "final label accuracy" in line))
    row_cells = cells(next(line for line in lines if line.startswith("|   2 |")))
    assert row_cells[header.index("final label accuracy")] == "—" and "nan" not in "\n".join(lines)

def test_markdown_lists_what_was_not_aggregated():
    text = markdown_report(read_experiments(SWEEP))
    assert text.startswith("4 of 6 experiments finished, in 2 groups")
    assert "| entropy       |   2 | 0 1     | 0.750 ± 0.071" in text
    lines = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| e-")}
    assert "failed" in lines["e-broken"] and "data.image_size=2" in lines["e-broken"]
    assert "data.path" not in text  # None everywhere: not a difference
    assert "Experiment run failed" in lines["e-broken"]
    assert "queued" in lines["e-waiting"] and "seed=5" in lines["e-waiting"]


def test_an_unfinished_experiment_shows_every_varying_parameter_even_the_most_common_values():
    # a balanced grid: every value is as common as any other, and the failed run holding the
    # values seen first used to show no parameters at all
    grid = [experiment(f"{strategy}-{seed}", seed, strategy) for strategy in ("random", "entropy") for seed in (0, 1)]
    grid[0] = experiment("random-0", 0, "random", state="failed", error="Experiment run failed")
    lines = [line for line in markdown_report(read_experiments(exp_show(*grid))).splitlines()
             if line.startswith("| random-0")]  # fmt: skip
    assert len(lines) == 1 and "al.strategy=random seed=0" in lines[0]


def test_split_seeds_are_replicates_too():
    # docs/experiments.md: sweep data.split_seed to include the split's variance in the spread
    sweep = exp_show(*[experiment(f"s{seed}-{split}", seed, data={"split_seed": split}, curve=(0.5, 0.6, value))
                       for seed, split, value in ((0, 0, 0.7), (1, 0, 0.8), (0, 1, 0.6), (1, 1, 0.9))])  # fmt: skip
    (row,) = summary_table(read_experiments(sweep)).to_dict("records")
    assert row["n"] == 4 and row["seeds"] == "0/0 0/1 1/0 1/1"  # seed/split where the splits differ
    assert row["final_test_balanced_accuracy_std"] == pytest.approx(np.std([0.7, 0.8, 0.6, 0.9], ddof=1))


def test_a_metric_some_replicates_lack_is_averaged_over_the_others_and_says_over_how_many():
    older = experiment("old", 2, curve=(0.5, 0.6, 0.4))
    del older["revs"][0]["data"]["metrics"]["metrics/report.json"]["data"]["phase1_test_balanced_accuracy"]
    experiments = read_experiments(exp_show(experiment("a", 0, curve=(0.3, 0.6, 0.7)),
                                            experiment("b", 1, curve=(0.5, 0.6, 0.9)), older))  # fmt: skip
    (row,) = summary_table(experiments).to_dict("records")
    assert row["n"] == 3 and row["phase1_test_balanced_accuracy_n"] == 2
    assert row["phase1_test_balanced_accuracy_mean"] == pytest.approx(0.4)
    assert row["final_test_balanced_accuracy_n"] == 3
    line = next(line for line in markdown_report(experiments).splitlines() if line.startswith("|   3 |"))
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    assert cells[2] == "0.667 ± 0.252" and cells[-1] == "0.400 ± 0.141 (n=2)"


T_975_DF2 = 4.302652729911275  # the 97.5th percentile of Student's t with 2 degrees of freedom


def paired_sweep() -> list:
    """random and entropy at budgets 10 and 20, seeds 0-2 (entropy at 20 lacks seed 0), and
    entropy at budget 30, which has no random group: final test balanced accuracies by hand."""
    finals = {("random", 10): (0.60, 0.62, 0.58), ("entropy", 10): (0.61, 0.66, 0.64),
              ("random", 20): (0.70, 0.70, 0.72), ("entropy", 20): (None, 0.75, 0.73), ("entropy", 30): (0.9,)}
    return exp_show(*[experiment(f"{s}{b}-{seed}", seed, s, budget=b, curve=(0.5, 0.55, final))
                      for (s, b), values in finals.items() for seed, final in enumerate(values)
                      if final is not None])  # fmt: skip


def test_paired_differences_by_seed_with_a_t_interval():
    """Each group minus the random group of its own budget, seed by seed: at 10 the differences
    are +0.01, +0.04, +0.06 (mean ± t · sd / √3); at 20 only seeds 1 and 2 pair; at 30 there is
    no random group."""
    table = summary_table(read_experiments(paired_sweep()), parse_baseline(["al.strategy=random"]))
    rows = {(r["al.strategy"], r["budget"]): r for r in table.to_dict("records")}
    assert [key for key, r in rows.items() if r["baseline"]] == [("random", 10), ("random", 20)]
    at_10 = rows["entropy", 10]
    diffs = np.array([0.01, 0.04, 0.06])
    half = T_975_DF2 * diffs.std(ddof=1) / math.sqrt(3)
    assert at_10["pairs"] == 3 and at_10["final_test_balanced_accuracy_pairs"] == 3
    assert at_10["final_test_balanced_accuracy_diff"] == pytest.approx(diffs.mean())
    assert at_10["final_test_balanced_accuracy_diff_low"] == pytest.approx(diffs.mean() - half)
    assert at_10["final_test_balanced_accuracy_diff_high"] == pytest.approx(diffs.mean() + half)
    assert at_10["phase1_test_balanced_accuracy_diff"] == pytest.approx(0.0)
    at_20 = rows["entropy", 20]  # seeds 1 and 2: +0.05 and +0.01 (not paired by position: 0.75 − 0.70 first)
    assert at_20["pairs"] == 2 and at_20["final_test_balanced_accuracy_diff"] == pytest.approx(0.03)
    assert at_20["final_test_balanced_accuracy_diff_high"] - 0.03 == pytest.approx(12.706204736 * 0.04 / 2)
    at_30 = rows["entropy", 30]
    assert at_30["pairs"] == 0 and math.isnan(at_30["final_test_balanced_accuracy_diff"])
    assert all(math.isnan(rows[key]["final_test_balanced_accuracy_diff"]) for key in (("random", 10), ("random", 20)))


def test_paired_section_of_the_markdown():
    text = markdown_report(read_experiments(paired_sweep()), parse_baseline(["al.strategy=random"]))
    paired = text.split("Paired with the baseline al.strategy=random: each group minus")[1]
    lines = [line for line in paired.splitlines() if line.startswith("| entropy")]
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    assert [row[:4] for row in cells] == [["entropy", "10", "3", "+0.037 [-0.026, +0.099]"],
                                          ["entropy", "20", "2", "+0.030 [-0.224, +0.284]"],
                                          ["entropy", "30", "0", "—"]]  # fmt: skip
    assert "| random" not in paired.split("Not aggregated")[0]  # baselines are not paired with themselves
    one_pair = exp_show(experiment("r", 0, "random", curve=(0.5, 0.6, 0.6)),
                        experiment("e", 0, "entropy", curve=(0.5, 0.6, 0.7)))  # fmt: skip
    assert "| entropy       |       1 | +0.100 (1 pair)" in markdown_report(read_experiments(one_pair),
                                                                           parse_baseline(["al.strategy=random"]))


def test_a_baseline_of_another_commit_pairs_two_versions_of_the_code():
    two_commits = exp_show(experiment("a0", 0, curve=(0.5, 0.6, 0.7)), experiment("a1", 1, curve=(0.5, 0.6, 0.8)))
    two_commits.append({"rev": "b" * 40, "name": None, "data": {}, "error": None,
                        "experiments": [experiment("b0", 0, curve=(0.5, 0.6, 0.75)),
                                        experiment("b1", 1, curve=(0.5, 0.6, 0.75))]})  # fmt: skip
    table = summary_table(read_experiments(two_commits), parse_baseline([f"{COMMIT_KEY}=aaaaaaa"]))
    (row,) = table[~table["baseline"]].to_dict("records")
    assert row[COMMIT_KEY] == "bbbbbbb" and row["pairs"] == 2
    assert row["final_test_balanced_accuracy_diff"] == pytest.approx(0.0)  # +0.05 and −0.05


@pytest.mark.parametrize("selectors, message", [
    (["al.strategy"], "--baseline 'al.strategy': expected KEY=VALUE, e.g. --baseline al.strategy=random"),
    (["al.strategi=random"], "--baseline: no finished experiment has the parameter 'al.strategi' (did you mean "
                             "'al.strategy'?); keys are dotted params.yaml paths such as al.strategy"),
    (["al.strategy=bald", "budget=10"],
     "--baseline al.strategy=bald budget=10: no group of finished experiments has these values (they hold "
     "al.strategy: entropy, random; budget: 10, 20, 30)"),
])  # fmt: skip
def test_a_baseline_no_group_matches_is_an_error(selectors, message):
    with pytest.raises(AlrError) as info:
        summary_table(read_experiments(paired_sweep()), parse_baseline(selectors))
    assert str(info.value) == message


@pytest.mark.parametrize("selectors, message", [
    (["seed=1"], "--baseline 'seed=1': seed and data.split_seed are the replicates that are paired, not a baseline"),
    (["al.strategy=random", "al.strategy=entropy"], "--baseline names 'al.strategy' twice; give each key once"),
    (["al.strategy=random,entropy"], "--baseline 'al.strategy=random,entropy': one value per key"),
    (["al.strategy=[0,"], "--baseline 'al.strategy=[0,': cannot read the value"),
])  # fmt: skip
def test_a_baseline_that_names_no_single_group_is_refused(selectors, message):
    with pytest.raises(AlrError, match="^" + re.escape(message)):
        parse_baseline(selectors)


def test_a_group_pairs_only_with_the_group_equal_to_it_in_every_other_parameter():
    """random ran a third round (+rounds.2) that entropy did not: not entropy's baseline, however the
    target is built (nor the other way round)."""
    sweep = exp_show(*[experiment(f"e{k}", k, "entropy") for k in (0, 1)],
                     *[experiment(f"r{k}", k, "random", rounds={"2": {"prev": "data/rounds/1"}}) for k in (0, 1)])
    for baseline in ("al.strategy=random", "al.strategy=entropy"):
        table = summary_table(read_experiments(sweep), parse_baseline([baseline]))
        assert table["pairs"].tolist() == [0, 0] and table["final_test_balanced_accuracy_diff"].isna().all()


def test_a_baseline_before_anything_finished_reports_the_queue():
    queued = read_experiments(exp_show(experiment("w0", 0, state="queued", metrics=False),
                                       experiment("w1", 1, state="queued", metrics=False)))  # fmt: skip
    text = markdown_report(queued, parse_baseline(["al.strategy=random"]))
    assert text.startswith("0 of 2 experiments finished, in 0 groups") and "Paired with" not in text


def test_baseline_values_are_read_as_dvc_reads_them():
    """Hydra's override grammar, as `dvc exp run -S` (not YAML 1.1: 1e-3 is a number, yes and 0123 text)."""
    assert parse_baseline(["budget=100", "al.pool=all", "noise.keep_clean_classes=[0, 2]", "model.init=null",
                           "train.lr=1e-3", "x=yes", "y=0123", "z=true", f"{COMMIT_KEY}=0123456"]) == {
        "budget": 100, "al.pool": "all", "noise.keep_clean_classes": (0, 2), "model.init": None, "train.lr": 0.001,
        "x": "yes", "y": "0123", "z": True, COMMIT_KEY: "0123456"}  # fmt: skip
    lrs = exp_show(*[experiment(f"{s}{lr}-{seed}", seed, s, train={"lr": lr}, curve=(0.5, 0.6, 0.6 + lr * 100))
                     for s in ("random", "entropy") for lr in (0.001, 0.0001) for seed in (0, 1)])  # fmt: skip
    table = summary_table(read_experiments(lrs), parse_baseline(["train.lr=1e-3", "al.strategy=random"]))
    assert table["baseline"].tolist() == [False, False, False, True] and table["pairs"].tolist() == [2, 2, 2, 0]
    table = summary_table(read_experiments(paired_sweep()), parse_baseline(["budget=10", "al.strategy=random"]))
    assert table["baseline"].tolist() == [False, False, False, True, False]
    # every group of SWEEP has budget 10: each is a baseline, none is paired
    text = markdown_report(read_experiments(SWEEP), parse_baseline(["budget=10"]))
    assert text.split("do not explain.\n\n")[1].startswith("Every group is a baseline group: nothing to pair.\n")


def test_nothing_finished_yet_lists_without_a_table():
    text = markdown_report(read_experiments(exp_show(experiment("w", 0, state="queued", metrics=False))))
    assert text.startswith("0 of 1 experiments finished, in 0 groups") and "| w " in text


def test_not_a_list_is_a_clear_error():
    with pytest.raises(AlrError, match=r"exps.json: expected a JSON list of commits"):
        read_experiments({"workspace": {}}, source="exps.json")


# ----------------------------------------------------------------------------- the command


def compare(tmp_path, *args):
    return run([sys.executable, "-m", "stages.compare", *args, "--markdown", str(tmp_path / "c.md"),
                "--csv", str(tmp_path / "c.csv"), "--figure", str(tmp_path / "c.png")], cwd=REPO_ROOT)  # fmt: skip


def test_command_writes_table_csv_and_figure(tmp_path):
    (tmp_path / "exps.json").write_text(json.dumps(SWEEP))
    result = compare(tmp_path, "--exp-show", str(tmp_path / "exps.json"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (tmp_path / "c.md").read_text().strip()
    table = pd.read_csv(tmp_path / "c.csv")
    assert table["al.strategy"].tolist() == ["entropy", "random"]
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a later sweep with nothing finished leaves no earlier sweep's curves beside its table
    (tmp_path / "queued.json").write_text(json.dumps(exp_show(experiment("w", 0, state="queued", metrics=False))))
    result = compare(tmp_path, "--exp-show", str(tmp_path / "queued.json"))
    assert result.returncode == 0, result.stderr
    assert "0 of 1 experiments finished" in (tmp_path / "c.md").read_text() and not (tmp_path / "c.png").exists()


def test_command_with_a_baseline_writes_the_paired_columns(tmp_path):
    (tmp_path / "exps.json").write_text(json.dumps(SWEEP))
    result = compare(tmp_path, "--exp-show", str(tmp_path / "exps.json"), "--baseline", "al.strategy=random")
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(tmp_path / "c.csv")
    assert table["baseline"].tolist() == [False, True] and table["pairs"].tolist() == [2, 0]
    assert table["final_test_balanced_accuracy_diff"].iloc[0] == pytest.approx(0.2)
    assert "+0.200 [+0.200, +0.200]" in (tmp_path / "c.md").read_text()
    result = compare(tmp_path / "none", "--exp-show", str(tmp_path / "exps.json"), "--baseline", "al.strategy=bald")
    assert result.returncode == 1 and "--baseline al.strategy=bald: no group of finished experiments" in result.stderr
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize("content, message", [
    ("not json", "exps.json: cannot read as JSON"),
    (json.dumps(exp_show()), "exps.json: no experiments; run a sweep first"),
])  # fmt: skip
def test_command_bad_input_writes_nothing(tmp_path, content, message):
    (tmp_path / "exps.json").write_text(content)
    result = compare(tmp_path, "--exp-show", str(tmp_path / "exps.json"))
    assert result.returncode == 1 and message in result.stderr
    assert not any(tmp_path.glob("c.*"))
