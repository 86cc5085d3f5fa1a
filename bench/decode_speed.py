"""How fast `prepare` decodes an image folder, on one thread and on every core.

    OMP_NUM_THREADS= python -m bench.decode_speed --images 2000 --size 512 --image-size 28
    python -m bench.decode_speed --npz --images 18000 --size 128 --image-size 64

Writes ``--images`` RGB JPEGs of ``--size`` px (smooth gradients plus noise, so that the files
are photo-like in size) to a temporary folder, then times ``alr_core.data.images.decode_files``
(decode, EXIF turn, resize to ``--image-size``, gray check) with ``OMP_NUM_THREADS`` 1 and with
every CPU this process may use, ``--repeats`` times each, alternating, and checks that both give
the same array. Prints a markdown table (median seconds and images/s), then the peak memory of
``alr_core.data.prepare.prepare`` on the folder (``data.channels: null``) in a fresh process,
beside the prepared array's size and a process that only imports it.

With ``--npz``: the peak memory of ``prepare`` on a MedMNIST-format ``.npz`` (compressed, as
MedMNIST ships it) of ``--images`` RGB images of ``--size`` px split 70/10/20, at
``--image-size`` and at the native size, instead.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from alr_core.data.images import decode_files


def write_jpegs(root: Path, count: int, size: int) -> list[Path]:
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 160, size)
    paths = []
    for i in range(count):
        pixels = ramp[None, :, None] + ramp[::-1, None, None] * rng.random(3) + rng.normal(0, 12, (size, size, 3))
        path = root / f"class_{i % 5}" / f"img_{i:06d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def write_npz(path: Path, count: int, size: int) -> None:
    rng = np.random.default_rng(0)
    sizes = {"train": count * 7 // 10, "val": count // 10}
    sizes["test"] = count - sizes["train"] - sizes["val"]
    arrays = {}
    for split, n in sizes.items():
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 5, (n, 1))
    np.savez_compressed(path, **arrays)


def prepare_memory(root: Path, image_size: int | None, source: str = "imagefolder") -> tuple[float, float, float]:
    """(prepared array MB, peak resident MB of ``prepare`` on ``root`` (an image folder, or
    the file of another ``source``) in a fresh process, the same for a process that only
    imports it)."""
    imports = "import re, numpy as np; from alr_core.data.prepare import prepare; import alr_core.common.params as p"
    # the high-water mark of this process's own memory: ru_maxrss would keep the forking parent's
    peak = "int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())[1]) / 1024"
    run = (f"images = prepare(p.DataParams(source={source!r}, path={str(root)!r}, image_size={image_size}), "
           "np.random.default_rng(0)).images")  # fmt: skip

    def measured(code: str) -> list[float]:
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        return [float(value) for value in result.stdout.split()]

    array_mb, prepare_mb = measured(f"{imports}; {run}; print(images.nbytes / 2**20, {peak})")
    return array_mb, prepare_mb, measured(f"{imports}; print({peak})")[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", type=int, default=512, help="side of each JPEG (px)")
    parser.add_argument("--image-size", type=int, default=28, help="data.image_size")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--npz", action="store_true", help="the memory of prepare on a MedMNIST .npz instead")
    args = parser.parse_args()
    if args.npz:
        with tempfile.TemporaryDirectory(prefix="alr-npz-") as tmp:
            path = Path(tmp) / "images.npz"
            write_npz(path, args.images, args.size)
            megabytes = path.stat().st_size / 1e6
            print(f"{args.images} RGB images of {args.size} px in a compressed .npz ({megabytes:.0f} MB)")
            for image_size in (args.image_size, None):
                array_mb, prepare_mb, imports_mb = prepare_memory(path, image_size, "medmnist")
                print(f"image_size {image_size}: {array_mb:.0f} MB array, peak {prepare_mb:.0f} MB, "
                      f"of which {imports_mb:.0f} MB the imports alone")
        return
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="alr-decode-") as tmp:
        paths = write_jpegs(Path(tmp), args.images, args.size)
        array_mb, prepare_mb, imports_mb = prepare_memory(Path(tmp), args.image_size)
        megabytes = sum(p.stat().st_size for p in paths) / 1e6
        seconds: dict[int, list[float]] = {1: [], cores: []}
        arrays = {}
        for _ in range(args.repeats):
            for threads in seconds:
                os.environ["OMP_NUM_THREADS"] = str(threads)
                start = time.perf_counter()
                arrays[threads] = decode_files(paths, args.image_size, None)
                seconds[threads].append(time.perf_counter() - start)
    assert np.array_equal(arrays[1], arrays[cores]), "threads changed the decoded images"
    print(f"{args.images} JPEGs of {args.size} px ({megabytes:.0f} MB) → {args.image_size} px, "
          f"median of {args.repeats}, {cores} CPUs\n")
    print("| threads | seconds | images/s |\n|---|---|---|")
    for threads, times in seconds.items():
        median = statistics.median(times)
        print(f"| {threads} | {median:.2f} | {args.images / median:.0f} |")
    print(f"\nprepare: {array_mb:.0f} MB array, peak {prepare_mb:.0f} MB, "
          f"of which {imports_mb:.0f} MB the imports alone")


if __name__ == "__main__":
    main()
