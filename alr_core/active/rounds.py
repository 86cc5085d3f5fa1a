"""What a round stage needs to know about its place in the run: its folders and budget.

The budget counts answers. With ``al.annotators`` = k answers per queried sample, the run
queries ⌊budget / k⌋ samples in all, split evenly over the rounds (remainder to the first
rounds), so at most k − 1 units of the budget stay unspent."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
