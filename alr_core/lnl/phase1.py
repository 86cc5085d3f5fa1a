"""Phase 1: learning with noisy labels — plain CE, Co-teaching, Co-teaching + VOG (docs/method.md).

One plain loop over epochs and batches. Per epoch: train (with the exchange rule for
Co-teaching), take the VOG snapshot, validate, keep the best checkpoint by validation
macro-F1. After training: the clean guess C from one eval pass over the train split, and
the test metrics of the selected checkpoint, evaluated once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from alr_core.common.errors import AlrError
from alr_core.common.params import Params, forget_rate
from alr_core.data.datasets import PipelineData
from alr_core.evaluation.metrics import selection_metrics
from alr_core.lnl.selection import exchange_losses, forget_rate_schedule, select_kept
from alr_core.lnl.vog import VogBuffer, last_layer_gradient, normalize_by_class
from alr_core.nn.models import ModelSpec, build_model, load_backbone_weights, resolve_arch
from alr_core.nn.training import (
    BestCheckpoint,
    EpochLosses,
    ImageSet,
    InputPipeline,
    MixedPrecision,
    channel_stats,
    evaluate,
    make_optimizer,
    per_sample_loss,
    pick_device,
    predict,
    predict_batches,
    seed_everything,
    shuffled_batches,
)


@dataclass
class Phase1Result:
    spec: ModelSpec
    normalization: dict
    model: nn.Module  # network f at its best validation epoch
    peer: Optional[nn.Module]  # network g (Co-teaching), at its best validation epoch
    selection: pd.DataFrame  # one row per train sample, in label-table order
    epochs: pd.DataFrame  # one row per epoch, for dvc plots
    metrics: dict


def model_spec(params: Params, data: PipelineData) -> ModelSpec:
    _, height, width, channels = data.train.images.shape
    return ModelSpec(resolve_arch(params.model.arch, max(height, width)), len(data.class_names),
                     channels, max(height, width), params.model.dropout)  # fmt: skip


def train_phase1(data: PipelineData, params: Params, progress: bool = True) -> Phase1Result:
    lnl = params.lnl
    if len(data.val.labels) == 0:
        raise AlrError("the val split is empty; phase 1 selects its checkpoint on validation images")
    device = pick_device(params.train.device)
    generator = seed_everything(params.seed)
    spec = model_spec(params, data)
    normalization = channel_stats(data.train.images)
    pipeline = InputPipeline(normalization, params.train.augment, device, generator)
    train = ImageSet.from_arrays(data.train.images, data.train.labels, device)
    val = ImageSet.from_arrays(data.val.images, data.val.labels, device)
    precision = MixedPrecision(params.train.mixed_precision, device)

    coteaching = lnl.method != "ce"
    use_vog = lnl.method == "coteaching_vog"
    nets = [_new_network(spec, params) for _ in range(2 if coteaching else 1)]
    optimizer, schedule = make_optimizer([p for net in nets for p in net.parameters()], params.train, lnl.epochs)
    tau = forget_rate(params) if coteaching else 0.0
    buffers = [VogBuffer(len(train), nets[0].feature_dim + 1, lnl.vog_window, device) for _ in nets] if use_vog else []
    best = [BestCheckpoint() for _ in nets]
    truth = torch.as_tensor(data.train.truth, device=device) if data.train.truth is not None else None
    rows = []
    timer = {"train": 0.0, "vog_snapshot": 0.0, "validate": 0.0}
    epochs = tqdm(range(lnl.epochs), desc=f"lnl_train {lnl.method}", disable=not progress)
    for epoch in epochs:
        epoch_start = time.perf_counter()
        rate = forget_rate_schedule(epoch, tau, lnl.num_gradual, lnl.exponent)
        vogs = _current_vog(buffers, epoch, train.labels, len(data.class_names), params)
        # snapshots older than the window of the first epoch that uses VOG are never read
        take_snapshot = use_vog and epoch >= lnl.num_gradual + 1 - lnl.vog_window
        kept_total = 0
        kept_clean = torch.zeros((), dtype=torch.int64, device=device)  # read once per epoch
        epoch_losses = EpochLosses(epoch)
        start = time.perf_counter()
        for net in nets:
            net.train()
        for batch, idx in enumerate(shuffled_batches(len(train), params.train.batch_size, generator)):
            idx = idx.to(device)
            x, y = pipeline.train_input(train.batch(idx)), train.labels[idx]
            with precision.autocast():
                outputs = [net(x) for net in nets]
            outputs = [(features.float(), logits.float()) for features, logits in outputs]
            losses = [per_sample_loss(logits, y) for _, logits in outputs]
            if coteaching:
                kept = [
                    select_kept(loss.detach(), y, rate, vog[idx] if vog is not None else None,
                                lnl.vog_mix, lnl.selection == "class_aware")  # fmt: skip
                    for loss, vog in zip(losses, vogs)
                ]
                batch_losses = exchange_losses(losses[0], losses[1], kept[0], kept[1])
                batch_sizes = [len(kept[1]), len(kept[0])]
                kept_total += len(kept[0])
                if truth is not None:
                    kept_clean += (y[kept[0]] == truth[idx[kept[0]]]).sum()
            else:
                batch_losses = (losses[0].mean(),)
                batch_sizes = [len(idx)]
            precision.step(sum(batch_losses), optimizer)
            epoch_losses.add(batch_losses, batch_sizes)
            if take_snapshot and lnl.vog_source == "train":
                for (features, logits), buffer in zip(outputs, buffers):
                    buffer.write(idx, last_layer_gradient(logits.detach().softmax(1), features.detach(), y))
        lr = schedule.get_last_lr()[0]  # the rate this epoch trained with, before the step
        schedule.step()
        train_losses = epoch_losses.means()
        timer["train"] += time.perf_counter() - start

        start = time.perf_counter()
        if take_snapshot:
            for net, buffer in zip(nets, buffers):
                if lnl.vog_source == "eval":
                    for batch_rows, features, logits in predict_batches(net, train, pipeline,
                                                                        params.train.eval_batch_size):  # fmt: skip
                        gradients = last_layer_gradient(logits.softmax(1), features, train.labels[batch_rows])
                        buffer.write(batch_rows, gradients)
                buffer.commit()
        timer["vog_snapshot"] += time.perf_counter() - start

        start = time.perf_counter()
        row = {"epoch": epoch, "forget_rate": rate, "lr": lr}
        for name, net, checkpoint, train_loss in zip("fg", nets, best, train_losses):
            scores = evaluate(net, val, pipeline, params.train.eval_batch_size, data.class_names)
            checkpoint.update(net, scores["macro_f1"], epoch)
            row |= {f"train_loss_{name}": float(train_loss), f"val_macro_f1_{name}": scores["macro_f1"],
                    f"val_balanced_accuracy_{name}": scores["balanced_accuracy"]}  # fmt: skip
        if coteaching:
            row["kept_size_f"] = kept_total
            row["kept_precision_f"] = int(kept_clean) / kept_total if truth is not None else None
        timer["validate"] += time.perf_counter() - start
        row["seconds"] = round(time.perf_counter() - epoch_start, 3)
        rows.append(row)
        epochs.set_postfix(loss=f"{row['train_loss_f']:.3f}", val_f1=f"{row['val_macro_f1_f']:.3f}")

    final_rate = forget_rate_schedule(lnl.epochs - 1, tau, lnl.num_gradual, lnl.exponent)
    final_vogs = _current_vog(buffers, lnl.epochs, train.labels, len(data.class_names), params)
    selection = _clean_guess(nets, final_vogs, train, pipeline, params, final_rate, coteaching)
    selection.insert(0, "sample_id", data.train.sample_ids)

    model = best[0].restore(nets[0])
    peer = best[1].restore(nets[1]) if coteaching else None
    test = ImageSet.from_arrays(data.test.images, data.test.labels, device)
    metrics = {
        "method": lnl.method,
        "arch": spec.arch,
        "device": device.type,
        "precision": precision.name,
        "data_on_device": train.on_device,
        "final_forget_rate": final_rate,
        "best_epoch": best[0].epoch,
        "val": evaluate(model, val, pipeline, params.train.eval_batch_size, data.class_names),
        "test": evaluate(model, test, pipeline, params.train.eval_batch_size, data.class_names) if len(test) else None,
        "seconds": {k: round(v, 3) for k, v in timer.items()},
        "train_images_per_second_per_network": round(lnl.epochs * len(train) / timer["train"], 1),
    }
    if data.train.truth is not None:
        metrics["selection"] = selection_metrics(selection["clean_guess"].to_numpy(), data.train.labels,
                                                 data.train.truth, data.class_names)  # fmt: skip
    return Phase1Result(spec, normalization, model, peer, selection, pd.DataFrame(rows), metrics)


def _new_network(spec: ModelSpec, params: Params) -> nn.Module:
    """A fresh network; successive calls draw different initial weights from the seeded stream."""
    net = build_model(spec)
    if params.model.weights is not None:
        load_backbone_weights(net, params.model.weights)
    return net.to(pick_device(params.train.device))


def _current_vog(buffers, epoch: int, labels, num_classes: int, params: Params):
    """Each network's VOG (N,) once the warm-up is over and W snapshots exist, else None."""
    lnl = params.lnl
    if not buffers or epoch <= lnl.num_gradual or not buffers[0].ready:
        return [None] * max(len(buffers), 2)
    vogs = [buffer.vog() for buffer in buffers]
    if lnl.vog_normalize == "class":
        vogs = [normalize_by_class(vog, labels, num_classes) for vog in vogs]
    return vogs


def _clean_guess(nets, vogs, train: ImageSet, pipeline, params: Params, rate: float, coteaching: bool) -> pd.DataFrame:
    """The selection rule applied once, globally, to the final networks on unaugmented inputs.

    ``clean_guess`` is network f's selection (all samples for plain CE, which trusts every
    label); ``peer_clean_guess`` is g's, ``networks_agree`` whether f and g predict alike."""
    columns = {}
    for name, net, vog in zip(("", "peer_"), nets, vogs):
        _, logits = predict(net, train, pipeline, params.train.eval_batch_size)
        loss = per_sample_loss(logits, train.labels)
        keep = torch.ones(len(train), dtype=torch.bool, device=loss.device)
        if coteaching:
            keep = torch.zeros_like(keep)
            keep[select_kept(loss, train.labels, rate, vog, params.lnl.vog_mix,
                             params.lnl.selection == "class_aware")] = True  # fmt: skip
        columns |= {f"{name}loss": loss, f"{name}vog": vog, f"{name}prediction": logits.argmax(1),
                    f"{name}clean_guess": keep}  # fmt: skip
    table = pd.DataFrame({k: (v.cpu().numpy() if v is not None else np.nan) for k, v in columns.items()})
    table.insert(0, "observed_label", train.labels.cpu().numpy())
    if coteaching:
        table["networks_agree"] = table["prediction"] == table["peer_prediction"]
    return table
