"""Progressive GAN (Karras et al. 2018, "Progressive Growing of GANs for Improved Quality,
Stability, and Variation"), with an optional class condition.

Both networks hold every resolution from 4x4 to `resolution` at all times; which ones run
is the STAGE (the current output size) and ALPHA (how far the newest block has faded in):

    G  z (pixel-normed) [+ class embedding] -> linear -> 4x4 map -> 3x3 conv
       -> per doubling: nearest 2x upsample, two 3x3 convs -> toRGB (1x1) at the stage size
       during a fade: lerp(upsample(toRGB_previous(x_previous)), toRGB(x), alpha)
    D  the mirror: fromRGB (1x1) -> per halving: two 3x3 convs, 2x2 average pool
       during a fade: the input is also pooled and read by the previous fromRGB, and the two
       paths are blended after the new block; at 4x4: minibatch standard deviation,
       3x3 conv, linear, linear -> one logit (+ a class projection term)

Every conv/linear has an equalised learning rate (weights N(0, 1), scaled at run time by
sqrt(2 / fan_in)), every G activation is LeakyReLU(0.2) followed by pixel norm, and the
output is linear as in the paper and the PyTorch GAN zoo (`output="tanh"` squashes it after
the fade-in blend, which keeps the fade continuous). The stage and alpha
are buffers as well as config values: they travel with the EMA copy, the training state and
a saved file, so a model generates at the size it was trained to so far.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register

DEFAULTS = {"resolution": 64, "z_dim": 128, "num_classes": 0, "channels": 3,
            "base_channels": 32, "max_channels": 256, "embed_dim": 32,
            "stage_channels": None, "stage_resolution": None, "alpha": 1.0, "mbstd_group": 4,
            "output": "linear"}
OUTPUTS = ("linear", "tanh")
LEAK = 0.2


def full_config(config: dict) -> dict:
    unknown = set(config) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown ProGAN option(s) {sorted(unknown)}")
    cfg = {**DEFAULTS, **config}
    res = int(cfg["resolution"])
    if res < 4 or res > 1024 or res & (res - 1):
        raise ValueError(f"ProGAN resolution must be a power of two from 4 to 1024, got {res}")
    for key in ("z_dim", "channels", "base_channels", "max_channels", "embed_dim",
                "mbstd_group"):
        if int(cfg[key]) < 1:
            raise ValueError(f"ProGAN {key} must be positive, got {cfg[key]}")
    levels = levels_of(res)
    if cfg["stage_channels"] is not None:
        chans = [int(c) for c in cfg["stage_channels"]]
        if len(chans) != levels + 1 or min(chans) < 1:
            raise ValueError(f"ProGAN stage_channels must list {levels + 1} positive widths "
                             f"(4 px to {res} px), got {cfg['stage_channels']}")
        cfg["stage_channels"] = chans
    stage = int(cfg["stage_resolution"] or res)
    if stage < 4 or stage > res or stage & (stage - 1):
        raise ValueError(f"ProGAN stage_resolution must be a power of two from 4 to {res}, "
                         f"got {stage}")
    if cfg["output"] not in OUTPUTS:
        raise ValueError(f"ProGAN output must be one of {OUTPUTS}, got {cfg['output']!r}")
    alpha = float(cfg["alpha"])
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"ProGAN alpha must be in [0, 1], got {alpha}")
    cfg["stage_resolution"], cfg["alpha"] = stage, alpha
    return cfg


def levels_of(resolution: int) -> int:
    """Doublings above 4x4: 0 at 4 px, 4 at 64 px."""
    return int(math.log2(int(resolution) // 4))


def widths_of(cfg: dict) -> list[int]:
    """Feature widths at 4, 8, ... resolution px: base_channels at the top, doubling per
    halving, capped at max_channels (or the explicit list of an imported model)."""
    if cfg.get("stage_channels"):
        return list(cfg["stage_channels"])
    res = int(cfg["resolution"])
    return [min(int(cfg["base_channels"]) * res // (4 * 2 ** lvl), int(cfg["max_channels"]))
            for lvl in range(levels_of(res) + 1)]


# --- building blocks --------------------------------------------------------------------------
def pixel_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Each pixel's feature vector scaled to unit mean square (over channels, dim 1)."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


def upsample(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


def downsample(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 2)


def minibatch_stddev(x: torch.Tensor, group: int) -> torch.Tensor:
    """[B, C, H, W] -> [B, C+1, H, W]: one extra map holding the mean standard deviation of
    the features over a group of samples, so D can see a lack of variety. Groups take every
    (B/group)-th sample, as in the paper; the group shrinks to a divisor of the batch."""
    b, _, h, w = x.shape
    g = min(group, b)
    while b % g:
        g -= 1
    y = x.float().reshape(g, -1, *x.shape[1:])                    # [G, M, C, H, W]
    std = (y - y.mean(0)).square().mean(0).add(1e-8).sqrt()       # [M, C, H, W]
    y = std.mean(dim=(1, 2, 3)).to(x.dtype).repeat(g)             # [B], sample i -> i % M
    return torch.cat([x, y[:, None, None, None].expand(b, 1, h, w)], dim=1)


class EqualizedConv2d(nn.Module):
    """Conv with weights N(0, 1) scaled at run time by He's constant sqrt(2 / fan_in), so
    Adam's step is the same size relative to every layer's weights."""

    def __init__(self, cin: int, cout: int, kernel: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.scale = math.sqrt(2.0 / (cin * kernel * kernel))
        self.padding = kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


class EqualizedLinear(nn.Module):
    def __init__(self, cin: int, cout: int, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.scale = math.sqrt(2.0 / cin)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


class _Staged(nn.Module):
    """The stage (doublings above 4x4) and alpha as buffers, so copies and files keep them."""

    def _init_stage(self, cfg: dict) -> None:
        self.levels = levels_of(cfg["resolution"])
        self.full_resolution = int(cfg["resolution"])
        self.register_buffer("stage", torch.tensor(levels_of(cfg["stage_resolution"])))
        self.register_buffer("alpha", torch.tensor(float(cfg["alpha"])))

    def set_stage(self, resolution: int, alpha: float) -> None:
        level = levels_of(resolution)
        if not 0 <= level <= self.levels or not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"stage {resolution} px, alpha {alpha} is outside this network "
                             f"(4 to {self.full_resolution} px, alpha 0..1)")
        self.stage.fill_(level)
        self.alpha.fill_(float(alpha))

    @property
    def stage_level(self) -> int:
        return int(self.stage.item())

    @property
    def img_resolution(self) -> int:
        """The size of the current stage (what the generator outputs, what D reads)."""
        return 4 * 2 ** self.stage_level


# --- the networks ---------------------------------------------------------------------------
class Generator(_Staged):
    def __init__(self, resolution, z_dim, num_classes, channels, base_channels, max_channels,
                 embed_dim, stage_channels, stage_resolution, alpha, mbstd_group, output):
        super().__init__()
        cfg = full_config({k: v for k, v in locals().items() if k in DEFAULTS})
        self._init_stage(cfg)
        self.squash = cfg["output"] == "tanh"
        self.z_dim, self.c_dim, self.img_channels = int(z_dim), int(num_classes), int(channels)
        widths = widths_of(cfg)
        in_dim = self.z_dim
        if self.c_dim:
            # Linear on class weights (not nn.Embedding) so mixed classes interpolate.
            self.embed = nn.Linear(self.c_dim, int(embed_dim), bias=False)
            nn.init.normal_(self.embed.weight)
            in_dim += int(embed_dim)
        self.format = EqualizedLinear(in_dim, 16 * widths[0])       # -> [B, C0, 4, 4]
        self.conv4 = EqualizedConv2d(widths[0], widths[0], 3)
        self.blocks = nn.ModuleList(
            nn.ModuleList([EqualizedConv2d(widths[i - 1], widths[i], 3),
                           EqualizedConv2d(widths[i], widths[i], 3)])
            for i in range(1, self.levels + 1))
        self.to_rgb = nn.ModuleList(EqualizedConv2d(w, self.img_channels, 1) for w in widths)

    def _act(self, x: torch.Tensor) -> torch.Tensor:
        return pixel_norm(F.leaky_relu(x, LEAK))

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        x = pixel_norm(z)
        if self.c_dim:
            if c is None:
                raise ValueError("this generator is class-conditional: pass class weights c")
            x = torch.cat([x, self.embed(c.to(z.dtype))], dim=1)
        x = self._act(self.format(x).view(z.shape[0], -1, 4, 4))
        x = self._act(self.conv4(x))
        stage, alpha = self.stage_level, float(self.alpha.item())
        previous = None
        for level in range(1, stage + 1):
            if level == stage and alpha < 1.0:
                previous = upsample(self.to_rgb[level - 1](x))
            conv_a, conv_b = self.blocks[level - 1]
            x = self._act(conv_b(self._act(conv_a(upsample(x)))))
        out = self.to_rgb[stage](x)
        out = out if previous is None else torch.lerp(previous, out, alpha)
        return torch.tanh(out) if self.squash else out


class Discriminator(_Staged):
    def __init__(self, resolution, z_dim, num_classes, channels, base_channels, max_channels,
                 embed_dim, stage_channels, stage_resolution, alpha, mbstd_group, output):
        super().__init__()
        cfg = full_config({k: v for k, v in locals().items() if k in DEFAULTS})
        self._init_stage(cfg)
        self.c_dim, self.group = int(num_classes), int(mbstd_group)
        widths = widths_of(cfg)
        self.from_rgb = nn.ModuleList(EqualizedConv2d(int(channels), w, 1) for w in widths)
        self.blocks = nn.ModuleList(   # blocks[i - 1]: level i -> level i - 1
            nn.ModuleList([EqualizedConv2d(widths[i], widths[i], 3),
                           EqualizedConv2d(widths[i], widths[i - 1], 3)])
            for i in range(1, self.levels + 1))
        c0 = widths[0]
        self.conv4 = EqualizedConv2d(c0 + 1, c0, 3)
        self.dense = EqualizedLinear(16 * c0, c0)
        self.out = EqualizedLinear(c0, 1)
        if self.c_dim:
            self.embed = nn.Linear(self.c_dim, c0, bias=False)  # projection term
            nn.init.normal_(self.embed.weight, 0.0, 1.0 / math.sqrt(c0))

    def _block(self, level: int, x: torch.Tensor) -> torch.Tensor:
        conv_a, conv_b = self.blocks[level - 1]
        x = F.leaky_relu(conv_b(F.leaky_relu(conv_a(x), LEAK)), LEAK)
        return downsample(x)

    def forward(self, images: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        stage, alpha = self.stage_level, float(self.alpha.item())
        if images.shape[-1] != self.img_resolution or images.shape[-2] != self.img_resolution:
            raise ValueError(f"the discriminator is at the {self.img_resolution} px stage; "
                             f"got {tuple(images.shape[-2:])} images")
        x = F.leaky_relu(self.from_rgb[stage](images), LEAK)
        if stage > 0:
            x = self._block(stage, x)
            if alpha < 1.0:
                previous = F.leaky_relu(self.from_rgb[stage - 1](downsample(images)), LEAK)
                x = torch.lerp(previous, x, alpha)
            for level in range(stage - 1, 0, -1):
                x = self._block(level, x)
        x = F.leaky_relu(self.conv4(minibatch_stddev(x, self.group)), LEAK)
        h = F.leaky_relu(self.dense(x.flatten(1)), LEAK)
        logits = self.out(h).squeeze(1)
        if self.c_dim and c is not None:
            logits = logits + (self.embed(c.to(h.dtype)) * h).sum(1)
        return logits


@register("progan")
def build(config: dict) -> dict[str, nn.Module]:
    cfg = full_config(config)
    return {"generator": Generator(**cfg), "discriminator": Discriminator(**cfg)}
