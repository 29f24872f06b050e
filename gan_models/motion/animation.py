"""Animations as latent batches: transitions, keyframe paths and looping walks.

The tensor math lives in `interpolation` and `paths`; this module carries the rest of a
LatentBatch along (space, model id, truncation and every other setting, with the class
weights blended like the latents).
In-between frames have no seed of their own (seeds=None); the keyframe seeds are kept in
`extra["keyframe_seeds"]` so a path can be traced back to what made it.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from ..errors import GanStudioError
from ..latent import LatentBatch, check_compatible
from ..model import GenerativeModel
from .interpolation import method_for_space, transitions
from .paths import blend_labels, ease, keyframe_path, noise_loop


def blend_times(steps: int, easing: str = "linear", include_end: bool = True) -> torch.Tensor:
    """`[steps]` blend weights 0..1 (float64). Without the end, the last weight stops one step
    short of 1, so consecutive transitions chain without a repeated frame."""
    if steps < 1:
        raise GanStudioError(f"steps must be at least 1, got {steps}")
    i = torch.arange(steps, dtype=torch.float64)
    t = i / (steps - 1) if include_end and steps > 1 else i / steps
    return ease(t, easing)


def interpolate_latents(a: LatentBatch, b: LatentBatch, steps: int, method: str = "auto",
                        easing: str = "linear", include_end: bool = True) -> LatentBatch:
    """Transitions from a to b: first sample to first sample, or sample i to sample i when
    both batches have the same size. Output `[pairs * steps, ...]`, each transition's frames
    in a row (pair 0's frames, then pair 1's, ...)."""
    check_compatible(a, b)
    if len(a) != len(b):
        a, b = a.select([0]), b.select([0])
    method = method_for_space(method, a.space)
    t = blend_times(steps, easing, include_end)
    values = transitions(a.values, b.values, t, method)
    labels = None if a.labels is None else transitions(a.labels, b.labels, t, "lerp")
    extra = {"keyframe_seeds": _seed_pairs(a, b), "method": method, "steps": steps}
    return replace(a, values=values, labels=labels, seeds=None,
                   model_id=a.model_id or b.model_id, extra=extra)


def keyframes_from_seeds(model: GenerativeModel, seeds: list[int],
                         truncation_psi: float = 1.0) -> LatentBatch:
    """One latent per seed, exactly as Sample Latents draws it for that seed."""
    if not seeds:
        raise GanStudioError("no seeds given; write a list like 1, 5, 42")
    parts = [model.sample_latents(s, 1, truncation_psi) for s in seeds]
    labels = None if parts[0].labels is None else torch.cat([p.labels for p in parts])
    return replace(parts[0], values=torch.cat([p.values for p in parts]), labels=labels,
                   seeds=tuple(p.seeds[0] for p in parts))


def path_latents(keys: LatentBatch, frames: int, interpolation: str = "spline",
                 timing: str = "constant speed", loop: bool = True,
                 method: str = "auto") -> LatentBatch:
    """A smooth path of `frames` latents through the keyframes (see paths.keyframe_path)."""
    method = method_for_space(method, keys.space)
    values, u = keyframe_path(keys.values, frames, interpolation, method, timing, loop)
    labels = None if keys.labels is None else blend_labels(keys.labels, u, loop, timing)
    extra = {"keyframe_seeds": None if keys.seeds is None else list(keys.seeds),
             "loop": loop, "interpolation": interpolation, "timing": timing}
    return replace(keys, values=values, labels=labels, seeds=None, extra=extra)


def walk_latents(model: GenerativeModel, seed: int, frames: int, smoothness: float = 0.75,
                 loop: bool = True, truncation_psi: float = 1.0) -> LatentBatch:
    """A looping random walk in z (paths.noise_loop); a conditional model keeps the class
    that `seed` draws for Sample Latents during the whole walk."""
    values = noise_loop(seed, model.z_dim, frames, smoothness, loop).float()
    labels = None
    if model.num_classes:
        labels = model.seeded_labels([seed]).expand(frames, -1).clone()
    return LatentBatch(values=values, space="z", labels=labels, seeds=None,
                       model_id=model.model_id, truncation_psi=truncation_psi,
                       extra={"walk_seed": seed, "smoothness": smoothness, "loop": loop})


def _seed_pairs(a: LatentBatch, b: LatentBatch) -> list | None:
    if a.seeds is None or b.seeds is None:
        return None
    return [[sa, sb] for sa, sb in zip(a.seeds, b.seeds, strict=True)]
