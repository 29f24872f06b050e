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


# --- CLIP pooled embeddings ------------------------------------------------------------------
TEXT_INPUTS = ("words", "clip_pooled")


def text_input_of(model) -> str:
    """What text a text-conditioned model was trained on: 'words' (its own word encoder)
    or 'clip_pooled' (a CLIP text model's pooled output)."""
    return getattr(model.networks["text_encoder"], "text_input", "words")


@torch.no_grad()
def pooled_rows(model, pooled: list[torch.Tensor], count: int) -> torch.Tensor:
    """`[count, embed_dim]` condition rows from CLIP pooled outputs (each `[n, width]`),
    cycled over the batch; refused by a model trained on its own words."""
    if text_input_of(model) != "clip_pooled":
        raise GanStudioError(
            f"model {model.describe()} was trained with its own word encoder; type the prompt "
            "instead (a CLIP conditioning only fits models trained on CLIP pooled embeddings)")
    if not pooled:
        raise GanStudioError("the conditioning holds no pooled output")
    rows = []
    for p in pooled:
        if not torch.is_tensor(p) or not p.is_floating_point() or p.dim() not in (1, 2):
            raise GanStudioError("a CLIP pooled output must be a float tensor [n, width]")
        if not bool(torch.isfinite(p).all()):
            raise GanStudioError("the CLIP pooled output holds NaN or infinite values")
        rows.append(p.reshape(-1, p.shape[-1]).float().cpu())
    if len({r.shape[1] for r in rows}) > 1:
        raise GanStudioError("the conditioning's pooled outputs differ in width: use one CLIP "
                             "model for all of them")
    encoder = model.networks["text_encoder"]
    embedded = encoder.encode_pooled(torch.cat(rows).to(model.device)).float().cpu()
    return embedded[torch.arange(count) % len(embedded)]
