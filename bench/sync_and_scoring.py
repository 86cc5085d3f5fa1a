"""Two costs issue 12 removed, measured: host-device syncs per batch, and scoring rows nobody reads.

    python -m bench.sync_and_scoring                      # writes bench/sync_and_scoring.md
    python -m bench.sync_and_scoring --num-train 2000     # a quick look

A. A Co-teaching epoch (two small CNNs, the exchange rule, batch 64) run two ways on the same
   data and weights: reading the losses back every batch (``.item()`` per network, a finiteness
   test and the kept-clean count, as phase 1 did) and keeping them on the device until the end
   of the epoch (:class:`alr_core.nn.training.EpochLosses`, as phase 1 does now). On a CPU every
   operation is synchronous already, so the two should tie there; the saving is on a GPU, where
   each read-back stalls the queue of launched kernels.
B. :func:`alr_core.active.scoring.score_pool` for entropy (one pass) and BALD (``mc_passes``
   dropout passes) at pool shares 10 %, 40 % and 100 % of the train split. Before this change
   every pass ran over the whole train split whatever the pool, so the 100 % row is what every
   pool share used to cost.

Data: the procedural ``synthetic`` source, 28×28 grayscale, 10 classes, imbalance 10, symmetric
noise 0.4. Times are the median of ``--repeats`` runs, in seconds.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from alr_core.active.scoring import score_pool
from alr_core.common.params import parse_params
from alr_core.data.datasets import SplitData
from alr_core.data.noise import inject_noise
from alr_core.data.synthetic import synthetic_images, synthetic_layout
from alr_core.lnl.selection import kept_mask, masked_exchange_losses
from alr_core.nn.models import ModelSpec, build_model
from alr_core.nn.training import (
    EpochLosses,
    ImageSet,
    InputPipeline,
    MixedPrecision,
    channel_stats,
    make_optimizer,
    per_sample_loss,
    pick_device,
    shuffled_batches,
)

NUM_CLASSES = 10
FORGET_RATE = 0.4


def make_train(num_train: int) -> SplitData:
    labels, splits = synthetic_layout(num_train, NUM_CLASSES, 10.0, 1, 1)
    train = splits == "train"
    images = synthetic_images(labels[train], NUM_CLASSES, 28, 1, np.random.default_rng(0))
    observed = inject_noise(labels[train], NUM_CLASSES, "symmetric", FORGET_RATE, [], np.random.default_rng(1))
    ids = np.array([f"train/{i}" for i in range(int(train.sum()))])
    return SplitData(ids, images, observed, labels[train])


def coteaching_epoch(train: SplitData, device: torch.device, sync_every_batch: bool) -> float:
    """Seconds for one Co-teaching epoch from fixed initial weights."""
    torch.manual_seed(0)
    spec = ModelSpec("small_cnn", NUM_CLASSES, 1, 28, 0.3)
    nets = [build_model(spec).to(device) for _ in range(2)]
    params = parse_params({"train": {"device": device.type}})
    optimizer, _ = make_optimizer(nets, params.train, 1)
    generator = torch.Generator().manual_seed(0)
    pipeline = InputPipeline(channel_stats(train.images), params.train.augment, device, generator)
    images = ImageSet.from_arrays(train.images, train.labels, device)
    truth = torch.as_tensor(train.truth, device=device)
    precision = MixedPrecision(False, device)
    epoch_losses = EpochLosses(0)
    kept_clean = torch.zeros((), dtype=torch.int64, device=device)
    loss_sums = np.zeros(2)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for idx in shuffled_batches(len(images), params.train.batch_size, generator):
        idx = idx.to(device)
        x, y = pipeline.train_input(images.batch(idx)), images.labels[idx]
        losses = [per_sample_loss(net(x)[1], y) for net in nets]
        kept = [kept_mask(loss.detach(), y, FORGET_RATE) for loss in losses]
        batch_losses = masked_exchange_losses(losses[0], losses[1], kept[0].float(), kept[1].float())
        total = sum(batch_losses)
        if sync_every_batch:  # what phase 1 did: three kinds of read-back per batch
            if not torch.isfinite(total):
                raise RuntimeError("diverged")
            precision.step(total, optimizer)
            loss_sums += [loss.item() * int(k.sum()) for loss, k in zip(batch_losses, kept)]
            int((kept[0] & (y == truth[idx])).sum())
        else:
            precision.step(total, optimizer)
            epoch_losses.add(batch_losses, [kept[1].sum(), kept[0].sum()])
            kept_clean += (kept[0] & (y == truth[idx])).sum()
    if not sync_every_batch:
        epoch_losses.means()
        int(kept_clean)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def scoring_seconds(train: SplitData, device: torch.device, strategy: str, pool_share: float) -> float:
    torch.manual_seed(0)
    model = build_model(ModelSpec("small_cnn", NUM_CLASSES, 1, 28, 0.3))
    pool = np.zeros(len(train.labels), dtype=bool)
    pool[np.random.default_rng(0).permutation(len(pool))[: int(pool_share * len(pool))]] = True
    params = parse_params({"train": {"device": device.type}, "al": {"strategy": strategy, "mc_passes": 10}})
    start = time.perf_counter()
    score_pool(model, channel_stats(train.images), train, pool, ~pool, 10, params, seed=0)
    return time.perf_counter() - start


def median_seconds(run, repeats: int) -> float:
    return statistics.median(run() for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-train", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=Path("bench/sync_and_scoring.md"))
    args = parser.parse_args()
    device = pick_device(args.device)
    train = make_train(args.num_train)
    where = f"{platform.node()}, {device.type}, {torch.get_num_threads()} threads, torch {torch.__version__}"

    lines = [f"# Syncs per batch and scoring rows (`python -m bench.sync_and_scoring --num-train {args.num_train}`)",
             "", f"{where}; N = {len(train.labels)} train images; median of {args.repeats} runs, seconds.", "",
             "## A. One Co-teaching epoch", "",
             "| losses read back | seconds | ÷ per-epoch |", "|---|---|---|"]  # fmt: skip
    per_batch = median_seconds(lambda: coteaching_epoch(train, device, True), args.repeats)
    per_epoch = median_seconds(lambda: coteaching_epoch(train, device, False), args.repeats)
    lines += [f"| every batch (before) | {per_batch:.2f} | {per_batch / per_epoch:.3f} |",
              f"| once per epoch (now) | {per_epoch:.2f} | 1.000 |", ""]  # fmt: skip

    lines += ["## B. score_pool", "", "| strategy | pool share | seconds | ÷ whole split (the old cost) |",
              "|---|---|---|---|"]  # fmt: skip
    for strategy in ("entropy", "bald"):
        times = {share: median_seconds(lambda: scoring_seconds(train, device, strategy, share), args.repeats)
                 for share in (0.1, 0.4, 1.0)}  # fmt: skip
        lines += [f"| {strategy} | {share:.0%} | {seconds:.2f} | {seconds / times[1.0]:.2f} |"
                  for share, seconds in times.items()]  # fmt: skip
    text = "\n".join(lines) + "\n"
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
