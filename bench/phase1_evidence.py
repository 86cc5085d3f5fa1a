"""Phase-1 evidence: clean-selection quality and test scores per method, mean ± sample std over seeds.

Runs prepare → inject_noise → phase 1 in-process (the same alr_core calls as the stages) for
each dataset × noise rate × seed × method and writes a Markdown table. Raw results are appended
to a JSONL file one run at a time; a rerun skips the (dataset, rate, method, seed) keys it
already holds, so a long sweep can be stopped and extended.

    python -m bench.phase1_evidence --dataset digits \
        "bccd=imagefolder:../shared/data/bccd_wbc/BCCD_cropped;class_names=[Eosinophil,Lymphocyte,Monocyte,Neutrophil]" \
        --rates 0.4 --seeds 0 1 2
    python -m bench.phase1_evidence --ablation --dataset digits --rates 0.4 \
        --seeds 0 1 --out bench/vog_ablation.md --raw bench/vog_ablation.jsonl

``--dataset`` takes built-in names (digits, retinamnist) or NAME=SOURCE[:PATH][;KEY=VALUE...]
where SOURCE is a ``data.source`` and each KEY=VALUE sets ``data.KEY`` (VALUE read as YAML).
RetinaMNIST is read from ../shared/data/retinamnist/retinamnist.npz; a dataset whose path is
absent is skipped. A noise rate a dataset cannot take (symmetric rate ≥ (K − 1)/K) is skipped
with a note.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from alr_core.common.errors import AlrError
from alr_core.common.params import load_params, parse_params, yaml_value
from alr_core.common.seeding import rng_for
from alr_core.data.datasets import PipelineData, SplitData
from alr_core.data.noise import noisy_label_table
from alr_core.data.prepare import class_names, prepare

from bench.records import append_record, read_records

RETINA = Path(__file__).resolve().parents[2] / "shared" / "data" / "retinamnist" / "retinamnist.npz"
DATASETS = {
    "digits": {"source": "digits"},
    "retinamnist": {"source": "medmnist", "path": str(RETINA)},
}
METHODS = {
    "ce": {"method": "ce"},
    "coteaching": {"method": "coteaching"},
    "coteaching + class_aware": {"method": "coteaching", "selection": "class_aware"},
    "coteaching + class_gmm": {"method": "coteaching", "selection": "class_gmm"},
    "coteaching + prototype": {"method": "coteaching", "selection": "prototype"},
    "coteaching + noise_quota": {"method": "coteaching", "selection": "noise_quota"},
    "coteaching + confident_learning": {"method": "coteaching", "selection": "confident_learning"},
    "coteaching + class_gmm + above chance": {"method": "coteaching", "selection": "class_gmm",
                                              "keep_above_chance": "always"},
    "coteaching + class_gmm + above chance in C": {"method": "coteaching", "selection": "class_gmm",
                                                   "keep_above_chance": "clean_guess"},
    "coteaching + class_gmm + balanced loss": {"method": "coteaching", "selection": "class_gmm",
                                               "class_balance": "loss"},
    "coteaching_vog": {"method": "coteaching_vog"},
    "coteaching_vog + class_gmm": {"method": "coteaching_vog", "selection": "class_gmm"},
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


def prepare_run(dataset: dict, rate: float, seed: int, overrides: dict) -> tuple:
    """prepare → inject_noise in-process, as the stages do: (params, PipelineData, noisy label
    table). ``overrides`` are merged into params.yaml's groups (e.g. {"lnl": {...}}).

    Unlike a pipeline replicate, each seed also draws its own split (``data.split_seed`` =
    ``seed``): every table recorded with this script was measured that way, so its ± spread
    includes the split's variance, and a resumed sweep stays comparable with its records."""
    base = dataclasses.asdict(load_params("params.yaml"))
    base["seed"] = seed
    base["data"]["split_seed"] = seed
    base["data"] |= dataset
    base["noise"] |= {"type": "symmetric", "rate": rate}
    if dataset["source"] != "digits":
        base["train"]["augment"]["hflip"] = True  # medical images have no handedness
    for group, values in overrides.items():
        base[group] = base[group] | values if isinstance(values, dict) else values
    params = parse_params(base)
    prepared = prepare(params.data, rng_for(params.data.split_seed, "split"))
    samples = prepared.samples
    names = class_names(samples)
    labels = noisy_label_table(samples, len(names), params.noise, rng_for(seed, "noise"))
    rows = {s: np.flatnonzero(samples["split"].to_numpy() == s) for s in ("train", "val", "test")}

    def split(name):
        r = rows[name]
        return SplitData(samples["sample_id"].to_numpy()[r], prepared.images[r], samples["label"].to_numpy()[r])

    train = SplitData(labels["sample_id"].to_numpy(), prepared.images[rows["train"]],
                      labels["observed_label"].to_numpy(), labels["true_label"].to_numpy(dtype=np.int64))
    return params, PipelineData(train, split("val"), split("test"), names), labels


def run_one(dataset: dict, rate: float, lnl: dict, seed: int, epochs: int) -> dict:
    from alr_core.lnl.phase1 import train_phase1

    # a method name without a rule means the paper's per-batch global cut, and one without
    # "above chance" the rule alone, whatever params.yaml says
    lnl = {"selection": "global", "keep_above_chance": "never", "class_balance": "none"} | lnl | {"epochs": epochs}
    params, data, _ = prepare_run(dataset, rate, seed, {"lnl": lnl})
    return train_phase1(data, params, progress=False).metrics


def parse_dataset(text: str) -> tuple[str, dict]:
    """A built-in name, or NAME=SOURCE[:PATH][;KEY=VALUE...] → (name, data params)."""
    if "=" not in text.split(";")[0]:
        if text not in DATASETS:
            raise SystemExit(f"--dataset {text!r}: not a built-in ({', '.join(DATASETS)}); use NAME=SOURCE[:PATH]")
        return text, DATASETS[text]
    head, *options = text.split(";")
    name, spec = head.split("=", 1)
    source, _, path = spec.partition(":")
    data = {"source": source} | ({"path": path} if path else {})
    for option in options:
        key, sep, value = option.partition("=")
        if not sep:
            raise SystemExit(f"--dataset {text!r}: option {option!r} is not KEY=VALUE")
        data[key] = yaml_value(value)  # as `dvc exp run -S` reads it
    return name, data


def available_datasets(texts: list[str]) -> Iterator[tuple[str, dict]]:
    """:func:`parse_dataset` of each of ``texts``, skipping (with a line on stderr) those whose
    folder or file is absent, so one sweep runs on whatever data this machine has."""
    for text in texts:
        name, dataset = parse_dataset(text)
        if dataset.get("path") and not Path(dataset["path"]).exists():
            print(f"{name}: {dataset['path']} is absent, skipped", file=sys.stderr)
            continue
        yield name, dataset


def summarise(records: list[dict]) -> pd.DataFrame:
    table = pd.DataFrame(records)
    columns = ["precision", "recall", "worst_class_recall", "test_balanced_accuracy", "test_macro_f1"]
    grouped = table.groupby(["dataset", "noise", "method"], sort=False)[columns]
    mean, std, n = grouped.mean(), grouped.std(ddof=1), grouped.size()

    def cell(col):
        return [("—" if pd.isna(m) else f"{m:.3f}" if pd.isna(s) else f"{m:.3f} ± {s:.3f}")
                for m, s in zip(mean[col], std[col])]  # fmt: skip

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


def targets(records: list[dict]) -> pd.DataFrame:
    """The issue's targets per dataset × noise × method, on the means over seeds: worst-class
    recall of C ≥ 0.7; precision of C ≥ loss-only Co-teaching's − 0.03; test balanced accuracy ≥
    plain CE's. A cell is "—" where its reference (Co-teaching or CE) was not run."""
    table = pd.DataFrame(records)
    mean = table.groupby(["dataset", "noise", "method"], sort=False)[
        ["precision", "worst_class_recall", "test_balanced_accuracy"]].mean()  # fmt: skip
    rows = []
    for (dataset, noise, method), row in mean.iterrows():
        if method in ("ce", "coteaching"):
            continue

        def reference(name, column):
            key = (dataset, noise, name)
            return mean.loc[key, column] if key in mean.index else np.nan

        def mark(ok):
            return "—" if ok is None else ("yes" if ok else "no")

        coteaching_precision = reference("coteaching", "precision")
        ce_accuracy = reference("ce", "test_balanced_accuracy")
        rows.append({
            "dataset": dataset, "noise": noise, "method": method,
            "worst-class recall ≥ 0.7": mark(row["worst_class_recall"] >= 0.7),
            "precision ≥ coteaching − 0.03": mark(None if np.isnan(coteaching_precision)
                                                  else row["precision"] >= coteaching_precision - 0.03),
            "test bal. acc. ≥ ce": mark(None if np.isnan(ce_accuracy) else row["test_balanced_accuracy"] >= ce_accuracy),
        })  # fmt: skip
    return pd.DataFrame(rows)


def rarest_class_noise(records: list[dict]) -> pd.DataFrame:
    """Per dataset × noise, the rarest true class of the train split: its size, how many train
    samples carry its label and the noisy share of those, means over the seeds run (labels
    only, no training). Under symmetric noise most of a rare class's labels come from other
    classes: a rule that keeps that class's clean samples keeps them among mostly wrong labels."""
    from alr_core.data.noise import noise_summary

    rows = []
    for (dataset, noise), group in pd.DataFrame(records).groupby(["dataset", "noise"], sort=False):
        data_params = group["data"].iloc[0]
        if "path" in data_params and not Path(data_params["path"]).exists():
            continue
        stats = []
        for seed in sorted(group["seed"].unique()):
            _, data, labels = prepare_run(data_params, noise, int(seed), {})
            summary = noise_summary(labels["true_label"].to_numpy(), labels["observed_label"].to_numpy(),
                                    data.class_names)  # fmt: skip
            matrix = np.array(summary["transition_counts"])
            rarest = int(matrix.sum(axis=1).argmin())
            name = data.class_names[rarest]
            stats.append((matrix[rarest].sum(), summary["observed_class_counts"][name],
                          summary["noisy_share_per_observed_class"][name]))  # fmt: skip
        true_n, labelled_n, share = np.mean(stats, axis=0)
        rows.append({"dataset": dataset, "noise": noise, "rarest class: train samples": f"{true_n:.0f}",
                     "samples labelled with it": f"{labelled_n:.0f}", "noisy share of those": f"{share:.2f}"})  # fmt: skip
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rates", type=float, nargs="+", default=[0.4, 0.6])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--out", type=Path, default=Path("bench/phase1_selection.md"))
    parser.add_argument("--raw", type=Path, default=Path("bench/phase1_selection.jsonl"))
    parser.add_argument("--ablation", action="store_true",
                        help="VOG variants (window, mix, warm-up, normalisation) instead of the methods")
    parser.add_argument("--dataset", nargs="+", default=list(DATASETS),
                        help="built-in names or NAME=SOURCE[:PATH][;KEY=VALUE...] (see above)")
    parser.add_argument("--variants", nargs="+", help="only these method (or ablation) names")
    parser.add_argument("--table-only", action="store_true", help="write the table from --raw, run nothing")
    args = parser.parse_args()
    datasets = dict(parse_dataset(text) for text in args.dataset)
    methods = ABLATION if args.ablation else METHODS
    if args.variants:
        methods = {name: methods[name] for name in args.variants}

    # resume an interrupted sweep
    done = {(r["dataset"], r["noise"], r["method"], r["seed"]): r for r in read_records(args.raw)}
    for dataset_name, dataset in [] if args.table_only else datasets.items():
        if "path" in dataset and not Path(dataset["path"]).exists():
            print(f"skipping {dataset_name}: {dataset['path']} not found")
            continue
        for rate in args.rates:
            # seeds outermost: a sweep stopped early leaves every method with the same seeds
            for seed in args.seeds:
                for method_name, lnl in methods.items():
                    key = (dataset_name, rate, method_name, seed)
                    if key in done:
                        continue
                    try:
                        metrics = run_one(dataset, rate, lnl, seed, args.epochs)
                    except AlrError as exc:  # e.g. a noise rate the dataset's K cannot take
                        print(f"skipping {dataset_name} at noise {rate}: {exc}", flush=True)
                        break
                    selection = metrics.get("selection") or {}
                    ce = lnl["method"] == "ce"
                    record = {
                        "dataset": dataset_name, "noise": rate, "method": method_name, "seed": seed,
                        "precision": None if ce else selection["precision"],
                        "recall": None if ce else selection["recall"],
                        "worst_class_recall": None if ce else selection["worst_class_recall"],
                        "recall_per_class": [np.nan] * len(selection["recall_per_class"]) if ce else
                        [np.nan if v is None else v for v in selection["recall_per_class"].values()],
                        "precision_per_class": [np.nan] * len(selection["precision_per_class"]) if ce else
                        [np.nan if v is None else v for v in selection["precision_per_class"].values()],
                        "test_balanced_accuracy": metrics["test"]["balanced_accuracy"],
                        "test_macro_f1": metrics["test"]["macro_f1"],
                        # the best-validation epoch the test numbers come from: equal test numbers
                        # of two rules with a checkpoint in the warm-up are one and the same network
                        "best_epoch": metrics["best_epoch"],
                        "classes_kept_whole": metrics.get("classes_kept_whole", []),
                        "data": dataset, "epochs": args.epochs,
                    }  # fmt: skip
                    done[key] = record
                    append_record(args.raw, record)
                    print(json.dumps({k: record[k] for k in ("dataset", "noise", "method", "seed",
                                                             "worst_class_recall", "test_balanced_accuracy")}),
                          flush=True)  # fmt: skip
    table = summarise(list(done.values()))
    header = (f"Phase-1 evidence: symmetric noise, {args.epochs} epochs, default params otherwise; "
              "mean ± sample std over the n seeds run (seeds 0, 1, 2 in that order).\n"
              f"Produced by `python -m bench.phase1_evidence {shlex.join(sys.argv[1:])}`.\n"
              "Selection columns describe the clean guess C against the truly clean train samples; `ce` trusts every label, so it has none.\n\n")
    checks = targets(list(done.values()))
    context = rarest_class_noise(list(done.values()))
    args.out.write_text(header + table.to_markdown(index=False) + "\n\nTargets (on the means above):\n\n"
                        + checks.to_markdown(index=False)
                        + "\n\nThe rarest class's labels (why keeping it costs precision of C):\n\n"
                        + context.to_markdown(index=False) + "\n")
    print(args.out.read_text())


if __name__ == "__main__":
    main()
