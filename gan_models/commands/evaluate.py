"""python -m gan_models evaluate CHECKPOINT --data DIR [--num 2000] [--out metrics.json]

Prints JSON: Fréchet distance (fd) and KID between generated and real images on
EfficientNet-Lite0 features, and for class-conditional models the class accuracy of
conditional samples judged by a small classifier trained on the same data
(--train-classifier, or --classifier FILE from an earlier run).
Real-image features are cached in DIR/.gan_studio_metrics/ (hidden, so training ignores it).
The pipeline itself is gan_models.metrics.evaluation.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ..metrics.evaluation import CACHE_FOLDER
from ..training.decode import FIT_MODES


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", type=Path, help="any supported checkpoint file")
    p.add_argument("--data", type=Path, required=True,
                   help="the real images: a folder (class = subfolder name), as for training")
    p.add_argument("--num", type=int, default=2000, help="generated images for FD and KID")
    p.add_argument("--seed", type=int, default=0, help="first seed of the generated images")
    p.add_argument("--features", default="lite0",
                   help="feature network: lite0 (EfficientNet-Lite0, default) or "
                        "inception:PATH (a TorchScript Inception file such as "
                        "inception-2015-12-05.pt; no pickle files)")
    p.add_argument("--classifier", type=Path, default=None,
                   help="class classifier file (.safetensors); with --train-classifier the "
                        "newly trained one is saved here")
    p.add_argument("--train-classifier", action="store_true",
                   help="train a classifier on --data for the class accuracy")
    p.add_argument("--classifier-steps", type=int, default=600,
                   help="training steps for --train-classifier (default 600)")
    p.add_argument("--per-class", type=int, default=None,
                   help="samples per class for the class accuracy (default: num / classes)")
    p.add_argument("--kid-subsets", type=int, default=100, help="KID subsets (default 100)")
    p.add_argument("--kid-subset-size", type=int, default=1000,
                   help="samples per KID subset (default 1000, capped by the sample counts)")
    p.add_argument("--fit", choices=FIT_MODES, default="crop",
                   help="how real images are made square (as for training; default crop)")
    p.add_argument("--background", default="#ffffff",
                   help="colour behind transparent pixels (as for training; default #ffffff)")
    p.add_argument("--stats-cache", type=Path, default=None,
                   help=f"folder for cached real-image features (default DATA/{CACHE_FOLDER})")
    p.add_argument("--no-stats-cache", action="store_true", help="never read or write the cache")
    p.add_argument("--batch", type=int, default=64, help="images per generator/feature batch")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")


def run(args: argparse.Namespace) -> int:
    from ..metrics.evaluation import evaluate_checkpoint

    result = evaluate_checkpoint(
        args.checkpoint, args.data, num=args.num, seed=args.seed, features=args.features,
        classifier=args.classifier, train_classifier=args.train_classifier,
        classifier_steps=args.classifier_steps, per_class=args.per_class,
        kid_subsets=args.kid_subsets, kid_subset_size=args.kid_subset_size, fit=args.fit,
        background=args.background, stats_cache=args.stats_cache,
        use_stats_cache=not args.no_stats_cache, batch=args.batch, device=args.device)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0
