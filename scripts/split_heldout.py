"""Split a class-per-folder image dataset into train and held-out folders, deterministically.

    .venv/bin/python scripts/split_heldout.py data/twemoji64 data/twemoji64_vae [--fraction 0.1]

writes OUT/train/<class>/... and OUT/heldout/<class>/... (hard links where the file system
allows, copies otherwise). Stratified: each class folder gives round(fraction * its size)
images (at least one) to the held-out side. Which ones is decided by the SHA-256 of the file
names alone (the lowest hashes of each class are held out), so the split is the same on every
machine and in any file order. Files at the top level (e.g. ATTRIBUTION.txt) are copied to
both sides. Idempotent: files already in OUT are left as they are.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
from pathlib import Path

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


def held_out_names(names: list[str], fraction: float) -> set[str]:
    """The names a class gives to the held-out side: the lowest name hashes."""
    count = max(1, round(fraction * len(names))) if names else 0
    ranked = sorted(names, key=lambda n: hashlib.sha256(n.encode()).hexdigest())
    return set(ranked[:count])


def split(source: Path, out: Path, fraction: float = 0.1) -> dict[str, dict[str, int]]:
    """Write the split; returns {class: {"train": n, "heldout": n}}."""
    if not 0 < fraction < 1:
        raise SystemExit(f"fraction must be between 0 and 1, got {fraction}")
    classes = sorted(p for p in source.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise SystemExit(f"{source} has no class folders")
    counts: dict[str, dict[str, int]] = {}
    for folder in classes:
        names = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        held = held_out_names(names, fraction)
        counts[folder.name] = {"train": len(names) - len(held), "heldout": len(held)}
        for name in names:
            side = "heldout" if name in held else "train"
            _place(folder / name, out / side / folder.name / name)
    for extra in sorted(p for p in source.iterdir() if p.is_file()):
        for side in ("train", "heldout"):
            _place(extra, out / side / extra.name)
    return counts


def _place(src: Path, dst: Path) -> None:
    if dst.exists():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed
        shutil.copy2(src, dst)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path, help="class-per-folder dataset")
    parser.add_argument("out", type=Path, help="folder for train/ and heldout/")
    parser.add_argument("--fraction", type=float, default=0.1, help="held-out share per class")
    args = parser.parse_args(argv)
    counts = split(args.source, args.out, args.fraction)
    for name, c in counts.items():
        print(f"{name:24s} train {c['train']:5d}  heldout {c['heldout']:4d}")
    total = {k: sum(c[k] for c in counts.values()) for k in ("train", "heldout")}
    print(f"{'total':24s} train {total['train']:5d}  heldout {total['heldout']:4d}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
