"""Values derived from a weight tensor (demodulation sums, Winograd-transformed kernels),
kept per weight until the weight changes, and freed with it."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.weak import WeakIdKeyDictionary


class PerWeight:
    """A cache keyed by weight tensor (weakly), checked against the weight's stamp."""

    def __init__(self):
        self._entries = WeakIdKeyDictionary()  # weight -> (stamp, value)

    def get(self, weight: torch.Tensor, compute: Callable[[torch.Tensor], object]):
        """`compute(weight)`, or what it gave for the weight's current values."""
        stamp = _stamp(weight)
        hit = self._entries.get(weight)
        if hit is not None and _same(hit[0], stamp):
            return hit[1]
        value = compute(weight)
        try:
            self._entries[weight] = (stamp, value)
        except TypeError:  # tensors that cannot be weakly referenced: no cache
            pass
        return value


def _stamp(weight: torch.Tensor) -> tuple:
    """What tells the weight's current values apart: its storage, device and dtype (moving
    a module swaps them without an in-place change) and its version counter, which every
    in-place change moves. Inference tensors (weights loaded inside ComfyUI's inference
    mode) have no version counter; for them, a fixed sample of 4096 of their values."""
    if weight.is_inference():
        flat = weight.detach().reshape(-1)
        values = flat[::max(1, flat.numel() // 4096)].clone()
    else:
        values = weight._version
    return weight.data_ptr(), weight.device, weight.dtype, values


def _same(a: tuple, b: tuple) -> bool:
    if a[:3] != b[:3] or torch.is_tensor(a[3]) != torch.is_tensor(b[3]):
        return False
    return torch.equal(a[3], b[3]) if torch.is_tensor(a[3]) else a[3] == b[3]
