"""The report (alr_core.report.summary, alr_core.report.outputs, stages/report.py) and the summary
(alr_core.report.overview, stages/summary.py) on hand-made phase-1 and round metrics."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from builders import rounds_param, run, write_params

from alr_core.active.labels import apply_answers, initial_working_labels, mark_skipped
from alr_core.common import artifacts, paths
from alr_core.common.params import default_params
from alr_core.common.errors import AlrError
from alr_core.report.final_labels import labels_summary, labels_table
from alr_core.report.outputs import report_status, status_note, write_report
from alr_core.report.overview import NO_RESULTS, labels_text, no_results_text, overview_text, results_overview
from alr_core.report.summary import (
    class_recall_figure,
    confusion_figure,
    learning_curve_figure,
    rounds_table,
    summary,
    table_text,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
save_figure = artifacts.write_figure  # the real writer, for tests that record figures on the way
CLASSES = ["a", "b", "c"]
CONFUSION = [[5, 0, 1], [1, 4, 1], [0, 2, 4]]
HEADER = ("round,budget_used,test_balanced_accuracy,test_macro_f1,test_accuracy,label_accuracy,"
          "test_worst_class_recall,cleaning_efficiency,model_kept")


def lnl_metrics(test=True, truth=True) -> dict:
    selection = {"kept_share": 0.75, "kept_share_per_class": {"a": 0.8, "b": 0.6, "c": 0.9}, "recall": None,
                 "recall_per_class": None, "worst_class_recall": None}  # fmt: skip
    if truth:
        selection |= {"recall": 0.8, "recall_per_class": {"a": 0.9, "b": 0.7, "c": None}, "worst_class_recall": 0.7}
    return {
        "method": "coteaching_vog",
        "test": {"balanced_accuracy": 0.6, "macro_f1": 0.55, "accuracy": 0.62, "confusion_matrix": CONFUSION,
                 "recall_per_class": {"a": 0.9, "b": 0.4, "c": 0.5}} if test else None,
        "selection": selection,
    }  # fmt: skip


def round_metrics(truth=True, test=True) -> list[dict]:
    def one(number, used, ba, f1, acc, worst, before, after, fixed, expected, kept, predicted, in_c):
        return {
            "round": number,
            "kept_previous": kept,
            "strategy": "margin",
            "budget_round": used - (0 if number == 1 else 2),
            "budget_used": used,
            "paper_protocol": False,
            "test": {"balanced_accuracy": ba, "macro_f1": f1, "accuracy": acc, "confusion_matrix": CONFUSION,
                     "recall_per_class": {"a": 0.9, "b": worst, "c": None}} if test else None,  # c: no test sample
            "cleaning": {"label_accuracy": after, "label_accuracy_before": before, "fixed_by_queries": fixed,
                         "random_expected_fixes": expected, "cleaning_efficiency": fixed / expected,
                         "best_possible_fixes": used - (0 if number == 1 else 2),  # the wrong ones outnumber queries
                         "fixed_already_predicted": predicted, "fixed_in_trusted": in_c}
            if truth else {},
        }  # fmt: skip

    # budgets 2 then 4: the budget axis is unevenly spaced (0, 2, 6)
    # round 2 handed on round 1's model in the stage's terms; the scores here need not agree
    # of the 3 fixes, 2 the model already predicted (round 1) and 1 inside C (round 2)
    return [one(1, 2, 0.7, 0.65, 0.71, 0.6, 0.5, 0.75, 2, 0.5, False, 2, 0),
            one(2, 6, 0.8, 0.75, 0.82, 0.7, 0.75, 0.875, 1, 1.0, True, 0, 1)]


def csv_text(table: pd.DataFrame, tmp_path) -> str:
    path = tmp_path / "rounds.csv"
    artifacts.write_csv(path, table)
    return path.read_text()


def test_rounds_table_csv(tmp_path):
    table = rounds_table(lnl_metrics(), round_metrics())
    assert csv_text(table, tmp_path).splitlines() == [
        HEADER,
        "0,0,0.6,0.55,0.62,0.5,0.4,,",  # round 0 = phase 1; its label accuracy = round 1's "before"
        "1,2,0.7,0.65,0.71,0.75,0.6,4.0,False",  # worst recall: class c has none
        "2,6,0.8,0.75,0.82,0.875,0.7,1.0,True",
    ]


def test_rounds_table_before_any_round_takes_label_accuracy_from_the_noise():
    table = rounds_table(lnl_metrics(), [], {"realised_rate": 0.25})
    assert table.to_dict("records") == [{
        "round": 0, "budget_used": 0, "test_balanced_accuracy": 0.6, "test_macro_f1": 0.55, "test_accuracy": 0.62,
        "label_accuracy": 0.75, "test_worst_class_recall": 0.4, "cleaning_efficiency": None, "model_kept": None,
    }]  # fmt: skip
    assert pd.isna(rounds_table(lnl_metrics(), [], {"type": "none"})["label_accuracy"][0])  # truth unknown


def test_rounds_table_unknown_truth_leaves_label_accuracy_empty(tmp_path):
    table = rounds_table(lnl_metrics(truth=False), round_metrics(truth=False))
    assert csv_text(table, tmp_path).splitlines()[1:] == [
        "0,0,0.6,0.55,0.62,,0.4,,", "1,2,0.7,0.65,0.71,,0.6,,False", "2,6,0.8,0.75,0.82,,0.7,,True"
    ]


def test_summary_values():
    lnl, rounds = lnl_metrics(), round_metrics()
    result = summary(rounds_table(lnl, rounds), lnl, rounds)
    # trapezoids over budget 0, 2, 6 divided by the budget span 6: (2·0.65 + 4·0.75) / 6
    area = (2 * (0.6 + 0.7) / 2 + 4 * (0.7 + 0.8) / 2) / 6
    assert area == pytest.approx(0.716666667)
    assert result == {
        "rounds": 2,
        "budget_used": 6,
        "strategy": "margin",
        "paper_protocol": False,
        "phase1_method": "coteaching_vog",
        "phase1_test_balanced_accuracy": 0.6,
        "final_test_balanced_accuracy": 0.8,
        "final_test_macro_f1": 0.75,
        "final_label_accuracy": 0.875,
        "learning_curve_area": pytest.approx(area, abs=1e-12),
        "cleaning_efficiency": (2 + 1) / (0.5 + 1.0),  # over both rounds, not the mean of 4 and 1
        "cleaning_efficiency_ceiling": (2 + 4) / (0.5 + 1.0),  # every query a fix
        "fixes_already_predicted": 2 / 3,
        "fixes_in_trusted": 1 / 3,
        "phase1_selection_worst_class_recall": 0.7,
        "phase1_safety_net": None,
    }
    json.dumps(result, allow_nan=False)  # what the stage writes
    # plain CE with a feature rule is named after its rule, not as the safety net's plain CE
    feature = lnl | {"method": "ce", "selection_rule": "cleanlab_kfold"}
    assert summary(rounds_table(feature, rounds), feature, rounds)["phase1_method"] == "ce + cleanlab_kfold"


def test_summary_fix_shares_need_every_round_counted():
    lnl, rounds = lnl_metrics(), round_metrics()
    del rounds[0]["cleaning"]["fixed_already_predicted"]  # a round written before the count existed
    result = summary(rounds_table(lnl, rounds), lnl, rounds)
    assert result["fixes_already_predicted"] is None and result["fixes_in_trusted"] == 1 / 3
    for metrics in rounds:
        metrics["cleaning"]["fixed_by_queries"] = 0
    assert summary(rounds_table(lnl, rounds), lnl, rounds)["fixes_in_trusted"] is None  # no fix: no share


def test_summary_ceiling_needs_every_round_counted():
    lnl, rounds = lnl_metrics(), round_metrics()
    del rounds[1]["cleaning"]["best_possible_fixes"]  # a round written before the ceiling existed
    assert summary(rounds_table(lnl, rounds), lnl, rounds)["cleaning_efficiency_ceiling"] is None
    text = overview_text(lnl, rounds, None, report_status(2))
    assert "over the rounds above: cleaning efficiency 2.00, learning-curve area 0.717" in text.splitlines()


def test_summary_equal_spacing_is_the_mean_of_the_trapezoids():
    lnl = lnl_metrics()
    rounds = round_metrics()
    rounds[1]["budget_used"] = 4  # budget 0, 2, 4
    result = summary(rounds_table(lnl, rounds), lnl, rounds)
    assert result["learning_curve_area"] == pytest.approx((0.6 / 2 + 0.7 + 0.8 / 2) / 2)


def test_summary_budget_zero_is_the_final_score():
    lnl = lnl_metrics()
    rounds = round_metrics()
    for metrics in rounds:
        metrics["budget_used"] = 0
    result = summary(rounds_table(lnl, rounds), lnl, rounds)
    assert result["budget_used"] == 0
    assert result["learning_curve_area"] == 0.8


def test_summary_unknown_truth():
    lnl, rounds = lnl_metrics(truth=False), round_metrics(truth=False)
    result = summary(rounds_table(lnl, rounds), lnl, rounds)
    assert result["final_label_accuracy"] is None
    assert result["phase1_selection_worst_class_recall"] is None
    assert result["cleaning_efficiency"] is None
    assert result["fixes_already_predicted"] is None and result["fixes_in_trusted"] is None
    assert result["final_test_balanced_accuracy"] == 0.8
    json.dumps(result, allow_nan=False)


def test_summary_without_a_test_split():
    lnl, rounds = lnl_metrics(test=False), round_metrics(test=False)
    table = rounds_table(lnl, rounds)
    assert table["test_balanced_accuracy"].isna().all()
    result = summary(table, lnl, rounds)
    assert result["learning_curve_area"] is None
    assert result["final_test_balanced_accuracy"] is None and result["phase1_test_balanced_accuracy"] is None
    assert result["final_label_accuracy"] == 0.875
    json.dumps(result, allow_nan=False)


def png_bytes(figure) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


@pytest.mark.parametrize("make", [
    lambda: learning_curve_figure(rounds_table(lnl_metrics(), round_metrics())),
    lambda: learning_curve_figure(rounds_table(lnl_metrics(test=False), round_metrics(truth=False, test=False))),
    lambda: class_recall_figure(lnl_metrics()),
    lambda: class_recall_figure(lnl_metrics(truth=False)),
    lambda: confusion_figure(CONFUSION, CLASSES, "final"),
    lambda: confusion_figure(None, CLASSES, "final"),
], ids=["curve", "curve-empty", "recall", "recall-unknown", "confusion", "confusion-none"])  # fmt: skip
def test_figures_render_as_png(make, tmp_path):
    figure = make()
    assert hasattr(figure, "savefig")
    assert png_bytes(figure).startswith(PNG_SIGNATURE)


@pytest.mark.parametrize("truth, heights, overall, title", [
    (True, [0.9, 0.7], 0.8, "clean-selection recall per class"),
    (False, [0.8, 0.6, 0.9], 0.75, "labels kept per class (true labels unknown)"),
])  # fmt: skip
def test_class_recall_figure_shows_the_recall_or_without_the_truth_the_kept_shares(truth, heights, overall, title):
    figure = class_recall_figure(lnl_metrics(truth=truth))
    (axis,) = figure.axes
    bars = [patch.get_height() for patch in axis.patches]
    assert [h for h in bars if not np.isnan(h)] == heights  # class c has no clean sample: no recall bar
    assert [line.get_ydata()[0] for line in axis.get_lines()] == [overall]
    assert axis.get_title() == f"Phase 1 (coteaching_vog): {title}"
    png_bytes(figure)
    # plain CE on a feature rule's C is named with its rule, as the stage's output and summary name it
    ce = lnl_metrics(truth=truth) | {"method": "ce", "selection_rule": "cleanlab_kfold"}
    assert class_recall_figure(ce).axes[0].get_title() == f"Phase 1 (ce + cleanlab_kfold): {title}"


def test_class_recall_figure_keeps_a_class_without_a_value_and_room_for_many_names():
    # class c has no clean sample: its NaN bar dropped its tick, and the class vanished from the figure
    (axis,) = class_recall_figure(lnl_metrics()).axes
    assert [tick.get_text() for tick in axis.get_xticklabels()] == ["a", "b", "c"] and axis.get_xlim()[1] > 2
    assert "n/a" in [text.get_text() for text in axis.texts]
    many = lnl_metrics()
    many["selection"]["recall_per_class"] = {f"Seborrhoeic keratosis type {k}": 0.5 for k in range(25)}
    figure = class_recall_figure(many)
    assert figure.get_size_inches()[0] > 6.4  # 25 long names had 6.4 inches, overlapping
    assert {tick.get_ha() for tick in figure.axes[0].get_xticklabels()} == {"right"}  # each ends under its bar


def test_learning_curve_figure_says_when_there_is_nothing_to_plot():
    table = rounds_table(lnl_metrics(test=False), round_metrics(truth=False, test=False))
    (axis,) = learning_curve_figure(table).axes
    assert not axis.get_lines() and [text.get_text() for text in axis.texts] == [
        "nothing to plot: no test split and no true labels"]


def test_learning_curve_figure_plots_the_three_series():
    figure = learning_curve_figure(rounds_table(lnl_metrics(), round_metrics()))
    (axis,) = figure.axes
    lines = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in axis.get_lines()}
    assert lines == {
        "test balanced accuracy": ([0, 2, 6], [0.6, 0.7, 0.8]),
        "test macro f1": ([0, 2, 6], [0.55, 0.65, 0.75]),
        "label accuracy": ([0, 2, 6], [0.5, 0.75, 0.875]),
    }
    png_bytes(figure)


def working_labels(truth=True) -> list[pd.DataFrame]:
    """Working label tables of six train samples: phase 1's, then after round 1 (s2 re-labelled
    b), round 2 (s4 re-labelled c, s3's label a confirmed, s5 skipped) and a stale round 3 (s0
    re-labelled c)."""
    noisy = pd.DataFrame({"sample_id": [f"s{i}" for i in range(6)], "observed_label": [0, 1, 2, 0, 1, 2],
                          "true_label": [0, 1, 1, 0, 2, 2] if truth else [None] * 6})  # fmt: skip
    tables = [initial_working_labels(noisy, np.array([True, True, False, True, False, True]))]
    tables.append(apply_answers(tables[-1], pd.Series({"s2": 1}), 1, "oracle"))
    tables.append(mark_skipped(apply_answers(tables[-1], pd.Series({"s4": 2, "s3": 0}), 2, "oracle"), ["s5"], 2))
    tables.append(apply_answers(tables[-1], pd.Series({"s0": 2}), 3, "oracle"))
    return tables


LABELS_HEADER = "sample_id,given_label,label,changed,label_source,relabel_round,checked,clean_guess,true_label"
LABELS_CSV = [  # data/report/labels.csv after round 2
    LABELS_HEADER,
    "s0,a,a,False,observed,,False,True,a",
    "s1,b,b,False,observed,,False,True,b",
    "s2,c,b,True,oracle,1,True,False,b",
    "s3,a,a,False,oracle,2,True,True,a",
    "s4,b,c,True,oracle,2,True,False,c",
    "s5,c,c,False,skipped,2,False,True,c",
]


def write_metrics(root, rounds: list[dict]) -> None:
    """The metrics files and working labels the report reads, under ``root``, and a stale round 3
    from an earlier, longer run (the report must never show it)."""
    artifacts.write_json(root / paths.LNL_METRICS, lnl_metrics())
    artifacts.write_json(root / paths.NOISE_METRICS, {"type": "symmetric", "rate": 0.4, "realised_rate": 0.5})
    artifacts.write_json(root / paths.DATA_METRICS, {"class_names": CLASSES})
    for metrics in rounds:
        artifacts.write_json(root / paths.round_metrics(metrics["round"]), metrics)
    artifacts.write_json(root / paths.round_metrics(3), round_metrics()[1] | {"round": 3, "budget_used": 9})
    phase1, *after_rounds = working_labels()
    artifacts.write_parquet(root / paths.LNL_WORKING_LABELS, phase1)
    for done in (paths.PRETRAIN_EMBEDDINGS, paths.LABEL_ISSUES_CSV):  # only there, as a finished run leaves them
        (root / done).parent.mkdir(parents=True, exist_ok=True)
        (root / done).write_bytes(b"")
    for number, table in enumerate(after_rounds, start=1):
        artifacts.write_parquet(root / paths.round_dir(number) / paths.WORKING_LABELS, table)
        for name in (paths.SCORES, paths.QUERY, paths.MODEL):  # the round's other outputs: only there
            (root / paths.round_dir(number) / name).write_bytes(b"")


def test_summary_of_a_run_that_failed_in_a_round_says_where(tmp_path, monkeypatch):
    """score_samples@2 crashed (out of memory, Ctrl-C) after DVC removed its output: the report
    of the run before still lists round 2, which is no longer current."""
    monkeypatch.chdir(tmp_path)
    write_metrics(tmp_path, round_metrics())
    write_report(report_status(2))
    assert results_overview().split("\n\n")[-1].startswith("finished: every round ran")
    (paths.round_dir(2) / paths.SCORES).unlink()
    assert " ".join(results_overview().split("\n\n")[-1].split()) == (
        "stopped: data/rounds/2/scores.parquet is missing, so the last `dvc repro` failed or was stopped in "
        "score_samples@2 (or is running it now), and the results above are from an earlier run; fix what it "
        "reported, then run `dvc repro`")  # fmt: skip
    Path(paths.PRETRAIN_EMBEDDINGS).unlink()  # Ctrl-C in pretrain, after a change of pretrain.epochs
    assert "was stopped in pretrain (or is running it now)" in " ".join(results_overview().split())
    Path(paths.LNL_WORKING_LABELS).unlink()  # a clone without the DVC cache: no data files, no claim
    assert results_overview().split("\n\n")[-1].startswith("finished: every round ran")


def test_report_stage_without_torch(stage_tree):
    """The report stage on hand-made metrics: every output, and no torch import."""
    raw = default_params()
    raw["rounds"] = rounds_param(2)
    write_params(stage_tree, raw=raw)
    write_metrics(stage_tree, round_metrics())
    artifacts.write_json(stage_tree / paths.DATA_METRICS, {"class_names": CLASSES, "class_counts": {
        "train": {"a": 3, "b": 2, "c": 1}, "val": {"a": 1, "b": 1, "c": 1}, "test": {"a": 2, "b": 1, "c": 0}}})
    code = (
        "import sys, runpy\nsys.argv = ['report']\n"
        "runpy.run_module('stages.report', run_name='__main__')\n"
        "print('torch imported:', 'torch' in sys.modules)\n"
    )
    result = run([sys.executable, "-c", code], stage_tree)
    assert result.returncode == 0, result.stderr
    assert "torch imported: False" in result.stdout
    assert "    2       6      0.875    0.800     0.750         0.700       1.00   kept" in result.stdout.splitlines()
    assert (stage_tree / paths.ROUNDS_PLOT).read_text().splitlines() == [
        HEADER,
        "0,0,0.6,0.55,0.62,0.5,0.4,,",
        "1,2,0.7,0.65,0.71,0.75,0.6,4.0,False",
        "2,6,0.8,0.75,0.82,0.875,0.7,1.0,True",
    ]
    report = json.loads((stage_tree / paths.REPORT_METRICS).read_text())
    assert report["status"] == {"finished_rounds": 2, "planned_rounds": 2, "waiting_round": None, "answers_file": None,
                                "failed": None}  # fmt: skip
    assert report["rounds"] == 2 and report["budget_used"] == 6
    assert report["final_test_balanced_accuracy"] == 0.8
    assert report["classes_without_test_images"] == ["c"]
    assert "unscored class: the test split holds no image of 'c', so the test scores" in result.stdout
    assert report["learning_curve_area"] == pytest.approx((2 * 0.65 + 4 * 0.75) / 6)
    assert (stage_tree / paths.REPORT_LABELS).read_text().splitlines() == LABELS_CSV
    assert report["labels"] == {"csv": "data/report/labels.csv", "num_train": 6, "changed": 2, "checked": 3,
                                "paper_protocol": 0}
    for figure in (paths.LEARNING_CURVE_FIGURE, paths.PHASE1_RECALL_FIGURE, paths.CONFUSION_FIGURE):
        assert (stage_tree / figure).read_bytes().startswith(PNG_SIGNATURE), figure


def test_table_text():
    lines = table_text(rounds_table(lnl_metrics(), round_metrics(truth=False))).splitlines()
    assert lines == [
        "round  budget  label acc  bal acc  macro-F1  worst recall  clean eff  model",
        "    0       0          -    0.600     0.550         0.400          -      -",
        "    1       2          -    0.700     0.650         0.600          -    new",
        "    2       6          -    0.800     0.750         0.700          -   kept",
    ]
    rounds = round_metrics()
    rounds[1]["cleaning"]["cleaning_efficiency"] = 2.0 / 3.0
    rounds[1]["test"]["macro_f1"] = 0.12345
    assert table_text(rounds_table(lnl_metrics(), rounds)).splitlines()[1:] == [
        "    0       0      0.500    0.600     0.550         0.400          -      -",
        "    1       2      0.750    0.700     0.650         0.600       4.00    new",
        "    2       6      0.875    0.800     0.123         0.700       0.67   kept",
    ]


def test_status_note():
    assert status_note(report_status(5)) is None
    assert status_note(report_status(5, 1, Path("annotations/round_1.csv"))) == (
        "stops at phase 1; round 1 waits for answers in annotations/round_1.csv")
    assert status_note(report_status(5, 3, Path("annotations/round_3.json"))) == (
        "stops at round 2; round 3 waits for answers in annotations/round_3.json")
    failed = {"round": 2, "stage": "oracle_relabel@2", "error": "annotations/round_2.csv: line 2: ..."}
    assert status_note(report_status(5, failed=failed)) == (
        "stops at round 1; oracle_relabel@2 failed (metrics/report.json: status)")


@pytest.mark.parametrize("error, shown", [
    (AlrError("annotations/round_2.csv: line 2: label 'one' is not a class"),
     "annotations/round_2.csv: line 2: label 'one' is not a class"),
    (ValueError("\nshape mismatch\nmore detail"), "ValueError: shape mismatch"),
])  # fmt: skip
def test_a_failed_answers_round_reports_the_rounds_before_it_and_the_summary_says_it_stopped(
        stage_tree, monkeypatch, capsys, error, shown):
    """oracle_relabel@2 refuses round 2's answers after round 1 re-ran: the report of the last
    complete run must not stay, with its round 2 and labels, as if every round had run."""
    import sys

    from alr_core.report.stopped import report_before_round

    raw = default_params()
    raw["rounds"] = rounds_param(2)
    write_params(stage_tree, raw=raw)
    write_metrics(stage_tree, round_metrics())
    monkeypatch.chdir(stage_tree)
    write_report(report_status(2))  # the earlier, complete run
    monkeypatch.setattr(sys, "argv", [str(stage_tree / "stages/oracle_relabel.py"), "--round", "2"])
    report_before_round(error)

    report = json.loads(Path(paths.REPORT_METRICS).read_text())
    failed = {"round": 2, "stage": "oracle_relabel@2", "error": shown}
    assert report["status"] == {"finished_rounds": 1, "planned_rounds": 2, "waiting_round": None,
                                "answers_file": None, "failed": failed}  # fmt: skip
    assert report["rounds"] == 1 and report["labels"]["changed"] == 1  # round 1's labels, not round 2's
    assert pd.read_csv(paths.REPORT_LABELS)["label"].tolist() == ["a", "b", "b", "a", "b", "c"]
    assert "now show phase 1 and the rounds before round 2" in capsys.readouterr().out
    where = " ".join(results_overview().split("\n\n")[-1].split())
    assert where == (f"stopped: oracle_relabel@2 failed ({shown}); the table shows phase 1 and round 1, and "
                     "data/report/labels.csv the labels after them; fix what it reported, then run `dvc repro`")


def test_a_report_that_cannot_be_written_on_failure_leaves_the_stages_error_to_say_it(
        stage_tree, monkeypatch, capsys):
    import sys

    from alr_core.report.stopped import report_before_round

    monkeypatch.chdir(stage_tree)  # no metrics
    monkeypatch.setattr(sys, "argv", [str(stage_tree / "stages/oracle_relabel.py"), "--round", "1"])
    report_before_round(AlrError("annotations/round_1.csv: empty"))
    assert capsys.readouterr().err == ("metrics/report.json was not updated (AlrError: metrics/lnl.json does not "
                                       "exist: an earlier stage writes it; run `dvc repro` (by hand, run the stages "
                                       "before this one first)); it may show an earlier run's rounds\n")
    assert not Path(paths.REPORT_METRICS).exists()


@pytest.mark.parametrize("waiting", [1, 2])
def test_write_report_while_a_round_waits_shows_only_the_rounds_before_it(tmp_path, monkeypatch, waiting):
    """Round ``waiting`` of 3 waits for answers: rounds from ``waiting`` on (here a stale round 3,
    and for waiting = 1 also rounds 1 and 2) are left out; every figure's title says why."""
    monkeypatch.chdir(tmp_path)
    write_metrics(tmp_path, round_metrics())
    titles = {}

    def record(path, figure):
        titles[Path(path).name] = [axis.get_title() for axis in figure.axes]
        save_figure(path, figure)

    monkeypatch.setattr(artifacts, "write_figure", record)
    answers = Path(f"annotations/round_{waiting}.csv")
    table = write_report(report_status(3, waiting, answers))

    assert table["round"].tolist() == list(range(waiting))
    assert Path(paths.ROUNDS_PLOT).read_text().splitlines() == [
        HEADER, "0,0,0.6,0.55,0.62,0.5,0.4,,", "1,2,0.7,0.65,0.71,0.75,0.6,4.0,False"][: waiting + 1]
    report = json.loads(Path(paths.REPORT_METRICS).read_text())
    assert report["status"] == {"finished_rounds": waiting - 1, "planned_rounds": 3, "waiting_round": waiting,
                                "answers_file": f"annotations/round_{waiting}.csv", "failed": None}  # fmt: skip
    assert report["rounds"] == waiting - 1
    assert report["final_test_balanced_accuracy"] == [0.6, 0.7][waiting - 1]
    assert report["cleaning_efficiency"] == [None, 4.0][waiting - 1]
    # the labels after the last finished round: phase 1's given labels, or round 1's one change
    labels = pd.read_csv(paths.REPORT_LABELS, keep_default_na=False)
    assert labels["label"].tolist() == [["a", "b", "c", "a", "b", "c"], ["a", "b", "b", "a", "b", "c"]][waiting - 1]
    assert report["labels"]["changed"] == waiting - 1 and report["labels"]["checked"] == waiting - 1
    done = "phase 1" if waiting == 1 else "round 1"
    note = f"stops at {done}; round {waiting} waits for answers in\nannotations/round_{waiting}.csv"
    assert titles == {
        paths.LEARNING_CURVE_FIGURE.name: [f"Learning curve: round 0 is phase 1\n{note}"],
        paths.PHASE1_RECALL_FIGURE.name: [f"Phase 1 (coteaching_vog): clean-selection recall per class\n{note}"],
        paths.CONFUSION_FIGURE.name: [f"Model after {done}, test split\n{note}"],
    }
    for figure in titles:
        assert (tmp_path / "plots" / figure).read_bytes().startswith(PNG_SIGNATURE)



def test_write_report_draws_the_confusion_matrix_of_the_last_finished_round(tmp_path, monkeypatch):
    """Two finished rounds: the confusion figure is round 2's model's, not round 1's or phase 1's."""
    monkeypatch.chdir(tmp_path)
    rounds = round_metrics()
    rounds[1]["test"]["confusion_matrix"] = last = [[6, 0, 0], [0, 5, 1], [0, 1, 5]]
    write_metrics(tmp_path, rounds)
    drawn = {}
    monkeypatch.setattr(artifacts, "write_figure", lambda path, figure: drawn.setdefault(Path(path).name, figure))
    write_report(report_status(2))
    (axis,) = drawn[paths.CONFUSION_FIGURE.name].axes
    assert axis.get_title() == "Model after round 2, test split"
    assert [text.get_text() for text in axis.texts] == [str(value) for row in last for value in row]

LABEL_ISSUES = {"num_train": 528, "flagged": {"knn_vote": 40, "cleanlab_kfold": 31, "any": 52}, "flagged_per_class": {}}
LABEL_ISSUES_LINE = ("label issues: 52 of 528 train samples flagged by a rule; every sample ranked in "
                     "data/label_issues/label_issues.csv, the top as images in data/label_issues/gallery.html")


def test_report_and_summary_name_the_label_issue_files_when_the_stage_ran(tmp_path, monkeypatch):
    """metrics/label_issues.json is optional: a workspace from before the label_issues stage
    gets ``label_issues: null`` and a summary without the paragraph."""
    monkeypatch.chdir(tmp_path)
    write_metrics(tmp_path, round_metrics())
    write_report(report_status(2))
    assert json.loads(Path(paths.REPORT_METRICS).read_text())["label_issues"] is None
    without = results_overview()
    assert "label issues" not in without

    artifacts.write_json(paths.LABEL_ISSUES_METRICS, LABEL_ISSUES)
    write_report(report_status(2))
    # metrics from before the suggestions' accuracy was measured: no accuracy, no sentence on it
    assert json.loads(Path(paths.REPORT_METRICS).read_text())["label_issues"] == {
        "csv": "data/label_issues/label_issues.csv", "gallery": "data/label_issues/gallery.html",
        "map": "plots/embedding_map.png", "num_train": 528, "num_flagged": 52, "num_in_gallery": None,
        "num_in_map": None, "suggestion_val_balanced_accuracy": None, "num_val": None,
        "val_false_alarms": None}  # fmt: skip
    assert " ".join(results_overview().split("\n\n")[-2].splitlines()) == LABEL_ISSUES_LINE
    # the gallery's size when the metrics give it; none at all with label_issues.gallery_size 0
    for shown, images in ((100, "the top 100 as images in data/label_issues/gallery.html"),
                          (0, "no images (label_issues.gallery_size: 0)")):  # fmt: skip
        artifacts.write_json(paths.LABEL_ISSUES_METRICS, LABEL_ISSUES | {"num_in_gallery": shown})
        write_report(report_status(2))
        assert " ".join(results_overview().split("\n\n")[-2].splitlines()) == LABEL_ISSUES_LINE.replace(
            "the top as images in data/label_issues/gallery.html", images)
    # the map when it drew samples; nothing on it with label_issues.map_size 0
    for drawn, line in ((528, f"{LABEL_ISSUES_LINE}, 528 on a map of the embeddings in plots/embedding_map.png"),
                        (0, LABEL_ISSUES_LINE)):  # fmt: skip
        artifacts.write_json(paths.LABEL_ISSUES_METRICS, LABEL_ISSUES | {"num_in_map": drawn})
        write_report(report_status(2))
        assert json.loads(Path(paths.REPORT_METRICS).read_text())["label_issues"]["num_in_map"] == drawn
        assert " ".join(results_overview().split("\n\n")[-2].splitlines()) == line

    artifacts.write_json(paths.LABEL_ISSUES_METRICS, LABEL_ISSUES | {"suggestion_val_balanced_accuracy": 0.614,
                                                                     "num_val": 35})  # fmt: skip
    write_report(report_status(2))
    report = json.loads(Path(paths.REPORT_METRICS).read_text())["label_issues"]
    assert report["suggestion_val_balanced_accuracy"] == 0.614 and report["num_val"] == 35
    paragraphs = results_overview().split("\n\n")
    # the label issues come after the scores and before where the pipeline stands
    assert " ".join(paragraphs[-2].splitlines()) == (
        f"{LABEL_ISSUES_LINE}; the suggested label scores a balanced accuracy of 61% on the 35 validation images "
        "(its mean recall per class): the lower, the more flags are false alarms")  # fmt: skip
    assert paragraphs[:-2] + paragraphs[-1:] == without.split("\n\n")
    assert max(len(line) for line in paragraphs[-2].splitlines()) <= 80

    alarms = {"rate": {"knn_vote": 0.05, "cleanlab_kfold": 0.02, "either": 0.06}, "flagged": 50, "if_labels_right": 32}
    artifacts.write_json(paths.LABEL_ISSUES_METRICS, LABEL_ISSUES | {"suggestion_val_balanced_accuracy": 0.614,
                                                                     "num_val": 35, "val_false_alarms": alarms})
    write_report(report_status(2))
    assert json.loads(Path(paths.REPORT_METRICS).read_text())["label_issues"]["val_false_alarms"] == alarms
    paragraphs = results_overview().split("\n\n")
    assert " ".join(paragraphs[-2].splitlines()) == (
        f"{LABEL_ISSUES_LINE}; the rules would flag about 6% of right train labels (measured on the 35 validation "
        "labels, which alr takes as right, each class weighted by its train count): if the train labels are mostly "
        "right too, about 32 of the 50 train samples they flag are false alarms; the "
        "suggested label scores a balanced accuracy of 61% on the 35 validation images (its mean recall per "
        "class): the lower, the more flags are false alarms")  # fmt: skip
    assert max(len(line) for line in paragraphs[-2].splitlines()) <= 80

    Path(paths.LNL_METRICS).unlink()  # `dvc repro label_issues` alone: no phase 1 yet
    assert results_overview().split("\n\n") == [no_results_text(), paragraphs[-2]]
    assert "has not run lnl_train yet" in " ".join(no_results_text().split())
    Path(paths.LABEL_ISSUES_METRICS).write_text("{}")
    with pytest.raises(AlrError, match="metrics/label_issues.json: lacks 'num_train', 'flagged'"):
        results_overview()


@pytest.mark.parametrize("removed, stage", [(paths.DATA_METRICS, "prepare"), (paths.NOISE_METRICS, "inject_noise")])
def test_summary_of_a_run_that_failed_before_phase_1_says_the_results_are_old(tmp_path, monkeypatch, removed, stage):
    """A changed image folder with a corrupt file: `dvc repro` fails in prepare after DVC removed
    its outputs, and the report of the run before still says every round ran."""
    monkeypatch.chdir(tmp_path)
    write_metrics(tmp_path, round_metrics())
    write_report(report_status(2))
    assert results_overview().split("\n\n")[-1].startswith("finished: every round ran")
    Path(removed).unlink()
    lines = results_overview().split("\n\n")[-1].splitlines()
    assert " ".join(lines) == (f"stopped: {removed} is missing, so the last `dvc repro` failed or was stopped in "
                               f"{stage} (or is running it now), and the results above are from an earlier run; fix "
                               "what it reported, then run `dvc repro`")  # fmt: skip
    assert max(map(len, lines)) <= 80


def test_labels_table_names_classes_and_leaves_out_an_unknown_truth():
    after_round_2 = working_labels(truth=False)[2]
    table = labels_table(after_round_2, CLASSES)
    assert list(table.columns) == LABELS_HEADER.split(",")[:-1]
    assert table["label"].tolist() == ["a", "b", "b", "a", "c", "c"]
    assert table["given_label"].tolist() == ["a", "b", "c", "a", "b", "c"]
    # a skipped query left the pool unanswered: it is neither changed nor vouched for
    assert table["checked"].tolist() == [False, False, True, True, True, False]
    assert labels_summary(table) == {"csv": "data/report/labels.csv", "num_train": 6, "changed": 2, "checked": 3,
                                     "paper_protocol": 0}
    with_truth = labels_table(working_labels()[2], CLASSES)
    assert with_truth["true_label"].tolist() == ["a", "b", "b", "a", "c", "c"]


def test_labels_text_tells_answers_from_the_paper_protocols_free_labels():
    """al.paper_protocol gives C its true labels at round 1: no answer vouches for them."""
    labels = {"csv": "data/report/labels.csv", "num_train": 528, "changed": 120, "checked": 474, "paper_protocol": 374}
    assert " ".join(labels_text(labels, 3).split()) == (
        "labels after round 3: 120 of 528 train labels changed, 100 vouched for by an answer and 374 given their "
        "true label by al.paper_protocol; every train sample's given and current label in data/report/labels.csv")
    older = {key: value for key, value in labels.items() if key != "paper_protocol"}  # a report from before
    assert "474 vouched for by an answer;" in " ".join(labels_text(older, 3).split())



def test_labels_text_names_the_round_the_labels_are_after():
    labels = {"csv": "data/report/labels.csv", "num_train": 6, "changed": 1, "checked": 1, "paper_protocol": 0}
    assert labels_text(labels, 0).startswith("labels after phase 1: 1 of 6 train labels changed")
    assert labels_text(labels, 1).startswith("labels after round 1: 1 of 6 train labels changed")

def test_summary_says_how_many_labels_the_rounds_changed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_metrics(tmp_path, round_metrics())
    write_report(report_status(2))
    paragraphs = results_overview().split("\n\n")
    assert " ".join(paragraphs[-2].splitlines()) == (
        "labels after round 2: 2 of 6 train labels changed, 3 vouched for by an answer; every train sample's "
        "given and current label in data/report/labels.csv")  # fmt: skip
    assert max(len(line) for line in paragraphs[-2].splitlines()) <= 80
    write_report(report_status(2, 1, Path("annotations/round_1.csv")))
    assert "labels after phase 1: 0 of 6 train labels changed, 0 vouched" in " ".join(results_overview().split())


# ----------------------------------------------------------------------------- the summary command


def test_overview_text_of_a_paused_run():
    rounds = round_metrics()[:1]
    text = overview_text(lnl_metrics(), rounds, None, report_status(3, 2, Path("annotations/round_2.csv")))
    lines = text.splitlines()
    assert lines[0] == "alr: phase 1 (coteaching_vog) and 1 of 3 rounds, strategy margin"
    assert lines[2:5] == [
        "round  budget  label acc  bal acc  macro-F1  worst recall  clean eff  model",
        "    0       0      0.500    0.600     0.550         0.400          -      -",
        "    1       2      0.750    0.700     0.650         0.600       4.00    new",
    ]
    first = lines.index("over the rounds above: cleaning efficiency 4.00 (perfect queries: 4.00),")
    assert lines[first + 1] == "learning-curve area 0.650"
    after_scores = " ".join(lines[first + 2:])
    assert after_scores.startswith("of the labels the queries fixed, the model already predicted 100% and 0% were "
                                   "in C or re-labelled before")  # round 1's 2 fixes: both predicted, none in C
    assert " ".join(lines[-2:]) == ("paused: round 2 waits for expert answers in annotations/round_2.csv: answer "
                                    "data/rounds/2/annotate.html, save the file there, then run `dvc repro`")
    assert max(map(len, lines)) <= 80


def test_overview_text_of_a_finished_run_and_of_phase_1_alone():
    finished = overview_text(lnl_metrics(), round_metrics(), None, report_status(2)).splitlines()
    assert finished[0] == "alr: phase 1 (coteaching_vog) and 2 of 2 rounds, strategy margin"
    assert " ".join(finished[-2:]) == ("finished: every round ran (`dvc repro fingerprint && dvc status` lists the "
                                       "stages whose inputs changed since, your data files included)")
    phase1 = overview_text(lnl_metrics(), [], {"realised_rate": 0.25}, None).splitlines()
    assert phase1[0] == "alr: phase 1 (coteaching_vog) and 0 rounds"
    assert phase1[3] == "    0       0      0.750    0.600     0.550         0.400          -      -"
    assert not any(line.startswith("over the rounds above") for line in phase1)
    assert "metrics/report.json does not exist" in " ".join(phase1[-3:])


@pytest.mark.parametrize("used, outcome, lead, lead_words", [
    ("ce", "phase 1 hands on CE's model (lnl.safety_net: pick)", {"p_value": 0.0123, "significant": True},
     ", paired test p = 0.012"),
    ("ce", "phase 1 hands on CE's model (lnl.safety_net: pick)", {"p_value": 0.31, "significant": False},
     ", paired test p = 0.310, within the split's noise"),
    ("coteaching_vog", "phase 1 kept the method's model; lnl.safety_net: pick would use CE's", None, ""),
])  # fmt: skip
def test_overview_says_when_plain_ce_beat_phase_1_on_validation(used, outcome, lead, lead_words):
    net = {"mode": "pick" if used == "ce" else "check", "method_val_balanced_accuracy": 0.61,
           "ce_val_balanced_accuracy": 0.64, "ce_is_better": True, "used": used}
    if lead is not None:  # records written before the paired test have no ce_lead
        net["ce_lead"] = {"diff": 0.03} | lead
    lines = overview_text(lnl_metrics() | {"safety_net": net}, round_metrics(), None, report_status(2)).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("safety net:"))
    text = " ".join(lines[start:start + 4])
    assert text.startswith("safety net: plain CE scored higher on the validation split than the phase-1 method "
                           f"(0.640 vs 0.610 balanced accuracy{lead_words}); {outcome}")
    assert max(map(len, lines)) <= 80
    quiet = overview_text(lnl_metrics() | {"safety_net": net | {"ce_is_better": False}}, round_metrics(), None,
                          report_status(2))  # fmt: skip
    assert "safety net" not in quiet


@pytest.mark.parametrize("removed, stage", [(None, "lnl_train"), (paths.LABEL_ISSUES_CSV, "label_issues"),
                                            (paths.PRETRAIN_EMBEDDINGS, "pretrain"),
                                            (paths.NOISE_METRICS, "inject_noise")])  # fmt: skip
def test_summary_without_phase_1_names_the_stage_a_stopped_first_run_reached(tmp_path, monkeypatch, removed, stage):
    """A first `dvc repro` stopped (Ctrl-C in phase 1's long training, or a failure) after prepare:
    the summary names the first stage whose output is missing, not only "run `dvc repro`"."""
    monkeypatch.chdir(tmp_path)
    write_metrics(tmp_path, [])
    Path(paths.LNL_METRICS).unlink()
    if removed is not None:
        Path(removed).unlink()
    text = results_overview()
    assert " ".join(text.split()) == (
        "no phase-1 results yet: metrics/lnl.json does not exist but metrics/data.json does, so `dvc repro` has "
        f"not run {stage} yet, or failed or was stopped in it; fix what it reported, if anything, then run "
        "`dvc repro`")  # fmt: skip
    assert max(map(len, text.splitlines())) <= 80
    Path(paths.DATA_METRICS).unlink()  # prepare has not finished either: nothing ran
    assert results_overview() == NO_RESULTS


def test_results_overview_reads_the_rounds_report_json_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert results_overview() == NO_RESULTS
    write_metrics(tmp_path, round_metrics())
    # without report.json: the round files found, the stale round 3 included, and a warning
    assert "and 3 rounds" in results_overview().splitlines()[0]
    artifacts.write_json(paths.REPORT_METRICS, {"status": report_status(3, 2, Path("annotations/round_2.csv"))})
    text = results_overview()
    assert "and 1 of 3 rounds" in text.splitlines()[0] and "paused: round 2 waits" in text
    artifacts.write_json(paths.REPORT_METRICS, {"rounds": 2})  # a report.json from before the status block
    assert "and 2 rounds" in results_overview().splitlines()[0]


def test_summary_warns_when_the_sources_splits_overlap_train(tmp_path, monkeypatch):
    """Validation or test images identical to a train image, or sharing a patient group with
    train images, make the scores optimistic: the summary says so right after them."""
    monkeypatch.chdir(tmp_path)
    write_metrics(tmp_path, round_metrics())
    artifacts.write_json(paths.REPORT_METRICS, {"status": report_status(2)})
    quiet = results_overview()
    # a data.json from before the blocks, and one whose splits alr drew: nothing to say
    for data in ({"num_samples": 9}, {"identical_images": {"groups": 2, "evaluation_images_in_train": 0},
                                      "groups": None}):  # fmt: skip
        artifacts.write_json(paths.DATA_METRICS, data)
        assert results_overview() == quiet
    artifacts.write_json(paths.DATA_METRICS, {"identical_images": {"evaluation_images_in_train": 1},
                                              "groups": {"evaluation_images_in_train_groups": 15}})  # fmt: skip
    paragraphs = results_overview().split("\n\n")
    index = next(i for i, p in enumerate(paragraphs) if p.startswith("optimistic scores"))
    assert " ".join(paragraphs[index].splitlines()) == (
        "optimistic scores: the source's own splits hold 1 validation or test image identical to a train image "
        "and 15 validation or test images sharing a group (data.csv.group_column) with train images, so the "
        "validation and test scores above flatter the model (counts in metrics/data.json); alr keeps them apart "
        "only where it draws the splits itself")  # fmt: skip
    assert paragraphs[:index] + paragraphs[index + 1:] == quiet.split("\n\n")
    assert "over the rounds above" in paragraphs[index - 1]  # right after the scores it qualifies
    assert max(len(line) for line in paragraphs[index].splitlines()) <= 80
    artifacts.write_json(paths.DATA_METRICS, {"groups": {"evaluation_images_in_train_groups": 3}})
    assert "hold 3 validation or test images sharing a group" in " ".join(results_overview().split())
    assert "identical to a train image" not in results_overview()


def test_a_class_without_test_images_is_named_in_the_report_and_the_summary(tmp_path, monkeypatch):
    # 2 malignant images of 102 leave none for test: the scores averaged benign alone, 1.000 everywhere, unsaid
    monkeypatch.chdir(tmp_path)
    write_metrics(tmp_path, round_metrics())
    write_report(report_status(2))
    quiet = results_overview()
    assert json.loads(Path(paths.REPORT_METRICS).read_text())["classes_without_test_images"] == []
    counts = {"train": {"a": 5, "b": 2, "c": 4}, "val": {"a": 1, "b": 0, "c": 1}, "test": {"a": 3, "b": 0, "c": 2}}
    artifacts.write_json(paths.DATA_METRICS, {"class_names": CLASSES, "class_counts": counts})
    write_report(report_status(2))
    assert json.loads(Path(paths.REPORT_METRICS).read_text())["classes_without_test_images"] == ["b"]
    paragraphs = results_overview().split("\n\n")
    index = next(i for i, p in enumerate(paragraphs) if p.startswith("unscored class"))
    assert " ".join(paragraphs[index].splitlines()) == (
        "unscored class: the test split holds no image of 'b', so the test scores above average the other classes "
        "only and say nothing of how the model finds it; add test images (data.test_fraction, or the source's "
        "split)")  # fmt: skip
    assert paragraphs[:index] + paragraphs[index + 1:] == quiet.split("\n\n")
    counts["test"] = {"a": 0, "b": 0, "c": 4}
    artifacts.write_json(paths.DATA_METRICS, {"class_names": CLASSES, "class_counts": counts})
    assert "unscored classes: the test split holds no image of 'a', 'b', so" in " ".join(results_overview().split())
    assert "how the model finds them;" in " ".join(results_overview().split())
    counts["test"] = {"a": 0, "b": 0, "c": 0}  # no test split at all: no scores to qualify
    artifacts.write_json(paths.DATA_METRICS, {"class_names": CLASSES, "class_counts": counts})
    assert results_overview() == quiet


@pytest.mark.parametrize("damage, message", [
    (lambda: Path(paths.LNL_METRICS).write_text("{not json"), "metrics/lnl.json: cannot read it (Expecting"),
    (lambda: Path(paths.REPORT_METRICS).write_text("[1, 2]"), "metrics/report.json: lacks 'a JSON object'"),
    (lambda: artifacts.write_json(paths.round_metrics(1), {"round": 1}), "metrics/rounds/1.json: lacks 'budget_used'"),
    (lambda: paths.round_metrics(2).unlink(), "metrics/rounds/2.json does not exist, but metrics/report.json lists 2"),
], ids=["bad-json", "not-an-object", "missing-key", "missing-round"])  # fmt: skip
def test_results_overview_errors_name_the_file(tmp_path, monkeypatch, damage, message):
    monkeypatch.chdir(tmp_path)
    write_metrics(tmp_path, round_metrics())
    artifacts.write_json(paths.REPORT_METRICS, {"status": report_status(2)})
    damage()
    with pytest.raises(AlrError) as error:
        results_overview()
    assert str(error.value).startswith(message)


def test_summary_command_without_torch(stage_tree):
    code = (
        "import sys, runpy\nsys.argv = ['summary']\n"
        "try:\n    runpy.run_module('stages.summary', run_name='__main__')\n"
        "finally:\n    print('torch imported:', 'torch' in sys.modules)\n"
    )
    empty = run([sys.executable, "-c", code], stage_tree)
    assert empty.returncode == 0 and empty.stdout.startswith(NO_RESULTS), empty.stderr
    write_metrics(stage_tree, round_metrics())
    artifacts.write_json(stage_tree / paths.REPORT_METRICS, {"status": report_status(3, 2, Path("annotations/x.csv"))})
    paused = run([sys.executable, "-c", code], stage_tree)
    assert paused.returncode == 0, paused.stderr
    assert "paused: round 2 waits for expert answers in annotations/x.csv" in paused.stdout
    assert "torch imported: False" in paused.stdout
    (stage_tree / paths.LNL_METRICS).write_text("")
    broken = run([sys.executable, "-m", "stages.summary"], stage_tree)
    assert broken.returncode == 1
    assert broken.stderr.splitlines() == [
        "error: metrics/lnl.json: cannot read it (Expecting value: line 1 column 1 (char 0)); "
        "`dvc repro` writes it again"
    ]
