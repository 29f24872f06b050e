"""Class weights carried by latents: one-hot rows, and rows from a parsed class mix."""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable

import torch

from ..errors import GanStudioError
from .grammar import Weighted

MIX_MODES = ("mix", "cycle")
LIST_ALL_UP_TO = 20  # a model with this many classes or fewer lists them all when one is unknown


def unknown_class_hint(name: str, class_names: list[str]) -> str:
    """What to say about a class name the model does not have: every class of a small
    model, else the nearest valid names (difflib), so a typo in 1,000 ImageNet names is
    one look away from its fix."""
    if len(class_names) <= LIST_ALL_UP_TO:
        return f"model classes are {', '.join(class_names)}"
    lowered = {n.lower(): n for n in reversed(class_names)}
    wanted = name.strip().lower()
    close = difflib.get_close_matches(wanted, list(lowered), n=5, cutoff=0.6)
    # also names that contain the word typed ("retriever" -> the four retrievers)
    close += [n for n in lowered if wanted and wanted in n and n not in close][:5 - len(close)]
    if close:
        return (f"nearest valid names: {', '.join(repr(lowered[n]) for n in close)} "
                f"(or a class index 0..{len(class_names) - 1})")
    return (f"no class name is close; the model has {len(class_names)} classes, e.g. "
            f"{', '.join(class_names[:5])} (or use a class index 0..{len(class_names) - 1})")


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
