"""Class accuracy of conditional samples, judged by a small CNN trained on the real data.

A class-conditional generator should draw class c when asked for class c. A classifier
trained here on the labelled training images (class = subfolder) tells: generate n images
per class, classify them, count the hits. Real held-out accuracy is the ceiling to read the
number against (the classifier is not perfect on real images either).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CapabilityError, GanStudioError
from ..formats.tagged import read_tagged, write_tagged
from ..model import GenerativeModel

FORMAT = "gan-studio-classifier"
META_KEY = "gan_studio_classifier"


class SmallClassifier(nn.Module):
    """Four conv stages (3x3 conv, BN, ReLU, 2x pool), global average pool, linear.

    forward: images `[N, 3, H, W]` in [0, 1] (resized to `resolution`) -> logits `[N, C]`.
    """

    def __init__(self, num_classes: int, resolution: int = 32, width: int = 32,
                 class_names: list[str] | None = None):
        super().__init__()
        self.num_classes, self.resolution = int(num_classes), int(resolution)
        self.width = int(width)
        self.class_names = list(class_names or [f"class {i}" for i in range(num_classes)])
        chans = [3, width, width * 2, width * 4, width * 4]
        layers = []
        for cin, cout in zip(chans[:-1], chans[1:], strict=True):
            layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        self.body = nn.Sequential(*layers)
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Linear(chans[-1], num_classes)

    def config(self) -> dict:
        return {"num_classes": self.num_classes, "resolution": self.resolution,
                "width": self.width, "class_names": self.class_names}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-1] != self.resolution or x.shape[-2] != self.resolution:
            x = F.interpolate(x, size=(self.resolution, self.resolution), mode="bilinear",
                              antialias=True, align_corners=False)
        h = self.body(x * 2 - 1).mean(dim=(2, 3))
        return self.head(self.dropout(h))

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Class indices `[N]` (eval mode, batched, on the classifier's device)."""
        self.eval()
        device = next(self.parameters()).device
        out = [self(images[i:i + batch_size].to(device)).argmax(1).cpu()
               for i in range(0, len(images), batch_size)]
        return torch.cat(out)


# --- training -------------------------------------------------------------------------------
def split_holdout(labels: torch.Tensor, fraction: float, seed: int
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, held-out indices): `fraction` of every class held out (at least one
    image of each class with two or more images)."""
    gen = torch.Generator().manual_seed(seed)
    train, held = [], []
    for c in labels.unique():
        idx = (labels == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        k = max(1, round(len(idx) * fraction)) if len(idx) > 1 and fraction > 0 else 0
        held.append(idx[:k])
        train.append(idx[k:])
    return torch.cat(train), torch.cat(held)


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random shifts of up to 1/8 of the size (edge-padded) and horizontal flips."""
    n, _, h, w = x.shape
    pad = max(1, h // 8)
    padded = F.pad(x, [pad] * 4, mode="replicate")
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    out = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])
    flip = torch.rand(n, generator=gen) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(3), out)


def train_classifier(dataset, steps: int = 600, seed: int = 0, resolution: int | None = None,
                     width: int = 24, batch_size: int = 64, lr: float = 2e-3,
                     holdout: float = 0.1, device: torch.device | str = "cpu"
                     ) -> tuple[SmallClassifier, dict]:
    """Train on a labelled ImageDataset (gan_models.training); returns (classifier, report).

    Batches draw classes uniformly (so small classes count as much as large ones, as they do
    in class_accuracy); report holds held-out accuracy, per-class held-out accuracy, steps,
    seconds. resolution defaults to min(data resolution, 32).
    """
    if dataset.labels is None or dataset.num_classes < 2:
        raise GanStudioError("the classifier needs labelled data with at least 2 classes "
                             "(a folder with one subfolder per class)")
    start = time.perf_counter()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    res = int(resolution or min(dataset.resolution, 32))
    clf = SmallClassifier(dataset.num_classes, res, width, list(dataset.class_names)).to(device)
    # Downscale once; the network would otherwise resize every batch.
    images = F.interpolate(dataset.images.float() / 255, size=(res, res), mode="bilinear",
                           antialias=True, align_corners=False)
    labels = dataset.labels
    train_idx, held_idx = split_holdout(labels, holdout, seed)
    by_class = [train_idx[labels[train_idx] == c] for c in range(dataset.num_classes)]
    by_class = [idx for idx in by_class if len(idx)]
    opt = torch.optim.AdamW(clf.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(1, steps))
    clf.train()
    with torch.inference_mode(False), torch.enable_grad():
        for _ in range(steps):
            cls = torch.randint(len(by_class), (batch_size,), generator=gen)
            pick = torch.stack([by_class[c][torch.randint(len(by_class[c]), (1,), generator=gen)]
                                for c in cls.tolist()]).flatten()
            x = _augment(images[pick], gen).to(device)
            loss = F.cross_entropy(clf(x), labels[pick].to(device), label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    clf.eval()
    report = {"steps": steps, "seed": seed, "train_images": len(train_idx),
              "heldout_images": len(held_idx), "seconds": round(time.perf_counter() - start, 1)}
    if len(held_idx):
        pred = clf.predict(images[held_idx])
        truth = labels[held_idx]
        per_class = {name: float((pred[truth == c] == c).float().mean())
                     for c, name in enumerate(dataset.class_names) if (truth == c).any()}
        report["heldout_accuracy"] = float((pred == truth).float().mean())
        report["heldout_balanced_accuracy"] = sum(per_class.values()) / len(per_class)
        report["heldout_per_class"] = per_class
    return clf, report


# --- files ----------------------------------------------------------------------------------
def save_classifier(path: str | Path, clf: SmallClassifier, report: dict | None = None) -> Path:
    meta = {"format": FORMAT, "config": clf.config(), "report": report or {}}
    return write_tagged(path, clf.state_dict(), META_KEY, meta)


def load_classifier(path: str | Path, device: torch.device | str = "cpu"
                    ) -> tuple[SmallClassifier, dict]:
    """(classifier in eval mode, the training report stored with it)."""
    path = Path(path)
    tensors, meta = read_tagged(path, META_KEY, "GAN Studio classifier",
                                hint="train one with `evaluate --train-classifier`")
    if not isinstance(meta.get("config"), dict):
        raise GanStudioError(f"{path.name}: its classifier metadata lacks a config")
    clf = SmallClassifier(**meta["config"])
    try:
        clf.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise GanStudioError(f"{path.name}: weights do not fit its config ({exc})") from None
    return clf.eval().to(device), meta.get("report", {})


# --- judging a generator --------------------------------------------------------------------
def class_mapping(model: GenerativeModel, clf: SmallClassifier) -> list[int]:
    """For each model class, the classifier class it should be recognised as (by name when
    both name the same classes, else by index)."""
    if model.num_classes == 0:
        raise CapabilityError(f"model {model.describe()} is unconditional: class accuracy "
                              "needs a class-conditional model")
    lower = [n.lower() for n in clf.class_names]
    if sorted(n.lower() for n in model.class_names) == sorted(lower):
        return [lower.index(n.lower()) for n in model.class_names]
    if model.num_classes == clf.num_classes:
        return list(range(model.num_classes))
    raise GanStudioError(
        f"the classifier knows {clf.num_classes} classes ({', '.join(clf.class_names)}) but "
        f"the model has {model.num_classes} ({', '.join(model.class_names)}); train a "
        "classifier on the model's training data")


def per_class_accuracy(model: GenerativeModel, clf: SmallClassifier, n_per_class: int = 100,
                       seed: int = 0, batch_size: int = 64) -> dict[str, float]:
    """{model class name: fraction of its n_per_class samples classified as that class}.

    Class c uses seeds seed + c * n_per_class ... (so classes never share latents).
    """
    if n_per_class < 1:
        raise GanStudioError(f"n_per_class must be at least 1, got {n_per_class}")
    target = class_mapping(model, clf)
    result = {}
    for c, name in enumerate(model.class_names):
        hits = 0
        for start in range(0, n_per_class, batch_size):
            n = min(batch_size, n_per_class - start)
            batch = model.sample_latents(seed + c * n_per_class + start, n)
            batch = batch.with_labels(F.one_hot(torch.full((n,), c), model.num_classes).float())
            images = model.synthesize(batch).float().clamp(-1, 1).add(1).mul(0.5)
            hits += int((clf.predict(images[:, :3]) == target[c]).sum())
        result[name] = hits / n_per_class
    return result


def class_accuracy(model: GenerativeModel, clf: SmallClassifier, n_per_class: int = 100,
                   seed: int = 0, batch_size: int = 64) -> float:
    """Fraction of conditional samples (n_per_class of every class) recognised as the class
    they were asked for."""
    per_class = per_class_accuracy(model, clf, n_per_class, seed, batch_size)
    return sum(per_class.values()) / len(per_class)
