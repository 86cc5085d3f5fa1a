"""Classification and clean-selection metrics. Pure functions over numpy arrays.

``labels``: int (N,) in [0, K); ``probs``: float (N, K) rows summing to 1; ``kept``: bool (N,).
Class-indexed results are dicts keyed by class name, so JSON metrics read on their own.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from sklearn import metrics as skm


def classification_metrics(labels: np.ndarray, probs: np.ndarray, class_names: Sequence[str]) -> dict:
    """Accuracy, balanced accuracy (mean recall over classes present), macro-F1 over all K
    classes, macro one-vs-rest AUROC over the classes that have positives and negatives
    (None when there are none), MCC, per-class recall and precision, confusion matrix
    (rows: true, columns: predicted)."""
    labels = np.asarray(labels)
    predictions = probs.argmax(axis=1)
    all_classes = np.arange(len(class_names))
    recall = skm.recall_score(labels, predictions, labels=all_classes, average=None, zero_division=0)
    precision = skm.precision_score(labels, predictions, labels=all_classes, average=None, zero_division=0)
    present = np.isin(all_classes, labels)
    return {
        "accuracy": float(skm.accuracy_score(labels, predictions)),
        "balanced_accuracy": float(recall[present].mean()),
        "macro_f1": float(skm.f1_score(labels, predictions, labels=all_classes, average="macro", zero_division=0)),
        "macro_auroc": macro_auroc(labels, probs),
        "mcc": float(skm.matthews_corrcoef(labels, predictions)),
        "recall_per_class": _by_class(recall, class_names, present),
        "precision_per_class": _by_class(precision, class_names, np.isin(all_classes, predictions)),
        "confusion_matrix": skm.confusion_matrix(labels, predictions, labels=all_classes).tolist(),
    }


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
    kept: np.ndarray, observed: np.ndarray, truth: np.ndarray, class_names: Sequence[str]
) -> dict:
    """How well a clean guess ``kept`` matches the truly clean samples (observed == truth).

    precision: share of kept samples that are clean; recall: share of clean samples kept.
    Per class: recall over the clean samples of each class; precision over the kept samples
    of each *observed* class. worst_class_recall: the minimum recall over classes that have
    clean samples — the number loss-only selection drives to 0 for rare classes.
    """
    kept = np.asarray(kept, dtype=bool)
    clean = np.asarray(observed) == np.asarray(truth)
    recall = {}
    precision = {}
    for k, name in enumerate(class_names):
        clean_k = clean & (truth == k)
        kept_k = kept & (observed == k)
        recall[name] = float((kept & clean_k).sum() / clean_k.sum()) if clean_k.any() else None
        precision[name] = float((kept_k & clean).sum() / kept_k.sum()) if kept_k.any() else None
    defined = [r for r in recall.values() if r is not None]
    return {
        "kept": int(kept.sum()),
        "kept_share": float(kept.mean()),
        "precision": float((kept & clean).sum() / kept.sum()) if kept.any() else None,
        "recall": float((kept & clean).sum() / clean.sum()) if clean.any() else None,
        "worst_class_recall": min(defined) if defined else None,
        "recall_per_class": recall,
        "precision_per_class": precision,
    }


def _by_class(values: np.ndarray, class_names: Sequence[str], defined: np.ndarray) -> dict:
    return {name: (float(v) if ok else None) for name, v, ok in zip(class_names, values, defined)}
