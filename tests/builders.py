"""Small builders for test inputs: MedMNIST-style .npz files, image folders, CSV manifests,
params files and copies of the project. Plain functions, imported by the tests and by
conftest.py.

Nothing here reads the user's working state (params.yaml, answers files, dvc.lock, pipeline
outputs): users edit those in this very checkout, and the tests must pass for them all the
same. Default parameters come from alr_core.common.params.default_params."""

from __future__ import annotations

import copy
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Optional

import numpy as np
import pandas as pd
import yaml
from PIL import Image

from alr_core.common.params import default_params

REPO_ROOT = Path(__file__).resolve().parents[1]
# Shared real data sets live beside the repository, never inside it.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def in_ci() -> bool:
    """Whether the suite runs in CI (``CI`` set, as .ci/run sets it, and not false, 0 or no): a
    clean clone there, where what a user's checkout may lack or change must be as shipped."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


# ----------------------------------------------------------------------------- data files


def write_npz(
    path: Path,
    counts: dict[str, Iterable[int]] | None = None,
    *,
    size: int = 6,
    rgb: bool = False,
    label_shape: str = "column",
    drop: Iterable[str] = (),
    **overrides: np.ndarray,
) -> dict[str, np.ndarray]:
    """Write a MedMNIST-format .npz and return its arrays.

    ``counts[split]`` lists the label of each image of that split (default: a small 3-class
    file). Image i of a split has every pixel equal to a value that encodes (split, i), so a
    test can tell which image ended up where. ``label_shape``: "column" (N, 1) like MedMNIST
    or "flat" (N,). ``drop`` removes keys; ``overrides`` replaces arrays.
    """
    counts = counts or {"train": [0, 1, 2, 0, 1, 2, 0], "val": [0, 1, 2], "test": [2, 1, 0, 0]}
    arrays: dict[str, np.ndarray] = {}
    for s, (split, labels) in enumerate(counts.items()):
        labels = np.asarray(list(labels), dtype=np.uint8)
        values = (np.arange(len(labels)) + 50 * s).astype(np.uint8)
        shape = (len(labels), size, size, 3) if rgb else (len(labels), size, size)
        images = np.broadcast_to(values.reshape((-1,) + (1,) * (len(shape) - 1)), shape).copy()
        arrays[f"{split}_images"] = images
        arrays[f"{split}_labels"] = labels[:, None] if label_shape == "column" else labels
    for key in drop:
        del arrays[key]
    arrays.update(overrides)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return arrays



def class_images(labels: np.ndarray, rng: np.random.Generator, size: int = 8) -> np.ndarray:
    """uint8 (N, size, size, 1): a bright patch whose place depends on the class (0: top left,
    1: bottom right, 2: a vertical bar), on noise."""
    images = rng.integers(0, 60, (len(labels), size, size, 1)).astype(np.uint8)
    for i, label in enumerate(labels):
        if label == 0:
            images[i, 1:4, 1:4] = 230
        elif label == 1:
            images[i, 4:7, 4:7] = 230
        else:
            images[i, :, 3:5] = 230
    return images

def write_image(path: Path, size=(6, 6), mode: str = "RGB", value=None) -> Path:
    """Write a solid image of ``mode`` (L, RGB, RGBA, P) and ``size`` (w, h) to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "P":
        image = Image.new("P", size, 1)
        palette = [0, 0, 0, 200, 100, 50] + [0] * (256 * 3 - 6)
        image.putpalette(palette)  # index 1 is (200, 100, 50)
    else:
        default = {"L": 90, "RGB": (10, 20, 30), "RGBA": (40, 50, 60, 128)}[mode]
        image = Image.new(mode, size, default if value is None else value)
    image.save(path)
    return path


def write_16bit_per_channel(path: Path, values: np.ndarray, planar: bool = False) -> Path:
    """Write uint16 ``values`` (H, W, C), C = 2 (gray + alpha), 3 (RGB) or 4 (RGBA), with 16 bits
    per channel, which Pillow cannot write: a PNG (colour type 4, 2 or 6; no filter) for a .png
    ``path``, an uncompressed little-endian baseline TIFF for a .tif one (RGB only; ``planar``:
    one strip per channel)."""
    height, width, channels = values.shape
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".png":
        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

        rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in values)
        header = struct.pack(">IIBBBBB", width, height, 16, {2: 4, 3: 2, 4: 6}[channels], 0, 0, 0)
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
                         + chunk(b"IEND", b""))  # fmt: skip
        return path
    assert channels == 3, "the TIFF writer writes RGB only"
    strips = [values[..., c].astype("<u2").tobytes() for c in range(3)] if planar else [values.astype("<u2").tobytes()]
    pixels = b"".join(strips)
    # after the header: the pixels, BitsPerSample's three values, then the strips' offsets and sizes
    bits_at = 8 + len(pixels)
    offsets_at, sizes_at = bits_at + 6, bits_at + 6 + 4 * len(strips)
    offsets = [8 + sum(len(strip) for strip in strips[:i]) for i in range(len(strips))]
    tables = struct.pack("<HHH", 16, 16, 16) + struct.pack(f"<{len(strips)}I", *offsets)
    tables += struct.pack(f"<{len(strips)}I", *(len(strip) for strip in strips))
    several = len(strips) > 1  # a count of 1 holds the value itself, more point at a table
    tags = [(256, 3, 1, width), (257, 3, 1, height), (258, 3, 3, bits_at), (259, 3, 1, 1), (262, 3, 1, 2),
            (273, 4, len(strips), offsets_at if several else offsets[0]), (277, 3, 1, 3), (278, 3, 1, height),
            (279, 4, len(strips), sizes_at if several else len(strips[0])), (284, 3, 1, 2 if planar else 1)]
    ifd = struct.pack("<H", len(tags)) + b"".join(struct.pack("<HHII", *tag) for tag in tags) + b"\0\0\0\0"
    path.write_bytes(b"II*\0" + struct.pack("<I", 8 + len(pixels) + len(tables)) + pixels + tables + ifd)
    return path


def write_image_folder(root: Path, layout: dict[str, int], size=(6, 6), mode="RGB", suffix=".png", distinct=False):
    """``layout``: class folder → number of images. Every image is the same solid colour, or with
    ``distinct`` (mode L) a gray of its own, 50·class + index. Returns ``root``."""
    for k, (name, count) in enumerate(layout.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            write_image(root / name / f"img{i:02d}{suffix}", size, mode, value=50 * k + i if distinct else None)
    return root


def write_csv(path: Path, rows: dict[str, list[Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


# ----------------------------------------------------------------------------- params


def deep_merge(base: dict, overrides: dict) -> dict:
    """``base`` with ``overrides`` applied recursively (a dict value merges, others replace)."""
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def rounds_param(count: int) -> dict:
    """A valid params ``rounds`` group of ``count`` rounds ("1".."count", each after the last)."""
    return {str(r): {"prev": "data/lnl" if r == 1 else f"data/rounds/{r - 1}"} for r in range(1, count + 1)}


def write_params(project: Path, overrides: Optional[dict] = None, raw: Optional[dict] = None) -> dict:
    """Write ``project/params.yaml``: the default params with ``overrides`` merged in (or
    exactly ``raw``). Never the working params.yaml, which is the user's to edit."""
    params = raw if raw is not None else deep_merge(default_params(), overrides or {})
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return params


# ----------------------------------------------------------------------------- processes


def subprocess_env() -> dict[str, str]:
    """The environment for stage and dvc subprocesses: this interpreter's bin dir first on
    PATH (so dvc's ``python`` is the venv's), no analytics, no stray PYTHONPATH."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run(args: list[str], cwd: Path, timeout: float = 120, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, cwd=cwd, env=env or subprocess_env(), capture_output=True, text=True, timeout=timeout
    )


def run_module(module: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m module`` in ``cwd`` with this interpreter."""
    return run([sys.executable, "-m", module], cwd)


# ----------------------------------------------------------------------------- project copies


def copy_stage_tree(dest: Path, source: Path = REPO_ROOT) -> Path:
    """The minimum to run a stage by hand: alr_core/, stages/ and dvc.yaml from ``source``,
    params.yaml written from the defaults."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    dest.mkdir(parents=True, exist_ok=True)
    for folder in ("alr_core", "stages"):
        shutil.copytree(source / folder, dest / folder, ignore=ignore)
    shutil.copy2(source / "dvc.yaml", dest / "dvc.yaml")
    write_params(dest)
    return dest


def is_working_state(name: str) -> bool:
    """Whether the checkout-relative path ``name`` is the user's working state rather than the
    project: the parameters and answers they edit, the lock and outputs of their last run and
    DVC's cache. Tracked or not, it is never copied, so that a test sees a fresh clone
    whatever the checkout it runs in has done."""
    top = name.split("/", 1)[0]
    if name in ("params.yaml", "dvc.lock"):
        return True  # params.yaml: copies write the defaults instead
    if top in ("metrics", "plots"):
        return True  # pipeline outputs (committed in some revisions, not in others)
    if top == "annotations":
        return name != "annotations/README.md"  # the experts' answers files
    if top == "data":
        # stage outputs and the user's own data sets; the .gitignore files DVC keeps for its
        # outputs belong to the project
        return PurePosixPath(name).name != ".gitignore"
    if top == ".dvc":
        return name.startswith((".dvc/cache/", ".dvc/tmp/")) or name == ".dvc/config.local"
    return False


def project_files(source: Path = REPO_ROOT) -> list[str]:
    """Paths of the project's files under ``source`` as a fresh clone would have them: what git
    tracks plus new files git does not ignore (so work in progress is tested too), minus
    deleted ones and minus the working state (is_working_state)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=source, capture_output=True, text=True, check=True,
    ).stdout
    names = sorted({name for name in listed.split("\0") if name})
    return [name for name in names if not is_working_state(name) and (source / name).is_file()]


def copy_project(dest: Path, source: Path = REPO_ROOT) -> Path:
    """The project's files (project_files) copied from ``source`` to ``dest`` and params.yaml
    written from the defaults: the code of the checkout, none of its working state."""
    for name in project_files(source):
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / name, target)
    dest.mkdir(parents=True, exist_ok=True)
    write_params(dest)
    return dest


ALWAYS_RUN_STAGES = {"fingerprint"}  # always_changed in dvc.yaml: re-checks data.path on every repro


def ran_stages(output: str) -> list[str]:
    """The stages a ``dvc repro`` output says it ran, in order, less the fingerprint stage,
    which runs on every repro (whether prepare re-runs is what says the data changed)."""
    ran = re.findall(r"^Running stage '([^']+)'", output, flags=re.MULTILINE)
    return [name for name in ran if name not in ALWAYS_RUN_STAGES]


def files_under(root: Path) -> list[str]:
    """Every file below ``root`` (relative, sorted); empty when ``root`` does not exist."""
    if not root.exists():
        return []
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
