"""Per-class clean-sample rules (alr_core.lnl.class_rules) on hand-made arrays: each rule keeps
what it should, decides inside each observed class, and keeps every observed class."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from alr_core.common.errors import AlrError
from alr_core.lnl.class_rules import (
    CLASS_RULES,
    MIN_GMM_SAMPLES,
    above_chance,
    class_gmm,
    class_keep,
    confident_learning,
    estimated_clean_counts,
    gmm_low_component,
    keep_one_per_class,
    noise_quota,
    prototype,
    prototype_distance,
)
from alr_core.lnl.selection import kept_mask, num_to_keep

# class 0: 40 samples, 30 clean (loss ≈ 0.1) then 10 noisy (≈ 2.0); class 1 (rare, harder): 10
# samples, 6 clean (≈ 2.5, above every loss of class 0) then 4 noisy (≈ 5.0)
LABELS = np.repeat([0, 1], [40, 10])
CLEAN = np.r_[np.ones(30, bool), np.zeros(10, bool), np.ones(6, bool), np.zeros(4, bool)]
LOSSES = np.r_[np.linspace(0.05, 0.15, 30), np.linspace(1.8, 2.2, 10),
               np.linspace(2.4, 2.6, 6), np.linspace(4.9, 5.1, 4)]  # fmt: skip


def test_gmm_low_component_finds_the_low_mode():
    scores = np.r_[np.linspace(0.0, 0.2, 8), np.linspace(3.0, 3.4, 5)]
    assert gmm_low_component(scores).tolist() == [True] * 8 + [False] * 5
    # the order of the samples does not matter
    order = np.random.default_rng(0).permutation(13)
    assert gmm_low_component(scores[order]).tolist() == (np.arange(13) < 8)[order].tolist()


@pytest.mark.parametrize(
    "scores",
    [np.linspace(0.0, 1.0, MIN_GMM_SAMPLES - 1),  # too few samples to split
     np.full(10, 0.7)],  # constant: nothing to split
)
def test_gmm_low_component_degenerate_is_none(scores):
    assert gmm_low_component(scores) is None


def test_gmm_low_component_splits_a_bimodal_class_of_exactly_min_gmm_samples():
    # MIN_GMM_SAMPLES is the smallest class a mixture is fitted to, not the largest it skips
    assert MIN_GMM_SAMPLES == 6
    scores = np.r_[0.0, 0.1, 0.2, 3.0, 3.1, 3.2]
    assert gmm_low_component(scores).tolist() == [True] * 3 + [False] * 3


def test_gmm_low_component_keeps_a_prefix_when_the_broad_component_owns_both_tails():
    # the lower-mean component is broad (it fits 0.05 and 3.0) around a tight middle mode at
    # 0.9: its posterior exceeds 0.5 at both ends, yet the 3.0 losses must not be kept
    scores = np.r_[np.full(20, 0.05), np.full(12, 0.9), np.full(6, 3.0)]
    assert gmm_low_component(scores).tolist() == [True] * 20 + [False] * 18
    # (loss, VOG): the 3.0 samples are also above the dropped middle ones in VOG
    vog = np.r_[np.full(20, 0.1), np.full(12, 0.5), np.full(6, 1.0)]
    assert gmm_low_component(np.c_[scores, vog]).tolist() == [True] * 20 + [False] * 18


def test_gmm_low_component_keeps_a_low_tail_the_broad_high_component_owns():
    # a loss of 0.0 below a tight clean mode at 1.0: the broad high component (3 to 9) is
    # denser there than the tight one, but a loss below the clean mode is kept
    scores = np.r_[0.0, np.linspace(0.99, 1.01, 20), np.linspace(3.0, 9.0, 10)]
    assert gmm_low_component(scores).tolist() == [True] * 21 + [False] * 10


def test_gmm_low_component_leaves_an_ordinary_two_mode_split_as_it_was():
    # clean losses 0.01-0.26 (gamma), noisy ones 1.7-3.6: the low component's posterior was a
    # prefix already, and the split is the same
    rng = np.random.default_rng(0)
    scores = np.r_[rng.gamma(2, 0.05, 40), rng.normal(2.5, 0.6, 15)]
    assert gmm_low_component(scores).tolist() == [True] * 40 + [False] * 15
    pairs = np.c_[scores, np.r_[rng.normal(0.2, 0.05, 40), rng.normal(0.8, 0.2, 15)]]
    assert gmm_low_component(pairs).tolist() == [True] * 40 + [False] * 15


def test_gmm_low_component_on_two_columns_is_closed_downwards():
    # the two-tails layout of (loss, VOG) with noise in both columns; the low component's
    # posterior alone would keep the six (3.0, 1.0) samples, each above dropped ones in both
    rng = np.random.default_rng(0)
    scores = np.r_[rng.normal([0.05, 0.1], 0.05, (20, 2)), rng.normal([0.9, 0.5], 0.05, (12, 2)),
                   rng.normal([3.0, 1.0], 0.15, (6, 2))]  # fmt: skip
    keep = gmm_low_component(scores)
    assert keep.tolist() == [True] * 20 + [False] * 18
    at_most = (scores[:, None, :] <= scores[None, :, :]).all(axis=2)  # [i, j]: i ≤ j in both
    # no dropped sample lies below a kept one in both columns
    assert not (at_most & ~keep[:, None] & keep[None, :]).any()


def test_gmm_low_component_on_two_columns_drops_only_samples_high_in_both():
    # 20 clean samples (loss 0.05-0.15) and 8 noisy ones (loss 2.9-3.1) whose VOG (0.2-0.8) lies
    # inside the clean samples' (0.1-0.9): a clean sample above a noisy one in VOG alone is
    # still below it in loss, so it is kept
    loss = np.r_[np.linspace(0.05, 0.15, 20), np.linspace(2.9, 3.1, 8)]
    vog = np.r_[np.linspace(0.1, 0.9, 20), np.linspace(0.2, 0.8, 8)]
    assert gmm_low_component(np.c_[loss, vog]).tolist() == [True] * 20 + [False] * 8


def test_gmm_low_component_on_two_columns_is_degenerate_only_when_the_loss_is_constant():
    # a constant VOG column is no reason to keep the class whole: the loss still splits it
    loss = np.r_[np.linspace(0.1, 0.3, 12), np.linspace(2.0, 2.6, 6)]
    constant = np.full(18, 0.4)
    assert gmm_low_component(np.c_[loss, constant]).tolist() == [True] * 12 + [False] * 6
    # a constant loss (column 0) is degenerate, whatever the VOG
    assert gmm_low_component(np.c_[constant, loss]) is None


def test_gmm_low_component_does_not_depend_on_the_units_of_a_column():
    # columns are z-scored first: losses in nats and VOG in units a thousand times smaller
    # split as they do when either column is rescaled
    rng = np.random.default_rng(0)
    loss = np.r_[rng.normal(0.2, 0.05, 20), rng.normal(2.0, 0.3, 8)]
    vog = np.r_[rng.normal(1e-3, 2e-4, 20), rng.normal(3e-3, 5e-4, 8)]
    for loss_unit, vog_unit in ((1.0, 1.0), (1e-3, 1.0), (1.0, 1e3), (1e3, 1e-3)):
        keep = gmm_low_component(np.c_[loss * loss_unit, vog * vog_unit])
        assert keep is not None and keep.tolist() == [True] * 20 + [False] * 8, (loss_unit, vog_unit)


def test_gmm_low_component_that_would_keep_every_sample_is_degenerate():
    # the mixture collapses onto one component that owns all six samples (the other's weight is
    # ≈ 2e-7): the high set H is empty and nothing would be dropped, so the split is degenerate
    # (None) and class_gmm lists the class as kept whole
    scores = np.array([1.743, 0.03, 0.788, 0.713, 3.362, 0.057])
    assert gmm_low_component(scores) is None
    keep, whole = class_gmm(scores, np.zeros(6, dtype=np.int64))
    assert keep.all() and whole == [0]


def test_gmm_low_component_of_a_class_the_fit_leaves_in_one_component_is_degenerate():
    # a small clean class: the fit gives one component almost no weight and assigns every sample to
    # the other; the ghost's mean (z ≈ -0.4) would have cut the class between 0.08 and 0.085,
    # dropping 5 of its 8 samples. Tied scores collapse the same way (the 3.0s were dropped)
    small_clean = np.array([0.003, 0.01, 0.08, 0.085, 0.337, 0.14, 0.202, 0.126])
    tied = np.array([2.0, 2.0, 3.0, 3.0, 1.0, 2.0, 1.0])
    for scores in (small_clean, tied):
        assert gmm_low_component(scores) is None
        keep, whole = class_gmm(np.r_[scores, LOSSES], np.r_[np.full(len(scores), 9), LABELS])
        assert keep[: len(scores)].all() and 9 in whole
        assert keep[len(scores) :].tolist() == class_gmm(LOSSES, LABELS)[0].tolist()  # the other classes as alone


def test_class_gmm_keeps_the_clean_mode_of_every_class():
    keep, whole = class_gmm(LOSSES, LABELS)
    assert keep.tolist() == CLEAN.tolist()
    assert whole == []
    # one global small-loss cut at the true noise share drops every clean sample of the rare
    # class (their losses sit above all of class 0's) and keeps the noisy class-0 ones instead
    rate = 1 - CLEAN.mean()
    glob = kept_mask(torch.tensor(LOSSES), torch.tensor(LABELS), rate).numpy()
    assert not glob[40:46].any() and glob[30:36].all()


def test_class_gmm_on_loss_and_vog_pairs():
    # the same losses; VOG low for the clean samples, high for the noisy ones
    vog = np.where(CLEAN, 0.1, 1.0) + np.linspace(0, 0.05, len(LABELS))
    keep, whole = class_gmm(LOSSES, LABELS, vog)
    assert keep.tolist() == CLEAN.tolist() and whole == []


def test_class_gmm_keeps_a_degenerate_class_whole_and_says_so():
    labels = np.r_[LABELS, [2, 2, 2]]
    losses = np.r_[LOSSES, [0.3, 2.5, 4.0]]  # class 2 has 3 samples: too few for a mixture
    keep, whole = class_gmm(losses, labels)
    assert keep[-3:].all() and whole == [2]
    assert keep[:50].tolist() == CLEAN.tolist()


def test_prototype_distance_is_cosine_distance_to_the_class_mean_direction():
    features = np.array([[2.0, 0.0], [0.0, 3.0], [5.0, 5.0]])
    labels = np.array([0, 0, 1])
    # class 0: unit vectors (1, 0) and (0, 1), prototype (1, 1)/√2; class 1 alone: distance 0
    expected = [1 - 1 / np.sqrt(2), 1 - 1 / np.sqrt(2), 0.0]
    np.testing.assert_allclose(prototype_distance(features, labels), expected, atol=1e-12)


def test_prototype_keeps_the_samples_near_their_class_direction():
    rng = np.random.default_rng(0)

    def around(direction, n):
        return np.asarray(direction, float) + rng.normal(0, 0.05, (n, 2))

    # class 0: 8 samples along x, then 3 flipped in from class 1 (along y); class 1 the reverse
    features = np.r_[around([1, 0], 8), around([0, 1], 3), around([1, 0], 3), around([0, 1], 8)]
    labels = np.repeat([0, 1], [11, 11])
    keep, whole = prototype(features, labels)
    assert keep.tolist() == [True] * 8 + [False] * 3 + [False] * 3 + [True] * 8
    assert whole == []


# Hand confident joint: class 0 (6 samples) has 4 confident class-0 rows and 2 rows that look
# like class 1; class 1 (4 samples) all look like class 1. Thresholds (mean self-confidence):
# t0 = (4·0.9 + 2·0.1)/6 ≈ 0.63, t1 = 0.9 ⇒ confident joint [[4, 2], [0, 4]], already calibrated.
HAND_LABELS = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1])
HAND_PROBS = np.array([[0.9, 0.1]] * 4 + [[0.1, 0.9]] * 2 + [[0.1, 0.9]] * 4)


def test_estimated_clean_counts_is_the_confident_joint_diagonal():
    np.testing.assert_allclose(estimated_clean_counts(HAND_PROBS, HAND_LABELS), [4.0, 4.0])


def test_estimated_clean_counts_ignores_classes_nobody_is_labelled_with():
    probs = np.c_[HAND_PROBS * 0.9, np.full(10, 0.1)]  # a third class, never observed
    np.testing.assert_allclose(estimated_clean_counts(probs, HAND_LABELS), [4.0, 4.0, 0.0])


def test_noise_quota_keeps_the_estimated_clean_count_by_smallest_loss():
    losses = np.array([0.5, 0.1, 0.4, 0.2, 2.0, 0.3, 0.1, 0.2, 0.3, 0.4])
    keep, whole = noise_quota(losses, HAND_PROBS, HAND_LABELS)
    # class 0 keeps its 4 smallest losses (0.1, 0.2, 0.3, 0.4); class 1 all 4 (nothing dropped)
    assert keep.tolist() == [False, True, True, True, False, True, True, True, True, True]
    assert whole == [1]


def test_estimated_clean_counts_renormalise_over_the_observed_classes():
    # mass on a class nobody is labelled with, differing per row, is spread back over the
    # observed classes: the estimate is that of the renormalised rows
    rng = np.random.default_rng(3)
    for _ in range(5):
        labels = rng.integers(0, 3, 12)
        probs = rng.dirichlet(np.full(3, 0.7), 12)
        mass = rng.uniform(0.0, 0.8, 12)
        with_absent = np.c_[probs * (1 - mass)[:, None], mass]  # class 3 is never observed
        expected = np.r_[estimated_clean_counts(probs, labels), 0.0]
        np.testing.assert_allclose(estimated_clean_counts(with_absent, labels), expected)
        keep, whole = confident_learning(with_absent, labels)
        keep_renormalised, whole_renormalised = confident_learning(probs, labels)
        assert keep.tolist() == keep_renormalised.tolist() and whole == whole_renormalised


def test_noise_quota_keeps_one_sample_of_a_class_estimated_to_have_no_clean_one():
    # class 0's two samples both point at other classes: its estimated clean count is 0, and
    # the quota keeps its smallest-loss sample all the same (every observed class keeps one)
    labels = np.array([0, 0, 1, 2, 2, 2])
    probs = np.array([[0.3, 0.7, 0.0], [0.0, 0.5, 0.5], [0.1, 0.7, 0.2],
                      [0.8, 0.1, 0.1], [0.0, 0.1, 0.9], [0.8, 0.0, 0.2]])  # fmt: skip
    np.testing.assert_allclose(estimated_clean_counts(probs, labels), [0.0, 1.0, 1.0])
    keep, whole = noise_quota(np.array([0.9, 0.6, 0.2, 0.3, 0.1, 0.5]), probs, labels)
    assert keep.tolist() == [False, True, True, False, True, False]
    assert whole == [1]


def test_confident_learning_drops_what_cleanlab_flags():
    keep, whole = confident_learning(HAND_PROBS, HAND_LABELS)
    assert keep.tolist() == [True] * 4 + [False] * 2 + [True] * 4
    assert whole == [1]


def test_confident_learning_keeps_a_single_sample_class_whole_without_cleanlabs_warning():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2])
    probs = np.full((9, 3), 0.1) + 0.7 * np.eye(3)[[0, 0, 0, 1, 1, 1, 1, 0, 1]]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        keep, whole = confident_learning(probs, labels)
    assert [str(w.message) for w in caught] == []  # cleanlab warned "class: 2" once per call
    assert keep[8] and 2 in whole


def test_confident_learning_passes_cleanlabs_filter_on():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 90)
    probs = rng.dirichlet([1, 1, 1], 90)
    probs[np.arange(90), labels] += 0.2
    probs /= probs.sum(axis=1, keepdims=True)
    flags = {f: ~confident_learning(probs, labels, f)[0] for f in ("prune_by_noise_rate", "prune_by_class", "both")}
    assert (flags["prune_by_noise_rate"] == ~confident_learning(probs, labels)[0]).all()  # the default
    assert (flags["prune_by_class"] != flags["prune_by_noise_rate"]).sum() == 7  # the filters differ here
    # cleanlab's "both" flags only what both other filters flag
    assert (flags["both"] == (flags["prune_by_class"] & flags["prune_by_noise_rate"])).all()
    assert flags["both"].sum() == 34


def test_keep_one_per_class_gives_an_emptied_class_back_its_highest_scoring_sample():
    # class 0 lost all three samples: its best (score 0.9, index 1) comes back; class 1 kept
    # sample 3 and gets nothing added; class 2 keeps its one sample and is kept whole
    keep = np.array([False, False, False, True, False, True])
    scores = np.array([0.2, 0.9, 0.5, 0.3, 0.8, 0.1])
    labels = np.array([0, 0, 0, 1, 1, 2])
    restored, whole = keep_one_per_class(keep, scores, labels)
    assert restored.tolist() == [False, True, False, True, False, True]
    assert whole == [2]
    assert keep.tolist() == [False, False, False, True, False, True]  # the input is not changed


@pytest.mark.parametrize("rule", CLASS_RULES)
def test_every_observed_class_keeps_a_sample(rule):
    rng = np.random.default_rng(1)
    labels = np.r_[np.repeat([0, 1, 3], [30, 12, 2])]  # class 2 unobserved, class 3 tiny
    # the network is sure every sample is class 0, so the small classes look noisy
    probs = np.tile([0.97, 0.01, 0.01, 0.01], (len(labels), 1))
    losses = -np.log(probs[np.arange(len(labels)), labels]) + rng.uniform(0, 0.1, len(labels))
    features = rng.normal(size=(len(labels), 4))
    keep, _ = class_keep(rule, labels, losses, probs, features)
    assert keep.dtype == bool and keep.shape == labels.shape
    for cls in (0, 1, 3):
        assert keep[labels == cls].any(), cls


def test_class_keep_dispatches_and_rejects_unknown_rules():
    features = np.zeros((len(LABELS), 2))
    probs = np.full((len(LABELS), 2), 0.5)
    assert class_keep("class_gmm", LABELS, LOSSES, probs, features)[0].tolist() == CLEAN.tolist()
    with pytest.raises(AlrError, match="unknown class rule 'loss'; valid: class_gmm"):
        class_keep("loss", LABELS, LOSSES, probs, features)


def probs_with_label_probability(labels, label_probability, num_classes):
    """(N, K) softmax rows giving each observed label ``label_probability`` and spreading the rest evenly."""
    rest = (1 - label_probability) / (num_classes - 1)
    probs = np.repeat(rest[:, None], num_classes, axis=1)
    probs[np.arange(len(labels)), labels] = label_probability
    return probs


def test_above_chance_compares_the_label_probability_with_one_over_k():
    labels = np.array([0, 1, 2, 3])
    probs = probs_with_label_probability(labels, np.array([0.9, 0.26, 0.25, 0.1]), 4)
    assert above_chance(probs, labels).tolist() == [True, True, False, False]


def test_keep_above_chance_restores_the_hard_clean_samples_a_mixture_drops():
    # one mostly clean class, K = 4 (chance 0.25): 20 easy clean samples (p(label) 0.90-0.99),
    # 12 hard clean ones (0.40-0.80: above chance) and 6 noisy ones (0.02-0.10: the network
    # names another class)
    label_probability = np.r_[np.linspace(0.9, 0.99, 20), np.linspace(0.4, 0.8, 12), np.linspace(0.02, 0.1, 6)]
    labels = np.zeros(38, dtype=int)
    clean = np.arange(38) < 32
    probs = probs_with_label_probability(labels, label_probability, 4)
    losses = -np.log(label_probability)
    features = np.zeros((38, 2))
    plain, _ = class_keep("class_gmm", labels, losses, probs, features)
    assert plain.tolist() == (np.arange(38) < 20).tolist()  # the mixture splits easy from hard clean
    guarded, whole = class_keep("class_gmm", labels, losses, probs, features, keep_above_chance=True)
    assert guarded.tolist() == clean.tolist() and whole == []


def test_keep_counts_differ_from_a_per_class_forget_rate():
    """class_gmm is not class_aware in disguise: its keep count follows the data, not (1 − τ)."""
    keep, _ = class_gmm(LOSSES, LABELS)
    assert keep[LABELS == 1].sum() == 6 != num_to_keep(10, 0.2)
