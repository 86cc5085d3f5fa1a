"""bench/referable_dr.py: RetinaMNIST's grades as a two-class CSV manifest that alr's csv source reads back."""

from __future__ import annotations

import numpy as np
from builders import write_npz

from alr_core.common.params import CsvParams, DataParams
from alr_core.data.sources import read_source
from bench import referable_dr


def test_grades_two_and_up_are_referable_and_alr_reads_the_pixels_and_splits_back(tmp_path):
    arrays = write_npz(tmp_path / "retina.npz", {"train": [0, 1, 2, 3, 4], "val": [4, 1], "test": [2, 0]}, rgb=True)
    manifest = referable_dr.write_manifest(tmp_path / "retina.npz", tmp_path / "out")
    assert manifest["grade"].tolist() == [0, 1, 2, 3, 4, 4, 1, 2, 0]
    assert manifest["label"].tolist() == ["non_referable"] * 2 + ["referable"] * 4 + ["non_referable", "referable",
                                                                                        "non_referable"]  # fmt: skip
    params = DataParams(source="csv", path=str(tmp_path / "out" / "manifest.csv"), image_size=None,
                        csv=CsvParams(label_column="label", split_column="split"))  # fmt: skip
    data = read_source(params)
    assert data.class_names == ["non_referable", "referable"]
    assert data.labels.tolist() == [0, 0, 1, 1, 1, 1, 0, 1, 0]
    assert data.splits.tolist() == ["train"] * 5 + ["val"] * 2 + ["test"] * 2
    expected = np.concatenate([arrays[f"{split}_images"] for split in ("train", "val", "test")])
    # PNG is lossless: MedMNIST's pixels, in order (these test images are gray in RGB, which alr reads as 1 channel)
    assert (expected == expected[..., :1]).all()
    np.testing.assert_array_equal(data.images, expected[..., :1])
