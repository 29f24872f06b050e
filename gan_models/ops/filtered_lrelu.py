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

Two implementations give the same values (within float rounding):
- tiled (inference, the default without autograd): the output is made tile by tile (a
  group of channels x a strip of output rows), each tile start to end on one
  single-threaded worker (see `workers`) and on a few megabytes that stay in the CPU's
  caches: bias on the input window, polyphase upsampling (columns, then rows; see
  `polyphase`), gain + leaky ReLU + clamp in place, strided downsampling (rows, then
  columns, or one 2D pass for radial filters). Neither the zero-stuffed image nor the
  full-size upsampled image is ever made, and no multiply-add is spent on inserted zeros
  or on pixels the downsampling drops.
- composed (with autograd, and for 2D up filters): `upfirdn2d` -> `bias_act` ->
  `upfirdn2d` on whole tensors, whose gradients of every order are known.
"""

from __future__ import annotations

import math
import threading

import torch
import torch.nn.functional as F

from . import scratch
from .bias_act import bias_act
from .polyphase import block_weights, phase_kernels, window
from .upfirdn2d import filter_size, parse_padding, upfirdn2d
from .workers import run_tiles, settle_allocator

# Tiles: output rows per strip (each strip also recomputes the downsampling filter's halo
# of upsampled rows, so not too few) and, on the CPU, the bytes of upsampled activations
# per tile, which set the channel group: small enough to stay in one core's share of the
# caches. Elsewhere (GPUs) a tile is the whole batch and every channel. On StyleGAN3-T's
# 256 px layers (2 threads) strips of 64 rows ran the op 15-20 % faster than 16 (less halo,
# fewer calls); the channel group shrinks to keep the tile's bytes.
STRIP_ROWS_CPU = 64
STRIP_ROWS_OTHER = 32
TILE_BYTES_CPU = 6 << 20


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
                   flip_filter: bool = False, out: torch.Tensor | None = None,
                   ) -> torch.Tensor:
    """Bias, upsample + FIR, gain, leaky ReLU, clamp, FIR + downsample.

    x: `[N, C, H, W]` (float32/16/64). fu, fd: `[taps]` (separable), `[fh, fw]` or None
    (identity). b: `[C]` or None. padding: int, (x, y) or (x0, x1, y0, y1) relative to the
    upsampled image. flip_filter: False = convolution, True = correlation.
    Returns `[N, C, out_h, out_w]` (see `output_size`) in x's dtype; the tiled path writes
    it into `out` when that fits (see `scratch`).
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
    grad = torch.is_grad_enabled() and (x.requires_grad or (b is not None and b.requires_grad))
    # torch.compile fuses the whole-tensor ops itself; the tiles' threads it cannot trace.
    if not grad and not (fu is not None and fu.ndim == 2) and not torch.compiler.is_compiling():
        return _tiled(x, fu, fd, b, up, down, pads, (out_h, out_w), gain, slope, clamp,
                      flip_filter, out)
    return _composed(x, fu, fd, b, up, down, pads, gain, slope, clamp, flip_filter)


def _composed(x, fu, fd, b, up, down, pads, gain, slope, clamp, flip_filter):
    """Whole-tensor ops: upfirdn2d (up), bias_act (lrelu), upfirdn2d (down)."""
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


def _taps(f: torch.Tensor | None, flip_filter: bool, like: torch.Tensor) -> torch.Tensor:
    """Correlation taps (float32, on x's device): a convolution flips the filter."""
    if f is None:
        return torch.ones(1, dtype=torch.float32, device=like.device)
    f = f.to(device=like.device, dtype=torch.float32)
    return f if flip_filter else f.flip(list(range(f.ndim)))


def _tiled(x, fu, fd, b, up, down, pads, out_size, gain, slope, clamp, flip_filter,
           out=None):
    """Tile by tile (a channel group x a strip of output rows), each tile in the caches and
    on one single-threaded worker (see `workers`):
    1. window + bias, written once per column phase (channel blocks);
    2. one depthwise conv with per-block column kernels: columns come out interleaved;
    3. one depthwise conv per row phase, stacked: rows interleaved (gain folded in);
    4. leaky ReLU and clamp in place;
    5. strided depthwise convs down the rows and along the columns (or one 2D pass);
    6. the tile lands in its place in the output.
    """
    n, c, _, _ = x.shape
    out_h, out_w = out_size
    px0, _, py0, _ = pads
    dtype, device = x.dtype, x.device
    if fu is None and fd is None and up == 1 and down == 1 and not any(pads):
        return bias_act(x, b, act="lrelu", alpha=slope, gain=gain, clamp=clamp)
    gu = _taps(fu, flip_filter, x)
    gd = _taps(fd, flip_filter, x)
    separable = gd.ndim == 1
    kd_h, kd_w = gd.shape[0], gd.shape[-1]
    bias = None if b is None else b.to(device=device, dtype=dtype)

    # Columns of the upsampled image the downsampling reads (rounded up to whole phases)
    # and the input columns they come from: the same for every tile.
    t_w = -(-((out_w - 1) * down + kd_w) // up) * up
    base_x, kx = phase_kernels(gu * up, up, px0, 0)
    cols = (base_x, base_x + t_w // up + kx[0].shape[0] - 1)

    # Tile: `rows` output rows of `cg` channels whose upsampled rows fit the budget, one
    # sample at a time (CPU); elsewhere the whole batch and every channel.
    cpu = device.type == "cpu"
    group = 1 if cpu else n
    rows = min(out_h, STRIP_ROWS_CPU if cpu else STRIP_ROWS_OTHER)
    cg = c
    if cpu:
        t_rows = -(-((rows - 1) * down + kd_h) // up) * up
        cg = max(16, TILE_BYTES_CPU // (t_rows * t_w * x.element_size()) // 16 * 16)
        cg = c if cg >= c else cg

    plans: dict[tuple, tuple] = {}
    plan_lock = threading.Lock()

    def plan(start: int, ch: int):
        """Weights for a strip whose upsampled rows start at `start` (they depend on it only
        modulo `up`) and the first input row it reads."""
        key = ((start - py0) % up, ch)
        shift = (start - py0 - key[0]) // up
        with plan_lock:
            if key not in plans:
                base, ky = phase_kernels(gu * (up * gain), up, py0, start)
                w_rows = [block_weights([k], ch, 2, dtype) for k in ky]
                if separable:
                    w_down = (block_weights([gd], ch, 2, dtype),
                              block_weights([gd], ch, 3, dtype))
                else:
                    w_down = (gd.to(dtype)[None, None].expand(ch, 1, *gd.shape).contiguous(),)
                plans[key] = (base - shift, ky[0].shape[0],
                              block_weights(kx, ch, 3, dtype), w_rows, w_down)
            offset, k_rows, w_cols, w_rows, w_down = plans[key]
        return offset + shift, k_rows, w_cols, w_rows, w_down

    if not scratch.fits(out, (n, c, out_h, out_w), dtype, device):
        out = torch.empty((n, c, out_h, out_w), dtype=dtype, device=device,
                          memory_format=torch.channels_last)
    x_nhwc, out_nhwc = x.permute(0, 2, 3, 1), out.permute(0, 2, 3, 1)

    def tile(where):
        # Every op runs in x's dtype, also inline (where the caller's autocast would cast
        # the convs), so results do not depend on the thread count.
        with torch.autocast(device.type, enabled=False):
            _tile(where)

    def _tile(where):
        s0, c0, o0 = where
        c1, n_rows = min(c0 + cg, c), min(rows, out_h - o0)
        ch = c1 - c0
        t_h = (n_rows - 1) * down + kd_h  # upsampled rows this tile reads
        t_h_up = -(-t_h // up) * up
        base_y, k_rows, w_cols, w_rows, w_down = plan(o0 * down, ch)
        t = window(x_nhwc[s0:s0 + group, :, :, c0:c1],
                   (base_y, base_y + t_h_up // up + k_rows - 1), cols,
                   None if bias is None else bias[c0:c1], copies=up)
        t = F.conv2d(t, w_cols, groups=t.shape[1])       # [G, (phase, c), in rows, W']
        g_, _, r_, w_ = t.shape                           # ... = [G, c, in rows, t_w]
        t = t.permute(0, 2, 3, 1).reshape(g_, r_, w_ * up, ch).permute(0, 3, 1, 2)
        if up > 1:
            t = torch.stack([F.conv2d(t, w, groups=ch).permute(0, 2, 3, 1) for w in w_rows],
                            dim=2)                        # [G, t rows / up, up, t_w, c]
            t = t.flatten(1, 2).permute(0, 3, 1, 2)
        else:
            t = F.conv2d(t, w_rows[0], groups=ch)
        if slope != 1:
            t = F.leaky_relu_(t, slope)
        if clamp is not None:
            t = t.clamp_(-clamp, clamp)
        t = t[:, :, :t_h]
        if separable:
            if kd_h > 1 or down > 1:
                t = F.conv2d(t, w_down[0], stride=(down, 1), groups=ch)
            if kd_w > 1 or down > 1:
                t = F.conv2d(t, w_down[1], stride=(1, down), groups=ch)
        else:
            t = F.conv2d(t, w_down[0], stride=down, groups=ch)
        out_nhwc[s0:s0 + group, o0:o0 + n_rows, :, c0:c1].copy_(
            t.permute(0, 2, 3, 1)[:, :, :out_w])

    tiles = [(s0, c0, o0) for s0 in range(0, n, group) for c0 in range(0, c, cg)
             for o0 in range(0, out_h, rows)]
    if cpu:
        settle_allocator()
    run_tiles(tile, tiles, torch.get_num_threads() if cpu else 1)
    return out
