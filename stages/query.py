"""Stage query@r: the round's budget of best-scored samples → data/rounds/<r>/query.parquet."""

import pandas as pd

from alr_core import artifacts, paths
from alr_core.active import select_query
from alr_core.cli import round_argument, run_stage
from alr_core.params import load_params
from alr_core.rounds import current_round


def main() -> None:
    params = load_params(paths.PARAMS)
    rnd = current_round(params, round_argument(__doc__))
    scores = pd.read_parquet(rnd.out_dir / paths.SCORES)
    labels = pd.read_parquet(rnd.prev_dir / paths.WORKING_LABELS)
    query = select_query(scores, rnd.budget)
    current = labels.set_index("sample_id")["label"]
    query.insert(3, "current_label", current.reindex(query["sample_id"]).to_numpy())
    query = query.rename(columns={"prediction": "predicted_label"})
    artifacts.write_parquet(rnd.out_dir / paths.QUERY, query)
    print(f"round {rnd.number}: queried {len(query)} of {len(scores)} pool samples")


if __name__ == "__main__":
    run_stage(main)
