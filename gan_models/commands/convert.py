"""python -m gan_models convert IN OUT.safetensors

Imports any supported checkpoint (NVlabs .pkl, rosinality .pt, pix2pix/CycleGAN and fast
neural style .pth, GAN Studio .safetensors)
through the safe importers and writes it once in the native format, with the original
file name and sha256 kept in its metadata.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import GanStudioError
from ..formats import detect_format, load_model, save_model


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", type=Path, help="checkpoint to convert (.pkl, .pt, .safetensors)")
    p.add_argument("output", type=Path, help="native checkpoint to write (.safetensors)")
    p.add_argument("--generator-only", action="store_true",
                   help="keep only the generator (or an image-to-image model's translator): "
                        "smaller, enough for sampling or translating")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")


def run(args: argparse.Namespace) -> int:
    src, out = args.source, args.output
    if out.suffix != ".safetensors":
        raise GanStudioError(f"{out.name}: the output must be a .safetensors file")
    if out.exists() and not args.overwrite:
        raise GanStudioError(f"{out} exists; pass --overwrite to replace it")
    if out.exists() and src.exists() and out.resolve() == src.resolve():
        raise GanStudioError("the output would replace the source file")
    kind = detect_format(src)
    model = load_model(src)
    main = "generator" if model.can("generate") else "translator"
    roles = (main,) if args.generator_only else tuple(model.networks)
    save_model(model, out, roles=roles)
    source = model.metadata.get("source") or {}
    fmt = source.get("format", kind)
    print(f"converted {src.name} ({fmt}) -> {out}")
    print(f"  model: {model.describe()}"
          + (f", z_dim {model.z_dim}" if main == "generator" else "")
          + (f", w_dim {model.w_dim}, num_ws {model.num_ws}" if model.has_mapping else ""))
    print(f"  networks: {', '.join(roles)}")
    if source.get("sha256"):
        print(f"  source sha256: {source['sha256']}")
    if model.metadata.get("notes"):
        print(f"  note: {model.metadata['notes']}")
    return 0
