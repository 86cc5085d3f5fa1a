"""bench/phase1_evidence.py's context table: the rarest class's labels per dataset × noise,
checked against a direct count on the same noisy labels."""

from __future__ import annotations

import numpy as np
import pytest
from builders import write_params

from bench.phase1_evidence import parse_dataset, prepare_run, rarest_class_noise


@pytest.fixture(autouse=True)
def default_params_file(tmp_path, monkeypatch):
    """prepare_run starts from ./params.yaml: run beside the default params, not in the
    checkout, whose params.yaml is the user's."""
    write_params(tmp_path)
    monkeypatch.chdir(tmp_path)


def test_dataset_options_are_read_as_dvc_reads_values():
    """YAML 1.2, as `dvc exp run -S` reads a value: 1e-3 a number, off text, [a, b] a list."""
    assert parse_dataset("x=csv:m.csv;val_fraction=1e-1;class_names=[a, off]") == (
        "x", {"source": "csv", "path": "m.csv", "val_fraction": 0.1, "class_names": ["a", "off"]})


def test_rarest_class_noise_counts_the_rarest_class_labels():
    name, data = parse_dataset("tiny=digits;image_size=8")
    records = [{"dataset": name, "noise": 0.4, "seed": seed, "data": data} for seed in (0, 1)]
    (row,) = rarest_class_noise(records).to_dict("records")
    counted = []
    for seed in (0, 1):
        _, _, labels = prepare_run(data, 0.4, seed, {})
        true, observed = labels["true_label"].to_numpy(), labels["observed_label"].to_numpy()
        rarest = np.bincount(true).argmin()
        carried = observed == rarest
        counted.append((np.sum(true == rarest), carried.sum(), np.mean(true[carried] != rarest)))
    true_n, labelled_n, share = np.mean(counted, axis=0)
    assert row["rarest class: train samples"] == f"{true_n:.0f}"
    assert row["samples labelled with it"] == f"{labelled_n:.0f}"
    assert row["noisy share of those"] == f"{share:.2f}"
    assert labelled_n > true_n and share > 0.5  # digits at ratio 10: the rare label is mostly flipped in


def test_noise_free_runs_have_no_noisy_share():
    name, data = parse_dataset("tiny=digits;image_size=8")
    (row,) = rarest_class_noise([{"dataset": name, "noise": 0.0, "seed": 0, "data": data}]).to_dict("records")
    assert row["noisy share of those"] == "0.00"
    assert row["rarest class: train samples"] == row["samples labelled with it"]


def test_sweep_writes_one_record_per_run_and_resumes(tmp_path, monkeypatch):
    import json
    import sys

    from bench import phase1_evidence

    raw, out = tmp_path / "runs.jsonl", tmp_path / "table.md"
    argv = ["phase1_evidence", "--dataset", "tiny=digits;image_size=8", "--rates", "0.4", "--seeds", "0",
            "--epochs", "2", "--variants", "ce", "coteaching + class_gmm", "--raw", str(raw), "--out", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    phase1_evidence.main()
    records = [json.loads(line) for line in raw.read_text().splitlines()]
    assert [r["method"] for r in records] == ["ce", "coteaching + class_gmm"]
    ce, gmm = records
    assert ce["precision"] is None and ce["worst_class_recall"] is None  # CE keeps no C
    assert 0.0 <= gmm["worst_class_recall"] <= gmm["recall"] <= 1.0
    assert all(r["best_epoch"] in (0, 1) and r["epochs"] == 2 for r in records)
    assert "| tiny " in out.read_text() and "coteaching + class_gmm" in out.read_text()
    phase1_evidence.main()  # a second call finds every run done and trains nothing
    assert raw.read_text().count("\n") == 2
