"""2D convolution fused with FIR up/downsampling (NVlabs `conv2d_resample` semantics).

Padding is given once, relative to the (upsampled) input. Upsampling runs the convolution
as a strided transposed convolution at the low resolution followed by the FIR filter;
downsampling filters first and then convolves with a stride, so no convolution is
evaluated at pixels that are thrown away.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .upfirdn2d import filter_size, parse_padding, upfirdn2d, upfirdn2d_bias


def conv2d_resample(x: torch.Tensor, w: torch.Tensor, f: torch.Tensor | None = None,
                    up: int = 1, down: int = 1, padding=0, groups: int = 1,
                    flip_weight: bool = True, flip_filter: bool = False,
                    bias: torch.Tensor | None = None) -> torch.Tensor:
    """Convolve `x` `[N, I, H, W]` with `w` `[O, I // groups, kh, kw]`, resampling with `f`.

    f: FIR filter from `setup_filter` (None = identity). flip_weight: True = correlation
    (like F.conv2d), False = true convolution. bias `[O]`: added to the output.
    """
    out_ch, in_per_group, kh, kw = w.shape
    fw, fh = filter_size(f)
    px0, px1, py0, py1 = parse_padding(padding)
    if up > 1:
        px0, px1 = px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2
        py0, py1 = py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2
    if down > 1:
        px0, px1 = px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2
        py0, py1 = py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2
    pads = (px0, px1, py0, py1)

    if up == 1 and down == 1:
        if px0 == px1 >= 0 and py0 == py1 >= 0:
            return _conv(x, w, bias, flip_weight, padding=(py0, px0), groups=groups)
        x = upfirdn2d(x, None, padding=pads)
        return _conv(x, w, bias, flip_weight, groups=groups)

    if up == 1:  # downsampling only
        if kh == 1 and kw == 1:  # 1x1: shrink first, then convolve fewer pixels
            x = upfirdn2d(x, f, down=down, padding=pads, flip_filter=flip_filter)
            return _conv(x, w, bias, flip_weight, groups=groups)
        x = upfirdn2d(x, f, padding=pads, flip_filter=flip_filter)
        return _conv(x, w, bias, flip_weight, stride=down, groups=groups)

    if kh == 1 and kw == 1 and down == 1:  # 1x1 upsampling: convolve the small image
        x = _conv(x, w, None, flip_weight, groups=groups)
        return upfirdn2d_bias(x, f, up=up, padding=pads, gain=up * up, flip_filter=flip_filter,
                              bias=bias)

    # Upsampling: transposed conv inserts the zeros, then the FIR filter smooths.
    # conv_transpose2d wants [in, out // groups, kh, kw].
    if groups == 1:
        wt = w.transpose(0, 1)
    else:
        wt = w.reshape(groups, out_ch // groups, in_per_group, kh, kw).transpose(1, 2)
        wt = wt.reshape(groups * in_per_group, out_ch // groups, kh, kw)
    if flip_weight:  # conv_transpose2d convolves; correlation needs the flipped kernel
        wt = wt.flip([2, 3])
    px0, px1, py0, py1 = px0 - (kw - 1), px1 - (kw - up), py0 - (kh - 1), py1 - (kh - up)
    tx, ty = max(min(-px0, -px1), 0), max(min(-py0, -py1), 0)  # crops the conv can do
    if _by_phases(x, up, groups, tx, ty):
        x = _transposed_by_phases(x, wt)
    else:
        x = F.conv_transpose2d(x, wt, stride=up, padding=(ty, tx), groups=groups)
    pads = (px0 + tx, px1 + tx, py0 + ty, py1 + ty)
    if down > 1:
        x = upfirdn2d(x, f, padding=pads, gain=up * up, flip_filter=flip_filter)
        return upfirdn2d_bias(x, f, down=down, flip_filter=flip_filter, bias=bias)
    return upfirdn2d_bias(x, f, padding=pads, gain=up * up, flip_filter=flip_filter, bias=bias)


def _conv(x, w, bias, flip_weight, **kwargs):
    if not flip_weight and (w.shape[2] > 1 or w.shape[3] > 1):
        w = w.flip([2, 3])
    return F.conv2d(x, w, None if bias is None else bias.to(x.dtype), **kwargs)



# Inputs at least this large (pixels) run a stride-2 transposed conv as four plain convs:
# on the CPU oneDNN's transposed conv reached about half the rate of its plain convs at
# 128 px and up (measured 1.5x faster at 256 -> 128 channels, equal at 64 px).
PHASE_MIN_PIXELS = 96 * 96


def _by_phases(x: torch.Tensor, up: int, groups: int, tx: int, ty: int) -> bool:
    grad = torch.is_grad_enabled() and x.requires_grad
    return (up == 2 and groups == 1 and tx == ty == 0 and not grad
            and x.device.type == "cpu" and x.shape[2] * x.shape[3] >= PHASE_MIN_PIXELS
            and not torch.compiler.is_compiling())


def _transposed_by_phases(x: torch.Tensor, wt: torch.Tensor) -> torch.Tensor:
    """`F.conv_transpose2d(x, wt, stride=2)` as four plain convolutions, one per output
    phase (p, q): out[2m + p, 2n + q] = sum over taps wt[:, :, p + 2s, q + 2t] of
    x[m - s, n - t], a correlation with the flipped sub-kernel. Same multiply-adds."""
    n, _, h, w = x.shape
    _, out_ch, kh, kw = wt.shape
    out = torch.empty((n, out_ch, 2 * (h - 1) + kh, 2 * (w - 1) + kw), dtype=x.dtype,
                      device=x.device, memory_format=torch.channels_last)
    for p in range(min(2, kh)):
        for q in range(min(2, kw)):
            sub = wt[:, :, p::2, q::2].flip([2, 3]).transpose(0, 1)     # [O, I, S, T]
            pad = (sub.shape[2] - 1, sub.shape[3] - 1)
            out[:, :, p::2, q::2].copy_(F.conv2d(x, sub.contiguous(), padding=pad))
    return out
