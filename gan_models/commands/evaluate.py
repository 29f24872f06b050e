"""python -m gan_models evaluate CHECKPOINT --data DIR [--num 2000] [--out metrics.json]

Prints JSON: Fréchet distance (fd) and KID between generated and real images on
EfficientNet-Lite0 features, and for class-conditional models the class accuracy of
conditional samples judged by a small classifier trained on the same data
(--train-classifier, or --classifier FILE from an earlier run).
Real-image features are cached in DIR/.gan_studio_metrics/ (hidden, so training ignores it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import torch

from ..errors import GanStudioError
from ..training.decode import FIT_MODES

CACHE_FOLDER = ".gan_studio_metrics"


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
    from ..formats import load_model
    from ..training import load_image_folder

    start = time.perf_counter()
    if args.num < 2:
        raise GanStudioError(f"--num must be at least 2, got {args.num}")
    if args.classifier is not None and not args.train_classifier \
            and not args.classifier.is_file():
        raise GanStudioError(f"classifier file not found: {args.classifier} "
                             "(add --train-classifier to train and save one)")
    model = load_model(args.checkpoint, device=args.device)
    dataset = load_image_folder(args.data, model.resolution, fit=args.fit,
                                background=args.background)
    cache = None if args.no_stats_cache else (args.stats_cache or args.data / CACHE_FOLDER)
    result = {"checkpoint": args.checkpoint.name, "model": model.describe(),
              "data": dataset.describe(), "features": feature_tag(args.features)}
    result.update(distribution_metrics(model, dataset, args.features, args.num, args.seed,
                                       args.device, args.batch, args.kid_subsets,
                                       args.kid_subset_size, cache))
    if model.num_classes and (args.train_classifier or args.classifier is not None):
        result.update(classifier_metrics(model, dataset, args.classifier, args.train_classifier,
                                         args.classifier_steps, args.per_class, args.num,
                                         args.seed, args.device, args.batch))
    elif model.num_classes:
        result["class_accuracy"] = None
        result["class_accuracy_note"] = "add --train-classifier (or --classifier FILE)"
    elif args.train_classifier or args.classifier is not None:
        result["class_accuracy"] = None
        result["class_accuracy_note"] = "the model is unconditional: it has no classes"
    result["seconds"] = round(time.perf_counter() - start, 1)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


def feature_tag(spec: str) -> str:
    """A short name for the feature network, part of the cache key."""
    if spec.startswith("inception:"):
        path = Path(spec.split(":", 1)[1])
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12] if path.is_file() else "?"
        return f"inception-{digest}"
    return spec


def real_features(extract, images: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """Features of uint8 images `[N, 3, R, R]`, converted to float a chunk at a time."""
    return torch.cat([extract(images[i:i + chunk].float() / 255)
                      for i in range(0, len(images), chunk)])


def sample_labels(model, dataset, num: int, seed: int) -> torch.Tensor | None:
    """One-hot labels `[num, C]` drawn with the real data's class frequencies (so FD compares
    like with like), or None to let the model draw classes from the seeds."""
    if not model.num_classes or dataset.labels is None:
        return None
    model_index = {n.lower(): i for i, n in enumerate(model.class_names)}
    data_names = [n.lower() for n in dataset.class_names]
    if set(data_names) != set(model_index):
        return None
    counts = torch.bincount(dataset.labels, minlength=len(data_names)).double()
    gen = torch.Generator().manual_seed(seed)
    drawn = torch.multinomial(counts, num, replacement=True, generator=gen)
    to_model = torch.tensor([model_index[n] for n in data_names])
    return torch.nn.functional.one_hot(to_model[drawn], model.num_classes).float()


def generated_features(model, extract, num: int, seed: int, labels: torch.Tensor | None,
                       batch: int = 64) -> torch.Tensor:
    """Features of `num` samples (seeds seed, seed+1, ...), generated a batch at a time."""
    out = []
    for start in range(0, num, batch):
        n = min(batch, num - start)
        latents = model.sample_latents(seed + start, n)
        if labels is not None:
            latents = latents.with_labels(labels[start:start + n])
        images = model.synthesize(latents).float().clamp(-1, 1).add(1).mul(0.5)
        out.append(extract(images[:, :3]))
    return torch.cat(out)


def distribution_metrics(model, dataset, features: str, num: int, seed: int, device,
                         batch: int, kid_subsets: int, kid_subset_size: int,
                         cache_dir) -> dict:
    from ..metrics import cached_stats, feature_stats, frechet_from_stats, kid
    from ..metrics.features import load_feature_extractor

    extract = load_feature_extractor(device, batch, features)
    t0 = time.perf_counter()
    key = f"{dataset.fingerprint}-{dataset.resolution}-{feature_tag(features)}"
    real, cached = cached_stats(cache_dir, key, lambda: real_features(extract, dataset.images),
                                info={"data": dataset.describe(), "features": features})
    t1 = time.perf_counter()
    fake = generated_features(model, extract, num, seed, sample_labels(model, dataset, num, seed),
                              batch)
    t2 = time.perf_counter()
    mu, sigma = feature_stats(fake)
    fd = frechet_from_stats(mu, sigma, real["mu"].numpy(), real["sigma"].numpy())
    kid_mean, kid_std = kid(fake, real["features"], kid_subsets, kid_subset_size, seed)
    return {"fd": round(fd, 4), "kid_mean": round(kid_mean, 6), "kid_std": round(kid_std, 6),
            "num_images": num, "real_images": len(real["features"]),
            "real_features_cached": cached, "seconds_real_features": round(t1 - t0, 1),
            "seconds_generated_features": round(t2 - t1, 1),
            "seconds_distances": round(time.perf_counter() - t2, 1)}


def classifier_metrics(model, dataset, path: Path | None, train: bool, steps: int,
                       per_class: int | None, num: int, seed: int, device, batch: int) -> dict:
    from ..metrics import load_classifier, per_class_accuracy, save_classifier, train_classifier

    if train:
        clf, report = train_classifier(dataset, steps=steps, seed=seed, device=device)
        if path is not None:
            save_classifier(path, clf, report)
    else:
        clf, report = load_classifier(path, device)
    n = per_class or max(1, num // model.num_classes)
    accuracy = per_class_accuracy(model, clf, n, seed, batch)
    return {"class_accuracy": round(sum(accuracy.values()) / len(accuracy), 4),
            "class_accuracy_per_class": {k: round(v, 4) for k, v in accuracy.items()},
            "class_samples_per_class": n,
            # the classifier's own per-class-averaged accuracy on held-out real images:
            # the ceiling class_accuracy can reach with this classifier
            "classifier_heldout_accuracy": _round(report.get("heldout_balanced_accuracy"))}


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)
