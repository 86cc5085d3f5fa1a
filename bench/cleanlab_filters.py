"""cleanlab's ways of turning out-of-sample probabilities into a clean guess, on the embeddings alone.

``cleanlab_kfold`` (the default phase-1 rule) and the label-issue report call
``cleanlab.filter.find_label_issues`` with its default ``filter_by="prune_by_noise_rate"``. This
bench measures cleanlab's other documented filters on the same K-fold probe probabilities
(alr_core.lnl.feature_rules.kfold_probs on the pipeline's 15-epoch SimCLR embeddings, split seed 0,
as bench.ssl_evidence prepares them): per set, symmetric noise rate and noise seed, the
precision of the kept set C and its worst-class recall (alr_core.evaluation.metrics.selection_metrics),
paired per noise seed against the default filter. Every filter goes through the pipeline's own
alr_core.lnl.class_rules.confident_learning, so the default filter's C is cleanlab_kfold's. No
network is trained: it says what C each filter would hand to phase 1, not what phase 1 would
then score.

    BCCD="bccd=imagefolder:../shared/data/bccd_wbc/BCCD_cropped;class_names=[Eosinophil,Lymphocyte,Monocyte,Neutrophil]"
    python -m bench.cleanlab_filters --dataset digits retinamnist "$BCCD" "synthetic_ir50=synthetic;imbalance_ratio=50"

About 20 seconds on 2 cores once bench.ssl_evidence's embedding cache holds the sets (``--cache``);
otherwise each set is pretrained first (15 epochs).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.records import machine
from bench.ssl_evidence import (RULES, diff_text, embedding_sweep, fmt, markdown_row, mean_interval, prepared,
                                pretrain_settings, run_data, section)

FILTERS = ("prune_by_noise_rate", "both", "prune_by_class", "confident_learning", "predicted_neq_given")
DEFAULT_FILTER = "prune_by_noise_rate"  # what alr_core.lnl.class_rules.confident_learning uses
PRETRAIN_EPOCHS = 15  # the pipeline's


def clean_guesses(name: str, dataset: dict, rates: list[float], seeds: list[int], cache: Path,
                  pretrain_epochs: int = PRETRAIN_EPOCHS) -> list[dict]:  # fmt: skip
    """One record per (rate, seed, filter): precision, worst-class recall and kept share of C."""
    from alr_core.evaluation.metrics import selection_metrics
    from alr_core.lnl.class_rules import confident_learning
    from alr_core.lnl.feature_rules import FOLD_SEED, kfold_probs

    prep = prepared(name, dataset, pretrain_settings("scratch", pretrain_epochs), cache)
    records = []
    for rate in rates:
        for seed in seeds:
            params, data, _ = run_data(prep, rate, seed, "ssl frozen", RULES["ce"])
            observed, truth = data.train.labels, data.train.truth
            probs = kfold_probs(data.train.images, observed, len(prep.names), params.lnl.cv_folds, FOLD_SEED)
            for filter_by in FILTERS:
                keep, _ = confident_learning(probs, observed, filter_by)
                selection = selection_metrics(keep, observed, truth, prep.names)
                records.append({"dataset": name, "rate": rate, "seed": seed, "filter": filter_by,
                                "precision": selection["precision"],
                                "worst_class_recall": selection["worst_class_recall"],
                                "kept_share": selection["kept_share"]})  # fmt: skip
    return records


def tables(records: list[dict]) -> str:
    frame = pd.DataFrame(records)
    seeds = frame["seed"].nunique()
    out = [f"# cleanlab's filters on the K-fold probe: tables\n\nProduced by `python -m bench.cleanlab_filters` on "
           f"{machine()}."]
    out += section("## The clean guess C per filter",
                   f"Mean over {seeds} noise seeds; Δ = paired difference to `{DEFAULT_FILTER}` (the pipeline's) on "
                   "the same noise seed, mean [95 % t-interval]. Worst recall: the lowest share of a class's clean "
                   "samples kept in C.",
                   ["dataset", "noise", "filter", "precision", "Δ precision", "worst recall", "Δ worst recall",
                    "kept"])  # fmt: skip
    for (dataset, rate), block in frame.groupby(["dataset", "rate"], sort=False):
        base = block[block["filter"] == DEFAULT_FILTER].set_index("seed")
        for filter_by in [f for f in FILTERS if f in set(block["filter"])]:
            runs = block[block["filter"] == filter_by].set_index("seed")

            def delta(metric):
                if filter_by == DEFAULT_FILTER or len(runs) < 2:
                    return "—"
                return diff_text(mean_interval(runs[metric] - base.loc[runs.index, metric]))

            out.append(markdown_row([dataset, rate, filter_by, fmt(runs["precision"].mean()), delta("precision"),
                                     fmt(runs["worst_class_recall"].mean()), delta("worst_class_recall"),
                                     fmt(runs["kept_share"].mean())]))  # fmt: skip
    return "\n".join(out) + "\n"


def main() -> None:
    embedding_sweep(__doc__.split("\n\n")[0], [0.2, 0.4, 0.6], Path("bench/cleanlab_filters_tables.md"), clean_guesses,
                    tables)


if __name__ == "__main__":
    main()
