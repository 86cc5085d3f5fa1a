"""bench/records.py: records appended one per line, each naming the machine that measured it."""

from __future__ import annotations

import json
import os

from bench.records import append_record, machine, read_records, threads


def test_records_round_trip_and_name_this_machine_unless_they_name_one(tmp_path):
    raw = tmp_path / "raw.jsonl"
    assert read_records(raw) == []
    append_record(raw, {"seed": 0, "value": 0.5})
    append_record(raw, {"seed": 1, "machine": "elsewhere"})
    first, second = read_records(raw)
    assert first == {"machine": machine(), "threads": threads(), "seed": 0, "value": 0.5}
    assert second["machine"] == "elsewhere"
    assert len(raw.read_text().splitlines()) == 2 and json.loads(raw.read_text().splitlines()[1])["seed"] == 1


def test_machine_names_the_cpu_model_cores_and_a_hash_of_its_flags(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: sse avx2\n\n"
                       "processor\t: 1\nmodel name\t: Test CPU 9000\nflags\t\t: avx2 sse\n")
    name = machine(cpuinfo)
    assert name.startswith(f"Test CPU 9000, {os.cpu_count()} cores, flags ") and ", torch " in name
    cpuinfo.write_text("model name\t: Test CPU 9000\nflags\t\t: sse avx2 avx512f\n")
    machine.cache_clear()
    assert machine(cpuinfo).split(", flags ")[1][:8] != name.split(", flags ")[1][:8]  # another instruction set


def test_threads_is_torchs_thread_count_once_torch_is_loaded(monkeypatch):
    import sys

    import torch

    assert threads() == torch.get_num_threads()
    monkeypatch.delitem(sys.modules, "torch")
    assert threads() is None


def test_a_full_file_continues_in_numbered_parts_read_back_in_order(tmp_path, monkeypatch):
    from bench import records

    monkeypatch.setattr(records, "PART_BYTES", 200)
    raw = tmp_path / "raw.jsonl"
    (tmp_path / "raw.old.jsonl").write_text('{"seed": -1}\n')  # not a numbered part: never read
    for seed in range(12):
        append_record(raw, {"seed": seed, "machine": "m", "threads": 1, "note": "x" * 20})
    line = len(json.dumps({"machine": "m", "threads": 1, "seed": 10, "note": "x" * 20})) + 1
    parts = records.record_files(raw)
    assert [p.name for p in parts] == ["raw.1.jsonl", "raw.2.jsonl", "raw.3.jsonl", "raw.jsonl"]
    # a part is renamed once it reaches PART_BYTES, so it holds less than that plus one record
    assert all(200 <= p.stat().st_size < 200 + line for p in parts[:-1])
    assert [r["seed"] for r in read_records(raw)] == list(range(12))
