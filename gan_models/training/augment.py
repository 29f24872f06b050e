"""DiffAugment (Zhao et al. 2020): differentiable augmentations applied to every image the
discriminator sees, real and fake alike, so D cannot memorise a small dataset while G still
receives gradients through the augmentation.

Random parameters come from a BatchRandom (one row per image), so a batch split across
ranks or micro-batches is augmented exactly as it would be in one piece.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .seeding import BatchRandom

POLICIES = ("color", "translation", "cutout")
TRANSLATION_RATIO = 1 / 8
CUTOUT_RATIO = 1 / 2


def parse_policy(text: str) -> tuple[str, ...]:
    """'color,translation' -> ('color', 'translation'); '' / 'off' -> ()."""
    parts = [p.strip() for p in str(text).replace("+", ",").split(",")]
    parts = [p for p in parts if p and p != "off"]
    for p in parts:
        if p not in POLICIES:
            raise ValueError(f"unknown DiffAugment policy {p!r} (expected some of {POLICIES})")
    return tuple(parts)


def diff_augment(x: torch.Tensor, policy: tuple[str, ...], rand: BatchRandom) -> torch.Tensor:
    """x: `[n, C, H, W]` in [-1, 1] -> augmented images of the same shape."""
    for name in policy:
        if name == "color":
            x = _color(x, rand)
        elif name == "translation":
            x = _translation(x, rand)
        elif name == "cutout":
            x = _cutout(x, rand)
    return x


def _color(x: torch.Tensor, rand: BatchRandom) -> torch.Tensor:
    shape = (1, 1, 1)
    brightness = rand.uniform(*shape).to(x.dtype) - 0.5          # add -0.5..0.5
    saturation = rand.uniform(*shape).to(x.dtype) * 2            # scale chroma 0..2
    contrast = rand.uniform(*shape).to(x.dtype) + 0.5            # scale contrast 0.5..1.5
    x = x + brightness
    gray = x.mean(dim=1, keepdim=True)
    x = (x - gray) * saturation + gray
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * contrast + mean


def _translation(x: torch.Tensor, rand: BatchRandom) -> torch.Tensor:
    """Shift each image by up to 1/8 of its size, filling with zeros (mid-gray)."""
    n, c, h, w = x.shape
    sy, sx = max(1, int(h * TRANSLATION_RATIO + 0.5)), max(1, int(w * TRANSLATION_RATIO + 0.5))
    dy = rand.randint(2 * sy + 1, 1, 1) - sy  # [n, 1, 1] in -sy..sy
    dx = rand.randint(2 * sx + 1, 1, 1) - sx
    padded = F.pad(x, [sx, sx, sy, sy])
    rows = (torch.arange(h, device=x.device)[None, :, None] + sy - dy).clamp(0, h + 2 * sy - 1)
    cols = (torch.arange(w, device=x.device)[None, None, :] + sx - dx).clamp(0, w + 2 * sx - 1)
    batch = torch.arange(n, device=x.device)[:, None, None]
    # Advanced indexing on dims (0, 2, 3) -> [n, h, w, c]; gradients flow back to x.
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def _cutout(x: torch.Tensor, rand: BatchRandom) -> torch.Tensor:
    """Zero a square of half the image size at a random centre (it may hang off the edge)."""
    _n, _c, h, w = x.shape
    ch, cw = int(h * CUTOUT_RATIO + 0.5), int(w * CUTOUT_RATIO + 0.5)
    cy = rand.randint(h + (1 - ch % 2), 1, 1)  # [n, 1, 1]
    cx = rand.randint(w + (1 - cw % 2), 1, 1)
    oy = torch.arange(h, device=x.device)[None, :, None] - cy + ch // 2  # row inside the square
    ox = torch.arange(w, device=x.device)[None, None, :] - cx + cw // 2
    inside = (oy >= 0) & (oy < ch) & (ox >= 0) & (ox < cw)  # [n, h, w]
    return x * (~inside).to(x.dtype)[:, None]
