"""Typed, validated access to ``params.yaml``.

Every stage calls :func:`load_params` first. The whole file is checked, not only the stage's
own group, so a typo anywhere fails fast with a message that names the key, the value and
what would be valid (and, for an unknown key or a misspelt word, the closest valid one).

The file is read the way DVC reads it (ruamel.yaml, YAML 1.2), so that a stage runs with the
values dvc.lock records and ``dvc exp run -S`` writes: ``1e-07`` is a number, ``off`` is text,
``010`` is ten, and a key given twice is an error.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

from ruamel.yaml import YAML, YAMLError

from alr_core.common import paths
from alr_core.common.errors import AlrError
from alr_core.common.text import close_match, did_you_mean


SKIP_ANSWER = "skip"  # an expert's answer that skips a sample (the annotation page writes it)
# The one list of each choice's names: the Literal types below are built from them, the code that
# dispatches on them imports them, and tests/test_choices.py checks both against each other.
# lnl.selection rules: per-batch small-loss cuts (alr_core.lnl.selection)
BATCH_RULES = ("global", "class_aware")
# lnl.selection rules decided from whole-split statistics (alr_core.lnl.class_rules)
CLASS_RULES = ("class_gmm", "prototype", "noise_quota", "confident_learning")
# lnl.selection rules decided once on the pretrain embeddings (alr_core.lnl.feature_rules)
FEATURE_RULES = ("knn_vote", "cleanlab_kfold", "conformal_kfold")
VOG_RULES = ("global", "class_aware", "class_gmm")  # lnl.selection rules that read VOG (lnl.method coteaching_vog)
# al.strategy: the query scores (alr_core.active.strategies, dispatched in alr_core.active.scoring)
STRATEGIES = ("random", "entropy", "least_confidence", "margin", "bald", "coreset", "label_disagreement")
# data.source: every reader (alr_core.data.sources.READERS); the generated ones read no file
SOURCES = ("digits", "synthetic", "medmnist", "imagefolder", "csv")
GENERATED_SOURCES = ("digits", "synthetic")

# keys of earlier releases → where their setting lives now
RENAMED = {"model.weights": "'model.init' (scratch | ssl | a local weights file)"}


def _range(low=None, high=None, *, low_open=False, high_open=False):
    """Field metadata: the valid numeric range of a parameter."""
    return {"range": (low, high, low_open, high_open)}


@dataclass(frozen=True)
class CsvParams:
    image_column: str = "image"
    label_column: Optional[str] = None
    class_columns: Optional[list[str]] = None
    split_column: Optional[str] = None
    group_column: Optional[str] = None
    image_root: Optional[str] = None


@dataclass(frozen=True)
class SyntheticParams:
    num_train: int = field(default=2000, metadata=_range(2, None))
    num_classes: int = field(default=5, metadata=_range(2, 1000))


@dataclass(frozen=True)
class DataParams:
    source: Literal[SOURCES] = "digits"
    path: Optional[str] = None
    image_size: Optional[int] = field(default=28, metadata=_range(4, 1024))
    channels: Optional[Literal[1, 3]] = None
    class_names: Optional[list[str]] = None
    imbalance_ratio: float = field(default=10.0, metadata=_range(1.0, None))
    val_per_class: int = field(default=15, metadata=_range(1, None))
    test_per_class: int = field(default=30, metadata=_range(1, None))
    val_fraction: float = field(default=0.1, metadata=_range(0.0, 1.0, low_open=True, high_open=True))
    test_fraction: float = field(default=0.2, metadata=_range(0.0, 1.0, low_open=True, high_open=True))
    # the splits' own seed, not the top-level one: replicates (``seed``) share one split, and
    # so do the stages that depend on it alone (prepare, pretrain)
    split_seed: int = field(default=0, metadata=_range(0, 2**32 - 1))
    # hash: each image's draw rank is a keyed hash of its id, so adding images to a folder moves few
    # others between splits; shuffle: the per-class permutation of every alr before this key
    split_order: Literal["hash", "shuffle"] = "hash"
    csv: CsvParams = field(default_factory=CsvParams)
    synthetic: SyntheticParams = field(default_factory=SyntheticParams)


@dataclass(frozen=True)
class PretrainParams:
    """Self-supervised pretraining of the encoder on the train split's images (no labels)."""

    # simclr by default: its embeddings rank wrong labels better than a random initialisation's
    # on all four measured sets (bench/ssl_evidence.md), for 15 epochs of about 1 s per 500 images
    method: Literal["simclr", "vicreg", "none"] = "simclr"
    seed: int = field(default=0, metadata=_range(0, 2**32 - 1))
    epochs: int = field(default=15, metadata=_range(1, None))
    batch_size: int = field(default=256, metadata=_range(2, None))
    lr: float = field(default=0.001, metadata=_range(0.0, None, low_open=True))
    weight_decay: float = field(default=1e-6, metadata=_range(0.0, None))
    temperature: float = field(default=0.2, metadata=_range(0.0, None, low_open=True))
    projection_dim: int = field(default=64, metadata=_range(1, None))
    crop_scale_min: float = field(default=0.3, metadata=_range(0.0, 1.0, low_open=True))
    rotation: float = field(default=10.0, metadata=_range(0.0, 180.0))
    brightness: float = field(default=0.4, metadata=_range(0.0, 1.0, high_open=True))
    contrast: float = field(default=0.4, metadata=_range(0.0, 1.0, high_open=True))
    blur_probability: float = field(default=0.5, metadata=_range(0.0, 1.0))
    blur_sigma: float = field(default=1.0, metadata=_range(0.1, None))


@dataclass(frozen=True)
class NoiseParams:
    type: Literal["symmetric", "pairflip", "none"] = "symmetric"
    rate: float = field(default=0.4, metadata=_range(0.0, 1.0, high_open=True))
    keep_clean_classes: list[int] = field(default_factory=list, metadata=_range(0, None))


@dataclass(frozen=True)
class ModelParams:
    # auto | small_cnn | resnet18 | a timm architecture name (checked when the model is built:
    # knowing timm's names means importing it, which stages without a model should not pay for)
    arch: str = "auto"
    init: str = "scratch"  # scratch | ssl | a local weights file
    freeze: Literal["none", "backbone"] = "none"
    # the backbone's learning rate as a share of the head's (train.lr, al.lr): below 1 a loaded
    # backbone (init ssl or a file) keeps more of what it learnt while the head fits the labels
    backbone_lr: float = field(default=1.0, metadata=_range(0.0, 1.0, low_open=True))
    dropout: float = field(default=0.3, metadata=_range(0.0, 1.0, high_open=True))


@dataclass(frozen=True)
class AugmentParams:
    crop_padding: int = field(default=2, metadata=_range(0, 64))
    hflip: bool = False
    vflip: bool = False


@dataclass(frozen=True)
class TrainParams:
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # >1: pretrain, lnl_train and retrain run data-parallel under torchrun (alr_core.nn.distributed)
    processes: int = field(default=1, metadata=_range(1, None))
    mixed_precision: bool = False
    batch_size: int = field(default=64, metadata=_range(2, None))
    lr: float = field(default=0.05, metadata=_range(0.0, None, low_open=True))
    momentum: float = field(default=0.9, metadata=_range(0.0, 1.0, high_open=True))
    weight_decay: float = field(default=5e-4, metadata=_range(0.0, None))
    # auto: 128 on the CPU, by image size on a GPU (alr_core.nn.training.eval_batch_rows)
    eval_batch_size: int | Literal["auto"] = field(default="auto", metadata=_range(1, None))
    augment: AugmentParams = field(default_factory=AugmentParams)


@dataclass(frozen=True)
class LnlParams:
    method: Literal["ce", "coteaching", "coteaching_vog"] = "ce"
    epochs: int = field(default=40, metadata=_range(1, None))
    forget_rate: Optional[float] = field(default=None, metadata=_range(0.0, 1.0, high_open=True))
    num_gradual: int = field(default=10, metadata=_range(0, None))
    exponent: float = field(default=1.0, metadata=_range(0.0, None, low_open=True))
    vog_window: int = field(default=5, metadata=_range(2, None))
    vog_mix: float = field(default=0.2, metadata=_range(0.0, 1.0))
    vog_source: Literal["eval", "train"] = "eval"
    vog_normalize: Literal["none", "class"] = "none"
    selection: Literal[BATCH_RULES + CLASS_RULES + FEATURE_RULES] = "cleanlab_kfold"
    keep_above_chance: Literal["never", "clean_guess", "always"] = "clean_guess"
    class_balance: Literal["none", "loss", "sampler"] = "none"
    # off | check: also train plain CE, compare on the validation split and report | pick: as check,
    # and use CE's model when it scored higher (alr_core/lnl/safety_net.py)
    safety_net: Literal["off", "check", "pick"] = "pick"
    knn_k: int = field(default=10, metadata=_range(1, None))
    cv_folds: int = field(default=5, metadata=_range(2, 50))
    clean_recall: float = field(default=0.9, metadata=_range(0.0, 1.0, low_open=True, high_open=True))


@dataclass(frozen=True)
class LabelIssuesParams:
    """The label-issue report (stage label_issues); it also reads lnl.knn_k and lnl.cv_folds."""

    gallery_size: int = field(default=100, metadata=_range(0, None))
    neighbours_shown: int = field(default=5, metadata=_range(0, 50))
    map_size: int = field(default=2000, metadata=_range(0, None))


@dataclass(frozen=True)
class AlParams:
    strategy: Literal[STRATEGIES] = "label_disagreement"
    pool: Literal["unselected", "unselected_first", "all", "selected"] = "all"
    oracle: Literal["simulated", "human"] = "simulated"
    allow_partial: bool = False
    paper_protocol: bool = False
    retrain: Literal["finetune", "scratch"] = "finetune"
    train_on: Literal["selected", "all", "lnl"] = "selected"
    class_balance: Literal["none", "loss", "sampler"] = "loss"
    epochs: int = field(default=10, metadata=_range(1, None))
    lr: float = field(default=0.01, metadata=_range(0.0, None, low_open=True))
    mc_passes: int = field(default=10, metadata=_range(2, None))
    entropy_threshold: float = field(default=0.3, metadata=_range(0.0, None))
    annotators: int = field(default=1, metadata=_range(1, 100))
    annotator_noise: float = field(default=0.0, metadata=_range(0.0, 1.0, high_open=True))
    aggregate: Literal["majority", "dawid_skene", "cleanlab"] = "majority"
    image_url_prefix: Optional[str] = None


@dataclass(frozen=True)
class RoundParams:
    """One round's entry in ``rounds``; every key but ``prev`` overrides its ``al.*`` key for
    this round only (None: the ``al`` value)."""

    prev: str
    oracle: Optional[Literal["simulated", "human"]] = None
    retrain: Optional[Literal["finetune", "scratch"]] = None
    epochs: Optional[int] = field(default=None, metadata=_range(1, None))
    lr: Optional[float] = field(default=None, metadata=_range(0.0, None, low_open=True))


def _default_rounds() -> dict:
    return {"1": RoundParams(paths.LNL_DIR.as_posix())}


@dataclass(frozen=True)
class Params:
    seed: int = field(default=0, metadata=_range(0, 2**32 - 1))
    budget: int = field(default=100, metadata=_range(0, None))
    data: DataParams = field(default_factory=DataParams)
    pretrain: PretrainParams = field(default_factory=PretrainParams)
    noise: NoiseParams = field(default_factory=NoiseParams)
    model: ModelParams = field(default_factory=ModelParams)
    train: TrainParams = field(default_factory=TrainParams)
    lnl: LnlParams = field(default_factory=LnlParams)
    label_issues: LabelIssuesParams = field(default_factory=LabelIssuesParams)
    al: AlParams = field(default_factory=AlParams)
    rounds: dict[str, RoundParams] = field(default_factory=_default_rounds)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``path``; raise :class:`AlrError` naming the first bad key."""
    path = Path(path)
    try:
        raw = yaml_value(path.read_text())  # DVC's parse_yaml
    except FileNotFoundError:
        raise AlrError(f"{path}: file not found; run the stage from the project folder") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AlrError(f"{path}: cannot read the parameters file ({exc})") from None
    except YAMLError as exc:
        detail = str(exc).split("\nTo suppress this check", 1)[0].strip()  # ruamel's advice to allow duplicate keys
        raise AlrError(f"{path}: not valid YAML: {detail}") from None
    return parse_params(raw if raw is not None else {}, source=str(path))


def yaml_value(text: str) -> Any:
    """A value written as in params.yaml or ``dvc exp run -S key=value`` (YAML 1.2, as DVC reads
    both): ``1e-7`` a number, ``off`` text, ``[a, b]`` a list."""
    return YAML(typ="safe").load(text)


def parse_params(raw: Any, source: str = "params") -> Params:
    params = _build(Params, raw, prefix="", source=source)
    _check_consistency(params, source)
    return params


def _build(cls, raw: Any, prefix: str, source: str):
    where = prefix.rstrip(".") or "top level"
    if not isinstance(raw, dict):
        raise AlrError(f"{source}: '{where}' must be a mapping of keys, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in raw:
        if key not in fields:
            close = close_match(key, fields)
            hint = f"; did you mean '{prefix}{close}'?" if close else ""
            if f"{prefix}{key}" in RENAMED:
                hint = f"; it is now {RENAMED[f'{prefix}{key}']}"
            raise AlrError(
                f"{source}: unknown key '{prefix}{key}'{hint} (valid keys under {where}: "
                f"{', '.join(fields)})"
            )
    values = {}
    for name, spec in fields.items():
        if name in raw:
            values[name] = _convert(hints[name], raw[name], f"{prefix}{name}", source, spec.metadata)
        elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            raise AlrError(f"{source}: '{prefix}{name}' is missing under {where}")
    return cls(**values)


def _convert(hint, value: Any, key: str, source: str, metadata) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        if value is None:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, key, source, metadata)
    if origin in (typing.Union, types.UnionType):  # a number or a word, as `int | Literal["auto"]`
        word, number = sorted(args, key=lambda a: typing.get_origin(a) is not Literal)
        valid = " | ".join(repr(a) for a in typing.get_args(word))
        kind = "an integer" if number is int else "a number"
        if isinstance(value, str):
            if value not in typing.get_args(word):
                raise AlrError(f"{source}: '{key}' is {value!r}{did_you_mean(value, typing.get_args(word))}; "
                               f"valid values: {valid} or {kind}")  # fmt: skip
            return value
        if value is None or isinstance(value, (bool, list, dict)):
            raise AlrError(f"{source}: '{key}' must be {valid} or {kind}, got {value!r}")
        return _convert(number, value, key, source, metadata)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, prefix=f"{key}.", source=source)
    if origin is Literal:
        if not any(value == a and type(value) is type(a) for a in args):
            valid = " | ".join(repr(a) for a in args)
            raise AlrError(f"{source}: '{key}' is {value!r}{did_you_mean(value, args)}; valid values: {valid}")
        return value
    if origin is dict:
        _, item = args
        if not isinstance(value, dict) or not value:
            raise AlrError(f"{source}: '{key}' must be a non-empty mapping, got {value!r}")
        for name in value:
            if not isinstance(name, str):
                raise AlrError(
                    f"{source}: '{key}' has the unquoted key {name!r}; quote it (\"{name}\") — "
                    "DVC names the per-round stages after these keys"
                )
        return {name: _convert(item, v, f"{key}.{name}", source, {}) for name, v in value.items()}
    if origin is list:
        (item,) = args
        if not isinstance(value, list):
            raise AlrError(f"{source}: '{key}' must be a list of {item.__name__}, got {value!r}")
        items = [_convert(item, v, f"{key}[{i}]", source, metadata) for i, v in enumerate(value)]
        if len(set(items)) != len(items):
            raise AlrError(f"{source}: '{key}' lists a value twice: {value!r}")
        return items
    if hint is bool:
        if not isinstance(value, bool):
            hint = (" (YAML 1.2, which DVC reads, takes only true and false as booleans)"
                    if isinstance(value, str) and value.lower() in ("yes", "no", "on", "off", "y", "n") else "")
            raise AlrError(f"{source}: '{key}' must be true or false, got {value!r}{hint}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise AlrError(f"{source}: '{key}' must be an integer, got {value!r}")
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise AlrError(f"{source}: '{key}' must be a finite number, got {value!r}")
        value = float(value)
    elif hint is str:
        if not isinstance(value, str) or not value:
            raise AlrError(f"{source}: '{key}' must be a non-empty string, got {value!r}")
        return value
    else:  # pragma: no cover - a schema mistake, not a user mistake
        raise TypeError(f"unsupported parameter type {hint!r} for {key}")
    _check_range(value, key, source, metadata.get("range"))
    return value


def _check_range(value, key: str, source: str, bounds) -> None:
    if bounds is None:
        return
    low, high, low_open, high_open = bounds
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        shown_low = "-inf" if low is None else low
        shown_high = "inf" if high is None else high
        right = ")" if high is None else right
        raise AlrError(
            f"{source}: '{key}' is {value!r}; valid range: {left}{shown_low}, {shown_high}{right}"
        )


def _check_consistency(params: Params, source: str) -> None:
    """Rules that involve more than one key; the rounds' own structure first, as later rules
    read each round's entry."""
    _check_rounds(params.rounds, source)
    data = params.data
    if data.source not in GENERATED_SOURCES and data.path is None:
        raise AlrError(f"{source}: 'data.path' is required when data.source is '{data.source}'")
    if data.source in GENERATED_SOURCES and data.path is not None:
        file_sources = " | ".join(name for name in SOURCES if name not in GENERATED_SOURCES)
        raise AlrError(f"{source}: 'data.path' is {data.path!r}, but data.source '{data.source}' reads no file; "
                       f"set data.source to {file_sources} to read it, or data.path: null")  # fmt: skip
    if data.source == "synthetic" and data.image_size is None:
        raise AlrError(f"{source}: 'data.image_size' must be set when data.source is 'synthetic' (e.g. 28)")
    if data.image_size is not None:  # else the training stages check it against the source's size
        check_crop_padding(params.train.augment.crop_padding, data.image_size, f"{source}: ", "'data.image_size'")
    if data.val_fraction + data.test_fraction >= 1.0:
        raise AlrError(
            f"{source}: 'data.val_fraction' + 'data.test_fraction' = "
            f"{data.val_fraction + data.test_fraction:g}; they must sum to less than 1 "
            "so that the train split is not empty"
        )
    if data.csv.label_column is not None and data.csv.class_columns is not None:
        raise AlrError(
            f"{source}: set either 'data.csv.label_column' or 'data.csv.class_columns', not both"
        )
    for key, names in (("data.class_names", data.class_names), ("data.csv.class_columns", data.csv.class_columns)):
        if names is not None and len(names) < 2:
            raise AlrError(f"{source}: '{key}' must list at least 2 classes, got {names!r}")
    if data.class_names is not None:
        check_class_names(data.class_names, f"{source}: 'data.class_names'")
    if params.al.paper_protocol and params.al.pool == "selected":
        raise AlrError(
            f"{source}: 'al.pool' is 'selected' (query only inside phase 1's C) but 'al.paper_protocol' "
            "is true, which gives every sample of C its true label at round 1; use al.pool: all, "
            "unselected or unselected_first, or al.paper_protocol: false"
        )
    if params.al.strategy == "bald" and params.model.dropout == 0:
        raise AlrError(
            f"{source}: 'al.strategy' is 'bald', which measures disagreement between dropout passes, but "
            "'model.dropout' is 0, so every pass is the same and the scores are rounding noise; set "
            "model.dropout above 0 (e.g. 0.3) or use another strategy"
        )
    if 0 < params.budget < params.al.annotators:
        raise AlrError(
            f"{source}: 'budget' is {params.budget} answers, fewer than the {params.al.annotators} each queried "
            f"sample takes ('al.annotators'), so no sample would be queried; raise budget to at least "
            f"{params.al.annotators}, lower al.annotators, or set budget: 0 to keep the phase-1 model"
        )
    lnl = params.lnl
    if lnl.method == "ce" and lnl.selection not in ("global", *FEATURE_RULES):
        raise AlrError(
            f"{source}: 'lnl.selection' is {lnl.selection!r}, a rule over Co-teaching's networks, but "
            "'lnl.method' is 'ce', which has none of them: it would train on every label; use lnl.method: "
            f"coteaching or coteaching_vog, a rule on the pretrain embeddings (lnl.selection: "
            f"{' | '.join(FEATURE_RULES)}), or lnl.selection: global for plain CE on every label"
        )
    if lnl.method == "coteaching_vog" and lnl.selection not in VOG_RULES:
        raise AlrError(
            f"{source}: 'lnl.method' is 'coteaching_vog', but 'lnl.selection' {lnl.selection!r} never reads VOG "
            f"(only {' | '.join(VOG_RULES)} do), so the run would be plain Co-teaching; set lnl.selection: global "
            "(the paper's method), class_aware or class_gmm, or use lnl.method: coteaching"
        )
    vog_from = vog_first_epoch(lnl.num_gradual, lnl.vog_window)
    if lnl.method == "coteaching_vog" and lnl.epochs < vog_from:
        raise AlrError(
            f"{source}: 'lnl.method' is 'coteaching_vog', but VOG needs 'lnl.vog_window' ({lnl.vog_window}) "
            f"snapshots and the warm-up of 'lnl.num_gradual' ({lnl.num_gradual}) epochs over first: it would "
            f"first count after epoch {vog_from}, and 'lnl.epochs' is {lnl.epochs}, so the run would be plain "
            f"Co-teaching; set lnl.epochs to at least {vog_from} (VOG then shapes the clean guess C handed on; "
            f"from {vog_from + 1} on it also steers training), lower num_gradual or vog_window, or use "
            "lnl.method: coteaching"
        )
    if lnl.method == "coteaching_vog" and params.al.train_on == "lnl":
        _check_round_vog(params, source)
    if lnl.method == "coteaching_vog" and lnl.vog_source == "train" and lnl.class_balance == "sampler":
        raise AlrError(
            f"{source}: 'lnl.vog_source' is 'train' but 'lnl.class_balance' is 'sampler', whose batches draw "
            "with replacement and miss part of the train split every epoch, so those samples' VOG would mix "
            "stale gradients; use lnl.vog_source: eval (a pass over every sample) or lnl.class_balance: loss"
        )
    if params.label_issues.neighbours_shown > params.lnl.knn_k:
        raise AlrError(
            f"{source}: 'label_issues.neighbours_shown' is {params.label_issues.neighbours_shown}, more than the "
            f"{params.lnl.knn_k} neighbours the report's kNN vote finds ('lnl.knn_k'); lower it, or raise lnl.knn_k "
            "(which changes that vote, and phase 1's under lnl.selection: knn_vote)"
        )
    _check_unknown_truth(params, source)
    _check_model(params, source)


def _check_unknown_truth(params: Params, source: str) -> None:
    """``noise.type: none``: the labels are the dataset's own, the truth is unknown. What needs
    the truth or a noise rate stops here, before any stage has run, not at a round after phase 1."""
    if params.noise.type != "none":
        return
    lnl = params.lnl
    if lnl.method in ("coteaching", "coteaching_vog") and lnl.forget_rate is None:
        raise AlrError(
            f"{source}: 'lnl.method' is {lnl.method!r}, whose forget rate τ defaults to noise.rate, but "
            "'noise.type' is 'none' (the labels are already noisy, at a rate alr cannot know), so it would drop "
            "nothing and train as plain CE on every label; set lnl.forget_rate to your estimate of the share of "
            "wrong labels (e.g. 0.2), or use lnl.method: ce with a rule on the pretrain embeddings "
            "(lnl.selection: cleanlab_kfold)"
        )
    if params.al.paper_protocol:  # round 1 hands out C's true labels whatever the budget
        raise AlrError(
            f"{source}: 'al.paper_protocol' is true, which gives every sample of phase 1's C its true label at "
            "round 1, but 'noise.type' is 'none', so the true labels are unknown; set al.paper_protocol: false"
        )
    shares = split_budget(params.budget // params.al.annotators, len(params.rounds))
    for name, share in zip(params.rounds, shares):
        oracle = round_params(params, name).al.oracle
        if oracle == "simulated" and share > 0:
            key = f"rounds.{name}.oracle" if params.rounds[name].oracle is not None else "al.oracle"
            raise AlrError(
                f"{source}: '{key}' is 'simulated' for round {name}, which answers with the true labels, but "
                "'noise.type' is 'none' (the labels are already noisy), so they are unknown; let experts answer: "
                f"set {key}: human"
            )


def _pipeline_output_folder(init: str) -> Optional[Path]:
    """The pipeline's output folder (pretrain, phase 1, the rounds) that the weights file
    ``init`` lies in, relative to the project folder (the current one), or None."""
    if init in ("scratch", "ssl"):
        return None
    folders = (paths.PRETRAIN_DIR, paths.LNL_DIR, paths.round_dir(1).parent)
    # as written (data/ may be a link to another disk, and DVC's symlink cache makes an output a link
    # into .dvc/cache), and with symlinks resolved (a link to data/lnl/model.pt dangles once DVC
    # removes that output)
    for path, root in ((Path(os.path.normpath(Path.cwd() / init)), Path.cwd()),
                       (Path(init).resolve(), Path.cwd().resolve())):  # fmt: skip
        try:
            path = path.relative_to(root)
        except ValueError:
            continue
        found = next((folder for folder in folders if folder == path or folder in path.parents), None)
        if found is not None:
            return found
    return None


def check_crop_padding(padding: int, side: int, where: str = "", side_name: str = "the images' side") -> None:
    """At most a quarter of the image ``side`` (px) of ``train.augment.crop_padding``; an
    :class:`AlrError` starting with ``where`` otherwise."""
    if padding > side / 4:
        raise AlrError(
            f"{where}'train.augment.crop_padding' is {padding} px, more than a quarter of {side_name} ({side} px): "
            "the random crop shifts an image by up to that much each way, so most of a crop could be padding "
            f"(64 px on 8 px images trained to chance); use at most {side // 4}, or 0 for no crop"
        )


def vog_first_epoch(warm_up: int, vog_window: int) -> int:
    """The 0-based epoch of phase 1's loop in which VOG first counts: after ``warm_up`` epochs
    (lnl.num_gradual) and once ``vog_window`` snapshots, one per epoch, exist."""
    return max(warm_up + 1, vog_window)


def _check_round_vog(params: Params, source: str) -> None:
    """``al.train_on: lnl`` runs each round through phase 1's loop for the round's epochs: a round
    retrained from scratch warms up over lnl.num_gradual epochs again, one that fine-tunes does
    not; either needs lnl.vog_window snapshots before VOG counts. Unlike phase 1, whose last VOG
    also shapes the clean guess C handed on, a round's C is only reported, so VOG must steer at
    least one of its training epochs."""
    lnl = params.lnl
    if params.budget == 0:  # no round trains
        return
    for name, spec in params.rounds.items():
        al = round_params(params, name).al
        scratch = al.retrain == "scratch"
        epochs_key = f"rounds.{name}.epochs" if spec.epochs is not None else "al.epochs"
        vog_epoch = vog_first_epoch(lnl.num_gradual if scratch else 0, lnl.vog_window)
        if al.epochs <= vog_epoch:
            warm_up = f"the warm-up of 'lnl.num_gradual' ({lnl.num_gradual}) epochs of a round retrained from scratch"
            raise AlrError(
                f"{source}: 'al.train_on' is 'lnl' and 'lnl.method' 'coteaching_vog', but in round {name} VOG "
                f"needs 'lnl.vog_window' ({lnl.vog_window}) snapshots{' and ' + warm_up if scratch else ''} first: "
                f"it would first steer training in epoch {vog_epoch + 1}, and '{epochs_key}' is {al.epochs}, so the "
                f"round would train as plain Co-teaching; set {epochs_key} to at least {vog_epoch + 1}, lower "
                f"lnl.vog_window{' or lnl.num_gradual' if scratch else ''}, or use lnl.method: coteaching"
            )


def _check_model(params: Params, source: str) -> None:
    model = params.model
    inside = _pipeline_output_folder(model.init)
    if inside is not None:
        raise AlrError(
            f"{source}: 'model.init' is {model.init!r}, inside {inside.as_posix()}/, which the pipeline itself "
            "writes: DVC removes a stage's outputs before running it, so the file would be gone or would change "
            "under the stages that read it; copy it out first (e.g. to weights/earlier_run.pt) and name the copy"
            + (", or use model.init: ssl for the pretrain encoder" if inside == paths.PRETRAIN_DIR else "")
        )
    if model.init == "ssl" and params.pretrain.method == "none":
        raise AlrError(
            f"{source}: 'model.init' is 'ssl' but 'pretrain.method' is 'none', so there is no trained "
            "encoder to start from; set pretrain.method: simclr (or vicreg), or model.init: scratch"
        )
    if model.freeze == "backbone" and model.init != "ssl":
        raise AlrError(
            f"{source}: 'model.freeze' is 'backbone', which trains a head on the pretrain stage's cached "
            f"embeddings, so 'model.init' must be 'ssl' (it is {model.init!r})"
        )
    if model.freeze == "backbone" and model.backbone_lr != 1.0:
        raise AlrError(
            f"{source}: 'model.backbone_lr' is {model.backbone_lr} but 'model.freeze' is 'backbone', which "
            "trains no backbone; set model.backbone_lr: 1.0, or model.freeze: none to fine-tune the backbone"
        )


def _check_rounds(rounds: dict, source: str) -> None:
    """Rounds are "1".."R" in order, each naming the folder of the round before it."""
    expected_keys = [str(r) for r in range(1, len(rounds) + 1)]
    if list(rounds) != expected_keys:
        raise AlrError(
            f"{source}: 'rounds' keys are {list(rounds)}; they must be {expected_keys} in this order"
        )
    for name, spec in rounds.items():
        expected = previous_dir(int(name))
        if spec.prev != expected:
            raise AlrError(f"{source}: 'rounds.{name}.prev' is {spec.prev!r}; it must be {expected!r}")


def check_weights_file(init: str) -> Path:
    """``model.init`` naming a weights file: the file, which must exist."""
    path = Path(init)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise AlrError(f"model.init: {init} {what}; expected scratch | ssl | the path of a weights file")
    return path


def check_class_names(names: list[str], where: str) -> None:
    """Class names experts can answer with (answers are read trimmed): none blank, none with
    spaces around it, none with a control character (a tab or line break pasted into a label
    cell; Label Studio's XML config cannot hold most of them), and none :data:`SKIP_ANSWER` in
    any case. ``where`` starts the message, e.g. "params.yaml: 'data.class_names'"."""
    for position, name in enumerate(names):
        control = next((c for c in name if unicodedata.category(c) in ("Cc", "Cs") or c in "\ufffe\uffff"), None)
        if control is not None:
            raise AlrError(f"{where}: class {position} is {name!r}, which holds the control character {control!r}; "
                           "rename the class (experts answer with the names, and Label Studio's XML cannot "
                           "hold such characters)")  # fmt: skip
        if not name.strip():
            raise AlrError(f"{where}: class {position} is {name!r}; a class name must not be blank")
        if name != name.strip():
            raise AlrError(f"{where}: class {position} is {name!r}, with spaces around it, which an expert's "
                           "answer (read trimmed) cannot match; rename the class")  # fmt: skip
        if name.lower() == SKIP_ANSWER:
            raise AlrError(f"{where}: class {position} is {name!r}, the answer experts give to skip a sample; "
                           "rename the class")  # fmt: skip


def round_params(params: Params, name: str) -> Params:
    """``params`` as round ``name`` runs with them: each key its ``rounds.<name>`` entry sets
    besides ``prev`` (oracle, retrain, epochs, lr) replaces the ``al`` key of that name."""
    spec = params.rounds[name]
    overrides = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)
                 if f.name != "prev" and getattr(spec, f.name) is not None}  # fmt: skip
    return dataclasses.replace(params, al=dataclasses.replace(params.al, **overrides))


def split_budget(budget: int, num_rounds: int) -> list[int]:
    """Even split of the total budget over rounds, the remainder to the first rounds."""
    base, remainder = divmod(budget, num_rounds)
    return [base + (1 if r < remainder else 0) for r in range(num_rounds)]


def previous_dir(round_number: int) -> str:
    """The folder whose model and labels round ``round_number`` starts from."""
    return (paths.LNL_DIR if round_number == 1 else paths.round_dir(round_number - 1)).as_posix()


# The shipped params.yaml runs five rounds; a file without a ``rounds`` group gets the one
# round of ``Params.rounds``'s default instead.
DEFAULT_ROUNDS = 5


def default_params() -> dict:
    """The complete parameters of a fresh clone as the plain dict params.yaml holds: every key
    at its dataclass default, and DEFAULT_ROUNDS rounds (each naming only its ``prev``).

    The shipped params.yaml equals this (a test checks it in CI); code that needs the defaults,
    the tests above all, reads them here rather than from params.yaml, which users edit. A new
    dict on every call, so callers may change it.
    """
    rounds = {str(r): RoundParams(previous_dir(r)) for r in range(1, DEFAULT_ROUNDS + 1)}
    raw = dataclasses.asdict(Params(rounds=rounds))
    # a round's unset overrides (None: the ``al`` value) are left out, as params.yaml does
    raw["rounds"] = {name: {"prev": spec["prev"]} for name, spec in raw["rounds"].items()}
    return raw


def forget_rate(params: Params) -> float:
    """τ of the Co-teaching schedule: ``lnl.forget_rate``, or the noise rate when unset."""
    if params.lnl.forget_rate is not None:
        return params.lnl.forget_rate
    return params.noise.rate if params.noise.type != "none" else 0.0
