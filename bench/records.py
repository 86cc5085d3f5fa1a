"""The raw records of an evidence sweep: one JSON object per line, appended one run at a time,
so that an interrupted sweep resumes from what the file holds."""

from __future__ import annotations

import json
from pathlib import Path


def read_records(path: Path) -> list[dict]:
    """Every record in ``path``, in file order; none when the file does not exist yet."""
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def append_record(path: Path, record: dict) -> None:
    """Append ``record`` as one line, flushed before the next run starts."""
    with path.open("a") as handle:
        handle.write(json.dumps(record) + "\n")
