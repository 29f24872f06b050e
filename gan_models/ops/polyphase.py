"""Polyphase FIR resampling: upsample + filter without materialising the zero-stuffed image.

Upsampling by `up` inserts `up - 1` zeros after every sample and then filters; of the
filter's taps only every `up`-th ever meets a non-zero sample. So output sample j is a
short correlation of the *input* with one of `up` sub-filters (its "phase"), and the
output is the `up` phase outputs interleaved: `up` times fewer multiply-adds than filtering
the zero-stuffed image, and no zero-stuffed image is ever written.

Conventions (one axis): the padded, zero-stuffed signal is p[q] = u[q - pad0] where
u[i * up] = x[i] (zero elsewhere and outside the input), and t[j] = sum_k g[k] p[j + k]
is a correlation with g (a convolution with fu means g = fu flipped).

On channels-last memory (`[N, H, W, C]`), where oneDNN runs depthwise convs vectorised
over channels:
- columns: the input window is written once per phase next to itself
  (`window(..., copies=up)`, channel blocks), and ONE depthwise conv with per-block
  kernels (`block_weights`) gives `[N, H, W', up, C]`, which as it stands in memory is the
  column-interleaved image `[N, H, W' * up, C]`: no interleaving pass;
- rows: one depthwise conv per phase on the same window, stacked row-wise (whole rows of
  W * C values are contiguous, so the interleave is one large copy).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def phase_kernels(g: torch.Tensor, up: int, pad0: int, start: int,
                  ) -> tuple[int, list[torch.Tensor]]:
    """Aligned sub-filters for t[start + q + up * m], q = 0..up-1.

    Returns (base, kernels): t[start + q + up * m] = sum_n kernels[q][n] * x[base + m + n],
    all kernels of one length (zero taps where a phase's filter is shorter or shifted), so
    every phase correlates the same input window. A phase that meets no tap gets zeros.
    """
    firsts, subs = [], []
    for q in range(up):
        s = start + q - pad0
        r = (-s) % up                      # first tap index that meets a real sample
        firsts.append((s + r) // up)       # the input index that tap meets
        subs.append(g[r::up])
    base = min(firsts)
    length = max(max(f - base + len(sub) for f, sub in zip(firsts, subs, strict=True)), 1)
    kernels = []
    for f, sub in zip(firsts, subs, strict=True):
        k = g.new_zeros(length)
        if len(sub):
            k[f - base:f - base + len(sub)] = sub
        kernels.append(k)
    return base, kernels


def block_weights(kernels: list[torch.Tensor], block: int, axis: int,
                  dtype: torch.dtype) -> torch.Tensor:
    """Depthwise conv2d weight, one kernel per block of `block` channels: channel
    q * block + c filters with kernels[q]. 1D kernels run along `axis` (2 = rows,
    3 = columns); 2D kernels `[kh, kw]` as they are."""
    parts = []
    for k in kernels:
        k = k.to(dtype)
        k = k.reshape(1, 1, -1, 1) if k.ndim == 1 and axis == 2 else (
            k.reshape(1, 1, 1, -1) if k.ndim == 1 else k[None, None])
        parts.append(k.expand(block, 1, *k.shape[2:]))
    return torch.cat(parts).contiguous()


def window(x_nhwc: torch.Tensor, rows: tuple[int, int], cols: tuple[int, int],
           bias: torch.Tensor | None, scale: torch.Tensor | None = None,
           copies: int = 1) -> torch.Tensor:
    """`x * scale + bias` over rows [r0, r1) and columns [c0, c1) of an `[N, H, W, C]` view,
    zero where the window leaves the image, written `copies` times side by side.

    scale: `[N, C]` or None. Returns channels-last `[N, copies * C, r1-r0, c1-c0]`, copy
    q in channels q*C .. (q+1)*C - 1.
    """
    n, h, w, c = x_nhwc.shape
    (r0, r1), (c0, c1) = rows, cols
    ir0, ir1, ic0, ic1 = max(r0, 0), min(r1, h), max(c0, 0), min(c1, w)
    shape = (n, r1 - r0, c1 - c0, copies, c)
    inside = (ir0, ir1, ic0, ic1) == (r0, r1, c0, c1)
    out = x_nhwc.new_empty(shape) if inside else x_nhwc.new_zeros(shape)
    if ir1 > ir0 and ic1 > ic0:
        src = x_nhwc[:, ir0:ir1, ic0:ic1]
        for q in range(copies):  # one op per copy: each vectorises over the channels
            dst = out[:, ir0 - r0:ir1 - r0, ic0 - c0:ic1 - c0, q]
            if scale is not None:
                s = scale[:, None, None, :].expand(dst.shape)
                if bias is None:
                    torch.mul(src, s, out=dst)
                else:
                    torch.addcmul(bias.expand(dst.shape), src, s, out=dst)
            elif bias is None:
                dst.copy_(src)
            else:
                torch.add(src, bias, out=dst)
    return out.view(n, r1 - r0, c1 - c0, copies * c).permute(0, 3, 1, 2)


def upsample_axis(x: torch.Tensor, g: torch.Tensor, up: int, pads: tuple[int, int],
                  down: int, axis: int) -> torch.Tensor:
    """One axis of `upfirdn2d` (no autograd): zero insertion by `up`, padding `pads`
    (negative crops), correlation with the taps `g`, every `down`-th sample kept.

    x: `[N, C, H, W]` (any layout); axis 3 = columns, 2 = rows. Returns channels-last.
    """
    n, c, h, w = x.shape
    length = x.shape[axis]
    out_len = (length * up + pads[0] + pads[1] - g.shape[0]) // down + 1
    t_len = (out_len - 1) * down + 1                 # upsampled samples that are kept
    t_up = -(-t_len // up) * up                      # ... rounded up to whole phases
    base, kernels = phase_kernels(g, up, pads[0], 0)
    span = (base, base + t_up // up + kernels[0].shape[0] - 1)
    x_nhwc = x.permute(0, 2, 3, 1)
    if axis == 3:  # the phases as channel blocks come out interleaved along the row
        win = window(x_nhwc, (0, h), span, None, copies=up)
        y = F.conv2d(win, block_weights(kernels, c, 3, x.dtype), groups=up * c)
        y = y.permute(0, 2, 3, 1).reshape(n, h, t_up, c)[:, :, :t_len:down]
    else:
        win = window(x_nhwc, span, (0, w), None)
        y = torch.stack([F.conv2d(win, block_weights([k], c, 2, x.dtype), groups=c)
                         .permute(0, 2, 3, 1) for k in kernels], dim=2)
        y = y.flatten(1, 2)[:, :t_len:down]
    return y.permute(0, 3, 1, 2)
