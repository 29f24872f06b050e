"""Exponential moving average of the generator's weights (the model users get).

The decay is set as a half-life in images (NVlabs' ema_kimg): beta = 0.5 ** (batch / half_life).
Early in training the half-life is capped at `rampup` x images seen, so the average is not
dominated by the random initial weights. Buffers (BatchNorm statistics) are copied as is.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, module: nn.Module, half_life_kimg: float = 10.0,
                 rampup: float | None = 0.05):
        self.module = copy.deepcopy(module).eval().requires_grad_(False)
        self.half_life_kimg = float(half_life_kimg)
        self.rampup = rampup

    def beta(self, images_seen: int, batch: int) -> float:
        half_life = self.half_life_kimg * 1000
        if self.rampup is not None:
            half_life = min(half_life, images_seen * self.rampup)
        return 0.5 ** (batch / max(half_life, 1e-8))

    @torch.no_grad()
    def update(self, source: nn.Module, images_seen: int, batch: int) -> None:
        """Blend source into the average; images_seen counts this step's batch already."""
        beta = self.beta(images_seen, batch)
        for p_ema, p in zip(self.module.parameters(), source.parameters(), strict=True):
            p_ema.copy_(p.detach().lerp(p_ema, beta))
        for b_ema, b in zip(self.module.buffers(), source.buffers(), strict=True):
            b_ema.copy_(b)
