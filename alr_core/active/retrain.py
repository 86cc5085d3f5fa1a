"""retrain: the round's model from the previous one and the round's labels (docs/method.md).

``al.retrain`` decides where training starts: ``finetune`` continues the previous round's
networks, ``scratch`` starts fresh ones. ``al.train_on`` decides what it trains on: the trusted
set C ∪ relabelled (``selected``) or every sample (``all``) with plain cross-entropy, or every
sample through the phase-1 loop (``lnl``: Co-teaching and its selection rule go on sorting the labels nobody has
checked, while every expert-relabelled sample is always kept). ``al.class_balance`` weights the
loss by inverse class frequency (``loss``) or draws class-balanced batches (``sampler``).

Whatever the settings, the model a round starts from competes with the trained one on the clean
validation split: a round hands on whichever scores the higher macro-F1 (ties keep the previous
model), so that fine-tuning on a few hundred labels cannot throw away what the previous model knew
(measured: bench/ssl_evidence.md, "What the rounds add").
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from alr_core.common.cli import progress_bar
from alr_core.common.errors import AlrError
from alr_core.common.params import Params
from alr_core.data.datasets import PipelineData, SplitData
from alr_core.lnl.phase1 import new_network, train_phase1
from alr_core.lnl.selection import balance_weights
from alr_core.nn import distributed
from alr_core.nn.models import ModelSpec
from alr_core.nn.transfer import to_device
from alr_core.nn.training import (
    BestCheckpoint,
    EpochLosses,
    ImageSet,
    InputPipeline,
    MixedPrecision,
    epoch_batches,
    evaluate,
    make_optimizer,
    per_sample_loss,
    pick_device,
    seed_everything,
)

# the learning rate a round trains at, which a divergence error tells to lower
ROUND_LR = "al.lr (or the round's rounds.<r>.lr, where it sets one)"


@dataclass
class Retrained:
    model: torch.nn.Module
    peer: Optional[torch.nn.Module]  # Co-teaching's g under al.train_on: lnl, else None
    metrics: dict  # kept_previous, trained_val_macro_f1, best_epoch, val, test (under lnl also the round's selection)


def retrain(model: torch.nn.Module, peer: Optional[torch.nn.Module], spec: ModelSpec, normalization: dict,
            data: PipelineData, trained_rows: np.ndarray, relabelled: np.ndarray, params: Params, seed: int,
            progress: bool = True) -> Retrained:
    """The round's training from ``model`` (and ``peer``), the previous round's networks (None
    with ``al.retrain: scratch`` when there is none to keep). ``data.train`` carries the working
    labels; ``trained_rows`` (bool (N,)) are the rows ``selected``/``all`` train on;
    ``relabelled`` (bool (N,)) the samples an expert vouched for, which ``lnl`` never drops.

    Returns the trained model, or the given ``model`` and ``peer`` unchanged when the trained one
    scores no higher validation macro-F1 (``metrics["kept_previous"]`` says which;
    ``metrics["trained_val_macro_f1"]`` is the trained one's either way)."""
    previous_model, previous_peer = copy.deepcopy(model), copy.deepcopy(peer)  # training updates `model` in place
    previous_val = None
    if model is not None:
        previous_val = evaluation(previous_model, normalization, data, params, splits=("val",))["val"]
    scratch = params.al.retrain == "scratch"
    if params.al.train_on == "lnl":
        trained = _retrain_lnl(model, peer, data, relabelled, params, seed, scratch, progress)
    else:
        if scratch:
            seed_everything(seed)  # the fresh network's initial weights come from the round's seed
        start = new_network(spec, params)[0] if scratch else model
        tuned, scores = fine_tune(start, normalization, data.train.subset(trained_rows), data, params, seed, progress)
        trained = Retrained(tuned, None, scores)
    trained_val = trained.metrics["val"]["macro_f1"]
    if previous_val is not None and trained_val <= previous_val["macro_f1"]:
        test = evaluation(previous_model, normalization, data, params, splits=("test",))
        return Retrained(previous_model, previous_peer, {"kept_previous": True, "trained_val_macro_f1": trained_val,
                                                         "best_epoch": None, "val": previous_val, **test})
    trained.metrics = {"kept_previous": False, "trained_val_macro_f1": trained_val, **trained.metrics}
    return trained


def _retrain_lnl(model, peer, data: PipelineData, relabelled: np.ndarray, params: Params,
                 seed: int, scratch: bool, progress: bool) -> Retrained:
    al, coteaching = params.al, params.lnl.method != "ce"
    networks = None
    if not scratch:
        if coteaching and peer is None:
            raise AlrError(
                "al.train_on 'lnl' with al.retrain 'finetune' continues Co-teaching's two networks, but "
                "the model.pt this round starts from holds a single network (trained by plain CE, or by another "
                "al.train_on); use al.retrain: scratch, or start the round from a Co-teaching model"
            )
        networks = [model, peer] if coteaching else [model]
    # networks that continue are trained already: no warm-up, the selection acts from the start
    lnl = dataclasses.replace(params.lnl, epochs=al.epochs, class_balance=al.class_balance,
                              num_gradual=params.lnl.num_gradual if scratch else 0)
    round_params = dataclasses.replace(params, seed=seed, lnl=lnl, train=dataclasses.replace(params.train, lr=al.lr))
    result = train_phase1(data, round_params, progress, networks=networks, always_keep=relabelled, lr_key=ROUND_LR)
    metrics = {key: result.metrics.get(key) for key in ("best_epoch", "val", "test", "selection")}
    return Retrained(result.model, result.peer, metrics)


def fine_tune(model: torch.nn.Module, normalization: dict, train: SplitData, data: PipelineData,
              params: Params, seed: int, progress: bool = True) -> tuple[torch.nn.Module, dict]:
    """Plain cross-entropy on ``train``: fresh SGD at ``al.lr``, cosine over ``al.epochs``, class
    balance per ``al.class_balance``, best validation macro-F1 kept.

    Returns the selected model and its validation and test metrics (test evaluated once)."""
    device = pick_device(params.train.device)
    generator = seed_everything(seed)
    model = model.to(device)
    pipeline = InputPipeline(normalization, params.train.augment, device, generator)
    images = ImageSet.from_arrays(train.images, train.labels, device)
    val = ImageSet.from_arrays(data.val.images, data.val.labels, device)
    precision = MixedPrecision(params.train.mixed_precision, device)
    round_train = dataclasses.replace(params.train, lr=params.al.lr)
    trainer = distributed.data_parallel(model)  # the training forward; `model` for the rest
    optimizer, schedule = make_optimizer([model], round_train, params.al.epochs, params.model.backbone_lr)
    class_weight = None
    if params.al.class_balance == "loss":
        class_weight = balance_weights(torch.bincount(images.labels, minlength=len(data.class_names)))
    best = BestCheckpoint()
    for epoch in progress_bar(range(params.al.epochs), "retrain", progress):
        model.train()
        epoch_losses = EpochLosses(epoch, ROUND_LR)
        for idx in epoch_batches(images.labels, params.train.batch_size, generator, params.al.class_balance):
            idx = to_device(idx, device)
            labels = images.labels[idx]
            mine = distributed.local_rows(len(idx))  # this process's slice of the batch
            with precision.autocast():
                _, logits = trainer(pipeline.train_input(images.batch(idx))[mine])
            losses = distributed.global_batch(per_sample_loss(logits.float(), labels[mine]), len(idx))
            loss = (losses * class_weight[labels]).mean() if class_weight is not None else losses.mean()
            precision.step(distributed.loss_for_backward(loss), optimizer)
            epoch_losses.add([loss], [len(idx)])
        schedule.step()
        epoch_losses.means()  # stops a diverged run, naming the epoch and batch
        scores = evaluate(model, val, pipeline, params.train.eval_batch_size, data.class_names, checkpoint_only=True)
        best.update(model, scores["macro_f1"], epoch)
    model = best.restore(model)
    return model, {"best_epoch": best.epoch, **evaluation(model, normalization, data, params)}


def evaluation(model: torch.nn.Module, normalization: dict, data: PipelineData, params: Params,
               splits: tuple[str, ...] = ("val", "test")) -> dict:
    """Metrics of ``model`` on each named split (no training); None for an empty split."""
    device = pick_device(params.train.device)
    model = model.to(device)
    pipeline = InputPipeline(normalization, params.train.augment, device, torch.Generator())

    def scores(split: SplitData) -> Optional[dict]:
        if not len(split.labels):
            return None
        images = ImageSet.from_arrays(split.images, split.labels, device)
        return evaluate(model, images, pipeline, params.train.eval_batch_size, data.class_names)

    return {name: scores(getattr(data, name)) for name in splits}
