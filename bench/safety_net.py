"""Two rules for the safety net (``lnl.safety_net: pick``, alr_core/lnl/safety_net.py) on the same
pairs of runs: the pipeline's, hand on plain CE's model whenever it scored higher on validation,
against handing it on only when its lead is beyond the noise of the validation split (the paired
sign-flip test whose p-value the pipeline reports finds CE the better at the one-sided 5 % level).

Per dataset, noise rate and seed this trains phase 1 twice from the same start, plain CE and the
default rule (``cleanlab_kfold``), with bench.ssl_evidence's runs (the same split, encoder,
noise draw and seeds: on the machine that wrote bench/ssl_evidence.jsonl they reproduce its
scores), and records each run's validation predictions, which the ssl_evidence records do not
hold. The tables then apply both rules to the same pairs; neither reads a test score. Phase 2
reads bench/ssl_evidence.jsonl's runs of the default, adding where the rules differ the runs
without the net (``cleanlab_kfold + label_disagreement``) that the tables ask for.

    BCCD="bccd=imagefolder:../shared/data/bccd_wbc/BCCD_cropped;class_names=[Eosinophil,Lymphocyte,Monocyte,Neutrophil]"
    python -m bench.safety_net --dataset digits retinamnist "$BCCD" --rates 0.2 0.4 0.6
    python -m bench.safety_net --table-only
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from alr_core.common.text import counted
from alr_core.lnl.safety_net import SIGNIFICANCE, ce_lead
from bench.phase1_evidence import available_datasets
from bench.records import append_record, read_records
from bench.ssl_evidence import (PHASE2_BASELINE, ROUND_RULE, diff_text, mean_interval, phase1_run, prepared,
                                 pretrain_settings)

RULE = "cleanlab_kfold"  # the phase-1 default the net guards
INIT = "scratch"  # the pipeline's default initialisation
PRETRAIN_EPOCHS = 15  # the pipeline's: the encoder behind cleanlab_kfold's embeddings
NETTED_DEFAULT = f"{RULE} + safety net + label_disagreement"  # the phase-2 default in bench.ssl_evidence's names


def pair_records(prep, name: str, rate: float, seed: int) -> list[dict]:
    """CE's and the rule's phase-1 runs for one seed, each with its validation predictions."""
    records = []
    for variant in ("ce", RULE):
        record, (_, data, _, result) = phase1_run(prep, rate, seed, INIT, variant)
        records.append({"dataset": name, "rate": rate, "seed": seed, "init": INIT, "pretrain_epochs": PRETRAIN_EPOCHS,
                        "variant": variant, "test_balanced_accuracy": record["test_balanced_accuracy"],
                        "val_balanced_accuracy": record["val_balanced_accuracy"],
                        "val_labels": data.val.labels.tolist(), "val_predictions": result.val_predictions.tolist()})
    return records


def decisions(records: list[dict]) -> pd.DataFrame:
    """One row per (dataset, rate, seed) holding both runs: the test scores of CE, the rule and
    what each net hands on, and the pipeline's test of CE's validation lead (with the run's seed,
    as the pipeline draws it)."""
    frame = pd.DataFrame(records)
    rows = []
    for (dataset, rate, seed), block in frame.groupby(["dataset", "rate", "seed"], sort=False):
        runs = block.drop_duplicates("variant", keep="last").set_index("variant")
        if not {"ce", RULE} <= set(runs.index):
            continue
        ce, rule = runs.loc["ce"], runs.loc[RULE]
        lead = ce_lead(np.array(ce["val_labels"]), np.array(ce["val_predictions"]), np.array(rule["val_predictions"]),
                       seed)  # fmt: skip
        beyond = lead["significant"]
        higher = ce["val_balanced_accuracy"] > rule["val_balanced_accuracy"]
        test = {"ce": ce["test_balanced_accuracy"], "rule": rule["test_balanced_accuracy"]}
        rows.append({"dataset": dataset, "rate": rate, "seed": seed, "n_val": len(ce["val_labels"]),
                     "lead": lead["diff"], "p_value": lead["p_value"], "higher_picks_ce": higher,
                     "test_picks_ce": beyond, "ce": test["ce"], "rule": test["rule"],
                     "net_higher": test["ce" if higher else "rule"], "net_test": test["ce" if beyond else "rule"]})
    return pd.DataFrame(rows)


def _interval(diff: pd.Series) -> str:
    return diff_text(mean_interval(diff))


def tables(found: pd.DataFrame) -> str:
    """Markdown: per (dataset, rate) and over all pairs, how often each net picks CE and the test
    balanced accuracy each hands on, with paired differences and 95 % t-intervals over seeds.
    ``found``: :func:`decisions`."""
    if found.empty:
        return "No complete pairs yet.\n"
    out = ["| set | noise | seeds | val size | CE picked: higher / test | CE | rule | net, higher | "
           "net, test | test − higher | test − CE | test − rule |", "|" + "---|" * 12]
    groups = [*found.groupby(["dataset", "rate"], sort=False), (("all", "all"), found)]
    for (dataset, rate), block in groups:
        size = f"{block['n_val'].min()}" + (f"–{block['n_val'].max()}" if block["n_val"].nunique() > 1 else "")
        out.append(f"| {dataset} | {rate} | {len(block)} | {size} | {block['higher_picks_ce'].sum()} / "
                   f"{block['test_picks_ce'].sum()} | {block['ce'].mean():.3f} | {block['rule'].mean():.3f} | "
                   f"{block['net_higher'].mean():.3f} | {block['net_test'].mean():.3f} | "
                   f"{_interval(block['net_test'] - block['net_higher'])} | "
                   f"{_interval(block['net_test'] - block['ce'])} | {_interval(block['net_test'] - block['rule'])} |")
    flipped = found[found["higher_picks_ce"] != found["test_picks_ce"]]
    gain = (flipped["rule"] - flipped["ce"]).to_numpy()
    picked = found[found["test_picks_ce"]]
    out += ["", f"The nets disagree on {len(flipped)} of {len(found)} pairs, each one where CE scored higher on "
            f"validation but not significantly, so the test keeps the rule's run"
            + (f": on test the rule's run scored above CE's in {int((gain > 0).sum())}, below in "
               f"{int((gain < 0).sum())}, level in {int((gain == 0).sum())}, mean {gain.mean():+.3f}." if len(gain)
               else ".")
            + (f" The test picks CE in {counted(len(picked), 'pair')}, where CE's test score minus the rule's is "
               f"{(picked['ce'] - picked['rule']).mean():+.3f} on average." if len(picked)
               else " The test picks CE in none.")]
    return "\n".join(out) + "\n"


def phase2_effect(found: pd.DataFrame, evidence: list[dict]) -> tuple[str, list[str]]:
    """(Markdown, commands): the phase-2 default (``cleanlab_kfold + safety net + label_disagreement``)
    under each net, from the phase-2 records of bench/ssl_evidence.jsonl (from scratch, the
    pipeline's pretraining and round rule). Where the nets agree, both hand the same phase 1 to
    the rounds, so the stored run serves both; where only "higher" picked CE, the test's run is the
    record of ``cleanlab_kfold + label_disagreement`` (no net) for that seed. ``commands`` run the
    ones still missing with bench.ssl_evidence (``--dataset`` as the records name the set: give
    the spec they were made with). Rows only for the sets and rates that have phase-1 pairs here,
    each read on its seeds that have them. ``found``: :func:`decisions`."""
    netted, plain = NETTED_DEFAULT, f"{RULE} + label_disagreement"
    frame = pd.DataFrame([r for r in evidence if r.get("phase") == 2 and r["init"] == INIT
                          and r["pretrain_epochs"] == PRETRAIN_EPOCHS and r.get("round_rule") == ROUND_RULE])
    decided = found.groupby(["dataset", "rate"])["seed"].agg(set) if len(found) else {}
    flipped = found[found["higher_picks_ce"] & ~found["test_picks_ce"]].groupby(["dataset", "rate"])["seed"].agg(set)
    out = ["| set | noise | budget | seeds | nets differ | CE + random | default, higher | default, test | "
           "test − higher | test − CE + random | higher − CE + random |", "|" + "---|" * 11]
    commands, pooled = [], []
    for (dataset, rate, budget), block in frame.groupby(["dataset", "rate", "budget"]):
        runs = {v: b.set_index("seed")["test_balanced_accuracy"] for v, b in block.groupby("variant")}
        if not {netted, PHASE2_BASELINE} <= set(runs) or (dataset, rate) not in decided:
            continue  # the tables cover the sets and rates this bench measured
        # a block is read on the seeds with phase-1 pairs; its seeds cell counts the others too
        known = set(runs[netted].index) & decided.get((dataset, rate), set())
        undecided = sorted(set(runs[netted].index) - known)
        if len(known) < 2:
            out.append(f"| {dataset} | {rate} | {budget:.0%} | {len(runs[netted])} | ? | phase-1 pairs not yet run "
                       f"for seeds {' '.join(map(str, undecided))} |" + " |" * 5)
            continue
        runs[netted] = runs[netted][sorted(known)]
        of = f" of {len(known) + len(undecided)}" if undecided else ""
        differ = flipped.get((dataset, rate), set()) & known
        missing = sorted(differ - set(runs.get(plain, pd.Series(dtype=float)).index))
        if missing:
            seeds = " ".join(map(str, missing))
            commands.append(f'python -m bench.ssl_evidence --dataset {dataset} --rates {rate} --phase 2 --inits '
                            f'{INIT} --pretrain-epochs {PRETRAIN_EPOCHS} --budgets {budget} --variants "{plain}" '
                            f"--seeds {seeds}")  # fmt: skip
            out.append(f"| {dataset} | {rate} | {budget:.0%} | {len(runs[netted])}{of} | {len(differ)} | "
                       f"`{plain}` not yet run for seeds {seeds} |" + " |" * 5)
            continue
        higher = runs[netted]
        test = pd.Series({seed: runs[plain][seed] if seed in differ else score for seed, score in higher.items()})
        seeds = higher.index.intersection(runs[PHASE2_BASELINE].index)
        base, higher, test = runs[PHASE2_BASELINE][seeds], higher[seeds], test[seeds]
        out.append(f"| {dataset} | {rate} | {budget:.0%} | {len(seeds)}{of} | {len(differ)} | {base.mean():.3f} | "
                   f"{higher.mean():.3f} | {test.mean():.3f} | {_interval(test - higher)} | "
                   f"{_interval(test - base)} | {_interval(higher - base)} |")
        pooled.append(pd.DataFrame({"test": test, "higher": higher, "base": base, "differ": test.index.isin(differ)}))
    if pooled:
        every = pd.concat(pooled, ignore_index=True)
        out.append(f"| all | all | both | {len(every)} | {int(every['differ'].sum())} | "
                   f"{every['base'].mean():.3f} | {every['higher'].mean():.3f} | {every['test'].mean():.3f} | "
                   f"{_interval(every['test'] - every['higher'])} | {_interval(every['test'] - every['base'])} | "
                   f"{_interval(every['higher'] - every['base'])} |")
    return "\n".join(out) + "\n", commands


def picks_by_lead(evidence: list[dict]) -> str:
    """Markdown: over every phase-1 pair of plain CE and the rule in bench/ssl_evidence.jsonl
    (any rate, initialisation and pretraining length), what "CE whenever it scored higher"
    picked and what the pick did on test, by the size of CE's validation lead."""
    frame = pd.DataFrame([r for r in evidence if r.get("phase") == 1 and r["variant"] in ("ce", RULE)])
    keys = ["dataset", "rate", "init", "seed", "pretrain_epochs"]
    both = frame.pivot_table(index=keys, columns="variant",
                             values=["val_balanced_accuracy", "test_balanced_accuracy"]).dropna()
    lead = both[("val_balanced_accuracy", "ce")] - both[("val_balanced_accuracy", RULE)]
    gain = (both[("test_balanced_accuracy", "ce")] - both[("test_balanced_accuracy", RULE)])[lead > 0]
    lead = lead[lead > 0]
    out = [f"Over the {len(both)} pairs of plain CE and {RULE} in bench/ssl_evidence.jsonl, \"higher\" picked CE "
           f"{len(gain)} times; CE's test score minus the rule's on those picks, by CE's validation lead:", "",
           "| validation lead | picks | CE better on test | CE worse | mean |", "|---|---|---|---|---|"]
    for name, low, high in (("≤ 0.02", 0, 0.02), ("0.02–0.05", 0.02, 0.05), ("> 0.05", 0.05, 1), ("all", 0, 1)):
        chosen = gain[(lead > low) & (lead <= high)]
        out.append(f"| {name} | {len(chosen)} | {int((chosen > 0).sum())} | {int((chosen < 0).sum())} | "
                   f"{chosen.mean():+.3f} |")
    return "\n".join(out) + "\n"


def reproduced(records: list[dict], evidence: list[dict]) -> str:
    """How many of these runs scored on test exactly what bench/ssl_evidence.jsonl holds for the
    same run: the same code and seed, so any other score is another machine's."""
    stored = {(r["dataset"], r["rate"], r["seed"], r["init"], r["variant"], r["pretrain_epochs"]):
              r["test_balanced_accuracy"] for r in evidence if r.get("phase") == 1}  # fmt: skip
    keys = [(r["dataset"], r["rate"], r["seed"], r["init"], r["variant"], r["pretrain_epochs"]) for r in records]
    known = [(key, r) for key, r in zip(keys, records) if key in stored]
    same = sum(stored[key] == r["test_balanced_accuracy"] for key, r in known)
    return (f"{same} of {len(known)} runs that bench/ssl_evidence.jsonl also holds scored exactly its test balanced "
            f"accuracy ({len(records) - len(known)} runs it does not hold).\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", nargs="+", default=["digits"])
    parser.add_argument("--rates", nargs="+", type=float, default=[0.4])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/alr-ssl-evidence"))
    parser.add_argument("--raw", type=Path, default=Path("bench/safety_net.jsonl"))
    parser.add_argument("--evidence", type=Path, default=Path("bench/ssl_evidence.jsonl"))
    parser.add_argument("--out", type=Path, default=Path("bench/safety_net_tables.md"))
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()

    records = read_records(args.raw)
    done = {(r["dataset"], r["rate"], r["seed"]) for r in records if r["variant"] == RULE}
    if not args.table_only:
        for name, dataset in available_datasets(args.dataset):
            prep = prepared(name, dataset, pretrain_settings(INIT, PRETRAIN_EPOCHS), args.cache)
            for rate in args.rates:
                for seed in args.seeds:
                    if (name, rate, seed) in done:
                        continue
                    for record in pair_records(prep, name, rate, seed):
                        records.append(record)
                        append_record(args.raw, record)
                        print(json.dumps({k: v for k, v in record.items() if not k.startswith("val_")}),
                              file=sys.stderr)
    header = (f"# Safety-net tables\n\nProduced by `python -m bench.safety_net --table-only` from `{args.raw}`; "
              f"the reading is in bench/safety_net.md. Phase 1 from {INIT}, {RULE} against plain CE, "
              f"{PRETRAIN_EPOCHS} pretraining epochs; test balanced accuracy; \"higher\": CE whenever it scored "
              f"higher on validation (the pipeline's rule); \"test\": CE only when a paired sign-flip test finds its "
              f"validation lead significant at the one-sided {SIGNIFICANCE:.0%} level.\n\n")
    evidence = read_records(args.evidence)
    found = decisions(records)
    phase2, commands = phase2_effect(found, evidence)
    for command in commands:
        print(f"phase 2 still to run: {command}", file=sys.stderr)
    args.out.write_text(header + tables(found) + "\n" + reproduced(records, evidence) + "\n## Phase 2\n\n"
                        "The phase-2 default (`cleanlab_kfold + safety net + label_disagreement`) under each net, 5 % "
                        "and 10 % budgets; test balanced accuracy after the last round; seeds \"n of m\": the n of "
                        "the block's m seeds that have phase-1 pairs here.\n\n" + phase2
                        + "\n## The pipeline's rule on the evidence records\n\n" + picks_by_lead(evidence))


if __name__ == "__main__":
    main()
