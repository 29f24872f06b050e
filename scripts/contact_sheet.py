"""Tile images into one labelled contact sheet: python scripts/contact_sheet.py OUT.jpg IMAGES...

Each tile is an image (the first frame of an animation) with its file name under it; the
headless runner writes one with --contact-sheet so a run can be checked at a glance.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

TILE, LABEL, PAD = 160, 16, 6


def contact_sheet(paths: list[Path], target: Path, cols: int | None = None) -> Path:
    paths = [Path(p) for p in paths]
    cols = cols or min(len(paths), max(1, math.ceil(math.sqrt(len(paths)))))
    rows = math.ceil(len(paths) / cols)
    cell_w, cell_h = TILE + PAD, TILE + LABEL + PAD
    sheet = Image.new("RGB", (cols * cell_w + PAD, rows * cell_h + PAD), "white")
    draw = ImageDraw.Draw(sheet)
    font = _font()
    for i, path in enumerate(paths):
        x, y = PAD + (i % cols) * cell_w, PAD + (i // cols) * cell_h
        with Image.open(path) as im:
            im.seek(0)
            tile = _on_white(im)
        tile.thumbnail((TILE, TILE), Image.NEAREST if tile.width * 2 <= TILE else Image.LANCZOS)
        if tile.width < TILE // 2:  # small images: enlarge by a whole factor, keep pixels sharp
            k = TILE // max(tile.width, tile.height)
            tile = tile.resize((tile.width * k, tile.height * k), Image.NEAREST)
        sheet.paste(tile, (x + (TILE - tile.width) // 2, y + (TILE - tile.height) // 2))
        label = _fit(draw, path.stem, font, TILE)
        width = draw.textlength(label, font=font)
        draw.text((x + (TILE - width) / 2, y + TILE + 2), label, fill=(40, 40, 40), font=font)
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(target, quality=90)
    return target


def _on_white(im: Image.Image) -> Image.Image:
    if im.mode in ("RGBA", "LA", "P"):
        rgba = im.convert("RGBA")
        flat = Image.new("RGB", rgba.size, "white")
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return im.convert("RGB")


def _font():
    try:
        return ImageFont.load_default(size=11)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[1:]
    return "..." + text


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.split("\n")[0], file=sys.stderr)
        return 2
    print(contact_sheet([Path(p) for p in argv[1:]], Path(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
