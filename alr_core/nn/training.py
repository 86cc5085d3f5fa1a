"""The plain training engine shared by phase 1 and the retrain rounds: device choice, data on
tensors, batching, optimiser and schedule, no-grad prediction, checks."""

from __future__ import annotations

import copy
import inspect
import math
import os
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from alr_core.common.errors import AlrError
from alr_core.common.params import TrainParams
from alr_core.common.seeding import seed_for
from alr_core.nn import distributed
from alr_core.nn.augment import augment, to_input


def pick_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; ``cuda`` without a GPU is an error. In a process group
    each process has a GPU of its own, ``cuda:LOCAL_RANK``."""
    if name == "cuda" and not torch.cuda.is_available():
        raise AlrError("train.device is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and distributed.is_distributed():
        return torch.device("cuda", distributed.local_rank())
    return torch.device(name)


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch (initialisation, dropout) and return a CPU generator, on a stream of its own,
    for batch order and augmentation draws.

    In a process group the generator is the same on every rank (every rank draws the same
    batches and augmentation), torch's own stream is not: rank 0 has one process's, the others
    a stream each, so that dropout masks differ between ranks; the initial weights they draw
    are replaced by rank 0's when DDP wraps the network."""
    rank = distributed.rank()
    torch.manual_seed(seed if rank == 0 else seed_for(seed, f"torch stream of rank {rank}"))
    # use_deterministic_algorithms(True, warn_only=True) by its other public name, which does not
    # import the compiler to set its flag too (1.4 s per stage; alr never compiles)
    torch.set_deterministic_debug_mode("warn")
    # With the flag on, torch also fills every torch.empty with NaN, a debugging aid for programs
    # that read memory before writing it; torch's own kernels do not, and the fill cost about 4 %
    # of the small CNN's training step on the CPU (the same weights without it)
    torch.utils.deterministic.fill_uninitialized_memory = False
    # deterministic cuBLAS needs a fixed workspace; harmless on the CPU
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    return torch.Generator().manual_seed(seed_for(seed, "batches and augmentation"))


@dataclass
class ImageSet:
    """Inputs of one split — uint8 images (N, H, W, C), or float cached embeddings (N, D) under
    ``model.freeze: backbone`` — and labels int64 (N,).

    Labels live on ``device``. Images live there too when they fit (see
    :func:`fits_on_device`); otherwise they stay in host memory (pinned, for fast copies)
    and :meth:`batch` moves one batch at a time.
    """

    images: torch.Tensor
    labels: torch.Tensor
    device: torch.device

    @classmethod
    def from_arrays(cls, images: np.ndarray, labels: np.ndarray, device: torch.device,
                    on_device: Optional[bool] = None) -> "ImageSet":  # fmt: skip
        """``on_device``: None decides by :func:`fits_on_device`; True/False force it."""
        host = torch.from_numpy(np.ascontiguousarray(images))
        if on_device is None:
            on_device = fits_on_device(host.nbytes, device)
        if on_device:
            placed = host.to(device)
        else:
            placed = host.pin_memory() if device.type == "cuda" else host
        return cls(placed, torch.tensor(np.asarray(labels), dtype=torch.int64, device=device), device)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def on_device(self) -> bool:
        # by type: a tensor moved to torch.device("cuda") reports "cuda:0", which != "cuda"
        return self.images.device.type == self.device.type

    def batch(self, index: torch.Tensor | slice) -> torch.Tensor:
        """Images at ``index`` (an index tensor on any device, or a slice), on ``device``."""
        if isinstance(index, torch.Tensor):
            index = index.to(self.images.device)
        return self.images[index].to(self.device, non_blocking=True)


def fits_on_device(num_bytes: int, device: torch.device) -> bool:
    """Host memory always; a GPU when the images take at most half of its free memory (the
    rest is for the networks, activations and VOG snapshots)."""
    if device.type != "cuda":
        return True
    free_bytes, _ = torch.cuda.mem_get_info(device)
    return num_bytes <= free_bytes // 2


class MixedPrecision:
    """Autocast and loss scaling of the training passes (``train.mixed_precision``).

    On CUDA: bfloat16 where the GPU supports it (no loss scaling needed), else float16 with a
    gradient scaler. On the CPU it stays off: CPU autocast is slower than float32 on most
    CPUs. ``dtype`` forces a type (tests exercise both on the CPU). Evaluation, VOG snapshots
    and scoring run in float32 whatever this says, so rankings are not quantised.
    """

    def __init__(self, enabled: bool, device: torch.device, dtype: Optional[torch.dtype] = None):
        if dtype is None and enabled and device.type == "cuda":
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.dtype = dtype if enabled else None
        self.device_type = device.type
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.dtype == torch.float16)

    @property
    def name(self) -> str:
        """The dtype of the training passes: float32, bfloat16 or float16."""
        return str(self.dtype or torch.float32).removeprefix("torch.")

    def autocast(self):
        """Context for the forward passes and the loss."""
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.dtype is not None)

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """Backward pass and optimiser step, with loss scaling for float16."""
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()


def channel_stats(images: np.ndarray, chunk_images: int = 4096) -> dict:
    """Per-channel mean and std of uint8 images (N, H, W, C), in [0, 1] units.

    Exact, from per-channel counts of the 256 pixel values, gathered a chunk of images at a
    time, so memory stays flat at any N (a float copy of 100k 28×28 images is 600 MB)."""
    channels = images.shape[-1]
    counts = np.zeros((channels, 256), dtype=np.int64)
    for start in range(0, len(images), chunk_images):
        pixels = images[start : start + chunk_images].reshape(-1, channels)
        for channel in range(channels):
            counts[channel] += np.bincount(pixels[:, channel], minlength=256)
    values = np.arange(256) / 255.0
    total = counts.sum(axis=1)
    mean = counts @ values / total
    variance = (counts * (values[None, :] - mean[:, None]) ** 2).sum(axis=1) / total
    return {"mean": mean.tolist(), "std": np.maximum(np.sqrt(variance), 1e-3).tolist()}


def input_stats(inputs: np.ndarray) -> dict:
    """The normalisation of a train split's inputs: :func:`channel_stats` of uint8 images
    (N, H, W, C), or the per-dimension mean and std of cached embeddings float (N, D)."""
    if inputs.ndim == 2:
        inputs = np.asarray(inputs, dtype=np.float64)
        return {"mean": inputs.mean(axis=0).tolist(), "std": np.maximum(inputs.std(axis=0), 1e-6).tolist()}
    return channel_stats(inputs)


class InputPipeline:
    """uint8 image batches → normalised float inputs, with optional augmentation; cached
    embedding batches (B, D) → standardised, never augmented (an embedding is of one view)."""

    def __init__(self, normalization: dict, augment_params, device: torch.device, generator: torch.Generator):
        self.mean = torch.tensor(normalization["mean"], device=device)
        self.std = torch.tensor(normalization["std"], device=device)
        self.augment_params = augment_params
        self.generator = generator

    def train_input(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim == 2:
            return self.eval_input(images)
        return to_input(augment(images, self.augment_params, self.generator), self.mean, self.std)

    def eval_input(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim == 2:
            return (images.float() - self.mean) / self.std
        return to_input(images, self.mean, self.std)


def shuffled_batches(num_samples: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """A random permutation cut into batches; a last batch of one sample joins the one before,
    so BatchNorm never sees a batch of size 1 (unless N = 1)."""
    return _into_batches(torch.randperm(num_samples, generator=generator), batch_size)


def _into_batches(order: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    batches = list(torch.split(order, batch_size))
    if len(batches) > 1 and len(batches[-1]) == 1:
        last = batches.pop()  # pop first: the target of ``batches[-2] = ...pop()`` shifts after the pop
        batches[-1] = torch.cat([batches[-1], last])
    return batches


def class_balanced_batches(labels: torch.Tensor, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """An epoch of N indices drawn with replacement, each with probability ∝ 1 / (its class's
    count), so every class present is drawn equally often; cut like :func:`shuffled_batches`.
    ``labels`` (N,) int."""
    counts = torch.bincount(labels.cpu())
    weights = 1.0 / counts[labels.cpu()].double()
    return _into_batches(torch.multinomial(weights, len(labels), replacement=True, generator=generator), batch_size)


def epoch_batches(labels: torch.Tensor, batch_size: int, generator: torch.Generator,
                  class_balance: str) -> list[torch.Tensor]:
    """One epoch's batches of indices: class-balanced draws for ``class_balance: sampler``,
    else a shuffle of every sample once."""
    if class_balance == "sampler":
        return class_balanced_batches(labels, batch_size, generator)
    return shuffled_batches(len(labels), batch_size, generator)


def _without_compiler_import(optimizer_class: type) -> type:
    """``optimizer_class`` without torch's compiler hooks, whose first call imports torch._dynamo
    (~1.2 s of each training stage) for a compiler alr never runs: add_param_group (called by the
    constructor) and zero_grad are torch's functions unwrapped from ``torch._disable_dynamo``,
    and step is the class's own under grad mode off, as torch's wrapper runs it, less the
    wrapper's ``torch._dynamo.graph_break()`` calls. The update and its numerics are the class's."""
    methods = {name: inspect.unwrap(getattr(optimizer_class, name)) for name in ("add_param_group", "zero_grad")}
    own_step = inspect.unwrap(optimizer_class.step)

    def step(self, closure=None):
        with torch.set_grad_enabled(self.defaults["differentiable"]):
            return own_step(self, closure)

    return type(optimizer_class.__name__, (optimizer_class,), methods | {"step": step})


SGD = _without_compiler_import(torch.optim.SGD)
AdamW = _without_compiler_import(torch.optim.AdamW)


def make_optimizer(networks: Sequence[nn.Module], params: TrainParams, epochs: int, backbone_lr: float = 1.0):
    """SGD with momentum and weight decay over every parameter of ``networks``, cosine learning
    rate over ``epochs`` (stepped per epoch). Each network's ``head`` learns at ``params.lr``, the
    rest of it (the backbone) at ``backbone_lr`` × that (``model.backbone_lr``).

    Fused: one kernel for every parameter instead of several per tensor (on an H200 the
    unfused step of Co-teaching's two small CNNs was 36 % of the GPU time; on this CPU 161
    against 289 µs); the same update up to float rounding."""
    heads = [p for net in networks for p in net.head.parameters()]
    head_ids = {id(p) for p in heads}
    backbones = [p for net in networks for p in net.parameters() if id(p) not in head_ids]
    groups = [{"params": heads}, {"params": backbones, "lr": params.lr * backbone_lr}]
    optimizer = SGD([g for g in groups if g["params"]], lr=params.lr, momentum=params.momentum,
                    weight_decay=params.weight_decay, fused=True)  # fmt: skip
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    return optimizer, schedule


def predict(model: nn.Module, data: ImageSet, pipeline: InputPipeline, batch_size: int | str,
            mc_dropout: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Unaugmented forward pass over ``data``: (features (N, D), logits (N, K)) on the device,
    ``batch_size`` rows at a time (``auto``: :func:`eval_batch_rows`).

    Eval mode; with ``mc_dropout`` the dropout layers alone are switched to train mode, so
    BatchNorm keeps its running statistics.
    """
    batches = list(predict_batches(model, data, pipeline, batch_size, mc_dropout))
    return torch.cat([f for _, f, _ in batches]), torch.cat([z for _, _, z in batches])


@torch.no_grad()
def predict_batches(model: nn.Module, data: ImageSet, pipeline: InputPipeline, batch_size: int | str,
                    mc_dropout: bool = False) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor]]:  # fmt: skip
    """:func:`predict` one batch at a time: (rows, features (B, D), logits (B, K)), so a caller
    that reduces each batch never holds the outputs for all N.

    In a process group every rank runs its slice of each batch of ``batch_size`` rows and
    every rank gets the whole batch back, in row order, so that whatever is decided from a
    pass over a split is decided alike on every rank."""
    was_training = model.training
    model.eval()
    if mc_dropout:
        for module in model.modules():
            if isinstance(module, nn.Dropout):
                module.train()
    batch_size = eval_batch_rows(batch_size, data.device, data.images.shape[1:])
    try:
        for start in range(0, len(data), batch_size):
            rows = slice(start, min(start + batch_size, len(data)))
            mine = distributed.local_rows(rows.stop - start)
            features, logits = model(pipeline.eval_input(data.batch(slice(start + mine.start, start + mine.stop))))
            if distributed.is_distributed():  # one collective for both outputs
                both = distributed.gather_rows(torch.cat([features, logits], dim=1), rows.stop - start)
                features, logits = both.split([features.shape[1], logits.shape[1]], dim=1)
            yield rows, features, logits
    finally:
        model.train(was_training)


AUTO_EVAL_VALUES = 2**22  # input values per no-grad batch on a GPU under `train.eval_batch_size: auto`


def eval_batch_rows(batch_size: int | str, device: torch.device, row_shape: Sequence[int]) -> int:
    """Rows per no-grad batch for ``train.eval_batch_size``: an int as given;
    ``auto`` 128 on the CPU (larger batches measured slower there: 4,338 images/s at 128,
    2,048 at 1,024 for the small CNN at 28 px), and on a GPU, which needs large batches to be
    busy, the largest power of two with at most 2²² input values per batch, within [128, 4096]:
    4,096 images of 28×28×1, 1,024 of 64×64×1, 128 of 224×224×3. ``row_shape``: one input's
    shape, (H, W, C) or (D,)."""
    if batch_size != "auto":
        return batch_size
    if device.type != "cuda":
        return 128
    values = math.prod(row_shape)
    return min(4096, max(128, 2 ** math.floor(math.log2(AUTO_EVAL_VALUES / values))))


def evaluate(model: nn.Module, data: ImageSet, pipeline: InputPipeline, batch_size: int | str, class_names,
             checkpoint_only: bool = False) -> dict:  # fmt: skip
    """:func:`~alr_core.evaluation.metrics.classification_metrics` of ``model`` on ``data``;
    with ``checkpoint_only`` its balanced accuracy and macro-F1 alone (the per-epoch validation)."""
    # sklearn (~0.7 s): not in the scoring stages
    from alr_core.evaluation.metrics import checkpoint_scores, classification_metrics

    _, logits = predict(model, data, pipeline, batch_size)
    labels, probs = data.labels.cpu().numpy(), logits.softmax(1).cpu().numpy()
    if checkpoint_only:
        return checkpoint_scores(labels, probs, len(class_names))
    return classification_metrics(labels, probs, class_names)


def per_sample_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, labels, reduction="none")


class EpochLosses:
    """The losses of one epoch's batches, kept on the device and read back once per epoch.

    Reading a loss every batch (``.item()``, ``if not torch.isfinite(...)``) makes the host wait
    for the device each time; stacking the 0-d tensors at the end of the epoch waits once. A
    non-finite loss is still reported with the epoch and the first batch it appeared in.
    """

    def __init__(self, epoch: int, lr_key: str = "train.lr"):
        self.epoch = epoch
        self.lr_key = lr_key  # the learning rate the divergence message tells to lower
        # per batch (2M,): the loss each of the M networks trained on, then how many samples it trained on
        self._rows: list[torch.Tensor] = []

    def add(self, losses: Sequence[torch.Tensor], sizes: Sequence[int | torch.Tensor]) -> None:
        """One batch: per network its loss (0-d tensor) and the samples it trained on (an int,
        or a 0-d tensor on the device — a count the host has not read)."""
        device = losses[0].device
        # an int becomes a device tensor by a fill, not by a copy from the host (which waits)
        counts = [size.float() if isinstance(size, torch.Tensor) else torch.full((), float(size), device=device)
                  for size in sizes]  # fmt: skip
        self._rows.append(torch.stack([loss.detach().float() for loss in losses] + counts))

    def means(self) -> np.ndarray:
        """Per network, the epoch's mean loss weighted by the samples each batch trained on,
        shape (M,). Raises AlrError naming the first batch whose loss is NaN or infinite."""
        rows = torch.stack(self._rows).double().cpu().numpy()  # (batches, 2M): the one sync
        losses, sizes = np.split(rows, 2, axis=1)
        finite = np.isfinite(losses)
        if not finite.all():
            batch = int(np.flatnonzero(~finite.all(axis=1))[0])
            value = losses[batch][~finite[batch]][0]
            raise AlrError(
                f"training diverged: loss is {value} at epoch {self.epoch}, batch {batch}; "
                f"lower {self.lr_key} or check the input images"
            )
        return (losses * sizes).sum(axis=0) / sizes.sum(axis=0)


class BestCheckpoint:
    """Keeps a copy of the weights with the best validation score seen so far."""

    def __init__(self):
        self.score = -np.inf
        self.epoch = -1
        self.state = None

    def update(self, model: nn.Module, score: float, epoch: int) -> None:
        if score > self.score:
            self.score, self.epoch = score, epoch
            self.state = copy.deepcopy(model.state_dict())

    def restore(self, model: nn.Module) -> nn.Module:
        model.load_state_dict(self.state)
        return model
