"""The benchmark suite of issue 6 in one command: phase-1 epoch time and memory against N, ours
against the authors'-style code (bench/scale.py), and the default pipeline's time from a fresh
clone (bench/pipeline_time.py). Writes bench/results.md.

    python -m bench.run_all              # N = 10,000, 30,000, 100,000 and the pipeline (about 30 min on 2 CPU cores)
    python -m bench.run_all --quick      # smoke check: N = 1,000, 2,000, 5,000, no pipeline; prints only

Run it on an otherwise idle machine: every number is wall-clock time.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import sys
from pathlib import Path

from bench import pipeline_time, scale

QUICK_SIZES = (1_000, 2_000, 5_000)


def write_atomic(path: Path, text: str) -> None:
    """Write to a temporary file beside ``path``, then rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def log(message: str) -> None:
    """Progress, on stderr, so stdout carries only the results."""
    print(message, file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, no pipeline, print instead of writing")
    parser.add_argument("--with-pipeline", action="store_true", help="with --quick: time the pipeline as well")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers of the authors'-style run")
    parser.add_argument("--out", type=Path, help="default: bench/results.md; with --quick: none (print only)")
    args = parser.parse_args()
    out = args.out or (None if args.quick else Path(__file__).parent / "results.md")
    sizes = QUICK_SIZES if args.quick else scale.SIZES
    records = scale.measure(sizes, workers=args.workers, log=log)
    pipeline = pipeline_time.measure(log=log) if not args.quick or args.with_pipeline else None
    command = "python -m bench.run_all" + "".join(f" {shlex.quote(a)}" for a in sys.argv[1:])
    lines = [
        "# Benchmarks (issue 6)" + (" — QUICK smoke run, not results" if args.quick else ""),
        "",
        f"Command: `{command}`, run {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}.",
        f"Machine: {scale.hardware()}.",
        "",
        "## Phase-1 epoch time and memory against N; ours against the authors' style",
        "",
        *scale.markdown(records),
    ]
    if pipeline is not None:
        lines += ["", "## Default pipeline from a fresh clone", "", *pipeline_time.markdown(pipeline)]
    text = "\n".join(lines) + "\n"
    if out is not None:
        write_atomic(out, text)
        log(f"wrote {out}")
    print(text)


if __name__ == "__main__":
    main()
