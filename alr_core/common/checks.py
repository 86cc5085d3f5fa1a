"""Checks at the boundary of the pure functions over arrays (scores, selection rules, metrics),
which researchers also call on arrays of their own: a wrong input is an error that says what
was expected, never a silent wrong answer (log-probabilities ranked in reverse, a label of -1
read as the last class)."""

from __future__ import annotations

import numpy as np

from alr_core.common.errors import AlrError

PROB_ATOL = 1e-3  # float32 softmax rows sum to 1 within ~1e-6; logits and log-probabilities miss by far more


def check_probs(probs, name: str = "probs", ndim: int = 2) -> np.ndarray:
    """``probs`` as float64 of ``ndim`` dimensions (..., K): finite, in [0, 1], each row (over
    the last axis) summing to 1 within ``PROB_ATOL``."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != ndim or probs.shape[-1] < 1:
        raise AlrError(f"{name} has shape {probs.shape}; expected {ndim} dimensions, the last one the K classes "
                       "(a binary classifier's p(y=1) alone: stack it with 1 − p as (N, 2))")  # fmt: skip
    finite = np.isfinite(probs)
    if not finite.all():
        raise AlrError(f"{name} holds NaN or infinite values in {int((~finite).any(axis=-1).sum())} rows; "
                       "expected probabilities")  # fmt: skip
    if probs.size:
        off = float(np.abs(probs.sum(axis=-1) - 1).max())
        if probs.min() < 0 or probs.max() > 1 or off > PROB_ATOL:
            raise AlrError(f"{name} are not probabilities: values in [{probs.min():g}, {probs.max():g}], row sums up "
                           f"to {off:g} from 1; pass softmax outputs, not logits or log-probabilities")  # fmt: skip
    return probs


def check_labels(labels, num_classes: int, n: int | None, name: str = "labels") -> np.ndarray:
    """``labels`` as an integer array (n,) in [0, num_classes); ``n`` None: any length."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise AlrError(f"num_classes is {num_classes!r}; expected an integer ≥ 1")
    labels = np.asarray(labels)
    if labels.size == 0:  # np.asarray([]) is float64
        labels = labels.astype(np.int64)
    if labels.ndim != 1 or (n is not None and len(labels) != n):
        raise AlrError(f"{name} has shape {labels.shape}; expected ({n if n is not None else 'N'},), one per row")
    if not np.issubdtype(labels.dtype, np.integer):
        raise AlrError(f"{name} has dtype {labels.dtype}; expected integers in [0, {num_classes})")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise AlrError(f"{name} holds values in [{labels.min()}, {labels.max()}]; expected [0, {num_classes})")
    return labels
