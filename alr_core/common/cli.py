"""Entry-point helpers shared by the stage scripts."""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from alr_core.common.errors import AlrError


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's ``main``; a bad input becomes one ``error:`` line and exit status 1."""
    try:
        main()
    except AlrError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)


def round_argument(description: str) -> str:
    """The ``--round`` argument of a per-round stage (a key of params ``rounds``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--round", required=True, help="round number, a key of params 'rounds'")
    return parser.parse_args().round
