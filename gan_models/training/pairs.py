"""Datasets for image-to-image training: two sides, A (the input) and B (the target).

    paired     pix2pix: image i of A belongs to image i of B. On disk: a folder with A/ and B/
               subfolders whose files have matching names (extensions may differ), or
               side-by-side images directly in the folder (left half A, right half B).
    unpaired   CycleGAN: two collections, A/ and B/ (or trainA/ and trainB/), any names and
               counts; a batch takes A[i % |A|] and B[i % |B|].
    style      fast style transfer: content images in content/ and one style image named
               style.<ext> next to it.

A batch is `[n, 6, R, R]` in [-1, 1]: A's RGB then B's RGB (a mirrored image is mirrored on
both sides), so the training loop serves it like any other batch and a recipe splits it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import GanStudioError
from .datasets import ImageDataset, _check_settings, _fingerprint, _hex, _is_image
from .decode import RGB, decode_array, decode_file, parse_color, to_rgb

KINDS = ("paired", "unpaired", "style")
SIDE_NAMES = (("A", "B"), ("trainA", "trainB"))


@dataclass(frozen=True, eq=False)
class PairedDataset(ImageDataset):
    """images: the A side `[N, 3, R, R]` uint8; targets: the B side `[M, 3, R, R]` uint8
    (M = N when paired, M = 1 for a style image)."""

    targets: torch.Tensor | None = None
    kind: str = "paired"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise GanStudioError(f"unknown pairing {self.kind!r} (expected one of {KINDS})")
        t = self.targets
        if t is None or t.dtype != torch.uint8 or t.dim() != 4 or t.shape[1] != 3 or not len(t):
            raise GanStudioError("a paired dataset needs its B side as uint8 [M, 3, R, R]")
        if t.shape[-2:] != self.images.shape[-2:]:
            raise GanStudioError(f"the two sides differ in size: {tuple(self.images.shape)} "
                                 f"and {tuple(t.shape)}")
        if self.kind == "paired" and len(t) != len(self.images):
            raise GanStudioError(f"{len(self.images)} A images but {len(t)} B images")
        if not self.fingerprint:
            h = hashlib.blake2b(digest_size=8)
            h.update(f"{self.kind} {_fingerprint(self.images, None)}".encode())
            h.update(_fingerprint(t, None).encode())
            object.__setattr__(self, "fingerprint", h.hexdigest())
        super().__post_init__()

    def __len__(self) -> int:
        if self.kind == "unpaired":
            return max(len(self.images), len(self.targets))
        return len(self.images)

    def describe(self) -> str:
        what = {"paired": f"{len(self.images)} pairs",
                "unpaired": f"{len(self.images)} A + {len(self.targets)} B images (unpaired)",
                "style": f"{len(self.images)} content images + 1 style image"}[self.kind]
        return f"{what} {self.resolution}px from {self.source or 'memory'}"

    def batch(self, indices: torch.Tensor, flips: torch.Tensor | None,
              device: torch.device | str = "cpu") -> tuple[torch.Tensor, None]:
        """`[n, 6, R, R]` float32 in [-1, 1]: A then B."""
        a = self.images[indices % len(self.images)]
        b = self.targets[indices % len(self.targets)]
        x = torch.cat([a, b], 1).to(device, non_blocking=True).float().div_(127.5).sub_(1.0)
        if flips is not None and bool(flips.any()):
            flips = flips.to(device)
            x = torch.where(flips[:, None, None, None], x.flip(3), x)
        return x, None

    def at_resolution(self, resolution: int) -> "PairedDataset":
        if resolution == self.resolution:
            return self
        return replace(self, images=_resize(self.images, resolution),
                       targets=_resize(self.targets, resolution), fingerprint="")

    def detached(self) -> "PairedDataset":
        with torch.inference_mode(False):
            return replace(self, images=self.images.clone(), targets=self.targets.clone())

    def preview(self, count: int = 32) -> torch.Tensor:
        """A | B side by side: `[n, R, 2R, 3]` float 0..1."""
        n = min(count, len(self))
        idx = torch.arange(n)
        pairs = torch.cat([self.images[idx % len(self.images)],
                           self.targets[idx % len(self.targets)]], 3)
        return pairs.permute(0, 2, 3, 1).float() / 255.0

    def write_folder(self, folder: str | os.PathLike) -> Path:
        """Save as the layout `load_pairs` reads back unchanged; the folder appears complete
        or not at all."""
        from PIL import Image

        folder = Path(folder)
        if folder.is_dir():
            return folder
        partial = folder.with_name(f".{folder.name}.{os.getpid()}.partial")
        names = ({"paired": ("A", "B"), "unpaired": ("A", "B"), "style": ("content", None)}
                 [self.kind])
        for side, images in zip(names, (self.images, self.targets), strict=True):
            where = partial / side if side else partial
            where.mkdir(parents=True, exist_ok=True)
            for i, hwc in enumerate(images.permute(0, 2, 3, 1).contiguous().numpy()):
                name = f"{i:06d}.png" if side else "style.png"
                Image.fromarray(hwc, "RGB").save(where / name, compress_level=1)
        os.replace(partial, folder)
        return folder


# --- reading folders ------------------------------------------------------------------------
def load_pairs(folder: str | os.PathLike, kind: str, resolution: int, fit: str = "crop",
               background: RGB | str = (255, 255, 255), xflip: bool = False) -> PairedDataset:
    """Read a folder in the layout of `kind` (see the module docstring)."""
    if kind not in KINDS:
        raise GanStudioError(f"unknown pairing {kind!r} (expected one of {KINDS})")
    folder = Path(folder)
    _check_settings(resolution, fit)
    if not folder.is_dir():
        raise GanStudioError(f"dataset folder not found: {folder}")
    bg = parse_color(background)

    def read(files: list[Path]) -> torch.Tensor:
        arr = np.stack([decode_file(f, resolution, fit, bg, f.relative_to(folder).as_posix())
                        for f in files])
        return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()

    if kind == "style":
        a_files, b_files = _style_files(folder)
    else:
        sides = _side_folders(folder)
        if sides is None and kind == "paired":
            images, targets = _side_by_side(folder, resolution, fit, bg)
            return PairedDataset(images=images, targets=targets, kind=kind, xflip=xflip,
                                 source=folder.name, folder=os.path.abspath(folder), fit=fit,
                                 background=_hex(bg))
        if sides is None:
            raise GanStudioError(
                f"{folder} needs two subfolders of images, A/ and B/ (or trainA/ and trainB/), "
                "one per domain")
        a_files, b_files = (_images_in(s) for s in sides)
        if kind == "paired":
            a_files, b_files = _matched(a_files, b_files, sides)
    return PairedDataset(images=read(a_files), targets=read(b_files), kind=kind, xflip=xflip,
                         source=folder.name, folder=os.path.abspath(folder), fit=fit,
                         background=_hex(bg))


def pairs_from_images(a: torch.Tensor, b: torch.Tensor, kind: str, resolution: int,
                      fit: str = "crop", background: RGB | str = (255, 255, 255),
                      xflip: bool = False, source: str = "IMAGE batches") -> PairedDataset:
    """From ComfyUI IMAGE batches `[B, H, W, 3|4]` 0..1: A and B (paired: same count;
    style: B is the style image)."""
    _check_settings(resolution, fit)
    bg = parse_color(background)
    sides = []
    for name, images in (("A", a), ("B", b)):
        if images.dim() != 4 or images.shape[-1] not in (3, 4) or images.shape[0] == 0:
            raise GanStudioError(f"expected an IMAGE batch [B, H, W, 3] for {name}, got shape "
                                 f"{tuple(images.shape)}")
        arr = (images.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
        out = np.stack([decode_array(x, resolution, fit, bg) for x in arr])
        with torch.inference_mode(False):
            sides.append(torch.from_numpy(out).permute(0, 3, 1, 2).contiguous())
    if kind == "style":
        sides[1] = sides[1][:1]
    return PairedDataset(images=sides[0], targets=sides[1], kind=kind, xflip=xflip,
                         source=source, fit=fit, background=_hex(bg))


def _images_in(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if _is_image(p)
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    if not files:
        raise GanStudioError(f"no images found in {folder}")
    return files


def _side_folders(folder: Path) -> tuple[Path, Path] | None:
    for a, b in SIDE_NAMES:
        if (folder / a).is_dir() and (folder / b).is_dir():
            return folder / a, folder / b
    return None


def _matched(a_files: list[Path], b_files: list[Path], sides) -> tuple[list[Path], list[Path]]:
    """Pairs by relative path without extension; every file must have its partner."""
    def key(p: Path, root: Path) -> str:
        return p.relative_to(root).with_suffix("").as_posix()

    b_by = {key(p, sides[1]): p for p in b_files}
    a_by = {key(p, sides[0]): p for p in a_files}
    lonely = sorted(set(a_by) ^ set(b_by))
    if lonely:
        where = "A" if lonely[0] in a_by else "B"
        raise GanStudioError(
            f"{len(lonely)} image(s) have no partner with the same name on the other side, "
            f"e.g. {lonely[0]} in {where} ({sides[0].name}/ and {sides[1].name}/ must hold "
            "matching file names)")
    keys = sorted(a_by)
    return [a_by[k] for k in keys], [b_by[k] for k in keys]


def _side_by_side(folder: Path, resolution: int, fit: str, bg: RGB
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    from PIL import Image

    files = sorted(p for p in folder.iterdir() if _is_image(p))
    if not files:
        raise GanStudioError(
            f"no pairs found in {folder}: give A/ and B/ subfolders with matching file names, "
            "or side-by-side images (left half the input, right half the target)")
    a, b = [], []
    for f in files:
        try:
            with Image.open(f) as img:
                img.load()
                rgb = np.asarray(to_rgb(img, bg), dtype=np.uint8)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise GanStudioError(f"cannot read image {f.name}: {exc}") from None
        h, w = rgb.shape[:2]
        if w < 2 or w % 2:
            raise GanStudioError(f"{f.name} is {w}x{h}: a side-by-side pair needs an even width "
                                 "(left half the input, right half the target)")
        a.append(decode_array(np.ascontiguousarray(rgb[:, :w // 2]), resolution, fit, bg))
        b.append(decode_array(np.ascontiguousarray(rgb[:, w // 2:]), resolution, fit, bg))
    return (torch.from_numpy(np.stack(a)).permute(0, 3, 1, 2).contiguous(),
            torch.from_numpy(np.stack(b)).permute(0, 3, 1, 2).contiguous())


def _style_files(folder: Path) -> tuple[list[Path], list[Path]]:
    styles = sorted(p for p in folder.iterdir() if _is_image(p) and p.stem == "style")
    if len(styles) != 1 or not (folder / "content").is_dir():
        raise GanStudioError(
            f"{folder} needs one style image named style.<ext> (found {len(styles)}) and a "
            "content/ folder of training images")
    return _images_in(folder / "content"), styles


def _resize(images: torch.Tensor, resolution: int) -> torch.Tensor:
    x = F.interpolate(images.float(), size=(resolution, resolution), mode="bilinear",
                      antialias=True, align_corners=False)
    return x.round_().clamp_(0, 255).to(torch.uint8)


DATA_WORDS = {"images": "a folder of images (Training Dataset)",
              "paired": "pairs (Paired Dataset, pairing paired)",
              "unpaired": "two collections (Paired Dataset, pairing unpaired)",
              "style": "content images and a style image (Paired Dataset, pairing style)",
              "captioned": "captioned images (a caption .txt beside each image, or a "
                           "captions.json / captions.csv map)"}


def check_data_kind(recipe: str, wants: str, dataset) -> None:
    """Refuse data of the wrong kind for a recipe (unpaired recipes also take pairs)."""
    have = getattr(dataset, "kind", "images")
    if have != wants and not (wants == "unpaired" and have == "paired"):
        raise GanStudioError(f"recipe {recipe} trains on {DATA_WORDS[wants]}; this dataset is "
                             f"{DATA_WORDS[have]}")
