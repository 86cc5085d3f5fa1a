"""What a project that an earlier alr ran needs before today's pipeline can run in it."""

from __future__ import annotations

import subprocess

from alr_core.common import paths
from alr_core.common.errors import AlrError

# kept in git (`cache: false`) before 5eb60d1 made them DVC-cached outputs, so that the run cache works
MOVED_TO_DVC = (paths.PRETRAIN_TIMING, paths.LNL_TIMING)


def check_moved_outputs() -> None:
    """An :class:`AlrError` when git still tracks a file that dvc.yaml now has DVC cache (a run
    committed by an earlier alr): DVC refuses to write such an output, and only after its stage
    has done its work. Nothing is checked outside a git work tree, or without git."""
    try:
        listed = subprocess.run(["git", "ls-files", "--", *map(str, MOVED_TO_DVC)], capture_output=True,
                                text=True, timeout=60)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return
    tracked = listed.stdout.split() if listed.returncode == 0 else []
    if tracked:
        files, them = " ".join(tracked), "it" if len(tracked) == 1 else "them"
        raise AlrError(f"{files}: tracked by git, but DVC caches {them} since an earlier alr version, and would "
                       f"refuse to write {them} after the stage's work; run `git rm --cached {files}`, commit, then "
                       "`dvc repro`")
