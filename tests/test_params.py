"""params.yaml validation: the defaults and the shipped file, unknown keys, types, ranges,
choices, cross-key rules."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml
from builders import REPO_ROOT, deep_merge, in_ci

from alr_core.common.errors import AlrError
from alr_core.report.compare import flatten
from alr_core.common.params import (
    DEFAULT_ROUNDS,
    DataParams,
    NoiseParams,
    Params,
    RoundParams,
    check_class_names,
    default_params,
    load_params,
    parse_params,
    previous_dir,
)


def nested(key: str, value) -> dict:
    """{'a.b.c': v} → {'a': {'b': {'c': v}}}."""
    *parents, last = key.split(".")
    raw = {last: value}
    for parent in reversed(parents):
        raw = {parent: raw}
    return raw


def error_of(raw, source="params.yaml") -> str:
    with pytest.raises(AlrError) as info:
        parse_params(raw, source=source)
    return str(info.value)


def assert_subset(raw, parsed, where="") -> None:
    """Every key/value of the YAML mapping ``raw`` is in the parsed params (ints may become floats)."""
    for key, value in raw.items():
        assert key in parsed, f"{where}{key} missing after parsing"
        if isinstance(value, dict):
            assert_subset(value, parsed[key], f"{where}{key}.")
        else:
            assert parsed[key] == value, f"{where}{key}: {parsed[key]!r} != {value!r}"
            assert type(parsed[key]) is not bool or type(value) is bool


# ----------------------------------------------------------------------------- valid input


def test_default_params_pass_validation_and_round_trip(tmp_path):
    raw = default_params()
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert yaml.safe_load(path.read_text()) == raw
    params = load_params(path)
    assert_subset(raw, dataclasses.asdict(params))
    # every value is its dataclass default; only the rounds differ from an empty file's one round
    rounds = {str(r): RoundParams(previous_dir(r)) for r in range(1, DEFAULT_ROUNDS + 1)}
    assert params == dataclasses.replace(Params(), rounds=rounds)
    assert list(raw) == [f.name for f in dataclasses.fields(Params)]  # complete, in schema order
    assert raw["rounds"] == {"1": {"prev": "data/lnl"}, "2": {"prev": "data/rounds/1"}, "3": {"prev": "data/rounds/2"},
                             "4": {"prev": "data/rounds/3"}, "5": {"prev": "data/rounds/4"}}  # fmt: skip
    # a fresh clone runs offline on the bundled digits
    assert params.data.source == "digits" and params.data.path is None


def test_default_params_are_a_new_dict_every_call():
    """Callers change the dict they get (helpers set groups and rounds on it); the next call
    must still give the defaults."""
    changed = default_params()
    changed["data"]["source"] = "csv"
    changed["noise"]["keep_clean_classes"].append(1)
    changed["rounds"]["1"]["prev"] = "elsewhere"
    fresh = default_params()
    assert fresh["data"]["source"] == "digits"
    assert fresh["noise"]["keep_clean_classes"] == []
    assert fresh["rounds"]["1"]["prev"] == "data/lnl"


@pytest.mark.skipif(
    not in_ci(),
    reason="params.yaml is the user's to edit; only a clean clone, as CI tests it (CI set), "
    "must ship exactly the defaults",
)
def test_shipped_params_yaml_is_the_defaults():
    shipped = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    assert shipped == default_params(), (
        "params.yaml and alr_core/common/params.py disagree on a default; change both together"
    )


def documented_defaults() -> dict[str, str]:
    """docs/parameters.md's table rows: each key of the first column → its default, as written
    (a row may name several keys, "`a`, `b`", with as many defaults, "1, 2")."""
    documented = {}
    for line in (REPO_ROOT / "docs/parameters.md").read_text().splitlines():
        if not line.startswith("| `"):
            continue
        keys_cell, default_cell = (cell.strip() for cell in line.strip("| ").split("|")[:2])
        keys = re.findall(r"`([^`]+)`", keys_cell)
        defaults = [d.strip().strip("`") for d in default_cell.split(",")] if len(keys) > 1 else [default_cell]
        assert len(defaults) == len(keys), f"docs/parameters.md: {keys} but defaults {defaults}"
        documented |= dict(zip(keys, (d.strip("`") for d in defaults)))
    return documented


def test_docs_name_every_parameter_with_its_default():
    def value(text: str):
        parsed = yaml.safe_load(text)
        try:  # YAML reads 1e-6 (no dot) as text
            return float(parsed) if isinstance(parsed, str) else parsed
        except ValueError:
            return parsed

    documented = documented_defaults()
    leaves = {key: value for key, value in flatten(default_params()).items() if not key.startswith("rounds.")}
    assert [key for key in leaves if key not in documented] == [], "a parameter docs/parameters.md does not list"
    wrong = {key: (documented[key], default) for key, default in leaves.items()
             if value(documented[key]) != (list(default) if isinstance(default, tuple) else default)}  # fmt: skip
    assert wrong == {}, "docs/parameters.md's default (first) differs from the code's (second)"


def test_empty_mapping_gives_the_defaults():
    params = parse_params({})
    assert params == Params()
    assert params.data == DataParams()
    assert params.noise == NoiseParams()
    assert params.seed == 0


def test_empty_file_gives_the_defaults(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("# nothing set\n")
    assert load_params(path) == Params()


def test_values_are_converted_and_kept():
    params = parse_params(
        {
            "seed": 7,
            "budget": 0,
            "data": {
                "source": "csv",
                "path": "m.csv",
                "image_size": None,
                "channels": 3,
                "class_names": ["a", "b"],
                "imbalance_ratio": 5,
                "csv": {"label_column": "dx", "split_column": "fold"},
            },
            "noise": {"type": "pairflip", "rate": 0, "keep_clean_classes": [1, 0]},
        }
    )
    assert params.seed == 7 and params.budget == 0
    assert params.data.image_size is None
    assert params.data.channels == 3
    assert params.data.class_names == ["a", "b"]
    assert params.data.imbalance_ratio == 5.0 and type(params.data.imbalance_ratio) is float
    assert params.noise.rate == 0.0 and type(params.noise.rate) is float
    assert params.noise.keep_clean_classes == [1, 0]
    assert params.data.csv.label_column == "dx"
    assert params.data.csv.split_column == "fold"
    assert params.data.csv.image_column == "image"  # default kept inside a partly set group


# ----------------------------------------------------------------------------- unknown keys


@pytest.mark.parametrize(
    "raw, key, suggestion",
    [
        ({"sede": 1}, "sede", "seed"),
        ({"noise": {"rat": 0.2}}, "noise.rat", "noise.rate"),
        ({"data": {"imagesize": 28}}, "data.imagesize", "data.image_size"),
        ({"data": {"csv": {"label_col": "dx"}}}, "data.csv.label_col", "data.csv.label_column"),
    ],
)
def test_unknown_key_is_named_with_the_closest_valid_key(raw, key, suggestion):
    message = error_of(raw)
    assert message.startswith("params.yaml: ")
    assert f"unknown key '{key}'" in message
    assert f"did you mean '{suggestion}'?" in message


def test_unknown_key_without_a_close_match_lists_the_valid_keys():
    message = error_of({"noise": {"zzzzzz": 1}})
    assert "unknown key 'noise.zzzzzz'" in message
    assert "did you mean" not in message
    assert "valid keys under noise: type, rate, keep_clean_classes" in message


# ----------------------------------------------------------------------------- wrong types


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("seed", "abc", "'seed' must be an integer, got 'abc'"),
        ("seed", True, "'seed' must be an integer, got True"),
        ("seed", 1.5, "'seed' must be an integer, got 1.5"),
        ("budget", 10.0, "'budget' must be an integer, got 10.0"),
        ("data.val_per_class", "20", "'data.val_per_class' must be an integer, got '20'"),
        ("data.image_size", 28.0, "'data.image_size' must be an integer, got 28.0"),
        ("noise.rate", "0.4", "'noise.rate' must be a finite number, got '0.4'"),
        ("noise.rate", False, "'noise.rate' must be a finite number, got False"),
        ("noise.rate", float("nan"), "'noise.rate' must be a finite number, got nan"),
        ("data.imbalance_ratio", float("inf"), "'data.imbalance_ratio' must be a finite number, got inf"),
        ("data.path", 3, "'data.path' must be a non-empty string, got 3"),
        ("data.path", "", "'data.path' must be a non-empty string, got ''"),
        ("data.class_names", "a,b", "'data.class_names' must be a list of str, got 'a,b'"),
        ("data.class_names", ["a", 2], "'data.class_names[1]' must be a non-empty string, got 2"),
        ("noise.keep_clean_classes", 1, "'noise.keep_clean_classes' must be a list of int, got 1"),
        ("noise.keep_clean_classes", [0, "1"], "'noise.keep_clean_classes[1]' must be an integer, got '1'"),
        ("noise.keep_clean_classes", [True], "'noise.keep_clean_classes[0]' must be an integer, got True"),
        ("data", [1, 2], "'data' must be a mapping of keys, got [1, 2]"),
        ("data.csv", "image", "'data.csv' must be a mapping of keys, got 'image'"),
        ("noise", None, "'noise' must be a mapping of keys, got None"),
        ("al.annotators", 2.0, "'al.annotators' must be an integer, got 2.0"),
        ("al.image_url_prefix", "", "'al.image_url_prefix' must be a non-empty string, got ''"),
        ("al.image_url_prefix", 3, "'al.image_url_prefix' must be a non-empty string, got 3"),
    ],
)
def test_wrong_type_names_key_and_value(key, value, expected):
    message = error_of(nested(key, value))
    assert message == f"params.yaml: {expected}"


def test_top_level_must_be_a_mapping():
    assert "'top level' must be a mapping of keys, got [1]" in error_of([1])


# ----------------------------------------------------------------------------- ranges and choices


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("noise.rate", 1.0, "'noise.rate' is 1.0; valid range: [0.0, 1.0)"),
        ("noise.rate", 1, "'noise.rate' is 1.0; valid range: [0.0, 1.0)"),
        ("noise.rate", -0.1, "'noise.rate' is -0.1; valid range: [0.0, 1.0)"),
        ("budget", -1, "'budget' is -1; valid range: [0, inf)"),
        ("seed", -1, "'seed' is -1; valid range: [0, 4294967295]"),
        ("seed", 2**32, "'seed' is 4294967296; valid range: [0, 4294967295]"),
        ("data.image_size", 2, "'data.image_size' is 2; valid range: [4, 1024]"),
        ("data.val_per_class", 0, "'data.val_per_class' is 0; valid range: [1, inf)"),
        ("data.test_per_class", -5, "'data.test_per_class' is -5; valid range: [1, inf)"),
        ("data.imbalance_ratio", 0.5, "'data.imbalance_ratio' is 0.5; valid range: [1.0, inf)"),
        ("data.val_fraction", 0.0, "'data.val_fraction' is 0.0; valid range: (0.0, 1.0)"),
        ("data.test_fraction", 1.0, "'data.test_fraction' is 1.0; valid range: (0.0, 1.0)"),
        ("data.synthetic.num_train", 1, "'data.synthetic.num_train' is 1; valid range: [2, inf)"),
        ("data.synthetic.num_classes", 1, "'data.synthetic.num_classes' is 1; valid range: [2, 1000]"),
        ("al.annotators", 0, "'al.annotators' is 0; valid range: [1, 100]"),
        ("train.eval_batch_size", 0, "'train.eval_batch_size' is 0; valid range: [1, inf)"),
        ("al.annotator_noise", 1.0, "'al.annotator_noise' is 1.0; valid range: [0.0, 1.0)"),
        ("al.annotator_noise", -0.1, "'al.annotator_noise' is -0.1; valid range: [0.0, 1.0)"),
        ("model.backbone_lr", 0.0, "'model.backbone_lr' is 0.0; valid range: (0.0, 1.0]"),
        ("model.backbone_lr", 2, "'model.backbone_lr' is 2.0; valid range: (0.0, 1.0]"),
        ("lnl.clean_recall", 1.0, "'lnl.clean_recall' is 1.0; valid range: (0.0, 1.0)"),
        ("lnl.clean_recall", 0, "'lnl.clean_recall' is 0.0; valid range: (0.0, 1.0)"),
        ("lnl.cv_folds", 51, "'lnl.cv_folds' is 51; valid range: [2, 50]"),
        ("label_issues.neighbours_shown", 51, "'label_issues.neighbours_shown' is 51; valid range: [0, 50]"),
        ("train.augment.crop_padding", 65, "'train.augment.crop_padding' is 65; valid range: [0, 64]"),
        ("pretrain.batch_size", 1, "'pretrain.batch_size' is 1; valid range: [2, inf)"),  # no negatives
    ],
)
def test_out_of_range_names_key_value_and_range(key, value, expected):
    assert error_of(nested(key, value)) == f"params.yaml: {expected}"


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("noise.type", "gaussian", "'noise.type' is 'gaussian'; valid values: 'symmetric' | 'pairflip' | 'none'"),
        ("noise.type", "Symmetric",
         "'noise.type' is 'Symmetric' (did you mean 'symmetric'?); valid values: 'symmetric' | 'pairflip' | 'none'"),
        ("data.source", "medmnst", "'data.source' is 'medmnst' (did you mean 'medmnist'?); valid values: "
         "'digits' | 'synthetic' | 'medmnist' | 'imagefolder' | 'csv'"),
        ("data.source", "dicom", "'data.source' is 'dicom'; valid values: 'digits' | 'synthetic' | 'medmnist' | 'imagefolder' | 'csv'"),
        ("data.channels", 2, "'data.channels' is 2; valid values: 1 | 3"),
        ("data.channels", True, "'data.channels' is True; valid values: 1 | 3"),
        ("data.channels", "3", "'data.channels' is '3'; valid values: 1 | 3"),
        ("lnl.selection", "gmm", "'lnl.selection' is 'gmm'; valid values: 'global' | 'class_aware' | "
         "'class_gmm' | 'prototype' | 'noise_quota' | 'confident_learning' | 'knn_vote' | 'cleanlab_kfold' | "
         "'conformal_kfold'"),
        ("lnl.class_balance", "inverse", "'lnl.class_balance' is 'inverse'; valid values: 'none' | 'loss' | 'sampler'"),
        ("al.retrain", "warm", "'al.retrain' is 'warm'; valid values: 'finetune' | 'scratch'"),
        ("al.train_on", "clean", "'al.train_on' is 'clean'; valid values: 'selected' | 'all' | 'lnl'"),
        ("al.aggregate", "vote", "'al.aggregate' is 'vote'; valid values: 'majority' | 'dawid_skene' | 'cleanlab'"),
        ("train.eval_batch_size", "big", "'train.eval_batch_size' is 'big'; valid values: 'auto' or an integer"),
        ("train.eval_batch_size", "autoo",
         "'train.eval_batch_size' is 'autoo' (did you mean 'auto'?); valid values: 'auto' or an integer"),
    ],
)
def test_value_not_among_the_choices(key, value, expected):
    assert error_of(nested(key, value)) == f"params.yaml: {expected}"


# ----------------------------------------------------------------------------- cross-key rules


@pytest.mark.parametrize("val, test", [(0.5, 0.5), (0.6, 0.5), (0.9, 0.2)])
def test_split_fractions_that_leave_no_train(val, test):
    message = error_of({"data": {"val_fraction": val, "test_fraction": test}})
    assert f"'data.val_fraction' + 'data.test_fraction' = {val + test:g}" in message
    assert "must sum to less than 1" in message


def test_split_fractions_just_below_one_are_valid():
    params = parse_params({"data": {"val_fraction": 0.45, "test_fraction": 0.5}})
    assert params.data.val_fraction + params.data.test_fraction < 1


@pytest.mark.parametrize("source", ["medmnist", "imagefolder", "csv"])
def test_path_required_for_file_sources(source):
    message = error_of({"data": {"source": source}})
    assert message == f"params.yaml: 'data.path' is required when data.source is '{source}'"


@pytest.mark.parametrize("source", ["digits", "synthetic"])
def test_generated_sources_need_no_path(source):
    assert parse_params({"data": {"source": source, "path": None}}).data.path is None


def test_synthetic_needs_an_image_size():
    message = error_of({"data": {"source": "synthetic", "image_size": None}})
    assert message == "params.yaml: 'data.image_size' must be set when data.source is 'synthetic' (e.g. 28)"


def test_label_column_and_class_columns_exclude_each_other():
    message = error_of({"data": {"csv": {"label_column": "dx", "class_columns": ["MEL", "NV"]}}})
    assert "set either 'data.csv.label_column' or 'data.csv.class_columns', not both" in message


def test_keep_clean_class_listed_twice():
    assert "'noise.keep_clean_classes' lists a value twice" in error_of(
        {"noise": {"keep_clean_classes": [1, 2, 1]}}
    )


# ----------------------------------------------------------------------------- files


def test_load_params_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(AlrError, match="nope.yaml: file not found"):
        load_params(path)


def test_load_params_invalid_yaml(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("noise: {rate: 0.4\n")
    with pytest.raises(AlrError) as info:
        load_params(path)
    assert str(info.value).startswith(f"{path}: not valid YAML")


def test_load_params_reads_yaml_as_dvc_does(tmp_path):
    """YAML 1.2, as DVC reads params.yaml and `dvc exp run -S` writes it: PyYAML's YAML 1.1 read
    `1e-07` (what `-S pretrain.weight_decay=1e-7` writes) as text, `off` as false and `010` as 8."""
    from dvc.utils.serialize import parse_yaml

    path = tmp_path / "params.yaml"
    text = "seed: 010\npretrain:\n  weight_decay: 1e-07\nlnl:\n  safety_net: off\n"
    path.write_text(text)
    params = load_params(path)
    assert (params.seed, params.pretrain.weight_decay, params.lnl.safety_net) == (10, 1e-07, "off")
    assert parse_yaml(text, str(path)) == {"seed": 10, "pretrain": {"weight_decay": 1e-07},
                                           "lnl": {"safety_net": "off"}}
    path.write_text("noise:\n  rate: 0.4\n  rate: 0.9\n")  # DVC refuses it too
    with pytest.raises(AlrError) as info:
        load_params(path)
    assert str(info.value).startswith(f"{path}: not valid YAML") and 'found duplicate key "rate"' in str(info.value)
    assert "suppress" not in str(info.value)
    path.write_text("train:\n  augment:\n    hflip: yes\n")
    with pytest.raises(AlrError) as info:
        load_params(path)
    assert str(info.value) == (f"{path}: 'train.augment.hflip' must be true or false, got 'yes' (YAML 1.2, which "
                               "DVC reads, takes only true and false as booleans)")  # fmt: skip


def test_load_params_names_the_file_in_every_message(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("seed: 0\nnoise:\n  type: symmetric\n  rat: 0.2\n")
    with pytest.raises(AlrError) as info:
        load_params(path)
    assert str(info.value).startswith(f"{path}: unknown key 'noise.rat'; did you mean 'noise.rate'?")


def test_load_params_reads_values(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("seed: 3\nnoise:\n  type: none\n  rate: 0.0\nal:\n  oracle: human\n")
    params = load_params(path)
    assert params.seed == 3
    assert params.noise.type == "none" and params.noise.rate == 0.0
    assert params.data == DataParams()


@pytest.mark.parametrize(
    "override, fragment",
    [
        ({"data": {"channels": 1.0}}, "'data.channels' is 1.0; valid values: 1 | 3"),
        ({"data": {"class_names": ["a", "b", "a"]}}, "'data.class_names' lists a value twice"),
        ({"data": {"class_names": ["only"]}}, "'data.class_names' must list at least 2 classes"),
        ({"data": {"csv": {"class_columns": []}}}, "'data.csv.class_columns' must list at least 2 classes"),
        ({"noise": {"keep_clean_classes": [-1]}}, "'noise.keep_clean_classes[0]' is -1; valid range: [0, inf)"),
        ({"rounds": {1: {"prev": "data/lnl"}}}, "unquoted key 1"),
        ({"rounds": {"2": {"prev": "data/lnl"}}}, "'rounds' keys are ['2']; they must be ['1']"),
        ({"rounds": {"2": {"prev": "data/rounds/1"}, "1": {"prev": "data/lnl"}}},
         "'rounds' keys are ['2', '1']; they must be ['1', '2'] in this order"),
        ({"rounds": {}}, "'rounds' must be a non-empty mapping, got {}"),
        ({"rounds": {"1": {"prev": "data/lnl"}, "2": {"prev": "data/lnl"}}},
         "'rounds.2.prev' is 'data/lnl'; it must be 'data/rounds/1'"),
        ({"pretrain": {"method": "none"}, "model": {"init": "ssl"}},
         "'model.init' is 'ssl' but 'pretrain.method' is 'none'"),
        ({"model": {"init": "ssl", "freeze": "backbone", "backbone_lr": 0.1}},
         "'model.backbone_lr' is 0.1 but 'model.freeze' is 'backbone', which trains no backbone; set "
         "model.backbone_lr: 1.0, or model.freeze: none to fine-tune the backbone"),
        ({"model": {"freeze": "backbone"}}, "'model.freeze' is 'backbone', which trains a head on the pretrain "
                                            "stage's cached embeddings, so 'model.init' must be 'ssl' (it is 'scratch')"),
        ({"model": {"freeze": "backbone", "init": "weights/imagenet.pt"}},
         "so 'model.init' must be 'ssl' (it is 'weights/imagenet.pt')"),
        ({"al": {"pool": "selected", "paper_protocol": True}},
         "'al.pool' is 'selected' (query only inside phase 1's C) but 'al.paper_protocol' is true"),
        ({"lnl": {"method": "coteaching_vog", "selection": "global", "vog_source": "train",
                  "class_balance": "sampler"}},
         "'lnl.vog_source' is 'train' but 'lnl.class_balance' is 'sampler', whose batches draw with replacement"),
        ({"al": {"strategy": "bald"}, "model": {"dropout": 0.0}},
         "'al.strategy' is 'bald', which measures disagreement between dropout passes, but 'model.dropout' is 0"),
        ({"model": {"weights": "imagenet.pt"}},
         "unknown key 'model.weights'; it is now 'model.init' (scratch | ssl | a local weights file)"),
        ({"model": {"arch": ""}}, "'model.arch' must be a non-empty string"),
        ({"data": {"path": "x.npz"}}, "'data.path' is 'x.npz', but data.source 'digits' reads no file; set "
                                      "data.source to medmnist | imagefolder | csv to read it, or data.path: null"),
        ({"data": {"class_names": ["a", "Skip"]}},
         "'data.class_names': class 1 is 'Skip', the answer experts give to skip a sample; rename the class"),
        ({"data": {"class_names": ["a", " "]}}, "'data.class_names': class 1 is ' '; a class name must not be blank"),
        ({"data": {"class_names": ["a", " zero"]}},
         "'data.class_names': class 1 is ' zero', with spaces around it, which an expert's answer (read trimmed) "
         "cannot match; rename the class"),
        # a vertical tab pasted into a label cell: Label Studio's XML config cannot hold it
        ({"data": {"class_names": ["a", "Band\x0bcell"]}},
         "'data.class_names': class 1 is 'Band\\x0bcell', which holds the control character '\\x0b'; rename the "
         "class"),
        ({"lnl": {"method": "coteaching_vog", "selection": "knn_vote"}},
         "'lnl.method' is 'coteaching_vog', but 'lnl.selection' 'knn_vote' never reads VOG (only global | "
         "class_aware | class_gmm do), so the run would be plain Co-teaching; set lnl.selection: global (the paper's "
         "method), class_aware or class_gmm, or use lnl.method: coteaching"),
        ({"data": {"image_size": 8}, "train": {"augment": {"crop_padding": 3}}},
         "'train.augment.crop_padding' is 3 px, more than a quarter of 'data.image_size' (8 px)"),
        ({"budget": 6, "al": {"annotators": 7}},
         "'budget' is 6 answers, fewer than the 7 each queried sample takes ('al.annotators'), so no sample would "
         "be queried; raise budget to at least 7, lower al.annotators, or set budget: 0"),
        ({"lnl": {"method": "ce", "selection": "class_gmm"}},
         "'lnl.selection' is 'class_gmm', a rule over Co-teaching's networks, but 'lnl.method' is 'ce'"),
        ({"lnl": {"method": "ce", "selection": "class_aware"}}, "or lnl.selection: global for plain CE on every label"),
        ({"lnl": {"method": "coteaching_vog", "selection": "global", "epochs": 10}},
         "VOG needs 'lnl.vog_window' (5) snapshots and the warm-up of 'lnl.num_gradual' (10) epochs over first: it "
         "would first count after epoch 11, and 'lnl.epochs' is 10"),
        ({"lnl": {"method": "coteaching_vog", "selection": "global", "epochs": 20, "num_gradual": 2,
                  "vog_window": 21}}, "it would first count after epoch 21, and 'lnl.epochs' is 20"),
        ({"lnl": {"method": "coteaching_vog", "selection": "global"}, "al": {"train_on": "lnl", "retrain": "scratch"}},
         "'al.train_on' is 'lnl' and 'lnl.method' 'coteaching_vog', but in round 1 VOG needs 'lnl.vog_window' (5) "
         "snapshots and the warm-up of 'lnl.num_gradual' (10) epochs of a round retrained from scratch first: it "
         "would first steer training in epoch 12, and 'al.epochs' is 10, so the round would train as plain "
         "Co-teaching; set al.epochs to at least 12, lower lnl.vog_window or lnl.num_gradual, or use lnl.method: "
         "coteaching"),
        # 11 epochs: VOG is ready after the last one, for the round's reported C alone
        ({"lnl": {"method": "coteaching_vog", "selection": "global"},
          "al": {"train_on": "lnl", "retrain": "scratch", "epochs": 11}}, "'al.epochs' is 11"),
        ({"lnl": {"method": "coteaching_vog", "selection": "global"}, "al": {"train_on": "lnl"},
          "rounds": {"1": {"prev": "data/lnl"}, "2": {"prev": "data/rounds/1", "epochs": 5}}},
         "in round 2 VOG needs 'lnl.vog_window' (5) snapshots first: it would first steer training in epoch 6, and "
         "'rounds.2.epochs' is 5, so the round would train as plain Co-teaching; set rounds.2.epochs to at least 6, "
         "lower lnl.vog_window, or use lnl.method: coteaching"),
        ({"label_issues": {"neighbours_shown": 11}, "lnl": {"knn_k": 10}},
         "'label_issues.neighbours_shown' is 11, more than the 10 neighbours the report's kNN vote finds "
         "('lnl.knn_k'); lower it, or raise lnl.knn_k (which changes that vote, and phase 1's under lnl.selection: "
         "knn_vote)"),
    ],
)
def test_value_rules_beyond_types(override, fragment):
    assert fragment in error_of(override)


NONE = {"type": "none", "rate": 0.0}  # the dataset's own labels: the truth and the noise rate unknown


@pytest.mark.parametrize("override, message", [
    ({"lnl": {"method": "coteaching", "selection": "global"}, "al": {"oracle": "human"}},
     "'lnl.method' is 'coteaching', whose forget rate τ defaults to noise.rate, but 'noise.type' is 'none' (the "
     "labels are already noisy, at a rate alr cannot know), so it would drop nothing and train as plain CE on every "
     "label; set lnl.forget_rate to your estimate of the share of wrong labels (e.g. 0.2), or use lnl.method: ce "
     "with a rule on the pretrain embeddings (lnl.selection: cleanlab_kfold)"),
    ({"lnl": {"method": "coteaching_vog", "selection": "global"}, "budget": 0}, "'lnl.method' is 'coteaching_vog'"),
    ({}, "'al.oracle' is 'simulated' for round 1, which answers with the true labels, but 'noise.type' is 'none' "
         "(the labels are already noisy), so they are unknown; let experts answer: set al.oracle: human"),
    ({"al": {"oracle": "human"}, "rounds": {"1": {"prev": "data/lnl"},
                                            "2": {"prev": "data/rounds/1", "oracle": "simulated"}}},
     "'rounds.2.oracle' is 'simulated' for round 2"),
    ({"al": {"oracle": "human", "paper_protocol": True}},
     "'al.paper_protocol' is true, which gives every sample of phase 1's C its true label at round 1, but "
     "'noise.type' is 'none', so the true labels are unknown; set al.paper_protocol: false"),
    ({"budget": 0, "al": {"paper_protocol": True}}, "'al.paper_protocol' is true"),  # round 1 leaks C all the same
    # with two answers per sample, budget 4 queries 2 samples: one in each round
    ({"budget": 4, "al": {"annotators": 2}, "rounds": {"1": {"prev": "data/lnl", "oracle": "human"},
                                                       "2": {"prev": "data/rounds/1"}}},
     "'al.oracle' is 'simulated' for round 2"),
])  # fmt: skip
def test_what_needs_the_truth_or_the_noise_rate_stops_before_any_stage_under_noise_type_none(override, message):
    assert message in error_of(deep_merge({"noise": NONE}, override))


def test_the_boundaries_of_the_cross_key_rules():
    """Each rule above refuses only what it must: the first value on its other side passes."""
    parse_params({"budget": 7, "al": {"annotators": 7}})
    parse_params({"data": {"image_size": 8}, "train": {"augment": {"crop_padding": 2}}})
    parse_params({"data": {"image_size": None, "source": "medmnist", "path": "x.npz"},
                  "train": {"augment": {"crop_padding": 64}}})  # native size: not known before prepare
    parse_params({"budget": 0, "al": {"annotators": 7}})  # keeps the phase-1 model: nothing is queried
    for selection in ("global", "knn_vote", "cleanlab_kfold", "conformal_kfold"):
        parse_params({"lnl": {"method": "ce", "selection": selection}})
    parse_params({"lnl": {"method": "coteaching_vog", "selection": "global", "epochs": 11}})
    parse_params({"lnl": {"method": "coteaching_vog", "selection": "class_gmm", "epochs": 21, "num_gradual": 2,
                          "vog_window": 21}})  # fmt: skip
    parse_params({"lnl": {"method": "coteaching", "selection": "global", "epochs": 2}})  # no VOG to wait for
    # VOG from a no-grad pass over every sample: class-balanced batches that miss samples do not matter
    parse_params({"lnl": {"method": "coteaching_vog", "selection": "global", "class_balance": "sampler"}})
    vog = {"method": "coteaching_vog", "selection": "global"}
    parse_params({"lnl": vog, "al": {"train_on": "lnl", "retrain": "scratch", "epochs": 12}})
    parse_params({"lnl": vog, "al": {"train_on": "lnl", "epochs": 6}})  # fine-tuned rounds: no warm-up
    parse_params({"lnl": vog, "al": {"retrain": "scratch"}})  # train_on selected: plain CE in the rounds
    parse_params({"lnl": vog, "al": {"train_on": "lnl", "retrain": "scratch"}, "budget": 0})  # no round trains
    parse_params({"lnl": vog, "al": {"train_on": "lnl", "epochs": 40},  # the last round afresh, long enough
                  "rounds": {"1": {"prev": "data/lnl"}, "2": {"prev": "data/rounds/1", "retrain": "scratch"}}})
    parse_params({"data": {"class_names": ["skipped", "A", "a"]}})  # case tells names apart; only 'skip' is taken
    parse_params({"label_issues": {"neighbours_shown": 10}, "lnl": {"knn_k": 10}})  # every neighbour the vote found
    parse_params({"noise": NONE, "al": {"oracle": "human"}})  # the default phase 1 needs no noise rate
    parse_params({"noise": NONE, "al": {"oracle": "human"}, "lnl": {"method": "coteaching", "selection": "global",
                                                                    "forget_rate": 0.2}})  # fmt: skip
    parse_params({"noise": NONE, "budget": 0})  # no round asks the simulated oracle
    # budget 1 over 2 rounds (or 3 answers at 2 per sample): round 2 has no share, so nobody answers it
    two_rounds = {"1": {"prev": "data/lnl", "oracle": "human"}, "2": {"prev": "data/rounds/1"}}
    parse_params({"noise": NONE, "budget": 1, "rounds": two_rounds})
    parse_params({"noise": NONE, "budget": 3, "al": {"annotators": 2}, "rounds": two_rounds})


def test_params_file_that_is_a_folder(tmp_path):
    with pytest.raises(AlrError, match="cannot read the parameters file"):
        load_params(tmp_path)


def test_a_bad_round_key_is_named_before_rules_that_read_each_round():
    vog = {"method": "coteaching_vog", "selection": "global"}
    rounds = {"1": {"prev": "data/lnl"}, "x": {"prev": "data/rounds/1", "epochs": 1}}
    for override in ({"lnl": vog, "al": {"train_on": "lnl"}}, {"noise": NONE}):
        message = error_of(override | {"rounds": rounds})
        assert "'rounds' keys are ['1', 'x']; they must be ['1', '2'] in this order" in message


@pytest.mark.parametrize("init, folder", [("data/lnl/model.pt", "data/lnl"),
                                          ("./data/rounds/2/model.pt", "data/rounds"),
                                          ("data/pretrain/encoder.pt", "data/pretrain")])  # fmt: skip
def test_a_weights_file_the_pipeline_writes_is_refused(init, folder):
    message = error_of({"model": {"init": init}})
    assert f"'model.init' is {init!r}, inside {folder}/, which the pipeline itself writes" in message
    assert message.endswith("use model.init: ssl for the pretrain encoder") == (folder == "data/pretrain")
    assert "inside data/lnl/" in error_of({"model": {"init": str(Path.cwd() / "data/lnl/model.pt")}})
    parse_params({"model": {"init": "weights/data/lnl/model.pt"}})  # a copy elsewhere is the user's own


def test_a_round_without_prev_names_the_missing_key():
    assert "'rounds.1.prev' is missing under rounds.1" in error_of({"rounds": {"1": {}}})


@pytest.mark.parametrize("value", ["auto", 1, 512])
def test_eval_batch_size_is_auto_or_a_positive_integer(value):
    assert parse_params({"train": {"eval_batch_size": value}}).train.eval_batch_size == value
    assert "must be an integer" in error_of({"train": {"eval_batch_size": 2.5}})
    for wrong in (None, True, [64]):
        assert error_of({"train": {"eval_batch_size": wrong}}) == (
            f"params.yaml: 'train.eval_batch_size' must be 'auto' or an integer, got {wrong!r}")


@pytest.mark.parametrize("name, control", [("Band\ud800cell", "'\\ud800'"), ("Band\uffffcell", "'\\uffff'")])
def test_class_names_refuse_a_lone_surrogate_and_a_noncharacter(name, control):
    # a file name read with surrogateescape, or U+FFFF: XML (Label Studio's config) cannot hold either
    with pytest.raises(AlrError, match=f"class 1 is .*, which holds the control character {re.escape(control)}"):
        check_class_names(["a", name], "here")


def test_weights_file_linked_into_the_pipelines_outputs_is_refused(tmp_path, monkeypatch):
    """weights/prev.pt -> ../data/lnl/model.pt: DVC removes the target before lnl_train runs, so
    the link would dangle ("does not exist"); refused like the path itself."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "lnl").mkdir(parents=True)
    (tmp_path / "data" / "lnl" / "model.pt").write_bytes(b"")
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "prev.pt").symlink_to(Path("..") / "data" / "lnl" / "model.pt")
    with pytest.raises(AlrError, match="inside data/lnl/"):
        parse_params({"model": {"init": "weights/prev.pt"}})


def test_weights_file_inside_the_outputs_through_linked_folders_is_refused(tmp_path, monkeypatch):
    """data/ linked to another disk, or DVC's symlink cache (data/lnl/model.pt a link into
    .dvc/cache): resolved, neither path lies in data/lnl/, yet DVC removes the file all the same."""
    elsewhere = tmp_path / "disk" / "data"
    (elsewhere / "lnl").mkdir(parents=True)
    (elsewhere / "lnl" / "model.pt").write_bytes(b"")
    project = tmp_path / "project"
    project.mkdir()
    (project / "data").symlink_to(elsewhere)
    monkeypatch.chdir(project)
    with pytest.raises(AlrError, match="inside data/lnl/"):
        parse_params({"model": {"init": "data/lnl/model.pt"}})
    cached = tmp_path / "cached"
    (cached / ".dvc" / "cache").mkdir(parents=True)
    (cached / ".dvc" / "cache" / "ab12").write_bytes(b"")
    (cached / "data" / "rounds" / "1").mkdir(parents=True)
    (cached / "data" / "rounds" / "1" / "model.pt").symlink_to(cached / ".dvc" / "cache" / "ab12")
    monkeypatch.chdir(cached)
    with pytest.raises(AlrError, match="inside data/rounds/"):
        parse_params({"model": {"init": "data/rounds/1/model.pt"}})
