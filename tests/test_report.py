"""The report (alr_core.report.summary and stages/report.py) on hand-made phase-1 and round metrics."""

from __future__ import annotations

import io
import json
import sys

import pandas as pd
import pytest
from builders import repo_params, rounds_param, run, write_params

from alr_core.common import artifacts, paths
from alr_core.report.summary import class_recall_figure, confusion_figure, learning_curve_figure, rounds_table, summary

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CLASSES = ["a", "b", "c"]
CONFUSION = [[5, 0, 1], [1, 4, 1], [0, 2, 4]]


def lnl_metrics(test=True, selection=True) -> dict:
    metrics = {
        "method": "coteaching_vog",
        "test": {"balanced_accuracy": 0.6, "macro_f1": 0.55, "accuracy": 0.62, "confusion_matrix": CONFUSION}
        if test else None,
    }  # fmt: skip
    if selection:
        metrics["selection"] = {"recall": 0.8, "recall_per_class": {"a": 0.9, "b": 0.7, "c": None},
                                "worst_class_recall": 0.7}  # fmt: skip
    return metrics


def round_metrics(truth=True, test=True) -> list[dict]:
    def one(number, used, ba, f1, acc, before, after, fixed, expected):
        return {
            "round": number,
            "strategy": "margin",
            "budget_round": used - (0 if number == 1 else 2),
            "budget_used": used,
            "paper_protocol": False,
            "test": {"balanced_accuracy": ba, "macro_f1": f1, "accuracy": acc, "confusion_matrix": CONFUSION}
            if test else None,
            "cleaning": {"label_accuracy": after, "label_accuracy_before": before, "fixed_by_queries": fixed,
                         "random_expected_fixes": expected} if truth else {},
        }  # fmt: skip

    # budgets 2 then 4: the budget axis is unevenly spaced (0, 2, 6)
    return [one(1, 2, 0.7, 0.65, 0.71, 0.5, 0.75, 2, 0.5), one(2, 6, 0.8, 0.75, 0.82, 0.75, 0.875, 1, 1.0)]


def csv_text(table: pd.DataFrame, tmp_path) -> str:
    path = tmp_path / "rounds.csv"
    artifacts.write_csv(path, table)
    return path.read_text()


def test_rounds_table_csv(tmp_path):
    table = rounds_table(lnl_metrics(), round_metrics())
    assert csv_text(table, tmp_path).splitlines() == [
        "round,budget_used,test_balanced_accuracy,test_macro_f1,test_accuracy,label_accuracy",
        "0,0,0.6,0.55,0.62,0.5",  # round 0 = phase 1; its label accuracy = round 1's "before"
        "1,2,0.7,0.65,0.71,0.75",
        "2,6,0.8,0.75,0.82,0.875",
    ]


def test_rounds_table_unknown_truth_leaves_label_accuracy_empty(tmp_path):
    table = rounds_table(lnl_metrics(selection=False), round_metrics(truth=False))
    assert csv_text(table, tmp_path).splitlines()[1:] == ["0,0,0.6,0.55,0.62,", "1,2,0.7,0.65,0.71,", "2,6,0.8,0.75,0.82,"]


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
        "phase1_selection_worst_class_recall": 0.7,
    }
    json.dumps(result, allow_nan=False)  # what the stage writes


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
    lnl, rounds = lnl_metrics(selection=False), round_metrics(truth=False)
    result = summary(rounds_table(lnl, rounds), lnl, rounds)
    assert result["final_label_accuracy"] is None
    assert result["phase1_selection_worst_class_recall"] is None
    assert result["cleaning_efficiency"] is None
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
    lambda: class_recall_figure(lnl_metrics(selection=False)),
    lambda: confusion_figure(CONFUSION, CLASSES, "final"),
    lambda: confusion_figure(None, CLASSES, "final"),
], ids=["curve", "curve-empty", "recall", "recall-unknown", "confusion", "confusion-none"])  # fmt: skip
def test_figures_render_as_png(make, tmp_path):
    figure = make()
    assert hasattr(figure, "savefig")
    assert png_bytes(figure).startswith(PNG_SIGNATURE)


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


def test_report_stage_without_torch(stage_tree):
    """The report stage on hand-made metrics: every output, and no torch import."""
    raw = repo_params()
    raw["rounds"] = rounds_param(2)
    write_params(stage_tree, raw=raw)
    artifacts.write_json(stage_tree / paths.LNL_METRICS, lnl_metrics())
    artifacts.write_json(stage_tree / paths.DATA_METRICS, {"class_names": CLASSES})
    for metrics in round_metrics():
        artifacts.write_json(stage_tree / paths.round_metrics(metrics["round"]), metrics)
    # a stale round 3 from an earlier, longer run is not part of the report
    artifacts.write_json(stage_tree / paths.round_metrics(3), round_metrics()[1] | {"round": 3, "budget_used": 9})
    code = (
        "import sys, runpy\nsys.argv = ['report']\n"
        "runpy.run_module('stages.report', run_name='__main__')\n"
        "print('torch imported:', 'torch' in sys.modules)\n"
    )
    result = run([sys.executable, "-c", code], stage_tree)
    assert result.returncode == 0, result.stderr
    assert "torch imported: False" in result.stdout
    assert (stage_tree / paths.ROUNDS_PLOT).read_text().splitlines() == [
        "round,budget_used,test_balanced_accuracy,test_macro_f1,test_accuracy,label_accuracy",
        "0,0,0.6,0.55,0.62,0.5",
        "1,2,0.7,0.65,0.71,0.75",
        "2,6,0.8,0.75,0.82,0.875",
    ]
    report = json.loads((stage_tree / paths.REPORT_METRICS).read_text())
    assert report["rounds"] == 2 and report["budget_used"] == 6
    assert report["final_test_balanced_accuracy"] == 0.8
    assert report["learning_curve_area"] == pytest.approx((2 * 0.65 + 4 * 0.75) / 6)
    for figure in (paths.LEARNING_CURVE_FIGURE, paths.PHASE1_RECALL_FIGURE, paths.CONFUSION_FIGURE):
        assert (stage_tree / figure).read_bytes().startswith(PNG_SIGNATURE), figure
