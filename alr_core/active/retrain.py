"""retrain: fine-tune the previous round's model on the round's training set (docs/method.md)."""

from __future__ import annotations

import dataclasses

import torch
from tqdm import tqdm

from alr_core.common.params import Params
from alr_core.data.datasets import PipelineData, SplitData
from alr_core.nn.training import (
    BestCheckpoint,
    EpochLosses,
    ImageSet,
    InputPipeline,
    MixedPrecision,
    evaluate,
    make_optimizer,
    per_sample_loss,
    pick_device,
    seed_everything,
    shuffled_batches,
)


def fine_tune(model: torch.nn.Module, normalization: dict, train: SplitData, data: PipelineData,
              params: Params, seed: int, progress: bool = True) -> tuple[torch.nn.Module, dict]:
    """Fresh SGD at ``al.lr``, cosine over ``al.epochs``, best validation macro-F1 kept.

    Returns the selected model and its validation and test metrics (test evaluated once)."""
    device = pick_device(params.train.device)
    generator = seed_everything(seed)
    model = model.to(device)
    pipeline = InputPipeline(normalization, params.train.augment, device, generator)
    images = ImageSet.from_arrays(train.images, train.labels, device)
    val = ImageSet.from_arrays(data.val.images, data.val.labels, device)
    precision = MixedPrecision(params.train.mixed_precision, device)
    round_train = dataclasses.replace(params.train, lr=params.al.lr)
    optimizer, schedule = make_optimizer(model.parameters(), round_train, params.al.epochs)
    best = BestCheckpoint()
    for epoch in tqdm(range(params.al.epochs), desc="retrain", disable=not progress):
        model.train()
        epoch_losses = EpochLosses(epoch)
        for idx in shuffled_batches(len(images), params.train.batch_size, generator):
            idx = idx.to(device)
            with precision.autocast():
                _, logits = model(pipeline.train_input(images.batch(idx)))
            loss = per_sample_loss(logits.float(), images.labels[idx]).mean()
            precision.step(loss, optimizer)
            epoch_losses.add([loss], [len(idx)])
        schedule.step()
        epoch_losses.means()  # stops a diverged run, naming the epoch and batch
        scores = evaluate(model, val, pipeline, params.train.eval_batch_size, data.class_names)
        best.update(model, scores["macro_f1"], epoch)
    model = best.restore(model)
    return model, {"best_epoch": best.epoch, **evaluation(model, normalization, data, params)}


def evaluation(model: torch.nn.Module, normalization: dict, data: PipelineData, params: Params) -> dict:
    """Validation and test metrics of ``model`` (no training)."""
    device = pick_device(params.train.device)
    model = model.to(device)
    pipeline = InputPipeline(normalization, params.train.augment, device, torch.Generator())
    splits = {"val": data.val, "test": data.test}
    return {name: evaluate(model, ImageSet.from_arrays(s.images, s.labels, device), pipeline,
                           params.train.eval_batch_size, data.class_names) if len(s.labels) else None
            for name, s in splits.items()}  # fmt: skip

