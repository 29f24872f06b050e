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
        # Imported lazily: the importers are only needed for foreign files.
        from .rosinality import is_legacy_torch_save, load_rosinality

        if is_legacy_torch_save(path):  # torch.save before 1.6 wrote a raw pickle stream
            model = load_rosinality(path)
        else:
            from .nvlabs import load_nvlabs_pickle

            model = load_nvlabs_pickle(path)
    elif kind == detect.TORCH_ZIP:
        from .rosinality import load_rosinality

        model = load_rosinality(path)
    else:
        raise CheckpointError(
            f"{path.name} is not a checkpoint format GAN Studio recognises "
            "(expected .safetensors from GAN Studio, an NVlabs .pkl or a rosinality .pt)")
    return model.to(device)
