"""Pictures of a run: sample grids and a loss curve, drawn with PIL (no plotting library)."""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

SERIES_COLORS = {"loss_d": (214, 39, 40), "loss_g": (31, 119, 180), "d_acc": (44, 160, 44),
                 "loss": (148, 103, 189)}


def image_grid(images: torch.Tensor, cols: int | None = None, pad: int = 2) -> torch.Tensor:
    """`[N, H, W, 3]` float 0..1 -> one `[rows*(H+pad)+pad, ..., 3]` grid image (0..1)."""
    n, h, w, c = images.shape
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = torch.ones(rows * (h + pad) + pad, cols * (w + pad) + pad, c)
    for i in range(n):
        r, k = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + k * (w + pad)
        grid[y:y + h, x:x + w] = images[i].float().cpu()
    return grid


def to_pil(image_hwc: torch.Tensor) -> Image.Image:
    return Image.fromarray((image_hwc.clamp(0, 1) * 255).round().byte().cpu().numpy())


def loss_curve(history: dict[str, list[float]], width: int = 640, height: int = 400,
               series: tuple[str, ...] | None = None) -> Image.Image:
    """Losses against steps (top panel) and D accuracy (bottom panel), smoothed.

    series: the top panel's metrics; by default every metric named loss*.
    """
    if series is None:
        series = tuple(sorted(k for k in history if k.startswith("loss")))
    img = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    steps = history.get("step", [])
    left, right, top = 56, width - 12, 24
    split = int(height * 0.68)
    panels = [((top, split - 26), [s for s in series if history.get(s)], None),
              ((split + 8, height - 26), ["d_acc"] if history.get("d_acc") else [], (0.0, 1.0))]
    if not steps:
        draw.text((left, height // 2), "no training steps yet", fill=(90, 90, 90), font=font)
        return img
    x_lo, x_hi = float(steps[0]), float(max(steps[-1], steps[0] + 1))

    def px(step: float) -> float:
        return left + (step - x_lo) / (x_hi - x_lo) * (right - left)

    for (y0, y1), names, fixed in panels:
        if not names:
            continue
        curves = {k: _smooth(np.asarray(history[k], dtype=np.float64)) for k in names}
        finite = np.concatenate([v[np.isfinite(v)] for v in curves.values()])
        lo, hi = fixed or ((float(finite.min()), float(finite.max())) if finite.size else (0, 1))
        if hi - lo < 1e-6:
            lo, hi = lo - 0.5, hi + 0.5
        draw.rectangle([left, y0, right, y1], outline=(160, 160, 160))
        for frac in (0.0, 0.5, 1.0):
            y = y1 - frac * (y1 - y0)
            draw.line([left - 4, y, left, y], fill=(120, 120, 120))
            draw.text((4, y - 6), f"{lo + frac * (hi - lo):.3g}", fill=(60, 60, 60), font=font)
        for k, v in curves.items():
            pts = [(px(s), y1 - (val - lo) / (hi - lo) * (y1 - y0))
                   for s, val in zip(steps, v, strict=False) if np.isfinite(val)]
            if len(pts) > 1:
                draw.line(pts, fill=SERIES_COLORS.get(k, (0, 0, 0)), width=2)
            elif pts:
                x, y = pts[0]
                draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=SERIES_COLORS.get(k, (0, 0, 0)))
    legend_x = left
    for k in [*panels[0][1], *panels[1][1]]:
        draw.rectangle([legend_x, 6, legend_x + 10, 16], fill=SERIES_COLORS.get(k, (0, 0, 0)))
        draw.text((legend_x + 14, 5), k, fill=(30, 30, 30), font=font)
        legend_x += 24 + int(draw.textlength(k, font=font))
    draw.text((left, height - 16), f"step {int(x_lo)}", fill=(60, 60, 60), font=font)
    label = f"step {int(steps[-1])}"
    draw.text((right - draw.textlength(label, font=font), height - 16), label,
              fill=(60, 60, 60), font=font)
    return img


def _smooth(values: np.ndarray) -> np.ndarray:
    """Moving average over ~1/50 of the curve (raw values are noisy step to step)."""
    k = max(1, len(values) // 50)
    if k == 1:
        return values
    kernel = np.ones(k) / k
    padded = np.concatenate([np.full(k - 1, values[0]), values])
    return np.convolve(padded, kernel, mode="valid")
