"""Where phase 1's time goes on a GPU, before changing anything (issue 26: measure first).

    python -m bench.gpu_profile --sizes 10000 30000 --out gpu_profile.md

For each N: the default phase 1 (Co-teaching, class_gmm, the guard) on the synthetic 28×28 data
of bench/scale.py, 3 epochs with the per-class rule active from epoch 1, timed per epoch while
``nvidia-smi`` samples the GPU's utilisation every 50 ms;
then a torch.profiler trace of one more epoch, counting host-device synchronisations and
listing the operators with the most CUDA and CPU time. For reference, the same network's
training step alone on data already on the device, at batch 64 and 1024: the ceiling of what
the loop could reach. Needs CUDA; writes a markdown report.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bench.scale import load_data, make_data

SAMPLE_SECONDS = 0.05


class UtilisationSampler:
    """GPU utilisation (%) every 50 ms from ``nvidia-smi -lms`` while the context is open."""

    def __enter__(self):
        self._process = subprocess.Popen(
            ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
             f"-lms={int(SAMPLE_SECONDS * 1000)}", "-i", "0"], stdout=subprocess.PIPE, text=True)  # fmt: skip
        return self

    def __exit__(self, *exc):
        self._process.terminate()
        output, _ = self._process.communicate()
        self.samples = [int(line) for line in output.split() if line.strip().isdigit()]

    @property
    def mean(self) -> float:
        return float(np.mean(self.samples)) if self.samples else float("nan")


def phase1_params(epochs: int):
    from alr_core.common.params import parse_params

    return parse_params({"noise": {"type": "symmetric", "rate": 0.4}, "model": {"arch": "small_cnn"},
                         # Co-teaching with a per-class rule: two networks and a whole-split pass per epoch
                         "lnl": {"method": "coteaching", "selection": "class_gmm", "epochs": epochs,
                                 "num_gradual": 1}})  # fmt: skip


def step_ceiling(batch_size: int, steps: int = 200) -> float:
    """images/s of forward + backward + SGD step of the small CNN on device-resident data."""
    from alr_core.nn.models import ModelSpec, build_model

    model = build_model(ModelSpec("small_cnn", 10, 1, 28, 0.3)).cuda()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch_size, 1, 28, 28, device="cuda").contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch_size,), device="cuda")

    def train(count: int) -> None:
        for _ in range(count):
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x)[1], y).backward()
            optimizer.step()
        torch.cuda.synchronize()

    train(20)  # warm-up: cuDNN autotuning, allocator
    start = time.perf_counter()
    train(steps)
    return steps * batch_size / (time.perf_counter() - start)


def profile_epoch(data, params) -> list[str]:
    """A torch.profiler trace of one short phase-1 run: syncs and the heaviest operators."""
    from torch.profiler import ProfilerActivity, profile

    from alr_core.lnl.phase1 import train_phase1

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as trace:
        train_phase1(data, params, progress=False)
    events = trace.key_averages()
    counts = {e.key: e.count for e in events}
    syncs = {k: v for k, v in counts.items() if any(s in k for s in ("Synchronize", "aten::item", "aten::_local_scalar_dense", "Memcpy DtoH", "cudaMemcpy"))}
    lines = ["Host-device synchronisation points (calls in the profiled run):", ""]
    lines += [f"- `{k}`: {v}" for k, v in sorted(syncs.items(), key=lambda kv: -kv[1])]
    lines += ["", "```", events.table(sort_by="self_cuda_time_total", row_limit=15), "```",
              "", "```", events.table(sort_by="self_cpu_time_total", row_limit=15), "```"]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 30000])
    parser.add_argument("--out", type=Path, default=Path("gpu_profile.md"))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench.gpu_profile needs CUDA")
    from alr_core.lnl.phase1 import train_phase1

    lines = [f"# Phase 1 on {torch.cuda.get_device_name(0)}: time and utilisation", "",
             f"torch {torch.__version__}; `python -m bench.gpu_profile --sizes {' '.join(map(str, args.sizes))}`", "",
             "| N | epoch seconds (each) | images/s (last epoch, per network pair) | mean GPU utilisation % (whole run) |",
             "|---|---|---|---|"]  # fmt: skip
    profiled = None
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            path = Path(tmp) / f"data_{n}.npz"
            make_data(n, path)
            data = load_data(path)
            params = phase1_params(3)
            with UtilisationSampler() as sampler:
                result = train_phase1(data, params, progress=False)
            seconds = result.timing["epoch_seconds"]
            lines.append(f"| {n:,} | {', '.join(f'{s:.2f}' for s in seconds)} | {n / seconds[-1]:,.0f} | {sampler.mean:.0f} |")
            print(lines[-1], flush=True)
            profiled = (data, n)
        lines += ["", "Training step alone (small CNN, 28×28, data on the device):", ""]
        for batch in (64, 1024):
            lines.append(f"- batch {batch}: {step_ceiling(batch):,.0f} images/s")
            print(lines[-1], flush=True)
        data, n = profiled
        lines += ["", f"## Profile of a 1-epoch run at N = {n:,}", ""]
        lines += profile_epoch(data, phase1_params(1))
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
