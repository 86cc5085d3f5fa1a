"""Caching correctness: every parameter a stage reads is a declared param of that stage.

DVC re-runs a stage only when a declared param changes, so a stage that reads a key dvc.yaml
does not list for it keeps serving outputs made under the key's old value. The import-closure
test (test_stage_deps.py) cannot see this: every stage loads the whole params.yaml. Here each
stage's ``main()`` runs in this process, in order, on tiny params, while the parameter objects
record which leaf keys are read after loading (the loader's own validation reads them all).
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
import typing
from pathlib import Path

import pytest
import yaml
from builders import REPO_ROOT, deep_merge, rounds_param, write_params

from alr_core.common import params as params_module
from alr_core.common.params import Params, default_params

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
}  # fmt: skip
ROUND = "1"
# reads that cannot change a stage's outputs, so declaring them would only re-run the stage
NOT_INPUTS = {
    # the oracle of this and later rounds, read to stop before scoring when the simulated
    # oracle would lack the true labels
    f"score_samples@{ROUND}": {"al.oracle"},
    f"query@{ROUND}": {"al.oracle"},  # which hint is printed
    f"retrain@{ROUND}": {"al.oracle"},  # a field of rounds.current_round's Round, unused there
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


def stage_command(name: str) -> list[str]:
    """dvc.yaml's ``python -m stages.x --round 1`` as the module's argv: [stages.x, --round, 1]."""
    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    stage = stages[name.split("@")[0]]
    command = (stage["do"] if "foreach" in stage else stage)["cmd"].replace("${key}", ROUND).split()
    assert command[:2] == ["python", "-m"], command
    return command[2:]


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
            self.by_id = {}
        self.by_id[id(obj)] = prefix
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


def _is_container(value) -> bool:
    """A group of parameters rather than one: its own reads are recorded key by key."""
    if dataclasses.is_dataclass(value):
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
        recorder.on = True
        return loaded

    monkeypatch.chdir(root)
    read = {}
    for name in declared_params():
        argv = stage_command(name)
        module = importlib.import_module(argv[0])
        monkeypatch.setattr(module, "load_params", load_params)
        monkeypatch.setattr(sys, "argv", argv)
        recorder.read = set()
        module.main()
        recorder.on = False
        read[name] = recorder.read
    return read


@pytest.mark.parametrize("configuration", sorted(CONFIGURATIONS))
def test_every_parameter_a_stage_reads_is_declared(stage_tree, monkeypatch, torch_state, configuration):
    raw = deep_merge(deep_merge(default_params(), TINY), CONFIGURATIONS[configuration])
    raw["rounds"] = rounds_param(1)
    write_params(stage_tree, raw=raw)
    read = run_pipeline_recording(stage_tree, monkeypatch)
    declared = declared_params()
    undeclared = {name: sorted(k for k in keys - NOT_INPUTS.get(name, set()) if not covered(k, declared[name]))
                  for name, keys in read.items()}  # fmt: skip
    assert not any(undeclared.values()), {name: keys for name, keys in undeclared.items() if keys}
    assert {"lnl.epochs", "seed"} <= read["lnl_train"] and "al.strategy" in read[f"score_samples@{ROUND}"]
