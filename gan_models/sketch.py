"""Line drawings made from images: the sketches the sketch -> emoji translator learns from.

A Canny-style edge detector (Canny 1986), written with tensor ops so it runs wherever the
library runs:
  1. the image (alpha already flattened onto white) is blurred with a Gaussian (sigma);
  2. Sobel gradients are taken in each of R, G and B; at each pixel the channel with the
     strongest gradient gives magnitude and direction (a red-green border counts even when
     both have the same brightness);
  3. non-maximum suppression keeps pixels that are the largest along their gradient
     direction (quantised to 0, 45, 90, 135 degrees), so lines are one pixel wide;
  4. hysteresis: pixels above `high` are edges, and pixels above `low` join them when they
     touch an edge (8-neighbourhood, repeated until nothing changes);
  5. the edges become black lines on white, optionally thickened by a square max filter.
Gradient magnitudes are in units of 0..1 intensity per pixel times 4 (Sobel's gain), so a
sharp step of contrast c gives about 4c before blurring.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian on `[B, C, H, W]` (reflected borders); sigma <= 0 returns x."""
    if sigma <= 0:
        return x
    radius = max(1, math.ceil(2.5 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def edge_map(images: torch.Tensor, sigma: float = 0.8, low: float = 0.25,
             high: float = 0.55) -> torch.Tensor:
    """`[B, 3, H, W]` in 0..1 -> `[B, 1, H, W]` bool edges, one pixel wide."""
    x = gaussian_blur(images.float(), sigma)
    b, c, h, w = x.shape
    kx = SOBEL_X.to(x).view(1, 1, 3, 3).repeat(c, 1, 1, 1)
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(padded, kx, groups=c)
    gy = F.conv2d(padded, kx.transpose(2, 3), groups=c)
    mag_c = torch.sqrt(gx * gx + gy * gy)
    mag, best = mag_c.max(1, keepdim=True)
    gx, gy = gx.gather(1, best), gy.gather(1, best)
    # Non-maximum suppression along the gradient direction, quantised to 4 directions.
    angle = torch.rad2deg(torch.atan2(gy, gx)) % 180
    sector = ((angle + 22.5) // 45).long() % 4  # 0: horizontal gradient, 1: 45, 2: 90, 3: 135
    m = F.pad(mag, (1, 1, 1, 1))
    def shifted(dy: int, dx: int) -> torch.Tensor:
        return m[..., 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
    pairs = [((0, 1), (0, -1)), ((1, 1), (-1, -1)), ((1, 0), (-1, 0)), ((1, -1), (-1, 1))]
    keep = torch.zeros_like(mag, dtype=torch.bool)
    for s, (p, q) in enumerate(pairs):
        local = (mag >= shifted(*p)) & (mag >= shifted(*q))
        keep |= (sector == s) & local
    thin = mag * keep
    strong, weak = thin >= high, thin >= low
    edges = strong
    for _ in range(h + w):  # hysteresis: grow strong edges through weak pixels
        grown = (F.max_pool2d(edges.float(), 3, stride=1, padding=1) > 0) & weak
        if torch.equal(grown, edges):
            break
        edges = grown
    return edges


def sketch(images: torch.Tensor, thickness: int = 1, sigma: float = 0.8, low: float = 0.25,
           high: float = 0.55) -> torch.Tensor:
    """`[B, 3, H, W]` 0..1 -> black lines on white, `[B, 3, H, W]` 0..1. thickness: line
    width in pixels (1 = as detected; 2 and 3 widen with a square max filter)."""
    edges = edge_map(images, sigma, low, high).float()
    if thickness > 1:
        k = int(thickness)
        edges = F.max_pool2d(F.pad(edges, ((k - 1) // 2, k // 2, (k - 1) // 2, k // 2)), k,
                             stride=1)
    return (1 - edges).expand(-1, 3, -1, -1).contiguous()
