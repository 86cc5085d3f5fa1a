"""Stage oracle_relabel@r: the oracle answers the query → data/rounds/<r>/labels.parquet."""

import pandas as pd

from alr_core import artifacts, paths
from alr_core.active import apply_answers, paper_protocol_answers, simulated_answers
from alr_core.cli import round_argument, run_stage
from alr_core.params import load_params
from alr_core.rounds import current_round


def main() -> None:
    params = load_params(paths.PARAMS)
    rnd = current_round(params, round_argument(__doc__))
    labels = pd.read_parquet(rnd.prev_dir / paths.WORKING_LABELS)
    query = pd.read_parquet(rnd.out_dir / paths.QUERY)
    if params.al.paper_protocol and rnd.number == 1:
        labels = apply_answers(labels, paper_protocol_answers(labels), rnd.number, "paper_protocol")
    answers = simulated_answers(labels, query["sample_id"])
    updated = apply_answers(labels, answers, rnd.number, "oracle")
    artifacts.write_parquet(rnd.out_dir / paths.WORKING_LABELS, updated)
    changed = int((updated["label"] != labels["label"]).sum())
    print(f"round {rnd.number}: {len(answers)} answers, {changed} labels changed")


if __name__ == "__main__":
    run_stage(main)
