"""Issue-25 evidence: a label-free representation (SimCLR or VICReg on each set's own train images) against
training from scratch, loss rules against feature-space rules, phase 1 and phase 2, with paired
per-seed differences and 95 % confidence intervals.

Per dataset the split is drawn once (``data.split_seed`` 0) and the encoder pretrained once, as
the pipeline does for replicates; each seed then draws its own noise, initialisation and batch
order. Everything runs in-process with the same alr_core calls as the stages. Raw results are
appended to a JSONL file one run at a time and a rerun skips what it holds, so a sweep can be
stopped and extended; pretrained embeddings are cached under ``--cache``.

    BCCD="bccd=imagefolder:../shared/data/bccd_wbc/BCCD_cropped;class_names=[Eosinophil,Lymphocyte,Monocyte,Neutrophil]"
    python -m bench.ssl_evidence --dataset digits retinamnist "$BCCD" "synthetic_ir50=synthetic;imbalance_ratio=50" \\
        --rates 0.2 0.4 0.6 --seeds 0 1 2 3 4 --phase 1
    python -m bench.ssl_evidence --dataset digits ... --rates 0.4 --phase 2 --budgets 0.05 0.1
    python -m bench.ssl_evidence --table-only

Initialisations: ``scratch`` (random small CNN, augmented images), ``ssl frozen`` (a linear head
on the cached embeddings: ``model.init ssl, model.freeze backbone``), ``ssl finetune`` (the
encoder's weights, then every layer trained on images: ``model.init ssl``), ``ssl finetune slow
backbone`` (the same with ``model.backbone_lr 0.1``); ``vicreg frozen`` and
``vicreg finetune`` the same with VICReg (``pretrain.method: vicreg``, ``projection_dim: 512``) in place
of SimCLR, ``simclr 512 frozen`` with SimCLR at projection 512; ``scratch vicreg`` is ``scratch`` with
the feature rules reading VICReg's embeddings at the pipeline's projection (64) instead of SimCLR's.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from alr_core.common.params import load_params, parse_params
from alr_core.common.seeding import rng_for
from alr_core.data.datasets import PipelineData, SplitData, model_inputs
from alr_core.data.noise import noisy_label_table
from alr_core.data.prepare import class_names, prepare
from bench.phase1_evidence import available_datasets
from bench.records import append_record, read_records

SPLIT_SEED = 0
# VICReg with its best projection width in bench/ssl_methods_tables.md (its paper too finds wide ones best)
VICREG = {"method": "vicreg", "projection_dim": 512}
INITS = {
    "scratch": {"model": {"init": "scratch", "freeze": "none"}},
    "ssl frozen": {"model": {"init": "ssl", "freeze": "backbone"}},
    "ssl finetune": {"model": {"init": "ssl", "freeze": "none"}},
    # the same encoder fine-tuned with its backbone at a tenth of the head's learning rate
    "ssl finetune slow backbone": {"model": {"init": "ssl", "freeze": "none", "backbone_lr": 0.1}},
    "vicreg frozen": {"model": {"init": "ssl", "freeze": "backbone"}, "pretrain": VICREG},
    "vicreg finetune": {"model": {"init": "ssl", "freeze": "none"}, "pretrain": VICREG},
    # SimCLR with VICReg's projection width: tells the method's share from the width's
    "simclr 512 frozen": {"model": {"init": "ssl", "freeze": "backbone"}, "pretrain": {"projection_dim": 512}},
    # the default pipeline's use of an encoder (a network from scratch, feature rules on the
    # embeddings) with VICReg at the pipeline's projection width in place of SimCLR
    "scratch vicreg": {"model": {"init": "scratch", "freeze": "none"}, "pretrain": {"method": "vicreg"}},
}
# each alternative initialisation (another pretraining, or another fine-tuning of the default
# encoder) and the default-SimCLR one it is compared with
ALTERNATIVES = {"vicreg frozen": "ssl frozen", "vicreg finetune": "ssl finetune", "simclr 512 frozen": "ssl frozen",
                "ssl finetune slow backbone": "ssl finetune", "scratch vicreg": "scratch"}
# a set prepared at a larger data.image_size (its records' dataset name) and the same set at 28 px: the
# same files, split and per-seed noise, so runs pair per seed across the two
LARGER_IMAGES = {"bccd64": "bccd"}
# the pretraining behind the "ssl" initialisations, over the pretrain defaults; an INITS entry's
# own "pretrain" overrides it
PRETRAIN = {"method": "simclr"}
PRETRAIN_EPOCHS = 50  # --pretrain-epochs' default; the tables name any other length in the initialisation
# phase-1 rules; every variant names its rule in full so the table does not move with params.yaml
RULES = {
    "ce": {"method": "ce", "selection": "global"},
    "coteaching + class_gmm (loss rule, default)": {"method": "coteaching", "selection": "class_gmm",
                                                     "keep_above_chance": "clean_guess"},  # DEFAULT_RULE
    "knn_vote": {"method": "ce", "selection": "knn_vote"},
    "cleanlab_kfold": {"method": "ce", "selection": "cleanlab_kfold"},
    "conformal_kfold": {"method": "ce", "selection": "conformal_kfold", "clean_recall": 0.9},
}
CEILING = "ce on the true labels (ceiling)"
DEFAULT_RULE = "coteaching + class_gmm (loss rule, default)"  # the phase-1 default until 7408c9a
SAFETY_NET = "default rule + safety net (pick)"
# the phase-1 rules whose safety-net rows the tables add, by name
SAFETY_NETS = {DEFAULT_RULE: SAFETY_NET, "cleanlab_kfold": "cleanlab_kfold + safety net (pick)"}
NETTED_RULES = {name: rule for rule, name in SAFETY_NETS.items()}
# phase 2: (phase-1 rule, the al keys set over the al defaults: balanced loss, pool all, fine-tuning)
STRATEGIES = {
    "ce + random": ("ce", {"strategy": "random"}),
    "ce + label_disagreement": ("ce", {"strategy": "label_disagreement"}),
    "cleanlab_kfold + label_disagreement": ("cleanlab_kfold", {"strategy": "label_disagreement"}),
    "class_gmm + label_disagreement": (DEFAULT_RULE, {"strategy": "label_disagreement"}),
    "class_gmm + safety net + label_disagreement": (SAFETY_NET, {"strategy": "label_disagreement"}),
    "cleanlab_kfold + safety net + label_disagreement": (SAFETY_NETS["cleanlab_kfold"],
                                                          {"strategy": "label_disagreement"}),
}
PHASE2_BASELINE = "ce + random"
# the pipeline's defaults until 7408c9a; since then "cleanlab_kfold + safety net + label_disagreement"
PHASE2_DEFAULT = "class_gmm + safety net + label_disagreement"
# what a configuration's name may add after a comma: "ce + random, rounds afresh, no class balance"
MODIFIERS = {
    # the queries spent on the labels training relies on (C), not on those phase 1 left out
    "pool selected": {"pool": "selected"},
    # each round trained afresh with phase 1's epochs and learning rate
    "rounds afresh": {"retrain": "scratch", "epochs": 40, "lr": 0.05},
    # the rounds' loss unweighted, as phase 1's
    "no class balance": {"class_balance": "none"},
}


def phase2_config(name: str) -> tuple[str, dict]:
    """(phase-1 rule, al overrides) of a phase-2 configuration name."""
    base, *modifiers = name.split(", ")
    if base not in STRATEGIES or not set(modifiers) <= set(MODIFIERS):
        raise SystemExit(f"phase-2 configuration {name!r}: one of {list(STRATEGIES)}, then any of "
                         f"{list(MODIFIERS)}, each after ', '")
    rule, al = STRATEGIES[base]
    for modifier in modifiers:
        al = al | MODIFIERS[modifier]
    return rule, al


# how a round picks the model it hands on: since 2026-12-04 the model it started from competes on
# validation (alr_core.active.retrain); earlier phase-2 records always handed on the trained one
ROUND_RULE = "the previous model competes"
TRAINED_ALWAYS = "the trained model always"


@dataclasses.dataclass
class Prepared:
    base: dict  # params as a plain dict: defaults + the dataset + the pretrain settings
    samples: pd.DataFrame
    images: np.ndarray
    names: list
    embeddings: np.ndarray  # float32 (N, D), rows as samples'
    encoder: Path  # the encoder checkpoint, for ``ssl finetune``
    pretrain: dict  # metrics and timing of the pretraining


def pretrain_settings(init: str, epochs: int) -> dict:
    """The pretrain params (over the defaults) of the encoder that ``init`` starts from."""
    return PRETRAIN | {"epochs": epochs} | INITS[init].get("pretrain", {})


def base_params(dataset: dict, pretrain: dict) -> dict:
    """The params of a run as a plain dict: the defaults, ``dataset`` with split seed 0,
    ``pretrain`` over the pretrain defaults, the CPU, and horizontal flips for every set but
    digits (medical images have no handedness)."""
    base = dataclasses.asdict(load_params("params.yaml"))
    base["data"] |= dataset | {"split_seed": SPLIT_SEED}
    base["pretrain"] |= pretrain
    base["train"]["device"] = "cpu"
    if dataset["source"] != "digits":
        base["train"]["augment"]["hflip"] = True
    return base


def prepared(name: str, dataset: dict, pretrain: dict, cache: Path) -> Prepared:
    """The dataset's split (split seed 0), its encoder (``pretrain``: params over the defaults)
    and embeddings, pretrained once and cached."""
    from alr_core.ssl.encoder import save_encoder
    from alr_core.ssl.loop import run_pretrain

    base = base_params(dataset, pretrain)
    params = parse_params(base)
    data = prepare(params.data, rng_for(SPLIT_SEED, "split"))
    key = json.dumps([dataset, base["pretrain"], base["model"]["arch"], base["train"]["augment"]], sort_keys=True)
    path = cache / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"
    if not path.exists():
        start = time.perf_counter()
        result = run_pretrain(data.images, data.samples[["sample_id", "split"]], params, progress=False)
        info = {"metrics": result.metrics, "timing": result.timing, "seconds": time.perf_counter() - start}
        cache.mkdir(parents=True, exist_ok=True)
        save_encoder(path.with_suffix(".pt"), result.spec, result.encoder, result.normalization,
                     dataclasses.asdict(params.pretrain), result.head)  # fmt: skip
        np.savez(path.with_suffix(".tmp.npz"), embeddings=result.embeddings, info=json.dumps(info))
        path.with_suffix(".tmp.npz").rename(path)
        print(f"{name}: pretrained {pretrain} in {info['seconds']:.0f} s", file=sys.stderr)
    saved = np.load(path)
    return Prepared(base, data.samples, data.images, class_names(data.samples), saved["embeddings"],
                    path.with_suffix(".pt"), json.loads(str(saved["info"])))  # fmt: skip


def embedding_sweep(description: str, default_rates: list[float], default_out: Path, measure, tables) -> None:
    """The command line of a sweep on the cached embeddings alone (no network trained):
    ``--dataset``, ``--rates``, ``--seeds`` (noise seeds), ``--cache`` (this module's embedding
    cache) and ``--out``. ``measure(name, dataset, rates, seeds, cache)`` returns one set's records;
    ``tables(records)``, the Markdown written to ``--out``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--dataset", nargs="+", default=["digits"])
    parser.add_argument("--rates", nargs="+", type=float, default=default_rates)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4], help="noise seeds")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/alr-ssl-evidence"))
    parser.add_argument("--out", type=Path, default=default_out)
    args = parser.parse_args()
    records = [record for name, dataset in available_datasets(args.dataset)
               for record in measure(name, dataset, args.rates, args.seeds, args.cache)]  # fmt: skip
    args.out.write_text(tables(records))
    print(f"wrote {args.out}")


def run_data(prep: Prepared, rate: float, seed: int, init: str, lnl: dict, true_labels: bool = False):
    """(params, PipelineData as the model reads it, noisy label table) for one run."""
    raw = json.loads(json.dumps(prep.base))
    raw["seed"] = seed
    raw["noise"] |= {"type": "symmetric", "rate": rate}
    raw["lnl"] |= {"keep_above_chance": "never", "class_balance": "none"} | lnl
    for group, values in INITS[init].items():
        raw[group] |= values
    params = parse_params(raw)
    samples = prep.samples
    labels = noisy_label_table(samples, len(prep.names), params.noise, rng_for(seed, "noise"))
    rows = {s: np.flatnonzero(samples["split"].to_numpy() == s) for s in ("train", "val", "test")}

    def split(name: str) -> SplitData:
        r = rows[name]
        return SplitData(samples["sample_id"].to_numpy()[r], prep.images[r], samples["label"].to_numpy()[r],
                         embeddings=prep.embeddings[r])  # fmt: skip

    truth = labels["true_label"].to_numpy(dtype=np.int64)
    observed = truth if true_labels else labels["observed_label"].to_numpy()
    r = rows["train"]
    assert (samples["sample_id"].to_numpy()[r] == labels["sample_id"].to_numpy()).all()
    train = SplitData(labels["sample_id"].to_numpy(), prep.images[r], observed, truth, prep.embeddings[r])
    data = PipelineData(train, split("val"), split("test"), prep.names)
    return params, model_inputs(data, frozen=params.model.freeze == "backbone"), labels


_phase1_runs: dict = {}  # this process's phase-1 runs, which several phase-2 configurations start from


def phase1_run(prep: Prepared, rate: float, seed: int, init: str, rule: str) -> tuple[dict, object]:
    """One phase-1 run: (record, (params, data, labels, result)); run once per process."""
    key = (str(prep.encoder), rate, seed, init, rule)
    if key not in _phase1_runs:
        _phase1_runs[key] = _train_phase1(prep, rate, seed, init, rule)
    return _phase1_runs[key]


def _train_phase1(prep: Prepared, rate: float, seed: int, init: str, rule: str) -> tuple[dict, object]:
    from alr_core.lnl.phase1 import train_phase1

    lnl = RULES["ce"] if rule == CEILING else RULES[rule]
    params, data, labels = run_data(prep, rate, seed, init, lnl, true_labels=rule == CEILING)
    start = time.perf_counter()
    result = train_phase1(data, params, progress=False, encoder_path=prep.encoder)
    seconds = time.perf_counter() - start
    selection = result.metrics.get("selection") or {}
    record = {
        "test_balanced_accuracy": result.metrics["test"]["balanced_accuracy"],
        "val_balanced_accuracy": result.metrics["val"]["balanced_accuracy"],
        "precision": selection.get("precision") if rule not in ("ce", CEILING) else None,
        "worst_class_recall": selection.get("worst_class_recall") if rule not in ("ce", CEILING) else None,
        "kept_share": selection.get("kept_share") if rule not in ("ce", CEILING) else None,
        "seconds": round(seconds, 2),
    }
    return record, (params, data, labels, result)


def phase2_run(prep: Prepared, rate: float, seed: int, init: str, name: str, budget: float) -> dict:
    from bench.phase2_evidence import run_rounds

    rule, al = phase2_config(name)
    if rule in NETTED_RULES:  # lnl.safety_net: pick — CE's run when it scored higher on validation
        ce, method = (phase1_run(prep, rate, seed, init, r) for r in ("ce", NETTED_RULES[rule]))
        rule = "ce" if ce[0]["val_balanced_accuracy"] > method[0]["val_balanced_accuracy"] else NETTED_RULES[rule]
    _, (params, data, labels, result) = phase1_run(prep, rate, seed, init, rule)
    raw = dataclasses.asdict(params)
    raw["budget"] = max(1, round(budget * len(data.train.labels)))
    raw["al"] |= {"pool": "all", "class_balance": "loss"} | al
    params = parse_params(raw)
    saved = {"spec": result.spec, "normalization": result.normalization, "model": result.model.state_dict(),
             "peer": result.peer.state_dict() if result.peer is not None else None,
             "clean_guess": result.selection["clean_guess"].to_numpy(), "metrics": result.metrics}  # fmt: skip
    start = time.perf_counter()
    out = run_rounds(params, data, labels, saved) | {"round_rule": ROUND_RULE}
    out["seconds_per_round"] = round((time.perf_counter() - start) / len(params.rounds), 2)
    out.pop("curve")
    return out


def label_issue_runs(prep: Prepared, rate: float, seed: int) -> list[dict]:
    """The label-issue ranking (1 − the K-fold probe's probability of the given label, as the
    label_issues stage ranks) on the pretrained embeddings (SimCLR or VICReg) and on those of the same encoder at its
    random initialisation (``pretrain.method: none``): AUROC for finding the wrong labels and
    the precision among the first n, n = the number of wrong labels. At noise 0 there is no
    wrong label to find: one record, the share of the set's own labels that the report's rules
    flag on the pretrained embeddings (every flag a false alarm where those labels are right)."""
    if rate == 0:
        return [false_alarms(prep, seed)]
    from sklearn.metrics import roc_auc_score

    from alr_core.lnl.feature_rules import FOLD_SEED, kfold_probs
    from alr_core.ssl.loop import run_pretrain

    params, data, _ = run_data(prep, rate, seed, "ssl frozen", RULES["ce"])
    untrained = parse_params(json.loads(json.dumps(prep.base)) | {"pretrain": prep.base["pretrain"] | {"method": "none"}})
    random_init = run_pretrain(prep.images, prep.samples[["sample_id", "split"]], untrained, progress=False).embeddings
    train_rows = np.flatnonzero(prep.samples["split"].to_numpy() == "train")
    observed, wrong = data.train.labels, data.train.labels != data.train.truth
    records = []
    method = prep.base["pretrain"]["method"]
    for name, embeddings in ((method, data.train.images), ("random initialisation", random_init[train_rows])):
        probs = kfold_probs(embeddings, observed, len(prep.names), params.lnl.cv_folds, FOLD_SEED)
        score = 1.0 - probs[np.arange(len(observed)), observed]
        top = np.argsort(-score, kind="stable")[: wrong.sum()]
        records.append({"variant": f"label issues, {name} embeddings", "auroc": roc_auc_score(wrong, score),
                        "precision_at_n": float(wrong[top].mean())})  # fmt: skip
    return records


def false_alarms(prep: Prepared, seed: int) -> dict:
    """The label_issues stage's flags on the set's own labels (noise 0): the share of train
    samples each rule flags, the share of the rarest class's samples flagged by either, and how
    often the probe's suggestion is right on the validation split (the stage's
    ``suggestion_val_balanced_accuracy``)."""
    from alr_core.lnl.feature_rules import feature_flags, probe_balanced_accuracy

    params, data, _ = run_data(prep, 0.0, seed, "ssl frozen", RULES["ce"])
    embeddings, labels, num_classes = data.train.images, data.train.labels, len(prep.names)
    _, _, flags = feature_flags(embeddings, labels, num_classes, params.lnl.knn_k, params.lnl.cv_folds)
    either = flags["knn_vote"] | flags["cleanlab_kfold"]
    rarest = labels == np.bincount(labels, minlength=num_classes).argmin()
    return {"variant": "label issues, false alarms", "flagged_knn_vote": float(flags["knn_vote"].mean()),
            "flagged_cleanlab_kfold": float(flags["cleanlab_kfold"].mean()), "flagged_any": float(either.mean()),
            "flagged_any_rarest_class": float(either[rarest].mean()),
            "suggestion_val_balanced_accuracy": probe_balanced_accuracy(embeddings, labels, data.val.images,
                                                                        data.val.labels, num_classes)}  # fmt: skip


# ----------------------------------------------------------------------------- tables


def paired(records: pd.DataFrame, metric: str, baseline: str, column: str = "variant",
           keys: tuple[str, ...] = ("dataset", "rate", "budget", "init")) -> pd.DataFrame:
    """Per ``keys`` and value of ``column``: the mean of ``metric`` and the mean paired difference
    to the ``column`` value ``baseline`` (same keys and seed) with its 95 % t interval over seeds."""
    keys = list(keys)
    rows = []
    for key, block in records.groupby(keys, dropna=False, sort=False):
        base = block[block[column] == baseline].set_index("seed")[metric]
        for value, runs in block.groupby(column, sort=False):
            values = runs.set_index("seed")[metric].dropna()
            row = dict(zip(keys, key)) | {column: value, "n": len(values), "mean": values.mean()}
            common = values.index.intersection(base.dropna().index)
            if value != baseline and len(common) >= 2:
                row |= {"pairs": len(common)} | mean_interval(values[common] - base[common])
            rows.append(row)
    return pd.DataFrame(rows)


def mean_interval(diff: pd.Series) -> dict:
    """The mean of per-seed differences with its 95 % t-interval: {diff, low, high} (NaN bounds
    for fewer than 2 seeds)."""
    half = stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else np.nan
    return {"diff": diff.mean(), "low": diff.mean() - half, "high": diff.mean() + half}


def train_label_accuracy(frame: pd.DataFrame) -> dict:
    """{(dataset, rate, seed): the share of right observed labels in the train split}, from the
    phase-2 records (``label_accuracy_before``; the noise draw depends on the set, rate and seed only)."""
    if "label_accuracy_before" not in frame:
        return {}
    two = frame[(frame["phase"] == 2) & frame["label_accuracy_before"].notna()]
    return two.groupby(["dataset", "rate", "seed"])["label_accuracy_before"].first().to_dict()


def with_safety_net(one: pd.DataFrame, label_accuracy: dict | None = None) -> pd.DataFrame:
    """``one`` plus, per (dataset, rate, init, seed) holding CE's run and a rule's in
    SAFETY_NETS, a row for what ``lnl.safety_net: pick`` would hand on: the rule's run, or CE's
    when CE scored higher on the validation split (the choice reads no test score). With CE
    picked, the clean guess handed on is every train sample (alr_core/lnl/safety_net.py): worst-class
    recall and kept share 1, precision the share of right train labels (``label_accuracy``, from
    :func:`train_label_accuracy`; NaN where no record holds it)."""
    label_accuracy = label_accuracy or {}
    rows = []
    for key, block in one.groupby(["dataset", "rate", "init", "seed"], sort=False):
        runs = block.set_index("variant")
        if "ce" not in runs.index:
            continue
        ce = runs.loc["ce"]
        everything = {"precision": label_accuracy.get((key[0], key[1], key[3]), np.nan), "worst_class_recall": 1.0,
                      "kept_share": 1.0}  # fmt: skip
        for rule, name in SAFETY_NETS.items():
            if rule in runs.index:
                method = runs.loc[rule]
                chose_ce = ce["val_balanced_accuracy"] > method["val_balanced_accuracy"]
                picked = ce.to_dict() | everything if chose_ce else method.to_dict()
                rows.append(picked | dict(zip(["dataset", "rate", "init", "seed"], key)) | {"variant": name})
    return pd.concat([one, pd.DataFrame(rows)], ignore_index=True) if rows else one


def markdown_row(cells: list) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def section(title: str, text: str, columns: list[str]) -> list[str]:
    """A Markdown section: its title, a paragraph, and a table's header for ``columns``."""
    return [f"\n{title}\n\n{text}\n", "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns)]


def fmt(value, digits=3) -> str:
    return "—" if value is None or pd.isna(value) else f"{value:.{digits}f}"


def diff_text(row) -> str:
    if pd.isna(row.get("diff")):
        return "—"
    if pd.isna(row["low"]):  # one seed: no interval
        return f"{row['diff']:+.3f} [—]"
    return f"{row['diff']:+.3f} [{row['low']:+.3f}, {row['high']:+.3f}]"


def paired_text(row) -> str:
    """:func:`diff_text` for a table that prints the row's n: with the number of seeds the Δ pairs
    ("(5 pairs)") where the baseline has fewer seeds than the row."""
    pairs, n = row.get("pairs"), row.get("n")
    short = not pd.isna(row.get("diff")) and not pd.isna(pairs) and not pd.isna(n) and pairs < n
    return diff_text(row) + (f" ({int(pairs)} pairs)" if short else "")


def init_with_pretraining(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with ``init`` naming the pretraining length where it is not PRETRAIN_EPOCHS
    ("scratch, pretrain 15 epochs"), so that every table pairs runs of one pretraining only: the
    feature rules read its embeddings even from scratch."""
    epochs = frame.get("pretrain_epochs", pd.Series(PRETRAIN_EPOCHS, index=frame.index)).fillna(PRETRAIN_EPOCHS)
    other = epochs != PRETRAIN_EPOCHS
    named = frame["init"] + ", pretrain " + epochs.astype(int).astype(str) + " epochs"
    return frame.assign(init=frame["init"].where(~other, named), pretrain_epochs=epochs)


def tables(records: list[dict]) -> str:
    frame = init_with_pretraining(pd.DataFrame(records))
    for column in ("budget", "cleaning_efficiency_ceiling"):  # records from before these existed lack them
        frame[column] = frame.get(column, pd.Series(dtype=float))
    out = []
    one = with_safety_net(frame[frame["phase"] == 1], train_label_accuracy(frame))
    if len(one):
        out += section("## Phase 1", "Mean over seeds; Δ = paired difference to CE with the same initialisation, "
                       "mean [95 % t-interval]. Precision and worst-class recall describe the clean guess C; CE's C "
                       "is every train sample, so a safety-net row counts a seed where CE was handed on with "
                       "worst-class recall 1 and precision the share of right train labels (from the phase-2 "
                       "records; \"(k of n)\": the mean is over the k seeds that have it). The safety-net rows are "
                       "not extra runs: per seed, the run of CE or of the rule (the default rule, `cleanlab_kfold`) "
                       "with the higher validation balanced accuracy.",
                       ["dataset", "noise", "init", "rule", "n", "precision of C", "worst-class recall of C",
                        "test bal. acc.", "Δ vs CE"])
        acc = paired(one, "test_balanced_accuracy", "ce")
        prec = paired(one, "precision", "ce").set_index(["dataset", "rate", "init", "variant"])
        worst = paired(one, "worst_class_recall", "ce").set_index(["dataset", "rate", "init", "variant"])

        def over(of: pd.DataFrame, key: tuple, n: int) -> str:  # the mean, and its seeds where fewer than n
            k = of["n"].get(key, 0)
            return fmt(of["mean"].get(key)) + (f" ({k} of {n})" if 0 < k < n else "")

        for _, row in acc.iterrows():
            key = (row["dataset"], row["rate"], row["init"], row["variant"])
            out.append(markdown_row([*key[:2], row["init"], row["variant"], row["n"], over(prec, key, row["n"]),
                                     over(worst, key, row["n"]), fmt(row["mean"]), paired_text(row)]))
    nets = one[one["variant"].isin(SAFETY_NETS.values())]
    versus = paired(nets, "test_balanced_accuracy", SAFETY_NET) if len(nets) else pd.DataFrame()
    if "diff" in versus and versus["diff"].notna().any():
        out += section("### Each rule with the safety net against the default rule with it", "Test balanced "
                       f"accuracy of the safety-net rows, paired per seed: Δ = the rule's − `{SAFETY_NET}`'s, mean "
                       "[95 % t-interval].",
                       ["dataset", "noise", "init", "rule", "seeds paired", "test bal. acc.", "Δ vs the default's"])
        for _, row in versus[versus["diff"].notna()].iterrows():
            out.append(markdown_row([row["dataset"], row["rate"], row["init"], row["variant"], int(row["pairs"]),
                                     fmt(row["mean"]), diff_text(row)]))
    if len(one) and one["init"].str.startswith("scratch").any():
        out += section("### Initialisations against scratch", "Test balanced accuracy with the same rule and "
                       "pretraining length, paired per seed: Δ = the initialisation − scratch, mean [95 % "
                       "t-interval].", ["dataset", "noise", "rule", "initialisation", "seeds paired", "test bal. acc.",
                                        "Δ vs scratch"])
        for epochs, runs in one.groupby("pretrain_epochs"):
            scratch = "scratch" if epochs == PRETRAIN_EPOCHS else f"scratch, pretrain {int(epochs)} epochs"
            by_init = paired(runs, "test_balanced_accuracy", scratch, column="init",
                             keys=("dataset", "rate", "budget", "variant"))
            for _, row in by_init.iterrows():
                if not pd.isna(row.get("diff")):
                    out.append(markdown_row([row["dataset"], row["rate"], row["variant"], row["init"],
                                             int(row["pairs"]), fmt(row["mean"]), diff_text(row)]))
    alarms = frame[(frame["phase"] == 0) & (frame["rate"] == 0)]
    if len(alarms):
        out += section("## Flags on the sets' own labels", "Noise 0: the share of train samples the label_issues "
                       "stage's rules flag (its `knn_vote` and `cleanlab_kfold` columns, and either), and of the "
                       "rarest class's samples flagged by either; where a set's labels are right, every flag is a "
                       "false alarm; and the balanced accuracy on the validation split of the probe behind the "
                       "suggestions (`suggestion_val_balanced_accuracy`). One run per set and pretraining (nothing "
                       "here depends on the seed).",
                       ["dataset", "pretraining (init)", "knn_vote", "cleanlab_kfold", "either",
                        "either, rarest class", "suggestion right on validation"])
        for _, row in alarms.sort_values(["dataset", "init"]).iterrows():
            out.append(markdown_row([row["dataset"], row["init"], *(fmt(row[k]) for k in (
                "flagged_knn_vote", "flagged_cleanlab_kfold", "flagged_any", "flagged_any_rarest_class",
                "suggestion_val_balanced_accuracy"))]))  # fmt: skip
    issues = frame[(frame["phase"] == 0) & (frame["rate"] > 0)]
    if len(issues):
        out += section("## The label-issue ranking", "AUROC of 1 − the K-fold probe's probability of the given "
                       "label for finding the wrong labels, and the precision among the first n (n = the number of "
                       "wrong labels); mean over seeds, Δ = the pretrained embeddings (SimCLR or VICReg) − "
                       "those of the same encoder at its random initialisation (the same for every pretraining method, so "
                       "shown once), paired.",
                       ["dataset", "noise", "pretraining (init)", "embeddings", "n", "AUROC", "Δ AUROC",
                        "precision among the first n"])
        baseline = "label issues, random initialisation embeddings"
        auroc = paired(issues, "auroc", baseline)
        keys = ["dataset", "rate", "init", "variant"]
        precision = paired(issues, "precision_at_n", baseline).set_index(keys)["mean"]
        shown = set()
        for _, row in auroc.iterrows():
            if row["variant"] == baseline and (row["dataset"], row["rate"]) in shown:
                continue
            shown.add((row["dataset"], row["rate"]))
            out.append(markdown_row([row["dataset"], row["rate"], row["init"], row["variant"].split(", ")[1], row["n"],
                                     fmt(row["mean"]), paired_text(row),
                                     fmt(precision.get(tuple(row[k] for k in keys)))]))  # fmt: skip
    rounds = frame[frame["phase"] == 2]
    two = rounds[rounds["round_rule"] == ROUND_RULE] if len(rounds) else rounds
    if len(two):
        out += section("## Phase 2", f"Round rule `{ROUND_RULE}` (the pipeline's; the older records are in "
                       "the last two tables). After the last round; Δ = paired difference to `ce + random` with the same "
                       "initialisation and budget, mean [95 % t-interval]; Δ vs previous default: the same to "
                       f"`{PHASE2_DEFAULT}` (the pipeline's defaults until 7408c9a, when `cleanlab_kfold + "
                       "safety net + label_disagreement` replaced it). Cleaning efficiency: wrong labels "
                       "fixed per query over what random queries fix in expectation; perfect queries: the "
                       "efficiency of queries that all hit a wrong label (1 ÷ the wrong share, so about 1.7 at "
                       "noise 0.6: no rule reaches 2 there). n: the configuration's seeds; a Δ over fewer says "
                       "how many seeds it pairs (\"(5 pairs)\").",
                       ["dataset", "noise", "budget", "init", "configuration", "n", "test bal. acc.",
                        "Δ vs CE + random", "Δ vs previous default", "cleaning eff.", "perfect queries"])
        # a configuration that changes how the rounds train is paired with CE + random trained the same way
        queries, recipe = zip(*(split_variant(v) for v in two["variant"]))
        recipes = two.assign(queries=queries, recipe=recipe)
        keys = ("dataset", "rate", "budget", "init", "recipe")
        acc = paired(recipes, "test_balanced_accuracy", PHASE2_BASELINE, column="queries", keys=keys)
        eff, ceiling = (paired(recipes, metric, PHASE2_BASELINE, column="queries", keys=keys).set_index(
            [*keys, "queries"])["mean"] for metric in ("cleaning_efficiency", "cleaning_efficiency_ceiling"))
        versus_default = {tuple(row[k] for k in [*keys, "queries"]): paired_text(row) for _, row in
                          paired(recipes, "test_balanced_accuracy", PHASE2_DEFAULT, column="queries",
                                 keys=keys).iterrows()}  # fmt: skip
        for _, row in acc.iterrows():
            key = tuple(row[k] for k in [*keys, "queries"])
            out.append(markdown_row([row["dataset"], row["rate"], f"{row['budget']:.0%}", row["init"],
                                     ", ".join(filter(None, [row["queries"], row["recipe"]])), row["n"],
                                     fmt(row["mean"]), paired_text(row), versus_default.get(key, "—"),
                                     fmt(eff.get(key), 2), fmt(ceiling.get(key), 2)]))
        out += modifier_table(two)
        out += fixes_table(two)
        out += headroom_table(frame, two)
    if len(rounds):
        out += section("### What the rounds add", "Test balanced accuracy after the last round minus that of the "
                       "phase-1 model the rounds started from, same run, mean [95 % t-interval] over seeds; per "
                       f"round rule: `{ROUND_RULE}` (a round hands on the model it started from when the trained "
                       f"one scores no higher validation macro-F1, the pipeline's rule) or `{TRAINED_ALWAYS}` "
                       "(records from before that rule). Rounds kept: the mean share of a run's rounds that handed "
                       "on their starting model (recorded since the runs of 2026-12-05).",
                       ["dataset", "noise", "budget", "init", "configuration", "round rule", "n",
                        "after − before the rounds", "rounds kept"])
        gained = rounds.assign(gain=rounds["test_balanced_accuracy"] - rounds["phase1_test_balanced_accuracy"])
        if "kept_previous" not in gained:
            gained["kept_previous"] = None
        for key, runs in gained.groupby(["dataset", "rate", "budget", "init", "variant", "round_rule"], sort=False):
            gain = runs["gain"].dropna()
            kept = [np.mean(k) for k in runs["kept_previous"] if isinstance(k, list)]
            kept_share = f"{np.mean(kept):.0%}" if kept else "—"
            out.append(markdown_row([key[0], key[1], f"{key[2]:.0%}", *key[3:], len(gain),
                                     diff_text(mean_interval(gain)), kept_share]))  # fmt: skip
        out += section("### The previous model competing, against always handing on the trained one",
                       "Test balanced accuracy after the last round, the two round rules paired per seed (same "
                       "phase 1, queries may differ from round 2 on): Δ = competing − always trained.",
                       ["dataset", "noise", "budget", "init", "configuration", "seeds paired", "Δ test bal. acc."])
        by_rule = paired(rounds, "test_balanced_accuracy", TRAINED_ALWAYS, column="round_rule",
                         keys=("dataset", "rate", "budget", "init", "variant"))
        for _, row in by_rule.iterrows():
            if not pd.isna(row.get("diff")):
                out.append(markdown_row([row["dataset"], row["rate"], f"{row['budget']:.0%}", row["init"],
                                         row["variant"], int(row["pairs"]), diff_text(row)]))
    out += pretraining_table(frame)
    out += image_size_table(frame)
    out += machines_table(frame)
    return "\n".join(out) + "\n"


def split_variant(variant: str) -> tuple[str, str]:
    """A phase-2 configuration name as (what is queried: the base and ``pool selected``, how the
    rounds train: the other modifiers), e.g. ("ce + random", "rounds afresh")."""
    base, *modifiers = variant.split(", ")
    queries = [base] + [m for m in modifiers if m == "pool selected"]
    return ", ".join(queries), ", ".join(m for m in modifiers if m != "pool selected")


def modifier_table(two: pd.DataFrame) -> list[str]:
    """Each configuration with a modifier paired per seed with the same configuration without it."""
    rows = []
    for modifier in MODIFIERS:
        suffix = f", {modifier}"
        with_it = two[two["variant"].str.contains(suffix, regex=False)]
        if not len(with_it):
            continue
        without = {v: v.replace(suffix, "") for v in with_it["variant"].unique()}
        both = two[two["variant"].isin([*without, *without.values()])]
        both = both.assign(stripped=both["variant"].str.replace(suffix, "", regex=False),
                           modified=both["variant"].isin(list(without)))
        diffs = paired(both, "test_balanced_accuracy", False, column="modified",
                       keys=("dataset", "rate", "budget", "init", "stripped"))
        if "pairs" not in diffs:  # no configuration has a seed in common with its unmodified twin
            continue
        for _, row in diffs[diffs["modified"] & diffs["pairs"].notna()].iterrows():
            rows.append(markdown_row([row["dataset"], row["rate"], f"{row['budget']:.0%}", row["init"],
                                      row["stripped"], modifier, int(row["pairs"]), diff_text(row)]))
    if not rows:
        return []
    return section("### Each modifier against the same configuration without it",
                   "Test balanced accuracy after the last round, paired per seed (same phase 1): Δ = with − "
                   "without. `pool selected`: queries only inside phase 1's C (`al.pool: selected`); `rounds "
                   "afresh`: each round trains a new network with phase 1's epochs and learning rate "
                   "(`al.retrain: scratch`, `epochs: 40`, `lr: 0.05`); `no class balance`: "
                   "`al.class_balance: none`.",
                   ["dataset", "noise", "budget", "init", "configuration", "modifier", "seeds paired",
                    "Δ test bal. acc."]) + rows


def fixes_table(two: pd.DataFrame) -> list[str]:
    """What the queries' fixes could teach the model (records since the diagnostics were added)."""
    if "fixed_already_predicted" not in two:
        return []
    runs = two[two["fixed_already_predicted"].notna()]
    if not len(runs):
        return []
    out = section("### What the fixes can teach the model",
                  "Summed over the runs of a block: the wrong labels the queries fixed, the share of them the "
                  "scoring model already predicted (its argmax was the true label), the share that were in "
                  "C ∪ re-labelled (what `al.train_on: selected` trains on); and the wrong labels in C ∪ "
                  "re-labelled before the first round and after the last, mean per run. A fix outside the "
                  "training set that the model already predicts adds a sample the model gets right anyway; "
                  "a fix inside it removes a wrong label the model trains on.",
                  ["dataset", "noise", "budget", "init", "configuration", "n", "fixes per run",
                   "already predicted", "in C", "wrong labels in C, before → after"])
    for key, block in runs.groupby(["dataset", "rate", "budget", "init", "variant"], sort=False):
        fixes = block["fixed_by_queries"].sum()
        shares = [f"{block[column].sum() / fixes:.0%}" if fixes else "—"
                  for column in ("fixed_already_predicted", "fixed_in_trusted")]
        wrong = f"{block['wrong_in_trusted_before'].mean():.1f} → {block['wrong_in_trusted'].mean():.1f}"
        out.append(markdown_row([key[0], key[1], f"{key[2]:.0%}", key[3], key[4], len(block), fmt(fixes / len(block), 1),
                                 *shares, wrong]))
    return out


def headroom_table(frame: pd.DataFrame, two: pd.DataFrame) -> list[str]:
    """Per phase-2 block: the clean-label ceiling of the same initialisation and seed (the noise
    rate does not enter it) against CE + random and the default configuration after the rounds."""
    ceiling = frame[(frame["phase"] == 1) & (frame["variant"] == CEILING)]
    ceiling = ceiling.drop_duplicates(["dataset", "init", "seed"]).set_index(["dataset", "init", "seed"])
    rows = []
    plain = two[two["variant"].isin([PHASE2_BASELINE, PHASE2_DEFAULT])]
    for (dataset, rate, budget, init), block in plain.groupby(["dataset", "rate", "budget", "init"], sort=False):
        scores = {variant: runs.set_index("seed")["test_balanced_accuracy"]
                  for variant, runs in block.groupby("variant")}  # fmt: skip
        if PHASE2_BASELINE not in scores:
            continue
        top = pd.Series({seed: ceiling["test_balanced_accuracy"].get((dataset, init, seed))
                         for seed in scores[PHASE2_BASELINE].index}, dtype=float).dropna()  # fmt: skip
        if len(top) < 2:
            continue
        cells = []
        for variant in (PHASE2_BASELINE, PHASE2_DEFAULT):
            seeds = top.index.intersection(scores.get(variant, pd.Series(dtype=float)).index)
            after = scores[variant][seeds] if len(seeds) >= 2 else None
            cells += ["—", "—"] if after is None else [fmt(after.mean()), diff_text(mean_interval(top[seeds] - after))]
        order = (init, dataset, rate, -budget)
        rows.append((order, markdown_row([dataset, rate, f"{budget:.0%}", init, len(top), fmt(top.mean()), *cells])))
    if not rows:
        return []
    return section("### Headroom: the clean-label ceiling against the rounds' result",
                   f"The phase-2 target asks the default (`{PHASE2_DEFAULT}` until 7408c9a) for 3 points over "
                   f"`{PHASE2_BASELINE}`. The "
                   "ceiling (phase 1's CE on every true train label, same initialisation and seed) marks how far "
                   "correct labels take this network: where it is not 3 points above CE + random, fixing labels "
                   "cannot meet the target unless the rounds train better than phase 1's recipe (their loss is "
                   "class-balanced, the ceiling's is not). Δ = ceiling − after the rounds, paired per seed, mean "
                   "[95 % t-interval].",
                   ["dataset", "noise", "budget", "init", "seeds", "ceiling", "CE + random", "ceiling − CE + random",
                    "default", "ceiling − default"]) + [row for _, row in sorted(rows)]  # fmt: skip


def image_size_table(frame: pd.DataFrame) -> list[str]:
    """Each set of LARGER_IMAGES against the same set at 28 px, the same initialisation and rule or
    configuration, paired per seed (:func:`paired_alternatives`)."""
    rows = [markdown_row([phase, f"{larger} against {small}", row["rate"], budget_text(row["budget"]), row["init"],
                          row["variant"], int(row["pairs"]), fmt(row["mean"]), diff_text(row)])
            for phase, larger, small, row in paired_alternatives(frame, "dataset", LARGER_IMAGES.items(),
                                                                 ("rate", "budget", "init", "variant"))]
    if not rows:
        return []
    return section("## Larger images against 28 px", "Test balanced accuracy of a set prepared at a larger "
                   "`data.image_size` (`bccd64`: BCCD at 64 px) against the same set at 28 px: the same files, "
                   "split and noise per seed, the same initialisation and rule or configuration (the small CNN "
                   "and the pretrain defaults at both sizes), paired per seed: Δ = larger − 28 px, mean [95 % "
                   "t-interval].",
                   ["phase", "sets", "noise", "budget", "init", "rule / configuration", "seeds paired",
                    "test bal. acc.", "Δ vs 28 px"]) + rows


UNNAMED_MACHINE = "not recorded (records written before c4fb8c7)"


def machines_table(frame: pd.DataFrame) -> list[str]:
    """How many records each machine (bench.records.machine) measured per phase, and the blocks of
    the tables (phase, dataset, noise, initialisation) whose runs more than one named machine
    measured: their paired differences mix machines."""
    machine = frame.get("machine", pd.Series(index=frame.index, dtype=object)).fillna(UNNAMED_MACHINE)
    named = frame.assign(machine=machine)
    counts = named.groupby(["machine", "phase"]).size()
    rows = [markdown_row([name, phase, count]) for (name, phase), count in counts.items()]
    blocks = named[named["machine"] != UNNAMED_MACHINE].groupby(["phase", "dataset", "rate", "init"])["machine"]
    mixed = [", ".join(str(k) for k in key) for key, count in blocks.nunique().items() if count > 1]
    text = ("Blocks measured on more than one named machine (phase, dataset, noise, init): " + "; ".join(mixed)
            + "." if mixed else "No block of the tables mixes named machines.")
    return section("## Machines", "The machine that measured each record (CPU, cores, a hash of the CPU's "
                   "instruction-set flags, torch): the same code and seed can train to other numbers on another "
                   f"CPU, so paired differences mean something only within one machine. {text}",
                   ["machine", "phase", "records"]) + rows


def paired_alternatives(frame: pd.DataFrame, column: str, pairs, keys: tuple[str, ...]):
    """Yield (phase, other, base, row) for phase 1 (with its safety-net rows) and phase 2 (under
    the current round rule) and each (other, base) of ``pairs``: the :func:`paired` rows of test
    balanced accuracy where ``column`` is ``other``, paired per seed with ``base`` within ``keys``."""
    one = with_safety_net(frame[frame["phase"] == 1])
    two = frame[(frame["phase"] == 2) & (frame.get("round_rule") == ROUND_RULE)]
    for phase, runs in ((1, one), (2, two)):
        for other, base in pairs:
            pair = runs[runs[column].isin([other, base])]
            if not (pair[column] == other).any():
                continue
            diffs = paired(pair, "test_balanced_accuracy", base, column=column, keys=keys)
            found = (diffs[column] == other) & diffs.get("diff", pd.Series(dtype=float)).notna()
            for _, row in diffs[found].iterrows():
                yield phase, other, base, row


def budget_text(budget) -> str:
    """A row's budget as a share of train ("10%"); "—" for phase-1 rows, which have none."""
    return "—" if pd.isna(budget) else f"{budget:.0%}"


def pretraining_table(frame: pd.DataFrame) -> list[str]:
    """Each alternative initialisation (ALTERNATIVES: another pretraining, or another
    fine-tuning of the default encoder) against the default SimCLR one with the same use of the
    encoder, per rule or configuration, paired per seed (:func:`paired_alternatives`)."""
    # init_with_pretraining names other pretraining lengths: pair alternative and default at each
    lengths = [""] + sorted(set(frame["init"].str.extract(r"(, pretrain \d+ epochs)$")[0].dropna()))
    pairs = [(alternative + length, default + length)
             for (alternative, default), length in itertools.product(ALTERNATIVES.items(), lengths)]
    rows = [markdown_row([phase, row["dataset"], row["rate"], budget_text(row["budget"]), alternative, row["variant"],
                          int(row["pairs"]), fmt(row["mean"]), diff_text(row)])
            for phase, alternative, _, row in paired_alternatives(frame, "init", pairs,
                                                                  ("dataset", "rate", "budget", "variant"))]
    if not rows:
        return []
    return section("## Other pretrainings and fine-tunings against the default SimCLR", "Test balanced accuracy "
                   "with another encoder (`vicreg`: VICReg, projection 512; `simclr 512`: SimCLR, projection 512; "
                   "`scratch vicreg`: VICReg, projection 64, for the feature rules of a network trained from "
                   "scratch) against the default SimCLR one (projection 64) with the same use of the encoder, or "
                   "with the default encoder fine-tuned at a tenth of the learning rate in the backbone (`ssl "
                   "finetune slow backbone`: `model.backbone_lr: 0.1`) against `ssl finetune`; the same rule or "
                   "configuration, paired per seed: Δ = other − default, mean [95 % t-interval].",
                   ["phase", "dataset", "noise", "budget", "init", "rule / configuration", "seeds paired",
                    "test bal. acc.", "Δ vs default SimCLR"]) + rows  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", nargs="+", default=["digits"])
    parser.add_argument("--rates", nargs="+", type=float, default=[0.4])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--phase", type=int, choices=[0, 1, 2], default=1,
                        help="1: phase 1, 2: phase 2, 0: the label-issue ranking of pretrained against random "
                             "embeddings")
    parser.add_argument("--inits", nargs="+", default=["ssl frozen"], choices=list(INITS))
    parser.add_argument("--variants", nargs="+", default=None,
                        help=f"phase 1: {[*RULES, CEILING]}; phase 2: one of {list(STRATEGIES)}, then any "
                             f"of {list(MODIFIERS)}, each after ', '")
    parser.add_argument("--budgets", nargs="+", type=float, default=[0.05, 0.1])
    parser.add_argument("--pretrain-epochs", type=int, default=PRETRAIN_EPOCHS)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/alr-ssl-evidence"))
    parser.add_argument("--raw", type=Path, default=Path("bench/ssl_evidence.jsonl"))
    parser.add_argument("--out", type=Path, default=Path("bench/ssl_evidence_tables.md"))
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()

    records = read_records(args.raw)
    # a label-issue run writes one record per embedding, "label issues, <embedding>"
    done = {(r["dataset"], r["rate"], r["seed"], r["init"], "label issues" if r["phase"] == 0 else r["variant"],
             r.get("budget"), r["pretrain_epochs"], r.get("round_rule")) for r in records}  # fmt: skip
    if not args.table_only:
        variants = args.variants or {0: ["label issues"], 1: list(RULES) + [CEILING], 2: list(STRATEGIES)}[args.phase]
        if args.phase == 2:
            for variant in variants:
                phase2_config(variant)  # an unknown name stops the run before any training
        for name, dataset in available_datasets(args.dataset):
            for rate in args.rates:
                for init in args.inits:
                    prep = prepared(name, dataset, pretrain_settings(init, args.pretrain_epochs), args.cache)
                    for variant in variants:
                        for budget in (args.budgets if args.phase == 2 else [None]):
                            for seed in args.seeds:
                                key = (name, rate, seed, init, variant, budget, args.pretrain_epochs)
                                if (*key, ROUND_RULE if args.phase == 2 else None) in done:
                                    continue
                                if args.phase == 0:
                                    found = label_issue_runs(prep, rate, seed)
                                elif args.phase == 1:
                                    found = [phase1_run(prep, rate, seed, init, variant)[0]]
                                else:
                                    found = [phase2_run(prep, rate, seed, init, variant, budget)]
                                for record in found:
                                    record = dict(zip(["dataset", "rate", "seed", "init", "variant", "budget",
                                                       "pretrain_epochs"], key)) | {"phase": args.phase} | record
                                    records.append(record)
                                    append_record(args.raw, record)
                                    print(json.dumps(record), file=sys.stderr)
    header = (f"# SSL evidence tables\n\nProduced by `python -m bench.ssl_evidence --table-only` from "
              f"`{args.raw}`; the commands and the reading are in bench/ssl_evidence.md.\n\n")
    args.out.write_text(header + tables(records))


if __name__ == "__main__":
    main()
