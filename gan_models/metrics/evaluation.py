"""Measuring a checkpoint against real images: the pipeline behind `python -m gan_models
evaluate` and the quality benchmark.

Fréchet distance (fd) and KID between generated and real images on a feature network's
features (EfficientNet-Lite0 by default), and for class-conditional models the class accuracy
of conditional samples judged by a small classifier trained on the same data. Real-image
features are cached (by default in DATA/.gan_studio_metrics/, hidden so training ignores it).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import torch

from ..errors import GanStudioError

CACHE_FOLDER = ".gan_studio_metrics"


def evaluate_checkpoint(checkpoint: str | Path, data: str | Path, *, num: int = 2000,
                        seed: int = 0, features: str = "lite0", classifier: Path | None = None,
                        train_classifier: bool = False, classifier_steps: int = 600,
                        per_class: int | None = None, kid_subsets: int = 100,
                        kid_subset_size: int = 1000, fit: str = "crop",
                        background: str = "#ffffff", stats_cache: Path | None = None,
                        use_stats_cache: bool = True, batch: int = 64,
                        device: str = "cpu") -> dict:
    """All the numbers for one checkpoint, as a JSON-able dict (see the module docstring).
    stats_cache: the folder for cached real features (default DATA/.gan_studio_metrics)."""
    from ..formats import load_model
    from ..training import load_image_folder

    start = time.perf_counter()
    checkpoint, data = Path(checkpoint), Path(data)
    if num < 2:
        raise GanStudioError(f"--num must be at least 2, got {num}")
    if classifier is not None and not train_classifier and not Path(classifier).is_file():
        raise GanStudioError(f"classifier file not found: {classifier} "
                             "(add --train-classifier to train and save one)")
    model = load_model(checkpoint, device=device)
    dataset = load_image_folder(data, model.resolution, fit=fit, background=background)
    cache = (stats_cache or data / CACHE_FOLDER) if use_stats_cache else None
    result = {"checkpoint": checkpoint.name, "model": model.describe(),
              "data": dataset.describe(), "features": feature_tag(features)}
    result.update(distribution_metrics(model, dataset, features, num, seed, device, batch,
                                       kid_subsets, kid_subset_size, cache))
    if model.num_classes and (train_classifier or classifier is not None):
        result.update(classifier_metrics(model, dataset, classifier, train_classifier,
                                         classifier_steps, per_class, num, seed, device, batch))
    elif model.num_classes:
        result["class_accuracy"] = None
        result["class_accuracy_note"] = "add --train-classifier (or --classifier FILE)"
    elif train_classifier or classifier is not None:
        result["class_accuracy"] = None
        result["class_accuracy_note"] = "the model is unconditional: it has no classes"
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


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


def cached_real_features(extract, dataset, features: str,
                         cache_dir: str | Path | None) -> tuple[dict, bool]:
    """({'features', 'mu', 'sigma'} of the dataset's images, whether they came from the
    cache), keyed by the data's content, resolution and feature network."""
    from .frechet import cached_stats

    key = f"{dataset.fingerprint}-{dataset.resolution}-{feature_tag(features)}"
    return cached_stats(cache_dir, key, lambda: real_features(extract, dataset.images),
                        info={"data": dataset.describe(), "features": features})


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


@torch.no_grad()
def sample_batches(model, num: int, seed: int, labels: torch.Tensor | None, batch: int = 64):
    """Yields `num` samples (seeds seed, seed+1, ...) a batch at a time, `[n, 3, H, W]` in
    [0, 1] on the model's device; labels `[num, C]` give each sample its condition."""
    for start in range(0, num, batch):
        n = min(batch, num - start)
        latents = model.sample_latents(seed + start, n)
        if labels is not None:
            latents = latents.with_labels(labels[start:start + n])
        yield model.synthesize(latents).float().clamp(-1, 1).add(1).mul(0.5)[:, :3]


def generated_features(model, extract, num: int, seed: int, labels: torch.Tensor | None,
                       batch: int = 64) -> torch.Tensor:
    """Features of `num` samples (seeds seed, seed+1, ...), generated a batch at a time."""
    return torch.cat([extract(images) for images in sample_batches(model, num, seed, labels,
                                                                   batch)])


def distribution_metrics(model, dataset, features: str, num: int, seed: int, device,
                         batch: int, kid_subsets: int, kid_subset_size: int,
                         cache_dir) -> dict:
    from .features import load_feature_extractor
    from .frechet import feature_stats, frechet_from_stats, kid

    extract = load_feature_extractor(device, batch, features)
    t0 = time.perf_counter()
    real, cached = cached_real_features(extract, dataset, features, cache_dir)
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
    from .classifier import load_classifier, per_class_accuracy, save_classifier
    from .classifier import train_classifier as train_new

    if train:
        clf, report = train_new(dataset, steps=steps, seed=seed, device=device)
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
