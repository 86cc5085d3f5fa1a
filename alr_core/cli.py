"""Entry-point wrapper shared by the stage scripts."""

from __future__ import annotations

import sys
from typing import Callable

from alr_core.errors import AlrError


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's ``main``; a bad input becomes one ``error:`` line and exit status 1."""
    try:
        main()
    except AlrError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
