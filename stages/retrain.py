"""Stage retrain@r: the round's model (al.retrain, al.train_on, al.class_balance, al.epochs,
al.lr; rounds.<r>.retrain/epochs/lr override them for round r) → data/rounds/<r>/model.pt,
metrics/rounds/<r>.json (budget used, test metrics, label-cleaning and annotation metrics).
Under al.train_on: lnl it also reads metrics/lnl.json: the rounds go on with plain CE when phase
1's safety net handed on CE's model."""

from alr_core.active.labels import labelled, training_rows
from alr_core.active.rounds import current_round, round_metrics
from alr_core.common import artifacts, paths
from alr_core.common.cli import round_argument, run_stage
from alr_core.common.params import load_params, round_params
from alr_core.common.seeding import seed_for
from alr_core.common.text import rounded


def main() -> None:
    name = round_argument(__doc__)
    params = load_params(paths.PARAMS)
    rnd = current_round(params, name)
    params = round_params(params, name)
    before = artifacts.read_parquet(rnd.prev_dir / paths.WORKING_LABELS)
    labels = artifacts.read_parquet(rnd.out_dir / paths.WORKING_LABELS)
    query = artifacts.read_parquet(rnd.out_dir / paths.QUERY)
    answers = artifacts.read_parquet(rnd.out_dir / paths.ANSWERS)

    from alr_core.active.retrain import evaluation, retrain
    from alr_core.data.datasets import load_pipeline_data, model_inputs  # torch only once the inputs are valid
    from alr_core.lnl.safety_net import method_handed_on
    from alr_core.nn import distributed
    from alr_core.nn.models import LINEAR, load_checkpoint, load_peer, save_checkpoint

    distributed.join(params.train.device)  # under torchrun (train.processes > 1): one rank of it
    if params.al.train_on == "lnl":
        configured, params = params.lnl, method_handed_on(params, artifacts.read_json(paths.LNL_METRICS))
        if params.lnl != configured and distributed.is_main_process():
            print(f"round {rnd.number}: phase 1's safety net handed on plain CE's model (metrics/lnl.json: "
                  f"safety_net), so al.train_on 'lnl' goes on with plain CE, not {configured.method}")
    data = load_pipeline_data(paths.PREPARED_IMAGES, paths.PREPARED_SAMPLES, labels, label_column="label",
                              embeddings_path=paths.PRETRAIN_EMBEDDINGS)  # fmt: skip
    previous = rnd.prev_dir / paths.MODEL
    spec, model, checkpoint = load_checkpoint(previous, data.class_names)
    peer = load_peer(spec, checkpoint, previous)
    data = model_inputs(data, frozen=spec.arch == LINEAR)  # a head on cached embeddings reads embeddings
    normalization = checkpoint["normalization"]
    rows = training_rows(labels, params.al.train_on)
    answered = labelled(labels) & (labels["relabel_round"] == rnd.number).to_numpy()
    if answered.any():
        seed = seed_for(params.seed, f"retrain round {rnd.number}")
        result = retrain(model, peer, spec, normalization, data, rows, labelled(labels), params, seed)
        model, peer, scores = result.model, result.peer, result.metrics
    else:  # nothing new to learn from: the round keeps the previous model
        scores = {"kept_previous": True, "trained_val_macro_f1": None, "best_epoch": None,
                  **evaluation(model, normalization, data, params)}
    if not distributed.is_main_process():
        return  # rank 0 writes the outputs
    save_checkpoint(rnd.out_dir / paths.MODEL, spec, model, data.class_names, normalization, peer=peer)
    metrics = round_metrics(rnd, params, before, labels, query, answers, rows, bool(answered.any()), scores,
                            data.class_names)  # fmt: skip
    artifacts.write_json(paths.round_metrics(rnd.number), metrics)
    test = metrics["test"] or {}
    print(f"round {rnd.number}: budget used {metrics['budget_used']}, "
          f"test balanced accuracy {rounded(test.get('balanced_accuracy'))}")  # fmt: skip


if __name__ == "__main__":
    run_stage(main, training=True)
