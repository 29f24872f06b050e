"""Keyframe paths, easing, loops and random walks; chunked generation of long paths."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import tiny_dcgan

from gan_models import GanStudioError, generate_in_chunks
from gan_models.motion.animation import keyframes_from_seeds, path_latents, walk_latents
from gan_models.motion.paths import (
    EASINGS,
    TIMINGS,
    ease,
    eval_path,
    frame_count,
    keyframe_path,
    noise_loop,
    walk_at,
)

KEYS = torch.randn(4, 16, generator=torch.Generator().manual_seed(0))
W_PLUS = torch.randn(3, 5, 8, generator=torch.Generator().manual_seed(1))


def steps_of(frames: torch.Tensor, loop: bool) -> torch.Tensor:
    """Distance between consecutive frames (and from the last back to the first for loops)."""
    nxt = torch.roll(frames, -1, 0) if loop else frames[1:]
    cur = frames if loop else frames[:-1]
    return (nxt.double() - cur.double()).flatten(1).norm(dim=1)


@pytest.mark.parametrize("easing", EASINGS)
def test_easings_fix_the_ends_and_never_go_back(easing):
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    e = ease(t, easing)
    assert e[0] == 0 and e[-1] == 1
    assert (e[1:] >= e[:-1]).all()


def test_frame_count_from_fps_and_seconds():
    assert frame_count(48) == 48
    assert frame_count(48, fps=30, seconds=2.5) == 75
    with pytest.raises(GanStudioError):
        frame_count(0)


@pytest.mark.parametrize("interpolation", ["spline", "linear"])
@pytest.mark.parametrize("method", ["slerp", "lerp"])
def test_loop_closes_frame_n_is_frame_0(interpolation, method):
    frames, u = keyframe_path(KEYS, 48, interpolation, method, "linear", loop=True)
    assert frames.shape == (48, 16)
    assert torch.equal(frames[0], KEYS[0])
    # the frame after the last one lands on keyframe 0 again
    after_last = eval_path(KEYS, torch.tensor([4.0], dtype=torch.float64), interpolation,
                           method, "linear", loop=True)[0]
    assert torch.equal(after_last, frames[0])
    assert not torch.equal(frames[-1], frames[0])
    # and the step across the seam is an ordinary step, not a jump
    steps = steps_of(frames, loop=True)
    assert steps[-1] < 2 * steps.median()


@pytest.mark.parametrize("interpolation", ["spline", "linear"])
def test_path_passes_exactly_through_keyframes(interpolation):
    frames, _ = keyframe_path(KEYS, 4 * 12, interpolation, "slerp", "linear", loop=True)
    for i in range(4):
        assert torch.equal(frames[12 * i], KEYS[i])
    open_frames, _ = keyframe_path(KEYS, 3 * 12 + 1, interpolation, "slerp", "linear", loop=False)
    assert torch.equal(open_frames[0], KEYS[0]) and torch.equal(open_frames[-1], KEYS[-1])
    assert torch.equal(open_frames[24], KEYS[2])
    # under constant-speed timing the keyframes are still on the curve
    on_keys = eval_path(KEYS, torch.arange(4, dtype=torch.float64), interpolation, "slerp")
    assert torch.equal(on_keys, KEYS)


def test_spline_works_per_element_for_w_plus():
    frames, _ = keyframe_path(W_PLUS, 30, "spline", "lerp", "linear", loop=True)
    assert frames.shape == (30, 5, 8)
    assert torch.equal(frames[10], W_PLUS[1])


def test_spline_has_no_corners_at_keyframes():
    def turn_at_keys(interpolation, per_segment):
        frames, _ = keyframe_path(KEYS, 4 * per_segment, interpolation, "slerp", "linear",
                                  loop=True)
        d = torch.roll(frames, -1, 0).double() - frames.double()
        cos = torch.nn.functional.cosine_similarity(d, torch.roll(d, 1, 0), dim=1)
        return torch.acos(cos.clamp(-1, 1))[::per_segment]  # turning angle at each keyframe

    # a smooth curve turns less the finer it is sampled (angle ~ curvature x step); a corner
    # keeps its angle however many frames there are
    assert turn_at_keys("spline", 64).max() < 0.35 * turn_at_keys("spline", 16).max()
    assert turn_at_keys("linear", 64).min() > 1.0 and turn_at_keys("linear", 16).min() > 1.0


def test_constant_speed_makes_even_latent_steps():
    frames, _ = keyframe_path(KEYS, 200, "spline", "slerp", "constant speed", loop=True)
    steps = steps_of(frames, loop=True)
    assert float(steps.std() / steps.mean()) < 0.01
    assert torch.equal(frames[0], KEYS[0])
    open_frames, _ = keyframe_path(KEYS, 101, "spline", "slerp", "constant speed", loop=False)
    assert torch.equal(open_frames[-1], KEYS[-1])


def test_spherical_spline_stays_on_the_gaussian_shell():
    frames, _ = keyframe_path(KEYS, 64, "spline", "slerp", "linear", loop=True)
    norms, key_norms = frames.norm(dim=1), KEYS.norm(dim=1)
    assert norms.min() > 0.9 * key_norms.min() and norms.max() < 1.1 * key_norms.max()


@pytest.mark.parametrize("timing", TIMINGS)
def test_paths_are_bit_identical_on_rerun(timing):
    model = tiny_dcgan()
    first = path_latents(keyframes_from_seeds(model, [1, 5, 42]), 30, "spline", timing)
    again = path_latents(keyframes_from_seeds(model, [1, 5, 42]), 30, "spline", timing)
    assert torch.equal(first.values, again.values)
    assert first.extra["keyframe_seeds"] == [1, 5, 42] and first.seeds is None


def test_single_keyframe_and_labels_along_the_path():
    model = tiny_dcgan(num_classes=3, class_names=["a", "b", "c"])
    keys = keyframes_from_seeds(model, [3, 4], 0.8)
    path = path_latents(keys, 8, "spline", "linear", loop=True)
    assert path.truncation_psi == 0.8 and path.model_id == model.model_id
    torch.testing.assert_close(path.labels[2], 0.5 * (keys.labels[0] + keys.labels[1]))
    assert torch.equal(path.labels[4], keys.labels[1])
    eased = path_latents(keys, 8, "linear", "smoothstep", loop=True)  # classes keep in step
    w = 0.25 * 0.25 * (3 - 2 * 0.25)
    torch.testing.assert_close(eased.labels[1], (1 - w) * keys.labels[0] + w * keys.labels[1])
    still = path_latents(keyframes_from_seeds(model, [3]), 5, "spline")
    assert torch.equal(still.values, keys.values[:1].expand(5, -1))


def test_smooth_loop_moves_at_a_steadier_pace_in_image_space():
    """Per-frame image change is steadier with a spline at constant speed than with straight
    segments at even parameter steps.

    The property is about constant-speed motion, so the timing must be the one that spaces
    frames evenly by distance along the path ("constant speed", an arc-length
    reparametrisation). ease-in-out and smoothstep stop at every keyframe, which is the
    opposite; even a plain spline with uniform parameter steps slows near each keyframe
    (Catmull-Rom tangents (p[i+1] - p[i-1]) / 2 are shorter than the chords between nearly
    orthogonal Gaussian keyframes). Linear segments change speed from one segment to the
    next (chords differ in length) and turn sharply at keyframes.
    """
    model = tiny_dcgan(seed=3)

    def pace_variation(seeds, interpolation, timing):
        keys = keyframes_from_seeds(model, seeds)
        path = path_latents(keys, 24 * len(seeds), interpolation, timing, loop=True)
        steps = steps_of(model.synthesize(path), loop=True)
        return float(steps.std() / steps.mean())

    for seeds in ([1, 5, 42, 7], [100, 200, 300, 400, 500]):
        smooth = pace_variation(seeds, "spline", "constant speed")
        straight = pace_variation(seeds, "linear", "linear")
        assert smooth < straight, (seeds, smooth, straight)
        assert pace_variation(seeds, "spline", "ease-in-out") > straight


def test_walk_loop_closes_and_every_frame_is_a_typical_latent():
    turns = torch.tensor([0.0, 1.0, 0.25, 1.25], dtype=torch.float64)
    at = walk_at(7, 64, turns, 0.5)
    torch.testing.assert_close(at[1], at[0], atol=1e-12, rtol=0)
    torch.testing.assert_close(at[3], at[2], atol=1e-12, rtol=0)
    frames = noise_loop(7, 64, 60, 0.5)
    torch.testing.assert_close(frames[0], at[0], atol=0, rtol=0)
    steps = steps_of(frames, loop=True)
    assert steps[-1] < 1.5 * steps.mean()  # the seam is an ordinary step
    big = noise_loop(3, 8192, 12, 0.3)
    torch.testing.assert_close(big.std(dim=1), torch.ones(12, dtype=torch.float64), atol=0.05,
                               rtol=0)


def test_walk_smoothness_and_determinism():
    calm = steps_of(noise_loop(5, 64, 120, 1.0), loop=True).mean()
    busy = steps_of(noise_loop(5, 64, 120, 0.0), loop=True).mean()
    assert busy > 2 * calm
    assert torch.equal(noise_loop(5, 64, 30, 0.6), noise_loop(5, 64, 30, 0.6))
    assert not torch.equal(noise_loop(5, 64, 30, 0.6), noise_loop(6, 64, 30, 0.6))
    half = noise_loop(5, 64, 31, 1.0, loop=False)
    torch.testing.assert_close(half[-1], -half[0], atol=1e-9, rtol=0)  # half a turn
    with pytest.raises(GanStudioError):
        noise_loop(5, 64, 30, 1.5)


def test_walk_latents_for_a_conditional_model():
    model = tiny_dcgan(num_classes=3, class_names=["a", "b", "c"])
    walk = walk_latents(model, 11, 10, 0.8, truncation_psi=0.9)
    assert walk.values.shape == (10, 16) and walk.values.dtype == torch.float32
    assert torch.equal(walk.labels, model.seeded_labels([11]).expand(10, -1))
    assert model.synthesize(walk).shape == (10, 3, 32, 32)


def test_a_1000_frame_path_generates_chunk_by_chunk():
    model = tiny_dcgan()
    path = path_latents(keyframes_from_seeds(model, [1, 2, 3, 4]), 1000, "spline")
    chunks = []
    images = generate_in_chunks(model, path, 64, on_chunk=lambda done, imgs: chunks.append(
        (done, len(imgs))))
    assert images.shape == (1000, 32, 32, 3)
    assert len(chunks) == math.ceil(1000 / 64) and max(n for _, n in chunks) == 64
    assert chunks[-1] == (1000, 1000 - 64 * 15)
    # chunking does not change the frames
    alone = generate_in_chunks(model, path.select([0, 500, 999]), 3)
    torch.testing.assert_close(images[[0, 500, 999]], alone, atol=1e-6, rtol=0)
