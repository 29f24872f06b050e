"""Activation buffers reused from layer to layer within one generator call.

On the CPU a fresh tensor of more than 32 MB is a fresh mapping from the OS (glibc serves
it with mmap, whatever its thresholds), whose pages are zeroed on first touch: StyleGAN3-T
at 256 px faulted in about 500 MB per image this way, a tenth of its run time on two
threads. A chain of layers needs only two such buffers at a time (each layer's conv output,
dead once its activation has read it, and the activation, dead once the next conv has read
it), so the synthesis network hands its layers one `Scratch` per call.
"""

from __future__ import annotations

import math

import torch


class Scratch:
    """Named flat buffers, each as large as the largest view taken from it."""

    def __init__(self, device: torch.device, dtype: torch.dtype = torch.float32):
        self.device, self.dtype = device, dtype
        self._sizes: dict[str, int] = {}
        self._buffers: dict[str, torch.Tensor] = {}

    def reserve(self, slot: str, shape: tuple[int, ...]) -> None:
        """Make `slot` at least large enough for `shape` (before its first `take`)."""
        self._sizes[slot] = max(self._sizes.get(slot, 0), math.prod(shape))

    def reserved_bytes(self) -> int:
        return sum(self._sizes.values()) * torch.empty((), dtype=self.dtype).element_size()

    def take(self, slot: str, shape: tuple[int, int, int, int]) -> torch.Tensor:
        """A channels-last `[N, C, H, W]` view of the slot; it overwrites whatever an
        earlier view of the same slot held."""
        numel = math.prod(shape)
        buffer = self._buffers.get(slot)
        if buffer is None or buffer.numel() < numel:
            self.reserve(slot, shape)
            buffer = torch.empty(self._sizes[slot], device=self.device, dtype=self.dtype)
            self._buffers[slot] = buffer
        n, c, h, w = shape
        return buffer[:numel].view(n, h, w, c).permute(0, 3, 1, 2)


def fits(out: torch.Tensor | None, shape, dtype: torch.dtype, device: torch.device) -> bool:
    """Whether an op may write its `shape` result into `out` (channels-last, dense)."""
    return (out is not None and tuple(out.shape) == tuple(shape) and out.dtype == dtype
            and out.device == device
            and out.is_contiguous(memory_format=torch.channels_last))
