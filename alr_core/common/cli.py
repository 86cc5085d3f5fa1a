"""Entry-point helpers shared by the stage scripts."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Callable

from alr_core.common.errors import AlrError, AwaitingAnswers


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's ``main``; a bad input becomes one ``error:`` line and exit status 1, any
    other exception its traceback and exit status 1. Under DVC either failure is followed by
    :func:`restore_hint`; a pause for expert answers (:class:`AwaitingAnswers`) is not."""
    try:
        main()
    except AlrError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if not isinstance(exc, AwaitingAnswers):
            _print_restore_hint()
        sys.exit(1)
    except Exception:
        traceback.print_exc()
        _print_restore_hint()
        sys.exit(1)


def restore_hint(stage: str) -> str:
    """How to get back the outputs DVC removed before running ``stage`` (its address, e.g.
    ``lnl_train`` or ``retrain@3``): the cached ones from the last successful run's dvc.lock
    entry; outputs with ``cache: false`` never entered the cache."""
    return (
        f"hint: DVC deleted the outputs of {stage} before running it: `dvc checkout {stage}` brings back "
        "those of its last successful run; its metrics and plots (cache: false) only git can bring back, "
        "if they were committed"
    )


def _print_restore_hint() -> None:
    # DVC sets DVC_STAGE for every stage command it runs (dvc/stage/run.py); by hand nothing
    # was removed, so there is nothing to restore
    stage = os.environ.get("DVC_STAGE")
    if stage:
        print(restore_hint(stage), file=sys.stderr)


def round_argument(description: str) -> str:
    """The ``--round`` argument of a per-round stage (a key of params ``rounds``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--round", required=True, help="round number, a key of params 'rounds'")
    return parser.parse_args().round
