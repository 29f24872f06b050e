"""Class "genes": seeded mutations of class weights, the Ganbreeder/Artbreeder way of
exploring a class-conditional model (BigGAN above all) around a class mix.

A mutation works over classes, so the result stays what every class-conditional model
accepts (non-negative weights summing to 1):
  * every class already in the mix has its weight scaled by exp(strength * n), n ~ N(0, 1);
  * `new_classes` classes drawn at random join with weight strength * u, u ~ U(0, 1)
    (relative to a mix that sums to 1);
then the row is normalised. strength 0 changes nothing; the same seed gives the same
mutation. Rows either share one mutation (a batch of latents, one "gene") or each draw
their own from seed + row.
"""

from __future__ import annotations

import math

import torch

from ..errors import GanStudioError

MAX_NEW_CLASSES = 64


def mutate_classes(labels: torch.Tensor, seed: int, strength: float, new_classes: int = 2,
                   per_row: bool = False) -> torch.Tensor:
    """`[B, num_classes]` class weights -> mutated `[B, num_classes]` weights (rows sum to 1)."""
    if labels.dim() != 2 or labels.shape[1] < 1:
        raise GanStudioError(f"class weights must be [batch, classes], got {tuple(labels.shape)}")
    if not (math.isfinite(strength) and strength >= 0):
        raise GanStudioError(f"strength must be a finite number of 0 or more, got {strength}")
    if not 0 <= new_classes <= MAX_NEW_CLASSES:
        raise GanStudioError(f"new_classes must be 0..{MAX_NEW_CLASSES}, got {new_classes}")
    if (labels < 0).any() or not torch.isfinite(labels).all():
        raise GanStudioError("class weights must be finite and not negative")
    rows = []
    for i, row in enumerate(labels.float()):
        gen = torch.Generator().manual_seed((seed + (i if per_row else 0)) & 0xFFFFFFFFFFFFFFFF)
        rows.append(_mutate_row(row, gen, float(strength), int(new_classes)))
    return torch.stack(rows)


def _mutate_row(row: torch.Tensor, gen: torch.Generator, strength: float,
                new_classes: int) -> torch.Tensor:
    n = row.shape[0]
    total = float(row.sum())
    if total <= 0:
        raise GanStudioError("class weights add up to 0; give a class a weight first")
    row = row / total
    # Draw every random number whatever the strength, so strength only scales the change.
    jitter = torch.randn(n, generator=gen)
    picks = torch.randperm(n, generator=gen)[:new_classes]
    amounts = torch.rand(len(picks), generator=gen)
    out = row * torch.exp(strength * jitter)
    out[picks] += strength * amounts
    return out / out.sum()
