"""Stage prepare: data source → data/prepared/{images.npy, samples.parquet}, metrics/data.json."""

from alr_core.common import artifacts, paths
from alr_core.common.cli import no_arguments, run_stage
from alr_core.common.params import load_params
from alr_core.common.seeding import rng_for
from alr_core.common.text import counted
from alr_core.data.fingerprint import read_stat_cache
from alr_core.data.identical import identical_text
from alr_core.data.prepare import data_summary, groups_text, imbalance_text, prepare, unscored_classes_text


def main() -> None:
    no_arguments(__doc__)
    params = load_params(paths.PARAMS)
    # the splits' own seed: a replicate (top-level ``seed``) keeps the split, and with it every
    # stage that depends on the prepared data alone (pretrain)
    split_rng = rng_for(params.data.split_seed, "split")
    dataset = prepare(params.data, split_rng, read_stat_cache(paths.SOURCE_STAT_CACHE))
    summary = data_summary(dataset)  # before any write: a failure here leaves no partial output
    artifacts.write_npy(paths.PREPARED_IMAGES, dataset.images)
    artifacts.write_parquet(paths.PREPARED_SAMPLES, dataset.samples)
    artifacts.write_json(paths.DATA_METRICS, summary)
    print(f"prepared {counted(len(dataset.samples), 'image')} of shape {dataset.images.shape[1:]}")
    for line in (identical_text(summary["identical_images"]), groups_text(summary["groups"]),
                 unscored_classes_text(summary), imbalance_text(summary, params.data)):
        if line:
            print(line)


if __name__ == "__main__":
    run_stage(main)
