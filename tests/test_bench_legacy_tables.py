"""bench/legacy_tables.py: the pre-issue-10 phase-1 tables rebuilt from their records."""

from __future__ import annotations

import shutil

import pytest
from builders import REPO_ROOT

from bench.legacy_tables import NOTE, rewrite, summarise

TABLES = ["phase1_evidence.md", "vog_ablation.md", "vog_ablation_retina.md"]


@pytest.mark.parametrize("name", TABLES)
def test_the_committed_tables_are_their_records_with_the_sample_std(tmp_path, name):
    committed = REPO_ROOT / "bench" / name
    table = tmp_path / name
    shutil.copy(committed, table)
    shutil.copy(committed.with_suffix(".jsonl"), table.with_suffix(".jsonl"))
    rewrite(table)
    assert table.read_text() == committed.read_text()
    rewrite(table, ddof=0)  # as first written: the note goes, and every spread shrinks
    first = table.read_text()
    assert NOTE not in first and NOTE in committed.read_text()
    assert first.splitlines()[:2] == committed.read_text().splitlines()[:2]


def test_the_sample_std_of_two_seeds_is_the_population_std_times_root_two(tmp_path):
    records = [{"dataset": "d", "noise": 0.4, "method": "ce", "precision": p, "recall": 1.0,
                "worst_class_recall": 1.0, "test_balanced_accuracy": 0.5, "test_macro_f1": 0.5,
                "recall_per_class": [None]} for p in (0.4, 0.6)]  # fmt: skip
    assert summarise(records).loc[0, "precision"] == "0.500 ± 0.141"
    assert summarise(records, ddof=0).loc[0, "precision"] == "0.500 ± 0.100"
