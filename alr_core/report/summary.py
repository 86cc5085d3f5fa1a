"""The report: phase 1 and every round in one table, a summary and offline PNG figures."""

from __future__ import annotations

import numpy as np
import pandas as pd


def rounds_table(lnl_metrics: dict, round_metrics: list[dict]) -> pd.DataFrame:
    """One row per round, round 0 being phase 1: budget used, test scores, label accuracy."""
    first_cleaning = round_metrics[0]["cleaning"] if round_metrics else {}
    rows = [_row(0, 0, lnl_metrics["test"], first_cleaning.get("label_accuracy_before"))]
    rows += [_row(m["round"], m["budget_used"], m["test"], m["cleaning"].get("label_accuracy"))
             for m in round_metrics]  # fmt: skip
    return pd.DataFrame(rows)


def _row(round_number, budget_used, test, label_accuracy) -> dict:
    test = test or {}
    return {
        "round": round_number,
        "budget_used": budget_used,
        "test_balanced_accuracy": test.get("balanced_accuracy"),
        "test_macro_f1": test.get("macro_f1"),
        "test_accuracy": test.get("accuracy"),
        "label_accuracy": label_accuracy,
    }


def summary(table: pd.DataFrame, lnl_metrics: dict, round_metrics: list[dict]) -> dict:
    """Final and phase-1 scores, the area under the learning curve (balanced accuracy over
    the budget fraction used, trapezoids; equals the mean accuracy over the budget) and the
    cleaning efficiency of all rounds together: wrong labels the queries fixed ÷ what random
    queries would have fixed (alr_core.active.labels.cleaning_metrics), None without the truth."""
    final = table.iloc[-1]
    curve = table.dropna(subset=["test_balanced_accuracy"])
    budget = curve["budget_used"].to_numpy(dtype=float)
    span = budget[-1] - budget[0] if len(budget) else 0.0
    if curve.empty:  # no test split: no learning curve
        area = None
    elif span > 0:
        area = float(np.trapezoid(curve["test_balanced_accuracy"].to_numpy(dtype=float), budget) / span)
    else:
        area = float(curve["test_balanced_accuracy"].iloc[-1])
    last = round_metrics[-1] if round_metrics else {}
    cleaning = [m["cleaning"] for m in round_metrics if "random_expected_fixes" in m["cleaning"]]
    expected = sum(c["random_expected_fixes"] for c in cleaning)
    efficiency = sum(c["fixed_by_queries"] for c in cleaning) / expected if expected > 0 else None
    return {
        "rounds": len(round_metrics),
        "budget_used": int(final["budget_used"]),
        "strategy": last.get("strategy"),
        "paper_protocol": last.get("paper_protocol"),
        "phase1_method": lnl_metrics["method"],
        "phase1_test_balanced_accuracy": table["test_balanced_accuracy"].iloc[0],
        "final_test_balanced_accuracy": final["test_balanced_accuracy"],
        "final_test_macro_f1": final["test_macro_f1"],
        "final_label_accuracy": None if pd.isna(final["label_accuracy"]) else final["label_accuracy"],
        "learning_curve_area": area,
        "cleaning_efficiency": efficiency,
        "phase1_selection_worst_class_recall": (lnl_metrics.get("selection") or {}).get("worst_class_recall"),
    }


def learning_curve_figure(table: pd.DataFrame):
    figure, axis = _axes()
    for column in ("test_balanced_accuracy", "test_macro_f1", "label_accuracy"):
        if table[column].notna().any():
            axis.plot(table["budget_used"], table[column], marker="o", label=column.replace("_", " "))
    axis.set(xlabel="expert re-labels used (budget)", ylabel="score", ylim=(0, 1.02),
             title="Learning curve: round 0 is phase 1")  # fmt: skip
    axis.grid(alpha=0.3)
    if axis.get_lines():  # nothing to plot without a test split and the truth
        axis.legend()
    return figure


def class_recall_figure(lnl_metrics: dict):
    """Per-class recall of phase 1's clean guess C (share of each class's clean samples kept)."""
    figure, axis = _axes()
    selection = lnl_metrics.get("selection")
    if not selection:
        axis.text(0.5, 0.5, "true labels unknown:\nno selection recall", ha="center", va="center")
        axis.set_axis_off()
        return figure
    names = list(selection["recall_per_class"])
    values = [np.nan if v is None else v for v in selection["recall_per_class"].values()]
    bars = axis.bar(names, values, color="tab:blue")
    axis.bar_label(bars, fmt="%.2f", fontsize=8)  # a recall of 0 is otherwise an invisible bar
    axis.axhline(selection["recall"], color="tab:red", linestyle="--", label=f"overall {selection['recall']:.2f}")
    axis.set(xlabel="class", ylabel="recall of clean samples in C", ylim=(0, 1.02),
             title=f"Phase 1 ({lnl_metrics['method']}): clean-selection recall per class")  # fmt: skip
    axis.tick_params(axis="x", rotation=45)
    axis.legend()
    return figure


def confusion_figure(confusion: list[list[int]] | None, class_names: list[str], title: str):
    figure, axis = _axes(size=(1.0 + 0.6 * len(class_names), 0.8 + 0.6 * len(class_names)))
    if confusion is None:
        axis.text(0.5, 0.5, "no test split", ha="center", va="center")
        axis.set_axis_off()
        return figure
    matrix = np.asarray(confusion)
    axis.imshow(matrix, cmap="Blues")
    for (i, j), value in np.ndenumerate(matrix):
        axis.text(j, i, str(value), ha="center", va="center",
                  color="white" if value > matrix.max() / 2 else "black")  # fmt: skip
    ticks = np.arange(len(class_names))
    axis.set_xticks(ticks, class_names, rotation=45, ha="right")
    axis.set_yticks(ticks, class_names)
    axis.set(xlabel="predicted", ylabel="true", title=title)
    return figure


def _axes(size=(6.4, 4.0)):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=size)
