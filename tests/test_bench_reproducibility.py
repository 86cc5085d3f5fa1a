"""bench/reproducibility.py: the reference range covers every stored run, of every machine."""

from __future__ import annotations

import json

from builders import REPO_ROOT

from bench.reproducibility import HEADLINE, LEGACY_MACHINE, reference, stored_runs, table


def test_the_committed_reference_is_the_range_over_every_stored_run_by_machine():
    runs = stored_runs()
    machines = list(dict.fromkeys(run["machine"] for run in runs))
    assert len(machines) >= 2 and all(run["commit"] for run in runs)
    stored = json.loads((REPO_ROOT / "bench" / "reference_run.json").read_text())
    for key in HEADLINE:
        values = [run["metrics"][key] for run in runs]
        assert stored["ranges"][key] == [min(values), max(values)] == reference(runs)[key]
    text = table(runs)
    assert all(text.count(f"\n{name}:\n") == 1 for name in machines)
    assert (REPO_ROOT / "bench" / "reproducibility.md").read_text() == text


def test_runs_stored_before_they_named_a_machine_get_the_legacy_one(tmp_path, monkeypatch):
    import bench.reproducibility as module

    old = tmp_path / "reference_run.json"
    old.write_text(json.dumps({"commit": "6dd4508", "ranges": {}, "runs": [{"label": "x", "metrics": {}}]}))
    monkeypatch.setattr(module, "REFERENCE", old)
    assert module.stored_runs() == [{"machine": LEGACY_MACHINE, "commit": "6dd4508", "label": "x", "metrics": {}}]
    monkeypatch.setattr(module, "REFERENCE", tmp_path / "absent.json")
    assert module.stored_runs() == []
