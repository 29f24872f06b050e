"""Blending two latents: linear and spherical interpolation, pure tensor math.

All functions broadcast `a`, `b` and `t` together elementwise; the vector that slerp rotates
is the last dimension (a z row, one w row, or one layer of a w+ latent). `t` must already
have the right trailing singleton dims, e.g. `t.view(-1, 1)` for `[T, D]` endpoints; use
`along(t, a)` for that. Math runs in float64 and results come back in `a`'s dtype, with the
endpoints exact: where t == 0 the result is `a` bit for bit, where t == 1 it is `b`.
"""

from __future__ import annotations

import torch

from ..errors import GanStudioError

METHODS = ("lerp", "slerp")
# Below this sine the plane through a and b is numerically undefined (a and b (anti)parallel).
_SIN_EPS = 1e-9


def along(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """`[T]` weights -> `[T, 1, ..., 1]`, to blend endpoints of shape `like.shape`."""
    return torch.as_tensor(t, dtype=torch.float64).reshape(-1, *([1] * like.dim()))


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(1 - t) a + t b, elementwise (per layer for w+)."""
    a64, b64, t64 = a.double(), b.double(), torch.as_tensor(t, dtype=torch.float64)
    out = (1 - t64) * a64 + t64 * b64
    return _exact_ends(out.to(a.dtype), a, b, t64)


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation over the last dim: the direction turns along the great circle
    from a to b at constant angular speed and the length moves linearly from |a| to |b|, so
    the norm never sags (equal norms are kept exactly, unlike lerp which shrinks midway).

    Parallel inputs reduce to a pure change of length; antiparallel ones turn through a fixed
    perpendicular picked from the data (the great circle is not unique, any choice is valid,
    this one is deterministic). A zero vector takes the other endpoint's direction.
    """
    if a.shape[-1] == 1:  # no room to turn in 1-D
        return lerp(a, b, t)
    a64, b64, t64 = a.double(), b.double(), torch.as_tensor(t, dtype=torch.float64)
    na = a64.norm(dim=-1, keepdim=True)
    nb = b64.norm(dim=-1, keepdim=True)
    ua = a64 / na.clamp_min(1e-300)
    ub = b64 / nb.clamp_min(1e-300)
    ua, ub = torch.where(na > 0, ua, ub), torch.where(nb > 0, ub, ua)
    cos = (ua * ub).sum(-1, keepdim=True).clamp(-1, 1)
    # v: unit vector in the a-b plane perpendicular to a, so that b = cos(theta) a + sin(theta) v
    v = ub - cos * ua
    sin = v.norm(dim=-1, keepdim=True)
    v = torch.where(sin > _SIN_EPS, v / sin.clamp_min(_SIN_EPS), _perpendicular(ua))
    theta = torch.atan2(sin, cos)
    direction = torch.cos(t64 * theta) * ua + torch.sin(t64 * theta) * v
    out = direction * ((1 - t64) * na + t64 * nb)
    return _exact_ends(out.to(a.dtype), a, b, t64)


def interpolate(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor, method: str) -> torch.Tensor:
    if method == "lerp":
        return lerp(a, b, t)
    if method == "slerp":
        return slerp(a, b, t)
    raise GanStudioError(f"unknown interpolation method {method!r} (expected one of {METHODS})")


def transitions(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor, method: str,
                flat: bool = False) -> torch.Tensor:
    """Sample i of a to sample i of b at each weight of t: a, b `[P, *S]`, t `[T]` ->
    `[P * T, *S]`, each transition's frames in a row. flat=True slerps each sample as one
    long vector (diffusion latents `[C, H, W]`) instead of row by row."""
    shape = a.shape[1:]
    if flat:
        a, b = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    out = interpolate(a, b, along(t, a), method)  # [T, P, ...]
    return out.transpose(0, 1).reshape(-1, *shape).contiguous()


def method_for_space(method: str, space: str) -> str:
    """'auto' -> slerp for Gaussian z (keeps the typical norm), lerp for w/w+ (the mapping
    network's output space, where straight lines are the natural paths)."""
    if method == "auto":
        return "slerp" if space == "z" else "lerp"
    if method not in METHODS:
        raise GanStudioError(f"unknown interpolation method {method!r} (expected auto, lerp "
                             "or slerp)")
    return method


def _perpendicular(u: torch.Tensor) -> torch.Tensor:
    """A unit vector orthogonal to each unit row of `u`: the coordinate axis where u is
    smallest, minus its projection on u (never degenerate for dim >= 2)."""
    axis = torch.nn.functional.one_hot(u.abs().argmin(-1), u.shape[-1]).to(u.dtype)
    p = axis - (axis * u).sum(-1, keepdim=True) * u
    return p / p.norm(dim=-1, keepdim=True)


def _exact_ends(out: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                t: torch.Tensor) -> torch.Tensor:
    """Make endpoints bit-exact (float rounding could otherwise move them by an ulp)."""
    out = torch.where(t == 0, a.to(out.dtype), out)
    return torch.where(t == 1, b.to(out.dtype), out)
