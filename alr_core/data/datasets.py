"""Loading the prepared arrays and label tables into per-split training data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from alr_core.common import artifacts
from alr_core.common.errors import AlrError
from alr_core.data.prepare import class_names as class_names_of


@dataclass
class SplitData:
    """One split: images uint8 (N, H, W, C) — or, for a head on cached embeddings
    (:func:`model_inputs`), the embeddings float32 (N, D) in their place —, labels int64 (N,),
    sample ids (N,), and the pretrain embeddings float32 (N, D) when they were loaded.

    For the train split ``labels`` are the working (observed) labels and ``truth`` the true
    labels when known; for val and test ``labels`` are the clean labels."""

    sample_ids: np.ndarray
    images: np.ndarray
    labels: np.ndarray
    truth: Optional[np.ndarray] = None
    embeddings: Optional[np.ndarray] = None

    def subset(self, rows: np.ndarray) -> "SplitData":
        """The rows selected by a bool mask or index array."""
        def pick(array):
            return array[rows] if array is not None else None

        return SplitData(self.sample_ids[rows], self.images[rows], self.labels[rows], pick(self.truth),
                         pick(self.embeddings))  # fmt: skip


@dataclass
class PipelineData:
    train: SplitData
    val: SplitData
    test: SplitData
    class_names: list[str]


def load_pipeline_data(images_path: Path, samples_path: Path, labels_table: pd.DataFrame,
                       label_column: str = "observed_label", embeddings_path: Optional[Path] = None) -> PipelineData:
    """Join the prepared images with a train label table (``sample_id`` + ``label_column``,
    optionally ``true_label``); val/test keep the prepared (clean) labels. With
    ``embeddings_path`` (the pretrain stage's table) every split also carries its embeddings."""
    images = artifacts.load_npy(images_path, mmap_mode="r")
    samples = artifacts.read_parquet(samples_path)
    if len(samples) != len(images):
        raise AlrError(f"{samples_path} has {len(samples)} rows but {images_path} has {len(images)} images")
    row_of = pd.Series(np.arange(len(samples)), index=samples["sample_id"])
    unknown = ~labels_table["sample_id"].isin(row_of.index)
    if unknown.any():
        raise AlrError(f"label table names sample {labels_table['sample_id'][unknown].iloc[0]!r}, "
                       f"which is not in {samples_path}")  # fmt: skip
    train_rows = row_of[labels_table["sample_id"]].to_numpy()
    truth = None
    if "true_label" in labels_table and labels_table["true_label"].notna().all():
        truth = labels_table["true_label"].to_numpy(dtype=np.int64)

    embeddings = _embeddings_by_row(embeddings_path, samples, samples_path) if embeddings_path else None

    def split(name: str) -> SplitData:
        rows = np.flatnonzero(samples["split"].to_numpy() == name)
        return SplitData(samples["sample_id"].to_numpy()[rows], np.asarray(images[rows]),
                         samples["label"].to_numpy(dtype=np.int64)[rows],
                         embeddings=embeddings[rows] if embeddings is not None else None)  # fmt: skip

    return PipelineData(
        train=SplitData(labels_table["sample_id"].to_numpy(), np.asarray(images[train_rows]),
                        labels_table[label_column].to_numpy(dtype=np.int64), truth,
                        embeddings[train_rows] if embeddings is not None else None),  # fmt: skip
        val=split("val"),
        test=split("test"),
        class_names=class_names_of(samples),
    )


def _embeddings_by_row(path: Path, samples: pd.DataFrame, samples_path: Path) -> np.ndarray:
    """The embeddings float32 (N, D) of the prepared samples, row i for ``samples``' row i."""
    from alr_core.ssl.embeddings import embedding_matrix

    table = artifacts.read_parquet(path)
    position = pd.Series(np.arange(len(table)), index=table["sample_id"].astype(str))
    ids = samples["sample_id"].astype(str)
    missing = ~ids.isin(position.index)
    if missing.any():
        raise AlrError(f"{path} has no embedding for sample {ids[missing].iloc[0]!r} of {samples_path} "
                       f"({int(missing.sum())} missing); re-run the pretrain stage (dvc repro pretrain)")  # fmt: skip
    return embedding_matrix(table)[position[ids].to_numpy()]


def model_inputs(data: PipelineData, frozen: bool) -> PipelineData:
    """The splits as the classifier reads them: unchanged, or — ``frozen``
    (``model.freeze: backbone``) — with each split's cached embeddings (N, D) as its inputs."""
    if not frozen:
        return data
    if data.train.embeddings is None:
        raise AlrError("model.freeze 'backbone' trains on the pretrain embeddings, but none were loaded")

    def as_inputs(split: SplitData) -> SplitData:
        return SplitData(split.sample_ids, split.embeddings, split.labels, split.truth, split.embeddings)

    return PipelineData(as_inputs(data.train), as_inputs(data.val), as_inputs(data.test), data.class_names)
