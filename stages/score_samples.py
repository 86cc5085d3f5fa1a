"""Stage score_samples@r: the previous round's model scores the pool → data/rounds/<r>/scores.parquet."""

from alr_core.active.labels import check_budget_fits, in_pool, trusted
from alr_core.active.rounds import current_round
from alr_core.common import artifacts, paths
from alr_core.common.cli import round_argument, run_stage
from alr_core.common.params import load_params
from alr_core.common.seeding import seed_for
from alr_core.common.text import counted


def main() -> None:
    name = round_argument(__doc__)
    params = load_params(paths.PARAMS)
    rnd = current_round(params, name)
    labels = artifacts.read_parquet(rnd.prev_dir / paths.WORKING_LABELS)
    pool = in_pool(labels, params.al.pool, params.al.paper_protocol)
    largest = int(in_pool(labels, "all", params.al.paper_protocol).sum())
    check_budget_fits(params.budget, params.al.annotators, rnd.budget_total - rnd.budget_before, rnd.number,
                      params.al.pool, int(pool.sum()), largest)  # fmt: skip

    from alr_core.active.scoring import score_pool
    from alr_core.data.datasets import load_pipeline_data, model_inputs  # torch only once the inputs are valid
    from alr_core.nn.models import LINEAR, load_checkpoint

    data = load_pipeline_data(paths.PREPARED_IMAGES, paths.PREPARED_SAMPLES, labels, label_column="label",
                              embeddings_path=paths.PRETRAIN_EMBEDDINGS)  # fmt: skip
    spec, model, checkpoint = load_checkpoint(rnd.prev_dir / paths.MODEL, data.class_names)
    data = model_inputs(data, frozen=spec.arch == LINEAR)  # a head on cached embeddings reads embeddings
    seed = seed_for(params.seed, f"score round {rnd.number}")
    scores = score_pool(model, checkpoint["normalization"], data.train, pool, trusted(labels), rnd.budget, params, seed)
    artifacts.write_parquet(rnd.out_dir / paths.SCORES, scores)
    print(f"round {rnd.number}: scored {counted(len(scores), 'pool sample')} with {params.al.strategy}")


if __name__ == "__main__":
    run_stage(main)
