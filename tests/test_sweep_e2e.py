"""End to end: a 2-seed × 2-strategy sweep through DVC's experiment queue with two workers,
then `python -m stages.compare`; and a second clone that pulls phase 1 from a shared remote.

Tiny params (8×8 digits, one round, two phase-1 epochs) keep each pipeline around 20 s.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import numpy as np
import pytest
from builders import deep_merge, ran_stages, rounds_param, run, write_params
from conftest import GIT_IDENTITY, ProjectCopy

from alr_core.common import paths
from alr_core.common.params import default_params

pytestmark = pytest.mark.e2e  # `pytest -m "not e2e"` skips the slow end-to-end runs

TINY = {
    "seed": 0,
    "budget": 6,
    "data": {"source": "digits", "path": None, "image_size": 8, "val_per_class": 5, "test_per_class": 5},
    "train": {"device": "cpu", "batch_size": 32},
    "pretrain": {"epochs": 1},
    "lnl": {"method": "coteaching_vog", "selection": "global", "epochs": 2, "num_gradual": 1, "vog_window": 2},
    "al": {"strategy": "entropy", "oracle": "simulated", "epochs": 1},
}
# `dvc repro lnl_train`; DVC may order the independent pretrain and inject_noise either way
PHASE1 = {"prepare", "pretrain", "inject_noise", "lnl_train"}
ROUND1 = ["score_samples@1", "query@1", "oracle_relabel@1", "retrain@1", "report"]


def use_tiny_params(project: ProjectCopy) -> None:
    raw = deep_merge(default_params(), TINY)
    raw["rounds"] = rounds_param(1)
    write_params(project.root, raw=raw)
    project.git("commit", "-q", "-am", "tiny params, one round")


def wait_for_queue(project: ProjectCopy, timeout: float = 600) -> str:
    """Poll `dvc queue status` until nothing is queued or running and the workers have exited
    (an idle worker would pick up the next queued experiment); return the last status."""
    deadline = time.monotonic() + timeout
    while True:
        status = project.dvc("queue", "status").stdout
        if not re.search(r"\b(Queued|Running)\b", status) and "Worker status: 0 active, 0 idle" in status:
            return status
        if time.monotonic() > deadline:
            pytest.fail(f"the experiment queue did not finish in {timeout} s:\n{status}")
        time.sleep(2)


def tasks_in_state(status: str, state: str) -> list[str]:
    """The names of the tasks in ``state`` (Success, Failed, ...) in `dvc queue status`'s text."""
    return re.findall(rf"^\w+\s+(\S+)\s+.*\b{state}\s*$", status, flags=re.MULTILINE)


def failed_logs(project: ProjectCopy, status: str) -> str:
    """The end of `dvc queue logs` of each failed task in ``status`` (`dvc queue status`'s text),
    so that a failure says why the experiment failed."""
    names = tasks_in_state(status, "Failed")
    return "".join(f"\n--- dvc queue logs {name} (end) ---\n"
                   + project.dvc("queue", "logs", name, check=False).stdout[-3000:] for name in names)


def experiments_by_name(project: ProjectCopy) -> dict[str, dict]:
    """name → (state, params, metrics) straight from `dvc exp show --json`."""
    commits = json.loads(project.dvc("exp", "show", "--json").stdout)
    found = {}
    for commit in commits:
        for exp_range in commit.get("experiments") or []:
            data = exp_range["revs"][0]["data"]
            found[exp_range["name"]] = {
                # an experiment pulled from another machine carries no executor: it finished there
                "state": (exp_range["executor"] or {"state": "success"})["state"],
                "params": data["params"]["params.yaml"]["data"],
                "metrics": {name: entry.get("data") for name, entry in data["metrics"].items()},
            }
    return found


def test_queued_sweep_with_two_workers_then_compare(project_copy, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # two workers on two cores, as the README advises
    project = project_copy
    use_tiny_params(project)
    # the stages every experiment shares, once, before the workers start (the README's recipe):
    # two workers computing the same outputs at once can collide in the shared DVC cache
    # ("failed to reproduce 'prepare': unable to remove 'data/prepared/images.npy' without a
    # confirmation", met in CI); the workers restore them from the run cache instead
    project.dvc("repro", "pretrain")
    project.git("add", "-A")
    project.git("commit", "-q", "-m", "shared stages")
    # the seed varies fastest, so the two workers start with different seeds and the second
    # strategy restores each seed's phase 1 from the run cache (the README's recipe)
    queued = project.dvc("exp", "run", "--queue", "-S", "al.strategy=random,entropy", "-S", "seed=0,1")
    assert queued.stdout.count("Queued experiment") == 4, queued.stdout
    project.dvc("exp", "run", "--queue", "-n", "broken", "-S", "data.image_size=2")  # fails in prepare
    project.dvc("queue", "start", "-j", "2")
    status = wait_for_queue(project)
    assert status.count("Success") == 4 and status.count("Failed") == 1, status + failed_logs(project, status)
    succeeded = tasks_in_state(status, "Success")
    assert len(succeeded) == 4, status
    logs = {name: project.dvc("queue", "logs", name).stdout for name in succeeded}
    for log in logs.values():  # restored, not run again
        assert "'prepare'" in log and "Running stage 'prepare'" not in log, log[-3000:]
        assert "Running stage 'pretrain'" not in log, log[-3000:]
    # the worker that finishes first takes a second-strategy run, whose seed's phase 1 has
    # finished by the time it gets there: restored from the run cache, not trained again
    restored = [name for name, log in logs.items() if "Stage 'lnl_train' is cached - skipping run" in log]
    assert restored, "\n".join(log[-2000:] for log in logs.values())
    project.dvc("exp", "run", "--queue", "-n", "waiting", "-S", "seed=7")  # left in the queue

    experiments = experiments_by_name(project)
    assert {e["state"] for name, e in experiments.items() if name not in ("broken", "waiting")} == {"success"}
    assert experiments["broken"]["state"] == "failed" and experiments["waiting"]["state"] == "queued"
    finished = {(e["params"]["seed"], e["params"]["al"]["strategy"]): e["metrics"]
                for e in experiments.values() if e["state"] == "success"}  # fmt: skip
    assert sorted(finished) == [(0, "entropy"), (0, "random"), (1, "entropy"), (1, "random")]
    for (seed, strategy), metrics in finished.items():
        # each run's outputs are its own: the report names its strategy, phase 1 depends on the seed only
        assert metrics["metrics/report.json"]["strategy"] == strategy
        assert metrics["metrics/lnl.json"]["selection"] == finished[(seed, "random")]["metrics/lnl.json"]["selection"]

    result = run([sys.executable, "-m", "stages.compare"], cwd=project.root)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("4 of 6 experiments finished, in 2 groups")
    rows = [line for line in result.stdout.splitlines() if re.match(r"\| (entropy|random) ", line)]
    assert len(rows) == 2, result.stdout
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        strategy, n, seeds, final = cells[:4]
        values = [finished[(seed, strategy)]["metrics/report.json"]["final_test_balanced_accuracy"] for seed in (0, 1)]
        assert (n, seeds) == ("2", "0 1")
        spread = f"{np.std(values, ddof=1):.3f}"
        assert final == f"{np.mean(values):.3f} ± {spread}"
    # each unfinished experiment with its values of every parameter the sweep varies: enough to queue it again
    assert re.search(r"\| broken +\| failed +\| [^|]*\bdata.image_size=2 [^|]*\bseed=0 ", result.stdout)
    assert re.search(r"\| waiting +\| queued +\| [^|]*\bseed=7 ", result.stdout)
    assert (project.root / "plots/compare.png").stat().st_size > 0
    assert (project.root / "metrics/compare.csv").read_text().startswith("al.strategy,n,seeds,")
    # paired with random seed by seed: the mean of the two seeds' differences
    paired = run([sys.executable, "-m", "stages.compare", "--baseline", "al.strategy=random"], cwd=project.root)
    assert paired.returncode == 0, paired.stderr
    final = {key: metrics["metrics/report.json"]["final_test_balanced_accuracy"] for key, metrics in finished.items()}
    difference = np.mean([final[(seed, "entropy")] - final[(seed, "random")] for seed in (0, 1)])
    (row,) = [line for line in paired.stdout.split("Paired with the baseline")[1].splitlines() if "| entropy" in line]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1] == "2" and cells[2].startswith(f"{difference:+.3f} ["), paired.stdout


def test_second_clone_pulls_phase_one_from_a_shared_remote(project_copy, tmp_path):
    first = project_copy
    use_tiny_params(first)
    remote = tmp_path / "dvc-remote"
    first.dvc("remote", "add", "-d", "shared", str(remote))
    ran = ran_stages(first.dvc("repro", "lnl_train").stdout)
    assert set(ran) == PHASE1 and len(ran) == len(PHASE1) and ran[-1] == "lnl_train"
    first.git("add", "-A")
    first.git("commit", "-q", "-m", "phase 1 on tiny params")
    first.dvc("push")
    assert any(remote.rglob("*")), "dvc push stored nothing in the remote"

    clone = tmp_path / "second"
    subprocess.run(["git", *GIT_IDENTITY, "clone", "-q", str(first.root), str(clone)], check=True)
    second = ProjectCopy(clone)
    assert not (clone / paths.LNL_CHECKPOINT).exists()
    second.dvc("pull", "--with-deps", "lnl_train")  # phase 1's outputs and everything upstream
    assert (clone / paths.LNL_CHECKPOINT).read_bytes() == (first.root / paths.LNL_CHECKPOINT).read_bytes()
    # phase 1 and the pretrain it reads are pulled, not recomputed (label_issues, no dependency
    # of lnl_train, never ran in the first clone)
    ran = ran_stages(second.dvc("repro").stdout)
    assert [name for name in ran if name != "label_issues"] == ROUND1


def test_a_sweep_split_over_two_machines_meets_in_one_table(project_copy, tmp_path, monkeypatch):
    """docs/experiments.md's recipe: two clones share a git remote and a DVC remote; each runs
    its share of the seeds from DVC's queue and pushes it with `dvc exp push`; one pulls all
    with `dvc exp pull` and compares. One experiment per machine: grouping several strategies
    is the queued sweep's test, and each more costs a whole pipeline."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the two "machines" share this one's two cores
    first = project_copy
    use_tiny_params(first)
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
    first.dvc("remote", "add", "-d", "shared", str(tmp_path / "dvc-remote"))
    first.dvc("repro", "pretrain")  # the shared stages, once; their dvc.lock entries are committed
    first.git("add", "-A")
    first.git("commit", "-q", "-m", "a DVC remote every machine reaches, the shared stages")
    first.dvc("push")
    first.git("remote", "add", "origin", str(origin))
    first.git("push", "-q", "origin", "HEAD:main")
    clone = tmp_path / "second"
    subprocess.run(["git", *GIT_IDENTITY, "clone", "-q", "--branch", "main", str(origin), str(clone)], check=True)
    second = ProjectCopy(clone)
    # a stage whose params and deps match dvc.lock is restored from the outputs dvc.lock names
    # (its timing file included): without them in the cache, every experiment would run it again
    second.dvc("pull", "--allow-missing")  # the stages the lock holds; it lacks the others

    for machine, seed in ((first, 0), (second, 1)):
        machine.dvc("exp", "run", "--queue", "-S", f"seed={seed}")
        machine.dvc("queue", "start", "-j", "1")
    for machine in (first, second):
        status = wait_for_queue(machine)
        assert status.count("Success") == 1, status + failed_logs(machine, status)
        log = machine.dvc("queue", "logs", tasks_in_state(status, "Success")[0]).stdout
        assert "Running stage 'pretrain'" not in log and "Running stage 'lnl_train'" in log, log[-2000:]
        machine.dvc("exp", "push", "origin")  # its experiment to git, its outputs to the DVC remote
    assert len(first.dvc("exp", "list", "origin", "--name-only").stdout.split()) == 2

    first.dvc("exp", "pull", "origin")  # the other machine's experiment, with its cached outputs
    experiments = experiments_by_name(first)
    assert sorted(e["params"]["seed"] for e in experiments.values()) == [0, 1]
    result = run([sys.executable, "-m", "stages.compare"], cwd=first.root)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("2 of 2 experiments finished, in 1 group")
    # one group, so no parameter column: the row starts with n and the seeds
    rows = [line for line in result.stdout.splitlines() if re.match(r"\| +2 \|", line)]
    assert [[cell.strip() for cell in row.strip("|").split("|")][:2] for row in rows] == [["2", "0 1"]]
    # the pulled experiment's outputs came through the DVC remote: apply one and check out its model
    name = next(n for n, e in experiments.items() if e["params"]["seed"] == 1)
    first.dvc("exp", "apply", name)
    assert (first.root / paths.round_dir(1) / paths.MODEL).is_file()
