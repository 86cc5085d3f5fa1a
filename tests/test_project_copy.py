"""The copies of the project the tests run in hold the checkout's code and none of its working
state: a user who edited params.yaml, answered a round and ran the pipeline in this checkout
gets the same test results as a fresh clone."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml
from builders import copy_project, copy_stage_tree, files_under

from alr_core.common.params import default_params

# A checkout as a user leaves it: the project (committed, and one new module not yet added),
# their parameters and answers, the lock and outputs of their run, DVC's cache and a data set
# of their own inside the checkout. Their run is committed, as this repository commits its own.
PROJECT = {
    "alr_core/__init__.py": "",
    "alr_core/common/params.py": "# code\n",
    "stages/prepare.py": "# code\n",
    "bench/run_all.py": "# code\n",
    "docs/parameters.md": "# docs\n",
    "tests/builders.py": "# code\n",
    "README.md": "# alr\n",
    "dvc.yaml": "stages: {}\n",
    ".gitignore": "__pycache__/\n",
    ".dvcignore": "# dvc\n",
    ".dvc/config": "[core]\n    autostage = true\n",
    ".dvc/.gitignore": "/config.local\n/tmp\n/cache\n",
    "annotations/README.md": "# Expert answers\n",
    "data/prepared/.gitignore": "/images.npy\n",
    "data/rounds/1/.gitignore": "/scores.parquet\n",
}
UNTRACKED_PROJECT = {"alr_core/common/new_module.py": "# work in progress\n"}
WORKING_STATE = {
    "params.yaml": yaml.safe_dump({"data": {"source": "imagefolder", "path": "/their/images"},
                                   "al": {"oracle": "human"}}),  # fmt: skip
    "dvc.lock": "schema: '2.0'\nstages: {}\n",
    "metrics/report.json": '{"rounds": 6}\n',
    "metrics/rounds/1.json": '{"round": 1}\n',
    "plots/rounds.csv": "round\n1\n",
    "plots/learning_curve.png": "not a png\n",
}
UNTRACKED_WORKING_STATE = {
    "annotations/round_1.csv": "sample_id,label\ntrain-00003,dog\n",
    "annotations/round_2.json": "[]\n",
    "metrics/rounds/6.json": '{"round": 6}\n',
    "data/rounds/6/.gitignore": "/scores.parquet\n",  # DVC's, for the user's extra round: harmless
    "data/mine/cat/img00.png": "an image of theirs\n",
    ".dvc/config.local": "[core]\n    remote = theirs\n",  # ignored by .dvc/.gitignore
    ".dvc/tmp/rwlock": "{}\n",
    ".dvc/cache/files/md5/ab/cdef": "cached\n",
}


@pytest.fixture
def user_checkout(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = tmp_path / "checkout"
    for name, text in {**PROJECT, **WORKING_STATE}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)  # tracked: in the index
    for name, text in {**UNTRACKED_PROJECT, **UNTRACKED_WORKING_STATE}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_project_copy_has_the_code_and_default_params_only(user_checkout, tmp_path):
    copy = copy_project(tmp_path / "copy", source=user_checkout)
    expected = sorted([*PROJECT, *UNTRACKED_PROJECT, "data/rounds/6/.gitignore", "params.yaml"])
    assert files_under(copy) == expected
    for name in [*PROJECT, *UNTRACKED_PROJECT]:
        assert (copy / name).read_text() == (user_checkout / name).read_text(), name
    assert yaml.safe_load((copy / "params.yaml").read_text()) == default_params()


def test_stage_tree_has_the_code_and_default_params_only(user_checkout, tmp_path):
    tree = copy_stage_tree(tmp_path / "tree", source=user_checkout)
    code = [name for name in [*PROJECT, *UNTRACKED_PROJECT] if name.startswith(("alr_core/", "stages/"))]
    assert files_under(tree) == sorted([*code, "dvc.yaml", "params.yaml"])
    assert yaml.safe_load((tree / "params.yaml").read_text()) == default_params()
