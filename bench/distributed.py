"""Samples per second of SimCLR pretraining and phase 1 (Co-teaching) on 1 and 2 CPU processes.

    python -m bench.distributed [--num-train 2000] [--image-size 28] [--epochs 2]

Each configuration runs as a training stage runs (``run_stage(main, training=True)`` in a
temporary folder whose params.yaml sets ``train.processes``), so 2 processes go through
torchrun, Gloo, DDP and the synchronised BatchNorm exactly as ``dvc repro`` would: 1 process
with 1 and with 2 torch threads, and 2 processes of 1 thread each (torchrun's default). The
data are the ``synthetic`` source's images (5 classes, long-tailed) with 40 % of the labels
flipped; the model is the small CNN; batch sizes are the defaults (256 for SimCLR, 64 for
phase 1), global in every configuration. Rates come from the loops' own timing: SimCLR's
augmented views per second (2 per image per epoch) and phase 1's train images per second per
network (training passes only; the epoch's whole-split passes and validation are reported
as whole-epoch seconds). Prints a markdown table (bench/distributed.md holds one).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from alr_core.common.params import default_params

REPO = Path(__file__).resolve().parents[1]
CONFIGURATIONS = ({"processes": 1, "threads": 1}, {"processes": 1, "threads": 2}, {"processes": 2, "threads": 1})


def bench_params(processes: int, epochs: int) -> dict:
    raw = default_params()
    raw["train"] |= {"device": "cpu", "processes": processes}
    raw["model"] |= {"arch": "small_cnn"}
    raw["pretrain"] |= {"method": "simclr", "epochs": epochs}
    # Co-teaching with a per-class rule: two networks and a whole-split pass per epoch, the loop timed here
    raw["lnl"] |= {"method": "coteaching", "selection": "class_gmm", "epochs": epochs, "num_gradual": 1}
    return raw


def bench_data(num_train: int, image_size: int):
    """(images, samples table, PipelineData) of the synthetic source, 40 % of train labels flipped."""
    from alr_core.data.datasets import PipelineData, SplitData
    from alr_core.data.synthetic import synthetic_images, synthetic_layout

    labels, splits = synthetic_layout(num_train, 5, 10.0, 15, 30)
    images = synthetic_images(labels, 5, image_size, 1, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    observed = labels.copy()
    flip = (splits == "train") & (rng.random(len(labels)) < 0.4)
    observed[flip] = (labels[flip] + rng.integers(1, 5, flip.sum())) % 5

    def split(name: str, label_source: np.ndarray) -> SplitData:
        rows = np.flatnonzero(splits == name)
        return SplitData(np.array([f"{name}{i}" for i in rows]), images[rows], label_source[rows],
                         labels[rows] if name == "train" else None)  # fmt: skip

    data = PipelineData(split("train", observed), split("val", labels), split("test", labels),
                        [str(k) for k in range(5)])  # fmt: skip
    samples = pd.DataFrame({"sample_id": [f"s{i}" for i in range(len(labels))], "split": splits})
    return images, samples, data


def worker() -> None:
    """One configuration, as a training stage: rank 0 writes the loops' timing to argv[2]."""
    from alr_core.common import artifacts, paths
    from alr_core.common.params import load_params
    from alr_core.lnl.phase1 import train_phase1
    from alr_core.nn import distributed
    from alr_core.ssl.loop import run_pretrain

    params = load_params(paths.PARAMS)
    distributed.join(params.train.device)
    settings = json.loads(sys.argv[3])
    images, samples, data = bench_data(settings["num_train"], settings["image_size"])
    pretrained = run_pretrain(images, samples, params, progress=False)
    phase1 = train_phase1(data, params, progress=False)
    if distributed.is_main_process():
        artifacts.write_json(sys.argv[2], {"pretrain": pretrained.timing, "phase1": phase1.timing,
                                           "phase1_epoch_seconds": phase1.timing["epoch_seconds"]})  # fmt: skip


def measure(configuration: dict, settings: dict) -> dict:
    with tempfile.TemporaryDirectory(prefix="alr-bench-distributed-") as folder:
        raw = bench_params(configuration["processes"], settings["epochs"])
        (Path(folder) / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        out = Path(folder) / "timing.json"
        env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS=str(configuration["threads"]))
        done = subprocess.run([sys.executable, "-m", "bench.distributed", "--worker", str(out), json.dumps(settings)],
                              cwd=folder, env=env, capture_output=True, text=True)  # fmt: skip
        if done.returncode != 0:
            sys.exit(f"{configuration} failed:\n{done.stderr}")
        return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-train", type=int, default=2000)
    parser.add_argument("--image-size", type=int, default=28)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    settings = {"num_train": args.num_train, "image_size": args.image_size, "epochs": args.epochs}
    print(f"{args.num_train} train images at {args.image_size} px, {args.epochs} epochs each, "
          f"{os.cpu_count()} CPU cores\n")  # fmt: skip
    print("| processes × torch threads | SimCLR views/s | phase 1 train images/s per network "
          "| phase 1 seconds per epoch (last) |\n|---|---|---|---|")  # fmt: skip
    for configuration in CONFIGURATIONS:
        timing = measure(configuration, settings)
        rates = (timing["pretrain"]["views_per_second"], timing["phase1"]["train_images_per_second_per_network"])
        print(f"| {configuration['processes']} × {configuration['threads']} | {rates[0]:.0f} | {rates[1]:.0f} | "
              f"{timing['phase1_epoch_seconds'][-1]:.2f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        from alr_core.common.cli import run_stage

        run_stage(worker, training=True)
    else:
        main()
