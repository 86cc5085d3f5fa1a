"""The clean guess C of ``lnl.selection: conformal_kfold`` against ``cleanlab_kfold``, and the
best any per-class threshold on the same scores could do.

Both rules read the K-fold linear probes' probability of each train sample's label
(alr_core.lnl.feature_rules). ``cleanlab_kfold`` prunes by cleanlab's estimated noise per class;
``conformal_kfold`` sets each class's threshold on the validation split so that the class keeps
about ``lnl.clean_recall`` of its right labels. The ``oracle r`` rows set the thresholds with
the truth instead, to the most precise C that keeps r of every class's right labels: no rule
that thresholds those probabilities per class does better, so they show what the embeddings
allow. Per set, symmetric noise rate and noise seed, on the pipeline's
15-epoch SimCLR embeddings (split seed 0, as bench.ssl_evidence prepares them). No network is
trained; phase 1's test accuracy on these C is bench.ssl_evidence's (``--variants
conformal_kfold``).

    BCCD="bccd=imagefolder:../shared/data/bccd_wbc/BCCD_cropped;class_names=[Eosinophil,Lymphocyte,Monocyte,Neutrophil]"
    SETS=(digits retinamnist "$BCCD" "synthetic_ir50=synthetic;imbalance_ratio=50")
    python -m bench.conformal_selection --dataset "${SETS[@]}" --seeds 0 1 2 3 4 5 6 7 8 9 \\
        --cache /tmp/alr-conformal

About two minutes on 2 cores once bench.ssl_evidence's embedding cache holds the sets
(``--cache``); otherwise each set is pretrained first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.records import machine
from bench.ssl_evidence import (RULES, diff_text, embedding_sweep, fmt, markdown_row, paired, prepared,
                                pretrain_settings, run_data, section)

PRETRAIN_EPOCHS = 15  # the pipeline's
RATES = (0.2, 0.4, 0.6)
CLEAN_RECALLS = (0.8, 0.9)
BASELINE = "cleanlab_kfold"


def oracle_keep(scores: np.ndarray, labels: np.ndarray, truth: np.ndarray, clean_recall: float) -> np.ndarray:
    """bool (N,): the most precise C that keeps, in every observed class, all samples scoring at
    least that class's threshold and at least ⌈r·m⌉ of its m right-labelled samples (r =
    ``clean_recall``); a class without a right label keeps nothing. The thresholds are found by
    Dinkelbach's iteration on the precision ratio: at λ, the current precision, each class picks
    the threshold that maximises (1 − λ)·right kept − λ·wrong kept, which raises λ until it stops."""
    options = {}  # class → (thresholds, right kept, wrong kept) of the thresholds that keep enough
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        right = truth[members] == c
        if not right.any():
            continue
        order = np.argsort(-scores[members], kind="stable")
        ordered, right_first = scores[members][order], right[order]
        ends = np.r_[np.flatnonzero(ordered[:-1] != ordered[1:]), len(ordered) - 1]  # last of each tied score
        kept_right, kept_wrong = np.cumsum(right_first)[ends], np.cumsum(~right_first)[ends]
        enough = kept_right >= np.ceil(clean_recall * right.sum() - 1e-9)
        options[c] = (ordered[ends][enough], kept_right[enough], kept_wrong[enough])
    ratio, picks = 0.0, {}
    while True:
        picks = {c: int(np.argmax((1 - ratio) * kept_right - ratio * kept_wrong))
                 for c, (_, kept_right, kept_wrong) in options.items()}  # fmt: skip
        right = sum(options[c][1][i] for c, i in picks.items())
        kept = right + sum(options[c][2][i] for c, i in picks.items())
        if not kept or right / kept <= ratio + 1e-12:
            break
        ratio = right / kept
    keep = np.zeros(len(labels), dtype=bool)
    for c, i in picks.items():
        keep[labels == c] = scores[labels == c] >= options[c][0][i]
    return keep


def quality(keep: np.ndarray, labels: np.ndarray, truth: np.ndarray, class_names: list) -> dict:
    """C's precision, worst-class recall, recall and kept share, as phase 1 reports them
    (alr_core.evaluation.metrics.selection_metrics)."""
    from alr_core.evaluation.metrics import selection_metrics

    metrics = selection_metrics(keep, labels, truth, class_names)
    return {key: metrics[key] for key in ("precision", "worst_class_recall", "recall", "kept_share")}


def selection_records(name: str, dataset: dict, rates: list[float], seeds: list[int], cache: Path,
                      pretrain_epochs: int = PRETRAIN_EPOCHS) -> list[dict]:  # fmt: skip
    """One record per (rate, seed, rule): the quality of C for cleanlab_kfold, conformal_kfold
    at each of CLEAN_RECALLS and the oracle thresholds at each of them."""
    from alr_core.lnl.class_rules import confident_learning
    from alr_core.lnl.feature_rules import FOLD_SEED, conformal_kfold, kfold_probs

    prep = prepared(name, dataset, pretrain_settings("scratch", pretrain_epochs), cache)
    records = []
    for rate in rates:
        for seed in seeds:
            params, data, _ = run_data(prep, rate, seed, "ssl frozen", RULES["ce"])
            train, val, num_classes, folds = data.train, data.val, len(prep.names), params.lnl.cv_folds
            probs = kfold_probs(train.images, train.labels, num_classes, folds, FOLD_SEED)
            scores = probs[np.arange(len(train.labels)), train.labels]
            keeps = {BASELINE: confident_learning(probs, train.labels)[0]}
            for r in CLEAN_RECALLS:
                keeps[f"conformal_kfold {r}"] = conformal_kfold(train.images, train.labels, val.images, val.labels,
                                                                num_classes, folds, FOLD_SEED, r)[0]  # fmt: skip
                keeps[f"oracle {r}"] = oracle_keep(scores, train.labels, train.truth, r)
            rarest_val = int(np.bincount(val.labels, minlength=num_classes)[np.unique(train.labels)].min())
            for rule, keep in keeps.items():
                record = {"dataset": name, "rate": rate, "seed": seed, "rule": rule, "rarest_val_images": rarest_val}
                records.append(record | quality(keep, train.labels, train.truth, prep.names))
    return records


def tables(records: list[dict]) -> str:
    frame = pd.DataFrame(records)
    out = [f"# conformal_kfold's clean guess against cleanlab_kfold's: tables\n\nProduced by "
           f"`python -m bench.conformal_selection` on {machine()}."]  # fmt: skip
    out += section("## The clean guess C",
                   "Mean over noise seeds; Δ = the rule − cleanlab_kfold paired per seed, mean [95 % t-interval]. "
                   "`oracle r`: per-class thresholds set with the truth to the highest precision any per-class "
                   "thresholds on the same probabilities reach while keeping r of every class's right labels. "
                   "`val rarest`: validation images of the observed class with the fewest (below 9 at 0.9, or 4 at "
                   "0.8, conformal_kfold keeps that class whole).",
                   ["dataset", "noise", "seeds", "val rarest", "rule", "precision", "worst-class recall", "recall",
                    "kept share", "Δ precision", "Δ worst-class recall"])  # fmt: skip
    cells = {}
    for metric in ("precision", "worst_class_recall"):
        for _, row in paired(frame, metric, BASELINE, column="rule", keys=("dataset", "rate")).iterrows():
            cells[row["dataset"], row["rate"], row["rule"], metric] = diff_text(row)
    for (dataset, rate, rule), block in frame.groupby(["dataset", "rate", "rule"], sort=False):
        out.append(markdown_row([dataset, rate, len(block), int(block["rarest_val_images"].min()), rule,
                                 fmt(block["precision"].mean()), fmt(block["worst_class_recall"].mean()),
                                 fmt(block["recall"].mean()), fmt(block["kept_share"].mean()),
                                 cells.get((dataset, rate, rule, "precision"), "—"),
                                 cells.get((dataset, rate, rule, "worst_class_recall"), "—")]))  # fmt: skip
    return "\n".join(out) + "\n"


def main() -> None:
    embedding_sweep(__doc__.split("\n\n")[0], list(RATES), Path("bench/conformal_selection_tables.md"),
                    selection_records, tables)


if __name__ == "__main__":
    main()
