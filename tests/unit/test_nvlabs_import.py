"""NVlabs network pickles (built here without NVlabs code) import to identical models, and
the convert command writes them as native checkpoints."""

import json
from pathlib import Path

import pytest
import torch
from fixtures_foreign import (
    call_pickle,
    nvlabs_network_dict,
    persistent_tree,
    tf_stylegan2_networks,
    write_nvlabs_pickle,
)

import gan_models
from gan_models import CheckpointError, registry
from gan_models.__main__ import main
from gan_models.formats.native import file_sha256, read_metadata

# NVlabs train.py-style kwargs, tiny: 16 px, channels 16 -> 8.
G_KW = {"z_dim": 8, "w_dim": 8, "mapping_kwargs": {"num_layers": 2}, "channel_base": 128,
        "channel_max": 16, "num_fp16_res": 0, "conv_clamp": 256,
        "fused_modconv_default": "inference_only", "c_dim": 0, "img_resolution": 16,
        "img_channels": 3}
D_KW = {"block_kwargs": {"freeze_layers": 0}, "mapping_kwargs": {},
        "epilogue_kwargs": {"mbstd_group_size": 4}, "channel_base": 128, "channel_max": 16,
        "num_fp16_res": 0, "conv_clamp": 256, "c_dim": 0, "img_resolution": 16,
        "img_channels": 3}
SG3_KW = {"z_dim": 8, "c_dim": 0, "w_dim": 8, "img_resolution": 32, "img_channels": 3,
          "mapping_kwargs": {"num_layers": 2}, "channel_base": 256, "channel_max": 32,
          "num_layers": 4, "num_critical": 2, "margin_size": 2, "magnitude_ema_beta": 0.999}
SG3_SRC = "class SynthesisInput: pass\nclass SynthesisLayer: pass\nclass Generator: pass\n"


def randomized(family: str, config: dict, seed: int) -> gan_models.GenerativeModel:
    """A model whose every parameter and buffer is random, so a misplaced tensor shows."""
    torch.manual_seed(seed)
    model = gan_models.GenerativeModel.create(family, config)
    with torch.no_grad():
        for net in model.networks.values():
            for t in net.parameters():
                t.add_(torch.randn_like(t) * 0.2)
            if hasattr(net, "mapping") and hasattr(net.mapping, "w_avg"):
                net.mapping.w_avg.normal_()
    return model


def sg2(c_dim: int = 0, seed: int = 0) -> gan_models.GenerativeModel:
    return randomized("stylegan2", {"generator": {**G_KW, "c_dim": c_dim},
                                    "discriminator": {**D_KW, "c_dim": c_dim}}, seed)


def write_sg2(path: Path, model, g_kwargs=None, d_kwargs=None, **kwargs) -> Path:
    g_kwargs = g_kwargs or {**G_KW, "c_dim": model.num_classes}
    d_kwargs = d_kwargs or {**D_KW, "c_dim": model.num_classes}
    data = nvlabs_network_dict(model.generator, g_kwargs, model.networks["discriminator"],
                               d_kwargs, **kwargs)
    return write_nvlabs_pickle(path, data)


def same_images(a: gan_models.GenerativeModel, b: gan_models.GenerativeModel, psi=0.7):
    batch = a.sample_latents(5, 3, truncation_psi=psi)
    torch.testing.assert_close(b.synthesize(batch), a.synthesize(batch), atol=1e-5, rtol=0)


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_stylegan2_round_trip_conditional(tmp_path):
    source = sg2(c_dim=3)
    other = sg2(c_dim=3, seed=1)  # the training G: must not be picked over G_ema
    path = write_sg2(tmp_path / "network-snapshot-000200.pkl", source,
                     training_generator=other.generator)
    model = gan_models.load_model(path)
    assert model.architecture == "stylegan2" and model.resolution == 16
    assert model.class_names == ["class 0", "class 1", "class 2"]
    assert_same_weights(source.generator, model.generator)
    assert_same_weights(source.networks["discriminator"], model.networks["discriminator"])
    same_images(source, model)
    src = model.metadata["source"]
    assert src == {"file": path.name, "sha256": file_sha256(path), "format": "nvlabs-pkl",
                   "network": "training.networks_stylegan2.Generator", "role": "G_ema"}
    tsk = model.metadata["provenance"]["training_set_kwargs"]
    assert tsk["max_size"] == 1000 and tsk["mean"] == [0.5, 0.5, 0.5] and tsk["use_labels"]
    assert model.config["generator"]["mapping_kwargs"] == {"num_layers": 2}
    assert model.config["discriminator"]["epilogue_kwargs"] == {"mbstd_group_size": 4}
    json.dumps(model.config)  # the config must survive the native format's JSON


def test_stylegan2_ada_pickle_with_nested_synthesis_kwargs(tmp_path):
    source = sg2()
    synthesis = {k: G_KW[k] for k in ("channel_base", "channel_max", "num_fp16_res",
                                      "conv_clamp")}
    ada_kwargs = {k: v for k, v in G_KW.items() if k not in synthesis
                  and k != "fused_modconv_default"}
    ada_kwargs["synthesis_kwargs"] = synthesis
    model = gan_models.load_model(write_sg2(tmp_path / "ada.pkl", source, g_kwargs=ada_kwargs))
    assert model.metadata["source"]["network"] == "training.networks.Generator"
    assert model.config["generator"]["channel_base"] == 128  # flattened
    same_images(source, model)


def test_falls_back_to_g_and_drops_a_discriminator_it_cannot_build(tmp_path):
    source = sg2()
    data = nvlabs_network_dict(source.generator, G_KW, source.networks["discriminator"],
                               {**D_KW, "not_a_d_option": 1})
    data.pop("G_ema")
    model = gan_models.load_model(write_nvlabs_pickle(tmp_path / "g_only.pkl", data))
    assert model.metadata["source"]["role"] == "G"
    assert "discriminator" not in model.networks
    assert "discriminator not imported" in model.metadata["notes"]
    same_images(source, model)


@pytest.mark.skipif("stylegan3" not in registry.names(),
                    reason="the stylegan3 architecture is not registered in this checkout")
def test_stylegan3_round_trip(tmp_path):
    source = randomized("stylegan3", {"generator": SG3_KW, "discriminator": None}, 2)
    data = nvlabs_network_dict(source.generator, SG3_KW, module_src=SG3_SRC)
    model = gan_models.load_model(write_nvlabs_pickle(tmp_path / "sg3.pkl", data))
    assert model.architecture == "stylegan3"
    assert model.metadata["source"]["network"] == "training.networks_stylegan3.Generator"
    assert_same_weights(source.generator, model.generator)
    same_images(source, model)


def test_unknown_networks_are_refused_with_what_they_look_like(tmp_path):
    fastgan = torch.nn.Sequential(torch.nn.ConvTranspose2d(8, 3, 4))
    tree = persistent_tree(fastgan, "Generator",
                           module_src="class FastganSynthesis(nn.Module): pass\n")
    path = write_nvlabs_pickle(tmp_path / "pg.pkl", {"G_ema": tree, "D": None})
    with pytest.raises(CheckpointError, match="not an NVlabs StyleGAN2.*Projected GAN"):
        gan_models.load_model(path)
    with pytest.raises(CheckpointError, match="without a G_ema or G"):
        gan_models.load_model(write_nvlabs_pickle(tmp_path / "d.pkl", {"D": tree}))
    with pytest.raises(CheckpointError, match="pickle of list"):
        gan_models.load_model(write_nvlabs_pickle(tmp_path / "list.pkl", [1, 2]))


TF_KWARGS = {"num_channels": 3, "resolution": 16, "label_size": 3, "latent_size": 8,
             "dlatent_size": 8, "fmap_base": 64, "fmap_max": 16, "mapping_layers": 2,
             "architecture": "skip", "truncation_psi": 0.5}


def test_tensorflow_stylegan2_pickle_converts(tmp_path):
    config = {**G_KW, "c_dim": 3, "conv_clamp": None}
    config.pop("fused_modconv_default")
    source = randomized("stylegan2", {"generator": config, "discriminator": None}, 4)
    nets = tf_stylegan2_networks(source.generator, TF_KWARGS)
    model = gan_models.load_model(write_nvlabs_pickle(tmp_path / "tf-config-f.pkl", nets))
    assert model.config["generator"]["channel_base"] == 128  # TF fmap_base counts half
    assert model.metadata["source"]["role"] == "Gs" and "generator only" in model.metadata["notes"]
    assert_same_weights(source.generator, model.generator)
    same_images(source, model)


def test_other_tensorflow_era_pickles_are_refused_clearly(tmp_path):
    source = sg2()
    g, d, gs = tf_stylegan2_networks(source.generator, TF_KWARGS)
    gs.__getstate__()["build_func_name"] = "G_style"
    with pytest.raises(CheckpointError, match=r"TensorFlow-era pickle of a StyleGAN \(v1\)"):
        gan_models.load_model(write_nvlabs_pickle(tmp_path / "karras2019.pkl", (g, d, gs)))
    g, d, gs = tf_stylegan2_networks(source.generator, {**TF_KWARGS, "fancy_option": 1})
    with pytest.raises(CheckpointError, match="options this importer does not know: fancy"):
        gan_models.load_model(write_nvlabs_pickle(tmp_path / "fancy.pkl", (g, d, gs)))


def test_convert_command_end_to_end(tmp_path, capsys):
    source = sg2(c_dim=3)
    pkl = write_sg2(tmp_path / "shapes.pkl", source)
    out = tmp_path / "shapes.safetensors"
    assert main(["convert", str(pkl), str(out)]) == 0
    printed = capsys.readouterr().out
    assert "shapes.pkl" in printed and "stylegan2" in printed and "shapes.safetensors" in printed
    meta = read_metadata(out)
    assert meta["source"]["sha256"] == file_sha256(pkl) and meta["source"]["file"] == "shapes.pkl"
    assert meta["roles"] == ["generator", "discriminator"]
    native = gan_models.load_model(out)
    same_images(source, native)
    # generator-only, and no silent overwrite
    small = tmp_path / "g.safetensors"
    assert main(["convert", str(pkl), str(small), "--generator-only"]) == 0
    assert read_metadata(small)["roles"] == ["generator"]
    assert main(["convert", str(pkl), str(out)]) == 2
    assert "exists" in capsys.readouterr().err


def test_convert_refuses_hostile_input_and_writes_nothing(tmp_path, capsys):
    sentinel = tmp_path / "pwned"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(call_pickle("posix", "system", f"touch {sentinel}"))
    out = tmp_path / "evil.safetensors"
    assert main(["convert", str(evil), str(out)]) == 2
    assert "refused to load posix.system" in capsys.readouterr().err
    assert not out.exists() and not sentinel.exists()
