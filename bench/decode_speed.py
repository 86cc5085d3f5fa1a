"""How fast `prepare` decodes an image folder, on one thread and on every core.

    OMP_NUM_THREADS= python -m bench.decode_speed --images 2000 --size 512 --image-size 28

Writes ``--images`` RGB JPEGs of ``--size`` px (smooth gradients plus noise, so that the files
are photo-like in size) to a temporary folder, then times ``alr_core.data.images.decode_files``
(decode, EXIF turn, resize to ``--image-size``, gray check) with ``OMP_NUM_THREADS`` 1 and with
every CPU this process may use, and a full-size decode of each file (no JPEG draft, one thread)
then the same resize, ``--repeats`` times each, alternating; checks that both thread counts give
the same array. Prints a markdown table (median seconds and images/s) and how far the drafted
pixels lie from the full decode's; then the peak memory of ``alr_core.data.prepare.prepare`` on
the folder (``data.channels: null``) in a fresh process, beside the prepared array's size and a
process that only imports it.
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

from alr_core.data.images import _standardise, decode_files, read_viewable


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


def full_size_decode(paths: list[Path], image_size: int) -> np.ndarray:
    """What ``decode_files`` gives for RGB files when every JPEG is read at full size."""
    return np.stack([_standardise(read_viewable(path), image_size, 3) for path in paths])


def prepare_memory(root: Path, image_size: int) -> tuple[float, float, float]:
    """(prepared array MB, peak resident MB of ``prepare`` on ``root`` in a fresh process, the
    same for a process that only imports it)."""
    imports = ("import resource, numpy as np; from alr_core.data.prepare import prepare; "
               "import alr_core.common.params as p")
    peak = "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024"
    run = (f"images = prepare(p.DataParams(source='imagefolder', path={str(root)!r}, image_size={image_size}), "
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
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="alr-decode-") as tmp:
        paths = write_jpegs(Path(tmp), args.images, args.size)
        array_mb, prepare_mb, imports_mb = prepare_memory(Path(tmp), args.image_size)
        megabytes = sum(p.stat().st_size for p in paths) / 1e6
        seconds: dict[str, list[float]] = {"1": [], str(cores): [], "full": []}
        arrays = {}
        for _ in range(args.repeats):
            for threads in seconds:
                os.environ["OMP_NUM_THREADS"] = "1" if threads == "full" else threads
                start = time.perf_counter()
                arrays[threads] = (full_size_decode(paths, args.image_size) if threads == "full"
                                   else decode_files(paths, args.image_size, None))  # fmt: skip
                seconds[threads].append(time.perf_counter() - start)
    assert np.array_equal(arrays["1"], arrays[str(cores)]), "threads changed the decoded images"
    difference = np.abs(arrays["1"].astype(np.int16) - arrays["full"])
    print(f"{args.images} JPEGs of {args.size} px ({megabytes:.0f} MB) → {args.image_size} px, "
          f"median of {args.repeats}, {cores} CPUs\n")
    print("| decode | threads | seconds | images/s |\n|---|---|---|---|")
    for threads, times in seconds.items():
        median = statistics.median(times)
        how = "full size, then resize" if threads == "full" else "decode_files"
        print(f"| {how} | {1 if threads == 'full' else threads} | {median:.2f} | {args.images / median:.0f} |")
    print(f"\ndecode_files against the full-size decode: mean |difference| {difference.mean():.3f} grey levels, "
          f"largest {int(difference.max())}")
    print(f"\nprepare: {array_mb:.0f} MB array, peak {prepare_mb:.0f} MB, "
          f"of which {imports_mb:.0f} MB the imports alone")


if __name__ == "__main__":
    main()
