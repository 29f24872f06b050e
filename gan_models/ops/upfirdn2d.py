"""FIR resampling of image batches: upsample, pad, filter, downsample (upfirdn2d).

Semantics follow scipy.signal.upfirdn in 2D, per channel:
1. upsample by inserting `up - 1` zeros after every pixel,
2. pad with zeros (negative padding crops),
3. convolve with the FIR filter `f`, keeping only outputs whose footprint lies inside,
4. keep every `down`-th pixel.

Fast pure-PyTorch formulation: a separable filter runs as two depthwise 1D convolutions,
zero-insertion + filtering is one strided `conv_transpose2d`, and downsampling is the
stride of the filtering convolution, so no zero-stuffed or discarded pixels are computed.

Gradients: the filter is a constant, so each pass is a linear map of x whose gradient is its
adjoint (conv2d <-> conv_transpose2d with the same kernel). `_DepthwiseFIR` says so to
autograd, so gradients of any order (R1, path length) are again single depthwise
convolutions. PyTorch's own double backward of a grouped convolution runs one tiny
convolution per channel, which slowed the lazy R1 phase of StyleGAN2-ADA training (badly on
a busy CPU). Folding the channels into the batch instead measured slower still on the CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import polyphase


def _pair(value) -> tuple[int, int]:
    """int or (x, y) -> (x, y)."""
    if isinstance(value, int):
        return value, value
    sx, sy = value
    return int(sx), int(sy)


def parse_padding(padding) -> tuple[int, int, int, int]:
    """int, (x, y) or (x0, x1, y0, y1) -> (x0, x1, y0, y1)."""
    if isinstance(padding, int):
        return padding, padding, padding, padding
    padding = [int(p) for p in padding]
    if len(padding) == 2:
        px, py = padding
        return px, px, py, py
    px0, px1, py0, py1 = padding
    return px0, px1, py0, py1


def filter_size(f: torch.Tensor | None) -> tuple[int, int]:
    """(width, height) of a 1D (separable) or 2D filter."""
    if f is None:
        return 1, 1
    return int(f.shape[-1]), int(f.shape[0])


def setup_filter(f, normalize: bool = True, flip_filter: bool = False, gain: float = 1,
                 separable: bool | None = None, device=None) -> torch.Tensor:
    """A float32 FIR filter: `[taps]` (separable) or `[height, width]`.

    f: list / array / tensor of taps (1D) or a 2D kernel; None means identity.
    separable: keep a 1D filter 1D (default: only for 8 taps or more, as NVlabs does, so
    saved `resample_filter` buffers have the same shapes as theirs).
    gain scales the DC response of the whole 2D filter.
    """
    f = torch.as_tensor(1.0 if f is None else f, dtype=torch.float32)
    if f.ndim == 0:
        f = f[None]
    if f.ndim not in (1, 2) or f.numel() == 0:
        raise ValueError(f"filter must be 1D or 2D and non-empty, got shape {tuple(f.shape)}")
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    elif f.ndim == 2 and separable:
        raise ValueError("a 2D filter cannot be returned as separable")
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f * (gain ** (f.ndim / 2))
    return f.to(device) if device is not None else f


# Up to this many taps per side one 2D depthwise pass beats two 1D passes (fewer memory
# sweeps outweigh the extra multiply-adds); longer filters run separably.
_MAX_2D_TAPS = 5


def _factors(f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(fx, fy) 1D taps with outer(fy, fx) == f, or None to filter with f in 2D.

    2D filters are factored only when large and on the CPU: the check reads values,
    which would stall a GPU.
    """
    if f.ndim == 1:
        return None if f.shape[0] <= _MAX_2D_TAPS else (f, f)
    if max(f.shape) <= _MAX_2D_TAPS or f.device.type != "cpu" or f.numel() > 4096:
        return None
    total = f.sum()
    if float(total) == 0:
        return None
    fy = f.sum(1)
    fx = f.sum(0) / total
    if not torch.allclose(torch.outer(fy, fx), f, rtol=1e-5, atol=1e-7):
        return None
    return fx, fy


def upfirdn2d(x: torch.Tensor, f: torch.Tensor | None, up=1, down=1, padding=0,
              flip_filter: bool = False, gain: float = 1) -> torch.Tensor:
    """Upsample, pad, FIR-filter and downsample `x` `[N, C, H, W]`.

    f: `[taps]` (separable) or `[fh, fw]` filter, or None (identity).
    up, down: int or (x, y). padding: int, (x, y) or (x0, x1, y0, y1), relative to the
    upsampled image; negative values crop. flip_filter: False = convolution, True =
    correlation. gain scales the output.
    """
    return upfirdn2d_bias(x, f, up, down, padding, flip_filter, gain)


def upfirdn2d_bias(x: torch.Tensor, f: torch.Tensor | None, up=1, down=1, padding=0,
                   flip_filter: bool = False, gain: float = 1,
                   bias: torch.Tensor | None = None) -> torch.Tensor:
    """`upfirdn2d` plus a per-channel `bias` `[C]` added by the filtering convolution
    itself (saves a pass over the output)."""
    if x.ndim != 4:
        raise ValueError(f"upfirdn2d expects [N, C, H, W], got shape {tuple(x.shape)}")
    upx, upy = _pair(up)
    downx, downy = _pair(down)
    px0, px1, py0, py1 = parse_padding(padding)
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    fw, fh = filter_size(f)
    if x.shape[3] * upx + px0 + px1 < fw or x.shape[2] * upy + py0 + py1 < fh:
        raise ValueError("upfirdn2d: the padded image is smaller than the filter")

    pair = _factors(f)
    if pair is None:  # one depthwise conv over both axes
        kernel = (torch.outer(f, f) if f.ndim == 1 else f) * gain
        kernel = kernel.to(x.dtype)
        return _resample(x, kernel, (upy, upx), (downy, downx), (py0, py1), (px0, px1),
                         flip_filter, bias)
    fx, fy = pair
    grad = torch.is_grad_enabled() and (x.requires_grad or (
        bias is not None and bias.requires_grad))
    if not grad and max(upx, upy) > 1 and not torch.compiler.is_compiling():
        # Polyphase: each upsampled axis filters the small image once per phase; no
        # zero-stuffed image and no multiply-add on inserted zeros.
        for taps, up_, down_, pads, axis in ((fx, upx, downx, (px0, px1), 3),
                                            (fy * gain, upy, downy, (py0, py1), 2)):
            taps = (taps if flip_filter else taps.flip(0)).to(x.device)
            x = _polyphase_or_plain(x, taps, up_, down_, pads, axis)
        x = x.contiguous(memory_format=torch.channels_last)
        return x if bias is None else x.add_(bias.to(x.dtype).reshape(1, -1, 1, 1))
    # Horizontal pass, then vertical pass; the gain and bias ride on the second one.
    x = _resample(x, fx[None, :].to(x.dtype), (1, upx), (1, downx), (0, 0), (px0, px1),
                  flip_filter, None)
    return _resample(x, (fy * gain)[:, None].to(x.dtype), (upy, 1), (downy, 1), (py0, py1),
                     (0, 0), flip_filter, bias)


def _polyphase_or_plain(x, taps, up, down, pads, axis):
    """One axis: polyphase when it upsamples, else one strided depthwise pass."""
    if up > 1:
        return polyphase.upsample_axis(x, taps, up, pads, down, axis)
    kernel = taps.flip(0).to(x.dtype)  # _resample convolves: give it the filter itself
    if axis == 3:
        return _resample(x, kernel[None, :], (1, 1), (1, down), (0, 0), pads, False, None)
    return _resample(x, kernel[:, None], (1, 1), (down, 1), pads, (0, 0), False, None)


def _resample(x: torch.Tensor, kernel: torch.Tensor, up: tuple[int, int],
              down: tuple[int, int], pad_y: tuple[int, int], pad_x: tuple[int, int],
              flip_filter: bool, bias: torch.Tensor | None) -> torch.Tensor:
    """One depthwise pass with a `[kh, kw]` kernel; up/down/pads are (y, x) pairs."""
    channels = x.shape[1]
    kh, kw = kernel.shape
    if bias is not None:
        bias = bias.to(x.dtype)
    if kh == 1 and kw == 1 and up == (1, 1):  # pure scaling, crop/pad and stride
        x = _pad(x, pad_x + pad_y)
        x = x * kernel[0, 0]
        x = x[:, :, ::down[0], ::down[1]] if down != (1, 1) else x
        return x if bias is None else x + bias.reshape(1, -1, 1, 1)
    weight = kernel[None, None].expand(channels, 1, kh, kw)
    if up == (1, 1):
        # conv2d correlates, so a true convolution needs the flipped kernel.
        if not flip_filter:
            weight = weight.flip([2, 3])
        if pad_y[0] == pad_y[1] >= 0 and pad_x[0] == pad_x[1] >= 0:  # conv pads itself
            return _depthwise(x, weight, bias, down, (pad_y[0], pad_x[0]), transposed=False)
        x = _pad(x, pad_x + pad_y)
        return _depthwise(x, weight, bias, down, (0, 0), transposed=False)
    # conv_transpose2d with stride `up` = zero insertion + true convolution with `weight`.
    if flip_filter:
        weight = weight.flip([2, 3])
    # Its unpadded output starts k-1 samples before the first input pixel and ends k-up
    # samples after the last inserted zero; convert the requested padding into crops.
    crop = []
    for k, u, (p0, p1) in ((kh, up[0], pad_y), (kw, up[1], pad_x)):
        crop.append((k - 1 - p0, k - u - p1))
    (cy0, cy1), (cx0, cx1) = crop
    ty, tx = max(min(cy0, cy1), 0), max(min(cx0, cx1), 0)  # crops done by the conv itself
    x = _depthwise(x, weight, None, up, (ty, tx), transposed=True)
    x = _pad(x, (tx - cx0, tx - cx1, ty - cy0, ty - cy1))
    if down != (1, 1):
        x = x[:, :, ::down[0], ::down[1]]
    return x if bias is None else x + bias.reshape(1, -1, 1, 1)


def _depthwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
               stride: tuple[int, int], padding: tuple[int, int],
               transposed: bool) -> torch.Tensor:
    """Depthwise conv2d (or conv_transpose2d) of x with `weight` `[C, 1, kh, kw]`."""
    tracked = x.requires_grad or (bias is not None and bias.requires_grad)
    if torch.is_grad_enabled() and tracked and not weight.requires_grad:
        return _DepthwiseFIR.apply(x, weight, bias, stride, padding, transposed, (0, 0))
    return _conv(x, weight, bias, stride, padding, transposed, (0, 0))


def _conv(x, weight, bias, stride, padding, transposed, output_padding) -> torch.Tensor:
    if transposed:
        return F.conv_transpose2d(x, weight, bias, stride=stride, padding=padding,
                                  output_padding=output_padding, groups=x.shape[1])
    return F.conv2d(x, weight, bias, stride=stride, padding=padding, groups=x.shape[1])


class _DepthwiseFIR(torch.autograd.Function):
    """A depthwise convolution with a constant kernel whose backward is its adjoint, itself
    a `_DepthwiseFIR`, so gradients of every order stay depthwise convolutions."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, transposed, output_padding):
        ctx.weight, ctx.stride, ctx.padding = weight, stride, padding
        ctx.transposed, ctx.in_size = transposed, tuple(x.shape[2:])
        return _conv(x, weight, bias, stride, padding, transposed, output_padding)

    @staticmethod
    def backward(ctx, grad):
        weight = ctx.weight.to(grad.dtype)  # autocast may have run the forward in bf16
        grad_x = grad_bias = None
        if ctx.needs_input_grad[0]:
            if ctx.transposed:  # the adjoint of conv_transpose2d is conv2d
                grad_x = _DepthwiseFIR.apply(grad, weight, None, ctx.stride, ctx.padding,
                                             False, (0, 0))
            else:
                # conv2d dropped the last (in + 2p - k) % stride input rows/columns from its
                # footprint; output_padding gives them back so the gradient has x's size.
                kernel = weight.shape[2:]
                extra = tuple(
                    size - ((out - 1) * s - 2 * p + k) for size, out, s, p, k in zip(
                        ctx.in_size, grad.shape[2:], ctx.stride, ctx.padding, kernel,
                        strict=True))
                grad_x = _DepthwiseFIR.apply(grad, weight, None, ctx.stride, ctx.padding,
                                             True, extra)
        if ctx.needs_input_grad[2]:
            grad_bias = grad.sum(dim=(0, 2, 3))
        return grad_x, None, grad_bias, None, None, None, None


def _pad(x: torch.Tensor, pads: tuple[int, int, int, int]) -> torch.Tensor:
    """F.pad with (x0, x1, y0, y1); negative values crop. No-op when all zero."""
    if not any(pads):
        return x
    if min(pads) >= 0:
        return F.pad(x, list(pads))
    x0, x1, y0, y1 = pads
    x = x[:, :, max(-y0, 0):x.shape[2] - max(-y1, 0), max(-x0, 0):x.shape[3] - max(-x1, 0)]
    return F.pad(x, [max(x0, 0), max(x1, 0), max(y0, 0), max(y1, 0)]) if max(pads) > 0 else x


def filter2d(x: torch.Tensor, f: torch.Tensor | None, padding=0, flip_filter: bool = False,
             gain: float = 1) -> torch.Tensor:
    """Filter with `f`, padded so the output has the input's size (plus `padding`)."""
    px0, px1, py0, py1 = parse_padding(padding)
    fw, fh = filter_size(f)
    pads = (px0 + fw // 2, px1 + (fw - 1) // 2, py0 + fh // 2, py1 + (fh - 1) // 2)
    return upfirdn2d(x, f, padding=pads, flip_filter=flip_filter, gain=gain)


def upsample2d(x: torch.Tensor, f: torch.Tensor | None, up=2, padding=0,
               flip_filter: bool = False, gain: float = 1) -> torch.Tensor:
    """Upsample by `up` with filter `f`; output size is `up` times the input (plus padding)."""
    upx, upy = _pair(up)
    px0, px1, py0, py1 = parse_padding(padding)
    fw, fh = filter_size(f)
    pads = (px0 + (fw + upx - 1) // 2, px1 + (fw - upx) // 2,
            py0 + (fh + upy - 1) // 2, py1 + (fh - upy) // 2)
    return upfirdn2d(x, f, up=up, padding=pads, flip_filter=flip_filter, gain=gain * upx * upy)


def downsample2d(x: torch.Tensor, f: torch.Tensor | None, down=2, padding=0,
                 flip_filter: bool = False, gain: float = 1) -> torch.Tensor:
    """Downsample by `down` with filter `f`; output size is the input over `down`."""
    downx, downy = _pair(down)
    px0, px1, py0, py1 = parse_padding(padding)
    fw, fh = filter_size(f)
    pads = (px0 + (fw - downx + 1) // 2, px1 + (fw - downx) // 2,
            py0 + (fh - downy + 1) // 2, py1 + (fh - downy) // 2)
    return upfirdn2d(x, f, down=down, padding=pads, flip_filter=flip_filter, gain=gain)
