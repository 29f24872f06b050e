"""rosinality stylegan2-pytorch checkpoints: names/shapes as rosinality's Generator makes
them, images equal to a forward pass written in rosinality's own conventions, and refusals."""

import math
import os
import pathlib

import pytest
import torch
import torch.nn.functional as F
from fixtures_foreign import (
    Call,
    rosinality_kernel,
    rosinality_state,
    write_rosinality_checkpoint,
)

import gan_models
from gan_models import CheckpointError
from gan_models.__main__ import main
from gan_models.formats.native import read_metadata

STYLE_DIM, N_MLP = 32, 2


def rosinality_generator_spec(size, style_dim, n_mlp, channel_multiplier=2, channels=None):
    """(name, shape) in the order rosinality's `Generator(size, style_dim, n_mlp,
    channel_multiplier).state_dict()` lists them, written down from its constructor."""
    cm = channel_multiplier
    ch = channels or {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * cm, 128: 128 * cm,
                      256: 64 * cm, 512: 32 * cm, 1024: 16 * cm}
    log_size = int(math.log2(size))
    spec = []
    for i in range(1, n_mlp + 1):  # style.0 is PixelNorm
        spec += [(f"style.{i}.weight", (style_dim, style_dim)), (f"style.{i}.bias", (style_dim,))]
    spec.append(("input.input", (1, ch[4], 4, 4)))

    def styled(name, cin, cout, up):
        spec.append((f"{name}.conv.weight", (1, cout, cin, 3, 3)))
        if up:
            spec.append((f"{name}.conv.blur.kernel", (4, 4)))
        spec.extend([(f"{name}.conv.modulation.weight", (cin, style_dim)),
                     (f"{name}.conv.modulation.bias", (cin,)),
                     (f"{name}.noise.weight", (1,)), (f"{name}.activate.bias", (cout,))])

    def to_rgb(name, cin, up):
        spec.append((f"{name}.bias", (1, 3, 1, 1)))
        if up:
            spec.append((f"{name}.upsample.kernel", (4, 4)))
        spec.extend([(f"{name}.conv.weight", (1, 3, cin, 1, 1)),
                     (f"{name}.conv.modulation.weight", (cin, style_dim)),
                     (f"{name}.conv.modulation.bias", (cin,))])

    styled("conv1", ch[4], ch[4], False)
    to_rgb("to_rgb1", ch[4], False)
    cin = ch[4]
    for i in range(3, log_size + 1):
        styled(f"convs.{2 * (i - 3)}", cin, ch[2 ** i], True)
        styled(f"convs.{2 * (i - 3) + 1}", ch[2 ** i], ch[2 ** i], False)
        cin = ch[2 ** i]
    for i in range(3, log_size + 1):
        to_rgb(f"to_rgbs.{i - 3}", ch[2 ** i], True)
    for j in range((log_size - 2) * 2 + 1):
        res = 2 ** ((j + 5) // 2)
        spec.append((f"noises.noise_{j}", (1, 1, res, res)))
    return spec


# --- rosinality's forward pass, in its conventions (fixed noise, no style mixing) -------
def _upfirdn(x, kernel, up, pad):
    b, c, h, w = x.shape
    if up > 1:  # zero insertion
        y = x.new_zeros(b, c, h * up, w * up)
        y[:, :, ::up, ::up] = x
        x = y
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    return F.conv2d(x, kernel.flip([0, 1])[None, None].repeat(c, 1, 1, 1), groups=c)


def _modconv(sd, name, x, w, demodulate=True, up=False):
    b, cin, h, wd = x.shape
    mod_w, mod_b = sd[f"{name}.modulation.weight"], sd[f"{name}.modulation.bias"]
    style = F.linear(w, mod_w / math.sqrt(mod_w.shape[1]), mod_b)      # EqualLinear, bias 1
    weight = sd[f"{name}.weight"]                                       # [1, O, I, k, k]
    out_c, k = weight.shape[1], weight.shape[-1]
    weight = weight / math.sqrt(cin * k * k) * style.view(b, 1, cin, 1, 1)
    if demodulate:
        weight = weight * torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8).view(b, out_c, 1, 1, 1)
    if up:
        weight = weight.transpose(1, 2).reshape(b * cin, out_c, k, k)
        out = F.conv_transpose2d(x.reshape(1, b * cin, h, wd), weight, stride=2, groups=b)
        out = out.view(b, out_c, *out.shape[2:])
        return _upfirdn(out, sd[f"{name}.blur.kernel"], 1, (1, 1))
    out = F.conv2d(x.reshape(1, b * cin, h, wd), weight.reshape(b * out_c, cin, k, k),
                   padding=k // 2, groups=b)
    return out.view(b, out_c, h, wd)


def rosinality_forward(sd, z, n_mlp, truncation=1.0, latent_avg=None, lr_mlp=0.01):
    x = z * torch.rsqrt(z.pow(2).mean(1, keepdim=True) + 1e-8)          # PixelNorm
    for i in range(1, n_mlp + 1):
        wt = sd[f"style.{i}.weight"]
        x = F.linear(x, wt * lr_mlp / math.sqrt(wt.shape[1]))
        x = F.leaky_relu(x + sd[f"style.{i}.bias"] * lr_mlp, 0.2) * math.sqrt(2)
    if truncation < 1:
        x = latent_avg + truncation * (x - latent_avg)

    def styled(name, h, noise, up=False):
        h = _modconv(sd, f"{name}.conv", h, x, up=up)
        h = h + sd[f"{name}.noise.weight"] * noise
        return F.leaky_relu(h + sd[f"{name}.activate.bias"].view(1, -1, 1, 1), 0.2) * math.sqrt(2)

    def to_rgb(name, h, skip):
        out = _modconv(sd, f"{name}.conv", h, x, demodulate=False) + sd[f"{name}.bias"]
        if skip is not None:
            out = out + _upfirdn(skip, sd[f"{name}.upsample.kernel"], 2, (2, 1))
        return out

    n_up = sum(1 for k in sd if k.startswith("to_rgbs.") and k.endswith(".conv.weight"))
    h = sd["input.input"].repeat(z.shape[0], 1, 1, 1)
    h = styled("conv1", h, sd["noises.noise_0"])
    skip = to_rgb("to_rgb1", h, None)
    for k in range(n_up):
        h = styled(f"convs.{2 * k}", h, sd[f"noises.noise_{2 * k + 1}"], up=True)
        h = styled(f"convs.{2 * k + 1}", h, sd[f"noises.noise_{2 * k + 2}"])
        skip = to_rgb(f"to_rgbs.{k}", h, skip)
    return skip


# --- models -------------------------------------------------------------------------------
def sg2(size, channel_base, channel_max, seed=0) -> gan_models.GenerativeModel:
    torch.manual_seed(seed)
    config = {"z_dim": STYLE_DIM, "c_dim": 0, "w_dim": STYLE_DIM, "img_resolution": size,
              "img_channels": 3, "mapping_kwargs": {"num_layers": N_MLP},
              "channel_base": channel_base, "channel_max": channel_max, "num_fp16_res": 0,
              "conv_clamp": None}
    model = gan_models.GenerativeModel.create("stylegan2", {"generator": config})
    with torch.no_grad():
        for t in model.generator.parameters():
            t.add_(torch.randn_like(t) * 0.2)
        model.generator.mapping.w_avg.normal_()
    return model


@pytest.fixture(scope="module")
def standard():
    """rosinality Generator(16, 32, 2, channel_multiplier=2): 512 channels throughout."""
    return sg2(16, 16384 * 2, 512)


@pytest.fixture(scope="module")
def narrow():
    """A slimmer fork's layout (channels 32, 32, 16, 8 at 4..32 px)."""
    return sg2(32, 256, 32, seed=1)


def same_images(a, b, psi=1.0):
    batch = a.sample_latents(3, 2, truncation_psi=psi)
    torch.testing.assert_close(b.synthesize(batch), a.synthesize(batch), atol=1e-5, rtol=0)


def test_names_shapes_and_images_match_rosinality_generator(tmp_path, standard):
    state = rosinality_state(standard.generator)
    spec = rosinality_generator_spec(16, STYLE_DIM, N_MLP, channel_multiplier=2)
    assert [(k, tuple(v.shape)) for k, v in state.items()] == spec
    assert torch.equal(state["convs.0.conv.blur.kernel"], rosinality_kernel())
    path = write_rosinality_checkpoint(tmp_path / "550000.pt", standard.generator,
                                       with_g=False)
    model = gan_models.load_model(path)
    assert model.architecture == "stylegan2" and model.resolution == 16
    assert model.z_dim == model.w_dim == STYLE_DIM and model.num_ws == 6
    same_images(standard, model)
    z = standard.sample_latents(3, 2).values
    torch.testing.assert_close(model.generator(z), rosinality_forward(state, z, N_MLP),
                               atol=1e-4, rtol=1e-4)
    meta = model.metadata
    assert meta["source"]["format"] == "rosinality-pt" and meta["source"]["role"] == "g_ema"
    assert meta["provenance"]["args"]["size"] == 16 and meta["provenance"]["w_avg"].startswith(
        "file")


def test_slim_layout_and_truncation_against_rosinality_forward(tmp_path, narrow):
    state = rosinality_state(narrow.generator)
    channels = {4: 32, 8: 32, 16: 16, 32: 8}
    assert [(k, tuple(v.shape)) for k, v in state.items()] == rosinality_generator_spec(
        32, STYLE_DIM, N_MLP, channels=channels)
    model = gan_models.load_model(write_rosinality_checkpoint(tmp_path / "slim.pt",
                                                              narrow.generator))
    assert model.config["generator"]["channel_base"] == 256
    assert model.config["generator"]["channel_max"] == 32
    z = narrow.sample_latents(7, 3).values
    latent_avg = narrow.generator.mapping.w_avg
    ours = model.generator(z, None, truncation_psi=0.6)
    theirs = rosinality_forward(state, z, N_MLP, truncation=0.6, latent_avg=latent_avg)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    same_images(narrow, model, psi=0.6)


def test_train_py_checkpoint_without_latent_avg_in_legacy_format(tmp_path, narrow):
    path = write_rosinality_checkpoint(tmp_path / "old.pt", narrow.generator, latent_avg=False,
                                       legacy=True)
    assert gan_models.detect_format(path) == "pickle"  # pre-1.6 torch.save layout
    model = gan_models.load_model(path)
    assert model.metadata["provenance"]["w_avg"].startswith("estimated")
    z = torch.randn(4096, STYLE_DIM, generator=torch.Generator().manual_seed(1))
    mean_w = model.generator.mapping(z, None)[:, 0].mean(0)
    torch.testing.assert_close(model.generator.mapping.w_avg, mean_w, atol=0.1, rtol=0)
    same_images(narrow, model)  # untruncated images do not depend on w_avg


def test_bare_state_dict(tmp_path, narrow):
    path = tmp_path / "bare.pt"
    torch.save(rosinality_state(narrow.generator), path)
    model = gan_models.load_model(path)
    assert model.metadata["source"]["role"] == "state_dict"
    same_images(narrow, model)


def test_hostile_torch_files_are_refused_and_never_run(tmp_path, narrow):
    sentinel = tmp_path / "pwned"
    for legacy in (False, True):
        path = write_rosinality_checkpoint(
            tmp_path / f"evil{legacy}.pt", narrow.generator, legacy=legacy,
            extra={"hook": Call(os.system, f"touch {sentinel}")})
        with pytest.raises(CheckpointError, match=r"refused to load (posix|nt)\.system from"):
            gan_models.load_model(path)
    assert not sentinel.exists()
    # argparse.Namespace is the one extra class: anything else inside args is refused
    path = write_rosinality_checkpoint(tmp_path / "path_arg.pt", narrow.generator,
                                       extra={"ckpt_dir": pathlib.PurePosixPath("runs")})
    with pytest.raises(CheckpointError, match="refused to load pathlib.PurePosixPath"):
        gan_models.load_model(path)


def test_other_torch_files_are_refused_clearly(tmp_path, narrow):
    path = tmp_path / "pix2pix.pth"
    torch.save({"model": {"netG.0.weight": torch.zeros(2)}}, path)
    with pytest.raises(CheckpointError, match="not a rosinality stylegan2-pytorch generator"):
        gan_models.load_model(path)
    state = rosinality_state(narrow.generator)
    state["style.1.weight_orig"] = torch.zeros(1)
    odd = tmp_path / "odd.pt"
    torch.save({"g_ema": state}, odd)
    with pytest.raises(CheckpointError, match="does not understand: style.1.weight_orig"):
        gan_models.load_model(odd)


def test_convert_command(tmp_path, capsys, narrow):
    pt = write_rosinality_checkpoint(tmp_path / "ffhq.pt", narrow.generator)
    out = tmp_path / "ffhq.safetensors"
    assert main(["convert", str(pt), str(out)]) == 0
    assert "rosinality-pt" in capsys.readouterr().out
    meta = read_metadata(out)
    assert meta["source"]["file"] == "ffhq.pt" and meta["roles"] == ["generator"]
    same_images(narrow, gan_models.load_model(out))
