"""The prepare step in process, the artifact writers, and the prepare / inject_noise stage
scripts run as subprocesses in a temporary copy of the project (good and bad inputs)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from builders import (
    REPO_ROOT,
    files_under,
    run_module,
    write_csv,
    write_image,
    write_image_folder,
    write_npz,
    write_params,
)

from alr_core.common import artifacts, paths
from alr_core.common.cli import run_stage
from alr_core.common.errors import AlrError
from alr_core.common.params import CsvParams, DataParams, Params
from alr_core.common.seeding import rng_for
from alr_core.data.identical import identical_text
from alr_core.data.splits import evaluation_counts
from alr_core.data.prepare import (assign_splits, class_names, data_summary, groups_text, imbalance_text, prepare,
                                  unscored_classes_text)
from alr_core.data.sources import SourceData

SAMPLE_COLUMNS = ["sample_id", "split", "label", "class_name", "source_path", "source_md5"]


# ============================================================================= prepare() in process


def test_prepare_digits_long_tail():
    dataset = prepare(DataParams(image_size=None), rng_for(0, "split"))
    samples = dataset.samples
    assert list(samples.columns) == SAMPLE_COLUMNS
    assert len(samples) == 978 == len(dataset.images)
    assert dataset.images.shape == (978, 8, 8, 1) and dataset.images.dtype == np.uint8
    assert samples["label"].dtype == np.int64
    assert samples["source_path"].isna().all()
    assert samples["sample_id"].is_unique
    train = samples[samples["split"] == "train"]
    assert np.bincount(train["label"], minlength=10).tolist() == [129, 100, 77, 60, 46, 36, 28, 22, 17, 13]
    for split, per_class in (("val", 15), ("test", 30)):
        assert np.bincount(samples.loc[samples["split"] == split, "label"]).tolist() == [per_class] * 10
    assert (samples["class_name"] == samples["label"].astype(str)).all()

    summary = data_summary(dataset)
    assert summary["num_samples"] == 978 and summary["num_classes"] == 10
    assert summary["image_shape"] == [8, 8, 1]
    assert summary["split_sizes"] == {"train": 528, "val": 150, "test": 300}
    assert summary["class_counts"]["train"]["9"] == 13
    assert summary["train_imbalance_ratio"] == pytest.approx(129 / 13)
    json.dumps(summary, allow_nan=False)  # the metrics file must be plain JSON


def test_an_imbalance_ratio_the_long_tail_cannot_give_is_noted():
    """data.imbalance_ratio 1000 on digits: the rarest classes keep one image each, and prepare
    says that the train split's ratio is the head's count, not 1000."""
    assert imbalance_text(data_summary(prepare(DataParams(image_size=None), rng_for(0, "split"))),
                          DataParams(image_size=None)) is None  # the default ratio 10 fits
    params = DataParams(image_size=None, imbalance_ratio=1000)
    summary = data_summary(prepare(params, rng_for(0, "split")))
    assert min(summary["class_counts"]["train"].values()) == 1
    assert imbalance_text(summary, params) == (
        "note: data.imbalance_ratio is 1000, but the largest class has 129 train images and a class keeps at least "
        "one, so the train split's ratio is 129 (train_imbalance_ratio in metrics/data.json)")  # fmt: skip


def test_the_imbalance_note_starts_where_the_tail_is_asked_for_less_than_half_an_image():
    """The head keeps 129 train images: ratio 250 asks the tail for 0.52 image (rounded to 1, no note), 260
    for 0.496."""
    for ratio, noted in ((250, False), (260, True)):
        params = DataParams(image_size=None, imbalance_ratio=ratio)
        summary = data_summary(prepare(params, rng_for(0, "split")))
        assert max(summary["class_counts"]["train"].values()) == 129
        assert (imbalance_text(summary, params) is not None) == noted, ratio


def test_prepare_images_follow_their_rows():
    from sklearn.datasets import load_digits

    raw = np.round(load_digits().images * (255 / 16)).astype(np.uint8)
    dataset = prepare(DataParams(image_size=None), rng_for(0, "split"))
    index = dataset.samples["sample_id"].str.removeprefix("digits/").astype(int).to_numpy()
    assert (dataset.images[..., 0] == raw[index]).all()


def test_prepare_is_deterministic_per_seed():
    a = prepare(DataParams(image_size=None), rng_for(0, "split")).samples
    b = prepare(DataParams(image_size=None), rng_for(0, "split")).samples
    c = prepare(DataParams(image_size=None), rng_for(1, "split")).samples
    pd.testing.assert_frame_equal(a, b)
    assert set(a["sample_id"]) != set(c["sample_id"])


@pytest.mark.parametrize("source", ["imagefolder", "csv", "medmnist"])
def test_one_class_is_refused_before_anything_runs(tmp_path, source):
    # it went on to fail at inject_noise naming noise.keep_clean_classes, or, without noise, to score 1.000
    root = write_image_folder(tmp_path / "cells", {"only": 4})
    params = {"imagefolder": DataParams(source="imagefolder", path=str(root)),
              "csv": DataParams(source="csv", path=str(write_csv(root / "m.csv", {
                  "image": [f"only/img{i:02d}.png" for i in range(4)], "dx": ["only"] * 4})),
                  csv=CsvParams(label_column="dx")),
              "medmnist": DataParams(source="medmnist", path=str(tmp_path / "one.npz"))}[source]  # fmt: skip
    write_npz(tmp_path / "one.npz", {"train": [0, 0, 0], "val": [0], "test": [0]})
    names = {"medmnist": "['0']"}.get(source, "['only']")
    with pytest.raises(AlrError) as info:
        prepare(params, rng_for(0, "split"))
    assert str(info.value) == (f"{params.path}: found 1 class, {names}; alr classifies between at least 2 classes "
                               "(as data.class_names requires): add the other classes' folders or rows")


def test_prepare_medmnist_keeps_the_file_splits(tmp_path):
    path = tmp_path / "tiny.npz"
    write_npz(path)
    dataset = prepare(DataParams(source="medmnist", path=str(path), image_size=None), rng_for(0, "split"))
    assert dataset.samples["split"].tolist() == ["train"] * 7 + ["val"] * 3 + ["test"] * 4
    assert data_summary(dataset) == expected_tiny_summary()


def test_prepare_imagefolder_is_stratified(tmp_path):
    root = write_image_folder(tmp_path / "r", {"a": 3, "b": 20}, mode="L", distinct=True)
    dataset = prepare(DataParams(source="imagefolder", path=str(root), image_size=4), rng_for(0, "split"))
    summary = data_summary(dataset)
    assert summary["class_counts"] == {
        "train": {"a": 2, "b": 14},
        "val": {"a": 0, "b": 2},
        "test": {"a": 1, "b": 4},
    }
    assert dataset.samples["source_path"].str.startswith(str(root)).all()
    assert class_names(dataset.samples) == ["a", "b"]
    assert summary["identical_images"]["groups"] == 0


def test_prepare_keeps_identical_images_in_one_split(tmp_path):
    """Copies of one image must not sit in train and in val or test; copies with different labels
    are reported."""
    root = write_image_folder(tmp_path / "r", {"a": 10, "b": 20}, mode="L", distinct=True)
    params = DataParams(source="imagefolder", path=str(root), image_size=None)
    drawn = prepare(params, rng_for(0, "split")).samples.set_index("sample_id")["split"]
    # copies of a train image and of a test image, in both classes
    train_image = drawn.index[drawn == "train"][0]
    test_image = drawn.index[(drawn == "test") & drawn.index.str.startswith("b/")][0]
    for copy, original in [("a/zz_copy_of_train.png", train_image), ("b/zz_copy_of_train.png", train_image),
                           ("b/zz_copy_of_test.png", test_image)]:  # fmt: skip
        (root / copy).write_bytes((root / original).read_bytes())
    dataset = prepare(params, rng_for(0, "split"))
    split = dataset.samples.set_index("sample_id")["split"]
    assert set(split[[train_image, "a/zz_copy_of_train.png", "b/zz_copy_of_train.png"]]) == {"train"}
    assert len(set(split[[test_image, "b/zz_copy_of_test.png"]])) == 1
    summary = data_summary(dataset)["identical_images"]
    assert summary == {
        "groups": 2, "images": 5, "with_different_labels": 1, "evaluation_images_in_train": 0,
        "examples": [{train_image: train_image.split("/")[0], "a/zz_copy_of_train.png": "a",
                      "b/zz_copy_of_train.png": "b"}],
    }  # fmt: skip
    assert identical_text(summary) == (
        "identical images: 2 groups (5 images; alr keeps each group in one split where it draws the splits); 1 with "
        f"different labels, e.g. {train_image} (a), a/zz_copy_of_train.png (a), b/zz_copy_of_train.png (b): label "
        "noise to fix at the source (all in metrics/data.json)")
    assert dataset.identical[0].tolist() == sorted(
        dataset.samples.index[dataset.samples["sample_id"].isin(list(summary["examples"][0]))])


def test_prepare_moves_few_images_between_splits_when_the_folder_grows(tmp_path):
    """A team adds images to its folder and removes a bad one: the images already there keep
    their splits (the rounds experts answered on them, and the test set, stay as they were)
    but at each class's val/test/train boundaries; an untouched class keeps every split."""
    root = write_image_folder(tmp_path / "r", {"a": 30, "b": 40, "c": 20}, mode="L", distinct=True)
    params = DataParams(source="imagefolder", path=str(root), image_size=None)
    before = prepare(params, rng_for(0, "split")).samples.set_index("sample_id")["split"]
    (root / "a" / "img05.png").unlink()
    for i in range(40, 46):
        write_image(root / "b" / f"img{i:02d}.png", (6, 6), "L", value=200 + i)
    after = prepare(params, rng_for(0, "split")).samples.set_index("sample_id")["split"]
    kept = before.index.intersection(after.index)
    assert len(kept) == 89 and len(after) == 95
    changed = kept[before[kept] != after[kept]]
    assert len(changed) <= 4 and not changed.str.startswith("c/").any(), changed.tolist()
    # shuffle: alr's per-class permutation before the hash order, for a project it prepared then
    legacy = DataParams(source="imagefolder", path=str(root), image_size=None, split_order="shuffle")
    drawn = prepare(legacy, rng_for(0, "split")).samples
    rng = rng_for(0, "split")
    for name in ("a", "b", "c"):
        members = rng.permutation(np.flatnonzero(drawn["class_name"] == name))
        n_val, n_test = evaluation_counts(np.array([len(members)]), 0.1, 0.2)[:, 0]
        assert (drawn["split"].iloc[members[:n_val]] == "val").all()
        assert (drawn["split"].iloc[members[n_val:n_val + n_test]] == "test").all()
        assert (drawn["split"].iloc[members[n_val + n_test:]] == "train").all()


def patient_manifest(tmp_path, split_column: list[str] | None = None) -> Path:
    """A CSV manifest of 40 distinct images of 12 patients (patient i % 12, two without an id)
    and 2 classes, with a copy of one patient's image filed under another patient."""
    folder = write_image_folder(tmp_path / "imgs", {"x": 40}, mode="L", distinct=True)
    (folder / "x" / "img40.png").write_bytes((folder / "x" / "img03.png").read_bytes())
    rows = {"image": [f"x/img{i:02d}.png" for i in range(41)], "label": [i % 2 for i in range(41)],
            "patient": [f"P{i % 12}" for i in range(38)] + ["", "", "P7"]}  # fmt: skip
    if split_column:
        rows["fold"] = split_column
    return write_csv(folder / "manifest.csv", rows)


def test_prepare_keeps_each_patient_in_one_split(tmp_path):
    path = patient_manifest(tmp_path)
    params = DataParams(source="csv", path=str(path), image_size=None, val_fraction=0.2, test_fraction=0.3,
                        csv=CsvParams(label_column="label", group_column="patient"))  # fmt: skip
    dataset = prepare(params, rng_for(0, "split"))
    samples = dataset.samples
    assert samples["group"].tolist()[:13] == [f"P{i % 12}" for i in range(13)] and samples["group"].iloc[38] == ""
    for patient, splits in samples[samples["group"] != ""].groupby("group")["split"]:
        assert splits.nunique() == 1, patient
    # x/img40.png (patient P7) is a copy of x/img03.png (P3): the two patients share a split
    split = samples.set_index("group")["split"]
    assert split["P3"].iloc[0] == split["P7"].iloc[0]
    assert {"val", "test"} <= set(samples["split"])
    assert data_summary(dataset)["groups"] == {"groups": 12, "largest": 4, "ungrouped_images": 2,
                                               "evaluation_images_in_train_groups": 0}  # fmt: skip


def test_prepare_records_the_md5_of_each_source_file(tmp_path):
    root = write_image_folder(tmp_path / "r", {"a": 5, "b": 5}, mode="L", distinct=True)
    params = DataParams(source="imagefolder", path=str(root), image_size=None, val_fraction=0.2)
    samples = prepare(params, rng_for(0, "split")).samples
    expected = [hashlib.md5(Path(p).read_bytes()).hexdigest() for p in samples["source_path"]]
    assert samples["source_md5"].fillna("").tolist() == expected and len(set(expected)) == 10


def test_prepare_keeps_copies_filed_under_different_patients_in_one_split(tmp_path):
    """40 patients of one image each, where patient i's image is a copy of patient i + 20's: the copies join
    the two patients' groups, so each pair shares a split however the groups are dealt."""
    folder = tmp_path / "imgs"
    for i in range(40):
        write_image(folder / f"img{i:02d}.png", (4, 4), "L", value=10 * (i % 20))
    path = write_csv(folder / "m.csv", {"image": [f"img{i:02d}.png" for i in range(40)],
                                        "label": [i % 20 % 2 for i in range(40)],
                                        "patient": [f"P{i}" for i in range(40)]})  # fmt: skip
    params = DataParams(source="csv", path=str(path), image_size=None, val_fraction=0.2, test_fraction=0.3,
                        csv=CsvParams(label_column="label", group_column="patient"))  # fmt: skip
    split = prepare(params, rng_for(0, "split")).samples["split"].tolist()
    assert {"val", "test"} <= set(split)
    assert [i for i in range(20) if split[i] != split[i + 20]] == []


def test_prepare_counts_evaluation_images_of_train_patients_in_the_source_splits(tmp_path):
    folds = ["train"] * 24 + ["test"] * 16 + ["val"]
    path = patient_manifest(tmp_path, folds)
    params = DataParams(source="csv", path=str(path), image_size=None,
                        csv=CsvParams(label_column="label", group_column="patient", split_column="fold"))
    dataset = prepare(params, rng_for(0, "split"))
    assert dataset.samples["split"].tolist() == folds  # the file's own splits stand
    # train holds P0-P11 (rows 0-23); every grouped test row belongs to one of them
    summary = data_summary(dataset)["groups"]
    assert summary["evaluation_images_in_train_groups"] == 15
    assert groups_text(summary) == ("15 validation or test images of the source's own splits share a group "
                                    "(data.csv.group_column) with train images: their scores are optimistic")
    assert groups_text(summary | {"evaluation_images_in_train_groups": 0}) is None and groups_text(None) is None


def test_prepare_reports_evaluation_images_identical_to_train_in_the_source_splits(tmp_path):
    path = tmp_path / "leaky.npz"
    arrays = write_npz(path)
    arrays["test_images"][1] = arrays["train_images"][4]  # a test image that train holds too
    np.savez(path, **arrays)
    dataset = prepare(DataParams(source="medmnist", path=str(path), image_size=None), rng_for(0, "split"))
    assert dataset.samples["split"].tolist() == ["train"] * 7 + ["val"] * 3 + ["test"] * 4  # the file's splits
    summary = data_summary(dataset)["identical_images"]
    # train/000004 is class 1, test/000001 class 1: the same label, one evaluation image seen in train
    assert summary == {"groups": 1, "images": 2, "with_different_labels": 0, "examples": [],
                       "evaluation_images_in_train": 1}  # fmt: skip
    assert identical_text(summary).endswith("; 1 validation or test image of the source's own splits also in "
                                            "train: their scores are optimistic")
    clean = tmp_path / "clean.npz"
    write_npz(clean)
    without = data_summary(prepare(DataParams(source="medmnist", path=str(clean), image_size=None), rng_for(0, "split")))
    assert identical_text(without["identical_images"]) is None


def test_prepare_empty_train_split(tmp_path):
    for i in range(2):
        write_image(tmp_path / f"{i}.png")
    path = write_csv(tmp_path / "m.csv", {"image": ["0.png", "1.png"], "label": [0, 1], "split": ["val", "test"]})
    params = DataParams(
        source="csv", path=str(path), image_size=None, csv=CsvParams(label_column="label", split_column="split")
    )
    with pytest.raises(AlrError, match="the train split is empty; check data.csv.split_column"):
        prepare(params, rng_for(0, "split"))


def test_prepare_refuses_a_class_with_no_train_image(tmp_path):
    """A source's own splits that hold a class in val and test only: it passed silently, and
    inject_noise flipped train labels into it."""
    images = [f"{i}.png" for i in range(8)]
    for name in images:
        write_image(tmp_path / name, mode="L", value=int(name[:-4]) * 20)
    rows = {"image": images, "label": ["a", "b", "a", "b", "rare", "rare", "a", "b"],
            "split": ["train"] * 4 + ["val", "test", "val", "test"]}  # fmt: skip
    params = DataParams(source="csv", path=str(write_csv(tmp_path / "m.csv", rows)), image_size=None,
                        csv=CsvParams(label_column="label", split_column="split"))  # fmt: skip
    with pytest.raises(AlrError) as info:
        prepare(params, rng_for(0, "split"))
    assert str(info.value) == (
        "1 class ['rare'] has images only in val or test (2), none in train: no model can learn them, and injected "
        "noise would flip train labels into them; give some of their rows the split 'train' in "
        "data.csv.split_column ('split')")  # fmt: skip
    npz = tmp_path / "mm.npz"
    write_npz(npz, {"train": [0, 1, 0, 1], "val": [0, 1, 2], "test": [2, 1, 0]})
    with pytest.raises(AlrError, match=rf"\['2'\] has images only in val or test \(2\), none in train: .*; {npz} "
                                       "holds none in its train split"):
        prepare(DataParams(source="medmnist", path=str(npz), image_size=None), rng_for(0, "split"))


def test_prepare_empty_val_split_names_what_would_fill_it(tmp_path):
    """Phase 1 picks its checkpoint on validation images: prepare refuses a split without any,
    naming the parameter to change for the way the splits were drawn."""
    images = [f"{i}.png" for i in range(12)]
    for name in images:
        write_image(tmp_path / name, mode="L", value=int(name[:-4]) * 20)
    labels = [i % 2 for i in range(12)]
    own = write_csv(tmp_path / "own.csv", {"image": images, "label": labels, "split": ["train"] * 10 + ["test"] * 2})
    drawn = write_csv(tmp_path / "drawn.csv", {"image": images, "label": labels})
    cases = [
        (DataParams(source="csv", path=str(own), image_size=None,
                    csv=CsvParams(label_column="label", split_column="split")),
         "give some rows the split 'val' in data.csv.split_column ('split')"),
        (DataParams(source="csv", path=str(drawn), image_size=None, val_fraction=0.05,
                    csv=CsvParams(label_column="label")),
         "raise data.val_fraction (0.05): it rounds to no image of any class (a class gets one once "
         "data.val_fraction × its size reaches 0.5)"),
    ]  # fmt: skip
    for params, advice in cases:
        with pytest.raises(AlrError) as info:
            prepare(params, rng_for(0, "split"))
        assert str(info.value) == ("the val split is empty, and phase 1 picks its checkpoint on validation images; "
                                   + advice)  # fmt: skip
    two_each = write_csv(tmp_path / "two.csv", {"image": images[:4], "label": labels[:4]})
    capped = DataParams(source="csv", path=str(two_each), image_size=None, val_fraction=0.3, test_fraction=0.3,
                        csv=CsvParams(label_column="label"))  # fmt: skip
    copies = write_image_folder(tmp_path / "copies", {"a": 4, "b": 4})  # one solid colour throughout
    identical = DataParams(source="imagefolder", path=str(copies), image_size=None, val_fraction=0.25,
                           test_fraction=0.25)  # fmt: skip
    for params, advice in ((capped, "the test split (data.test_fraction 0.3) and one train image per class take "
                                    "every image of each class; lower data.test_fraction or add images"),
                           (identical, "identical images share one split, which here took every validation image "
                                       "into train or test")):  # fmt: skip
        with pytest.raises(AlrError, match="the val split is empty") as info:
            prepare(params, rng_for(0, "split"))
        assert str(info.value).endswith(advice)
    # 6 images per class at 0.1 round up to one each
    params = DataParams(source="csv", path=str(drawn), image_size=None, val_fraction=0.1,
                        csv=CsvParams(label_column="label"))  # fmt: skip
    assert (prepare(params, rng_for(0, "split")).samples["split"] == "val").sum() == 2


def test_prepare_refuses_a_class_experts_could_not_answer_with(tmp_path):
    root = write_image_folder(tmp_path / "cells", {"a": 3, "Skip": 3})
    with pytest.raises(AlrError) as info:
        prepare(DataParams(source="imagefolder", path=str(root), image_size=None), rng_for(0, "split"))
    assert str(info.value) == (f"{root}: the classes: class 0 is 'Skip', the answer experts give to skip a sample; "
                               "rename the class")  # fmt: skip


def test_prepare_real_bccd_split_arithmetic(shared_data):
    root = shared_data / "bccd_wbc" / "BCCD_cropped"
    if not root.is_dir():
        pytest.skip(f"{root} not present")
    dataset = prepare(DataParams(source="imagefolder", path=str(root), image_size=28), rng_for(0, "split"))
    counts = data_summary(dataset)["class_counts"]
    # per class: n_test = min(round(0.2 n), n - 1), n_val = min(round(0.1 n), n - 1 - n_test)
    assert [counts[s]["Basophil"] for s in ("train", "val", "test")] == [2, 0, 1]
    assert [counts[s]["Eosinophil"] for s in ("train", "val", "test")] == [61, 9, 18]
    assert [counts[s]["Lymphocyte"] for s in ("train", "val", "test")] == [23, 3, 7]
    assert [counts[s]["Monocyte"] for s in ("train", "val", "test")] == [14, 2, 4]
    assert [counts[s]["Neutrophil"] for s in ("train", "val", "test")] == [145, 21, 41]


def expected_tiny_summary() -> dict:
    """data_summary of builders.write_npz's default file (train 0120120, val 012, test 2100)."""
    return {
        "num_samples": 14,
        "num_classes": 3,
        "class_names": ["0", "1", "2"],
        "image_shape": [6, 6, 1],
        "split_sizes": {"train": 7, "val": 3, "test": 4},
        "class_counts": {
            "train": {"0": 3, "1": 2, "2": 2},
            "val": {"0": 1, "1": 1, "2": 1},
            "test": {"0": 2, "1": 1, "2": 1},
        },
        "train_imbalance_ratio": 1.5,
        "identical_images": {"groups": 0, "images": 0, "with_different_labels": 0, "examples": [],
                             "evaluation_images_in_train": 0},
        "groups": None,
    }


# ============================================================================= artifacts and cli


def test_atomic_writers_round_trip(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4, 1)
    artifacts.write_npy(tmp_path / "a" / "x.npy", array)
    loaded = np.load(tmp_path / "a" / "x.npy", mmap_mode="r")
    assert loaded.dtype == np.uint8 and (loaded == array).all()
    artifacts.write_json(tmp_path / "m.json", {"a": [1, 2]})
    assert (tmp_path / "m.json").read_text().endswith("}\n")
    assert artifacts.read_json(tmp_path / "m.json") == {"a": [1, 2]}
    table = pd.DataFrame({"x": [1, 2]})
    artifacts.write_parquet(tmp_path / "t.parquet", table)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "t.parquet"), table)
    assert files_under(tmp_path) == ["a/x.npy", "m.json", "t.parquet"]  # no temporary files left


def test_torch_checkpoints_are_byte_stable(tmp_path):
    """The same payload gives the same bytes whatever temporary name the atomic write used, so a
    stage that re-runs to the same weights leaves its output's hash, and DVC the stages after it,
    alone."""
    import torch

    payload = {"state_dict": {"w": torch.arange(6.0).reshape(2, 3)}, "class_names": ["a", "b"]}
    artifacts.write_torch(tmp_path / "model.pt", payload)
    first = (tmp_path / "model.pt").read_bytes()
    artifacts.write_torch(tmp_path / "model.pt", payload)
    artifacts.write_torch(tmp_path / "other" / "copy.pt", payload)
    assert (tmp_path / "model.pt").read_bytes() == first == (tmp_path / "other" / "copy.pt").read_bytes()
    loaded = torch.load(tmp_path / "model.pt", weights_only=True)
    assert torch.equal(loaded["state_dict"]["w"], payload["state_dict"]["w"]) and loaded["class_names"] == ["a", "b"]
    assert files_under(tmp_path) == ["model.pt", "other/copy.pt"]


def test_atomic_writers_give_files_the_mode_of_a_plain_write(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")  # open() applies the process umask to 0666
    artifacts.write_json(tmp_path / "m.json", {})
    artifacts.write_npy(tmp_path / "x.npy", np.zeros(1))
    modes = {path.name: path.stat().st_mode & 0o777 for path in tmp_path.iterdir()}
    assert modes["m.json"] == modes["x.npy"] == modes["plain.txt"]  # 0644 under the usual umask, not 0600


def test_atomic_writer_failure_leaves_nothing(tmp_path):
    target = tmp_path / "out" / "m.json"
    with pytest.raises(ValueError):
        artifacts.write_json(target, {"x": float("nan")})
    assert files_under(tmp_path) == []
    target.parent.mkdir(exist_ok=True)
    target.write_text("old\n")
    with pytest.raises(RuntimeError):
        with artifacts.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old\n"
    assert files_under(tmp_path) == ["out/m.json"]


def test_run_stage_turns_alr_error_into_one_line_and_exit_1(capsys):
    def bad():
        raise AlrError("params.yaml: 'seed' is -1")

    with pytest.raises(SystemExit) as info:
        run_stage(bad)
    assert info.value.code == 1
    assert capsys.readouterr().err == "error: params.yaml: 'seed' is -1\n"


# ============================================================================= dvc.yaml consistency


def test_dvc_yaml_declares_the_artifact_paths_and_params_groups():
    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]

    def declared(stage: dict, key: str) -> set[str]:
        """Paths (or param keys) of one stage; an entry is a string or {path: options}."""
        names = set()
        for entry in stage.get(key, []):
            if key == "params" and isinstance(entry, dict):  # {params_file: [keys]}
                names |= {k for keys in entry.values() for k in (keys or [])}
            else:
                names.add(next(iter(entry)) if isinstance(entry, dict) else entry)
        return names

    prepare_stage, noise_stage = stages["prepare"], stages["inject_noise"]
    assert {str(paths.PREPARED_IMAGES), str(paths.PREPARED_SAMPLES)} <= declared(prepare_stage, "outs")
    assert str(paths.DATA_METRICS) in declared(prepare_stage, "metrics")
    assert "data" in declared(prepare_stage, "params")
    # the splits come from data.split_seed: a replicate (`seed`) keeps the prepared data
    assert "seed" not in declared(prepare_stage, "params")
    assert str(paths.NOISY_LABELS) in declared(noise_stage, "outs")
    assert str(paths.NOISE_METRICS) in declared(noise_stage, "metrics")
    assert str(paths.PREPARED_SAMPLES) in declared(noise_stage, "deps")
    assert {"seed", "noise"} <= declared(noise_stage, "params")

    # every stage (templated foreach/matrix stages included): params groups exist in Params,
    # source-code deps exist in the repo
    groups = set(Params.__dataclass_fields__)
    for name, stage in stages.items():
        body = stage.get("do", stage)
        for key in declared(body, "params"):
            assert "${" in key or key.split(".")[0] in groups, f"stage {name}: params {key!r} not in Params"
        for dep in declared(body, "deps"):
            if dep.endswith(".py") and "${" not in dep:
                assert (REPO_ROOT / dep).is_file(), f"stage {name}: dep {dep} does not exist"


# ============================================================================= stage scripts


def run_prepare_expect_error(project, overrides: dict, fragment: str):
    write_params(project, overrides)
    result = run_module("stages.prepare", project)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and result.stderr.strip() == error_lines[0], result.stderr
    assert fragment in error_lines[0], error_lines[0]
    assert files_under(project / "data") == []
    assert not (project / paths.DATA_METRICS).exists()
    assert files_under(project / "metrics") == []
    return error_lines[0]


def test_stage_prepare_missing_path(stage_tree, tmp_path):
    missing = tmp_path / "missing.npz"
    line = run_prepare_expect_error(
        stage_tree, {"data": {"source": "medmnist", "path": str(missing)}}, f"data.path: {missing} does not exist"
    )
    assert line == f"error: data.path: {missing} does not exist"


def test_stage_prepare_npz_missing_keys(stage_tree, tmp_path):
    path = tmp_path / "p.npz"
    write_npz(path, drop=["val_labels"])
    run_prepare_expect_error(
        stage_tree, {"data": {"source": "medmnist", "path": str(path)}}, f"error: {path}: missing keys ['val_labels']"
    )


def test_stage_prepare_unknown_params_key(stage_tree):
    run_prepare_expect_error(
        stage_tree,
        {"noise": {"rat": 0.2}},
        "error: params.yaml: unknown key 'noise.rat'; did you mean 'noise.rate'?",
    )


def test_stage_prepare_wrong_type(stage_tree):
    run_prepare_expect_error(
        stage_tree, {"data": {"image_size": "big"}}, "error: params.yaml: 'data.image_size' must be an integer, got 'big'"
    )


def test_stage_prepare_empty_class_folder(stage_tree, tmp_path):
    root = write_image_folder(tmp_path / "cells", {"a": 2, "b": 2})
    (root / "c").mkdir()
    run_prepare_expect_error(
        stage_tree, {"data": {"source": "imagefolder", "path": str(root)}}, f"error: {root / 'c'}: class 'c' has no images"
    )


def test_stage_prepare_mixed_sizes_without_image_size(stage_tree, tmp_path):
    root = tmp_path / "cells"
    write_image(root / "a" / "1.png", (6, 6))
    write_image(root / "b" / "1.png", (8, 8))
    run_prepare_expect_error(
        stage_tree,
        {"data": {"source": "imagefolder", "path": str(root), "image_size": None}},
        "is 6x6; set data.image_size to resize every image to one size",
    )


def test_stage_prepare_label_out_of_range(stage_tree, tmp_path):
    path = tmp_path / "p.npz"
    write_npz(path)
    run_prepare_expect_error(
        stage_tree,
        {"data": {"source": "medmnist", "path": str(path), "class_names": ["a", "b"]}},
        f"error: {path}: 'train_labels': label 2 at row 2 is out of range; valid labels are 0..1",
    )


def test_stage_prepare_one_hot_row_without_a_one(stage_tree, tmp_path):
    for i in range(3):
        write_image(tmp_path / f"ISIC_{i}.jpg")
    path = write_csv(tmp_path / "gt.csv", {"image": ["ISIC_0", "ISIC_1", "ISIC_2"], "MEL": [1, 0, 0], "NV": [0, 1, 0]})
    run_prepare_expect_error(
        stage_tree, {"data": {"source": "csv", "path": str(path)}}, f"error: {path}: row 4: one-hot row has 0 ones"
    )


def test_stage_prepare_csv_without_labels(stage_tree, tmp_path):
    write_image(tmp_path / "a.png")
    path = write_csv(tmp_path / "m.csv", {"image": ["a.png"], "dx": ["nv"]})
    run_prepare_expect_error(
        stage_tree,
        {"data": {"source": "csv", "path": str(path)}},
        f"error: {path}: found neither a label column nor one-hot class columns",
    )


def test_stage_prepare_split_sizes_that_do_not_fit(stage_tree):
    run_prepare_expect_error(
        stage_tree,
        {"data": {"source": "digits", "val_per_class": 100, "test_per_class": 74}},
        "error: data.val_per_class + data.test_per_class = 174 leaves no train images for class 8, "
        "which has 174 images",
    )
    run_prepare_expect_error(
        stage_tree,
        {"data": {"val_fraction": 0.5, "test_fraction": 0.5}},
        "error: params.yaml: 'data.val_fraction' + 'data.test_fraction' = 1;",
    )


def test_stage_prepare_and_inject_noise_on_a_tiny_npz(stage_tree, tmp_path):
    path = tmp_path / "tiny.npz"
    write_npz(path)
    write_params(stage_tree, {"data": {"source": "medmnist", "path": str(path), "image_size": None},
                              "noise": {"type": "none", "rate": 0.0}, "al": {"oracle": "human"}})
    result = run_module("stages.prepare", stage_tree)
    assert result.returncode == 0, result.stderr
    assert "prepared 14 images of shape (6, 6, 1)" in result.stdout
    images = np.load(stage_tree / paths.PREPARED_IMAGES, mmap_mode="r")
    assert images.shape == (14, 6, 6, 1) and images.dtype == np.uint8
    assert images[:, 0, 0, 0].tolist() == list(range(7)) + [50, 51, 52] + [100, 101, 102, 103]
    samples = pd.read_parquet(stage_tree / paths.PREPARED_SAMPLES)
    assert list(samples.columns) == SAMPLE_COLUMNS
    assert samples["sample_id"].tolist()[:2] == ["train/000000", "train/000001"]
    assert samples["label"].dtype == np.int64
    assert json.loads((stage_tree / paths.DATA_METRICS).read_text()) == expected_tiny_summary()

    result = run_module("stages.inject_noise", stage_tree)
    assert result.returncode == 0, result.stderr
    assert "labels for 7 train samples, as given (noise.type: none)" in result.stdout
    labels = pd.read_parquet(stage_tree / paths.NOISY_LABELS)
    assert labels["sample_id"].tolist() == [f"train/{i:06d}" for i in range(7)]
    assert labels["observed_label"].tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert labels["true_label"].isna().all() and labels["is_corrupted"].isna().all()
    assert json.loads((stage_tree / paths.NOISE_METRICS).read_text()) == {"type": "none", "rate": 0.0}
    assert files_under(stage_tree / "data") == ["noise/labels.parquet", "prepared/images.npy", "prepared/samples.parquet"]


def test_stage_prepare_warns_of_a_class_without_validation_or_test_images(stage_tree, tmp_path):
    """One row's label misspelt in a manifest makes a class of one image: prepare names it and
    the class it may misspell, and still runs (a real class may be that rare)."""
    root = write_image_folder(tmp_path / "images", {"Basophil": 10, "Neutrophil": 10}, mode="L", distinct=True)
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))
    labels = [name.split("/")[0] for name in files]
    labels[3] = "Basofil"
    manifest = write_csv(root / "manifest.csv", {"image": files, "diagnosis": labels})
    write_params(stage_tree, {"data": {"source": "csv", "path": str(manifest), "image_size": 8,
                                       "csv": {"label_column": "diagnosis"}}})  # fmt: skip
    result = run_module("stages.prepare", stage_tree)
    assert result.returncode == 0, result.stderr
    warning = next(line for line in result.stdout.splitlines() if line.startswith("warning:"))
    assert warning == ("warning: 1 of 3 classes lack validation or test images, which pick the checkpoints and give "
                       "the scores: 'Basofil' (did you mean 'Basophil'?) with 1 train image and none in val or test; "
                       "every distinct label of the source is a class (data.class_names picks them): check for a "
                       "misspelt label or folder name, or add images")  # fmt: skip


def test_classes_without_an_evaluation_image_are_named_only_for_splits_that_exist():
    summary = {"class_names": ["a", "b"], "split_sizes": {"train": 6, "val": 2, "test": 0},
               "class_counts": {"train": {"a": 3, "b": 3}, "val": {"a": 1, "b": 1}, "test": {"a": 0, "b": 0}}}
    assert unscored_classes_text(summary) is None  # no test split at all: nothing a class lacks
    summary["class_counts"]["val"] = {"a": 2, "b": 0}
    assert unscored_classes_text(summary).startswith("warning: 1 of 2 classes lack validation or test images, which "
                                                     "pick the checkpoints and give the scores: 'b' with 3 train "
                                                     "images and none in val; ")  # fmt: skip
    # both splits exist: a class missing from one of them is named with that one
    summary = {"class_names": ["a", "b", "c"], "split_sizes": {"train": 9, "val": 3, "test": 2},
               "class_counts": {"train": {"a": 3, "b": 3, "c": 3}, "val": {"a": 1, "b": 1, "c": 1},
                                "test": {"a": 1, "b": 1, "c": 0}}}  # fmt: skip
    assert ": 'c' with 3 train images and none in test; " in unscored_classes_text(summary)
    summary["class_counts"]["test"]["c"] = 1
    assert unscored_classes_text(summary) is None


def test_stage_inject_noise_names_the_classes_kept_clean(stage_tree, tmp_path):
    # folders "0" … "10" sort as text: keep_clean_classes [2] is folder "10", which nothing said
    root = write_image_folder(tmp_path / "cells", {"0": 4, "1": 4, "10": 4, "2": 4}, distinct=True)
    write_params(stage_tree, {"data": {"source": "imagefolder", "path": str(root), "image_size": 8,
                                       "val_fraction": 0.25, "test_fraction": 0.25},
                              "noise": {"keep_clean_classes": [2]}})  # fmt: skip
    assert run_module("stages.prepare", stage_tree).returncode == 0
    result = run_module("stages.inject_noise", stage_tree)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == (
        "kept clean (noise.keep_clean_classes, class indices): 2 ('10'); note: the class named '2' is index 3, not 2: "
        "the list takes indices, in the order of data.class_names (or of the sorted class folder names)")
    noise = json.loads((stage_tree / paths.NOISE_METRICS).read_text())
    assert noise["kept_clean_classes"] == ["10"] and noise["realised_rate_per_class"]["10"] == 0.0


def test_stage_inject_noise_bad_inputs(stage_tree, tmp_path):
    # no prepared samples yet
    write_params(stage_tree, {})
    result = run_module("stages.inject_noise", stage_tree)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: data/prepared/samples.parquet: not found; run the prepare stage first (dvc repro)"
    )
    # a kept-clean class that the data does not have
    path = tmp_path / "tiny.npz"
    write_npz(path)
    write_params(stage_tree, {"data": {"source": "medmnist", "path": str(path)}, "noise": {"keep_clean_classes": [3]}})
    assert run_module("stages.prepare", stage_tree).returncode == 0
    result = run_module("stages.inject_noise", stage_tree)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: noise.keep_clean_classes lists 3; valid classes are 0..2"
    assert not (stage_tree / "data" / "noise").exists()
    assert not (stage_tree / paths.NOISE_METRICS).exists()


def test_assign_splits_keeps_identical_images_together_in_the_drawn_long_tail():
    """digits: copies drawn into val, test and train all go to train (long_tail_split alone would split them)."""
    labels = np.repeat([0, 1], 10)
    source = SourceData(np.zeros((20, 1, 1, 1), np.uint8), labels, [f"digits/{i:04d}" for i in range(20)], ["a", "b"])
    params = DataParams(val_per_class=1, test_per_class=1, imbalance_ratio=8)  # class 0: 1 val, 1 test, 8 train
    split = assign_splits(source, params, rng_for(0, "split"), [np.arange(10)])
    assert split[:10].tolist() == ["train"] * 10
    assert sorted(split[10:]) == [""] * 7 + ["test", "train", "val"]  # class 1's one train image; the rest unused


def blake_rank(text: str, seed: int) -> int:
    """data.split_order hash's rank, written out: BLAKE2b-64 of the UTF-8 text keyed by the seed's
    8 little-endian bytes."""
    digest = hashlib.blake2b(text.encode("utf-8"), key=seed.to_bytes(8, "little"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


@pytest.mark.parametrize("seed", [3, 2**32 - 1])
@pytest.mark.parametrize("grouped", [False, True])
def test_assign_splits_hash_order_is_the_ids_hash_under_split_seed(seed, grouped):
    """Each class's lowest-ranked images (BLAKE2b of the id keyed by data.split_seed) go to val/test;
    grouped, an image without a group ranks by its own id, and a named group by its name."""
    n = 40
    labels = np.arange(n) % 2
    sample_ids = [f"x/ñandú-{i:02d}.png" for i in range(n)]  # non-ASCII ids hash as UTF-8
    source = SourceData(np.zeros((n, 1, 1, 1), np.uint8), labels, sample_ids, ["a", "b"],
                        groups=np.full(n, "", dtype=object) if grouped else None)  # fmt: skip
    params = DataParams(source="csv" if grouped else "imagefolder", path="m", split_seed=seed)
    split = assign_splits(source, params, rng_for(seed, "split"), [])
    for k in (0, 1):
        members = sorted(np.flatnonzero(labels == k), key=lambda i: blake_rank(sample_ids[i], seed))
        first, second = ("test", "val") if grouped else ("val", "test")  # grouped_split deals test first
        n_val, n_test = evaluation_counts(np.array([len(members)]), 0.1, 0.2)[:, 0]
        sizes = (n_test, n_val) if grouped else (n_val, n_test)
        assert [split[i] for i in members[:sizes[0]]] == [first] * sizes[0]
        assert [split[i] for i in members[sizes[0]:sizes[0] + sizes[1]]] == [second] * sizes[1]
    if not grouped:
        return
    # a patient's new image ranks with its patient's name, whatever its own id's rank: no one moves
    patients = np.array([f"P{i // 4}" for i in range(n)], dtype=object)
    labels = np.arange(n) // 4 % 2  # one class per patient, 5 patients of 4 per class; test takes 4 images
    source = SourceData(source.images, labels, sample_ids, ["a", "b"], groups=patients)
    before = assign_splits(source, params, rng_for(seed, "split"), [])
    for k in (0, 1):  # each class's lowest-ranked patient name is dealt first, into test
        first = min(set(patients[labels == k]), key=lambda name: blake_rank(name, seed))
        assert set(before[patients == first]) == {"test"}
    in_train = patients[np.flatnonzero(before == "train")[0]]
    new_id = min((f"x/new{j}.png" for j in range(2000)), key=lambda s: blake_rank(s, seed))  # ranks before all
    grown = SourceData(np.zeros((n + 1, 1, 1, 1), np.uint8), np.r_[labels, labels[patients == in_train][0]],
                       sample_ids + [new_id], ["a", "b"],
                       groups=np.r_[patients, np.array([in_train], dtype=object)])  # fmt: skip
    after = assign_splits(grown, params, rng_for(seed, "split"), [])
    assert after[:n].tolist() == before.tolist() and after[n] == "train"
