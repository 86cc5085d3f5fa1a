"""Aggregate a sweep of DVC experiments into one table and one figure.

Experiments are grouped by every parameter except the replicate seeds (``seed``, and
``data.split_seed`` where a sweep varies the split), and by the commit they ran on (with
``--all-commits``, two commits' code under the same parameters are two configurations, not
replicates of one); each group gets the number of finished replicates and the mean ± sample
standard deviation of the final metrics and of the area under the learning curve, plus its
mean learning curve with a ±1 std band. Given a baseline (``--baseline al.strategy=random``),
each other group is also paired with the baseline group that differs from it only in the keys
named, replicate by replicate (the same seed and split seed: the same split, noise and
initialisation), with the mean difference and its 95 % t-interval. Experiments
that are queued, running, failed or finished without a report are listed, not aggregated, and
so is a repeat: an older run with the same parameters, seeds included, on the same commit
(`dvc exp run` twice, a sweep queued twice), which is no replicate: on CPU it gives the same
numbers and would only shrink the spread.

Input is the JSON of ``dvc exp show --json``; everything here is a pure function of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import pandas as pd

from alr_core.common import paths
from alr_core.common.errors import AlrError
from alr_core.common.text import counted, did_you_mean
from alr_core.report.figures import new_axes
from alr_core.report.summary import rounds_table

# replicates of one configuration: a group's spread covers the seeds, and the splits where
# data.split_seed is swept too (docs/experiments.md)
REPLICATE_KEYS = ("seed", "data.split_seed")
# the baseline commit an experiment ran on, short, among its grouping values: no params.yaml key
# has a space in it
COMMIT_KEY = "baseline commit"
SUMMARY_METRICS = {
    "final_test_balanced_accuracy": "final test balanced accuracy",
    "final_test_macro_f1": "final test macro-F1",
    "final_label_accuracy": "final label accuracy",
    "learning_curve_area": "learning-curve area",
    "phase1_test_balanced_accuracy": "phase-1 test balanced accuracy",
}
CURVE_METRIC = "test_balanced_accuracy"
INTERVAL_LEVEL = 0.95  # of the paired differences' t-intervals
_ROUND_METRICS = re.compile(r"^metrics/rounds/(\d+)\.json$")


@dataclass
class Experiment:
    """One experiment of ``dvc exp show``. ``state``: success, queued, running, failed, or
    incomplete (finished, but without the report metrics)."""

    name: str
    rev: str
    state: str
    params: dict[str, Any]  # params.yaml, flattened to dotted keys, and COMMIT_KEY
    summary: Optional[dict] = None  # metrics/report.json
    curve: Optional[pd.DataFrame] = None  # report.rounds_table: round 0 (phase 1) and each round
    error: Optional[str] = None
    repeat_of: Optional[str] = None  # the newer experiment with the same parameters and seeds

    @property
    def finished(self) -> bool:
        return self.state == "success"

    @property
    def aggregated(self) -> bool:
        return self.finished and self.repeat_of is None


def read_experiments(exp_show: Any, source: str = "dvc exp show --json") -> list[Experiment]:
    """Every experiment under every baseline commit of ``dvc exp show --json`` output."""
    if not isinstance(exp_show, list):
        raise AlrError(f"{source}: expected a JSON list of commits (dvc exp show --json), "
                       f"got {type(exp_show).__name__}")
    experiments = [_experiment(exp_range, str(commit.get("rev", ""))[:7])
                   for commit in exp_show for exp_range in (commit.get("experiments") or [])]  # fmt: skip
    _mark_repeats(experiments)
    return experiments


def _mark_repeats(experiments: list[Experiment]) -> None:
    """Each finished experiment whose parameters, seeds and commit a newer finished one shares
    is marked its repeat (``dvc exp show`` lists the newest first; the newest counts)."""
    newest: dict[str, Experiment] = {}
    for experiment in experiments:
        if not experiment.finished:
            continue
        key = repr(sorted(experiment.params.items()))
        kept = newest.setdefault(key, experiment)
        if kept is experiment:
            continue
        experiment.repeat_of = kept.name
        experiment.error = f"a repeat of {kept.name} (the same parameters and seeds), which is counted"
        if experiment.summary != kept.summary:
            experiment.error += (", with other results: the code or data differed (changes not committed "
                                 "before the run?); commit them, and compare groups by commit")  # fmt: skip


def _experiment(exp_range: dict, baseline: str) -> Experiment:
    rev = exp_range["revs"][0]
    data = rev.get("data") or {}
    state = (exp_range.get("executor") or {}).get("state") or "success"
    name = exp_range.get("name") or rev.get("name") or rev["rev"][:7]
    params = flatten(_file_data(data.get("params", {}), str(paths.PARAMS)) or {}) | {COMMIT_KEY: baseline}
    error = (rev.get("error") or {}).get("msg")
    experiment = Experiment(name, rev["rev"], state, params, error=error)
    if state != "success":
        return experiment
    metrics = data.get("metrics", {})
    summary = _file_data(metrics, paths.REPORT_METRICS.as_posix())
    lnl = _file_data(metrics, paths.LNL_METRICS.as_posix())
    rounds = sorted((int(m.group(1)), file) for file in metrics if (m := _ROUND_METRICS.match(file)))
    round_metrics = [_file_data(metrics, file) for _, file in rounds]
    if summary is None or lnl is None or any(m is None for m in round_metrics):
        experiment.state = "incomplete"
        experiment.error = experiment.error or f"{paths.REPORT_METRICS} or a round's metrics are missing"
        return experiment
    experiment.summary = summary
    experiment.curve = rounds_table(lnl, round_metrics)
    return experiment


def _file_data(files: dict, name: str) -> Optional[dict]:
    """The parsed content of one params or metrics file of an experiment, None if absent."""
    entry = files.get(name) or {}
    return entry.get("data") if not entry.get("error") else None


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """{'al': {'strategy': 'x'}} → {'al.strategy': 'x'}; lists become tuples (hashable)."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat |= flatten(value, f"{name}.")
        else:
            flat[name] = tuple(value) if isinstance(value, list) else value
    return flat


def group_experiments(experiments: list[Experiment]) -> tuple[list[str], dict[tuple, list[Experiment]]]:
    """Finished experiments grouped by every parameter but the replicate seeds (REPLICATE_KEYS),
    and by baseline commit (COMMIT_KEY).

    Returns the parameters that differ between the experiments (the columns that tell the
    groups apart) and {group key: experiments}, groups ordered by those parameters'
    values and the experiments of a group by seed, then split seed.
    """
    finished = sorted((e for e in experiments if e.aggregated),
                      key=lambda e: [_sort_key(e.params.get(k)) for k in REPLICATE_KEYS])  # fmt: skip
    keys = sorted({k for e in finished for k in e.params if k not in REPLICATE_KEYS})
    varying = [k for k in keys if len({e.params.get(k) for e in finished}) > 1]
    groups: dict[tuple, list[Experiment]] = {}
    for experiment in finished:
        key = tuple(experiment.params.get(k) for k in keys)
        groups.setdefault(key, []).append(experiment)
    by_varying = sorted(groups.items(), key=lambda item: [_sort_key(item[1][0].params.get(k)) for k in varying])
    return varying, dict(by_varying)


def _sort_key(value: Any) -> tuple:
    """Orders values of mixed types: None first, then numbers, then everything else as text."""
    if value is None:
        return (0, 0, "")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (1, value, "")
    return (2, 0, str(value))


def summary_table(experiments: list[Experiment], baseline: Optional[dict[str, Any]] = None) -> pd.DataFrame:
    """One row per group: the varying parameters, ``n``, ``seeds``, and ``<metric>_mean``,
    ``<metric>_std`` (sample std, n − 1; NaN for one value) and ``<metric>_n`` (the replicates
    that report it: an older commit's report may lack a newer metric) of each summary metric.

    With a ``baseline`` (:func:`parse_baseline`), also ``baseline`` (whether the group is one),
    ``pairs`` (replicates the group shares with its baseline group: the one whose parameters are
    the group's with the baseline's values put in) and per metric ``<metric>_diff`` (mean of
    group − baseline over the pairs), ``<metric>_diff_low`` / ``_diff_high`` (its
    ``INTERVAL_LEVEL`` t-interval; NaN for one pair) and ``<metric>_pairs``. Baseline groups,
    and groups without a baseline group, have NaN differences and 0 pairs."""
    varying, groups = group_experiments(experiments)
    if baseline is not None:
        _check_baseline(baseline, groups)
    rows = []
    for members in groups.values():
        row = {key: members[0].params.get(key) for key in varying}
        row["n"] = len(members)
        row["seeds"] = " ".join(_replicate(e, members) for e in members)
        for metric in SUMMARY_METRICS:
            values = pd.Series([e.summary.get(metric) for e in members], dtype=float)
            row[f"{metric}_mean"] = values.mean()
            row[f"{metric}_std"] = values.std(ddof=1)
            row[f"{metric}_n"] = int(values.count())
        if baseline is not None:
            row |= _paired_with_baseline(members, groups, baseline)
        rows.append(row)
    return pd.DataFrame(rows)


def parse_baseline(selectors: list[str]) -> dict[str, Any]:
    """``--baseline``'s ``KEY=VALUE`` words as {dotted params key: value}, each value read as
    ``dvc exp run -S`` reads it, by Hydra's override grammar (``100``, ``1e-3``, ``true``,
    ``null``, ``random``, ``[0, 1]``); the value of ``baseline commit`` is the commit's text."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser, baseline = OverridesParser.create(), {}
    for selector in selectors:
        key, sign, text = (part.strip() for part in selector.partition("="))
        if not sign or not key:
            raise AlrError(f"--baseline {selector!r}: expected KEY=VALUE, e.g. --baseline al.strategy=random")
        if key in baseline:
            raise AlrError(f"--baseline names {key!r} twice; give each key once")
        if key in REPLICATE_KEYS:
            raise AlrError(f"--baseline {selector!r}: {' and '.join(REPLICATE_KEYS)} are the replicates that are "
                           "paired, not a baseline; name the parameters the baseline differs in, e.g. al.strategy")
        if key == COMMIT_KEY:
            baseline[key] = text
            continue
        try:
            override = parser.parse_override(f"value={text}")
        except HydraException as exc:
            raise AlrError(f"--baseline {selector!r}: cannot read the value ({exc})") from None
        if override.is_sweep_override():
            raise AlrError(f"--baseline {selector!r}: one value per key (the baseline is one group)")
        value = override.value()
        baseline[key] = tuple(value) if isinstance(value, list) else value
    return baseline


def _matches(params: dict[str, Any], baseline: dict[str, Any]) -> bool:
    """Whether ``params`` hold the baseline's values."""
    return all(params.get(k) == v for k, v in baseline.items())


def _check_baseline(baseline: dict[str, Any], groups: dict[tuple, list[Experiment]]) -> None:
    """A baseline whose keys no finished experiment has, or whose values no group holds, is an
    error; with nothing finished yet there is nothing to check, nor to pair."""
    params = [members[0].params for members in groups.values()]
    if not params:
        return
    known = sorted({k for p in params for k in p})
    for key in baseline:
        if key not in known:
            raise AlrError(f"--baseline: no finished experiment has the parameter {key!r}"
                           f"{did_you_mean(key, known)}; keys are dotted params.yaml paths such as al.strategy")
    if not any(_matches(p, baseline) for p in params):
        held = "; ".join(f"{k}: {', '.join(str(v) for v in sorted({p.get(k) for p in params}, key=_sort_key))}"
                         for k in baseline)  # fmt: skip
        wanted = " ".join(f"{k}={v}" for k, v in baseline.items())
        raise AlrError(f"--baseline {wanted}: no group of finished experiments has these values (they hold {held})")


def _paired_with_baseline(members: list[Experiment], groups: dict[tuple, list[Experiment]],
                          baseline: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """One group's paired columns of :func:`summary_table`."""
    from scipy import stats

    params = members[0].params
    target = params | baseline
    is_baseline = _matches(params, baseline)
    partner = None
    if not is_baseline:  # the group equal to the target in every parameter, absent ones too
        partner = next((m for m in groups.values()
                        if all(m[0].params.get(k) == target.get(k)
                               for k in (m[0].params.keys() | target.keys()) - set(REPLICATE_KEYS))), None)  # fmt: skip
    row: dict[str, Any] = {"baseline": is_baseline}
    by_replicate = {_replicate_key(e): e for e in partner or []}
    pairs = [(e, by_replicate[_replicate_key(e)]) for e in members if _replicate_key(e) in by_replicate]
    row["pairs"] = len(pairs)
    for metric in SUMMARY_METRICS:
        ours = pd.Series([a.summary.get(metric) for a, _ in pairs], dtype=float)
        theirs = pd.Series([b.summary.get(metric) for _, b in pairs], dtype=float)
        diff = (ours - theirs).dropna()  # an older commit's report may lack the metric
        half = (stats.t.ppf(0.5 + INTERVAL_LEVEL / 2, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff))
                if len(diff) > 1 else np.nan)  # fmt: skip
        row[f"{metric}_diff"] = diff.mean()
        row[f"{metric}_diff_low"] = diff.mean() - half
        row[f"{metric}_diff_high"] = diff.mean() + half
        row[f"{metric}_pairs"] = int(len(diff))
    return row


def _replicate_key(experiment: Experiment) -> tuple:
    return tuple(repr(experiment.params.get(k)) for k in REPLICATE_KEYS)


def _replicate(experiment: Experiment, members: list[Experiment]) -> str:
    """The experiment's seed, as "seed/split seed" where its group spans several splits."""
    seed, split = experiment.params.get("seed"), experiment.params.get("data.split_seed")
    return str(seed) if len({m.params.get("data.split_seed") for m in members}) == 1 else f"{seed}/{split}"


def group_curves(experiments: list[Experiment]) -> list[tuple[str, pd.DataFrame]]:
    """Per group: a label (its varying parameters) and its mean learning curve, one row per
    round with ``budget_used``, ``mean``, ``std`` and ``n`` of the test balanced accuracy."""
    varying, groups = group_experiments(experiments)
    curves = []
    for members in groups.values():
        stacked = pd.concat([e.curve[["round", "budget_used", CURVE_METRIC]] for e in members])
        curve = stacked.groupby("round").agg(budget_used=("budget_used", "mean"), mean=(CURVE_METRIC, "mean"),
                                             std=(CURVE_METRIC, "std"), n=(CURVE_METRIC, "count"))  # fmt: skip
        label = ", ".join(f"{k}={members[0].params.get(k)}" for k in varying) or "all experiments"
        curves.append((label, curve.reset_index()))
    return curves


def not_aggregated(experiments: list[Experiment]) -> pd.DataFrame:
    """The experiments left out of the table: name, state (``repeat`` for a repeat), its values
    of the parameters that vary over all experiments (the seeds included: what it takes to
    queue it again; not the baseline commit), and the error."""
    keys = sorted({k for e in experiments for k in e.params} - {COMMIT_KEY})
    varying = [k for k in keys if len({repr(e.params.get(k)) for e in experiments}) > 1]
    rows = [
        {"experiment": e.name, "state": "repeat" if e.repeat_of else e.state,
         "params": " ".join(f"{k}={e.params.get(k)}" for k in varying), "error": e.error or ""}
        for e in experiments if not e.aggregated
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=["experiment", "state", "params", "error"])


def markdown_report(experiments: list[Experiment], baseline: Optional[dict[str, Any]] = None) -> str:
    """The comparison as Markdown: the group table (mean ± std), with a ``baseline`` the paired
    differences from it (:func:`summary_table`), and the left-out experiments."""
    table = summary_table(experiments, baseline)
    finished = sum(e.finished for e in experiments)
    repeats = sum(e.repeat_of is not None for e in experiments)
    repeated = f" ({repeats} of them {'a repeat' if repeats == 1 else 'repeats'}, not counted)" if repeats else ""
    by_commit = ", and by baseline commit" if COMMIT_KEY in table.columns else ""  # several among the finished
    lines = [
        f"{finished} of {len(experiments)} experiments finished{repeated}, "
        f"in {counted(len(table), 'group')} "
        f"(grouped by every parameter except {' and '.join(REPLICATE_KEYS)}{by_commit}); "
        "mean ± sample std over the replicates.",
        "",
    ]
    if len(table):
        shown = _group_columns(table)
        for metric, title in SUMMARY_METRICS.items():
            shown[title] = [_mean_std(m, s, count, n) for m, s, count, n
                            in zip(table[f"{metric}_mean"], table[f"{metric}_std"], table[f"{metric}_n"], table["n"])]
        lines += [shown.to_markdown(index=False), ""]
    if len(table) and baseline is not None:
        lines += _paired_lines(table, baseline)
    left_out = not_aggregated(experiments)
    if len(left_out):
        lines += [f"Not aggregated ({len(left_out)}; a failed run's log: `dvc queue logs <experiment>`):", "",
                  left_out.to_markdown(index=False), ""]  # fmt: skip
    return "\n".join(lines)


def _group_columns(table: pd.DataFrame) -> pd.DataFrame:
    """The columns of :func:`summary_table` that tell the groups apart, and ``n`` and ``seeds``."""
    computed = {"baseline", "pairs"} | {c for c in table.columns if c.startswith(tuple(SUMMARY_METRICS))}
    shown = table[[c for c in table.columns if c not in computed]]
    # a parameter an older commit's params.yaml lacks: its run took the default then, which "nan" hides
    return shown.astype(object).where(shown.notna(), "unset")


def _paired_lines(table: pd.DataFrame, baseline: dict[str, Any]) -> list[str]:
    """The paired section of the Markdown report: one row per group that is no baseline."""
    others = table[~table["baseline"]]
    wanted = " ".join(f"{k}={v}" for k, v in baseline.items())
    lines = [f"Paired with the baseline {wanted}: each group minus the baseline group that differs from it only "
             "there, replicate by replicate (the same seed and split seed), as the mean difference and its "
             f"{INTERVAL_LEVEL * 100:.0f} % t-interval over the pairs; an interval that excludes 0 is a difference the "
             "seeds do not explain.", ""]  # fmt: skip
    if not len(others):
        return lines + ["Every group is a baseline group: nothing to pair.", ""]
    shown = _group_columns(others).drop(columns=["n", "seeds"]).assign(pairs=others["pairs"].to_numpy())
    for metric, title in SUMMARY_METRICS.items():
        shown[title] = [_difference(d, low, high, count, pairs) for d, low, high, count, pairs
                        in zip(others[f"{metric}_diff"], others[f"{metric}_diff_low"], others[f"{metric}_diff_high"],
                               others[f"{metric}_pairs"], others["pairs"])]  # fmt: skip
    return lines + [shown.to_markdown(index=False), ""]


def _difference(diff: float, low: float, high: float, count: int, pairs: int) -> str:
    """"+0.041 [+0.002, +0.080]", or the difference alone for one pair, or "—" for none."""
    if np.isnan(diff):
        return "—"
    text = f"{diff:+.3f} (1 pair)" if np.isnan(low) else f"{diff:+.3f} [{low:+.3f}, {high:+.3f}]"
    return text if count == pairs or np.isnan(low) else f"{text} (n={count})"


def _mean_std(mean: float, std: float, count: int, n: int) -> str:
    """"mean ± std", naming the replicates it covers when some of the group's ``n`` lack the metric."""
    if np.isnan(mean):
        return "—"
    text = f"{mean:.3f}" if np.isnan(std) else f"{mean:.3f} ± {std:.3f}"
    return text if count == n else f"{text} (n={count})"


def curves_figure(experiments: list[Experiment]):
    """Mean test balanced accuracy over the budget used, one line and ±1 std band per group."""
    figure, axis = new_axes(size=(7.0, 4.2))
    for label, curve in group_curves(experiments):
        n = int(curve["n"].min())
        line = axis.plot(curve["budget_used"], curve["mean"], marker="o", label=f"{label} (n={n})")[0]
        spread = curve["std"].fillna(0.0)
        axis.fill_between(curve["budget_used"], curve["mean"] - spread, curve["mean"] + spread,
                          color=line.get_color(), alpha=0.2)  # fmt: skip
    axis.set_xlabel("expert answers used (round 0: phase 1)")
    axis.set_ylabel("test balanced accuracy")
    axis.set_title("Learning curves, mean ± 1 std over seeds")
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small")
    return figure

