"""Self-supervised pretraining (alr_core.ssl, stages/pretrain.py): NT-Xent and VICReg's loss on
hand-computed inputs, the batched views, the encoder and its checkpoint, the loop (train images only, labels
never read, every sample embedded once), the splits' own seed, and DVC caching: `pretrain` is
not re-run when only the noise, the replicate seed or the budget change."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from alr_core.common import paths
from alr_core.common.errors import AlrError
from alr_core.common.params import Params, PretrainParams, parse_params
from alr_core.nn.models import ModelSpec, build_model, load_state_checked
from alr_core.nn.training import EpochLosses, InputPipeline
from alr_core.ssl import loop
from alr_core.ssl import loss as loss_module
from alr_core.ssl.embeddings import embedding_matrix, embeddings_table
from alr_core.ssl.encoder import ENCODER_ONLY, ProjectionHead, build_encoder, encoder_spec, save_encoder
from alr_core.ssl.loss import nt_xent, vicreg, vicreg_collapse_loss
from alr_core.ssl.views import random_view, two_views

pytestmark = pytest.mark.usefixtures("torch_state")

# every random draw off: a view is the image itself
IDENTITY = PretrainParams(crop_scale_min=1.0, rotation=0.0, brightness=0.0, contrast=0.0, blur_probability=0.0)


# ----------------------------------------------------------------------------- NT-Xent


def test_nt_xent_identical_orthogonal_views_by_hand():
    # two images, embeddings (1, 0) and (0, 1), each view equal to its image: every anchor has
    # its positive at cosine 1 and two negatives at cosine 0
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert nt_xent(z, z.clone(), 1.0).item() == pytest.approx(-math.log(math.e / (math.e + 2)))
    # temperature 0.5 doubles every similarity
    assert nt_xent(z, z.clone(), 0.5).item() == pytest.approx(-math.log(math.e**2 / (math.e**2 + 2)))


def test_nt_xent_swapped_views_by_hand():
    # the positives are orthogonal (cosine 0) and one negative per anchor coincides with it
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z2 = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    assert nt_xent(z1, z2, 1.0).item() == pytest.approx(-math.log(1 / (1 + 1 + math.e)))


def test_nt_xent_unequal_anchors_by_hand():
    # z2 is not unit length: (1, 1) and (1, -1) are normalised to cosines ±c with c = 1/√2
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z2 = torch.tensor([[1.0, 1.0], [1.0, -1.0]])
    c, e = 1 / math.sqrt(2), math.exp
    anchors = [
        -math.log(e(c) / (e(0) + e(c) + e(c))),  # z1[0]: z1[1] 0, z2[0] c (positive), z2[1] c
        -math.log(e(-c) / (e(0) + e(c) + e(-c))),  # z1[1]: z1[0] 0, z2[0] c, z2[1] -c (positive)
        -math.log(e(c) / (e(c) + e(c) + e(0))),  # z2[0]: z1[0] c (positive), z1[1] c, z2[1] 0
        -math.log(e(-c) / (e(c) + e(-c) + e(0))),  # z2[1]: z1[0] c, z1[1] -c (positive), z2[0] 0
    ]
    assert nt_xent(z1, z2, 1.0).item() == pytest.approx(sum(anchors) / 4)


def test_nt_xent_invariances_and_chance():
    gen = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(6, 4, generator=gen), torch.randn(6, 4, generator=gen)
    loss = nt_xent(z1, z2, 0.3)
    assert nt_xent(z2, z1, 0.3).item() == pytest.approx(loss.item())  # the two views are symmetric
    order = torch.randperm(6, generator=gen)
    assert nt_xent(z1[order], z2[order], 0.3).item() == pytest.approx(loss.item())  # pair order
    scales = torch.rand(6, 1, generator=gen) + 0.1
    assert nt_xent(z1 * scales, z2 * 3, 0.3).item() == pytest.approx(loss.item(), rel=1e-5)  # lengths
    rotation, _ = torch.linalg.qr(torch.randn(4, 4, generator=gen))
    assert nt_xent(z1 @ rotation, z2 @ rotation, 0.3).item() == pytest.approx(loss.item(), rel=1e-5)
    # all embeddings alike: every one of the 2B − 1 others is as likely as the positive
    same = torch.ones(6, 4)
    assert nt_xent(same, same, 0.3).item() == pytest.approx(math.log(2 * 6 - 1))


def test_nt_xent_gradient_and_shape_errors():
    z1 = torch.randn(4, 3, requires_grad=True)
    nt_xent(z1, torch.randn(4, 3), 0.5).backward()
    assert torch.isfinite(z1.grad).all() and z1.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="two \\(B, D\\) batches"):
        nt_xent(torch.randn(4, 3), torch.randn(5, 3), 0.5)


# ----------------------------------------------------------------------------- VICReg


def test_vicreg_by_hand():
    # identical views (invariance 0), dimension 0 spread out (std √2 > 1: no penalty), dimension
    # 1 constant (std √ε = 0.01, penalty 0.99), uncorrelated: μ · 2 views · 0.99 / 2 dimensions
    z = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    assert vicreg(z, z.clone()).item() == pytest.approx(25 * 2 * 0.99 / 2)
    # z1's dimensions move together: covariance [[8, 8], [8, 8]], off-diagonal 2 · 8² / D = 64;
    # z2 differs from z1 by ±2 in dimension 1: MSE (4 + 4) / 4 = 2, times λ = 25; z2's constant
    # dimension 1 costs μ · 0.99 / 2
    z1 = torch.tensor([[2.0, 2.0], [-2.0, -2.0]])
    z2 = torch.tensor([[2.0, 0.0], [-2.0, 0.0]])
    assert vicreg(z1, z2).item() == pytest.approx(25 * 2 + 25 * 0.99 / 2 + 64)


def test_vicreg_variance_term_uses_the_unbiased_batch_std():
    # one dimension, identical views, values ±0.5: unbiased variance (0.25 + 0.25) / (2 − 1) = 0.5,
    # std √(0.5 + ε) ≈ 0.707 < γ = 1, so each view pays μ · (1 − √(0.5 + ε)); the biased variance
    # 0.25 would cost μ · (1 − √(0.25 + ε)) ≈ 12.5 per view instead of ≈ 7.3
    z = torch.tensor([[0.5], [-0.5]])
    assert vicreg(z, z.clone()).item() == pytest.approx(2 * 25 * (1 - math.sqrt(0.5 + 1e-4)))


def test_vicreg_invariances_and_collapse():
    gen = torch.Generator().manual_seed(0)
    z1 = torch.randn(8, 5, generator=gen)
    z2 = z1 + 0.1 * torch.randn(8, 5, generator=gen)  # two views of the same images, alike
    loss = vicreg(z1, z2)
    assert vicreg(z2, z1).item() == pytest.approx(loss.item())  # the two views are symmetric
    order = torch.randperm(8, generator=gen)
    assert vicreg(z1[order], z2[order]).item() == pytest.approx(loss.item())  # pair order
    shift = torch.randn(1, 5, generator=gen)
    # a shared shift changes neither variance nor covariance nor the views' differences
    assert vicreg(z1 + shift, z2 + shift).item() == pytest.approx(loss.item(), rel=1e-5)
    # unlike NT-Xent the scale counts: embeddings shrunk toward one point pay the variance term
    assert vicreg(z1 * 0.01, z2 * 0.01).item() > loss.item()
    same = torch.ones(8, 5)
    assert vicreg(same, same).item() == pytest.approx(vicreg_collapse_loss()) == pytest.approx(49.5)


def test_vicreg_gradient_and_errors():
    z1 = torch.randn(4, 3, requires_grad=True)
    vicreg(z1, torch.randn(4, 3)).backward()
    assert torch.isfinite(z1.grad).all() and z1.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="two \\(B, D\\) batches"):
        vicreg(torch.randn(4, 3), torch.randn(4, 2))
    with pytest.raises(ValueError, match="at least 2 rows per batch.*got 1"):
        vicreg(torch.randn(1, 3), torch.randn(1, 3))


# ----------------------------------------------------------------------------- views


def random_images(batch=16, height=10, width=10, channels=1, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, height, width, channels), generator=gen, dtype=torch.uint8)


def ramp(batch: int, size: int, axis: int) -> torch.Tensor:
    """Images rising from 0 to 255 along ``axis`` (0: top to bottom, 1: left to right)."""
    values = torch.linspace(0, 255, size).round().to(torch.uint8)
    image = values[:, None].expand(size, size) if axis == 0 else values[None, :].expand(size, size)
    return image[None, :, :, None].expand(batch, size, size, 1).contiguous()


@pytest.mark.parametrize("shape", [(8, 12, 12, 1), (5, 10, 14, 3)])
def test_views_keep_shape_dtype_and_device(shape):
    images = random_images(*shape)
    out = random_view(images, PretrainParams(), True, True, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == torch.uint8 and out.device == images.device
    assert not torch.equal(out, images)


def test_views_with_every_draw_off_are_the_images():
    images = random_images(channels=3, height=9, width=11)
    assert torch.equal(random_view(images, IDENTITY, False, False, torch.Generator().manual_seed(0)), images)


def test_views_are_reproducible_from_the_generator():
    images = random_images(batch=12)
    params = PretrainParams(blur_probability=0.5)
    first = random_view(images, params, True, False, torch.Generator().manual_seed(3))
    again = random_view(images, params, True, False, torch.Generator().manual_seed(3))
    other = random_view(images, params, True, False, torch.Generator().manual_seed(4))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    # one generator, two calls: two different views of the same images
    gen = torch.Generator().manual_seed(3)
    assert not torch.equal(random_view(images, params, True, False, gen), random_view(images, params, True, False, gen))


@pytest.mark.parametrize("hflip, vflip, axis, seed", [(True, False, 1, 1), (False, True, 0, 2)])
def test_one_flip_alone_gives_the_image_or_its_flip_along_that_axis(hflip, vflip, axis, seed):
    images = random_images(batch=40)
    out = random_view(images, IDENTITY, hflip, vflip, torch.Generator().manual_seed(seed))
    flipped = [torch.equal(o, i.flip(axis)) for o, i in zip(out, images)]
    assert all(f or torch.equal(o, i) for f, o, i in zip(flipped, out, images))
    assert 5 < sum(flipped) < 35


@pytest.mark.parametrize("hflip, vflip", [(False, False), (True, False), (False, True)])
def test_crops_and_rotations_never_flip_what_the_params_forbid(hflip, vflip):
    # on a ramp any crop (≥ 30 % of the area) rotated by ≤ 10° keeps the ramp's direction,
    # so a view whose halves are in the other order was flipped
    params = PretrainParams(brightness=0.0, contrast=0.0, blur_probability=0.0)

    def reversed_along(axis: int) -> torch.Tensor:
        out = random_view(ramp(60, 16, axis), params, hflip, vflip, torch.Generator().manual_seed(5)).float()
        first, second = out.narrow(axis + 1, 0, 8).mean(dim=(1, 2, 3)), out.narrow(axis + 1, 8, 8).mean(dim=(1, 2, 3))
        return first > second

    for axis, allowed in ((1, hflip), (0, vflip)):
        reversed_views = int(reversed_along(axis).sum())
        assert (10 < reversed_views < 50) if allowed else reversed_views == 0, (axis, reversed_views)


def test_views_of_a_constant_image_stay_constant_and_in_range():
    gray = torch.full((30, 12, 12, 1), 100, dtype=torch.uint8)
    geometric = PretrainParams(brightness=0.0, contrast=0.0, blur_probability=1.0, blur_sigma=2.0)
    # reflection at the border and a normalised blur add nothing to a flat image
    assert torch.equal(random_view(gray, geometric, True, True, torch.Generator().manual_seed(0)), gray)
    bright = random_view(gray, dataclasses.replace(IDENTITY, brightness=0.4), False, False,
                         torch.Generator().manual_seed(0))  # fmt: skip
    per_image = bright.flatten(1)
    assert (per_image == per_image[:, :1]).all()  # one factor per image
    assert per_image.min() >= 60 and per_image.max() <= 140 and len(per_image[:, 0].unique()) > 10
    saturated = random_view(torch.full((8, 6, 6, 3), 250, dtype=torch.uint8),
                            dataclasses.replace(IDENTITY, brightness=0.9), False, False,
                            torch.Generator().manual_seed(1))  # fmt: skip
    assert saturated.max() == 255  # clipped, not wrapped around


def test_blur_smooths_and_keeps_the_mean():
    board = ((torch.arange(12)[:, None] + torch.arange(12)[None, :]) % 2 * 200).to(torch.uint8)
    images = board[None, :, :, None].expand(6, 12, 12, 1).contiguous()
    blurred = random_view(images, dataclasses.replace(IDENTITY, blur_probability=1.0, blur_sigma=1.5),
                          False, False, torch.Generator().manual_seed(0)).float()  # fmt: skip
    spread, original = blurred.std(dim=(1, 2, 3)), images.float().std(dim=(1, 2, 3))
    assert (spread <= original).all() and (spread < original / 2).any()  # σ is drawn from [0.1, 1.5]
    assert blurred.mean().item() == pytest.approx(100, abs=2)



def test_two_views_are_independent_views_of_each_image_in_order():
    images = random_images(batch=40)
    first, second = two_views(images, IDENTITY, True, False, torch.Generator().manual_seed(0))
    assert first.shape == second.shape == images.shape
    for view in (first, second):  # row i of each view is image i, or its mirror
        assert all(torch.equal(v, i) or torch.equal(v, i.flip(1)) for v, i in zip(view, images))
    differ = sum(not torch.equal(a, b) for a, b in zip(first, second))
    assert 5 < differ < 35  # each view flips on its own draw
    first, second = two_views(images, PretrainParams(), True, True, torch.Generator().manual_seed(1))
    assert all(not torch.equal(a, b) for a, b in zip(first, second))


def test_affine_is_a_rotated_crop_inside_the_image():
    from alr_core.ssl.views import _affine

    height, width = 10, 14
    params = PretrainParams(crop_scale_min=0.3, rotation=10.0)
    theta = _affine(2000, height / width, params, False, False, torch.Generator().manual_seed(0)).double()
    # in pixels (x spans W px, y spans H px) the linear part is R(angle) · diag(w, h), w and h the
    # crop's side fractions: orthogonal columns of lengths w and h, a positive determinant
    pixels = torch.diag(torch.tensor([width, height], dtype=torch.float64))
    linear = pixels @ theta[:, :, :2] @ torch.linalg.inv(pixels)
    w, h = linear[:, :, 0].norm(dim=1), linear[:, :, 1].norm(dim=1)
    assert (linear[:, :, 0] * linear[:, :, 1]).sum(dim=1).abs().max() < 1e-5
    assert (torch.linalg.det(linear) > 0).all()
    angle = torch.rad2deg(torch.atan2(linear[:, 1, 0], linear[:, 0, 0]))
    assert angle.abs().max() <= 10 + 1e-4 and angle.min() < -9 and angle.max() > 9
    area, ratio = w * h, w / h  # area share s ~ U(0.3, 1), aspect ratio in 3/4..4/3
    assert area.min() >= 0.3 - 1e-5 and area.max() <= 1 + 1e-5 and area.min() < 0.32 and area.max() > 0.98
    assert ratio.min() >= 3 / 4 - 1e-5 and ratio.max() <= 4 / 3 + 1e-5 and ratio.min() < 0.76 and ratio.max() > 1.3
    cx, cy = theta[:, 0, 2], theta[:, 1, 2]  # the crop's centre: the crop lies inside the image
    assert ((cx.abs() - (1 - w)).max() < 1e-5) and ((cy.abs() - (1 - h)).max() < 1e-5)
    assert (cx - cy).abs().max() > 0.1


def test_contrast_scales_each_image_about_its_mean_over_all_channels():
    # flat channels 50, 150, 100: the image's mean is 100, so a contrast factor c moves the first
    # two to 100 ∓ 50·c and leaves the third at 100
    images = torch.tensor([50, 150, 100], dtype=torch.uint8).expand(20, 6, 6, 3).contiguous()
    out = random_view(images, dataclasses.replace(IDENTITY, contrast=0.5), False, False,
                      torch.Generator().manual_seed(0)).float()  # fmt: skip
    assert (out == out[:, :1, :1]).all()  # still flat in each channel
    red, green, blue = out[:, 0, 0].T
    assert (blue - 100).abs().max() <= 1 and (red + green - 200).abs().max() <= 1
    factor = (100 - red) / 50
    assert factor.min() >= 0.5 - 0.02 and factor.max() <= 1.5 + 0.02 and factor.max() - factor.min() > 0.5


def test_brightness_is_clipped_before_the_blur():
    # a board of 0 and 200 brightened past 255 is a board of 0 and 255 once clipped, whose blur
    # keeps a mean near 127.5; blurring the unclipped values would carry the excess over
    board = ((torch.arange(12)[:, None] + torch.arange(12)[None, :]) % 2 * 200).to(torch.uint8)
    images = board[None, :, :, None].expand(40, 12, 12, 1).contiguous()
    params = dataclasses.replace(IDENTITY, brightness=0.9, blur_probability=1.0, blur_sigma=1.5)
    out = random_view(images, params, False, False, torch.Generator().manual_seed(0)).float()
    assert out.mean(dim=(1, 2, 3)).max() <= 130


def test_blur_sigma_is_the_gaussians_standard_deviation():
    from alr_core.ssl.views import _blur

    # a vertical line: each row of its blur is the 1-D kernel, whose variance is σ² (σ ~ U(0.1, 2),
    # a little less at σ = 2 where the kernel is cut at 3σ)
    line = torch.zeros(64, 1, 15, 15)
    line[..., 7] = 1.0
    params = dataclasses.replace(IDENTITY, blur_probability=1.0, blur_sigma=2.0)
    profile = _blur(line, params, torch.Generator().manual_seed(0))[:, 0, 7]
    offsets = torch.arange(15) - 7.0
    variance = (profile * offsets**2).sum(dim=1) / profile.sum(dim=1)
    assert variance.max() <= 4.0 and variance.max() > 2.6 and variance.min() < 0.5


def test_images_not_drawn_for_the_blur_are_left_as_they_are():
    images = random_images(batch=40)
    params = dataclasses.replace(IDENTITY, blur_probability=0.5, blur_sigma=3.0)
    out = random_view(images, params, False, False, torch.Generator().manual_seed(0))
    untouched = sum(torch.equal(o, i) for o, i in zip(out, images))
    assert 10 < untouched < 30  # about half (a blur of σ < 0.25 px changes no grey level: 5 % of the blurred)


def test_a_blur_wider_than_tiny_images_stays_inside_them():
    # σ up to 2 px asks for a radius of 6 px; reflection padding of 4 px images allows at most 3
    gray = torch.full((6, 4, 4, 1), 90, dtype=torch.uint8)
    params = dataclasses.replace(IDENTITY, blur_probability=1.0, blur_sigma=2.0)
    assert torch.equal(random_view(gray, params, False, False, torch.Generator().manual_seed(0)), gray)


# ----------------------------------------------------------------------------- encoder


def test_encoder_is_the_classifier_without_its_head():
    spec = encoder_spec("auto", (12, 12, 1))
    assert spec == ModelSpec("small_cnn", ENCODER_ONLY, 1, 12, 0.0)
    assert encoder_spec("auto", (72, 80, 3)).arch == "resnet18"
    encoder = build_encoder(spec).eval()
    features, second = encoder(torch.randn(3, 1, 12, 12))
    assert features.shape == (3, encoder.feature_dim) and torch.equal(features, second)
    classifier = build_model(dataclasses.replace(spec, num_classes=4, dropout=0.3))
    # a later stage can start its classifier from the encoder: only head.* is added
    extra = set(classifier.state_dict()) - set(encoder.state_dict())
    assert set(encoder.state_dict()) <= set(classifier.state_dict())
    assert extra and all(key.startswith("head.") for key in extra)
    assert ProjectionHead(encoder.feature_dim, 16)(features).shape == (3, 16)


def test_encoder_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    spec = encoder_spec("small_cnn", (8, 8, 1))
    encoder, head = build_encoder(spec), ProjectionHead(128, 8)
    encoder.train()(torch.randn(4, 1, 8, 8))  # BatchNorm statistics away from their defaults
    encoder.eval()
    save_encoder(tmp_path / "encoder.pt", spec, encoder, {"mean": [0.5], "std": [0.2]},
                 dataclasses.asdict(PretrainParams(method="simclr")), head)  # fmt: skip
    saved = torch.load(tmp_path / "encoder.pt", map_location="cpu", weights_only=True)
    assert saved["spec"]["num_classes"] == ENCODER_ONLY and saved["pretrain"]["method"] == "simclr"
    rebuilt = build_encoder(ModelSpec(**saved["spec"]))
    load_state_checked(rebuilt, saved["state_dict"], "encoder.pt")
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(rebuilt.eval()(x)[0], encoder(x)[0])
    assert set(saved["projection_state_dict"]) == set(head.state_dict())


# ----------------------------------------------------------------------------- the loop


def tiny_params(**pretrain) -> Params:
    raw = {"train": {"device": "cpu"},
           "pretrain": {"method": "simclr", "epochs": 2, "batch_size": 16, "lr": 0.003, "projection_dim": 16}
           | pretrain}  # fmt: skip
    return parse_params(raw)


def tiny_data(num_train=24, num_val=6, num_test=6, size=8, seed=0):
    """Images whose every pixel is their row index (so a spy can tell them apart) and a
    samples table with ids and splits in mixed order, and no labels."""
    n = num_train + num_val + num_test
    rng = np.random.default_rng(seed)
    splits = np.array(["train"] * num_train + ["val"] * num_val + ["test"] * num_test)
    rng.shuffle(splits)
    images = np.repeat(np.arange(n, dtype=np.uint8)[:, None, None, None], size * size, axis=1).reshape(n, size, size, 1)
    samples = pd.DataFrame({"sample_id": [f"s{i:03d}" for i in range(n)], "split": splits})
    return np.ascontiguousarray(images), samples


@pytest.mark.parametrize("method", ["simclr", "vicreg"])
def test_pretrain_reduces_the_loss_and_is_deterministic(method):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (48, 8, 8, 1), dtype=np.uint8)  # 48 distinct textures
    samples = pd.DataFrame({"sample_id": [f"s{i}" for i in range(48)], "split": "train"})
    params = tiny_params(method=method, epochs=4, batch_size=24, crop_scale_min=0.6)
    first = loop.run_pretrain(images, samples, params, progress=False)
    losses = first.epochs["loss"].to_numpy()
    assert first.epochs["epoch"].tolist() == [0, 1, 2, 3]
    assert losses[-1] < losses[0]
    assert first.metrics["loss_chance"] == pytest.approx(math.log(2 * 24 - 1) if method == "simclr" else 49.5)
    assert first.epochs["lr"].iloc[0] == pytest.approx(0.003) and first.epochs["lr"].is_monotonic_decreasing
    again = loop.run_pretrain(images, samples, params, progress=False)
    np.testing.assert_array_equal(again.embeddings, first.embeddings)
    pd.testing.assert_frame_equal(again.epochs, first.epochs)
    assert again.metrics == first.metrics
    other = loop.run_pretrain(images, samples, tiny_params(method=method, epochs=4, batch_size=24,
                                                           crop_scale_min=0.6, seed=1), progress=False)  # fmt: skip
    assert not np.array_equal(other.embeddings, first.embeddings)


def test_only_train_images_are_trained_on_and_every_sample_is_embedded_once(monkeypatch):
    images, samples = tiny_data()
    seen = []

    def spy(batch, *args):
        seen.append(batch[:, 0, 0, 0].tolist() * 2)  # pixel value = row of the image in `images`; two views
        return two_views(batch, *args)

    monkeypatch.setattr(loop, "two_views", spy)
    params = tiny_params(epochs=2)
    result = loop.run_pretrain(images, samples, params, progress=False)
    train_rows = np.flatnonzero(samples["split"] == "train")
    rows = [row for batch in seen for row in batch]
    # each train image twice per epoch (its two views), nothing else
    assert sorted(set(rows)) == train_rows.tolist()
    assert np.bincount(rows, minlength=len(images))[train_rows].tolist() == [2 * 2] * len(train_rows)

    table = embeddings_table(samples, result.embeddings)
    assert table["sample_id"].tolist() == samples["sample_id"].tolist() and table["sample_id"].is_unique
    assert table["split"].tolist() == samples["split"].tolist()
    matrix = embedding_matrix(table)
    assert matrix.shape == (len(images), result.encoder.feature_dim) and matrix.dtype == np.float32
    # each row is its own image's embedding: embedding the test images alone gives the same rows
    test_rows = np.flatnonzero(samples["split"] == "test")
    pipeline = InputPipeline(result.normalization, None, torch.device("cpu"), None)
    alone = loop.embed(result.encoder, images[test_rows], pipeline, 4)
    np.testing.assert_allclose(matrix[test_rows], alone, rtol=1e-5, atol=1e-6)
    # normalisation from the train images only
    assert result.normalization["mean"][0] == pytest.approx(images[train_rows].mean() / 255)
    assert result.metrics | {"loss_first_epoch": None, "loss_last_epoch": None} == {
        "method": "simclr", "arch": "small_cnn", "device": "cpu", "precision": "float32",
        "train_images": len(train_rows), "embedded_images": len(images), "embedding_dim": 128, "epochs": 2,
        "loss_first_epoch": None, "loss_last_epoch": None, "loss_chance": math.log(2 * 16 - 1),
    }  # fmt: skip


def test_embeddings_table_round_trips_through_parquet(tmp_path):
    samples = pd.DataFrame({"sample_id": ["a", "b", "c"], "split": ["train", "test", "val"]})
    embeddings = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    pd.DataFrame(embeddings_table(samples, embeddings)).to_parquet(tmp_path / "e.parquet", index=False)
    table = pd.read_parquet(tmp_path / "e.parquet")
    assert list(table.columns) == ["sample_id", "split", "emb_0", "emb_1", "emb_2", "emb_3"]
    np.testing.assert_array_equal(embedding_matrix(table), embeddings)
    with pytest.raises(AlrError, match="2 embeddings for 3 samples"):
        embeddings_table(samples, embeddings[:2])
    with pytest.raises(AlrError, match="not an embeddings table"):
        embedding_matrix(table.drop(columns="emb_1"))


def test_embeddings_table_stores_float32_and_needs_embedding_columns():
    samples = pd.DataFrame({"sample_id": ["a", "b"], "split": ["train", "val"]})
    table = embeddings_table(samples, np.array([[0.1, 0.2], [0.3, 0.4]], dtype=np.float64))
    assert [str(table[c].dtype) for c in ("emb_0", "emb_1")] == ["float32", "float32"]
    with pytest.raises(AlrError, match="not an embeddings table"):
        embedding_matrix(samples)  # no emb_ column at all: not an (N, 0) matrix


def test_method_none_embeds_the_random_initialisation(monkeypatch):
    images, samples = tiny_data()
    monkeypatch.setattr(loop, "train_self_supervised", lambda *a, **k: pytest.fail("method none trains nothing"))
    result = loop.run_pretrain(images, samples, tiny_params(method="none"), progress=False)
    again = loop.run_pretrain(images, samples, tiny_params(method="none"), progress=False)
    assert result.head is None and result.epochs.empty and list(result.epochs.columns) == ["epoch", "loss", "lr"]
    assert result.metrics["epochs"] == 0 and result.metrics["loss_chance"] is None
    assert result.embeddings.shape == (len(images), 128)
    np.testing.assert_array_equal(result.embeddings, again.embeddings)


def test_bad_inputs_are_one_line_errors():
    images, samples = tiny_data(num_train=1, num_val=2, num_test=2)
    with pytest.raises(AlrError, match="pretrain.method 'simclr' needs at least 2 train images.*got 1"):
        loop.run_pretrain(images, samples, tiny_params(), progress=False)
    with pytest.raises(AlrError, match="pretrain.method 'vicreg' needs at least 2 train images.*got 1"):
        loop.run_pretrain(images, samples, tiny_params(method="vicreg"), progress=False)
    with pytest.raises(AlrError, match="4 rows but the images array has 5"):
        loop.run_pretrain(images, samples.iloc[:4], tiny_params(method="none"), progress=False)
    losses = EpochLosses(3, lr_key="pretrain.lr")
    losses.add([torch.tensor(float("nan"))], [4])
    with pytest.raises(AlrError, match="loss is nan at epoch 3, batch 0; lower pretrain.lr"):
        losses.means()


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"pretrain": {"method": "byol"}}, "'pretrain.method' is 'byol'; valid values: 'simclr' | 'vicreg' | 'none'"),
        ({"pretrain": {"crop_scale_min": 0}}, "'pretrain.crop_scale_min' is 0.0; valid range: (0.0, 1.0]"),
        ({"pretrain": {"brightness": 1}}, "'pretrain.brightness' is 1.0; valid range: [0.0, 1.0)"),
        ({"pretrain": {"temperature": 0}}, "'pretrain.temperature' is 0.0; valid range: (0.0, inf)"),
        ({"pretrain": {"epoch": 3}}, "unknown key 'pretrain.epoch'; did you mean 'pretrain.epochs'?"),
        ({"data": {"split_seed": -1}}, "'data.split_seed' is -1; valid range: [0, 4294967295]"),
    ],
)  # fmt: skip
def test_bad_pretrain_params_name_the_key(raw, message):
    with pytest.raises(AlrError) as error:
        parse_params(raw)
    assert message in str(error.value)


# ----------------------------------------------------------------------------- the splits' seed


def prepared_samples(root, overrides: dict) -> pd.DataFrame:
    from builders import run_module, write_params

    write_params(root, overrides)
    for stage in ("stages.fingerprint", "stages.prepare"):
        result = run_module(stage, root)
        assert result.returncode == 0, result.stderr
    return pd.read_parquet(root / paths.PREPARED_SAMPLES)


def test_prepare_draws_the_splits_from_data_split_seed_not_seed(stage_tree):
    tiny = {"data": {"image_size": 8, "val_per_class": 5, "test_per_class": 5}}
    base = prepared_samples(stage_tree, tiny)
    replicate = prepared_samples(stage_tree, tiny | {"seed": 1})
    pd.testing.assert_frame_equal(replicate, base)  # a replicate keeps the split
    resplit = prepared_samples(stage_tree, {"data": tiny["data"] | {"split_seed": 1}})
    test_ids = [set(table.loc[table["split"] == "test", "sample_id"]) for table in (base, resplit)]
    assert test_ids[0] != test_ids[1]


# ----------------------------------------------------------------------------- the stage under DVC


TINY = {
    "data": {"image_size": 8, "val_per_class": 5, "test_per_class": 5},
    "pretrain": {"method": "simclr", "epochs": 1, "batch_size": 64},
    "train": {"device": "cpu"},
}


def stale_stages(project) -> set[str]:
    """Stages `dvc status` finds out of date (never run, or a dep or param changed)."""
    return set(json.loads(project.dvc("status", "--json").stdout or "{}"))


@pytest.mark.e2e
def test_pretrain_stage_is_cached_across_noise_seed_and_budget(project_copy):
    root = project_copy.root
    project_copy.write_params(TINY)
    result = project_copy.dvc("repro", "pretrain")
    assert "Running stage 'pretrain'" in result.stdout
    assert "pretrain simclr (small_cnn): 1 epoch on 669 train images" in result.stdout

    samples = pd.read_parquet(root / paths.PREPARED_SAMPLES)
    table = pd.read_parquet(root / paths.PRETRAIN_EMBEDDINGS)
    assert table["sample_id"].tolist() == samples["sample_id"].tolist()
    assert embedding_matrix(table).shape == (len(samples), 128)
    metrics = json.loads((root / paths.PRETRAIN_METRICS).read_text())
    # the loss against what a collapsed encoder scores, log(2B − 1) for NT-Xent
    assert (f"NT-Xent {metrics['loss_first_epoch']:.3f} → {metrics['loss_last_epoch']:.3f} (an encoder that maps "
            f"every image to one point scores {metrics['loss_chance']:.3f}); embedded") in result.stdout
    assert metrics["train_images"] == 669 and metrics["epochs"] == 1
    assert "views_per_second" in json.loads((root / paths.PRETRAIN_TIMING).read_text())
    assert pd.read_csv(root / paths.PRETRAIN_EPOCHS_PLOT).columns.tolist() == ["epoch", "loss", "lr"]
    saved = torch.load(root / paths.PRETRAIN_ENCODER, map_location="cpu", weights_only=True)
    assert saved["spec"]["image_size"] == 8 and saved["pretrain"]["epochs"] == 1
    assert "pretrain" not in stale_stages(project_copy)

    for change in ({"noise": {"rate": 0.6}}, {"seed": 1}, {"budget": 200}):
        project_copy.write_params(TINY | change)
        stale = stale_stages(project_copy)
        assert not {"prepare", "pretrain"} & stale, (change, stale)
    project_copy.write_params(TINY | {"pretrain": TINY["pretrain"] | {"epochs": 2}})
    assert "pretrain" in stale_stages(project_copy)


def test_the_loop_hands_pretrain_temperature_to_the_loss(monkeypatch):
    seen = []
    real = loss_module.OBJECTIVES["simclr"]
    spy = dataclasses.replace(real, loss=lambda z1, z2, t: seen.append(t) or real.loss(z1, z2, t))
    monkeypatch.setitem(loss_module.OBJECTIVES, "simclr", spy)
    images, samples = tiny_data()
    loop.run_pretrain(images, samples, tiny_params(epochs=1, temperature=0.37), progress=False)
    assert seen and set(seen) == {0.37}
