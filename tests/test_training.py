"""The training engine (alr_core.nn.training) and batched augmentation (alr_core.nn.augment)."""

from __future__ import annotations

import copy
import subprocess
import sys

import numpy as np
import pytest
import torch
from builders import REPO_ROOT

from alr_core.common.errors import AlrError
from alr_core.common.params import AugmentParams, TrainParams
from alr_core.nn import training
from alr_core.nn.augment import augment, to_input
from alr_core.nn.models import ModelSpec, build_model
from alr_core.nn.transfer import to_device
from alr_core.nn.training import (
    BestCheckpoint,
    EpochLosses,
    ImageSet,
    InputPipeline,
    MixedPrecision,
    channel_stats,
    eval_batch_rows,
    evaluate,
    fits_on_device,
    make_optimizer,
    per_sample_loss,
    pick_device,
    predict,
    seed_everything,
    shuffled_batches,
)

pytestmark = pytest.mark.usefixtures("torch_state")


def random_images(batch=24, height=13, width=12, channels=3, seed=0):
    """Images with pixel values in 1..255, so that zero padding is recognisable."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(1, 256, (batch, height, width, channels), generator=gen, dtype=torch.uint8)


# ----------------------------------------------------------------------------- augment


def test_augment_off_is_identity():
    images = random_images()
    out = augment(images, AugmentParams(crop_padding=0, hflip=False, vflip=False), torch.Generator().manual_seed(0))
    assert out.dtype == torch.uint8
    assert torch.equal(out, images)


def test_hflip_gives_original_or_mirror():
    images = random_images(batch=40)
    out = augment(images, AugmentParams(crop_padding=0, hflip=True), torch.Generator().manual_seed(1))
    assert out.shape == images.shape and out.dtype == torch.uint8
    mirrored = 0
    for original, result in zip(images, out):
        is_mirror = torch.equal(result, original.flip(1))  # (H, W, C): dim 1 is the width
        assert torch.equal(result, original) or is_mirror
        mirrored += is_mirror
    assert 5 < mirrored < 35  # both happen


def test_vflip_gives_original_or_upside_down():
    images = random_images(batch=40)
    out = augment(images, AugmentParams(crop_padding=0, vflip=True), torch.Generator().manual_seed(2))
    flipped = 0
    for original, result in zip(images, out):
        is_flip = torch.equal(result, original.flip(0))
        assert torch.equal(result, original) or is_flip
        flipped += is_flip
    assert 5 < flipped < 35


def windows(image: torch.Tensor, pad: int):
    """Every (top, left) crop of ``image`` (H, W, C) zero-padded by ``pad``."""
    height, width, _ = image.shape
    padded = torch.zeros(height + 2 * pad, width + 2 * pad, image.shape[2], dtype=image.dtype)
    padded[pad : pad + height, pad : pad + width] = image
    return {(top, left): padded[top : top + height, left : left + width]
            for top in range(2 * pad + 1) for left in range(2 * pad + 1)}  # fmt: skip


@pytest.mark.parametrize("pad", [1, 2, 3])
def test_crop_is_a_window_of_the_padded_image(pad):
    images = random_images(batch=60, seed=pad)
    out = augment(images, AugmentParams(crop_padding=pad), torch.Generator().manual_seed(pad))
    assert out.shape == images.shape and out.dtype == torch.uint8
    seen = set()
    for original, result in zip(images, out):
        matches = [offset for offset, window in windows(original, pad).items() if torch.equal(result, window)]
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) > 3  # offsets vary across the batch


def test_crop_with_flips_is_a_flipped_window():
    pad = 2
    images = random_images(batch=50, seed=9)
    out = augment(images, AugmentParams(crop_padding=pad, hflip=True, vflip=True), torch.Generator().manual_seed(3))
    kinds = set()
    for original, result in zip(images, out):
        found = False
        for window in windows(original, pad).values():
            for kind, candidate in (("id", window), ("h", window.flip(1)), ("v", window.flip(0)),
                                    ("hv", window.flip(0).flip(1))):  # fmt: skip
                if torch.equal(result, candidate):
                    found = True
                    kinds.add(kind)
        assert found
    assert kinds == {"id", "h", "v", "hv"}


def test_augment_is_reproducible_from_the_generator():
    images = random_images()
    params = AugmentParams(crop_padding=2, hflip=True, vflip=True)
    first = augment(images, params, torch.Generator().manual_seed(5))
    second = augment(images, params, torch.Generator().manual_seed(5))
    other = augment(images, params, torch.Generator().manual_seed(6))
    assert torch.equal(first, second)
    assert not torch.equal(first, other)


def test_a_crop_padding_beyond_a_quarter_of_the_images_side_is_refused():
    """data.image_size: null keeps the source's size, which the params check cannot know: the
    crop refuses padding that would leave most of a crop empty (64 px on 8 px trains to chance)."""
    params = AugmentParams(crop_padding=3)
    assert augment(random_images(height=13, width=12), params, torch.Generator()).shape == (24, 13, 12, 3)
    with pytest.raises(AlrError, match=r"^'train.augment.crop_padding' is 3 px, more than a quarter of the images' "
                                       r"side \(data.image_size: null keeps the source's\) \(11 px\).*use at most 2"):
        augment(random_images(height=13, width=11), params, torch.Generator())


def test_augment_single_channel_and_single_image():
    images = random_images(batch=1, height=4, width=4, channels=1)
    out = augment(images, AugmentParams(crop_padding=1, hflip=True), torch.Generator().manual_seed(0))
    assert out.shape == (1, 4, 4, 1) and out.dtype == torch.uint8


def test_to_input_normalises_into_channels_last():
    images = random_images(batch=3, height=4, width=5, channels=3)
    mean = torch.tensor([0.1, 0.5, 0.9])
    std = torch.tensor([0.2, 0.3, 0.4])
    x = to_input(images, mean, std)
    assert x.dtype == torch.float32
    assert x.shape == (3, 3, 4, 5)
    assert x.is_contiguous(memory_format=torch.channels_last)
    expected = (images.permute(0, 3, 1, 2).double() / 255.0 - mean.double().view(1, 3, 1, 1)) / std.double().view(1, 3, 1, 1)
    assert torch.allclose(x.double(), expected, atol=1e-5)
    # spot check one value by hand: image 1, pixel (2, 3), channel 2
    value = images[1, 2, 3, 2].item()
    assert x[1, 2, 2, 3].item() == pytest.approx((value / 255 - 0.9) / 0.4, abs=1e-5)
    assert torch.equal(images, random_images(batch=3, height=4, width=5, channels=3))  # input untouched


def test_channel_stats():
    images = np.random.default_rng(0).integers(0, 256, (10, 4, 4, 3), dtype=np.uint8)
    stats = channel_stats(images)
    scaled = images.astype(np.float64) / 255
    np.testing.assert_allclose(stats["mean"], scaled.mean(axis=(0, 1, 2)))
    np.testing.assert_allclose(stats["std"], scaled.std(axis=(0, 1, 2)))
    chunked = channel_stats(images, chunk_images=3)  # chunks of 3, 3, 3 and 1 images
    np.testing.assert_allclose(chunked["mean"], stats["mean"])
    np.testing.assert_allclose(chunked["std"], stats["std"])
    constant = channel_stats(np.full((2, 3, 3, 1), 7, dtype=np.uint8))
    assert constant["std"] == [1e-3]  # floor, so a constant channel does not divide by zero


def test_input_pipeline_eval_input_is_unaugmented():
    images = random_images(batch=4, channels=1)
    pipeline = InputPipeline({"mean": [0.5], "std": [0.25]}, AugmentParams(crop_padding=3, hflip=True),
                             torch.device("cpu"), torch.Generator().manual_seed(0))  # fmt: skip
    expected = to_input(images, torch.tensor([0.5]), torch.tensor([0.25]))
    assert torch.equal(pipeline.eval_input(images), expected)
    assert pipeline.train_input(images).shape == expected.shape


# ----------------------------------------------------------------------------- batching


@pytest.mark.parametrize("num_samples, batch_size", [(21, 4), (9, 2), (65, 64), (101, 20), (5, 4), (3, 2)])
def test_no_batch_of_one_when_remainder_is_one(num_samples, batch_size):
    assert num_samples % batch_size == 1
    batches = shuffled_batches(num_samples, batch_size, torch.Generator().manual_seed(0))
    sizes = [len(b) for b in batches]
    assert min(sizes) >= 2
    assert sizes == [batch_size] * (num_samples // batch_size - 1) + [batch_size + 1]
    everything = torch.cat(batches)
    assert sorted(everything.tolist()) == list(range(num_samples))


@pytest.mark.parametrize("num_samples, batch_size", [(20, 4), (22, 4), (7, 64), (2, 2), (10, 3)])
def test_batches_cover_every_index_once(num_samples, batch_size):
    batches = shuffled_batches(num_samples, batch_size, torch.Generator().manual_seed(1))
    everything = torch.cat(batches)
    assert sorted(everything.tolist()) == list(range(num_samples))
    assert all(2 <= len(b) <= batch_size + 1 for b in batches) or num_samples < 2


def test_batches_are_shuffled_and_reproducible():
    first = shuffled_batches(50, 8, torch.Generator().manual_seed(3))
    second = shuffled_batches(50, 8, torch.Generator().manual_seed(3))
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert torch.cat(first).tolist() != list(range(50))


def test_single_sample_is_one_batch():
    batches = shuffled_batches(1, 4, torch.Generator().manual_seed(0))
    assert [b.tolist() for b in batches] == [[0]]


# ----------------------------------------------------------------------------- checks and helpers


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_epoch_losses_names_epoch_and_first_bad_batch(value):
    losses = EpochLosses(epoch=3)
    for batch in range(20):
        bad = batch in (17, 19)
        losses.add([torch.tensor(1.0), torch.tensor(value if bad else 2.0)], [4, 4])
    with pytest.raises(AlrError) as caught:
        losses.means()
    message = str(caught.value)
    assert "epoch 3" in message and "batch 17" in message
    assert str(value) in message and "train.lr" in message


def test_epoch_losses_means_are_weighted_by_samples_trained_on():
    losses = EpochLosses(epoch=0)
    losses.add([torch.tensor(1.0), torch.tensor(4.0)], [3, 1])
    # counts the host has not read: 0-d tensors, as phase 1's per-batch selection gives them
    losses.add([torch.tensor(3.0), torch.tensor(1e30)], [torch.tensor(1), torch.tensor(True).sum()])
    np.testing.assert_allclose(losses.means(), [(1 * 3 + 3 * 1) / 4, (4 + 1e30) / 2], rtol=1e-6)


@pytest.mark.parametrize(
    "device, row_shape, expected",
    [("cpu", (28, 28, 1), 128), ("cpu", (224, 224, 3), 128), ("cuda", (28, 28, 1), 4096),
     ("cuda", (28, 28, 3), 1024), ("cuda", (64, 64, 1), 1024), ("cuda", (224, 224, 3), 128),
     ("cuda", (512,), 4096), ("cuda", (8192,), 512)],  # fmt: skip
)
def test_eval_batch_rows_auto_by_device_and_input_size(device, row_shape, expected):
    assert eval_batch_rows("auto", torch.device(device), row_shape) == expected
    assert eval_batch_rows(37, torch.device(device), row_shape) == 37  # a number is taken as given


def test_predict_is_the_same_at_any_batch_size():
    torch.manual_seed(0)
    model = build_model(ModelSpec("small_cnn", 3, 3, 6, 0.3))
    images = ImageSet.from_arrays(random_images(height=6, width=6).numpy(), np.zeros(24, np.int64), torch.device("cpu"))
    pipeline = InputPipeline(channel_stats(images.images.numpy()), AugmentParams(), torch.device("cpu"), torch.Generator())
    features, logits = predict(model, images, pipeline, "auto")
    for batch_size in (1, 5, 24):
        other_features, other_logits = predict(model, images, pipeline, batch_size)
        torch.testing.assert_close(other_logits, logits)
        torch.testing.assert_close(other_features, features)


def test_per_sample_loss_is_cross_entropy_per_sample():
    logits = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    labels = torch.tensor([0, 1])
    loss = per_sample_loss(logits, labels)
    assert loss.shape == (2,)
    assert torch.allclose(loss, torch.tensor([np.log1p(np.exp(-2.0)), np.log(2.0)], dtype=torch.float32))


def test_pick_device():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        assert pick_device("auto") == torch.device("cpu")
        with pytest.raises(AlrError, match="cuda"):
            pick_device("cuda")


def test_seed_everything_gives_reproducible_draws():
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    fill = torch.utils.deterministic.fill_uninitialized_memory
    try:
        gen = seed_everything(7)
        first = (torch.rand(3), torch.rand(3, generator=gen))
        gen = seed_everything(7)
        second = (torch.rand(3), torch.rand(3, generator=gen))
        assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
        # deterministic kernels without the NaN fill of fresh memory (a few % of a training step)
        assert not torch.utils.deterministic.fill_uninitialized_memory
    finally:
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.utils.deterministic.fill_uninitialized_memory = fill
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


class TwoLayers(torch.nn.Module):
    """A backbone layer and a ``head``, as every classifier has."""

    def __init__(self):
        super().__init__()
        self.backbone = torch.nn.Linear(3, 4)
        self.head = torch.nn.Linear(4, 2)


def test_make_optimizer_cosine_schedule():
    net = TwoLayers()
    optimizer, schedule = make_optimizer([net], TrainParams(lr=0.1, momentum=0.5, weight_decay=0.01), epochs=4)
    assert len(optimizer.param_groups) == 2
    for group in optimizer.param_groups:
        assert group["lr"] == 0.1 and group["momentum"] == 0.5 and group["weight_decay"] == 0.01
    lrs = []
    for _ in range(4):
        optimizer.step()
        schedule.step()
        lrs.append(schedule.get_last_lr())
    expected = [0.1 * (1 + np.cos(np.pi * e / 4)) / 2 for e in range(1, 5)]
    np.testing.assert_allclose(lrs, np.repeat(np.array(expected)[:, None], 2, axis=1), atol=1e-12)


def test_make_optimizer_slows_the_backbone_alone():
    nets = [TwoLayers(), TwoLayers()]
    optimizer, schedule = make_optimizer(nets, TrainParams(lr=0.1, momentum=0.0, weight_decay=0.0), epochs=2,
                                         backbone_lr=0.25)  # fmt: skip
    before = [copy.deepcopy(net.state_dict()) for net in nets]
    for net in nets:
        for p in net.parameters():
            p.grad = torch.ones_like(p)
    optimizer.step()
    for net, old in zip(nets, before):
        for name, value in net.state_dict().items():
            step = 0.1 if name.startswith("head.") else 0.025  # every tensor of both networks is in a group
            torch.testing.assert_close(old[name] - value, torch.full_like(value, step))
    schedule.step()
    np.testing.assert_allclose(schedule.get_last_lr(), [0.05, 0.0125])  # the ratio holds along the cosine


def test_fused_sgd_makes_the_plain_sgd_update():
    torch.manual_seed(0)
    fused, plain = TwoLayers(), TwoLayers()
    plain.load_state_dict(fused.state_dict())
    params = TrainParams(lr=0.1, momentum=0.9, weight_decay=0.01)
    optimizer, _ = make_optimizer([fused], params, epochs=3)
    reference = torch.optim.SGD(plain.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01, foreach=False)
    assert optimizer.defaults["fused"]
    for step in range(3):
        for a, b in zip(fused.parameters(), plain.parameters()):
            a.grad = torch.randn_like(a)
            b.grad = a.grad.clone()
        optimizer.step()
        reference.step()
        for a, b in zip(fused.parameters(), plain.parameters()):
            torch.testing.assert_close(a.data, b.data, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("fused", [True, False])  # unfused: an in-place update that grad mode would refuse
@pytest.mark.parametrize("name, options", [("SGD", {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01}),
                                           ("AdamW", {"lr": 0.01, "weight_decay": 0.01})])
def test_optimizers_without_the_compiler_import_make_torchs_update(name, options, fused):
    torch.manual_seed(0)
    ours, theirs = TwoLayers(), TwoLayers()
    theirs.load_state_dict(ours.state_dict())

    def groups(net):  # two groups, as make_optimizer's
        return [{"params": net.head.parameters()}, {"params": net.backbone.parameters(), "lr": options["lr"] / 4}]

    optimizer = getattr(training, name)(groups(ours), fused=fused, **options)
    reference = getattr(torch.optim, name)(groups(theirs), fused=fused, **options)
    schedules = [torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=4) for o in (optimizer, reference)]
    inputs = torch.randn(8, 3)
    for _ in range(4):
        for net, opt in ((ours, optimizer), (theirs, reference)):
            opt.zero_grad(set_to_none=True)
            net.head(net.backbone(inputs)).square().mean().backward()
            opt.step()
        for schedule in schedules:
            schedule.step()
        for a, b in zip(ours.parameters(), theirs.parameters()):
            assert torch.equal(a, b)
    assert optimizer.state_dict()["state"].keys() == reference.state_dict()["state"].keys()


def test_optimizer_step_runs_the_closure_and_returns_its_loss():
    torch.manual_seed(0)
    ours, theirs = TwoLayers(), TwoLayers()
    theirs.load_state_dict(ours.state_dict())
    inputs = torch.randn(8, 3)
    optimizer = training.SGD(ours.parameters(), lr=0.1, momentum=0.9, fused=True)
    reference = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9, fused=True)
    losses = []
    for net, opt in ((ours, optimizer), (theirs, reference)):
        def closure(net=net, opt=opt):
            opt.zero_grad(set_to_none=True)
            loss = net.head(net.backbone(inputs)).square().mean()
            loss.backward()
            return loss
        losses.append(opt.step(closure))
    assert losses[0] is not None and torch.equal(losses[0], losses[1])
    for a, b in zip(ours.parameters(), theirs.parameters()):
        assert torch.equal(a, b)


def test_a_training_step_does_not_import_the_compiler():
    # torch.optim's own wrappers import torch._dynamo (~1.2 s of each training stage); a fresh
    # process, as other tests here may have imported it
    code = """
import sys, torch
from alr_core.common.params import TrainParams
from alr_core.nn.training import AdamW, make_optimizer
net = torch.nn.Module()
net.head = torch.nn.Linear(3, 2)
optimizer, schedule = make_optimizer([net], TrainParams(), epochs=2)
adamw = AdamW(net.parameters(), lr=0.01, fused=True)
for opt in (optimizer, adamw):
    opt.zero_grad()
    net.head(torch.randn(4, 3)).sum().backward()
    opt.step()
schedule.step()
print("torch._dynamo" in sys.modules)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def tiny_setup(num_samples=10, seed=0):
    torch.manual_seed(seed)
    model = build_model(ModelSpec("small_cnn", 3, 1, 8, 0.5))
    images = np.random.default_rng(seed).integers(0, 256, (num_samples, 8, 8, 1), dtype=np.uint8)
    data = ImageSet.from_arrays(images, np.arange(num_samples) % 3, torch.device("cpu"))
    pipeline = InputPipeline({"mean": [0.5], "std": [0.3]}, AugmentParams(), torch.device("cpu"),
                             torch.Generator().manual_seed(0))  # fmt: skip
    return model, data, pipeline


def test_image_set_from_arrays():
    _, data, _ = tiny_setup()
    assert len(data) == 10
    assert data.images.dtype == torch.uint8 and data.images.shape == (10, 8, 8, 1)
    assert data.labels.dtype == torch.int64
    assert data.labels.tolist() == [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]


def test_images_kept_on_the_host_give_the_same_batches_and_predictions():
    model, on_device, pipeline = tiny_setup()
    host = ImageSet.from_arrays(on_device.images.numpy(), on_device.labels.numpy(), torch.device("cpu"),
                                on_device=False)  # fmt: skip
    index = torch.tensor([7, 2, 2, 9])
    assert torch.equal(host.batch(index), on_device.batch(index))
    assert torch.equal(host.batch(slice(3, 6)), on_device.images[3:6])
    model.eval()
    assert torch.equal(predict(model, host, pipeline, 4)[1], predict(model, on_device, pipeline, 4)[1])


def test_host_memory_always_fits():
    assert fits_on_device(10**15, torch.device("cpu"))


def test_mixed_precision_is_off_on_the_cpu_unless_forced():
    cpu = torch.device("cpu")
    assert MixedPrecision(True, cpu).name == "float32" and not MixedPrecision(True, cpu).scaler.is_enabled()
    assert MixedPrecision(False, cpu, dtype=torch.bfloat16).name == "float32"  # disabled wins
    assert MixedPrecision(True, cpu, dtype=torch.bfloat16).name == "bfloat16"


@pytest.mark.parametrize("dtype, scaled", [(torch.bfloat16, False), (torch.float16, True), (None, False)])
def test_mixed_precision_step_trains(dtype, scaled):
    """One autocast forward + step in each precision (forced on the CPU, as CUDA would pick):
    the forward runs in that dtype, float16 scales the loss, and the step lowers the loss."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    precision = MixedPrecision(True, torch.device("cpu"), dtype=dtype)
    assert precision.scaler.is_enabled() == scaled
    x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    losses = []
    for _ in range(3):
        with precision.autocast():
            logits = model(x)
        assert logits.dtype == (dtype or torch.float32)
        loss = per_sample_loss(logits.float(), y).mean()
        losses.append(loss.item())
        precision.step(loss, optimizer)
    assert model.weight.dtype == torch.float32  # master weights stay float32
    assert losses[2] < losses[0]


def test_predict_is_batch_independent_and_restores_mode():
    model, data, pipeline = tiny_setup()
    model.train()
    features, logits = predict(model, data, pipeline, batch_size=3)  # batches 3, 3, 3, 1
    assert model.training  # mode restored
    assert features.shape == (10, 128) and logits.shape == (10, 3)
    whole_features, whole_logits = predict(model, data, pipeline, batch_size=64)
    assert torch.allclose(logits, whole_logits, atol=1e-5)
    assert torch.allclose(features, whole_features, atol=1e-5)
    assert not logits.requires_grad
    model.eval()
    predict(model, data, pipeline, batch_size=4)
    assert not model.training


def test_predict_mc_dropout_keeps_batchnorm_in_eval_mode():
    model, data, pipeline = tiny_setup()
    model.eval()
    running_mean = model.body[1].running_mean.clone()
    torch.manual_seed(1)
    features, first = predict(model, data, pipeline, batch_size=4, mc_dropout=True)
    _, second = predict(model, data, pipeline, batch_size=4, mc_dropout=True)
    _, plain = predict(model, data, pipeline, batch_size=4)
    assert not torch.allclose(first, second)  # dropout is active
    assert torch.equal(model.body[1].running_mean, running_mean)  # BatchNorm stats untouched
    assert torch.allclose(plain, model.head(features), atol=1e-5)  # features are pre-dropout
    assert all(not m.training for m in model.modules())  # back to eval afterwards


def test_best_checkpoint_keeps_the_best_weights():
    model = torch.nn.Linear(2, 1)
    best = BestCheckpoint()
    with torch.no_grad():
        model.weight.fill_(1.0)
    best.update(model, 0.5, epoch=0)
    with torch.no_grad():
        model.weight.fill_(2.0)
    best.update(model, 0.7, epoch=1)
    with torch.no_grad():
        model.weight.fill_(3.0)
    best.update(model, 0.7, epoch=2)  # a tie does not replace the earlier epoch
    best.update(model, 0.1, epoch=3)
    assert best.epoch == 1 and best.score == 0.7
    restored = best.restore(model)
    assert restored is model
    assert torch.equal(model.weight, torch.full((1, 2), 2.0))


def test_evaluate_scores_the_eval_pass():
    model, data, pipeline = tiny_setup()
    model.eval()
    scores = evaluate(model, data, pipeline, 4, ["a", "b", "c"])
    _, logits = predict(model, data, pipeline, batch_size=64)
    predictions = logits.argmax(1)
    assert scores["accuracy"] == pytest.approx((predictions == data.labels).float().mean().item())
    assert np.array(scores["confusion_matrix"]).sum() == 10



def test_best_checkpoint_keeps_the_first_epoch_when_every_epoch_scores_zero():
    model = torch.nn.Linear(2, 1)
    best = BestCheckpoint()
    with torch.no_grad():
        model.weight.fill_(1.0)
    best.update(model, 0.0, epoch=0)  # a macro-F1 of 0 is a score: there is a checkpoint to restore
    with torch.no_grad():
        model.weight.fill_(2.0)
    best.update(model, 0.0, epoch=1)
    assert best.epoch == 0 and torch.equal(best.restore(model).weight, torch.full((1, 2), 1.0))


class _LogitsAreInputs(torch.nn.Module):
    def forward(self, x):
        return x, x


def test_checkpoint_scores_count_every_class_the_last_one_too():
    # predictions 0, 1, 2, 2 for labels 0, 1, 2, 1: F1 per class 1, 2/3, 2/3; recall 1, 1/2, 1
    predicted, labels = [0, 1, 2, 2], [0, 1, 2, 1]
    data = ImageSet.from_arrays(np.eye(3, dtype=np.float32)[predicted], np.array(labels), torch.device("cpu"))
    pipeline = InputPipeline({"mean": [0.0] * 3, "std": [1.0] * 3}, None, torch.device("cpu"), torch.Generator())
    scores = evaluate(_LogitsAreInputs(), data, pipeline, 4, ["a", "b", "c"], checkpoint_only=True)
    assert scores["macro_f1"] == pytest.approx(7 / 9) and scores["balanced_accuracy"] == pytest.approx(5 / 6)

@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device"))])  # fmt: skip
def test_to_device_copies_values(device):
    host = torch.arange(10)
    placed = to_device(host, torch.device(device))
    assert placed.device.type == device
    assert placed.cpu().tolist() == list(range(10))
