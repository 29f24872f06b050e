"""Build a captioned Twemoji set (npm emoji-datasource-twitter@16.0.0, CC-BY-4.0) for
text-to-image training, from the package's own metadata:

    .venv/bin/python scripts/fetch_twemoji_captions.py ~/data/twemoji_captions

OUT/train/<code>.png + <code>.txt     the images the model trains on, a caption beside each
OUT/heldout/<code>.png + <code>.txt   about 10 % of each category, never trained on
OUT/captions.json                     {"train/<code>.png": caption, ...} for both splits
OUT/labels.json                       {"train/<code>.png": {"category", "subcategory"}, ...}
                                      (for measuring text faithfulness, not for training)

A caption is the lower-case words of the emoji's name, its short names, its sub-category
and its category: "smiling cat face with heart-shaped eyes, heart eyes cat, cat face,
animals and nature". The held-out split is deterministic (a hash of the image name ranks
the emoji of each category) and stratified by category. Base emoji only, without the
"Component" category, as in fetch_twemoji.py. Idempotent.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from fetch_twemoji import PACKAGE, SKIPPED_CATEGORIES, TARBALL, folder_name

HELDOUT_SHARE = 0.1
REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / "data" / ".cache"


def tarball(cache: Path = CACHE) -> Path:
    """The npm tarball, fetched with `npm pack` when it is not cached yet."""
    path = cache / TARBALL
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "pack", "--silent", PACKAGE, "--pack-destination", str(cache)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return path


def phrase(text: str) -> str:
    """'heart_eyes_cat' / 'cat-face' / 'Animals & Nature' -> 'heart eyes cat' / ... """
    text = text.lower().replace("&", "and").replace("_", " ").replace("-", " ")
    return " ".join(text.replace(":", " ").replace(",", " ").split())


def caption(entry: dict) -> str:
    # The name keeps its hyphens ("heart-shaped"): the word encoder splits on them anyway.
    parts = [" ".join(entry["name"].lower().replace(",", " ").split())]
    parts += [phrase(s) for s in entry.get("short_names", [])]
    parts += [phrase(entry["subcategory"]), phrase(entry["category"])]
    unique = []
    for p in parts:
        if p and p not in unique:
            unique.append(p)
    return ", ".join(unique)


def split(entries: list[dict]) -> dict[str, str]:
    """image -> 'train' or 'heldout': per category, the emoji whose name hashes lowest."""
    by_category: dict[str, list[dict]] = {}
    for e in entries:
        by_category.setdefault(e["category"], []).append(e)
    where = {}
    for members in by_category.values():
        ranked = sorted(members, key=lambda e: hashlib.sha256(e["image"].encode()).hexdigest())
        held = max(1, round(len(ranked) * HELDOUT_SHARE))
        for i, e in enumerate(ranked):
            where[e["image"]] = "heldout" if i < held else "train"
    return where


def build(out: Path, cache: Path = CACHE) -> Path:
    if (out / "captions.json").exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".twemoji-captions-", dir=out.parent))
    with tarfile.open(tarball(cache)) as tar:
        index = json.load(tar.extractfile("package/emoji.json"))
        members = {m.name: m for m in tar.getmembers()}
        entries = [e for e in sorted(index, key=lambda e: e["sort_order"])
                   if e.get("has_img_twitter") and e["category"] not in SKIPPED_CATEGORIES
                   and f"package/img/twitter/64/{e['image']}" in members]
        where = split(entries)
        captions, labels = {}, {}
        for e in entries:
            key = f"{where[e['image']]}/{e['image']}"
            target = staging / key
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(members[f"package/img/twitter/64/{e['image']}"])
                               .read())
            captions[key] = caption(e)
            target.with_suffix(".txt").write_text(captions[key] + "\n")
            labels[key] = {"category": folder_name(e["category"]),
                           "subcategory": e["subcategory"]}
    (staging / "labels.json").write_text(json.dumps(labels, indent=1) + "\n")
    (staging / "ATTRIBUTION.txt").write_text(
        f"{len(entries)} Twemoji 64x64 images with captions from npm {PACKAGE}.\n"
        "Copyright Twitter, Inc. and other contributors. Licensed CC-BY-4.0 "
        "(https://creativecommons.org/licenses/by/4.0/).\n")
    (staging / "captions.json").write_text(json.dumps(captions, indent=1) + "\n")
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    return out


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else "~/data/twemoji_captions").expanduser().resolve()
    build(out)
    captions = json.loads((out / "captions.json").read_text())
    counts = {s: sum(1 for k in captions if k.startswith(s + "/")) for s in ("train", "heldout")}
    print(json.dumps({"folder": str(out), **counts, "example": next(iter(captions.values()))}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
