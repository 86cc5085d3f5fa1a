"""Stage inject_noise: prepared samples → data/noise/labels.parquet, metrics/noise.json."""

from alr_core.common import artifacts, paths
from alr_core.common.cli import no_arguments, run_stage
from alr_core.common.errors import AlrError
from alr_core.common.params import load_params
from alr_core.common.seeding import rng_for
from alr_core.common.text import counted
from alr_core.data.noise import kept_clean_text, noise_summary, noisy_label_table
from alr_core.data.prepare import class_names


def main() -> None:
    no_arguments(__doc__)
    params = load_params(paths.PARAMS)
    if not paths.PREPARED_SAMPLES.is_file():
        raise AlrError(f"{paths.PREPARED_SAMPLES}: not found; run the prepare stage first (dvc repro)")
    samples = artifacts.read_parquet(paths.PREPARED_SAMPLES)
    names = class_names(samples)
    labels = noisy_label_table(samples, len(names), params.noise, rng_for(params.seed, "noise"))
    summary = {"type": params.noise.type, "rate": params.noise.rate}
    if params.noise.type != "none":
        truth = labels["true_label"].to_numpy(dtype="int64")
        summary |= noise_summary(truth, labels["observed_label"].to_numpy(), names)
        summary["kept_clean_classes"] = [names[k] for k in params.noise.keep_clean_classes]
    artifacts.write_parquet(paths.NOISY_LABELS, labels)
    artifacts.write_json(paths.NOISE_METRICS, summary)
    if params.noise.type == "none":
        print(f"labels for {counted(len(labels), 'train sample')}, as given (noise.type: none)")
    else:
        print(f"labels for {counted(len(labels), 'train sample')}, {summary['num_corrupted']} corrupted "
              f"(realised rate {summary['realised_rate']:.3f}, noise.rate {params.noise.rate:g})")
        kept = kept_clean_text(params.noise.keep_clean_classes, names)
        if kept:
            print(kept)


if __name__ == "__main__":
    run_stage(main)
