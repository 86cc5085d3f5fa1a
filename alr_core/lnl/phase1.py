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

from alr_core.common import paths
from alr_core.common.cli import progress_bar
from alr_core.common.errors import AlrError
from alr_core.common.params import CLASS_RULES, FEATURE_RULES, Params, forget_rate
from alr_core.common.text import method_name
from alr_core.data.datasets import PipelineData
from alr_core.evaluation.metrics import classification_metrics, selection_metrics
from alr_core.lnl.class_rules import class_keep
from alr_core.lnl.feature_rules import FOLD_SEED, feature_keep
from alr_core.lnl.selection import balance_weights, forget_rate_schedule, kept_mask, masked_exchange_losses, masked_loss
from alr_core.lnl.vog import VogBuffer, head_gradient, last_layer_gradient, normalize_by_class
from alr_core.nn import distributed
from alr_core.nn.models import LINEAR, ModelSpec, build_model, initialise, resolve_arch
from alr_core.nn.training import (
    BestCheckpoint,
    EpochLosses,
    ImageSet,
    InputPipeline,
    MixedPrecision,
    epoch_batches,
    evaluate,
    input_stats,
    make_optimizer,
    per_sample_loss,
    pick_device,
    predict,
    predict_batches,
    seed_everything,
)
from alr_core.nn.transfer import to_device

# plots/lnl_epochs.csv: every column dvc.yaml's plots name, for every method, so that `dvc plots`
# draws the series a run has (plain CE has no network g, no kept set without a mask or truth)
# instead of failing on a missing field
EPOCH_COLUMNS = ["epoch", "forget_rate", "lr", "train_loss_f", "val_macro_f1_f", "val_balanced_accuracy_f",
                 "train_loss_g", "val_macro_f1_g", "val_balanced_accuracy_g", "kept_size_f", "kept_precision_f"]


@dataclass
class Phase1Result:
    spec: ModelSpec
    normalization: dict
    model: nn.Module  # network f at its best validation epoch
    peer: Optional[nn.Module]  # network g (Co-teaching), at its best validation epoch
    selection: pd.DataFrame  # one row per train sample, in label-table order
    epochs: pd.DataFrame  # one row per epoch, for dvc plots
    metrics: dict  # deterministic for a seed: tracked with `dvc metrics`
    timing: dict  # wall-clock seconds per part and throughput: differ between identical runs
    val_predictions: np.ndarray  # int (N_val,): f's class for each validation sample, for paired comparisons


def model_spec(params: Params, data: PipelineData) -> ModelSpec:
    """The classifier for ``data``'s inputs: images (N, H, W, C), or cached embeddings (N, D)
    (``model.freeze: backbone``), which get the ``linear`` head."""
    if data.train.images.ndim == 2:
        return ModelSpec(LINEAR, len(data.class_names), data.train.images.shape[1], 0, params.model.dropout)
    _, height, width, channels = data.train.images.shape
    return ModelSpec(resolve_arch(params.model.arch, max(height, width)), len(data.class_names),
                     channels, max(height, width), params.model.dropout)  # fmt: skip


def train_phase1(data: PipelineData, params: Params, progress: bool = True,
                 networks: Optional[list[nn.Module]] = None,
                 always_keep: Optional[np.ndarray] = None, encoder_path=paths.PRETRAIN_ENCODER,
                 lr_key: str = "train.lr") -> Phase1Result:
    """Train with ``params.lnl`` on the train split's labels (``data.train.labels``); fresh
    networks start as ``model.init`` says (``ssl``: from the encoder at ``encoder_path``).

    The round stages reuse this loop (``al.train_on: lnl``): ``networks`` are the networks to
    continue from (f, and g for Co-teaching) instead of fresh ones, and ``always_keep`` (bool
    (N,)) marks the expert-relabelled samples that every selection rule keeps, and ``lr_key`` is
    the learning rate's key that a divergence error tells to lower."""
    lnl = params.lnl
    if len(data.val.labels) == 0:
        raise AlrError("the val split is empty; phase 1 selects its checkpoint on validation images")
    device = pick_device(params.train.device)
    generator = seed_everything(params.seed)
    spec = model_spec(params, data)
    normalization = input_stats(data.train.images)
    pipeline = InputPipeline(normalization, params.train.augment, device, generator)
    train = ImageSet.from_arrays(data.train.images, data.train.labels, device)
    val = ImageSet.from_arrays(data.val.images, data.val.labels, device)
    precision = MixedPrecision(params.train.mixed_precision, device)

    coteaching = lnl.method != "ce"
    use_vog = lnl.method == "coteaching_vog"
    init = {"init": "continued"}
    if networks:
        nets = [net.to(device) for net in networks]
    else:
        nets, records = zip(*[new_network(spec, params, encoder_path) for _ in range(2 if coteaching else 1)])
        nets, init = list(nets), records[0]
    always = torch.as_tensor(always_keep, device=device) if always_keep is not None else None
    trainers = [distributed.data_parallel(net) for net in nets]  # the training forward; `nets` for the rest
    optimizer, schedule = make_optimizer(nets, params.train, lnl.epochs, params.model.backbone_lr)
    tau = forget_rate(params) if coteaching else 0.0
    buffers = [VogBuffer(len(train), nets[0].feature_dim + 1, lnl.vog_window, device) for _ in nets] if use_vog else []
    best = [BestCheckpoint() for _ in nets]
    # a copy: pandas hands the labels table's columns out read-only, which torch warns about sharing
    truth = torch.tensor(data.train.truth, device=device) if data.train.truth is not None else None
    num_classes = len(data.class_names)
    # per-class rules decide on whole-split statistics: from epoch `mask_start` on, each network
    # trains on the samples its peer's keep mask (refreshed after every epoch) holds
    per_class = coteaching and lnl.selection in CLASS_RULES
    mask_start = max(lnl.num_gradual, 1)
    weights = None  # per network, float (N,): keep mask × class weight, on the device
    mask_stats = None  # (kept, clean among kept) of network f's mask, host ints
    class_weight = None
    if lnl.class_balance == "loss":  # until a mask exists: the observed label counts
        class_weight = balance_weights(torch.bincount(train.labels, minlength=num_classes))
    rows, epoch_seconds = [], []
    timer = {"train": 0.0, "vog_snapshot": 0.0, "class_rule": 0.0, "validate": 0.0}
    # a feature rule decides C once, from the pretrain embeddings, before any training: every
    # network then trains on C alone, from the first epoch (no warm-up needed: no network is read)
    feature_mask, feature_whole = None, []
    if lnl.selection in FEATURE_RULES:
        start = time.perf_counter()
        feature_mask, feature_whole = _feature_rule_mask(data, params)
        if always_keep is not None:
            feature_mask = feature_mask | always_keep
        weights, mask_stats = _mask_weights([feature_mask] * len(nets), train.labels, truth, num_classes,
                                            lnl.class_balance)  # fmt: skip
        timer["class_rule"] += time.perf_counter() - start
    # "ce + cleanlab_kfold" and the safety net's plain "ce" must not look alike on the terminal
    name = method_name(lnl.method, lnl.selection if lnl.selection in FEATURE_RULES else None)
    epochs = progress_bar(range(lnl.epochs), f"lnl_train {name}", progress)
    for epoch in epochs:
        epoch_start = time.perf_counter()
        rate = forget_rate_schedule(epoch, tau, lnl.num_gradual, lnl.exponent)
        vogs = _current_vog(buffers, epoch, train.labels, len(data.class_names), params)
        # snapshots older than the window of the first epoch that uses VOG are never read
        take_snapshot = use_vog and epoch >= lnl.num_gradual + 1 - lnl.vog_window
        kept_total = torch.zeros((), dtype=torch.int64, device=device)  # both read once per epoch
        kept_clean = torch.zeros((), dtype=torch.int64, device=device)
        epoch_losses = EpochLosses(epoch, lr_key)
        mask_in_force = mask_stats  # (kept, clean) of f's mask this epoch trains with, or None
        start = time.perf_counter()
        for net in nets:
            net.train()
        for idx in epoch_batches(train.labels, params.train.batch_size, generator, lnl.class_balance):
            idx = to_device(idx, device)
            x, y = pipeline.train_input(train.batch(idx)), train.labels[idx]
            mine = distributed.local_rows(len(idx))  # this process's slice of the batch
            with precision.autocast():
                outputs = [trainer(x[mine]) for trainer in trainers]
            outputs = [(features.float(), logits.float()) for features, logits in outputs]
            # every network's losses over the whole batch, on every process (one gather): the
            # selection below is that of one process (docs/distributed.md)
            local_losses = torch.stack([per_sample_loss(logits, y[mine]) for _, logits in outputs], dim=1)
            losses = distributed.global_batch(local_losses, len(idx)).unbind(1)
            if weights is not None and coteaching:
                batch_losses = masked_exchange_losses(losses[0], losses[1], weights[0][idx], weights[1][idx])
                batch_sizes = [len(idx), len(idx)]
            elif weights is not None:
                batch_losses = (masked_loss(losses[0], weights[0][idx]),)
                batch_sizes = [len(idx)]
            elif coteaching:
                # during a per-class rule's warm-up the per-batch cut is taken per class as well,
                # so that rare classes are not starved before the rule takes over
                kept = [
                    kept_mask(loss.detach(), y, rate, vog[idx] if vog is not None else None,
                              lnl.vog_mix, lnl.selection in ("class_aware", *CLASS_RULES))  # fmt: skip
                    for loss, vog in zip(losses, vogs)
                ]
                if always is not None:
                    kept = [k | always[idx] for k in kept]
                kept_weights = [k * class_weight[y] if class_weight is not None else k.float() for k in kept]
                batch_losses = masked_exchange_losses(losses[0], losses[1], *kept_weights)
                batch_sizes = [kept[1].sum(), kept[0].sum()]
                kept_total += batch_sizes[1]
                if truth is not None:
                    kept_clean += (kept[0] & (y == truth[idx])).sum()
            else:
                batch_losses = (losses[0].mean() if class_weight is None else masked_loss(losses[0], class_weight[y]),)
                batch_sizes = [len(idx)]
            precision.step(distributed.loss_for_backward(sum(batch_losses)), optimizer)
            epoch_losses.add(batch_losses, batch_sizes)
            if take_snapshot and lnl.vog_source == "train":
                for net, (features, _), buffer in zip(nets, outputs, buffers):
                    gradients = head_gradient(net.head, features.detach(), y[mine])
                    buffer.write(idx, distributed.gather_rows(gradients, len(idx)))
        lr = schedule.get_last_lr()[0]  # the rate this epoch trained with, before the step
        schedule.step()
        train_losses = epoch_losses.means()
        timer["train"] += time.perf_counter() - start

        start = time.perf_counter()
        # after the last epoch the clean guess applies the rule itself (_clean_guess)
        refresh = per_class and mask_start - 1 <= epoch < lnl.epochs - 1
        passes = [None] * len(nets)  # (features (N, D), logits (N, K)) when the masks refresh
        for j, net in enumerate(nets):
            eval_snapshot = take_snapshot and lnl.vog_source == "eval"
            if eval_snapshot or refresh:  # one eval pass serves both the VOG snapshot and the rule
                batches = []
                for batch_rows, features, logits in predict_batches(net, train, pipeline,
                                                                    params.train.eval_batch_size):  # fmt: skip
                    if eval_snapshot:
                        gradients = last_layer_gradient(logits.softmax(1), features, train.labels[batch_rows])
                        buffers[j].write(batch_rows, gradients)
                    if refresh:
                        batches.append((features, logits))
                if refresh:
                    passes[j] = (torch.cat([f for f, _ in batches]), torch.cat([z for _, z in batches]))
            if take_snapshot:
                buffers[j].commit()
        timer["vog_snapshot"] += time.perf_counter() - start
        if refresh:
            start = time.perf_counter()
            rule_vogs = _current_vog(buffers, epoch + 1, train.labels, num_classes, params)
            above_chance = lnl.keep_above_chance == "always"
            masks = [
                _class_rule_mask(lnl.selection, train.labels, features, logits, vog, above_chance)[0]
                for (features, logits), vog in zip(passes, rule_vogs)
            ]
            if always_keep is not None:
                masks = [mask | always_keep for mask in masks]
            weights, mask_stats = _mask_weights(masks, train.labels, truth, num_classes, lnl.class_balance)
            timer["class_rule"] += time.perf_counter() - start

        start = time.perf_counter()
        row = {"epoch": epoch, "forget_rate": rate, "lr": lr}
        for name, net, checkpoint, train_loss in zip("fg", nets, best, train_losses):
            scores = evaluate(net, val, pipeline, params.train.eval_batch_size, data.class_names, checkpoint_only=True)
            checkpoint.update(net, scores["macro_f1"], epoch)
            row |= {f"train_loss_{name}": float(train_loss), f"val_macro_f1_{name}": scores["macro_f1"],
                    f"val_balanced_accuracy_{name}": scores["balanced_accuracy"]}  # fmt: skip
        if mask_in_force is not None:
            row["kept_size_f"] = mask_in_force[0]
            row["kept_precision_f"] = mask_in_force[1] / mask_in_force[0] if truth is not None else None
        elif coteaching:
            row["kept_size_f"] = int(kept_total)
            row["kept_precision_f"] = int(kept_clean) / row["kept_size_f"] if truth is not None else None
        timer["validate"] += time.perf_counter() - start
        epoch_seconds.append(round(time.perf_counter() - epoch_start, 3))
        rows.append(row)
        epochs.set_postfix(loss=f"{row['train_loss_f']:.3f}", val_f1=f"{row['val_macro_f1_f']:.3f}")

    final_rate = forget_rate_schedule(lnl.epochs - 1, tau, lnl.num_gradual, lnl.exponent)
    final_vogs = _current_vog(buffers, lnl.epochs, train.labels, len(data.class_names), params)
    selection, kept_whole = _clean_guess(nets, final_vogs, train, pipeline, params, final_rate, coteaching, always,
                                         feature_mask)  # fmt: skip
    kept_whole = feature_whole if feature_mask is not None else kept_whole
    selection.insert(0, "sample_id", data.train.sample_ids)

    model = best[0].restore(nets[0])
    peer = best[1].restore(nets[1]) if coteaching else None
    test = ImageSet.from_arrays(data.test.images, data.test.labels, device)
    val_probs = predict(model, val, pipeline, params.train.eval_batch_size)[1].softmax(1).cpu().numpy()
    metrics = {
        "method": lnl.method,
        "arch": spec.arch,
        "init": init,
        "freeze": params.model.freeze,
        "device": device.type,
        "precision": precision.name,
        "data_on_device": train.on_device,
        "final_forget_rate": final_rate,
        "best_epoch": best[0].epoch,
        "selection_rule": lnl.selection if coteaching or feature_mask is not None else None,
        # per-class rules: observed classes of C whose split was degenerate and were kept whole
        "classes_kept_whole": [data.class_names[c] for c in kept_whole],
        "val": classification_metrics(data.val.labels, val_probs, data.class_names),
        "test": evaluate(model, test, pipeline, params.train.eval_batch_size, data.class_names) if len(test) else None,
    }
    timing = {
        "seconds": {k: round(v, 3) for k, v in timer.items()},
        "train_images_per_second_per_network": round(lnl.epochs * len(train) / timer["train"], 1),
        "epoch_seconds": epoch_seconds,  # kept out of plots/lnl_epochs.csv, which identical runs write alike
    }
    metrics["selection"] = selection_metrics(selection["clean_guess"].to_numpy(), data.train.labels, data.train.truth,
                                             data.class_names)  # fmt: skip
    epoch_table = pd.DataFrame(rows, columns=EPOCH_COLUMNS)  # a column the run lacks stays empty
    return Phase1Result(spec, normalization, model, peer, selection, epoch_table, metrics, timing, val_probs.argmax(1))


def new_network(spec: ModelSpec, params: Params, encoder_path=paths.PRETRAIN_ENCODER) -> tuple[nn.Module, dict]:
    """A fresh network initialised per ``model.init`` (``ssl``: from the encoder at
    ``encoder_path``), and the record of that initialisation; successive calls draw different
    random weights (for what ``model.init`` does not load) from the seeded stream."""
    net = build_model(spec)
    record = initialise(net, spec, params.model.init, encoder_path)
    return net.to(pick_device(params.train.device)), record


def _feature_rule_mask(data: PipelineData, params: Params) -> tuple[np.ndarray, list]:
    """``lnl.selection`` knn_vote | cleanlab_kfold | conformal_kfold on the train split's
    pretrain embeddings (conformal_kfold: calibrated on the validation split's):
    (keep bool (N,), observed classes kept whole)."""
    lnl = params.lnl
    needs_val = lnl.selection == "conformal_kfold"  # calibrated on the validation split's embeddings
    if data.train.embeddings is None or (needs_val and data.val.embeddings is None):
        raise AlrError(f"lnl.selection {lnl.selection!r} reads the pretrain stage's embeddings, but none were "
                       f"loaded with the {'train and validation splits' if needs_val else 'train split'}")  # fmt: skip
    return feature_keep(lnl.selection, data.train.embeddings, data.train.labels, len(data.class_names), lnl.knn_k,
                        lnl.cv_folds, FOLD_SEED, data.val.embeddings, data.val.labels, lnl.clean_recall)  # fmt: skip


def _current_vog(buffers, epoch: int, labels, num_classes: int, params: Params):
    """Each network's VOG (N,) once the warm-up is over and W snapshots exist, else None."""
    lnl = params.lnl
    if not buffers or epoch <= lnl.num_gradual or not buffers[0].ready:
        return [None] * max(len(buffers), 2)
    vogs = [buffer.vog() for buffer in buffers]
    if lnl.vog_normalize == "class":
        vogs = [normalize_by_class(vog, labels, num_classes) for vog in vogs]
    return vogs


def _class_rule_mask(rule: str, labels: torch.Tensor, features: torch.Tensor, logits: torch.Tensor, vog,
                     keep_above_chance: bool):
    """A per-class rule (alr_core.lnl.class_rules) on one network's eval pass over the train
    split: (keep bool (N,) numpy, classes kept whole). Reads the pass back to the host once."""
    return class_keep(
        rule,
        labels.cpu().numpy(),
        per_sample_loss(logits, labels).cpu().numpy(),
        logits.softmax(1).cpu().numpy(),
        features.cpu().numpy(),
        vog.cpu().numpy() if vog is not None else None,
        keep_above_chance,
    )


def _mask_weights(masks, labels: torch.Tensor, truth, num_classes: int, class_balance: str):
    """Per network the float (N,) training weights of its keep mask (times inverse-frequency
    class weights of the kept set under ``class_balance: loss``), and (kept, clean among kept)
    of network f's mask (clean None without truth)."""
    weights = []
    for mask in masks:
        keep = torch.as_tensor(mask, device=labels.device)
        weight = keep.float()
        if class_balance == "loss":
            weight = weight * balance_weights(torch.bincount(labels[keep], minlength=num_classes))[labels]
        weights.append(weight)
    keep_f = torch.as_tensor(masks[0], device=labels.device)
    clean = int((labels[keep_f] == truth[keep_f]).sum()) if truth is not None else None
    return weights, (int(masks[0].sum()), clean)


def _clean_guess(nets, vogs, train: ImageSet, pipeline, params: Params, rate: float, coteaching: bool,
                 always: Optional[torch.Tensor] = None, feature_mask: Optional[np.ndarray] = None):
    """The selection rule applied once, over the whole split, to the final networks on
    unaugmented inputs (per-batch rules: globally with the final rate; per-class rules: the
    same rule as in training; a feature rule: its ``feature_mask``, which no network changes).
    Returns (table, classes of f's C kept whole).

    ``clean_guess`` is network f's selection (all samples for plain CE, which trusts every
    label); ``peer_clean_guess`` is g's, ``networks_agree`` whether f and g predict alike."""
    columns = {}
    kept_whole = []
    lnl = params.lnl
    for name, net, vog in zip(("", "peer_"), nets, vogs):
        features, logits = predict(net, train, pipeline, params.train.eval_batch_size)
        loss = per_sample_loss(logits, train.labels)
        keep = torch.ones(len(train), dtype=torch.bool, device=loss.device)
        if feature_mask is not None:
            keep = torch.as_tensor(feature_mask, device=loss.device)
        elif coteaching and lnl.selection in CLASS_RULES:
            mask, whole = _class_rule_mask(lnl.selection, train.labels, features, logits, vog,
                                           lnl.keep_above_chance != "never")
            keep = torch.as_tensor(mask, device=loss.device)
            if name == "":
                kept_whole = whole
        elif coteaching:
            keep = kept_mask(loss, train.labels, rate, vog, lnl.vog_mix, lnl.selection == "class_aware")
        if always is not None:
            keep = keep | always
        columns |= {f"{name}loss": loss, f"{name}vog": vog, f"{name}prediction": logits.argmax(1),
                    f"{name}clean_guess": keep}  # fmt: skip
    table = pd.DataFrame({k: (v.cpu().numpy() if v is not None else np.nan) for k, v in columns.items()})
    table.insert(0, "observed_label", train.labels.cpu().numpy())
    if coteaching:
        table["networks_agree"] = table["prediction"] == table["peer_prediction"]
    return table, kept_whole
