"""Input images of the image-to-image example workflows, written into example_inputs/.

    .venv/bin/python scripts/make_translate_examples.py [--photo PATH_TO_chelsea.png]

gan_studio_style_mosaic.png   a stained-glass mosaic drawn here (Voronoi cells in a bold
                              palette, dark leading and light brush streaks): the style
gan_studio_drawing_smiley.png a smiley drawn with wobbly pen strokes, the kind of line
                              drawing a user makes in the mask editor: the sketch to turn
                              into an emoji
gan_studio_canvas_drawing.png a white canvas whose mask (its alpha) holds a cat face drawn
                              in the mask editor's way: Load Image gives the strokes as its
                              MASK output, where a user paints their own
gan_studio_photo_cat.png      the content photo: scikit-image's `chelsea.png` (CC0, Stefan
                              van der Walt), taken from the scikit-image wheel when --photo
                              gives its path (pip download scikit-image --no-deps)
"""

from __future__ import annotations

import argparse
import math
import random
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

OUT = Path(__file__).resolve().parent.parent / "example_inputs"
PALETTE = [(230, 57, 70), (241, 196, 15), (29, 53, 87), (69, 123, 157), (42, 157, 143),
           (244, 162, 97), (131, 56, 236), (255, 255, 255), (233, 196, 106)]


def mosaic(size: int = 384, cells: int = 90, seed: int = 3) -> Image.Image:
    rng = np.random.default_rng(seed)
    points = rng.uniform(0, size, (cells, 2))
    yy, xx = np.mgrid[0:size, 0:size]
    d = (xx[..., None] - points[:, 0]) ** 2 + (yy[..., None] - points[:, 1]) ** 2
    order = np.sort(d, axis=-1)
    owner = d.argmin(-1)
    colors = np.array([PALETTE[i % len(PALETTE)] for i in rng.permutation(cells)], np.float64)
    img = colors[owner]
    # shading inside each cell, darker towards its border, and dark leading between cells
    edge = np.sqrt(order[..., 1]) - np.sqrt(order[..., 0])
    img *= (0.75 + 0.25 * np.clip(edge / 12, 0, 1))[..., None]
    img[edge < 2.5] = (25, 20, 30)
    pic = Image.fromarray(img.clip(0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(pic)
    r = random.Random(seed)
    for _ in range(160):  # light brush streaks
        x, y = r.uniform(0, size), r.uniform(0, size)
        a, n = r.uniform(0, math.pi), r.uniform(8, 22)
        draw.line([(x, y), (x + n * math.cos(a), y + n * math.sin(a))],
                  fill=(255, 250, 235), width=2)
    return pic.filter(ImageFilter.SMOOTH)


def smiley(size: int = 512, seed: int = 1) -> Image.Image:
    """Black pen strokes on white: a face, eyes, a smile."""
    r = random.Random(seed)
    pic = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(pic)

    def stroke(points, width=9):
        wobbly = [(x + r.uniform(-2, 2), y + r.uniform(-2, 2)) for x, y in points]
        draw.line(wobbly, fill="black", width=width, joint="curve")

    c, rad = size / 2, size * 0.4
    stroke([(c + rad * math.cos(t), c + rad * 1.02 * math.sin(t))
            for t in np.linspace(0, 2 * math.pi * 1.02, 90)])
    for ex in (-0.16, 0.16):
        stroke([(c + size * ex + size * 0.035 * math.cos(t),
                 c - size * 0.1 + size * 0.06 * math.sin(t)) for t in np.linspace(0, 6.4, 30)])
    stroke([(c + size * 0.22 * math.cos(t), c + size * 0.04 + size * 0.16 * math.sin(t))
            for t in np.linspace(0.2, math.pi - 0.2, 40)])
    return pic


def canvas(size: int = 512, seed: int = 2) -> Image.Image:
    """White RGBA; alpha 0 along the strokes of a cat face (Load Image: mask = 1 - alpha)."""
    r = random.Random(seed)
    strokes = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(strokes)

    def stroke(points, width=10):
        draw.line([(x + r.uniform(-2, 2), y + r.uniform(-2, 2)) for x, y in points],
                  fill=255, width=width, joint="curve")

    c, rad = size / 2, size * 0.33
    stroke([(c + rad * 1.1 * math.cos(t), c + 30 + rad * math.sin(t))
            for t in np.linspace(0, 2 * math.pi * 1.01, 100)])
    for side in (-1, 1):  # ears standing on the head
        stroke([(c + side * rad * 0.92, c + 30 - rad * 0.45), (c + side * rad * 0.95,
                c - rad * 0.95), (c + side * rad * 0.3, c + 30 - rad * 0.95)])
        stroke([(c + side * size * 0.13 + size * 0.03 * math.cos(t),
                 c + 10 + size * 0.045 * math.sin(t)) for t in np.linspace(0, 6.4, 30)])
    stroke([(c - 14, c + 60), (c + 14, c + 60), (c, c + 76), (c - 14, c + 60)])  # nose
    for side in (-1, 1):  # whiskers
        stroke([(c + side * 40, c + 80), (c + side * 150, c + 60)], width=6)
        stroke([(c + side * 40, c + 92), (c + side * 150, c + 100)], width=6)
    alpha = Image.eval(strokes, lambda v: 255 - v)
    pic = Image.new("RGBA", (size, size), (255, 255, 255, 255))
    pic.putalpha(alpha)
    return pic


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--photo", type=Path, help="scikit-image's skimage/data/chelsea.png")
    args = p.parse_args()
    OUT.mkdir(exist_ok=True)
    mosaic().save(OUT / "gan_studio_style_mosaic.png")
    smiley().save(OUT / "gan_studio_drawing_smiley.png")
    canvas().save(OUT / "gan_studio_canvas_drawing.png")
    if args.photo:
        shutil.copyfile(args.photo, OUT / "gan_studio_photo_cat.png")


if __name__ == "__main__":
    main()
