"""A job for tests/test_distributed.py: each training loop (SimCLR and VICReg
pretraining, and the untrained encoder's embeddings; phase 1's Co-teaching, fine-tuning) on tiny data, run as a training stage is run
(``run_stage(main, training=True)``), so that ``train.processes: 2`` in the params.yaml of the
working folder starts it under torchrun.

    python -m distributed_job OUT_DIR [kill|interrupt]    (cwd: a folder with params.yaml; PYTHONPATH: repo and tests/)

Rank 0 writes OUT_DIR/results.pt (what :func:`run_loops` returns) and OUT_DIR/model.pt (phase
1's network f, as stages/lnl_train.py writes it). With ``kill``, rank 1 kills itself with
SIGKILL in the middle of phase 1, as the out-of-memory killer would; with ``interrupt``, it sends
the launcher (the stage's own process) SIGTERM there.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from builders import class_images

from alr_core.common import paths
from alr_core.common.cli import run_stage
from alr_core.common.params import default_params, load_params

CLASS_NAMES = ["top_left", "bottom_right", "bar"]
NUM_TRAIN = 96


def tiny_data(seed: int = 0):
    """(images uint8 (N, 8, 8, 1), samples table with ``split``, PipelineData): 96 train images
    of 3 classes, 16 of their labels flipped to the next class, and 12 val and 12 test images."""
    from alr_core.data.datasets import PipelineData, SplitData

    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, NUM_TRAIN)
    observed = truth.copy()
    flipped = rng.choice(NUM_TRAIN, 16, replace=False)
    observed[flipped] = (truth[flipped] + 1) % 3
    train = SplitData(np.array([f"tr{i}" for i in range(NUM_TRAIN)]), class_images(truth, rng), observed, truth)

    def clean(prefix: str) -> SplitData:
        labels = np.repeat(np.arange(3), 4)
        return SplitData(np.array([f"{prefix}{i}" for i in range(len(labels))]), class_images(labels, rng), labels)

    data = PipelineData(train=train, val=clean("va"), test=clean("te"), class_names=CLASS_NAMES)
    images = np.concatenate([train.images, data.val.images, data.test.images])
    samples = pd.DataFrame({"sample_id": np.concatenate([train.sample_ids, data.val.sample_ids, data.test.sample_ids]),
                            "split": ["train"] * NUM_TRAIN + ["val"] * 12 + ["test"] * 12})  # fmt: skip
    return images, samples, data


def job_params(processes: int, **lnl) -> dict:
    """The params.yaml of the job: the defaults, with small batches that split unevenly over 2
    processes (25 = 12 + 13, and a last batch of 21), dropout off (each process draws its own
    masks), Co-teaching with VOG snapshots from the training forward and a forget rate in
    force from the first batch."""
    raw = default_params()
    raw["train"] |= {"device": "cpu", "processes": processes, "batch_size": 25, "eval_batch_size": 40}
    raw["model"] |= {"arch": "small_cnn", "dropout": 0.0}
    # no blur: on blurred views torch's own CPU BatchNorm backward (float32, channels_last, one
    # thread), which the one-process run uses, is off from a float64 pass by up to 6 % on a
    # channel, while the two processes' synchronised BatchNorm agrees with it to 3e-7
    # (docs/distributed.md); every other view transform is on
    raw["pretrain"] |= {"method": "simclr", "epochs": 1, "batch_size": 30, "projection_dim": 16,
                        "blur_probability": 0.0}
    raw["lnl"] |= {"method": "coteaching_vog", "epochs": 2, "num_gradual": 0, "forget_rate": 0.25,
                   "vog_window": 2, "vog_mix": 0.25, "vog_source": "train", "selection": "global"} | lnl  # fmt: skip
    raw["al"] |= {"epochs": 1, "lr": 0.02, "class_balance": "loss"}
    return raw


def run_loops(params):
    """One run of each loop on :func:`tiny_data`: (results, phase 1's result). The results are
    pretraining's epoch losses and embeddings, phase 1's selection and epoch tables and network
    f's weights (and the tables of a second phase 1 with a per-class rule), and the fine-tuned
    network's weights and metrics: numpy arrays and plain values, the same on every rank."""
    import torch

    from alr_core.active.retrain import fine_tune
    from alr_core.lnl.phase1 import train_phase1
    from alr_core.nn.models import build_model
    from alr_core.ssl.loop import run_pretrain

    images, samples, data = tiny_data()
    pretrained = run_pretrain(images, samples, params, progress=False)
    vicreg = dataclasses.replace(params, pretrain=dataclasses.replace(params.pretrain, method="vicreg"))
    pretrained_vicreg = run_pretrain(images, samples, vicreg, progress=False)
    # untrained: no DDP wrapper hands rank 0's random weights to the others
    untrained = dataclasses.replace(params, pretrain=dataclasses.replace(params.pretrain, method="none"))
    pretrained_untrained = run_pretrain(images, samples, untrained, progress=False)
    phase1 = train_phase1(data, params, progress=False)
    # a per-class rule: keep masks from whole-split passes, refreshed after every epoch, and VOG
    # snapshots from those passes
    class_rule = dataclasses.replace(params.lnl, selection="class_gmm", vog_source="eval", num_gradual=1, epochs=3)
    by_class = train_phase1(data, dataclasses.replace(params, lnl=class_rule), progress=False)
    torch.manual_seed(7)  # fine-tuning starts from a fresh network: rank 0's, which DDP hands to all
    start = build_model(phase1.spec)
    tuned, tuned_metrics = fine_tune(start, phase1.normalization, data.train.subset(phase1.selection["clean_guess"]),
                                     data, params, seed=5, progress=False)  # fmt: skip

    def weights(model) -> dict:
        return {key: value.detach().cpu().numpy().copy() for key, value in model.state_dict().items()}

    return {
        "pretrain_epochs": pretrained.epochs,
        "embeddings": pretrained.embeddings,
        "vicreg_pretrain_epochs": pretrained_vicreg.epochs,
        "vicreg_embeddings": pretrained_vicreg.embeddings,
        "untrained_pretrain_epochs": pretrained_untrained.epochs,
        "untrained_embeddings": pretrained_untrained.embeddings,
        "selection": phase1.selection,
        "phase1_epochs": phase1.epochs,
        "phase1_model": weights(phase1.model),
        "class_rule_selection": by_class.selection,
        "class_rule_epochs": by_class.epochs,
        "tuned_model": weights(tuned),
        "tuned_metrics": tuned_metrics,
    }, phase1


def signal_midway(pid: int, signum: int) -> None:
    """At this rank's 20th gather (in phase 1, whose outputs never come), send ``signum`` to
    ``pid``."""
    from alr_core.nn import distributed

    gather, calls = distributed.gather_rows, []

    def gather_or_die(*args, **kwargs):
        calls.append(1)
        if len(calls) == 20:
            os.kill(pid, signum)
        return gather(*args, **kwargs)

    distributed.gather_rows = gather_or_die


def main() -> None:
    out = Path(sys.argv[1])
    params = load_params(paths.PARAMS)
    from alr_core.common import artifacts
    from alr_core.nn import distributed
    from alr_core.nn.models import save_checkpoint

    distributed.join(params.train.device)
    if sys.argv[2:] == ["kill"] and distributed.rank() == 1:  # as the out-of-memory killer would
        signal_midway(os.getpid(), signal.SIGKILL)
    if sys.argv[2:] == ["interrupt"] and distributed.rank() == 1:  # the launcher, as `kill` or a scheduler would
        signal_midway(os.getppid(), signal.SIGTERM)
    results, phase1 = run_loops(params)
    if not distributed.is_main_process():
        return
    artifacts.write_torch(out / "results.pt", results)
    save_checkpoint(out / "model.pt", phase1.spec, phase1.model, CLASS_NAMES, phase1.normalization)


if __name__ == "__main__":
    run_stage(main, training=True)
