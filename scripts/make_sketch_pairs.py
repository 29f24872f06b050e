"""Sketch -> emoji training pairs from Twemoji: OUT/train/{A,B} and OUT/heldout/{A,B}.

    .venv/bin/python scripts/fetch_twemoji.py data/twemoji64
    .venv/bin/python scripts/make_sketch_pairs.py data/twemoji64 data/sketch2emoji

A (the input) is a line drawing made from the emoji by the edge detector in
gan_models/sketch.py (Gaussian blur sigma 0.8, per-channel Sobel, non-maximum suppression,
hysteresis 0.25 / 0.55), drawn once with 1-pixel and once with 2-pixel lines so the model
sees both thin and bold strokes; B is the emoji itself on white, 64x64. Flags are left out
(their drawings are bare rectangles). Every tenth emoji (in sorted file order) is held out
for evaluation, with both of its drawings.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
SKIPPED = {"flags"}
HOLD_OUT_EVERY = 10
THICKNESSES = (1, 2)


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(REPO))  # the library never imports ComfyUI: safe here
    from gan_models.sketch import sketch
    from gan_models.training.decode import decode_file

    source, out = Path(argv[0]), Path(argv[1])
    files = sorted(p for p in source.rglob("*.png")
                   if p.relative_to(source).parts[0] not in SKIPPED)
    counts = {"train": 0, "heldout": 0}
    for i, f in enumerate(files):
        split = "heldout" if i % HOLD_OUT_EVERY == HOLD_OUT_EVERY - 1 else "train"
        rgb = decode_file(f, 64, "crop", (255, 255, 255), f.name)
        x = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float() / 255
        for k in THICKNESSES:
            name = f"{f.stem}_w{k}.png"
            lines = sketch(x, thickness=k)[0].permute(1, 2, 0).numpy()
            for side, pixels in (("A", (lines * 255).round().astype(np.uint8)), ("B", rgb)):
                target = out / split / side / name
                target.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels, "RGB").save(target)
            counts[split] += 1
    print(json.dumps({"out": str(out), "emoji": len(files), "pairs": counts}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
