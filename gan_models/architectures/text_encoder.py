"""A small trainable text encoder for text-conditioned generators (a building block, not a
registered family): lower-cased words -> learned embeddings -> mean -> projection.

The vocabulary is part of the constructor config, so it travels inside the model file's
metadata and a loaded model tokenises exactly as it did in training.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from ..errors import GanStudioError

WORD = re.compile(r"[a-z0-9]+")
MAX_PROMPT_CHARS = 2000


def words(prompt: str) -> list[str]:
    return WORD.findall(str(prompt).lower())


class BagOfWordsEncoder(nn.Module):
    def __init__(self, vocab: list[str], embed_dim: int = 64, word_dim: int = 64):
        super().__init__()
        if not vocab or len(set(vocab)) != len(vocab):
            raise ValueError("vocab must be a non-empty list of distinct words")
        self.vocab = list(vocab)
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.embed_dim = int(embed_dim)
        self.words = nn.EmbeddingBag(len(vocab), word_dim, mode="mean")
        self.project = nn.Linear(word_dim, embed_dim)

    def unknown_words(self, prompts: list[str]) -> list[str]:
        """Words of the prompts the encoder has never seen (they are ignored)."""
        seen = []
        for p in prompts:
            seen += [w for w in words(p) if w not in self.index and w not in seen]
        return seen

    def token_ids(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat word ids and per-prompt offsets for nn.EmbeddingBag."""
        ids, offsets = [], []
        for p in prompts:
            if len(str(p)) > MAX_PROMPT_CHARS:
                raise GanStudioError(f"a prompt is {len(p)} characters long; the limit is "
                                     f"{MAX_PROMPT_CHARS}")
            known = [self.index[w] for w in words(p) if w in self.index]
            if not known:
                raise GanStudioError(
                    f"prompt {str(p)[:80]!r} has no word this model knows; try words like "
                    f"{', '.join(self.vocab[:8])}")
            offsets.append(len(ids))
            ids += known
        device = self.project.weight.device
        return (torch.tensor(ids, dtype=torch.long, device=device),
                torch.tensor(offsets, dtype=torch.long, device=device))

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return self.project(self.words(ids, offsets))

    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        return self(*self.token_ids(prompts))
