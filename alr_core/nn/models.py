"""Classifiers whose forward returns (penultimate features, logits) in one call, and their
checkpoints.

Shapes: input (B, C, H, W) float; features (B, D); logits (B, K).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from alr_core.common.errors import AlrError

SMALL_IMAGE_MAX = 64  # px: up to this side the small CNN is the default and ResNet gets a small stem


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a model without params.yaml."""

    arch: str
    num_classes: int
    in_channels: int
    image_size: int
    dropout: float


def resolve_arch(arch: str, image_size: int) -> str:
    if arch != "auto":
        return arch
    return "small_cnn" if image_size <= SMALL_IMAGE_MAX else "resnet18"


class SmallCNN(nn.Module):
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

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(x)
        return features, self.head(self.dropout(features))


class ResNet18(nn.Module):
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

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.backbone(x)
        return features, self.head(self.dropout(features))


def build_model(spec: ModelSpec) -> nn.Module:
    if spec.arch == "small_cnn":
        model = SmallCNN(spec.in_channels, spec.num_classes, spec.dropout)
    elif spec.arch == "resnet18":
        small = spec.image_size <= SMALL_IMAGE_MAX
        model = ResNet18(spec.in_channels, spec.num_classes, spec.dropout, small_input=small)
    else:
        raise AlrError(f"model.arch is {spec.arch!r}; valid: small_cnn | resnet18")
    return model.to(memory_format=torch.channels_last)


def load_backbone_weights(model: nn.Module, path: str) -> list[str]:
    """Initialise a ResNet-18 backbone from a local state dict (e.g. ImageNet weights).

    Tensors whose shape does not fit (the stem of a small-input or grayscale model, the
    ImageNet classifier) are skipped and their names returned; a file that fits none of the
    backbone is an error.
    """
    if not isinstance(model, ResNet18):
        raise AlrError("model.weights is only supported for model.arch 'resnet18'")
    state = _torch_load(Path(path), "model.weights")
    own = model.backbone.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not fitting:
        raise AlrError(
            f"model.weights: {path} has no tensor that fits a ResNet-18 backbone "
            f"(its first keys: {list(state)[:5]})"
        )
    model.backbone.load_state_dict(fitting, strict=False)
    return sorted(set(state) - set(fitting))


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
    if not path.is_file():
        raise AlrError(f"{key}: {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or foreign files
        raise AlrError(f"{key}: cannot load {path} as a torch state dict ({exc})") from None
    if not isinstance(state, dict):
        raise AlrError(f"{key}: {path} holds a {type(state).__name__}, not a state dict")
    return state
