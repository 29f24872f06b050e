"""The loop's parts: DiffAugment, per-sample randomness, losses, EMA, history, state files."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from gan_models.training import losses
from gan_models.training.augment import diff_augment, parse_policy
from gan_models.training.ema import EMA
from gan_models.training.history import LossHistory
from gan_models.training.seeding import BatchRandom, derive_seed
from gan_models.training.state import capture_rng, flatten, restore_rng, unflatten

POLICY = ("color", "translation", "cutout")


def test_diffaugment_is_differentiable_and_changes_images():
    x = torch.rand(6, 3, 16, 16, requires_grad=True)
    y = diff_augment(x * 2 - 1, POLICY, BatchRandom(1, 6, 0, 6))
    assert y.shape == x.shape and not torch.allclose(y, x * 2 - 1)
    y.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert parse_policy("color, translation") == ("color", "translation")
    assert parse_policy("off") == ()
    with pytest.raises(ValueError, match="rotation"):
        parse_policy("rotation")


def test_a_batch_split_in_slices_is_augmented_like_the_whole():
    x = torch.randn(8, 3, 16, 16)
    whole = diff_augment(x, POLICY, BatchRandom(5, 8, 0, 8))
    parts = [diff_augment(x[lo:hi], POLICY, BatchRandom(5, 8, lo, hi)) for lo, hi in
             ((0, 2), (2, 6), (6, 8))]
    torch.testing.assert_close(torch.cat(parts), whole)
    assert derive_seed(5, "step", 1) != derive_seed(5, "step", 2)
    assert derive_seed(5, "step", 1) == derive_seed(5, "step", 1) < 2**63


def test_translation_shifts_by_whole_pixels_and_cutout_zeroes_a_square():
    x = torch.arange(16.0).reshape(1, 1, 4, 4).expand(4, 3, 4, 4).contiguous() + 1
    moved = diff_augment(x, ("translation",), BatchRandom(0, 4, 0, 4))
    values = set(moved.unique().tolist())
    assert values <= set(range(0, 17))  # pixels move; only zeros are new
    cut = diff_augment(x, ("cutout",), BatchRandom(0, 4, 0, 4))
    zeros = (cut == 0).flatten(1).sum(1)
    assert (zeros > 0).all() and (zeros <= 3 * 2 * 2).all()


def test_losses_at_known_points():
    zero = torch.zeros(4)
    assert losses.d_loss("ns", zero, zero).item() == pytest.approx(2 * np.log(2))
    assert losses.g_loss("ns", zero).item() == pytest.approx(np.log(2))
    assert losses.d_loss("hinge", torch.full((4,), 2.0), torch.full((4,), -2.0)).item() == 0
    assert losses.d_accuracy(torch.tensor([1.0, -1.0]), torch.tensor([-1.0, -1.0])) == 0.75

    def critic(x):
        return (x * 3).flatten(1).sum(1)  # gradient norm 3 * sqrt(numel) everywhere

    real, fake = torch.zeros(2, 1, 1, 1), torch.ones(2, 1, 1, 1)
    gp = losses.gradient_penalty(critic, real, fake, torch.full((2, 1, 1, 1), 0.5))
    assert gp.item() == pytest.approx((3 - 1) ** 2)


def test_ema_ramps_up_then_follows_its_half_life():
    net = torch.nn.Linear(2, 2)
    ema = EMA(net, half_life_kimg=1.0, rampup=0.05)
    assert ema.beta(images_seen=100, batch=10) == pytest.approx(0.5 ** (10 / 5))
    assert ema.beta(images_seen=10**6, batch=10) == pytest.approx(0.5 ** (10 / 1000))
    with torch.no_grad():
        net.weight.add_(1.0)
    before = ema.module.weight.clone()
    ema.update(net, images_seen=10**6, batch=1000)  # one half-life
    torch.testing.assert_close(ema.module.weight, (before + net.weight) / 2)


def test_history_stays_bounded_and_keeps_averages():
    h = LossHistory(max_points=8)
    for step in range(1, 101):
        h.add(step, {"loss_d": 1.0, "x": float(step)})
    cols = h.as_dict()
    assert len(h) <= 9 and h.bin > 1
    assert cols["loss_d"] == [1.0] * len(h)
    assert cols["step"] == sorted(cols["step"]) and cols["step"][-1] <= 100
    # each stored x is the mean of the steps its row covers
    assert all(abs(x - (s - (h.bin - 1) / 2)) < h.bin for s, x in zip(cols["step"], cols["x"],
                                                                      strict=True))
    copy = LossHistory()
    tensors: dict = {}
    copy.load_state_dict(unflatten(flatten(h.state_dict(), "h", tensors), tensors))
    assert copy.as_dict() == cols and copy.bin == h.bin


def test_optimizer_state_survives_flattening():
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=0.01, betas=(0.5, 0.9))
    net(torch.randn(4, 3)).sum().backward()
    opt.step()
    tensors: dict = {}
    tree = flatten(opt.state_dict(), "opt", tensors)
    back = unflatten(json.loads(json.dumps(tree)), tensors)
    assert back["param_groups"][0]["betas"] == (0.5, 0.9)
    assert set(back["state"]) == {0, 1}
    assert all(torch.equal(back["state"][0][k], opt.state_dict()["state"][0][k])
               for k in ("exp_avg", "exp_avg_sq", "step"))
    with pytest.raises(TypeError, match="object"):
        flatten({"bad": object()}, "x", {})


def test_global_rng_states_round_trip():
    tensors: dict = {}
    tree = flatten(capture_rng(), "rng", tensors)
    expected = (torch.rand(2), random.random(), np.random.rand())
    restore_rng(unflatten(tree, tensors))
    again = (torch.rand(2), random.random(), np.random.rand())
    assert torch.equal(expected[0], again[0]) and expected[1:] == again[1:]
