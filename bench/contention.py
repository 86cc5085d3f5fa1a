"""The default ``lnl_train`` on an idle machine and beside a busy process: does the time grow in
proportion to the CPU lost?

    python -m bench.contention                       # the default lnl_train, 40 epochs
    python -m bench.contention --epochs 4 --spin-counts 1000 default   # with torch's own spinning too

Prepares the default data once (``prepare`` + ``inject_noise`` of the default params in a
temporary copy of HEAD's files), then times ``python -m stages.lnl_train`` there, alone and
with one busy process started beside it (``--rival python``: a pure-Python loop, one core's
worth of work; ``--rival torch``: another torch program training a convolution on its own
default threads and OpenMP's default busy-waiting, as a second training run would), for
each ``GOMP_SPINCOUNT`` given (``default`` leaves GNU OpenMP's own, ~300k spins; alr sets 1000).
The busy process is killed after each timed run. Run it on an otherwise idle machine: the point
is to control the contention. Prints a markdown table; the ratio busy / idle is the slow-down.
On 2 cores, losing one core to another process can at worst double the time (ratio 2).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench.records import machine

REPO = Path(__file__).resolve().parents[1]
# the neighbours: a pure-Python loop (one core's worth), or another torch program training
# convolutions on its own default threads, with OpenMP's default busy-waiting (alr's or not)
RIVALS = {
    "python": "while True: pass",
    "torch": ("import torch\nconv = torch.nn.Conv2d(32, 32, 3, padding=1)\n"
              "x = torch.randn(64, 32, 28, 28)\nwhile True:\n    conv(x).sum().backward()"),
}


def copy_head(dest: Path) -> None:
    subprocess.run(["git", "clone", "-q", str(REPO), str(dest)], check=True)


def stage_env(spin_count: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GOMP_SPINCOUNT", "OMP_NUM_THREADS")}
    if spin_count != "default":
        env["GOMP_SPINCOUNT"] = spin_count
    else:
        # alr_core sets 1000 unless the variable exists; OpenMP's documented default is 300000
        env["GOMP_SPINCOUNT"] = "300000"
    return env


def timed_stage(root: Path, spin_count: str, rival_code: str | None) -> float:
    rival_env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    rival = subprocess.Popen([sys.executable, "-c", rival_code], env=rival_env) if rival_code else None
    try:
        if rival:
            time.sleep(1.0)  # let the scheduler see it as a running process first
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "stages.lnl_train"], cwd=root, env=stage_env(spin_count),
                       check=True, capture_output=True, text=True)  # fmt: skip
        return time.perf_counter() - start
    finally:
        if rival:
            rival.kill()
            rival.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="lnl.epochs (default: the params default)")
    parser.add_argument("--spin-counts", nargs="+", default=["1000"],
                        help="GOMP_SPINCOUNT values to compare; 'default' = OpenMP's own")  # fmt: skip
    parser.add_argument("--rival", choices=sorted(RIVALS), default="python",
                        help="the busy neighbour: a pure-Python loop or a torch program")  # fmt: skip
    args = parser.parse_args()
    commit = subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True).strip()
    with tempfile.TemporaryDirectory(prefix="alr-contention-") as tmp:
        root = Path(tmp) / "alr"
        copy_head(root)
        if args.epochs is not None:
            params = yaml.safe_load((root / "params.yaml").read_text())
            params["lnl"]["epochs"] = args.epochs
            (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        for module in ("stages.fingerprint", "stages.prepare", "stages.inject_noise"):
            subprocess.run([sys.executable, "-m", module], cwd=root, check=True, capture_output=True)
        rows = []
        for spin_count in args.spin_counts:
            idle = timed_stage(root, spin_count, None)
            busy = timed_stage(root, spin_count, RIVALS[args.rival])
            rows.append((spin_count, idle, busy))
            print(f"GOMP_SPINCOUNT={spin_count}: idle {idle:.1f} s, busy {busy:.1f} s, ratio {busy / idle:.2f}",
                  file=sys.stderr, flush=True)  # fmt: skip
    epochs = args.epochs if args.epochs is not None else "default (40)"
    print(f"`python -m bench.contention {' '.join(sys.argv[1:])}` at {commit}, {machine()}; lnl_train epochs: "
          f"{epochs}; torch's default threads (one per core); the busy neighbour: {args.rival}.\n")
    print(f"| GOMP_SPINCOUNT | idle (s) | beside the busy {args.rival} process (s) | ratio |")
    print("|---|---|---|---|")
    for spin_count, idle, busy in rows:
        print(f"| {spin_count} | {idle:.1f} | {busy:.1f} | {busy / idle:.2f} |")


if __name__ == "__main__":
    main()
