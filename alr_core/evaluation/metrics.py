"""Classification and clean-selection metrics. Pure functions over numpy arrays.

``labels``: int (N,) in [0, K); ``probs``: float (N, K) rows summing to 1; ``kept``: bool (N,);
``predictions``: int (N,) in [0, K).
Class-indexed results are dicts keyed by class name, so JSON metrics read on their own.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from sklearn import metrics as skm

from alr_core.common.checks import check_labels, check_probs
from alr_core.common.errors import AlrError


def classification_metrics(labels: np.ndarray, probs: np.ndarray, class_names: Sequence[str]) -> dict:
    """Accuracy, balanced accuracy (mean recall over classes present), macro-F1 (mean F1 over the
    same classes: a class the split lacks has no F1 to average, and counting it as 0 would cap a
    perfect model below 1), macro one-vs-rest AUROC over the classes that have positives and negatives
    (None when there are none), MCC (None for a split of one class, where it is undefined and
    scikit-learn says 0), per-class recall and precision, confusion matrix (rows: true, columns:
    predicted)."""
    probs = check_probs(probs)
    labels = check_labels(labels, len(class_names), len(probs))
    if probs.shape[1] != len(class_names):
        raise AlrError(f"probs has {probs.shape[1]} columns; expected {len(class_names)}, one per class name")
    predictions = probs.argmax(axis=1)
    all_classes = np.arange(len(class_names))
    recall, scores = _checkpoint_scores(labels, predictions, all_classes)
    precision = skm.precision_score(labels, predictions, labels=all_classes, average=None, zero_division=0)
    present = np.isin(all_classes, labels)
    return {
        "accuracy": float(skm.accuracy_score(labels, predictions)),
        **scores,
        "macro_auroc": macro_auroc(labels, probs),
        "mcc": float(skm.matthews_corrcoef(labels, predictions)) if present.sum() > 1 else None,
        "recall_per_class": _by_class(recall, class_names, present),
        "precision_per_class": _by_class(precision, class_names, np.isin(all_classes, predictions)),
        "confusion_matrix": skm.confusion_matrix(labels, predictions, labels=all_classes).tolist(),
    }


def checkpoint_scores(labels: np.ndarray, probs: np.ndarray, num_classes: int) -> dict:
    """Balanced accuracy and macro-F1 alone, as :func:`classification_metrics` gives them: what
    the per-epoch validation (checkpoint choice, epoch table) reads, without the AUROCs, MCC and
    per-class tables it would discard (8 of every 9 scikit-learn calls)."""
    return _checkpoint_scores(np.asarray(labels), probs.argmax(axis=1), np.arange(num_classes))[1]


def _checkpoint_scores(labels: np.ndarray, predictions: np.ndarray, all_classes: np.ndarray):
    """(recall per class of ``all_classes``, {"balanced_accuracy", "macro_f1"})."""
    recall = skm.recall_score(labels, predictions, labels=all_classes, average=None, zero_division=0)
    present = np.isin(all_classes, labels)
    return recall, {
        "balanced_accuracy": float(recall[present].mean()),
        "macro_f1": float(skm.f1_score(labels, predictions, labels=all_classes[present], average="macro",
                                       zero_division=0)),
    }


def paired_balanced_accuracy_test(labels: np.ndarray, predictions_a: np.ndarray, predictions_b: np.ndarray,
                                  rng: np.random.Generator, resamples: int = 10_000) -> dict:  # fmt: skip
    """Balanced accuracy of ``predictions_a`` minus that of ``predictions_b`` on the same samples,
    and the one-sided p-value of a paired sign-flip (permutation) test that a is the better:
    {"diff", "p_value"}.

    Only the discordant samples move the difference: within class c, with n₊ samples that a got
    right and b wrong and n₋ the reverse, it is the mean over classes of (n₊ − n₋) / n_c. Under
    the null hypothesis that neither is better, each discordant sample is equally likely to
    fall either way, so n₊ ~ Binomial(n₊ + n₋, ½) per class; the p-value is the share of
    ``resamples`` such draws whose difference reaches the observed one (counted with the
    observed draw, so never 0). Exact in the small counts where a bootstrap is not: a lead of
    4 samples to 0 has p = 1/16, not "certain".
    """
    labels, predictions_a, predictions_b = (np.asarray(a) for a in (labels, predictions_a, predictions_b))
    if not (labels.shape == predictions_a.shape == predictions_b.shape and labels.ndim == 1 and len(labels)):
        raise ValueError(f"labels and both predictions must be non-empty (N,) arrays of one length; got shapes "
                         f"{labels.shape}, {predictions_a.shape}, {predictions_b.shape}")  # fmt: skip
    right_a, right_b = predictions_a == labels, predictions_b == labels
    classes = np.unique(labels)
    observed, null = 0.0, np.zeros(resamples)
    for c in classes:
        rows = labels == c
        wins, losses = (right_a & ~right_b & rows).sum(), (right_b & ~right_a & rows).sum()
        observed += (wins - losses) / rows.sum()
        null += (2 * rng.binomial(wins + losses, 0.5, size=resamples) - (wins + losses)) / rows.sum()
    observed, null = observed / len(classes), null / len(classes)
    reached = (null >= observed - 1e-12).sum()  # the tolerance keeps float sums of equal fractions equal
    return {"diff": float(observed), "p_value": float((reached + 1) / (resamples + 1))}


def macro_auroc(labels: np.ndarray, probs: np.ndarray) -> Optional[float]:
    """Mean one-vs-rest AUROC over the classes with both positives and negatives in ``labels``.

    Equal to scikit-learn's ``roc_auc_score(..., multi_class="ovr", average="macro")`` when
    every class is present, and still defined when a split lacks a class.
    """
    scores = [
        skm.roc_auc_score(labels == k, probs[:, k])
        for k in range(probs.shape[1])
        if 0 < (labels == k).sum() < len(labels)
    ]
    return float(np.mean(scores)) if scores else None


def selection_metrics(
    kept: np.ndarray, observed: np.ndarray, truth: Optional[np.ndarray], class_names: Sequence[str]
) -> dict:
    """What a clean guess ``kept`` (bool (N,)) holds of the observed labels ``observed`` (int
    (N,)), and with ``truth`` (int (N,), or None when the true labels are unknown) how well it
    matches the truly clean samples (observed == truth).

    kept, kept_share: samples kept, and their share of N. kept_share_per_class: the share of
    each *observed* class's samples kept (None for a class nobody is labelled with): without
    the truth, the one per-class view of what the rule dropped. With the truth: precision,
    the share of kept samples that are clean; recall, the share of clean samples kept. Per
    class: recall over the clean samples of each class; precision over the kept samples of
    each observed class. worst_class_recall: the minimum recall over classes that have clean
    samples — the number loss-only selection drives to 0 for rare classes. Without the truth
    these are None.
    """
    observed = check_labels(observed, len(class_names), None, "observed")
    kept = np.asarray(kept)
    if kept.dtype != bool or kept.shape != observed.shape:
        raise AlrError(f"kept has shape {kept.shape} and dtype {kept.dtype}; expected a bool mask of shape "
                         f"{observed.shape}, as observed (not indices)")
    counts = np.bincount(observed, minlength=len(class_names))
    kept_counts = np.bincount(observed[kept], minlength=len(class_names))
    result = {
        "kept": int(kept.sum()),
        "kept_share": float(kept.mean()),
        "kept_share_per_class": _by_class(kept_counts / np.maximum(counts, 1), class_names, counts > 0),
        "precision": None,
        "recall": None,
        "worst_class_recall": None,
        "recall_per_class": None,
        "precision_per_class": None,
    }
    if truth is None:
        return result
    truth = check_labels(truth, len(class_names), len(observed), "truth")
    clean = observed == truth
    recall = {}
    precision = {}
    for k, name in enumerate(class_names):
        clean_k = clean & (truth == k)
        kept_k = kept & (observed == k)
        recall[name] = float((kept & clean_k).sum() / clean_k.sum()) if clean_k.any() else None
        precision[name] = float((kept_k & clean).sum() / kept_k.sum()) if kept_k.any() else None
    defined = [r for r in recall.values() if r is not None]
    return result | {
        "precision": float((kept & clean).sum() / kept.sum()) if kept.any() else None,
        "recall": float((kept & clean).sum() / clean.sum()) if clean.any() else None,
        "worst_class_recall": min(defined) if defined else None,
        "recall_per_class": recall,
        "precision_per_class": precision,
    }


def _by_class(values: np.ndarray, class_names: Sequence[str], defined: np.ndarray) -> dict:
    return {name: (float(v) if ok else None) for name, v, ok in zip(class_names, values, defined)}
