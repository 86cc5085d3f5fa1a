"""The files under data.path as a real dependency of prepare, and a `model.init` weights file as
one of lnl_train: the fingerprint's hashes and stat cache on hand-made files, the files each
source reads, and `dvc repro` in a temporary repo re-running prepare exactly when an image or
label changed, and lnl_train exactly when the weights file did."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import pandas as pd
import pytest
from builders import write_csv, write_image, write_image_folder, write_npz
from PIL import Image

from alr_core.common import paths
from alr_core.common.errors import AlrError
from alr_core.common.params import CsvParams, DataParams
from alr_core.data.fingerprint import fingerprint, init_fingerprint, read_stat_cache
from alr_core.data.sources import source_files


def md5_of(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# ============================================================================= fingerprint()


def test_fingerprint_hashes_every_file_in_order(tmp_path):
    files = [tmp_path / name for name in ("b.bin", "a.bin")]
    files[0].write_bytes(b"one")
    files[1].write_bytes(b"two")
    hashes, cache, hashed = fingerprint(files)
    assert list(hashes) == [files[0].as_posix(), files[1].as_posix()]  # the given order, not sorted
    assert hashes[files[0].as_posix()] == hashlib.md5(b"one").hexdigest()
    assert hashes[files[1].as_posix()] == hashlib.md5(b"two").hexdigest()
    assert hashed == 2
    stat = os.stat(files[0])
    assert cache[files[0].as_posix()] == [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino,
                                          hashlib.md5(b"one").hexdigest()]  # fmt: skip


def test_fingerprint_reuses_the_hash_of_an_unchanged_file_only(tmp_path):
    same, edited = tmp_path / "same.bin", tmp_path / "edited.bin"
    same.write_bytes(b"same")
    edited.write_bytes(b"old!")
    _, cache, _ = fingerprint([same, edited])
    # a cache entry with a planted hash proves that an unchanged file is not read again
    cache[same.as_posix()][-1] = "planted"
    stat = os.stat(edited)
    edited.write_bytes(b"new!")  # same size; restore the mtime, as a careless copy might
    os.utime(edited, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    hashes, new_cache, hashed = fingerprint([same, edited], cache)
    assert hashes[same.as_posix()] == "planted"
    assert hashes[edited.as_posix()] == hashlib.md5(b"new!").hexdigest()  # the ctime moved: re-hashed
    assert hashed == 1
    assert new_cache[edited.as_posix()][-1] == hashlib.md5(b"new!").hexdigest()


@pytest.mark.parametrize("field", ["st_size", "st_mtime_ns", "st_ctime_ns", "st_ino"])
def test_fingerprint_re_hashes_a_file_whose_cached_stat_differs_in_any_field(tmp_path, field):
    """Size, mtime, ctime and inode must each match: a replaced file (new inode) with the same size and times
    is read again."""
    path = tmp_path / "image.bin"
    path.write_bytes(b"pixels")
    _, cache, _ = fingerprint([path])
    entry = cache[path.as_posix()]
    entry[["st_size", "st_mtime_ns", "st_ctime_ns", "st_ino"].index(field)] += 1
    entry[-1] = "planted"
    hashes, _, hashed = fingerprint([path], cache)
    assert hashes[path.as_posix()] == hashlib.md5(b"pixels").hexdigest() and hashed == 1


def test_read_stat_cache_tolerates_a_missing_or_broken_cache(tmp_path):
    assert read_stat_cache(tmp_path / "missing.json") == {}
    (tmp_path / "broken.json").write_text("{not json")
    assert read_stat_cache(tmp_path / "broken.json") == {}
    (tmp_path / "list.json").write_text("[1, 2]")
    assert read_stat_cache(tmp_path / "list.json") == {}


# ============================================================================= source_files()


def test_source_files_of_an_image_folder_are_the_images_read(tmp_path):
    root = write_image_folder(tmp_path / "cells", {"b": 2, "a": 1})
    (root / "a" / "notes.txt").write_text("not an image")
    (root / "c").mkdir()
    write_image(root / "c" / "x.png")
    listed = source_files(DataParams(source="imagefolder", path=str(root), class_names=["b", "a"]))
    assert listed == [root / "b" / "img00.png", root / "b" / "img01.png", root / "a" / "img00.png"]


def test_source_files_of_a_manifest_are_the_manifest_and_its_images(tmp_path):
    write_image(tmp_path / "img" / "ISIC_1.jpg")
    write_image(tmp_path / "img" / "ISIC_2.png")
    write_image(tmp_path / "img" / "unlisted.png")
    manifest = write_csv(tmp_path / "gt.csv", {"image": ["ISIC_2", "ISIC_1"], "MEL": [1, 0], "NV": [0, 1]})
    params = DataParams(source="csv", path=str(manifest), csv=CsvParams(image_root=str(tmp_path / "img")))
    assert source_files(params) == [manifest, tmp_path / "img" / "ISIC_2.png", tmp_path / "img" / "ISIC_1.jpg"]


def test_source_files_of_npz_and_built_in_sources(tmp_path):
    path = tmp_path / "retina.npz"
    write_npz(path)
    assert source_files(DataParams(source="medmnist", path=str(path))) == [path]
    assert source_files(DataParams(source="digits")) == []
    assert source_files(DataParams(source="synthetic")) == []


def test_init_fingerprint_hashes_a_weights_file_only(tmp_path):
    assert init_fingerprint("scratch") == ({"model.init": "scratch"}, {})
    assert init_fingerprint("ssl") == ({"model.init": "ssl"}, {})
    for init, what in ((tmp_path / "absent.pt", "does not exist"), (tmp_path, "is a folder")):
        with pytest.raises(AlrError) as info:  # before pretraining, not in lnl_train after it
            init_fingerprint(str(init))
        assert str(info.value) == f"model.init: {init} {what}; expected scratch | ssl | the path of a weights file"
    weights = tmp_path / "weights.pt"
    weights.write_bytes(b"not really weights")
    record, cache = init_fingerprint(str(weights))
    assert record == {"model.init": str(weights), "md5": md5_of(weights)}
    assert cache[weights.as_posix()][-1] == md5_of(weights)
    cache[weights.as_posix()][-1] = "planted"  # an unchanged file is not read again
    assert init_fingerprint(str(weights), cache)[0]["md5"] == "planted"


# ============================================================================= dvc repro


def repro_prepare(project) -> tuple[bool, pd.DataFrame]:
    """`dvc repro prepare`: whether prepare ran, and the samples table after it."""
    result = project.dvc("repro", "prepare")
    ran = "Running stage 'prepare'" in result.stdout
    return ran, pd.read_parquet(project.root / paths.PREPARED_SAMPLES)


@pytest.mark.e2e
def test_a_changed_image_folder_re_runs_prepare_and_nothing_else_does(project_copy, tmp_path):
    # distinct images: identical ones would all share one split, leaving no validation image
    root = write_image_folder(tmp_path / "cells", {"a": 4, "b": 4}, size=(8, 8), distinct=True)
    project_copy.write_params({"data": {"source": "imagefolder", "path": str(root), "image_size": 8,
                                        "val_fraction": 0.25, "test_fraction": 0.25}})  # fmt: skip
    ran, before = repro_prepare(project_copy)
    assert ran and before["source_md5"].tolist() == [md5_of(root / p) for p in before["sample_id"]]

    # untouched: the fingerprint runs (it always does), prepare does not
    ran, unchanged = repro_prepare(project_copy)
    assert not ran
    pd.testing.assert_frame_equal(unchanged, before)
    status = json.loads(project_copy.dvc("status", "--json", "prepare").stdout)
    assert status == {}  # only the whole pipeline lists the fingerprint stage, as "always changed"

    # one pixel of one image: same size, same file name
    image_path = root / "a" / "img01.png"
    with Image.open(image_path) as image:
        edited = image.copy()
    edited.putpixel((3, 3), (255, 0, 0))
    edited.save(image_path)
    ran, after_pixel = repro_prepare(project_copy)
    assert ran
    changed = after_pixel.loc[after_pixel["source_md5"] != before["source_md5"], "sample_id"].tolist()
    assert changed == ["a/img01.png"]

    # one file moved into the other class folder: its label changes
    shutil.move(root / "a" / "img02.png", root / "b" / "moved.png")
    ran, after_move = repro_prepare(project_copy)
    assert ran
    moved = after_move.set_index("sample_id").loc["b/moved.png"]
    assert moved["class_name"] == "b" and "a/img02.png" not in set(after_move["sample_id"])

    # one image added
    write_image(root / "b" / "new.png", (8, 8), value=(1, 2, 3))
    ran, after_add = repro_prepare(project_copy)
    assert ran and len(after_add) == len(after_move) + 1 and "b/new.png" in set(after_add["sample_id"])

    # and untouched again: nothing re-runs
    assert not repro_prepare(project_copy)[0]


@pytest.mark.e2e
def test_new_weights_under_the_same_file_name_re_run_lnl_train(project_copy, tmp_path):
    import torch

    from alr_core.nn.models import ModelSpec, build_model

    weights = tmp_path / "weights.pt"

    def save_weights(seed: int) -> None:
        torch.manual_seed(seed)
        torch.save(build_model(ModelSpec("small_cnn", 10, 1, 8, 0.3)).state_dict(), weights)

    def repro_lnl_train() -> bool:
        return "Running stage 'lnl_train'" in project_copy.dvc("repro", "lnl_train").stdout

    save_weights(0)
    project_copy.write_params({"data": {"image_size": 8}, "model": {"arch": "small_cnn", "init": str(weights)},
                               "pretrain": {"method": "none"}, "lnl": {"method": "ce", "epochs": 1}})  # fmt: skip
    assert repro_lnl_train()
    assert not repro_lnl_train()  # the same file: nothing to do
    before = json.loads((project_copy.root / "metrics" / "lnl.json").read_text())["test"]
    save_weights(1)  # new weights, same file name, as a user who re-exports them does
    assert repro_lnl_train()
    after = json.loads((project_copy.root / "metrics" / "lnl.json").read_text())["test"]
    assert after != before  # trained from the new weights
    assert not repro_lnl_train()
