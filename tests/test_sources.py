"""Source readers: digits, MedMNIST .npz, image folders, CSV manifests; their bad inputs;
and the real shared data sets when they are present."""

from __future__ import annotations

import os
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from builders import write_16bit_per_channel, write_csv, write_image, write_image_folder, write_npz
from PIL import Image

from alr_core.common.errors import AlrError
from alr_core.common.params import CsvParams, DataParams, SyntheticParams
from alr_core.data import images, sources
from alr_core.data.images import decode_files, decode_threads
from alr_core.data.sources import read_source, source_files
from alr_core.data.synthetic import synthetic_images, synthetic_layout

EXPECTED_KEYS = "['train_images', 'train_labels', 'val_images', 'val_labels', 'test_images', 'test_labels']"


def medmnist(path, **kwargs) -> DataParams:
    return DataParams(source="medmnist", path=str(path), **({"image_size": None} | kwargs))


def imagefolder(path, **kwargs) -> DataParams:
    return DataParams(source="imagefolder", path=str(path), **({"image_size": None} | kwargs))


def csv(path, image_size=None, class_names=None, channels=None, **csv_kwargs) -> DataParams:
    return DataParams(
        source="csv",
        path=str(path),
        image_size=image_size,
        class_names=class_names,
        channels=channels,
        csv=CsvParams(**csv_kwargs),
    )


def error_of(params: DataParams, reader=read_source) -> str:
    """The AlrError ``reader`` (read_source, or source_files, which the fingerprint stage calls first) raises."""
    with pytest.raises(AlrError) as info:
        reader(params)
    return str(info.value)


# ============================================================================= digits


def test_digits_default_size():
    data = read_source(DataParams())
    assert data.images.shape == (1797, 28, 28, 1) and data.images.dtype == np.uint8
    assert data.labels.dtype == np.int64 and data.labels.shape == (1797,)
    assert np.bincount(data.labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert data.class_names == [str(k) for k in range(10)]
    assert data.sample_ids[:2] == ["digits/0000", "digits/0001"] and len(set(data.sample_ids)) == 1797
    assert data.splits is None and data.paths is None


def test_digits_native_size_full_range_and_rgb():
    native = read_source(DataParams(image_size=None))
    assert native.images.shape == (1797, 8, 8, 1)
    assert native.images.max() == 255 and native.images.min() == 0  # 0..16 stretched to 0..255
    rgb = read_source(DataParams(image_size=8, channels=3))
    assert rgb.images.shape == (1797, 8, 8, 3)
    assert (rgb.images[..., 0] == native.images[..., 0]).all()


def test_digits_class_names_must_match_in_number():
    names = [f"d{k}" for k in range(10)]
    assert read_source(DataParams(class_names=names, image_size=None)).class_names == names
    assert error_of(DataParams(class_names=["a", "b"])) == (
        "data.class_names has 2 names but data.source: digits has 10 classes"
    )


# ============================================================================= synthetic


def synthetic(num_train=300, num_classes=5, **kwargs) -> DataParams:
    return DataParams(source="synthetic", synthetic=SyntheticParams(num_train, num_classes), **kwargs)


def test_synthetic_layout_is_long_tailed_with_balanced_val_and_test():
    labels, splits = synthetic_layout(1000, 4, imbalance_ratio=8, val_per_class=5, test_per_class=7)
    train = np.bincount(labels[splits == "train"], minlength=4)
    assert train.sum() == 1000 and train.tolist() == [534, 267, 133, 66]  # ⌊1000·8^(-k/3)/1.875⌋ = 533, 266, 133, 66; +1 to the 2 largest
    assert np.bincount(labels[splits == "val"]).tolist() == [5] * 4
    assert np.bincount(labels[splits == "test"]).tolist() == [7] * 4


def test_synthetic_layout_keeps_one_train_image_of_a_vanishing_class():
    labels, splits = synthetic_layout(10, 3, imbalance_ratio=1000, val_per_class=1, test_per_class=1)
    assert np.bincount(labels[splits == "train"]).tolist() == [8, 1, 1]
    with pytest.raises(AlrError, match="data.synthetic.num_train is 2; it must be at least num_classes \\(3\\)"):
        synthetic_layout(2, 3, imbalance_ratio=10, val_per_class=1, test_per_class=1)


@pytest.mark.parametrize("num_train, num_classes, ratio, head", [
    (10, 10, 100, [1] * 4),  # every class one image (the minimum's excess used to come off class 0, leaving it none)
    (100, 50, 100, [6, 6, 5, 5]),  # 1 each, then ⌊50·shares⌋ (class 0 used to fall below class 1)
    (300, 100, 1000, [15, 14, 13, 12]),  # an excess larger than class 0 raised a numpy error
])  # fmt: skip
def test_synthetic_layout_takes_the_minimums_excess_off_the_largest_classes(num_train, num_classes, ratio, head):
    labels, splits = synthetic_layout(num_train, num_classes, imbalance_ratio=ratio, val_per_class=1,
                                      test_per_class=1)  # fmt: skip
    train = np.bincount(labels[splits == "train"], minlength=num_classes)
    assert train.sum() == num_train and train.min() == 1 and (np.diff(train) <= 0).all()
    assert train[:4].tolist() == head[:4]


def test_synthetic_source_shape_ids_and_splits():
    data = read_source(synthetic(image_size=16))
    assert data.images.shape == (300 + 5 * (15 + 30), 16, 16, 1) and data.images.dtype == np.uint8
    assert (data.splits == "train").sum() == 300 and set(data.splits) == {"train", "val", "test"}
    assert data.sample_ids[0] == "synthetic/0000000" and len(set(data.sample_ids)) == len(data.labels)
    assert data.class_names == ["0", "1", "2", "3", "4"] and data.paths is None
    assert 0 < data.images.mean() < 255 and data.images.std() > 20  # neither blank nor saturated
    rgb = read_source(synthetic(image_size=16, channels=3))
    assert rgb.images.shape[-1] == 3


def test_synthetic_images_depend_on_the_data_params_only():
    first, second = read_source(synthetic()), read_source(synthetic())
    assert np.array_equal(first.images, second.images)
    assert not np.array_equal(first.images[:300], read_source(synthetic(num_train=301)).images[:300])


def test_synthetic_images_carry_their_class():
    """A linear model on the phase-free Fourier magnitude separates the classes; with shuffled
    labels it is at chance, so the signal is the class, not an artefact of the split."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(5), 60)
    images = synthetic_images(labels, 5, 28, 1, rng)
    features = np.abs(np.fft.fft2(images[..., 0] / 255.0)).reshape(len(labels), -1)
    train, test = np.arange(0, 300, 2), np.arange(1, 300, 2)
    fitted = LogisticRegression(max_iter=2000).fit(features[train], labels[train])
    assert fitted.score(features[test], labels[test]) >= 0.9
    shuffled = LogisticRegression(max_iter=2000).fit(features[train], rng.permutation(labels[train]))
    assert shuffled.score(features[test], labels[test]) <= 0.45


def test_synthetic_class_names_must_match_in_number():
    assert error_of(synthetic(class_names=["a", "b"])) == (
        "data.class_names has 2 names but data.source: synthetic has 5 classes"
    )


# ============================================================================= medmnist


@pytest.mark.parametrize("label_shape", ["column", "flat"])
def test_medmnist_reads_every_split_in_order(tmp_path, label_shape):
    path = tmp_path / "tiny.npz"
    write_npz(path, label_shape=label_shape)
    data = read_source(medmnist(path))
    assert data.images.shape == (14, 6, 6, 1) and data.images.dtype == np.uint8
    assert data.labels.dtype == np.int64
    assert data.labels.tolist() == [0, 1, 2, 0, 1, 2, 0] + [0, 1, 2] + [2, 1, 0, 0]
    assert data.splits.tolist() == ["train"] * 7 + ["val"] * 3 + ["test"] * 4
    assert data.sample_ids[0] == "train/000000" and data.sample_ids[7] == "val/000000"
    assert data.sample_ids[-1] == "test/000003"
    assert data.class_names == ["0", "1", "2"]
    assert data.paths is None
    # image i of split s is filled with 50*s + i: the pixels stayed with their labels
    assert data.images[:, 0, 0, 0].tolist() == list(range(7)) + [50, 51, 52] + [100, 101, 102, 103]


@pytest.mark.parametrize("layout", ["blocks", "compressed", "fortran"])
def test_medmnist_images_are_streamed_block_by_block(tmp_path, monkeypatch, layout):
    # read whole, the splits and their concatenation held the images twice (a 224 px MedMNIST+ file: gigabytes)
    arrays = write_npz(tmp_path / "plain.npz", rgb=True)
    arrays["val_images"][..., 2] = 200  # in colour: no grayscale shortcut
    path = tmp_path / f"{layout}.npz"
    if layout == "compressed":  # as MedMNIST ships its files
        np.savez_compressed(path, **arrays)
    else:
        np.savez(path, **(arrays | ({"train_images": np.asfortranarray(arrays["train_images"])}
                                    if layout == "fortran" else {})))
    read = []
    load = np.lib.npyio.NpzFile.__getitem__
    monkeypatch.setattr(np.lib.npyio.NpzFile, "__getitem__", lambda self, key: read.append(key) or load(self, key))
    monkeypatch.setattr(sources, "NPZ_BLOCK_BYTES", 6 * 6 * 3 * 2)  # two images a block, in 4, 2 and 2 blocks
    for image_size in (None, 4):
        data = read_source(medmnist(path, image_size=image_size))
        expected = np.concatenate([arrays[f"{split}_images"] for split in ("train", "val", "test")])
        if image_size:
            expected = sources.standardise_array(expected, image_size, 3)
        np.testing.assert_array_equal(data.images, expected)
    images_read_whole = [key for key in read if key.endswith("_images")]
    assert images_read_whole == (["train_images", "train_images"] if layout == "fortran" else [])


def test_medmnist_members_without_the_npy_suffix_and_with_a_version_2_header(tmp_path):
    # NpzFile reads a member named 'train_images' as well as 'train_images.npy'; a header of format 2.0
    # (np.save writes it when 1.0 cannot hold the header) reads as 1.0 does
    arrays = write_npz(tmp_path / "plain.npz")
    path = tmp_path / "members.npz"
    with zipfile.ZipFile(path, "w") as archive:
        for key, array in arrays.items():
            with archive.open(key if key.startswith("train") else f"{key}.npy", "w") as member:
                np.lib.format.write_array(member, array, version=(2, 0) if key == "val_images" else None)
    data = read_source(medmnist(path))
    expected = np.concatenate([arrays[f"{split}_images"] for split in ("train", "val", "test")])
    np.testing.assert_array_equal(data.images[..., 0], expected)


def test_medmnist_truncated_images(tmp_path):
    path = tmp_path / "cut.npz"
    arrays = write_npz(tmp_path / "whole.npz")
    header = np.lib.format.header_data_from_array_1_0(arrays["train_images"])
    with zipfile.ZipFile(path, "w") as archive:
        for key, array in arrays.items():
            with archive.open(f"{key}.npy", "w") as member:
                if key == "train_images":  # a header for 7 images over the pixels of 3
                    np.lib.format.write_array_header_1_0(member, header)
                    member.write(array[:3].tobytes())
                else:
                    np.lib.format.write_array(member, array)
    expected = "cannot read as a .npz file ('train_images' ends after 3 of its 7 images)"
    assert error_of(medmnist(path)) == f"{path}: {expected}"


def test_medmnist_member_that_ends_before_its_recorded_size(tmp_path):
    # the archive's directory records more bytes for 'test_images' than the file holds: zipfile's EOFError
    arrays = write_npz(tmp_path / "whole.npz")
    path = tmp_path / "cut.npz"
    with zipfile.ZipFile(path, "w") as archive:
        for key, array in sorted(arrays.items(), key=lambda pair: pair[0] == "test_images"):
            with archive.open(f"{key}.npy", "w") as member:
                if key == "test_images":  # the last member: a header for 1000 images over the pixels of 4
                    header = np.lib.format.header_data_from_array_1_0(np.zeros((1000, 6, 6), np.uint8))
                    np.lib.format.write_array_header_1_0(member, header)
                    member.write(array.tobytes())
                else:
                    np.lib.format.write_array(member, np.zeros(1000, array.dtype) if key == "test_labels" else array)
    data = bytearray(path.read_bytes())
    entry = data.rindex(b"PK\x01\x02")  # the central directory's entry of the last member
    data[entry + 20 : entry + 28] = (10**6).to_bytes(4, "little") * 2  # its compressed and uncompressed sizes
    path.write_bytes(bytes(data))
    assert error_of(medmnist(path)) == (f"{path}: cannot read as a .npz file (it ends before its archive directory "
                                        "says it does: a download cut short?)")  # fmt: skip


def test_medmnist_resize_rgb_and_channels(tmp_path):
    path = tmp_path / "rgb.npz"
    write_npz(path, rgb=True, size=5)  # three equal channels: grayscale stored as RGB
    assert read_source(medmnist(path)).images.shape == (14, 5, 5, 1)  # judged by its pixels, as image files are
    resized = read_source(medmnist(path, image_size=8, channels=3))
    assert resized.images.shape == (14, 8, 8, 3)
    assert (resized.images[8] == 51).all()  # a solid image stays solid after resizing
    gray = read_source(medmnist(path, channels=1))
    assert gray.images.shape == (14, 5, 5, 1)
    assert gray.images[12, 0, 0, 0] == 102


def test_medmnist_mixed_grayscale_and_rgb_splits_become_rgb(tmp_path):
    path = tmp_path / "mixed.npz"
    rgb_val = np.full((3, 6, 6, 3), 7, dtype=np.uint8)
    rgb_val[..., 2] = 200  # in colour
    write_npz(path, val_images=rgb_val)
    data = read_source(medmnist(path))
    assert data.images.shape == (14, 6, 6, 3)
    assert (data.images[2] == 2).all()  # a grayscale train image replicated over 3 channels


def test_medmnist_splits_of_different_sizes(tmp_path):
    path = tmp_path / "sizes.npz"
    write_npz(path, val_images=np.full((3, 8, 8), 9, dtype=np.uint8))
    assert error_of(medmnist(path)) == (
        f"{path}: the splits have different image sizes (train_images 6x6, val_images 8x8, "
        "test_images 6x6); set data.image_size to resize every image to one size"
    )
    data = read_source(medmnist(path, image_size=6))
    assert data.images.shape == (14, 6, 6, 1) and (data.images[7:10] == 9).all()


def test_medmnist_empty_split(tmp_path):
    path = tmp_path / "noval.npz"
    write_npz(path, {"train": [0, 1, 1], "val": [], "test": [1, 0]}, rgb=True)
    for image_size, shape in ((None, (5, 6, 6, 3)), (8, (5, 8, 8, 3))):
        data = read_source(medmnist(path, image_size=image_size, channels=3))
        assert data.images.shape == shape
        assert data.splits.tolist() == ["train"] * 3 + ["test"] * 2


def test_medmnist_class_names(tmp_path):
    path = tmp_path / "tiny.npz"
    write_npz(path)
    data = read_source(medmnist(path, class_names=["none", "mild", "severe"]))
    assert data.class_names == ["none", "mild", "severe"]


def test_medmnist_missing_path(tmp_path):
    path = tmp_path / "nowhere" / "retina.npz"
    assert error_of(medmnist(path)) == f"data.path: {path} does not exist"


def test_medmnist_unreadable_path(tmp_path, monkeypatch):
    path = tmp_path / "tiny.npz"
    write_npz(path)
    # the tests run as root, for whom chmod 000 changes nothing: fake the permission check
    monkeypatch.setattr(sources.os, "access", lambda p, mode: False)
    assert error_of(medmnist(path)) == f"data.path: {path} is not readable (check its permissions)"


@pytest.mark.parametrize("kind", ["garbage", "npy"])
def test_medmnist_not_an_npz(tmp_path, kind):
    path = tmp_path / "data.npz"
    if kind == "garbage":
        path.write_bytes(b"this is not a zip archive\n" * 4)
    else:
        path = tmp_path / "data.npy"
        np.save(path, np.zeros((3, 4), dtype=np.uint8))
    expected = (f"{path}: not a .npz file: a .npz is a zip archive (starting 'PK'), and this starts b'this i' (a "
                "web page saved under that name?)" if kind == "garbage" else f"{path}: cannot read as a .npz file (")
    assert error_of(medmnist(path)).startswith(expected)  # never numpy's advice to unpickle it


def test_medmnist_path_that_is_a_folder_names_its_npz_files(tmp_path):
    # the folder that holds the .npz: the fingerprint stage, which runs first, crashed on it
    write_npz(tmp_path / "retinamnist.npz")
    expected = (f"data.path: {tmp_path} is a folder; data.source 'medmnist' reads one .npz file (this folder has "
                "retinamnist.npz)")  # fmt: skip
    assert error_of(medmnist(tmp_path)) == error_of(medmnist(tmp_path), source_files) == expected


def test_medmnist_missing_keys(tmp_path):
    path = tmp_path / "partial.npz"
    write_npz(path, drop=["val_labels", "test_images"])
    assert error_of(medmnist(path)) == (
        f"{path}: missing keys ['val_labels', 'test_images']; a MedMNIST file has {EXPECTED_KEYS} "
        "(found ['test_labels', 'train_images', 'train_labels', 'val_images'])"
    )


def test_medmnist_wrong_keys_entirely(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, x=np.zeros(3), y=np.zeros(3))
    message = error_of(medmnist(path))
    assert message.startswith(f"{path}: missing keys ['train_images', 'train_labels',")
    assert "(found ['x', 'y'])" in message


@pytest.mark.parametrize(
    "override, expected",
    [
        (
            {"train_labels": np.zeros((6, 1), dtype=np.uint8)},
            "'train_labels' has shape (6, 1); expected (7,) or (7, 1) to match 'train_images'",
        ),
        (
            {"val_labels": np.zeros((3, 2), dtype=np.uint8)},
            "'val_labels' has shape (3, 2); expected (3,) or (3, 1) to match 'val_images'",
        ),
        (
            {"test_images": np.zeros((4, 6, 6), dtype=np.float32)},
            "'test_images' is float32 with shape (4, 6, 6); expected uint8 N×H×W or N×H×W×3",
        ),
        (
            {"train_images": np.zeros((7, 6, 6, 4), dtype=np.uint8)},
            "'train_images' is uint8 with shape (7, 6, 6, 4); expected uint8 N×H×W or N×H×W×3",
        ),
        (
            {"train_images": np.zeros((7, 36), dtype=np.uint8)},
            "'train_images' is uint8 with shape (7, 36); expected uint8 N×H×W or N×H×W×3",
        ),
        ({"val_labels": np.array([0.0, 1.0, 2.0])}, "'val_labels' must be integers, got float64"),
        (
            {"val_labels": np.array([0, -1, 2])},
            "'val_labels': label -1 at row 1 is out of range; valid labels are 0..2",
        ),
    ],
)
def test_medmnist_bad_arrays(tmp_path, override, expected):
    path = tmp_path / "bad.npz"
    write_npz(path, **override)
    assert error_of(medmnist(path)) == f"{path}: {expected}"


def test_medmnist_label_beyond_class_names(tmp_path):
    path = tmp_path / "tiny.npz"
    write_npz(path)  # labels 0..2
    assert error_of(medmnist(path, class_names=["a", "b"])) == (
        f"{path}: 'train_labels': label 2 at row 2 is out of range; valid labels are 0..1"
    )


def test_medmnist_class_without_images(tmp_path):
    path = tmp_path / "gap.npz"
    write_npz(path, {"train": [0, 2, 0, 2], "val": [0, 2], "test": [2, 0]})
    assert error_of(medmnist(path)) == (
        f"{path}: classes ['1'] have no images; remove them from data.class_names "
        "(or, for one-hot CSVs, list the classes to keep in data.csv.class_columns)"
    )
    # a class name beyond the largest label is a class without images too
    assert error_of(medmnist(path, class_names=["a", "b", "c", "d"])).startswith(
        f"{path}: classes ['b', 'd'] have no images"
    )


# ============================================================================= imagefolder


def test_imagefolder_classes_labels_ids(tmp_path):
    root = write_image_folder(tmp_path / "cells", {"Neutrophil": 3, "Basophil": 1, "Eosinophil": 2})
    data = read_source(imagefolder(root))
    assert data.class_names == ["Basophil", "Eosinophil", "Neutrophil"]
    assert data.labels.tolist() == [0, 1, 1, 2, 2, 2]
    assert data.labels.dtype == np.int64
    assert data.sample_ids == [
        "Basophil/img00.png",
        "Eosinophil/img00.png",
        "Eosinophil/img01.png",
        "Neutrophil/img00.png",
        "Neutrophil/img01.png",
        "Neutrophil/img02.png",
    ]
    assert data.paths == [str(root / sid) for sid in data.sample_ids]
    assert data.splits is None
    assert data.images.shape == (6, 6, 6, 3) and data.images.dtype == np.uint8
    assert data.images[0, 0, 0].tolist() == [10, 20, 30]


def test_imagefolder_mixed_sizes_and_modes_are_converted_and_resized(tmp_path):
    root = tmp_path / "mixed"
    write_image(root / "a" / "gray.png", (6, 6), "L")
    write_image(root / "a" / "rgba.png", (9, 5), "RGBA")
    write_image(root / "b" / "palette.png", (4, 12), "P")
    write_image(root / "b" / "rgb.jpg", (16, 16), "RGB")
    data = read_source(imagefolder(root, image_size=8))
    assert data.images.shape == (4, 8, 8, 3) and data.images.dtype == np.uint8
    assert data.labels.tolist() == [0, 0, 1, 1]
    assert (data.images[0] == 90).all()  # L → RGB replicates the gray value
    assert (data.images[1] == [40, 50, 60]).all()  # RGBA → RGB drops alpha
    assert (data.images[2] == [200, 100, 50]).all()  # P → RGB through the palette
    assert np.abs(data.images[3].astype(int) - [10, 20, 30]).max() <= 3  # JPEG is lossy


def test_imagefolder_grayscale_only_gives_one_channel(tmp_path):
    root = write_image_folder(tmp_path / "g", {"x": 2, "y": 2}, size=(5, 5), mode="L")
    data = read_source(imagefolder(root))
    assert data.images.shape == (4, 5, 5, 1)
    assert (data.images == 90).all()


def test_imagefolder_gray_images_stored_as_rgb_give_one_channel(tmp_path):
    root = tmp_path / "xray"
    write_image(root / "a" / "stored_rgb.png", (5, 5), "RGB", value=(77, 77, 77))
    write_image(root / "b" / "stored_rgb.jpg", (5, 5), "RGB", value=(120, 120, 120))  # lossy, still gray
    write_image(root / "b" / "true_gray.png", (5, 5), "L", value=33)
    data = read_source(imagefolder(root))
    assert data.images.shape == (3, 5, 5, 1)
    assert (data.images[0] == 77).all() and (data.images[2] == 33).all()
    assert np.abs(data.images[1].astype(int) - 120).max() <= 2
    # one image with colour keeps all three channels for every image
    write_image(root / "b" / "colour.png", (5, 5), "RGB", value=(120, 121, 140))
    assert read_source(imagefolder(root)).images.shape == (4, 5, 5, 3)


def test_imagefolder_high_bit_depth_grayscale_is_scaled_per_image(tmp_path):
    # Pillow's own conversion would clip every value above 255: a 12-bit X-ray all but white
    root = tmp_path / "deep"
    root.joinpath("a").mkdir(parents=True)
    root.joinpath("b").mkdir()
    Image.fromarray(np.array([[0, 1000], [2000, 4000]], dtype=np.uint16)).save(root / "a" / "xray12bit.png")
    Image.fromarray(np.array([[7, 7], [7, 7]], dtype=np.uint16)).save(root / "a" / "constant.png")
    Image.fromarray(np.array([[0.25, np.nan], [0.5, 1.0]], dtype=np.float32)).save(root / "b" / "float.tif")
    Image.fromarray(np.array([[-500, 0], [500, 1500]], dtype=np.int32)).save(root / "b" / "int32.tif")
    assert [Image.open(p).mode for p in sorted(root.glob("*/*"))] == ["I;16", "I;16", "F", "I"]
    data = read_source(imagefolder(root))
    assert data.images.shape == (4, 2, 2, 1) and data.images.dtype == np.uint8
    pixels = {sid: data.images[i, ..., 0].tolist() for i, sid in enumerate(data.sample_ids)}
    assert pixels == {
        "a/constant.png": [[0, 0], [0, 0]],
        "a/xray12bit.png": [[0, 64], [128, 255]],  # 1000 · 255/4000 = 63.75
        "b/float.tif": [[0, 0], [85, 255]],  # NaN counts as the minimum
        "b/int32.tif": [[0, 64], [128, 255]],  # from −500..1500
    }
    # beside a colour image the scaled gray is replicated into all three channels
    write_image(root / "b" / "colour.png", (2, 2), "RGB", value=(120, 121, 140))
    rgb = read_source(imagefolder(root))
    assert rgb.images.shape == (5, 2, 2, 3)
    assert rgb.images[rgb.sample_ids.index("a/xray12bit.png")].tolist() == [
        [[0] * 3, [64] * 3], [[128] * 3, [255] * 3]
    ]


def test_imagefolder_16_bit_colour_png_is_read_at_full_depth_and_scaled_per_image(tmp_path):
    """Pillow keeps the top 8 bits of each 16-bit colour channel: 12-bit data (≤ 4095) would
    come out as 0..15, near black. alr reads such PNGs at full depth and scales them per image
    over every colour channel, as a deep grayscale file; alpha is dropped."""
    root = tmp_path / "deep_colour"
    rgb = np.array([[[0, 1000, 4000], [2000, 2000, 2000]]], dtype=np.uint16)  # 1 × 2 pixels, 12-bit
    write_16bit_per_channel(root / "a" / "rgb.png", rgb)
    write_16bit_per_channel(root / "a" / "rgba.png", np.concatenate([rgb, np.full((1, 2, 1), 65535, np.uint16)], -1))
    write_16bit_per_channel(root / "b" / "gray_alpha.png", np.array([[[500, 9], [2500, 9]]], dtype=np.uint16))
    assert max(np.asarray(Image.open(root / "a" / "rgb.png")).max(), 0) <= 15  # what Pillow alone gives
    data = read_source(imagefolder(root))
    pixels = {sid: data.images[i].tolist() for i, sid in enumerate(data.sample_ids)}
    # 0..4000 onto 0..255 over all three channels: 1000 → 63.75, 2000 → 127.5 (rounded half to even)
    assert pixels["a/rgb.png"] == pixels["a/rgba.png"] == [[[0, 64, 255], [128, 128, 128]]]
    assert pixels["b/gray_alpha.png"] == [[[0] * 3, [255] * 3]]  # its gray alone, 500..2500
    gray_only = decode_files([root / "b" / "gray_alpha.png"], None, None)  # alone, gray + alpha is grayscale
    assert gray_only.shape == (1, 1, 2, 1) and gray_only[0, 0, :, 0].tolist() == [0, 255]


@pytest.mark.parametrize("planar", [False, True])
def test_imagefolder_16_bit_colour_tiff_is_refused_with_its_name(tmp_path, planar):
    """Pillow reads only the top 8 bits of each channel, chunky or planar (one strip per channel,
    each decoded as 8-bit 'R', 'G', 'B' planes): the TIFF's own tags tell."""
    root = tmp_path / "tiff"
    write_image(root / "a" / "fine.png", (2, 1), "RGB")
    path = write_16bit_per_channel(root / "b" / "composite.tif", np.full((1, 2, 3), 4000, dtype=np.uint16), planar)
    assert Image.open(path).mode == "RGB"  # Pillow opens it without complaint
    with pytest.raises(AlrError, match=r"composite.tif: TIFF image with 16 bits per colour channel, which Pillow "
                                       r"reads as its top 8 bits .* save it as a 16-bit PNG or as 8-bit RGB"):
        read_source(imagefolder(root, channels=3))


def test_a_corrupt_16_bit_colour_png_is_an_error_naming_it(tmp_path):
    path = write_16bit_per_channel(tmp_path / "a" / "broken.png", np.full((8, 8, 3), 4000, dtype=np.uint16))
    content = bytearray(path.read_bytes())
    content[60:67] = b"\x07" * 7  # inside the image data: its checksum no longer matches
    path.write_bytes(bytes(content))
    with pytest.raises(AlrError, match=r"broken.png: cannot decode \(.*Checksum error in IDAT"):
        decode_files([path], None, None)


def test_imagefolder_exif_orientation_is_applied(tmp_path):
    # a phone photo stored 3 wide and 2 high, tagged "rotate 90° clockwise to view" (orientation 6)
    stored = np.zeros((2, 3), dtype=np.uint8)
    stored[0, 0] = 200
    exif = Image.Exif()
    exif[0x0112] = 6
    root = tmp_path / "phone"
    root.joinpath("a").mkdir(parents=True)
    Image.fromarray(stored).save(root / "a" / "sideways.png", exif=exif)
    Image.fromarray(np.zeros((3, 2), dtype=np.uint8)).save(root / "a" / "upright.png")
    data = read_source(imagefolder(root))  # same size once upright, so no size error
    assert data.images.shape == (2, 3, 2, 1)
    # the stored top-left pixel is at the top right once turned clockwise
    assert data.images[0, ..., 0].tolist() == [[0, 200], [0, 0], [0, 0]]


def test_is_gray_within_the_tolerance_in_every_block():
    gray = np.full((600, 2, 2, 3), 100, dtype=np.uint8)
    gray[3, 0, 0] = (100, 100 + images.GRAY_TOLERANCE, 100)  # at the tolerance: still gray
    assert images.is_gray(gray)
    for row in (0, 255, 256, 511, 512, 599):  # first and last image of each block of 256
        colour = gray.copy()
        colour[row, 1, 1, 2] = 100 + images.GRAY_TOLERANCE + 1
        assert not images.is_gray(colour), row


def test_8_bit_rgb_tiff_is_read_not_refused(tmp_path):
    """Only a TIFF deeper than 8 bits per colour channel is refused; an ordinary 8-bit RGB TIFF is read."""
    path = write_image(tmp_path / "a" / "slide.tif", (2, 1), "RGB", value=(10, 20, 30))
    assert decode_files([path], None, 3)[0].tolist() == [[[10, 20, 30], [10, 20, 30]]]


def test_big_endian_16_bit_tiff_is_scaled_per_image(tmp_path):
    path = tmp_path / "a" / "xray_be.tif"
    path.parent.mkdir(parents=True)
    Image.fromarray(np.array([[0, 1000], [2000, 4000]], dtype=">u2")).save(path)
    assert Image.open(path).mode == "I;16B"  # Pillow alone clips every value above 255
    decoded = decode_files([path], None, None)
    assert decoded.shape == (1, 2, 2, 1) and decoded[0, ..., 0].tolist() == [[0, 64], [128, 255]]


def test_16_bit_colour_png_exif_orientation_is_applied(tmp_path):
    # stored 3 wide and 2 high, tagged "rotate 90° clockwise to view" (orientation 6), as a phone writes it
    stored = np.zeros((2, 3, 3), dtype=np.uint16)
    stored[0, 0] = 4000
    path = write_16bit_per_channel(tmp_path / "a" / "sideways.png", stored)
    exif = Image.Exif()
    exif[0x0112] = 6
    raw = exif.tobytes()[6:]  # an eXIf chunk holds the TIFF data without the "Exif\0\0" prefix
    content = path.read_bytes()
    chunk = struct.pack(">I", len(raw)) + b"eXIf" + raw + struct.pack(">I", zlib.crc32(b"eXIf" + raw))
    path.write_bytes(content[:33] + chunk + content[33:])  # after the 8-byte signature and 25-byte IHDR
    decoded = decode_files([path], None, 3)
    assert decoded.shape == (1, 3, 2, 3)  # upright: 2 wide, 3 high
    # the stored top-left pixel is at the top right once turned clockwise
    assert decoded[0, ..., 0].tolist() == [[0, 255], [0, 0], [0, 0]]


def test_resizing_is_bilinear(tmp_path):
    path = tmp_path / "a" / "edge.png"
    path.parent.mkdir(parents=True)
    Image.fromarray(np.array([[0, 255]], dtype=np.uint8)).save(path)
    assert decode_files([path], 1, 1)[0].tolist() == [[[128]]]  # the two pixels averaged, not one of them picked


def test_standardise_array_resizes_rgb_keeping_the_channel_order():
    rgb = np.empty((1, 2, 2, 3), dtype=np.uint8)
    rgb[...] = (10, 20, 30)
    resized = images.standardise_array(rgb, 4, 3)
    assert resized.shape == (1, 4, 4, 3) and (resized == [10, 20, 30]).all()
    assert (images.standardise_array(rgb, None, 1) == 18).all()  # luma of (10, 20, 30), as Pillow converts


def test_a_constant_deep_image_becomes_0_without_a_division_by_zero():
    constant = Image.fromarray(np.full((2, 2), 7, dtype=np.uint16))
    with np.errstate(all="raise"):  # 0 · (255 / 0) would be NaN, cast to uint8 as the platform pleases
        assert np.asarray(images.to_8bit(constant)).tolist() == [[0, 0], [0, 0]]


def test_imagefolder_channels_forced(tmp_path):
    root = write_image_folder(tmp_path / "c", {"x": 1, "y": 1}, size=(5, 5), mode="RGB")
    gray = read_source(imagefolder(root, channels=1))
    assert gray.images.shape == (2, 5, 5, 1)
    # ITU-R 601 luma of (10, 20, 30): 0.299*10 + 0.587*20 + 0.114*30 = 18.15
    assert (gray.images == 18).all()
    root_l = write_image_folder(tmp_path / "l", {"x": 1, "y": 1}, size=(5, 5), mode="L")
    assert read_source(imagefolder(root_l, channels=3)).images.shape == (2, 5, 5, 3)


def test_imagefolder_mixed_modes_same_size_without_image_size(tmp_path):
    root = tmp_path / "modes"
    write_image(root / "a" / "1.png", (6, 6), "L")
    write_image(root / "b" / "1.png", (6, 6), "RGBA")
    data = read_source(imagefolder(root))
    assert data.images.shape == (2, 6, 6, 3)


def test_imagefolder_mixed_sizes_without_image_size_fail_clearly(tmp_path):
    root = tmp_path / "sizes"
    first = write_image(root / "a" / "1.png", (6, 6))
    second = write_image(root / "a" / "2.png", (7, 5))
    write_image(root / "b" / "1.png", (6, 6))
    assert error_of(imagefolder(root)) == (
        f"{second}: image is 7x5 but {first} is 6x6; "
        "set data.image_size to resize every image to one size"
    )


def test_imagefolder_ignores_hidden_and_non_images_and_recurses(tmp_path):
    root = write_image_folder(tmp_path / "r", {"a": 1, "b": 1})
    write_image(root / ".thumbs" / "x.png")  # hidden folder: not a class
    (root / "a" / "notes.txt").write_text("not an image")
    write_image(root / "b" / "nested" / "deep.PNG")  # subfolders of a class belong to it
    # hidden at any depth: a notebook's checkpoint copy would be a duplicate sample, a macOS
    # resource fork ("._" + the name) is not an image at all
    write_image(root / "a" / ".ipynb_checkpoints" / "img00-checkpoint.png")
    (root / "b" / "nested" / "._deep.PNG").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    data = read_source(imagefolder(root))
    assert data.class_names == ["a", "b"]
    assert data.sample_ids == ["a/img00.png", "b/img00.png", "b/nested/deep.PNG"]
    assert [p.name for p in source_files(imagefolder(root))] == ["img00.png", "img00.png", "deep.PNG"]


def test_imagefolder_follows_linked_folders_once_and_names_a_file_name_that_is_no_text(tmp_path):
    root = write_image_folder(tmp_path / "r", {"a": 1, "b": 1})
    batch = write_image_folder(tmp_path / "elsewhere", {"batch2": 2}) / "batch2"
    (root / "a" / "batch2").symlink_to(batch, target_is_directory=True)  # a linked folder of more images
    (root / "a" / "batch2" / "loop").symlink_to(root / "a", target_is_directory=True)  # a link back up
    data = read_source(imagefolder(root))
    assert data.sample_ids == ["a/batch2/img00.png", "a/batch2/img01.png", "a/img00.png", "b/img00.png"]
    assert len(source_files(imagefolder(root))) == 4  # the fingerprint sees them too
    latin1 = os.path.join(os.fsencode(root / "b"), b"caf\xe9.png")  # a name from a Windows zip
    with open(latin1, "wb") as file:
        file.write((root / "b" / "img00.png").read_bytes())
    assert error_of(imagefolder(root)) == (
        f"{latin1!r}: the file name is not UTF-8 text (a "
        f"zip made on Windows, unpacked here?); rename it, or every such file at once: convmv -f cp1252 -t utf8 -r "
        f"--notest {root / 'b'}")  # fmt: skip


def test_imagefolder_and_csv_class_names_match_in_any_unicode_form(tmp_path):
    """macOS writes 'é' decomposed (NFD); a params file or manifest typed elsewhere composed (NFC)."""
    import unicodedata

    decomposed, composed = unicodedata.normalize("NFD", "Névus"), unicodedata.normalize("NFC", "Névus")
    root = write_image_folder(tmp_path / "r", {decomposed: 2, "Mélanome": 1})
    data = read_source(imagefolder(root, class_names=[composed, "Mélanome"]))
    assert data.class_names == [composed, "Mélanome"] and data.labels.tolist() == [0, 0, 1]
    assert read_source(imagefolder(root)).class_names == ["Mélanome", composed]
    manifest = write_csv(root / "m.csv", {"image": [f"{decomposed}/img00.png", f"{decomposed}/img01.png",
                                                    "Mélanome/img00.png"], "dx": [decomposed, composed, "Mélanome"]})
    assert read_source(csv(manifest, label_column="dx", class_names=[composed, "Mélanome"])).labels.tolist() == [
        0, 0, 1]


def test_imagefolder_class_folders_in_two_unicode_forms_are_refused(tmp_path):
    # merged from a Mac (NFD) and elsewhere (NFC): one folder was dropped without a word, and its files unhashed
    import unicodedata

    decomposed, composed = unicodedata.normalize("NFD", "bénin"), unicodedata.normalize("NFC", "bénin")
    root = write_image_folder(tmp_path / "r", {composed: 2, decomposed: 1, "malin": 1})
    expected = (f"{root}: subfolders {decomposed!r} and {composed!r} are one class name written in two Unicode "
                "forms (composed and decomposed, as macOS writes it); move the images into one of them")  # fmt: skip
    assert error_of(imagefolder(root)) == error_of(imagefolder(root), source_files) == expected


def test_imagefolder_class_names_select_and_order(tmp_path):
    root = write_image_folder(tmp_path / "r", {"c0": 1, "c1": 2, "c2": 3})
    data = read_source(imagefolder(root, class_names=["c2", "c0"]))
    assert data.class_names == ["c2", "c0"]
    assert data.labels.tolist() == [0, 0, 0, 1]
    assert data.sample_ids[0].startswith("c2/") and data.sample_ids[-1] == "c0/img00.png"


def test_imagefolder_unknown_class_names(tmp_path):
    root = write_image_folder(tmp_path / "r", {"a": 1, "b": 1})
    assert error_of(imagefolder(root, class_names=["a", "x"])) == (
        f"{root}: data.class_names lists ['x'], which are not subfolders (subfolders: ['a', 'b'])"
    )


@pytest.mark.parametrize("content", ["empty", "no_images"])
def test_imagefolder_class_with_no_images(tmp_path, content):
    root = write_image_folder(tmp_path / "r", {"a": 2, "b": 1})
    (root / "c").mkdir()
    if content == "no_images":
        (root / "c" / "readme.txt").write_text("x")
    assert error_of(imagefolder(root)) == (
        f"{root / 'c'}: class 'c' has no images (looked for .png, .jpg, .jpeg, .bmp, .tif, .tiff)"
    )


def test_imagefolder_path_problems(tmp_path):
    missing = tmp_path / "missing"
    assert error_of(imagefolder(missing)) == f"data.path: {missing} does not exist"
    file = write_image(tmp_path / "one.png")
    assert error_of(imagefolder(file)) == (
        f"{file}: data.source 'imagefolder' needs a folder with one subfolder per class"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    write_image(empty / "loose.png")
    assert error_of(imagefolder(empty)) == f"{empty}: no class subfolders found"


def test_imagefolder_corrupt_image(tmp_path):
    root = write_image_folder(tmp_path / "r", {"a": 1, "b": 1})
    bad = root / "b" / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    assert error_of(imagefolder(root)).startswith(f"{bad}: cannot read as an image (")


def test_imagefolder_image_too_large_to_decode(tmp_path):
    import struct
    import zlib

    # a PNG header claiming 20000 × 20000 px: Pillow refuses it as a decompression bomb, which is
    # no OSError, so it used to escape as a traceback naming no file
    root = write_image_folder(tmp_path / "r", {"a": 1, "b": 1})
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    huge = root / "b" / "huge.png"
    huge.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", b"") + chunk(b"IEND", b""))  # fmt: skip
    message = error_of(imagefolder(root))
    assert message.startswith(f"{huge}: Image size (400000000 pixels) exceeds limit")
    assert message.endswith("; downscale the image (or crop it to the region of interest) first")


def test_imagefolder_truncated_image(tmp_path):
    root = write_image_folder(tmp_path / "r", {"a": 1})
    write_image(root / "b" / "full.png", (64, 64))
    # noisy pixels so that the compressed data is long enough to cut
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    cut = root / "b" / "truncated.png"
    noisy.save(cut)
    cut.write_bytes(cut.read_bytes()[:400])
    message = error_of(imagefolder(root, image_size=8))
    assert message.startswith(f"{cut}: cannot ")


def test_imagefolder_decodes_the_same_on_any_number_of_threads(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    root = tmp_path / "many"
    for i in range(24):
        folder = root / "ab"[i % 2]
        folder.mkdir(parents=True, exist_ok=True)
        size = (int(rng.integers(8, 40)), int(rng.integers(8, 40)))
        Image.fromarray(rng.integers(0, 256, (*size[::-1], 3), dtype=np.uint8)).save(folder / f"{i:02d}.jpg")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    one = read_source(imagefolder(root, image_size=16))
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    four = read_source(imagefolder(root, image_size=16))
    assert four.images.shape == (24, 16, 16, 3)
    assert np.array_equal(one.images, four.images) and one.sample_ids == four.sample_ids
    # on four threads, unreadable files are named all at once, in order: a truncated one too
    (root / "a" / "00.jpg").write_bytes(b"not an image")
    (root / "b" / "23.jpg").write_bytes(b"not an image")
    whole = (root / "b" / "11.jpg").read_bytes()
    (root / "b" / "11.jpg").write_bytes(whole[: len(whole) // 2])
    lines = error_of(imagefolder(root, image_size=16)).splitlines()
    assert lines[0] == "3 of 24 image files cannot be read:"
    assert lines[1].startswith(f"  {root / 'a' / '00.jpg'}: cannot read as an image")
    assert lines[2].startswith(f"  {root / 'b' / '11.jpg'}: cannot ")
    assert lines[3].startswith(f"  {root / 'b' / '23.jpg'}: cannot read as an image") and len(lines) == 4


def test_a_size_mismatch_names_the_unreadable_files_before_it_too(tmp_path):
    broken = tmp_path / "a.png"
    broken.write_bytes(b"not an image")
    first, second = write_image(tmp_path / "b.png", (30, 20)), write_image(tmp_path / "c.png", (30, 25))
    with pytest.raises(AlrError) as raised:
        decode_files([broken, first, second], None, None)
    mismatch, unreadable = str(raised.value).splitlines()
    assert mismatch == (f"{second}: image is 30x25 but {first} is 30x20; set data.image_size to resize every "
                        "image to one size")  # fmt: skip
    assert unreadable.startswith(f"{broken}: cannot read as an image")


@pytest.mark.parametrize("beyond", [3, 0])
def test_many_unreadable_files_are_counted_beyond_the_ones_named(tmp_path, beyond):
    paths = []
    for i in range(images.UNREADABLE_LISTED + beyond):
        paths.append(tmp_path / f"{i:02d}.png")
        paths[-1].write_bytes(b"not an image")
    with pytest.raises(AlrError) as raised:
        decode_files(paths, 8, None)
    lines = str(raised.value).splitlines()
    assert lines[0] == f"{len(paths)} of {len(paths)} image files cannot be read:"
    if beyond:
        assert len(lines) == 1 + images.UNREADABLE_LISTED + 1 and lines[-1] == f"  ... and {beyond} more"
    else:  # every one named: nothing more to count
        assert len(lines) == 1 + images.UNREADABLE_LISTED and "more" not in lines[-1]
    last = lines[images.UNREADABLE_LISTED]
    assert lines[1].startswith(f"  {paths[0]}:") and last.startswith(f"  {paths[images.UNREADABLE_LISTED - 1]}:")


@pytest.mark.parametrize("value, expected", [("3", 3), ("", None), ("many", None), ("0", None)])
def test_decode_threads_follow_omp_num_threads(monkeypatch, value, expected):
    monkeypatch.setenv("OMP_NUM_THREADS", value)
    assert decode_threads() == (expected or len(os.sched_getaffinity(0)))


# ============================================================================= csv


@pytest.fixture
def image_dir(tmp_path) -> Path:
    folder = tmp_path / "imgs"
    for i in range(4):
        write_image(folder / f"img{i}.png", (6, 6), "RGB", value=(i, 2 * i, 3 * i))
    return folder


def test_csv_label_indices(image_dir):
    path = write_csv(image_dir / "m.csv", {"image": [f"img{i}.png" for i in range(4)], "label": [1, 0, 1, 1]})
    data = read_source(csv(path, label_column="label"))
    assert data.labels.tolist() == [1, 0, 1, 1] and data.labels.dtype == np.int64
    assert data.class_names == ["0", "1"]
    assert data.sample_ids == ["img0.png", "img1.png", "img2.png", "img3.png"]
    assert data.paths == [str(image_dir / f"img{i}.png") for i in range(4)]
    assert data.images.shape == (4, 6, 6, 3)
    assert data.images[3, 0, 0].tolist() == [3, 6, 9]  # row order kept
    named = read_source(csv(path, label_column="label", class_names=["benign", "malignant"]))
    assert named.class_names == ["benign", "malignant"]


def test_csv_label_names(image_dir):
    rows = {"image": [f"img{i}.png" for i in range(4)], "dx": ["nv", " mel", "nv", "bcc"]}
    path = write_csv(image_dir / "m.csv", rows)
    data = read_source(csv(path, label_column="dx"))
    assert data.class_names == ["bcc", "mel", "nv"]  # sorted names
    assert data.labels.tolist() == [2, 1, 2, 0]
    ordered = read_source(csv(path, label_column="dx", class_names=["nv", "mel", "bcc"]))
    assert ordered.labels.tolist() == [0, 1, 0, 2]


def test_csv_one_hot_isic_style(tmp_path):
    folder = tmp_path / "isic"
    names = [f"ISIC_{i:07d}" for i in range(5)]
    for name in names:
        write_image(folder / "images" / f"{name}.jpg", (10, 10), "RGB")
    rows = {
        "image": names,
        "MEL": [1.0, 0.0, 0.0, 0.0, 1.0],
        "NV": [0.0, 1.0, 1.0, 0.0, 0.0],
        "BCC": [0.0, 0.0, 0.0, 1.0, 0.0],
        "age": [30, 45, 50, 61, 70],  # not a 0/1 column: not a class
    }
    path = write_csv(folder / "GroundTruth.csv", rows)
    data = read_source(csv(path, image_size=4, image_root=str(folder / "images")))
    assert data.class_names == ["MEL", "NV", "BCC"]
    assert data.labels.tolist() == [0, 1, 1, 2, 0]
    assert data.sample_ids == names
    assert data.paths == [str(folder / "images" / f"{n}.jpg") for n in names]
    assert data.images.shape == (5, 4, 4, 3)


def test_csv_a_column_with_some_0_and_1_values_is_no_class_column(image_dir):
    """Only a column of 0 and 1 alone is taken for a one-hot class; a count that is 0 or 1 in some rows is not,
    and an empty cell in such a column (an unknown age) is no missing class cell."""
    rows = {"image": [f"img{i}.png" for i in range(4)], "MEL": [1, 0, 0, 1], "NV": [0, 1, 1, 0],
            "lesions": [0, 1, 3, 2], "age": [1, None, 45, 60]}  # fmt: skip
    data = read_source(csv(write_csv(image_dir / "gt.csv", rows)))
    assert data.class_names == ["MEL", "NV"] and data.labels.tolist() == [0, 1, 1, 0]


def test_csv_one_hot_empty_class_column(tmp_path):
    folder = tmp_path / "isic"
    for i in range(3):
        write_image(folder / f"ISIC_{i}.jpg")
    rows = {"image": ["ISIC_0", "ISIC_1", "ISIC_2"], "MEL": [1, 0, 0], "NV": [0, 1, 1], "UNK": [0, 0, 0]}
    path = write_csv(folder / "gt.csv", rows)
    assert error_of(csv(path)).startswith(f"{path}: classes ['UNK'] have no images; ")
    data = read_source(csv(path, class_columns=["MEL", "NV"]))
    assert data.class_names == ["MEL", "NV"] and data.labels.tolist() == [0, 1, 1]


def test_csv_one_hot_class_columns_match_in_any_unicode_form(image_dir):
    """A manifest whose header has 'Névus' decomposed (written on a Mac) and params.yaml typed composed: the
    names find their columns, and the class is named composed, as an image folder's is. Two columns with one
    name in two forms are refused."""
    import unicodedata

    decomposed, composed = unicodedata.normalize("NFD", "Névus"), unicodedata.normalize("NFC", "Névus")
    images = [f"img{i}.png" for i in range(4)]
    path = write_csv(image_dir / "gt.csv", {"image": images, "MEL": [1, 0, 0, 1], decomposed: [0, 1, 1, 0]})
    for params in (csv(path), csv(path, class_names=[composed, "MEL"]), csv(path, class_columns=[composed, "MEL"])):
        data = read_source(params)
        assert sorted(data.class_names) == ["MEL", composed]
        assert [data.class_names[k] for k in data.labels] == ["MEL", composed, composed, "MEL"]
    assert read_source(csv(path, class_names=[composed, "MEL"])).labels.tolist() == [1, 0, 0, 1]
    both = write_csv(image_dir / "both.csv", {"image": images, "MEL": [1, 0, 0, 0], decomposed: [0, 1, 0, 0],
                                              composed: [0, 0, 1, 1]})  # fmt: skip
    message = (f"{both}: the one-hot class {decomposed!r} comes twice, in two Unicode forms (composed and "
               "decomposed, as macOS writes it): merge its two columns into one, or list it once in "
               "data.csv.class_columns")  # fmt: skip
    assert error_of(csv(both)) == message
    assert error_of(csv(path, class_columns=[decomposed, "MEL", composed])) == message.replace(str(both), str(path))


def test_csv_one_hot_class_names_order_the_columns_by_name(image_dir):
    """data.class_names with one-hot columns: the classes in that order, each image keeping the
    class its column names (it used to rename the columns by position: MEL images became NV)."""
    path = write_csv(image_dir / "gt.csv", {"image": [f"img{i}.png" for i in range(4)], "MEL": [1, 0, 0, 1],
                                            "NV": [0, 1, 0, 0], "BCC": [0, 0, 1, 0]})  # fmt: skip
    data = read_source(csv(path, class_names=["NV", "MEL", "BCC"]))
    assert data.class_names == ["NV", "MEL", "BCC"] and data.labels.tolist() == [1, 0, 2, 1]
    assert error_of(csv(path, class_names=["MEL", "NVV", "BCC"])) == (
        f"{path}: data.class_names lists ['NVV'], which are not one-hot class columns (did you mean 'NV'?) "
        "(columns: ['MEL', 'NV', 'BCC']); with one-hot columns it orders them by name (data.csv.class_columns "
        "picks them)")  # fmt: skip
    assert error_of(csv(path, class_names=["MEL", "NV"])) == (
        f"{path}: data.class_names leaves out the one-hot columns ['BCC']; list every class column, or pick the "
        "columns with data.csv.class_columns")  # fmt: skip
    picked = read_source(csv(write_csv(image_dir / "two.csv", {"image": ["img0.png", "img1.png"], "MEL": [1, 0],
                                                               "NV": [0, 1], "BCC": [0, 0]}),
                             class_columns=["MEL", "NV"], class_names=["NV", "MEL"]))  # fmt: skip
    assert picked.class_names == ["NV", "MEL"] and picked.labels.tolist() == [1, 0]


def test_csv_a_single_binary_column_is_no_one_hot_encoding(image_dir):
    """ISIC 2020's layout: `target` 0/1 is the label, to be named in data.csv.label_column."""
    path = write_csv(image_dir / "t.csv", {"image": [f"img{i}.png" for i in range(4)], "patient": list("aabb"),
                                           "target": [0, 1, 0, 0]})  # fmt: skip
    assert error_of(csv(path)) == (
        f"{path}: found one 0/1 column, 'target', and a one-hot encoding needs one column per class; if it holds "
        "each row's class, set data.csv.label_column: target")  # fmt: skip
    assert read_source(csv(path, label_column="target")).labels.tolist() == [0, 1, 0, 0]


def test_csv_cells_like_none_or_na_are_text_only_an_empty_cell_is_missing(image_dir):
    """'None' (no finding) is a class and 'NA' a patient id; pandas reads both as missing by default."""
    rows = {"image": [f"img{i}.png" for i in range(4)], "finding": ["None", "nodule", "None", "NA"],
            "patient": ["NA", "NA", "p1", "null"]}  # fmt: skip
    path = write_csv(image_dir / "na.csv", rows)
    data = read_source(csv(path, label_column="finding", group_column="patient"))
    assert data.class_names == ["NA", "None", "nodule"] and data.labels.tolist() == [1, 2, 1, 0]
    assert data.groups.tolist() == ["NA", "NA", "p1", "null"]  # one patient 'NA', not two ungrouped rows
    empty = write_csv(image_dir / "empty.csv", {"image": ["img0.png", "img1.png"], "finding": ["None", ""]})
    assert error_of(csv(empty, label_column="finding")) == f"{empty}: row 3: empty label in column 'finding'"
    # among class indices or one-hot 0/1 cells, such a mark is a missing value, not a class
    indices = write_csv(image_dir / "idx.csv", {"image": ["img0.png", "img1.png", "img2.png"], "y": ["1", "NA", "0"]})
    assert error_of(csv(indices, label_column="y")) == (
        f"{indices}: row 3: label 'NA' in column 'y', whose other labels are class indices: a missing label? fill "
        "it, or leave the row out")  # fmt: skip
    one_hot = write_csv(image_dir / "oh.csv", {"image": ["img0.png", "img1.png", "img2.png"], "A": [1, 0, 1],
                                               "B": ["0", "N/A", "0"], "C": [0, 1, 0]})  # fmt: skip
    assert error_of(csv(one_hot)) == (
        f"{one_hot}: row 3: cell 'N/A' in column 'B', which otherwise holds 0 or 1 like a one-hot class column; "
        "fill it, or list the class columns in data.csv.class_columns")  # fmt: skip


def test_csv_a_missing_mark_among_signed_class_indices_is_named(image_dir):
    """Labels coded −1/+1 are numbers too: an 'NA' among them is a missing label, not a third class 'NA'."""
    path = write_csv(image_dir / "pm.csv", {"image": ["img0.png", "img1.png", "img2.png"], "y": ["+1", "NA", "-1"]})
    assert error_of(csv(path, label_column="y")) == (
        f"{path}: row 3: label 'NA' in column 'y', whose other labels are class indices: a missing label? fill "
        "it, or leave the row out")  # fmt: skip


def test_csv_split_column_and_image_root(tmp_path, image_dir):
    rows = {
        "file": [f"img{i}.png" for i in range(4)],
        "label": [0, 1, 0, 1],
        "fold": ["train", "val", " test", "train"],
    }
    path = write_csv(tmp_path / "manifests" / "m.csv", rows)
    data = read_source(
        csv(path, image_column="file", label_column="label", split_column="fold", image_root=str(image_dir))
    )
    assert data.splits.tolist() == ["train", "val", "test", "train"]
    assert data.paths[1] == str(image_dir / "img1.png")


def test_csv_group_column(image_dir):
    rows = {"image": [f"img{i}.png" for i in range(4)], "label": [0, 1, 0, 1],
            "lesion_id": ["HAM_1", None, " HAM_1", "HAM_2"], "MEL": [0, 1, 0, 1]}  # fmt: skip
    path = write_csv(image_dir / "m.csv", rows)
    data = read_source(csv(path, label_column="label", group_column="lesion_id"))
    assert data.groups.tolist() == ["HAM_1", "", "HAM_1", "HAM_2"]  # an empty cell: no group
    assert read_source(csv(path, label_column="label")).groups is None
    assert error_of(csv(path, label_column="label", group_column="patient")) == (
        f"{path}: no column 'patient' (data.csv.group_column); columns are ['image', 'label', 'lesion_id', 'MEL']")
    assert error_of(csv(path, label_column="label", group_column="Lesion_ID")).startswith(
        f"{path}: no column 'Lesion_ID' (data.csv.group_column) (did you mean 'lesion_id'?);")


def test_csv_grayscale_and_sizes(image_dir):
    write_image(image_dir / "big.png", (12, 9), "L")
    path = write_csv(image_dir / "m.csv", {"image": ["img3.png", "big.png"], "label": [0, 1]})
    data = read_source(csv(path, image_size=6, label_column="label"))
    assert data.images.shape == (2, 6, 6, 3)  # img3 is (3, 6, 9): colour
    black = write_csv(image_dir / "black.csv", {"image": ["img0.png", "big.png"], "label": [0, 1]})
    assert read_source(csv(black, image_size=6, label_column="label")).images.shape == (2, 6, 6, 1)
    with pytest.raises(AlrError, match="set data.image_size"):
        read_source(csv(path, label_column="label"))


def test_csv_neither_label_nor_one_hot(image_dir):
    path = write_csv(image_dir / "m.csv", {"image": ["img0.png", "img1.png"], "dx": ["nv", "mel"]})
    assert error_of(csv(path)) == (
        f"{path}: found neither a label column nor one-hot class columns; set "
        "data.csv.label_column (a class index or name per row) or "
        "data.csv.class_columns (one 0/1 column per class)"
    )


@pytest.mark.parametrize(
    "mel, nv, expected",
    [
        ([1, 0, 0], [0, 1, 0], "row 4: one-hot row has 0 ones in ['MEL', 'NV']; exactly one is required"),
        ([1, 1, 0], [0, 1, 1], "row 3: one-hot row has 2 ones in ['MEL', 'NV']; exactly one is required"),
    ],
)
def test_csv_one_hot_rows_need_exactly_one(image_dir, mel, nv, expected):
    rows = {"image": ["img0.png", "img1.png", "img2.png"], "MEL": mel, "NV": nv}
    path = write_csv(image_dir / "m.csv", rows)
    assert error_of(csv(path)) == f"{path}: {expected}"


def test_csv_one_hot_values_must_be_zero_or_one(image_dir):
    rows = {"image": ["img0.png", "img1.png", "img2.png"], "MEL": [1, 0, 2], "NV": [0, 1, 0]}
    path = write_csv(image_dir / "m.csv", rows)
    assert error_of(csv(path, class_columns=["MEL", "NV"])) == (
        f"{path}: row 4: one-hot columns must hold 0 or 1, got {{'MEL': 2, 'NV': 0}}"
    )
    assert error_of(csv(path, class_columns=["MEL", "XX"])) == (
        f"{path}: data.csv.class_columns names missing columns ['XX']"
    )


@pytest.mark.parametrize(
    "labels, class_names, expected",
    [
        ([0, 5, 1], ["a", "b"], "label 5 at row 3 is out of range; valid labels are 0..1"),
        ([0, 1, -1], None, "label -1 at row 4 is out of range; valid labels are 0..1"),
        (["mel", "scc", "nv"], ["mel", "nv"], "row 3: label 'scc' is not a class; classes: ['mel', 'nv']"),
        (["mel", "NV ", "naevus"], ["mel", "nv", "naevus"],
         "row 3: label 'NV' is not a class (did you mean 'nv'?); classes: ['mel', 'nv', 'naevus']"),
        ([0, None, 1], None, "row 3: empty label in column 'label'"),
    ],
)
def test_csv_bad_labels(image_dir, labels, class_names, expected):
    path = write_csv(image_dir / "m.csv", {"image": ["img0.png", "img1.png", "img2.png"], "label": labels})
    assert error_of(csv(path, label_column="label", class_names=class_names)) == f"{path}: {expected}"


def test_csv_class_with_no_rows(image_dir):
    path = write_csv(image_dir / "m.csv", {"image": ["img0.png", "img1.png"], "label": [0, 2]})
    assert error_of(csv(path, label_column="label")) == (
        f"{path}: column 'label' holds integer labels 0..2, read as class indices counted from 0, but no row has "
        "[1]; number the classes 0..K−1 (subtract 1 from labels counted from 1), or write class names")  # fmt: skip
    # labels counted from 1 used to be told to "remove ['0'] from data.class_names", which was never set
    ones = write_csv(image_dir / "o.csv", {"image": ["img0.png", "img1.png"], "label": [1, 2]})
    assert "integer labels 1..2, read as class indices counted from 0, but no row has [0]" in error_of(
        csv(ones, label_column="label"))
    assert error_of(csv(path, label_column="label", class_names=["a", "b", "c"])).startswith(
        f"{path}: classes ['b'] have no images")
    names = write_csv(image_dir / "n.csv", {"image": ["img0.png", "img1.png"], "dx": ["a", "a"]})
    assert error_of(csv(names, label_column="dx", class_names=["a", "b"])).startswith(
        f"{names}: classes ['b'] have no images"
    )


def test_csv_structural_problems(tmp_path, image_dir):
    missing = tmp_path / "none.csv"
    assert error_of(csv(missing, label_column="label")) == f"data.path: {missing} does not exist"

    path = write_csv(image_dir / "m.csv", {"file": ["img0.png"], "label": [0]})
    assert error_of(csv(path, label_column="label")) == (
        f"{path}: no column 'image' (data.csv.image_column); columns are ['file', 'label']"
    )
    assert error_of(csv(path, image_column="file", label_column="dx")) == (
        f"{path}: no column 'dx' (data.csv.label_column); columns are ['file', 'label']"
    )

    header_only = image_dir / "h.csv"
    header_only.write_text("image,label\n")
    assert error_of(csv(header_only, label_column="label")) == f"{header_only}: the manifest has no rows"

    empty = image_dir / "e.csv"
    empty.write_text("")
    assert error_of(csv(empty, label_column="label")).startswith(f"{empty}: cannot read as a CSV file (")

    folder = tmp_path / "a_folder.csv"
    folder.mkdir()
    assert error_of(csv(folder, label_column="label")).startswith(f"{folder}: cannot read as a CSV file (")


def test_csv_image_problems(image_dir):
    path = write_csv(image_dir / "m.csv", {"image": ["img0.png", "img9.png"], "label": [0, 1]})
    assert error_of(csv(path, label_column="label")) == (
        f"{path}: row 3: image file {image_dir / 'img9.png'} not found"
    )
    dup = write_csv(image_dir / "d.csv", {"image": ["img0.png", "img1.png", "img0.png"], "label": [0, 1, 1]})
    assert error_of(csv(dup, label_column="label")) == f"{dup}: image 'img0.png' is listed more than once"


def test_csv_ids_that_look_like_numbers_stay_text(image_dir):
    # "0012" read as the number 12 was looked for as "12" and not found
    for i, name in enumerate(["0012", "007.5"]):
        write_image(image_dir / f"{name}.png", (6, 6), "RGB", value=(i, i, i))
    path = write_csv(image_dir / "m.csv", {"image": ["0012", "007.5"], "label": ["a", "b"],
                                           "split": ["train", "test"], "patient": ["0012", "12"]})  # fmt: skip
    data = read_source(csv(path, label_column="label", split_column="split", group_column="patient"))
    assert data.sample_ids == ["0012", "007.5"] and data.groups.tolist() == ["0012", "12"]
    assert [Path(p).name for p in data.paths] == ["0012.png", "007.5.png"]


def test_csv_paths_without_an_image_suffix_with_windows_separators_or_spaces(image_dir):
    (image_dir / "sub").mkdir()
    write_image(image_dir / "1.2.826.0.1.3680043.8.498.1000.png", (6, 6), "RGB")  # a DICOM UID: dots, no suffix
    write_image(image_dir / "IMG_0.JPG", (6, 6), "RGB")  # an upper-case suffix
    write_image(image_dir / "sub" / "j0.png", (6, 6), "RGB")
    path = write_csv(image_dir / "m.csv", {"image": ["1.2.826.0.1.3680043.8.498.1000", "IMG_0", "sub\\j0.png",
                                                     " img0.png "], "label": ["a", "b", "a", "b"]})  # fmt: skip
    data = read_source(csv(path, label_column="label"))
    assert [Path(p).relative_to(image_dir).as_posix() for p in data.paths] == [
        "1.2.826.0.1.3680043.8.498.1000.png", "IMG_0.JPG", "sub/j0.png", "img0.png"]
    assert data.sample_ids[3] == "img0.png"


def test_csv_empty_cells_are_named(image_dir):
    path = write_csv(image_dir / "m.csv", {"image": ["img0.png", None], "label": ["a", "b"]})
    assert error_of(csv(path, label_column="label")) == f"{path}: row 3: empty image path in column 'image'"
    split = write_csv(image_dir / "s.csv", {"image": ["img0.png", "img1.png"], "label": ["a", "b"],
                                            "split": ["train", None]})  # fmt: skip
    assert error_of(csv(split, label_column="label", split_column="split")) == (
        f"{split}: row 3: split '' in column 'split'; valid splits: train, val, test")
    # auto-detected one-hot columns: a 0/1 column with an empty cell used to drop out silently,
    # and the error then blamed a row of the remaining columns
    one_hot = write_csv(image_dir / "h.csv", {"image": ["img0.png", "img1.png", "img2.png"], "A": [1, 0, 1],
                                              "B": [0, 1, None]})  # fmt: skip
    assert error_of(csv(one_hot)) == (
        f"{one_hot}: row 4: empty cell in column 'B', which otherwise holds 0 or 1 like a one-hot class column; "
        "fill it, or list the class columns in data.csv.class_columns")  # fmt: skip


def test_csv_bad_split_column(image_dir):
    rows = {"image": ["img0.png", "img1.png"], "label": [0, 1], "fold": ["train", "training"]}
    path = write_csv(image_dir / "m.csv", rows)
    assert error_of(csv(path, label_column="label", split_column="fold")) == (
        f"{path}: row 3: split 'training' in column 'fold'; valid splits: train, val, test"
    )
    assert error_of(csv(path, label_column="label", split_column="split")) == (
        f"{path}: no column 'split' (data.csv.split_column)"
    )


# ============================================================================= real shared data


def test_real_retinamnist(shared_data):
    path = shared_data / "retinamnist" / "retinamnist.npz"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    data = read_source(medmnist(path, image_size=28))
    splits = data.splits
    assert [(splits == s).sum() for s in ("train", "val", "test")] == [1080, 120, 400]
    assert np.bincount(data.labels[splits == "train"], minlength=5).tolist() == [486, 128, 206, 194, 66]
    assert data.images.shape == (1600, 28, 28, 3) and data.images.dtype == np.uint8
    assert data.class_names == ["0", "1", "2", "3", "4"]


def test_real_bccd_image_folder(shared_data):
    root = shared_data / "bccd_wbc" / "BCCD_cropped"
    if not root.is_dir():
        pytest.skip(f"{root} not present")
    data = read_source(imagefolder(root, image_size=28))
    assert len(data.labels) == 351
    assert data.class_names == ["Basophil", "Eosinophil", "Lymphocyte", "Monocyte", "Neutrophil"]
    assert np.bincount(data.labels).tolist() == [3, 88, 33, 20, 207]
    assert data.images.shape == (351, 28, 28, 3)
