"""Metrics (alr_core.evaluation.metrics) against scikit-learn on fixed arrays, and the clean-selection
metrics on hand-made examples."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from alr_core.evaluation.metrics import (checkpoint_scores, classification_metrics, macro_auroc,
                                         paired_balanced_accuracy_test, selection_metrics)

NAMES = ["cat", "dog", "fox", "owl"]


def fixed_arrays(num_samples=200, num_classes=4, seed=0):
    """Labels and probabilities with some signal (about 60% accuracy), rows summing to 1."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, num_samples)
    logits = rng.normal(size=(num_samples, num_classes))
    logits[np.arange(num_samples), labels] += 1.2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return labels, probs


def test_fixed_arrays_are_not_degenerate():
    labels, probs = fixed_arrays()
    accuracy = (probs.argmax(1) == labels).mean()
    assert 0.4 < accuracy < 0.9
    assert set(labels.tolist()) == {0, 1, 2, 3}
    assert set(probs.argmax(1).tolist()) == {0, 1, 2, 3}
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)


def test_classification_metrics_match_sklearn():
    labels, probs = fixed_arrays()
    predictions = probs.argmax(axis=1)
    result = classification_metrics(labels, probs, NAMES)

    assert result["accuracy"] == pytest.approx(skm.accuracy_score(labels, predictions), abs=1e-12)
    assert result["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(labels, predictions), abs=1e-12)
    assert result["macro_f1"] == pytest.approx(skm.f1_score(labels, predictions, average="macro"), abs=1e-12)
    assert result["macro_auroc"] == pytest.approx(
        skm.roc_auc_score(labels, probs, multi_class="ovr", average="macro"), abs=1e-12
    )
    assert result["mcc"] == pytest.approx(skm.matthews_corrcoef(labels, predictions), abs=1e-12)
    recall = skm.recall_score(labels, predictions, average=None)
    precision = skm.precision_score(labels, predictions, average=None)
    assert list(result["recall_per_class"]) == NAMES
    assert list(result["precision_per_class"]) == NAMES
    for k, name in enumerate(NAMES):
        assert result["recall_per_class"][name] == pytest.approx(recall[k], abs=1e-12)
        assert result["precision_per_class"][name] == pytest.approx(precision[k], abs=1e-12)
    assert result["confusion_matrix"] == skm.confusion_matrix(labels, predictions).tolist()
    # JSON-ready: plain Python types
    assert all(type(result[key]) is float for key in ("accuracy", "balanced_accuracy", "macro_f1", "macro_auroc", "mcc"))
    assert all(type(v) is int for row in result["confusion_matrix"] for v in row)


def test_mcc_is_none_for_a_split_of_one_class():
    # scikit-learn says 0 ("no better than chance") for a model that got every sample of the one class right
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.4, 0.6]])
    assert classification_metrics(np.array([0, 0, 0]), probs, ["benign", "malignant"])["mcc"] is None
    assert classification_metrics(np.array([0, 0, 1]), probs, ["benign", "malignant"])["mcc"] == pytest.approx(1.0)


def test_classification_metrics_hand_example():
    labels = np.array([0, 0, 0, 1, 1, 2])
    probs = np.array([
        [0.8, 0.1, 0.1],  # 0 -> 0
        [0.6, 0.3, 0.1],  # 0 -> 0
        [0.2, 0.7, 0.1],  # 0 -> 1
        [0.1, 0.8, 0.1],  # 1 -> 1
        [0.5, 0.3, 0.2],  # 1 -> 0
        [0.1, 0.1, 0.8],  # 2 -> 2
    ])  # fmt: skip
    result = classification_metrics(labels, probs, ["a", "b", "c"])
    assert result["accuracy"] == pytest.approx(4 / 6)
    assert result["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert result["recall_per_class"] == pytest.approx({"a": 2 / 3, "b": 0.5, "c": 1.0})
    assert result["precision_per_class"] == pytest.approx({"a": 2 / 3, "b": 0.5, "c": 1.0})
    assert result["confusion_matrix"] == [[2, 1, 0], [1, 1, 0], [0, 0, 1]]


def test_classification_metrics_with_a_class_missing_from_labels():
    """A split without class 'owl' among its labels: balanced accuracy and AUROC over the
    classes present, recall of the missing class None; nothing raises."""
    labels, probs = fixed_arrays(seed=1)
    keep = labels != 3
    labels, probs = labels[keep], probs[keep]
    predictions = probs.argmax(axis=1)
    assert 3 in predictions  # the missing class is still predicted sometimes
    result = classification_metrics(labels, probs, NAMES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns about the class absent from y_true
        expected_bacc = skm.balanced_accuracy_score(labels, predictions)
    assert result["balanced_accuracy"] == pytest.approx(expected_bacc, abs=1e-12)
    assert result["recall_per_class"]["owl"] is None
    assert result["precision_per_class"]["owl"] == 0.0  # predicted, never right
    expected_auroc = np.mean([skm.roc_auc_score(labels == k, probs[:, k]) for k in range(3)])
    assert result["macro_auroc"] == pytest.approx(expected_auroc, abs=1e-12)
    # macro-F1 over the same three classes: the absent one has no F1, and counting it as 0 capped
    # a perfect model at 0.75 here
    assert result["macro_f1"] == pytest.approx(skm.f1_score(labels, predictions, labels=[0, 1, 2], average="macro"))
    perfect = classification_metrics(labels, np.eye(4)[labels], NAMES)
    assert perfect["macro_f1"] == perfect["balanced_accuracy"] == 1.0
    assert np.array(result["confusion_matrix"]).shape == (4, 4)
    assert np.array(result["confusion_matrix"])[3].sum() == 0


def test_precision_of_a_never_predicted_class_is_none():
    labels = np.array([0, 1, 2, 0])
    probs = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.6, 0.4, 0.0], [0.7, 0.2, 0.1]])
    result = classification_metrics(labels, probs, ["a", "b", "c"])
    assert result["precision_per_class"]["c"] is None
    assert result["recall_per_class"]["c"] == 0.0
    assert result["macro_f1"] == pytest.approx(
        skm.f1_score(labels, probs.argmax(1), labels=[0, 1, 2], average="macro", zero_division=0)
    )


def test_macro_auroc_equals_sklearn_when_all_classes_present():
    labels, probs = fixed_arrays(seed=2)
    assert macro_auroc(labels, probs) == pytest.approx(
        skm.roc_auc_score(labels, probs, multi_class="ovr", average="macro"), abs=1e-12
    )


def test_macro_auroc_with_missing_class_does_not_raise():
    labels, probs = fixed_arrays(seed=3)
    labels = np.where(labels == 1, 0, labels)  # class 1 absent
    expected = np.mean([skm.roc_auc_score(labels == k, probs[:, k]) for k in (0, 2, 3)])
    assert macro_auroc(labels, probs) == pytest.approx(expected, abs=1e-12)


def test_macro_auroc_single_class_is_none():
    probs = np.full((5, 3), 1 / 3)
    assert macro_auroc(np.zeros(5, dtype=int), probs) is None


def test_macro_auroc_perfect_and_reversed():
    labels = np.array([0, 0, 1, 1])
    assert macro_auroc(labels, np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.1, 0.9]])) == 1.0
    assert macro_auroc(labels, np.array([[0.1, 0.9], [0.2, 0.8], [0.7, 0.3], [0.9, 0.1]])) == 0.0


# ----------------------------------------------------------------------------- selection metrics

#                   0  1  2  3  4  5  6  7
OBSERVED = np.array([0, 0, 0, 1, 1, 2, 2, 2])
TRUTH = np.array([0, 0, 1, 1, 0, 0, 1, 0])
# clean: 0, 1 (class a) and 3 (class b); class c has no clean sample


def test_selection_metrics_hand_example():
    kept = np.array([1, 0, 1, 0, 1, 1, 0, 0], dtype=bool)
    result = selection_metrics(kept, OBSERVED, TRUTH, ["a", "b", "c"])
    assert result["kept"] == 4
    assert type(result["kept"]) is int
    assert result["kept_share"] == 0.5
    assert result["precision"] == pytest.approx(1 / 4)  # only sample 0 is kept and clean
    assert result["recall"] == pytest.approx(1 / 3)  # 1 of the 3 clean samples
    assert result["recall_per_class"] == {"a": 0.5, "b": 0.0, "c": None}
    # by observed class: a keeps {0, 2} (0 clean), b keeps {4} (noisy), c keeps {5} (noisy)
    assert result["precision_per_class"] == {"a": 0.5, "b": 0.0, "c": 0.0}
    assert result["worst_class_recall"] == 0.0  # class b lost its only clean sample
    # observed a: {0, 1, 2} keeps {0, 2}; b: {3, 4} keeps {4}; c: {5, 6, 7} keeps {5}
    assert result["kept_share_per_class"] == {"a": pytest.approx(2 / 3), "b": 0.5, "c": pytest.approx(1 / 3)}


def test_selection_metrics_without_the_truth_count_what_each_observed_class_keeps():
    kept = np.array([1, 0, 1, 0, 1, 1, 0, 0], dtype=bool)
    result = selection_metrics(kept, OBSERVED, None, ["a", "b", "c", "d"])  # nobody is labelled d
    assert result == {"kept": 4, "kept_share": 0.5,
                      "kept_share_per_class": {"a": pytest.approx(2 / 3), "b": 0.5, "c": pytest.approx(1 / 3), "d": None},
                      "precision": None, "recall": None, "worst_class_recall": None, "recall_per_class": None,
                      "precision_per_class": None}  # fmt: skip
    with_truth = selection_metrics(kept, OBSERVED, TRUTH, ["a", "b", "c", "d"])
    assert {k: with_truth[k] for k in ("kept", "kept_share", "kept_share_per_class")} == \
        {k: result[k] for k in ("kept", "kept_share", "kept_share_per_class")}  # fmt: skip


def test_selection_metrics_no_kept_sample_in_a_class():
    kept = np.array([1, 1, 0, 1, 0, 0, 0, 0], dtype=bool)
    result = selection_metrics(kept, OBSERVED, TRUTH, ["a", "b", "c"])
    assert result["precision"] == 1.0
    assert result["recall"] == 1.0
    assert result["recall_per_class"] == {"a": 1.0, "b": 1.0, "c": None}
    assert result["precision_per_class"] == {"a": 1.0, "b": 1.0, "c": None}
    assert result["worst_class_recall"] == 1.0


def test_selection_metrics_a_class_that_loses_every_sample_keeps_a_share_of_zero():
    # observed c {5, 6, 7} keeps nothing: 0.0, not None (None is for a class nobody is labelled with)
    kept = np.array([1, 1, 0, 1, 0, 0, 0, 0], dtype=bool)
    result = selection_metrics(kept, OBSERVED, TRUTH, ["a", "b", "c"])
    assert result["kept_share_per_class"] == {"a": pytest.approx(2 / 3), "b": 0.5, "c": 0.0}
    assert selection_metrics(kept, OBSERVED, None, ["a", "b", "c"])["kept_share_per_class"]["c"] == 0.0


def test_selection_metrics_worst_class_recall_with_one_class_that_has_clean_samples():
    # every sample is truly a: clean are 0 and 1 (observed a), sample 2 (observed b) is noisy;
    # class b has no clean sample, so the worst recall is a's, 1 of its 2 clean samples kept
    result = selection_metrics(np.array([True, False, True]), np.array([0, 0, 1]), np.array([0, 0, 0]), ["a", "b"])
    assert result["recall_per_class"] == {"a": 0.5, "b": None}
    assert result["worst_class_recall"] == 0.5


def test_selection_metrics_nothing_kept():
    kept = np.zeros(8, dtype=bool)
    result = selection_metrics(kept, OBSERVED, TRUTH, ["a", "b", "c"])
    assert result["kept"] == 0 and result["kept_share"] == 0.0
    assert result["precision"] is None
    assert result["recall"] == 0.0
    assert result["worst_class_recall"] == 0.0
    assert result["precision_per_class"] == {"a": None, "b": None, "c": None}


def test_selection_metrics_no_clean_sample_at_all():
    observed = np.array([0, 1, 1])
    truth = np.array([1, 0, 0])
    result = selection_metrics(np.array([True, False, True]), observed, truth, ["a", "b"])
    assert result["precision"] == 0.0
    assert result["recall"] is None
    assert result["worst_class_recall"] is None
    assert result["recall_per_class"] == {"a": None, "b": None}


def test_selection_metrics_against_sklearn_on_random_arrays():
    rng = np.random.default_rng(4)
    truth = rng.integers(0, 4, 300)
    observed = np.where(rng.random(300) < 0.3, rng.integers(0, 4, 300), truth)
    kept = rng.random(300) < 0.6
    clean = observed == truth
    result = selection_metrics(kept, observed, truth, NAMES)
    assert result["precision"] == pytest.approx(skm.precision_score(clean, kept))
    assert result["recall"] == pytest.approx(skm.recall_score(clean, kept))
    for k, name in enumerate(NAMES):
        in_true_class = truth == k
        assert result["recall_per_class"][name] == pytest.approx(
            skm.recall_score(clean[in_true_class], kept[in_true_class])
        )
        in_observed_class = observed == k
        assert result["precision_per_class"][name] == pytest.approx(
            skm.precision_score(clean[in_observed_class], kept[in_observed_class])
        )
    assert result["worst_class_recall"] == min(result["recall_per_class"].values())


# ----------------------------------------------------------------------------- paired balanced-accuracy test


def two_predictions(num_samples=300, num_classes=3, seed=0, right_a=0.8, right_b=0.6):
    """Imbalanced labels and two predictions right on about ``right_a`` and ``right_b`` of them."""
    rng = np.random.default_rng(seed)
    shares = np.linspace(1, 0.3, num_classes)
    labels = rng.choice(num_classes, num_samples, p=shares / shares.sum())
    wrong = (labels + rng.integers(1, num_classes, num_samples)) % num_classes
    a = np.where(rng.random(num_samples) < right_a, labels, wrong)
    b = np.where(rng.random(num_samples) < right_b, labels, wrong)
    return labels, a, b


def test_paired_test_difference_is_sklearns_difference():
    labels, a, b = two_predictions()
    found = paired_balanced_accuracy_test(labels, a, b, np.random.default_rng(0))
    expected = skm.balanced_accuracy_score(labels, a) - skm.balanced_accuracy_score(labels, b)
    assert found["diff"] == pytest.approx(expected, abs=1e-12)
    assert found["p_value"] == pytest.approx(1 / 10_001)  # a 20-point lead: no sign flip reaches it


def test_paired_test_p_values_by_hand():
    """Two classes of 100; a right on every sample b is right on, plus some."""
    labels = np.repeat([0, 1], 100)

    def right_on(first: int, second: int) -> np.ndarray:
        right = np.concatenate([np.arange(100) < first, np.arange(100) < second])
        return np.where(right, labels, 1 - labels)

    rng = np.random.default_rng(0)
    # 4 wins, 0 losses, 2 per class: only "all four won" reaches it, P = 1/16
    assert paired_balanced_accuracy_test(labels, right_on(72, 72), right_on(70, 70), rng)["p_value"] == \
        pytest.approx(1 / 16, abs=0.006)  # fmt: skip
    # 6 wins in one class: 1/64
    assert paired_balanced_accuracy_test(labels, right_on(76, 70), right_on(70, 70), rng)["p_value"] == \
        pytest.approx(1 / 64, abs=0.003)  # fmt: skip
    # identical predictions: nothing to flip, every draw reaches the observed 0
    same = paired_balanced_accuracy_test(labels, right_on(70, 70), right_on(70, 70), rng)
    assert same == {"diff": 0.0, "p_value": 1.0}
    # b the better: a's p-value is near 1
    assert paired_balanced_accuracy_test(labels, right_on(60, 60), right_on(80, 80), rng)["p_value"] == 1.0


def test_paired_test_counts_null_draws_whose_float_sum_rounds_below_the_observed():
    """Two classes of 10. Class 0: a wins 2, loses 1 (+0.1); class 1: a wins 2 (+0.2); observed
    (0.1 + 0.2) / 2, and 0.1 + 0.2 is 0.30000000000000004 in float. Draws reaching it: (+0.1,
    +0.2) 3/8 · 1/4, (+0.3, 0) 1/8 · 1/2, (+0.3, +0.2) 1/8 · 1/4, p = 6/32; the draw (+0.3, 0)
    sums to 0.3, a hair below, and without the tolerance p would fall to 4/32."""
    labels = np.repeat([0, 1], 10)
    a, b = labels.copy(), labels.copy()
    b[[0, 1, 10, 11]] = 1 - labels[[0, 1, 10, 11]]  # a right, b wrong: 2 in each class
    a[2] = 1  # b right, a wrong: 1 in class 0
    found = paired_balanced_accuracy_test(labels, a, b, np.random.default_rng(0))
    assert found["diff"] == pytest.approx(0.15)
    assert found["p_value"] == pytest.approx(6 / 32, abs=0.02)


def test_paired_test_weighs_classes_equally():
    """A lead of 3 samples in a class of 10 outweighs a loss of 3 in a class of 190."""
    labels = np.array([0] * 10 + [1] * 190)
    a, b = labels.copy(), labels.copy()
    a[190:193] = 0  # a wrong on 3 of class 1
    b[:3] = 1  # b wrong on 3 of class 0
    found = paired_balanced_accuracy_test(labels, a, b, np.random.default_rng(0))
    assert found["diff"] == pytest.approx((0.3 - 3 / 190) / 2)
    assert found["p_value"] == pytest.approx(1 / 8, abs=0.02)  # only the 3 wins of class 0 flipping all together


def test_paired_test_is_seeded_and_calibrated():
    labels, a, b = two_predictions(right_a=0.65, right_b=0.6)
    first = paired_balanced_accuracy_test(labels, a, b, np.random.default_rng(5))
    assert 0.01 < first["p_value"] < 0.5  # a p-value the draws decide, not a bound
    assert first == paired_balanced_accuracy_test(labels, a, b, np.random.default_rng(5))
    # under the null (both drawn alike) p-values are about uniform: about 5 % fall below 0.05
    p_values = [paired_balanced_accuracy_test(*two_predictions(seed=s, right_a=0.7, right_b=0.7),
                                              np.random.default_rng(s), resamples=2000)["p_value"]
                for s in range(400)]  # fmt: skip
    assert 0.02 < np.mean(np.array(p_values) < 0.05) < 0.09


def test_paired_test_rejects_mismatched_inputs():
    labels, a, b = two_predictions()
    with pytest.raises(ValueError, match=r"one length; got shapes \(300,\), \(299,\), \(300,\)"):
        paired_balanced_accuracy_test(labels, a[:-1], b, np.random.default_rng(0))
    with pytest.raises(ValueError, match="non-empty"):
        paired_balanced_accuracy_test(labels[:0], a[:0], b[:0], np.random.default_rng(0))


@pytest.mark.parametrize("seed", range(4))
def test_checkpoint_scores_are_classification_metrics_fields(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, 30)
    labels[labels == seed % 4] = (seed + 1) % 4  # a class with no sample: scored over the present ones
    probs = rng.dirichlet(np.ones(4), 30)
    full = classification_metrics(labels, probs, ["a", "b", "c", "d"])
    assert checkpoint_scores(labels, probs, 4) == {key: full[key] for key in ("balanced_accuracy", "macro_f1")}
