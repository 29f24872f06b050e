"""The tiled filtered_lrelu, the polyphase helpers, the demodulation cache and the
precision / compile options, against slow, obviously-correct references."""

from __future__ import annotations

import math
import threading

import pytest
import torch
import torch.nn.functional as F

from gan_models import acceleration
from gan_models.architectures import stylegan3 as sg3
from gan_models.ops import filtered_lrelu as fl
from gan_models.ops import modulated_conv, polyphase, workers
from gan_models.ops.upfirdn2d import upfirdn2d_bias


def reference_filtered_lrelu(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip):
    """Float64, every step spelled out: bias, zero insertion, pad/crop, 2D conv with the
    flipped filter, gain, lrelu, clamp, 2D conv, keep every down-th pixel."""
    x = x.double() + (0 if b is None else b.double()[None, :, None, None])
    n, c, h, w = x.shape
    big = torch.zeros(n, c, h * up, w * up, dtype=torch.float64)
    big[:, :, ::up, ::up] = x
    big = F.pad(big, list(padding))

    def conv(img, f, scale):
        f = torch.ones(1, dtype=torch.float64) if f is None else f.double()
        f = torch.outer(f, f) if f.ndim == 1 else f
        kernel = f if flip else f.flip([0, 1])
        return F.conv2d(img, (kernel * scale)[None, None].repeat(c, 1, 1, 1), groups=c)

    y = conv(big, fu, up ** 2)
    y = torch.where(y >= 0, y, y * slope) * gain
    if clamp is not None:
        y = y.clamp(-clamp, clamp)
    return conv(y, fd, 1.0)[:, :, ::down, ::down]


def _layers(config: dict):
    torch.manual_seed(0)
    synthesis = sg3.Generator(**config).synthesis
    return [getattr(synthesis, name) for name in synthesis.layer_names]


# Small StyleGAN3 networks whose layers cover every geometry of the real ones: up 2 and
# 4, down 2, margins and crops (critically sampled layers), radial 2D down filters (R).
SMALL_T = {"z_dim": 8, "c_dim": 0, "w_dim": 8, "img_resolution": 64, "img_channels": 3,
           "mapping_kwargs": {"num_layers": 2}, "channel_base": 1024, "channel_max": 40,
           "num_layers": 6, "num_critical": 2, "margin_size": 4}
SMALL_R = {**SMALL_T, "conv_kernel": 1, "use_radial_filters": True}


@pytest.fixture
def small_tiles(monkeypatch):
    """Tiles of 3 output rows and 16 channels, so every layer runs many tiles, channel
    groups with a remainder, and a short last strip."""
    monkeypatch.setattr(fl, "STRIP_ROWS_CPU", 3)
    monkeypatch.setattr(fl, "TILE_BYTES_CPU", 1)


@pytest.mark.parametrize("config", [SMALL_T, SMALL_R], ids=["T", "R"])
@pytest.mark.parametrize("layout", [torch.channels_last, torch.contiguous_format])
def test_tiled_filtered_lrelu_matches_reference_on_stylegan3_layers(config, layout,
                                                                  small_tiles):
    gen = torch.Generator().manual_seed(1)
    for layer in _layers(config):
        if layer.is_torgb:
            continue
        size = layer.in_size + layer.conv_kernel - 1
        x = torch.randn(2, layer.out_channels, size, size, generator=gen)
        b = torch.randn(layer.out_channels, generator=gen)
        args = dict(fu=layer.up_filter, fd=layer.down_filter, b=b, up=layer.up_factor,
                    down=layer.down_factor, padding=layer.padding, gain=math.sqrt(2),
                    slope=0.2, clamp=1.0)
        with torch.no_grad():
            got = fl.filtered_lrelu(x.contiguous(memory_format=layout), **args)
        want = reference_filtered_lrelu(x, layer.up_filter, layer.down_filter, b,
                                        layer.up_factor, layer.down_factor, layer.padding,
                                        math.sqrt(2), 0.2, 1.0, False)
        assert got.shape == want.shape, layer
        torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)


CASES = [
    # fu taps, fd taps (or 2D shape), up, down, padding, clamp
    (12, 12, 2, 2, (6, 5, 6, 5), None),
    (24, 12, 4, 2, (10, 7, 10, 7), 0.5),
    (12, (12, 12), 2, 2, (3, 8, 5, 6), None),
    (6, 5, 2, 1, (-2, 3, 1, -1), 1.0),
    (6, 4, 3, 2, (4, 1, 2, 5), None),
    (None, 3, 1, 2, (1, 1, 1, 1), None),
    (4, None, 2, 1, (1, 2, 2, 1), 2.0),
]


@pytest.mark.parametrize("fu_taps,fd_taps,up,down,padding,clamp", CASES)
@pytest.mark.parametrize("flip", [False, True])
def test_tiled_equals_composed_and_reference(fu_taps, fd_taps, up, down, padding, clamp, flip,
                                             small_tiles):
    gen = torch.Generator().manual_seed(3)

    def taps(spec):
        if spec is None:
            return None
        shape = (spec,) if isinstance(spec, int) else spec
        f = torch.rand(shape, generator=gen) + 0.05  # asymmetric: catches flips
        return f / f.sum()

    fu, fd = taps(fu_taps), taps(fd_taps)
    x = torch.randn(2, 20, 11, 13, generator=gen)
    b = torch.randn(20, generator=gen)
    pads = fl.parse_padding(padding)
    size = fl.output_size(x.shape[2:], fu, fd, up, down, pads)
    with torch.no_grad():
        tiled = fl._tiled(x, fu, fd, b, up, down, pads, size, 1.3, 0.3, clamp, flip)
        composed = fl._composed(x, fu, fd, b, up, down, pads, 1.3, 0.3, clamp, flip)
    want = reference_filtered_lrelu(x, fu, fd, b, up, down, pads, 1.3, 0.3, clamp, flip)
    torch.testing.assert_close(tiled.double(), want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(tiled, composed, rtol=1e-5, atol=1e-5)


def test_tiled_filtered_lrelu_in_bfloat16_stays_close():
    layer = _layers(SMALL_T)[1]
    x = torch.randn(1, layer.out_channels, 24, 24)
    b = torch.randn(layer.out_channels)
    args = dict(fu=layer.up_filter, fd=layer.down_filter, b=b, up=layer.up_factor,
                down=layer.down_factor, padding=(5, 4, 5, 4), clamp=256)
    with torch.no_grad():
        want = fl.filtered_lrelu(x, **args)
        got = fl.filtered_lrelu(x.bfloat16(), **args)
    assert got.dtype == torch.bfloat16
    assert (got.float() - want).abs().max() < 0.05 * want.abs().max()


def test_tiles_run_on_workers_under_inference_mode(small_tiles):
    layer = _layers(SMALL_T)[2]
    x = torch.randn(2, layer.out_channels, 20, 20)
    args = dict(fu=layer.up_filter, fd=layer.down_filter, b=torch.randn(layer.out_channels),
                up=2, down=2, padding=(5, 4, 5, 4))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with torch.no_grad():
            inline = fl.filtered_lrelu(x, **args)
        torch.set_num_threads(2)
        with torch.inference_mode():
            pooled = fl.filtered_lrelu(x, **args)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(inline, pooled)
    assert torch.get_num_threads() == threads  # the workers' setting stays theirs


def test_workers_stay_single_threaded_and_leave_new_threads_the_default():
    """Starting a pool (3 workers: a new one) must not hand its one-thread setting to
    threads that start later, as torch.set_num_threads alone would."""
    threads = torch.get_num_threads()
    seen = []
    workers.run_tiles(lambda _: seen.append(torch.get_num_threads()), range(6), 3)
    later = []
    thread = threading.Thread(target=lambda: later.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    assert set(seen) == {1}
    assert later == [threads] and torch.get_num_threads() == threads


def test_run_tiles_passes_errors_on():
    def fail(tile):
        if tile == 3:
            raise ValueError("tile 3")

    with pytest.raises(ValueError, match="tile 3"):
        workers.run_tiles(fail, range(5), 2)


@pytest.mark.parametrize("up,pad0,start", [(2, 6, 0), (2, 5, 3), (4, 10, 6), (3, -2, 1)])
def test_phase_kernels_equal_zero_stuffed_filtering(up, pad0, start):
    g = torch.rand(11, dtype=torch.float64)
    x = torch.randn(9, dtype=torch.float64)
    stuffed = torch.zeros(9 * up + 40, dtype=torch.float64)
    stuffed[20:20 + 9 * up:up] = x  # p[q] = u[q - pad0] lives at index q - pad0 + 20
    base, kernels = polyphase.phase_kernels(g, up, pad0, start)
    for q in range(up):
        for m in range(3):
            j = start + q + up * m
            want = sum(g[k] * stuffed[j + k - pad0 + 20] for k in range(11))
            got = sum(kernels[q][n] * (x[base + m + n] if 0 <= base + m + n < 9 else 0)
                      for n in range(len(kernels[q])))
            assert float(got) == pytest.approx(float(want), abs=1e-12)


def test_squared_taps_cache_follows_in_place_weight_changes():
    w = torch.randn(4, 3, 3, 3)
    with torch.no_grad():
        first = modulated_conv.squared_taps(w)
        assert modulated_conv.squared_taps(w) is first  # cached
        w.mul_(2)
        second = modulated_conv.squared_taps(w)
    torch.testing.assert_close(second, first * 4)
    w.requires_grad_(True)
    fresh = modulated_conv.squared_taps(w)  # with autograd: never cached
    assert fresh.requires_grad


def test_modulated_conv_picks_the_smaller_operand_and_paths_agree():
    torch.manual_seed(0)
    weight, styles = torch.randn(6, 5, 3, 3), torch.randn(1, 5)
    for size in (2, 9):  # input smaller / larger than the weight
        x = torch.randn(1, 5, size, size)
        auto = modulated_conv.modulated_conv2d(x, weight, styles, padding=1)
        fused = modulated_conv.modulated_conv2d(x, weight, styles, padding=1,
                                                fused_modconv=True)
        torch.testing.assert_close(auto, fused, rtol=1e-5, atol=1e-5)


# --- precision and compile ------------------------------------------------------------------

def test_precision_checks():
    with pytest.raises(Exception, match="fp16 runs on GPUs only"):
        acceleration.check_precision("fp16", "cpu")
    with pytest.raises(Exception, match="unknown precision"):
        acceleration.check_precision("fp8", "cpu")
    acceleration.check_precision("bf16", "cpu")


def test_bf16_generation_is_close_to_fp32():
    torch.manual_seed(0)
    g = sg3.Generator(**SMALL_T).eval()
    z = torch.randn(2, 8)
    with torch.no_grad():
        want = g(z, None)
        with acceleration.precision_context("bf16", "cpu"):
            got = g(z, None)
    assert got.dtype == torch.float32
    err = (got - want).square().mean().sqrt() / want.square().mean().sqrt()
    assert err < 0.05


def test_compile_falls_back_when_the_compiler_fails(monkeypatch):
    net = torch.nn.Linear(3, 2)

    def broken(module, **kwargs):
        def run(*args):
            raise RuntimeError("no C++ compiler")
        return run

    monkeypatch.setattr(torch, "compile", broken)
    x = torch.randn(4, 3)
    torch.testing.assert_close(acceleration.run_compiled(net, x), net(x))
    assert "no C++ compiler" in acceleration.compile_status["last"]
    torch.testing.assert_close(acceleration.run_compiled(net, x), net(x))  # now plain


@pytest.mark.parametrize("up,down,padding", [
    (2, 1, (6, 5, 6, 5)), (4, 1, (10, 9, 11, 8)), (2, 2, (5, 6, 3, 2)), (3, 2, (-2, 4, 1, -1)),
    ((2, 1), (1, 2), (3, 2, 2, 3)), ((1, 4), 1, (1, 1, 9, 9))])
def test_polyphase_upfirdn2d_matches_reference(up, down, padding):
    gen = torch.Generator().manual_seed(4)
    f = torch.rand(12, generator=gen) + 0.05
    f = f / f.sum()
    x = torch.randn(2, 5, 9, 10, generator=gen)
    b = torch.randn(5, generator=gen)
    upx, upy = (up, up) if isinstance(up, int) else up
    downx, downy = (down, down) if isinstance(down, int) else down
    with torch.no_grad():
        got = upfirdn2d_bias(x, f, up=up, down=down, padding=padding, gain=1.5,
                                       bias=b)
    n, c, h, w = x.shape
    big = torch.zeros(n, c, h * upy, w * upx, dtype=torch.float64)
    big[:, :, ::upy, ::upx] = x.double()
    big = F.pad(big, list(padding))
    kernel = (torch.outer(f, f).double() * 1.5).flip([0, 1])[None, None].repeat(c, 1, 1, 1)
    want = F.conv2d(big, kernel, groups=c)[:, :, ::downy, ::downx] + b.double()[:, None, None]
    assert got.shape == want.shape
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)


def test_compile_keeps_input_errors_as_they_are(monkeypatch):
    net = torch.nn.Linear(3, 2)
    monkeypatch.setattr(torch, "compile", lambda module, **kwargs: module.forward)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        acceleration.run_compiled(net, torch.randn(4, 5))
    assert net not in acceleration._failed  # still compiled next time


@pytest.mark.parametrize("k,flip_weight", [(3, False), (3, True), (1, True), (4, False)])
def test_transposed_conv_by_phases_equals_conv_transpose(k, flip_weight, monkeypatch):
    import importlib
    cr = importlib.import_module("gan_models.ops.conv2d_resample")
    from gan_models.ops.upfirdn2d import setup_filter
    torch.manual_seed(7)
    x = torch.randn(2, 6, 9, 11)
    w = torch.randn(5, 6, k, k)
    f = setup_filter([1, 3, 3, 1])
    with torch.no_grad():
        monkeypatch.setattr(cr, "PHASE_MIN_PIXELS", 10 ** 9)
        want = cr.conv2d_resample(x, w, f, up=2, padding=k // 2, flip_weight=flip_weight)
        monkeypatch.setattr(cr, "PHASE_MIN_PIXELS", 1)
        got = cr.conv2d_resample(x, w, f, up=2, padding=k // 2, flip_weight=flip_weight)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
