"""The report of a run that stopped in round r's oracle_relabel stage (its ``on_error``).

A module of its own: the report stage imports :mod:`alr_core.report.outputs` and must not
depend on the rounds' and the answers' code that this one reads."""

from __future__ import annotations

import sys
from pathlib import Path

from alr_core.active.rounds import current_round
from alr_core.common import paths
from alr_core.common.cli import round_argument
from alr_core.common.errors import AlrError, AwaitingAnswers
from alr_core.common.params import load_params
from alr_core.human.annotation import find_answers
from alr_core.report.outputs import report_status, write_report
from alr_core.report.summary import table_text


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
