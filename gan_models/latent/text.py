"""Text conditions carried by latents: rows of text embeddings from a parsed prompt mix."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..errors import GanStudioError
from .classes import MIX_MODES
from .grammar import Weighted


def text_rows(entries: list[list[Weighted]], encode: Callable[[list[str]], torch.Tensor],
              count: int, mode: str = "mix") -> torch.Tensor:
    """`[count, embed_dim]` condition rows from `grammar.parse_mix(..., what="prompt")`.

    Each entry's '+'-joined prompts are averaged with their weights; mode "mix" averages all
    entries into one row for every sample, "cycle" gives sample i entry i % len(entries).
    encode turns prompts into embeddings (GenerativeModel.encode_text).
    """
    if mode not in MIX_MODES:
        raise GanStudioError(f"unknown prompt mode {mode!r} (expected one of {MIX_MODES})")
    if not entries:
        raise GanStudioError("no prompt given")
    if mode == "mix":
        entries = [[part for entry in entries for part in entry]]
    prompts = sorted({part.name for entry in entries for part in entry})
    embedded = dict(zip(prompts, encode(prompts)))
    rows = []
    for entry in entries:
        total = sum(part.weight for part in entry)
        if total <= 0:
            names = " + ".join(part.name for part in entry)
            raise GanStudioError(f"the weights of {names!r} add up to 0; give at least one "
                                 "prompt a weight above 0")
        rows.append(sum(part.weight * embedded[part.name] for part in entry) / total)
    return torch.stack(rows)[torch.arange(count) % len(rows)]
