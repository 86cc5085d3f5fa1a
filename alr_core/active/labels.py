"""Phase-2 bookkeeping: the budget check, the query, and the working label table with the one
definition of which samples are in the pool, labelled and trusted (docs/method.md, phase 2).

The working label table has one row per train sample, in a fixed order that no round changes:
``sample_id``, ``label`` (the current working label), ``observed_label`` (the noisy label
phase 1 saw), ``true_label`` (nullable: unknown for real noisy data), ``clean_guess``
(phase 1's C), ``label_source`` (observed | oracle | expert | skipped | tied | paper_protocol) and
``relabel_round`` (nullable: the round that answered the sample).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd

from alr_core.active.consensus import RELABELLED, SKIPPED, TIED
from alr_core.common.errors import AlrError


def initial_working_labels(noisy_labels: pd.DataFrame, clean_guess: np.ndarray) -> pd.DataFrame:
    """The round-0 table: observed labels, phase 1's clean guess, nothing re-labelled."""
    return pd.DataFrame({
        "sample_id": noisy_labels["sample_id"].to_numpy(),
        "label": noisy_labels["observed_label"].to_numpy(dtype=np.int64),
        "observed_label": noisy_labels["observed_label"].to_numpy(dtype=np.int64),
        "true_label": noisy_labels["true_label"].astype("Int64").to_numpy(),
        "clean_guess": np.asarray(clean_guess, dtype=bool),
        "label_source": "observed",
        "relabel_round": pd.array([None] * len(noisy_labels), dtype="Int64"),
    })  # fmt: skip


def in_pool(labels: pd.DataFrame, pool: str, paper_protocol: bool = False) -> np.ndarray:
    """Samples that may be queried, bool (N,): never queried before (answered or skipped), and
    with ``pool: unselected`` outside C, with ``pool: selected`` inside C (the labels that
    ``train_on: selected`` trains on). ``unselected_first`` pools every sample like ``all``;
    :func:`queried_first` then puts the samples outside C ahead of C.

    Under the paper protocol C gets its true labels at round 1 anyway, so C is never in the
    pool (querying it would spend budget on labels the protocol hands out for free)."""
    never_queried = labels["relabel_round"].isna().to_numpy()
    in_c = labels["clean_guess"].to_numpy(dtype=bool)
    if paper_protocol or pool == "unselected":
        return never_queried & ~in_c
    if pool == "selected":
        return never_queried & in_c
    return never_queried


def unvouched(labels: pd.DataFrame) -> np.ndarray:
    """Samples whose query was skipped or whose answers tied, bool (N,): the budget is spent and
    they have left the pool, but nobody vouched for the label."""
    return labels["label_source"].isin(["skipped", "tied"]).to_numpy()


def labelled(labels: pd.DataFrame) -> np.ndarray:
    """Samples the oracle answered with a class in some round, bool (N,)."""
    return labels["relabel_round"].notna().to_numpy() & ~unvouched(labels)


def trusted(labels: pd.DataFrame) -> np.ndarray:
    """(C less the samples an expert was unsure of) ∪ labelled, bool (N,): the samples whose
    labels training (``train_on: selected``) and core-set's distances rely on. An expert's skip
    or a tie on a sample of C casts doubt on phase 1's guess, so it is trusted no more."""
    return (labels["clean_guess"].to_numpy(dtype=bool) & ~unvouched(labels)) | labelled(labels)


def training_rows(labels: pd.DataFrame, train_on: str) -> np.ndarray:
    """The rows a round trains on, bool (N,): ``selected`` the trusted samples (the paper's
    C ∪ re-labelled); ``all`` every train sample with its current label; ``lnl`` every train
    sample too, the phase-1 selection rule deciding in training which of them count."""
    if train_on in ("all", "lnl"):
        return np.ones(len(labels), dtype=bool)
    return trusted(labels)


def check_budget_fits(budget: int, annotators: int, remaining_queries: int, round_number: int, pool: str,
                      pool_size: int, largest_pool: int) -> None:
    """``budget`` answers, ``annotators`` per queried sample, leave ``remaining_queries`` samples
    to query from round ``round_number`` on; the pool (``al.pool`` ``pool``) holds ``pool_size``
    samples now. ``largest_pool``: the size of ``al.pool: all``'s pool, suggested when it would
    hold them. An :class:`AlrError` in the budget's own units when they do not fit."""
    if remaining_queries <= pool_size:
        return
    per_sample = f" at {annotators} answers per sample (al.annotators)" if annotators > 1 else ""
    if round_number == 1:  # exact: no earlier round's share depends on the budget
        lower = f"lower budget to at most {pool_size * annotators}" if pool_size else "lower budget to 0"
    else:
        lower = "lower budget"
    larger = " or use al.pool: unselected_first or all" if remaining_queries <= largest_pool else ""
    empty = ""
    if pool_size == 0 and pool in ("unselected", "unselected_first") and round_number == 1:
        empty = (": phase 1's clean guess C holds every train sample (as when lnl.safety_net picks plain CE, "
                 "whose C is every sample), so no sample is outside it")
    raise AlrError(
        f"budget: {budget}{per_sample} leaves {remaining_queries} samples to query from round {round_number} on, "
        f"but the pool (al.pool: {pool}) holds only {pool_size} samples{empty}; {lower}{larger}"
    )


def queried_first(labels: pd.DataFrame, pool: str) -> Optional[np.ndarray]:
    """``pool: unselected_first``: the sample ids outside C, which are queried before any sample
    of C (so the expert checks the trusted samples only once the doubtful ones are used up);
    None for the other pools."""
    if pool != "unselected_first":
        return None
    return labels.loc[~labels["clean_guess"].to_numpy(dtype=bool), "sample_id"].to_numpy()


def select_query(scores: pd.DataFrame, size: int, first: Optional[np.ndarray] = None) -> pd.DataFrame:
    """The ``size`` best-scored rows (highest score first, ties by ``sample_id``), with ``rank``;
    rows whose sample id is in ``first`` all come before the others."""
    priority = scores["sample_id"].isin(first) if first is not None else pd.Series(True, index=scores.index)
    ordered = scores.assign(_first=priority).sort_values(
        ["_first", "score", "sample_id"], ascending=[False, False, True], kind="stable").drop(columns="_first")
    query = ordered.head(size).reset_index(drop=True)
    query.insert(0, "rank", np.arange(1, len(query) + 1))
    return query


def apply_answers(labels: pd.DataFrame, answers: pd.Series, round_number: int, source: str) -> pd.DataFrame:
    """A new table with ``answers`` (label by sample_id) written in; same rows, same order."""
    unknown = ~answers.index.isin(labels["sample_id"])
    if unknown.any():
        raise AlrError(f"answer for unknown sample_id {answers.index[unknown][0]!r}")
    updated = labels.copy()
    rows = updated["sample_id"].isin(answers.index).to_numpy()
    updated.loc[rows, "label"] = answers.reindex(updated.loc[rows, "sample_id"]).to_numpy(dtype=np.int64)
    updated.loc[rows, "label_source"] = source
    updated.loc[rows, "relabel_round"] = round_number
    return updated


def simulated_answers(labels: pd.DataFrame, sample_ids) -> pd.Series:
    """The simulated oracle: the true label of each queried sample (an empty query asks it nothing)."""
    truth = labels.set_index("sample_id")["true_label"].reindex(list(sample_ids))
    if truth.isna().any():
        raise AlrError(
            "al.oracle 'simulated' needs the true labels, but they are unknown (noise.type: none "
            "means the dataset's own labels are already noisy); let experts answer through the human "
            "oracle: set al.oracle: human (or rounds.<r>.oracle: human for single rounds)"
        )
    return truth.astype(np.int64)


def mark_skipped(labels: pd.DataFrame, sample_ids, round_number: int, source: str = "skipped") -> pd.DataFrame:
    """Answers the expert skipped (or, ``source`` 'tied', whose answers tied): the label
    stays, the sample leaves the pool (the budget was spent on it), and it is not trusted for
    training."""
    updated = labels.copy()
    rows = updated["sample_id"].isin(list(sample_ids)).to_numpy()
    updated.loc[rows, "label_source"] = source
    updated.loc[rows, "relabel_round"] = round_number
    return updated


def apply_decisions(labels: pd.DataFrame, decisions: pd.DataFrame, round_number: int, source: str) -> pd.DataFrame:
    """``decisions`` (:func:`alr_core.active.consensus.decide`'s table) written in: a relabelled
    sample takes its decided label from ``source``; a skipped or tied one keeps its label and
    leaves the pool (label_source 'skipped' or 'tied')."""
    outcome = decisions.set_index("sample_id")["outcome"]
    decided = decisions.set_index("sample_id")["decided_label"]
    updated = apply_answers(labels, decided[outcome == RELABELLED], round_number, source)
    updated = mark_skipped(updated, outcome.index[outcome == SKIPPED], round_number)
    return mark_skipped(updated, outcome.index[outcome == TIED], round_number, source="tied")


def paper_protocol_answers(labels: pd.DataFrame) -> pd.Series:
    """The authors' round-1 leak: every sample in the clean guess C gets its true label."""
    if labels["true_label"].isna().any():
        raise AlrError(PAPER_PROTOCOL_NEEDS_TRUTH)
    return simulated_answers(labels, labels.loc[labels["clean_guess"], "sample_id"])


PAPER_PROTOCOL_NEEDS_TRUTH = (
    "al.paper_protocol gives every sample of C its true label at round 1, but the true labels are unknown "
    "(noise.type: none); set al.paper_protocol: false"
)


def cleaning_metrics(before: pd.DataFrame, after: pd.DataFrame, query: pd.DataFrame,
                     class_names: list[str]) -> dict:
    """Label-cleaning progress of one round, when the truth is known (else {}).

    label_accuracy: share of working labels equal to the truth after the round; fixed_this_round:
    labels wrong before the round and right after (the paper protocol's free labels included);
    fixed_total: observed labels that were wrong and are right now; query_precision: share of
    queried labels that were wrong before the round; queried_per_class: queried samples by
    their label before.

    Cleaning efficiency (after InnerEye's comparison with random relabelling): fixed_by_queries,
    the queried labels that were wrong and are right now, divided by random_expected_fixes, what
    as many queries drawn uniformly from every sample not yet queried (the pool of
    ``al.pool: all``, i.e. no phase 1 and no strategy; the paper protocol's free labels were not
    queried, so they stay in it) would fix in expectation with a perfect
    oracle: queries × wrong share among those samples. 1.0 is random; None when there was
    nothing to fix. Its ceiling, cleaning_efficiency_ceiling: what a perfect pick of as many
    queries from the same samples reaches, best_possible_fixes = min(queries, wrong ones) ÷
    random_expected_fixes — 1 ÷ the wrong share while the queries are fewer than the wrong
    labels, so at 60 % wrong no rule can reach 2 × random.

    What the fixes can teach the model: fixed_in_trusted, the fixes whose wrong label was in
    C ∪ labelled before the round (``train_on: selected`` trained on it); fixed_already_predicted,
    the fixes the scoring model already predicted (the query's ``predicted_label`` equals the
    truth; None when the query has no predictions). A fix outside the training set that the
    model already predicted adds a sample the model gets right anyway."""
    if after["true_label"].isna().any():
        return {}
    truth = after["true_label"].to_numpy(dtype=np.int64)
    wrong_before = before["label"].to_numpy() != truth
    right_after = after["label"].to_numpy() == truth
    wrong_observed = after["observed_label"].to_numpy() != truth
    queried = before["sample_id"].isin(query["sample_id"]).to_numpy()
    # al.paper_protocol's free labels carry round 1 but were never queried: they stay in the pool
    never_queried = (before["relabel_round"].isna() | (before["label_source"] == "paper_protocol")).to_numpy()
    fixes = queried & wrong_before & right_after
    fixed_by_queries = int(fixes.sum())
    random_expected = float(queried.sum() * wrong_before[never_queried].mean()) if never_queried.any() else 0.0
    best_possible = min(int(queried.sum()), int(wrong_before[never_queried].sum()))
    already_predicted = None
    if "predicted_label" in query:
        predicted = before["sample_id"].map(query.set_index("sample_id")["predicted_label"])
        already_predicted = int((fixes & (predicted.to_numpy(dtype=float) == truth)).sum())
    counts = np.bincount(before.loc[queried, "label"].to_numpy(dtype=np.int64), minlength=len(class_names))
    return {
        "label_accuracy": float(right_after.mean()),
        "label_accuracy_before": float((~wrong_before).mean()),
        "fixed_this_round": int((wrong_before & right_after).sum()),
        "fixed_total": int((wrong_observed & right_after).sum()),
        "wrong_remaining": int((~right_after).sum()),
        "query_precision": float(wrong_before[queried].mean()) if queried.any() else None,
        "queried_per_class": dict(zip(class_names, counts.tolist())),
        "fixed_by_queries": fixed_by_queries,
        "random_expected_fixes": random_expected,
        "best_possible_fixes": best_possible,
        "cleaning_efficiency": fixed_by_queries / random_expected if random_expected > 0 else None,
        "cleaning_efficiency_ceiling": best_possible / random_expected if random_expected > 0 else None,
        "fixed_in_trusted": int((fixes & trusted(before)).sum()),
        "fixed_already_predicted": already_predicted,
    }  # fmt: skip
