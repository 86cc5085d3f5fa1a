"""SimCLR's random views, batched on tensors on the training device.

One affine resampling per batch does the random resized crop, the flips and the rotation
together (``affine_grid`` + ``grid_sample``), then brightness, contrast and an optional
Gaussian blur act on the whole batch at once; there is no per-image loop. Every random draw
comes from a CPU ``torch.Generator``, so a seed draws the same crops, flips, angles and factors
on any device (the pixels then agree to within one grey level: CUDA rounds differently). No hue or
saturation jitter: it means nothing on grayscale images and alters stain colour, which carries
diagnostic information, on RGB ones.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from alr_core.common.params import PretrainParams
from alr_core.nn.transfer import to_device

ASPECT_RATIO = (3 / 4, 4 / 3)  # range of a crop's width / height, as torchvision's RandomResizedCrop
BLUR_SIGMA_MIN = 0.1  # px: the smallest blur drawn (SimCLR's range starts here)


def two_views(images: torch.Tensor, params: PretrainParams, hflip: bool, vflip: bool,
              generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Two independent random views of each image: uint8 (B, H, W, C) → two uint8 (B, H, W, C)."""
    views = random_view(torch.cat([images, images]), params, hflip, vflip, generator)
    return views[: len(images)], views[len(images) :]


def random_view(images: torch.Tensor, params: PretrainParams, hflip: bool, vflip: bool,
                generator: torch.Generator) -> torch.Tensor:  # fmt: skip
    """One random view of each image: uint8 (B, H, W, C) → uint8 (B, H, W, C), on the same device.

    - random resized crop: area a fraction s ~ U(``crop_scale_min``, 1) of the image, aspect
      ratio log-uniform in 3/4..4/3 (narrowed so that the crop fits), anywhere in the image,
      resized back to H × W (bilinear);
    - horizontal / vertical flip, each with probability 1/2, only where ``hflip`` / ``vflip``;
    - rotation by an angle ~ U(−``rotation``, ``rotation``) degrees; what a rotated crop
      takes from outside the image is the image reflected at its border, so no black corners
      give the network a cue shared by all views;
    - brightness × U(1 − ``brightness``, 1 + ``brightness``), then contrast: each image's
      deviation from its mean × U(1 − ``contrast``, 1 + ``contrast``), clipped to [0, 255];
    - with probability ``blur_probability``, a Gaussian blur of σ ~ U(0.1, ``blur_sigma``) px.

    Identity when crop_scale_min = 1 and rotation, brightness, contrast, blur_probability and
    both flips are off.
    """
    batch, height, width, _ = images.shape
    x = images.permute(0, 3, 1, 2).float().div_(255.0)  # (B, C, H, W) in [0, 1]
    theta = to_device(_affine(batch, height / width, params, hflip, vflip, generator), x.device)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    x = _jitter(x, params, generator)
    if params.blur_probability > 0:
        x = _blur(x, params, generator)
    return x.mul_(255.0).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def _uniform(batch: int, low, high, generator: torch.Generator) -> torch.Tensor:
    """(B,) draws from U(low, high) (scalars or (B,) tensors), on the CPU."""
    return low + (high - low) * torch.rand(batch, generator=generator, dtype=torch.float64)


def _affine(batch: int, aspect: float, params: PretrainParams, hflip: bool, vflip: bool,
            generator: torch.Generator) -> torch.Tensor:  # fmt: skip
    """(B, 2, 3) float matrices mapping output to input coordinates in grid_sample's [−1, 1]
    units: input = R · diag(w·fx, h·fy) · output + (cx, cy). ``aspect`` is H / W."""
    scale = _uniform(batch, params.crop_scale_min, 1.0, generator)
    # ratio limits that keep both sides inside the image: w = √(s·r) ≤ 1 and h = √(s/r) ≤ 1
    low = torch.log(torch.clamp(scale, min=ASPECT_RATIO[0]))
    high = torch.log(torch.clamp(1 / scale, max=ASPECT_RATIO[1]))
    ratio = torch.exp(_uniform(batch, low, high, generator))
    w, h = torch.sqrt(scale * ratio), torch.sqrt(scale / ratio)  # side fractions
    cx = _uniform(batch, -(1 - w), 1 - w, generator)
    cy = _uniform(batch, -(1 - h), 1 - h, generator)

    def flips(enabled: bool) -> torch.Tensor:
        if not enabled:
            return torch.ones(batch, dtype=torch.float64)
        return torch.where(torch.rand(batch, generator=generator) < 0.5, -1.0, 1.0).double()

    fx, fy = flips(hflip), flips(vflip)
    angle = _uniform(batch, -params.rotation, params.rotation, generator) * (math.pi / 180)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # a rotation in pixels, written in normalised units (x spans W px, y spans H px)
    theta = torch.stack([
        torch.stack([cos * w * fx, -sin * aspect * h * fy, cx], dim=1),
        torch.stack([sin / aspect * w * fx, cos * h * fy, cy], dim=1),
    ], dim=1)  # fmt: skip
    return theta.float()


def _jitter(x: torch.Tensor, params: PretrainParams, generator: torch.Generator) -> torch.Tensor:
    """Per-image brightness and contrast factors on (B, C, H, W) in [0, 1], clipped to [0, 1]."""
    batch = len(x)
    brightness = _uniform(batch, 1 - params.brightness, 1 + params.brightness, generator)
    contrast = _uniform(batch, 1 - params.contrast, 1 + params.contrast, generator)
    x = x * to_device(brightness.float(), x.device).view(-1, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * to_device(contrast.float(), x.device).view(-1, 1, 1, 1) + mean
    return x.clamp_(0.0, 1.0)


def _blur(x: torch.Tensor, params: PretrainParams, generator: torch.Generator) -> torch.Tensor:
    """Separable Gaussian blur with a σ of its own per image; images not drawn for blurring
    get the identity kernel. (B, C, H, W) → (B, C, H, W)."""
    batch, channels, height, width = x.shape
    sigma = _uniform(batch, BLUR_SIGMA_MIN, params.blur_sigma, generator)  # params: blur_sigma ≥ 0.1
    blurred = torch.rand(batch, generator=generator) < params.blur_probability
    # 3σ of the largest blur, and reflection padding needs a radius below the image side
    radius = max(1, min(math.ceil(3 * params.blur_sigma), (min(height, width) - 1)))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-(offsets[None, :] ** 2) / (2 * sigma[:, None] ** 2))
    kernel = kernel / kernel.sum(dim=1, keepdim=True)
    identity = (offsets == 0).double().expand(batch, -1)
    kernel = to_device(torch.where(blurred[:, None], kernel, identity).float(), x.device)
    # every (image, channel) plane is its own group of a grouped convolution
    weight = kernel.repeat_interleave(channels, dim=0)[:, None, None, :]  # (B·C, 1, 1, k)
    planes = x.reshape(1, batch * channels, height, width)
    planes = F.conv2d(F.pad(planes, (radius, radius, 0, 0), mode="reflect"), weight, groups=batch * channels)
    planes = F.conv2d(F.pad(planes, (0, 0, radius, radius), mode="reflect"), weight.transpose(2, 3),
                      groups=batch * channels)  # fmt: skip
    return planes.reshape(batch, channels, height, width)
