"""An independent judge for generators trained against a pretrained network.

A projected discriminator (or a perceptual loss) trains on EfficientNet-Lite0 features, so a
Fréchet distance on the same features flatters it. The judge is a small CNN trained from
scratch on the real labelled images only (never used in training), with a held-out split:

* its pooled penultimate features give a second Fréchet distance (`judge_fd`);
* its class predictions give the class accuracy of conditional samples, per class and
  averaged per class, to read against its own held-out accuracy on real images (the
  ceiling it can reach);
* `near_blank` counts samples that are almost all background, a failure mode that both
  feature distances can underweight; the real data's own fraction is the reference.

`compare` puts these next to FD and KID on EfficientNet-Lite0 features, from one set of
samples per model.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import GanStudioError
from .classifier import SmallClassifier, load_classifier, save_classifier, train_classifier

# A pixel is background when every channel is within BLANK_TOLERANCE of the background
# colour; an image is near-blank when at least BLANK_SHARE of its pixels are.
BLANK_TOLERANCE = 0.1
BLANK_SHARE = 0.97
JUDGE_RESOLUTION, JUDGE_WIDTH, JUDGE_STEPS, JUDGE_HOLDOUT = 32, 32, 1500, 0.1


# --- the judge --------------------------------------------------------------------------------
def train_judge(dataset, steps: int = JUDGE_STEPS, seed: int = 0,
                holdout: float = JUDGE_HOLDOUT) -> tuple[SmallClassifier, dict]:
    """A classifier trained from scratch on `holdout`-less part of the real labelled data."""
    return train_classifier(dataset, steps=steps, seed=seed, resolution=JUDGE_RESOLUTION,
                            width=JUDGE_WIDTH, holdout=holdout)


def load_or_train_judge(path: str | Path, dataset, steps: int = JUDGE_STEPS, seed: int = 0,
                        log=print) -> tuple[SmallClassifier, dict, str]:
    """(judge, its training report, the file's sha256); trains and saves it when missing."""
    path = Path(path)
    if not path.is_file():
        log(f"training the judge ({steps} steps) on {dataset.describe()}")
        clf, report = train_judge(dataset, steps, seed)
        report["data_fingerprint"] = dataset.fingerprint
        save_classifier(path, clf, report)
    clf, report = load_classifier(path)
    return clf, report, hashlib.sha256(path.read_bytes()).hexdigest()


@torch.no_grad()
def judge_features(clf: SmallClassifier, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Pooled penultimate features `[N, 4 * width]` of images `[N, 3, H, W]` in [0, 1]."""
    clf.eval()
    out = []
    for i in range(0, len(images), batch):
        x = images[i:i + batch].float()
        if x.shape[-1] != clf.resolution:
            x = F.interpolate(x, size=(clf.resolution, clf.resolution), mode="bilinear",
                              antialias=True, align_corners=False)
        out.append(clf.body(x * 2 - 1).mean(dim=(2, 3)))
    return torch.cat(out)


# --- blank samples ------------------------------------------------------------------------------
def near_blank(images: torch.Tensor, background=(1.0, 1.0, 1.0),
               tolerance: float = BLANK_TOLERANCE, share: float = BLANK_SHARE) -> torch.Tensor:
    """Bool `[N]`: images `[N, 3, H, W]` in [0, 1] that are almost all background."""
    bg = torch.tensor(background, dtype=torch.float32)[None, :, None, None]
    is_bg = ((images.float() - bg).abs() <= tolerance).all(dim=1)      # [N, H, W]
    return is_bg.float().mean(dim=(1, 2)) >= share


# --- one model ------------------------------------------------------------------------------------
def samples(model, num: int, seed: int, labels: torch.Tensor | None,
            batch: int = 64) -> torch.Tensor:
    """`num` images `[num, 3, H, W]` in [0, 1] on the CPU (seeds seed, seed+1, ...)."""
    from .evaluation import sample_batches

    return torch.cat([images.cpu() for images in sample_batches(model, num, seed, labels, batch)])


def compare(models: dict, dataset, judge: SmallClassifier, judge_report: dict, *,
            num: int = 2000, seed: int = 0, kid_subsets: int = 100, lite0: bool = True,
            cache_dir: Path | None = None, batch: int = 64, log=print) -> dict:
    """All the numbers for each {name: GenerativeModel}, plus the real data's reference
    values; see the module docstring."""
    from .classifier import per_class_accuracy
    from .evaluation import cached_real_features, sample_labels
    from .frechet import frechet_distance, kid

    real01 = dataset.images.float() / 255
    real_judge = judge_features(judge, real01)
    reference = {
        "real_images": len(real01),
        "real_blank_fraction": round(float(near_blank(real01).float().mean()), 4),
        "judge_heldout_accuracy": _round(judge_report.get("heldout_balanced_accuracy")),
        "judge_heldout_per_class": {k: round(v, 4) for k, v in
                                    (judge_report.get("heldout_per_class") or {}).items()},
        "chance": round(1 / max(1, dataset.num_classes), 4),
    }
    extract = real_lite0 = None
    if lite0:
        from .features import load_feature_extractor

        extract = load_feature_extractor("cpu", batch)
        real_lite0 = cached_real_features(extract, dataset, "lite0", cache_dir)[0]["features"]
    results = {}
    for name, model in models.items():
        t0 = time.perf_counter()
        labels = sample_labels(model, dataset, num, seed)
        images = samples(model, num, seed, labels, batch)
        row = {"model": model.describe(), "num_images": num,
               "judge_fd": round(frechet_distance(judge_features(judge, images), real_judge), 3),
               "blank_fraction": round(float(near_blank(images).float().mean()), 4)}
        if extract is not None:
            fake = torch.cat([extract(images[i:i + 256]) for i in range(0, num, 256)])
            kid_mean, kid_std = kid(fake, real_lite0, kid_subsets, 1000, seed)
            row.update({"fd": round(frechet_distance(fake, real_lite0), 3),
                        "kid_mean": round(kid_mean, 6), "kid_std": round(kid_std, 6)})
        if model.num_classes:
            per = per_class_accuracy(model, judge, max(1, num // model.num_classes), seed, batch)
            mean = sum(per.values()) / len(per)
            row.update({"class_accuracy": round(mean, 4),
                        "class_accuracy_per_class": {k: round(v, 4) for k, v in per.items()}})
            ceiling = reference["judge_heldout_accuracy"]
            if ceiling:
                row["class_accuracy_of_ceiling"] = round(mean / ceiling, 4)
        row["seconds"] = round(time.perf_counter() - t0, 1)
        log(f"{name}: " + ", ".join(f"{k} {v}" for k, v in row.items()
                                    if not isinstance(v, dict)))
        results[name] = row
    return {"reference": reference, "models": results}


def check_same_data(report: dict, dataset) -> None:
    """Refuse a judge trained on other data than the dataset it is asked to judge against."""
    trained_on = report.get("data_fingerprint")
    if trained_on and trained_on != dataset.fingerprint:
        raise GanStudioError("the judge was trained on other data than the given dataset; "
                             "train a judge on this data (a new --judge path)")


def _round(value, digits: int = 4):
    return None if value is None else round(float(value), digits)
