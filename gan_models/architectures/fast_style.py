"""Fast neural style transfer (Johnson et al. 2016): one feed-forward network per style.

Parameter names follow the PyTorch examples' TransformerNet, whose `candy.pth`,
`mosaic.pth`, `rain_princess.pth` and `udnie.pth` load as they are (their stale
InstanceNorm running_mean/var entries are dropped by the importer):
    conv1, conv2, conv3      ConvLayer (reflection pad + conv2d): 9x9 3->32, 3x3 /2 ->64,
                             3x3 /2 ->128; each followed by in1..in3 (affine InstanceNorm)
    res1..res5               residual blocks of two 3x3 ConvLayers (conv1/in1, conv2/in2)
    deconv1, deconv2         nearest 2x upsampling + 3x3 ConvLayer (->64, ->32), in4, in5
    deconv3                  9x9 ConvLayer -> 3 channels
The original network works on RGB in 0..255; this one takes and returns [-1, 1] (the
capability contract) and converts around the same layers, so outputs match the original.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register


class ConvLayer(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, upsample: int = 1):
        super().__init__()
        self.upsample = upsample
        self.reflection_pad = nn.ReflectionPad2d(kernel // 2)
        self.conv2d = nn.Conv2d(cin, cout, kernel, stride)

    def forward(self, x):
        if self.upsample > 1:
            x = F.interpolate(x, scale_factor=self.upsample, mode="nearest")
        return self.conv2d(self.reflection_pad(x))


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3)
        self.in1 = nn.InstanceNorm2d(channels, affine=True)
        self.conv2 = ConvLayer(channels, channels, 3)
        self.in2 = nn.InstanceNorm2d(channels, affine=True)

    def forward(self, x):
        return x + self.in2(self.conv2(F.relu(self.in1(self.conv1(x)))))


class TransformerNet(nn.Module):
    """[B, 3, H, W] in [-1, 1] -> stylised [B, 3, H, W] in [-1, 1]; sides multiples of 4."""

    in_channels = out_channels = 3
    size_multiple = 4
    min_size = 8  # reflection padding at 1/4 size needs 2x2

    def __init__(self, width: int = 32, resolution: int = 256):
        super().__init__()
        w = int(width)
        self.img_resolution = resolution
        self.conv1, self.in1 = ConvLayer(3, w, 9), nn.InstanceNorm2d(w, affine=True)
        self.conv2, self.in2 = ConvLayer(w, 2 * w, 3, 2), nn.InstanceNorm2d(2 * w, affine=True)
        self.conv3, self.in3 = ConvLayer(2 * w, 4 * w, 3, 2), nn.InstanceNorm2d(4 * w,
                                                                                 affine=True)
        for i in range(1, 6):
            setattr(self, f"res{i}", ResidualBlock(4 * w))
        self.deconv1 = ConvLayer(4 * w, 2 * w, 3, upsample=2)
        self.in4 = nn.InstanceNorm2d(2 * w, affine=True)
        self.deconv2 = ConvLayer(2 * w, w, 3, upsample=2)
        self.in5 = nn.InstanceNorm2d(w, affine=True)
        self.deconv3 = ConvLayer(w, 3, 9)

    def forward_255(self, x: torch.Tensor) -> torch.Tensor:
        """The original network: RGB 0..255 in, unclamped RGB ~0..255 out."""
        y = F.relu(self.in1(self.conv1(x)))
        y = F.relu(self.in2(self.conv2(y)))
        y = F.relu(self.in3(self.conv3(y)))
        for i in range(1, 6):
            y = getattr(self, f"res{i}")(y)
        y = F.relu(self.in4(self.deconv1(y)))
        y = F.relu(self.in5(self.deconv2(y)))
        return self.deconv3(y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.forward_255((x + 1) * 127.5) / 127.5 - 1).clamp(-1, 1)


DEFAULTS = {"width": 32, "resolution": 256}


@register("fast-style")
def build(config: dict) -> dict[str, nn.Module]:
    unknown = set(config) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown fast-style option(s) {sorted(unknown)}")
    cfg = {**DEFAULTS, **config}
    if not 1 <= int(cfg["width"]) <= 256:
        raise ValueError(f"width must be 1..256, got {cfg['width']}")
    return {"translator": TransformerNet(cfg["width"], cfg["resolution"])}
