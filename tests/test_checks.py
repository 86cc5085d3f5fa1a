"""Boundary checks of the pure functions over arrays (alr_core.common.checks and its callers): a
researcher's plausible wrong input (log-probabilities, a label of -1, a list where an array is
meant) is an error naming what was expected, never a silent wrong answer."""

from __future__ import annotations

import numpy as np
import pytest

from alr_core.active import consensus, strategies
from alr_core.common.checks import check_labels, check_probs
from alr_core.common.errors import AlrError
from alr_core.data import noise
from alr_core.evaluation.metrics import classification_metrics, selection_metrics
from alr_core.lnl import class_rules

P = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.4, 0.3]])
NOT_PROBABILITIES = "are not probabilities: values in"


def error_of(call, *args) -> str:
    with pytest.raises(AlrError) as info:
        call(*args)
    return str(info.value)


@pytest.mark.parametrize("bad, fragment", [
    (np.log(P), f"probs {NOT_PROBABILITIES} [-2.30259, -0.223144], row sums up to 5.82831 from 1"),
    (P * 3, f"probs {NOT_PROBABILITIES} [0.3, 2.4], row sums up to 2 from 1; pass softmax outputs, not logits"),
    (np.array([[np.nan, 0.5, 0.5]] * 3), "probs holds NaN or infinite values in 3 rows; expected probabilities"),
    (P[:, 0], "probs has shape (3,); expected 2 dimensions, the last one the K classes"),
])  # fmt: skip
def test_check_probs_names_what_is_wrong(bad, fragment):
    assert error_of(check_probs, bad).startswith(fragment)


def test_check_probs_passes_float32_softmax_rows_and_returns_float64():
    logits = np.random.default_rng(0).normal(size=(50, 7)).astype(np.float32)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    checked = check_probs(probs)
    assert checked.dtype == np.float64 and np.array_equal(checked, probs.astype(np.float64))
    assert check_probs(np.zeros((0, 3))).shape == (0, 3)


@pytest.mark.parametrize("labels, fragment", [
    (np.array([-1, 0, 1]), "labels holds values in [-1, 1]; expected [0, 3)"),
    (np.array([0, 1, 3]), "labels holds values in [0, 3]; expected [0, 3)"),
    (np.array([0.0, 1.0, 2.0]), "labels has dtype float64; expected integers in [0, 3)"),
    (np.array([0, 1]), "labels has shape (2,); expected (3,), one per row"),
    (np.array([[0, 1, 2]]), "labels has shape (1, 3); expected (3,), one per row"),
])  # fmt: skip
def test_check_labels_names_what_is_wrong(labels, fragment):
    assert error_of(check_labels, labels, 3, 3) == fragment
    assert check_labels([2, 0, 1], 3, 3).tolist() == [2, 0, 1]  # a list of ints is fine


@pytest.mark.parametrize("score", [strategies.entropy, strategies.least_confidence, strategies.margin])
def test_query_scores_refuse_log_probabilities(score):
    # entropy gave NaN for every row, a ranking in arbitrary order
    assert NOT_PROBABILITIES in error_of(score, np.log(P))


def test_bald_and_label_disagreement_check_their_inputs():
    assert error_of(strategies.bald, P).startswith("mc_probs has shape (3, 3); expected 3 dimensions")
    # -1 was read as the last class, and one label was stretched over every row
    assert error_of(strategies.label_disagreement, P, np.array([-1, 0, 1]), 0.3).startswith("labels holds values")
    assert error_of(strategies.label_disagreement, P, np.array([0]), 0.3).startswith("labels has shape (1,)")
    assert error_of(strategies.margin, np.ones((3, 1))) == "probs has 1 column; margin needs K ≥ 2 classes"


def test_confident_learning_rules_refuse_log_probabilities_and_negative_labels():
    # the rescaled log-probabilities passed cleanlab's own check and kept the wrong samples (precision 0.22)
    labels = np.array([0, 2, 1])
    assert NOT_PROBABILITIES in error_of(class_rules.confident_learning, np.log(P), labels)
    assert NOT_PROBABILITIES in error_of(class_rules.estimated_clean_counts, np.log(P), labels)
    assert error_of(class_rules.confident_learning, P, np.array([-1, 2, 1])).startswith("labels holds values")
    assert error_of(class_rules.noise_quota, np.zeros(3), P, np.array([0, 2])).startswith("labels has shape (2,)")


def test_metrics_refuse_mismatched_columns_labels_and_masks():
    assert error_of(classification_metrics, np.array([0, 1, 2]), np.c_[P, np.zeros(3)], ["a", "b", "c"]) == (
        "probs has 4 columns; expected 3, one per class name")
    assert error_of(classification_metrics, np.array([0, 1, 3]), P, ["a", "b", "c"]) == (
        "labels holds values in [0, 3]; expected [0, 3)")
    assert error_of(classification_metrics, np.array([0, 1]), P, ["a", "b", "c"]).startswith("labels has shape (2,)")
    # logits scored as probabilities: argmax agrees, but the AUROCs and anything else read from them do not
    assert NOT_PROBABILITIES in error_of(classification_metrics, np.array([0, 1, 2]), np.log(P) * 3, ["a", "b", "c"])
    assert "expected a bool mask of shape" in error_of(
        selection_metrics, np.array([0, 1]), np.array([0, 1, 1, 0]), None, ["a", "b"])  # indices, not a mask
    assert error_of(selection_metrics, np.ones(3, bool), np.array([0, -1, 1]), None, ["a", "b"]).startswith(
        "observed holds values in [-1, 1]")  # bincount's "negative values" before


def test_selection_metrics_takes_the_truth_as_a_list():
    # a list compared with a class index is False: every per-class recall came back None
    kept, observed, truth = np.array([1, 1, 0, 1], bool), np.array([0, 1, 1, 0]), [0, 1, 0, 0]
    as_list = selection_metrics(kept, observed, truth, ["a", "b"])
    assert as_list == selection_metrics(kept, observed, np.array(truth), ["a", "b"])
    assert as_list["worst_class_recall"] == 1.0


@pytest.mark.parametrize("answers, fragment", [
    (np.array([[0, -2, -2], [1, 1, -2]]), "answers hold values in [-2, 1]; expected classes in [0, 3) or -1"),
    (np.array([0, 1, 1]), "answers has shape (3,) and dtype int64; expected integers (n samples, m annotators)"),
    (np.array([[0.0, np.nan]]), "answers has shape (1, 2) and dtype float64; expected integers"),
])  # fmt: skip
def test_votes_refuse_other_missing_codes_one_annotator_as_a_row_and_floats(answers, fragment):
    assert error_of(consensus.majority_vote, answers, 3).startswith(fragment)


def test_noise_quota_checks_probs_before_reading_their_columns():
    # a binary classifier's p(y=1) alone: np.shape(probs)[1] was an IndexError
    assert error_of(class_rules.noise_quota, np.zeros(3), P[:, 0], np.array([0, 1, 1])).startswith(
        "probs has shape (3,); expected 2 dimensions")


def test_empty_labels_as_a_list_are_no_labels():
    assert check_labels([], 3, 0).dtype == np.int64
    assert noise.inject_noise([], 3, "symmetric", 0.3, [], np.random.default_rng(0)).tolist() == []


def test_noise_refuses_labels_out_of_range():
    # -1 was never flipped to class 2, being read as it, and stayed -1
    message = error_of(noise.inject_noise, np.array([-1, 0, 1]), 3, "symmetric", 0.3, [], np.random.default_rng(0))
    assert message == "labels holds values in [-1, 1]; expected [0, 3)"
    assert error_of(noise.noise_summary, np.array([0, 1, -1]), np.array([0, 1, 2]), ["a", "b", "c"]) == (
        "true_labels holds values in [-1, 1]; expected [0, 3)")


@pytest.mark.parametrize("bad, fragment", [
    (np.zeros((3, 0)), "probs has shape (3, 0); expected 2 dimensions, the last one the K classes"),
    (np.array([[-0.1, 0.6, 0.5]]), f"probs {NOT_PROBABILITIES} [-0.1, 0.6], row sums up to 0 from 1"),
    (np.array([[1.0005, 0.0]]), f"probs {NOT_PROBABILITIES} [0, 1.0005], row sums up to 0.0005 from 1"),
    (np.array([[0.6, 0.45]]), f"probs {NOT_PROBABILITIES} [0.45, 0.6], row sums up to 0.05 from 1"),
])  # fmt: skip
def test_check_probs_refuses_no_classes_and_rows_that_sum_to_one_outside_0_1(bad, fragment):
    # no columns passed every check; a negative entry or one above 1 in a row summing to 1, or
    # sigmoid outputs per class (a row summing to 1.05), are no probabilities either
    assert error_of(check_probs, bad).startswith(fragment)


@pytest.mark.parametrize("num_classes", [True, 0, 2.0])
def test_check_labels_refuses_a_num_classes_that_is_no_count(num_classes):
    assert error_of(check_labels, [0], num_classes, 1) == f"num_classes is {num_classes!r}; expected an integer ≥ 1"


def test_votes_refuse_a_class_one_past_the_last_and_take_no_samples():
    # the class K itself was an IndexError deep in the counting, and no rows were a ValueError of max()
    assert error_of(consensus.vote_counts, np.array([[0, 3]]), 3).startswith(
        "answers hold values in [0, 3]; expected classes in [0, 3) or -1")
    assert consensus.vote_counts(np.zeros((0, 2), dtype=np.int64), 3).shape == (0, 3)


def test_selection_metrics_refuses_a_0_1_integer_mask_and_a_truth_of_another_shape():
    observed = np.array([0, 1, 1, 0])
    assert error_of(selection_metrics, np.array([1, 1, 0, 1]), observed, None, ["a", "b"]).startswith(
        "kept has shape (4,) and dtype int64; expected a bool mask")  # read as indices 1, 1, 0, 1
    assert error_of(selection_metrics, np.array([1, 1, 0, 1], bool), observed, [0], ["a", "b"]).startswith(
        "truth has shape (1,); expected (4,)")  # broadcast over every row


def test_above_chance_refuses_negative_labels_and_noise_quota_losses_of_another_length():
    # -1 was read as the last class; losses for 2 of 3 rows kept a mask of the wrong length
    assert error_of(class_rules.above_chance, P, np.array([-1, 0, 1])).startswith("labels holds values in [-1, 1]")
    assert error_of(class_rules.noise_quota, np.zeros(2), P, np.array([0, 2, 1])) == (
        "labels has shape (3,); expected (2,), one per row")
