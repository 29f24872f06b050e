"""Checks on numbers that come from people and files: NaN and infinity are refused.

NaN slips through every `min <= x <= max` test (each comparison is False), and a NaN latent
silently renders a black image, so numbers are checked for finiteness where they enter:
node inputs (nodes/common.py checks every float input of every node) and tensors read from
files (latent files, PNG frame records). Errors are GanStudioError naming the value.
"""

from __future__ import annotations

import math

import torch

from .errors import GanStudioError


def is_finite_number(value) -> bool:
    """True for an int, or a float that is neither NaN nor infinite."""
    if isinstance(value, bool) or isinstance(value, int):
        return True
    try:
        return math.isfinite(value)
    except (TypeError, ValueError, OverflowError):
        return False


def require_finite(value, name: str, hint: str = ""):
    """Return `value` (a number or a tensor) when every entry is finite; otherwise raise a
    GanStudioError naming it ("truncation_psi is not a finite number (nan)", "the latent
    values of x.safetensors: 3 of 512 entries are NaN or infinite"). `hint` follows after '; '."""
    tail = f"; {hint}" if hint else ""
    if isinstance(value, torch.Tensor):
        if value.is_floating_point() or value.is_complex():
            bad = int((~torch.isfinite(value)).sum())
            if bad:
                raise GanStudioError(f"{name}: {bad} of {value.numel()} entries are NaN or "
                                     f"infinite{tail}")
        return value
    if not is_finite_number(value):
        raise GanStudioError(f"{name} is not a finite number ({value!r}){tail}")
    return value
