"""Image-to-image translation for any model with the `translate` capability.

Images arrive as ComfyUI lays them out (`[B, H, W, C]` float 0..1, C = 1..4) and leave the
same size as `[B, H, W, 3]`: each side is padded by reflection up to the translator's size
multiple and cropped back after, alpha is flattened onto white, gray becomes RGB (or the
reverse), and the result can be blended with the input (strength) and limited to a mask.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .errors import GanStudioError
from .images import as_bchw, convert_channels
from .model import GenerativeModel, to_unit_hwc

WHITE = (1.0, 1.0, 1.0)


def translate_images(model: GenerativeModel, images: torch.Tensor, strength: float = 1.0,
                     mask: torch.Tensor | None = None, chunk_size: int = 4,
                     on_chunk: Callable[[int, torch.Tensor], None] | None = None,
                     ) -> torch.Tensor:
    """`[B, H, W, C]` 0..1 -> `[B, H, W, 3]` 0..1 on the CPU.

    strength blends the translation with the input (1 = translation only); mask `[B|1, H, W]`
    (ComfyUI MASK, 1 = translate) limits the change to the masked area.
    """
    model.require("translate")
    if not 0.0 <= strength <= 1.0:
        raise GanStudioError(f"strength must be between 0 and 1, got {strength}")
    if chunk_size < 1:
        raise GanStudioError(f"chunk size must be at least 1, got {chunk_size}")
    net = model.translator
    x = as_bchw(images)
    original = convert_channels(x, 3, WHITE)
    x = convert_channels(x, int(net.in_channels), WHITE).mul(2).sub(1)
    out = []
    for start in range(0, len(x), chunk_size):
        y = _translate_padded(model, x[start:start + chunk_size], int(net.size_multiple))
        out.append(to_unit_hwc(y).cpu())
        if on_chunk is not None:
            on_chunk(min(start + chunk_size, len(x)), out[-1])
    result = torch.cat(out)
    keep = original.permute(0, 2, 3, 1).cpu()
    weight = torch.full(result.shape[:3], float(strength))
    if mask is not None:
        weight = weight * _mask_like(mask, result.shape[:3])
    return keep + (result - keep) * weight[..., None]


def _translate_padded(model: GenerativeModel, x: torch.Tensor, multiple: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"  # reflect needs pad < side
        x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), mode=mode)
    y = model.translate(x)
    return y[..., ph // 2:ph // 2 + h, pw // 2:pw // 2 + w]


def _mask_like(mask: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    m = mask.detach().float().cpu()
    m = m.unsqueeze(0) if m.dim() == 2 else m
    b, h, w = shape
    if m.dim() != 3 or m.shape[0] not in (1, b):
        raise GanStudioError(f"a mask of shape {tuple(mask.shape)} does not fit {b} images")
    if not torch.isfinite(m).all():
        raise GanStudioError("the mask holds NaN or infinite values")
    if tuple(m.shape[1:]) != (h, w):
        m = F.interpolate(m[:, None], size=(h, w), mode="bilinear", align_corners=False)[:, 0]
    return m.clamp(0, 1).expand(b, h, w)
