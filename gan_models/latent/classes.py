"""Class weights carried by latents: one-hot rows, and rows from a parsed class mix."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..errors import GanStudioError
from .grammar import Weighted

MIX_MODES = ("mix", "cycle")


def one_hot_weights(indices_and_weights: list[tuple[int, float]], num_classes: int) -> torch.Tensor:
    """A `[num_classes]` class vector from (index, weight) pairs, normalised to sum to 1."""
    vec = torch.zeros(num_classes)
    for idx, weight in indices_and_weights:
        vec[idx] += weight
    total = float(vec.sum())
    if not math.isfinite(total) or total <= 0:
        raise GanStudioError("class weights must be finite and add up to more than 0")
    return vec / total


def class_rows(entries: list[list[Weighted]], num_classes: int,
               class_index: Callable[[str], int], count: int,
               mode: str = "cycle") -> torch.Tensor:
    """`[count, num_classes]` class weights (rows sum to 1) from `grammar.parse_mix` entries.

    mode "mix": every row is the weighted mix of all the names; "cycle": row i is entry
    i % len(entries), itself a mix of its '+'-joined names. class_index resolves a name or
    index (GenerativeModel.class_index) and raises for unknown ones.
    """
    if mode not in MIX_MODES:
        raise GanStudioError(f"unknown class mode {mode!r} (expected one of {MIX_MODES})")
    if not entries:
        raise GanStudioError("no class given")
    if mode == "mix":
        entries = [[part for entry in entries for part in entry]]
    rows = []
    for entry in entries:
        pairs = [(class_index(part.name), part.weight) for part in entry]
        if sum(weight for _, weight in pairs) <= 0:
            names = " + ".join(part.name for part in entry)
            raise GanStudioError(f"the weights of {names!r} add up to 0; give at least one "
                                 "class a weight above 0")
        rows.append(one_hot_weights(pairs, num_classes))
    return torch.stack(rows)[torch.arange(count) % len(rows)]
