"""How well the validation split estimates the label-issue report's false alarms.

The label_issues stage estimates the share of right labels its feature rules flag from the
validation split (alr_core.lnl.feature_rules.validation_false_alarm_rates: validation rows join
the train rows a few at a time, their labels taken as right) and from it how many of its flags
would be false alarms if every train label were right. This bench checks both where the truth
is known, against the share of the train split's right labels the same rules flag
(alr_core.lnl.feature_rules.feature_flags on train, as the stage flags) and the number of
flagged train samples whose label is right. Per set, symmetric noise rate and noise seed, on the
pipeline's 15-epoch SimCLR embeddings (split seed 0, as bench.ssl_evidence prepares them). At
noise 0 the "right" labels are the set's own: digits' and synthetic's are; BCCD's and
RetinaMNIST's are what their annotators gave. No network is trained.

    BCCD="bccd=imagefolder:../shared/data/bccd_wbc/BCCD_cropped;class_names=[Eosinophil,Lymphocyte,Monocyte,Neutrophil]"
    python -m bench.label_issue_alarms --dataset digits retinamnist "$BCCD" "synthetic_ir50=synthetic;imbalance_ratio=50"

About a minute on 2 cores once bench.ssl_evidence's embedding cache holds the sets (``--cache``);
otherwise each set is pretrained first.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.records import machine
from bench.ssl_evidence import (RULES, diff_text, embedding_sweep, fmt, markdown_row, mean_interval, prepared,
                                pretrain_settings, run_data, section)

PRETRAIN_EPOCHS = 15  # the pipeline's
RATES = (0.0, 0.2, 0.4, 0.6)


def alarm_records(name: str, dataset: dict, rates: list[float], seeds: list[int], cache: Path,
                  pretrain_epochs: int = PRETRAIN_EPOCHS) -> list[dict]:  # fmt: skip
    """One record per (rate, seed): the estimate and the truth it estimates, per rule and for
    either rule. At noise 0 only the first seed runs (nothing else depends on it)."""
    from alr_core.lnl.feature_rules import feature_flags, validation_false_alarm_rates
    from alr_core.report.label_issues import false_alarms_if_right

    prep = prepared(name, dataset, pretrain_settings("scratch", pretrain_epochs), cache)
    records = []
    for rate in rates:
        for seed in seeds if rate else seeds[:1]:
            params, data, _ = run_data(prep, rate, seed, "ssl frozen", RULES["ce"])
            train, val, num_classes = data.train, data.val, len(prep.names)
            k, folds = params.lnl.knn_k, params.lnl.cv_folds
            _, _, flags = feature_flags(train.images, train.labels, num_classes, k, folds)
            flags["either"] = flags["knn_vote"] | flags["cleanlab_kfold"]
            estimate = validation_false_alarm_rates(train.images, train.labels, val.images, val.labels, num_classes,
                                                    k, folds)  # fmt: skip
            right = train.labels == train.truth
            record = {"dataset": name, "rate": rate, "seed": seed, "num_train": len(right), "num_val": len(val.labels),
                      "flagged": int(flags["either"].sum()), "flagged_right": int((flags["either"] & right).sum()),
                      "if_labels_right": false_alarms_if_right(estimate["either"], len(right),
                                                              int(flags["either"].sum()))}  # fmt: skip
            for rule, hits in flags.items():
                record[f"estimate_{rule}"] = estimate[rule]
                record[f"actual_{rule}"] = float(hits[right].mean())
            records.append(record)
    return records


def tables(records: list[dict]) -> str:
    frame = pd.DataFrame(records)
    out = [f"# The label-issue report's false alarms, estimated on validation: tables\n\nProduced by "
           f"`python -m bench.label_issue_alarms` on {machine()}."]  # fmt: skip
    out += section("## Share of right labels flagged",
                   "Per rule: the estimate from the validation split (the stage's `val_false_alarms.rate`) and the "
                   "share of the train split's right labels the same rule flags on train; mean over noise seeds "
                   "(one at noise 0), Δ = estimate − actual paired per seed, mean [95 % t-interval].",
                   ["dataset", "noise", "seeds", "validation images", "rule", "estimate", "actual",
                    "Δ"])  # fmt: skip
    for (dataset, rate), block in frame.groupby(["dataset", "rate"], sort=False):
        for rule in ("knn_vote", "cleanlab_kfold", "either"):
            diff = block[f"estimate_{rule}"] - block[f"actual_{rule}"]
            out.append(markdown_row([dataset, rate, len(block), int(block["num_val"].iloc[0]), rule,
                                     fmt(block[f"estimate_{rule}"].mean()), fmt(block[f"actual_{rule}"].mean()),
                                     diff_text(mean_interval(diff)) if len(block) > 1 else f"{diff.iloc[0]:+.3f}"]))
    out += section("## False alarms among the flags",
                   "Train samples flagged by either rule; the stage's count of those that would be false alarms if "
                   "every train label were right (`val_false_alarms.if_labels_right`: the estimated share × the "
                   "train samples, at most the flags; with wrong labels among them, meant to overestimate) and how "
                   "many of the flagged labels are right; mean over noise seeds, and the seeds on which the count "
                   "was at least the actual one.",
                   ["dataset", "noise", "train samples", "flagged", "false alarms if labels right", "right labels",
                    "count ≥ actual"])  # fmt: skip
    for (dataset, rate), block in frame.groupby(["dataset", "rate"], sort=False):
        held = int((block["if_labels_right"] >= block["flagged_right"]).sum())
        out.append(markdown_row([dataset, rate, int(block["num_train"].iloc[0]), fmt(block["flagged"].mean(), 1),
                                 fmt(block["if_labels_right"].mean(), 1), fmt(block["flagged_right"].mean(), 1),
                                 f"{held} of {len(block)}"]))  # fmt: skip
    return "\n".join(out) + "\n"


def main() -> None:
    embedding_sweep(__doc__.split("\n\n")[0], list(RATES), Path("bench/label_issue_alarms_tables.md"), alarm_records,
                    tables)


if __name__ == "__main__":
    main()
