"""Query scores (alr_core.active.strategies) against values computed by hand from docs/method.md's formulas.

Every score is "higher = query first"; natural logarithms throughout.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import sklearn

from alr_core.active import strategies
from alr_core.active.labels import select_query


def h(*p: float) -> float:
    """Entropy of one distribution, in nats, written out term by term."""
    return -sum(x * math.log(x) for x in p if x > 0)


# ----------------------------------------------------------------------------- entropy


def test_entropy_hand_values():
    probs = np.array([
        [0.5, 0.25, 0.25],
        [1.0, 0.0, 0.0],
        [1 / 3, 1 / 3, 1 / 3],
        [0.7, 0.2, 0.1],
    ])  # fmt: skip
    expected = [
        -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25)),  # = 1.5 ln 2
        0.0,
        math.log(3),
        -(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1)),
    ]
    assert expected[0] == pytest.approx(1.0397207708)
    assert expected[3] == pytest.approx(0.8018185525)
    result = strategies.entropy(probs)
    assert result.shape == (4,)
    np.testing.assert_allclose(result, expected, rtol=0, atol=1e-9)


def test_entropy_ranks_uniform_highest():
    probs = np.array([[0.9, 0.05, 0.05], [1 / 3, 1 / 3, 1 / 3], [0.6, 0.3, 0.1]])
    assert np.argsort(-strategies.entropy(probs)).tolist() == [1, 2, 0]


# ----------------------------------------------------------------------------- least confidence, margin


def test_least_confidence_hand_values():
    probs = np.array([[0.5, 0.25, 0.25], [0.1, 0.7, 0.2], [1.0, 0.0, 0.0], [0.4, 0.4, 0.2]])
    np.testing.assert_allclose(strategies.least_confidence(probs), [0.5, 0.3, 0.0, 0.6], atol=1e-12)


def test_margin_is_minus_the_gap_between_the_two_most_likely_classes():
    probs = np.array([
        [0.5, 0.25, 0.25],  # gap 0.25
        [0.1, 0.7, 0.2],  # unsorted row: top two are 0.7 and 0.2, gap 0.5
        [0.4, 0.4, 0.2],  # a tie at the top: gap 0
        [0.05, 0.05, 0.9],  # gap 0.85
    ])  # fmt: skip
    result = strategies.margin(probs)
    np.testing.assert_allclose(result, [-0.25, -0.5, 0.0, -0.85], atol=1e-12)
    # the smallest gap is queried first
    assert np.argsort(-result, kind="stable").tolist() == [2, 0, 1, 3]


def test_margin_two_classes():
    probs = np.array([[0.55, 0.45], [0.2, 0.8]])
    np.testing.assert_allclose(strategies.margin(probs), [-0.1, -0.6], atol=1e-12)


# ----------------------------------------------------------------------------- BALD


def test_bald_is_zero_when_all_passes_agree():
    one = np.array([[0.7, 0.3], [0.2, 0.8], [0.5, 0.5]])
    mc = np.stack([one, one, one])  # (T=3, N=3, K=2)
    result = strategies.bald(mc)
    assert result.shape == (3,)
    np.testing.assert_allclose(result, 0.0, atol=1e-12)


def test_bald_exact_on_two_disagreeing_passes():
    mc = np.array([
        [[0.9, 0.1], [0.6, 0.4]],  # pass 1
        [[0.1, 0.9], [0.6, 0.4]],  # pass 2: disagrees on sample 0 only
    ])  # fmt: skip
    expected0 = h(0.5, 0.5) - (h(0.9, 0.1) + h(0.1, 0.9)) / 2  # ln 2 − H(0.9, 0.1)
    assert expected0 == pytest.approx(0.3680642)
    result = strategies.bald(mc)
    np.testing.assert_allclose(result, [expected0, 0.0], atol=1e-9)
    assert result[0] > 0


def test_bald_three_classes_three_passes():
    passes = [[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8]]
    mean = [sum(p[k] for p in passes) / 3 for k in range(3)]
    expected = h(*mean) - sum(h(*p) for p in passes) / 3
    mc = np.array(passes)[:, None, :]  # (T=3, N=1, K=3)
    np.testing.assert_allclose(strategies.bald(mc), [expected], atol=1e-9)
    assert expected > 0


# ----------------------------------------------------------------------------- label disagreement


@pytest.mark.parametrize("gamma", [0.3, 0.9, 2.0])
def test_label_disagreement_exact(gamma):
    probs = np.array([[0.7, 0.2, 0.1], [0.7, 0.2, 0.1], [1 / 3, 1 / 3, 1 / 3]])
    labels = np.array([1, 0, 2])
    entropies = [h(0.7, 0.2, 0.1), h(0.7, 0.2, 0.1), math.log(3)]  # 0.80, 0.80, 1.10 nats
    threshold = gamma * math.log(3)  # γ is a share of ln K (InnerEye's units)
    expected = [
        -math.log(0.2) - max(entropies[0] - threshold, 0),
        -math.log(0.7) - max(entropies[1] - threshold, 0),
        -math.log(1 / 3) - max(entropies[2] - threshold, 0),
    ]
    np.testing.assert_allclose(strategies.label_disagreement(probs, labels, gamma), expected, atol=1e-9)


@pytest.mark.parametrize("num_classes", [2, 4, 8])
def test_label_disagreement_is_innereyes_joint_rule(num_classes):
    """InnerEye's PosteriorBasedSelector (JOINT): h = −clip(γ − H, min(γ − H), 0); score = CE − h,
    with CE and H from InnerEyeDataQuality.evaluation.metrics.cross_entropy, which divides by log K."""
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(num_classes) * 0.5, size=50)
    labels = rng.integers(0, num_classes, size=50)
    gamma = 0.30
    log_k = np.log(num_classes)
    cross_entropy = -np.log(probs[np.arange(50), labels] + 1e-12) / log_k
    self_entropy = -(probs * np.log(probs + 1e-12)).sum(axis=1) / log_k
    innereye = cross_entropy - (-np.clip(gamma - self_entropy, np.min(gamma - self_entropy), 0))
    np.testing.assert_allclose(strategies.label_disagreement(probs, labels, gamma) / log_k, innereye, atol=1e-9)


def test_label_disagreement_threshold_is_a_share_of_log_k():
    """InnerEye's γ = 0.3 is in units of log K: with K = 4 it is 0.42 nats, not 0.3. Two labels of
    class 0 that the model contradicts: InnerEye queries A (unsure between 1 and 2) first."""
    probs = np.array([[0.02, 0.60, 0.37, 0.01], [0.03, 0.95, 0.01, 0.01]])
    scores = strategies.label_disagreement(probs, np.array([0, 0]), entropy_threshold=0.3)
    assert scores[0] > scores[1]


def test_label_disagreement_ranks_a_confidently_contradicted_label_first():
    probs = np.array([
        [0.05, 0.9, 0.05],  # confident in class 1, label 0: the model doubts the label
        [1 / 3, 1 / 3, 1 / 3],  # merely ambiguous
        [0.9, 0.05, 0.05],  # agrees with label 0
    ])  # fmt: skip
    result = strategies.label_disagreement(probs, np.array([0, 0, 0]), entropy_threshold=0.3)
    g = 0.3 * math.log(3)  # γ·ln K nats
    # by hand: −ln 0.05 − (H(0.05, 0.9, 0.05) − g); ln 3 − (ln 3 − g); −ln 0.9 − (H(0.9, …) − g)
    np.testing.assert_allclose(result, [
        -math.log(0.05) - (h(0.05, 0.9, 0.05) - g),
        g,
        -math.log(0.9) - (h(0.9, 0.05, 0.05) - g),
    ], atol=1e-9)  # fmt: skip
    assert np.argsort(-result).tolist() == [0, 1, 2]


# ----------------------------------------------------------------------------- random


def test_random_scores_deterministic_per_seed():
    a = strategies.random_scores(50, np.random.default_rng(7))
    b = strategies.random_scores(50, np.random.default_rng(7))
    c = strategies.random_scores(50, np.random.default_rng(8))
    assert a.shape == (50,)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert ((a >= 0) & (a < 1)).all()
    assert len(np.unique(a)) == 50
    assert strategies.random_scores(0, np.random.default_rng(7)).shape == (0,)


# ----------------------------------------------------------------------------- core-set


def column(*values: float) -> np.ndarray:
    return np.array(values, dtype=float)[:, None]


def test_coreset_farthest_first_on_a_line():
    # pool on a line, labelled set at 0. Greedy by hand:
    #   distances to {0}: [1, 4, 6, 10, 11] -> pick 11 (score 11)
    #   with 11 added:    [1, 4, 5, 1, 0]   -> pick 6  (score 5)
    #   with 6 added:     [1, 2, 0, 1, 0]   -> pick 4  (score 2)
    #   final distances of the others: 1 and 1
    pool = column(1, 4, 6, 10, 11)
    result = strategies.coreset(pool, column(0), budget=3)
    np.testing.assert_allclose(result, [1, 2, 5, 1, 11])
    # sorting by score (as the query does) reproduces the greedy order 11, 6, 4
    table = pd.DataFrame({"sample_id": ["p0", "p1", "p2", "p3", "p4"], "score": result})
    assert select_query(table, 3)["sample_id"].tolist() == ["p4", "p2", "p1"]


def test_coreset_budget_one_and_zero():
    pool = column(1, 4, 6, 10, 11)
    # one pick: 11 (score 11); everyone else keeps min(distance to 0, distance to 11)
    np.testing.assert_allclose(strategies.coreset(pool, column(0), budget=1), [1, 4, 5, 1, 11])
    # no picks: the scores are the distances to the labelled set
    np.testing.assert_allclose(strategies.coreset(pool, column(0), budget=0), [1, 4, 6, 10, 11])


def test_coreset_two_dimensions_with_two_labelled_points():
    pool = np.array([[0.0, 3.0], [4.0, 4.0], [1.0, 0.0], [5.0, 0.0]])
    labelled = np.array([[0.0, 0.0], [4.0, 0.0]])
    # distances to the labelled set: [3, 4, 1, 1] -> pick (4,4) with score 4
    # with (4,4) added: (0,3) -> min(3, sqrt(16+1)) = 3; (1,0) -> 1; (5,0) -> 1 -> pick (0,3), score 3
    result = strategies.coreset(pool, labelled, budget=2)
    np.testing.assert_allclose(result, [3.0, 4.0, 1.0, 1.0])


def test_coreset_without_labelled_samples_starts_farthest_from_the_pool_mean():
    pool = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [3.0, 3.0]])  # mean (1, 1)
    # distances to the mean: [sqrt 2, 1, 1, sqrt 8] -> pick (3,3) with score sqrt 8
    # with (3,3) as a centre: [sqrt 2, 1, 1] unchanged (all nearer the mean than (3,3)) -> pick (0,0)
    result = strategies.coreset(pool, np.empty((0, 2)), budget=2)
    np.testing.assert_allclose(result, [math.sqrt(2), 1.0, 1.0, math.sqrt(8)])
    assert np.argsort(-result, kind="stable")[:2].tolist() == [3, 0]


def test_coreset_budget_larger_than_the_pool_picks_everything():
    pool = column(1, 4, 6)
    # picks 6 (6), then 4 (min(4, 2) = 2), then 1 (min(1, 3) = 1)
    result = strategies.coreset(pool, column(0), budget=10)
    np.testing.assert_allclose(result, [1, 2, 6])
    assert np.isfinite(result).all()


def test_coreset_scores_are_never_above_the_last_pick():
    rng = np.random.default_rng(0)
    pool, labelled = rng.normal(size=(40, 3)), rng.normal(size=(5, 3))
    budget = 7
    result = strategies.coreset(pool, labelled, budget)
    order = np.argsort(-result, kind="stable")
    picks = result[order[:budget]]
    assert (np.diff(picks) <= 1e-12).all()  # the greedy picks' distances never increase
    assert result[order[budget:]].max() <= picks[-1] + 1e-12


def test_min_distances_matches_brute_force():
    rng = np.random.default_rng(1)
    points, centres = rng.normal(size=(700, 4)), rng.normal(size=(300, 4))  # more than one chunk of each
    brute = np.linalg.norm(points[:, None, :] - centres[None, :, :], axis=2).min(axis=1)
    np.testing.assert_allclose(strategies._min_distances(points, centres), brute, atol=1e-9)
    np.testing.assert_allclose(strategies.coreset(points, centres, budget=0), brute, atol=1e-9)


def test_coreset_of_an_empty_pool_is_empty():  # a round whose share of the budget finds no pool left
    assert strategies.coreset(np.zeros((0, 4)), np.ones((3, 4)), budget=0).shape == (0,)


def test_coreset_measures_a_trusted_candidate_from_the_other_centres():
    # three trusted samples on a line at 0, 1 and 3, all candidates: each is measured from its
    # nearest other one (1, 1, 2), so the one at 3 is picked first, then 0 or 1 at distance 1
    line = np.array([[0.0], [1.0], [3.0]])
    scores = strategies.coreset(line, line, 1, own=np.array([0, 1, 2]))
    np.testing.assert_allclose(scores, [1.0, 1.0, 2.0])
    assert strategies.coreset(line, line, 1).tolist() == [0.0, 0.0, 0.0]  # each its own centre
    # a candidate whose own row is the only centre is measured from the pool mean instead of inf
    np.testing.assert_allclose(strategies.coreset(line, line[:1], 3, own=np.array([0, -1, -1])),
                               [4 / 3, 1.0, 3.0])


def test_min_distances_skips_each_points_own_centre_across_chunks():
    """scikit-learn hands the reduction blocks of rows with their offset: each block must skip its
    own rows' centres, not the first block's (working_memory=1 MiB: dozens of blocks)."""
    rng = np.random.default_rng(0)
    points, centres = rng.normal(size=(3000, 4)), rng.normal(size=(2500, 4))
    own = np.full(3000, -1)
    trusted = rng.choice(3000, 2000, replace=False)
    own[trusted] = rng.permutation(2500)[:2000]
    centres[own[trusted]] = points[trusted]  # a trusted point is its own centre, at distance 0
    brute = np.sqrt(((points[:, None] - centres[None]) ** 2).sum(-1))
    brute[trusted, own[trusted]] = np.inf
    with sklearn.config_context(working_memory=1):
        np.testing.assert_allclose(strategies._min_distances(points, centres, own), brute.min(axis=1), atol=1e-9)


def test_coreset_a_pick_keeps_its_score_when_the_rest_of_the_pool_is_at_distance_zero():
    # duplicates: 5 is picked first (score 5); then every distance left is 0, the next pick is
    # the unpicked 5 at 0, and the first pick keeps its 5 (the greedy order survives the sort)
    result = strategies.coreset(column(5, 5, 0), column(0), budget=2)
    np.testing.assert_allclose(result, [5, 0, 0])
    table = pd.DataFrame({"sample_id": ["c", "b", "a"], "score": result})
    assert select_query(table, 1)["sample_id"].tolist() == ["c"]
