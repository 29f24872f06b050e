"""Small builders shared by the test layers (tiny models, prompts)."""

from __future__ import annotations

from pathlib import Path

import gan_models
from gan_models.architectures.dcgan import calibrate_batchnorm

TINY_DCGAN = {"resolution": 32, "z_dim": 16, "base_channels": 8, "max_channels": 32,
              "embed_dim": 8}


def tiny_dcgan(num_classes: int = 0, class_names=None, seed: int = 0) -> gan_models.GenerativeModel:
    import torch

    torch.manual_seed(seed)
    model = gan_models.GenerativeModel.create(
        "dcgan", {**TINY_DCGAN, "num_classes": num_classes}, class_names=class_names)
    if num_classes:  # a class should visibly change a random-init model's images
        torch.nn.init.normal_(model.generator.embed.weight, 0.0, 2.0)
    calibrate_batchnorm(model.generator)
    return model


def save_tiny(folder: Path, name: str, **kwargs) -> Path:
    path = Path(folder) / name
    gan_models.save_model(tiny_dcgan(**kwargs), path)
    return path
