"""Caching correctness: every parameter and file a stage reads is declared in dvc.yaml for it.

DVC re-runs a stage only when a declared param or dep changes, so a stage that reads a key or
a file dvc.yaml does not list for it keeps serving outputs made from the old value. The
import-closure test (test_stage_deps.py) sees code only. Here each stage's ``main()`` runs in
this process, in order, on tiny params:
- while the parameter objects record which leaf keys are read after loading (the loader's own
  validation reads them all);
- then again, alone in a folder holding only params.yaml and its declared deps, where it must
  write the same outputs: a file it reads but does not declare is missing there, and a stage
  that reads one only when present writes something else.
"""

from __future__ import annotations

import dataclasses
import filecmp
import importlib
import json
import shutil
import sys
import typing
from pathlib import Path

import pytest
import yaml
from builders import REPO_ROOT, copy_stage_tree, deep_merge, rounds_param, write_params

from alr_core.common import params as params_module
from alr_core.common.params import Params, default_params, load_params

TINY = {
    "seed": 0,
    "budget": 6,
    "data": {"source": "digits", "image_size": 8, "val_per_class": 5, "test_per_class": 5},
    "train": {"device": "cpu", "batch_size": 32},
    "pretrain": {"epochs": 1, "batch_size": 64},
    "lnl": {"epochs": 2},
    "al": {"epochs": 1},
}
# the default run; and the paper's loss-based phase 1, a head on the pretrain embeddings, MC-dropout
# scores and rounds through phase 1's loop: other branches of every training stage
CONFIGURATIONS = {
    "defaults": {},
    "coteaching_vog, frozen head": {
        "lnl": {"method": "coteaching_vog", "selection": "class_gmm", "epochs": 3, "num_gradual": 1,
                "vog_window": 2},
        "model": {"init": "ssl", "freeze": "backbone"},
        "al": {"strategy": "bald", "retrain": "scratch", "train_on": "lnl", "epochs": 3},
    },
    # Co-teaching that forgets 90 % of the labels: the safety net hands on plain CE's single
    # network, and the rounds through phase 1's loop go on with CE (they read lnl.json for it)
    "coteaching, safety net picks CE": {
        "noise": {"rate": 0.1},
        "lnl": {"method": "coteaching", "selection": "global", "forget_rate": 0.9, "epochs": 3, "num_gradual": 1},
        "al": {"retrain": "finetune", "train_on": "lnl"},
    },
}  # fmt: skip
ROUND = "1"
# reads that cannot change a stage's outputs, so declaring them would only re-run the stage
NOT_INPUTS = {
    f"score_samples@{ROUND}": {"al.oracle"},  # a field of rounds.current_round's Round, unused there
    f"query@{ROUND}": {"al.oracle"},  # which hint is printed
    # as in score_samples; and the number of rounds, for the round's share of the budget, which
    # its query (a dep) carries already: declaring `rounds` would re-run every round's retrain
    # when one round's entry changes
    f"retrain@{ROUND}": {"al.oracle", "rounds"},
}


def declared_params() -> dict[str, list[str]]:
    """Stage name (a round's stages as ``<stage>@1``) → its dvc.yaml params, ``${key}`` resolved."""
    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    declared = {}
    for name, stage in stages.items():
        body, name = (stage["do"], f"{name}@{ROUND}") if "foreach" in stage else (stage, name)
        keys = [key if isinstance(key, str) else next(iter(key)) for key in body.get("params", [])]
        declared[name] = [key.replace("${key}", ROUND) for key in keys]
    return declared


def stage_body(name: str) -> dict:
    """A stage of dvc.yaml, for a round's stage (``<stage>@1``) its ``do`` body."""
    stage = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"][name.split("@")[0]]
    return stage["do"] if "foreach" in stage else stage


def resolved(entry: str) -> str:
    """A dvc.yaml path or command of round 1: ``${key}`` and its ``${item.prev}`` filled in."""
    return entry.replace("${key}", ROUND).replace("${item.prev}", rounds_param(1)[ROUND]["prev"])


def stage_command(name: str) -> list[str]:
    """dvc.yaml's ``python -m stages.x --round 1`` as the module's argv: [stages.x, --round, 1]."""
    command = resolved(stage_body(name)["cmd"]).split()
    assert command[:2] == ["python", "-m"], command
    return command[2:]


def data_deps(name: str) -> list[str]:
    """The stage's declared deps other than code (alr_core/, stages/)."""
    deps = [resolved(dep) for dep in stage_body(name)["deps"]]
    return [dep for dep in deps if dep.split("/")[0] not in ("alr_core", "stages")]


def outputs(name: str) -> list[str]:
    """The stage's outs, metrics and plots but its wall-clock timings (which differ run to run)."""
    body = stage_body(name)
    entries = [entry if isinstance(entry, str) else next(iter(entry))
               for kind in ("outs", "metrics", "plots") for entry in body.get(kind, [])]  # fmt: skip
    return [resolved(entry) for entry in entries if not entry.endswith("_timing.json")]


def covered(key: str, declared: list[str]) -> bool:
    return any(key == d or key.startswith(f"{d}.") for d in declared)


class ReadRecorder:
    """Records the dotted keys of the leaf parameters read from the loaded Params objects.

    Each object the loader built is known by identity (``rounds.1`` for the first round's
    entry); an object made later, by dataclasses.replace as round_params does, is known by its
    class. dataclasses.replace copying every field is not a read of the stage."""

    def __init__(self) -> None:
        self.on = False
        self.read: set[str] = set()
        self.by_id: dict[int, str] = {}
        self.alive: list = []
        self.by_class: dict[type, str] = {}
        self._map_classes(Params, "")

    def _map_classes(self, cls: type, prefix: str) -> None:
        """Each parameter class → the prefix of its keys (``rounds.*.`` for a round's entry)."""
        self.by_class[cls] = prefix
        for name, hint in typing.get_type_hints(cls).items():
            nested = typing.get_args(hint)[-1] if typing.get_origin(hint) is dict else hint
            if dataclasses.is_dataclass(nested):
                self._map_classes(nested, f"{prefix}{name}.*." if nested is not hint else f"{prefix}{name}.")

    def map_instances(self, obj, prefix: str = "") -> None:
        """The objects of one load by identity (a freed earlier load's ids may be reused)."""
        if not prefix:
            self.by_id, self.alive = {}, []
        self.by_id[id(obj)] = prefix
        # held, so that no object made later (dataclasses.replace in round_params, method_handed_on)
        # can get a freed one's id and have its reads recorded under the wrong group ('al.seed')
        self.alive.append(obj)
        for field in dataclasses.fields(obj):
            value = object.__getattribute__(obj, field.name)
            if dataclasses.is_dataclass(value):
                self.map_instances(value, f"{prefix}{field.name}.")
            elif isinstance(value, dict) and value and all(dataclasses.is_dataclass(v) for v in value.values()):
                for key, entry in value.items():
                    self.map_instances(entry, f"{prefix}{field.name}.{key}.")

    def install(self, monkeypatch) -> None:
        recorder = self
        for cls in self.by_class:
            names = {field.name for field in dataclasses.fields(cls)}

            def getattribute(obj, name, _names=names, _cls=cls):
                value = object.__getattribute__(obj, name)
                if recorder.on and name in _names and not _is_container(value):
                    caller = sys._getframe(1)
                    if (caller.f_globals.get("__name__"), caller.f_code.co_name) != ("dataclasses", "replace"):
                        prefix = recorder.by_id.get(id(obj), recorder.by_class[_cls])
                        recorder.read.add(prefix + name)
                return value

            monkeypatch.setattr(cls, "__getattribute__", getattribute, raising=False)


class RecordedRounds(dict):
    """``params.rounds`` that records reads of the mapping itself, the number of rounds and their
    names (``rounds``, as split_budget's shares need); an entry taken by name records only the
    keys read from it, and the membership test of a stage's own round nothing."""

    def __init__(self, rounds: dict, recorder: ReadRecorder) -> None:
        super().__init__(rounds)
        self.recorder = recorder

    def _read_whole(self) -> None:
        if self.recorder.on:
            self.recorder.read.add("rounds")

    def __len__(self) -> int:
        self._read_whole()
        return super().__len__()

    def __iter__(self):
        self._read_whole()
        return super().__iter__()

    def keys(self):
        self._read_whole()
        return super().keys()

    def values(self):
        self._read_whole()
        return super().values()

    def items(self):
        self._read_whole()
        return super().items()


def _is_container(value) -> bool:
    """A group of parameters rather than one: its own reads are recorded key by key."""
    if dataclasses.is_dataclass(value) or isinstance(value, RecordedRounds):
        return True
    return isinstance(value, dict) and bool(value) and all(dataclasses.is_dataclass(v) for v in value.values())


def run_pipeline_recording(root: Path, monkeypatch) -> dict[str, set[str]]:
    """Run every stage of dvc.yaml for round 1 in dvc.yaml's order; stage → keys it read."""
    recorder = ReadRecorder()
    recorder.install(monkeypatch)
    real_load = params_module.load_params

    def load_params(path):
        recorder.on = False
        loaded = real_load(path)
        recorder.map_instances(loaded)
        object.__setattr__(loaded, "rounds", RecordedRounds(loaded.rounds, recorder))
        recorder.on = True
        return loaded

    monkeypatch.chdir(root)
    read = {}
    for name in declared_params():
        recorder.read = set()
        run_main(name, monkeypatch, load_params)
        recorder.on = False
        read[name] = recorder.read
    return read


def run_main(name: str, monkeypatch, load_params=params_module.load_params) -> None:
    """Stage ``name``'s main() in this process, in the current folder, with its dvc.yaml argv."""
    argv = stage_command(name)
    module = importlib.import_module(argv[0])
    monkeypatch.setattr(module, "load_params", load_params)
    monkeypatch.setattr(sys, "argv", argv)
    module.main()


def same_files(left: Path, right: Path) -> bool:
    """Whether two files, or two folders file by file, hold the same bytes."""
    if left.is_dir() and right.is_dir():
        names = sorted(p.relative_to(left) for p in left.rglob("*") if p.is_file())
        if names != sorted(p.relative_to(right) for p in right.rglob("*") if p.is_file()):
            return False
        return all(same_files(left / name, right / name) for name in names)
    if not (left.is_file() and right.is_file()):
        return False
    return filecmp.cmp(left, right, shallow=False)


@dataclasses.dataclass
class TinyRun:
    name: str  # its key in CONFIGURATIONS
    root: Path  # the project folder the whole pipeline ran in
    read: dict[str, set[str]]  # stage → the parameter keys it read


@pytest.fixture(scope="module", params=sorted(CONFIGURATIONS))
def tiny_run(request, tmp_path_factory, torch_state) -> TinyRun:
    """Every stage of round 1, in order, in one folder, recording the parameters each reads."""
    root = copy_stage_tree(tmp_path_factory.mktemp("tiny") / "project")
    raw = deep_merge(deep_merge(default_params(), TINY), CONFIGURATIONS[request.param])
    raw["rounds"] = rounds_param(1)
    write_params(root, raw=raw)
    with pytest.MonkeyPatch.context() as monkeypatch:
        return TinyRun(request.param, root, run_pipeline_recording(root, monkeypatch))


def test_every_parameter_a_stage_reads_is_declared(tiny_run):
    declared = declared_params()
    undeclared = {name: sorted(k for k in keys - NOT_INPUTS.get(name, set()) if not covered(k, declared[name]))
                  for name, keys in tiny_run.read.items()}  # fmt: skip
    assert not any(undeclared.values()), {name: keys for name, keys in undeclared.items() if keys}
    assert {"lnl.epochs", "seed"} <= tiny_run.read["lnl_train"]
    assert "al.strategy" in tiny_run.read[f"score_samples@{ROUND}"]


def test_rounds_through_phase_1_go_on_with_the_network_it_handed_on(tiny_run):
    """al.train_on: lnl continues phase 1's loop from the network phase 1 handed on: the method's,
    or plain CE's single network when the safety net picked CE (Co-teaching cannot go on from it)."""
    import torch

    params = load_params(tiny_run.root / "params.yaml")
    if params.al.train_on != "lnl":
        pytest.skip("the rounds train with plain CE whatever phase 1 handed on")
    picked_ce = json.loads((tiny_run.root / "metrics/lnl.json").read_text())["safety_net"]["used"] == "ce"
    assert picked_ce is ("picks CE" in tiny_run.name)  # the configuration does test what it says
    metrics = json.loads((tiny_run.root / f"metrics/rounds/{ROUND}.json").read_text())
    method = ("ce", "global") if picked_ce else (params.lnl.method, params.lnl.selection)
    assert (metrics["lnl_method"], metrics["lnl_selection"]) == method and metrics["retrained"]
    checkpoint = torch.load(tiny_run.root / f"data/rounds/{ROUND}/model.pt", weights_only=False)
    assert (checkpoint["peer_state_dict"] is None) is picked_ce


def test_every_file_a_stage_reads_is_a_declared_dep(tiny_run, tmp_path, monkeypatch):
    differ = {}
    for name in declared_params():
        alone = tmp_path / name
        alone.mkdir()
        shutil.copy2(tiny_run.root / "params.yaml", alone / "params.yaml")
        for dep in data_deps(name):
            if (tiny_run.root / dep).is_dir():
                shutil.copytree(tiny_run.root / dep, alone / dep)
            elif (tiny_run.root / dep).is_file():  # annotations/ exists for the human oracle only
                (alone / dep).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(tiny_run.root / dep, alone / dep)
        monkeypatch.chdir(alone)
        run_main(name, monkeypatch)
        differ[name] = [out for out in outputs(name) if not same_files(alone / out, tiny_run.root / out)]
    assert not any(differ.values()), {name: outs for name, outs in differ.items() if outs}
    assert len(differ) == 11 and sum(map(len, map(outputs, differ))) > 30
