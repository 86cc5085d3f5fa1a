"""Several answers per sample: the aggregation rules on hand arrays, the simulated team, the
round's annotation metrics, and the budget in answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from builders import rounds_param

from alr_core.active.consensus import (
    NO_ANSWER,
    aggregate,
    annotation_metrics,
    dawid_skene,
    decide,
    majority_vote,
    simulated_annotators,
    vote_counts,
)
from alr_core.active.rounds import current_round
from alr_core.common.errors import AlrError
from alr_core.common.params import parse_params
from alr_core.common.seeding import rng_for

_ = NO_ANSWER


def test_vote_counts_ignore_missing_answers():
    answers = np.array([[0, 0, 1], [2, _, _], [_, _, _]])
    assert vote_counts(answers, 3).tolist() == [[2, 1, 0], [0, 0, 1], [0, 0, 0]]


def test_majority_vote_ties_and_unanswered():
    answers = np.array([[0, 0, 1], [2, 1, _], [1, _, _], [_, _, _], [2, 0, 1]])
    labels, tied = majority_vote(answers, 3)
    assert labels[0] == 0 and labels[2] == 1 and labels[3] == NO_ANSWER
    assert tied.tolist() == [False, True, False, False, True]


def reliable_and_two_adversarial() -> tuple[np.ndarray, np.ndarray]:
    """30 samples, 3 classes. Annotator 0 is always right; annotator 1 always answers the next
    class (t + 1); annotator 2 is right on 21 samples and answers t + 1 on the last 9, where
    annotators 1 and 2 out-vote annotator 0."""
    truth = np.arange(30) % 3
    shifted = (truth + 1) % 3
    answers = np.stack([truth, shifted, np.where(np.arange(30) >= 21, shifted, truth)], axis=1)
    return answers, truth


def test_dawid_skene_beats_majority_vote_on_a_reliable_and_two_adversarial_annotators():
    answers, truth = reliable_and_two_adversarial()
    majority, tied = majority_vote(answers, 3)
    assert not tied.any() and (majority == truth).sum() == 21  # the last 9 are out-voted
    result = dawid_skene(answers, 3)
    assert (result.posteriors.argmax(axis=1) == truth).all()
    assert result.iterations < 100  # converged
    np.testing.assert_allclose(result.confusions[0], np.eye(3), atol=0.01)  # annotator 0: reliable
    np.testing.assert_allclose(result.confusions[1], np.roll(np.eye(3), 1, axis=1), atol=0.01)  # t → t + 1
    np.testing.assert_allclose(np.diag(result.confusions[2]), 0.7, atol=0.01)
    np.testing.assert_allclose(result.posteriors.sum(axis=1), 1.0)
    np.testing.assert_allclose(result.priors, 1 / 3, atol=0.01)  # ten samples of each class
    labels, tied = aggregate(answers, 3, "dawid_skene")
    assert (labels == truth).all() and not tied.any()


def test_dawid_skene_confusion_rows_sum_to_one_for_an_annotator_who_always_answers_zero():
    # one annotator, three samples, always 0: after one M-step (posteriors = vote shares, all
    # class 0) the counts are [[3, 0], [0, 0]] + 0.01; each truth row is normalised over the
    # answers, so the never-seen truth 1 gets the uniform row, not a share of the column
    one_step = dawid_skene(np.array([[0], [0], [0]]), 2, max_iterations=1)
    np.testing.assert_allclose(one_step.confusions[0], [[3.01 / 3.02, 0.01 / 3.02], [0.5, 0.5]])
    converged = dawid_skene(np.array([[0], [0], [0]]), 2)
    np.testing.assert_allclose(converged.confusions.sum(axis=2), 1.0)


def test_dawid_skene_priors_sum_to_one_with_the_smoothing_spread_over_the_classes():
    # the same lopsided answers: one M-step gives (3 + 0.01, 0 + 0.01) / (3 + 2 · 0.01); the
    # smoothing is added once per class, so the denominator adds it K times
    one_step = dawid_skene(np.array([[0], [0], [0]]), 2, max_iterations=1)
    np.testing.assert_allclose(one_step.priors, [3.01 / 3.02, 0.01 / 3.02])
    answers, _truth = reliable_and_two_adversarial()
    assert dawid_skene(answers, 3, smoothing=0.5).priors.sum() == pytest.approx(1.0)


def test_dawid_skene_is_deterministic_and_leaves_unanswered_samples_at_zero():
    answers, _truth = reliable_and_two_adversarial()
    answers = np.vstack([answers, [[_, _, _]]])
    first, second = dawid_skene(answers, 3), dawid_skene(answers, 3)
    assert np.array_equal(first.posteriors, second.posteriors)
    assert first.posteriors[-1].tolist() == [0.0, 0.0, 0.0]
    labels, tied = aggregate(answers, 3, "dawid_skene")
    assert labels[-1] == NO_ANSWER and not tied[-1]


def test_dawid_skene_keeps_a_lone_answer():
    # one answer per sample: EM used to drift to the common class, [0, 0, 0, 0] here
    labels, tied = aggregate(np.array([[0], [0], [1], [2]]), 4, "dawid_skene")
    assert labels.tolist() == [0, 0, 1, 2] and not tied.any()
    # beside samples with several answers, whose label EM decides
    answers, truth = reliable_and_two_adversarial()
    answers = np.vstack([answers, [[_, 2, _], [1, _, _]]])
    labels, tied = aggregate(answers, 3, "dawid_skene")
    assert (labels[:-2] == truth).all() and labels[-2:].tolist() == [2, 1] and not tied.any()


def test_dawid_skene_one_against_one_is_a_tie():
    labels, tied = aggregate(np.array([[0, 1], [0, 1], [1, 0]]), 2, "dawid_skene")
    assert tied.all()


def test_dawid_skene_split_between_interchangeable_annotators_is_a_tie_despite_rounding():
    # 3 samples both answer 0, 3 both answer 1, 3 split (x says 0, y says 1): swapping the two
    # annotators and the two classes maps the answers onto themselves, so the split is an exact
    # tie; EM's floating point leaves its two posteriors ~2e-16 apart, which must still count as one
    answers = np.array([[0, 0]] * 3 + [[1, 1]] * 3 + [[0, 1]] * 3)
    labels, tied = aggregate(answers, 2, "dawid_skene")
    assert tied.tolist() == [False] * 6 + [True] * 3
    assert labels[:6].tolist() == [0, 0, 0, 1, 1, 1]


def test_dawid_skene_weighs_a_split_vote_by_the_class_priors():
    # two annotators who each sided once with and once against the other: the two split samples
    # go to class 0, which 8 of the 9 agreed samples hold (prior ≈ 0.82); the confusions alone pick 1
    answers = np.array([[0, 0]] * 8 + [[1, 1], [0, 1], [1, 0]])
    result = dawid_skene(answers, 2)
    assert result.priors[0] > 0.8
    assert (result.posteriors[-2:, 0] > 0.5).all()
    labels, tied = aggregate(answers, 2, "dawid_skene")
    assert labels.tolist() == [0] * 8 + [1, 0, 0] and not tied.any()


def test_cleanlab_follows_the_annotators_and_needs_two_of_them():
    answers = np.array([[0, 0, 0], [1, 1, _], [2, 2, 2], [0, 0, 1]])
    probs = np.full((4, 3), 1 / 3)
    labels, tied = aggregate(answers, 3, "cleanlab", probs)
    assert labels.tolist() == [0, 1, 2, 0] and not tied.any()
    with pytest.raises(AlrError, match="at least two annotators"):
        aggregate(np.array([[0], [1]]), 3, "cleanlab", probs[:2])
    # two annotators who split the queue: nothing to rate them by (cleanlab itself raises a ValueError)
    with pytest.raises(AlrError, match="needs at least one sample answered by two or more annotators"):
        aggregate(np.array([[0, _], [1, _], [_, 2], [_, 0]]), 3, "cleanlab", probs)
    labels, _ties = aggregate(np.array([[0, _], [1, _], [_, 2], [0, 0]]), 3, "cleanlab", probs)  # one overlap is enough
    assert labels[-1] == 0


def table(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["sample_id", "annotator", "label"])


def test_decide_outcomes_in_query_order():
    answers = table([("b", "x", 2), ("b", "y", 2), ("a", "x", 1), ("a", "y", 0), ("c", "x", -1)])
    query = pd.DataFrame({"sample_id": ["a", "b", "c", "d"]})  # d: not answered (a partial file)
    decided = decide(answers, query, 3, "majority")
    assert decided["sample_id"].tolist() == ["a", "b", "c"]
    assert decided["outcome"].tolist() == ["tied", "relabelled", "skipped"]
    assert decided["decided_label"].tolist() == [NO_ANSWER, 2, NO_ANSWER]  # a tie decides nothing


def test_decide_follows_the_query_order_not_the_sample_ids():
    answers = table([("a", "x", 1), ("c", "x", 0), ("b", "x", -1)])
    query = pd.DataFrame({"sample_id": ["c", "b", "a"]})
    decided = decide(answers, query, 3, "majority")
    assert decided["sample_id"].tolist() == ["c", "b", "a"]
    assert decided["decided_label"].tolist() == [0, NO_ANSWER, 1]
    assert decided["outcome"].tolist() == ["relabelled", "skipped", "relabelled"]


def test_decide_cleanlab_reads_the_query_probabilities():
    answers = table([("a", "x", 1), ("a", "y", 0), ("b", "x", 2), ("b", "y", 2)])
    query = pd.DataFrame({"sample_id": ["a", "b"], "probabilities": [[0.05, 0.9, 0.05], [0.1, 0.1, 0.8]]})
    decided = decide(answers, query, 3, "cleanlab")
    assert decided["decided_label"].tolist() == [1, 2]  # the model breaks the 1-vs-1 tie
    assert decided["outcome"].tolist() == ["relabelled", "relabelled"]


def test_simulated_annotators_are_seeded_and_wrong_at_the_noise_rate():
    truth = pd.Series(np.arange(2000) % 5, index=[f"s{i}" for i in range(2000)])
    first = simulated_annotators(truth, 5, 3, 0.2, rng_for(0, "simulated annotators round 1"))
    again = simulated_annotators(truth, 5, 3, 0.2, rng_for(0, "simulated annotators round 1"))
    other = simulated_annotators(truth, 5, 3, 0.2, rng_for(0, "simulated annotators round 2"))
    assert first.equals(again) and not first.equals(other)
    assert first["sample_id"].tolist()[:4] == ["s0", "s0", "s0", "s1"]
    assert first["annotator"].tolist()[:4] == ["simulated_1", "simulated_2", "simulated_3", "simulated_1"]
    wrong = first["label"].to_numpy() != truth.reindex(first["sample_id"]).to_numpy()
    assert abs(wrong.mean() - 0.2) < 0.02
    wrong_labels = first.loc[wrong, "label"].to_numpy()
    assert set(np.unique(wrong_labels)) == {0, 1, 2, 3, 4}  # drawn over the other classes


def test_simulated_wrong_answers_are_uniform_over_the_other_classes():
    # K = 4, always wrong: each of the three other classes gets about a third of 3000 answers
    # (a draw's share has a standard error of about 0.009), never the true class
    truth = pd.Series(np.zeros(3000, dtype=np.int64), index=[f"s{i}" for i in range(3000)])
    answers = simulated_annotators(truth, 4, 1, 1.0, rng_for(0, "uniform wrong answers"))
    shares = np.bincount(answers["label"], minlength=4) / len(answers)
    assert shares[0] == 0.0
    np.testing.assert_allclose(shares[1:], 1 / 3, atol=0.04)


def test_one_exact_simulated_annotator_is_the_truth():
    truth = pd.Series([3, 0, 1], index=["a", "b", "c"])
    answers = simulated_annotators(truth, 4, 1, 0.0, rng_for(0, "x"))
    assert answers["label"].tolist() == [3, 0, 1] and answers["annotator"].unique().tolist() == ["simulated_1"]


def test_annotation_metrics_by_hand():
    answers = table([("a", "x", 1), ("a", "y", 1), ("b", "x", 2), ("b", "y", 0), ("c", "x", 0), ("c", "y", -1)])
    answers["decided_label"] = [1, 1, -1, -1, 0, 0]
    answers["outcome"] = ["relabelled"] * 2 + ["tied"] * 2 + ["relabelled"] * 2
    truth = pd.Series({"a": 1, "b": 2, "c": 1, "z": 0})
    metrics = annotation_metrics(answers, truth)
    assert metrics["answers_used"] == 6 and metrics["skipped_answers"] == 1
    assert (metrics["samples_relabelled"], metrics["samples_tied"], metrics["samples_skipped"]) == (2, 1, 0)
    assert metrics["samples_multi_answered"] == 2 and metrics["agreement_rate"] == 0.5  # a agrees, b does not
    assert metrics["annotator_accuracy"] == {"x": 2 / 3, "y": 1 / 2}  # x: a, b right, c wrong; y: a right, b wrong
    assert metrics["consensus_accuracy"] == 0.5  # a right, c wrong
    unknown = annotation_metrics(answers, pd.Series([pd.NA] * 3, index=["a", "b", "c"], dtype="Int64"))
    assert unknown["annotator_accuracy"] is None and unknown["consensus_accuracy"] is None
    partial = annotation_metrics(answers, pd.Series([1, 2, pd.NA], index=["a", "b", "c"], dtype="Int64"))
    assert partial["annotator_accuracy"] is None and partial["consensus_accuracy"] is None  # one truth unknown


def test_annotation_metrics_agreement_is_the_share_of_multi_answered_samples_that_agree():
    # a and b agree (a skip and a lone answer do not count), c disagrees, d has one answer: 2 of 3
    answers = table([("a", "x", 1), ("a", "y", 1), ("b", "x", 2), ("b", "y", 2), ("b", "z", -1),
                     ("c", "x", 0), ("c", "y", 1), ("d", "x", 0), ("d", "y", -1)])  # fmt: skip
    answers["decided_label"], answers["outcome"] = 0, "relabelled"
    metrics = annotation_metrics(answers, None)
    assert metrics["samples_multi_answered"] == 3 and metrics["agreement_rate"] == 2 / 3


def test_budget_counts_answers_and_queries_a_kth_of_the_samples():
    params = parse_params({"budget": 100, "al": {"annotators": 3}, "rounds": rounds_param(5)})
    rounds = [current_round(params, str(r)) for r in range(1, 6)]
    assert [r.budget for r in rounds] == [7, 7, 7, 6, 6]  # ⌊100 / 3⌋ = 33 samples
    assert rounds[-1].budget_before + rounds[-1].budget == rounds[0].budget_total == 33
    assert {r.answers_per_sample for r in rounds} == {3}
    single = current_round(parse_params({"budget": 100, "rounds": rounds_param(5)}), "1")
    assert (single.budget, single.budget_total, single.answers_per_sample) == (20, 100, 1)
