"""Fast neural style networks of the PyTorch examples (`candy.pth`, `mosaic.pth`,
`rain_princess.pth`, `udnie.pth`, or any saved TransformerNet): a plain state dict.

Names match architectures/fast_style.py (conv1.conv2d.weight, in1.weight, res1.conv1.conv2d
.weight, deconv1.conv2d.weight, ...). The published files were saved with a torch whose
InstanceNorm kept running statistics (in1.running_mean, res1.in2.running_var, ...); current
InstanceNorm has none and never used them in these networks, so they are dropped. The width
is read from conv1 (32 in the examples).
"""

from __future__ import annotations

from pathlib import Path

from ..model import GenerativeModel
from . import detect
from .importers import Importer, Probe, register_importer
from .torch_state import read_state, state_keys, translator_from_state

FORMAT = "fast-style-pth"
MARKERS = {"conv1.conv2d.weight", "res1.conv1.conv2d.weight", "deconv3.conv2d.weight"}
STALE = ("running_mean", "running_var", "num_batches_tracked")


def load_fast_style(path: str | Path) -> GenerativeModel:
    path = Path(path)
    state = {k: v for k, v in read_state(path).items() if not k.endswith(STALE)}
    width = int(state["conv1.conv2d.weight"].shape[0]) if "conv1.conv2d.weight" in state else 32
    config = {"width": width, "resolution": 256}
    return translator_from_state("fast-style", config, state, path, FORMAT)


def _recognise(probe: Probe) -> bool:
    if probe.container not in (detect.TORCH_ZIP, detect.PICKLE):
        return False
    keys = {k[len("module."):] if k.startswith("module.") else k
            for k in state_keys(probe.path)}
    return MARKERS <= keys


register_importer(Importer(
    name=FORMAT, description="fast neural style .pth (PyTorch examples: candy, mosaic, ...)",
    recognise=_recognise, read=load_fast_style, priority=10))
