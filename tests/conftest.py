"""Shared fixtures: temporary copies of the project, as a git + DVC repo or a bare stage tree."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest
from builders import (
    SHARED_DATA,
    copy_project,
    copy_stage_tree,
    run,
    run_module,
    write_params,
)

GIT_IDENTITY = [
    "-c", "user.name=alr-tests",
    "-c", "user.email=alr-tests@example.invalid",
    "-c", "commit.gpgsign=false",
    "-c", "init.defaultBranch=main",
]

# each `-n auto` worker holds torch and runs DVC pipelines whose stages load it again
WORKER_MEMORY_GIB = 2


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@pytest.hookimpl(optionalhook=True)  # pytest runs without pytest-xdist too, one process
def pytest_xdist_auto_num_workers(config) -> int | None:
    """`pytest -n auto`: one worker per core this process may run on, as many as memory holds
    (None: xdist's own count, for `-n logical` or PYTEST_XDIST_AUTO_NUM_WORKERS)."""
    if config.option.numprocesses == "logical" or os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    try:
        memory_gib = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows): the cores decide
        return _cores()
    return max(1, min(_cores(), int(memory_gib // WORKER_MEMORY_GIB)))


def pytest_collection_modifyitems(config, items) -> None:
    """The files with end-to-end tests first, each keeping its order: under `-n auto --dist
    loadfile` a long file collected last would run alone while the other workers idle."""
    slow = {item.path for item in items if item.get_closest_marker("e2e")}
    items.sort(key=lambda item: item.path not in slow)


def pytest_configure(config) -> None:
    """Under pytest-xdist, each worker and the stages it starts share the cores with the other
    workers: split the intra-op threads between them, unless OMP_NUM_THREADS is set already
    (torch reads it when first used, after this)."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(max(1, _cores() // int(workers)))


@dataclass
class ProjectCopy:
    """A copy of the project in its own git repo, as a fresh clone would be."""

    root: Path

    def write_params(self, overrides: Optional[dict] = None) -> dict:
        """params.yaml = the default params with ``overrides`` merged in (nested dicts merge
        key by key), so that parameter groups added later stay valid."""
        return write_params(self.root, overrides)

    def dvc(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        """``python -m dvc ARGS`` with the venv's bin dir first on PATH (the stages' ``python``)."""
        result = run([sys.executable, "-m", "dvc", *args], self.root, timeout=timeout)
        if check and result.returncode != 0:
            pytest.fail(
                f"dvc {' '.join(args)} exited {result.returncode}\n"
                f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
            )
        return result

    def git(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["git", *GIT_IDENTITY, *args], cwd=self.root, capture_output=True, text=True, check=True
        )

    def run_stage(self, module: str) -> subprocess.CompletedProcess:
        return run_module(module, self.root)


def new_project_copy(root: Path) -> ProjectCopy:
    """The project's code (builders.copy_project: tracked plus untracked-but-not-ignored
    files, without the checkout's params, answers, lock and outputs; params.yaml at the
    defaults) in a new git repo at ``root``, committed: DVC outputs start out missing, as on a
    fresh clone."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    copy_project(root)
    project = ProjectCopy(root)
    project.git("init", "-q")
    project.git("add", "-A")
    project.git("commit", "-q", "-m", "copy of the project under test")
    return project


@pytest.fixture
def project_copy(tmp_path) -> ProjectCopy:
    """A fresh copy of the project in its own git repo under tmp_path (see new_project_copy)."""
    return new_project_copy(tmp_path / "project")


@pytest.fixture(scope="module")
def module_project_copy(tmp_path_factory) -> ProjectCopy:
    """Like project_copy, but shared by the tests of one module (for expensive pipelines)."""
    return new_project_copy(tmp_path_factory.mktemp("module") / "project")


@pytest.fixture
def stage_tree(tmp_path) -> Path:
    """alr_core/, stages/ and dvc.yaml copied to tmp_path/project, params.yaml at the defaults
    (no git, no outputs): enough to run ``python -m stages.<name>`` there."""
    return copy_stage_tree(tmp_path / "project")


@pytest.fixture
def shared_data() -> Path:
    """The shared real data folder beside the repo; the test is skipped when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} not present")
    return SHARED_DATA


@pytest.fixture(scope="module")
def torch_state():
    """One intra-op thread: on a shared 2-core machine tiny convolutions run many times slower
    with two spinning threads. Training also switches on deterministic algorithms; the thread
    count and that switch (with its memory fill) are restored afterwards."""
    import torch  # only the modules that use this fixture pay for torch

    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    fill = torch.utils.deterministic.fill_uninitialized_memory
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
    torch.utils.deterministic.fill_uninitialized_memory = fill
