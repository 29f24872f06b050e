"""Small builders shared by the test layers (tiny models, prompts)."""

from __future__ import annotations

from pathlib import Path

import gan_models

TINY_DCGAN = {"resolution": 32, "z_dim": 16, "base_channels": 8, "max_channels": 32,
              "embed_dim": 8}


def tiny_dcgan(num_classes: int = 0, class_names=None, seed: int = 0) -> gan_models.GenerativeModel:
    import torch

    torch.manual_seed(seed)
    return gan_models.GenerativeModel.create(
        "dcgan", {**TINY_DCGAN, "num_classes": num_classes}, class_names=class_names)


def save_tiny(folder: Path, name: str, **kwargs) -> Path:
    path = Path(folder) / name
    gan_models.save_model(tiny_dcgan(**kwargs), path)
    return path
