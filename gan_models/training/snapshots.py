"""Snapshots of a run: a model file users can load plus a training-state file to resume.

folder/snapshot-00001000.safetensors        native GAN Studio model (EMA generator + D)
folder/snapshot-00001000.state.safetensors  training state: weights, optimizer moments, EMA,
                                            step, history, RNG states, recipe (no pickle)
folder/latest.json                          names the newest complete pair

Every file is written atomically (temp file, fsync, rename) and latest.json only after both
files of its pair exist, so a crash at any moment leaves the previous snapshot usable.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import GanStudioError
from ..formats import save_model
from ..formats.atomic import atomic_path
from ..formats.tagged import read_tagged, write_tagged
from .loop import Trainer

STATE_KEY = "gan_studio_training"
LATEST = "latest.json"


def write_snapshot(folder: str | Path, trainer: Trainer, keep: int = 0) -> dict[str, Path]:
    """Write the trainer's current state; keep > 0 deletes all but the newest `keep` pairs."""
    trainer.check_finite()  # never let NaN weights overwrite a good snapshot
    folder = Path(folder)
    stem = f"snapshot-{trainer.step:08d}"
    model_path, state_path = folder / f"{stem}.safetensors", folder / f"{stem}.state.safetensors"
    save_model(trainer.export_model(), model_path)
    tensors, meta = trainer.state_dict()
    meta["model_file"] = model_path.name
    write_tagged(state_path, tensors, STATE_KEY, meta)
    pointer = {"step": trainer.step, "kimg": trainer.kimg, "model": model_path.name,
               "state": state_path.name}
    with atomic_path(folder / LATEST) as tmp:
        Path(tmp).write_text(json.dumps(pointer, indent=1))
    if keep > 0:
        _prune(folder, keep)
    return {"model": model_path, "state": state_path}


def latest_snapshot(folder: str | Path) -> dict[str, Path] | None:
    """Paths of the newest complete snapshot in folder, or None when there is none."""
    folder = Path(folder)
    pointer = folder / LATEST
    if not pointer.is_file():
        return None
    try:
        info = json.loads(pointer.read_text())
        paths = {"model": folder / info["model"], "state": folder / info["state"]}
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise GanStudioError(f"{pointer} is damaged ({exc}); point it at a snapshot pair or "
                             "remove it") from None
    for p in paths.values():
        if not p.is_file():
            raise GanStudioError(f"{pointer} names {p.name}, which is missing")
    return paths


def read_state(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, metadata) of a training-state file."""
    return read_tagged(path, STATE_KEY, "GAN Studio training state")


def _prune(folder: Path, keep: int) -> None:
    states = sorted(folder.glob("snapshot-*.state.safetensors"))
    for state in states[:-keep]:
        model = state.with_name(state.name.replace(".state.safetensors", ".safetensors"))
        for p in (state, model):
            p.unlink(missing_ok=True)
