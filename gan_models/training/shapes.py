"""Procedural training images: coloured shapes on plain canvases.

Small, instant, licence-free data for tests, benchmarks, demo workflows and smoke runs.
Each class is one shape; colour, size, position and background vary with the seed.
"""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle")


def draw_shape(shape: str, size: int, rng: random.Random) -> Image.Image:
    """One RGB `size`x`size` image of `shape` at a random place, colour and scale."""
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r} (expected one of {SHAPES})")
    bg = tuple(rng.randint(200, 255) for _ in range(3))
    fg = tuple(rng.randint(0, 160) for _ in range(3))
    img = Image.new("RGB", (size, size), bg)
    draw = ImageDraw.Draw(img)
    r = rng.uniform(0.22, 0.38) * size
    cx = rng.uniform(r, size - r)
    cy = rng.uniform(r, size - r)
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fg)
    elif shape == "square":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fg)
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fg)
    return img


def write_shapes_folder(folder: str | Path, per_class: int = 8, size: int = 32,
                        shapes: tuple[str, ...] = SHAPES, seed: int = 0,
                        conditional: bool = True) -> Path:
    """Write PNGs: folder/<shape>/<i>.png (conditional) or folder/<shape>_<i>.png (flat).

    Existing files of the same names are overwritten, so calling it twice is harmless.
    """
    folder = Path(folder)
    rng = random.Random(seed)
    for shape in shapes:
        target = folder / shape if conditional else folder
        target.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            name = f"{i:04d}.png" if conditional else f"{shape}_{i:04d}.png"
            draw_shape(shape, size, rng).save(target / name)
    return folder
