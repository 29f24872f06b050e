"""Decoding one training image: any PIL mode -> RGB uint8 at the training resolution.

Transparent images are flattened onto a background colour; grayscale, palette, CMYK and
16-bit images are converted; the result is resized and center-cropped, padded or stretched.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageColor, ImageOps

from ..errors import GanStudioError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
FIT_MODES = ("crop", "pad", "stretch")
RGB = tuple[int, int, int]


def parse_color(text: str | tuple) -> RGB:
    """'#ffffff', 'white', '255,255,255' or an (r, g, b) tuple -> (r, g, b)."""
    if isinstance(text, (tuple, list)):
        if len(text) != 3:
            raise GanStudioError(f"a colour needs 3 values (r, g, b), got {text!r}")
        return tuple(int(v) for v in text)  # type: ignore[return-value]
    value = str(text).strip()
    if value.replace(",", "").replace(" ", "").isdigit() and value.count(",") == 2:
        parts = tuple(int(p) for p in value.split(","))
        if all(0 <= p <= 255 for p in parts):
            return parts  # type: ignore[return-value]
    try:
        return ImageColor.getrgb(value)[:3]
    except ValueError:
        raise GanStudioError(
            f"cannot read colour {text!r}; use e.g. '#ffffff', 'white' or '255,255,255'") from None


def to_rgb(img: Image.Image, background: RGB) -> Image.Image:
    """Any mode -> RGB; alpha is composited over `background` (not simply dropped)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if img.mode != "I" or arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    elif img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        img = Image.fromarray(np.clip(arr * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    has_alpha = img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        img.mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*background, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return img.convert("RGB")


def fit(img: Image.Image, resolution: int, mode: str, background: RGB) -> Image.Image:
    """Resize an RGB image to resolution x resolution.

    crop: fill the square and cut the overhang evenly; pad: fit inside and fill the rest with
    the background colour; stretch: ignore the aspect ratio.
    """
    if mode not in FIT_MODES:
        raise GanStudioError(f"unknown fit mode {mode!r} (expected one of {FIT_MODES})")
    w, h = img.size
    if mode == "stretch" or w == h:
        return _resize(img, (resolution, resolution))
    if mode == "crop":
        scale = resolution / min(w, h)
        nw, nh = max(resolution, round(w * scale)), max(resolution, round(h * scale))
        img = _resize(img, (nw, nh))
        left, top = (nw - resolution) // 2, (nh - resolution) // 2
        return img.crop((left, top, left + resolution, top + resolution))
    scale = resolution / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    canvas = Image.new("RGB", (resolution, resolution), background)
    canvas.paste(_resize(img, (nw, nh)), ((resolution - nw) // 2, (resolution - nh) // 2))
    return canvas


def _resize(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    if img.size == size:
        return img
    return img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def decode_file(path: Path, resolution: int, mode: str, background: RGB,
                shown_name: str) -> np.ndarray:
    """`[resolution, resolution, 3]` uint8; errors name the file as `shown_name`."""
    try:
        with Image.open(path) as img:
            img.load()  # decode now: truncated files fail here, not later
            img = ImageOps.exif_transpose(img)  # phone photos carry their rotation in EXIF
            rgb = to_rgb(img, background)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise GanStudioError(f"cannot read image {shown_name}: {exc}") from None
    return np.asarray(fit(rgb, resolution, mode, background), dtype=np.uint8)


def decode_array(image_hwc: np.ndarray, resolution: int, mode: str, background: RGB) -> np.ndarray:
    """One graph image (`[H, W, 3|4]` uint8) -> `[resolution, resolution, 3]` uint8."""
    pil_mode = "RGBA" if image_hwc.shape[2] == 4 else "RGB"
    img = to_rgb(Image.fromarray(image_hwc, pil_mode), background)
    return np.asarray(fit(img, resolution, mode, background), dtype=np.uint8)
