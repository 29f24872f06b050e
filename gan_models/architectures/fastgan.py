"""FastGAN (Liu et al. 2021, "Towards Faster and Stabilized GAN Training for High-fidelity
Few-shot Image Synthesis"), sized for small images and CPUs, with optional classes.

Generator: z (+ a class embedding) -> 4x4 map (transposed conv, BN, GLU) -> up-blocks
(nearest 2x upsampling, 3x3 conv, BN, GLU) doubling the resolution -> 3x3 conv -> tanh.
Skip-layer excitation (SLE) lets a low-resolution map gate the channels of a map four
times its size (4 -> 16 px and 8 -> 32 px at 64 px output ...): a cheap long skip path.
With classes, every BatchNorm is class-conditional (a per-class gain and bias, BigGAN-style),
so the class steers every resolution, not only the input.

Discriminator: strided conv blocks (spectral norm, LeakyReLU) down to 4x4, a logit map, and
a projection term for classes (Miyato & Koyama 2018). FastGAN's self-supervision: a small
decoder rebuilds a low-resolution copy of a real image from the 8x8 feature map, so D has to
keep describing the image rather than only memorising it (`reconstruct`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ..registry import register

DEFAULTS = {"resolution": 64, "z_dim": 128, "num_classes": 0, "base_channels": 32,
            "max_channels": 256, "embed_dim": 64}


def full_config(config: dict) -> dict:
    unknown = set(config) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown FastGAN option(s) {sorted(unknown)}")
    cfg = {**DEFAULTS, **config}
    res = int(cfg["resolution"])
    if res not in (32, 64, 128, 256):
        raise ValueError(f"FastGAN resolution must be 32, 64, 128 or 256, got {res}")
    for key in ("z_dim", "base_channels", "max_channels", "embed_dim"):
        if int(cfg[key]) < 1:
            raise ValueError(f"FastGAN {key} must be positive, got {cfg[key]}")
    return cfg


def channels_at(cfg: dict, size: int) -> int:
    """Feature channels at a `size`-pixel map: base_channels at full resolution, doubling
    per halving, capped at max_channels."""
    return min(int(cfg["base_channels"]) * int(cfg["resolution"]) // size,
               int(cfg["max_channels"]))


# --- blocks ----------------------------------------------------------------------------------
class ClassNorm(nn.Module):
    """BatchNorm whose gain and bias come from the class weights (plain BN without classes)."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=not num_classes)
        if num_classes:
            self.gain = nn.Linear(num_classes, channels, bias=False)
            self.bias = nn.Linear(num_classes, channels, bias=False)
            nn.init.zeros_(self.gain.weight)
            nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        x = self.bn(x)
        if c is None or not hasattr(self, "gain"):
            return x
        c = c.to(x.dtype)
        return x * (1 + self.gain(c))[:, :, None, None] + self.bias(c)[:, :, None, None]


class UpBlock(nn.Module):
    """[B, cin, s, s] -> [B, cout, 2s, 2s]: upsample, conv to 2*cout, norm, GLU."""

    def __init__(self, cin: int, cout: int, num_classes: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout * 2, 3, padding=1, bias=False)
        self.norm = ClassNorm(cout * 2, num_classes)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        x = self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        return F.glu(self.norm(x, c), dim=1)


class SkipExcitation(nn.Module):
    """SLE: channel gates for a large map from a small one (pool to 4x4, 4x4 conv to 1x1,
    LeakyReLU, 1x1 conv, sigmoid)."""

    def __init__(self, small: int, large: int):
        super().__init__()
        self.squeeze = nn.Conv2d(small, small, 4, bias=False)
        self.excite = nn.Conv2d(small, large, 1, bias=False)

    def forward(self, small: torch.Tensor, large: torch.Tensor) -> torch.Tensor:
        gate = self.squeeze(F.adaptive_avg_pool2d(small, 4))          # [B, small, 1, 1]
        gate = torch.sigmoid(self.excite(F.leaky_relu(gate, 0.1)))    # [B, large, 1, 1]
        return large * gate


# --- generator -------------------------------------------------------------------------------
class Generator(nn.Module):
    def __init__(self, resolution, z_dim, num_classes, base_channels, max_channels, embed_dim):
        super().__init__()
        cfg = dict(resolution=resolution, base_channels=base_channels,
                   max_channels=max_channels)
        self.z_dim, self.c_dim = int(z_dim), int(num_classes)
        self.img_resolution, self.img_channels = int(resolution), 3
        in_dim = self.z_dim
        if self.c_dim:
            self.embed = nn.Linear(self.c_dim, embed_dim, bias=False)  # mixes interpolate
            in_dim += embed_dim
        c4 = channels_at(cfg, 4)
        self.init = nn.ConvTranspose2d(in_dim, c4 * 2, 4, bias=False)  # [B, 2*c4, 4, 4]
        self.init_norm = ClassNorm(c4 * 2, self.c_dim)
        self.sizes = [4 * 2 ** i for i in range(1, int(math.log2(resolution // 4)) + 1)]
        self.ups = nn.ModuleList(UpBlock(channels_at(cfg, s // 2), channels_at(cfg, s),
                                         self.c_dim) for s in self.sizes)
        # SLE pairs (source size, target size = 4x source), for targets above 8 px
        self.sle_pairs = [(s // 4, s) for s in self.sizes if s >= 16]
        self.sle = nn.ModuleList(SkipExcitation(channels_at(cfg, a), channels_at(cfg, b))
                                 for a, b in self.sle_pairs)
        self.to_rgb = nn.Conv2d(channels_at(cfg, resolution), 3, 3, padding=1)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if self.c_dim:
            if c is None:
                raise ValueError("this generator is class-conditional: pass class weights c")
            c = c.to(z.dtype)
            z = torch.cat([z, self.embed(c)], dim=1)
        else:
            c = None
        x = F.glu(self.init_norm(self.init(z[:, :, None, None]), c), dim=1)
        maps = {4: x}
        for size, up in zip(self.sizes, self.ups, strict=True):
            x = up(x, c)
            for (small, large), sle in zip(self.sle_pairs, self.sle, strict=True):
                if large == size:
                    x = sle(maps[small], x)
            maps[size] = x
        return torch.tanh(self.to_rgb(x))


# --- discriminator ---------------------------------------------------------------------------
def _sn_conv(cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0) -> nn.Module:
    return spectral_norm(nn.Conv2d(cin, cout, kernel, stride, padding))


class Discriminator(nn.Module):
    """forward(images, c) -> logits `[B, 16]` (a 4x4 logit map, flattened);
    reconstruct(images) -> (logits, rebuilt 32 px image, the 32 px target) for the
    self-supervised loss on real images."""

    RECON = 32

    def __init__(self, resolution, z_dim, num_classes, base_channels, max_channels, embed_dim):
        super().__init__()
        cfg = dict(resolution=resolution, base_channels=base_channels,
                   max_channels=max_channels)
        self.c_dim, self.img_resolution = int(num_classes), int(resolution)
        sizes = [resolution // 2 ** i for i in range(int(math.log2(resolution // 4)) + 1)]
        self.from_rgb = _sn_conv(3, channels_at(cfg, resolution), 3, 1, 1)
        self.downs = nn.ModuleList(
            _sn_conv(channels_at(cfg, s), channels_at(cfg, s // 2), 4, 2, 1) for s in sizes[:-1])
        c4, c8 = channels_at(cfg, 4), channels_at(cfg, 8)
        self.logit = _sn_conv(c4, 1, 1)
        if self.c_dim:
            self.embed = nn.Linear(self.c_dim, c4, bias=False)
        dec = []  # 8x8 features -> 32x32 RGB
        ch = c8
        for _ in range(2):
            dec += [nn.Upsample(scale_factor=2.0, mode="nearest"),
                    nn.Conv2d(ch, max(ch // 2, 8), 3, padding=1), nn.LeakyReLU(0.2)]
            ch = max(ch // 2, 8)
        self.decoder = nn.Sequential(*dec, nn.Conv2d(ch, 3, 3, padding=1), nn.Tanh())

    def _features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.leaky_relu(self.from_rgb(images), 0.2)
        f8 = x
        for down in self.downs:
            x = F.leaky_relu(down(x), 0.2)
            if x.shape[-1] == 8:
                f8 = x
        return x, f8                                                   # [B, c4, 4, 4], 8x8

    def _logits(self, h: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        logits = self.logit(h).flatten(1)                              # [B, 16]
        if self.c_dim and c is not None:
            proj = (self.embed(c.to(h.dtype))[:, :, None, None] * h).sum(1).flatten(1)
            logits = logits + proj / math.sqrt(h.shape[1])
        return logits

    def forward(self, images: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return self._logits(self._features(images)[0], c)

    def reconstruct(self, images: torch.Tensor, c: torch.Tensor | None = None):
        h, f8 = self._features(images)
        target = F.interpolate(images, size=(self.RECON, self.RECON), mode="bilinear",
                               align_corners=False, antialias=True)
        return self._logits(h, c), self.decoder(f8), target


@register("fastgan")
def build(config: dict) -> dict[str, nn.Module]:
    cfg = full_config(config)
    return {"generator": Generator(**cfg), "discriminator": Discriminator(**cfg)}
