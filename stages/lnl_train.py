"""Stage lnl_train (phase 1): noisy labels → networks, clean guess C, metrics and curves.

Outputs: data/lnl/model.pt (network f, and g for Co-teaching), data/lnl/selection.parquet,
data/lnl/labels.parquet (the round-0 working label table), metrics/lnl.json,
metrics/lnl_timing.json (wall-clock seconds, kept out of the tracked metrics), plots/lnl_epochs.csv.
"""

from alr_core.active.labels import initial_working_labels
from alr_core.common import artifacts, paths
from alr_core.common.cli import no_arguments, run_stage
from alr_core.common.params import load_params
from alr_core.common.text import kept_text, method_name, rounded, safety_net_sentence


def main() -> None:
    no_arguments(__doc__)
    params = load_params(paths.PARAMS)
    from alr_core.data.datasets import load_pipeline_data, model_inputs  # torch only after params pass
    from alr_core.lnl.safety_net import train_with_safety_net
    from alr_core.nn import distributed
    from alr_core.nn.models import init_sentence, save_checkpoint

    distributed.join(params.train.device)  # under torchrun (train.processes > 1): one rank of it
    labels = artifacts.read_parquet(paths.NOISY_LABELS)
    data = load_pipeline_data(paths.PREPARED_IMAGES, paths.PREPARED_SAMPLES, labels,
                              embeddings_path=paths.PRETRAIN_EMBEDDINGS)  # fmt: skip
    data = model_inputs(data, frozen=params.model.freeze == "backbone")
    result = train_with_safety_net(data, params)
    if not distributed.is_main_process():
        return  # rank 0 writes the outputs
    save_checkpoint(paths.LNL_CHECKPOINT, result.spec, result.model, data.class_names,
                    result.normalization, peer=result.peer)  # fmt: skip
    artifacts.write_parquet(paths.LNL_SELECTION, result.selection)
    working = initial_working_labels(labels, result.selection["clean_guess"].to_numpy())
    artifacts.write_parquet(paths.LNL_WORKING_LABELS, working)
    artifacts.write_csv(paths.LNL_EPOCHS_PLOT, result.epochs)
    artifacts.write_json(paths.LNL_METRICS, result.metrics)
    artifacts.write_json(paths.LNL_TIMING, result.timing)
    test = result.metrics["test"] or {}  # None without a test split
    method = method_name(result.metrics["method"], result.metrics.get("selection_rule"))
    print(f"{method}: test balanced accuracy {rounded(test.get('balanced_accuracy'))}, "
          f"{kept_text(result.metrics['selection'], len(result.selection))}")  # fmt: skip
    loaded = init_sentence(result.metrics.get("init") or {})  # a weights file that left tensors random
    if loaded:
        print(loaded)
    net = result.metrics.get("safety_net")
    if net and net["ce_is_better"]:
        print(safety_net_sentence(net))


if __name__ == "__main__":
    run_stage(main, training=True)
