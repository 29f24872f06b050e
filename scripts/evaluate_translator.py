"""Score an image-to-image model on held-out pairs and draw its card picture.

    .venv/bin/python scripts/evaluate_translator.py MODEL HELDOUT_DIR [--reference DIR]
        [--picture docs/sketch2emoji.jpg] [--drawings a.png b.png ...]

HELDOUT_DIR holds A/ (inputs) and B/ (targets) with matching names (make_sketch_pairs.py).
Prints JSON: L1, Fréchet distance and KID of the outputs against the targets (Lite0
features), the same for the inputs (doing nothing) and, with --reference (a folder of other
real targets, e.g. the training B/), reference images against the held-out targets.
The picture: labelled columns sketch | output | real for held-out pairs, then the --drawings
(line drawings of any size, scaled to the model's size) with their outputs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parent.parent
SCALE, PAD, HEADER = 3, 6, 22


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model", type=Path)
    p.add_argument("heldout", type=Path)
    p.add_argument("--reference", type=Path, default=None)
    p.add_argument("--picture", type=Path, default=None)
    p.add_argument("--rows", type=int, default=8)
    p.add_argument("--drawings", type=Path, nargs="*", default=[])
    args = p.parse_args(argv)
    sys.path.insert(0, str(REPO))  # the library never imports ComfyUI: safe here
    import gan_models
    from gan_models.metrics.translation import evaluate_translator, translate_pairs
    from gan_models.training import load_image_folder
    from gan_models.training.pairs import load_pairs

    torch.manual_seed(0)
    model = gan_models.load_model(args.model)
    res = model.resolution
    pairs = load_pairs(args.heldout, "paired", res)
    inputs, targets = pairs.images.float() / 255, pairs.targets.float() / 255
    reference = None
    if args.reference is not None:
        reference = load_image_folder(args.reference, res).images.float() / 255
    result = evaluate_translator(model, inputs, targets, reference)
    result["model"] = args.model.name
    print(json.dumps(result, indent=2))
    if args.picture:
        picks = torch.linspace(0, len(inputs) - 1, args.rows).round().long()
        rows = [(inputs[i], translate_pairs(model, inputs[i:i + 1])[0], targets[i])
                for i in picks]
        drawn = []
        for path in args.drawings:
            with Image.open(path) as im:
                rgba = im.convert("RGBA")
            if rgba.convert("RGB").getextrema() == ((255, 255), (255, 255), (255, 255)):
                # a white canvas drawn on in the mask editor: the strokes are its alpha
                rgb = rgba.getchannel("A").convert("RGB")
            else:
                white = Image.new("RGBA", rgba.size, "white")
                rgb = Image.alpha_composite(white, rgba).convert("RGB")
            rgb = rgb.resize((res, res), Image.BOX)
            x = torch.from_numpy(__import__("numpy").asarray(rgb).copy()).permute(2, 0, 1)
            x = x.float()[None] / 255
            drawn.append((x[0], translate_pairs(model, x)[0], None))
        picture(rows + drawn, res, args.picture)
        print(f"picture: {args.picture}")
    return 0


def picture(rows, res: int, target: Path) -> None:
    """Three labelled columns per row group; held-out rows in two side-by-side groups."""
    cell = res * SCALE
    groups = [rows[i:i + 4] for i in range(0, len(rows), 4)]
    labels = ("sketch", "pix2pix output", "real Twemoji")
    width = len(groups) * (3 * (cell + PAD) + PAD * 3)
    height = HEADER + 4 * (cell + PAD) + PAD
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    for g, group in enumerate(groups):
        x0 = g * (3 * (cell + PAD) + PAD * 3) + PAD
        for c, label in enumerate(labels):
            draw.text((x0 + c * (cell + PAD) + 4, 5), label, fill=(0, 0, 0))
        for r, row in enumerate(group):
            for c, img in enumerate(row):
                x, y = x0 + c * (cell + PAD), HEADER + r * (cell + PAD)
                if img is None:
                    draw.text((x + cell // 2 - 30, y + cell // 2 - 6), "(your drawing)",
                              fill=(120, 120, 120))
                    continue
                arr = (img.permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()
                sheet.paste(Image.fromarray(arr).resize((cell, cell), Image.NEAREST), (x, y))
    target.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(target, quality=92)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
