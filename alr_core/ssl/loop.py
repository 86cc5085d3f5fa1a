"""The pretraining loop: SimCLR or VICReg on the train split's images, then the encoder's
embedding of every sample of every split. One plain loop over epochs and batches, no framework.

Only the train split's images are trained on (the validation and test images are embedded,
never trained on) and no label is read: the caller passes sample ids and splits only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import pandas as pd
import torch
from torch import nn

from alr_core.common.cli import progress_bar
from alr_core.common.errors import AlrError
from alr_core.common.params import Params
from alr_core.nn import distributed
from alr_core.nn.models import ModelSpec
from alr_core.nn.transfer import to_device
from alr_core.nn.training import (
    AdamW,
    EpochLosses,
    ImageSet,
    InputPipeline,
    MixedPrecision,
    channel_stats,
    pick_device,
    predict,
    seed_everything,
    shuffled_batches,
)
from alr_core.ssl.encoder import ProjectionHead, build_encoder, encoder_spec
from alr_core.ssl.loss import OBJECTIVES
from alr_core.ssl.views import two_views


@dataclass
class PretrainResult:
    spec: ModelSpec  # the encoder's (num_classes 0)
    normalization: dict  # channel mean and std of the train images, in [0, 1] units
    encoder: nn.Module
    head: Optional[nn.Module]  # the projection head; None when nothing was trained
    embeddings: np.ndarray  # float32 (N, D): row i is the encoder's features of images[i]
    epochs: pd.DataFrame  # one row per epoch (epoch, loss, lr), for dvc plots
    metrics: dict  # deterministic for a seed: tracked with `dvc metrics`
    timing: dict  # wall-clock seconds and throughput: differ between identical runs


def run_pretrain(images: np.ndarray, samples: pd.DataFrame, params: Params, progress: bool = True) -> PretrainResult:
    """Pretrain an encoder with ``params.pretrain`` on the train rows of ``images`` and embed
    every row.

    images: uint8 (N, H, W, C); samples: N rows with ``split`` (row i describes images[i]).
    ``pretrain.method``: ``simclr`` (NT-Xent) or ``vicreg`` train the encoder and a projection
    head on two random views of each image; ``none`` trains nothing: the embeddings are the
    features of the seeded random initialisation, a baseline for what training adds.
    """
    pre = params.pretrain
    if len(samples) != len(images):
        raise AlrError(f"the samples table has {len(samples)} rows but the images array has {len(images)} images")
    train_rows = np.flatnonzero(samples["split"].to_numpy() == "train")
    trains = pre.method != "none"
    if trains and len(train_rows) < 2:
        raise AlrError(
            f"pretrain.method '{pre.method}' needs at least 2 train images (its loss compares the images of a "
            f"batch), got {len(train_rows)}; use pretrain.method 'none'"
        )
    device = pick_device(params.train.device)
    generator = seed_everything(pre.seed)  # initialisation, batch order and views
    train_images = images[train_rows]
    spec = encoder_spec(params.model.arch, images.shape[1:])
    normalization = channel_stats(train_images)
    # the views come from alr_core.ssl.views, so the pipeline only normalises (no train.augment)
    pipeline = InputPipeline(normalization, None, device, generator)
    precision = MixedPrecision(params.train.mixed_precision, device)
    # the ranks' weights agree before training too: untrained (method none), its features are the embeddings
    encoder = distributed.same_on_every_rank(build_encoder(spec).to(device))
    head, rows, train_seconds = None, [], 0.0
    if trains:
        head = ProjectionHead(encoder.feature_dim, pre.projection_dim).to(device)
        start = time.perf_counter()
        rows = train_self_supervised(encoder, head, train_images, pipeline, precision, params, generator, progress)
        train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    embeddings = embed(encoder, images, pipeline, pre.batch_size)
    embed_seconds = time.perf_counter() - start

    batch = min(pre.batch_size, len(train_rows))
    metrics = {
        "method": pre.method,
        "arch": spec.arch,
        "device": device.type,
        "precision": precision.name,
        "train_images": len(train_rows),
        "embedded_images": len(embeddings),
        "embedding_dim": embeddings.shape[1],
        "epochs": len(rows),
        "loss_first_epoch": rows[0]["loss"] if rows else None,
        "loss_last_epoch": rows[-1]["loss"] if rows else None,
        # the loss of a full batch whose embeddings all coincide (NT-Xent: log(2B − 1)): a
        # trained encoder ends well below it
        "loss_chance": collapse_loss(pre.method, batch),
    }
    timing = {
        "seconds": {"train": round(train_seconds, 3), "embed": round(embed_seconds, 3)},
        # two augmented views of each train image per epoch
        "views_per_second": round(2 * len(train_rows) * len(rows) / train_seconds, 1) if rows else None,
        "embedded_images_per_second": round(len(embeddings) / embed_seconds, 1),
    }
    return PretrainResult(spec, normalization, encoder, head, embeddings,
                          pd.DataFrame(rows, columns=["epoch", "loss", "lr"]), metrics, timing)  # fmt: skip


def collapse_loss(method: str, batch: int) -> Optional[float]:
    """The loss of ``method`` on a batch of ``batch`` images whose embeddings all coincide; None
    for ``none``, which has no loss."""
    return OBJECTIVES[method].collapse(batch) if method in OBJECTIVES else None


def train_self_supervised(encoder: nn.Module, head: nn.Module, images: np.ndarray, pipeline: InputPipeline,
                          precision: MixedPrecision, params: Params, generator: torch.Generator,
                          progress: bool = True) -> list[dict]:  # fmt: skip
    """SimCLR or VICReg (``pretrain.method``): per batch, two random views of each image through
    encoder and head, then NT-Xent or VICReg's loss of the two views' outputs.

    images: uint8 (N, H, W, C), the train split's. AdamW at ``pretrain.lr`` with a cosine
    schedule over ``pretrain.epochs`` (stepped per epoch). Returns one row per epoch: the mean
    loss and the learning rate the epoch trained with.
    """
    pre = params.pretrain
    objective = OBJECTIVES[pre.method]
    device = pipeline.mean.device
    # ImageSet carries labels for the classifiers; pretraining has none, so they are zeros, never read
    data = ImageSet.from_arrays(images, np.zeros(len(images), dtype=np.int64), device)
    flips = params.train.augment.hflip, params.train.augment.vflip
    parameters = [*encoder.parameters(), *head.parameters()]
    # in a process group each rank embeds its slice of the batch; the loss takes the global batch
    # (alr_core.nn.distributed): NT-Xent's negatives and VICReg's batch statistics are one process's
    encoder_ddp, head_ddp = distributed.data_parallel(encoder), distributed.data_parallel(head)
    optimizer = AdamW(parameters, lr=pre.lr, weight_decay=pre.weight_decay, fused=True)  # as make_optimizer
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=pre.epochs)
    encoder.train()
    head.train()
    rows = []
    epochs = progress_bar(range(pre.epochs), f"pretrain {pre.method}", progress)
    for epoch in epochs:
        losses = EpochLosses(epoch, lr_key="pretrain.lr")
        for idx in shuffled_batches(len(data), pre.batch_size, generator):
            batch = data.batch(to_device(idx, device))
            mine = distributed.local_rows(len(idx))
            # rows i and B + i are two independent views of image i; one forward pass over
            # both, so BatchNorm normalises them with the same statistics
            view1, view2 = two_views(batch, pre, *flips, generator)
            with precision.autocast():
                features, _ = encoder_ddp(pipeline.eval_input(torch.cat([view1[mine], view2[mine]])))
                z = head_ddp(features)
            # (B, 2, D): one gather brings both views of the global batch
            z1, z2 = distributed.global_batch(torch.stack(z.float().chunk(2), dim=1), len(idx)).unbind(1)
            loss = objective.loss(z1, z2, pre.temperature)
            precision.step(distributed.loss_for_backward(loss), optimizer)
            losses.add([loss], [len(idx)])
        lr = schedule.get_last_lr()[0]  # the rate this epoch trained with, before the step
        schedule.step()
        rows.append({"epoch": epoch, "loss": float(losses.means()[0]), "lr": lr})
        epochs.set_postfix(loss=f"{rows[-1]['loss']:.3f}")
    return rows


def embed(encoder: nn.Module, images: np.ndarray, pipeline: InputPipeline, batch_size: int) -> np.ndarray:
    """The encoder's features of every image, eval mode, no augmentation: uint8 (N, H, W, C)
    → float32 (N, D), in the order of ``images``."""
    data = ImageSet.from_arrays(images, np.zeros(len(images), dtype=np.int64), pipeline.mean.device)
    features, _ = predict(encoder, data, pipeline, batch_size)
    return features.float().cpu().numpy()

