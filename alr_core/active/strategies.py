"""Query scores per strategy for active label cleaning (docs/method.md, phase 2). Pure functions over arrays.

Every score is "higher = query first". Shapes: ``probs`` (N, K) rows summing to 1;
``mc_probs`` (T, N, K) from T stochastic passes; ``labels`` (N,) current labels;
``features`` (N, D) penultimate features. Natural logarithms throughout.
"""

from __future__ import annotations

import numpy as np

from alr_core.common.checks import check_labels, check_probs
from alr_core.common.errors import AlrError

_EPS = 1e-12


def entropy(probs: np.ndarray) -> np.ndarray:
    """−Σ_k p_k log p_k, shape (N,)."""
    return _entropy(check_probs(probs))


def _entropy(probs: np.ndarray) -> np.ndarray:
    """:func:`entropy` over the last axis of checked ``probs`` of any shape (..., K)."""
    return -(probs * np.log(probs + _EPS)).sum(axis=-1)


def least_confidence(probs: np.ndarray) -> np.ndarray:
    """1 − max_k p_k."""
    probs = check_probs(probs)
    return 1.0 - probs.max(axis=1)


def margin(probs: np.ndarray) -> np.ndarray:
    """−(p_(1) − p_(2)): the smallest gap between the two most likely classes first."""
    probs = check_probs(probs)
    if probs.shape[1] < 2:
        raise AlrError(f"probs has {probs.shape[1]} column; margin needs K ≥ 2 classes")
    top_two = np.sort(probs, axis=1)[:, -2:]
    return -(top_two[:, 1] - top_two[:, 0])


def bald(mc_probs: np.ndarray) -> np.ndarray:
    """H[mean_t p^t] − mean_t H[p^t] (mutual information between prediction and weights)."""
    mc_probs = check_probs(mc_probs, "mc_probs", ndim=3)
    return _entropy(mc_probs.mean(axis=0)) - _entropy(mc_probs).mean(axis=0)


def label_disagreement(probs: np.ndarray, labels: np.ndarray, entropy_threshold: float) -> np.ndarray:
    """CE(current label, prediction) − max(H[p] − γ·ln K, 0) in nats, γ = ``entropy_threshold``
    as a share of the largest entropy ln K (InnerEye's normalised units).

    InnerEye's label-based score (Bernhardt et al., Nat. Commun. 2022, the ``JOINT`` decision
    rule, γ = 0.3 there): high when the model confidently predicts another class than the
    current label; self-entropy above γ is subtracted, so that merely ambiguous samples, which
    an expert cannot resolve either, do not rank first. InnerEye measures both entropies in
    units of log K (``evaluation.metrics.cross_entropy`` divides by log K), so its γ = 0.3 is
    0.3·ln K nats; the score here is InnerEye's times ln K, the same ranking."""
    probs = check_probs(probs)
    labels = check_labels(labels, probs.shape[1], len(probs))
    cross_entropy = -np.log(probs[np.arange(len(labels)), labels] + _EPS)
    threshold = entropy_threshold * np.log(probs.shape[1])
    return cross_entropy - np.maximum(_entropy(probs) - threshold, 0.0)


def random_scores(num_samples: int, rng: np.random.Generator) -> np.ndarray:
    return rng.random(num_samples)


def coreset(pool_features: np.ndarray, labelled_features: np.ndarray, budget: int,
            own: np.ndarray | None = None) -> np.ndarray:
    """Greedy k-centre (Sener & Savarese, 2018) on features, as scores.

    Picks ``budget`` pool samples one by one, each time the one farthest (Euclidean) from the
    labelled set and the picks so far. A pick's score is its distance when picked (so sorting
    by score reproduces the greedy order); every other sample scores its final distance, which
    is never larger. With no labelled samples the first pick is the pool sample farthest
    from the pool mean. ``own``: per pool sample, its own row of ``labelled_features`` (-1: none),
    which is not a centre for it (a trusted candidate is never its own centre). Returns scores,
    shape (N_pool,).
    """
    pool = np.asarray(pool_features, dtype=np.float64)
    from_mean = np.linalg.norm(pool - pool.mean(axis=0), axis=1) if len(pool) else np.empty(0)
    if len(labelled_features):
        distance = _min_distances(pool, np.asarray(labelled_features, dtype=np.float64), own)
        distance = np.where(np.isinf(distance), from_mean, distance)  # its own row was the only centre
    else:
        distance = from_mean
    scores = np.empty(len(pool))
    picked = np.zeros(len(pool), dtype=bool)
    for _ in range(min(budget, len(pool))):
        masked = np.where(picked, -np.inf, distance)
        choice = int(masked.argmax())
        scores[choice] = distance[choice]
        picked[choice] = True
        distance = np.minimum(distance, np.linalg.norm(pool - pool[choice], axis=1))
    scores[~picked] = distance[~picked]
    return scores


def _min_distances(points: np.ndarray, centres: np.ndarray, own: np.ndarray | None = None) -> np.ndarray:
    """Distance from each point to its nearest centre but ``own`` (per point, its own row of
    ``centres``, -1 for none), inf where no other centre is left. scikit-learn's reductions work
    in chunks: a pool and labelled set of 14,000 each take ~250 MB without ``own``, and blocks of
    at most 64 MiB with it, not the ~1.4 GB that one (pool × 4096 centres) block took."""
    import sklearn
    from sklearn.metrics import pairwise_distances_argmin_min, pairwise_distances_chunked

    if len(points) == 0:  # a round whose pool is used up (scikit-learn refuses an empty array)
        return np.empty(0)
    if own is None or (np.asarray(own) < 0).all():
        return pairwise_distances_argmin_min(points, centres)[1]
    own = np.asarray(own)

    def nearest_other(block: np.ndarray, start: int) -> np.ndarray:
        mine = own[start:start + len(block)]
        block[np.flatnonzero(mine >= 0), mine[mine >= 0]] = np.inf
        return block.min(axis=1)

    # blocks of at most 64 MiB (scikit-learn's default, 1 GiB, is a 9,600 × 14,000 block at 14,000 centres)
    memory = min(64, sklearn.get_config()["working_memory"])
    blocks = pairwise_distances_chunked(points, centres, reduce_func=nearest_other, working_memory=memory)
    return np.concatenate(list(blocks))
