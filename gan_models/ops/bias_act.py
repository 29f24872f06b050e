"""Bias + activation + gain + clamp in one call (the NVlabs `bias_act` op, pure PyTorch).

Order: x + b (broadcast along `dim`), activation, multiply by gain, clamp to [-clamp, clamp].
Default gains keep the signal's second moment roughly constant (sqrt(2) after ReLU-like
activations). Without autograd the steps after the first run in place on the op's own
intermediate, so inference allocates one output tensor.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Activation:
    func: Callable[[torch.Tensor, float], torch.Tensor]
    inplace: Callable[[torch.Tensor, float], torch.Tensor] | None  # None: no in-place form
    def_alpha: float
    def_gain: float


_SQRT2 = math.sqrt(2)

ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation(lambda x, a: x, lambda x, a: x, 0.0, 1.0),
    "relu": Activation(lambda x, a: F.relu(x), lambda x, a: x.relu_(), 0.0, _SQRT2),
    "lrelu": Activation(lambda x, a: F.leaky_relu(x, a),
                        lambda x, a: F.leaky_relu_(x, a), 0.2, _SQRT2),
    "tanh": Activation(lambda x, a: torch.tanh(x), lambda x, a: x.tanh_(), 0.0, 1.0),
    "sigmoid": Activation(lambda x, a: torch.sigmoid(x), lambda x, a: x.sigmoid_(), 0.0, 1.0),
    "elu": Activation(lambda x, a: F.elu(x), lambda x, a: F.elu_(x), 0.0, 1.0),
    "selu": Activation(lambda x, a: F.selu(x), lambda x, a: F.selu_(x), 0.0, 1.0),
    "softplus": Activation(lambda x, a: F.softplus(x), None, 0.0, 1.0),
    "swish": Activation(lambda x, a: F.silu(x), None, 0.0, _SQRT2),
}


def activation_gain(act: str) -> float:
    """The default gain of an activation (sqrt(2) for relu/lrelu/swish, else 1)."""
    return _spec(act).def_gain


def _spec(act: str) -> Activation:
    try:
        return ACTIVATIONS[act]
    except KeyError:
        raise ValueError(
            f"unknown activation {act!r} (known: {', '.join(ACTIVATIONS)})") from None


def bias_act(x: torch.Tensor, b: torch.Tensor | None = None, dim: int = 1,
             act: str = "linear", alpha: float | None = None, gain: float | None = None,
             clamp: float | None = None, inplace: bool = False) -> torch.Tensor:
    """Add bias `b` (1D, along `dim` of `x`), apply `act`, scale by `gain`, clamp.

    alpha: leaky-ReLU slope (default 0.2); other activations ignore it.
    gain: None = the activation's default gain. clamp: None = no clamping.
    inplace: the caller gives up `x`, so it may be overwritten (ignored while autograd
    records). Otherwise x is never modified.
    Returns a tensor of x's shape and dtype.
    """
    spec = _spec(act)
    alpha = float(spec.def_alpha if alpha is None else alpha)
    gain = float(spec.def_gain if gain is None else gain)
    if clamp is not None and clamp < 0:
        raise ValueError(f"clamp must be >= 0 or None, got {clamp}")
    grad = torch.is_grad_enabled() and (x.requires_grad or (b is not None and b.requires_grad))

    owned = inplace and not grad  # True while `x` may be changed in place
    if b is not None:
        if b.ndim != 1 or b.shape[0] != x.shape[dim]:
            raise ValueError(f"bias of shape {tuple(b.shape)} does not fit dim {dim} of "
                             f"{tuple(x.shape)}")
        shape = [-1 if i == dim % x.ndim else 1 for i in range(x.ndim)]
        b = b.to(x.dtype).reshape(shape)
        x = x.add_(b) if owned and not grad else x + b
        owned = True
    if act != "linear":
        if owned and not grad and spec.inplace is not None:
            x = spec.inplace(x, alpha)
        else:
            x = spec.func(x, alpha)
            owned = True
    if gain != 1:
        x = x.mul_(gain) if owned and not grad else x * gain
        owned = True
    if clamp is not None:
        x = x.clamp_(-clamp, clamp) if owned and not grad else x.clamp(-clamp, clamp)
    return x
