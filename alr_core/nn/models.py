"""Classifiers whose forward returns (penultimate features, logits) in one call, their
initialisation (``model.init``) and their checkpoints.

Shapes: input (B, C, H, W) float — or (B, D) cached embeddings for the ``linear`` head of
``model.freeze: backbone``; features (B, D); logits (B, K).
"""

from __future__ import annotations

import argparse
import difflib
import pickle
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from alr_core.common.errors import AlrError
from alr_core.common.params import check_weights_file

SMALL_IMAGE_MAX = 64  # px: up to this side the small CNN is the default and ResNet gets a small stem
BUILT_IN_ARCHS = ("small_cnn", "resnet18")  # any other model.arch is a timm architecture name
LINEAR = "linear"  # the arch of a head trained on cached embeddings (model.freeze: backbone)
# model.init from a file: below this share of the backbone's tensors loaded, the file is for
# another architecture, and silently training from a mostly random start would mislead
MIN_LOADED_SHARE = 0.5


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a model without params.yaml. For the ``linear`` arch
    ``in_channels`` is the embedding dimension D and ``image_size`` is 0."""

    arch: str
    num_classes: int
    in_channels: int
    image_size: int
    dropout: float


def resolve_arch(arch: str, image_size: int) -> str:
    if arch != "auto":
        return arch
    return "small_cnn" if image_size <= SMALL_IMAGE_MAX else "resnet18"


class Classifier(nn.Module):
    """forward: the subclass's ``features`` (B, D), then dropout and the linear ``head``."""

    def features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(x)
        return features, self.head(self.dropout(features))


class SmallCNN(Classifier):
    """Five 3×3 conv layers with BatchNorm (32-32-64-64-128 channels), global average pooling,
    dropout, linear head. About 140k parameters; D = 128."""

    feature_dim = 128

    def __init__(self, in_channels: int, num_classes: int, dropout: float):
        super().__init__()

        def block(c_in, c_out):
            return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]

        self.body = nn.Sequential(
            *block(in_channels, 32), *block(32, 32), nn.MaxPool2d(2),
            *block(32, 64), *block(64, 64), nn.MaxPool2d(2),
            *block(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )  # fmt: skip
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class ResNet18(Classifier):
    """torchvision's ResNet-18 (the paper's backbone); for images up to 64 px the stem is a
    3×3 stride-1 convolution without max-pooling, so small inputs keep their resolution."""

    feature_dim = 512

    def __init__(self, in_channels: int, num_classes: int, dropout: float, small_input: bool):
        super().__init__()
        from torchvision.models import resnet18  # torchvision only where it is used

        self.backbone = resnet18()
        if small_input:
            self.backbone.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
            self.backbone.maxpool = nn.Identity()
        elif in_channels != 3:
            self.backbone.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.backbone.fc = nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)


class TimmNet(Classifier):
    """A timm architecture (``timm.create_model(name, pretrained=False)``: nothing is ever
    downloaded; weights come from ``model.init``) without its classifier, then dropout and a
    linear head. D = the width of what the backbone outputs without its classifier: timm's
    ``head_hidden_size`` (wider than ``num_features`` where the head has a hidden layer, as
    in MobileNetV3), else ``num_features``."""

    def __init__(self, name: str, in_channels: int, num_classes: int, dropout: float):
        super().__init__()
        import timm  # only where a timm architecture is used (it imports torchvision)

        if not timm.is_model(name):
            # every name is lower case: Small_CNN should find small_cnn
            close = difflib.get_close_matches(name.lower(), list(dict.fromkeys([*BUILT_IN_ARCHS, *timm.list_models()])),
                                              n=3)  # fmt: skip
            raise AlrError(
                f"model.arch is {name!r}: neither {' | '.join(('auto',) + BUILT_IN_ARCHS)} nor a timm "
                f"architecture{f' (closest: {close})' if close else ''}; e.g. resnet50, efficientnet_b0, convnext_tiny"
            )
        self.backbone = timm.create_model(name, pretrained=False, num_classes=0, in_chans=in_channels)
        self.feature_dim = getattr(self.backbone, "head_hidden_size", None) or self.backbone.num_features
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)


class LinearHead(Classifier):
    """``model.freeze: backbone``: the classifier head alone, on cached embeddings (B, D); the
    embeddings are its features, so VOG and every score work unchanged."""

    def __init__(self, feature_dim: int, num_classes: int, dropout: float):
        super().__init__()
        self.feature_dim = feature_dim
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return x


def build_model(spec: ModelSpec) -> nn.Module:
    if spec.arch == LINEAR:
        return LinearHead(spec.in_channels, spec.num_classes, spec.dropout)
    if spec.arch == "small_cnn":
        model = SmallCNN(spec.in_channels, spec.num_classes, spec.dropout)
    elif spec.arch == "resnet18":
        small = spec.image_size <= SMALL_IMAGE_MAX
        model = ResNet18(spec.in_channels, spec.num_classes, spec.dropout, small_input=small)
    else:
        model = TimmNet(spec.arch, spec.in_channels, spec.num_classes, spec.dropout)
        _check_fits_image_size(model, spec)
    return model.to(memory_format=torch.channels_last)


def _check_fits_image_size(model: nn.Module, spec: ModelSpec) -> None:
    """timm architectures downsample by up to 32: a small image may shrink to nothing. One
    forward pass of a blank image finds out before any training starts."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, spec.in_channels, spec.image_size, spec.image_size))
    except (RuntimeError, AssertionError) as exc:  # vision transformers assert their own input size
        raise AlrError(
            f"model.arch {spec.arch!r} cannot take {spec.image_size} px images ({str(exc).splitlines()[0]}); "
            f"raise data.image_size (most timm architectures need ≥ 32, some ≥ 64, vision transformers their "
            f"own size) or use small_cnn / resnet18"
        ) from None
    finally:
        model.train(was_training)


def initialise(model: nn.Module, spec: ModelSpec, init: str, encoder_path) -> dict:
    """Apply ``model.init`` to a freshly built classifier, in place, and return a record of it
    for the metrics: ``scratch`` keeps the random weights; ``ssl`` loads the pretrain stage's
    encoder (``encoder_path``), which must be a trained encoder of the same architecture and
    input shape, every key of it; any other value is a local weights file (a plain state dict,
    e.g. ImageNet or RadImageNet weights of this architecture, or an alr checkpoint), of whose
    backbone tensors at least MIN_LOADED_SHARE must fit by name and shape. The classifier head
    is never loaded: its classes are this data's."""
    if init == "scratch" or spec.arch == LINEAR:
        return {"init": init}
    if init == "ssl":
        return _load_encoder(model, spec, Path(encoder_path))
    return _load_weights_file(model, check_weights_file(init))


def _load_encoder(model: nn.Module, spec: ModelSpec, path: Path) -> dict:
    checkpoint = _torch_load(path, "model.init 'ssl'")
    encoder = checkpoint.get("spec") or {}
    expected = {"arch": spec.arch, "in_channels": spec.in_channels, "image_size": spec.image_size}
    found = {key: encoder.get(key) for key in expected}
    if found != expected:
        raise AlrError(
            f"model.init 'ssl': {path} is an encoder for {found}, but this model is {expected}; "
            "re-run the pretrain stage (dvc repro pretrain)"
        )
    if (checkpoint.get("pretrain") or {}).get("method", "none") == "none":
        raise AlrError(
            f"model.init is 'ssl' but {path} was not trained (pretrain.method 'none'); set "
            "pretrain.method: simclr (or vicreg), or model.init: scratch"
        )
    # the encoder has every tensor of the classifier but its head, which keeps its fresh weights
    head = {k: v for k, v in model.state_dict().items() if k.startswith("head.")}
    load_state_checked(model, checkpoint["state_dict"] | head, f"model.init 'ssl' ({path})")
    return {"init": "ssl", "loaded_tensors": len(checkpoint["state_dict"])}


# where training scripts keep the weights in a checkpoint dict (alr and timm: state_dict; PyTorch's
# tutorial layout with an optimizer and epoch: model_state_dict)
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "net", "network")


def _unwrap(state: dict) -> dict:
    """The dict of tensors inside a checkpoint: the first ``WRAPPER_KEYS`` entry holding a dict,
    repeatedly (a ``{"model": {"state_dict": ...}}`` too), where it holds more tensors than the
    level above (pytorch/examples' ImageNet script keeps a tensor ``best_acc1`` beside its
    ``state_dict``)."""
    inner = next((state[k] for k in WRAPPER_KEYS if isinstance(state.get(k), dict)), None)
    if inner is None:
        return state
    inner = _unwrap(inner)
    return inner if _tensor_count(inner) > _tensor_count(state) else state


def _tensor_count(state: dict) -> int:
    return sum(isinstance(value, torch.Tensor) for value in state.values())


def _best_match(state: dict, own: dict) -> tuple[str, str, dict]:
    """(prefix removed, prefix added, {file key: model key}): the file's keys with one leading
    prefix removed (none, or the first dotted part of a key: ``model.``, ``encoder.``, MoCo's
    ``encoder_q.``, ``backbone.`` ...) and ``backbone.`` added or not, whichever fits the most
    model tensors by name and shape; on a tie the prefix first in the file (MoCo's query encoder)."""
    prefixes = dict.fromkeys(["", *(k.split(".", 1)[0] + "." for k in state if "." in k)])
    best = ("", "", {})
    for drop in prefixes:
        for add in ("", "backbone."):
            renamed = {key: add + key[len(drop):] for key in state if key.startswith(drop)}
            match = {key: name for key, name in renamed.items()
                     if name in own and own[name].shape == state[key].shape}  # fmt: skip
            if len(match) > len(best[2]):
                best = (drop, add, match)
    return best


def _adapt_stem(state: dict, own: dict, renamed: dict) -> dict:
    """{file key: model key} of the 3-channel convolutions that fit a 1-channel model once
    summed over their input channels (as timm's ``adapt_input_conv`` does for ``in_chans=1``)."""
    adapted = {}
    for key, name in renamed.items():
        value, target = state[key], own.get(name)
        if target is not None and value.dim() == 4 and value.shape[1] == 3 and target.shape[1] == 1 \
                and value.shape[:1] + value.shape[2:] == target.shape[:1] + target.shape[2:]:
            adapted[key] = name
    return adapted


def _load_weights_file(model: nn.Module, path: Path) -> dict:
    checkpoint = _torch_load(path, "model.init")
    pretrain = checkpoint.get("pretrain")
    if isinstance(pretrain, dict) and pretrain.get("method") == "none":
        raise AlrError(f"model.init: {path} is an alr encoder that was never trained (pretrain.method 'none'): "
                       "its weights are random; give trained weights, or model.init: scratch")  # fmt: skip
    state = _unwrap(checkpoint)
    state = {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise AlrError(f"model.init: {path} holds no tensors, nor a dict of them under any of {list(WRAPPER_KEYS)}; "
                       f"its keys are {list(checkpoint)[:8]}: save the weights alone, torch.save(model.state_dict(), "
                       "'weights.pt')")  # fmt: skip
    own = {k: v for k, v in model.state_dict().items() if not k.startswith("head.")}
    drop, add, match = _best_match(state, own)  # file key → model key
    if len(match) < MIN_LOADED_SHARE * len(own):
        unmatched = [k for k in own if k not in match.values()][:3]
        raise AlrError(
            f"model.init: {path} fits {len(match)} of the {len(own)} backbone tensors of "
            f"{type(model).__name__} (by name and shape; needed ≥ {MIN_LOADED_SHARE:.0%}); it is for another "
            f"architecture or input. The model expects e.g. {unmatched}; the file has e.g. {list(state)[:3]}"
        )
    unmatched_keys = {k: add + k[len(drop):] for k in state if k.startswith(drop) and k not in match}
    adapted = _adapt_stem(state, own, unmatched_keys)
    offered = len(unmatched_keys) + len(match)  # the file's tensors under the prefix used
    if len(match) + len(adapted) < MIN_LOADED_SHARE * offered:
        raise AlrError(
            f"model.init: {path} has {offered} tensors, of which only {len(match)} fit {type(model).__name__} by name "
            f"and shape (needed ≥ {MIN_LOADED_SHARE:.0%} of the file's too): it is another architecture whose layers "
            f"share names (e.g. ResNet-50 weights for resnet18); set model.arch to the file's. It has e.g. "
            f"{list(unmatched_keys)[:3]} that the model lacks"
        )
    loaded = {name: state[key] for key, name in match.items()}
    loaded |= {name: state[key].sum(dim=1, keepdim=True) for key, name in adapted.items()}
    model.load_state_dict(loaded, strict=False)
    record = {"init": str(path), "loaded_tensors": len(loaded),
              "skipped": sorted(set(state) - set(match) - set(adapted)),
              "random": [k for k in own if k not in loaded and not k.endswith("num_batches_tracked")]}  # fmt: skip
    if drop:
        record["prefix_removed"] = drop
    if adapted:
        record["summed_to_one_channel"] = sorted(adapted.values())
    return record


def init_sentence(record: dict) -> Optional[str]:
    """One line on a weights file that left some backbone tensors random, or None."""
    random = record.get("random")
    if not random:
        return None
    return (f"model.init {record['init']}: {record['loaded_tensors']} tensors loaded, {len(random)} of the backbone's "
            f"left random (e.g. {random[:3]}; all in lnl.json's init.random)")  # fmt: skip


def save_checkpoint(path, spec: ModelSpec, model: nn.Module, class_names: list[str],
                    normalization: dict, peer: Optional[nn.Module] = None) -> None:
    """Write a checkpoint with the spec, class names and input normalisation, so the model can
    be rebuilt from the file alone. ``peer`` is Co-teaching's second network."""
    from alr_core.common.artifacts import write_torch

    write_torch(path, {
        "spec": asdict(spec),
        "class_names": list(class_names),
        "normalization": normalization,
        "state_dict": model.state_dict(),
        "peer_state_dict": peer.state_dict() if peer is not None else None,
    })  # fmt: skip


def load_checkpoint(path, expected_class_names: Optional[list[str]] = None):
    """Return (spec, model, checkpoint dict). Class names must match ``expected_class_names``."""
    path = Path(path)
    checkpoint = _torch_load(path, "checkpoint")
    try:
        spec = ModelSpec(**checkpoint["spec"])
    except (KeyError, TypeError):
        raise AlrError(f"{path}: not an alr checkpoint (no valid 'spec' entry)") from None
    if expected_class_names is not None and checkpoint.get("class_names") != list(expected_class_names):
        raise AlrError(
            f"{path}: checkpoint was trained on classes {checkpoint.get('class_names')}, but the "
            f"data has {list(expected_class_names)}"
        )
    model = build_model(spec)
    load_state_checked(model, checkpoint["state_dict"], str(path))
    return spec, model, checkpoint


def load_peer(spec: ModelSpec, checkpoint: dict, path) -> Optional[nn.Module]:
    """Co-teaching's second network g from a checkpoint dict, or None when it holds none."""
    if checkpoint.get("peer_state_dict") is None:
        return None
    peer = build_model(spec)
    load_state_checked(peer, checkpoint["peer_state_dict"], f"{path} (peer network)")
    return peer


def load_state_checked(model: nn.Module, state: dict, source: str) -> None:
    """``load_state_dict`` with an error that says what does not fit, instead of a traceback."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
                  for k in own if k in state and state[k].shape != own[k].shape]  # fmt: skip
    if missing or unexpected or mismatched:
        details = "; ".join(
            f"{label}: {items[:3]}{' ...' if len(items) > 3 else ''}"
            for label, items in (("missing", missing), ("unexpected", unexpected), ("shape", mismatched))
            if items
        )
        raise AlrError(f"{source}: weights do not fit the {type(model).__name__} model ({details})")
    model.load_state_dict(state)


def _torch_load(path: Path, key: str) -> dict:
    """The dict in ``path``, loaded with ``weights_only`` (tensors and plain values: unpickling
    anything else could run code), argparse's Namespace allowed: timm's training script keeps its
    arguments in one, beside the weights. ``torch.load`` also reads safetensors files, the format
    timm's weights come in from the Hugging Face Hub."""
    if not path.is_file():
        raise AlrError(f"{key}: {path} does not exist")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+) was not an allowed global", str(exc))
        if found is None:  # torch's text advises weights_only=False, which alr never does: its reason only
            reason = re.search(r"WeightsUnpickler error: \s*(.+?)\s*(?:\n\n|$)", str(exc))
            raise AlrError(f"{key}: {path} is not a PyTorch checkpoint (the zip or pickle file torch.save writes"
                           f"{': ' + reason.group(1) if reason else ''}) nor a safetensors file; give a weights file "
                           "saved by torch.save or safetensors, or model.init: scratch | ssl") from None  # fmt: skip
        raise AlrError(
            f"{key}: {path} holds a Python object of type {found.group(1)} beside its tensors, which alr does not "
            "unpickle (loading it could run code); from a copy you trust, save the weights alone: python -c "
            f"\"import torch; c = torch.load('{path}', weights_only=False); m = c.get('state_dict', c.get('model')) "
            "if isinstance(c, dict) else c; torch.save(m.state_dict() if hasattr(m, 'state_dict') else m, "
            "'weights.pt')\" and set model.init to weights.pt"
        ) from None
    except Exception as exc:  # torch raises many types for corrupt or foreign files
        first = str(exc).split(". ")[0].splitlines()[0] if str(exc) else type(exc).__name__
        raise AlrError(f"{key}: cannot load {path} as a torch state dict ({first}): a damaged or foreign file; "
                       "give a weights file saved by torch.save or safetensors, or model.init: "
                       "scratch | ssl") from None  # fmt: skip
    if not isinstance(state, dict):
        raise AlrError(f"{key}: {path} holds a {type(state).__name__}, not a state dict")
    return state
