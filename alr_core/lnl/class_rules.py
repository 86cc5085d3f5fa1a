"""Per-class clean-sample rules over a whole train split (docs/phase1_selection.md).

Pure functions over numpy arrays. Shapes: ``labels`` int (N,) observed labels in [0, K);
``losses`` float (N,) per-sample cross-entropy (nats); ``vog`` float (N,); ``features``
float (N, D) penultimate-layer features; ``probs`` float (N, K) softmax rows.

Every rule decides clean/noisy **inside each observed class** and the clean guess is the
union of the per-class keeps, so a rare class is never judged against the loss scale of a
common one. Every observed class keeps at least one sample. Each rule returns
``(keep (N,) bool, fell_back)`` where ``fell_back`` lists the observed classes whose split was
degenerate and which were therefore kept whole.
"""

from __future__ import annotations

import warnings
from typing import Optional

import numpy as np

from alr_core.common.checks import check_labels, check_probs
from alr_core.common.errors import AlrError
from alr_core.common.params import CLASS_RULES

# Below this many samples a 2-component mixture has too little to separate: the class is kept.
MIN_GMM_SAMPLES = 6


def gmm_low_component(scores: np.ndarray) -> Optional[np.ndarray]:
    """Fit a 2-component Gaussian mixture to ``scores`` (M,) or (M, F) of one class (every
    column: smaller is cleaner) and return the bool (M,) mask of the samples kept as the low
    component's; None when the split is degenerate (fewer than MIN_GMM_SAMPLES samples, a
    constant column 0, a fit that assigns every sample to one component, or nothing kept or
    nothing dropped).

    The low component is the one with the smaller mean of column 0 (the loss or distance).
    Its posterior alone is not the keep rule: a broad low component can own both tails around
    a tight middle mode, and would keep the highest losses. Instead a sample is dropped when
    it is at least as high in every column as some sample of the high set H, the samples whose
    low-component posterior is ≤ 0.5, leaving out those at most the low component's mean in
    every column (a tail below the clean mode that the broad component happens to own). For
    one column the kept samples are those below a cut-off, the lowest score above the low
    component's mean at which the posterior falls to 0.5: a prefix of the sorted scores. For
    (loss, VOG) the keep set is closed downwards: a sample lower in both than a kept sample is
    kept, and no sample higher in both than a dropped one is kept.

    Columns are z-scored first (loss and VOG have unrelated units). The fit is deterministic:
    means start at the 25th and 75th percentiles, ``random_state=0``.
    """
    from sklearn.mixture import GaussianMixture

    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim == 1:
        scores = scores[:, None]
    if len(scores) < MIN_GMM_SAMPLES or np.ptp(scores[:, 0]) <= 1e-12:
        return None
    spread = scores.std(axis=0)
    scaled = (scores - scores.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    means_init = np.percentile(scaled, [25, 75], axis=0)
    if np.allclose(means_init[0], means_init[1]):
        means_init = np.stack([scaled.min(axis=0), scaled.max(axis=0)])
    gmm = GaussianMixture(2, covariance_type="full", reg_covar=1e-3, means_init=means_init,
                          max_iter=200, random_state=0)  # fmt: skip
    gmm.fit(scaled)
    posterior = gmm.predict_proba(scaled)
    # a unimodal class (a small clean one, or tied scores): the fit leaves one component a ghost of
    # almost no weight, whose mean would cut the class anywhere
    if len(np.unique(posterior.argmax(axis=1))) < 2:
        return None
    low = int(np.argmin(gmm.means_[:, 0]))
    below_low_mean = (scaled <= gmm.means_[low]).all(axis=1)
    high = scaled[(posterior[:, low] <= 0.5) & ~below_low_mean]
    keep = np.ones(len(scaled), dtype=bool)
    for start in range(0, len(scaled), 1024):  # blocks bound the (rows, |H|, F) comparison
        block = scaled[start : start + 1024]
        keep[start : start + 1024] = ~(block[:, None, :] >= high[None, :, :]).all(axis=2).any(axis=1)
    if keep.all() or not keep.any():
        return None
    return keep


def class_gmm(losses: np.ndarray, labels: np.ndarray, vog: Optional[np.ndarray] = None) -> tuple[np.ndarray, list]:
    """Per observed class, a 2-component GMM on the loss (or on the (loss, VOG) pair when
    ``vog`` is given); keep the low-loss component. Degenerate classes are kept whole."""
    scores = np.asarray(losses, dtype=np.float64)[:, None]
    if vog is not None:
        scores = np.column_stack([scores, np.asarray(vog, dtype=np.float64)])
    return _per_class_gmm(scores, labels)


def prototype_distance(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Cosine distance (N,) in [0, 2] of each sample to its observed class's prototype, the
    normalised mean of that class's L2-normalised features (RoLT's prototype)."""
    features = np.asarray(features, dtype=np.float64)
    unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    distance = np.zeros(len(unit))
    for cls in np.unique(labels):
        members = labels == cls
        centre = unit[members].mean(axis=0)
        centre /= max(np.linalg.norm(centre), 1e-12)
        distance[members] = 1.0 - unit[members] @ centre
    return distance


def prototype(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, list]:
    """RoLT-style: per observed class, a 2-component GMM on :func:`prototype_distance`; keep
    the near component. Degenerate classes are kept whole."""
    return _per_class_gmm(prototype_distance(features, labels)[:, None], labels)


def estimated_clean_counts(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Estimated clean samples per observed class, float (K,): the diagonal of cleanlab's
    calibrated confident joint (rows: observed label, columns: latent true label), computed
    over the observed classes only (a class nobody is labelled with has no row)."""
    from cleanlab.count import compute_confident_joint

    present, local, sub = _observed_columns(probs, labels)
    counts = np.zeros(probs.shape[1])
    if len(present) < 2:  # one observed class: no other class to be confused with
        counts[present] = len(labels)
        return counts
    joint = compute_confident_joint(local, sub, calibrate=True)
    counts[present] = np.diag(joint)
    return counts


def noise_quota(losses: np.ndarray, probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, list]:
    """Per observed class c keep the n_c smallest-loss samples, n_c = round(estimated clean
    count of c) (:func:`estimated_clean_counts`), at least 1. ``fell_back``: the classes whose
    estimate covered the whole class (nothing dropped)."""
    losses, probs = np.asarray(losses), check_probs(probs)
    labels = check_labels(labels, probs.shape[1], len(losses))
    clean = estimated_clean_counts(probs, labels)
    keep = np.zeros(len(losses), dtype=bool)
    whole = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        n = int(min(len(members), max(1, round(clean[cls]))))
        keep[members[np.argsort(losses[members], kind="stable")[:n]]] = True
        if n == len(members):
            whole.append(int(cls))
    return keep, whole


def confident_learning(probs: np.ndarray, labels: np.ndarray,
                       filter_by: str = "prune_by_noise_rate") -> tuple[np.ndarray, list]:  # fmt: skip
    """cleanlab's confident learning (``filter.find_label_issues`` with ``filter_by``, at least
    one example kept per class): keep the samples it does not flag. ``fell_back``: the classes
    in which nothing was flagged. The pipeline prunes by noise rate; bench/cleanlab_filters.py
    measures cleanlab's other filters through this function."""
    from cleanlab.filter import find_label_issues

    probs = check_probs(probs)
    labels = check_labels(labels, probs.shape[1], len(probs))
    present, local, sub = _observed_columns(probs, labels)
    if len(present) < 2:
        return np.ones(len(labels), dtype=bool), [int(c) for c in present]
    with warnings.catch_warnings():  # a single-sample class, once per class and call, by a column index the
        # user never sees; it is kept whole, which the returned list (lnl.json's classes_kept_whole) names
        warnings.filterwarnings("ignore", message="May not flag all label issues in class")
        keep = ~find_label_issues(local, sub, filter_by=filter_by, min_examples_per_class=1, n_jobs=1)
    # cleanlab keeps min_examples_per_class per class; make it explicit
    return keep_one_per_class(keep, probs[np.arange(len(labels)), labels], labels)


def keep_one_per_class(keep: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, list]:
    """``keep`` (bool (N,)) with, in every observed class it empties, that class's highest-scoring
    sample (``scores`` float (N,)) kept after all; and the observed classes kept whole."""
    keep = keep.copy()
    present = np.unique(labels)
    for cls in present:
        members = np.flatnonzero(labels == cls)
        if not keep[members].any():
            keep[members[np.argmax(scores[members])]] = True
    return keep, [int(c) for c in present if keep[labels == c].all()]


def above_chance(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """bool (N,): the network gives the observed label more than chance probability, 1/K."""
    probs = check_probs(probs)
    return probs[np.arange(len(probs)), check_labels(labels, probs.shape[1], len(probs))] > 1.0 / probs.shape[1]


def class_keep(
    rule: str,
    labels: np.ndarray,
    losses: np.ndarray,
    probs: np.ndarray,
    features: np.ndarray,
    vog: Optional[np.ndarray] = None,
    keep_above_chance: bool = False,
) -> tuple[np.ndarray, list]:
    """Dispatch on ``rule`` (one of CLASS_RULES); all arrays cover the same N samples. With
    ``keep_above_chance`` a sample the rule drops is kept anyway when :func:`above_chance`:
    a mixture fitted to a mostly clean class splits its clean samples into easy and hard, and
    the hard ones the network still ranks above chance are no evidence of a wrong label."""
    labels = np.asarray(labels)
    if rule == "class_gmm":
        keep, whole = class_gmm(losses, labels, vog)
    elif rule == "prototype":
        keep, whole = prototype(features, labels)
    elif rule == "noise_quota":
        keep, whole = noise_quota(losses, probs, labels)
    elif rule == "confident_learning":
        keep, whole = confident_learning(probs, labels)
    else:
        raise AlrError(f"unknown class rule {rule!r}; valid: {', '.join(CLASS_RULES)}")
    if keep_above_chance:
        keep = keep | above_chance(probs, labels)
    return keep, whole


def _observed_columns(probs: np.ndarray, labels: np.ndarray):
    """cleanlab expects every class to be someone's label: restrict to the observed classes.
    Returns (observed classes (K',), labels renumbered into [0, K'), probs (N, K') renormalised).
    Checked first: probs real probabilities (N, K), labels ints in [0, K)."""
    probs = check_probs(probs)
    labels = check_labels(labels, probs.shape[1], len(probs))
    present = np.unique(labels)
    sub = probs[:, present]
    return present, np.searchsorted(present, labels), sub / sub.sum(axis=1, keepdims=True)


def _per_class_gmm(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, list]:
    keep = np.zeros(len(labels), dtype=bool)
    whole = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        low = gmm_low_component(scores[members])
        if low is None:
            keep[members] = True
            whole.append(int(cls))
        else:
            keep[members[low]] = True
    return keep, whole
