"""StackGAN (Zhang et al. 2017), small: text -> a rough half-size image -> a refined image.

    text --encoder--> e [B, embed_dim]
    conditioning augmentation: mu, logvar = Linear(e); c = mu + exp(logvar / 2) * eps
    stage I:  (noise, c) -> 4x4 -> ... -> R/2 px image
    stage II: (stage-I image, c) -> down to R/4, joined with c, residual blocks -> R px,
              added to the upsampled stage-I image (stage II refines, it does not redraw)

The generator's latent z is [noise | eps]: the conditioning augmentation's noise is part of
z, so a seed fixes the whole sample and interpolating z moves both. At the model interface
the generator is forward(z, e) -> R px images with c_dim = embed_dim (the text embedding).

Text comes in one of two ways, recorded in the config as `text_input`:
    words        a BagOfWordsEncoder trained with the model (its vocabulary is in the config)
    clip_pooled  a CLIP text model's pooled output [B, clip_dim] (e.g. ComfyUI's CLIP Text
                 Encode), projected to embed_dim by a learned layer
The matching-aware discriminators (one per stage) score (image, text) pairs and, from the
same features, the image alone, with a minibatch standard-deviation feature; they are
spectrally normalised. Both networks see the text embedding at unit RMS. The generator uses
batch norm (running statistics at inference; `recalibrate` sets them for a finished model).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import GanStudioError
from ..registry import register
from .text_encoder import BagOfWordsEncoder

TEXT_INPUTS = ("words", "clip_pooled")
DEFAULTS = {"resolution": 64, "vocab": [], "text_input": "words", "clip_dim": 768,
            "embed_dim": 128, "word_dim": 128, "noise_dim": 64, "ca_dim": 64,
            "base_channels": 32, "stage2_channels": 64, "res_blocks": 2, "d_channels": 32}


def full_config(config: dict) -> dict:
    unknown = set(config) - set(DEFAULTS) - {"num_classes"}
    if unknown:
        raise ValueError(f"unknown StackGAN option(s) {sorted(unknown)}")
    if int(config.get("num_classes", 0)):
        raise ValueError("StackGAN is text-conditioned: it takes no classes")
    cfg = {**DEFAULTS, **{k: v for k, v in config.items() if k != "num_classes"}}
    res = int(cfg["resolution"])
    if res not in (32, 64, 128):
        raise ValueError(f"StackGAN resolution must be 32, 64 or 128, got {res}")
    if cfg["text_input"] not in TEXT_INPUTS:
        raise ValueError(f"text_input must be one of {TEXT_INPUTS}, got {cfg['text_input']!r}")
    if cfg["text_input"] == "words" and not cfg["vocab"]:
        raise ValueError("a StackGAN reading words needs a vocabulary (vocab)")
    for key in ("embed_dim", "word_dim", "noise_dim", "ca_dim", "base_channels",
                "stage2_channels", "d_channels", "clip_dim"):
        if int(cfg[key]) < 1:
            raise ValueError(f"{key} must be positive, got {cfg[key]}")
    return cfg


# --- building blocks ------------------------------------------------------------------------
def pixel_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + eps)


def unit_text(e: torch.Tensor) -> torch.Tensor:
    """Text embeddings scaled to unit RMS: how loud the text is must not depend on the
    encoder's initial scale (a fresh word encoder's output is tiny next to image features)."""
    return pixel_norm(e.float()).to(e.dtype)


class ConvAct(nn.Module):
    """3x3 conv -> batch norm -> leaky ReLU. Batch norm, as in StackGAN: with per-pixel
    normalisation instead, the generator collapsed onto one image within 250 steps."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
        self.norm = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.leaky_relu(self.norm(self.conv(x)), 0.2)


class UpBlock(ConvAct):
    def forward(self, x):
        return super().forward(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.a = ConvAct(channels, channels)
        self.b = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.norm = nn.BatchNorm2d(channels)

    def forward(self, x):
        return F.leaky_relu(x + self.norm(self.b(self.a(x))), 0.2)


def conditioning_augmentation(mu: torch.Tensor, logvar: torch.Tensor,
                              eps: torch.Tensor) -> torch.Tensor:
    """The reparameterised sample c = mu + sigma * eps (StackGAN's CA)."""
    return mu + torch.exp(0.5 * logvar) * eps


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, 1)), averaged over batch and dimensions (as StackGAN)."""
    return -0.5 * torch.mean(1 + logvar - mu.square() - logvar.exp())


# --- the generator ----------------------------------------------------------------------------
class StageI(nn.Module):
    """(noise, c) -> R/2 px: a 4x4 map, then one upsampling conv per octave."""

    def __init__(self, in_dim: int, size: int, base_channels: int):
        super().__init__()
        octaves = size.bit_length() - 3  # 4 -> size
        widths = [base_channels * 2 ** (octaves - i) for i in range(octaves + 1)]
        self.c0 = widths[0]
        self.fc = nn.Linear(in_dim, widths[0] * 16, bias=False)
        self.fc_norm = nn.BatchNorm1d(widths[0] * 16)
        self.ups = nn.Sequential(*[UpBlock(a, b) for a, b in zip(widths, widths[1:])])
        self.to_rgb = nn.Conv2d(widths[-1], 3, 1)

    def forward(self, x):
        h = F.leaky_relu(self.fc_norm(self.fc(x)), 0.2).view(-1, self.c0, 4, 4)
        return self.to_rgb(self.ups(h))  # pre-tanh


class StageII(nn.Module):
    """(R/2 image, c) -> R px: encode to R/4, join c, residual blocks, two upsamplings."""

    def __init__(self, ca_dim: int, channels: int, res_blocks: int):
        super().__init__()
        half = max(channels // 2, 8)
        self.encode = nn.Sequential(nn.Conv2d(3, half, 3, 1, 1), nn.LeakyReLU(0.2),
                                    nn.Conv2d(half, channels, 4, 2, 1), nn.LeakyReLU(0.2))
        self.join = ConvAct(channels + ca_dim, channels)
        self.res = nn.Sequential(*[ResBlock(channels) for _ in range(res_blocks)])
        self.up = nn.Sequential(UpBlock(channels, half), UpBlock(half, max(half // 2, 8)))
        self.to_rgb = nn.Conv2d(max(half // 2, 8), 3, 3, 1, 1)

    def forward(self, image, c):
        h = self.encode(image)
        h = self.join(torch.cat([h, c[:, :, None, None].expand(-1, -1, *h.shape[2:])], 1))
        return self.to_rgb(self.up(self.res(h)))  # pre-tanh residual at R px


class StackGenerator(nn.Module):
    img_channels = 3

    def __init__(self, resolution: int, embed_dim: int, noise_dim: int, ca_dim: int,
                 base_channels: int, stage2_channels: int, res_blocks: int):
        super().__init__()
        self.img_resolution = resolution
        self.c_dim, self.noise_dim, self.ca_dim = embed_dim, noise_dim, ca_dim
        self.z_dim = noise_dim + ca_dim  # [noise | conditioning-augmentation eps]
        self.ca = nn.Linear(embed_dim, 2 * ca_dim)
        self.stage1 = StageI(noise_dim + ca_dim, resolution // 2, base_channels)
        self.stage2 = StageII(ca_dim, stage2_channels, res_blocks)

    def stages(self, z: torch.Tensor, e: torch.Tensor):
        """(R/2 image, R image, mu, logvar); images in [-1, 1]."""
        if e is None:
            raise GanStudioError("this StackGAN needs a text condition (Text Condition node)")
        mu, logvar = F.leaky_relu(self.ca(unit_text(e)), 0.2).chunk(2, dim=1)
        c = conditioning_augmentation(mu, logvar, z[:, self.noise_dim:])
        rough = self.stage1(torch.cat([z[:, :self.noise_dim], c], 1))
        small = torch.tanh(rough)
        up = F.interpolate(rough, scale_factor=2.0, mode="bilinear", align_corners=False)
        return small, torch.tanh(up + self.stage2(small, c)), mu, logvar

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return self.stages(z, c)[1]


@torch.no_grad()
def recalibrate(generator: StackGenerator, embeddings: torch.Tensor, seed: int = 0,
                batch: int = 64) -> None:
    """Set the generator's batch-norm running statistics to their average over samples of
    `embeddings` `[N, embed_dim]` (one per sample) with fresh z: an averaged (EMA)
    generator's own statistics, rather than those copied from the generator it averages."""
    norms = [m for m in generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative: every batch counts the same
    gen = torch.Generator().manual_seed(seed)
    was = generator.training
    generator.train()
    device = next(generator.parameters()).device
    for start in range(0, len(embeddings), batch):
        e = embeddings[start:start + batch].to(device)
        z = torch.randn(len(e), generator.z_dim, generator=gen).to(device)
        generator(z, e)
    generator.train(was)
    for m in norms:
        m.momentum = 0.1


# --- text input -----------------------------------------------------------------------------
class ClipPooledInput(nn.Module):
    """The text input of a model trained on CLIP pooled embeddings: a learned projection."""

    text_input = "clip_pooled"

    def __init__(self, clip_dim: int, embed_dim: int):
        super().__init__()
        self.clip_dim, self.embed_dim = clip_dim, embed_dim
        self.project = nn.Linear(clip_dim, embed_dim)

    def unknown_words(self, prompts: list[str]) -> list[str]:
        return []

    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        raise GanStudioError(
            "this model was trained on CLIP pooled embeddings, not on words: connect the "
            "CONDITIONING of a CLIP Text Encode node instead of typing a prompt")

    def encode_pooled(self, pooled: torch.Tensor) -> torch.Tensor:
        if pooled.dim() != 2 or pooled.shape[1] != self.clip_dim:
            raise GanStudioError(
                f"the CLIP pooled output is {tuple(pooled.shape)} but this model was trained "
                f"on width {self.clip_dim}: use the CLIP model it was trained with")
        return self.project(pooled.to(self.project.weight))


# --- the discriminators ------------------------------------------------------------------------
def minibatch_std(h: torch.Tensor, group: int = 4) -> torch.Tensor:
    """ProGAN's minibatch standard deviation as one more feature map: a batch of identical
    images is easy to spot, so the generator cannot collapse onto one picture."""
    n = h.shape[0]
    g = min(group, n)
    while n % g:
        g -= 1
    y = h.float().view(g, -1, *h.shape[1:])
    std = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))   # [n / g]
    std = std.repeat(g).view(n, 1, 1, 1).expand(-1, 1, *h.shape[2:])
    return torch.cat([h, std.to(h.dtype)], 1)


class MatchingDiscriminator(nn.Module):
    """Image -> 4x4 features; logits for (image, text) and for the image alone. Every layer
    is spectrally normalised: without it the discriminator outran the generator within a
    few hundred steps on Twemoji and the generator collapsed to blank images."""

    def __init__(self, resolution: int, embed_dim: int, channels: int, text_dim: int = 64):
        super().__init__()
        sn = nn.utils.spectral_norm
        layers, cin, size = [], 3, resolution
        width = channels
        while size > 4:
            layers += [sn(nn.Conv2d(cin, width, 4, 2, 1)), nn.LeakyReLU(0.2)]
            cin, size, width = width, size // 2, min(width * 2, 8 * channels)
        self.body = nn.Sequential(*layers)
        self.text = sn(nn.Linear(embed_dim, text_dim))
        self.joint = nn.Sequential(sn(nn.Conv2d(cin + 1 + text_dim, cin, 1)), nn.LeakyReLU(0.2),
                                   sn(nn.Conv2d(cin, 1, 4)))
        self.alone = sn(nn.Conv2d(cin + 1, 1, 4))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return minibatch_std(self.body(images))

    def matching_logit(self, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        t = F.leaky_relu(self.text(unit_text(e)), 0.2)[:, :, None, None]
        t = t.expand(-1, -1, *h.shape[2:])
        return self.joint(torch.cat([h, t], 1)).flatten(1).mean(1)

    def image_logit(self, h: torch.Tensor) -> torch.Tensor:
        return self.alone(h).flatten(1).mean(1)


class StackDiscriminators(nn.Module):
    def __init__(self, resolution: int, embed_dim: int, channels: int):
        super().__init__()
        self.stage1 = MatchingDiscriminator(resolution // 2, embed_dim, channels)
        self.stage2 = MatchingDiscriminator(resolution, embed_dim, channels // 2)


def _init(m: nn.Module) -> None:
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        nn.init.kaiming_normal_(m.weight, a=0.2)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


@register("stackgan")
def build(config: dict) -> dict[str, nn.Module]:
    cfg = full_config(config)
    res, embed = int(cfg["resolution"]), int(cfg["embed_dim"])
    gen = StackGenerator(res, embed, int(cfg["noise_dim"]), int(cfg["ca_dim"]),
                         int(cfg["base_channels"]), int(cfg["stage2_channels"]),
                         int(cfg["res_blocks"]))
    if cfg["text_input"] == "words":
        text = BagOfWordsEncoder(list(cfg["vocab"]), embed_dim=embed,
                                 word_dim=int(cfg["word_dim"]))
    else:
        text = ClipPooledInput(int(cfg["clip_dim"]), embed)
    disc = StackDiscriminators(res, embed, int(cfg["d_channels"]))
    for net in (gen, disc):
        net.apply(_init)
    with torch.no_grad():  # small last layers: both stages start near mid-grey
        gen.stage1.to_rgb.weight.mul_(0.1)
        gen.stage2.to_rgb.weight.mul_(0.1)
    return {"generator": gen, "text_encoder": text, "discriminator": disc}
