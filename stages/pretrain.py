"""Stage pretrain: the train split's images, no labels → a self-supervised encoder and the
embedding of every sample.

Outputs: data/pretrain/encoder.pt (the encoder, its projection head, spec and normalisation),
data/pretrain/embeddings.parquet (sample_id, split, emb_0 … emb_<D-1>), metrics/pretrain.json,
metrics/pretrain_timing.json (wall-clock seconds, kept out of the tracked metrics),
plots/pretrain_epochs.csv.
"""

import dataclasses

from alr_core.common import artifacts, paths
from alr_core.common.cli import no_arguments, run_stage
from alr_core.common.params import load_params
from alr_core.common.text import counted, rounded


def main() -> None:
    no_arguments(__doc__)
    params = load_params(paths.PARAMS)
    from alr_core.nn import distributed  # torch is imported only after params pass
    from alr_core.ssl.embeddings import embeddings_table
    from alr_core.ssl.encoder import save_encoder
    from alr_core.ssl.loop import run_pretrain
    from alr_core.ssl.loss import OBJECTIVES

    distributed.join(params.train.device)  # under torchrun (train.processes > 1): one rank of it
    images = artifacts.load_npy(paths.PREPARED_IMAGES)  # every image is embedded, so all are read anyway
    # ids and splits only: the labels are never read
    samples = artifacts.read_parquet(paths.PREPARED_SAMPLES, columns=["sample_id", "split"])
    result = run_pretrain(images, samples, params)
    if not distributed.is_main_process():
        return  # rank 0 writes the outputs
    table = embeddings_table(samples, result.embeddings)  # before any write: a failure leaves no partial output
    save_encoder(paths.PRETRAIN_ENCODER, result.spec, result.encoder, result.normalization,
                 dataclasses.asdict(params.pretrain), result.head)  # fmt: skip
    artifacts.write_parquet(paths.PRETRAIN_EMBEDDINGS, table)
    artifacts.write_csv(paths.PRETRAIN_EPOCHS_PLOT, result.epochs)
    artifacts.write_json(paths.PRETRAIN_METRICS, result.metrics)
    artifacts.write_json(paths.PRETRAIN_TIMING, result.timing)
    metrics = result.metrics
    trained = (
        f"{counted(metrics['epochs'], 'epoch')} on {counted(metrics['train_images'], 'train image')}, "
        f"{OBJECTIVES[metrics['method']].name} {rounded(metrics['loss_first_epoch'])} → "
        f"{rounded(metrics['loss_last_epoch'])} "
        f"(an encoder that maps every image to one point scores {rounded(metrics['loss_chance'])}); "
        if metrics["epochs"]
        else "no training (random initialisation); "
    )
    embedded = f"embedded {counted(metrics['embedded_images'], 'image')} in {metrics['embedding_dim']} dimensions"
    print(f"pretrain {metrics['method']} ({metrics['arch']}): {trained}{embedded}")


if __name__ == "__main__":
    run_stage(main, training=True)
