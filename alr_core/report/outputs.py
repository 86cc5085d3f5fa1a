"""Writing the report: metrics/report.json, plots/rounds.csv and the PNG figures, for phase 1
and the rounds that have finished.

The report stage writes it for every round. oracle_relabel@r, when it stops — waiting for
expert answers, or failing (a refused answers file, most often) — writes it for the rounds
before r only (:func:`report_before_round`): metrics/rounds/<r>.json and later files are still
on disk from an earlier run (a simulated one, or one before an answer changed) and would
otherwise show as current results, and data/report/labels.csv would give their labels."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pandas as pd

from alr_core.active.rounds import current_round
from alr_core.common import artifacts, paths
from alr_core.common.cli import round_argument
from alr_core.common.errors import AlrError, AwaitingAnswers
from alr_core.common.params import load_params
from alr_core.human.annotation import find_answers
from alr_core.report.final_labels import labels_summary, labels_table
from alr_core.report.overview import LABEL_ISSUE_KEYS, read_metrics
from alr_core.report.summary import (class_recall_figure, confusion_figure, label_issues_summary,
                                    learning_curve_figure, rounds_table, summary, table_text)  # fmt: skip

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


def report_before_round(exc: Exception) -> None:
    """What ``python -m stages.oracle_relabel --round <r>`` does when it stops with ``exc`` (its
    ``on_error``): the report for phase 1 and the rounds before round r, whose status says that
    the round waits for answers (:class:`~alr_core.common.errors.AwaitingAnswers`) or that the
    stage failed, and the table printed. Never raises: a report that cannot be written is said in
    one line, and the stage's own error follows. (The other round stages do not import the
    report, which would make them depend on its code.)"""
    try:
        stage, round_name = Path(sys.argv[0]).stem, round_argument(__doc__)
        params = load_params(paths.PARAMS)
        number = current_round(params, round_name).number
        if isinstance(exc, AwaitingAnswers):
            status = report_status(len(params.rounds), number, find_answers(number))
        else:
            lines = [line for line in str(exc).splitlines() if line.strip()]
            error = lines[0] if isinstance(exc, AlrError) else f"{type(exc).__name__}: {lines[0] if lines else ''}"
            failed = {"round": number, "stage": f"{stage}@{round_name}", "error": error}
            status = report_status(len(params.rounds), failed=failed)
        table = write_report(status)
    except Exception as report_error:  # the stage's own error matters more; say why, briefly
        print(f"{paths.REPORT_METRICS} was not updated ({type(report_error).__name__}: {report_error}); "
              "it may show an earlier run's rounds", file=sys.stderr, flush=True)  # fmt: skip
        return
    print(f"{paths.REPORT_METRICS} and plots/ now show phase 1 and the rounds before round {number}:\n"
          f"{table_text(table)}", flush=True)  # fmt: skip


def write_report(status: dict) -> pd.DataFrame:
    """Read metrics/lnl.json, noise.json, data.json and metrics/rounds/<k>.json for k = 1 …
    ``status["finished_rounds"]``, and metrics/label_issues.json if it exists; write
    plots/rounds.csv, metrics/report.json (``status``, :func:`~alr_core.report.summary.summary`,
    ``label_issues``: :func:`~alr_core.report.summary.label_issues_summary` and ``labels``:
    :func:`~alr_core.report.final_labels.labels_summary`), the figures and data/report/labels.csv
    (the working labels of the last finished round, or phase 1's). Returns the rounds table."""
    lnl_metrics = artifacts.read_json(paths.LNL_METRICS)
    round_metrics = [artifacts.read_json(paths.round_metrics(k)) for k in range(1, status["finished_rounds"] + 1)]
    table = rounds_table(lnl_metrics, round_metrics, artifacts.read_json(paths.NOISE_METRICS))
    class_names = artifacts.read_json(paths.DATA_METRICS)["class_names"]
    label_issues = label_issues_summary(read_metrics(paths.LABEL_ISSUES_METRICS, LABEL_ISSUE_KEYS))
    latest = round_metrics[-1] if round_metrics else lnl_metrics
    finished = status["finished_rounds"]
    working = paths.round_dir(finished) / paths.WORKING_LABELS if finished else paths.LNL_WORKING_LABELS
    labels = labels_table(pd.read_parquet(working), class_names)
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
    artifacts.write_json(paths.REPORT_METRICS, {"status": status, **summary(table, lnl_metrics, round_metrics),
                                                "label_issues": label_issues, "labels": labels_summary(labels)})
    for path, figure in figures.items():
        if note:
            for axis in figure.axes:
                axis.set_title("\n".join([axis.get_title(), *textwrap.wrap(note, NOTE_WIDTH)]).strip())
        artifacts.write_figure(path, figure)
        plt.close(figure)
    return table
