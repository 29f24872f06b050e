"""Latent batches and reproducible sampling.

Noise is always drawn on the CPU from a seeded `torch.Generator`, one generator per sample
(seed + index), so a seed gives the same latent on every device and sample i of a batch with
seed s equals sample 0 of a batch with seed s + i.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

from .errors import GanStudioError

SPACES = ("z", "w", "w+")
SEED_MODES = ("torch", "nvlabs")
MAX_SEED = 0xFFFFFFFFFFFFFFFF


@dataclass(frozen=True)
class LatentBatch:
    """What travels between nodes as GAN_LATENT.

    values: z `[B, z_dim]`, w `[B, w_dim]` or w+ `[B, num_ws, w_dim]` (float32, CPU).
    labels: per-sample class weights `[B, num_classes]` (one-hot, or a mix that sums to 1).
    truncation_psi: pull toward the average latent, applied when the batch is synthesized.
    truncation_cutoff: style models: apply psi only to the first N style layers (None = all).
    view: StyleGAN3 view (translate_x, translate_y, rotate_degrees) applied at synthesis.
    """

    values: torch.Tensor
    space: str = "z"
    labels: torch.Tensor | None = None
    seeds: tuple[int, ...] | None = None
    model_id: str | None = None
    truncation_psi: float = 1.0
    truncation_cutoff: int | None = None
    view: tuple[float, float, float] | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.space not in SPACES:
            raise GanStudioError(f"unknown latent space {self.space!r} (expected one of {SPACES})")
        want = 3 if self.space == "w+" else 2
        if self.values.dim() != want:
            raise GanStudioError(
                f"{self.space} latents must have {want} dims, got shape {tuple(self.values.shape)}")
        if self.labels is not None and self.labels.shape[0] != self.values.shape[0]:
            raise GanStudioError(
                f"{self.labels.shape[0]} labels for {self.values.shape[0]} latents")
        if self.seeds is not None and len(self.seeds) != self.values.shape[0]:
            raise GanStudioError(f"{len(self.seeds)} seeds for {self.values.shape[0]} latents")

    def __len__(self) -> int:
        return self.values.shape[0]

    def with_labels(self, labels: torch.Tensor | None) -> "LatentBatch":
        return replace(self, labels=labels)

    def select(self, index: slice | list[int]) -> "LatentBatch":
        """A sub-batch (a chunk for generation, or picked samples)."""
        idx = list(range(len(self)))[index] if isinstance(index, slice) else list(index)
        return replace(
            self,
            values=self.values[idx],
            labels=None if self.labels is None else self.labels[idx],
            seeds=None if self.seeds is None else tuple(self.seeds[i] for i in idx),
        )


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


def one_hot_weights(indices_and_weights: list[tuple[int, float]], num_classes: int) -> torch.Tensor:
    """A `[num_classes]` class vector from (index, weight) pairs, normalised to sum to 1."""
    vec = torch.zeros(num_classes)
    for idx, weight in indices_and_weights:
        vec[idx] += weight
    total = float(vec.sum())
    if total <= 0:
        raise GanStudioError("class weights must add up to more than 0")
    return vec / total
