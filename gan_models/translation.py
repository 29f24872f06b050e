"""Image-to-image translation for any model with the `translate` capability.

Images arrive as ComfyUI lays them out (`[B, H, W, C]` float 0..1, C = 1..4) and leave the
same size as `[B, H, W, 3]`: each side is padded by reflection up to the translator's size
multiple and cropped back after, alpha is flattened onto white, gray becomes RGB (or the
reverse), and the result can be blended with the input (strength) and limited to a mask.

Large images can be translated in tiles (`tile`): overlapping squares whose side is a
multiple of the network's size multiple, each translated on its own and blended with
weights that fall linearly to the tile's edge across the overlap ("feathering"), so memory
stays bounded and no seam shows. Away from tile edges the result equals the untiled one as
far as the network's receptive field fits inside the overlap; networks that normalise over
the whole image (InstanceNorm) see per-tile statistics instead.
"""

from __future__ import annotations

import math
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
                     tile: int = 0, overlap: int = 64) -> torch.Tensor:
    """`[B, H, W, C]` 0..1 -> `[B, H, W, 3]` 0..1 on the CPU.

    strength blends the translation with the input (1 = translation only); mask `[B|1, H, W]`
    (ComfyUI MASK, 1 = translate) limits the change to the masked area. tile > 0 translates
    images larger than tile x tile in overlapping tiles (see the module docstring).
    """
    model.require("translate")
    if not 0.0 <= strength <= 1.0:
        raise GanStudioError(f"strength must be between 0 and 1, got {strength}")
    if chunk_size < 1:
        raise GanStudioError(f"chunk size must be at least 1, got {chunk_size}")
    if tile < 0 or overlap < 0:
        raise GanStudioError(f"tile size and overlap must not be negative, got {tile} and "
                             f"{overlap}")
    net = model.translator
    x = as_bchw(images)
    minimum = int(getattr(net, "min_size", 1))
    if min(x.shape[-2:]) < minimum:
        raise GanStudioError(
            f"the images are {x.shape[-1]}x{x.shape[-2]}, smaller than the {minimum}x{minimum} "
            f"that {model.describe()} needs; scale them up first (e.g. Upscale Image)")
    original = convert_channels(x, 3, WHITE)
    x = convert_channels(x, int(net.in_channels), WHITE).mul(2).sub(1)
    out = []
    for start in range(0, len(x), chunk_size):
        part = x[start:start + chunk_size]
        if tile and max(part.shape[-2:]) > tile:
            y = translate_tiled(model, part, tile, overlap)
        else:
            y = _translate_padded(model, part, int(net.size_multiple))
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


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of `tile` pixels covering `size` pixels, neighbours sharing at
    least `overlap` pixels; the last tile ends at the image's edge."""
    if size <= tile:
        return [0]
    step = max(1, tile - overlap)
    starts = list(range(0, size - tile, step))
    return starts + [size - tile]


def feather(length: int, overlap: int, device=None) -> torch.Tensor:
    """Blending weights along one side of a tile: rising linearly over `overlap` pixels
    from each end (never 0, so every pixel keeps some weight)."""
    i = torch.arange(length, dtype=torch.float32, device=device) + 0.5
    if overlap <= 0:
        return torch.ones(length, device=device)
    return torch.minimum(i, length - i).div(overlap).clamp(max=1.0)


def _balanced_tile(size: int, tile: int, overlap: int, multiple: int) -> int:
    """The smallest tile side (a multiple of `multiple`, at most `tile`) that covers `size`
    with as few tiles as `tile` itself needs: 1024 px in 512 px tiles with a 64 px overlap
    takes three tiles either way, and 384 px ones do less work than 512 px ones."""
    def up(n: int) -> int:
        return -(-n // multiple) * multiple

    if size <= tile:
        return up(size)
    count = math.ceil((size - overlap) / (tile - overlap))
    return min(tile, up(math.ceil((size + (count - 1) * overlap) / count)))


def translate_tiled(model: GenerativeModel, x: torch.Tensor, tile: int,
                    overlap: int) -> torch.Tensor:
    """`[n, C, H, W]` in [-1, 1] -> `[n, out, H, W]` in [-1, 1] on the CPU, translated in
    overlapping tiles of at most tile x tile (rounded up to the size multiple)."""
    net = model.translator
    multiple = int(net.size_multiple)
    h, w = x.shape[-2:]
    tile = -(-int(tile) // multiple) * multiple
    overlap = min(int(overlap), tile // 2)
    th, tw = (_balanced_tile(n, tile, overlap, multiple) for n in (h, w))
    ph, pw = max(0, th - h), max(0, tw - w)  # a side shorter than one tile: pad it
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    overlap = min(int(overlap), th // 2, tw // 2)
    out = torch.zeros(x.shape[0], int(net.out_channels), *x.shape[-2:])
    total = torch.zeros(1, 1, *x.shape[-2:])
    weight = feather(th, overlap)[:, None] * feather(tw, overlap)[None, :]
    for top in tile_starts(x.shape[-2], th, overlap):
        for left in tile_starts(x.shape[-1], tw, overlap):
            y = model.translate(x[..., top:top + th, left:left + tw]).float().cpu()
            out[..., top:top + th, left:left + tw] += y * weight
            total[..., top:top + th, left:left + tw] += weight
    return (out / total)[..., :h, :w]


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
