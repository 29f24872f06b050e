"""One picture comparing class-conditional models: a row per class, the same seeds in every
row, models side by side (left to right in the order given).

    .venv/bin/python scripts/class_sheet.py A.safetensors B.safetensors --out sheet.jpg \\
        [--seeds 8] [--psi 1.0]

The models must share their class names (e.g. two runs on the same data).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def sheet(paths: list[Path], seeds: int, psi: float):
    import torch

    import gan_models
    from gan_models.latent import one_hot_weights
    from gan_models.training.plots import image_grid

    models = [gan_models.load_model(p) for p in paths]
    names = models[0].class_names
    if not names or any(m.class_names != names for m in models):
        raise SystemExit("the models must be class-conditional with the same classes")
    panels = []
    for model in models:
        rows = []
        for index in range(len(names)):
            batch = model.sample_latents(seed=0, batch_size=seeds, truncation_psi=psi)
            labels = one_hot_weights([(index, 1.0)], len(names)).expand(seeds, -1).clone()
            with torch.no_grad():
                images = gan_models.generate_in_chunks(model, batch.with_labels(labels), 32)
            rows.append(images)
        panels.append(image_grid(torch.cat(rows), cols=seeds))
    gap = torch.ones(panels[0].shape[0], 12, 3)
    return torch.cat([p if i == 0 else torch.cat([gap, p], 1) for i, p in enumerate(panels)], 1)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("models", type=Path, nargs="+")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seeds", type=int, default=8, help="samples per class (columns)")
    p.add_argument("--psi", type=float, default=1.0, help="truncation psi")
    args = p.parse_args(argv)
    sys.path.insert(0, str(REPO))  # the library never imports ComfyUI: safe here
    from gan_models.training.plots import to_pil

    to_pil(sheet(args.models, args.seeds, args.psi)).save(args.out, quality=90)  # jpg or png
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
