"""Checkpoint format detection by content, never by file extension."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

from ..errors import CheckpointError
from .tagged import safetensors_metadata  # noqa: F401  (header reader, re-exported)

SAFETENSORS = "safetensors"
TORCH_ZIP = "torch-zip"      # torch.save (rosinality .pt, pix2pix .pth, ...)
PICKLE = "pickle"            # NVlabs network pickles and other raw pickles
UNKNOWN = "unknown"


def detect_format(path: str | Path) -> str:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    size = path.stat().st_size
    if size < 8:
        raise CheckpointError(f"{path.name} is empty or truncated ({size} bytes)")
    with open(path, "rb") as f:
        head = f.read(16)
    if head[:4] == b"PK\x03\x04":
        return TORCH_ZIP if _is_torch_zip(path) else UNKNOWN
    if head[0] == 0x80 and 2 <= head[1] <= 5:
        return PICKLE
    (header_len,) = struct.unpack("<Q", head[:8])
    if 2 <= header_len <= 100_000_000 and head[8:9] == b"{":
        return SAFETENSORS
    return UNKNOWN


def _is_torch_zip(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("data.pkl") for n in z.namelist())
    except zipfile.BadZipFile:
        return False
