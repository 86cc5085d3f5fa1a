"""Caching correctness: every project file a stage imports is a declared dep of that stage.

DVC re-runs a stage only when a declared dep changes, so a stage whose code imports a module
that ``dvc.yaml`` does not list keeps serving stale outputs after that module changes. The test
walks each stage script's import closure statically (function-level imports included, since
stages import torch-heavy modules lazily) and checks it against the stage's deps.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml
from builders import REPO_ROOT

PROJECT_PACKAGES = ("alr_core", "stages")


def module_files(module: str) -> list[Path]:
    """The files importing ``module`` executes: every package ``__init__.py`` on the way, and
    the module itself (``a/b.py`` or ``a/b/__init__.py``); [] when it is not a project module."""
    parts = module.split(".")
    if parts[0] not in PROJECT_PACKAGES:
        return []
    files = []
    for depth in range(1, len(parts)):
        init = REPO_ROOT.joinpath(*parts[:depth], "__init__.py")
        if init.is_file():
            files.append(init)
    as_file = REPO_ROOT.joinpath(*parts).with_suffix(".py")
    as_package = REPO_ROOT.joinpath(*parts, "__init__.py")
    files += [f for f in (as_file, as_package) if f.is_file()]
    return files


def imported_modules(path: Path) -> set[str]:
    """Project modules imported anywhere in ``path``; ``from pkg import name`` counts
    ``pkg.name`` when ``name`` is a submodule."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import; the closure walk expects absolute imports"
            modules.add(node.module)
            modules |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {m for m in modules if module_files(m)}


def import_closure(script: Path) -> set[Path]:
    seen: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in imported_modules(path):
            todo += module_files(module)
    return seen


def stage_bodies() -> dict[str, dict]:
    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    return {name: stage.get("do", stage) for name, stage in stages.items()}


def covered(path: Path, deps: list[str]) -> bool:
    relative = path.relative_to(REPO_ROOT)
    return any(relative == Path(dep) or Path(dep) in relative.parents for dep in deps)


@pytest.mark.parametrize("stage", sorted(stage_bodies()))
def test_stage_deps_cover_every_imported_project_file(stage):
    body = stage_bodies()[stage]
    script = REPO_ROOT / body["cmd"].split()[2].replace(".", "/")
    script = script.with_suffix(".py")
    assert script.is_file(), f"stage {stage}: no script for {body['cmd']!r}"
    deps = [d if isinstance(d, str) else next(iter(d)) for d in body["deps"]]
    missing = sorted(str(p.relative_to(REPO_ROOT)) for p in import_closure(script) if not covered(p, deps))
    assert not missing, f"stage {stage} imports files dvc.yaml does not list as deps: {missing}"


@pytest.mark.parametrize("stage", sorted(stage_bodies()))
def test_every_stage_can_enter_the_run_cache(stage):
    """DVC saves a stage to its run cache (what a sweep restores instead of recomputing) only
    when none of its plain outs has `cache: false`; metrics and plots may."""
    uncached = [next(iter(out)) for out in stage_bodies()[stage].get("outs", [])
                if isinstance(out, dict) and next(iter(out.values())).get("cache") is False]  # fmt: skip
    assert not uncached, f"stage {stage}: outs with cache: false keep it out of the run cache: {uncached}"


def test_closure_walk_sees_lazy_imports_and_package_inits():
    closure = {str(p.relative_to(REPO_ROOT)) for p in import_closure(REPO_ROOT / "stages" / "retrain.py")}
    # imported inside main(), after the params check
    assert "alr_core/nn/models.py" in closure
    # pulled in through alr_core.nn.training -> alr_core.evaluation.metrics
    assert "alr_core/evaluation/metrics.py" in closure
    assert {"alr_core/__init__.py", "alr_core/nn/__init__.py"} <= closure


def test_a_missing_dep_is_reported():
    closure = import_closure(REPO_ROOT / "stages" / "score_samples.py")
    deps = ["stages/score_samples.py", "alr_core/__init__.py", "alr_core/common", "alr_core/data",
            "alr_core/active", "alr_core/evaluation"]  # fmt: skip
    uncovered = {str(p.relative_to(REPO_ROOT)) for p in closure if not covered(p, deps)}
    assert "alr_core/nn/models.py" in uncovered and "alr_core/nn/training.py" in uncovered
