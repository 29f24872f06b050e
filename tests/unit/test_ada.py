"""Adaptive discriminator augmentation: the pipeline (identity at p = 0, differentiable,
correct geometry and colour, deterministic and split-invariant) and the p controller."""

from __future__ import annotations

import pytest
import torch

from gan_models.training.ada import BLIT, COLOR, GEOMETRIC, OPS, AdaController, augment, parse_ops
from gan_models.training.seeding import BatchRandom


def images(n=8, size=16, seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 3, size, size, generator=gen, dtype=dtype) * 2 - 1)


def rand(n=8, seed=1, lo=0, hi=None):
    return BatchRandom(seed, n, lo, n if hi is None else hi)


def test_p_zero_is_the_identity_and_draws_nothing():
    x = images()
    r = rand()
    assert augment(x, 0.0, r) is x
    assert torch.equal(r.uniform(3), rand().uniform(3))  # the generator was not advanced


def test_images_no_op_touches_stay_bit_exact():
    x = images(64)
    y = augment(x, 0.05, rand(64))  # most images draw no operation at this p
    same = [torch.equal(y[i], x[i]) for i in range(64)]
    assert 10 < sum(same) < 64


def test_differentiable_in_the_images_including_double_backward():
    x = images(2, 6, dtype=torch.float64).requires_grad_(True)
    # Linear in x with per-image coefficients: autograd must match finite differences.
    assert torch.autograd.gradcheck(lambda t: augment(t, 0.9, rand(2)), (x,))
    # R1 differentiates D's gradient w.r.t. the unaugmented reals: needs double backward.
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    out = torch.nn.functional.conv2d(augment(x, 0.9, rand(2)), w).square().sum()
    (gx,) = torch.autograd.grad(out, x, create_graph=True)
    gx.square().sum().backward()
    assert w.grad is not None and w.grad.abs().sum() > 0


def test_geometry_keeps_shape_and_range():
    x = images(32)
    y = augment(x, 1.0, rand(32), BLIT + GEOMETRIC)
    assert y.shape == x.shape
    # Bilinear sampling with reflection mixes pixels of the same image: never out of range.
    assert y.min() >= x.min() - 1e-6 and y.max() <= x.max() + 1e-6
    assert not torch.equal(y, x)


def test_xflip_and_quarter_turns_move_whole_pixels():
    x = images(16)
    flipped = augment(x, 1.0, rand(16), ("xflip",))
    kinds = []
    for i in range(16):
        if torch.allclose(flipped[i], x[i], atol=1e-5):
            kinds.append("same")
        else:
            torch.testing.assert_close(flipped[i], x[i].flip(2), atol=1e-5, rtol=0)
            kinds.append("flip")
    assert set(kinds) == {"same", "flip"}
    turned = augment(x, 1.0, rand(16), ("rotate90",))
    quarter_turns = set()
    for i in range(16):
        errors = [(turned[i] - torch.rot90(x[i], k, (1, 2))).abs().max() for k in range(4)]
        k = int(torch.stack(errors).argmin())
        assert errors[k] < 1e-5
        quarter_turns.add(k)
    assert len(quarter_turns) >= 3


def test_integer_translation_shifts_by_whole_pixels_with_reflection():
    x = images(8)
    y = augment(x, 1.0, rand(8), ("xint",))
    for i in range(8):
        # The interior of a shifted image equals a shifted crop of the original.
        best = min(
            float((y[i, :, 4:12, 4:12] - x[i, :, 4 - dy:12 - dy, 4 - dx:12 - dx]).abs().max())
            for dy in range(-2, 3) for dx in range(-2, 3))
        assert best < 1e-5


def test_colour_matrix_acts_as_each_operation_should():
    x = images(16)
    luma = x.mean(dim=1)
    hue = augment(x, 1.0, rand(16), ("hue",))
    torch.testing.assert_close(hue.mean(dim=1), luma, atol=1e-5, rtol=0)  # hue keeps luma
    assert not torch.allclose(hue, x, atol=1e-3)
    bright = augment(x, 1.0, rand(16), ("brightness",))
    shift = (bright - x).flatten(1)
    torch.testing.assert_close(shift, shift[:, :1].expand_as(shift), atol=1e-5, rtol=0)
    flipped = augment(x, 1.0, rand(16), ("lumaflip",))
    for i in range(16):  # a luma flip negates luma and keeps the chroma
        if not torch.allclose(flipped[i], x[i], atol=1e-5):
            torch.testing.assert_close(flipped[i].mean(0), -luma[i], atol=1e-5, rtol=0)
            torch.testing.assert_close(flipped[i] - flipped[i].mean(0), x[i] - luma[i],
                                       atol=1e-5, rtol=0)
    everything = augment(x, 1.0, rand(16), COLOR)
    assert everything.shape == x.shape and bool(torch.isfinite(everything).all())


def test_each_operation_fires_with_probability_p():
    x = images(2000, 4)
    y = augment(x, 0.25, rand(2000, seed=7), ("brightness",))
    fired = (y != x).flatten(1).any(dim=1).float().mean()
    assert abs(float(fired) - 0.25) < 0.04


def test_deterministic_per_step_and_split_invariant():
    x = images(8)
    a = augment(x, 0.7, rand(8, seed=3))
    assert torch.equal(a, augment(x, 0.7, rand(8, seed=3)))
    assert not torch.equal(a, augment(x, 0.7, rand(8, seed=4)))
    halves = torch.cat([augment(x[:4], 0.7, rand(8, seed=3, lo=0, hi=4)),
                        augment(x[4:], 0.7, rand(8, seed=3, lo=4, hi=8))])
    torch.testing.assert_close(halves, a, atol=1e-6, rtol=0)


def test_operation_names():
    assert parse_ops("bgc") == OPS
    assert parse_ops("c") == COLOR
    assert parse_ops("xflip, hue") == ("xflip", "hue")
    with pytest.raises(ValueError, match="bgc"):
        parse_ops("bgx")
    with pytest.raises(ValueError, match="bgc"):
        parse_ops("")


def feed(ctrl: AdaController, first_step: int, sign: float, batch: int = 16) -> None:
    """One interval of D outputs on reals that all have the given sign."""
    for step in range(first_step, first_step + ctrl.interval):
        ctrl.step(step, batch)
        ctrl.accumulate(torch.full((batch, 1), sign))


def test_controller_raises_p_when_d_overfits_and_lowers_it_otherwise():
    ctrl = AdaController(target=0.6, interval=4, kimg=1.0)
    per_update = 16 * 4 / 1000
    feed(ctrl, 0, 1.0)           # r_t = 1 > 0.6: D is too sure about reals
    ctrl.step(4, 16)
    assert ctrl.p == pytest.approx(per_update) and ctrl.r_t == 1.0
    feed(ctrl, 4, 1.0)
    ctrl.step(8, 16)
    ctrl.step(8, 16)             # repeated calls in one step change nothing
    assert ctrl.p == pytest.approx(2 * per_update)
    feed(ctrl, 8, -1.0)          # r_t = -1 < 0.6: back down
    ctrl.step(12, 16)
    assert ctrl.p == pytest.approx(per_update)
    for start in (12, 16, 20):
        feed(ctrl, start, -1.0)
    ctrl.step(24, 16)
    assert ctrl.p == 0.0         # clamped at 0


def test_controller_stays_below_one_and_holds_at_the_target():
    ctrl = AdaController(target=0.6, interval=1, kimg=0.001, p=0.9)
    ctrl.accumulate(torch.ones(8))
    ctrl.step(1, 8)
    assert 0.99 < ctrl.p < 1.0
    at_target = AdaController(target=0.5, interval=1, kimg=1.0, p=0.3)
    at_target.accumulate(torch.tensor([1.0, 1.0, 1.0, -1.0]))  # r_t = 0.5
    at_target.step(1, 4)
    assert at_target.p == 0.3
    fixed = AdaController(p=0.3, adaptive=False)
    fixed.accumulate(torch.ones(8))
    fixed.step(4, 8)
    assert fixed.p == 0.3


def test_controller_state_round_trips_mid_interval():
    a = AdaController(interval=4, kimg=1.0, p=0.2)
    feed(a, 0, 1.0)
    a.step(4, 16)
    a.step(5, 16)
    a.accumulate(torch.tensor([1.0, -1.0, 1.0]))
    b = AdaController(interval=4, kimg=1.0)
    b.load_state_dict(a.state_dict())
    for ctrl in (a, b):
        for step in (6, 7):
            ctrl.step(step, 16)
            ctrl.accumulate(torch.ones(16))
        ctrl.step(8, 16)
    assert a.p == b.p and a.r_t == b.r_t
