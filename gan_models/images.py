"""Images as models take them: ComfyUI's `[B, H, W, C]` float 0..1 with C = 1 (gray),
2 (gray + alpha), 3 (RGB) or 4 (RGBA), or `[B, H, W]` (a mask), into `[B, channels, R, R]`
in [-1, 1]: channel conversion, alpha over a background, and fitting to a size. Used by every
capability that reads images (encode, translate).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import GanStudioError

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
    x = as_bchw(images)
    x = convert_channels(x, channels, background)
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


def as_bchw(images: torch.Tensor) -> torch.Tensor:
    if images.dim() == 3:  # a mask batch [B, H, W]
        images = images.unsqueeze(-1)
    if images.dim() != 4 or images.shape[-1] not in (1, 2, 3, 4) or images.shape[0] == 0:
        raise GanStudioError(f"expected images [B, H, W, C] with 1 to 4 channels, got shape "
                             f"{tuple(images.shape)}")
    return images.detach().float().clamp(0, 1).permute(0, 3, 1, 2)


def convert_channels(x: torch.Tensor, channels: int, background) -> torch.Tensor:
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


def label_font(size: int = 12):
    """PIL's built-in font at `size` for labels on picture sheets (older Pillow has one
    bitmap size)."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()
