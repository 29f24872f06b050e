"""Images into VAE latents and back: encoding, reconstruction grids, and latent arithmetic
(which works on any latent batch, GAN or VAE). Image preprocessing lives in images.py.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .errors import GanStudioError
from .images import SIZE_MODES, to_model_input, with_mask_alpha  # noqa: F401  (VAE callers)
from .latent import LatentBatch, check_compatible, class_rows, parse_mix
from .model import GenerativeModel, to_unit_hwc


# --- classes --------------------------------------------------------------------------------
def class_weights(model: GenerativeModel, text: str, count: int) -> torch.Tensor | None:
    """Per-image class weights `[count, num_classes]` from text, or None when the model is
    unconditional and no class is given.

    'cat' -> every image is a cat; 'cat, dog' -> image i takes the i-th entry, cycling;
    'cat:0.7 + dog:0.3' -> a mixed class for that entry. Names or indices (latent.grammar).
    """
    entries = parse_mix(text, allow_empty=True)
    if not entries:
        if model.num_classes:
            raise GanStudioError(f"model {model.describe()} is class-conditional: give the "
                                 "images' classes, e.g. 'cat' or 'cat, dog' (one per image)")
        return None
    return class_rows(entries, model.num_classes, model.class_index, count, "cycle")


# --- encoding and reconstruction ----------------------------------------------------------
@torch.no_grad()
def encode_images(model: GenerativeModel, x: torch.Tensor, labels: torch.Tensor | None = None,
                  sample: bool = False, seed: int = 0, chunk_size: int = 64,
                  on_chunk: Callable[[int], None] | None = None) -> LatentBatch:
    """Model inputs `[B, C, R, R]` in [-1, 1] -> z latents on the CPU: the encoder's mean, or
    a sample whose noise for image i comes from seed + i (independent of chunking).
    Deterministic encoders (VQ-VAE) always give their one latent."""
    parts = []
    for start in range(0, x.shape[0], chunk_size):
        c = None if labels is None else labels[start:start + chunk_size]
        parts.append(model.encode(x[start:start + chunk_size], c, sample, seed + start).values)
        if on_chunk is not None:
            on_chunk(start + len(parts[-1]))
    return LatentBatch(values=torch.cat(parts), space="z",
                       labels=None if labels is None else labels.float().cpu(),
                       model_id=model.model_id)


@torch.no_grad()
def reconstruct(model: GenerativeModel, x: torch.Tensor, labels: torch.Tensor | None = None,
                chunk_size: int = 64, on_chunk: Callable[[int], None] | None = None,
                ) -> torch.Tensor:
    """decode(encode_mean(x)): `[B, C, R, R]` in [-1, 1] -> `[B, R, R, 3]` 0..1 on the CPU."""
    out = []
    for start in range(0, x.shape[0], chunk_size):
        sl = slice(start, start + chunk_size)
        latents = encode_images(model, x[sl], None if labels is None else labels[sl])
        out.append(to_unit_hwc(model.synthesize(latents)).cpu())
        if on_chunk is not None:
            on_chunk(start + len(latents))
    return torch.cat(out)


def reconstruction_grid(inputs: torch.Tensor, recons: torch.Tensor, pairs_per_row: int = 4,
                        pad: int = 2) -> torch.Tensor:
    """Side-by-side pairs input|reconstruction, `pairs_per_row` pairs per row, on white:
    `[B, R, R, 3]` x2 (0..1) -> one `[H, W, 3]` image."""
    if inputs.shape != recons.shape:
        raise GanStudioError(f"{tuple(inputs.shape)} inputs vs {tuple(recons.shape)} "
                             "reconstructions")
    n, h, w, c = inputs.shape
    cols = max(1, min(pairs_per_row, n))
    rows = -(-n // cols)
    pair_w = 2 * w + pad  # a thin gap inside a pair, a wider one between pairs
    gap = 3 * pad
    grid = torch.ones(rows * (h + gap) + gap, cols * (pair_w + gap) + gap, c)
    for i in range(n):
        r, k = divmod(i, cols)
        y, x = gap + r * (h + gap), gap + k * (pair_w + gap)
        grid[y:y + h, x:x + w] = inputs[i].float().cpu()
        grid[y:y + h, x + w + pad:x + pair_w] = recons[i].float().cpu()
    return grid


# --- latent arithmetic ----------------------------------------------------------------------
def latent_arithmetic(a: LatentBatch, b: LatentBatch | None = None, c: LatentBatch | None = None,
                      weight_a: float = 1.0, weight_b: float = 1.0,
                      weight_c: float = 1.0) -> LatentBatch:
    """weight_a * a - weight_b * b + weight_c * c, sample by sample.

    Batches of one latent are broadcast over the others' batch size. Class weights combine
    the same way (negative parts clipped, rows renormalised to sum to 1)."""
    terms = [(t, w) for t, w in ((a, weight_a), (b, -weight_b), (c, weight_c)) if t is not None]
    for t, _ in terms[1:]:
        check_compatible(a, t)
    sizes = {len(t) for t, _ in terms} - {1}
    if len(sizes) > 1:
        raise GanStudioError(f"batch sizes {sorted(len(t) for t, _ in terms)} do not match; "
                             "give batches of the same size, or single latents to broadcast")
    n = sizes.pop() if sizes else 1
    values = sum(w * _expand(t.values, n) for t, w in terms)
    labelled = [(t, w) for t, w in terms if t.labels is not None]
    labels = None
    if labelled:
        mix = sum(w * _expand(t.labels, n) for t, w in labelled).clamp(min=0)
        total = mix.sum(1, keepdim=True)
        if bool((total <= 1e-8).any()):
            raise GanStudioError("the class weights cancel out (nothing positive is left); "
                                 "change the weights or set classes afterwards with Class "
                                 "Condition")
        labels = mix / total
    model_id = next((t.model_id for t, _ in terms if t.model_id), None)
    return LatentBatch(values=values.float(), space=a.space, labels=labels, seeds=None,
                       model_id=model_id, truncation_psi=a.truncation_psi)


def _expand(t: torch.Tensor, n: int) -> torch.Tensor:
    return t.expand(n, *t.shape[1:]) if t.shape[0] == 1 else t
