"""Label-noise injection for experiments with known truth. Pure functions over label arrays."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from alr_core.common.checks import check_labels
from alr_core.common.errors import AlrError
from alr_core.common.params import NoiseParams


def inject_noise(
    labels: np.ndarray,
    num_classes: int,
    noise_type: str,
    rate: float,
    keep_clean_classes: Sequence[int],
    rng: np.random.Generator,
) -> np.ndarray:
    """Return observed labels, shape (N,), drawn from the true ``labels`` (N,) in [0, K).

    - ``symmetric``: with probability ``rate`` a label becomes a class drawn uniformly from
      the other classes that may be targets.
    - ``pairflip``: with probability ``rate`` class k becomes (k + 1) mod K.
    - ``none``: labels are returned unchanged.

    A rate at which the true label stops being the majority label of its class is refused
    (:func:`check_learnable_rate`).

    Classes in ``keep_clean_classes`` are never corrupted and never the target of a flip (for
    pair-flip, a class whose successor is kept clean stays clean too).
    """
    labels = check_labels(labels, num_classes, None)
    if not 0.0 <= rate < 1.0:
        raise AlrError(f"noise.rate is {rate}; valid range: [0, 1)")
    kept = np.zeros(num_classes, dtype=bool)
    for cls in keep_clean_classes:
        if not 0 <= cls < num_classes:
            raise AlrError(
                f"noise.keep_clean_classes lists {cls}; valid classes are 0..{num_classes - 1}"
            )
        kept[cls] = True
    if noise_type == "none" or rate == 0.0:
        return labels.copy()
    targets_allowed = ~kept
    if noise_type == "symmetric":
        if targets_allowed.sum() < 2:
            raise AlrError("symmetric noise needs at least 2 classes outside noise.keep_clean_classes")
        # a corrupted label is drawn among the classes outside keep_clean_classes only
        check_learnable_rate(noise_type, rate, int(targets_allowed.sum()), num_kept=int(kept.sum()))
        target = _uniform_other_class(labels, targets_allowed, rng)
    elif noise_type == "pairflip":
        check_learnable_rate(noise_type, rate, num_classes)
        if not (~kept & targets_allowed[(np.arange(num_classes) + 1) % num_classes]).any():
            raise AlrError(
                f"pair-flip noise moves a label of class c to c + 1, but with noise.keep_clean_classes "
                f"{list(keep_clean_classes)} no class is outside it together with its successor, so no label "
                "would change; keep fewer classes clean or set noise.type: none"
            )
        target = (labels + 1) % num_classes
    else:
        raise AlrError(f"noise.type is {noise_type!r}; valid: symmetric | pairflip | none")
    flip = (rng.random(len(labels)) < rate) & ~kept[labels] & targets_allowed[target]
    return np.where(flip, target, labels)


def max_learnable_rate(noise_type: str, num_classes: int) -> float:
    """The supremum of noise rates under which the true label stays the most frequent observed
    label of each class: (K − 1)/K for symmetric noise (at rate p the true label is kept with
    probability 1 − p and each of the K − 1 others drawn with p/(K − 1)), 1/2 for pair-flip."""
    return (num_classes - 1) / num_classes if noise_type == "symmetric" else 0.5


def check_learnable_rate(noise_type: str, rate: float, num_classes: int, num_kept: int = 0) -> None:
    """Refuse a rate at which the true label is no longer the majority label of its class:
    there no method can tell the true class from the noise. ``num_classes``: the classes the
    noise acts on, ``num_kept`` more being in noise.keep_clean_classes (named in the message)."""
    limit = max_learnable_rate(noise_type, num_classes)
    if rate >= limit:
        outside = " outside noise.keep_clean_classes" if num_kept else ""
        raise AlrError(
            f"noise.rate is {rate} with {noise_type} noise on K = {num_classes} classes{outside}; at rate ≥ "
            f"{limit:g} the true label is no longer the most frequent label of its class, so no method can "
            f"learn it. Use a rate below {limit:g}"
        )


def _uniform_other_class(labels: np.ndarray, allowed: np.ndarray, rng) -> np.ndarray:
    """For each label, a uniform draw among the allowed classes other than itself."""
    allowed_classes = np.flatnonzero(allowed)
    # position of each label among the allowed classes (-1 when the label itself is not allowed)
    position = np.full(len(allowed), -1)
    position[allowed_classes] = np.arange(len(allowed_classes))
    own = position[labels]
    draw = rng.integers(0, len(allowed_classes) - 1, size=len(labels))
    # skip over the label's own position so that every *other* allowed class is equally likely
    draw = np.where((own >= 0) & (draw >= own), draw + 1, draw)
    return allowed_classes[draw]


def transition_counts(true_labels: np.ndarray, observed_labels: np.ndarray, num_classes: int) -> np.ndarray:
    """K×K counts: row = true class, column = observed class."""
    true_labels = check_labels(true_labels, num_classes, None, "true_labels")
    observed_labels = check_labels(observed_labels, num_classes, len(true_labels), "observed_labels")
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (true_labels, observed_labels), 1)
    return matrix


def noise_summary(
    true_labels: np.ndarray, observed_labels: np.ndarray, class_names: Sequence[str]
) -> dict:
    """Realised corruption rate overall and per true class, the noisy share of each observed
    class (what a per-class selection rule faces: under symmetric noise a rare class's label
    is mostly carried by other classes' samples), and the transition counts."""
    matrix = transition_counts(true_labels, observed_labels, len(class_names))
    per_class_total = matrix.sum(axis=1)
    per_class_wrong = per_class_total - np.diag(matrix)
    observed_total = matrix.sum(axis=0)
    observed_wrong = observed_total - np.diag(matrix)
    return {
        "num_train": int(len(true_labels)),
        "num_corrupted": int(per_class_wrong.sum()),
        "realised_rate": float(per_class_wrong.sum() / max(len(true_labels), 1)),
        "realised_rate_per_class": {
            name: (float(wrong / total) if total else None)
            for name, wrong, total in zip(class_names, per_class_wrong, per_class_total)
        },
        "observed_class_counts": dict(zip(class_names, observed_total.tolist())),
        "noisy_share_per_observed_class": {
            name: (float(wrong / total) if total else None)
            for name, wrong, total in zip(class_names, observed_wrong, observed_total)
        },
        "transition_counts": matrix.tolist(),
    }


def kept_clean_text(keep_clean_classes: Sequence[int], class_names: Sequence[str]) -> str | None:
    """What ``inject_noise`` prints about ``noise.keep_clean_classes`` (valid class indices):
    each class by index and name, and a note where an index is the name of another class (class
    folders named "0" … "11" sort as text, so folder "10" is index 2). None when it is empty."""
    if not keep_clean_classes:
        return None
    kept = ", ".join(f"{k} ({class_names[k]!r})" for k in keep_clean_classes)
    text = f"kept clean (noise.keep_clean_classes, class indices): {kept}"
    misread = [k for k in keep_clean_classes if str(k) in class_names and class_names.index(str(k)) != k]
    if misread:
        k = misread[0]
        text += (f"; note: the class named {str(k)!r} is index {class_names.index(str(k))}, not {k}: the list takes "
                 "indices, in the order of data.class_names (or of the sorted class folder names)")
    return text


def noisy_label_table(
    samples: pd.DataFrame, num_classes: int, params: NoiseParams, rng: np.random.Generator
) -> pd.DataFrame:
    """The label table of the train split: sample_id, split, true_label, observed_label,
    is_corrupted. With ``noise.type: none`` the observed labels are the dataset's own and the
    truth is unknown, so ``true_label`` and ``is_corrupted`` are null."""
    train = samples[samples["split"] == "train"]
    given = train["label"].to_numpy(dtype=np.int64)
    table = pd.DataFrame({"sample_id": train["sample_id"].to_numpy(), "split": "train"})
    if params.type == "none":
        table["true_label"] = pd.array([None] * len(train), dtype="Int64")
        table["observed_label"] = given
        table["is_corrupted"] = pd.array([None] * len(train), dtype="boolean")
        return table
    observed = inject_noise(given, num_classes, params.type, params.rate, params.keep_clean_classes, rng)
    table["true_label"] = pd.array(given, dtype="Int64")
    table["observed_label"] = observed
    table["is_corrupted"] = pd.array(observed != given, dtype="boolean")
    return table
