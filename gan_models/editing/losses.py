"""Per-image losses for projecting images into a generator.

Every loss takes images `[B, C, H, W]` in [-1, 1] and returns one value per image `[B]`, so
a batch is projected as B independent problems (each image keeps its own best latent).

    pixel_loss        mean squared error
    structure_loss    multi-scale structural dissimilarity: SSIM's contrast-structure term at
                      each scale and the full SSIM at the coarsest, as 1 - value, weighted by
                      the MS-SSIM scale weights (Wang et al. 2003). A weighted sum rather than
                      MS-SSIM's product, so gradients stay finite where a term reaches zero.
    noise_regularisation   StyleGAN noise maps kept free of structure: squared
                      autocorrelation with a one-pixel shift, summed over a pyramid

The perceptual distance lives in `perceptual.py` (it needs a feature network).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SSIM_WINDOW = 7  # small enough that a 64 px image still has four scales
SSIM_SIGMA = 1.5
SCALE_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # finest first (MS-SSIM)
_C1, _C2 = 0.01 ** 2, 0.03 ** 2  # SSIM constants for a dynamic range of 1


def pixel_loss(images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image (on [-1, 1] values)."""
    return (images - targets).square().flatten(1).mean(1)


def psnr(images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """PSNR in dB per image, on 0..1 values (images given in [-1, 1])."""
    mse = ((images.clamp(-1, 1) - targets.clamp(-1, 1)) / 2).square().flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


def scale_count(size: int, window: int = SSIM_WINDOW) -> int:
    """How many scales (halving each time) keep the coarsest side at least `window` pixels."""
    if size < window:
        return 1
    return min(len(SCALE_WEIGHTS), int(math.log2(size / window)) + 1)


def _window(channels: int, device, dtype) -> torch.Tensor:
    x = torch.arange(SSIM_WINDOW, dtype=torch.float64) - (SSIM_WINDOW - 1) / 2
    g = torch.exp(-x.square() / (2 * SSIM_SIGMA ** 2))
    g = (g / g.sum()).to(device=device, dtype=dtype)
    return (g[:, None] * g[None, :]).expand(channels, 1, -1, -1).contiguous()


def _blur(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    pad = SSIM_WINDOW // 2
    mode = "reflect" if min(x.shape[-2:]) > pad else "replicate"
    return F.conv2d(F.pad(x, [pad] * 4, mode=mode), window, groups=x.shape[1])


def _ssim_terms(x: torch.Tensor, y: torch.Tensor, window: torch.Tensor):
    """(SSIM, contrast-structure) per image, on 0..1 images."""
    mx, my = _blur(x, window), _blur(y, window)
    sxx = _blur(x * x, window) - mx * mx
    syy = _blur(y * y, window) - my * my
    sxy = _blur(x * y, window) - mx * my
    cs = (2 * sxy + _C2) / (sxx + syy + _C2)
    lum = (2 * mx * my + _C1) / (mx * mx + my * my + _C1)
    return (lum * cs).flatten(1).mean(1), cs.flatten(1).mean(1)


def structure_loss(images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Multi-scale structural dissimilarity per image, 0 for identical images (at most 2)."""
    x, y = (images + 1) / 2, (targets + 1) / 2
    window = _window(x.shape[1], x.device, x.dtype)
    scales = scale_count(min(x.shape[-2:]))
    weights = torch.tensor(SCALE_WEIGHTS[:scales], dtype=x.dtype, device=x.device)
    weights = weights / weights.sum()
    total = x.new_zeros(x.shape[0])
    for s in range(scales):
        ssim, cs = _ssim_terms(x, y, window)
        total = total + weights[s] * (1 - (ssim if s == scales - 1 else cs))
        if s < scales - 1:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    return total


def noise_regularisation(noise_maps: list[torch.Tensor]) -> torch.Tensor:
    """Per-image penalty `[B]` on noise maps `[B, 1, H, W]`: squared autocorrelation of each
    map with itself shifted by one pixel (both axes), at every level of a 2x pyramid down to
    8 px. White noise scores ~0; noise that has taken on image structure scores high."""
    total = None
    for v in noise_maps:
        while True:
            term = ((v * torch.roll(v, 1, dims=3)).flatten(1).mean(1).square()
                    + (v * torch.roll(v, 1, dims=2)).flatten(1).mean(1).square())
            total = term if total is None else total + term
            if v.shape[2] <= 8:
                break
            v = F.avg_pool2d(v, 2)
    return total


def normalise_noise_(noise_maps: list[torch.Tensor]) -> None:
    """Keep every map zero-mean, unit-variance per image (in place, outside autograd)."""
    with torch.no_grad():
        for v in noise_maps:
            mean = v.mean(dim=(1, 2, 3), keepdim=True)
            std = v.std(dim=(1, 2, 3), keepdim=True).clamp_min(1e-8)
            v.sub_(mean).div_(std)
