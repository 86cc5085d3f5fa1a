"""The raw records of an evidence sweep: one JSON object per line, appended one run at a time,
so that an interrupted sweep resumes from what the file holds. Each record names the machine it
was measured on and the torch threads it ran with."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path


def read_records(path: Path) -> list[dict]:
    """Every record in ``path``, in file order; none when the file does not exist yet."""
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def append_record(path: Path, record: dict) -> None:
    """Append ``record`` as one line, with this machine's ``machine`` and this process's
    ``threads`` unless it names them, flushed before the next run starts."""
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
