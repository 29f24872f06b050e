"""Picking, joining and repeating latents of a batch (editing an animation's frame list)."""

from __future__ import annotations

from dataclasses import replace

import torch

from ..errors import GanStudioError
from .batch import LatentBatch, check_compatible

REPEAT_MODES = ("whole batch", "each latent")


def pick(batch: LatentBatch, indices: list[int]) -> LatentBatch:
    """Latents at the given positions (negative counts from the end), in the given order."""
    n = len(batch)
    resolved = []
    for i in indices:
        if not -n <= i < n:
            raise GanStudioError(f"index {i} is out of range for a batch of {n} latents "
                                 f"(0..{n - 1}, or -1 for the last)")
        resolved.append(i % n)
    return batch.select(resolved)


def concat(a: LatentBatch, b: LatentBatch) -> LatentBatch:
    """a's latents followed by b's (same model, space, truncation and conditioning)."""
    check_compatible(a, b)
    seeds = a.seeds + b.seeds if a.seeds is not None and b.seeds is not None else None
    labels = None if a.labels is None else torch.cat([a.labels, b.labels])
    return replace(a, values=torch.cat([a.values, b.values]), labels=labels, seeds=seeds,
                   model_id=a.model_id or b.model_id, extra={})


def repeat(batch: LatentBatch, times: int, mode: str = "whole batch") -> LatentBatch:
    """'whole batch': a b c a b c; 'each latent': a a b b c c."""
    if times < 1:
        raise GanStudioError(f"times must be at least 1, got {times}")
    n = len(batch)
    if mode == "whole batch":
        order = [i for _ in range(times) for i in range(n)]
    elif mode == "each latent":
        order = [i for i in range(n) for _ in range(times)]
    else:
        raise GanStudioError(f"unknown repeat mode {mode!r} (expected one of {REPEAT_MODES})")
    return batch.select(order)
