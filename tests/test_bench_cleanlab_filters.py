"""bench/cleanlab_filters.py: the paired table on hand-made records, and a tiny sweep end to end."""

from __future__ import annotations

import contextlib

from builders import write_params

from bench import cleanlab_filters


def record(filter_by: str, seed: int, precision: float, worst: float) -> dict:
    return {"dataset": "d", "rate": 0.4, "seed": seed, "filter": filter_by, "precision": precision,
            "worst_class_recall": worst, "kept_share": 0.5}  # fmt: skip


def test_the_table_pairs_each_filter_with_the_pipelines_per_noise_seed():
    records = []
    for filter_by, precisions, worsts in (("both", [0.9, 0.9, 0.7], [0.6, 0.7, 0.9]),
                                          ("prune_by_noise_rate", [0.8, 0.8, 0.8], [0.5, 0.5, 0.6])):  # fmt: skip
        records += [record(filter_by, s, p, w) for s, (p, w) in enumerate(zip(precisions, worsts))]
    rows = {line.split(" | ")[2]: line.split(" | ") for line in cleanlab_filters.tables(records).splitlines()
            if line.startswith("| d ")}  # fmt: skip
    # worst-recall differences 0.1, 0.2, 0.3: mean 0.2, sd 0.1, t(0.975, 2) = 4.3027 → ±0.248
    assert rows["both"][3:7] == ["0.833", "+0.033 [-0.254, +0.320]", "0.733", "+0.200 [-0.048, +0.448]"]
    assert rows["prune_by_noise_rate"][4] == "—" and rows["prune_by_noise_rate"][6] == "—"
    assert list(rows) == ["prune_by_noise_rate", "both"]  # FILTERS order, only the filters measured


def test_a_tiny_sweep_measures_every_filter(tmp_path):
    write_params(tmp_path)
    with contextlib.chdir(tmp_path):
        records = cleanlab_filters.clean_guesses("tiny", {"source": "digits", "image_size": 8}, [0.0, 0.4], [0],
                                                 tmp_path / "cache", pretrain_epochs=1)  # fmt: skip
    by = {(r["rate"], r["filter"]): r for r in records}
    assert sorted(by) == sorted((rate, f) for rate in (0.0, 0.4) for f in cleanlab_filters.FILTERS)
    for f in cleanlab_filters.FILTERS:
        assert by[0.0, f]["precision"] == 1.0  # no wrong label to keep at noise 0
        assert 0.0 < by[0.4, f]["precision"] < 1.0 and 0.0 <= by[0.4, f]["worst_class_recall"] <= 1.0
    # "both" flags a subset of what the pipeline's filter flags, so it keeps at least as much
    assert by[0.4, "both"]["kept_share"] >= by[0.4, "prune_by_noise_rate"]["kept_share"]
