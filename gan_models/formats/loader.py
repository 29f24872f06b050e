"""One entry point that loads any supported checkpoint, dispatching on its content."""

from __future__ import annotations

from pathlib import Path

from ..errors import CheckpointError
from ..model import GenerativeModel
from . import detect
from .native import load_native


def load_model(path: str | Path, device: str = "cpu") -> GenerativeModel:
    path = Path(path)
    kind = detect.detect_format(path)
    if kind == detect.SAFETENSORS:
        model = load_native(path)
    elif kind == detect.PICKLE:
        raise CheckpointError(
            f"{path.name} is a Python pickle (e.g. an NVlabs StyleGAN network pickle). "
            "Pickles are only read through a safe importer, and this version has none for "
            "this file; it was not opened.")
    elif kind == detect.TORCH_ZIP:
        raise CheckpointError(
            f"{path.name} is a torch.save checkpoint (e.g. rosinality .pt); this version "
            "cannot import it yet; it was not opened.")
    else:
        raise CheckpointError(
            f"{path.name} is not a checkpoint format GAN Studio recognises "
            "(expected .safetensors from GAN Studio, an NVlabs .pkl or a torch .pt)")
    return model.to(device)
