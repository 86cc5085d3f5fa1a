"""Re-aggregate the phase-1 tables written before the per-class selection rules of issue 10
(bench/phase1_evidence.md, bench/vog_ablation.md, bench/vog_ablation_retina.md) from their
``.jsonl`` records, with the sample std (n − 1) that every newer table uses; the script that
wrote them aggregated with the population std (n), and today's ``bench.phase1_evidence
--table-only`` cannot read their records (they predate its ``data`` field).

    python -m bench.legacy_tables bench/phase1_evidence.md bench/vog_ablation.md bench/vog_ablation_retina.md

Each table is read from ``<name>.jsonl`` beside it; the lines above the table (the run's
command) are kept, with a line saying how the ± column was computed. ``--ddof 0`` reproduces
the tables as first written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from bench.records import read_records

COLUMNS = ["precision", "recall", "worst_class_recall", "test_balanced_accuracy", "test_macro_f1"]
PER_CLASS = "per-class recall of C (class 0 … K−1, mean)"
NOTE = ("± is the sample std (n − 1) over the n seeds, re-aggregated from the `.jsonl` by "
        "`python -m bench.legacy_tables`; the table as first written showed the population std (n).")


def summarise(records: list[dict], ddof: int = 1) -> pd.DataFrame:
    """The table of the old ``bench.phase1_evidence``: mean ± std per dataset, noise and method."""
    table = pd.DataFrame(records)
    grouped = table.groupby(["dataset", "noise", "method"], sort=False)
    mean, std = grouped[COLUMNS].mean(), grouped[COLUMNS].std(ddof=ddof)

    def cell(m, s):
        return "—" if pd.isna(m) else f"{m:.3f} ± {s:.3f}"

    out = pd.DataFrame({c: [cell(m, s) for m, s in zip(mean[c], std[c])] for c in COLUMNS}, index=mean.index)
    out["n"] = grouped.size()

    def per_class(series):
        values = np.array([[np.nan if v is None else v for v in row] for row in series], dtype=float)
        if np.isnan(values).all():  # ce: no C
            return "—"
        return " ".join(f"{v:.2f}" for v in np.nanmean(values, axis=0))

    out[PER_CLASS] = grouped["recall_per_class"].agg(per_class)
    return out.reset_index()


def rewrite(path: Path, ddof: int = 1) -> None:
    """``path``'s table re-aggregated from ``path.with_suffix('.jsonl')``, its lines above kept."""
    lines = path.read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("|"))
    head = [line for line in lines[:first] if line and line != NOTE]
    if ddof == 1:
        head.append(NOTE)
    table = summarise(read_records(path.with_suffix(".jsonl")), ddof)
    path.write_text("\n".join(head) + "\n\n" + table.to_markdown(index=False) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tables", nargs="+", type=Path)
    parser.add_argument("--ddof", type=int, default=1, choices=[0, 1])
    args = parser.parse_args()
    for path in args.tables:
        rewrite(path, args.ddof)


if __name__ == "__main__":
    main()
