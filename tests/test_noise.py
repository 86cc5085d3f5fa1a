"""Label-noise injection: realised rates, flip targets, kept classes, determinism, summaries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alr_core.common.errors import AlrError
from alr_core.common.params import NoiseParams
from alr_core.common.seeding import rng_for
from alr_core.data.noise import inject_noise, kept_clean_text, noise_summary, noisy_label_table, transition_counts

N = 20000
K = 5
TOLERANCE = 0.015  # about 4 standard deviations of a realised rate at N = 20000


@pytest.fixture(scope="module")
def labels():
    return np.random.default_rng(123).permutation(np.arange(N) % K)


def noisy(labels, noise_type, rate, keep=(), seed=0, num_classes=K):
    return inject_noise(labels, num_classes, noise_type, rate, list(keep), np.random.default_rng(seed))


# ----------------------------------------------------------------------------- symmetric


@pytest.mark.parametrize("rate", [0.2, 0.4, 0.6])
def test_symmetric_rate_and_uniform_targets(labels, rate):
    observed = noisy(labels, "symmetric", rate)
    assert observed.dtype == np.int64 and observed.shape == labels.shape
    assert observed.min() >= 0 and observed.max() < K
    assert abs((observed != labels).mean() - rate) < TOLERANCE
    matrix = transition_counts(labels, observed, K)
    for k in range(K):
        row = matrix[k]
        assert abs(1 - row[k] / row.sum() - rate) < 2 * TOLERANCE  # per class, N/K samples
        others = np.delete(row, k)
        # uniform over the K - 1 other classes: each share within 0.05 of 1/4, and a
        # chi-square statistic (3 degrees of freedom) far below the 1e-4 tail value 21.1
        shares = others / others.sum()
        assert np.abs(shares - 1 / (K - 1)).max() < 0.05
        expected = others.sum() / (K - 1)
        assert ((others - expected) ** 2 / expected).sum() < 21.1


def test_symmetric_never_flips_to_the_same_class(labels):
    # at rate 0.79 (just under the largest learnable 4/5) most labels are drawn a target; if a
    # target could be the label's own class (chance 1/K), the realised rate would be 0.79 * 4/5 = 0.63
    observed = noisy(labels, "symmetric", 0.79, seed=4)
    assert abs((observed != labels).mean() - 0.79) < TOLERANCE


def test_symmetric_with_two_classes_always_flips_to_the_other():
    labels = np.arange(1000) % 2
    observed = noisy(labels, "symmetric", 0.45, num_classes=2)
    flipped = observed != labels
    assert (observed[flipped] == 1 - labels[flipped]).all()
    assert abs(flipped.mean() - 0.45) < 0.05


@pytest.mark.parametrize(
    "noise_type, rate, num_classes, limit",
    [("symmetric", 0.5, 2, "0.5"), ("symmetric", 0.6, 2, "0.5"), ("symmetric", 0.8, 5, "0.8"),
     ("pairflip", 0.5, 5, "0.5"), ("pairflip", 0.7, 3, "0.5")],
)
def test_rates_that_leave_the_true_label_a_minority_are_refused(noise_type, rate, num_classes, limit):
    with pytest.raises(AlrError) as info:
        noisy(np.arange(10) % num_classes, noise_type, rate, num_classes=num_classes)
    message = str(info.value)
    assert f"noise.rate is {rate} with {noise_type} noise on K = {num_classes} classes" in message
    assert f"Use a rate below {limit}" in message


def test_the_limit_counts_the_classes_the_noise_acts_on():
    # with class 0 kept clean, classes 1 and 2 flip only into each other: at 0.6 class 1's
    # samples would carry label 2 more often than 1
    labels = np.arange(3000) % 3
    with pytest.raises(AlrError) as info:
        noisy(labels, "symmetric", 0.6, num_classes=3, keep=[0])
    assert str(info.value).startswith("noise.rate is 0.6 with symmetric noise on K = 2 classes outside "
                                      "noise.keep_clean_classes; at rate ≥ 0.5 the true label")  # fmt: skip
    observed = noisy(labels, "symmetric", 0.45, num_classes=3, keep=[0])
    assert (observed[labels == 0] == 0).all()
    assert np.bincount(observed[labels == 1], minlength=3)[1] > np.bincount(observed[labels == 1], minlength=3)[2]


def test_rates_just_below_the_limit_are_accepted():
    assert noisy(np.arange(10) % 2, "symmetric", 0.49, num_classes=2).shape == (10,)
    assert noisy(np.arange(10) % 3, "symmetric", 0.66, num_classes=3).shape == (10,)
    assert noisy(np.arange(10) % 3, "pairflip", 0.49, num_classes=3).shape == (10,)


def test_symmetric_keeps_clean_classes_untouched_and_never_targets_them(labels):
    keep = [0, 3]
    observed = noisy(labels, "symmetric", 0.4, keep=keep)
    kept = np.isin(labels, keep)
    assert (observed[kept] == labels[kept]).all()
    # no other class is ever relabelled as a kept class
    assert not np.isin(observed[~kept], keep).any()
    # the other classes are corrupted at the rate, uniformly over the other allowed classes
    assert abs((observed[~kept] != labels[~kept]).mean() - 0.4) < 2 * TOLERANCE
    matrix = transition_counts(labels, observed, K)
    for k in (1, 2, 4):
        others = [matrix[k, j] for j in (1, 2, 4) if j != k]
        assert abs(others[0] / sum(others) - 0.5) < 0.05


# ----------------------------------------------------------------------------- pairflip


@pytest.mark.parametrize("rate", [0.2, 0.45])
def test_pairflip_flips_k_to_next_class_exactly(labels, rate):
    observed = noisy(labels, "pairflip", rate)
    flipped = observed != labels
    assert (observed[flipped] == (labels[flipped] + 1) % K).all()
    assert abs(flipped.mean() - rate) < TOLERANCE
    matrix = transition_counts(labels, observed, K)
    off_pair = matrix.copy()
    for k in range(K):
        off_pair[k, k] = 0
        off_pair[k, (k + 1) % K] = 0
    assert off_pair.sum() == 0
    assert matrix[K - 1, 0] > 0  # the last class wraps round to class 0


def test_pairflip_keeps_clean_classes_and_their_predecessor(labels):
    observed = noisy(labels, "pairflip", 0.4, keep=[2])
    # class 2 is kept; class 1 would flip into 2, so it stays clean too
    for k in (1, 2):
        assert (observed[labels == k] == k).all()
    assert not ((observed == 2) & (labels != 2)).any()
    for k in (0, 3, 4):
        members = labels == k
        assert abs((observed[members] != k).mean() - 0.4) < 2 * TOLERANCE
    assert ((observed == 0) & (labels == 4)).sum() > 0


def test_pairflip_that_could_flip_nothing_is_refused(labels):
    """Keeping every other class of 4 clean leaves no class whose successor is outside the kept
    ones: the noise would change no label (symmetric noise refuses the like)."""
    with pytest.raises(AlrError, match=r"with noise.keep_clean_classes \[1, 3\] no class is outside it together "
                                       "with its successor, so no label would change"):  # fmt: skip
        noisy(np.arange(12) % 4, "pairflip", 0.4, keep=[1, 3], num_classes=4)
    assert (noisy(np.arange(12) % 4, "pairflip", 0.4, keep=[1], num_classes=4) != np.arange(12) % 4).any()


# ----------------------------------------------------------------------------- none, determinism, errors


def test_none_and_zero_rate_return_unchanged_copies(labels):
    for noise_type, rate in [("none", 0.4), ("symmetric", 0.0), ("pairflip", 0.0)]:
        observed = noisy(labels, noise_type, rate)
        assert (observed == labels).all()
        assert observed is not labels


def test_zero_rate_is_no_noise_whatever_the_keep_clean_classes(labels):
    # at rate 0 nothing flips, so a keep-clean list that would leave no target (symmetric: fewer than
    # 2 classes outside it; pair-flip: no class outside it with its successor) is not refused
    for noise_type in ("symmetric", "pairflip"):
        observed = noisy(labels, noise_type, 0.0, keep=list(range(K)))
        assert (observed == labels).all() and observed is not labels


@pytest.mark.parametrize("noise_type", ["symmetric", "pairflip"])
def test_same_seed_same_draw_other_seed_other_draw(labels, noise_type):
    a = noisy(labels, noise_type, 0.3, seed=11)
    b = noisy(labels, noise_type, 0.3, seed=11)
    c = noisy(labels, noise_type, 0.3, seed=12)
    assert (a == b).all()
    assert (a != c).sum() > 1000


def test_seeding_streams_are_reproducible_and_independent():
    assert rng_for(3, "noise").random(4).tolist() == rng_for(3, "noise").random(4).tolist()
    assert rng_for(3, "noise").random(4).tolist() != rng_for(4, "noise").random(4).tolist()
    assert rng_for(3, "noise").random(4).tolist() != rng_for(3, "split").random(4).tolist()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"rate": 1.0}, "noise.rate is 1.0; valid range: [0, 1)"),
        ({"rate": -0.1}, "noise.rate is -0.1; valid range: [0, 1)"),
        ({"keep": [5]}, "noise.keep_clean_classes lists 5; valid classes are 0..4"),
        ({"keep": [-1]}, "noise.keep_clean_classes lists -1; valid classes are 0..4"),
        ({"keep": [0, 1, 2, 3]}, "symmetric noise needs at least 2 classes outside noise.keep_clean_classes"),
        ({"noise_type": "gaussian"}, "noise.type is 'gaussian'; valid: symmetric | pairflip | none"),
    ],
)
def test_bad_noise_arguments(kwargs, message):
    args = {"noise_type": "symmetric", "rate": 0.3, "keep": ()} | kwargs
    with pytest.raises(AlrError) as info:
        noisy(np.arange(10) % K, args["noise_type"], args["rate"], keep=args["keep"])
    assert str(info.value) == message


def test_keep_clean_classes_checked_even_without_noise():
    with pytest.raises(AlrError, match="lists 7"):
        noisy(np.arange(10) % K, "none", 0.0, keep=[7])


# ----------------------------------------------------------------------------- summaries


TRUE = np.array([0, 0, 1, 1, 2, 2])
OBSERVED = np.array([0, 1, 1, 1, 2, 0])


def test_transition_counts_hand_example():
    matrix = transition_counts(TRUE, OBSERVED, 3)
    assert matrix.dtype == np.int64
    assert matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]


def test_noise_summary_hand_example():
    summary = noise_summary(TRUE, OBSERVED, ["a", "b", "c", "d"])
    assert summary == {
        "num_train": 6,
        "num_corrupted": 2,
        "realised_rate": 2 / 6,
        "realised_rate_per_class": {"a": 0.5, "b": 0.0, "c": 0.5, "d": None},
        "observed_class_counts": {"a": 2, "b": 3, "c": 1, "d": 0},
        "noisy_share_per_observed_class": {"a": 0.5, "b": 1 / 3, "c": 0.0, "d": None},
        "transition_counts": [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]],
    }
    assert all(type(v) is int for v in summary["observed_class_counts"].values())


def samples_table():
    return pd.DataFrame(
        {
            "sample_id": pd.array([f"s{i}" for i in range(8)], dtype="string"),
            "split": ["train", "val", "train", "test", "train", "train", "val", "train"],
            "label": np.array([0, 1, 1, 2, 2, 0, 0, 1], dtype=np.int64),
            "class_name": ["a", "b", "b", "c", "c", "a", "a", "b"],
        }
    )


def test_noisy_label_table_symmetric():
    params = NoiseParams(type="symmetric", rate=0.5)
    table = noisy_label_table(samples_table(), 3, params, rng_for(0, "noise"))
    assert list(table.columns) == ["sample_id", "split", "true_label", "observed_label", "is_corrupted"]
    assert table["sample_id"].tolist() == ["s0", "s2", "s4", "s5", "s7"]  # train rows, in order
    assert (table["split"] == "train").all()
    assert str(table["true_label"].dtype) == "Int64"
    assert table["observed_label"].dtype == np.int64
    assert str(table["is_corrupted"].dtype) == "boolean"
    assert table["true_label"].tolist() == [0, 1, 2, 0, 1]
    corrupted = table["observed_label"].to_numpy() != table["true_label"].to_numpy(dtype=np.int64)
    assert table["is_corrupted"].to_numpy(dtype=bool).tolist() == corrupted.tolist()
    again = noisy_label_table(samples_table(), 3, params, rng_for(0, "noise"))
    pd.testing.assert_frame_equal(table, again)


def test_noisy_label_table_none_has_unknown_truth():
    table = noisy_label_table(samples_table(), 3, NoiseParams(type="none", rate=0.0), rng_for(0, "noise"))
    assert len(table) == 5
    assert table["true_label"].isna().all() and str(table["true_label"].dtype) == "Int64"
    assert table["is_corrupted"].isna().all() and str(table["is_corrupted"].dtype) == "boolean"
    assert table["observed_label"].tolist() == [0, 1, 2, 0, 1]


def test_noisy_label_table_rate_on_many_rows():
    n = 10000
    samples = pd.DataFrame(
        {
            "sample_id": [f"s{i}" for i in range(n)],
            "split": ["train"] * n,
            "label": np.arange(n) % 4,
            "class_name": ["x"] * n,
        }
    )
    table = noisy_label_table(samples, 4, NoiseParams(type="pairflip", rate=0.3), rng_for(1, "noise"))
    assert abs(table["is_corrupted"].mean() - 0.3) < 0.02


def test_kept_clean_text_names_each_class_and_notes_an_index_that_names_another():
    assert kept_clean_text([], ["a", "b"]) is None
    assert kept_clean_text([1, 0], ["benign", "malignant"]) == (
        "kept clean (noise.keep_clean_classes, class indices): 1 ('malignant'), 0 ('benign')")
    names = ["0", "1", "10", "11", "2"]  # folders sorted as text
    assert kept_clean_text([1, 2], names).endswith("2 ('10'); note: the class named '2' is index 4, not 2: the list "
                                                   "takes indices, in the order of data.class_names (or of the sorted "
                                                   "class folder names)")
    assert "note" not in kept_clean_text([0, 1], names)  # indices that are their own names
    # two indices that name other classes: the note names the first
    assert kept_clean_text([2, 3], names + ["3"]).endswith("note: the class named '2' is index 4, not 2: the list "
                                                           "takes indices, in the order of data.class_names (or of "
                                                           "the sorted class folder names)")


def test_transition_counts_refuses_observed_labels_out_of_range():
    # an observed -1 was counted in the last column
    with pytest.raises(AlrError, match=r"observed_labels holds values in \[-1, 0\]; expected \[0, 2\)"):
        transition_counts(np.array([0, 1]), np.array([0, -1]), 2)
