"""StyleGAN3 (configs T and R): filtered_lrelu, filter design, NVlabs naming, transforms,
determinism and the generic model interface, on tiny 32 px networks."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import gan_models
from gan_models.architectures import stylegan3 as sg3
from gan_models.ops.filtered_lrelu import filtered_lrelu

# 32 px, 4 layers + ToRGB, 2 critically sampled. Per layer (NVlabs formulas):
# cutoffs 2, 5.66, 16, 16, 16; sampling rates 16, 32, 32, 32, 32; sizes 20, 36, 36, 32, 32.
TINY_T = {"z_dim": 8, "c_dim": 0, "w_dim": 8, "img_resolution": 32, "img_channels": 3,
          "mapping_kwargs": {"num_layers": 2}, "channel_base": 256, "channel_max": 32,
          "num_layers": 4, "num_critical": 2, "margin_size": 2, "magnitude_ema_beta": 0.999}
# Config R as NVlabs train.py makes it: 1x1 convs, radial filters, doubled channels.
TINY_R = {**TINY_T, "channel_base": 512, "channel_max": 64, "conv_kernel": 1,
          "use_radial_filters": True}


def make(config: dict, seed: int = 0, **kwargs) -> gan_models.GenerativeModel:
    torch.manual_seed(seed)
    return gan_models.GenerativeModel.create(
        "stylegan3", {"generator": config, "discriminator": None}, **kwargs)


def layer_keys(name: str, filters: bool) -> list[str]:
    keys = ["weight", "bias", "magnitude_ema", "affine.weight", "affine.bias"]
    keys += ["up_filter", "down_filter"] if filters else []
    return [f"synthesis.{name}.{k}" for k in keys]


# --- filtered_lrelu against a slow, obviously-correct reference --------------------------

def reference_filtered_lrelu(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip):
    """Explicit steps in float64: bias, zero insertion, pad/crop, conv2d with the flipped
    2D filter, gain, lrelu, clamp, conv2d with the flipped filter, keep every down-th."""
    x = x.double() + b.double()[None, :, None, None]
    n, c, h, w = x.shape
    big = torch.zeros(n, c, h * up, w * up, dtype=torch.float64)
    big[:, :, ::up, ::up] = x
    px0, px1, py0, py1 = padding
    big = F.pad(big, [px0, px1, py0, py1])  # negative values crop

    def conv(img, f, scale):
        f = f.double()
        f = torch.outer(f, f) if f.ndim == 1 else f
        kernel = f if flip else f.flip([0, 1])  # conv2d correlates
        return F.conv2d(img, (kernel * scale)[None, None].repeat(c, 1, 1, 1), groups=c)

    y = conv(big, fu, up ** 2)
    y = torch.where(y >= 0, y, y * slope) * gain
    if clamp is not None:
        y = y.clamp(-clamp, clamp)
    return conv(y, fd, 1.0)[:, :, ::down, ::down]


def _filter(shape, seed):
    gen = torch.Generator().manual_seed(seed)
    f = torch.rand(shape, generator=gen) + 0.05  # asymmetric: catches flips
    return f / f.sum()


LRELU_CASES = [
    # fu shape, fd shape, up, down, padding (x0, x1, y0, y1), clamp
    ((12,), (12,), 2, 2, (6, 5, 6, 5), None),
    ((24,), (12,), 4, 2, (10, 7, 10, 7), 0.5),        # a rate-doubling layer
    ((12,), (12, 12), 2, 2, (3, 8, 5, 6), None),      # config R: radial (2D) down filter
    ((6,), (5,), 2, 1, (-2, 3, 1, -1), 1.0),          # negative padding crops
    ((4, 4), (3,), 1, 3, (2, 2, 1, 3), None),         # 2D up filter, up=1
]


@pytest.mark.parametrize("fu_shape,fd_shape,up,down,padding,clamp", LRELU_CASES)
@pytest.mark.parametrize("flip", [False, True])
def test_filtered_lrelu_matches_reference(fu_shape, fd_shape, up, down, padding, clamp, flip):
    torch.manual_seed(1)
    x = torch.randn(2, 3, 9, 10)
    b = torch.randn(3)
    fu, fd = _filter(fu_shape, 2), _filter(fd_shape, 3)
    got = filtered_lrelu(x, fu, fd, b, up=up, down=down, padding=padding, gain=1.7,
                         slope=0.3, clamp=clamp, flip_filter=flip)
    want = reference_filtered_lrelu(x, fu, fd, b, up, down, padding, 1.7, 0.3, clamp, flip)
    assert got.dtype == torch.float32
    assert got.shape == want.shape
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)


def test_filtered_lrelu_identity_filters_is_bias_lrelu_gain_clamp():
    x = torch.randn(2, 4, 5, 5) * 3
    b = torch.randn(4)
    got = filtered_lrelu(x, None, None, b, gain=2.0, slope=0.1, clamp=1.5)
    want = (F.leaky_relu(x + b[None, :, None, None], 0.1) * 2.0).clamp(-1.5, 1.5)
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("with_bias", [True, False])
def test_filtered_lrelu_leaves_its_input_alone_and_has_gradients(with_bias):
    torch.manual_seed(2)
    x = torch.randn(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, dtype=torch.float64, requires_grad=True) if with_bias else None
    fu, fd = _filter((6,), 4), _filter((4, 4), 5)
    kwargs = dict(up=2, down=2, padding=(3, 2, 2, 3), gain=1.3, slope=0.2, clamp=2.0)
    before = x.detach().clone()
    with torch.no_grad():
        filtered_lrelu(x, fu, fd, b, **kwargs)
    assert torch.equal(x.detach(), before)
    inputs = (x, b) if with_bias else (x,)
    assert torch.autograd.gradcheck(
        lambda *t: filtered_lrelu(t[0], fu, fd, t[1] if with_bias else None, **kwargs), inputs)


def test_filtered_lrelu_rejects_bad_arguments():
    x = torch.randn(1, 1, 4, 4)
    with pytest.raises(ValueError):
        filtered_lrelu(x, up=0)
    with pytest.raises(ValueError):
        filtered_lrelu(x, slope=-1.0)
    with pytest.raises(ValueError):
        filtered_lrelu(x, padding=-3)  # nothing left


# --- filter design against scipy ------------------------------------------------------------

def test_lowpass_filters_match_scipy_design():
    signal = pytest.importorskip("scipy.signal")
    special = pytest.importorskip("scipy.special")
    numtaps, cutoff, width, fs = 12, 5.657, 20.69, 64
    want = signal.firwin(numtaps=numtaps, cutoff=cutoff, width=width, fs=fs)
    got = sg3.design_lowpass_filter(numtaps, cutoff, width, fs)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-7)

    # Radial: jinc times a separable Kaiser window, normalised (NVlabs' construction).
    x = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = np.hypot(*np.meshgrid(x, x))
    f = special.j1(2 * cutoff * (np.pi * r)) / (np.pi * r)
    beta = signal.kaiser_beta(signal.kaiser_atten(numtaps, width / (fs / 2)))
    f *= np.outer(np.kaiser(numtaps, beta), np.kaiser(numtaps, beta))
    got = sg3.design_lowpass_filter(numtaps, cutoff, width, fs, radial=True)
    np.testing.assert_allclose(got.numpy(), f / f.sum(), rtol=1e-5, atol=1e-7)
    assert sg3.design_lowpass_filter(1, cutoff, width, fs) is None


def test_radial_filter_handles_an_odd_tap_count():
    f = sg3.design_lowpass_filter(7, 4.0, 8.0, 32, radial=True)
    assert torch.isfinite(f).all() and abs(float(f.sum()) - 1) < 1e-5
    torch.testing.assert_close(f, f.t())


# --- NVlabs naming --------------------------------------------------------------------------

def test_state_dict_names_match_nvlabs_config_t():
    g = make(TINY_T).generator
    # Layer names L{idx}_{out size}_{out channels}; channels rint(min(128 / cutoff, 32)).
    want = ["mapping.fc0.weight", "mapping.fc0.bias", "mapping.fc1.weight",
            "mapping.fc1.bias", "mapping.w_avg",
            "synthesis.input.weight", "synthesis.input.affine.weight",
            "synthesis.input.affine.bias", "synthesis.input.transform",
            "synthesis.input.freqs", "synthesis.input.phases"]
    for name in ["L0_20_32", "L1_36_23", "L2_36_8", "L3_32_8"]:
        want += layer_keys(name, filters=True)
    want += layer_keys("L4_32_3", filters=False)  # ToRGB: 1x1 conv, no filters
    state = g.state_dict()
    assert sorted(state) == sorted(want)
    assert g.num_ws == 6 and g.synthesis.layer_names[-1] == "L4_32_3"
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    assert shapes["mapping.fc0.weight"] == (8, 8)
    assert shapes["synthesis.input.weight"] == (32, 32)
    assert shapes["synthesis.input.freqs"] == (32, 2)
    assert shapes["synthesis.input.affine.weight"] == (4, 8)
    assert shapes["synthesis.L1_36_23.weight"] == (23, 32, 3, 3)
    assert shapes["synthesis.L1_36_23.up_filter"] == (24,)     # 16 -> 64 Hz: up 4
    assert shapes["synthesis.L1_36_23.down_filter"] == (12,)   # 64 -> 32 Hz: down 2
    assert shapes["synthesis.L4_32_3.weight"] == (3, 8, 1, 1)
    assert shapes["synthesis.L0_20_32.magnitude_ema"] == ()


def test_state_dict_names_match_nvlabs_config_r_conditional():
    g = make({**TINY_R, "c_dim": 5}).generator
    assert g.synthesis.layer_names == ["L0_20_64", "L1_36_45", "L2_36_16", "L3_32_16", "L4_32_3"]
    state = g.state_dict()
    assert {"mapping.embed.weight", "mapping.embed.bias"} <= set(state)
    assert tuple(state["mapping.embed.weight"].shape) == (8, 5)
    assert tuple(state["mapping.fc0.weight"].shape) == (8, 16)  # z and embedded c
    assert tuple(state["synthesis.L1_36_45.weight"].shape) == (45, 64, 1, 1)
    # Radial (2D) down filters only where not critically sampled.
    assert tuple(state["synthesis.L0_20_64.down_filter"].shape) == (12, 12)
    assert tuple(state["synthesis.L1_36_45.down_filter"].shape) == (12, 12)
    assert tuple(state["synthesis.L2_36_16.down_filter"].shape) == (12,)
    assert tuple(state["synthesis.L1_36_45.up_filter"].shape) == (24,)


def test_layer_paddings_give_the_layer_sizes():
    g = make(TINY_T).generator
    s = g.synthesis
    assert s.L1_36_23.padding == [10, 7, 10, 7]
    x = s.input(torch.zeros(1, 8))
    assert x.shape == (1, 32, 20, 20)
    for name in s.layer_names:
        x = getattr(s, name)(x, torch.randn(1, 8))
        layer = getattr(s, name)
        assert x.shape == (1, layer.out_channels, layer.out_size, layer.out_size)


# --- forward, transforms, determinism ------------------------------------------------------

@pytest.mark.parametrize("config", [TINY_T, TINY_R], ids=["T", "R"])
def test_generator_forward_shapes_and_batch_consistency(config):
    g = make(config).generator
    z = torch.randn(3, 8)
    with torch.no_grad():
        imgs = g(z, None)
        ws = g.mapping(z, None)
        alone = g.synthesis(ws[1:2])
    assert imgs.shape == (3, 3, 32, 32) and imgs.dtype == torch.float32
    assert torch.isfinite(imgs).all() and imgs.std() > 0
    # The batched (input-modulated) and single-sample (fused) convs agree.
    torch.testing.assert_close(alone, imgs[1:2], rtol=1e-4, atol=1e-5)


def test_modulated_conv_paths_agree():
    torch.manual_seed(0)
    x, weight, styles = torch.randn(3, 4, 6, 6), torch.randn(5, 4, 3, 3), torch.randn(3, 4)
    gain = torch.tensor(0.7)
    for demod in (True, False):
        batched = sg3.modulated_conv2d(x, weight, styles, demod, 2, gain)
        single = torch.cat([sg3.modulated_conv2d(x[i:i + 1], weight, styles[i:i + 1] * 1,
                                                 demod, 2, gain) for i in range(3)])
        # Reference: explicit per-sample weights.
        w = weight[None] * styles[:, None, :, None, None]
        if demod:
            w = w / w.square().sum([2, 3, 4], keepdim=True).add(1e-8).sqrt()
        ref = torch.cat([F.conv2d(x[i:i + 1], w[i] * gain, padding=2) for i in range(3)])
        scale = ref.abs().max()
        torch.testing.assert_close(batched / scale, ref / scale, rtol=0, atol=1e-5)
        torch.testing.assert_close(single / scale, ref / scale, rtol=0, atol=1e-5)


def test_transform_override_identity_equals_default_and_buffer_unchanged():
    g = make(TINY_T).generator
    ws = g.mapping(torch.randn(2, 8), None)
    before = g.synthesis.input.transform.clone()
    with torch.no_grad():
        default = g.synthesis(ws)
        identity = g.synthesis(ws, transform=torch.eye(3))
        moved = g.synthesis(ws, transform=sg3.view_transform((0.25, 0.0), 0.0))
    torch.testing.assert_close(identity, default)
    assert not torch.allclose(moved, default, atol=1e-3)
    assert torch.equal(g.synthesis.input.transform, before)


def test_fourier_features_are_the_field_sampled_at_transformed_points():
    """Input layer vs a direct evaluation: the fixed field sin(2 pi (f . q + phase)) read at
    q = M p + t, where p is the pixel centre from affine_grid and (M, t) the total inverse
    transform (w's rotation, then w's translation, then the user's)."""
    inp = make(TINY_T).generator.synthesis.input
    with torch.no_grad():
        inp.affine.weight.normal_()  # a w-dependent rotation and translation
        w = torch.randn(2, 8)
        user = sg3.view_transform((0.1, -0.05), 20.0)
        got = inp(w, transform=user)
        scale = 0.5 * inp.size / inp.sampling_rate
        theta = torch.tensor([[[scale, 0.0, 0.0], [0.0, scale, 0.0]]])
        grid = F.affine_grid(theta, [1, 1, inp.size, inp.size], align_corners=False)[0]
        for b in range(2):
            rc, rs, tx, ty = inp.affine(w[b:b + 1])[0].tolist()
            norm = math.hypot(rc, rs)
            rc, rs, tx, ty = rc / norm, rs / norm, tx / norm, ty / norm
            rot = torch.tensor([[rc, -rs, 0.0], [rs, rc, 0.0], [0.0, 0.0, 1.0]])
            shift = torch.tensor([[1.0, 0.0, -tx], [0.0, 1.0, -ty], [0.0, 0.0, 1.0]])
            m = rot @ shift @ user
            q = grid @ m[:2, :2].t() + m[:2, 2]  # [H, W, 2]
            field = torch.sin(2 * math.pi * (q @ inp.freqs.t() + inp.phases))  # [H, W, C]
            bw, half = inp.bandwidth, inp.sampling_rate / 2
            amp = (1 - ((inp.freqs @ m[:2, :2]).norm(dim=1) - bw) / (half - bw)).clamp(0, 1)
            want = (field * amp) @ (inp.weight / math.sqrt(inp.channels)).t()
            torch.testing.assert_close(got[b], want.permute(2, 0, 1), rtol=1e-4, atol=1e-4)


def test_translation_shifts_the_fourier_features_exactly():
    inp = make(TINY_T).generator.synthesis.input
    w = torch.randn(1, 8)
    shift = 3  # pixels at the input's sampling rate (16)
    with torch.no_grad():
        base = inp(w)
        moved = inp(w, transform=sg3.view_transform((shift / 16, 0.0)))
    torch.testing.assert_close(moved[..., shift:], base[..., :-shift], rtol=1e-4, atol=1e-4)


def test_positive_angles_turn_the_content_counter_clockwise():
    inp = make(TINY_T).generator.synthesis.input
    w = torch.randn(1, 8)
    with torch.no_grad():
        base = inp(w)
        turned = inp(w, transform=sg3.view_transform(angle_degrees=90.0))
    # torch.rot90 with k=1 turns an image counter-clockwise as displayed (row 0 on top).
    torch.testing.assert_close(turned, torch.rot90(base, 1, dims=(2, 3)), rtol=1e-4,
                               atol=1e-4)


def test_translation_moves_image_content():
    """Config T is (approximately) translation equivariant even with random weights: a
    shift by whole pixels gives the shifted image, far closer than the unshifted one."""
    g = make(TINY_T).generator
    ws = g.mapping(torch.randn(1, 8), None)
    shift = 4  # output pixels
    with torch.no_grad():
        base = g.synthesis(ws)
        moved = g.synthesis(ws, transform=sg3.view_transform((shift / 32, 0.0)))
    inner = (slice(None), slice(None), slice(4, -4))
    aligned = (moved[..., shift:][inner] - base[..., :-shift][inner]).square().mean()
    unaligned = (moved[inner] - base[inner]).square().mean()
    assert aligned < 0.1 * unaligned


def test_rotation_transform_runs_and_make_transform_matches_nvlabs():
    m = sg3.make_transform((0.1, -0.2), 90.0)
    torch.testing.assert_close(m, torch.tensor([[0.0, 1.0, 0.1], [-1.0, 0.0, -0.2],
                                                [0.0, 0.0, 1.0]]), atol=1e-6, rtol=0)
    torch.testing.assert_close(sg3.view_transform((0.1, -0.2), 90.0) @ m, torch.eye(3),
                               atol=1e-6, rtol=0)
    g = make(TINY_R).generator
    ws = g.mapping(torch.randn(2, 8), None)
    with torch.no_grad():
        per_sample = torch.stack([sg3.view_transform(angle_degrees=a) for a in (0.0, 30.0)])
        out = g.synthesis(ws, transform=per_sample)
        first = g.synthesis(ws[:1])
    torch.testing.assert_close(out[:1], first, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(out[1:], g.synthesis(ws[1:]), atol=1e-3)


def test_determinism_same_seed_same_model_same_images():
    a, b = make(TINY_T, seed=3), make(TINY_T, seed=3)
    for (ka, va), (kb, vb) in zip(a.generator.state_dict().items(),
                                  b.generator.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
    z = torch.randn(2, 8)
    with torch.no_grad():
        assert torch.equal(a.generator(z, None), a.generator(z, None))
        assert torch.equal(a.generator(z, None), b.generator(z, None))


def test_update_emas_tracks_magnitudes_and_w_avg():
    g = make(TINY_T).generator
    layer = getattr(g.synthesis, g.synthesis.layer_names[0])
    with torch.no_grad():
        g(torch.randn(2, 8), None, update_emas=True)
    assert float(layer.magnitude_ema) != 1.0
    assert g.mapping.w_avg.abs().sum() > 0


def test_gradients_reach_every_parameter():
    g = sg3.Generator(**{**TINY_R, "c_dim": 2}).requires_grad_(True)
    with torch.no_grad():
        g.synthesis.input.affine.weight.normal_()  # zero at init: would block its gradient
    images = g(torch.randn(2, 8), torch.eye(2))
    images.square().mean().backward()
    missing = [n for n, p in g.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert missing == []


def test_truncation_pulls_toward_w_avg():
    g = make(TINY_T).generator
    g.mapping.w_avg.copy_(torch.randn(8))
    z = torch.randn(2, 8)
    with torch.no_grad():
        full = g.mapping(z, None)
        none = g.mapping(z, None, truncation_psi=0.0)
        cut = g.mapping(z, None, truncation_psi=0.0, truncation_cutoff=2)
    torch.testing.assert_close(none, g.mapping.w_avg.expand_as(none))
    torch.testing.assert_close(cut[:, 2:], full[:, 2:])


# --- the generic model interface and the native format ------------------------------------

def test_registry_save_load_round_trip(tmp_path):
    model = make({**TINY_R, "c_dim": 3}, class_names=["a", "b", "c"])
    path = gan_models.save_model(model, tmp_path / "sg3.safetensors")
    loaded = gan_models.load_model(path)
    assert loaded.architecture == "stylegan3" and loaded.class_names == ["a", "b", "c"]
    assert loaded.num_ws == 6 and loaded.w_dim == 8
    batch = model.sample_latents(seed=7, batch_size=2)
    torch.testing.assert_close(loaded.synthesize(batch), model.synthesize(batch),
                               rtol=0, atol=0)


def test_sample_latents_and_synthesize_through_the_interface():
    model = make(TINY_T)
    assert model.has_mapping and model.resolution == 32 and model.num_ws == 6
    batch = model.sample_latents(seed=11, batch_size=2, truncation_psi=0.7)
    images = model.synthesize(batch, noise_mode="random")
    assert images.shape == (2, 3, 32, 32)
    again = model.synthesize(model.sample_latents(seed=12, batch_size=1, truncation_psi=0.7))
    torch.testing.assert_close(again, images[1:], rtol=1e-4, atol=1e-5)
    assert model.can_transform
    still = model.synthesize(dataclasses.replace(batch, view=(0.0, 0.0, 0.0)))
    torch.testing.assert_close(still, model.synthesize(batch))
    moved = model.synthesize(dataclasses.replace(batch, view=(0.25, 0.0, 10.0)))
    assert not torch.allclose(moved, still, atol=1e-3)
    unit = gan_models.generate_in_chunks(model, batch, chunk_size=1)
    assert unit.shape == (2, 32, 32, 3) and 0 <= float(unit.min()) <= float(unit.max()) <= 1


def test_bad_configs_are_clear_errors():
    with pytest.raises(gan_models.CheckpointError, match="generator"):
        gan_models.GenerativeModel.create("stylegan3", {"generator": None})
    with pytest.raises(gan_models.CheckpointError, match="num_critical"):
        make({**TINY_T, "num_layers": 2})
    with pytest.raises(gan_models.CheckpointError):
        make({**TINY_T, "not_an_option": 1})
    g = make(TINY_T).generator
    with pytest.raises(ValueError, match="ws must be"):
        g.synthesis(torch.zeros(1, 5, 8))


def test_layer_filters_have_unit_dc_gain():
    """Low-pass filters pass a flat signal unchanged (the gain rides on the op)."""
    g = make(TINY_R).generator
    for name in g.synthesis.layer_names:
        layer = getattr(g.synthesis, name)
        for f in (layer.up_filter, layer.down_filter):
            if f is not None:
                assert math.isclose(float(f.sum()), 1.0, rel_tol=1e-5)


def test_fp16_layers_follow_num_fp16_res():
    # use_fp16 where sampling_rate * 2**num_fp16_res > img_resolution (rates 16, 32, ...).
    g = make({**TINY_T, "num_fp16_res": 1}).generator
    flags = [getattr(g.synthesis, n).use_fp16 for n in g.synthesis.layer_names]
    assert flags == [False, True, True, True, True]
    g = make({**TINY_T, "num_fp16_res": 0}).generator
    assert not any(getattr(g.synthesis, n).use_fp16 for n in g.synthesis.layer_names)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fp16_layers_stay_close_to_fp32():
    g = make(TINY_T).generator.to("cuda")
    ws = g.mapping(torch.randn(2, 8, device="cuda"), None)
    with torch.no_grad():
        half = g.synthesis(ws)
        full = g.synthesis(ws, force_fp32=True)
    assert half.dtype == torch.float32 and torch.isfinite(half).all()
    assert (half - full).abs().max() < 0.05 * full.abs().max()


def test_discriminator_role_is_stylegan2_d():
    d_cfg = {"c_dim": 0, "img_resolution": 32, "img_channels": 3, "channel_base": 256,
             "channel_max": 32}
    torch.manual_seed(0)
    model = gan_models.GenerativeModel.create(
        "stylegan3", {"generator": TINY_T, "discriminator": d_cfg})
    images = model.synthesize(model.sample_latents(seed=0, batch_size=2))
    with torch.no_grad():
        logits = model.networks["discriminator"](images)
    assert logits.shape == (2, 1) and torch.isfinite(logits).all()
