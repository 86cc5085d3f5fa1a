"""Phase-2 bookkeeping (alr_core.active.labels, alr_core.active.rounds, the `rounds` params) and the stages
that need no model (query, oracle_relabel, and score_samples up to its budget check), run
by hand on small label tables."""

from __future__ import annotations

import dataclasses
import re
import sys

import numpy as np
import pandas as pd
import pytest
from builders import rounds_param, run, write_params

from alr_core.active.consensus import decide, simulated_annotators
from alr_core.active.labels import (
    apply_answers,
    apply_decisions,
    check_budget_fits,
    cleaning_metrics,
    in_pool,
    queried_first,
    initial_working_labels,
    labelled,
    mark_skipped,
    paper_protocol_answers,
    select_query,
    simulated_answers,
    training_rows,
    trusted,
)
from alr_core.active.rounds import Round, current_round, round_metrics
from alr_core.common import artifacts, paths
from alr_core.common.errors import AlrError
from alr_core.common.params import default_params, parse_params, round_params, split_budget
from alr_core.human.annotation import IMAGES_NOTE, item_ids

CLASSES = ["a", "b", "c"]
IDS = [f"s{i}" for i in range(8)]
TRUTH = [0, 1, 2, 0, 1, 2, 0, 1]
OBSERVED = [0, 2, 2, 1, 1, 0, 0, 2]  # wrong at s1, s3, s5, s7
CLEAN_GUESS = [True, False, True, False, False, True, False, False]  # s5 is a wrong label in C


def noisy_table(truth=TRUTH) -> pd.DataFrame:
    """The inject_noise table as the stage writes it (string sample ids, nullable truth)."""
    return pd.DataFrame({
        "sample_id": pd.Series(IDS, dtype="string"),
        "split": "train",
        "true_label": pd.array(truth, dtype="Int64"),
        "observed_label": np.array(OBSERVED, dtype=np.int64),
    })  # fmt: skip


def working(truth=TRUTH) -> pd.DataFrame:
    return initial_working_labels(noisy_table(truth), np.array(CLEAN_GUESS))


def answers(mapping: dict) -> pd.Series:
    return pd.Series(list(mapping.values()), index=list(mapping), dtype=np.int64)


# ----------------------------------------------------------------------------- budget split


@pytest.mark.parametrize("budget, rounds, expected", [
    (10, 3, [4, 3, 3]),
    (9, 3, [3, 3, 3]),
    (11, 3, [4, 4, 3]),
    (0, 3, [0, 0, 0]),
    (2, 3, [1, 1, 0]),
    (2, 5, [1, 1, 0, 0, 0]),
    (7, 1, [7]),
    (200, 5, [40] * 5),
])  # fmt: skip
def test_split_budget(budget, rounds, expected):
    split = split_budget(budget, rounds)
    assert split == expected
    assert sum(split) == budget and len(split) == rounds


# ----------------------------------------------------------------------------- the working label table


def test_initial_working_labels():
    table = working()
    assert list(table.columns) == ["sample_id", "label", "observed_label", "true_label", "clean_guess",
                                   "label_source", "relabel_round"]  # fmt: skip
    assert table["sample_id"].tolist() == IDS
    assert table["label"].tolist() == OBSERVED and table["observed_label"].tolist() == OBSERVED
    assert table["true_label"].tolist() == TRUTH
    assert table["clean_guess"].tolist() == CLEAN_GUESS
    assert (table["label_source"] == "observed").all()
    assert table["relabel_round"].isna().all() and str(table["relabel_round"].dtype) == "Int64"


# ----------------------------------------------------------------------------- pool rules


def test_pool_mask_unselected_and_all():
    table = working()
    assert in_pool(table, "unselected").tolist() == [not c for c in CLEAN_GUESS]
    assert in_pool(table, "all").tolist() == [True] * 8
    assert in_pool(table, "unselected_first").tolist() == [True] * 8
    assert in_pool(table, "unselected_first", paper_protocol=True).tolist() == [not c for c in CLEAN_GUESS]
    assert in_pool(table, "selected").tolist() == CLEAN_GUESS
    queried = apply_answers(table, answers({"s0": 0, "s1": 1}), 1, "oracle")
    assert in_pool(queried, "selected").tolist() == [False] + CLEAN_GUESS[1:]  # s0 answered, s1 outside C


def test_unselected_first_queries_outside_c_before_c():
    table = working()  # C = s0, s2, s5
    assert queried_first(table, "unselected_first").tolist() == ["s1", "s3", "s4", "s6", "s7"]
    assert queried_first(table, "unselected") is None and queried_first(table, "all") is None
    scores = pd.DataFrame({"sample_id": table["sample_id"], "score": [0.9, 0.1, 0.8, 0.3, 0.2, 0.7, 0.6, 0.4]})
    first = queried_first(table, "unselected_first")
    # while the samples outside C last, they go first by score; then C by score
    assert select_query(scores, 3, first)["sample_id"].tolist() == ["s6", "s7", "s3"]
    assert select_query(scores, 7, first)["sample_id"].tolist() == ["s6", "s7", "s3", "s4", "s1", "s0", "s2"]
    assert select_query(scores, 3)["sample_id"].tolist() == ["s0", "s2", "s5"]  # by score alone


def test_pool_never_holds_a_relabelled_sample():
    table = apply_answers(working(), answers({"s1": 1, "s0": 0}), 1, "oracle")  # s0 is in C
    assert in_pool(table, "unselected").tolist() == [False, False, False, True, True, False, True, True]
    assert in_pool(table, "all").tolist() == [False, False, True, True, True, True, True, True]
    table = apply_answers(table, answers({"s3": 0}), 2, "oracle")
    assert in_pool(table, "unselected").tolist() == [False, False, False, False, True, False, True, True]


def test_pool_excludes_paper_protocol_labels():
    table = apply_answers(working(), paper_protocol_answers(working()), 1, "paper_protocol")
    assert in_pool(table, "all").tolist() == [not c for c in CLEAN_GUESS]


def test_skipped_answers_leave_the_pool_but_are_neither_labelled_nor_trusted():
    # s1 answered, s3 skipped (both outside C), s0 in C answered: the three rules in one table
    table = mark_skipped(apply_answers(working(), answers({"s1": 1, "s0": 0}), 1, "expert"), ["s3"], 1)
    queried = ["s0", "s1", "s3"]
    ids = table["sample_id"].tolist()
    assert [ids[i] for i in np.flatnonzero(~in_pool(table, "all"))] == queried
    assert [ids[i] for i in np.flatnonzero(labelled(table))] == ["s0", "s1"]
    expected_trusted = sorted({s for s, c in zip(ids, CLEAN_GUESS) if c} | {"s0", "s1"})
    assert [ids[i] for i in np.flatnonzero(trusted(table))] == expected_trusted
    assert "s3" not in expected_trusted
    assert training_rows(table, "selected").tolist() == trusted(table).tolist()
    assert training_rows(table, "all").all()
    assert training_rows(table, "lnl").all()  # every sample, with its current label: phase 1's rule decides


def test_check_budget_fits_names_the_budget_and_the_pool():
    check_budget_fits(5, 1, 5, 1, "unselected", 5, 8)  # equal is fine
    check_budget_fits(0, 1, 0, 1, "unselected", 0, 0)
    with pytest.raises(AlrError) as error:
        check_budget_fits(120, 1, 120, 1, "unselected", 37, 200)
    assert str(error.value) == ("budget: 120 leaves 120 samples to query from round 1 on, but the pool (al.pool: "
                                "unselected) holds only 37 samples; lower budget to at most 37 or use al.pool: "
                                "unselected_first or all")  # fmt: skip
    # a larger pool is suggested only where one would hold them; the budget in its own units (answers)
    with pytest.raises(AlrError) as error:
        check_budget_fits(1400, 2, 700, 1, "all", 669, 669)
    assert str(error.value) == ("budget: 1400 at 2 answers per sample (al.annotators) leaves 700 samples to query "
                                "from round 1 on, but the pool (al.pool: all) holds only 669 samples; lower budget "
                                "to at most 1338")  # fmt: skip
    # al.pool: all would hold exactly the samples left to query: it is suggested
    with pytest.raises(AlrError, match="lower budget to at most 37 or use al.pool: unselected_first or all$"):
        check_budget_fits(40, 1, 40, 1, "unselected", 37, 40)
    # a later round's maximum depends on the earlier rounds' shares, which the budget sets too
    with pytest.raises(AlrError) as error:
        check_budget_fits(120, 1, 90, 2, "all", 37, 37)
    assert str(error.value).endswith("from round 2 on, but the pool (al.pool: all) holds only 37 samples; lower budget")
    # C holds every sample (the safety net picked plain CE): nothing is outside it
    with pytest.raises(AlrError) as error:
        check_budget_fits(6, 1, 6, 1, "unselected", 0, 669)
    assert "holds only 0 samples: phase 1's clean guess C holds every train sample (as when lnl.safety_net picks " \
           "plain CE, whose C is every sample), so no sample is outside it; lower budget to 0 or use al.pool: " \
           "unselected_first or all" in str(error.value)


# ----------------------------------------------------------------------------- query


def test_select_query_best_first_ties_by_sample_id():
    scores = pd.DataFrame({
        "sample_id": ["s3", "s1", "s2", "s0", "s4"],
        "score": [0.5, 0.9, 0.5, 0.5, 0.1],
        "prediction": [0, 1, 2, 0, 1],
    })  # fmt: skip
    query = select_query(scores, 4)
    assert query["sample_id"].tolist() == ["s1", "s0", "s2", "s3"]
    assert query["rank"].tolist() == [1, 2, 3, 4]
    assert query["score"].tolist() == [0.9, 0.5, 0.5, 0.5]
    assert query["prediction"].tolist() == [1, 0, 2, 0]  # the other columns travel with the row
    assert list(query.columns) == ["rank", "sample_id", "score", "prediction"]
    # the input order does not matter
    shuffled = scores.sample(frac=1.0, random_state=3)
    pd.testing.assert_frame_equal(select_query(shuffled, 4), query)


def test_select_query_size_zero_and_whole_pool():
    scores = pd.DataFrame({"sample_id": ["b", "a"], "score": [1.0, 1.0]})
    empty = select_query(scores, 0)
    assert len(empty) == 0 and list(empty.columns) == ["rank", "sample_id", "score"]
    assert select_query(scores, 2)["sample_id"].tolist() == ["a", "b"]


def test_select_query_negative_scores_and_infinities():
    scores = pd.DataFrame({"sample_id": ["a", "b", "c", "d"], "score": [-0.5, -0.1, -np.inf, -0.1]})
    assert select_query(scores, 3)["sample_id"].tolist() == ["b", "d", "a"]


# ----------------------------------------------------------------------------- label update


def test_apply_answers_provenance_rows_and_order():
    before = working()
    snapshot = before.copy(deep=True)
    after = apply_answers(before, answers({"s3": 0, "s1": 1}), 1, "oracle")
    pd.testing.assert_frame_equal(before, snapshot)  # the input table is not modified
    assert len(after) == len(before) and after["sample_id"].tolist() == IDS
    assert after["label"].tolist() == [0, 1, 2, 0, 1, 0, 0, 2]
    assert after["label_source"].tolist() == ["observed", "oracle", "observed", "oracle"] + ["observed"] * 4
    assert after["relabel_round"].tolist()[1] == 1 and after["relabel_round"].tolist()[3] == 1
    untouched = [0, 2, 4, 5, 6, 7]
    pd.testing.assert_frame_equal(after.iloc[untouched], before.iloc[untouched])
    for column in ("observed_label", "true_label", "clean_guess"):
        pd.testing.assert_series_equal(after[column], before[column])
    assert after["label"].dtype == np.int64 and str(after["relabel_round"].dtype) == "Int64"


def test_apply_answers_second_round_keeps_the_first():
    first = apply_answers(working(), answers({"s1": 1}), 1, "oracle")
    second = apply_answers(first, answers({"s7": 1, "s4": 1}), 2, "oracle")
    assert second["relabel_round"].astype("float").fillna(0).astype(int).tolist() == [0, 1, 0, 0, 2, 0, 0, 2]
    assert second["label"].tolist() == [0, 1, 2, 1, 1, 0, 0, 1]
    assert second["sample_id"].tolist() == IDS


def test_apply_answers_with_no_answers_changes_nothing():
    before = working()
    after = apply_answers(before, answers({}), 1, "oracle")
    pd.testing.assert_frame_equal(after, before)


def test_apply_answers_unknown_sample_is_an_error():
    with pytest.raises(AlrError, match="unknown sample_id 'zz'"):
        apply_answers(working(), answers({"s1": 1, "zz": 0}), 1, "oracle")


def test_simulated_answers_are_the_truth_in_query_order():
    result = simulated_answers(working(), ["s7", "s1", "s4"])
    assert result.index.tolist() == ["s7", "s1", "s4"]
    assert result.tolist() == [1, 1, 1] and result.dtype == np.int64
    assert simulated_answers(working(), []).tolist() == []


def test_simulated_answers_with_unknown_truth_points_at_the_human_oracle():
    with pytest.raises(AlrError, match="human oracle") as error:
        simulated_answers(working(truth=[None] * 8), ["s1"])
    assert "simulated" in str(error.value)


def test_paper_protocol_answers_cover_exactly_the_clean_guess():
    result = paper_protocol_answers(working())
    assert result.index.tolist() == ["s0", "s2", "s5"]
    assert result.tolist() == [0, 2, 2]  # s5 was observed as 0 in C; its truth is 2
    after = apply_answers(working(), result, 1, "paper_protocol")
    assert after["label_source"].tolist() == ["paper_protocol", "observed", "paper_protocol", "observed",
                                              "observed", "paper_protocol", "observed", "observed"]  # fmt: skip
    assert after["label"].tolist() == [0, 2, 2, 1, 1, 2, 0, 2]


def test_apply_decisions_relabels_keeps_skipped_and_tied_labels_and_marks_each():
    answered = pd.DataFrame({"sample_id": ["s1", "s1", "s3", "s3", "s5"], "annotator": ["x", "y", "x", "y", "x"],
                             "label": [1, 1, 0, 2, -1]})  # s1 agreed, s3 tied, s5 skipped
    decisions = decide(answered, pd.DataFrame({"sample_id": ["s1", "s3", "s5", "s7"]}), 3, "majority")
    assert decisions["outcome"].tolist() == ["relabelled", "tied", "skipped"]  # s7 got no answer
    after = apply_decisions(working(), decisions, 2, "expert").set_index("sample_id")
    before = working().set_index("sample_id")
    assert after.loc[["s1", "s3", "s5"], "label"].tolist() == [1, before.loc["s3", "label"], before.loc["s5", "label"]]
    assert after.loc[["s1", "s3", "s5"], "label_source"].tolist() == ["expert", "tied", "skipped"]
    assert after.loc[["s1", "s3", "s5"], "relabel_round"].tolist() == [2, 2, 2]
    assert after.drop(["s1", "s3", "s5"]).equals(before.drop(["s1", "s3", "s5"]))  # s7 unanswered: untouched


def test_round_metrics_count_planned_answers_and_what_the_round_trained_on():
    before = working()
    query = pd.DataFrame({"sample_id": ["s1", "s3"]})
    team = simulated_annotators(simulated_answers(before, query["sample_id"]), 3, 2, 0.0, np.random.default_rng(0))
    decisions = decide(team, query, 3, "majority")
    answered = team.merge(decisions, on="sample_id")  # as oracle_relabel writes answers.parquet
    labels = apply_decisions(before, decisions, 2, "oracle")
    params = parse_params({"al": {"annotators": 2, "train_on": "lnl", "retrain": "scratch"},
                           "lnl": {"method": "coteaching", "selection": "class_gmm"}})  # fmt: skip
    rnd = Round(2, paths.round_dir(1), paths.round_dir(2), budget=2, budget_before=3, oracle="simulated",
                answers_per_sample=2, budget_total=5)  # fmt: skip
    rows = np.array([True] * 6 + [False] * 2)
    scores = {"kept_previous": False, "test": {"balanced_accuracy": 0.5}}
    metrics = round_metrics(rnd, params, before, labels, query, answered, rows, True, scores, CLASSES)
    assert (metrics["budget_round"], metrics["budget_used"]) == (4, 10)  # two answers per sample, 3 + 2 samples
    assert (metrics["lnl_method"], metrics["lnl_selection"]) == ("coteaching", "class_gmm")
    assert metrics["train_size"] == 6 and metrics["from_scratch"] is True and metrics["epochs"] == params.al.epochs
    assert metrics["test"] == {"balanced_accuracy": 0.5} and metrics["cleaning"]["fixed_this_round"] == 2
    assert metrics["annotation"]["answers_used"] == 4 and metrics["annotation"]["consensus_accuracy"] == 1.0
    idle = round_metrics(rnd, dataclasses.replace(params, al=dataclasses.replace(params.al, train_on="selected")),
                         before, labels, query, answered, rows, False, scores, CLASSES)
    assert (idle["epochs"], idle["from_scratch"], idle["lnl_method"], idle["lnl_selection"]) == (0, False, None, None)
    protocol = labels.assign(label_source=["paper_protocol"] * 3 + list(labels["label_source"][3:]))
    assert round_metrics(rnd, params, before, protocol, query, answered, rows, True, scores,
                         CLASSES)["paper_protocol_labels"] == 3  # fmt: skip


# ----------------------------------------------------------------------------- cleaning metrics


def test_cleaning_metrics_two_rounds_by_hand():
    round0 = working()  # labels right at s0, s2, s4, s6: 4 of 8
    query1 = pd.DataFrame({"sample_id": ["s1", "s3", "s4"]})  # two wrong, one right
    round1 = apply_answers(round0, simulated_answers(round0, query1["sample_id"]), 1, "oracle")
    assert cleaning_metrics(round0, round1, query1, CLASSES) == {
        "label_accuracy": 6 / 8,
        "label_accuracy_before": 4 / 8,
        "fixed_this_round": 2,
        "fixed_total": 2,
        "wrong_remaining": 2,
        "query_precision": 2 / 3,
        "queried_per_class": {"a": 0, "b": 2, "c": 1},  # labels before: s1 -> 2, s3 -> 1, s4 -> 1
        # random: 3 queries × 4 wrong of the 8 never queried = 1.5 expected fixes
        "fixed_by_queries": 2,
        "random_expected_fixes": 1.5,
        "best_possible_fixes": 3,  # 3 queries, 4 wrong labels to pick from
        "cleaning_efficiency": 2 / 1.5,
        "cleaning_efficiency_ceiling": 3 / 1.5,  # 1 ÷ the wrong share 4/8
        "fixed_in_trusted": 0,  # s1 and s3 were outside C
        "fixed_already_predicted": None,  # the query carries no predictions
    }
    query2 = pd.DataFrame({"sample_id": ["s5"]})
    round2 = apply_answers(round1, simulated_answers(round1, query2["sample_id"]), 2, "oracle")
    assert cleaning_metrics(round1, round2, query2, CLASSES) == {
        "label_accuracy": 7 / 8,
        "label_accuracy_before": 6 / 8,
        "fixed_this_round": 1,
        "fixed_total": 3,
        "wrong_remaining": 1,
        "query_precision": 1.0,
        "queried_per_class": {"a": 1, "b": 0, "c": 0},
        # random draws from the 5 never queried (s0 s2 s5 s6 s7), 2 of them wrong (s5 s7)
        "fixed_by_queries": 1,
        "random_expected_fixes": 1 * 2 / 5,
        "best_possible_fixes": 1,
        "cleaning_efficiency": 1 / (2 / 5),
        "cleaning_efficiency_ceiling": 1 / (2 / 5),  # the one query was a perfect pick
        "fixed_in_trusted": 1,  # s5's wrong label was in C
        "fixed_already_predicted": None,
    }


def test_cleaning_metrics_what_the_fixes_can_teach():
    round0 = working()
    # s1, s3, s5 wrong (s5 inside C), s4 right; the scoring model predicted the truth at s1 and s5
    query = pd.DataFrame({"sample_id": ["s1", "s3", "s5", "s4"], "predicted_label": [1, 2, 2, 1]})
    round1 = apply_answers(round0, simulated_answers(round0, query["sample_id"]), 1, "oracle")
    metrics = cleaning_metrics(round0, round1, query, CLASSES)
    assert metrics["fixed_by_queries"] == 3
    assert metrics["fixed_in_trusted"] == 1  # s5
    assert metrics["fixed_already_predicted"] == 2  # s1 and s5; s4's right prediction fixed nothing


def test_cleaning_metrics_ceiling_when_queries_outnumber_the_wrong_labels():
    round0 = working()  # 4 wrong labels (s1 s3 s5 s7) among the 8
    query = pd.DataFrame({"sample_id": ["s0", "s1", "s2", "s3", "s4", "s5"]})
    metrics = cleaning_metrics(round0, apply_answers(round0, simulated_answers(round0, query["sample_id"]), 1,
                                                     "oracle"), query, CLASSES)  # fmt: skip
    assert metrics["random_expected_fixes"] == 6 * 4 / 8
    assert metrics["best_possible_fixes"] == 4  # not 6: only 4 labels were wrong
    assert metrics["fixed_by_queries"] == 3  # s1 s3 s5
    assert metrics["cleaning_efficiency"] == 3 / 3 and metrics["cleaning_efficiency_ceiling"] == 4 / 3


def test_cleaning_metrics_empty_query():
    round0 = working()
    query = pd.DataFrame({"sample_id": pd.Series([], dtype="string")})
    metrics = cleaning_metrics(round0, apply_answers(round0, answers({}), 1, "oracle"), query, CLASSES)
    assert metrics["query_precision"] is None
    assert metrics["fixed_this_round"] == 0 and metrics["label_accuracy"] == metrics["label_accuracy_before"] == 0.5
    assert metrics["random_expected_fixes"] == 0.0 and metrics["cleaning_efficiency"] is None
    assert metrics["best_possible_fixes"] == 0 and metrics["cleaning_efficiency_ceiling"] is None
    assert metrics["queried_per_class"] == {"a": 0, "b": 0, "c": 0}


def test_cleaning_metrics_counts_paper_protocol_fixes():
    round0 = working()
    leaked = apply_answers(round0, paper_protocol_answers(round0), 1, "paper_protocol")  # fixes s5
    query = pd.DataFrame({"sample_id": ["s1"]})
    round1 = apply_answers(leaked, simulated_answers(leaked, ["s1"]), 1, "oracle")
    metrics = cleaning_metrics(round0, round1, query, CLASSES)
    assert metrics["fixed_this_round"] == 2 and metrics["fixed_total"] == 2
    assert metrics["label_accuracy"] == 6 / 8 and metrics["query_precision"] == 1.0
    assert metrics["fixed_by_queries"] == 1  # the leak's fix is not the query's
    # round 2: the free labels of C (s0 s2 s5, now right) were never queried: random draws from
    # the 7 samples other than s1, of which s3 and s7 are wrong; not from the 4 outside C alone
    query2 = pd.DataFrame({"sample_id": ["s3"]})
    round2 = apply_answers(round1, simulated_answers(round1, ["s3"]), 2, "oracle")
    later = cleaning_metrics(round1, round2, query2, CLASSES)
    assert later["random_expected_fixes"] == 1 * 2 / 7 and later["cleaning_efficiency"] == 1 / (2 / 7)


def test_cleaning_metrics_unknown_truth_is_empty():
    round0 = working(truth=[None] * 8)
    round1 = apply_answers(round0, answers({"s1": 1}), 1, "oracle")
    assert cleaning_metrics(round0, round1, pd.DataFrame({"sample_id": ["s1"]}), CLASSES) == {}


# ----------------------------------------------------------------------------- rounds and their params


def three_rounds(budget: int):
    return parse_params({"budget": budget, "rounds": rounds_param(3)})


def test_current_round_budgets_and_folders():
    params = three_rounds(10)
    first, second, third = (current_round(params, name) for name in ("1", "2", "3"))
    assert (first.number, first.budget, first.budget_before) == (1, 4, 0)
    assert (second.number, second.budget, second.budget_before) == (2, 3, 4)
    assert (third.number, third.budget, third.budget_before, third.budget_total) == (3, 3, 7, 10)
    assert first.prev_dir.as_posix() == "data/lnl" and first.out_dir.as_posix() == "data/rounds/1"
    assert second.prev_dir.as_posix() == "data/rounds/1" and third.out_dir.as_posix() == "data/rounds/3"
    assert current_round(three_rounds(0), "2").budget == 0


def test_current_round_unknown_round():
    with pytest.raises(AlrError, match=r"round '4' is not in params 'rounds'"):
        current_round(three_rounds(10), "4")


def test_round_params_override_al_for_their_round_only():
    rounds = rounds_param(3)
    rounds["2"] |= {"oracle": "human"}
    rounds["3"] |= {"retrain": "scratch", "epochs": 40, "lr": 0.05}
    params = parse_params({"al": {"retrain": "finetune", "epochs": 10, "lr": 0.01}, "rounds": rounds})
    first, second, third = (round_params(params, name).al for name in ("1", "2", "3"))
    assert first == params.al
    assert second == dataclasses.replace(params.al, oracle="human")
    assert (third.retrain, third.epochs, third.lr, third.oracle) == ("scratch", 40, 0.05, "simulated")
    assert round_params(params, "3").lnl == params.lnl and round_params(params, "3").rounds == params.rounds
    assert [current_round(params, name).oracle for name in ("1", "2", "3")] == ["simulated", "human", "simulated"]


@pytest.mark.parametrize("entry, message", [
    ({"retrain": "scratch_last"}, "'rounds.2.retrain' is 'scratch_last'; valid values: 'finetune' | 'scratch'"),
    ({"epochs": 0}, "'rounds.2.epochs' is 0; valid range: [1, inf)"),
    ({"lr": 0}, "'rounds.2.lr' is 0.0; valid range: (0.0, inf)"),
    ({"strategy": "entropy"}, "unknown key 'rounds.2.strategy'"),
])  # fmt: skip
def test_round_overrides_are_validated(entry, message):
    rounds = rounds_param(2)
    rounds["2"] |= entry
    with pytest.raises(AlrError, match=re.escape(message)):
        parse_params({"rounds": rounds})


def test_rounds_params_valid():
    params = parse_params({"rounds": rounds_param(2)})
    assert list(params.rounds) == ["1", "2"]
    assert [r.prev for r in params.rounds.values()] == ["data/lnl", "data/rounds/1"]
    assert list(parse_params({}).rounds) == ["1"]


@pytest.mark.parametrize("rounds, message", [
    ({1: {"prev": "data/lnl"}}, "unquoted key 1"),
    ({"1": {"prev": "data/lnl"}, 2: {"prev": "data/rounds/1"}}, "unquoted key 2"),
    ({"2": {"prev": "data/rounds/1"}, "1": {"prev": "data/lnl"}}, "they must be ['1', '2'] in this order"),
    ({"1": {"prev": "data/lnl"}, "3": {"prev": "data/rounds/2"}}, "they must be ['1', '2']"),
    ({"0": {"prev": "data/lnl"}}, "they must be ['1']"),
    ({"1": {"prev": "data/rounds/0"}}, "'rounds.1.prev' is 'data/rounds/0'; it must be 'data/lnl'"),
    ({"1": {"prev": "data/lnl"}, "2": {"prev": "data/lnl"}}, "'rounds.2.prev' is 'data/lnl'; it must be 'data/rounds/1'"),
    ({"1": {"prev": "data/lnl"}, "2": {"prev": "data/rounds/1"}, "3": {"prev": "data/rounds/1"}},
     "it must be 'data/rounds/2'"),
    ({}, "'rounds' must be a non-empty mapping"),
    ({"1": {"prev": "data/lnl", "budget": 3}}, "unknown key 'rounds.1.budget'"),
    ({"1": None}, "'rounds.1' must be a mapping"),
])  # fmt: skip
def test_rounds_params_invalid(rounds, message):
    with pytest.raises(AlrError) as error:
        parse_params({"rounds": rounds})
    assert message in str(error.value), str(error.value)


# ----------------------------------------------------------------------------- the stages, by hand


def stage(tree, module: str, round_name: str = "1"):
    return run([sys.executable, "-m", module, "--round", round_name], tree)


def set_params(tree, overrides: dict, rounds: int = 2) -> None:
    raw = default_params()
    for key, value in overrides.items():
        raw[key] = raw[key] | value if isinstance(value, dict) else value
    raw["rounds"] = rounds_param(rounds) | overrides.get("rounds", {})  # an entry replaces that round's
    write_params(tree, raw=raw)


def write_prepared(tree) -> None:
    """A prepared dataset of the 8 train samples (4×4 grayscale images)."""
    artifacts.write_parquet(tree / paths.PREPARED_SAMPLES, pd.DataFrame({
        "sample_id": IDS, "split": "train", "label": TRUTH,
        "class_name": [CLASSES[k] for k in TRUTH], "source_path": pd.array([None] * 8, dtype="string"),
    }))  # fmt: skip
    artifacts.write_npy(tree / paths.PREPARED_IMAGES, np.arange(8 * 16, dtype=np.uint8).reshape(8, 4, 4, 1))


def test_query_stage_writes_the_best_scored_rows(stage_tree):
    set_params(stage_tree, {"budget": 5})  # two rounds: 3 then 2
    write_prepared(stage_tree)
    artifacts.write_parquet(stage_tree / paths.LNL_WORKING_LABELS, working())
    artifacts.write_parquet(stage_tree / "data/rounds/1" / paths.SCORES, pd.DataFrame({
        "sample_id": ["s1", "s3", "s4", "s6", "s7"],
        "score": [0.2, 0.9, 0.2, 0.5, 0.1],
        "prediction": [1, 0, 1, 0, 1],
        "confidence": [0.5, 0.4, 0.6, 0.7, 0.8],
    }))  # fmt: skip
    result = stage(stage_tree, "stages.query")
    assert result.returncode == 0, result.stderr
    query = pd.read_parquet(stage_tree / "data/rounds/1" / paths.QUERY)
    assert list(query.columns) == ["rank", "item_id", "sample_id", "score", "current_label", "predicted_label",
                                   "confidence"]  # fmt: skip
    assert query["sample_id"].tolist() == ["s3", "s6", "s1"]
    assert query["rank"].tolist() == [1, 2, 3]
    assert query["current_label"].tolist() == [1, 0, 2]
    assert query["predicted_label"].tolist() == [0, 0, 1]
    package = pd.read_csv(stage_tree / "data/rounds/1" / paths.ANNOTATION_CSV)
    assert package["sample_id"].tolist() == ["s3", "s6", "s1"]
    assert package["current_class"].tolist() == ["b", "a", "c"]
    assert package["image"].tolist() == [f"data/prepared/images.npy[{k}]" for k in (3, 6, 1)]
    assert package["item_id"].tolist() == query["item_id"].tolist()  # the data team's mapping
    page = (stage_tree / "data/rounds/1" / paths.ANNOTATION_PAGE).read_text()
    assert page.count("data:image/png;base64,") == 3 and "round_1.csv" in page
    shown = sorted(query["item_id"])  # by item id, not by score: ties must not group a class
    assert sorted(shown, key=page.index) == shown
    note, = (stage_tree / "data/rounds/1" / paths.ITEM_IMAGES).iterdir()  # images embedded: no copies
    assert note.name == IMAGES_NOTE and "al.image_url_prefix" in note.read_text()

    set_params(stage_tree, {"budget": 5, "al": {"image_url_prefix": "/files/"}})
    assert stage(stage_tree, "stages.query").returncode == 0
    images = stage_tree / "data/rounds/1" / paths.ITEM_IMAGES
    assert sorted(p.name for p in images.iterdir()) == sorted(f"{i}.png" for i in query["item_id"])
    made = artifacts.read_json(stage_tree / "data/rounds/1" / paths.LABELSTUDIO_TASKS)
    assert [task["data"]["image"] for task in made] == [f"/files/{images.relative_to(stage_tree)}/{i}.png"
                                                        for i in shown]  # fmt: skip


def test_query_stage_page_asks_for_names_when_several_annotators_answer(stage_tree):
    set_params(stage_tree, {"budget": 6, "al": {"annotators": 2}})
    write_prepared(stage_tree)
    artifacts.write_parquet(stage_tree / paths.LNL_WORKING_LABELS, working())
    artifacts.write_parquet(stage_tree / "data/rounds/1" / paths.SCORES, pd.DataFrame({
        "sample_id": IDS, "score": np.linspace(0, 1, 8), "prediction": 0, "confidence": 0.5}))  # fmt: skip
    result = stage(stage_tree, "stages.query")
    assert result.returncode == 0, result.stderr
    page = (stage_tree / "data/rounds/1" / paths.ANNOTATION_PAGE).read_text()
    assert '"annotators":2,' in page  # the page asks each expert's name


@pytest.mark.parametrize("paper_protocol", [False, True])
def test_oracle_relabel_stage(stage_tree, paper_protocol):
    set_params(stage_tree, {"budget": 4, "al": {"paper_protocol": paper_protocol}})
    write_prepared(stage_tree)
    round1 = stage_tree / "data/rounds/1"
    artifacts.write_parquet(stage_tree / paths.LNL_WORKING_LABELS, working())
    artifacts.write_parquet(round1 / paths.QUERY, pd.DataFrame({"rank": [1, 2], "sample_id": ["s7", "s4"]}))
    result = stage(stage_tree, "stages.oracle_relabel")
    assert result.returncode == 0, result.stderr
    labels = pd.read_parquet(round1 / paths.WORKING_LABELS)
    assert labels["sample_id"].tolist() == IDS
    sources = ["observed"] * 8
    sources[7] = sources[4] = "oracle"
    if paper_protocol:
        sources[0] = sources[2] = sources[5] = "paper_protocol"
    assert labels["label_source"].tolist() == sources
    expected = list(OBSERVED)
    expected[7] = 1  # truth of s7 (was 2)
    if paper_protocol:
        expected[5] = 2  # the leak fixes the wrong label inside C
    assert labels["label"].tolist() == expected
    assert labels["relabel_round"].notna().tolist() == [s != "observed" for s in sources]

    # round 2 never applies the leak again, and keeps round 1's answers
    artifacts.write_parquet(stage_tree / "data/rounds/2" / paths.QUERY, pd.DataFrame({"rank": [1], "sample_id": ["s3"]}))
    result = stage(stage_tree, "stages.oracle_relabel", "2")
    assert result.returncode == 0, result.stderr
    labels2 = pd.read_parquet(stage_tree / "data/rounds/2" / paths.WORKING_LABELS)
    assert labels2["sample_id"].tolist() == IDS
    assert (labels2["label_source"] == "paper_protocol").sum() == (3 if paper_protocol else 0)
    assert labels2["relabel_round"].tolist()[3] == 2 and labels2["label"].tolist()[3] == 0
    changed = labels2["label"] != labels["label"]
    assert changed.tolist() == [False, False, False, True, False, False, False, False]


@pytest.mark.parametrize("split", ["test", "val"])
def test_a_human_round_says_when_an_answered_sample_left_train(stage_tree, split):
    # the splits were drawn anew since the answers (an upgrade's data.split_order): the stage
    # reads every sample's split to say so, and names the split the sample is in now
    set_params(stage_tree, {"budget": 4, "al": {"oracle": "human"}})
    write_prepared(stage_tree)
    samples = pd.read_parquet(stage_tree / paths.PREPARED_SAMPLES)
    moved = samples.iloc[:1].assign(sample_id="t0", split=split)
    artifacts.write_parquet(stage_tree / paths.PREPARED_SAMPLES, pd.concat([samples, moved], ignore_index=True))
    artifacts.write_parquet(stage_tree / paths.LNL_WORKING_LABELS, working())
    artifacts.write_parquet(stage_tree / "data/rounds/1" / paths.QUERY, pd.DataFrame({
        "rank": [1, 2], "item_id": item_ids(["s7", "s4"], 1, 0), "sample_id": ["s7", "s4"]}))  # fmt: skip
    (stage_tree / "annotations").mkdir(exist_ok=True)
    (stage_tree / "annotations" / "round_1.csv").write_text("sample_id,label\ns7,b\nt0,a\n")
    result = stage(stage_tree, "stages.oracle_relabel")
    assert result.returncode != 0
    assert ("annotations/round_1.csv: line 3: sample 't0' was not queried in this round: it is now in the "
            f"{split} split, not train: the splits changed") in result.stderr


def test_a_human_round_with_no_share_of_the_budget_asks_nobody(stage_tree):
    # budget 1 over 2 rounds (or 3 over 5): the last rounds query nothing, and used to wait for
    # an answers file that no file could satisfy (a header alone has "no answers", a row an unknown item)
    set_params(stage_tree, {"budget": 1, "noise": {"type": "none"}, "al": {"oracle": "human"}})
    write_prepared(stage_tree)
    before = working(truth=[None] * 8)
    artifacts.write_parquet(stage_tree / "data/rounds/1" / paths.WORKING_LABELS, before)
    artifacts.write_parquet(stage_tree / "data/rounds/2" / paths.QUERY, pd.DataFrame({"rank": [], "sample_id": []}))
    result = stage(stage_tree, "stages.oracle_relabel", "2")
    assert result.returncode == 0, result.stderr
    assert "round 2: 0 expert answers for 0 samples" in result.stdout
    pd.testing.assert_frame_equal(pd.read_parquet(stage_tree / "data/rounds/2" / paths.WORKING_LABELS), before)
    assert pd.read_parquet(stage_tree / "data/rounds/2" / paths.ANSWERS).empty
    assert not (stage_tree / "annotations" / "round_2.csv").exists()


def test_a_simulated_round_with_no_share_of_the_budget_needs_no_truth(stage_tree):
    # noise.type: none and budget 0: the params check lets the default simulated oracle be, as
    # it is asked nothing
    set_params(stage_tree, {"budget": 0, "noise": {"type": "none"}})
    write_prepared(stage_tree)
    before = working(truth=[None] * 8)
    artifacts.write_parquet(stage_tree / paths.LNL_WORKING_LABELS, before)
    artifacts.write_parquet(stage_tree / "data/rounds/1" / paths.QUERY, pd.DataFrame({"rank": [], "sample_id": []}))
    result = stage(stage_tree, "stages.oracle_relabel")
    assert result.returncode == 0, result.stderr
    assert "round 1: 0 oracle answers for 0 samples" in result.stdout
    pd.testing.assert_frame_equal(pd.read_parquet(stage_tree / "data/rounds/1" / paths.WORKING_LABELS), before)


def test_simulated_answers_need_the_truth():
    # noise.type: none with the simulated oracle stops at the params check; a labels table
    # without the truth still gets a clear error, not answers of <NA>
    with pytest.raises(AlrError, match="al.oracle 'simulated' needs the true labels, but they are unknown"):
        simulated_answers(working(truth=[None] * 8), ["s7"])


@pytest.mark.parametrize("pool, budget, pool_size", [("unselected", 6, 5), ("all", 9, 8)])
def test_score_samples_budget_larger_than_the_pool_fails_before_any_work(stage_tree, pool, budget, pool_size):
    set_params(stage_tree, {"budget": budget, "al": {"pool": pool}})
    artifacts.write_parquet(stage_tree / paths.LNL_WORKING_LABELS, working())
    # no prepared images and no model exist: the check must come before they are needed
    result = run([sys.executable, "-c",
                  "import sys, runpy; sys.argv = ['score_samples', '--round', '1']\n"
                  "try:\n    runpy.run_module('stages.score_samples', run_name='__main__')\n"
                  "finally:\n    print('torch imported:', 'torch' in sys.modules)"], stage_tree)  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert re.search(rf"\b{budget}\b", result.stderr) and re.search(rf"\b{pool_size}\b", result.stderr), result.stderr
    assert "torch imported: False" in result.stdout
    assert not (stage_tree / "data/rounds/1" / paths.SCORES).exists()


def test_score_samples_budget_check_counts_only_the_remaining_budget(stage_tree):
    # round 2 of budget 6 over 2 rounds: 3 spent, 3 remain; the pool after round 1 holds 2
    set_params(stage_tree, {"budget": 6, "al": {"pool": "unselected"}})
    round1 = apply_answers(working(), answers({"s1": 1, "s3": 0, "s4": 1}), 1, "oracle")
    artifacts.write_parquet(stage_tree / "data/rounds/1" / paths.WORKING_LABELS, round1)
    result = stage(stage_tree, "stages.score_samples", "2")
    assert result.returncode == 1
    assert result.stderr.strip() == ("error: budget: 6 leaves 3 samples to query from round 2 on, but the pool "
                                     "(al.pool: unselected) holds only 2 samples; lower budget or use al.pool: "
                                     "unselected_first or all")  # fmt: skip


def test_stages_without_a_model_do_not_import_torch(tmp_path):
    from builders import REPO_ROOT

    code = (
        "import sys\n"
        "import stages.query, stages.oracle_relabel, stages.report\n"
        "import stages.score_samples, stages.retrain  # defer torch until their inputs are checked\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))\n"
    )
    result = run([sys.executable, "-c", code], REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_paper_protocol_keeps_the_clean_guess_out_of_even_the_full_pool():
    labels = pd.DataFrame({
        "sample_id": ["a", "b", "c", "d"],
        "clean_guess": [True, False, True, False],
        "relabel_round": pd.array([None, None, None, 1], dtype="Int64"),
    })  # fmt: skip
    assert in_pool(labels, "all").tolist() == [True, True, True, False]
    assert in_pool(labels, "all", paper_protocol=True).tolist() == [False, True, False, False]
    assert in_pool(labels, "unselected", paper_protocol=True).tolist() == [False, True, False, False]
