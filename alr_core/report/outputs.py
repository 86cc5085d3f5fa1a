"""Writing the report: metrics/report.json, plots/rounds.csv and the PNG figures, for phase 1
and the rounds that have finished.

The report stage writes it for every round. oracle_relabel@r, when it stops — waiting for
expert answers, or failing (a refused answers file, most often) — writes it for the rounds
before r only (:mod:`alr_core.report.stopped`): metrics/rounds/<r>.json and later files are still
on disk from an earlier run (a simulated one, or one before an answer changed) and would
otherwise show as current results, and data/report/labels.csv would give their labels."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd

from alr_core.common import artifacts, paths
from alr_core.report.final_labels import labels_summary, labels_table
from alr_core.report.overview import LABEL_ISSUE_KEYS, read_metrics
from alr_core.report.summary import (class_recall_figure, classes_without_test_images, confusion_figure,
                                    label_issues_summary, learning_curve_figure, rounds_table, summary)  # fmt: skip

NOTE_WIDTH = 60  # characters per line of the title note: the confusion figure of 3 classes is narrow


def report_status(planned_rounds: int, waiting_round: int | None = None, answers_file: Path | None = None,
                  failed: dict | None = None) -> dict:
    """metrics/report.json's ``status``: ``finished_rounds`` (the rounds in the report),
    ``planned_rounds`` (params ``rounds``), ``waiting_round`` (the round that waits for expert
    answers, None when none waits), ``answers_file`` (what it waits for, or None) and ``failed``
    (``{"round", "stage", "error"}`` of a round whose stage failed, or None)."""
    stopped_round = waiting_round if failed is None else failed["round"]
    return {
        "finished_rounds": planned_rounds if stopped_round is None else stopped_round - 1,
        "planned_rounds": planned_rounds,
        "waiting_round": waiting_round,
        "answers_file": None if answers_file is None else Path(answers_file).as_posix(),
        "failed": failed,
    }


def status_note(status: dict) -> str | None:
    """What the figures' titles add while a round waits for answers or after one failed; None
    when every round finished."""
    done = "phase 1" if status["finished_rounds"] == 0 else f"round {status['finished_rounds']}"
    if status.get("failed"):
        return f"stops at {done}; {status['failed']['stage']} failed (metrics/report.json: status)"
    if status["waiting_round"] is None:
        return None
    return f"stops at {done}; round {status['waiting_round']} waits for answers in {status['answers_file']}"


def write_report(status: dict) -> pd.DataFrame:
    """Read metrics/lnl.json, noise.json, data.json and metrics/rounds/<k>.json for k = 1 …
    ``status["finished_rounds"]``, and metrics/label_issues.json if it exists; write
    plots/rounds.csv, metrics/report.json (``status``, :func:`~alr_core.report.summary.summary`,
    ``classes_without_test_images``: :func:`~alr_core.report.summary.classes_without_test_images`,
    ``label_issues``: :func:`~alr_core.report.summary.label_issues_summary` and ``labels``:
    :func:`~alr_core.report.final_labels.labels_summary`), the figures and data/report/labels.csv
    (the working labels of the last finished round, or phase 1's). Returns the rounds table."""
    lnl_metrics = artifacts.read_json(paths.LNL_METRICS)
    round_metrics = [artifacts.read_json(paths.round_metrics(k)) for k in range(1, status["finished_rounds"] + 1)]
    table = rounds_table(lnl_metrics, round_metrics, artifacts.read_json(paths.NOISE_METRICS))
    data_metrics = artifacts.read_json(paths.DATA_METRICS)
    class_names = data_metrics["class_names"]
    label_issues = label_issues_summary(read_metrics(paths.LABEL_ISSUES_METRICS, LABEL_ISSUE_KEYS))
    latest = round_metrics[-1] if round_metrics else lnl_metrics
    finished = status["finished_rounds"]
    working = paths.round_dir(finished) / paths.WORKING_LABELS if finished else paths.LNL_WORKING_LABELS
    labels = labels_table(artifacts.read_parquet(working), class_names)
    model = f"round {latest['round']}" if round_metrics else "phase 1"
    figures = {
        paths.LEARNING_CURVE_FIGURE: learning_curve_figure(table),
        paths.PHASE1_RECALL_FIGURE: class_recall_figure(lnl_metrics),
        paths.CONFUSION_FIGURE: confusion_figure((latest["test"] or {}).get("confusion_matrix"), class_names,
                                                 f"Model after {model}, test split"),
    }  # fmt: skip
    note = status_note(status)
    import matplotlib.pyplot as plt  # after the figures, which choose the non-interactive backend

    artifacts.write_csv(paths.ROUNDS_PLOT, table)
    artifacts.write_csv(paths.REPORT_LABELS, labels)
    unscored = classes_without_test_images(data_metrics)
    artifacts.write_json(paths.REPORT_METRICS, {"status": status, **summary(table, lnl_metrics, round_metrics),
                                                "classes_without_test_images": unscored,
                                                "label_issues": label_issues, "labels": labels_summary(labels)})
    for path, figure in figures.items():
        if note:
            for axis in figure.axes:
                axis.set_title("\n".join([axis.get_title(), *textwrap.wrap(note, NOTE_WIDTH)]).strip())
        artifacts.write_figure(path, figure)
        plt.close(figure)
    return table
