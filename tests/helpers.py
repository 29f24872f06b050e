"""Small builders shared by the test layers (tiny models, prompts)."""

from __future__ import annotations

from pathlib import Path

import gan_models

TINY_DCGAN = {"resolution": 32, "z_dim": 16, "base_channels": 8, "max_channels": 32,
              "embed_dim": 8}


def tiny_dcgan(num_classes: int = 0, class_names=None, seed: int = 0) -> gan_models.GenerativeModel:
    import torch

    torch.manual_seed(seed)
    model = gan_models.GenerativeModel.create(
        "dcgan", {**TINY_DCGAN, "num_classes": num_classes}, class_names=class_names)
    if num_classes:  # a class should visibly change a random-init model's images
        torch.nn.init.normal_(model.generator.embed.weight, 0.0, 2.0)
    calibrate_batchnorm(model.generator, num_classes)
    return model


def calibrate_batchnorm(generator, num_classes: int, n: int = 64) -> None:
    """Set BatchNorm running statistics from one batch, so a random-init generator draws
    full-contrast images (with the initial running stats its outputs are nearly flat grey)."""
    import torch

    for m in generator.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average: one batch sets the statistics
    generator.train()
    with torch.no_grad():
        z = torch.randn(n, generator.z_dim)
        c = torch.eye(num_classes)[torch.arange(n) % num_classes] if num_classes else None
        generator(z, c)
    generator.eval()


def save_tiny(folder: Path, name: str, **kwargs) -> Path:
    path = Path(folder) / name
    gan_models.save_model(tiny_dcgan(**kwargs), path)
    return path
