"""Images into VAE latents and back: preprocessing, encoding, reconstruction grids, and
latent arithmetic (which works on any latent batch, GAN or VAE).

Images arrive as ComfyUI lays them out, `[B, H, W, C]` float 0..1 with C = 1 (gray),
2 (gray + alpha), 3 (RGB) or 4 (RGBA), or `[B, H, W]` (a mask); models take
`[B, channels, R, R]` in [-1, 1].
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .errors import GanStudioError
from .latent import LatentBatch, check_compatible, class_rows, parse_mix
from .model import GenerativeModel, to_unit_hwc

SIZE_MODES = ("crop", "pad", "stretch", "refuse")
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 weights, as PIL's convert("L")


# --- preprocessing --------------------------------------------------------------------------
def to_model_input(images: torch.Tensor, resolution: int, channels: int, size_mode: str = "crop",
                   background: tuple[float, float, float] = (1.0, 1.0, 1.0),
                   ) -> tuple[torch.Tensor, str | None]:
    """(`[B, channels, R, R]` in [-1, 1], a note when the images were resized, else None).

    Alpha is composited over `background` (0..1 RGB) unless the model itself has an alpha
    channel; colour becomes luminance for gray models, gray is repeated for colour models.
    size_mode: crop (fill the square, cut the overhang), pad (fit inside, fill with the
    background), stretch (ignore the aspect ratio) or refuse (raise unless sizes match).
    """
    if size_mode not in SIZE_MODES:
        raise GanStudioError(f"unknown size handling {size_mode!r} (expected one of {SIZE_MODES})")
    x = _as_bchw(images)
    x = _convert_channels(x, channels, background)
    h, w = x.shape[-2:]
    note = None
    if (h, w) != (resolution, resolution):
        if size_mode == "refuse":
            raise GanStudioError(
                f"the images are {w}x{h} but the model takes {resolution}x{resolution}; resize "
                "them first (e.g. with Upscale Image) or set size handling to crop, pad or "
                "stretch")
        x = _fit(x, resolution, size_mode, background)
        note = (f"resized {x.shape[0]} image(s) from {w}x{h} to {resolution}x{resolution} "
                f"({size_mode})")
    return x.mul(2).sub(1).contiguous(), note


def with_mask_alpha(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Attach a ComfyUI MASK as alpha: `[B, H, W, 1|3]` + `[B|1, h, w]` -> `[B, H, W, 2|4]`.

    ComfyUI masks mark transparent areas (Load Image gives mask = 1 - alpha), so alpha is
    1 - mask; a mask of another size (Load Image's 64x64 blank for opaque files) is resized."""
    if images.dim() != 4 or images.shape[-1] not in (1, 3):
        raise GanStudioError(f"a mask can only be attached to gray or RGB images, got shape "
                             f"{tuple(images.shape)}")
    m = mask.detach().float()
    m = m.unsqueeze(0) if m.dim() == 2 else m
    if m.dim() != 3 or m.shape[0] not in (1, images.shape[0]):
        raise GanStudioError(f"a mask of shape {tuple(mask.shape)} does not fit "
                             f"{images.shape[0]} images")
    h, w = images.shape[1:3]
    if tuple(m.shape[1:]) != (h, w):
        m = F.interpolate(m[:, None], size=(h, w), mode="bilinear", align_corners=False)[:, 0]
    alpha = (1 - m.clamp(0, 1)).to(images.device).expand(images.shape[0], h, w)
    return torch.cat([images.float(), alpha[..., None]], dim=-1)


def _as_bchw(images: torch.Tensor) -> torch.Tensor:
    if images.dim() == 3:  # a mask batch [B, H, W]
        images = images.unsqueeze(-1)
    if images.dim() != 4 or images.shape[-1] not in (1, 2, 3, 4) or images.shape[0] == 0:
        raise GanStudioError(f"expected images [B, H, W, C] with 1 to 4 channels, got shape "
                             f"{tuple(images.shape)}")
    return images.detach().float().clamp(0, 1).permute(0, 3, 1, 2)


def _convert_channels(x: torch.Tensor, channels: int, background) -> torch.Tensor:
    """`[B, 1..4, H, W]` 0..1 -> `[B, channels, H, W]` 0..1."""
    c = x.shape[1]
    color, alpha = (x[:, :c - 1], x[:, c - 1:]) if c in (2, 4) else (x, None)
    if channels == 4:
        color = color.expand(-1, 3, -1, -1) if color.shape[1] == 1 else color
        alpha = torch.ones_like(color[:, :1]) if alpha is None else alpha
        return torch.cat([color, alpha], 1)
    if alpha is not None:  # flatten onto the background, as training data was
        bg = torch.tensor(background, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        bg = bg.mean(1, keepdim=True) if color.shape[1] == 1 else bg
        color = color * alpha + bg * (1 - alpha)
    if channels == 1 and color.shape[1] == 3:
        weights = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (color * weights).sum(1, keepdim=True)
    if channels == 3 and color.shape[1] == 1:
        return color.expand(-1, 3, -1, -1)
    if channels not in (1, 3):
        raise GanStudioError(f"models with {channels} channels are not supported")
    return color


def _fit(x: torch.Tensor, res: int, mode: str, background) -> torch.Tensor:
    h, w = x.shape[-2:]
    if mode == "stretch" or h == w:
        return _resize(x, res, res)
    if mode == "crop":
        scale = res / min(h, w)
        nh, nw = max(res, round(h * scale)), max(res, round(w * scale))
        x = _resize(x, nh, nw)
        top, left = (nh - res) // 2, (nw - res) // 2
        return x[..., top:top + res, left:left + res]
    scale = res / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    fill = torch.tensor([*background, 1.0][:x.shape[1]] if x.shape[1] != 1
                        else [sum(background) / 3], dtype=x.dtype, device=x.device)
    canvas = fill.view(1, -1, 1, 1).repeat(x.shape[0], 1, res, res)
    top, left = (res - nh) // 2, (res - nw) // 2
    canvas[..., top:top + nh, left:left + nw] = _resize(x, nh, nw)
    return canvas


def _resize(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    if tuple(x.shape[-2:]) == (h, w):
        return x
    return F.interpolate(x, size=(h, w), mode="bilinear", antialias=True,
                         align_corners=False).clamp(0, 1)


# --- classes --------------------------------------------------------------------------------
def class_weights(model: GenerativeModel, text: str, count: int) -> torch.Tensor | None:
    """Per-image class weights `[count, num_classes]` from text, or None when the model is
    unconditional and no class is given.

    'cat' -> every image is a cat; 'cat, dog' -> image i takes the i-th entry, cycling;
    'cat:0.7 + dog:0.3' -> a mixed class for that entry. Names or indices (latent.grammar).
    """
    entries = parse_mix(text, allow_empty=True)
    if not entries:
        if model.num_classes:
            raise GanStudioError(f"model {model.describe()} is class-conditional: give the "
                                 "images' classes, e.g. 'cat' or 'cat, dog' (one per image)")
        return None
    return class_rows(entries, model.num_classes, model.class_index, count, "cycle")


# --- encoding and reconstruction ----------------------------------------------------------
@torch.no_grad()
def encode_images(model: GenerativeModel, x: torch.Tensor, labels: torch.Tensor | None = None,
                  sample: bool = False, seed: int = 0, chunk_size: int = 64,
                  on_chunk: Callable[[int], None] | None = None) -> LatentBatch:
    """Model inputs `[B, C, R, R]` in [-1, 1] -> z latents on the CPU: the encoder's mean, or
    a sample whose noise for image i comes from seed + i (independent of chunking).
    Deterministic encoders (VQ-VAE) always give their one latent."""
    parts = []
    for start in range(0, x.shape[0], chunk_size):
        c = None if labels is None else labels[start:start + chunk_size]
        parts.append(model.encode(x[start:start + chunk_size], c, sample, seed + start).values)
        if on_chunk is not None:
            on_chunk(start + len(parts[-1]))
    return LatentBatch(values=torch.cat(parts), space="z",
                       labels=None if labels is None else labels.float().cpu(),
                       model_id=model.model_id)


@torch.no_grad()
def reconstruct(model: GenerativeModel, x: torch.Tensor, labels: torch.Tensor | None = None,
                chunk_size: int = 64, on_chunk: Callable[[int], None] | None = None,
                ) -> torch.Tensor:
    """decode(encode_mean(x)): `[B, C, R, R]` in [-1, 1] -> `[B, R, R, 3]` 0..1 on the CPU."""
    out = []
    for start in range(0, x.shape[0], chunk_size):
        sl = slice(start, start + chunk_size)
        latents = encode_images(model, x[sl], None if labels is None else labels[sl])
        out.append(to_unit_hwc(model.synthesize(latents)).cpu())
        if on_chunk is not None:
            on_chunk(start + len(latents))
    return torch.cat(out)


def reconstruction_grid(inputs: torch.Tensor, recons: torch.Tensor, pairs_per_row: int = 4,
                        pad: int = 2) -> torch.Tensor:
    """Side-by-side pairs input|reconstruction, `pairs_per_row` pairs per row, on white:
    `[B, R, R, 3]` x2 (0..1) -> one `[H, W, 3]` image."""
    if inputs.shape != recons.shape:
        raise GanStudioError(f"{tuple(inputs.shape)} inputs vs {tuple(recons.shape)} "
                             "reconstructions")
    n, h, w, c = inputs.shape
    cols = max(1, min(pairs_per_row, n))
    rows = -(-n // cols)
    pair_w = 2 * w + pad  # a thin gap inside a pair, a wider one between pairs
    gap = 3 * pad
    grid = torch.ones(rows * (h + gap) + gap, cols * (pair_w + gap) + gap, c)
    for i in range(n):
        r, k = divmod(i, cols)
        y, x = gap + r * (h + gap), gap + k * (pair_w + gap)
        grid[y:y + h, x:x + w] = inputs[i].float().cpu()
        grid[y:y + h, x + w + pad:x + pair_w] = recons[i].float().cpu()
    return grid


# --- latent arithmetic ----------------------------------------------------------------------
def latent_arithmetic(a: LatentBatch, b: LatentBatch | None = None, c: LatentBatch | None = None,
                      weight_a: float = 1.0, weight_b: float = 1.0,
                      weight_c: float = 1.0) -> LatentBatch:
    """weight_a * a - weight_b * b + weight_c * c, sample by sample.

    Batches of one latent are broadcast over the others' batch size. Class weights combine
    the same way (negative parts clipped, rows renormalised to sum to 1)."""
    terms = [(t, w) for t, w in ((a, weight_a), (b, -weight_b), (c, weight_c)) if t is not None]
    for t, _ in terms[1:]:
        check_compatible(a, t)
    sizes = {len(t) for t, _ in terms} - {1}
    if len(sizes) > 1:
        raise GanStudioError(f"batch sizes {sorted(len(t) for t, _ in terms)} do not match; "
                             "give batches of the same size, or single latents to broadcast")
    n = sizes.pop() if sizes else 1
    values = sum(w * _expand(t.values, n) for t, w in terms)
    labelled = [(t, w) for t, w in terms if t.labels is not None]
    labels = None
    if labelled:
        mix = sum(w * _expand(t.labels, n) for t, w in labelled).clamp(min=0)
        total = mix.sum(1, keepdim=True)
        if bool((total <= 1e-8).any()):
            raise GanStudioError("the class weights cancel out (nothing positive is left); "
                                 "change the weights or set classes afterwards with Class "
                                 "Condition")
        labels = mix / total
    model_id = next((t.model_id for t, _ in terms if t.model_id), None)
    return LatentBatch(values=values.float(), space=a.space, labels=labels, seeds=None,
                       model_id=model_id, truncation_psi=a.truncation_psi)


def _expand(t: torch.Tensor, n: int) -> torch.Tensor:
    return t.expand(n, *t.shape[1:]) if t.shape[0] == 1 else t
