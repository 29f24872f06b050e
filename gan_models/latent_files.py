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

from .checks import require_finite
from .errors import GanStudioError
from .formats.tagged import read_tagged_meta, read_tagged_tensors, write_tagged
from .latent import MAX_SEED, SPACES, LatentBatch

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
    """The batch saved in a latent file; every part is checked (tensor shapes, finite
    values, metadata types), so a damaged or hand-made file is refused naming the file."""
    path = Path(path)
    try:
        meta = read_tagged_meta(path, METADATA_KEY, WHAT)
    except GanStudioError as exc:  # keep the reason (truncated, nested too deeply, ...)
        if f"not a {WHAT}" in str(exc):
            raise
        raise GanStudioError(f"{path.name} is not a {WHAT} ({exc})") from None
    if meta.get("format") != FILE_FORMAT:
        raise GanStudioError(f"{path.name} is not a {WHAT}")
    version = meta.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise GanStudioError(f"{path.name}: its latent file version is not a number")
    if version > VERSION:
        raise GanStudioError(f"{path.name} was written by a newer GAN Studio (latent file "
                             f"version {version}); update the pack")
    tensors = read_tagged_tensors(path, WHAT)
    if "values" not in tensors:
        raise GanStudioError(f"{path.name} holds no latent values")
    try:
        return _batch(tensors["values"], tensors.get("labels"), meta,
                      seeds=meta.get("seeds"), extra=meta.get("extra"))
    except GanStudioError as exc:
        raise GanStudioError(f"{path.name}: {exc}") from None


def _batch(values, labels, meta: dict, seeds=None, extra=None) -> LatentBatch:
    """A LatentBatch from stored parts, each checked: values `[B, D]` (z, w) or `[B, L, D]`
    (w+) with B >= 1, labels `[B, C]`, all finite; metadata of the right types."""
    space = meta.get("space", "z")
    if space not in SPACES:
        raise GanStudioError(f"unknown latent space {space!r} (expected one of "
                             f"{', '.join(SPACES)})")
    values = _float_tensor(values, "latent values")
    want = 3 if space == "w+" else 2
    if values.dim() != want or values.shape[0] < 1 or 0 in values.shape:
        raise GanStudioError(f"{space} latent values must be {want}-D with at least one "
                             f"latent, got shape {tuple(values.shape)}")
    if labels is not None:
        labels = _float_tensor(labels, "class/text weights")
        if labels.dim() != 2 or labels.shape[0] != values.shape[0]:
            raise GanStudioError(f"class/text weights must be 2-D with one row per latent "
                                 f"({values.shape[0]}), got shape {tuple(labels.shape)}")
    if seeds is not None:
        if (not isinstance(seeds, list) or len(seeds) != values.shape[0]
                or not all(_is_int(s) and 0 <= s <= MAX_SEED for s in seeds)):
            raise GanStudioError(f"its seeds are not a list of {values.shape[0]} seeds "
                                 f"in 0..{MAX_SEED}")
        seeds = tuple(seeds)
    model_id = meta.get("model_id")
    if model_id is not None and not isinstance(model_id, str):
        raise GanStudioError("its model id is not text")
    psi = meta.get("truncation_psi", 1.0)
    if not _is_number(psi):
        raise GanStudioError(f"its truncation_psi is not a finite number ({psi!r})")
    if extra is not None and not isinstance(extra, dict):
        raise GanStudioError("its extra settings are not a JSON object")
    return LatentBatch(values=values, space=space, labels=labels, seeds=seeds,
                       model_id=model_id, truncation_psi=float(psi), extra=dict(extra or {}),
                       **_restore_optional(meta))


def _float_tensor(t, what: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor) or not (t.is_floating_point() or t.dtype in (
            torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)):
        raise GanStudioError(f"its {what} are not numbers")
    return require_finite(t.float(), f"its {what}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


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
    """A batch from frame records (all from the same model, space and truncation); every
    record is checked (its shape, finite values, field types)."""
    if not records:
        raise GanStudioError("no frame records given")
    rows, labels, seeds = [], [], []
    first = records[0]
    for i, rec in enumerate(records):
        if not isinstance(rec, dict) or rec.get("format") != RECORD_FORMAT:
            raise GanStudioError("not a GAN Studio frame record")
        for key in ("space", "model_id", "truncation_psi", *OPTIONAL_FIELDS):
            if rec.get(key) != first.get(key):
                raise GanStudioError(f"frame records differ in {key}; load them separately")
        rows.append(_record_latent(rec, i))
        label = rec.get("label")
        if label is not None and (not isinstance(label, list)
                                  or not all(_is_number(x) for x in label)):
            raise GanStudioError(f"frame record {i}: its label is not a list of finite numbers")
        labels.append(label)
        seeds.append(rec.get("seed"))
    has_labels = [lab is not None for lab in labels]
    if any(has_labels) and not all(has_labels):
        raise GanStudioError("some frame records carry classes and some do not")
    if all(has_labels) and len({len(lab) for lab in labels}) != 1:
        raise GanStudioError("frame records carry labels of different lengths")
    if len({tuple(r.shape) for r in rows}) != 1:
        raise GanStudioError("frame records hold latents of different shapes")
    return _batch(torch.stack(rows), torch.tensor(labels, dtype=torch.float32)
                  if all(has_labels) else None, first,
                  seeds=seeds if all(s is not None for s in seeds) else None)


def _record_latent(rec: dict, i: int) -> torch.Tensor:
    shape, data = rec.get("shape"), rec.get("latent")
    if (not isinstance(shape, list) or not 1 <= len(shape) <= 2
            or not all(_is_int(d) and 1 <= d <= 1 << 20 for d in shape)):
        raise GanStudioError(f"frame record {i}: its shape is not a list of 1 or 2 sizes")
    if not isinstance(data, str):
        raise GanStudioError(f"frame record {i}: its latent is not base64 text")
    try:
        raw = base64.b64decode(data, validate=True)
    except ValueError:
        raise GanStudioError(f"frame record {i}: its latent is not valid base64") from None
    if len(raw) != 4 * math.prod(shape):
        raise GanStudioError(f"frame record {i}: its latent does not match its shape")
    return torch.from_numpy(np.frombuffer(raw, dtype="<f4").copy()).reshape(shape)


def read_png_record(path: str | Path) -> dict:
    """The frame record embedded in a PNG saved by GAN Studio."""
    from PIL import Image, UnidentifiedImageError

    name = Path(path).name
    try:
        with Image.open(path) as img:
            text = getattr(img, "text", {}).get(PNG_KEY)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise GanStudioError(f"cannot read {name} as an image ({_reason(exc)})") from None
    if text is None:
        raise GanStudioError(f"{name} carries no GAN Studio frame record")
    try:
        record = json.loads(text)
    except RecursionError:
        raise GanStudioError(f"{name}: its frame record is nested too deeply") from None
    except ValueError:
        raise GanStudioError(f"{name}: its frame record is not valid JSON") from None
    if not isinstance(record, dict):
        raise GanStudioError(f"{name}: its frame record is not a JSON object")
    return record


def _reason(exc: BaseException) -> str:
    """An exception's reason without file paths."""
    return getattr(exc, "strerror", None) or type(exc).__name__


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
        if value is None:
            pass
        elif name == "truncation_cutoff" and not (_is_int(value) and 0 <= value <= 1024):
            raise GanStudioError(f"its truncation_cutoff is not a layer count ({value!r})")
        elif name == "view" and not (isinstance(value, list) and len(value) == 3
                                     and all(_is_number(v) for v in value)):
            raise GanStudioError("its view is not three finite numbers (x, y, angle)")
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
