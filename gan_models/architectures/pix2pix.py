"""pix2pix (Isola et al. 2017) and CycleGAN (Zhu et al. 2017) networks.

Parameter names follow the public pix2pix/CycleGAN code, so a `latest_net_G.pth` state dict
loads as it is:
  ResNet generator   model.1 (7x7 conv), model.4 / model.7 (stride-2 convs),
                     model.10.conv_block.{1,5} ... (residual blocks, .6 with dropout),
                     transposed convs after them, model.{last} (7x7 conv to the image);
  U-Net generator    nested skip blocks: model.model.0 (outer down conv),
                     model.model.1.model.{1,2,3,5,6} (down conv, norm, inner block, up conv,
                     norm), ..., innermost model.{1,3,4};
  PatchGAN           model.0 (conv), model.{3k+2, 3k+3} (conv, norm), final 1-channel conv.
Norm layers: "instance" (InstanceNorm without affine parameters, as CycleGAN) or "batch"
(BatchNorm, as pix2pix; convs before a BatchNorm have no bias).

Registered families (each returns {"translator": G} and, when `discriminator` is set, the
networks its training recipe needs):
  pix2pix-resnet, pix2pix-unet   discriminator: "none", "paired" (pix2pix: D sees input and
                                 output side by side) or "cycle" (CycleGAN: a second
                                 generator B->A and one D per domain).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..registry import register

NORMS = ("instance", "batch")
DISCRIMINATORS = ("none", "paired", "cycle")


def norm_layer(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")


# --- ResNet generator -----------------------------------------------------------------------
class ResnetBlock(nn.Module):
    """x + [pad, conv3x3, norm, relu, (dropout), pad, conv3x3, norm](x)."""

    def __init__(self, dim: int, norm: str, dropout: bool):
        super().__init__()
        bias = norm == "instance"
        layers = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm_layer(norm, dim),
                  nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm_layer(norm, dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """7x7 conv, two stride-2 convs (1/4 size, 4*ngf channels), n_blocks residual blocks,
    two stride-2 transposed convs back, 7x7 conv, tanh. Inputs need sides that are
    multiples of 4."""

    size_multiple = 4
    min_size = 8  # the residual blocks' reflection padding needs 2x2 at 1/4 size

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64,
                 n_blocks: int = 9, norm: str = "instance", dropout: bool = False,
                 resolution: int = 256):
        super().__init__()
        self.in_channels, self.out_channels, self.img_resolution = in_channels, out_channels, \
            resolution
        bias = norm == "instance"
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7, bias=bias),
                  norm_layer(norm, ngf), nn.ReLU(True)]
        for i in range(2):  # [B, ngf, H, W] -> [B, 4 ngf, H/4, W/4]
            c = ngf * 2 ** i
            layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1, bias=bias),
                       norm_layer(norm, 2 * c), nn.ReLU(True)]
        layers += [ResnetBlock(4 * ngf, norm, dropout) for _ in range(n_blocks)]
        for i in range(2):
            c = ngf * 2 ** (2 - i)
            layers += [nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1,
                                          bias=bias),
                       norm_layer(norm, c // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


# --- U-Net generator ------------------------------------------------------------------------
class UnetSkipBlock(nn.Module):
    """One level of the U-Net: down (stride-2 conv), the inner block, up (stride-2 transposed
    conv); the block's input is concatenated to its output (except at the outermost level)."""

    def __init__(self, outer: int, inner: int, in_channels: int | None = None,
                 submodule: nn.Module | None = None, outermost: bool = False,
                 innermost: bool = False, norm: str = "batch", dropout: bool = False):
        super().__init__()
        self.outermost = outermost
        bias = norm == "instance"
        in_channels = outer if in_channels is None else in_channels
        down = nn.Conv2d(in_channels, inner, 4, stride=2, padding=1, bias=bias)
        if outermost:
            up = nn.ConvTranspose2d(2 * inner, outer, 4, stride=2, padding=1)
            layers = [down, submodule, nn.ReLU(True), up, nn.Tanh()]
        elif innermost:
            up = nn.ConvTranspose2d(inner, outer, 4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), down, nn.ReLU(True), up, norm_layer(norm, outer)]
        else:
            up = nn.ConvTranspose2d(2 * inner, outer, 4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), down, norm_layer(norm, inner), submodule,
                      nn.ReLU(True), up, norm_layer(norm, outer)]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """num_downs stride-2 levels (unet_256: 8, unet_128: 7, 64 px: 6); channels ngf, 2 ngf,
    4 ngf, then 8 ngf for every deeper level. Sides must be multiples of 2**num_downs."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64,
                 num_downs: int = 8, norm: str = "batch", dropout: bool = False,
                 resolution: int | None = None):
        super().__init__()
        if num_downs < 5:
            raise ValueError(f"a U-Net needs at least 5 levels, got num_downs={num_downs}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.size_multiple = 2 ** num_downs
        self.img_resolution = resolution or 2 ** num_downs
        block = UnetSkipBlock(8 * ngf, 8 * ngf, innermost=True, norm=norm)
        for _ in range(num_downs - 5):
            block = UnetSkipBlock(8 * ngf, 8 * ngf, submodule=block, norm=norm, dropout=dropout)
        for mult in (4, 2, 1):
            block = UnetSkipBlock(mult * ngf, 2 * mult * ngf, submodule=block, norm=norm)
        self.model = UnetSkipBlock(out_channels, ngf, in_channels, submodule=block,
                                   outermost=True, norm=norm)

    def forward(self, x):
        return self.model(x)


# --- PatchGAN discriminator -----------------------------------------------------------------
class PatchDiscriminator(nn.Module):
    """n_layers stride-2 4x4 convs (ndf, 2 ndf, ... up to 8 ndf), one stride-1 conv and a
    1-channel stride-1 conv: one logit per overlapping patch (70x70 for n_layers=3)."""

    def __init__(self, in_channels: int = 6, ndf: int = 64, n_layers: int = 3,
                 norm: str = "batch"):
        super().__init__()
        bias = norm == "instance"
        layers = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1, bias=bias),
                       norm_layer(norm, ndf * mult), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


# --- registration -----------------------------------------------------------------------------
COMMON = {"in_channels": 3, "out_channels": 3, "ngf": 64, "norm": "instance", "dropout": False,
          "resolution": 256, "discriminator": "none", "ndf": 64, "d_layers": 3}
RESNET = {**COMMON, "n_blocks": 9}
UNET = {**COMMON, "norm": "batch", "num_downs": 8}


def full_config(config: dict, defaults: dict) -> dict:
    unknown = set(config) - set(defaults)
    if unknown:
        raise ValueError(f"unknown option(s) {sorted(unknown)}")
    cfg = {**defaults, **config}
    if cfg["norm"] not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {cfg['norm']!r}")
    if cfg["discriminator"] not in DISCRIMINATORS:
        raise ValueError(f"discriminator must be one of {DISCRIMINATORS}")
    for key in ("in_channels", "out_channels"):
        if cfg[key] not in (1, 3):
            raise ValueError(f"{key} must be 1 or 3, got {cfg[key]}")
    if not 1 <= int(cfg["ngf"]) <= 1024 or not 1 <= int(cfg["ndf"]) <= 1024:
        raise ValueError("ngf and ndf must be 1..1024")
    if not 1 <= int(cfg["d_layers"]) <= 6:
        raise ValueError(f"d_layers must be 1..6, got {cfg['d_layers']}")
    return cfg


def unet_levels(resolution: int) -> int:
    """U-Net levels for a square training size: down to 1x1 (64 px -> 6)."""
    levels = int(math.log2(resolution)) if resolution > 0 else 0
    if 2 ** levels != resolution or levels < 5:
        raise ValueError(f"a U-Net trains at a power of two of at least 32 px, got {resolution}")
    return levels


def _with_discriminators(cfg: dict, make_g) -> dict[str, nn.Module]:
    nets = {"translator": make_g(cfg["in_channels"], cfg["out_channels"])}
    d_norm = "instance" if cfg["norm"] == "instance" else "batch"
    if cfg["discriminator"] == "paired":
        nets["discriminator"] = PatchDiscriminator(cfg["in_channels"] + cfg["out_channels"],
                                                   cfg["ndf"], cfg["d_layers"], d_norm)
    elif cfg["discriminator"] == "cycle":
        nets["translator_ba"] = make_g(cfg["out_channels"], cfg["in_channels"])
        nets["discriminator"] = PatchDiscriminator(cfg["out_channels"], cfg["ndf"],
                                                   cfg["d_layers"], d_norm)
        nets["discriminator_a"] = PatchDiscriminator(cfg["in_channels"], cfg["ndf"],
                                                     cfg["d_layers"], d_norm)
    return nets


@register("pix2pix-resnet")
def build_resnet(config: dict) -> dict[str, nn.Module]:
    cfg = full_config(config, RESNET)
    if not 0 <= int(cfg["n_blocks"]) <= 64:
        raise ValueError(f"n_blocks must be 0..64, got {cfg['n_blocks']}")
    return _with_discriminators(cfg, lambda cin, cout: ResnetGenerator(
        cin, cout, cfg["ngf"], cfg["n_blocks"], cfg["norm"], cfg["dropout"], cfg["resolution"]))


@register("pix2pix-unet")
def build_unet(config: dict) -> dict[str, nn.Module]:
    cfg = full_config(config, UNET)
    if not 5 <= int(cfg["num_downs"]) <= 12:
        raise ValueError(f"num_downs must be 5..12, got {cfg['num_downs']}")
    return _with_discriminators(cfg, lambda cin, cout: UnetGenerator(
        cin, cout, cfg["ngf"], cfg["num_downs"], cfg["norm"], cfg["dropout"], cfg["resolution"]))
