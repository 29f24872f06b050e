"""A labelled grid of images (rows and columns with captions), drawn with PIL: the Direction
Explorer's picture, one row per direction and one column per strength."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..errors import GanStudioError
from ..images import label_font

MIN_CELL = 96  # small images are enlarged by a whole factor to at least this size
PAD = 4
BACKGROUND = (255, 255, 255)
INK = (40, 40, 40)


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


def labelled_grid(images: torch.Tensor, rows: int, cols: int, row_labels: list[str],
                  col_labels: list[str]) -> torch.Tensor:
    """Images `[rows * cols, H, W, 3]` (0..1, row-major) -> one `[H', W', 3]` image (0..1)
    with a caption left of each row and above each column."""
    n, h, w, _ = images.shape
    if n != rows * cols or len(row_labels) != rows or len(col_labels) != cols:
        raise GanStudioError(f"{n} images for a {rows} x {cols} grid with {len(row_labels)} "
                             f"row and {len(col_labels)} column labels")
    k = max(1, -(-MIN_CELL // max(h, w)))  # whole-number enlargement, pixels stay sharp
    ch, cw = h * k, w * k
    font = label_font()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_w = min(160, max(int(probe.textlength(t, font=font)) for t in row_labels) + 2 * PAD)
    head_h = 18
    sheet = Image.new("RGB", (label_w + cols * (cw + PAD) + PAD,
                              head_h + rows * (ch + PAD) + PAD), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    tiles = (images.detach().float().clamp(0, 1) * 255).round().byte().cpu().numpy()
    for c, text in enumerate(col_labels):
        text = _fit(draw, text, font, cw)
        x = label_w + c * (cw + PAD) + (cw - draw.textlength(text, font=font)) / 2
        draw.text((x, 3), text, fill=INK, font=font)
    for r, text in enumerate(row_labels):
        y = head_h + r * (ch + PAD)
        draw.text((PAD, y + ch / 2 - 6), _fit(draw, text, font, label_w - 2 * PAD), fill=INK,
                  font=font)
        for c in range(cols):
            tile = Image.fromarray(tiles[r * cols + c]).resize((cw, ch), Image.NEAREST)
            sheet.paste(tile, (label_w + c * (cw + PAD), y))
    return torch.from_numpy(np.asarray(sheet, dtype=np.float32) / 255.0)
