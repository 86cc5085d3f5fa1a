"""bench/ssl_methods.py: one tiny pretraining measured end to end, and the paired table on
hand-made records."""

from __future__ import annotations

import contextlib

import pytest
from builders import write_params

from bench import ssl_methods


def record(config: str, seed: int, probe: float, auroc: float) -> dict:
    return {"dataset": "d", "config": config, "pretrain_seed": seed, "epochs": 50, "batch_size": 256,
            "probe_balanced_accuracy": probe,
            "label_issue_auroc": auroc, "seconds": 10.0}  # fmt: skip


def test_the_table_pairs_each_configuration_with_the_default_per_pretraining_seed():
    records = [record("simclr:64", s, p, 0.8) for s, p in enumerate([0.5, 0.6, 0.7])]
    records += [record("vicreg:512", s, p, 0.9) for s, p in enumerate([0.6, 0.8, 0.9])]
    records += [record("vicreg:64", 0, 0.9, 0.9)]  # one seed: no interval
    rows = {line.split(" | ")[3]: line.split(" | ") for line in ssl_methods.tables(records).splitlines()
            if line.startswith("| d ")}  # fmt: skip
    # probe differences 0.1, 0.2, 0.2: mean 0.167, sd 0.0577, t(0.975, 2) = 4.3027 → ±0.143
    assert rows["vicreg:512"][4:9] == ["3", "0.767", "+0.167 [+0.023, +0.310]", "0.900", "+0.100 [+0.100, +0.100]"]
    assert rows["simclr:64"][6] == "—" and rows["vicreg:64"][6] == "—"
    assert list(rows) == ["simclr:64", "vicreg:64", "vicreg:512"]  # in CONFIGS order


def test_a_tiny_pretraining_is_measured(tmp_path):
    write_params(tmp_path)
    with contextlib.chdir(tmp_path):
        first = ssl_methods.run("tiny", {"source": "digits", "image_size": 8}, "vicreg:16", 0, 1, 64)
        again = ssl_methods.run("tiny", {"source": "digits", "image_size": 8}, "vicreg:16", 0, 1, 64)
    assert first | {"seconds": None} == again | {"seconds": None}  # deterministic for a pretraining seed
    assert 0.0 <= first["probe_balanced_accuracy"] <= 1.0 and 0.0 <= first["label_issue_auroc"] <= 1.0
    # digits at 8 px still carry their class: a linear probe beats the chance level of 10 classes
    assert first["probe_balanced_accuracy"] > 0.3
    assert first["loss_first_epoch"] == pytest.approx(first["loss_last_epoch"])  # one epoch
    assert first["batch_size"] == 64 and first["config"] == "vicreg:16"
