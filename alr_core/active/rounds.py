"""What a round stage needs to know about its place in the run: its folders and budget.

The budget counts answers. With ``al.annotators`` = k answers per queried sample, the run
queries ⌊budget / k⌋ samples in all, split evenly over the rounds (remainder to the first
rounds), so at most k − 1 units of the budget stay unspent."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from alr_core.active.consensus import annotation_metrics
from alr_core.active.labels import cleaning_metrics
from alr_core.common import paths
from alr_core.common.errors import AlrError
from alr_core.common.params import Params, round_params, split_budget


@dataclass(frozen=True)
class Round:
    number: int
    prev_dir: Path  # the model and working labels this round starts from
    out_dir: Path
    budget: int  # samples queried this round
    budget_before: int  # samples queried in earlier rounds
    oracle: str  # simulated | human: rounds.<r>.oracle, else al.oracle
    answers_per_sample: int  # al.annotators: budget units (answers) planned per queried sample
    budget_total: int  # samples queried over all rounds


def current_round(params: Params, name: str) -> Round:
    if name not in params.rounds:
        raise AlrError(f"round {name!r} is not in params 'rounds' (rounds: {list(params.rounds)})")
    number = int(name)
    samples = params.budget // params.al.annotators
    budgets = split_budget(samples, len(params.rounds))
    return Round(number, Path(params.rounds[name].prev), paths.round_dir(number), budgets[number - 1],
                 sum(budgets[: number - 1]), round_params(params, name).al.oracle, params.al.annotators,
                 samples)  # fmt: skip


def round_metrics(rnd: Round, params: Params, before: pd.DataFrame, labels: pd.DataFrame, query: pd.DataFrame,
                  answers: pd.DataFrame, rows: np.ndarray, retrained: bool, scores: dict,
                  class_names: list[str]) -> dict:  # fmt: skip
    """metrics/rounds/<r>.json: the round's settings, budget (in answers: al.annotators planned
    per queried sample), ``scores`` of the model it hands on (retrain's, with test and val), and
    the cleaning and annotation metrics of its labels ``before`` → ``labels``. ``params``: the
    round's (rounds.<r> overrides applied; plain CE's lnl when phase 1's safety net handed it on);
    ``rows``: bool (N,), the samples it trained on; ``retrained``: whether it trained at all."""
    on_lnl = params.al.train_on == "lnl"
    return {
        "round": rnd.number,
        "strategy": params.al.strategy,
        "budget_round": rnd.answers_per_sample * len(query),
        "budget_used": rnd.answers_per_sample * (rnd.budget_before + len(query)),
        "paper_protocol": params.al.paper_protocol,
        "paper_protocol_labels": int((labels["label_source"] == "paper_protocol").sum()),
        "train_on": params.al.train_on,
        # phase 1's loop the round went on with (al.train_on: lnl; plain CE after the safety net picked it)
        "lnl_method": params.lnl.method if on_lnl else None,
        "lnl_selection": params.lnl.selection if on_lnl else None,
        "train_size": int(rows.sum()),
        "retrained": retrained,
        "from_scratch": retrained and params.al.retrain == "scratch",
        "epochs": params.al.epochs if retrained else 0,
        "class_balance": params.al.class_balance,
        **scores,
        "cleaning": cleaning_metrics(before, labels, query, class_names),
        "annotation": annotation_metrics(answers, labels.set_index("sample_id")["true_label"]),
    }
