"""Stable seeds derived from (run seed, purpose, counters), identical in every process.

Training randomness is drawn from generators seeded this way instead of from global RNG
state, so a step's noise depends only on the run seed and the step number.
"""

from __future__ import annotations

import hashlib

import torch


def derive_seed(seed: int, *parts) -> int:
    """A 63-bit seed from the run seed and any labels/counters (blake2b of their text)."""
    text = "/".join(str(p) for p in (int(seed), *parts)).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1


class BatchRandom:
    """Per-sample random draws for one slice of a global batch.

    Every draw is made for the whole global batch from a CPU generator and sliced to
    rows [lo, hi): a slice on any rank or micro-batch gets exactly the rows it would have in a
    single process. A fresh BatchRandom with the same seed replays the same sequence.
    """

    def __init__(self, seed: int, global_batch: int, lo: int, hi: int,
                 device: torch.device | str = "cpu"):
        self.gen = torch.Generator().manual_seed(seed)
        self.global_batch, self.lo, self.hi, self.device = global_batch, lo, hi, device

    def _rows(self, t: torch.Tensor) -> torch.Tensor:
        return t[self.lo:self.hi].to(self.device)

    def normal(self, *shape: int) -> torch.Tensor:
        return self._rows(torch.randn((self.global_batch, *shape), generator=self.gen))

    def uniform(self, *shape: int) -> torch.Tensor:
        return self._rows(torch.rand((self.global_batch, *shape), generator=self.gen))

    def randint(self, high: int, *shape: int) -> torch.Tensor:
        return self._rows(torch.randint(high, (self.global_batch, *shape), generator=self.gen))
