"""Training datasets: decoded once into memory as uint8, then served as batches.

A folder of images is unconditional when the images sit directly in it and class-conditional
when they sit in subfolders (class = subfolder name, sorted, like torchvision's ImageFolder).
An IMAGE batch from a ComfyUI graph (`[B, H, W, 3]`, 0..1) works the same way.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import GanStudioError
from .decode import FIT_MODES, IMAGE_EXTENSIONS, RGB, decode_array, decode_file, parse_color

Progress = Callable[[int, int], None]


@dataclass(frozen=True, eq=False)
class ImageDataset:
    """images: `[N, 3, R, R]` uint8 on the CPU; labels: `[N]` int64 class indices or None."""

    images: torch.Tensor
    labels: torch.Tensor | None = None
    class_names: tuple[str, ...] = ()
    xflip: bool = False
    source: str = ""
    fingerprint: str = field(default="", compare=False)
    # How the images were read: the folder ('' = from memory), its fit mode and background
    # (what a run folder records so that the CLI can read the same images again).
    folder: str = ""
    fit: str = "crop"
    background: str = "#ffffff"

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.dim() != 4 or self.images.shape[1] != 3:
            raise GanStudioError(
                f"dataset images must be uint8 [N, 3, R, R], got {self.images.dtype} "
                f"{tuple(self.images.shape)}")
        if len(self.images) == 0:
            raise GanStudioError("the dataset is empty")
        if self.labels is not None and len(self.labels) != len(self.images):
            raise GanStudioError(f"{len(self.labels)} labels for {len(self.images)} images")
        if not self.fingerprint:
            object.__setattr__(self, "fingerprint", _fingerprint(self.images, self.labels))

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def resolution(self) -> int:
        return int(self.images.shape[-1])

    @property
    def num_classes(self) -> int:
        return len(self.class_names) if self.labels is not None else 0

    def describe(self) -> str:
        classes = f", {self.num_classes} classes" if self.num_classes else ""
        return f"{len(self)} images {self.resolution}px{classes} from {self.source or 'memory'}"

    def batch(self, indices: torch.Tensor, flips: torch.Tensor | None,
              device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor | None]:
        """Images `[n, 3, R, R]` float32 in [-1, 1] and one-hot labels `[n, C]` (or None)."""
        x = self.images[indices].to(device, non_blocking=True).float().div_(127.5).sub_(1.0)
        if flips is not None and bool(flips.any()):
            flips = flips.to(device)
            x = torch.where(flips[:, None, None, None], x.flip(3), x)
        if self.labels is None:
            return x, None
        c = F.one_hot(self.labels[indices], self.num_classes).float().to(device)
        return x, c

    def at_resolution(self, resolution: int) -> "ImageDataset":
        """The same images resized (antialiased) to another square resolution."""
        if resolution == self.resolution:
            return self
        x = F.interpolate(self.images.float(), size=(resolution, resolution), mode="bilinear",
                          antialias=True, align_corners=False)
        images = x.round_().clamp_(0, 255).to(torch.uint8)
        return replace(self, images=images, fingerprint="")

    def detached(self) -> "ImageDataset":
        """A copy whose tensors are normal (not inference-mode) tensors, usable in autograd."""
        with torch.inference_mode(False):
            images = self.images.clone()
            labels = None if self.labels is None else self.labels.clone()
        return replace(self, images=images, labels=labels)

    def preview(self, count: int = 64) -> torch.Tensor:
        """The first `count` images as `[n, R, R, 3]` float 0..1 (for a 'reals' grid)."""
        return self.images[:count].permute(0, 2, 3, 1).float() / 255.0


def load_image_folder(folder: str | os.PathLike, resolution: int, fit: str = "crop",
                      background: RGB | str = (255, 255, 255), xflip: bool = False,
                      on_progress: Progress | None = None) -> ImageDataset:
    folder = Path(folder)
    _check_settings(resolution, fit)
    bg = parse_color(background)
    files, labels, class_names = scan_folder(folder)
    images = np.empty((len(files), resolution, resolution, 3), dtype=np.uint8)

    def work(i: int) -> int:
        shown = files[i].relative_to(folder).as_posix()
        images[i] = decode_file(files[i], resolution, fit, bg, shown)
        return i

    # Decoders release the GIL, so threads decode in parallel; map keeps errors in order.
    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        for done, _ in enumerate(pool.map(work, range(len(files))), 1):
            if on_progress is not None:
                on_progress(done, len(files))
    return ImageDataset(
        images=torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
        labels=torch.tensor(labels, dtype=torch.int64) if class_names else None,
        class_names=tuple(class_names), xflip=xflip, source=folder.name,
        folder=os.path.abspath(folder), fit=fit, background=_hex(bg))


def dataset_from_images(images: torch.Tensor, resolution: int, fit: str = "crop",
                        background: RGB | str = (255, 255, 255), xflip: bool = False,
                        source: str = "IMAGE batch") -> ImageDataset:
    """From a ComfyUI IMAGE batch `[B, H, W, 3|4]` float 0..1 (a 4th channel is alpha)."""
    _check_settings(resolution, fit)
    if images.dim() != 4 or images.shape[-1] not in (3, 4) or images.shape[0] == 0:
        raise GanStudioError(
            f"expected an IMAGE batch [B, H, W, 3], got shape {tuple(images.shape)}")
    bg = parse_color(background)
    arr = (images.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    out = np.stack([decode_array(a, resolution, fit, bg) for a in arr])
    with torch.inference_mode(False):  # the graph's tensors are inference tensors
        tensor = torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()
    return ImageDataset(images=tensor, xflip=xflip, source=source, fit=fit,
                        background=_hex(bg))


def write_image_folder(dataset: ImageDataset, folder: str | os.PathLike) -> Path:
    """Save the dataset's images as PNG files that `load_image_folder` reads back unchanged
    (one subfolder per class for a class-conditional dataset). The folder appears complete
    or not at all."""
    from PIL import Image

    folder = Path(folder)
    if folder.is_dir():
        return folder
    partial = folder.with_name(f".{folder.name}.{os.getpid()}.partial")
    partial.mkdir(parents=True, exist_ok=True)
    pixels = dataset.images.permute(0, 2, 3, 1).contiguous().numpy()
    for i, hwc in enumerate(pixels):
        where = partial
        if dataset.labels is not None:
            where = partial / dataset.class_names[int(dataset.labels[i])]
            where.mkdir(exist_ok=True)
        Image.fromarray(hwc, "RGB").save(where / f"{i:06d}.png", compress_level=1)
    os.replace(partial, folder)
    return folder


def scan_folder(folder: Path) -> tuple[list[Path], list[int], list[str]]:
    """(files, label per file, class names); class names are empty for a flat folder."""
    if not folder.is_dir():
        raise GanStudioError(f"dataset folder not found: {folder}")
    loose = sorted(p for p in folder.iterdir() if _is_image(p))
    classes = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        found = sorted(p for p in sub.rglob("*") if _is_image(p)
                       and not any(part.startswith(".") for part in p.relative_to(sub).parts))
        if found:
            classes[sub.name] = found
    if loose and classes:
        raise GanStudioError(
            f"{folder} holds both loose images (e.g. {loose[0].name}) and class subfolders "
            f"(e.g. {next(iter(classes))}/). Put every image in a class subfolder for a "
            "class-conditional dataset, or every image directly in the folder for an "
            "unconditional one.")
    if loose:
        return loose, [0] * len(loose), []
    if not classes:
        raise GanStudioError(
            f"no images found in {folder} (looked for {', '.join(IMAGE_EXTENSIONS)}, directly "
            "inside it or in class subfolders)")
    files, labels = [], []
    for idx, found in enumerate(classes.values()):
        files += found
        labels += [idx] * len(found)
    return files, labels, list(classes)


def _is_image(p: Path) -> bool:
    return p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS


def _hex(rgb: RGB) -> str:
    return "#" + "".join(f"{c:02x}" for c in rgb)


def _check_settings(resolution: int, fit: str) -> None:
    if not 4 <= int(resolution) <= 4096:
        raise GanStudioError(f"training resolution must be 4..4096, got {resolution}")
    if fit not in FIT_MODES:
        raise GanStudioError(f"unknown fit mode {fit!r} (expected one of {FIT_MODES})")


def _fingerprint(images: torch.Tensor, labels: torch.Tensor | None) -> str:
    """Content hash, to notice when a resumed run is given different data."""
    h = hashlib.blake2b(digest_size=8)
    h.update(str(tuple(images.shape)).encode())
    h.update(images.contiguous().numpy().tobytes())
    if labels is not None:
        h.update(labels.contiguous().numpy().tobytes())
    return h.hexdigest()
