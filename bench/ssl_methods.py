"""The pretraining method and the projection head's width, measured on the embeddings alone:
SimCLR (NT-Xent) against VICReg, each with a 64- and a 512-wide projection, at the default batch
(256) and a small one, several pretraining seeds per set, paired per pretraining seed.

Per (set, configuration, pretraining seed) one pretraining on the train images (split seed 0,
``--epochs`` epochs, the other pretrain params at their defaults), then two measures of the
embeddings:
- the linear probe: test balanced accuracy of a logistic regression (sklearn, standardised
  embeddings, class-weighted) fitted to the *true* train labels: how much a linear head can get
  out of the representation;
- the label-issue AUROC at symmetric noise 0.4: 1 − the K-fold probe's out-of-sample
  probability of the given label (alr_core.lnl.feature_rules.kfold_probs, as the label_issues
  stage and ``cleanlab_kfold`` use it) against which labels are wrong, mean over noise seeds
  0, 1, 2.

    BCCD="bccd=imagefolder:../shared/data/bccd_wbc/BCCD_cropped;class_names=[Eosinophil,Lymphocyte,Monocyte,Neutrophil]"
    python -m bench.ssl_methods --dataset digits retinamnist "$BCCD" --seeds 0 1 2
    python -m bench.ssl_methods --dataset digits "$BCCD" --seeds 0 1 2 --batch-size 32
    python -m bench.ssl_methods --table-only

Records are appended to ``--raw`` one run at a time; a rerun skips what it holds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from alr_core.common.params import parse_params
from alr_core.common.seeding import rng_for
from alr_core.data.noise import noisy_label_table
from alr_core.data.prepare import prepare
from bench.phase1_evidence import available_datasets
from bench.records import append_record, read_records
from bench.ssl_evidence import SPLIT_SEED, base_params, diff_text, fmt, markdown_row, mean_interval, section

CONFIGS = ["simclr:64", "simclr:512", "vicreg:64", "vicreg:512"]  # method:projection_dim
BASELINE = "simclr:64"  # the pipeline's default
NOISE_RATE = 0.4
NOISE_SEEDS = (0, 1, 2)


def run(name: str, dataset: dict, config: str, seed: int, epochs: int, batch_size: int = 256) -> dict:
    """One pretraining and its two measures (module docstring)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score
    from sklearn.preprocessing import StandardScaler

    from alr_core.lnl.feature_rules import FOLD_SEED, kfold_probs
    from alr_core.ssl.loop import run_pretrain

    method, width = config.split(":")
    base = base_params(dataset, {"method": method, "epochs": epochs, "projection_dim": int(width), "seed": seed,
                                 "batch_size": batch_size})  # fmt: skip
    params = parse_params(base)
    data = prepare(params.data, rng_for(SPLIT_SEED, "split"))
    samples = data.samples
    start = time.perf_counter()
    result = run_pretrain(data.images, samples[["sample_id", "split"]], params, progress=False)
    seconds = time.perf_counter() - start
    embeddings, labels = result.embeddings, samples["label"].to_numpy()
    train, test = (samples["split"].to_numpy() == s for s in ("train", "test"))
    scaler = StandardScaler().fit(embeddings[train])
    probe = LogisticRegression(max_iter=3000, class_weight="balanced").fit(scaler.transform(embeddings[train]),
                                                                          labels[train])  # fmt: skip
    probe_accuracy = balanced_accuracy_score(labels[test], probe.predict(scaler.transform(embeddings[test])))
    num_classes = int(labels.max()) + 1
    aurocs = []
    for noise_seed in NOISE_SEEDS:
        noisy = parse_params(base | {"seed": noise_seed, "noise": base["noise"] | {"type": "symmetric",
                                                                                      "rate": NOISE_RATE}})  # fmt: skip
        table = noisy_label_table(samples, num_classes, noisy.noise, rng_for(noise_seed, "noise"))
        observed = table["observed_label"].to_numpy()
        wrong = observed != table["true_label"].to_numpy()
        probs = kfold_probs(embeddings[train], observed, num_classes, noisy.lnl.cv_folds, FOLD_SEED)
        aurocs.append(roc_auc_score(wrong, 1.0 - probs[np.arange(len(observed)), observed]))
    return {"dataset": name, "config": config, "pretrain_seed": seed, "epochs": epochs, "batch_size": batch_size,
            "probe_balanced_accuracy": float(probe_accuracy), "label_issue_auroc": float(np.mean(aurocs)),
            "loss_first_epoch": result.metrics["loss_first_epoch"],
            "loss_last_epoch": result.metrics["loss_last_epoch"], "seconds": round(seconds, 1)}  # fmt: skip


def tables(records: list[dict]) -> str:
    frame = pd.DataFrame(records)
    out = section("## Embeddings per pretraining method", "Mean over pretraining seeds; Δ = paired difference to "
                  f"`{BASELINE}` (the default) with the same pretraining seed and batch size, mean [95 % t-interval]. "
                  "Batch: images per pretraining batch (the default 256 holds every train image of BCCD). Probe: test "
                  "balanced accuracy of a linear probe on the true labels; AUROC: the K-fold label-issue score at "
                  f"noise {NOISE_RATE} (mean of {len(NOISE_SEEDS)} noise seeds).",
                  ["dataset", "epochs", "batch", "method:projection", "seeds", "probe", "Δ probe", "AUROC", "Δ AUROC",
                   "pretrain s"])  # fmt: skip
    for (dataset, epochs, batch), block in frame.groupby(["dataset", "epochs", "batch_size"], sort=False):
        base = block[block["config"] == BASELINE].set_index("pretrain_seed")
        for config in [c for c in CONFIGS if c in set(block["config"])]:
            runs = block[block["config"] == config].set_index("pretrain_seed")
            common = runs.index.intersection(base.index)

            def delta(metric):
                if config == BASELINE or len(common) < 2:
                    return "—"
                return diff_text(mean_interval(runs.loc[common, metric] - base.loc[common, metric]))

            out.append(markdown_row([dataset, epochs, batch, config, len(runs),
                                     fmt(runs["probe_balanced_accuracy"].mean()), delta("probe_balanced_accuracy"),
                                     fmt(runs["label_issue_auroc"].mean()), delta("label_issue_auroc"),
                                     f"{runs['seconds'].mean():.0f}"]))  # fmt: skip
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", nargs="+", default=["digits"])
    parser.add_argument("--configs", nargs="+", default=CONFIGS, choices=CONFIGS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="pretraining seeds")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=256, help="pretrain.batch_size")
    parser.add_argument("--raw", type=Path, default=Path("bench/ssl_methods.jsonl"))
    parser.add_argument("--out", type=Path, default=Path("bench/ssl_methods_tables.md"))
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()

    records = read_records(args.raw)
    done = {(r["dataset"], r["config"], r["pretrain_seed"], r["epochs"], r["batch_size"]) for r in records}
    if not args.table_only:
        for name, dataset in available_datasets(args.dataset):
            for seed in args.seeds:
                for config in args.configs:
                    if (name, config, seed, args.epochs, args.batch_size) in done:
                        continue
                    record = run(name, dataset, config, seed, args.epochs, args.batch_size)
                    records.append(record)
                    append_record(args.raw, record)
                    print(json.dumps(record), file=sys.stderr)
    header = (f"# Pretraining methods: tables\n\nProduced by `python -m bench.ssl_methods --table-only` from "
              f"`{args.raw}`; the reading is in bench/ssl_evidence.md.\n\n")
    args.out.write_text(header + tables(records))


if __name__ == "__main__":
    main()
