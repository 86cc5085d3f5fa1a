"""Phase-1 speed and memory on this machine: throughput, time outside the model, VOG overhead,
closed-form gradients against a full backward pass, and VOG snapshot memory.

    python -m bench.lnl_speed --out bench/lnl_speed.md

Uses random 28×28×3 uint8 images (5 classes); timings do not depend on pixel values.
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from alr_core.common.params import load_params, parse_params
from alr_core.data.datasets import PipelineData, SplitData
from alr_core.lnl.phase1 import train_phase1
from alr_core.lnl.vog import last_layer_gradient
from alr_core.nn.models import ModelSpec, build_model
from alr_core.nn.training import per_sample_loss
from bench.records import machine

NUM_CLASSES = 5


def synthetic_data(num_train: int, seed: int = 0) -> PipelineData:
    rng = np.random.default_rng(seed)

    def split(n, prefix):
        labels = rng.integers(0, NUM_CLASSES, n)
        images = rng.integers(0, 256, (n, 28, 28, 3), dtype=np.uint8)
        return SplitData(np.array([f"{prefix}/{i}" for i in range(n)]), images, labels, labels.copy())

    return PipelineData(split(num_train, "train"), split(256, "val"), split(256, "test"),
                        [str(k) for k in range(NUM_CLASSES)])  # fmt: skip


def params_for(method: str, epochs: int, **lnl) -> object:
    base = dataclasses.asdict(load_params("params.yaml"))
    # the paper's per-batch cut these timings were first measured with, whatever params.yaml says
    base["lnl"] |= {"method": method, "selection": "global", "epochs": epochs, **lnl}
    base["model"]["arch"] = "small_cnn"
    base["train"]["device"] = "cpu"
    return parse_params(base)


def run(data, method, epochs, **lnl) -> dict:
    seconds = train_phase1(data, params_for(method, epochs, **lnl), progress=False).timing["seconds"]
    return seconds | {"total": sum(seconds.values()), "epochs": epochs}


def model_only_seconds(data: PipelineData, num_networks: int, epochs: int, batch_size: int) -> float:
    """Forward, backward and SGD step alone, on ready inputs: the floor for an epoch."""
    torch.manual_seed(0)
    nets = [build_model(ModelSpec("small_cnn", NUM_CLASSES, 3, 28, 0.3)) for _ in range(num_networks)]
    optimizer = torch.optim.SGD([p for n in nets for p in n.parameters()], lr=0.01, momentum=0.9)
    x = torch.randn(batch_size, 3, 28, 28).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, NUM_CLASSES, (batch_size,))
    steps = epochs * -(-len(data.train.labels) // batch_size)
    start = time.perf_counter()
    for _ in range(steps):
        loss = sum(per_sample_loss(net(x)[1], y).mean() for net in nets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def gradient_check(num_samples: int = 256) -> dict:
    """Closed-form G against per-sample last-layer gradients from a full backward pass.

    Timing in float32 (the closed form needs only the forward outputs every method computes
    anyway, so its own cost is the formula); agreement in float64."""
    torch.manual_seed(0)
    model = build_model(ModelSpec("small_cnn", NUM_CLASSES, 3, 28, 0.3)).eval()
    x = torch.randn(num_samples, 3, 28, 28)
    y = torch.randint(0, NUM_CLASSES, (num_samples,))

    def per_sample_backward(net, inputs):
        rows = []
        for i in range(len(inputs)):
            net.zero_grad()
            _, logit = net(inputs[i : i + 1])
            per_sample_loss(logit, y[i : i + 1]).sum().backward()
            rows.append(torch.cat([net.head.weight.grad[y[i]], net.head.bias.grad[y[i], None]]))
        return torch.stack(rows)

    with torch.no_grad():
        start = time.perf_counter()
        features, logits = model(x)
        forward_seconds = time.perf_counter() - start
        start = time.perf_counter()
        last_layer_gradient(logits.softmax(1), features, y)
        formula_seconds = time.perf_counter() - start
    start = time.perf_counter()
    per_sample_backward(model, x)
    backward_seconds = time.perf_counter() - start
    exact = model.double()
    with torch.no_grad():
        features, logits = exact(x[:64].double())
        closed = last_layer_gradient(logits.softmax(1), features, y[:64])
    difference = (closed - per_sample_backward(exact, x[:64].double())).abs().max()
    return {"samples": num_samples, "forward_seconds": forward_seconds, "formula_seconds": formula_seconds,
            "backward_seconds": backward_seconds, "max_abs_difference": float(difference)}  # fmt: skip


MEMORY_CHILD = """
import resource, torch
from alr_core.lnl.vog import VogBuffer
def rss():
    return int(open('/proc/self/status').read().split('VmRSS:')[1].split()[0]) * 1024
n, dim, window = {n}, {dim}, {window}
torch.zeros(1)
base = rss()
buffer = VogBuffer(n, dim, window)
for _ in range(window + 1):
    buffer.add(torch.randn(n, dim))
vog = buffer.vog()
peak = int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0]) * 1024
print(base, peak, rss())
"""


def snapshot_memory(n: int, dim: int, window: int) -> dict:
    code = MEMORY_CHILD.format(n=n, dim=dim, window=window)
    base, peak, after = map(int, subprocess.check_output([sys.executable, "-c", code], text=True).split())
    return {"formula_bytes": window * n * dim * 4, "resident_bytes": after - base, "peak_bytes": peak - base}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-size", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=14)
    parser.add_argument("--out", type=Path, default=Path("bench/lnl_speed.md"))
    args = parser.parse_args()
    data = synthetic_data(args.train_size)
    batch_size = load_params("params.yaml").train.batch_size
    schedule = {"num_gradual": 10, "vog_window": 5}

    ce = run(data, "ce", args.epochs)
    plain = run(data, "coteaching", args.epochs, **schedule)
    vog_eval = run(data, "coteaching_vog", args.epochs, vog_source="eval", **schedule)
    vog_train = run(data, "coteaching_vog", args.epochs, vog_source="train", **schedule)
    floor = model_only_seconds(data, 2, args.epochs, batch_size)
    snapshot_epochs = args.epochs - (schedule["num_gradual"] + 1 - schedule["vog_window"])
    steady = (plain["total"] + vog_eval["vog_snapshot"] * args.epochs / snapshot_epochs) / plain["total"]
    grads = gradient_check()
    memory = snapshot_memory(100_000, 129, 5)
    n = args.train_size
    lines = [
        "# Phase-1 speed (`python -m bench.lnl_speed`)\n",
        f"Machine: {machine()}, {torch.get_num_threads()} torch threads, CPU. Data: {n} random 28×28×3 images, "
        f"5 classes, batch {batch_size}, {args.epochs} epochs, small CNN, T_k = 10, W = 5.\n",
        "| measure | value |",
        "|---|---|",
        f"| training throughput, `ce` (images/s, one network) | {n * args.epochs / ce['train']:.0f} |",
        f"| training throughput, `coteaching` (images/s per network) | {n * args.epochs / plain['train']:.0f} |",
        f"| share of a Co-teaching training epoch outside forward/backward/step | "
        f"{1 - floor / plain['train']:.1%} |",
        f"| epoch time `coteaching_vog` (eval snapshots) / `coteaching`, whole run | "
        f"{vog_eval['total'] / plain['total']:.3f} |",
        f"| same, an epoch that takes a snapshot (steady state) | {steady:.3f} |",
        f"| epoch time `coteaching_vog` (snapshots from the training forward) / `coteaching` | "
        f"{vog_train['total'] / plain['total']:.3f} |",
        f"| closed-form G for {grads['samples']} samples: formula on forward outputs, s | "
        f"{grads['formula_seconds']:.5f} (the batched forward itself: {grads['forward_seconds']:.3f}) |",
        f"| same gradients by a per-sample forward + backward, s | {grads['backward_seconds']:.3f} "
        f"({grads['backward_seconds'] / (grads['forward_seconds'] + grads['formula_seconds']):.0f}× the "
        "forward + formula) |",
        f"| max abs difference closed form vs backward (float64, 64 samples) | {grads['max_abs_difference']:.1e} |",
        f"| VOG snapshots, N = 100,000, D + 1 = 129, W = 5: formula W·N·(D+1)·4 B | "
        f"{memory['formula_bytes'] / 2**20:.1f} MiB |",
        f"| measured resident after W + 1 snapshots and `vog()` | {memory['resident_bytes'] / 2**20:.1f} MiB |",
        f"| measured peak | {memory['peak_bytes'] / 2**20:.1f} MiB |",
        "",
        "Raw seconds per run (train / vog_snapshot / validate): "
        + "; ".join(f"{name} {r['train']:.1f} / {r['vog_snapshot']:.1f} / {r['validate']:.1f}"
                    for name, r in [("ce", ce), ("coteaching", plain), ("vog eval", vog_eval),
                                    ("vog train", vog_train)])  # fmt: skip
        + f"; model-only floor for Co-teaching {floor:.1f} s.",
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print(args.out.read_text())


if __name__ == "__main__":
    main()
