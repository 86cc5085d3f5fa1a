"""The ``prepare`` step: any source → canonical images array + ``samples.parquet`` table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import pandas as pd

from alr_core.common.errors import AlrError
from alr_core.common.params import DataParams, check_class_names
from alr_core.common.text import counted, did_you_mean
from alr_core.data.fingerprint import fingerprint
from alr_core.data.identical import identical_groups, identical_summary, keep_together
from alr_core.data.sources import SourceData, read_source
from alr_core.data.splits import (SPLITS, evaluation_counts, group_ids, group_ranks, grouped_split, hash_ranks, hashed,
                                  long_tail_split, stratified_split)


@dataclass
class PreparedDataset:
    """images: uint8 (N, H, W, C), row i of ``samples`` describes ``images[i]``; ``identical``:
    the groups of identical images (row indices, :func:`~alr_core.data.identical.identical_groups`)."""

    images: np.ndarray
    samples: pd.DataFrame
    identical: list[np.ndarray] = field(default_factory=list)


def prepare(params: DataParams, rng: np.random.Generator, stat_cache: Optional[dict] = None) -> PreparedDataset:
    """Read the source, draw the splits and build the samples table: ``sample_id``, ``split``,
    ``label``, ``class_name``, and for file sources ``source_path`` and ``source_md5`` (the MD5
    of the file the image was decoded from, so that an edited image changes the table too).
    ``stat_cache``: the fingerprint stage's, which spares re-hashing unchanged files."""
    source = read_source(params)
    check_class_names(source.class_names, f"{params.path or params.source}: the classes")
    if len(source.class_names) < 2:
        raise AlrError(f"{params.path or params.source}: found 1 class, {source.class_names!r}; alr classifies "
                       "between at least 2 classes (as data.class_names requires): add the other classes' "
                       "folders or rows")
    groups = identical_groups(source.images)
    splits = assign_splits(source, params, rng, groups)
    keep = splits != ""
    hashes = fingerprint(source.paths, stat_cache)[0] if source.paths else {}
    samples = pd.DataFrame(
        {
            "sample_id": pd.Series(source.sample_ids, dtype="string")[keep].to_numpy(),
            "split": splits[keep].astype(str),
            "label": source.labels[keep],
            "class_name": np.asarray(source.class_names, dtype=object)[source.labels[keep]],
            "source_path": (
                np.asarray(source.paths, dtype=object)[keep] if source.paths else None
            ),
        }
    )
    samples["source_path"] = samples["source_path"].astype("string")
    if source.groups is not None:
        samples["group"] = pd.Series(source.groups[keep], dtype="string")
    samples["source_md5"] = samples["source_path"].map(hashes, na_action="ignore").astype("string")
    if samples["sample_id"].duplicated().any():
        duplicate = samples["sample_id"][samples["sample_id"].duplicated()].iloc[0]
        raise AlrError(f"sample id {duplicate!r} occurs twice in the source")
    if not (samples["split"] == "train").any():
        raise AlrError("the train split is empty; check data.csv.split_column or the fractions")
    _check_every_class_in_train(samples, source.class_names, params)
    if not (samples["split"] == "val").any():
        raise AlrError(f"the val split is empty, and phase 1 picks its checkpoint on validation images; "
                       f"{_val_advice(params, source)}")  # fmt: skip
    row = np.cumsum(keep) - 1  # a kept source image's row in the prepared data
    kept_groups = [row[g[keep[g]]] for g in groups if keep[g].sum() > 1]
    kept_images = source.images if keep.all() else source.images[keep]  # indexing copies every image
    return PreparedDataset(np.ascontiguousarray(kept_images), samples, kept_groups)


def _check_every_class_in_train(samples: pd.DataFrame, names: list[str], params: DataParams) -> None:
    """A class whose images are all in val or test (a source's own splits; a drawn split keeps a
    train image of every class) cannot be learnt, and injected noise would flip train labels into it."""
    train = np.bincount(samples.loc[samples["split"] == "train", "label"], minlength=len(names))
    absent = [names[k] for k in np.flatnonzero(train == 0)]
    if not absent:
        return
    held = int(np.isin(samples["label"], np.flatnonzero(train == 0)).sum())
    where = (f"give some of their rows the split 'train' in data.csv.split_column ({params.csv.split_column!r})"
             if params.source == "csv" else f"{params.path or params.source} holds none in its train split")
    verb = "has" if len(absent) == 1 else "have"
    raise AlrError(f"{counted(len(absent), 'class', 'classes')} {absent} {verb} images only in val or test ({held}), "
                   f"none in train: no model can learn them, and injected noise would flip train labels into them; "
                   f"{where}")  # fmt: skip


def assign_splits(source: SourceData, params: DataParams, rng: np.random.Generator,
                  identical: list[np.ndarray]) -> np.ndarray:
    """The split of each image: the source's own, or drawn with ``rng`` (from data.split_seed),
    never putting ``identical`` images (or, with ``data.csv.group_column``, one group's) in
    train and in val or test."""
    if source.splits is not None:
        return source.splits
    if params.source == "digits":
        splits = long_tail_split(
            source.labels, params.val_per_class, params.test_per_class, params.imbalance_ratio, rng
        )
        return keep_together(splits, identical)
    if source.groups is not None:
        groups = group_ids(source.groups, identical)
        # a named group (patient) is ranked by its name, so that its images added later rank with it
        keys = np.where(source.groups == "", np.asarray(source.sample_ids, dtype=object), source.groups)
        order = rng.permutation if params.split_order == "shuffle" else hashed(
            group_ranks(hash_ranks(keys, params.split_seed), groups))
        return grouped_split(source.labels, groups, params.val_fraction, params.test_fraction, order)
    order = rng.permutation if params.split_order == "shuffle" else hashed(
        hash_ranks(source.sample_ids, params.split_seed))
    splits = stratified_split(source.labels, params.val_fraction, params.test_fraction, order)
    return keep_together(splits, identical)


def _val_advice(params: DataParams, source: SourceData) -> str:
    """What would put images in an empty validation split, for the way it was drawn."""
    if source.splits is not None and params.source == "csv":
        return f"give some rows the split 'val' in data.csv.split_column ({params.csv.split_column!r})"
    if source.splits is not None:
        return f"{params.path} brings its own splits and holds no validation image"
    if source.groups is not None:
        return (f"raise data.val_fraction ({params.val_fraction:g}) or check data.csv.group_column "
                f"({params.csv.group_column!r}): the val split takes whole groups")
    counts = np.bincount(source.labels)
    counts = counts[counts > 0]
    if evaluation_counts(counts, params.val_fraction, params.test_fraction)[0].any():
        return "identical images share one split, which here took every validation image into train or test"
    if (np.floor(params.val_fraction * counts + 0.5) >= 1).any():
        return (f"the test split (data.test_fraction {params.test_fraction:g}) and one train image per class "
                "take every image of each class; lower data.test_fraction or add images")
    return (f"raise data.val_fraction ({params.val_fraction:g}): it rounds to no image of any class "
            "(a class gets one once data.val_fraction × its size reaches 0.5)")


def class_names(samples: pd.DataFrame) -> list[str]:
    """Class names in label order, from a prepared samples table."""
    pairs = samples[["label", "class_name"]].drop_duplicates().sort_values("label")
    return pairs["class_name"].astype(str).tolist()


def data_summary(dataset: PreparedDataset) -> dict:
    """Per-split class counts, train imbalance ratio (max/min class), image shape, the identical
    images (:func:`~alr_core.data.identical.identical_summary`) and, with a group column, the
    groups (:func:`groups_summary`; None without one)."""
    samples = dataset.samples
    names = class_names(samples)
    counts = {
        split: {
            name: int(((samples["split"] == split) & (samples["label"] == k)).sum())
            for k, name in enumerate(names)
        }
        for split in SPLITS
    }
    train_counts = np.array(list(counts["train"].values()))
    nonzero = train_counts[train_counts > 0]
    return {
        "num_samples": int(len(samples)),
        "num_classes": len(names),
        "class_names": names,
        "image_shape": list(dataset.images.shape[1:]),
        "split_sizes": {split: int(sum(counts[split].values())) for split in SPLITS},
        "class_counts": counts,
        "train_imbalance_ratio": float(nonzero.max() / nonzero.min()),
        "identical_images": identical_summary(dataset.identical, samples["label"].to_numpy(),
                                              samples["split"].to_numpy(dtype=object),
                                              samples["sample_id"].to_numpy(dtype=object), names),
        "groups": groups_summary(samples) if "group" in samples else None,
    }


def imbalance_text(summary: dict, params: DataParams) -> str | None:
    """What ``prepare`` prints when ``data.imbalance_ratio`` asks the drawn long tail
    (``digits``) for less than half an image of its rarest class: that class keeps one, and the
    train split's ratio is below the one asked for. None otherwise."""
    head = max(summary["class_counts"]["train"].values())
    if params.source != "digits" or params.imbalance_ratio <= 2 * head:
        return None
    return (f"note: data.imbalance_ratio is {params.imbalance_ratio:g}, but the largest class has "
            f"{counted(head, 'train image')} and a class keeps at least one, so the train split's ratio is "
            f"{summary['train_imbalance_ratio']:g} (train_imbalance_ratio in metrics/data.json)")


def unscored_classes_text(summary: dict) -> str | None:
    """What ``prepare`` prints about the classes without a validation or a test image (of a split
    that has images; ``summary``: :func:`data_summary`'s): no checkpoint choice or score sees
    them, and a misspelt label or folder name makes such a class, so each is named with its
    train count and the class it may misspell. None when there is no such class."""
    counts, names = summary["class_counts"], summary["class_names"]
    splits = [split for split in ("val", "test") if summary["split_sizes"][split]]
    described = []
    for name in names:
        missing = [split for split in splits if not counts[split][name]]
        if missing:
            described.append(f"{name!r}{did_you_mean(name, [n for n in names if n != name])} with "
                             f"{counted(counts['train'][name], 'train image')} and none in {' or '.join(missing)}")
    if not described:
        return None
    return (f"warning: {len(described)} of {len(names)} classes lack validation or test images, which pick the "
            f"checkpoints and give the scores: {'; '.join(described)}; every distinct label of the source is a "
            "class (data.class_names picks them): check for a misspelt label or folder name, or add images")


def groups_text(summary: dict | None) -> str | None:
    """What ``prepare`` prints about :func:`groups_summary`'s ``summary``: only a source's own
    splits that put a group's images in train and in val or test (None otherwise)."""
    if not summary or not summary["evaluation_images_in_train_groups"]:
        return None
    return (f"{counted(summary['evaluation_images_in_train_groups'], 'validation or test image')} of the source's "
            "own splits share a group (data.csv.group_column) with train images: their scores are optimistic")


def groups_summary(samples: pd.DataFrame) -> dict:
    """metrics/data.json's ``groups`` (``data.csv.group_column``): the named groups, the images of
    the largest, the images in no named group (an empty cell), and the val and test images whose
    group train holds too (none where alr drew the splits; a source's own splits may have some)."""
    named = samples[samples["group"] != ""]
    in_train = set(named.loc[named["split"] == "train", "group"])
    return {
        "groups": int(named["group"].nunique()),
        "largest": int(named["group"].value_counts().max()) if len(named) else 0,
        "ungrouped_images": int(len(samples) - len(named)),
        "evaluation_images_in_train_groups": int((named["split"].isin(["val", "test"])
                                                  & named["group"].isin(in_train)).sum()),
    }
