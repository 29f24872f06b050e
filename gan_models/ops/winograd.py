"""3x3 convolutions by Winograd's minimal filtering, F(4x4, 3x3), for the CPU.

A direct 3x3 convolution spends 9 multiply-adds per output pixel and channel pair. Winograd
cuts the image into 4x4 output tiles (6x6 input tiles, overlapping by 2), maps each input
tile and each kernel into a 6x6 "transform domain" where the convolution becomes an
element-wise product, and maps back: 36 products for 16 outputs, 2.25 per pixel, a 4x cut.
Summed over input channels, each of the 36 element-wise products is one matrix product
`[tiles, in] @ [in, out]`, which oneDNN's matmul runs near the core's peak (`onednn`).

The transforms are small linear maps (einsum contractions over cache-sized chunks of tile
rows); they cost memory passes, so the method pays for many-channel layers and loses on
few-channel ones and small images (`worth_it`). Measured on StyleGAN3-T's 256 px layers
against oneDNN's direct convolution: 512 channels at 84-148 px 2.3-2.5x faster on one
thread and 1.8-2.0x on two; 256 -> 181 channels at 276 px 1.7x and 1.35x.

The transform matrices come from the Toom-Cook construction on the points 0, 1, -1, 2, -1/2
and infinity. Against the usual 0, +-1, +-2 they cut the float32 rounding error by 2.5x
(measured on 512-channel layers: max error 8e-6 of the output's largest value, against
1.3e-6 for the direct convolution and 2e-5 for 0, +-1, +-2).

Inference only (no autograd, no autocast): it serves generation, where nothing asks for
gradients.
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager
from functools import cache

import torch

from . import onednn, scratch
from .weight_cache import PerWeight
from .workers import run_tiles, settle_allocator

TILE = 4                                # output pixels per tile side: F(4x4, 3x3)
POINTS = (0.0, 1.0, -1.0, 2.0, -0.5)    # finite interpolation points (plus infinity)
# GAN_STUDIO_WINOGRAD=0 turns it off (always the direct convolution): for A/B runs, or to
# spare the transformed weights' memory (4x the 3x3 kernels they come from).
ENABLED = os.environ.get("GAN_STUDIO_WINOGRAD", "1") != "0"
# When it pays (measured on SG3-T's layers, 1 and 2 threads): enough channel pairs, and
# enough multiply-adds per thread to hide the per-band overheads (36 matmul calls etc.).
MIN_CHANNEL_PRODUCT = 40_000
MIN_WORK_PER_THREAD = 3e8               # pixels x in x out channels
CHUNK_BYTES = 4 << 20                   # transform-domain data per chunk: fits the caches
BAND_BYTES = 24 << 20                   # per band: matmuls long enough to reuse each weight
BAND_ROWS_HINT = 512                    # matmul rows oneDNN packs the weights for


@cache
def transforms(points: tuple[float, ...] = POINTS, m: int = TILE,
               r: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B^T `[n, n]`, G `[n, r]`, A^T `[m, n]`) in float64, n = m + r - 1, such that for an
    input strip d `[n]` and taps g `[r]`: A^T ((G g) * (B^T d)) = correlation(d, g) `[m]`.

    A^T evaluates the output polynomial at the points (the last column is the point at
    infinity), G evaluates the taps there divided by the Lagrange denominators; B^T is then
    the unique matrix that makes the identity exact, found by solving it. Rows of G and
    B^T are rescaled to equal magnitude, which keeps float32 rounding balanced.
    """
    n = m + r - 1
    if len(points) != n - 1:
        raise ValueError(f"F({m}, {r}) needs {n - 1} finite points, got {len(points)}")
    if len(set(points)) != len(points):
        raise ValueError(f"interpolation points must be distinct, got {points}")
    p = torch.tensor(points, dtype=torch.float64)
    at = torch.zeros(m, n, dtype=torch.float64)
    g = torch.zeros(n, r, dtype=torch.float64)
    for j in range(n - 1):
        at[:, j] = p[j] ** torch.arange(m, dtype=torch.float64)
        denominator = math.prod(points[j] - points[k] for k in range(n - 1) if k != j)
        g[j] = p[j] ** torch.arange(r, dtype=torch.float64) / denominator
    at[m - 1, n - 1] = g[n - 1, r - 1] = 1.0
    # sum_j at[i, j] g[j, k] bt[j, l] = [l == i + k] for all i, k, l: linear in bt.
    system = torch.einsum("ij,jk,jl,lq->ikqjl", at, g, torch.ones(n, n, dtype=torch.float64),
                          torch.eye(n, dtype=torch.float64)).reshape(m * r * n, n * n)
    target = torch.zeros(m, r, n, dtype=torch.float64)
    for i in range(m):
        for k in range(r):
            target[i, k, i + k] = 1.0
    bt = torch.linalg.lstsq(system, target.reshape(-1, 1)).solution.reshape(n, n)
    residual = (system @ bt.reshape(-1, 1) - target.reshape(-1, 1)).abs().max().item()
    if residual > 1e-9:
        raise ValueError(f"points {points} do not give an exact F({m}, {r})")
    bt[bt.abs() < 1e-12] = 0.0
    for j in range(n):
        scale = math.sqrt(bt[j].abs().max().item() / g[j].abs().max().item())
        g[j] *= scale
        bt[j] /= scale
    return bt, g, at


def transformed_weight(weight: torch.Tensor) -> list[torch.Tensor]:
    """G w G^T of a `[O, I, 3, 3]` correlation kernel: 36 `[O, I]` float32 matrices, one
    per transform-domain position, each in oneDNN's packed layout where available.

    Kept per weight tensor until its values change: 4x the kernel's size, made once per
    loaded model instead of once per image, and freed with the weight.
    """
    return _transformed.get(weight, _transform)


def _transform(weight: torch.Tensor) -> list[torch.Tensor]:
    _, g, _ = transforms(POINTS, TILE)
    n = g.shape[0]
    u = torch.einsum("ak,oikl,bl->aboi", g, weight.detach().to(torch.float64), g)
    u = u.reshape(n * n, weight.shape[0], weight.shape[1]).to(torch.float32)
    return [onednn.pack(t.contiguous(), BAND_ROWS_HINT) for t in u]


_transformed = PerWeight()


@contextmanager
def disabled():
    """Every convolution direct inside the block (benchmarks' A/B runs)."""
    global ENABLED
    before, ENABLED = ENABLED, False
    try:
        yield
    finally:
        ENABLED = before


def worth_it(x: torch.Tensor, weight: torch.Tensor, padding) -> bool:
    """Whether `conv3x3` applies and beats the direct convolution for this call."""
    if not (ENABLED and x.device.type == "cpu" and x.dtype == torch.float32 and x.ndim == 4
            and weight.ndim == 4 and weight.shape[2:] == (3, 3) and isinstance(padding, int)
            and 0 <= padding <= 2 and not torch.compiler.is_compiling()
            and not torch.is_autocast_enabled("cpu")):  # bf16 runs the direct conv
        return False
    pairs = weight.shape[0] * weight.shape[1]
    work = pairs * x.shape[0] * x.shape[2] * x.shape[3]
    if pairs < MIN_CHANNEL_PRODUCT or work < MIN_WORK_PER_THREAD * torch.get_num_threads():
        return False
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad):
        return False
    return onednn.available()  # MKL's matmul would not beat the direct conv


def conv3x3(x: torch.Tensor, weight: torch.Tensor, padding: int = 1,
            in_scale: torch.Tensor | None = None,
            out_scale: torch.Tensor | float | None = None,
            out: torch.Tensor | None = None) -> torch.Tensor:
    """`F.conv2d(x * in_scale, weight, padding=padding) * out_scale` by F(4x4, 3x3).

    x `[N, I, H, W]` float32 on the CPU (channels-last is read without a copy); weight
    `[O, I, 3, 3]` (a correlation kernel, as F.conv2d takes it); in_scale `[N, I]`,
    out_scale `[N, O]` or a float (StyleGAN's modulation and demodulation, folded into
    passes that run anyway). Returns `[N, O, H + 2p - 2, W + 2p - 2]`, channels-last,
    written into `out` when that fits (see `scratch`).

    The image is cut into bands of tile rows (a bounded transform-domain buffer each), and
    each band runs start to end on a single-threaded worker (see `workers`): the input
    transform in cache-sized chunks of tile rows, the 36 matmuls over the whole band (each
    weight read once per band), the output transform in chunks again.
    """
    bt, _, at = (t.to(torch.float32) for t in transforms(POINTS, TILE))
    n, m = bt.shape[0], at.shape[0]
    batch, in_ch, h, w = x.shape
    out_ch = weight.shape[0]
    out_h, out_w = h + 2 * padding - 2, w + 2 * padding - 2
    if out_h < 1 or out_w < 1:
        raise ValueError(f"conv3x3: padding {padding} leaves no output for {tuple(x.shape)}")
    th, tw = -(-out_h // m), -(-out_w // m)
    wp = m * tw + 2                                        # padded input columns
    u = transformed_weight(weight)
    scale_in = None if in_scale is None else in_scale.to(torch.float32)
    scale_out = out_scale.to(torch.float32) if torch.is_tensor(out_scale) else out_scale

    if not scratch.fits(out, (batch, out_ch, out_h, out_w), torch.float32, x.device):
        out = torch.empty((batch, out_ch, out_h, out_w), dtype=torch.float32,
                          memory_format=torch.channels_last)
    x_nhwc, out_nhwc = x.permute(0, 2, 3, 1), out.permute(0, 2, 3, 1)
    tile_row_bytes = n * n * tw * max(in_ch, out_ch) * 4
    chunk_rows = max(1, CHUNK_BYTES // tile_row_bytes)
    band_rows = max(chunk_rows, BAND_BYTES // tile_row_bytes // chunk_rows * chunk_rows)
    settle_allocator()

    def input_chunk(where):
        s, t0, k0, k, v = where
        # Input rows m*t0 .. m*(t0+k)+2 of the zero-padded image, scaled by the styles.
        win = x.new_zeros((m * k + 2, wp, in_ch))
        y0 = m * t0 - padding
        lo, hi = max(y0, 0), min(y0 + m * k + 2, h)
        if hi > lo:
            _write(win[lo - y0:hi - y0, padding:padding + w], x_nhwc[s, lo:hi],
                   None if scale_in is None else scale_in[s])
        # B^T d B: overlapping 6-row windows every 4 rows, then the same along the columns.
        tiles = win.as_strided((k, n, wp * in_ch), (m * wp * in_ch, wp * in_ch, 1))
        r = torch.einsum("ab,kbx->akx", bt, tiles).contiguous()            # [a, k, wp*I]
        tiles = r.as_strided((n, k, tw, n, in_ch),
                             (k * wp * in_ch, wp * in_ch, m * in_ch, in_ch, 1))
        v[:, :, k0:k0 + k].copy_(torch.einsum("cb,aktbi->ackti", bt, tiles))

    def output_chunk(where):
        s, t0, k0, k, prods = where
        rows = slice(k0 * tw, (k0 + k) * tw)
        chunk = torch.stack([p[rows] for p in prods]).view(n, n, -1)        # [a, c, k*tw*O]
        z = torch.einsum("ia,acx->icx", at, chunk)
        y = torch.einsum("jc,icx->ijx", at, z).view(m, m, k, tw, out_ch)
        y = y.permute(2, 0, 3, 1, 4)                                       # [k, i, tw, j, O]
        scale = scale_out[s] if torch.is_tensor(scale_out) else scale_out
        # Scatter the 4x4 tiles (demodulated on the way): whole tiles in one pass, then
        # the last, partial column and row of tiles.
        top = m * t0
        k_whole, tw_whole = min(k, (out_h - top) // m), out_w // m
        dst = out_nhwc[s, top:top + m * k_whole]
        _write(dst[:, :m * tw_whole].view(k_whole, m, tw_whole, m, out_ch),
               y[:k_whole, :, :tw_whole], scale)
        if tw_whole < tw:
            cols = out_w - m * tw_whole
            _write(dst[:, m * tw_whole:].view(k_whole, m, cols, out_ch),
                   y[:k_whole, :, tw_whole, :cols], scale)
        if k_whole < k:
            for i in range(out_h - top - m * k_whole):
                row = out_nhwc[s, top + m * k_whole + i]
                for j in range(m):
                    _write(row[j::m], y[k_whole, i, :-(-(out_w - j) // m), j], scale)

    def band(where):
        s, b0 = where
        kb = min(band_rows, th - b0)
        v = x.new_empty((n, n, kb, tw, in_ch))
        chunks = [(s, b0 + k0, k0, min(chunk_rows, kb - k0)) for k0 in range(0, kb, chunk_rows)]
        for c in chunks:
            input_chunk(c + (v,))
        prods = [onednn.matmul_nt(v[a, c].view(kb * tw, in_ch), u[a * n + c])
                 for a in range(n) for c in range(n)]                   # 36 x [T, O]
        del v
        for c in chunks:
            output_chunk(c + (prods,))

    workers = torch.get_num_threads()
    bands = -(-th // band_rows)
    if workers > 1:  # a whole number of bands per worker
        bands = min(th, -(-bands // workers) * workers)
        band_rows = -(-th // bands)
        chunk_rows = min(chunk_rows, band_rows)
    run_tiles(band, [(s, b0) for s in range(batch) for b0 in range(0, th, band_rows)], workers)
    return out


def _write(dst: torch.Tensor, src: torch.Tensor, scale) -> None:
    """dst = src * scale (scale None, a float or a per-channel tensor)."""
    if scale is None:
        dst.copy_(src)
    else:
        torch.mul(src, scale, out=dst)
