"""Paths through latent space for animation: keyframe paths and looping random walks.

Pure functions of their inputs (tensors, counts, seeds): the same call gives bit-identical
frames on every run and machine. Keyframes are `[K, *S]` (z `[K, D]`, w+ `[K, L, D]`); a path
of F frames is `[F, *S]`, computed in float64 and returned in the keyframes' dtype.

A path has one segment per pair of consecutive keyframes; a loop adds the segment from the
last keyframe back to the first. The path parameter u runs over [0, segments]: keyframe i
sits at u = i. Loop frames are spaced so frame F would land on u = segments (= keyframe 0
again), so the last emitted frame is the one just before the first and the clip repeats
seamlessly; an open path ends on its last keyframe.
"""

from __future__ import annotations

import math

import torch

from ..errors import GanStudioError
from .interpolation import interpolate, lerp

EASINGS = ("linear", "ease-in-out", "smoothstep")
CONSTANT_SPEED = "constant speed"
TIMINGS = (CONSTANT_SPEED, *EASINGS)
INTERPOLATIONS = ("spline", "linear")
WALK_HARMONICS = 8
_ARC_SAMPLES = 32  # samples per segment when measuring arc length


# --- timing ----------------------------------------------------------------------------
def ease(t: torch.Tensor, easing: str) -> torch.Tensor:
    """Map local segment time 0..1 -> 0..1 (0 and 1 stay exact)."""
    if easing == "linear":
        return t
    if easing == "ease-in-out":  # cosine: starts and stops at rest
        return 0.5 - 0.5 * torch.cos(math.pi * t)
    if easing == "smoothstep":
        return t * t * (3 - 2 * t)
    raise GanStudioError(f"unknown easing {easing!r} (expected one of {TIMINGS})")


def frame_count(frames: int, fps: float = 0.0, seconds: float = 0.0) -> int:
    """`frames`, or round(fps x seconds) when a duration is given."""
    if seconds > 0:
        if fps <= 0:
            raise GanStudioError(f"fps must be above 0 to use a duration, got {fps}")
        frames = round(fps * seconds)
    if frames < 1:
        raise GanStudioError(f"an animation needs at least 1 frame, got {frames}")
    return int(frames)


def frame_params(segments: int, frames: int, loop: bool) -> torch.Tensor:
    """Evenly spaced path parameters `[frames]` (float64). Keyframes land exactly on frames
    when frames is a multiple of segments (plus one for an open path)."""
    f = torch.arange(frames, dtype=torch.float64)
    if loop:
        return f * segments / frames
    if frames == 1:
        return f
    return f * segments / (frames - 1)


def _segment_of(u: torch.Tensor, keys: int, loop: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Segment index `[F]` (long) and local time `[F]` in 0..1 for path parameters u."""
    segments = keys if loop else keys - 1
    u = torch.remainder(u, segments) if loop else u.clamp(0, segments)
    i = u.floor().clamp(max=segments - 1)
    return i.long(), u - i


# --- shapes of paths -------------------------------------------------------------------
def _neighbours(keys: torch.Tensor, i: torch.Tensor, loop: bool):
    """Keyframes i-1, i, i+1, i+2 of each segment `[F, *S]`; an open path's missing ends
    are mirrored (p[-1] = 2 p[0] - p[1]) so its end tangents point along the first/last
    segment."""
    k = keys.shape[0]
    if loop:
        return tuple(keys[(i + d) % k] for d in (-1, 0, 1, 2))
    ext = torch.cat([2 * keys[:1] - keys[1:2], keys, 2 * keys[-1:] - keys[-2:-1]])
    return tuple(ext[i + 1 + d] for d in (-1, 0, 1, 2))


def catmull_rom(p0, p1, p2, p3, t: torch.Tensor) -> torch.Tensor:
    """Uniform Catmull-Rom between p1 (t=0) and p2 (t=1): cubic Hermite with tangents
    (p2 - p0) / 2 and (p3 - p1) / 2. Passes through p1 and p2 exactly (the other basis
    weights are exactly 0 there), with a continuous tangent across keyframes."""
    t2, t3 = t * t, t * t * t
    h00, h10 = 2 * t3 - 3 * t2 + 1, t3 - 2 * t2 + t
    h01, h11 = -2 * t3 + 3 * t2, t3 - t2
    return h00 * p1 + h10 * (p2 - p0) / 2 + h01 * p2 + h11 * (p3 - p1) / 2


def eval_path(keys: torch.Tensor, u: torch.Tensor, interpolation: str = "spline",
              method: str = "slerp", easing: str = "linear", loop: bool = True) -> torch.Tensor:
    """Frames `[F, *S]` at path parameters u `[F]`.

    linear: each segment blended with `method` (lerp/slerp) on eased local time.
    spline: Catmull-Rom through all keyframes; with method "slerp" (Gaussian z) each frame is
    rescaled to a spline of the keyframe norms along the last dim, so the path stays on the
    shell where Gaussian latents live instead of cutting through the low-norm middle.
    """
    if interpolation not in INTERPOLATIONS:
        raise GanStudioError(f"unknown path interpolation {interpolation!r} "
                             f"(expected one of {INTERPOLATIONS})")
    k = keys.shape[0]
    if k == 1:
        return keys.expand(len(u), *keys.shape[1:]).clone()
    keys64 = keys.double()
    i, t = _segment_of(torch.as_tensor(u, dtype=torch.float64), k, loop)
    t = ease(t, easing).reshape(-1, *([1] * (keys.dim() - 1)))
    p0, p1, p2, p3 = _neighbours(keys64, i, loop)
    if interpolation == "linear":
        out = interpolate(p1, p2, t, method)
    else:
        out = catmull_rom(p0, p1, p2, p3, t)
        if method == "slerp":
            norms = [p.norm(dim=-1, keepdim=True) for p in (p0, p1, p2, p3)]
            radius = catmull_rom(*norms, t).clamp_min(1e-12)
            out = out / out.norm(dim=-1, keepdim=True).clamp_min(1e-12) * radius
    # Frames sitting on a keyframe are that keyframe, bit for bit.
    out = torch.where(t == 0, keys[i], out.to(keys.dtype))
    return torch.where(t == 1, keys[(i + 1) % k], out)


def constant_speed_params(keys: torch.Tensor, frames: int, interpolation: str, method: str,
                          loop: bool) -> torch.Tensor:
    """Path parameters `[frames]` spaced evenly by arc length (measured on a dense sampling
    of the path), so every frame moves the same distance in latent space. Keyframes stay on
    the path but no longer need to fall exactly on frames; frame 0 is still keyframe 0."""
    k = keys.shape[0]
    segments = k if loop else k - 1
    dense_u = torch.linspace(0, segments, segments * _ARC_SAMPLES + 1, dtype=torch.float64)
    dense = eval_path(keys.double(), dense_u, interpolation, method, "linear", loop)
    steps = (dense[1:] - dense[:-1]).flatten(1).norm(dim=1)
    arc = torch.cat([torch.zeros(1, dtype=torch.float64), steps.cumsum(0)])
    if float(arc[-1]) == 0:  # all keyframes equal: nothing moves
        return frame_params(segments, frames, loop)
    target = frame_params(segments, frames, loop) * (arc[-1] / segments)
    # invert arc(u) by linear interpolation between the dense samples
    j = torch.searchsorted(arc, target, right=True).clamp(1, len(arc) - 1)
    a0, a1 = arc[j - 1], arc[j]
    frac = torch.where(a1 > a0, (target - a0) / (a1 - a0).clamp_min(1e-300), 0.0)
    return (1 - frac) * dense_u[j - 1] + frac * dense_u[j]


def keyframe_path(keys: torch.Tensor, frames: int, interpolation: str = "spline",
                  method: str = "slerp", timing: str = CONSTANT_SPEED,
                  loop: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames `[frames, *S]` through keys `[K, *S]`, and the path parameter of each frame.

    timing: an easing applied within each segment, or "constant speed" (even arc length).
    """
    if keys.shape[0] < 1:
        raise GanStudioError("a keyframe path needs at least one keyframe")
    if timing not in TIMINGS:
        raise GanStudioError(f"unknown timing {timing!r} (expected one of {TIMINGS})")
    segments = keys.shape[0] if loop else keys.shape[0] - 1
    if segments == 0:
        u = torch.zeros(frames, dtype=torch.float64)
    elif timing == CONSTANT_SPEED:
        u = constant_speed_params(keys, frames, interpolation, method, loop)
    else:
        u = frame_params(segments, frames, loop)
    easing = "linear" if timing == CONSTANT_SPEED else timing
    return eval_path(keys, u, interpolation, method, easing, loop), u


def blend_labels(labels: torch.Tensor, u: torch.Tensor, loop: bool,
                 timing: str = CONSTANT_SPEED) -> torch.Tensor:
    """Class weights `[K, C]` -> `[F, C]` at path parameters u, in step with the latents
    (same easing), piecewise linear: a spline could overshoot below 0, while linear mixes
    of class weights stay valid mixes."""
    k = labels.shape[0]
    if k == 1:
        return labels.expand(len(u), -1).clone()
    i, t = _segment_of(torch.as_tensor(u, dtype=torch.float64), k, loop)
    t = ease(t, "linear" if timing == CONSTANT_SPEED else timing)
    return lerp(labels[i], labels[(i + 1) % k], t.view(-1, 1))


# --- looping random walks --------------------------------------------------------------
def noise_loop(seed: int, dim: int, frames: int, smoothness: float = 0.75,
               loop: bool = True) -> torch.Tensor:
    """A smooth random path `[frames, dim]` (float64) that closes on itself when `loop`:
    one full turn of `walk_at`, frame F (not emitted) being frame 0 again. An open walk
    covers half a turn, so it starts and ends at different latents."""
    f = torch.arange(frames, dtype=torch.float64)
    turns = f / frames if loop else 0.5 * f / max(frames - 1, 1)
    return walk_at(seed, dim, turns, smoothness)


def walk_at(seed: int, dim: int, turns: torch.Tensor, smoothness: float = 0.75) -> torch.Tensor:
    """Points `[T, dim]` of a seeded closed curve at positions `turns` (1 = once around).

    z(theta) = sum_k w_k (a_k cos(k theta) + b_k sin(k theta)), k = 1..8, with a_k, b_k
    standard-normal vectors drawn from `seed` on a CPU generator. The weights have unit
    sum of squares, so every point is itself a standard-normal latent (typical images all
    along the walk). smoothness 1 keeps only k = 1, an ellipse through two seeded random
    directions on the Gaussian shell; lower values mix in faster wiggles (weights decay as
    (1 - smoothness)^(k-1)).
    """
    if not 0.0 <= smoothness <= 1.0:
        raise GanStudioError(f"smoothness must be within 0..1, got {smoothness}")
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    # drawn in full whatever the smoothness, so changing it keeps the same directions
    coef = torch.randn(WALK_HARMONICS, 2, dim, generator=gen, dtype=torch.float64)
    weights = (1.0 - smoothness) ** torch.arange(WALK_HARMONICS, dtype=torch.float64)
    weights = weights / weights.norm()
    k = torch.arange(1, WALK_HARMONICS + 1, dtype=torch.float64)
    phase = 2 * math.pi * torch.as_tensor(turns, dtype=torch.float64)[:, None] * k  # [T, H]
    return (torch.cos(phase) * weights) @ coef[:, 0] + (torch.sin(phase) * weights) @ coef[:, 1]
