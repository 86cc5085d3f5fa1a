"""alr_core/common/upgrade.py: a project an earlier alr ran and committed is told what to change
before any stage works, not after."""

from __future__ import annotations

import subprocess

import pytest
from conftest import GIT_IDENTITY

from alr_core.common import paths
from alr_core.common.errors import AlrError
from alr_core.common.upgrade import MOVED_TO_DVC, check_moved_outputs


def git(root, *args):
    subprocess.run(["git", *GIT_IDENTITY, *args], cwd=root, check=True, capture_output=True)


def test_timing_files_an_earlier_alr_committed_to_git_stop_the_run_with_the_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    check_moved_outputs()  # not a git work tree: nothing to check
    git(tmp_path, "init", "-q")
    for path in MOVED_TO_DVC:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('{"seconds": 1.0}\n')
    check_moved_outputs()  # untracked, as a run of today's alr leaves them
    git(tmp_path, "add", "-f", *map(str, MOVED_TO_DVC))
    git(tmp_path, "commit", "-q", "-m", "a run of an earlier alr")
    with pytest.raises(AlrError) as info:
        check_moved_outputs()
    files = f"{paths.LNL_TIMING} {paths.PRETRAIN_TIMING}"  # git's order
    assert str(info.value) == (
        f"{files}: tracked by git, but DVC caches them since an earlier alr version, and would refuse to write "
        f"them after the stage's work; run `git rm --cached {files}`, commit, then `dvc repro`")  # fmt: skip
    git(tmp_path, "rm", "-q", "--cached", str(paths.LNL_TIMING))
    with pytest.raises(AlrError, match=f"^{paths.PRETRAIN_TIMING}: tracked by git, but DVC caches it "):
        check_moved_outputs()
    git(tmp_path, "rm", "-q", "--cached", str(paths.PRETRAIN_TIMING))
    git(tmp_path, "commit", "-q", "-m", "the timing files to DVC")
    check_moved_outputs()
