"""Picking, joining and repeating latents of a batch (editing an animation's frame list)."""

from __future__ import annotations

from dataclasses import replace

import torch

from .animation import check_compatible
from .errors import GanStudioError
from .latents import MAX_SEED, LatentBatch

REPEAT_MODES = ("whole batch", "each latent")


def parse_int_list(text: str, what: str = "value", minimum: int | None = None,
                   example: str = "0, 2-4") -> list[int]:
    """'1, 5, 42' or '0,2-4' -> [0, 2, 3, 4]. Ranges are inclusive and may run downwards
    ('4-2' -> 4, 3, 2); a lone negative number ('-1') is kept as is."""
    out: list[int] = []
    for part in text.replace("\n", ",").replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            cut = part.find("-", 1)  # a range's dash, not a leading minus sign
            if cut > 0:
                lo, hi = int(part[:cut]), int(part[cut + 1:])
                step = 1 if hi >= lo else -1
                if abs(hi - lo) > 1_000_000:
                    raise GanStudioError(f"range {part!r} is too long")
                out.extend(range(lo, hi + step, step))
            else:
                out.append(int(part))
        except ValueError:
            raise GanStudioError(f"{part!r} is not a {what} or range; write e.g. {example}"
                                 ) from None
    if not out:
        raise GanStudioError(f"no {what} given; write e.g. {example}")
    if minimum is not None and (bad := [v for v in out if v < minimum]):
        raise GanStudioError(f"{what} {bad[0]} is below {minimum}")
    return out


def parse_seeds(text: str) -> list[int]:
    seeds = parse_int_list(text, "seed", minimum=0, example="1, 5, 42")
    if (big := [s for s in seeds if s > MAX_SEED]):
        raise GanStudioError(f"seed {big[0]} is above the largest seed {MAX_SEED}")
    return seeds


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
