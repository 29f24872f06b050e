"""BigGAN: the public pytorch-pretrained-BigGAN layout (written by our own code) loads and
gives the outputs of the module it came from; truncation picks batch-norm statistics; class
mixes and genes; ImageNet names with nearest-name hints; bad files get clear messages; the
`biggan` recipe trains, resumes bit-exactly and exports standing statistics."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import assert_resume_is_bit_exact

import gan_models
from gan_models import registry
from gan_models.architectures import biggan
from gan_models.errors import GanStudioError
from gan_models.formats.biggan_pretrained import imagenet_class_names
from gan_models.latent.genes import mutate_classes
from gan_models.motion.animation import interpolate_latents, path_latents
from gan_models.training import Trainer, load_image_folder, make_recipe
from gan_models.training.biggan_recipe import deep_layers
from gan_models.training.shapes import write_shapes_folder

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py

# The released layout in miniature: two blocks per resolution, attention, 16 px.
SMALL = {"output_dim": 16, "z_dim": 8, "class_embed_dim": 8, "channel_width": 4,
         "num_classes": 5, "layers": [[False, 4, 4], [True, 4, 2], [False, 2, 2], [True, 2, 1]],
         "attention_layer_position": 2, "eps": 1e-4, "n_stats": 6}


def random_generator(config: dict, seed: int = 0) -> biggan.BigGAN:
    """A generator with random weights AND random statistics tables (defaults would hide a
    mix-up of rows), gamma non-zero so attention matters."""
    torch.manual_seed(seed)
    net = registry.build("biggan", config)["generator"]
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if name.endswith("running_vars"):
                t.uniform_(0.5, 2.0)
            elif name.endswith(("running_means", "gamma")):
                t.normal_(0, 0.5)
    return net.eval()


def calibrated_generator(config: dict, seed: int = 0) -> biggan.BigGAN:
    """Random weights with measured statistics: images in range, not saturated."""
    torch.manual_seed(seed)
    net = registry.build("biggan", config)["generator"]
    biggan.standing_statistics(net, batches=2, batch_size=16)
    return net.eval()


def write_public(folder, config: dict, net: torch.nn.Module, weights="pytorch_model.bin",
                 config_name="config.json", legacy=False):
    """config.json + pytorch_model.bin as the release writes them: the config's keys and
    a plain torch.save of the state dict."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / config_name).write_text(json.dumps(config))
    torch.save(net.state_dict(), folder / weights, _use_new_zipfile_serialization=not legacy)
    return folder / weights


def images(model, seed=0, n=3, psi=0.7, labels=None):
    batch = model.sample_latents(seed, n, psi)
    if labels is not None:
        batch = batch.with_labels(labels)
    return model.synthesize(batch)


# --- the public layout ------------------------------------------------------------------------
def test_parameter_names_are_the_releases():
    net = registry.build("biggan", {})["generator"]  # biggan-deep-128
    state = net.state_dict()
    assert state["embeddings.weight"].shape == (128, 1000)
    for suffix in ("weight_orig", "weight_u", "weight_v", "bias"):
        assert f"generator.gen_z.{suffix}" in state
    assert state["generator.gen_z.weight_orig"].shape == (4 * 4 * 16 * 128, 256)
    assert state["generator.layers.0.bn_0.running_means"].shape == (51, 2048)
    assert "generator.layers.0.bn_0.scale.weight_orig" in state
    assert "generator.layers.3.conv_3.weight_v" in state
    assert "generator.layers.8.snconv1x1_theta.weight_orig" in state  # attention at 8
    assert "generator.layers.8.gamma" in state
    for name in ("weight", "bias", "running_means", "running_vars"):
        assert f"generator.bn.{name}" in state
    assert state["generator.conv_to_rgb.weight_orig"].shape == (128, 128, 3, 3)


@pytest.mark.parametrize("legacy", [False, True])
def test_public_files_load_with_identical_outputs(tmp_path, legacy):
    net = random_generator(SMALL)
    path = write_public(tmp_path / "release", SMALL, net, legacy=legacy)
    model = gan_models.load_model(path)
    assert model.architecture == "biggan" and model.metadata["source"]["format"] == \
        "biggan-pretrained"
    assert model.num_classes == 5 and model.resolution == 16
    z = torch.randn(4, 8).clamp(-2, 2) * 0.6
    c = torch.softmax(torch.randn(4, 5), 1)
    with torch.no_grad():
        want = net(z, c, 0.6)
        got = model.generator(z, c, 0.6)
    assert torch.equal(want, got)
    # through the model wrapper: z scaled by psi and the same psi picks the statistics
    batch = model.sample_latents(3, 4, 0.6).with_labels(c)
    with torch.no_grad():
        assert torch.equal(model.synthesize(batch), net(batch.values * 0.6, c, 0.6))


def test_release_download_names_and_conversion_to_native(tmp_path):
    net = random_generator(SMALL, seed=1)
    path = write_public(tmp_path, SMALL, net, weights="biggan-deep-16-pytorch_model.bin",
                        config_name="biggan-deep-16-config.json")
    model = gan_models.load_model(path)
    native = gan_models.save_model(model, tmp_path / "converted.safetensors")
    again = gan_models.load_model(native)
    assert again.architecture == "biggan" and again.config == model.config
    assert torch.equal(images(model), images(again))


def test_imagenet_models_take_class_names(tmp_path):
    names = imagenet_class_names()
    assert len(names) == 1000 and names[207] == "golden retriever" and names[980] == "volcano"
    config = {**SMALL, "num_classes": 1000}
    model = gan_models.load_model(write_public(tmp_path, config, random_generator(config)))
    assert model.class_index("Golden Retriever") == 207
    from gan_models.latent import class_rows, parse_mix
    rows = class_rows(parse_mix("golden retriever:0.6, volcano:0.4"), 1000, model.class_index,
                      2, "mix")
    assert rows[0, 207] == pytest.approx(0.6) and rows[1, 980] == pytest.approx(0.4)
    with pytest.raises(GanStudioError, match="'golden retriever'") as err:
        model.class_index("golden retreiver")
    assert "nearest valid names" in str(err.value)
    with pytest.raises(GanStudioError, match="no class name is close"):
        model.class_index("zzzzqqqq")


def test_unknown_names_on_a_small_model_list_every_class(tmp_path):
    model = gan_models.load_model(write_public(tmp_path, SMALL, random_generator(SMALL)))
    with pytest.raises(GanStudioError, match="model classes are class 0, class 1"):
        model.class_index("cat")


# --- truncation -------------------------------------------------------------------------------
def test_truncation_picks_the_statistics_row():
    bn = biggan.StatsBatchNorm(3, None, n_stats=11, eps=1e-4).eval()
    with torch.no_grad():
        bn.running_means.copy_(torch.arange(11.0).view(11, 1).expand(11, 3))
    x = torch.zeros(1, 3, 2, 2)
    for row in range(11):  # x = 0 -> output -mean / sqrt(var + eps): row's mean read back
        out = bn(x, row / 10)
        assert torch.allclose(out, torch.full_like(out, -row / (1 + 1e-4) ** 0.5))
    assert bn.row_weights(0.4) == (4, 5, 0.0)  # 0.4 / 0.1 is not exactly 4 in floats
    low, high, frac = bn.row_weights(0.43)
    assert (low, high) == (4, 5) and frac == pytest.approx(0.3)
    mid = bn(x, 0.43)
    assert torch.allclose(mid, torch.full_like(mid, -4.3 / (1 + 1e-4) ** 0.5), atol=1e-5)
    assert bn.row_weights(1.5) == (10, 10, 0.0)  # beyond 1: the last row


def test_model_truncation_changes_statistics_not_only_z():
    net = random_generator(SMALL)
    model = gan_models.GenerativeModel("biggan", SMALL, {"generator": net})
    batch = model.sample_latents(0, 2, 0.4)
    assert batch.values.abs().max() <= 2.0  # BigGAN default: a normal truncated at 2
    with torch.no_grad():
        right = model.synthesize(batch)
        wrong_row = net(batch.values * 0.4, model._labels_for(batch, "cpu"), 1.0)
    assert not torch.allclose(right, wrong_row)


# --- class mixing and genes -------------------------------------------------------------------
def test_class_mixing_changes_outputs_continuously():
    net = calibrated_generator(SMALL)
    model = gan_models.GenerativeModel("biggan", SMALL, {"generator": net})
    a, b = torch.eye(5)[1], torch.eye(5)[3]
    weights = torch.linspace(0, 1, 21)
    mixes = torch.stack([(1 - w) * a + w * b for w in weights])
    batch = model.sample_latents(5, 1, 0.8)
    batch = batch.select([0] * 21).with_labels(mixes)
    out = model.synthesize(batch)
    steps = (out[1:] - out[:-1]).abs().amax((1, 2, 3))
    ends = (out[-1] - out[0]).abs().max()
    assert ends > 0.05 and steps.max() < ends / 3  # small steps between far-apart ends
    one = model.synthesize(batch.select([0]).with_labels(a[None]))
    assert torch.allclose(out[:1], one, atol=1e-5)  # batch size changes float sums only


def test_class_weights_animate_with_the_latent():
    model = gan_models.GenerativeModel("biggan", SMALL, {"generator": random_generator(SMALL)})
    start = model.sample_latents(0, 1).with_labels(torch.eye(5)[:1])
    end = model.sample_latents(1, 1).with_labels(torch.eye(5)[2:3])
    frames = interpolate_latents(start, end, 5)
    assert torch.allclose(frames.labels[2], 0.5 * torch.eye(5)[0] + 0.5 * torch.eye(5)[2])
    keys = model.sample_latents(0, 3).with_labels(torch.eye(5)[[0, 2, 4]])
    path = path_latents(keys, 12, loop=True)
    assert torch.allclose(path.labels.sum(1), torch.ones(12))
    assert len({tuple(r.tolist()) for r in path.labels}) > 3  # classes move along the path


def test_genes_are_seeded_and_keep_valid_weights():
    labels = torch.zeros(3, 50)
    labels[:, 7] = 0.7
    labels[:, 9] = 0.3
    a = mutate_classes(labels, seed=4, strength=0.5, new_classes=3)
    assert torch.equal(a, mutate_classes(labels, seed=4, strength=0.5, new_classes=3))
    assert not torch.equal(a, mutate_classes(labels, seed=5, strength=0.5, new_classes=3))
    assert (a >= 0).all() and torch.allclose(a.sum(1), torch.ones(3))
    assert torch.equal(a[0], a[1])  # one mutation for the batch
    assert 3 <= int((a[0] > 0).sum()) <= 5  # the mix plus up to 3 newcomers
    per_row = mutate_classes(labels, seed=4, strength=0.5, new_classes=3, per_row=True)
    assert not torch.equal(per_row[0], per_row[1])
    assert torch.equal(per_row[0], a[0])  # row 0 uses the seed itself
    assert torch.allclose(mutate_classes(labels, 4, 0.0, 3), labels)
    small = mutate_classes(labels, 4, 0.05, 3)
    assert (small - labels).abs().max() < (a - labels).abs().max()
    with pytest.raises(GanStudioError, match="strength"):
        mutate_classes(labels, 0, float("nan"))


# --- bad files ----------------------------------------------------------------------------------
def test_missing_config_is_named(tmp_path):
    path = write_public(tmp_path, SMALL, random_generator(SMALL))
    (tmp_path / "config.json").unlink()
    with pytest.raises(GanStudioError, match="config.json is missing.*pytorch_model.json"):
        gan_models.load_model(path)


def test_config_that_does_not_fit_the_weights(tmp_path):
    path = write_public(tmp_path, SMALL, random_generator(SMALL))
    (tmp_path / "config.json").write_text(json.dumps({**SMALL, "channel_width": 8}))
    with pytest.raises(GanStudioError, match=r"has shape .* the network expects"):
        gan_models.load_model(path)
    (tmp_path / "config.json").write_text(json.dumps({**SMALL, "output_dim": 64}))
    with pytest.raises(GanStudioError, match="output_dim 64 does not match the layers"):
        gan_models.load_model(path)
    bad = {k: v for k, v in SMALL.items() if k != "n_stats"}
    (tmp_path / "config.json").write_text(json.dumps(bad))
    with pytest.raises(GanStudioError, match="lacks n_stats"):
        gan_models.load_model(path)
    (tmp_path / "config.json").write_text("[1, 2")
    with pytest.raises(GanStudioError, match="not valid JSON"):
        gan_models.load_model(path)


def test_huge_config_is_refused_before_building(tmp_path):
    path = write_public(tmp_path, SMALL, random_generator(SMALL))
    huge = {**SMALL, "channel_width": 4096, "num_classes": 1000}  # tens of GB of weights
    (tmp_path / "config.json").write_text(json.dumps(huge))
    with pytest.raises(GanStudioError, match="biggan"):
        gan_models.load_model(path)
    (tmp_path / "config.json").write_text(json.dumps({**SMALL, "channel_width": 10**9}))
    with pytest.raises(GanStudioError, match="channel_width"):
        gan_models.load_model(path)
    (tmp_path / "config.json").write_text(" " * (1 << 20))
    with pytest.raises(GanStudioError, match="config.json"):
        gan_models.load_model(path)


# --- the recipe ---------------------------------------------------------------------------------
def test_deep_layers_follow_the_release():
    layers, attention = deep_layers(128)
    assert layers == biggan.DEFAULTS["layers"]
    layers, attention = deep_layers(64)
    assert len(layers) == 8 and layers[-1] == [True, 2, 1] and attention == 6
    biggan.full_config({**SMALL, "output_dim": 32, "layers": deep_layers(32)[0],
                        "attention_layer_position": deep_layers(32)[1]})


TINY = {"resolution": 32, "z_dim": 16, "embed_dim": 8, "base_channels": 4, "n_stats": 5,
        "ema_kimg": 0.05}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    folder = write_shapes_folder(tmp_path_factory.mktemp("data") / "shapes", per_class=8,
                                 size=32)
    return load_image_folder(folder, 32)


def trainer(dataset, seed=3, **options):
    return Trainer(make_recipe("biggan", {**TINY, **options}, dataset.num_classes), dataset,
                   batch=8, seed=seed)


def test_recipe_resume_is_bit_exact(shapes, tmp_path):
    resumed = assert_resume_is_bit_exact(lambda: trainer(shapes), shapes, tmp_path / "snaps",
                                         2, 2)
    assert resumed.history.as_dict()["loss_d"]


def test_recipe_exports_standing_statistics(shapes, tmp_path):
    t = trainer(shapes, diffaugment="color,translation")
    t.train_steps(2)
    g_before = {k: v.clone() for k, v in t.ema.module.state_dict().items()}
    model = t.export_model()
    # the training copy is untouched; the exported one has a row per truncation
    assert all(torch.equal(v, t.ema.module.state_dict()[k]) for k, v in g_before.items())
    means = model.generator.generator.layers[0].bn_0.running_means
    assert not torch.equal(means[0], means[-1]) and means.abs().sum(1).gt(0).all()
    path = gan_models.save_model(model, tmp_path / "small_biggan.safetensors")
    again = gan_models.load_model(path)
    assert again.class_names == list(shapes.class_names) and again.num_classes == 3
    assert "discriminator" in again.networks
    assert torch.equal(images(model, labels=torch.eye(3)), images(again, labels=torch.eye(3)))


def test_recipe_refuses_bad_options(shapes):
    with pytest.raises(GanStudioError, match="resolution"):
        make_recipe("biggan", {**TINY, "resolution": 48}, 3)
    with pytest.raises(GanStudioError, match="class-conditional"):
        make_recipe("biggan", TINY, 0)
    with pytest.raises(GanStudioError, match="loss"):
        make_recipe("biggan", {**TINY, "loss": "nope"}, 3)
