"""Tagged safetensors: tensors plus one JSON document, the file's only reader and writer.

Every file GAN Studio writes (models, training states, latent batches, classifiers, feature
statistics) is a .safetensors file whose `__metadata__` holds its JSON under one key, the
tag (e.g. "gan_studio", "gan_studio_latents"). The tag says what the file is:

    write_tagged(path, tensors, tag, meta)     atomic: a crash never leaves half a file
    read_tagged_meta(path, tag, what) -> meta  from the header alone, no tensor is read
    read_tagged(path, tag, what) -> (tensors, meta)

`what` names the kind of file in messages ("GAN Studio latent file"). Every failure is a
CheckpointError naming the file (never its folder): not a safetensors file, a header that
is truncated, oversized, not JSON or nested without end, a missing tag, corrupt tensors.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import CheckpointError
from .atomic import atomic_path
from .budgets import MAX_HEADER_BYTES, MAX_METADATA_BYTES, load_json

# MAX_HEADER_BYTES (imported from budgets.py, where every loader limit lives): the largest
# header read (the safetensors library refuses larger ones too); checked against the file
# size before anything is read, so a random file never makes us read gigabytes.


# --- writing ------------------------------------------------------------------------------
def write_tagged(path: str | Path, tensors: dict[str, torch.Tensor], tag: str, meta: dict,
                 extra_metadata: dict[str, str] | None = None) -> Path:
    """Write `tensors` with `meta` (JSON values) under `tag`, atomically. extra_metadata
    adds plain string entries to `__metadata__` beside the tag."""
    path = Path(path)
    metadata = {str(k): str(v) for k, v in (extra_metadata or {}).items()}
    if tag in metadata:
        raise ValueError(f"extra_metadata must not use the tag {tag!r}")
    metadata[tag] = json.dumps(meta)
    stored = _storable(tensors)
    with atomic_path(path) as tmp:
        save_file(stored, tmp, metadata=metadata)
    return path


def _storable(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached contiguous CPU tensors, none sharing memory with another (safetensors
    refuses shared storage, e.g. tied weights or views of one buffer)."""
    out, seen = {}, set()
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"tensor {name!r} is a {type(t).__name__}, not a torch.Tensor")
        t = t.detach().to("cpu").contiguous()
        storage = t.untyped_storage().data_ptr()
        if t.numel() and storage in seen:
            t = t.clone()
            storage = t.untyped_storage().data_ptr()
        seen.add(storage)
        out[str(name)] = t
    return out


# --- reading ------------------------------------------------------------------------------
def read_tagged_meta(path: str | Path, tag: str, what: str, hint: str = "") -> dict:
    """The JSON object stored under `tag`, read from the header alone. `hint` follows the
    message when the tag is missing (what the file might be instead, what to do)."""
    path = Path(path)
    raw = safetensors_metadata(path).get(tag)
    if raw is None:
        raise CheckpointError(f"{path.name} is not a {what}" + (f"; {hint}" if hint else ""))
    meta = _parse_json(raw, path, f"its {what} metadata", MAX_METADATA_BYTES)
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path.name}: its {what} metadata is not a JSON object")
    return meta


def read_tagged_tensors(path: str | Path, what: str) -> dict[str, torch.Tensor]:
    """All tensors of the file (on the CPU); call after read_tagged_meta has checked what
    the file is."""
    path = Path(path)
    try:
        return load_file(str(path))
    except (SafetensorError, ValueError) as exc:
        raise CheckpointError(f"{what} {path.name} is corrupt or truncated ({exc})") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read {what} {path.name} ({exc.strerror})") from None


def read_tagged(path: str | Path, tag: str, what: str, hint: str = ""
                ) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, meta) of a file written by write_tagged with this tag."""
    meta = read_tagged_meta(path, tag, what, hint)
    return read_tagged_tensors(path, what), meta


def safetensors_metadata(path: str | Path) -> dict[str, str]:
    """The `__metadata__` of a safetensors file ({} when it has none), from its header."""
    path = Path(path)
    header = _parse_json(_header_bytes(path), path, "its safetensors header")
    if not isinstance(header, dict):
        raise CheckpointError(f"{path.name} is corrupt: its safetensors header is not an object")
    metadata = header.get("__metadata__") or {}
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise CheckpointError(f"{path.name} is corrupt: its __metadata__ is not a string table")
    return metadata


def _header_bytes(path: Path) -> bytes:
    """The JSON header of a safetensors file, after checking its declared length fits."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(9)
            if len(head) < 9 or head[8:9] != b"{":
                raise CheckpointError(f"{path.name} is not a safetensors file")
            (n,) = struct.unpack("<Q", head[:8])
            if n < 2:
                raise CheckpointError(f"{path.name} is not a safetensors file")
            if n > MAX_HEADER_BYTES:
                raise CheckpointError(
                    f"{path.name} is not a safetensors file GAN Studio reads: its header "
                    f"declares {n} bytes, over the limit of {MAX_HEADER_BYTES}")
            if n > size - 8:
                raise CheckpointError(
                    f"{path.name} is corrupt or truncated: its header declares {n} bytes but "
                    f"the file holds only {size - 8} after the length field")
            return head[8:] + f.read(n - 1)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise CheckpointError(f"{path.name} not found") from None
        raise CheckpointError(f"cannot read {path.name} ({exc.strerror})") from None


def _parse_json(raw: str | bytes, path: Path, part: str, max_bytes: int | None = None):
    # size and nesting within budgets (MAX_METADATA_BYTES, MAX_JSON_DEPTH)
    return load_json(raw, path.name, part, MAX_HEADER_BYTES if max_bytes is None else max_bytes)
