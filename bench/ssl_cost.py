"""What the label-free path costs against the number of train images: SimCLR pretraining (views/s
and seconds per epoch), the embedding pass, the feature rules (kNN and K-fold probes), and one
round's retrain of a head on cached embeddings (``model.freeze: backbone``), on the synthetic
source at 28 px, in-process, this machine's CPU.

    python -m bench.ssl_cost --sizes 1000 10000 50000 --out bench/ssl_cost.md

One SimCLR epoch is timed per size (epochs cost the same, so the default 15 take 15 times as
long); the retrain is the round stage's fine-tune, al.epochs (10) on every train sample.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from alr_core.active.retrain import fine_tune
from alr_core.common.params import default_params, parse_params
from alr_core.common.seeding import rng_for
from alr_core.data.datasets import PipelineData, SplitData, model_inputs
from alr_core.data.prepare import class_names, prepare
from alr_core.lnl.feature_rules import kfold_probs, nearest_neighbours
from alr_core.lnl.phase1 import model_spec, new_network
from alr_core.nn.training import input_stats
from alr_core.ssl.loop import run_pretrain
from bench.records import machine


def measure(num_train: int) -> dict:
    raw = default_params()
    raw["data"] |= {"source": "synthetic", "synthetic": {"num_train": num_train, "num_classes": 5}}
    raw["pretrain"] |= {"method": "simclr", "epochs": 1}
    raw["train"]["device"] = "cpu"
    raw["model"] |= {"init": "ssl", "freeze": "backbone"}
    params = parse_params(raw)
    data = prepare(params.data, rng_for(0, "split"))
    samples = data.samples
    pretrain = run_pretrain(data.images, samples[["sample_id", "split"]], params, progress=False)
    rows = {s: np.flatnonzero(samples["split"].to_numpy() == s) for s in ("train", "val", "test")}
    labels = samples["label"].to_numpy()

    def split(name: str) -> SplitData:
        r = rows[name]
        return SplitData(samples["sample_id"].to_numpy()[r], data.images[r], labels[r],
                         embeddings=pretrain.embeddings[r])  # fmt: skip

    frozen = model_inputs(PipelineData(split("train"), split("val"), split("test"), class_names(samples)), True)
    train = frozen.train
    start = time.perf_counter()
    nearest_neighbours(train.images, params.lnl.knn_k)
    knn = time.perf_counter() - start
    start = time.perf_counter()
    kfold_probs(train.images, train.labels, len(frozen.class_names), params.lnl.cv_folds, 0)
    kfold = time.perf_counter() - start
    spec = model_spec(params, frozen)
    head, _ = new_network(spec, params)
    start = time.perf_counter()
    fine_tune(head, input_stats(train.images), train, frozen, params, seed=0, progress=False)
    retrain = time.perf_counter() - start
    timing = pretrain.timing
    return {
        "train images": len(rows["train"]),
        "SimCLR views/s": timing["views_per_second"],
        "SimCLR s/epoch": timing["seconds"]["train"],
        "default 15 epochs, min": 15 * timing["seconds"]["train"] / 60,
        "embedding pass, images/s": timing["embedded_images_per_second"],
        "kNN (k 10), s": knn,
        "K-fold probes (5), s": kfold,
        "retrain of a frozen round, s": retrain,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[1_000, 10_000, 50_000])
    parser.add_argument("--out", type=Path, default=Path("bench/ssl_cost.md"))
    args = parser.parse_args()
    results = [measure(n) for n in args.sizes]
    keys = list(results[0])
    lines = [
        f"SSL path cost: `python -m bench.ssl_cost --sizes {' '.join(map(str, args.sizes))}`; synthetic 28×28×1, "
        f"small CNN, {torch.get_num_threads()} torch threads on {machine()}.",
        "",
        "| " + " | ".join(keys) + " |",
        "|" + "---|" * len(keys),
    ]
    for row in results:
        lines.append("| " + " | ".join(f"{row[k]:,.1f}" if isinstance(row[k], float) else f"{row[k]:,}"
                                       for k in keys) + " |")  # fmt: skip
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
