"""How long `dvc repro` takes to find that nothing changed in a large image folder.

    python -m bench.noop_repro --images 10000

Writes ``--images`` small PNGs (``--size`` px, five class folders) to a temporary folder, points
a fresh clone of HEAD at it (``data.source: imagefolder``), runs ``dvc repro prepare`` once
(every file hashed and decoded), then times: a no-op ``dvc repro prepare`` (the fingerprint
stage re-checks every file through its stat cache; prepare is skipped), the same after
``touch``-ing every file (the stat cache misses, every file is re-hashed, the fingerprint is
unchanged, prepare is still skipped), and one after editing a single image (prepare re-runs).
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def write_folder(root: Path, count: int, size: int) -> list[Path]:
    rng = np.random.default_rng(0)
    files = []
    for i in range(count):
        path = root / f"class_{i % 5}" / f"img_{i:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(path)
        files.append(path)
    return files


def timed(args: list[str], cwd: Path, env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--size", type=int, default=64, help="side of each PNG (px)")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    dvc = [sys.executable, "-m", "dvc", "repro", "prepare"]
    commit = subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True).strip()
    with tempfile.TemporaryDirectory(prefix="alr-noop-") as tmp:
        files = write_folder(Path(tmp) / "images", args.images, args.size)
        megabytes = sum(f.stat().st_size for f in files) / 1e6
        clone = Path(tmp) / "alr"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        params = yaml.safe_load((clone / "params.yaml").read_text())
        params["data"] |= {"source": "imagefolder", "path": str(Path(tmp) / "images")}
        (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        rows = [("`dvc repro prepare`, first run: hash and decode every image", *timed(dvc, clone, env))]
        rows.append(("`dvc repro prepare`, nothing changed", *timed(dvc, clone, env)))
        rows.append(("`dvc status`", *timed([sys.executable, "-m", "dvc", "status"], clone, env)))
        for path in files:
            os.utime(path)
        rows.append(("`dvc repro prepare`, every file touched (re-hashed, same content)", *timed(dvc, clone, env)))
        with Image.open(files[0]) as image:
            edited = np.asarray(image).copy()
        edited[0, 0] ^= 1
        Image.fromarray(edited).save(files[0])
        rows.append(("`dvc repro prepare`, one pixel of one image changed", *timed(dvc, clone, env)))
    print(f"`python -m bench.noop_repro --images {args.images} --size {args.size}` at {commit}: "
          f"{args.images} PNGs of {args.size}×{args.size} px ({megabytes:.0f} MB), {os.cpu_count()} cores.\n")
    print("| command, situation | seconds | prepare ran |")
    print("|---|---|---|")
    for label, seconds, output in rows:
        ran = "—" if label == "`dvc status`" else "yes" if "Running stage 'prepare'" in output else "no"
        print(f"| {label} | {seconds:.1f} | {ran} |")


if __name__ == "__main__":
    main()
