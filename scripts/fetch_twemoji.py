"""Fetch Twemoji 64x64 (npm emoji-datasource-twitter@16.0.0, CC-BY-4.0) as a class-per-folder
image dataset: OUT/<category>/<code>.png, one folder per Unicode emoji category.

    .venv/bin/python scripts/fetch_twemoji.py data/twemoji64

Uses `npm pack` (the npm registry), keeps the tarball in a cache folder, and is idempotent.
Base emoji only (no skin-tone variants, which are near-copies of "People & Body"); the
"Component" category (five skin-tone/hair swatches, not pictures) is left out: 9 classes.
Images are by Twitter, Inc. and other contributors, licensed CC-BY-4.0.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "emoji-datasource-twitter@16.0.0"
TARBALL = "emoji-datasource-twitter-16.0.0.tgz"
SKIPPED_CATEGORIES = {"Component"}


def folder_name(category: str) -> str:
    return category.replace(" & ", "_and_").replace(" ", "_").lower()


def fetch(out: Path, cache: Path) -> Path:
    if (out / "ATTRIBUTION.txt").exists():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    tarball = cache / TARBALL
    if not tarball.exists():
        subprocess.run(["npm", "pack", "--silent", PACKAGE, "--pack-destination", str(cache)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".twemoji-", dir=out.parent))
    with tarfile.open(tarball) as tar:
        index = json.load(tar.extractfile("package/emoji.json"))
        members = {m.name: m for m in tar.getmembers()}
        count = 0
        for entry in sorted(index, key=lambda e: e["sort_order"]):
            if not entry.get("has_img_twitter") or entry["category"] in SKIPPED_CATEGORIES:
                continue
            member = members.get(f"package/img/twitter/64/{entry['image']}")
            if member is None:
                continue
            target = staging / folder_name(entry["category"]) / entry["image"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(member).read())
            count += 1
    (staging / "ATTRIBUTION.txt").write_text(
        f"{count} Twemoji 64x64 images from npm {PACKAGE}.\n"
        "Copyright Twitter, Inc. and other contributors. Licensed CC-BY-4.0 "
        "(https://creativecommons.org/licenses/by/4.0/).\n")
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(out)
    return out


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else "data/twemoji64").resolve()
    cache = out.parent / ".cache"
    fetch(out, cache)
    classes = sorted(p.name for p in out.iterdir() if p.is_dir())
    total = sum(len(list((out / c).glob("*.png"))) for c in classes)
    print(json.dumps({"folder": str(out), "images": total, "classes": classes}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
