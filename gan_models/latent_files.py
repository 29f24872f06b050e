"""Keeping latents: batches as .safetensors files, single frames as PNG text records.

A latent file holds tensors "values" (and "labels" when conditioned) plus JSON metadata
under `gan_studio_latents`: space, model id, seeds, truncation_psi and the batch's extra
(keyframe seeds, path settings). No pickle anywhere.

A frame record is the compact JSON a saved PNG carries so one image can be traced back and
regenerated: the latent itself as base64 of little-endian float32 (z 512 -> ~2.7 KB of text,
w+ 18x512 -> ~48 KB), its seed, class weights, truncation and model id.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch

from .errors import GanStudioError
from .formats.tagged import read_tagged_meta, read_tagged_tensors, write_tagged
from .latent import LatentBatch

FILE_FORMAT = "gan-studio-latents"
RECORD_FORMAT = "gan-studio-frame"
VERSION = 1
METADATA_KEY = "gan_studio_latents"
WHAT = "GAN Studio latent file"
PNG_KEY = "gan_studio"  # PNG text chunk holding a frame record
# settings kept when LatentBatch has them (style-model truncation cutoff, StyleGAN3 view)
OPTIONAL_FIELDS = tuple(f.name for f in fields(LatentBatch)
                        if f.name in ("truncation_cutoff", "view"))


# --- batches as files --------------------------------------------------------------------
def save_latents(batch: LatentBatch, path: str | Path, notes: dict | None = None) -> Path:
    """Write a batch atomically; `notes` (JSON values) are stored alongside."""
    tensors = {"values": batch.values.float()}
    if batch.labels is not None:
        tensors["labels"] = batch.labels.float()
    meta = {"format": FILE_FORMAT, "version": VERSION, "space": batch.space,
            "model_id": batch.model_id, "truncation_psi": batch.truncation_psi,
            "seeds": None if batch.seeds is None else [int(s) for s in batch.seeds],
            "extra": _jsonable(batch.extra), "notes": _jsonable(notes or {}),
            **_optional(batch)}
    return write_tagged(path, tensors, METADATA_KEY, meta)


def read_latent_metadata(path: str | Path) -> dict | None:
    """The latent metadata of a file, or None when it is not a GAN Studio latent file."""
    try:
        meta = read_tagged_meta(path, METADATA_KEY, WHAT)
    except GanStudioError:
        return None
    return meta if meta.get("format") == FILE_FORMAT else None


def load_latents(path: str | Path) -> LatentBatch:
    path = Path(path)
    meta = read_latent_metadata(path)
    if meta is None:
        raise GanStudioError(f"{path.name} is not a {WHAT}")
    if int(meta.get("version", 0)) > VERSION:
        raise GanStudioError(f"{path.name} was written by a newer GAN Studio (latent file "
                             f"version {meta['version']}); update the pack")
    tensors = read_tagged_tensors(path, WHAT)
    if "values" not in tensors:
        raise GanStudioError(f"{path.name} holds no latent values")
    seeds = meta.get("seeds")
    return LatentBatch(values=tensors["values"].float(), space=meta.get("space", "z"),
                       labels=tensors.get("labels"),
                       seeds=None if seeds is None else tuple(int(s) for s in seeds),
                       model_id=meta.get("model_id"),
                       truncation_psi=float(meta.get("truncation_psi", 1.0)),
                       extra=dict(meta.get("extra") or {}), **_restore_optional(meta))


# --- single frames as text records -------------------------------------------------------
def frame_record(batch: LatentBatch, index: int, model_name: str | None = None) -> dict:
    """Everything needed to regenerate sample `index` of `batch`, as JSON values."""
    value = batch.values[index].detach().float().cpu().contiguous()
    record = {"format": RECORD_FORMAT, "version": VERSION, "model_id": batch.model_id,
              "space": batch.space, "shape": list(value.shape),
              "latent": base64.b64encode(value.numpy().astype("<f4").tobytes()).decode("ascii"),
              "seed": None if batch.seeds is None else int(batch.seeds[index]),
              "truncation_psi": batch.truncation_psi,
              "label": None if batch.labels is None else [float(x) for x in batch.labels[index]],
              **_optional(batch)}
    if model_name:
        record["model"] = model_name
    return record


def latents_from_records(records: list[dict]) -> LatentBatch:
    """A batch from frame records (all from the same model, space and truncation)."""
    if not records:
        raise GanStudioError("no frame records given")
    rows, labels, seeds = [], [], []
    first = records[0]
    for rec in records:
        if rec.get("format") != RECORD_FORMAT:
            raise GanStudioError("not a GAN Studio frame record")
        for key in ("space", "model_id", "truncation_psi", *OPTIONAL_FIELDS):
            if rec.get(key) != first.get(key):
                raise GanStudioError(f"frame records differ in {key}; load them separately")
        shape = [int(s) for s in rec["shape"]]
        raw = base64.b64decode(rec["latent"])
        if len(raw) != 4 * math.prod(shape):
            raise GanStudioError("frame record latent does not match its shape")
        rows.append(torch.from_numpy(np.frombuffer(raw, dtype="<f4").copy()).reshape(shape))
        labels.append(rec.get("label"))
        seeds.append(rec.get("seed"))
    has_labels = [lab is not None for lab in labels]
    if any(has_labels) and not all(has_labels):
        raise GanStudioError("some frame records carry classes and some do not")
    return LatentBatch(
        values=torch.stack(rows), space=first["space"],
        labels=torch.tensor(labels, dtype=torch.float32) if all(has_labels) else None,
        seeds=tuple(seeds) if all(s is not None for s in seeds) else None,
        model_id=first.get("model_id"), truncation_psi=float(first["truncation_psi"]),
        **_restore_optional(first))


def read_png_record(path: str | Path) -> dict:
    """The frame record embedded in a PNG saved by GAN Studio."""
    from PIL import Image

    with Image.open(path) as img:
        text = getattr(img, "text", {}).get(PNG_KEY)
    if text is None:
        raise GanStudioError(f"{Path(path).name} carries no GAN Studio frame record")
    return json.loads(text)


def _optional(batch: LatentBatch) -> dict:
    out = {}
    for name in OPTIONAL_FIELDS:
        value = getattr(batch, name)
        out[name] = list(value) if isinstance(value, tuple) else value
    return out


def _restore_optional(meta: dict) -> dict:
    out = {}
    for name in OPTIONAL_FIELDS:
        value = meta.get(name)
        out[name] = tuple(value) if isinstance(value, list) else value
    return out


def _jsonable(value: dict) -> dict:
    """Keep only the entries that survive JSON (extra may hold tensors or objects)."""
    out = {}
    for key, item in value.items():
        try:
            json.dumps(item)
        except (TypeError, ValueError):
            continue
        out[str(key)] = item
    return out
