"""End to end: a copy of the project in a fresh git repo, `dvc repro` on tiny params.

Targets the ``inject_noise`` stage (which runs its upstream ``prepare``), so the test stays
valid as later stages are added to dvc.yaml; the params file starts from the default params
and overrides only what it needs, so new parameter groups stay valid too.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from builders import ran_stages

from alr_core.common import paths
from alr_core.data.splits import long_tail_counts

pytestmark = pytest.mark.e2e  # `pytest -m "not e2e"` skips the slow end-to-end runs

TINY = {
    "seed": 0,
    "data": {
        "source": "digits",
        "path": None,
        "image_size": 8,
        "channels": None,
        "class_names": None,
        "imbalance_ratio": 10,
        "val_per_class": 5,
        "test_per_class": 5,
    },
    "noise": {"type": "symmetric", "rate": 0.4, "keep_clean_classes": []},
}
# the smallest digit class has 174 images: 174 - 5 - 5 = 164 train images for the head class
TRAIN_COUNTS = [164, 127, 98, 76, 59, 46, 35, 27, 21, 16]
NUM_TRAIN = sum(TRAIN_COUNTS)  # 669
NUM_SAMPLES = NUM_TRAIN + 10 * (5 + 5)  # 769


def md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_dvc_repro_on_tiny_params(project_copy):
    root = project_copy.root
    assert long_tail_counts(10, 164, 10).tolist() == TRAIN_COUNTS
    project_copy.write_params(TINY)
    project_copy.git("commit", "-q", "-am", "tiny params")

    # ---- first run: both stages, every artifact
    first = project_copy.dvc("repro", "inject_noise")
    assert ran_stages(first.stdout) == ["prepare", "inject_noise"], first.stdout

    images = np.load(root / paths.PREPARED_IMAGES, mmap_mode="r")
    assert images.shape == (NUM_SAMPLES, 8, 8, 1) and images.dtype == np.uint8
    assert images.max() == 255

    samples = pd.read_parquet(root / paths.PREPARED_SAMPLES)
    assert list(samples.columns) == ["sample_id", "split", "label", "class_name", "source_path", "source_md5"]
    assert len(samples) == NUM_SAMPLES and samples["sample_id"].is_unique
    train = samples[samples["split"] == "train"]
    assert np.bincount(train["label"], minlength=10).tolist() == TRAIN_COUNTS
    for split in ("val", "test"):
        assert np.bincount(samples.loc[samples["split"] == split, "label"]).tolist() == [5] * 10

    data_metrics = json.loads((root / paths.DATA_METRICS).read_text())
    assert data_metrics["num_samples"] == NUM_SAMPLES
    assert data_metrics["num_classes"] == 10
    assert data_metrics["image_shape"] == [8, 8, 1]
    assert data_metrics["split_sizes"] == {"train": NUM_TRAIN, "val": 50, "test": 50}
    assert list(data_metrics["class_counts"]["train"].values()) == TRAIN_COUNTS
    assert data_metrics["train_imbalance_ratio"] == 164 / 16

    labels = pd.read_parquet(root / paths.NOISY_LABELS)
    assert list(labels.columns) == ["sample_id", "split", "true_label", "observed_label", "is_corrupted"]
    assert labels["sample_id"].tolist() == train["sample_id"].tolist()
    assert labels["true_label"].astype("int64").tolist() == train["label"].tolist()
    corrupted = labels["observed_label"] != labels["true_label"].astype("int64")
    assert labels["is_corrupted"].astype(bool).tolist() == corrupted.tolist()

    noise_metrics = json.loads((root / paths.NOISE_METRICS).read_text())
    assert noise_metrics["type"] == "symmetric" and noise_metrics["rate"] == 0.4
    assert noise_metrics["num_train"] == NUM_TRAIN
    assert noise_metrics["num_corrupted"] == int(corrupted.sum())
    assert abs(noise_metrics["realised_rate"] - 0.4) < 0.07  # N = 669: about 3.5 standard deviations
    matrix = np.array(noise_metrics["transition_counts"])
    assert matrix.shape == (10, 10) and matrix.sum(axis=1).tolist() == TRAIN_COUNTS

    # ---- second run: nothing to do
    second = project_copy.dvc("repro", "inject_noise")
    assert ran_stages(second.stdout) == [], second.stdout
    assert "Stage 'prepare' didn't change, skipping" in second.stdout  # the fingerprint re-checked the data

    # ---- a new noise rate re-runs inject_noise only
    prepared = {p: md5(root / p) for p in (paths.PREPARED_IMAGES, paths.PREPARED_SAMPLES, paths.DATA_METRICS)}
    project_copy.write_params(TINY | {"noise": TINY["noise"] | {"rate": 0.2}})
    third = project_copy.dvc("repro", "inject_noise")
    assert "Running stage 'inject_noise'" in third.stdout
    assert "Running stage 'prepare'" not in third.stdout
    assert ran_stages(third.stdout) == ["inject_noise"], third.stdout
    assert {p: md5(root / p) for p in prepared} == prepared
    noise_metrics = json.loads((root / paths.NOISE_METRICS).read_text())
    assert noise_metrics["rate"] == 0.2
    assert abs(noise_metrics["realised_rate"] - 0.2) < 0.06
