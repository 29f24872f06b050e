"""One entry point that loads any supported checkpoint: the registered importer that
recognises the file's content reads it (see importers.py)."""

from __future__ import annotations

from pathlib import Path

from ..errors import CheckpointError
from ..model import GenerativeModel
from .importers import Probe, find_importer, known_formats


def load_model(path: str | Path, device: str = "cpu") -> GenerativeModel:
    path = Path(path)
    probe = Probe(path) if path.is_file() else None
    importer = find_importer(probe) if probe is not None else None
    if importer is None:
        if probe is None:
            raise CheckpointError(f"checkpoint not found: {path.name}")
        raise CheckpointError(
            f"{path.name} is not a checkpoint format GAN Studio recognises (it reads: "
            f"{known_formats()})")
    model = importer.read(path)
    if not model.name:
        model.name = path.stem
    return model.to(device)
