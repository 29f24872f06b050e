"""The native checkpoint: one .safetensors file, weights + JSON metadata, no pickle.

Tensors are stored per network role (`generator.<param>`, `discriminator.<param>`, ...).
`__metadata__["gan_studio"]` holds JSON with everything needed to rebuild the model:
format version, architecture name + constructor config, class names, conditioning,
provenance (training data, steps, recipe) and source (original file name + sha256).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from .. import registry
from ..errors import CheckpointError
from ..model import GenerativeModel
from . import detect
from .budgets import check_model_metadata, describe
from .importers import Importer, register_importer
from .tagged import read_tagged_meta, read_tagged_tensors, write_tagged

FORMAT_NAME = "gan-studio"
FORMAT_VERSION = 1
METADATA_KEY = "gan_studio"
WHAT = "GAN Studio checkpoint"


def save_model(model: GenerativeModel, path: str | Path,
               roles: tuple[str, ...] | None = None, half: bool = False) -> Path:
    """Write `model` atomically. roles limits which networks are kept (e.g. ("generator",));
    half stores floating-point weights as float16 (half the size; loading casts them back to
    the networks' own precision)."""
    path = Path(path)
    roles = roles or tuple(model.networks)
    tensors: dict[str, torch.Tensor] = {}
    for role in roles:
        for name, t in model.networks[role].state_dict().items():
            tensors[f"{role}.{name}"] = t.half() if half and t.is_floating_point() else t
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "architecture": model.architecture,
        "config": model.config,
        "class_names": model.class_names,
        "conditioning": model.conditioning,
        "roles": list(roles),
        "stored_dtype": "float16" if half else "native",
        **{k: v for k, v in model.metadata.items() if k in ("provenance", "source", "notes")},
    }
    return write_tagged(path, tensors, METADATA_KEY, meta)


def read_metadata(path: str | Path) -> dict:
    meta = read_tagged_meta(path, METADATA_KEY, WHAT, hint=(
        "it is a safetensors file without GAN Studio metadata, perhaps a diffusion model or a "
        "bare state dict. Convert foreign checkpoints with `python -m gan_models convert`."))
    if meta.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{Path(path).name}: not a GAN Studio checkpoint")
    check_model_metadata(meta, Path(path).name)  # field types and sizes, within budgets
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(
            f"{Path(path).name} uses format version {meta['format_version']}; this version of "
            f"GAN Studio reads up to {FORMAT_VERSION}. Update the pack.")
    return meta


def load_native(path: str | Path) -> GenerativeModel:
    path = Path(path)
    meta = read_metadata(path)
    tensors = read_tagged_tensors(path, WHAT)
    networks = registry.build(meta["architecture"], meta["config"], source=path.name,
                              file_bytes=path.stat().st_size)
    kept = {}
    for role, net in networks.items():
        prefix = role + "."
        state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        if not state:
            continue  # role not stored (e.g. a generator-only file)
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(
                f"{path.name}: weights do not fit {meta['architecture']} "
                f"{describe(meta['config'])}: "
                f"{_first_line(exc)}") from exc
        kept[role] = net
    if not {"generator", "translator"} & set(kept):
        raise CheckpointError(f"{path.name} holds no generator or translator weights")
    return GenerativeModel(meta["architecture"], meta["config"], kept,
                           class_names=meta.get("class_names"), metadata=meta,
                           model_id=file_sha256(path)[:16])


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return " ".join(line.strip() for line in text[:3])


# --- registration -----------------------------------------------------------------------
def _is_safetensors(probe) -> bool:
    return probe.container == detect.SAFETENSORS


register_importer(Importer(
    name=FORMAT_NAME, description="GAN Studio .safetensors", recognise=_is_safetensors,
    read=load_native))
