"""Filtered leaky ReLU (StyleGAN3): an alias-free nonlinearity in pure PyTorch.

Per channel, in order:
1. add the bias `b`,
2. upsample by `up` (zero insertion), pad (negative crops), filter with `fu`,
3. multiply by `gain`, leaky ReLU with `slope`, clamp to [-clamp, clamp],
4. filter with `fd` and keep every `down`-th pixel.

The leaky ReLU runs at the higher sampling rate so the harmonics it creates stay below the
new Nyquist limit, and `fd` removes them before decimation. Padding is given relative to
the upsampled image, as in NVlabs `filtered_lrelu`, so their layer paddings apply as is.
A 1D filter is separable (two depthwise 1D passes); a 2D one (radial) is applied as is.
"""

from __future__ import annotations

import math

import torch

from .bias_act import bias_act
from .upfirdn2d import filter_size, parse_padding, upfirdn2d


def output_size(in_size: tuple[int, int], fu, fd, up: int, down: int,
                padding) -> tuple[int, int]:
    """(height, width) of filtered_lrelu's output for an input of (height, width)."""
    px0, px1, py0, py1 = parse_padding(padding)
    fu_w, fu_h = filter_size(fu)
    fd_w, fd_h = filter_size(fd)
    h, w = in_size
    out_h = (h * up + py0 + py1 - (fu_h - 1) - (fd_h - 1) + down - 1) // down
    out_w = (w * up + px0 + px1 - (fu_w - 1) - (fd_w - 1) + down - 1) // down
    return out_h, out_w


def filtered_lrelu(x: torch.Tensor, fu: torch.Tensor | None = None,
                   fd: torch.Tensor | None = None, b: torch.Tensor | None = None,
                   up: int = 1, down: int = 1, padding=0, gain: float = math.sqrt(2),
                   slope: float = 0.2, clamp: float | None = None,
                   flip_filter: bool = False) -> torch.Tensor:
    """Bias, upsample + FIR, gain, leaky ReLU, clamp, FIR + downsample.

    x: `[N, C, H, W]` (float32/16/64). fu, fd: `[taps]` (separable), `[fh, fw]` or None
    (identity). b: `[C]` or None. padding: int, (x, y) or (x0, x1, y0, y1) relative to the
    upsampled image. flip_filter: False = convolution, True = correlation.
    Returns `[N, C, out_h, out_w]` (see `output_size`) in x's dtype.
    """
    if x.ndim != 4:
        raise ValueError(f"filtered_lrelu expects [N, C, H, W], got shape {tuple(x.shape)}")
    if not isinstance(up, int) or not isinstance(down, int) or up < 1 or down < 1:
        raise ValueError(f"up and down must be positive ints, got up={up} down={down}")
    if not gain > 0 or slope < 0 or (clamp is not None and clamp < 0):
        raise ValueError(f"need gain > 0, slope >= 0, clamp >= 0; got {gain}, {slope}, {clamp}")
    pads = parse_padding(padding)
    out_h, out_w = output_size(x.shape[2:], fu, fd, up, down, pads)
    if out_h < 1 or out_w < 1:
        raise ValueError(f"filtered_lrelu: padding {pads} leaves no output for {tuple(x.shape)}")
    dtype = x.dtype
    owned = b is not None  # x is this call's own tensor: later steps may run in place
    if b is not None:
        x = bias_act(x, b.to(dtype))
    act_gain = gain
    if fu is not None or up != 1 or any(pads):
        # gain up**2 keeps the mean of the zero-stuffed image equal to the input's; the
        # lrelu gain rides along, since lrelu(g * x) == g * lrelu(x) for g > 0.
        x = upfirdn2d(x, _as(fu, x), up=up, padding=pads, gain=up ** 2 * gain,
                      flip_filter=flip_filter)
        act_gain, owned = 1.0, True
    x = bias_act(x, act="lrelu", alpha=slope, gain=act_gain, clamp=clamp, inplace=owned)
    if fd is not None or down != 1:
        x = upfirdn2d(x, _as(fd, x), down=down, flip_filter=flip_filter)
    return x.to(dtype)


def _as(f: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor | None:
    """The filter on x's device; upfirdn2d casts it to x's dtype itself."""
    return None if f is None else f.to(device=x.device)
