"""Winograd F(4x4, 3x3) convolutions against float64 direct convolutions, and where the
modulated convolution uses them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gan_models.architectures import stylegan3 as sg3
from gan_models.ops import modulated_conv, scratch, winograd

# Float32 Winograd error, as a fraction of the output's largest value (the transforms add
# a few roundings to the direct convolution's; measured about 8e-6 on 512 channels).
TOLERANCE = 3e-5


def _correlate(d: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    return torch.stack([(d[i:i + g.shape[0]] * g).sum() for i in range(d.shape[0] - 2)])


@pytest.mark.parametrize("points", [winograd.POINTS, (0.0, 1.0, -1.0, 2.0, -2.0),
                                    (0.0, 1.0, -1.0, 0.5, -0.5)])
def test_transforms_give_an_exact_correlation(points):
    bt, g, at = winograd.transforms(points)
    torch.manual_seed(0)
    for _ in range(20):
        d, taps = torch.randn(6, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
        got = at @ ((g @ taps) * (bt @ d))
        torch.testing.assert_close(got, _correlate(d, taps), rtol=0, atol=1e-12)


def test_transforms_refuse_points_that_cannot_work():
    with pytest.raises(ValueError, match="finite points"):
        winograd.transforms((0.0, 1.0, -1.0))
    with pytest.raises(ValueError, match="distinct"):
        winograd.transforms((0.0, 1.0, 1.0, 2.0, -2.0))  # a repeated point


def _direct(x, w, padding, in_scale, out_scale):
    x = x.double()
    if in_scale is not None:
        x = x * in_scale.double()[:, :, None, None]
    y = F.conv2d(x, w.double(), padding=padding)
    if torch.is_tensor(out_scale):
        return y * out_scale.double()[:, :, None, None]
    return y if out_scale is None else y * out_scale


def _assert_close_to_direct(y, ref):
    assert y.shape == ref.shape and y.dtype == torch.float32
    assert y.is_contiguous(memory_format=torch.channels_last)
    error = (y.double() - ref).abs().max().item()
    assert error <= TOLERANCE * ref.abs().max().item(), error


@pytest.fixture
def small_bands(monkeypatch):
    """One tile row per chunk and a few per band: many bands, remainders everywhere."""
    monkeypatch.setattr(winograd, "CHUNK_BYTES", 1)
    monkeypatch.setattr(winograd, "BAND_BYTES", 1)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("batch,in_ch,out_ch,h,w,padding", [
    (1, 16, 24, 9, 9, 2),    # StyleGAN3's full convolution: output 2 larger
    (2, 24, 16, 13, 7, 1),   # StyleGAN2's "same" convolution, a batch, odd sizes
    (1, 8, 8, 6, 11, 0),     # valid convolution, output not a whole number of tiles
    (3, 8, 4, 4, 4, 1),      # a single tile
])
def test_conv3x3_equals_the_direct_convolution(batch, in_ch, out_ch, h, w, padding, threads,
                                               small_bands):
    torch.manual_seed(1)
    x = torch.randn(batch, in_ch, h, w).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(out_ch, in_ch, 3, 3) / (in_ch * 9) ** 0.5
    in_scale, out_scale = torch.rand(batch, in_ch) + 0.5, torch.rand(batch, out_ch) + 0.5
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for scales in [(None, None), (in_scale, out_scale), (None, 1.7)]:
            y = winograd.conv3x3(x, weight, padding, *scales)
            _assert_close_to_direct(y, _direct(x, weight, padding, *scales))
        # A contiguous (NCHW) input gives the same values.
        y = winograd.conv3x3(x.contiguous(), weight, padding, in_scale, out_scale)
        _assert_close_to_direct(y, _direct(x, weight, padding, in_scale, out_scale))
    finally:
        torch.set_num_threads(previous)


def test_a_many_channel_layer_stays_within_tolerance():
    """At StyleGAN3's channel counts (512 in, 64 out here to stay quick) the error is what
    the module docstring states."""
    torch.manual_seed(2)
    x = torch.randn(1, 512, 20, 20).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(64, 512, 3, 3) / (512 * 9) ** 0.5
    _assert_close_to_direct(winograd.conv3x3(x, weight, 2), _direct(x, weight, 2, None, None))


def test_transformed_weights_follow_in_place_changes():
    weight = torch.randn(8, 8, 3, 3)
    x = torch.randn(1, 8, 8, 8)
    first = winograd.conv3x3(x, weight, 1)
    assert winograd.transformed_weight(weight) is winograd.transformed_weight(weight)
    with torch.no_grad():
        weight.mul_(2)
    torch.testing.assert_close(winograd.conv3x3(x, weight, 1), first * 2, rtol=1e-5,
                               atol=1e-5)


def test_inference_tensor_weights_are_cached_and_changes_are_seen():
    with torch.inference_mode():
        weight = torch.randn(8, 8, 3, 3)
        x = torch.randn(1, 8, 8, 8)
        assert winograd.transformed_weight(weight) is winograd.transformed_weight(weight)
        first = winograd.conv3x3(x, weight, 1)
        weight.neg_()
        torch.testing.assert_close(winograd.conv3x3(x, weight, 1), -first)


def test_worth_it_only_for_big_inference_convolutions_on_the_cpu(monkeypatch):
    x = torch.randn(1, 256, 64, 64)
    weight = torch.randn(256, 256, 3, 3)
    monkeypatch.setattr(winograd, "MIN_WORK_PER_THREAD", 0)
    assert winograd.worth_it(x, weight, 1)
    assert not winograd.worth_it(x, weight[:, :, :1, :1], 0)         # 1x1
    assert not winograd.worth_it(x.double(), weight.double(), 1)     # float64
    assert not winograd.worth_it(x, weight, (1, 1))                  # padding not an int
    assert not winograd.worth_it(x[:, :64], weight[:64, :64], 1)  # few channel pairs
    assert not winograd.worth_it(x.requires_grad_(), weight, 1)      # autograd: direct
    with torch.no_grad():
        assert winograd.worth_it(x, weight, 1)
    monkeypatch.setattr(winograd, "ENABLED", False)
    with torch.no_grad():
        assert not winograd.worth_it(x, weight, 1)


@pytest.fixture
def winograd_everywhere(monkeypatch):
    monkeypatch.setattr(winograd, "MIN_CHANNEL_PRODUCT", 1)
    monkeypatch.setattr(winograd, "MIN_WORK_PER_THREAD", 0)
    calls = []
    real = winograd.conv3x3

    def counting(*args, **kwargs):
        calls.append(args[0].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(winograd, "conv3x3", counting)
    return calls


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("demodulate", [True, False])
def test_modulated_conv_by_winograd_equals_the_direct_paths(batch, demodulate,
                                                           winograd_everywhere, monkeypatch):
    torch.manual_seed(3)
    x = torch.randn(batch, 12, 10, 10)
    weight, styles = torch.randn(16, 12, 3, 3), torch.randn(batch, 12)
    bias, noise = torch.randn(16), torch.randn(batch, 1, 10, 10)
    kwargs = dict(padding=1, demodulate=demodulate, bias=bias, gain=1.3, noise=noise)
    with torch.no_grad():
        fast = modulated_conv.modulated_conv2d(x, weight, styles, **kwargs)
        assert len(winograd_everywhere) == 1
        monkeypatch.setattr(winograd, "ENABLED", False)
        for fused in (True, False):
            direct = modulated_conv.modulated_conv2d(x, weight, styles, fused_modconv=fused,
                                                     **kwargs)
            assert (fast - direct).abs().max() <= TOLERANCE * direct.abs().max()
    assert len(winograd_everywhere) == 1


def test_stylegan3_images_with_and_without_winograd_agree(winograd_everywhere, monkeypatch):
    config = {"z_dim": 8, "c_dim": 0, "w_dim": 8, "img_resolution": 32, "img_channels": 3,
              "mapping_kwargs": {"num_layers": 2}, "channel_base": 1024, "channel_max": 32,
              "num_layers": 4, "num_critical": 2, "margin_size": 4}
    torch.manual_seed(4)
    gen = sg3.Generator(**config).eval()
    z = torch.randn(2, 8)
    with torch.no_grad():
        fast = gen(z)
        assert len(winograd_everywhere) >= 4   # every 3x3 layer (not the 1x1 ToRGB)
        monkeypatch.setattr(winograd, "ENABLED", False)
        direct = gen(z)
    assert (fast - direct).abs().max() <= 1e-4 * direct.abs().max()


def test_bf16_autocast_keeps_the_direct_convolution(monkeypatch):
    monkeypatch.setattr(winograd, "MIN_WORK_PER_THREAD", 0)
    x, weight = torch.randn(1, 256, 16, 16), torch.randn(256, 256, 3, 3)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert not winograd.worth_it(x, weight, 1)


def test_scratch_views_reuse_one_buffer_and_fit_checks_shape():
    buffers = scratch.Scratch(torch.device("cpu"))
    buffers.reserve("conv", (1, 4, 6, 6))
    a = buffers.take("conv", (1, 4, 6, 6))
    b = buffers.take("conv", (1, 2, 3, 3))
    assert a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()
    assert a.is_contiguous(memory_format=torch.channels_last)
    assert scratch.fits(a, (1, 4, 6, 6), torch.float32, torch.device("cpu"))
    assert not scratch.fits(a, (1, 4, 6, 5), torch.float32, torch.device("cpu"))
    assert not scratch.fits(a.contiguous(), (1, 4, 6, 6), torch.float32, torch.device("cpu"))
    assert not scratch.fits(None, (1, 4, 6, 6), torch.float32, torch.device("cpu"))
    bigger = buffers.take("conv", (2, 4, 6, 6))  # outgrows the reservation: a new buffer
    assert bigger.shape == (2, 4, 6, 6)


def test_stylegan3_reused_buffers_leave_earlier_images_alone(winograd_everywhere):
    """Generation reuses two activation buffers from layer to layer; the images it returns
    are tensors of their own, equal to the autograd path's (which reuses nothing)."""
    config = {"z_dim": 8, "c_dim": 0, "w_dim": 8, "img_resolution": 32, "img_channels": 3,
              "mapping_kwargs": {"num_layers": 2}, "channel_base": 1024, "channel_max": 32,
              "num_layers": 4, "num_critical": 2, "margin_size": 4, "output_scale": 1}
    torch.manual_seed(5)
    gen = sg3.Generator(**config).eval()
    z1, z2 = torch.randn(2, 8), torch.randn(3, 8)
    with torch.no_grad():
        first = gen(z1)
        kept = first.clone()
        gen(z2)
        gen(z1[:1])
    assert torch.equal(first, kept)
    reference = gen(z1).detach()          # autograd: composed ops, fresh tensors
    assert (first - reference).abs().max() <= 1e-4 * reference.abs().max()


def test_styles_that_want_gradients_keep_the_direct_path(winograd_everywhere):
    """Inversion: frozen weights and a constant input, styles under autograd."""
    torch.manual_seed(6)
    x, weight = torch.randn(1, 12, 8, 8), torch.randn(16, 12, 3, 3)
    styles = torch.randn(1, 12, requires_grad=True)
    modulated_conv.modulated_conv2d(x, weight, styles, padding=1).square().sum().backward()
    assert not winograd_everywhere and styles.grad is not None


def test_disabled_turns_winograd_off_for_the_block_only(monkeypatch):
    monkeypatch.setattr(winograd, "MIN_WORK_PER_THREAD", 0)
    x, weight = torch.randn(1, 256, 8, 8), torch.randn(256, 256, 3, 3)
    with torch.no_grad():
        with winograd.disabled():
            assert not winograd.worth_it(x, weight, 1)
        assert winograd.worth_it(x, weight, 1)
