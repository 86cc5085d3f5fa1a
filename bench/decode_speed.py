"""How fast `prepare` decodes an image folder, on one thread and on every core.

    OMP_NUM_THREADS= python -m bench.decode_speed --images 2000 --size 512 --image-size 28

Writes ``--images`` RGB JPEGs of ``--size`` px (smooth gradients plus noise, so that the files
are photo-like in size) to a temporary folder, then times ``alr_core.data.images.decode_files``
(decode, EXIF turn, resize to ``--image-size``, gray check) with ``OMP_NUM_THREADS`` 1 and with
every CPU this process may use, ``--repeats`` times each, alternating, and checks that both give
the same array. Prints a markdown table (median seconds and images/s).
"""

from __future__ import annotations

import argparse
import os
import statistics
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


if __name__ == "__main__":
    main()
