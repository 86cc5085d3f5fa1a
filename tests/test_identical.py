"""Identical images (alr_core.data.identical) on hand-made arrays."""

from __future__ import annotations

import numpy as np

from alr_core.data.identical import EXAMPLES, conflicting_copies, identical_groups, identical_summary, keep_together


def images_of(values: list[int]) -> np.ndarray:
    """(N, 2, 2, 1) uint8: image i has every pixel ``values[i]``, so equal values are copies."""
    return np.broadcast_to(np.asarray(values, dtype=np.uint8)[:, None, None, None], (len(values), 2, 2, 1)).copy()


def test_identical_groups_in_order_of_first_member():
    images = images_of([7, 1, 7, 3, 1, 7, 9])
    images[6, 0, 0, 0] = 7  # one pixel differs from the 7s: not a copy
    assert [g.tolist() for g in identical_groups(images)] == [[0, 2, 5], [1, 4]]
    assert identical_groups(images_of([1, 2, 3])) == []
    # a copy in another layout (non-contiguous view) is still a copy
    assert [g.tolist() for g in identical_groups(np.concatenate([images, images])[::2])] == [[0, 1, 6], [2, 4]]


def test_keep_together():
    splits = np.array(["val", "train", "test", "", "test", "val", "test"], dtype=object)
    groups = [np.array([0, 1, 3]),  # val + train + unused → train, the unused one stays out
              np.array([2, 5]),  # test + val → the first member's split (test)
              np.array([4, 6])]  # both test already
    assert keep_together(splits, groups).tolist() == ["train", "train", "test", "", "test", "test", "test"]
    assert splits.tolist()[0] == "val"  # the input is not changed


def test_keep_together_leaves_a_group_of_unused_images_unused():
    splits = np.array(["", "train", "", "val"], dtype=object)
    groups = [np.array([0, 2]),  # no member drew a split (digits leaves images out): nothing to keep together
              np.array([1, 3])]
    assert keep_together(splits, groups).tolist() == ["", "train", "", "train"]


def test_identical_summary_counts_evaluation_copies_of_train_images():
    labels = np.array([0, 0, 1, 2, 2, 2])
    splits = np.array(["train", "test", "train", "val", "test", "train"], dtype=object)
    ids = np.array([f"s{i}" for i in range(6)], dtype=object)
    groups = [np.array([0, 1, 2]), np.array([3, 4])]
    summary = identical_summary(groups, labels, splits, ids, ["a", "b", "c"])
    # group 1 has different labels and one test image in train; group 2 never touches train
    assert summary == {"groups": 2, "images": 5, "with_different_labels": 1,
                       "examples": [{"s0": "a", "s1": "a", "s2": "b"}], "evaluation_images_in_train": 1}
    many = [np.array([0, 2])] * (EXAMPLES + 2)
    assert len(identical_summary(many, labels, splits, ids, ["a", "b", "c"])["examples"]) == EXAMPLES


def test_conflicting_copies_flags_every_copy_of_a_group_with_two_labels():
    images = images_of([5, 5, 6, 6, 6, 7])
    labels = np.array([0, 1, 2, 2, 2, 0])
    assert conflicting_copies(images, labels).tolist() == [True, True, False, False, False, False]
    assert not conflicting_copies(images_of([1, 2]), np.array([0, 1])).any()
