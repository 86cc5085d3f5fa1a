"""The raw records of an evidence sweep: one JSON object per line, appended one run at a time,
so that an interrupted sweep resumes from what the file holds. Each record names the machine it
was measured on and the torch threads it ran with.

A file that has reached PART_BYTES is renamed to the next numbered part before the next append
(``ssl_evidence.jsonl`` → ``ssl_evidence.1.jsonl``, ``.2``, …), and a sweep reads the parts in
order, then the file: the records keep their order, and no file in git grows past about 1 MB."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path


PART_BYTES = 1_000_000


def record_files(path: Path) -> list[Path]:
    """``path``'s full parts (``<stem>.<n><suffix>``, n = 1, 2, … in order), then ``path``."""
    numbered = {}
    for part in path.parent.glob(f"{path.stem}.*{path.suffix}"):
        number = part.name[len(path.stem) + 1: len(part.name) - len(path.suffix)]
        if number.isdigit():
            numbered[int(number)] = part
    return [numbered[n] for n in sorted(numbered)] + [path]


def read_records(path: Path) -> list[dict]:
    """Every record of ``path`` and its parts, in the order they were appended; none when
    nothing was written yet."""
    return [json.loads(line) for file in record_files(path) if file.exists() for line in file.read_text().splitlines()]


def append_record(path: Path, record: dict) -> None:
    """Append ``record`` as one line, with this machine's ``machine`` and this process's
    ``threads`` unless it names them, flushed before the next run starts; a ``path`` of
    PART_BYTES or more becomes the next numbered part first."""
    if path.exists() and path.stat().st_size >= PART_BYTES:
        path.rename(path.with_name(f"{path.stem}.{len(record_files(path))}{path.suffix}"))
    with path.open("a") as handle:
        handle.write(json.dumps({"machine": machine(), "threads": threads()} | record) + "\n")


def threads() -> int | None:
    """torch's intra-op thread count in this process, None when torch was never imported (no
    run here trained anything). The same code, seed and machine train to other numbers at
    another thread count: a RetinaMNIST phase-1 run scored 0.364 at 2 threads, 0.361 at 1."""
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None else None


@functools.cache
def machine(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """This machine as a short string: CPU model, core count, a hash of the CPU's instruction-set
    flags and the torch version, e.g. "Intel(R) Xeon(R) Processor, 2 cores, flags 3f2a9c1e,
    torch 2.14.1". The same code and seed can train to other numbers on another CPU (torch's
    kernels dispatch on the instruction set): a paired difference means something only between
    runs of one machine."""
    model, flags = platform.processor() or platform.machine(), ""
    if cpuinfo.exists():
        fields = dict(line.split(":", 1) for line in cpuinfo.read_text().splitlines() if ":" in line)
        fields = {key.strip(): value.strip() for key, value in fields.items()}
        model, flags = fields.get("model name", model), " ".join(sorted(fields.get("flags", "").split()))
    try:
        torch = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch = "absent"
    flag_hash = hashlib.sha256(flags.encode()).hexdigest()[:8]
    return f"{model}, {os.cpu_count()} cores, flags {flag_hash}, torch {torch}"
