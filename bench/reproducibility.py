"""How much the default pipeline's numbers depend on the machine: the default ``dvc repro`` from
a fresh clone under several CPU configurations, and the reference range users can compare with.

    python -m bench.reproducibility                  # run every configuration, write the table
    python -m bench.reproducibility --check          # compare this workspace's metrics/report.json

A configuration is a number of torch threads (``OMP_NUM_THREADS``) and a vector instruction set
for torch's own kernels (``ATEN_CPU_CAPABILITY``; oneDNN, which runs the convolutions, is
capped alike with ``ONEDNN_MAX_CPU_ISA``): the two things that differ between two x86 machines
and change float summation order. One configuration runs twice, to show that a machine repeats
itself exactly. Each run clones HEAD (committed files only) into a temporary folder.

Writes ``bench/reproducibility.md`` (one row per run) and ``bench/reference_run.json``: for each
headline metric of ``metrics/report.json``, the lowest and highest value over the runs. The
runs of other machines stored there are kept (each run names its machine and commit), this
machine's are replaced: run it on each kind of CPU whose users should find their runs in the
range, and again on each after a change that alters results. ``--check`` says whether this
workspace's ``metrics/report.json`` lies in that range widened by ``--margin`` (default 0.02),
and exits 1 when it does not.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.records import machine

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "bench" / "reference_run.json"
TABLE = REPO / "bench" / "reproducibility.md"
HEADLINE = (
    "phase1_test_balanced_accuracy",
    "phase1_selection_worst_class_recall",
    "final_test_balanced_accuracy",
    "final_test_macro_f1",
    "final_label_accuracy",
    "cleaning_efficiency",
)
# the machine of the runs stored before each run named its own (bench/reproducibility.md at 6dd4508)
LEGACY_MACHINE = "Intel(R) Xeon(R) Processor, 2 cores, flags fc7df03f, torch 2.14.1"
# (label, threads, instruction set or None for the machine's best); the first runs twice
CONFIGURATIONS = (
    ("2 threads, native ISA", 2, None),
    ("2 threads, native ISA (repeat)", 2, None),
    ("1 thread, native ISA", 1, None),
    ("2 threads, AVX2", 2, "avx2"),
    ("1 thread, AVX2", 1, "avx2"),
)


def run_default(threads: int, isa: str | None) -> tuple[dict, float]:
    """``dvc repro`` of a fresh clone of HEAD; returns (metrics/report.json, seconds)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), DVC_NO_ANALYTICS="1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if isa:
        env |= {"ATEN_CPU_CAPABILITY": isa, "ONEDNN_MAX_CPU_ISA": isa.upper()}
    with tempfile.TemporaryDirectory(prefix="alr-repro-") as tmp:
        clone = Path(tmp) / "alr"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=clone, env=env,
                                capture_output=True, text=True)  # fmt: skip
        seconds = time.perf_counter() - start
        if result.returncode != 0:
            raise RuntimeError(f"dvc repro failed ({threads} threads, {isa}):\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
        return json.loads((clone / "metrics" / "report.json").read_text()), seconds


def reference(rows: list[dict]) -> dict:
    """Per headline metric, [lowest, highest] over the runs."""
    return {key: [min(r["metrics"][key] for r in rows), max(r["metrics"][key] for r in rows)] for key in HEADLINE}


def table(rows: list[dict]) -> str:
    """The runs by machine (each with its commit), then the range over all of them."""
    lines = [
        "# The default pipeline on several CPU configurations",
        "",
        "`python -m bench.reproducibility` on each machine below; each run is the default `dvc repro` of a fresh "
        "clone, at the commit it names.",
    ]
    for name in dict.fromkeys(row["machine"] for row in rows):
        lines += ["", f"{name}:", "", "| configuration | commit | " + " | ".join(HEADLINE) + " | seconds |",
                  "|---|---|" + "---|" * (len(HEADLINE) + 1)]  # fmt: skip
        for row in (row for row in rows if row["machine"] == name):
            values = " | ".join(f"{row['metrics'][key]:.3f}" for key in HEADLINE)
            lines.append(f"| {row['label']} | {row['commit'][:7]} | {values} | {row['seconds']:.0f} |")
    spread = reference(rows)
    lines += ["", "| range over every run | " + " | ".join(f"{lo:.3f}–{hi:.3f}" for lo, hi in spread.values()) + " |",
              "|---|" + "---|" * len(HEADLINE)]  # fmt: skip
    return "\n".join(lines) + "\n"


def stored_runs() -> list[dict]:
    """The runs in bench/reference_run.json; one written before runs named their machine and
    commit gets the file's commit and the machine its table names."""
    if not REFERENCE.is_file():
        return []
    stored = json.loads(REFERENCE.read_text())
    return [{"machine": LEGACY_MACHINE, "commit": stored.get("commit")} | run for run in stored["runs"]]


def check(report_path: Path, margin: float) -> int:
    """0 when every headline metric of ``report_path`` lies in the reference range ± margin."""
    ranges = json.loads(REFERENCE.read_text())["ranges"]
    report = json.loads(report_path.read_text())
    outside = []
    for key, (low, high) in ranges.items():
        value = report[key]
        inside = low - margin <= value <= high + margin
        print(f"{key:38s} {value:7.3f}   reference {low:.3f}–{high:.3f}   {'ok' if inside else 'OUTSIDE'}")
        outside += [] if inside else [key]
    if outside:
        print(f"outside the reference range ± {margin}: {', '.join(outside)}")
    return 1 if outside else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare metrics/report.json with the reference")
    parser.add_argument("--margin", type=float, default=0.02, help="tolerance around the reference range")
    args = parser.parse_args()
    if args.check:
        sys.exit(check(Path("metrics/report.json"), args.margin))
    commit = subprocess.check_output(["git", "rev-parse", "HEAD"], cwd=REPO, text=True).strip()
    here = machine()
    rows = [run for run in stored_runs() if run["machine"] != here]
    for label, threads, isa in CONFIGURATIONS:
        metrics, seconds = run_default(threads, isa)
        rows.append({"machine": here, "commit": commit, "label": label, "threads": threads, "isa": isa,
                     "metrics": metrics, "seconds": seconds})  # fmt: skip
        print(label, {key: round(metrics[key], 4) for key in HEADLINE}, f"{seconds:.0f} s", flush=True)
    TABLE.write_text(table(rows))
    REFERENCE.write_text(json.dumps({"ranges": reference(rows), "runs": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
