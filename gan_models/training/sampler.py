"""Which images each step trains on: deterministic, stateless, shardable.

The data stream is an endless run of epochs; epoch e is a permutation drawn from
(seed, e), with an x-flip decision per position. Step s trains on stream positions
[s * G, (s + 1) * G) for a global batch G, and each rank takes its contiguous slice of that
global batch. Because everything is a pure function of (seed, step), resuming needs no
sampler state, and a run on W ranks sees exactly the images of a single-process run.
"""

from __future__ import annotations

import torch

from .seeding import derive_seed


class StepSampler:
    def __init__(self, num_items: int, global_batch: int, seed: int, xflip: bool):
        if num_items < 1 or global_batch < 1:
            raise ValueError("num_items and global_batch must be positive")
        self.n, self.batch, self.seed, self.xflip = num_items, global_batch, seed, xflip
        self._epochs: dict[int, tuple[torch.Tensor, torch.Tensor | None]] = {}

    def _epoch(self, e: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        if e not in self._epochs:
            gen = torch.Generator().manual_seed(derive_seed(self.seed, "epoch", e))
            perm = torch.randperm(self.n, generator=gen)
            flips = torch.rand(self.n, generator=gen) < 0.5 if self.xflip else None
            if len(self._epochs) >= 4:  # a step spans at most a few epochs: keep the newest
                self._epochs.pop(min(self._epochs))
            self._epochs[e] = (perm, flips)
        return self._epochs[e]

    def global_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(indices `[G]` int64, x-flip flags `[G]` bool or None) of one training step."""
        start, end = step * self.batch, (step + 1) * self.batch
        idx, flips = [], []
        pos = start
        while pos < end:
            e, offset = divmod(pos, self.n)
            take = min(self.n - offset, end - pos)
            perm, flip = self._epoch(e)
            idx.append(perm[offset:offset + take])
            if flip is not None:
                flips.append(flip[offset:offset + take])
            pos += take
        return torch.cat(idx), (torch.cat(flips) if flips else None)
