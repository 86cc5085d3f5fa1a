"""The content fingerprint of the files under ``data.path``: what makes them a real dependency
of ``prepare``.

DVC sees ``data.path`` only as a parameter string, and ``dvc.yaml`` cannot name the files of an
image folder or the images a CSV manifest lists (the paths come from params and may be null).
The ``fingerprint`` stage therefore runs on every ``dvc repro`` and writes one JSON file that
maps each file the source reads to the MD5 of its bytes; ``prepare`` depends on that file, so
an added, removed, renamed or edited image (or a changed manifest row, or npz) re-runs
``prepare`` and everything after it, and an untouched folder re-runs nothing.

Hashing every byte on every run would make a no-op ``dvc repro`` slow on large folders, so, as
git and DVC do, a file whose size, modification time, change time and inode are unchanged
since the last run keeps its recorded hash (a stat cache beside the fingerprint).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable, Optional

from alr_core.common.cli import progress_bar
from alr_core.common.params import check_weights_file

STAT_FIELDS = ("st_size", "st_mtime_ns", "st_ctime_ns", "st_ino")


def file_md5(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "md5").hexdigest()


def stat_key(stat: os.stat_result) -> list[int]:
    """What must be unchanged for a file to keep its recorded hash: size, modification and
    change times (ns; ``cp -p`` keeps the mtime but not the ctime) and inode (a replaced file)."""
    return [getattr(stat, name) for name in STAT_FIELDS]


def fingerprint(files: Iterable[Path], stat_cache: Optional[dict] = None) -> tuple[dict[str, str], dict, int]:
    """Hash ``files`` (paths as the source names them, each read once).

    ``stat_cache``: ``{path: [size, mtime_ns, ctime_ns, inode, md5]}`` from the last run, or
    None. Returns ``(hashes, new_stat_cache, hashed)``: ``hashes`` maps each path (POSIX string)
    to its MD5, in the given order; ``hashed`` counts the files read from disk rather than
    taken from the cache.
    """
    stat_cache = stat_cache or {}
    hashes, new_cache, hashed = {}, {}, 0
    # a first run hashes every byte (343 MB of images took 7 s here: minutes for a large folder); a run
    # that takes the hashes from the cache ends before the bar would show
    for path in progress_bar(files, "hash source files", unit="file", delay=2):
        name = Path(path).as_posix()
        key = stat_key(os.stat(path))
        cached = stat_cache.get(name)
        if cached is not None and cached[:-1] == key:
            digest = cached[-1]
        else:
            digest = file_md5(Path(path))
            hashed += 1
        hashes[name] = digest
        new_cache[name] = [*key, digest]
    return hashes, new_cache, hashed


def init_fingerprint(init: str, stat_cache: Optional[dict] = None) -> tuple[dict, dict]:
    """``model.init`` as the stages that start networks from it must see it: ``{"model.init":
    init}`` for ``scratch`` and ``ssl`` (the encoder is a DVC-tracked output already), plus the
    file's ``md5`` when it names a weights file, which must exist: this first stage says so before
    pretraining spends hours. Returns (record, stat cache entries of the file)."""
    record = {"model.init": init}
    if init in ("scratch", "ssl"):
        return record, {}
    path = check_weights_file(init)
    hashes, cache, _ = fingerprint([path], stat_cache)
    return record | {"md5": hashes[path.as_posix()]}, cache


def read_stat_cache(path: Path) -> dict:
    """The stat cache of the last run; empty when missing or unreadable (it is only a cache)."""
    try:
        cache = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return cache if isinstance(cache, dict) else {}
