"""Loading the prepared arrays and label tables into per-split training data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from alr_core.common.errors import AlrError
from alr_core.data.prepare import class_names as class_names_of


@dataclass
class SplitData:
    """One split: images uint8 (N, H, W, C), labels int64 (N,), sample ids (N,).

    For the train split ``labels`` are the working (observed) labels and ``truth`` the true
    labels when known; for val and test ``labels`` are the clean labels."""

    sample_ids: np.ndarray
    images: np.ndarray
    labels: np.ndarray
    truth: Optional[np.ndarray] = None

    def subset(self, rows: np.ndarray) -> "SplitData":
        """The rows selected by a bool mask or index array."""
        truth = self.truth[rows] if self.truth is not None else None
        return SplitData(self.sample_ids[rows], self.images[rows], self.labels[rows], truth)


@dataclass
class PipelineData:
    train: SplitData
    val: SplitData
    test: SplitData
    class_names: list[str]


def load_pipeline_data(images_path: Path, samples_path: Path, labels_table: pd.DataFrame,
                       label_column: str = "observed_label") -> PipelineData:
    """Join the prepared images with a train label table (``sample_id`` + ``label_column``,
    optionally ``true_label``); val/test keep the prepared (clean) labels."""
    images = np.load(images_path, mmap_mode="r")
    samples = pd.read_parquet(samples_path)
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

    def split(name: str) -> SplitData:
        rows = np.flatnonzero(samples["split"].to_numpy() == name)
        return SplitData(samples["sample_id"].to_numpy()[rows], np.asarray(images[rows]),
                         samples["label"].to_numpy(dtype=np.int64)[rows])  # fmt: skip

    return PipelineData(
        train=SplitData(labels_table["sample_id"].to_numpy(), np.asarray(images[train_rows]),
                        labels_table[label_column].to_numpy(dtype=np.int64), truth),  # fmt: skip
        val=split("val"),
        test=split("test"),
        class_names=class_names_of(samples),
    )
