"""label_disagreement's γ in InnerEye's units against γ in nats: the default configuration's
phase 2, paired per seed.

InnerEye divides both entropies of its JOINT rule by ln K, so its γ = 0.3 is 0.3·ln K nats;
until ae9c15a alr read `al.entropy_threshold` = 0.3 as nats (0.13 of ln 10). This bench runs
bench.ssl_evidence's "cleanlab_kfold + safety net + label_disagreement" (noise 0.4, budget 10 %,
15-epoch SimCLR embeddings, initialisation from scratch, 5 rounds) twice per seed, phase 1
shared: at `al.entropy_threshold` 0.3 (0.3·ln K nats, the default) and 0.3 / ln K (0.3 nats).

    BCCD="bccd=imagefolder:../shared/data/bccd_wbc/BCCD_cropped;class_names=[Eosinophil,Lymphocyte,Monocyte,Neutrophil];split_order=shuffle"
    python -m bench.label_disagreement_units --dataset digits "synthetic_ir50=synthetic;imbalance_ratio=50" "$BCCD" retinamnist

Each run appends to ``--raw`` (resumable); ``--table-only`` rebuilds ``--out`` from it.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd

from bench.phase1_evidence import available_datasets
from bench.records import append_record, machine, read_records
from bench.ssl_evidence import diff_text, fmt, markdown_row, mean_interval

CONFIGURATION = "cleanlab_kfold + safety net + label_disagreement"  # the pipeline's default
RATE, BUDGET, INIT, PRETRAIN_EPOCHS = 0.4, 0.1, "scratch", 15
DEFAULT = "γ 0.3·ln K (InnerEye's units, the default)"
NATS = "γ 0.3 nats (before ae9c15a)"
# variant → al.entropy_threshold for K classes
THRESHOLDS = {DEFAULT: lambda k: 0.3, NATS: lambda k: 0.3 / math.log(k)}
METRICS = ("test_balanced_accuracy", "label_accuracy", "cleaning_efficiency", "fixed_by_queries")


def runs(name: str, dataset: dict, seeds: list[int], cache: Path, done: set):
    """Yield one record per (seed, variant) not in ``done``: the phase-2 result and the variant's threshold."""
    from bench import ssl_evidence

    prep = ssl_evidence.prepared(name, dataset, ssl_evidence.pretrain_settings(INIT, PRETRAIN_EPOCHS), cache)
    num_classes = len(prep.names)
    for seed in seeds:
        for variant, threshold in THRESHOLDS.items():
            if (name, seed, variant) in done:
                continue
            # phase2_config reads its modifiers from this table: the variant's threshold, for this K
            ssl_evidence.MODIFIERS[variant] = {"entropy_threshold": threshold(num_classes)}
            result = ssl_evidence.phase2_run(prep, RATE, seed, INIT, f"{CONFIGURATION}, {variant}", BUDGET)
            yield {"dataset": name, "K": num_classes, "seed": seed, "variant": variant,
                   "entropy_threshold": threshold(num_classes), "rate": RATE, "budget": BUDGET, "init": INIT,
                   "pretrain_epochs": PRETRAIN_EPOCHS} | result  # fmt: skip


def table(records: list[dict]) -> str:
    frame = pd.DataFrame(records)
    out = [f"# label_disagreement's γ: InnerEye's units against nats\n\nProduced by `python -m "
           f"bench.label_disagreement_units` on {machine()}; each record of `bench/label_disagreement_units.jsonl` "
           "names the commit it ran at and the `al.entropy_threshold` that gives its variant today. Noise 0.4, "
           "budget 10 %, the default "
           f"configuration ({CONFIGURATION}). Mean over the seeds; Δ = {DEFAULT} − {NATS} on the same seed, "
           "mean [95 % t-interval].", "",
           markdown_row(["dataset", "K", "seeds", "metric", "γ 0.3 nats", "γ 0.3·ln K", "Δ"]),
           markdown_row(["---"] * 7)]  # fmt: skip
    for dataset, block in frame.groupby("dataset", sort=False):
        new = block[block["variant"] == DEFAULT].set_index("seed")
        old = block[block["variant"] == NATS].set_index("seed")
        seeds = new.index.intersection(old.index)
        for metric in METRICS:
            delta = mean_interval((new.loc[seeds, metric] - old.loc[seeds, metric]).astype(float))
            out.append(markdown_row([dataset, block["K"].iloc[0], len(seeds), metric,
                                     fmt(old.loc[seeds, metric].mean()), fmt(new.loc[seeds, metric].mean()),
                                     diff_text(delta)]))  # fmt: skip
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", nargs="+", default=["digits"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/alr-ssl-evidence"))
    parser.add_argument("--raw", type=Path, default=Path("bench/label_disagreement_units.jsonl"))
    parser.add_argument("--out", type=Path, default=Path("bench/label_disagreement_units.md"))
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()
    if not args.table_only:
        done = {(r["dataset"], r["seed"], r["variant"]) for r in read_records(args.raw)}
        for name, dataset in available_datasets(args.dataset):
            for record in runs(name, dataset, args.seeds, args.cache, done):
                append_record(args.raw, record)
    args.out.write_text(table(read_records(args.raw)))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
