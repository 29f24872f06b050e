"""Helpers the benchmark scripts share (each script runs as `python bench/NAME.py`, so this
folder is on sys.path)."""

from __future__ import annotations

import resource
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB


def use_library() -> None:
    """Make the library importable (only in processes that never import ComfyUI)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
