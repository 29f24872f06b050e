"""Interpolation math (lerp, slerp) and latent-batch transitions."""

from __future__ import annotations

import pytest
import torch
from helpers import tiny_dcgan

from gan_models import GanStudioError, LatentBatch
from gan_models.motion.animation import blend_times, interpolate_latents
from gan_models.motion.interpolation import along, lerp, method_for_space, slerp, transitions

T = torch.linspace(0, 1, 11, dtype=torch.float64)


def normal(seed: int, *shape) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("fn", [lerp, slerp])
def test_endpoints_are_bit_exact(fn):
    a, b = normal(0, 64), normal(1, 64)
    out = fn(a, b, along(T, a))
    assert out.dtype == torch.float32 and out.shape == (11, 64)
    assert torch.equal(out[0], a) and torch.equal(out[-1], b)


def test_lerp_is_the_straight_line():
    a, b = normal(0, 8), normal(1, 8)
    mid = lerp(a, b, along(torch.tensor([0.25]), a))[0]
    torch.testing.assert_close(mid, 0.75 * a + 0.25 * b)


def test_slerp_keeps_equal_norms_where_lerp_sags():
    a, b = normal(0, 512), normal(1, 512)
    b = b / b.norm() * a.norm()
    s = slerp(a, b, along(T, a)).double().norm(dim=1)
    torch.testing.assert_close(s, torch.full_like(s, float(a.norm())), rtol=1e-6, atol=0)
    lin = lerp(a, b, along(T, a)).norm(dim=1)
    assert lin[5] < 0.8 * a.norm()  # nearly orthogonal Gaussians: lerp midpoint shrinks ~1/sqrt(2)


def test_slerp_norm_moves_linearly_and_angle_evenly():
    a, b = normal(2, 32), 3 * normal(3, 32)
    out = slerp(a, b, along(T, a)).double()
    want = (1 - T) * a.norm().double() + T * b.norm().double()
    torch.testing.assert_close(out.norm(dim=1), want, rtol=1e-6, atol=1e-9)
    unit = out / out.norm(dim=1, keepdim=True)
    angles = torch.acos((unit[1:] * unit[:-1]).sum(1).clamp(-1, 1))
    torch.testing.assert_close(angles, torch.full_like(angles, float(angles.mean())), atol=1e-6,
                               rtol=0)


def test_slerp_parallel_vectors_only_change_length():
    a = normal(4, 16)
    out = slerp(a, 2.5 * a, along(T, a)).double()
    assert torch.isfinite(out).all()
    unit = out / out.norm(dim=1, keepdim=True)
    torch.testing.assert_close(unit, (a / a.norm()).double().expand_as(unit), atol=1e-6, rtol=0)
    # nearly parallel: still finite and as good as lerp
    b = a + 1e-7 * normal(5, 16)
    torch.testing.assert_close(slerp(a, b, along(T, a)), lerp(a, b, along(T, a)), atol=1e-5,
                               rtol=0)


def test_slerp_antiparallel_turns_through_a_perpendicular():
    a = normal(6, 16)
    out = slerp(a, -a, along(T, a)).double()
    assert torch.isfinite(out).all()
    assert torch.equal(out[-1].float(), -a)
    torch.testing.assert_close(out.norm(dim=1), torch.full((11,), float(a.norm()),
                                                           dtype=torch.float64), rtol=1e-6, atol=0)
    assert abs(float(out[5] @ a.double())) < 1e-4 * float(a.norm()) ** 2  # halfway = 90 degrees
    steps = (out[1:] - out[:-1]).norm(dim=1)
    torch.testing.assert_close(steps, torch.full_like(steps, float(steps.mean())), rtol=1e-5,
                               atol=0)
    # same inputs, same perpendicular: the choice is deterministic
    assert torch.equal(slerp(a, -a, along(T, a)), slerp(a, -a, along(T, a)))


def test_slerp_zero_vector_and_one_dim():
    a = normal(7, 8)
    out = slerp(torch.zeros(8), a, along(T, a))
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[5], 0.5 * a)  # grows along a's direction
    one = slerp(torch.tensor([1.0]), torch.tensor([-1.0]), along(T, torch.zeros(1)))
    torch.testing.assert_close(one[5], torch.tensor([0.0]))


def test_slerp_w_plus_works_layer_by_layer():
    a, b = normal(8, 4, 32), normal(9, 4, 32)
    b = b / b.norm(dim=1, keepdim=True) * a.norm(dim=1, keepdim=True)
    out = slerp(a, b, along(T, a))
    assert out.shape == (11, 4, 32)
    torch.testing.assert_close(out.norm(dim=2), a.norm(dim=1).expand(11, 4), rtol=1e-5, atol=0)


def test_transitions_keep_each_pair_together():
    a, b = normal(10, 3, 8), normal(11, 3, 8)
    t = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    out = transitions(a, b, t, "lerp")
    assert out.shape == (9, 8)
    for p in range(3):
        assert torch.equal(out[3 * p], a[p]) and torch.equal(out[3 * p + 2], b[p])
    flat = transitions(normal(12, 2, 4, 3, 3), normal(13, 2, 4, 3, 3), t, "slerp", flat=True)
    assert flat.shape == (6, 4, 3, 3)


def test_method_for_space():
    assert method_for_space("auto", "z") == "slerp"
    assert method_for_space("auto", "w") == "lerp" and method_for_space("auto", "w+") == "lerp"
    assert method_for_space("lerp", "z") == "lerp"
    with pytest.raises(GanStudioError):
        method_for_space("cubic", "z")


def test_blend_times_with_and_without_end():
    assert blend_times(5).tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert blend_times(4, include_end=False).tolist() == [0.0, 0.25, 0.5, 0.75]
    assert blend_times(1).tolist() == [0.0]
    eased = blend_times(9, "ease-in-out")
    assert eased[0] == 0 and eased[-1] == 1 and eased[1] < 1 / 8  # starts slower


def test_interpolate_latents_carries_the_batch_along():
    model = tiny_dcgan(num_classes=3, class_names=["a", "b", "c"])
    a, b = model.sample_latents(10, 2, 0.7), model.sample_latents(20, 2, 0.7)
    out = interpolate_latents(a, b, steps=5)
    assert len(out) == 10 and out.space == "z" and out.seeds is None
    assert out.model_id == model.model_id and out.truncation_psi == 0.7
    assert out.extra["keyframe_seeds"] == [[10, 20], [11, 21]]
    assert torch.equal(out.values[0], a.values[0]) and torch.equal(out.values[9], b.values[1])
    torch.testing.assert_close(out.labels[2], 0.5 * (a.labels[0] + b.labels[0]))
    torch.testing.assert_close(out.labels.sum(1), torch.ones(10))
    images = model.synthesize(out)
    assert images.shape == (10, 3, 32, 32)
    # sizes differ: first sample of each
    single = interpolate_latents(a, model.sample_latents(30, 3, 0.7), steps=4)
    assert len(single) == 4


def test_w_plus_lerp_per_layer():
    a = LatentBatch(values=normal(14, 1, 6, 8), space="w+")
    b = LatentBatch(values=normal(15, 1, 6, 8), space="w+")
    out = interpolate_latents(a, b, steps=3)
    assert out.space == "w+" and out.values.shape == (3, 6, 8)
    torch.testing.assert_close(out.values[1], 0.5 * (a.values[0] + b.values[0]))


def test_incompatible_latents_are_refused():
    a = LatentBatch(values=normal(16, 1, 8), space="z", model_id="m1")
    with pytest.raises(GanStudioError, match="space"):
        interpolate_latents(a, LatentBatch(values=normal(17, 1, 8), space="w"), 3)
    with pytest.raises(GanStudioError, match="different models"):
        interpolate_latents(a, LatentBatch(values=normal(18, 1, 8), model_id="m2"), 3)
    with pytest.raises(GanStudioError, match="truncation"):
        interpolate_latents(a, LatentBatch(values=normal(19, 1, 8), truncation_psi=0.5), 3)


def test_same_inputs_give_bit_identical_frames():
    model = tiny_dcgan()
    a, b = model.sample_latents(1, 1), model.sample_latents(2, 1)
    first = interpolate_latents(a, b, 17, "slerp", "smoothstep")
    again = interpolate_latents(model.sample_latents(1, 1), model.sample_latents(2, 1), 17,
                                "slerp", "smoothstep")
    assert torch.equal(first.values, again.values)
    assert torch.equal(model.synthesize(first), model.synthesize(again))
