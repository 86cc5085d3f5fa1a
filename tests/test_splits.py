"""Split rules: long-tailed train with balanced val/test, per-class stratified splits, and splits that keep
groups (patients, identical images) together."""

from __future__ import annotations

import numpy as np
import pytest

from alr_core.common.errors import AlrError
from alr_core.common.seeding import rng_for
from alr_core.data.splits import (SPLITS, evaluation_counts, group_ids, group_ranks, grouped_split, hash_ranks, hashed,
                                  long_tail_counts, long_tail_split, stratified_split)


def rng(seed=0):
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------- long_tail_counts


def test_long_tail_counts_digits_defaults():
    counts = long_tail_counts(10, 114, 10)
    assert counts.tolist() == [114, 88, 68, 53, 41, 32, 25, 19, 15, 11]
    assert np.issubdtype(counts.dtype, np.integer)
    # class 0 is the head, geometric decay, the tail is round(114 / 10) = round(11.4) = 11
    assert counts[0] == 114 and counts[-1] == 11
    assert (np.diff(counts) < 0).all()
    expected = [round(114 * 10 ** (-k / 9)) for k in range(10)]
    assert counts.tolist() == expected


@pytest.mark.parametrize(
    "args, expected",
    [
        ((5, 100, 4), [100, 71, 50, 35, 25]),
        ((2, 10, 1), [10, 10]),  # ratio 1: balanced
        ((3, 2, 100), [2, 1, 1]),  # never below 1
    ],
)
def test_long_tail_counts_other_shapes(args, expected):
    assert long_tail_counts(*args).tolist() == expected


def test_long_tail_counts_needs_two_classes():
    with pytest.raises(AlrError, match="at least 2 classes, got 1"):
        long_tail_counts(1, 10, 10)


# ----------------------------------------------------------------------------- long_tail_split


def labels_with_counts(counts, seed=1):
    labels = np.repeat(np.arange(len(counts)), counts)
    return np.random.default_rng(seed).permutation(labels)


def test_long_tail_split_counts_and_disjointness():
    sizes = [60, 50, 45, 40, 37]
    labels = labels_with_counts(sizes)
    split = long_tail_split(labels, val_per_class=5, test_per_class=7, imbalance_ratio=5, rng=rng())
    assert split.shape == labels.shape
    assert set(split) <= {"train", "val", "test", ""}
    # one split per image: the three masks never overlap and cover every used image
    masks = {name: split == name for name in SPLITS}
    assert not (masks["train"] & masks["val"]).any()
    assert not (masks["train"] & masks["test"]).any()
    assert not (masks["val"] & masks["test"]).any()
    # val and test balanced exactly
    for k in range(len(sizes)):
        assert (masks["val"] & (labels == k)).sum() == 5
        assert (masks["test"] & (labels == k)).sum() == 7
    # train follows long_tail_counts with the head set by the smallest class: 37 - 12 = 25
    train = np.bincount(labels[masks["train"]], minlength=len(sizes))
    assert train.tolist() == long_tail_counts(5, 25, 5).tolist() == [25, 17, 11, 7, 5]
    # the rest is unused
    assert (split == "").sum() == sum(sizes) - train.sum() - 12 * len(sizes)


def test_long_tail_split_on_digits_gives_the_documented_sizes():
    from sklearn.datasets import load_digits

    labels = load_digits().target
    split = long_tail_split(labels, 20, 40, 10, rng_for(0, "split"))
    train = np.bincount(labels[split == "train"], minlength=10)
    # the smallest digit class has 174 images: 174 - 20 - 40 = 114 is the head
    assert train.tolist() == [114, 88, 68, 53, 41, 32, 25, 19, 15, 11]
    assert (split == "val").sum() == 200 and (split == "test").sum() == 400


def test_long_tail_split_is_deterministic_per_seed():
    labels = labels_with_counts([30, 30, 30])
    a = long_tail_split(labels, 3, 4, 3, rng(5))
    b = long_tail_split(labels, 3, 4, 3, rng(5))
    c = long_tail_split(labels, 3, 4, 3, rng(6))
    assert (a == b).all()
    assert (a != c).any()
    # a different draw, the same sizes
    for name in SPLITS:
        assert (a == name).sum() == (c == name).sum()


@pytest.mark.parametrize("val, test", [(10, 10), (15, 10), (30, 1)])
def test_long_tail_split_error_when_val_and_test_leave_no_train(val, test):
    labels = labels_with_counts([40, 20, 30])
    with pytest.raises(AlrError) as info:
        long_tail_split(labels, val, test, 10, rng())
    message = str(info.value)
    assert f"data.val_per_class + data.test_per_class = {val + test}" in message
    assert "class 1, which has 20 images" in message


def test_long_tail_split_leaves_one_train_image_at_the_limit():
    labels = labels_with_counts([40, 21, 30])
    split = long_tail_split(labels, 10, 10, 10, rng())
    assert np.bincount(labels[split == "train"], minlength=3).tolist() == [1, 1, 1]


# ----------------------------------------------------------------------------- stratified_split


def per_class(split, labels, k):
    members = split[labels == k]
    return [(members == name).sum() for name in SPLITS]


def test_stratified_split_class_of_three_keeps_two_train():
    # n_test = min(floor(0.2*3 + 0.5), 2) = 1; n_val = min(floor(0.1*3 + 0.5), 3-1-1) = 0
    labels = np.array([0] * 3 + [1] * 100)
    split = stratified_split(labels, 0.1, 0.2, rng().permutation)
    assert per_class(split, labels, 0) == [2, 0, 1]
    assert per_class(split, labels, 1) == [70, 10, 20]


@pytest.mark.parametrize(
    "n, expected",
    [
        (1, [1, 0, 0]),
        (2, [2, 0, 0]),
        (3, [2, 0, 1]),
        (5, [3, 1, 1]),  # 0.1*5 = 0.5 rounds half up
        (20, [14, 2, 4]),
        (88, [61, 9, 18]),
        (207, [145, 21, 41]),
    ],
)
def test_stratified_split_per_class_rounding(n, expected):
    labels = np.zeros(n, dtype=np.int64)
    split = stratified_split(labels, 0.1, 0.2, rng().permutation)
    assert per_class(split, labels, 0) == expected


def test_stratified_split_large_fractions_never_empty_train():
    labels = np.repeat(np.arange(5), [1, 2, 3, 10, 5])
    split = stratified_split(labels, 0.45, 0.5, rng().permutation)
    for k in range(5):
        assert per_class(split, labels, k)[0] >= 1
    assert per_class(split, labels, 3) == [1, 4, 5]
    # n = 3: n_test = min(floor(1.5 + 0.5), 2) = 2, then n_val = min(1, 3 - 1 - 2) = 0
    assert per_class(split, labels, 2) == [1, 0, 2]
    assert per_class(split, labels, 1) == [1, 0, 1]
    assert per_class(split, labels, 0) == [1, 0, 0]
    # n = 5: 0.5 * 5 = 2.5 rounds half up to 3 (not to even), then n_val = min(2, 5 - 1 - 3) = 1
    assert per_class(split, labels, 4) == [1, 1, 3]


def test_stratified_split_fractions_per_class_and_determinism():
    labels = labels_with_counts([200, 50, 10])
    a = stratified_split(labels, 0.1, 0.2, rng(3).permutation)
    b = stratified_split(labels, 0.1, 0.2, rng(3).permutation)
    c = stratified_split(labels, 0.1, 0.2, rng(4).permutation)
    assert a.dtype == object and set(a) == {"train", "val", "test"}
    assert (a == b).all() and (a != c).any()
    assert per_class(a, labels, 0) == [140, 20, 40]
    assert per_class(a, labels, 1) == [35, 5, 10]
    assert per_class(a, labels, 2) == [7, 1, 2]


# ----------------------------------------------------------------------------- groups (patients)


def test_group_ids_name_groups_and_merge_linked_ones():
    names = np.array(["p1", "p2", "", "p1", "p3", "", "p4"], dtype=object)
    ids = group_ids(names, [])
    assert ids[0] == ids[3] and len(set(ids.tolist())) == 6  # p1 twice; each empty cell alone
    # an image of p2 identical to one of p3, and p3's to p4's: p2, p3 and p4 become one group
    linked = group_ids(names, [np.array([1, 4]), np.array([4, 6])])
    assert linked[1] == linked[4] == linked[6] and len(set(linked.tolist())) == 4
    # an identical pair of two ungrouped images joins them
    assert len(set(group_ids(names, [np.array([2, 5])]).tolist())) == 5


def test_group_ids_merge_whole_groups_through_a_link():
    # images 0 and 2 are identical: p1 (0, 1) and p2 (2, 3) become one group, image 3 included
    names = np.array(["p1", "p1", "p2", "p2"], dtype=object)
    assert group_ids(names, [np.array([0, 2])]).tolist() == [0, 0, 0, 0]


def test_grouped_split_offers_a_group_to_test_before_val():
    # 10 images of one class, val and test 2 each; a group of 2 fits either share and goes to
    # test, whatever the order; the group of 8 fits neither and stays in train
    labels = np.zeros(10, dtype=int)
    groups = np.r_[0, 0, np.ones(8, dtype=int)]
    assert evaluation_counts(np.bincount(labels), 0.2, 0.2).tolist() == [[2], [2]]
    for seed in range(3):
        split = grouped_split(labels, groups, 0.2, 0.2, np.random.default_rng(seed).permutation)
        assert split.tolist() == ["test"] * 2 + ["train"] * 8


def test_grouped_split_with_one_image_per_group_fills_the_shares_exactly():
    labels = np.repeat([0, 1, 2], [40, 20, 3])
    split = grouped_split(labels, np.arange(len(labels)), 0.1, 0.2, np.random.default_rng(0).permutation)
    expected = evaluation_counts(np.bincount(labels), 0.1, 0.2)
    assert expected.tolist() == [[4, 2, 0], [8, 4, 1]]  # val, test per class; class 2 keeps 2 train
    for k in range(3):
        assert [(split[labels == k] == s).sum() for s in ("val", "test")] == expected[:, k].tolist()


def test_grouped_split_keeps_groups_together_within_the_shares():
    rng = np.random.default_rng(1)
    groups = rng.integers(0, 60, 400)  # 60 patients, about 7 images each
    labels = (groups % 3 + (rng.random(400) < 0.2)) % 3  # mostly one class per patient
    split = grouped_split(labels, groups, 0.1, 0.2, np.random.default_rng(0).permutation)
    for g in np.unique(groups):
        assert len(set(split[groups == g])) == 1
    limits = evaluation_counts(np.bincount(labels), 0.1, 0.2)
    for k in range(3):
        counts = [(split[labels == k] == s).sum() for s in ("val", "test")]
        assert counts[0] <= limits[0, k] and counts[1] <= limits[1, k] and (split[labels == k] == "train").any()
    assert (split == "test").sum() >= 0.5 * limits[1].sum()  # whole groups leave test short, not empty
    again = grouped_split(labels, groups, 0.1, 0.2, np.random.default_rng(0).permutation)
    assert again.tolist() == split.tolist()


# ----------------------------------------------------------------------------- hashed draw order


def ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}/img{i:03d}.png" for i in range(n)]


def moved(before: dict, after: dict) -> int:
    """Images in both id → split maps whose split differs."""
    return sum(before[i] != after[i] for i in before.keys() & after.keys())


def test_hash_ranks_are_a_keyed_hash_of_each_text_alone():
    texts = ids("a", 50)
    ranks = hash_ranks(texts, 0)
    assert ranks.dtype == np.uint64 and len(set(ranks.tolist())) == 50
    assert hash_ranks(texts[::-1] + ["new"], 0)[:50][::-1].tolist() == ranks.tolist()  # order and company aside
    assert (hash_ranks(texts, 1) != ranks).all()  # another split seed, another order
    # BLAKE2b-64 keyed by the seed's 8 bytes: pinned, so that a project's splits survive an upgrade
    assert hash_ranks(["benign/0001.png"], 0).tolist() == [HASH_OF_0001]
    order = hashed(ranks)
    assert order(np.arange(50)).tolist() == np.argsort(ranks).tolist()
    assert order(np.array([7, 3])).tolist() == sorted([7, 3], key=lambda i: ranks[i])


HASH_OF_0001 = int.from_bytes(__import__("hashlib").blake2b(b"benign/0001.png", key=bytes(8), digest_size=8).digest(),
                              "little")


def split_of(labels, sample_ids, order_name):
    order = hashed(hash_ranks(sample_ids, 0)) if order_name == "hash" else rng().permutation
    return dict(zip(sample_ids, stratified_split(labels, 0.1, 0.2, order)))


@pytest.mark.parametrize("added_to", [0, 1])
def test_hashed_splits_move_few_images_when_images_are_added_or_removed(added_to):
    """A team adds images to its folder: with the hash order each class's split moves at the
    val/test/train boundaries alone (the rounding of the fractions), whatever class grew."""
    counts = [120, 60, 30]
    sample_ids = [i for k, n in enumerate(counts) for i in ids(f"c{k}", n)]
    labels = np.repeat(np.arange(3), counts)
    before = split_of(labels, sample_ids, "hash")
    grown = sample_ids + ids(f"c{added_to}", counts[added_to] + 6)[counts[added_to]:]
    after = split_of(np.r_[labels, np.full(6, added_to)], grown, "hash")
    assert moved(before, after) <= 2 * 2  # at most two boundaries per val and test
    assert sum(before[i] != after[i] for i in sample_ids if not i.startswith(f"c{added_to}/")) == 0
    fewer = [i for i in sample_ids if i != "c2/img007.png"]
    assert moved(before, split_of(np.delete(labels, sample_ids.index("c2/img007.png")), fewer, "hash")) <= 2
    # the permutation redraws the class that grew and every class after it
    shuffled = moved(split_of(labels, sample_ids, "shuffle"),
                     split_of(np.r_[labels, np.full(6, added_to)], grown, "shuffle"))
    assert shuffled > 10


def test_hashed_groups_rank_by_name_so_a_patients_new_image_moves_no_one():
    names = np.array([f"p{i // 3:02d}" for i in range(150)], dtype=object)  # 50 patients of 3 images
    labels = np.array([hash_ranks([n], 7)[0] % 2 for n in names], dtype=np.int64)  # one class per patient
    sample_ids = np.array(ids("x", 150), dtype=object)

    def split(names, labels, sample_ids):
        keys = np.where(names == "", sample_ids, names)
        groups = group_ids(names, [])
        return grouped_split(labels, groups, 0.1, 0.2, hashed(group_ranks(hash_ranks(keys, 0), groups)))

    before = split(names, labels, sample_ids)
    for g in np.unique(names):
        assert len(set(before[names == g])) == 1
    # one more image of a test patient: the patient stays in test, and so does everyone else
    test_patient = names[before == "test"][0]
    last = np.flatnonzero(names == test_patient)[-1]
    after = split(np.append(names, test_patient), np.append(labels, labels[last]), np.append(sample_ids, "x/new.png"))
    assert after[-1] == "test" and moved(dict(enumerate(before)), dict(enumerate(after[:-1]))) == 0


def test_group_ranks_take_the_lowest_rank_of_each_group():
    ranks = np.array([5, 3, 9, 1], dtype=np.uint64)
    assert group_ranks(ranks, np.array([2, 2, 0, 0])).tolist() == [1, 3]  # groups in np.unique order: 0, 2


def test_grouped_split_deals_the_groups_in_the_draw_order():
    labels = np.zeros(20, dtype=np.int64)  # 20 groups of one image: 2 val, 4 test
    groups = np.arange(20)
    forward = grouped_split(labels, groups, 0.1, 0.2, lambda indices: indices)
    backward = grouped_split(labels, groups, 0.1, 0.2, lambda indices: indices[::-1])
    assert forward[:6].tolist() == ["test"] * 4 + ["val"] * 2 and backward[-6:].tolist() == ["val"] * 2 + ["test"] * 4


def test_hash_ranks_of_non_ascii_ids_hash_their_utf8():
    assert hash_ranks(["é.png"], 0).tolist() != hash_ranks(["è.png"], 0).tolist()
    expected = __import__("hashlib").blake2b("é.png".encode(), key=(2**32 - 1).to_bytes(8, "little"), digest_size=8)
    assert hash_ranks(["é.png"], 2**32 - 1).tolist() == [int.from_bytes(expected.digest(), "little")]
