"""python -m gan_models generate CHECKPOINT --seeds 0-7 --out DIR"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..formats import load_model
from ..latent import SEED_MODES, parse_seeds
from ..model import generate_in_chunks


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", type=Path, help="any supported checkpoint file")
    p.add_argument("--seeds", default="0-7", help="seeds: '0-7', '1,5,42' or a mix")
    p.add_argument("--out", type=Path, default=Path("output"), help="folder for the PNG files")
    p.add_argument("--truncation-psi", type=float, default=1.0)
    p.add_argument("--seed-mode", choices=SEED_MODES, default="torch")
    p.add_argument("--class", dest="class_name", default=None,
                   help="class name or index for conditional models (default: from the seed)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")


def run(args: argparse.Namespace) -> int:
    from PIL import Image

    model = load_model(args.checkpoint, device=args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    for seed in parse_seeds(args.seeds):
        batch = model.sample_latents(seed, 1, args.truncation_psi, seed_mode=args.seed_mode)
        if args.class_name is not None:
            idx = model.class_index(args.class_name)
            batch = batch.with_labels(torch.nn.functional.one_hot(
                torch.tensor([idx]), model.num_classes).float())
        image = generate_in_chunks(model, batch, 1)[0]
        path = args.out / f"seed{seed:06d}.png"
        Image.fromarray((image * 255).round().byte().numpy()).save(path)
        print(path)
    return 0
