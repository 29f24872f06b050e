"""Convolutional VAE (Kingma & Welling 2014), also the beta-VAE and the conditional VAE.

One family serves all three: beta, capacity and KL schedules are training choices (see
`gan_models.vae_losses` and the recipes), and `num_classes > 0` makes the model conditional.

    encoder: image [B, C, R, R] -> stem conv -> (res blocks, stride-2 conv) per level down to
             4x4 -> flatten (+ class embedding) -> linear -> mean, logvar [B, z_dim] each
    decoder: z (+ class embedding) -> linear -> [B, ch, 4, 4] -> (upsample + conv,
             res blocks) per level -> conv -> tanh image [B, C, R, R]

The decoder is the model's "generator" (it follows the generator contract in model.py), so
every sampling and interpolation node drives it. Class conditioning goes through a linear
layer on class weights, so mixed classes (e.g. 0.7 cat + 0.3 dog) are meaningful inputs.
GroupNorm (not BatchNorm) keeps every sample independent of its batch.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..registry import register

RESOLUTIONS = (16, 32, 64, 128, 256)
DEFAULTS = {"resolution": 64, "z_dim": 64, "num_classes": 0, "channels": 3,
            "base_channels": 32, "max_channels": 256, "embed_dim": 32, "res_blocks": 1}
LOGVAR_RANGE = (-30.0, 20.0)  # keeps exp(logvar) finite early in training


# --- building blocks (shared with vqvae.py) -----------------------------------------------
def norm(ch: int) -> nn.GroupNorm:
    """GroupNorm with up to 32 groups of at least 4 channels (1 group for tiny layers)."""
    groups = max(g for g in (1, 2, 4, 8, 16, 32) if ch % g == 0 and g * 4 <= max(ch, 4))
    return nn.GroupNorm(groups, ch)


class ResBlock(nn.Module):
    """x + conv(act(norm(conv(act(norm(x)))))); channel count unchanged."""

    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(norm(ch), nn.SiLU(), nn.Conv2d(ch, ch, 3, padding=1),
                                  norm(ch), nn.SiLU(), nn.Conv2d(ch, ch, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def down(cin: int, cout: int) -> nn.Module:
    """Halve the resolution: [B, cin, r, r] -> [B, cout, r/2, r/2]."""
    return nn.Sequential(nn.Conv2d(cin, cout, 4, stride=2, padding=1), nn.SiLU())


def up(cin: int, cout: int) -> nn.Module:
    """Double the resolution (nearest + conv, free of transposed-conv checkerboards)."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                         nn.Conv2d(cin, cout, 3, padding=1), norm(cout), nn.SiLU())


def level_channels(base: int, maximum: int, level: int) -> int:
    """Feature channels after `level` halvings of the resolution."""
    return min(base * 2 ** level, maximum)


# --- config -------------------------------------------------------------------------------
def full_config(config: dict) -> dict:
    unknown = set(config) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown VAE option(s) {sorted(unknown)}")
    cfg = {**DEFAULTS, **config}
    if cfg["resolution"] not in RESOLUTIONS:
        raise ValueError(f"VAE resolution must be one of {RESOLUTIONS}, got {cfg['resolution']}")
    if cfg["channels"] not in (1, 3, 4):
        raise ValueError(f"VAE channels must be 1, 3 or 4, got {cfg['channels']}")
    for key in ("z_dim", "base_channels", "max_channels", "embed_dim"):
        if int(cfg[key]) < 1:
            raise ValueError(f"{key} must be at least 1, got {cfg[key]}")
    if int(cfg["num_classes"]) < 0 or int(cfg["res_blocks"]) < 0:
        raise ValueError("num_classes and res_blocks must not be negative")
    return cfg


# --- networks -----------------------------------------------------------------------------
class Encoder(nn.Module):
    def __init__(self, resolution, z_dim, num_classes, channels, base_channels, max_channels,
                 embed_dim, res_blocks):
        super().__init__()
        self.z_dim, self.c_dim = z_dim, num_classes
        self.img_resolution, self.img_channels = resolution, channels
        levels = int(math.log2(resolution // 4))
        ch = [level_channels(base_channels, max_channels, i) for i in range(levels + 1)]
        layers: list[nn.Module] = [nn.Conv2d(channels, ch[0], 3, padding=1)]
        for i in range(levels):
            layers += [ResBlock(ch[i]) for _ in range(res_blocks)]
            layers.append(down(ch[i], ch[i + 1]))
        layers += [norm(ch[-1]), nn.SiLU()]
        self.features = nn.Sequential(*layers)  # -> [B, ch[-1], 4, 4]
        flat = ch[-1] * 16
        if num_classes:
            self.embed = nn.Linear(num_classes, embed_dim, bias=False)
            flat += embed_dim
        self.out = nn.Linear(flat, 2 * z_dim)

    def forward(self, images: torch.Tensor, c: torch.Tensor | None = None):
        h = self.features(images).flatten(1)
        if self.c_dim:
            if c is None:
                raise ValueError("this encoder is class-conditional: pass class weights c")
            h = torch.cat([h, self.embed(c.to(h.dtype))], dim=1)
        mean, logvar = self.out(h).chunk(2, dim=1)
        return mean, logvar.clamp(*LOGVAR_RANGE)


class Decoder(nn.Module):
    def __init__(self, resolution, z_dim, num_classes, channels, base_channels, max_channels,
                 embed_dim, res_blocks):
        super().__init__()
        self.z_dim, self.c_dim = z_dim, num_classes
        self.img_resolution, self.img_channels = resolution, channels
        levels = int(math.log2(resolution // 4))
        ch = [level_channels(base_channels, max_channels, i) for i in range(levels + 1)]
        in_dim = z_dim
        if num_classes:
            self.embed = nn.Linear(num_classes, embed_dim, bias=False)
            in_dim += embed_dim
        self.bottom = ch[-1]
        self.fc = nn.Linear(in_dim, ch[-1] * 16)
        layers: list[nn.Module] = []
        for i in range(levels, 0, -1):
            layers.append(up(ch[i], ch[i - 1]))
            layers += [ResBlock(ch[i - 1]) for _ in range(res_blocks)]
        layers += [norm(ch[0]), nn.SiLU(), nn.Conv2d(ch[0], channels, 3, padding=1)]
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        x = z
        if self.c_dim:
            if c is None:
                raise ValueError("this decoder is class-conditional: pass class weights c")
            x = torch.cat([z, self.embed(c.to(z.dtype))], dim=1)
        x = self.fc(x).view(-1, self.bottom, 4, 4)
        return torch.tanh(self.body(x))


def reparameterize(mean: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """z = mean + sigma * eps, with eps drawn by the caller (seeded, reproducible)."""
    return mean + eps * torch.exp(0.5 * logvar)


@register("vae")
def build(config: dict) -> dict[str, nn.Module]:
    cfg = full_config(config)
    return {"generator": Decoder(**cfg), "encoder": Encoder(**cfg)}
