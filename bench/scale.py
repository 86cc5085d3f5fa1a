"""Phase-1 epoch time and peak memory against the number of training images N, ours
(:func:`alr_core.lnl.phase1.train_phase1`) against the authors'-style code (bench/authors_style.py).

    python -m bench.scale                          # N = 10,000, 30,000, 100,000
    python -m bench.scale --sizes 1000 2000 5000   # a quick look

Data, made once per N and shared by both implementations: the procedural ``synthetic`` source
(alr_core/data/synthetic.py), 28×28 grayscale, 10 classes, long-tailed train split (imbalance 10),
15 val and 30 test images per class, symmetric label noise at rate 0.4 (alr_core.data.noise).
Method ``coteaching_vog`` with lnl.epochs = 3, num_gradual = 1, vog_window = 2, other
parameters at their defaults (batch 64, small CNN): the timed epoch is the last one, the first
in which VOG takes part in the selection; both implementations also take that epoch's gradient
snapshot. Each (implementation, N) runs in a process of its own, so its peak memory is its own;
the peak counter is reset after the data are loaded, so it covers the training run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.records import machine

REPO = Path(__file__).resolve().parents[1]
SIZES = (10_000, 30_000, 100_000)
NUM_CLASSES = 10
IMAGE_SIZE = 28
NOISE_RATE = 0.4
EPOCHS = 3
LNL = {"method": "coteaching_vog", "selection": "global", "num_gradual": 1, "vog_window": 2}  # the paper's cut
IMPLEMENTATIONS = ("ours", "authors_style")
TARGET = 3.0  # issue 6: ours at least this many times faster per epoch


def make_data(num_train: int, path: Path) -> float:
    """Render the benchmark data for ``num_train`` train images into ``path`` (.npz); seconds taken."""
    from alr_core.data.noise import inject_noise
    from alr_core.data.synthetic import synthetic_images, synthetic_layout

    start = time.perf_counter()
    labels, splits = synthetic_layout(num_train, NUM_CLASSES, 10.0, 15, 30)
    images = synthetic_images(labels, NUM_CLASSES, IMAGE_SIZE, 1, np.random.default_rng(0))
    train = splits == "train"
    observed = labels.copy()
    observed[train] = inject_noise(labels[train], NUM_CLASSES, "symmetric", NOISE_RATE, [], np.random.default_rng(1))
    np.savez(path, images=images, truth=labels, observed=observed, splits=splits.astype(str))
    return time.perf_counter() - start


def load_data(path: Path):
    """The .npz of :func:`make_data` as ``PipelineData`` (observed labels on train, clean elsewhere)."""
    from alr_core.data.datasets import PipelineData, SplitData

    arrays = np.load(path)
    splits = arrays["splits"]

    def split(name):
        rows = np.flatnonzero(splits == name)
        labels = arrays["observed"] if name == "train" else arrays["truth"]
        return SplitData(np.array([f"{name}/{i}" for i in rows]), arrays["images"][rows], labels[rows],
                         arrays["truth"][rows])  # fmt: skip

    return PipelineData(split("train"), split("val"), split("test"), [str(k) for k in range(NUM_CLASSES)])


def proc_status_bytes(key: str) -> int:
    """A memory line of /proc/self/status (VmRSS: resident now, VmHWM: peak resident), in bytes."""
    return int(Path("/proc/self/status").read_text().split(f"{key}:")[1].split()[0]) * 1024


def child(implementation: str, data_path: Path, epochs: int, workers: int, vog_source: str, result_path: Path) -> None:
    """One configuration, in its own process: train, then write its timings and memory as JSON."""
    import torch

    from alr_core.common.params import parse_params
    from alr_core.lnl.phase1 import train_phase1
    from alr_core.nn.training import pick_device
    from bench.authors_style import PARTS, train_authors_style

    data = load_data(data_path)
    params = parse_params({"noise": {"type": "symmetric", "rate": NOISE_RATE}, "model": {"arch": "small_cnn"},
                           "lnl": LNL | {"epochs": epochs, "vog_source": vog_source}})  # fmt: skip
    device = pick_device(params.train.device)
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux)
    rss_start = proc_status_bytes("VmRSS")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    if implementation == "ours":
        result = train_phase1(data, params, progress=False)
        epoch_seconds, parts = result.timing["epoch_seconds"], result.timing["seconds"]
    else:
        with tempfile.TemporaryDirectory(prefix="alr-bench-grads-") as gradient_dir:
            table = train_authors_style(data, params, Path(gradient_dir), workers)
        epoch_seconds, parts = [float(s) for s in table["seconds"]], {part: float(table[part].sum()) for part in PARTS}
    record = {
        "implementation": implementation,
        "n": len(data.train.labels),
        "epoch_seconds": epoch_seconds[-1],
        "all_epoch_seconds": epoch_seconds,
        "run_seconds": time.perf_counter() - start,
        "parts": parts,
        "rss_start": rss_start,
        "rss_peak": proc_status_bytes("VmHWM"),
        "cuda_peak": torch.cuda.max_memory_allocated() if device.type == "cuda" else None,
        "device": device.type,
        "threads": torch.get_num_threads(),
        "workers": workers if implementation == "authors_style" else None,
        "vog_source": vog_source if implementation == "ours" else None,
    }
    result_path.write_text(json.dumps(record))


def measure(sizes, epochs: int = EPOCHS, workers: int = 0, vog_source: str = "eval", log=print) -> list[dict]:
    """Every (N, implementation) in a subprocess; one record per run, with ``data_seconds``.
    ``vog_source`` is ours' ``lnl.vog_source`` (the authors' style always runs its gradient pass)."""
    records = []
    with tempfile.TemporaryDirectory(prefix="alr-bench-scale-") as tmp:
        for n in sizes:
            data_path = Path(tmp) / f"data_{n}.npz"
            data_seconds = make_data(n, data_path)
            for implementation in IMPLEMENTATIONS:
                log(f"scale: N = {n}, {implementation} ...")
                result_path = Path(tmp) / f"{implementation}_{n}.json"
                subprocess.run([sys.executable, "-m", "bench.scale", "--child", implementation, "--data",
                                str(data_path), "--epochs", str(epochs), "--workers", str(workers),
                                "--vog-source", vog_source, "--result", str(result_path)],
                               check=True, cwd=REPO)  # fmt: skip
                record = json.loads(result_path.read_text()) | {"data_seconds": data_seconds}
                log(f"  last epoch {record['epoch_seconds']:.1f} s, peak RSS {record['rss_peak'] / 2**20:.0f} MiB")
                records.append(record)
            data_path.unlink()
    return records


def hardware() -> str:
    """The machine (bench.records.machine), memory, GPU if any, Python and torch threads: one line."""
    import torch

    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (f"{machine()}, {memory:.0f} GiB memory, GPU: {gpu}; Python {platform.python_version()} "
            f"({torch.get_num_threads()} intra-op threads)")  # fmt: skip


def markdown(records: list[dict], epochs: int = EPOCHS) -> list[str]:
    """Tables: per run (time, throughput, growth against the smallest N, memory); speed-up per N;
    seconds by part over the whole run."""
    by = {(r["implementation"], r["n"]): r for r in records}
    sizes = sorted({r["n"] for r in records})
    base = sizes[0]
    cuda = any(r["cuda_peak"] is not None for r in records)
    workers = next(r["workers"] for r in records if r["implementation"] == "authors_style")
    vog_source = next(r["vog_source"] for r in records if r["implementation"] == "ours")
    lines = [
        f"Data: synthetic 28×28 grayscale, {NUM_CLASSES} classes (long-tailed, imbalance 10), symmetric noise "
        f"{NOISE_RATE}; `coteaching_vog`, batch 64, small CNN, {epochs} epochs with num_gradual = "
        f"{LNL['num_gradual']}, vog_window = {LNL['vog_window']}; ours with lnl.vog_source = {vog_source}. "
        "Timed: the last epoch (VOG used in the "
        "selection, a gradient snapshot taken, validation), wall clock; data generation excluded. "
        f"Device: {records[0]['device']}, {records[0]['threads']} torch threads in each run; the authors'-style "
        f"`DataLoader` runs with num_workers = {workers} (same cores as ours). Peak RSS: the run's own process, "
        "counter reset after loading the data; 'growth' = peak − RSS before training (data already loaded), "
        f"a constant (autograd and oneDNN buffers) plus a part linear in N, whose slope is the last column (MiB per "
        f"1,000 images above N = {base:,}; equal slopes mean linear growth). Ours' run also includes its final "
        "clean-guess pass and test evaluation (after the timed epoch).",
        "",
        "| implementation | N | epoch s | images/s | epoch time ÷ N=" + f"{base:,}" + " | N ÷ " + f"{base:,}"
        + " | peak RSS MiB | growth MiB | growth slope MiB/1k" + (" | CUDA peak MiB |" if cuda else " |"),
        "|---|---|---|---|---|---|---|---|---|" + ("---|" if cuda else ""),
    ]
    for implementation in IMPLEMENTATIONS:
        first = by[(implementation, base)]
        for n in sizes:
            r = by[(implementation, n)]
            growth, first_growth = r["rss_peak"] - r["rss_start"], first["rss_peak"] - first["rss_start"]
            slope = f"{(growth - first_growth) / 2**20 / (n - base) * 1000:.2f}" if n > base else "—"
            row = (f"| {implementation} | {n:,} | {r['epoch_seconds']:.2f} | {n / r['epoch_seconds']:.0f} | "
                   f"{r['epoch_seconds'] / first['epoch_seconds']:.2f} | {n / base:.1f} | "
                   f"{r['rss_peak'] / 2**20:.0f} | {growth / 2**20:.0f} | {slope} |")  # fmt: skip
            lines.append(row + (f" {r['cuda_peak'] / 2**20:.0f} |" if cuda else ""))
    lines += ["", "| N | ours, epoch s | authors' style, epoch s | speed-up (authors' ÷ ours) |", "|---|---|---|---|"]
    for n in sizes:
        ours, theirs = by[("ours", n)], by[("authors_style", n)]
        lines.append(f"| {n:,} | {ours['epoch_seconds']:.2f} | {theirs['epoch_seconds']:.2f} | "
                     f"{theirs['epoch_seconds'] / ours['epoch_seconds']:.2f}× |")  # fmt: skip
    met = [n for n in sizes if by[("authors_style", n)]["epoch_seconds"] >= TARGET * by[("ours", n)]["epoch_seconds"]]
    lines += ["", f"Issue 6's target, a speed-up of at least {TARGET:.0f}× for `coteaching_vog`: met at "
              + (", ".join(f"N = {n:,}" for n in met) if met else "no N") + "."]
    largest = sizes[-1]
    ours, theirs = by[("ours", largest)], by[("authors_style", largest)]
    lines += [
        "",
        f"Where the time goes, N = {largest:,}, whole run ({epochs} epochs), seconds: "
        + "ours: " + ", ".join(f"{k} {v:.1f}" for k, v in ours["parts"].items())
        + "; authors' style: " + ", ".join(f"{k} {v:.1f}" for k, v in theirs["parts"].items())
        + f". Every epoch, s: ours {', '.join(f'{s:.1f}' for s in ours['all_epoch_seconds'])}; authors' style "
        + ", ".join(f"{s:.1f}" for s in theirs["all_epoch_seconds"])
        + ". Data generation (excluded), s: "
        + ", ".join(f"N = {n:,}: {by[('ours', n)]['data_seconds']:.1f}" for n in sizes) + ".",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers of the authors'-style run")
    parser.add_argument("--vog-source", choices=("eval", "train"), default="eval",
                        help="ours' lnl.vog_source: eval (the default, a snapshot pass) or train (no extra pass)")
    parser.add_argument("--child", choices=IMPLEMENTATIONS, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.data, args.epochs, args.workers, args.vog_source, args.result)
        return
    records = measure(args.sizes, args.epochs, args.workers, args.vog_source)
    print("\n".join([f"Machine: {hardware()}", ""] + markdown(records, args.epochs)))


if __name__ == "__main__":
    main()
