"""Phase-2 evidence: test balanced accuracy and cleaning efficiency after the active-learning
rounds, per configuration, mean ± sample std over seeds.

For each dataset × seed the script runs prepare → inject_noise → phase 1 in-process (the same
alr_core calls as the stages; a phase 1 is trained once per dataset, noise, seed and phase-1
params and cached on disk), then per configuration and budget the rounds as the round stages
run them: score the pool, query the best b_r, simulated oracle (``al.annotators`` answers
aggregated by ``al.aggregate``), retrain. Raw results are appended to a JSONL file one run at a
time; a rerun skips what it holds, so a long sweep can be stopped and extended.

    python -m bench.phase2_evidence --dataset digits --budgets 0.05 0.1 --seeds 0 1 2
    python -m bench.phase2_evidence --dataset "bccd=imagefolder:../shared/data/bccd_wbc/BCCD_cropped" \\
        --config "mine=lnl.method=coteaching,al.strategy=margin,al.retrain=scratch"

``--dataset`` takes what bench.phase1_evidence takes. ``--config NAME=KEY=VALUE,...`` adds a
configuration (KEY a dotted params key, ``rounds.<r>.retrain`` and the like for one round only;
VALUE read as YAML) to the built-in ones below;
``--variants`` picks configurations by name. ``--budgets`` are fractions of the train split.
Every configuration runs params.yaml's other settings (5 rounds unless ``--rounds``).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from alr_core.active.labels import (
    apply_answers,
    cleaning_metrics,
    in_pool,
    initial_working_labels,
    labelled,
    mark_skipped,
    queried_first,
    select_query,
    simulated_answers,
    training_rows,
    trusted,
)
from alr_core.common.errors import AlrError
from alr_core.common.params import parse_params, round_params, split_budget, yaml_value
from alr_core.common.seeding import rng_for, seed_for
from bench.phase1_evidence import DATASETS, parse_dataset, prepare_run
from bench.records import append_record, read_records

# every configuration names its phase-1 rule, pool and class balance, so that the table does not
# move with params.yaml's defaults
LNL = {"lnl.method": "coteaching", "lnl.selection": "class_gmm", "lnl.keep_above_chance": "never",
       "al.pool": "unselected", "al.class_balance": "none"}
# CE trusts every label: C is everything
CE = {"lnl.method": "ce", "lnl.selection": "global", "al.pool": "all", "al.class_balance": "none"}
CONFIGS = {
    # the baseline a user already has, and the same with a label-quality strategy
    "ce + random": CE | {"al.strategy": "random"},
    "ce + label_disagreement": CE | {"al.strategy": "label_disagreement"},
    # phase 1, the paper's fine-tuning on C ∪ relabelled
    "lnl + random": LNL | {"al.strategy": "random"},
    "lnl + entropy": LNL | {"al.strategy": "entropy"},
    "lnl + label_disagreement": LNL | {"al.strategy": "label_disagreement"},
    "lnl + label_disagreement, pool all": LNL | {"al.strategy": "label_disagreement", "al.pool": "all"},
    # retraining options on top of phase 1
    "lnl + label_disagreement, pool all, train_on lnl": LNL | {
        "al.strategy": "label_disagreement", "al.pool": "all", "al.train_on": "lnl"},
    "lnl + label_disagreement, pool all, train_on lnl, scratch": LNL | {
        "al.strategy": "label_disagreement", "al.pool": "all", "al.train_on": "lnl", "al.retrain": "scratch",
        "al.epochs": 40, "al.lr": 0.05},
    "lnl + label_disagreement, pool all, balanced loss": LNL | {
        "al.strategy": "label_disagreement", "al.pool": "all", "al.class_balance": "loss"},
    "lnl + label_disagreement, pool all, sampler": LNL | {
        "al.strategy": "label_disagreement", "al.pool": "all", "al.class_balance": "sampler"},
    "lnl + random, pool all, train_on lnl": LNL | {"al.strategy": "random", "al.pool": "all", "al.train_on": "lnl"},
    # the same with C widened by the above-chance guard (phase-1 training unchanged)
    "lnl, above chance in C + label_disagreement, pool all, balanced loss": LNL | {
        "lnl.keep_above_chance": "clean_guess", "al.strategy": "label_disagreement", "al.pool": "all",
        "al.class_balance": "loss"},
    # the default (phase 1 + label_disagreement, pool all, balanced loss) with its 5th round from scratch
    "lnl + label_disagreement, pool all, balanced loss, round 5 scratch": LNL | {
        "al.strategy": "label_disagreement", "al.pool": "all", "al.class_balance": "loss",
        "rounds.5.retrain": "scratch", "rounds.5.epochs": 40, "rounds.5.lr": 0.05},
}  # fmt: skip


def nested(config: dict) -> dict:
    """{"al.pool": "all"} → {"al": {"pool": "all"}}."""
    out: dict = {}
    for key, value in config.items():
        *groups, name = key.split(".")
        node = out
        for group in groups:
            node = node.setdefault(group, {})
        node[name] = value
    return out


def phase1(dataset: dict, noise: float, seed: int, config: dict, cache: Path):
    """(params, data, noisy table, phase-1 checkpoint dict), phase 1 trained once per key."""
    import torch

    from alr_core.lnl.phase1 import train_phase1

    params, data, noisy = prepare_run(dataset, noise, seed, nested(config))
    key = json.dumps([dataset, noise, seed, dataclasses.asdict(params.lnl), dataclasses.asdict(params.model),
                      dataclasses.asdict(params.train)], sort_keys=True, default=str)  # fmt: skip
    path = cache / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.pt"
    if path.exists():
        return params, data, noisy, torch.load(path, weights_only=False)
    result = train_phase1(data, params, progress=False)
    saved = {"spec": result.spec, "normalization": result.normalization, "model": result.model.state_dict(),
             "peer": result.peer.state_dict() if result.peer is not None else None,
             "clean_guess": result.selection["clean_guess"].to_numpy(), "metrics": result.metrics}  # fmt: skip
    cache.mkdir(parents=True, exist_ok=True)
    torch.save(saved, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").rename(path)
    return params, data, noisy, saved


def run_rounds(params, data, noisy, saved: dict) -> dict:
    """The round stages in-process (score_samples → query → oracle_relabel → retrain per round)."""
    from alr_core.active.consensus import RELABELLED, TIED, decide, simulated_annotators
    from alr_core.active.retrain import retrain
    from alr_core.active.scoring import score_pool
    from alr_core.nn.models import build_model

    def network(state):
        if state is None:
            return None
        net = build_model(saved["spec"])
        net.load_state_dict(copy.deepcopy(state))
        return net

    model, peer = network(saved["model"]), network(saved["peer"])
    labels = start = initial_working_labels(noisy, saved["clean_guess"])
    rounds = len(params.rounds)
    budgets = split_budget(params.budget // params.al.annotators, rounds)
    per_round = []
    for number, budget in enumerate(budgets, start=1):
        train = dataclasses.replace(data.train, labels=labels["label"].to_numpy(dtype=np.int64))
        pool = in_pool(labels, params.al.pool)
        if budget > pool.sum():
            raise AlrError(f"round {number}: budget {budget} > pool {int(pool.sum())} (al.pool {params.al.pool})")
        scores = score_pool(model, saved["normalization"], train, pool, trusted(labels), budget, params,
                            seed_for(params.seed, f"score round {number}"))  # fmt: skip
        query = select_query(scores, budget, queried_first(labels, params.al.pool))
        query = query.rename(columns={"prediction": "predicted_label"})  # as the query stage writes it
        rng = rng_for(params.seed, f"simulated annotators round {number}")
        answers = simulated_annotators(simulated_answers(labels, query["sample_id"]), len(data.class_names),
                                       params.al.annotators, params.al.annotator_noise, rng)  # fmt: skip
        outcome = decide(answers, query, len(data.class_names), params.al.aggregate).set_index("sample_id")
        before = labels
        labels = apply_answers(labels, outcome.loc[outcome["outcome"] == RELABELLED, "decided_label"], number, "oracle")
        labels = mark_skipped(labels, outcome.index[outcome["outcome"] == TIED], number, source="tied")
        train = dataclasses.replace(data.train, labels=labels["label"].to_numpy(dtype=np.int64))
        round_data = dataclasses.replace(data, train=train)
        result = retrain(model, peer, saved["spec"], saved["normalization"], round_data,
                         training_rows(labels, params.al.train_on), labelled(labels), round_params(params, str(number)),
                         seed_for(params.seed, f"retrain round {number}"), progress=False)  # fmt: skip
        model, peer = result.model, result.peer
        per_round.append({"test": result.metrics["test"], "kept": result.metrics["kept_previous"],
                          "trained_val": result.metrics["trained_val_macro_f1"],
                          "cleaning": cleaning_metrics(before, labels, query, data.class_names)})  # fmt: skip
    expected = sum(r["cleaning"]["random_expected_fixes"] for r in per_round)
    fixed = sum(r["cleaning"]["fixed_by_queries"] for r in per_round)
    best = sum(r["cleaning"]["best_possible_fixes"] for r in per_round)
    return {
        "phase1_test_balanced_accuracy": saved["metrics"]["test"]["balanced_accuracy"],
        "test_balanced_accuracy": per_round[-1]["test"]["balanced_accuracy"],
        "test_macro_f1": per_round[-1]["test"]["macro_f1"],
        "worst_class_test_recall": min(v for v in per_round[-1]["test"]["recall_per_class"].values() if v is not None),
        "label_accuracy_before": per_round[0]["cleaning"]["label_accuracy_before"],
        "label_accuracy": per_round[-1]["cleaning"]["label_accuracy"],
        "queries": sum(budgets),
        "fixed_by_queries": fixed,
        "cleaning_efficiency": fixed / expected if expected > 0 else None,
        "cleaning_efficiency_ceiling": best / expected if expected > 0 else None,
        # what the fixes could teach the model (cleaning_metrics), and the wrong labels training relied on
        "fixed_in_trusted": sum(r["cleaning"]["fixed_in_trusted"] for r in per_round),
        "fixed_already_predicted": sum(r["cleaning"]["fixed_already_predicted"] for r in per_round),
        "wrong_in_trusted_before": wrong_in_trusted(start),
        "wrong_in_trusted": wrong_in_trusted(labels),
        "curve": [r["test"]["balanced_accuracy"] for r in per_round],
        # per round: whether it handed on the model it started from (its training validated no better)
        "kept_previous": [r["kept"] for r in per_round],
        "trained_val_macro_f1": [r["trained_val"] for r in per_round],  # the round's trained model, kept or not
    }


def wrong_in_trusted(labels) -> int:
    """Working labels in C ∪ labelled that differ from the truth: the wrong labels ``train_on:
    selected`` trains on."""
    return int((trusted(labels) & (labels["label"] != labels["true_label"]).to_numpy(dtype=bool)).sum())


def with_overrides(rounds: dict, per_round: dict) -> dict:
    """``rounds`` with a configuration's ``rounds.<r>.<key>`` entries (e.g. the last round's
    ``retrain: scratch``) merged into round r's entry."""
    unknown = sorted(set(per_round) - set(rounds))
    if unknown:
        raise SystemExit(f"configuration overrides rounds {unknown}, but the run has rounds {list(rounds)}")
    return {name: entry | per_round.get(name, {}) for name, entry in rounds.items()}


def parse_config(text: str) -> tuple[str, dict]:
    name, sep, body = text.partition("=")
    if not sep or not body:
        raise SystemExit(f"--config {text!r}: expected NAME=KEY=VALUE[,KEY=VALUE...]")
    config = {}
    for item in body.split(","):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--config {text!r}: {item!r} is not KEY=VALUE")
        config[key.strip()] = yaml_value(value)  # as `dvc exp run -S` reads it
    return name.strip(), config


COLUMNS = ["test_balanced_accuracy", "test_macro_f1", "worst_class_test_recall", "label_accuracy",
           "cleaning_efficiency", "phase1_test_balanced_accuracy"]  # fmt: skip
KEYS = ["dataset", "noise", "budget", "config"]


# the round rule a record ran under: since 092359c a round hands on the model it started from when
# its training validates no better; the records say so per round (``kept_previous``, written from
# f1a3327 on; every record in bench/phase2_retrain.jsonl predates 092359c)
OLD_RULE, NEW_RULE = "every round hands on the model it trained", "the previous model competes"


def round_rule(record: dict) -> str:
    """A record without ``kept_previous`` ran under the old rule."""
    return NEW_RULE if "kept_previous" in record else OLD_RULE


def one_round_rule(records: list[dict], raw: Path) -> str:
    """The one round rule of ``records``; a clear error where they mix the two, which the resume
    key (dataset, noise, budget, config, seed) cannot tell apart."""
    rules = {round_rule(r) for r in records}
    if len(rules) > 1:
        raise SystemExit(f"{raw} mixes the two round rules ({sorted(rules)}): records without kept_previous "
                         "ran under the old one; keep each rule's records in its own --raw")
    return rules.pop() if rules else NEW_RULE


def provenance(out: Path, table_only: bool) -> str:
    """Line 2 of the table: how its records were produced. A table-only run keeps the file's
    hand-written line (commands and commits per block), which no generated line could hold; a
    sweep appends its own command and commit to it."""
    lines = out.read_text().splitlines() if out.exists() else []
    old = lines[1] if len(lines) > 1 and lines[1].startswith("Produced") else ""
    command = f"`python -m bench.phase2_evidence {shlex.join(sys.argv[1:])}`"
    if table_only:
        return old or f"Produced by {command}."
    try:
        commit = subprocess.run(["git", "-C", str(Path(__file__).parent), "describe", "--always", "--dirty"],
                                capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "commit unknown"
    return f"{old} Then {command} (at {commit})." if old else f"Produced by {command} (at {commit})."


def summarise(records: list[dict]) -> pd.DataFrame:
    table = pd.DataFrame(records)
    grouped = table.groupby(KEYS, sort=False)
    mean, std = grouped[COLUMNS].mean(), grouped[COLUMNS].std(ddof=1)

    def cell(m, s):
        return "—" if pd.isna(m) else f"{m:.3f}" if pd.isna(s) else f"{m:.3f} ± {s:.3f}"

    out = pd.DataFrame({c: [cell(m, s) for m, s in zip(mean[c], std[c])] for c in COLUMNS}, index=mean.index)
    out["n"] = grouped.size()
    return out.reset_index()


def targets(records: list[dict]) -> pd.DataFrame:
    """Per dataset × noise × budget, the best configuration by mean test balanced accuracy
    against "ce + random": the margin (target ≥ +0.03) and its cleaning efficiency (≥ 2).
    Only configurations run on as many seeds as the most-run one compete."""
    grouped = pd.DataFrame(records).groupby(KEYS, sort=False)
    mean = grouped[COLUMNS].mean().assign(n=grouped.size()).reset_index()
    rows = []
    for (dataset, noise, budget), group in mean.groupby(KEYS[:3], sort=False):
        group = group[group["n"] == group["n"].max()]
        baseline = group.loc[group["config"] == "ce + random", "test_balanced_accuracy"]
        best = group.loc[group["test_balanced_accuracy"].idxmax()]
        margin = best["test_balanced_accuracy"] - baseline.iloc[0] if len(baseline) else np.nan
        rows.append({"dataset": dataset, "noise": noise, "budget": budget, "best configuration": best["config"],
                     "test bal. acc.": f"{best['test_balanced_accuracy']:.3f}",
                     "ce + random": "—" if baseline.empty else f"{baseline.iloc[0]:.3f}",
                     "margin ≥ 0.03": "—" if np.isnan(margin) else f"{margin:+.3f} {'yes' if margin >= 0.03 else 'no'}",
                     "cleaning efficiency ≥ 2": "—" if pd.isna(best["cleaning_efficiency"]) else
                     f"{best['cleaning_efficiency']:.2f} {'yes' if best['cleaning_efficiency'] >= 2 else 'no'}"})  # fmt: skip
    return pd.DataFrame(rows)


def one_configuration(records: list[dict]) -> tuple[str, pd.DataFrame]:
    """The configuration with the largest mean margin over "ce + random" across every dataset
    × budget block it ran in fully, and its margin and efficiency per block: the fair
    reading, since the best configuration per block is a maximum over noisy means."""
    grouped = pd.DataFrame(records).groupby(KEYS, sort=False)
    mean = grouped[COLUMNS].mean().assign(n=grouped.size()).reset_index()
    blocks = mean.groupby(KEYS[:3], sort=False)
    full = pd.concat([g[g["n"] == g["n"].max()] for _, g in blocks])
    baseline = full[full["config"] == "ce + random"].set_index(KEYS[:3])["test_balanced_accuracy"]
    full = full[full.set_index(KEYS[:3]).index.isin(baseline.index)].copy()
    full["margin"] = full["test_balanced_accuracy"].to_numpy() - baseline.loc[
        list(full.set_index(KEYS[:3]).index)].to_numpy()  # fmt: skip
    everywhere = full.groupby("config").filter(lambda g: len(g) == len(baseline))
    candidates = everywhere[everywhere["config"] != "ce + random"]
    if candidates.empty:
        return "—", pd.DataFrame()
    best = candidates.groupby("config")["margin"].mean().idxmax()
    rows = candidates[candidates["config"] == best]
    return best, pd.DataFrame({
        "dataset": rows["dataset"], "noise": rows["noise"], "budget": rows["budget"],
        "test bal. acc.": rows["test_balanced_accuracy"].map("{:.3f}".format),
        "margin over ce + random": rows["margin"].map(lambda m: f"{m:+.3f} {'yes' if m >= 0.03 else 'no'}"),
        "cleaning efficiency": rows["cleaning_efficiency"].map(
            lambda e: "—" if pd.isna(e) else f"{e:.2f} {'yes' if e >= 2 else 'no'}"),
    })  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", nargs="+", default=list(DATASETS))
    parser.add_argument("--noise", type=float, default=0.4)
    parser.add_argument("--budgets", type=float, nargs="+", default=[0.05, 0.1], help="fractions of the train split")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--config", action="append", default=[], help="NAME=KEY=VALUE,... (repeatable)")
    parser.add_argument("--variants", nargs="+", help="only these configurations")
    parser.add_argument("--out", type=Path, default=Path("bench/phase2_retrain.md"))
    parser.add_argument("--raw", type=Path, default=Path("bench/phase2_retrain.jsonl"))
    parser.add_argument("--cache", type=Path, default=Path("/tmp/alr-phase2-cache"), help="phase-1 checkpoints")
    parser.add_argument("--table-only", action="store_true", help="write the table from --raw, run nothing")
    args = parser.parse_args()
    datasets = dict(parse_dataset(text) for text in args.dataset)
    configs = CONFIGS | dict(parse_config(text) for text in args.config)
    if args.variants:
        unknown = [v for v in args.variants if v not in configs]
        if unknown:
            raise SystemExit(f"--variants: unknown {unknown}; known: {list(configs)}")
        configs = {name: configs[name] for name in args.variants}

    stored = read_records(args.raw)
    rule = one_round_rule(stored, args.raw)
    if not args.table_only and rule != NEW_RULE:
        raise SystemExit(f"{args.raw} holds records of the old round rule ({OLD_RULE}); this code runs "
                         f"\"{NEW_RULE}\": extend it with another --raw")
    done = {(r["dataset"], r["noise"], r["budget"], r["config"], r["seed"]): r for r in stored}
    rounds = {str(r): {"prev": "data/lnl" if r == 1 else f"data/rounds/{r - 1}"} for r in range(1, args.rounds + 1)}
    for dataset_name, dataset in [] if args.table_only else datasets.items():
        if "path" in dataset and not Path(dataset["path"]).exists():
            print(f"skipping {dataset_name}: {dataset['path']} not found")
            continue
        for seed in args.seeds:  # seeds outermost: a sweep stopped early leaves every configuration comparable
            for fraction in args.budgets:
                for name, config in configs.items():
                    key = (dataset_name, args.noise, fraction, name, seed)
                    if key in done:
                        continue
                    per_round = nested({k: v for k, v in config.items() if k.startswith("rounds.")}).get("rounds", {})
                    run_config = {k: v for k, v in config.items() if not k.startswith("rounds.")}
                    params, data, noisy, saved = phase1(dataset, args.noise, seed, run_config, args.cache)
                    budget = int(round(fraction * len(data.train.labels)))
                    raw = dataclasses.asdict(params) | {"budget": budget, "rounds": with_overrides(rounds, per_round)}
                    metrics = run_rounds(parse_params(raw), data, noisy, saved)
                    record = {"dataset": dataset_name, "noise": args.noise, "budget": fraction, "config": name,
                              "seed": seed, "budget_samples": budget, **metrics, "params": config, "data": dataset}  # fmt: skip
                    done[key] = record
                    append_record(args.raw, record)
                    print(json.dumps({k: record[k] for k in (*KEYS, "seed", "test_balanced_accuracy",
                                                             "cleaning_efficiency")}), flush=True)  # fmt: skip
    records = list(done.values())
    best, per_block = one_configuration(records)
    rule = one_round_rule(records, args.raw)
    header = (f"Phase-2 evidence: symmetric noise, {args.rounds} rounds, round rule: {rule}"
              + (" (every record predates 092359c, which lets the previous model compete)" if rule == OLD_RULE
                 else " (a round keeps the model it started from when its training validates no better)")
              + ", simulated oracle, params.yaml otherwise; budget as a fraction of the train split; mean ± sample "
              "std over the n seeds run.\n" + provenance(args.out, args.table_only) + "\n"
              "Cleaning efficiency: wrong labels the queries fixed ÷ what as many random queries over every "
              "not-yet-queried sample fix in expectation (1.0 = random).\n\n")
    args.out.write_text(header + summarise(records).to_markdown(index=False)
                        + "\n\nTargets (best configuration by mean test balanced accuracy, against ce + random):\n\n"
                        + targets(records).to_markdown(index=False)
                        + f"\n\nOne configuration for every block (largest mean margin): **{best}**\n\n"
                        + per_block.to_markdown(index=False) + "\n")  # fmt: skip
    print(args.out.read_text())


if __name__ == "__main__":
    main()
