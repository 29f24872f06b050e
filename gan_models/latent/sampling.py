"""Reproducible sampling of z latents from seeds.

Noise is always drawn on the CPU from a seeded `torch.Generator`, one generator per sample
(seed + index), so a seed gives the same latent on every device and sample i of a batch with
seed s equals sample 0 of a batch with seed s + i.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import GanStudioError

SEED_MODES = ("torch", "nvlabs")
MAX_SEED = 0xFFFFFFFFFFFFFFFF


def seeded_normal(seed: int, batch_size: int, dim: int, mode: str = "torch",
                  truncate: float = 0.0) -> torch.Tensor:
    """`[batch_size, dim]` standard-normal latents for seeds seed, seed+1, ...

    mode "nvlabs" reproduces NVlabs gen_images.py: np.random.RandomState(seed).randn(1, dim)
    (seeds are reduced modulo 2**32, the range RandomState accepts).
    truncate > 0 redraws every value whose magnitude exceeds it (truncated normal).
    """
    if mode not in SEED_MODES:
        raise GanStudioError(f"unknown seed mode {mode!r} (expected one of {SEED_MODES})")
    rows = []
    for i in range(batch_size):
        s = (seed + i) & MAX_SEED
        if mode == "nvlabs":
            rows.append(_nvlabs_row(s % 2**32, dim, truncate))
        else:
            rows.append(_torch_row(s, dim, truncate))
    return torch.stack(rows).float()


def _torch_row(seed: int, dim: int, truncate: float) -> torch.Tensor:
    gen = torch.Generator(device="cpu").manual_seed(seed)
    row = torch.randn(dim, generator=gen, dtype=torch.float64)
    while truncate > 0 and (bad := row.abs() > truncate).any():
        row[bad] = torch.randn(int(bad.sum()), generator=gen, dtype=torch.float64)
    return row


def _nvlabs_row(seed: int, dim: int, truncate: float) -> torch.Tensor:
    rng = np.random.RandomState(seed)
    row = rng.randn(1, dim)[0]
    while truncate > 0 and (bad := np.abs(row) > truncate).any():
        row[bad] = rng.randn(int(bad.sum()))
    return torch.from_numpy(row)
