"""Write gan_models/data/imagenet_classes.txt: the 1,000 ImageNet class names, one per line
in class-index order (torchvision's list), for imported ImageNet models such as BigGAN.

The library reads the text file and never needs torchvision; run this only to rebuild it:
    python scripts/imagenet_classes.py
"""

from __future__ import annotations

from pathlib import Path

from torchvision.models._meta import _IMAGENET_CATEGORIES

OUT = Path(__file__).resolve().parent.parent / "gan_models" / "data" / "imagenet_classes.txt"


def main() -> None:
    names = list(_IMAGENET_CATEGORIES)
    if len(names) != 1000 or len(set(names)) != 1000:
        raise SystemExit("expected 1,000 distinct ImageNet class names")
    OUT.write_text("\n".join(names) + "\n", encoding="utf-8")
    print(f"wrote {len(names)} names to {OUT.name}")


if __name__ == "__main__":
    main()
