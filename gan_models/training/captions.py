"""Captioned image datasets, for text-to-image recipes.

On disk, a folder of images (searched recursively, hidden files skipped) with one caption
per image, from the first of:
  * `captions.json` in the folder: {"relative/path.png": "a caption", ...}
  * `captions.csv` in the folder: rows `file,caption` (a header row `file,caption` is allowed)
  * a `.txt` file beside each image with the same stem (`cat.png` + `cat.txt`)
An image without a caption is refused, naming it. A batch is the images and the index of
each image's caption in `captions` (the recipe turns captions into words).
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..errors import GanStudioError
from .datasets import ImageDataset, Progress, _check_settings, _hex, _is_image
from .decode import RGB, decode_file, parse_color

MAP_FILES = ("captions.json", "captions.csv")
MAX_CAPTION_CHARS = 2000


@dataclass(frozen=True, eq=False)
class CaptionedDataset(ImageDataset):
    """images `[N, 3, R, R]` uint8 and one caption per image."""

    captions: tuple[str, ...] = ()
    kind: str = "captioned"

    def __post_init__(self):
        if len(self.captions) != len(self.images):
            raise GanStudioError(f"{len(self.captions)} captions for {len(self.images)} images")
        if not self.fingerprint:
            from .datasets import _fingerprint
            text = "\n".join(self.captions).encode()
            caps = torch.frombuffer(bytearray(text), dtype=torch.uint8) if text else None
            object.__setattr__(self, "fingerprint", _fingerprint(self.images, caps))
        super().__post_init__()

    def describe(self) -> str:
        return f"{len(self)} captioned images {self.resolution}px from {self.source or 'memory'}"

    def batch(self, indices: torch.Tensor, flips: torch.Tensor | None,
              device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """Images `[n, 3, R, R]` float32 in [-1, 1] and caption indices `[n]` (int64)."""
        x, _ = ImageDataset.batch(self, indices, flips, device)
        return x, indices.to(torch.int64)

    def detached(self) -> "CaptionedDataset":
        with torch.inference_mode(False):
            return replace(self, images=self.images.clone())

    def write_folder(self, folder: str | os.PathLike) -> Path:
        """Save as PNG + .txt pairs that `load_captioned_folder` reads back unchanged; the
        folder appears complete or not at all."""
        from PIL import Image

        folder = Path(folder)
        if folder.is_dir():
            return folder
        partial = folder.with_name(f".{folder.name}.{os.getpid()}.partial")
        partial.mkdir(parents=True, exist_ok=True)
        for i, hwc in enumerate(self.images.permute(0, 2, 3, 1).contiguous().numpy()):
            Image.fromarray(hwc, "RGB").save(partial / f"{i:06d}.png", compress_level=1)
            (partial / f"{i:06d}.txt").write_text(self.captions[i] + "\n", encoding="utf-8")
        os.replace(partial, folder)
        return folder


def read_captions(folder: Path, files: list[Path]) -> list[str]:
    """One caption per file, from the folder's map file or the .txt files beside them."""
    keys = [f.relative_to(folder).as_posix() for f in files]
    table = None
    if (folder / "captions.json").is_file():
        try:
            table = json.loads((folder / "captions.json").read_text(encoding="utf-8"))
        except ValueError as exc:
            raise GanStudioError(f"{folder.name}/captions.json is not valid JSON: {exc}") from None
        if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
            raise GanStudioError(f"{folder.name}/captions.json must map file names to captions")
    elif (folder / "captions.csv").is_file():
        with open(folder / "captions.csv", newline="", encoding="utf-8") as fh:
            rows = [r for r in csv.reader(fh) if r]
        if rows and [c.strip().lower() for c in rows[0][:2]] == ["file", "caption"]:
            rows = rows[1:]
        bad = [r for r in rows if len(r) < 2]
        if bad:
            raise GanStudioError(f"{folder.name}/captions.csv: row {bad[0]!r} is not "
                                 "file,caption")
        table = {r[0].strip(): ",".join(r[1:]).strip() for r in rows}
    captions = []
    for f, key in zip(files, keys, strict=True):
        if table is not None:
            text = table.get(key)
        else:
            txt = f.with_suffix(".txt")
            text = txt.read_text(encoding="utf-8") if txt.is_file() else None
        if text is None:
            where = "captions map" if table is not None else f"{f.with_suffix('.txt').name} file"
            raise GanStudioError(f"image {key} has no caption (no entry in the {where}); "
                                 "give every image a caption")
        text = " ".join(text.split())
        if not text or len(text) > MAX_CAPTION_CHARS:
            raise GanStudioError(f"the caption of {key} is {'empty' if not text else 'longer'}"
                                 f"{'' if not text else f' than {MAX_CAPTION_CHARS} characters'}")
        captions.append(text)
    return captions


def is_captioned_folder(folder: str | os.PathLike) -> bool:
    """A folder with a captions map, or whose first image has a .txt beside it."""
    folder = Path(folder)
    if any((folder / name).is_file() for name in MAP_FILES):
        return True
    first = next(iter(_image_files(folder)), None) if folder.is_dir() else None
    return first is not None and first.with_suffix(".txt").is_file()


def load_captioned_folder(folder: str | os.PathLike, resolution: int, fit: str = "crop",
                          background: RGB | str = (255, 255, 255), xflip: bool = False,
                          on_progress: Progress | None = None) -> CaptionedDataset:
    folder = Path(folder)
    _check_settings(resolution, fit)
    if not folder.is_dir():
        raise GanStudioError(f"dataset folder not found: {folder}")
    files = _image_files(folder)
    if not files:
        raise GanStudioError(f"no images found in {folder}")
    captions = read_captions(folder, files)
    bg = parse_color(background)
    images = np.empty((len(files), resolution, resolution, 3), dtype=np.uint8)
    for i, f in enumerate(files):
        images[i] = decode_file(f, resolution, fit, bg, f.relative_to(folder).as_posix())
        if on_progress is not None:
            on_progress(i + 1, len(files))
    return CaptionedDataset(
        images=torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
        captions=tuple(captions), xflip=xflip, source=folder.name,
        folder=os.path.abspath(folder), fit=fit, background=_hex(bg))


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if _is_image(p)
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))
