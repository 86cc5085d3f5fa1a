"""The report: phase 1 and every round in one table, a summary and offline PNG figures."""

from __future__ import annotations

import numpy as np
import pandas as pd

from alr_core.common import paths
from alr_core.common.text import method_name
from alr_core.report.figures import new_axes


def rounds_table(lnl_metrics: dict, round_metrics: list[dict], noise_metrics: dict | None = None) -> pd.DataFrame:
    """One row per round, round 0 being phase 1. Columns: round, budget_used,
    test_balanced_accuracy, test_macro_f1, test_accuracy (None without a test split),
    label_accuracy (share of train labels equal to the truth; None without it),
    test_worst_class_recall (the lowest test recall of a class), cleaning_efficiency (the
    round's, see :func:`summary`; None for phase 1, which queries nothing) and model_kept (True
    when the round handed on the model it started from, which validated no worse than its
    training; None for phase 1).

    Phase 1 changes no label, so its label accuracy is round 1's accuracy before the round or,
    while no round has finished, 1 − the realised noise rate of ``noise_metrics``
    (metrics/noise.json; no rate when the truth is unknown)."""
    if round_metrics:
        phase1_label_accuracy = round_metrics[0]["cleaning"].get("label_accuracy_before")
    else:
        rate = (noise_metrics or {}).get("realised_rate")
        phase1_label_accuracy = None if rate is None else 1.0 - rate
    rows = [_row(0, 0, lnl_metrics["test"], phase1_label_accuracy, None, None)]
    rows += [_row(m["round"], m["budget_used"], m["test"], m["cleaning"].get("label_accuracy"),
                  m["cleaning"].get("cleaning_efficiency"), m.get("kept_previous")) for m in round_metrics]  # fmt: skip
    return pd.DataFrame(rows)


def _row(round_number, budget_used, test, label_accuracy, cleaning_efficiency, model_kept) -> dict:
    test = test or {}
    recalls = [value for value in (test.get("recall_per_class") or {}).values() if value is not None]
    return {
        "round": round_number,
        "budget_used": budget_used,
        "test_balanced_accuracy": test.get("balanced_accuracy"),
        "test_macro_f1": test.get("macro_f1"),
        "test_accuracy": test.get("accuracy"),
        "label_accuracy": label_accuracy,
        "test_worst_class_recall": min(recalls) if recalls else None,
        "cleaning_efficiency": cleaning_efficiency,
        "model_kept": model_kept,
    }


# rounds_table column -> header of the printed table; it leaves out test_accuracy (plain
# accuracy hides the rare classes; plots/rounds.csv keeps it) to fit 80 columns
TEXT_COLUMNS = {
    "round": "round",
    "budget_used": "budget",
    "label_accuracy": "label acc",
    "test_balanced_accuracy": "bal acc",
    "test_macro_f1": "macro-F1",
    "test_worst_class_recall": "worst recall",
    "cleaning_efficiency": "clean eff",
    "model_kept": "model",
}
TEXT_LEGEND = (
    "label acc: share of train labels that are right (needs the truth); bal acc,\n"
    "macro-F1, worst recall (of the worst class): test split; clean eff: wrong labels\n"
    "the round's queries fixed / what as many random queries would fix (1 = random);\n"
    "model: new, or kept when the round's training validated no better than before"
)


def table_text(table: pd.DataFrame) -> str:
    """``table`` (:func:`rounds_table`) as right-aligned text, two spaces between columns:
    counts as integers, scores with 3 decimals, cleaning efficiency with 2, the model as
    ``new`` or ``kept``, ``-`` if missing."""
    digits = {"round": 0, "budget_used": 0, "cleaning_efficiency": 2}

    def cell(column, value) -> str:
        if value is None or pd.isna(value):
            return "-"
        if column == "model_kept":
            return "kept" if value else "new"
        return f"{value:.{digits.get(column, 3)}f}"

    rows = [list(TEXT_COLUMNS.values())]
    rows += [[cell(column, row[column]) for column in TEXT_COLUMNS] for _, row in table.iterrows()]
    widths = [max(len(row[k]) for row in rows) for k in range(len(TEXT_COLUMNS))]
    return "\n".join("  ".join(cell.rjust(width) for cell, width in zip(row, widths)) for row in rows)


def classes_without_test_images(data_metrics: dict) -> list[str]:
    """The classes the test split holds no image of (metrics/data.json's ``class_counts``), when
    it holds any: the test scores average the other classes only and say nothing of these. Empty
    for a data.json without the counts."""
    test = (data_metrics.get("class_counts") or {}).get("test") or {}
    return [name for name in data_metrics.get("class_names", []) if any(test.values()) and not test.get(name)]


def summary(table: pd.DataFrame, lnl_metrics: dict, round_metrics: list[dict]) -> dict:
    """Final and phase-1 scores, the area under the learning curve (balanced accuracy over
    the budget fraction used, trapezoids; equals the mean accuracy over the budget) and the
    cleaning efficiency of all rounds together: wrong labels the queries fixed ÷ what random
    queries would have fixed (alr_core.active.labels.cleaning_metrics), None without the truth,
    and its ceiling, what perfect picks would have reached (None when a round predates it);
    of those fixes, the shares the scoring model already predicted (fixes_already_predicted) and
    that were in C ∪ labelled, which the rounds train on (fixes_in_trusted); None without a fix."""
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
    fixed = sum(c["fixed_by_queries"] for c in cleaning)
    efficiency = fixed / expected if expected > 0 else None
    best = [c.get("best_possible_fixes") for c in cleaning]  # rounds run before the ceiling existed lack it
    ceiling = sum(best) / expected if expected > 0 and None not in best else None

    def share_of_fixes(key: str) -> float | None:
        counts = [c.get(key) for c in cleaning]  # rounds run before these counts existed lack them
        return sum(counts) / fixed if fixed and None not in counts else None

    return {
        "rounds": len(round_metrics),
        "budget_used": int(final["budget_used"]),
        "strategy": last.get("strategy"),
        "paper_protocol": last.get("paper_protocol"),
        "phase1_method": method_name(lnl_metrics["method"], lnl_metrics.get("selection_rule")),
        "phase1_test_balanced_accuracy": table["test_balanced_accuracy"].iloc[0],
        "final_test_balanced_accuracy": final["test_balanced_accuracy"],
        "final_test_macro_f1": final["test_macro_f1"],
        "final_label_accuracy": None if pd.isna(final["label_accuracy"]) else final["label_accuracy"],
        "learning_curve_area": area,
        "cleaning_efficiency": efficiency,
        "cleaning_efficiency_ceiling": ceiling,
        "fixes_already_predicted": share_of_fixes("fixed_already_predicted"),
        "fixes_in_trusted": share_of_fixes("fixed_in_trusted"),
        "phase1_selection_worst_class_recall": lnl_metrics["selection"]["worst_class_recall"],
        # lnl.safety_net's comparison with plain CE on the validation split (None when off)
        "phase1_safety_net": lnl_metrics.get("safety_net"),
    }


def label_issues_summary(label_issue_metrics: dict | None) -> dict | None:
    """report.json's ``label_issues``: the label-issue report's files, the train samples it
    ranks, how many of them a rule flagged, how often its suggested label is right on the
    validation split and how often its rules flag that split's labels (metrics/label_issues.json);
    None when that stage has not run."""
    if label_issue_metrics is None:
        return None
    return {
        "csv": paths.LABEL_ISSUES_CSV.as_posix(),
        "gallery": paths.LABEL_ISSUES_GALLERY.as_posix(),
        "map": paths.EMBEDDING_MAP_FIGURE.as_posix(),
        "num_train": label_issue_metrics["num_train"],
        "num_flagged": label_issue_metrics["flagged"]["any"],
        "num_in_gallery": label_issue_metrics.get("num_in_gallery"),  # absent from metrics written before it
        "num_in_map": label_issue_metrics.get("num_in_map"),  # and so is this
        # absent from metrics written before it was measured
        "suggestion_val_balanced_accuracy": label_issue_metrics.get("suggestion_val_balanced_accuracy"),
        "num_val": label_issue_metrics.get("num_val"),
        "val_false_alarms": label_issue_metrics.get("val_false_alarms"),
    }


def learning_curve_figure(table: pd.DataFrame):
    figure, axis = new_axes()
    for column in ("test_balanced_accuracy", "test_macro_f1", "label_accuracy"):
        if table[column].notna().any():
            axis.plot(table["budget_used"], table[column], marker="o", label=column.replace("_", " "))
    axis.set(xlabel="expert answers used (budget)", ylabel="score", ylim=(0, 1.02),
             title="Learning curve: round 0 is phase 1")  # fmt: skip
    axis.grid(alpha=0.3)
    axis.xaxis.get_major_locator().set_params(integer=True)  # a count of answers: no -0.04 ticks
    if axis.get_lines():
        axis.legend()
    else:  # nothing to plot without a test split and the truth: say so, as the confusion figure does
        axis.text(0.5, 0.5, "nothing to plot: no test split and no true labels", ha="center", va="center",
                  transform=axis.transAxes)
    return figure


def class_recall_figure(lnl_metrics: dict):
    """Per-class recall of phase 1's clean guess C (share of each class's clean samples kept);
    without the truth, the share of each observed class's labels C keeps."""
    selection = lnl_metrics["selection"]
    if selection["recall_per_class"] is not None:
        by_class, overall = selection["recall_per_class"], selection["recall"]
        ylabel, what = "recall of clean samples in C", "clean-selection recall per class"
    else:
        by_class, overall = selection["kept_share_per_class"], selection["kept_share"]
        ylabel, what = "share of the observed labels kept in C", "labels kept per class (true labels unknown)"
    names = list(by_class)
    figure, axis = new_axes(size=(max(6.4, 1.5 + 0.35 * len(names)), 4.0))  # room for each class's tick label
    values = [np.nan if v is None else v for v in by_class.values()]
    positions = np.arange(len(names))  # positions, not categories: a class without a value keeps its tick
    bars = axis.bar(positions, values, color="tab:blue")
    # a recall of 0 is otherwise an invisible bar, an undefined one a missing class
    axis.bar_label(bars, fmt="%.2f", fontsize=8)
    for position in positions[np.isnan(values)]:  # bar_label skips a NaN bar
        axis.text(position, 0.01, "n/a", ha="center", va="bottom", fontsize=8)
    axis.set_xticks(positions, names, rotation=45, ha="right", rotation_mode="anchor")
    axis.set_xlim(-0.6, len(names) - 0.4)
    axis.axhline(overall, color="tab:red", linestyle="--", label=f"overall {overall:.2f}")
    # ylim above 1: room for the labels of full bars
    method = method_name(lnl_metrics["method"], lnl_metrics.get("selection_rule"))
    axis.set(xlabel="class", ylabel=ylabel, ylim=(0, 1.1), title=f"Phase 1 ({method}): {what}")
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)  # outside: inside it hid bars
    return figure


def confusion_figure(confusion: list[list[int]] | None, class_names: list[str], title: str):
    figure, axis = new_axes(size=(1.0 + 0.6 * len(class_names), 0.8 + 0.6 * len(class_names)))
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
