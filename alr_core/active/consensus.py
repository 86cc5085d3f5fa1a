"""Several answers per queried sample → one label: majority vote, Dawid–Skene, cleanlab.

The pure functions work on an answer matrix ``answers`` of shape (n samples, m annotators),
int, holding a class index or ``NO_ANSWER`` (−1) where that annotator gave no usable answer
(did not see the sample, or skipped it). :func:`decide` applies them to the long answers
table the oracle stage builds, and :func:`annotation_metrics` summarises a round's answers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from alr_core.common.errors import AlrError

NO_ANSWER = -1
SKIP = -1  # the label of a skipped answer in the long answers table
# outcome of a queried sample: a label was decided, the answers tied (label kept), or every answer was a skip
RELABELLED, TIED, SKIPPED = "relabelled", "tied", "skipped"


def vote_counts(answers: np.ndarray, num_classes: int) -> np.ndarray:
    """Votes per class, (n, K) int."""
    answers = np.asarray(answers)
    if answers.ndim != 2 or not np.issubdtype(answers.dtype, np.integer):
        raise AlrError(f"answers has shape {answers.shape} and dtype {answers.dtype}; expected integers (n samples, "
                       f"m annotators), {NO_ANSWER} where an annotator gave no answer")  # fmt: skip
    if answers.size and (((answers < 0) & (answers != NO_ANSWER)).any() or answers.max() >= num_classes):
        raise AlrError(f"answers hold values in [{answers.min()}, {answers.max()}]; expected classes in "
                       f"[0, {num_classes}) or {NO_ANSWER} (no answer)")  # fmt: skip
    counts = np.zeros((len(answers), num_classes), dtype=np.int64)
    for column in answers.T:
        given = column != NO_ANSWER
        np.add.at(counts, (np.flatnonzero(given), column[given]), 1)
    return counts


def top_or_tie(scores: np.ndarray, atol: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``scores`` (n, K): the best class, and whether another class is within
    ``atol`` of it (a tie). Rows of all zeros (no answer) are neither: label ``NO_ANSWER``."""
    best = scores.argmax(axis=1)
    top = scores.max(axis=1)
    tied = ((scores >= top[:, None] - atol).sum(axis=1) > 1) & (top > 0)
    return np.where(top > 0, best, NO_ANSWER), tied


def majority_vote(answers: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The most voted class per sample and whether the top vote count is shared (n,), (n,)."""
    return top_or_tie(vote_counts(answers, num_classes))


@dataclass(frozen=True)
class DawidSkene:
    posteriors: np.ndarray  # (n, K): P(true class | answers); zeros for a sample without answers
    priors: np.ndarray  # (K,): estimated class frequencies
    confusions: np.ndarray  # (m, K, K): annotator j answers l when the truth is k, row k sums to 1
    iterations: int


def dawid_skene(answers: np.ndarray, num_classes: int, max_iterations: int = 100, tolerance: float = 1e-6,
                smoothing: float = 0.01) -> DawidSkene:
    """Dawid & Skene (1979) EM: class priors and one confusion matrix per annotator.

    Starts from the vote shares (soft majority vote), then alternates the M-step (priors and
    confusions from the posteriors, each count plus ``smoothing`` so that an unseen
    (truth, answer) pair keeps a small probability instead of zero) and the E-step (posteriors
    ∝ prior × Π_j confusion_j[k, answer_j]) until no posterior moves by more than
    ``tolerance`` or ``max_iterations``. Deterministic: no random initialisation."""
    n, m = answers.shape
    given = answers != NO_ANSWER
    answered = given.any(axis=1)
    counts = vote_counts(answers, num_classes).astype(np.float64)
    posteriors = np.zeros((n, num_classes))
    posteriors[answered] = counts[answered] / counts[answered].sum(axis=1, keepdims=True)
    one_hot = np.zeros((m, n, num_classes))  # one_hot[j, i, l] = annotator j answered l on sample i
    for j in range(m):
        one_hot[j, np.flatnonzero(given[:, j]), answers[given[:, j], j]] = 1.0
    iterations = 0
    for iterations in range(1, max_iterations + 1):
        priors = (posteriors[answered].sum(axis=0) + smoothing) / (answered.sum() + smoothing * num_classes)
        confusions = np.einsum("ik,jil->jkl", posteriors, one_hot) + smoothing
        confusions /= confusions.sum(axis=2, keepdims=True)
        log_post = np.log(priors)[None, :] + np.einsum("jil,jkl->ik", one_hot, np.log(confusions))
        log_post -= log_post.max(axis=1, keepdims=True)
        updated = np.exp(log_post)
        updated /= updated.sum(axis=1, keepdims=True)
        updated[~answered] = 0.0
        change = np.abs(updated - posteriors).max() if n else 0.0
        posteriors = updated
        if change <= tolerance:
            break
    return DawidSkene(posteriors, priors, confusions, iterations)


def cleanlab_consensus(answers: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """cleanlab's CROWDLAB consensus (``get_label_quality_multiannotator``, best_quality): it
    weighs each annotator by estimated quality and the model's ``pred_probs`` (n, K) by its
    agreement with the annotators, and breaks ties itself, so it reports none. Samples
    without answers get ``NO_ANSWER``. Needs at least two annotators, and a sample two of them
    answered."""
    from cleanlab.multiannotator import get_label_quality_multiannotator

    answered = (answers != NO_ANSWER).any(axis=1)
    used = (answers[answered] != NO_ANSWER).any(axis=0)
    if used.sum() < 2:
        raise AlrError(
            f"al.aggregate 'cleanlab' needs answers from at least two annotators in a round (it rates "
            f"annotators by their agreement), got {int(used.sum())}; use majority or dawid_skene"
        )
    if not ((answers != NO_ANSWER).sum(axis=1) >= 2).any():  # annotators who split the queue between them
        raise AlrError(
            "al.aggregate 'cleanlab' needs at least one sample answered by two or more annotators (it rates "
            "annotators by their agreement), but every sample has one answer; let the annotators' samples "
            "overlap, or use majority or dawid_skene"
        )
    table = pd.DataFrame(answers[answered][:, used].astype(np.float64))
    table[table == NO_ANSWER] = np.nan
    result = get_label_quality_multiannotator(table, pred_probs[answered], verbose=False,
                                              return_detailed_quality=False, return_annotator_stats=False)
    labels = np.full(len(answers), NO_ANSWER, dtype=np.int64)
    labels[answered] = result["label_quality"]["consensus_label"].to_numpy(dtype=np.int64)
    return labels


def aggregate(answers: np.ndarray, num_classes: int, method: str,
              pred_probs: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One label per sample (``NO_ANSWER`` where nobody answered) and the ties (n,), (n,)."""
    if method == "majority":
        return majority_vote(answers, num_classes)
    if method == "dawid_skene":
        labels, tied = top_or_tie(dawid_skene(answers, num_classes).posteriors, atol=1e-9)
        # a lone answer has no disagreement to settle: EM on lone answers drifts towards the
        # common classes and overruled 9–46 % of an exact oracle's answers (3–8 classes)
        lone = (answers != NO_ANSWER).sum(axis=1) == 1
        lone_rows = answers[lone]
        labels[lone], tied[lone] = lone_rows[lone_rows != NO_ANSWER], False  # one answer per row, in row order
        return labels, tied
    if method == "cleanlab":
        return cleanlab_consensus(answers, pred_probs), np.zeros(len(answers), dtype=bool)
    raise ValueError(method)  # pragma: no cover - params validation lists the methods


def answer_matrix(table: pd.DataFrame, sample_ids: list[str]) -> tuple[np.ndarray, list[str]]:
    """The long answers table (sample_id, annotator, label; label ``SKIP`` for a skip) as an
    answer matrix over ``sample_ids`` (rows) and the annotators (columns, sorted)."""
    annotators = sorted(table["annotator"].unique())
    matrix = np.full((len(sample_ids), len(annotators)), NO_ANSWER, dtype=np.int64)
    row_of = {s: i for i, s in enumerate(sample_ids)}
    column_of = {a: j for j, a in enumerate(annotators)}
    for sample_id, annotator, label in table[["sample_id", "annotator", "label"]].itertuples(index=False):
        matrix[row_of[sample_id], column_of[annotator]] = label
    return matrix, annotators


def decide(table: pd.DataFrame, query: pd.DataFrame, num_classes: int, method: str) -> pd.DataFrame:
    """Per queried sample that got at least one answer (skips count): the decided label
    (``NO_ANSWER`` where nothing was decided: every answer a skip, or a tie) and the outcome
    (relabelled | tied | skipped), in query order.

    ``query`` needs sample_id and, for cleanlab, probabilities (the round model's K class
    probabilities per sample)."""
    answered = set(table["sample_id"])
    asked = [s for s in query["sample_id"] if s in answered]
    if not asked:
        return pd.DataFrame({"sample_id": pd.Series(dtype=object), "decided_label": pd.Series(dtype=np.int64),
                             "outcome": pd.Series(dtype=object)})  # fmt: skip
    matrix, _ = answer_matrix(table, asked)
    pred_probs = None
    if method == "cleanlab":
        probabilities = query.set_index("sample_id")["probabilities"]
        pred_probs = np.stack([np.asarray(probabilities[s], dtype=np.float64) for s in asked])
    labels, tied = aggregate(matrix, num_classes, method, pred_probs)
    outcome = np.where(labels == NO_ANSWER, SKIPPED, np.where(tied, TIED, RELABELLED))
    decided = np.where(outcome == RELABELLED, labels, NO_ANSWER)  # a tie's argmax is only the lowest tied class
    return pd.DataFrame({"sample_id": asked, "decided_label": decided, "outcome": outcome})


def simulated_annotators(truth: pd.Series, num_classes: int, annotators: int, noise: float,
                         rng: np.random.Generator) -> pd.DataFrame:
    """The simulated team: each of ``annotators`` answers each sample of ``truth`` (true label
    by sample_id) independently, wrong with probability ``noise``, a wrong answer drawn
    uniformly from the other K − 1 classes. Long table: sample_id, annotator, label."""
    true = truth.to_numpy(dtype=np.int64)
    wrong = rng.random((len(true), annotators)) < noise
    offset = rng.integers(1, num_classes, size=(len(true), annotators))
    given = np.where(wrong, (true[:, None] + offset) % num_classes, true[:, None])
    return pd.DataFrame({
        "sample_id": np.repeat(truth.index.to_numpy(dtype=object), annotators),
        "annotator": np.tile([f"simulated_{j + 1}" for j in range(annotators)], len(true)),
        "label": given.reshape(-1),
    })  # fmt: skip


def annotation_metrics(answers: pd.DataFrame, truth: pd.Series | None) -> dict:
    """A round's answers (one row per answer: sample_id, annotator, label, decided_label,
    outcome) summarised; ``truth`` (true label by sample_id) adds accuracies, else None.

    answers_used: every answer, skips included (each costs one budget unit);
    agreement_rate: share of samples with two or more non-skip answers whose answers all agree
    (None when no sample has two); annotator_accuracy: share of each annotator's non-skip
    answers equal to the truth; consensus_accuracy: share of relabelled samples whose decided
    label equals the truth."""
    per_sample = answers.drop_duplicates("sample_id").set_index("sample_id")
    given = answers[answers["label"] != SKIP]
    distinct = given.groupby("sample_id")["label"].agg(["size", "nunique"])
    multi = distinct[distinct["size"] >= 2]
    metrics = {
        "answers_used": len(answers),
        "skipped_answers": int((answers["label"] == SKIP).sum()),
        "samples_answered": len(per_sample),
        "samples_relabelled": int((per_sample["outcome"] == RELABELLED).sum()),
        "samples_tied": int((per_sample["outcome"] == TIED).sum()),
        "samples_skipped": int((per_sample["outcome"] == SKIPPED).sum()),
        "annotators": sorted(answers["annotator"].unique().tolist()),
        "samples_multi_answered": len(multi),
        "agreement_rate": float((multi["nunique"] == 1).mean()) if len(multi) else None,
        "annotator_accuracy": None,
        "consensus_accuracy": None,
    }
    if truth is not None and not truth.isna().any():
        right = given["label"].to_numpy() == truth.reindex(given["sample_id"]).to_numpy(dtype=np.int64)
        metrics["annotator_accuracy"] = {str(a): float(r.mean()) for a, r in
                                         pd.Series(right).groupby(given["annotator"].to_numpy())}  # fmt: skip
        decided = per_sample[per_sample["outcome"] == RELABELLED]
        if len(decided):
            metrics["consensus_accuracy"] = float(
                (decided["decided_label"].to_numpy() == truth.reindex(decided.index).to_numpy(dtype=np.int64)).mean()
            )
    return metrics
