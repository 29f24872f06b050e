"""DCGAN (Radford et al. 2015) and its class-conditional variant.

Generator: z (+ class embedding) -> 4x4 feature map -> stride-2 transposed convs with
BatchNorm + ReLU, doubling resolution and halving channels -> tanh image.
Discriminator: the mirror image with LeakyReLU; class-conditional through a projection
term (Miyato & Koyama 2018), which also accepts soft (mixed) class vectors.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..registry import register

DEFAULTS = {"resolution": 64, "z_dim": 128, "num_classes": 0, "channels": 3,
            "base_channels": 64, "max_channels": 512, "embed_dim": 128}


def full_config(config: dict) -> dict:
    unknown = set(config) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown DCGAN option(s) {sorted(unknown)}")
    cfg = {**DEFAULTS, **config}
    res = cfg["resolution"]
    if res not in (32, 64, 128, 256):
        raise ValueError(f"DCGAN resolution must be 32, 64, 128 or 256, got {res}")
    return cfg


def _channels(cfg: dict, level: int) -> int:
    """Feature channels at resolution 4 * 2**level (wide at 4x4, base_channels at the top)."""
    top = int(math.log2(cfg["resolution"] // 4))
    return min(cfg["base_channels"] * 2 ** (top - level), cfg["max_channels"])


class Generator(nn.Module):
    def __init__(self, resolution, z_dim, num_classes, channels, base_channels, max_channels,
                 embed_dim):
        super().__init__()
        cfg = locals()
        self.z_dim, self.c_dim = z_dim, num_classes
        self.img_resolution, self.img_channels = resolution, channels
        levels = int(math.log2(resolution // 4))
        in_dim = z_dim
        if num_classes:
            # Linear on class weights (not nn.Embedding) so mixed classes interpolate.
            self.embed = nn.Linear(num_classes, embed_dim, bias=False)
            in_dim += embed_dim
        c0 = _channels(cfg, 0)
        self.stem = nn.Sequential(  # [B, in_dim, 1, 1] -> [B, c0, 4, 4]
            nn.ConvTranspose2d(in_dim, c0, 4, 1, 0, bias=False), nn.BatchNorm2d(c0), nn.ReLU(True))
        blocks = []
        for level in range(1, levels):
            cin, cout = _channels(cfg, level - 1), _channels(cfg, level)
            blocks += [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(cout), nn.ReLU(True)]
        self.blocks = nn.Sequential(*blocks)
        self.to_rgb = nn.ConvTranspose2d(_channels(cfg, levels - 1), channels, 4, 2, 1)
        self.apply(_init_weights)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        x = z
        if self.c_dim:
            if c is None:
                raise ValueError("this generator is class-conditional: pass class weights c")
            x = torch.cat([z, self.embed(c.to(z.dtype))], dim=1)
        x = self.stem(x[:, :, None, None])
        return torch.tanh(self.to_rgb(self.blocks(x)))


class Discriminator(nn.Module):
    def __init__(self, resolution, z_dim, num_classes, channels, base_channels, max_channels,
                 embed_dim):
        super().__init__()
        cfg = locals()
        self.c_dim, self.img_resolution = num_classes, resolution
        levels = int(math.log2(resolution // 4))
        layers = [nn.Conv2d(channels, _channels(cfg, levels - 1), 4, 2, 1),
                  nn.LeakyReLU(0.2, True)]
        for level in range(levels - 1, 0, -1):
            cin, cout = _channels(cfg, level), _channels(cfg, level - 1)
            # No BatchNorm: it couples samples in a batch and breaks gradient penalties.
            layers += [nn.Conv2d(cin, cout, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        self.features = nn.Sequential(*layers)  # -> [B, c0, 4, 4]
        c0 = _channels(cfg, 0)
        self.out = nn.Linear(c0 * 16, 1)
        if num_classes:
            self.embed = nn.Linear(num_classes, c0 * 16, bias=False)
        self.apply(_init_weights)

    def forward(self, images: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(images).flatten(1)
        logits = self.out(h).squeeze(1)
        if self.c_dim and c is not None:
            logits = logits + (self.embed(c.to(h.dtype)) * h).sum(1)
        return logits


@torch.no_grad()
def calibrate_batchnorm(generator: Generator, n: int = 64, seed: int = 0) -> None:
    """Set BatchNorm running statistics from one batch of random latents (and classes).

    A freshly initialised generator keeps the default running stats, so in eval mode its
    images are almost flat grey; untrained demo and test models call this to draw
    full-contrast images. Trained models never need it.
    """
    gen = torch.Generator().manual_seed(seed)
    for m in generator.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average: this one batch sets the statistics
    z = torch.randn(n, generator.z_dim, generator=gen)
    c = None
    if generator.c_dim:
        c = torch.eye(generator.c_dim)[torch.arange(n) % generator.c_dim]
    was_training = generator.training
    generator.train()
    generator(z, c)
    generator.train(was_training)
    for m in generator.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 0.1


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


@register("dcgan")
def build(config: dict) -> dict[str, nn.Module]:
    cfg = full_config(config)
    return {"generator": Generator(**cfg), "discriminator": Discriminator(**cfg)}
