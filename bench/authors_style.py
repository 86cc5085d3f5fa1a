"""Phase-1 Co-teaching + VOG in the style of the authors' code, for speed comparison only.

Not part of the pipeline; `python -m bench.scale` and `python -m bench.run_all` time it
against :func:`alr_core.lnl.phase1.train_phase1` on the same data. It shares the network, the
optimiser and the selection rules with ours (``build_model``, ``make_optimizer``,
``kept_mask``, ``masked_exchange_losses``), so the two differ only where the authors' code differs
(docs/method.md, "What we do differently"):

- data path: a ``Dataset`` whose ``__getitem__`` turns one uint8 image into a PIL image and
  runs torchvision transforms (RandomCrop with padding, ToTensor, Normalize), batched by a
  ``DataLoader`` (shuffle, ``num_workers`` as given);
- VOG path: after each epoch, per network, an extra pass over the train loader in train
  mode, with augmentation, forward and a full ``loss.backward()`` through the network; the
  per-sample last-layer gradients G_i = (dL/dz_i)[ỹ_i]·[h_i, 1] (dL/dz from the logits'
  gradient, h the head's input) go to one ``.npy`` file per network per epoch, and VOG is
  computed from the last W files read back from disk.

Kept from ours on purpose: the loss of the gradient pass is summed, not averaged, so G equals
the closed form (:func:`alr_core.lnl.vog.last_layer_gradient`) of the same forward pass instead of
carrying the authors' 1/batch-size factor; the cost is the same either way. Like ours, the
training passes follow ``train.mixed_precision`` and the gradient pass runs in float32.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from alr_core.common.params import Params, forget_rate
from alr_core.data.datasets import PipelineData
from alr_core.evaluation.metrics import classification_metrics
from alr_core.lnl.phase1 import model_spec
from alr_core.lnl.selection import forget_rate_schedule, kept_mask, masked_exchange_losses
from alr_core.nn.models import build_model
from alr_core.nn.training import (
    BestCheckpoint,
    EpochLosses,
    MixedPrecision,
    channel_stats,
    make_optimizer,
    per_sample_loss,
    pick_device,
    seed_everything,
)

PARTS = ("vog_read", "train", "gradient_pass", "gradient_write", "validate")  # timed parts of an epoch


class PilImages(Dataset):
    """uint8 images (N, H, W, C) served one at a time as PIL images through ``transform``.

    Item i: (transformed image, float (C, H, W); label, int; i), so a batch carries its
    sample indices for the VOG lookup and the gradient rows."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform):
        self.images = images
        self.labels = labels
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        image = self.images[i]
        pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)  # mode L or RGB
        return self.transform(pil), int(self.labels[i]), i


def image_transform(normalization: dict, image_size: int, augment_params, train: bool) -> transforms.Compose:
    """The torchvision version of ours: random crop after zero padding and the optional flips
    (train only), then ToTensor (÷255) and Normalize with the train split's channel stats."""
    steps = []
    if train:
        if augment_params.crop_padding:
            steps.append(transforms.RandomCrop(image_size, padding=augment_params.crop_padding))
        if augment_params.hflip:
            steps.append(transforms.RandomHorizontalFlip())
        if augment_params.vflip:
            steps.append(transforms.RandomVerticalFlip())
    return transforms.Compose(steps + [transforms.ToTensor(),
                                       transforms.Normalize(normalization["mean"], normalization["std"])])  # fmt: skip


def gradient_pass(net: nn.Module, loader: DataLoader, num_samples: int, device: torch.device) -> np.ndarray:
    """Per-sample last-layer gradients of CE(ỹ) over one pass of ``loader``: float32 (N, D + 1),
    row i for sample index i.

    Each batch: forward, then a full backward through the network as a training step would
    (without the step); dL/dz comes from the logits' gradient and h from a forward hook on the
    head, so G_i = (dL/dz_i)[ỹ_i]·[h_i, 1] is the gradient of the head's row ỹ_i and its bias.
    The network's mode (train or eval) is the caller's; parameter gradients are left dirty.
    """
    grads = np.zeros((num_samples, net.head.in_features + 1), dtype=np.float32)
    head_input = {}
    hook = net.head.register_forward_hook(lambda module, inputs, output: head_input.update(h=inputs[0]))
    try:
        for x, y, idx in loader:
            x, y = x.to(device), y.to(device)
            net.zero_grad(set_to_none=True)
            _, logits = net(x)
            logits.retain_grad()
            # summed, so dL/dz_i is sample i's own gradient (a mean would scale it by 1/|b|)
            F.cross_entropy(logits, y, reduction="sum").backward()
            h = head_input["h"].detach()
            scale = logits.grad.gather(1, y[:, None])
            grads[idx.numpy()] = (scale * torch.cat([h, torch.ones_like(h[:, :1])], dim=1)).cpu().numpy()
    finally:
        hook.remove()
    return grads


def vog_from_files(paths: list[Path]) -> np.ndarray:
    """VOG per sample, (N,): population std over the gradient files (each (N, D + 1)), averaged
    over the D + 1 coordinates — what :meth:`alr_core.lnl.vog.VogBuffer.vog` computes in memory."""
    return np.stack([np.load(path) for path in paths]).std(axis=0).mean(axis=1)


@torch.no_grad()
def predict_probs(net: nn.Module, loader: DataLoader, device: torch.device) -> np.ndarray:
    """Softmax probabilities (N, K) in loader order, eval mode."""
    net.eval()
    probs = [net(x.to(device))[1].softmax(1).cpu() for x, _, _ in loader]
    return torch.cat(probs).numpy()


def train_authors_style(data: PipelineData, params: Params, gradient_dir: Path, workers: int = 0) -> pd.DataFrame:
    """Co-teaching (+ VOG when ``lnl.method`` is ``coteaching_vog``) for ``lnl.epochs`` epochs.

    Writes ``gradient_dir/grads_{f,g}_epoch{e:03d}.npy`` (float32 (N, D + 1)) for VOG runs.
    Returns one row per epoch: ``seconds`` (wall time of the whole epoch), the seconds of each
    part in :data:`PARTS`, ``vog_used``, per-network train loss and validation macro-F1.
    """
    lnl = params.lnl
    use_vog = lnl.method == "coteaching_vog"
    device = pick_device(params.train.device)
    generator = seed_everything(params.seed)
    spec = model_spec(params, data)
    normalization = channel_stats(data.train.images)
    augment = params.train.augment
    train_set = PilImages(data.train.images, data.train.labels,
                          image_transform(normalization, spec.image_size, augment, train=True))  # fmt: skip
    val_set = PilImages(data.val.images, data.val.labels,
                        image_transform(normalization, spec.image_size, augment, train=False))  # fmt: skip
    train_loader = DataLoader(train_set, batch_size=params.train.batch_size, shuffle=True, num_workers=workers,
                              generator=generator)  # fmt: skip
    val_loader = DataLoader(val_set, batch_size=params.train.batch_size, num_workers=workers)  # as the authors' test loader
    nets = [build_model(spec).to(device) for _ in range(2)]
    optimizer, schedule = make_optimizer(nets, params.train, lnl.epochs)
    precision = MixedPrecision(params.train.mixed_precision, device)  # as ours: training passes only
    tau = forget_rate(params)
    best = [BestCheckpoint() for _ in nets]
    files = {"f": [], "g": []}
    rows = []
    for epoch in range(lnl.epochs):
        epoch_start = time.perf_counter()
        seconds = dict.fromkeys(PARTS, 0.0)
        rate = forget_rate_schedule(epoch, tau, lnl.num_gradual, lnl.exponent)

        start = time.perf_counter()
        vogs = [None, None]
        if use_vog and epoch > lnl.num_gradual and len(files["f"]) >= lnl.vog_window:
            vogs = [torch.from_numpy(vog_from_files(paths[-lnl.vog_window :])).to(device) for paths in files.values()]
        seconds["vog_read"] = time.perf_counter() - start

        start = time.perf_counter()
        epoch_losses = EpochLosses(epoch)
        for net in nets:
            net.train()
        for x, y, idx in train_loader:
            x, y, idx = x.to(device), y.to(device), idx.to(device)
            with precision.autocast():
                logits = [net(x)[1] for net in nets]
            losses = [per_sample_loss(z.float(), y) for z in logits]
            kept = [kept_mask(loss.detach(), y, rate, vog[idx] if vog is not None else None, lnl.vog_mix,
                              lnl.selection == "class_aware")  # fmt: skip
                    for loss, vog in zip(losses, vogs)]
            batch_losses = masked_exchange_losses(losses[0], losses[1], kept[0].float(), kept[1].float())
            precision.step(sum(batch_losses), optimizer)
            epoch_losses.add(batch_losses, [kept[1].sum(), kept[0].sum()])
        schedule.step()
        train_losses = epoch_losses.means()
        seconds["train"] = time.perf_counter() - start

        if use_vog:
            for name, net in zip(files, nets):  # still in train mode, as in the authors' code
                start = time.perf_counter()
                grads = gradient_pass(net, train_loader, len(train_set), device)
                seconds["gradient_pass"] += time.perf_counter() - start
                start = time.perf_counter()
                path = gradient_dir / f"grads_{name}_epoch{epoch:03d}.npy"
                np.save(path, grads)
                files[name].append(path)
                seconds["gradient_write"] += time.perf_counter() - start

        start = time.perf_counter()
        row = {"epoch": epoch, "forget_rate": rate, "vog_used": vogs[0] is not None}
        for name, net, checkpoint, train_loss in zip("fg", nets, best, train_losses):
            scores = classification_metrics(data.val.labels, predict_probs(net, val_loader, device), data.class_names)
            checkpoint.update(net, scores["macro_f1"], epoch)
            row |= {f"train_loss_{name}": float(train_loss), f"val_macro_f1_{name}": scores["macro_f1"]}
        seconds["validate"] = time.perf_counter() - start
        rows.append(row | {"seconds": time.perf_counter() - epoch_start} | seconds)
    return pd.DataFrame(rows)
