"""What a round stage needs to know about its place in the run: its folders and budget."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alr_core.active.labels import split_budget
from alr_core.common import paths
from alr_core.common.errors import AlrError
from alr_core.common.params import Params


@dataclass(frozen=True)
class Round:
    number: int
    prev_dir: Path  # the model and working labels this round starts from
    out_dir: Path
    budget: int  # re-labels this round
    budget_before: int  # re-labels spent in earlier rounds
    budget_after: int  # re-labels spent up to and including this round
    oracle: str  # simulated | human: rounds.<r>.oracle, else al.oracle


def current_round(params: Params, name: str) -> Round:
    if name not in params.rounds:
        raise AlrError(f"round {name!r} is not in params 'rounds' (rounds: {list(params.rounds)})")
    number = int(name)
    budgets = split_budget(params.budget, len(params.rounds))
    spec = params.rounds[name]
    return Round(number, Path(spec.prev), paths.round_dir(number), budgets[number - 1],
                 sum(budgets[: number - 1]), sum(budgets[:number]), spec.oracle or params.al.oracle)  # fmt: skip
