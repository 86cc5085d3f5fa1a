"""Atomic writers for every artifact passed between stages.

Each writer fills a temporary file in the destination folder and renames it over the final
path, so a stage that is interrupted or fails never leaves a half-written artifact behind.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import pandas as pd

from alr_core.common.errors import AlrError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``.

    On any exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):  # left by a killed writer (SIGKILL)
        stale.unlink(missing_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates the file private (0600); give it the mode a plain open() would
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: str | os.PathLike, payload: Any) -> None:
    write_text(path, json.dumps(payload, indent=2, sort_keys=False, allow_nan=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return _read(path, lambda: json.loads(Path(path).read_text(encoding="utf-8")))


def read_parquet(path: str | os.PathLike, **kwargs) -> pd.DataFrame:
    return _read(path, lambda: pd.read_parquet(path, **kwargs))


def load_npy(path: str | os.PathLike, mmap_mode: str | None = None) -> np.ndarray:
    return _read(path, lambda: np.load(path, mmap_mode=mmap_mode, allow_pickle=False))


def _read(path: str | os.PathLike, read: Callable[[], Any]) -> Any:
    """``read()`` of an artifact an earlier stage wrote, a missing or damaged file (a stage run by
    hand before the ones it needs, a disk that filled up) becoming an :class:`AlrError` naming it."""
    try:
        return read()
    except FileNotFoundError:
        raise AlrError(f"{path} does not exist: an earlier stage writes it; run `dvc repro` (by hand, run the "
                       "stages before this one first)") from None
    except Exception as exc:  # pyarrow, numpy and json raise many types for a truncated or foreign file
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AlrError(f"{path}: cannot read it ({detail}); `dvc repro` writes it again") from None


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_parquet(path: str | os.PathLike, table: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        table.to_parquet(tmp, engine="pyarrow", index=False)


def write_csv(path: str | os.PathLike, table: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


def write_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """Save with ``np.save`` so that readers can memory-map the file (``mmap_mode='r'``)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, array, allow_pickle=False)


def write_torch(path: str | os.PathLike, payload: Any) -> None:
    import torch  # imported here so that stages without a model never pay for torch

    # through a file object: given a path, torch names the archive's inner folder after the file,
    # here a random temporary name, so equal payloads would give different bytes (and hashes)
    with atomic_path(path) as tmp, open(tmp, "wb") as stream:
        torch.save(payload, stream)


def write_figure(path: str | os.PathLike, figure) -> None:
    """Save a matplotlib figure as PNG (works offline, unlike ``dvc plots show`` HTML)."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight")


def write_directory(path: str | os.PathLike, files: Iterable[tuple[str, bytes]]) -> None:
    """Replace the folder ``path`` with one holding ``files`` ((bare file name, content) pairs,
    consumed one at a time so that they need not all be in memory).

    The new folder is filled beside ``path`` and renamed into place, so files of an earlier run
    never survive and a failure while filling leaves the previous folder untouched. Two renames
    swap the folders (a non-empty folder cannot be renamed over), so for a moment there is none.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    stale = fresh.with_suffix(".old")
    try:
        fresh.chmod(0o755)  # mkdtemp's folder is private; a tool serving the files may run as another user
        for name, content in files:
            if Path(name).name != name or name in ("", ".", ".."):
                raise ValueError(f"{name!r} is not a bare file name")
            (fresh / name).write_bytes(content)
        if path.exists():
            os.replace(path, stale)
        os.replace(fresh, path)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
        shutil.rmtree(stale, ignore_errors=True)
