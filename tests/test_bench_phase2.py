"""bench/phase2_evidence.py runs the round stages in-process: a tiny sweep goes through, a
per-round override changes only its round, and a rerun resumes instead of repeating."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import pytest
from builders import write_params

from bench import phase2_evidence

TINY = ("lnl.method=coteaching,lnl.selection=class_gmm,lnl.epochs=2,lnl.num_gradual=1,al.epochs=1,"
        "al.strategy=label_disagreement,al.pool=all")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Three configurations on 8-px digits, 2 rounds, 1 seed; returns (raw records, table, argv)."""
    folder = tmp_path_factory.mktemp("phase2")
    write_params(folder)
    argv = ["phase2_evidence", "--dataset", "tiny=digits;image_size=8", "--budgets", "0.05", "--seeds", "0",
            "--rounds", "2", "--raw", str(folder / "raw.jsonl"), "--out", str(folder / "table.md"),
            "--cache", str(folder / "cache"), "--config", f"finetune={TINY}",
            "--config", f"scratch last={TINY},rounds.2.retrain=scratch,rounds.2.epochs=2,rounds.2.lr=0.05",
            "--variants", "ce + random", "finetune", "scratch last"]  # fmt: skip
    run(argv, folder)
    records = [json.loads(line) for line in (folder / "raw.jsonl").read_text().splitlines()]
    return records, (folder / "table.md").read_text(), argv


def run(argv: list[str], folder: Path) -> None:
    """phase2_evidence.main() on ``argv`` in ``folder``: the bench starts from ./params.yaml,
    which must be the default params there, not the checkout's (the user's)."""
    saved, sys.argv = sys.argv, argv
    try:
        with contextlib.chdir(folder):
            phase2_evidence.main()
    finally:
        sys.argv = saved


def test_every_configuration_runs_every_round(sweep):
    records, table, _ = sweep
    assert [r["config"] for r in records] == ["ce + random", "finetune", "scratch last"]
    for record in records:
        assert len(record["curve"]) == 2 and record["curve"][-1] == record["test_balanced_accuracy"]
        # a round that kept its starting model scores what that model scored
        before = [record["phase1_test_balanced_accuracy"], *record["curve"][:-1]]
        assert len(record["kept_previous"]) == 2
        for kept, start, end in zip(record["kept_previous"], before, record["curve"]):
            assert isinstance(kept, bool) and (not kept or end == start)
        assert 0.0 <= record["test_balanced_accuracy"] <= 1.0
        assert record["label_accuracy"] >= record["label_accuracy_before"]  # a perfect oracle only fixes
        assert record["budget_samples"] >= 2  # at least one query per round
        assert record["queries"] == record["budget_samples"]  # one annotator: a query per budget unit
        # no query rule beats picking only wrong labels, and picking only wrong labels is no worse than random
        assert record["cleaning_efficiency"] <= record["cleaning_efficiency_ceiling"]
        assert record["cleaning_efficiency_ceiling"] >= 1.0
        # the fixes' diagnostics: parts of the fixes; the wrong labels in C ∪ labelled only fall, by the
        # fixes made inside it
        assert 0 <= record["fixed_already_predicted"] <= record["fixed_by_queries"]
        assert 0 <= record["fixed_in_trusted"] <= record["fixed_by_queries"]
        assert record["wrong_in_trusted_before"] - record["wrong_in_trusted"] == record["fixed_in_trusted"]
    assert "| tiny" in table and "scratch last" in table


def test_a_round_override_changes_that_round_only(sweep):
    records, _, _ = sweep
    finetune, scratch = records[1], records[2]
    assert finetune["phase1_test_balanced_accuracy"] == scratch["phase1_test_balanced_accuracy"]  # one phase 1
    assert finetune["curve"][0] == scratch["curve"][0]  # round 1: the same training
    assert finetune["fixed_by_queries"] == scratch["fixed_by_queries"]  # round 2 queries before it retrains
    assert finetune["trained_val_macro_f1"][0] == scratch["trained_val_macro_f1"][0]
    # round 2: a fresh network instead of the round-1 one (which either round may hand on instead:
    # with one thread, neither trained model beats it on validation)
    assert finetune["trained_val_macro_f1"][1] != scratch["trained_val_macro_f1"][1]


def test_a_rerun_skips_what_the_raw_file_holds(sweep):
    records, _, argv = sweep
    raw = argv[argv.index("--raw") + 1]
    run(argv, Path(raw).parent)
    with open(raw) as handle:
        assert len(handle.read().splitlines()) == len(records)


def test_an_override_of_a_round_the_run_lacks_is_refused():
    with pytest.raises(SystemExit, match=r"overrides rounds \['3'\], but the run has rounds \['1', '2'\]"):
        phase2_evidence.with_overrides({"1": {"prev": "a"}, "2": {"prev": "b"}}, {"3": {"retrain": "scratch"}})


def test_records_of_the_two_round_rules_are_never_mixed(sweep, tmp_path):
    """A record without ``kept_previous`` ran before the previous model could compete: a sweep
    refuses to extend such a file, and a file holding both rules has no table."""
    records, table, argv = sweep
    assert all("kept_previous" in record for record in records)
    assert f"round rule: {phase2_evidence.NEW_RULE}" in table.splitlines()[0]
    old = [{key: value for key, value in record.items() if key != "kept_previous"} for record in records]
    raw = tmp_path / "old.jsonl"
    raw.write_text("".join(json.dumps(record) + "\n" for record in old))
    out = tmp_path / "old.md"
    at = argv.index("--raw")
    extend = argv[:at] + ["--raw", str(raw), "--out", str(out)] + argv[at + 4:]
    with pytest.raises(SystemExit, match="holds records of the old round rule"):
        run(extend, tmp_path)
    run(extend + ["--table-only"], tmp_path)
    assert f"round rule: {phase2_evidence.OLD_RULE}" in out.read_text().splitlines()[0]
    raw.write_text(raw.read_text() + json.dumps(records[0]) + "\n")
    with pytest.raises(SystemExit, match="mixes the two round rules"):
        run(extend + ["--table-only"], tmp_path)
