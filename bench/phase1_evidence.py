"""Phase-1 evidence: clean-selection quality and test scores per method, mean ± std over seeds.

Runs prepare → inject_noise → phase 1 in-process (the same alr_core calls as the stages) for
each dataset × noise rate × method × seed and writes a Markdown table.

    python -m bench.phase1_evidence --seeds 0 1 2 --out bench/phase1_evidence.md
    python -m bench.phase1_evidence --ablation --datasets "digits (long-tailed)" --rates 0.4 \
        --seeds 0 1 --out bench/vog_ablation.md --raw bench/vog_ablation.jsonl

RetinaMNIST is read from ../shared/data/retinamnist/retinamnist.npz and skipped when absent.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from alr_core.common.params import load_params, parse_params
from alr_core.common.seeding import rng_for
from alr_core.data.datasets import PipelineData, SplitData
from alr_core.data.noise import noisy_label_table
from alr_core.data.prepare import class_names, prepare

RETINA = Path(__file__).resolve().parents[2] / "shared" / "data" / "retinamnist" / "retinamnist.npz"
DATASETS = {
    "digits (long-tailed)": {"source": "digits"},
    "RetinaMNIST": {"source": "medmnist", "path": str(RETINA)},
}
METHODS = {
    "ce": {"method": "ce"},
    "coteaching": {"method": "coteaching"},
    "coteaching_vog": {"method": "coteaching_vog"},
    "coteaching + class-aware": {"method": "coteaching", "selection": "class_aware"},
    "coteaching_vog + class-aware": {"method": "coteaching_vog", "selection": "class_aware"},
}
# `--ablation`: what else VOG can be tuned by (window, mix ratio, warm-up, class normalisation)
ABLATION = {
    "coteaching_vog (default: W 5, m 0.2, T_k 10)": {"method": "coteaching_vog"},
    "coteaching_vog, m 0.5": {"method": "coteaching_vog", "vog_mix": 0.5},
    "coteaching_vog, W 3": {"method": "coteaching_vog", "vog_window": 3},
    "coteaching_vog, T_k 5": {"method": "coteaching_vog", "num_gradual": 5},
    "coteaching_vog, class-normalised VOG": {"method": "coteaching_vog", "vog_normalize": "class"},
    "coteaching_vog, G from the training forward": {"method": "coteaching_vog", "vog_source": "train"},
}


def run_one(dataset: dict, rate: float, lnl: dict, seed: int, epochs: int) -> dict:
    from alr_core.lnl.phase1 import train_phase1

    base = dataclasses.asdict(load_params("params.yaml"))
    base["seed"] = seed
    base["data"] |= dataset
    base["noise"] |= {"type": "symmetric", "rate": rate}
    base["lnl"] |= lnl | {"epochs": epochs}
    if dataset["source"] != "digits":
        base["train"]["augment"]["hflip"] = True  # fundus images have no handedness
    params = parse_params(base)
    prepared = prepare(params.data, rng_for(seed, "split"))
    samples = prepared.samples
    names = class_names(samples)
    labels = noisy_label_table(samples, len(names), params.noise, rng_for(seed, "noise"))
    rows = {s: np.flatnonzero(samples["split"].to_numpy() == s) for s in ("train", "val", "test")}

    def split(name):
        r = rows[name]
        return SplitData(samples["sample_id"].to_numpy()[r], prepared.images[r], samples["label"].to_numpy()[r])

    train = SplitData(labels["sample_id"].to_numpy(), prepared.images[rows["train"]],
                      labels["observed_label"].to_numpy(), labels["true_label"].to_numpy(dtype=np.int64))
    result = train_phase1(PipelineData(train, split("val"), split("test"), names), params, progress=False)
    return result.metrics


def summarise(records: list[dict]) -> pd.DataFrame:
    table = pd.DataFrame(records)
    columns = ["precision", "recall", "worst_class_recall", "test_balanced_accuracy", "test_macro_f1"]
    grouped = table.groupby(["dataset", "noise", "method"], sort=False)[columns]
    mean, std, n = grouped.mean(), grouped.std(ddof=0), grouped.size()

    def cell(col):
        return [f"{m:.3f} ± {s:.3f}" if pd.notna(m) else "—" for m, s in zip(mean[col], std[col])]

    out = pd.DataFrame({c: cell(c) for c in columns}, index=mean.index)
    out["n"] = n
    def mean_per_class(series):
        values = np.array(series.tolist(), dtype=float)
        if np.isnan(values).all():
            return "—"
        return " ".join(f"{v:.2f}" for v in np.nanmean(values, axis=0))

    per_class = table.groupby(["dataset", "noise", "method"], sort=False)["recall_per_class"].agg(mean_per_class)
    out["per-class recall of C (class 0 … K−1, mean)"] = per_class
    return out.reset_index()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rates", type=float, nargs="+", default=[0.4, 0.6])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--out", type=Path, default=Path("bench/phase1_evidence.md"))
    parser.add_argument("--raw", type=Path, default=Path("bench/phase1_evidence.jsonl"))
    parser.add_argument("--ablation", action="store_true",
                        help="VOG variants (window, mix, warm-up, normalisation) instead of the methods")
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    parser.add_argument("--variants", nargs="+", help="only these method (or ablation) names")
    args = parser.parse_args()
    datasets = {name: DATASETS[name] for name in args.datasets}
    methods = ABLATION if args.ablation else METHODS
    if args.variants:
        methods = {name: methods[name] for name in args.variants}

    done = {}
    if args.raw.exists():  # resume an interrupted sweep
        for line in args.raw.read_text().splitlines():
            record = json.loads(line)
            done[(record["dataset"], record["noise"], record["method"], record["seed"])] = record
    for dataset_name, dataset in datasets.items():
        if "path" in dataset and not Path(dataset["path"]).exists():
            print(f"skipping {dataset_name}: {dataset['path']} not found")
            continue
        for rate in args.rates:
            for method_name, lnl in methods.items():
                for seed in args.seeds:
                    key = (dataset_name, rate, method_name, seed)
                    if key in done:
                        continue
                    metrics = run_one(dataset, rate, lnl, seed, args.epochs)
                    selection = metrics.get("selection") or {}
                    ce = lnl["method"] == "ce"
                    record = {
                        "dataset": dataset_name, "noise": rate, "method": method_name, "seed": seed,
                        "precision": None if ce else selection["precision"],
                        "recall": None if ce else selection["recall"],
                        "worst_class_recall": None if ce else selection["worst_class_recall"],
                        "recall_per_class": [np.nan] * len(selection["recall_per_class"]) if ce else
                        [np.nan if v is None else v for v in selection["recall_per_class"].values()],
                        "test_balanced_accuracy": metrics["test"]["balanced_accuracy"],
                        "test_macro_f1": metrics["test"]["macro_f1"],
                    }  # fmt: skip
                    done[key] = record
                    with args.raw.open("a") as handle:
                        handle.write(json.dumps(record) + "\n")
                    print(json.dumps({k: record[k] for k in ("dataset", "noise", "method", "seed",
                                                             "worst_class_recall", "test_balanced_accuracy")}),
                          flush=True)  # fmt: skip
    table = summarise(list(done.values()))
    header = (f"Phase-1 evidence: symmetric noise, seeds {args.seeds}, {args.epochs} epochs, default params "
              f"otherwise.\nProduced by `python -m bench.phase1_evidence {' '.join(sys.argv[1:])}`.\n"
              "Selection columns describe the clean guess C against the truly clean train samples; `ce` trusts every label, so it has none.\n\n")
    args.out.write_text(header + table.to_markdown(index=False) + "\n")
    print(args.out.read_text())


if __name__ == "__main__":
    main()
