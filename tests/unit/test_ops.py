"""The fast upfirdn2d / bias_act ops against slow, obviously-correct references."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gan_models.ops import (
    activation_gain,
    bias_act,
    conv2d_resample,
    downsample2d,
    filter2d,
    setup_filter,
    upfirdn2d,
    upsample2d,
)


def reference_upfirdn2d(x, f, up=(1, 1), down=(1, 1), pad=(0, 0, 0, 0), flip=False, gain=1.0):
    """Zero insertion, pad/crop, 2D conv with the flipped filter, stride slicing (float64)."""
    x = x.double()
    f = f.double()
    if f.ndim == 1:
        f = torch.outer(f, f)
    n, c, h, w = x.shape
    upx, upy = up
    big = torch.zeros(n, c, h * upy, w * upx, dtype=x.dtype)
    big[:, :, ::upy, ::upx] = x
    px0, px1, py0, py1 = pad
    big = F.pad(big, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    big = big[:, :, max(-py0, 0):big.shape[2] - max(-py1, 0),
              max(-px0, 0):big.shape[3] - max(-px1, 0)]
    kernel = f if flip else f.flip([0, 1])  # conv2d correlates; convolution flips
    kernel = (kernel * gain)[None, None].repeat(c, 1, 1, 1)
    out = F.conv2d(big, kernel, groups=c)
    return out[:, :, ::down[1], ::down[0]]


CASES = [
    # (filter taps or 2D, up, down, padding)
    ([1, 3, 3, 1], 1, 1, 0),
    ([1, 3, 3, 1], 2, 1, (2, 1, 2, 1)),
    ([1, 3, 3, 1], 1, 2, (1, 1, 1, 1)),
    ([1, 2, 1], 2, 1, (1, 2, 0, 3)),
    ([1, 3, 3, 1], 2, 2, (1, 2, 2, 1)),
    ([1, 3, 3, 1], 1, 1, (-1, 2, 3, -2)),
    ([1, 3, 3, 1], 2, 1, (-2, 3, 0, -1)),
    ([1, 3, 3, 1], (2, 1), (1, 2), (2, 1, 0, 1)),
    (list(range(1, 13)), 2, 1, (6, 5, 6, 5)),   # 12 taps: kept separable (1D)
    (list(range(1, 13)), 1, 2, (5, 5, 5, 5)),
    ([1], 2, 1, (0, 1, 0, 1)),
]


def _rand_filter(shape, seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=gen) + 0.1


@pytest.mark.parametrize("taps,up,down,padding", CASES)
@pytest.mark.parametrize("flip", [False, True])
def test_upfirdn2d_matches_reference(taps, up, down, padding, flip):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 9, 11)
    f = setup_filter(taps)
    up2 = (up, up) if isinstance(up, int) else up
    down2 = (down, down) if isinstance(down, int) else down
    pad4 = (padding,) * 4 if isinstance(padding, int) else padding
    got = upfirdn2d(x, f, up=up, down=down, padding=padding, flip_filter=flip, gain=1.7)
    want = reference_upfirdn2d(x, f, up2, down2, pad4, flip, 1.7)
    assert got.shape == want.shape
    torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("up,down,padding", [(1, 1, 1), (2, 1, (2, 1, 2, 1)), (1, 2, 1),
                                             (3, 2, (1, 2, 3, 0))])
def test_upfirdn2d_non_separable_and_asymmetric_filters(up, down, padding):
    torch.manual_seed(1)
    x = torch.randn(1, 4, 8, 7)
    f = _rand_filter((3, 4), 3)   # not an outer product, non-square
    got = upfirdn2d(x, f, up=up, down=down, padding=padding)
    want = reference_upfirdn2d(x, f, (up, up), (down, down),
                               (padding,) * 4 if isinstance(padding, int) else padding)
    torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)


def test_separable_2d_filter_equals_its_1d_form():
    x = torch.randn(2, 3, 10, 10)
    taps = _rand_filter((5,), 7)
    f1 = setup_filter(taps, separable=True)
    f2 = setup_filter(taps, separable=False)
    assert f1.shape == (5,) and f2.shape == (5, 5)
    torch.testing.assert_close(upfirdn2d(x, f1, up=2, padding=2),
                               upfirdn2d(x, f2, up=2, padding=2), atol=1e-6, rtol=1e-5)


def test_identity_filter_pads_and_crops():
    x = torch.randn(1, 2, 5, 6)
    y = upfirdn2d(x, None, padding=(1, -2, 0, 1))
    assert y.shape == (1, 2, 6, 5)
    torch.testing.assert_close(y[:, :, :5, 1:], x[:, :, :, :4])
    assert y[:, :, 5].abs().max() == 0 and y[:, :, :, 0].abs().max() == 0


def test_setup_filter():
    f = setup_filter([1, 3, 3, 1])
    assert f.shape == (4, 4) and f.dtype == torch.float32
    torch.testing.assert_close(f.sum(), torch.tensor(1.0))
    torch.testing.assert_close(setup_filter([1, 3, 3, 1], gain=4).sum(), torch.tensor(4.0))
    assert setup_filter(list(range(8))).shape == (8,)      # long filters stay separable
    torch.testing.assert_close(setup_filter([1, 2], normalize=False, flip_filter=True),
                               torch.tensor([[4.0, 2.0], [2.0, 1.0]]))
    assert setup_filter(None).shape == (1, 1)


def test_resampling_helpers_shapes_and_dc_gain():
    x = torch.ones(1, 2, 8, 8)
    f = setup_filter([1, 3, 3, 1])
    up = upsample2d(x, f)
    down = downsample2d(x, f)
    same = filter2d(x, f)
    assert up.shape == (1, 2, 16, 16) and down.shape == (1, 2, 4, 4) and same.shape == x.shape
    # away from the borders a constant signal keeps its value
    torch.testing.assert_close(up[:, :, 4:-4, 4:-4], torch.ones(1, 2, 8, 8))
    torch.testing.assert_close(down[:, :, 1:-1, 1:-1], torch.ones(1, 2, 2, 2))
    torch.testing.assert_close(same[:, :, 2:-2, 2:-2], torch.ones(1, 2, 4, 4))


def test_upfirdn2d_gradients_match_reference():
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64, requires_grad=True)
    f = setup_filter([1, 3, 3, 1]).double()
    g1, = torch.autograd.grad(upfirdn2d(x, f, up=2, padding=(2, 1, 2, 1)).square().sum(), x)
    g2, = torch.autograd.grad(
        reference_upfirdn2d(x, f, (2, 2), (1, 1), (2, 1, 2, 1)).square().sum(), x)
    torch.testing.assert_close(g1, g2)


def _second_order_grad(fn, x):
    """d/dx of |d(|fn(x)|^2)/dx|^2: the double backward an R1 penalty runs."""
    x = x.detach().requires_grad_(True)
    g, = torch.autograd.grad(fn(x).square().sum(), x, create_graph=True)
    return torch.autograd.grad(g.square().sum(), x)[0]


@pytest.mark.parametrize("taps,up,down,padding", CASES)
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_upfirdn2d_double_backward_matches_reference(taps, up, down, padding, layout):
    torch.manual_seed(5)
    x = torch.randn(2, 3, 9, 11, dtype=torch.float64).contiguous(memory_format=layout)
    f = setup_filter(taps).double()
    up2 = (up, up) if isinstance(up, int) else up
    down2 = (down, down) if isinstance(down, int) else down
    pad4 = (padding,) * 4 if isinstance(padding, int) else padding
    got = _second_order_grad(
        lambda v: upfirdn2d(v, f, up=up, down=down, padding=padding, gain=1.3), x)
    want = _second_order_grad(
        lambda v: reference_upfirdn2d(v, f, up2, down2, pad4, gain=1.3), x)
    torch.testing.assert_close(got, want)


def test_upfirdn2d_and_resampling_convs_pass_gradgradcheck():
    torch.manual_seed(6)
    f = setup_filter([1, 3, 3, 1]).double()
    x = torch.randn(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 2, 3, 3, dtype=torch.float64)
    w1 = torch.randn(2, 2, 1, 1, dtype=torch.float64)
    checks = [
        (lambda x: downsample2d(x, f), (x,)),
        (lambda x: upfirdn2d(x, f, up=2, down=2, padding=(1, 2, 2, 1)), (x,)),
        # the FIR filter carries the layer's bias (1x1 upsampling): both get gradients
        (lambda x, b: conv2d_resample(x, w1, f, up=2, bias=b), (x, b)),
        (lambda x, b: conv2d_resample(x, w, f, up=2, padding=1, bias=b), (x, b)),
    ]
    for fn, inputs in checks:
        assert torch.autograd.gradgradcheck(fn, inputs)


def test_upfirdn2d_backward_under_bf16_autocast():
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    w = torch.randn(4, 4, 3, 3, requires_grad=True)
    f = setup_filter([1, 3, 3, 1])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv2d_resample(x, w, f, down=2, padding=1)
        assert y.dtype == torch.bfloat16
        g, = torch.autograd.grad(y.float().square().sum(), x, create_graph=True)
    g.square().sum().backward()
    assert x.grad.dtype == torch.float32 and torch.isfinite(x.grad).all()
    assert w.grad is not None and torch.isfinite(w.grad).all()


def test_upfirdn2d_keeps_half_precision():
    x = torch.randn(1, 2, 6, 6).to(torch.bfloat16)
    y = upsample2d(x, setup_filter([1, 3, 3, 1]))
    assert y.dtype == torch.bfloat16
    want = upsample2d(x.float(), setup_filter([1, 3, 3, 1]))
    torch.testing.assert_close(y.float(), want, atol=0.05, rtol=0.05)


def reference_bias_act(x, b, dim, act, alpha, gain, clamp):
    funcs = {
        "linear": lambda v: v, "relu": torch.relu,
        "lrelu": lambda v: torch.where(v >= 0, v, v * alpha),
        "tanh": torch.tanh, "sigmoid": torch.sigmoid,
        "elu": lambda v: torch.where(v > 0, v, torch.exp(v) - 1),
        "selu": lambda v: 1.0507009873554805 * torch.where(
            v > 0, v, 1.6732632423543772 * (torch.exp(v) - 1)),
        "softplus": lambda v: torch.log1p(torch.exp(v)),
        "swish": lambda v: v / (1 + torch.exp(-v)),
    }
    shape = [1] * x.ndim
    shape[dim] = -1
    y = funcs[act](x + b.reshape(shape)) * gain
    return y.clamp(-clamp, clamp) if clamp is not None else y


DEFAULT_GAINS = {"linear": 1, "relu": math.sqrt(2), "lrelu": math.sqrt(2), "tanh": 1,
                 "sigmoid": 1, "elu": 1, "selu": 1, "softplus": 1, "swish": math.sqrt(2)}


@pytest.mark.parametrize("act", sorted(DEFAULT_GAINS))
@pytest.mark.parametrize("clamp", [None, 0.5])
def test_bias_act_matches_reference(act, clamp):
    torch.manual_seed(2)
    x = torch.randn(3, 5, 4, 4)
    b = torch.randn(5)
    got = bias_act(x, b, act=act, clamp=clamp)
    want = reference_bias_act(x.double(), b.double(), 1, act, 0.2, DEFAULT_GAINS[act], clamp)
    torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)
    assert activation_gain(act) == pytest.approx(DEFAULT_GAINS[act])


def test_bias_act_options_and_no_input_mutation():
    x = torch.randn(4, 6)
    keep = x.clone()
    b = torch.randn(4)
    got = bias_act(x, b, dim=0, act="lrelu", alpha=0.1, gain=3.0, clamp=2.0)
    want = reference_bias_act(x, b, 0, "lrelu", 0.1, 3.0, 2.0)
    torch.testing.assert_close(got, want)
    assert torch.equal(x, keep)
    assert bias_act(x) is x  # nothing to do: no copy
    with pytest.raises(ValueError, match="unknown activation"):
        bias_act(x, act="gelu2")


def test_bias_act_gradients():
    x = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, b: bias_act(x, b, act="lrelu", clamp=1.5),
                                    (x, b))


def reference_conv2d_resample(x, w, f, up, down, padding, groups, flip_weight):
    """Zero-insert, pad once, dense conv, FIR, subsample: every step spelled out (float64)."""
    fw = f.shape[-1]
    p0 = p1 = padding
    if up > 1:
        p0, p1 = p0 + (fw + up - 1) // 2, p1 + (fw - up) // 2
    if down > 1:
        p0, p1 = p0 + (fw - down + 1) // 2, p1 + (fw - down) // 2
    x = reference_upfirdn2d(x, torch.ones(1, 1), (up, up), (1, 1), (p0, p1, p0, p1))
    kernel = w.double() if flip_weight else w.double().flip([2, 3])
    x = F.conv2d(x, kernel, groups=groups)
    if up > 1 or down > 1:
        x = reference_upfirdn2d(x, f, gain=up * up)
    return x[:, :, ::down, ::down]


@pytest.mark.parametrize("k,up,down,groups,flip_weight", [
    (3, 1, 1, 1, True), (3, 2, 1, 1, False), (3, 2, 1, 2, True), (3, 1, 2, 1, True),
    (3, 1, 2, 2, False), (1, 2, 1, 1, True), (1, 1, 2, 1, True), (1, 1, 1, 2, True),
])
def test_conv2d_resample_matches_reference(k, up, down, groups, flip_weight):
    torch.manual_seed(4)
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    w = torch.randn(6, 4 // groups, k, k, dtype=torch.float64)
    b = torch.randn(6, dtype=torch.float64)
    f = setup_filter([1, 3, 3, 1]).double()
    got = conv2d_resample(x, w, f, up=up, down=down, padding=k // 2, groups=groups,
                          flip_weight=flip_weight, bias=b)
    want = reference_conv2d_resample(x, w, f, up, down, k // 2, groups, flip_weight)
    assert got.shape == want.shape == (2, 6, 8 * up // down, 8 * up // down)
    torch.testing.assert_close(got, want + b[None, :, None, None])
