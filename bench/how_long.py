"""How long will it take? Minutes of the default pipeline on this machine against the number of
train images and the image size.

    python -m bench.how_long                       # image sizes 28 and 64, measured at N = 2,000 and 500

The default schedule (alr's built-in defaults) is 15 epochs of SimCLR, 40 phase-1 epochs (of
each network phase 1 trains: the rule's and the safety net's CE) and 5 rounds of 10 epochs;
running it at every size would take hours, so each size is measured on the ``synthetic`` source
(5 classes, otherwise the default params) by three ``dvc repro`` runs of a fresh clone of HEAD:
at ``--num-train`` images with 1 / 2 / 1 epochs (SimCLR pretraining / phase 1 / each round) and with
2 / 4 / 2, whose differences give the seconds of one epoch of each, and at a quarter of the
images with 1 / 2 / 1 epochs. The rest of a run (process start-ups, data, scoring, queries) is
``a + b·N``: the two sizes give a and b. Epoch times grow linearly with N (measured up to 100k
in bench/results.md), so the minutes of the default schedule for N images are
``a + b·N + N / num_train × (15 × SimCLR epoch + 40 × phase-1 epoch + 10 × epoch of the rounds)``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from alr_core.common.params import parse_params
from bench.pipeline_time import timed_repro
from bench.records import machine

REPO = Path(__file__).resolve().parents[1]
DEFAULTS = parse_params({})
# epochs of the default schedule; retrain: of each round, its measured epoch time being one epoch
# of all 5 rounds together
DEFAULT_EPOCHS = {"pretrain": DEFAULTS.pretrain.epochs if DEFAULTS.pretrain.method != "none" else 0,
                  "lnl_train": DEFAULTS.lnl.epochs, "retrain": DEFAULTS.al.epochs}  # fmt: skip
SCALED_SIZES = (1_000, 10_000, 50_000)


def run(image_size: int, num_train: int, epochs: dict, env: dict) -> dict:
    """Seconds of one ``dvc repro`` in a fresh clone: the whole run and each training group."""
    with tempfile.TemporaryDirectory(prefix="alr-how-long-") as tmp:
        clone = Path(tmp) / "alr"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        params = yaml.safe_load((clone / "params.yaml").read_text())
        params["data"] |= {"source": "synthetic", "image_size": image_size}
        params["data"]["synthetic"] |= {"num_train": num_train, "num_classes": 5}
        params["pretrain"] |= {"method": "simclr", "epochs": epochs["pretrain"]}
        params["lnl"]["epochs"] = epochs["lnl_train"]
        params["al"]["epochs"] = epochs["retrain"]
        (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        timing = timed_repro(clone, env)
    stages = timing["stages"]
    return {"total": timing["seconds"]} | {
        group: sum(s for name, s in stages if name.split("@")[0] == group) for group in DEFAULT_EPOCHS
    }


def minutes(row: dict, images: int) -> float:
    """Minutes of the default schedule for ``images`` train images from one size's measurements
    (``row``: epoch seconds per group at ``num_train`` images, and the rest's a + b·N)."""
    trained = sum(row["epoch"][group] * DEFAULT_EPOCHS[group] for group in DEFAULT_EPOCHS)
    return (row["constant"] + row["slope"] * images + trained * images / row["num_train"]) / 60


def measure(size: int, n: int, env: dict) -> dict:
    """Epoch seconds per group at ``n`` images and the rest of a run as constant + slope·N."""
    short, long = {"pretrain": 1, "lnl_train": 2, "retrain": 1}, {"pretrain": 2, "lnl_train": 4, "retrain": 2}
    quarter = n // 4
    a, b, c = run(size, n, short, env), run(size, n, long, env), run(size, quarter, short, env)
    # seconds of one epoch at N = n (retrain: one epoch of each of the 5 rounds together)
    epoch = {group: (b[group] - a[group]) / (long[group] - short[group]) for group in DEFAULT_EPOCHS}
    trained_short = sum(epoch[group] * short[group] for group in DEFAULT_EPOCHS)
    rest_n = a["total"] - trained_short
    rest_quarter = c["total"] - trained_short * quarter / n
    # process start-ups dominate the rest; a slope below zero is timing noise, not a saving
    slope = max((rest_n - rest_quarter) / (n - quarter), 0.0)
    return {"size": size, "num_train": n, "epoch": epoch, "constant": rest_n - slope * n, "slope": slope}


def table(rows: list[dict], header: str) -> str:
    lines = [header, "",
             "| image size | SimCLR epoch (s) | phase-1 epoch (s) | one epoch of all 5 rounds (s) | rest of a run (s) | "
             + " | ".join(f"N = {size:,} (min)" for size in SCALED_SIZES) + " |",
             "|---|---|---|---|---|" + "---|" * len(SCALED_SIZES)]  # fmt: skip
    for row in rows:
        epoch = row["epoch"]
        lines.append(f"| {row['size']} px | {epoch['pretrain']:.1f} | {epoch['lnl_train']:.1f} | {epoch['retrain']:.1f} | "
                     f"{row['constant']:.0f} + {row['slope'] * 1000:.1f} per 1k images | "
                     + " | ".join(f"{minutes(row, images):.0f}" for images in SCALED_SIZES) + " |")  # fmt: skip
    schedule = ", ".join(f"{DEFAULT_EPOCHS[group]} {name}" for group, name in
                         (("pretrain", "SimCLR epochs"), ("lnl_train", "phase-1 epochs"), ("retrain", "epochs per round")))
    return "\n".join(lines + ["", f"Epoch times are at N = {rows[0]['num_train']:,}; the minutes are of the default "
                                  f"schedule ({schedule}) and scale them linearly in N."])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-sizes", type=int, nargs="+", default=[28, 64])
    parser.add_argument("--num-train", type=int, default=2000)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    commit = subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True).strip()
    rows = []
    for size in args.image_sizes:
        rows.append(measure(size, args.num_train, env))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(table(rows, f"`python -m bench.how_long` at {commit}, {machine()}; "
                      f"synthetic source, 5 classes, 75 val and 150 test images; measured at N = "
                      f"{args.num_train:,} and {args.num_train // 4:,} train images."))  # fmt: skip


if __name__ == "__main__":
    main()
