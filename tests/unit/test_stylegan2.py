"""StyleGAN2: NVlabs naming, mapping/truncation, noise, both modulated-conv paths, the
generic model interface and the native format round trip, on tiny random networks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import gan_models
from gan_models import GenerativeModel, LatentBatch
from gan_models.architectures.stylegan2 import Discriminator, Generator
from gan_models.errors import CheckpointError
from gan_models.ops import modulated_conv2d, setup_filter, upfirdn2d

G_KW = {"z_dim": 32, "c_dim": 0, "w_dim": 32, "img_resolution": 32, "img_channels": 3,
        "mapping_kwargs": {"num_layers": 2}, "channel_base": 256, "channel_max": 32,
        "num_fp16_res": 2, "conv_clamp": 256}
D_KW = {"c_dim": 0, "img_resolution": 32, "img_channels": 3, "channel_base": 256,
        "channel_max": 32, "epilogue_kwargs": {"mbstd_group_size": 2}}


def make_generator(seed: int = 0, **overrides) -> Generator:
    torch.manual_seed(seed)
    gen = Generator(**{**G_KW, **overrides}).eval().requires_grad_(False)
    with torch.no_grad():  # noise strengths and biases start at 0; make them matter
        for name, p in gen.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.3)
            elif name.endswith(".bias") and ".affine" not in name and "mapping" not in name:
                p.normal_(0, 0.2)
        gen.mapping.w_avg.normal_()
    return gen


# --- naming -------------------------------------------------------------------------------

def _layer(prefix, out_ch, in_ch, w_dim, res):
    return {f"{prefix}.weight": (out_ch, in_ch, 3, 3), f"{prefix}.bias": (out_ch,),
            f"{prefix}.noise_strength": (), f"{prefix}.noise_const": (res, res),
            f"{prefix}.resample_filter": (4, 4), f"{prefix}.affine.weight": (in_ch, w_dim),
            f"{prefix}.affine.bias": (in_ch,)}


def _torgb(prefix, in_ch, w_dim):
    return {f"{prefix}.weight": (3, in_ch, 1, 1), f"{prefix}.bias": (3,),
            f"{prefix}.affine.weight": (in_ch, w_dim), f"{prefix}.affine.bias": (in_ch,)}


def test_generator_state_dict_uses_nvlabs_names_and_shapes():
    # 8 px, 2 classes, channel_base 64 / channel_max 16: 16 channels at 4x4, 8 at 8x8.
    gen = Generator(z_dim=6, c_dim=2, w_dim=5, img_resolution=8, img_channels=3,
                    mapping_kwargs={"num_layers": 2}, channel_base=64, channel_max=16)
    want = {
        "mapping.w_avg": (5,), "mapping.embed.weight": (5, 2), "mapping.embed.bias": (5,),
        "mapping.fc0.weight": (5, 11), "mapping.fc0.bias": (5,),
        "mapping.fc1.weight": (5, 5), "mapping.fc1.bias": (5,),
        "synthesis.b4.const": (16, 4, 4), "synthesis.b4.resample_filter": (4, 4),
        **_layer("synthesis.b4.conv1", 16, 16, 5, 4),
        **_torgb("synthesis.b4.torgb", 16, 5),
        "synthesis.b8.resample_filter": (4, 4),
        **_layer("synthesis.b8.conv0", 8, 16, 5, 8),
        **_layer("synthesis.b8.conv1", 8, 8, 5, 8),
        **_torgb("synthesis.b8.torgb", 8, 5),
    }
    got = {k: tuple(v.shape) for k, v in gen.state_dict().items()}
    assert got == want
    assert gen.num_ws == 4 and gen.synthesis.num_ws == 4
    buffers = {k for k, _ in gen.named_buffers()}
    assert buffers == {k for k in want if k.endswith(("w_avg", "noise_const", "resample_filter"))}


def test_resnet_generator_has_skip_and_single_torgb():
    gen = Generator(z_dim=4, c_dim=0, w_dim=4, img_resolution=8, img_channels=3,
                    mapping_kwargs={"num_layers": 1}, channel_base=64, channel_max=16,
                    architecture="resnet")
    keys = set(gen.state_dict())
    assert {"synthesis.b8.skip.weight", "synthesis.b8.skip.resample_filter"} <= keys
    assert not any(k.startswith("synthesis.b4.torgb") for k in keys)
    assert "synthesis.b8.torgb.weight" in keys
    assert gen.num_ws == 4  # 3 convs + 1 torgb
    assert gen(torch.randn(2, 4), None).shape == (2, 3, 8, 8)


def test_discriminator_state_dict_uses_nvlabs_names():
    disc = Discriminator(c_dim=2, img_resolution=8, img_channels=3, channel_base=64,
                         channel_max=16, mapping_kwargs={"num_layers": 1})
    want = {
        "b8.resample_filter": (4, 4),
        "b8.fromrgb.weight": (8, 3, 1, 1), "b8.fromrgb.bias": (8,),
        "b8.fromrgb.resample_filter": (4, 4),
        "b8.conv0.weight": (8, 8, 3, 3), "b8.conv0.bias": (8,), "b8.conv0.resample_filter": (4, 4),
        "b8.conv1.weight": (16, 8, 3, 3), "b8.conv1.bias": (16,),
        "b8.conv1.resample_filter": (4, 4),
        "b8.skip.weight": (16, 8, 1, 1), "b8.skip.resample_filter": (4, 4),
        "mapping.embed.weight": (16, 2), "mapping.embed.bias": (16,),
        "mapping.fc0.weight": (16, 16), "mapping.fc0.bias": (16,),
        "b4.conv.weight": (16, 17, 3, 3), "b4.conv.bias": (16,), "b4.conv.resample_filter": (4, 4),
        "b4.fc.weight": (16, 256), "b4.fc.bias": (16,),
        "b4.out.weight": (16, 16), "b4.out.bias": (16,),
    }
    assert {k: tuple(v.shape) for k, v in disc.state_dict().items()} == want


def test_nested_and_flat_synthesis_kwargs_build_the_same_network():
    flat = {k: v for k, v in G_KW.items()}
    nested = {k: v for k, v in G_KW.items()
              if k not in ("channel_base", "channel_max", "num_fp16_res", "conv_clamp")}
    nested["synthesis_kwargs"] = {"channel_base": 256, "channel_max": 32, "num_fp16_res": 2,
                                  "conv_clamp": 256}
    torch.manual_seed(1)
    a = Generator(**flat)
    torch.manual_seed(1)
    b = Generator(**nested, fused_modconv_default="inference_only")
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)


# --- mapping ------------------------------------------------------------------------------

def test_shapes_and_truncation():
    gen = make_generator()
    z = torch.randn(3, 32)
    ws = gen.mapping(z, None)
    assert ws.shape == (3, gen.num_ws, 32) and gen.num_ws == 8
    assert torch.equal(ws[:, 0], ws[:, -1])  # one w broadcast to every layer
    w_avg = gen.mapping.w_avg
    torch.testing.assert_close(gen.mapping(z, None, truncation_psi=0),
                               w_avg.expand(3, gen.num_ws, -1))
    half = gen.mapping(z, None, truncation_psi=0.5)
    torch.testing.assert_close(half, w_avg + 0.5 * (ws - w_avg))
    cut = gen.mapping(z, None, truncation_psi=0, truncation_cutoff=3)
    torch.testing.assert_close(cut[:, :3], w_avg.expand(3, 3, -1))
    torch.testing.assert_close(cut[:, 3:], ws[:, 3:])
    assert gen(z, None).shape == (3, 3, 32, 32)


def test_update_emas_tracks_w_average_like_nvlabs():
    gen = make_generator()
    before = gen.mapping.w_avg.clone()
    z = torch.randn(4, 32)
    w = gen.mapping(z, None)[:, 0]
    gen.mapping(z, None, update_emas=True)
    beta = gen.mapping.w_avg_beta
    torch.testing.assert_close(gen.mapping.w_avg, w.mean(0) + beta * (before - w.mean(0)))


def test_conditional_generator_accepts_mixed_class_vectors():
    gen = make_generator(c_dim=3)
    z = torch.randn(1, 32).repeat(3, 1)
    c = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0.5, 0.5, 0]])
    images = gen(z, c)
    assert images.shape == (3, 3, 32, 32) and torch.isfinite(images).all()
    assert not torch.allclose(images[0], images[1])
    assert not torch.allclose(images[2], images[0]) and not torch.allclose(images[2], images[1])
    # The embedding is linear in c: a 50/50 mix embeds halfway between the two classes.
    emb = gen.mapping.embed(c)
    torch.testing.assert_close(emb[2], (emb[0] + emb[1]) / 2)
    with pytest.raises(ValueError, match="class-conditional"):
        gen(z, None)


# --- synthesis ----------------------------------------------------------------------------

def test_noise_modes():
    gen = make_generator()
    ws = gen.mapping(torch.randn(2, 32), None)
    const1 = gen.synthesis(ws, noise_mode="const")
    const2 = gen.synthesis(ws, noise_mode="const")
    assert torch.equal(const1, const2)
    rand1 = gen.synthesis(ws, noise_mode="random")
    rand2 = gen.synthesis(ws, noise_mode="random")
    assert not torch.allclose(rand1, rand2)
    none = gen.synthesis(ws, noise_mode="none")
    assert not torch.allclose(none, const1)
    for p in gen.parameters():
        if p.ndim == 0:
            p.zero_()  # without noise strength every mode gives the same image
    torch.testing.assert_close(gen.synthesis(ws, noise_mode="random"),
                               gen.synthesis(ws, noise_mode="none"))
    with pytest.raises(ValueError, match="noise_mode"):
        gen.synthesis(ws, noise_mode="loud")


def test_default_noise_is_const_in_eval_and_random_in_training():
    gen = make_generator()
    z = torch.randn(1, 32)
    torch.testing.assert_close(gen(z, None), gen(z, None, noise_mode="const"))
    gen.train()
    assert not torch.allclose(gen(z, None), gen(z, None))


def test_half_precision_modulated_conv_matches_float32():
    # The fp16 blocks run on CUDA only; the op itself is checked here in half on the CPU.
    torch.manual_seed(6)
    x, w, s = torch.randn(2, 8, 6, 6), torch.randn(4, 8, 3, 3), torch.randn(2, 8)
    bias, noise = torch.randn(4), torch.randn(2, 1, 12, 12)
    f = setup_filter([1, 3, 3, 1])
    for fused in (True, False):
        kw = dict(noise=noise, up=2, padding=1, resample_filter=f, flip_weight=False,
                  fused_modconv=fused, bias=bias, gain=1.4)
        want = modulated_conv2d(x, w, s, **kw)
        got = modulated_conv2d(x.half(), w, s, **kw)
        assert got.dtype == torch.float16
        torch.testing.assert_close(got.float(), want, atol=2e-2, rtol=1e-2)


@pytest.mark.parametrize("architecture", ["skip", "orig", "resnet"])
def test_grouped_and_plain_modulated_conv_paths_agree(architecture):
    gen = make_generator(architecture=architecture)
    ws = gen.mapping(torch.randn(3, 32), None)
    fused = gen.synthesis(ws, fused_modconv=True)
    plain = gen.synthesis(ws, fused_modconv=False)
    auto = gen.synthesis(ws)
    torch.testing.assert_close(fused, plain, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(auto, plain, atol=1e-4, rtol=1e-4)
    single = torch.cat([gen.synthesis(ws[i:i + 1]) for i in range(3)])  # batch-1 path
    torch.testing.assert_close(single, plain, atol=1e-4, rtol=1e-4)
    const = gen.synthesis.b4.const.clone()
    again = gen.synthesis(ws[:1], fused_modconv=False)  # in-place scaling spares weights
    torch.testing.assert_close(again, plain[:1], atol=1e-4, rtol=1e-4)
    assert torch.equal(gen.synthesis.b4.const, const)


def reference_modulated_conv(x, weight, styles, up, demodulate=True):
    """Per sample: modulate, demodulate, (FIR-upsample,) true convolution (NVlabs
    flip_weight=False for up=2, correlation otherwise)."""
    f = setup_filter([1, 3, 3, 1])
    out = []
    for xb, sb in zip(x, styles, strict=True):
        w = weight * sb[None, :, None, None]
        if demodulate:
            w = w / w.square().sum(dim=[1, 2, 3], keepdim=True).add(1e-8).sqrt()
        xb = xb[None]
        if up == 2:
            xb = upfirdn2d(xb, f, up=2, padding=(3, 2, 3, 2), gain=4)
            out.append(F.conv2d(xb, w.flip([2, 3])))
        else:
            out.append(F.conv2d(xb, w, padding=weight.shape[-1] // 2))
    return torch.cat(out)


@pytest.mark.parametrize("up", [1, 2])
@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("batch", [1, 3])
def test_modulated_conv2d_matches_per_sample_reference(up, fused, batch):
    torch.manual_seed(5)
    x = torch.randn(batch, 6, 7, 7, dtype=torch.float64)
    weight = torch.randn(5, 6, 3, 3, dtype=torch.float64)
    styles = torch.randn(batch, 6, dtype=torch.float64)
    bias = torch.randn(5, dtype=torch.float64)
    noise = torch.randn(batch, 1, 7 * up, 7 * up, dtype=torch.float64)
    got = modulated_conv2d(x, weight, styles, noise=noise, up=up, padding=1,
                           resample_filter=setup_filter([1, 3, 3, 1]).double(),
                           flip_weight=up == 1, fused_modconv=fused, bias=bias, gain=1.5)
    want = 1.5 * (reference_modulated_conv(x, weight, styles, up) + bias[None, :, None, None])
    want = want + noise
    torch.testing.assert_close(got, want)
    plain = modulated_conv2d(x, weight, styles, demodulate=False, fused_modconv=fused,
                             padding=1)
    torch.testing.assert_close(plain, reference_modulated_conv(x, weight, styles, 1, False))


def test_generator_trains_with_autograd():
    gen = make_generator().train().requires_grad_(True)
    disc = Discriminator(**D_KW)
    z = torch.randn(2, 32)
    images = gen(z, None, noise_mode="random", update_emas=True)
    logits = disc(images, None)
    assert logits.shape == (2, 1)
    F.softplus(-logits).mean().backward()
    grads = [p.grad for p in gen.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert gen.synthesis.b32.conv1.weight.grad.abs().sum() > 0


def test_conditional_discriminator_forward():
    torch.manual_seed(2)
    disc = Discriminator(**{**D_KW, "c_dim": 4}).eval()
    images = torch.randn(4, 3, 32, 32)
    c = torch.eye(4)
    out = disc(images, c)
    assert out.shape == (4, 1) and torch.isfinite(out).all()
    assert not torch.allclose(out, disc(images, c.roll(1, dims=1)))
    skip = Discriminator(**{**D_KW, "architecture": "skip"})
    assert skip(images, None).shape == (4, 1)


def test_bad_inputs_raise_clear_errors():
    gen = make_generator()
    with pytest.raises(ValueError, match="ws has shape"):
        gen.synthesis(torch.randn(1, 3, 32))
    with pytest.raises(ValueError, match="z has shape"):
        gen(torch.randn(1, 31), None)
    with pytest.raises(ValueError, match="power of two"):
        Generator(**{**G_KW, "img_resolution": 48})


# --- the generic model interface and the native format ------------------------------------

def create_model(**overrides) -> GenerativeModel:
    torch.manual_seed(3)
    cfg = {"generator": {**G_KW, **overrides}, "discriminator": D_KW}
    return GenerativeModel.create("stylegan2", cfg)


def test_registry_builds_generator_and_optional_discriminator():
    model = create_model()
    assert set(model.networks) == {"generator", "discriminator"}
    assert model.num_ws == 8 and model.w_dim == 32 and model.resolution == 32
    only_g = GenerativeModel.create("stylegan2", {"generator": G_KW, "discriminator": None})
    assert set(only_g.networks) == {"generator"}
    with pytest.raises(CheckpointError, match="stylegan2"):
        GenerativeModel.create("stylegan2", {"generator": G_KW, "extra": 1})
    with pytest.raises(CheckpointError):
        GenerativeModel.create("stylegan2", {"generator": {**G_KW, "bogus_option": 3}})


def test_native_round_trip_gives_identical_images(tmp_path):
    model = create_model(c_dim=2)
    with torch.no_grad():
        for name, p in model.generator.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.4)
    path = gan_models.save_model(model, tmp_path / "sg2.safetensors")
    loaded = gan_models.load_model(path)
    assert loaded.architecture == "stylegan2" and loaded.num_classes == 2
    assert set(loaded.networks) == {"generator", "discriminator"}
    batch = model.sample_latents(seed=11, batch_size=2)
    torch.testing.assert_close(model.synthesize(batch), loaded.synthesize(batch), rtol=0, atol=0)


def test_sample_latents_and_synthesize_in_z_w_and_w_plus():
    model = create_model()
    z_batch = model.sample_latents(seed=7, batch_size=2, truncation_psi=0.7)
    from_z = model.synthesize(z_batch)
    assert from_z.shape == (2, 3, 32, 32)
    gen = model.generator
    ws = gen.mapping(z_batch.values, None, truncation_psi=0.7)
    w_batch = LatentBatch(values=ws[:, 0], space="w", seeds=z_batch.seeds,
                          model_id=model.model_id)
    wplus_batch = LatentBatch(values=ws, space="w+", seeds=z_batch.seeds,
                              model_id=model.model_id)
    torch.testing.assert_close(model.synthesize(w_batch), from_z)
    torch.testing.assert_close(model.synthesize(wplus_batch), from_z)
    # Same seed, same image (noise_mode 'const' is the default).
    torch.testing.assert_close(model.synthesize(model.sample_latents(7, 2, 0.7)), from_z)
    mixed = ws.clone()
    mixed[:, 4:] = ws.flip(0)[:, 4:]  # style mixing through w+
    out = model.synthesize(LatentBatch(values=mixed, space="w+"))
    assert not torch.allclose(out, from_z)


def test_conditional_model_uses_seeded_or_given_labels():
    model = create_model(c_dim=3)
    batch = model.sample_latents(seed=1, batch_size=2)
    assert batch.labels.shape == (2, 3)
    images = model.synthesize(batch)
    mixed = batch.with_labels(torch.tensor([[0.2, 0.3, 0.5], [0.2, 0.3, 0.5]]))
    assert not torch.allclose(model.synthesize(mixed), images)
    assert math.isfinite(float(images.abs().max()))
