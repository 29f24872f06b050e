"""The latent batch type (GAN_LATENT) and the rule for which batches can be mixed."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from ..errors import GanStudioError

SPACES = ("z", "w", "w+")


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


def check_compatible(a: LatentBatch, b: LatentBatch, what: str = "latents") -> None:
    """Raise when two latent batches cannot be mixed into one."""
    if a.space != b.space:
        raise GanStudioError(f"cannot mix {what} in {a.space} space with {what} in {b.space}")
    if a.values.shape[1:] != b.values.shape[1:]:
        raise GanStudioError(f"{what} have different shapes {tuple(a.values.shape[1:])} and "
                             f"{tuple(b.values.shape[1:])}")
    if a.model_id and b.model_id and a.model_id != b.model_id:
        raise GanStudioError(f"{what} come from different models ({a.model_id} and "
                             f"{b.model_id}); sample both from the same model")
    for name in ("truncation_psi", "truncation_cutoff", "view"):
        va, vb = getattr(a, name, None), getattr(b, name, None)
        if va != vb:
            raise GanStudioError(f"{what} have different {name} ({va} and {vb}); use the same "
                                 "value for both")
    if (a.labels is None) != (b.labels is None):
        raise GanStudioError(f"one set of {what} has classes and the other has none; add the "
                             "same Class Condition to both or to neither")
