"""Progressive GAN: fade-in continuity, the kimg schedule, a few training steps at every
stage, resume in the middle of a fade, the PyTorch GAN zoo layout written by our own copy of
its module tree, and refusals (TensorFlow ProGAN pickles, truncated files)."""

from __future__ import annotations

import math
import pickle
import sys
import types

import pytest
import torch
import torch.nn.functional as F
from helpers import assert_resume_is_bit_exact
from torch import nn

import gan_models
from gan_models import registry
from gan_models.architectures.progan import upsample
from gan_models.errors import CheckpointError, GanStudioError
from gan_models.training import Trainer, load_image_folder, make_recipe
from gan_models.training.progan_recipe import images_at, stage_at
from gan_models.training.shapes import write_shapes_folder

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py

TINY = {"resolution": 16, "z_dim": 16, "base_channels": 8, "max_channels": 16, "embed_dim": 8}
# 16 images per phase at batch 4: 4 steps stable at 4 px, 4 fading to 8 px, 4 stable, ...
FAST = {**TINY, "stage_kimg": 0.016, "fade_kimg": 0.016}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    folder = write_shapes_folder(tmp_path_factory.mktemp("data") / "shapes", per_class=4,
                                 size=16)
    return load_image_folder(folder, 16)


def networks(**config):
    torch.manual_seed(0)
    return registry.build("progan", {**TINY, "num_classes": 3, **config})


# --- the networks -----------------------------------------------------------------------------
def test_fade_in_is_continuous_and_has_no_jump_at_stage_boundaries():
    nets = networks()
    G, D = nets["generator"], nets["discriminator"]
    z, c = torch.randn(4, 16), torch.eye(3)[[0, 1, 2, 0]]
    with torch.no_grad():
        for res in (8, 16):
            G.set_stage(res // 2, 1.0)
            grown = upsample(G(z, c))
            outs = []
            for alpha in torch.linspace(0, 1, 21).tolist():
                G.set_stage(res, alpha)
                D.set_stage(res, alpha)
                out = G(z, c)
                assert out.shape == (4, 3, res, res) and torch.isfinite(out).all()
                assert torch.isfinite(D(out, c)).all()
                outs.append(out)
            # alpha = 0 is exactly the previous stage, enlarged: no jump when a block appears
            assert torch.allclose(outs[0], grown, atol=1e-6)
            steps = [(b - a).abs().max().item() for a, b in zip(outs, outs[1:], strict=False)]
            total = (outs[-1] - outs[0]).abs().max().item()
            # linear in alpha: every 1/20 step moves the output by 1/20 of the whole change
            assert max(steps) <= total / 20 * 1.01 + 1e-6 and total > 0


def test_tanh_output_keeps_the_fade_continuous():
    G = networks(output="tanh")["generator"]
    z, c = torch.randn(2, 16), torch.eye(3)[:2]
    with torch.no_grad():
        G.set_stage(8, 1.0)
        low = G(z, c)
        G.set_stage(16, 0.0)
        assert torch.allclose(G(z, c), upsample(low), atol=1e-6)
        assert G(z, c).abs().max() <= 1


def test_discriminator_fade_matches_its_previous_stage_at_alpha_zero():
    D = networks()["discriminator"]
    images, c = torch.rand(4, 3, 16, 16) * 2 - 1, torch.eye(3)[[0, 1, 2, 0]]
    with torch.no_grad():
        D.set_stage(8, 1.0)
        low = D(F.avg_pool2d(images, 2), c)
        D.set_stage(16, 0.0)
        assert torch.allclose(D(images, c), low, atol=1e-5)
        with pytest.raises(ValueError, match="8 px stage"):
            D.set_stage(8, 1.0)
            D(images, c)


def test_model_reports_its_stage_and_class_mixes_work():
    nets = networks(stage_resolution=8, alpha=0.5)
    model = gan_models.GenerativeModel("progan", {**TINY, "num_classes": 3,
                                                  "stage_resolution": 8, "alpha": 0.5}, nets)
    assert model.resolution == 8 and model.describe() == "progan 8px, 3 classes"
    z = model.sample_latents(0, 2)
    mix = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    with torch.no_grad():
        images = model.synthesize(z.with_labels(mix))
    assert images.shape[-2:] == (8, 8) and torch.isfinite(images).all()


def test_schedule_is_a_function_of_images_shown():
    assert stage_at(0, 64, 2, 2) == (4, 1.0)
    assert stage_at(2000, 64, 2, 2) == (8, 0.0)
    assert stage_at(3000, 64, 2, 2) == (8, 0.5)
    assert stage_at(5000, 64, 2, 2) == (8, 1.0)
    assert stage_at(7000, 64, 2, 2) == (16, 0.5)
    assert stage_at(15000, 64, 2, 2) == (64, 0.5)
    assert stage_at(10 ** 9, 64, 2, 2) == (64, 1.0)
    assert stage_at(5000, 64, 2, 0) == (16, 1.0)  # no fade: blocks switch on at once
    for res, alpha in ((4, 1.0), (8, 0.0), (8, 0.25), (16, 1.0), (64, 0.5)):
        assert stage_at(images_at(res, alpha, 2, 2), 64, 2, 2) == (res, alpha)


# --- training ---------------------------------------------------------------------------------
def trainer(dataset, seed=0, **options):
    return Trainer(make_recipe("progan", {**FAST, **options}, dataset.num_classes), dataset,
                   batch=4, seed=seed)


def test_a_few_steps_at_every_stage(shapes):
    t = trainer(shapes, ema_kimg=0.01)
    assert t.recipe.num_classes == 3  # conditional by default on a dataset with classes
    seen = set()
    for _ in range(24):  # 4 px, fade 8, 8, fade 16, 16 (and beyond)
        metrics = t.train_steps(1)
        assert all(math.isfinite(v) for v in metrics.values())
        seen.add((int(metrics["stage_px"]), metrics["alpha"] < 1))
    assert {(4, False), (8, True), (8, False), (16, True), (16, False)} <= seen
    model = t.export_model()
    assert model.resolution == 16 and model.config["stage_resolution"] == 16
    grid = t.sample_grid()
    assert grid.shape[-1] == 3 and torch.isfinite(grid).all()


def test_model_exported_mid_fade_keeps_its_stage_through_a_file(shapes, tmp_path):
    t = trainer(shapes)
    t.train_steps(6)  # in the fade to 8 px
    model = t.export_model()
    assert model.resolution == 8 and 0 < model.config["alpha"] < 1
    path = gan_models.save_model(model, tmp_path / "p.safetensors")
    again = gan_models.load_model(path)
    assert again.resolution == 8 and again.config["alpha"] == model.config["alpha"]
    z = model.sample_latents(0, 2).with_labels(torch.eye(3)[:2])
    with torch.no_grad():
        assert torch.equal(model.synthesize(z), again.synthesize(z))


def test_fine_tuning_a_progan_continues_from_its_stage(shapes):
    grown = trainer(shapes)
    grown.train_steps(6)  # mid-fade to 8 px
    model = grown.export_model()
    tuned = Trainer(make_recipe("progan", FAST, shapes.num_classes), shapes, batch=4, seed=1,
                    init_model=model)
    metrics = tuned.train_steps(1)
    assert metrics["stage_px"] == 8 and metrics["alpha"] == pytest.approx(model.config["alpha"])
    assert tuned.export_model().resolution == 8


@pytest.mark.parametrize("split", [5, 13])  # mid-fade to 8 px, mid-fade to 16 px
def test_resume_in_the_middle_of_a_fade_is_bit_exact(shapes, tmp_path, split):
    assert stage_at(split * 4, 16, 0.016, 0.016)[1] < 1
    assert_resume_is_bit_exact(lambda: trainer(shapes, seed=3, ema_kimg=0.05), shapes,
                               tmp_path / f"snaps{split}", split, 3)


def test_bad_options_are_refused(shapes):
    with pytest.raises(GanStudioError, match="stage_kimg"):
        make_recipe("progan", {**TINY, "stage_kimg": 0}, 3)
    with pytest.raises(GanStudioError, match="power of two"):
        make_recipe("progan", {**TINY, "resolution": 48}, 3)
    assert make_recipe("progan", {**TINY, "conditional": False}, 3).num_classes == 0


# --- the PyTorch GAN zoo layout, written by our own copy of its module tree -------------------
class Eq(nn.Module):
    """The zoo's constrained layer: a plain layer as `.module`, N(0, 1) weights, the output
    (bias included) times sqrt(2 / fan_in)."""

    def __init__(self, module):
        super().__init__()
        self.module = module
        module.weight.data.normal_(0, 1)
        module.bias.data.normal_(0, 0.1)  # nonzero, so the bias conversion is tested
        self.he = math.sqrt(2.0 / module.weight[0].numel())

    def forward(self, x):
        return self.module(x) * self.he


def _norm(x):
    return x * ((x ** 2).mean(dim=1, keepdim=True) + 1e-8).rsqrt()


class ZooG(nn.Module):
    """The zoo's GNet at a given depth list (scale 0 first), alpha weighing the OLD output."""

    def __init__(self, latent, depths, alpha=0.0):
        super().__init__()
        self.formatLayer = Eq(nn.Linear(latent, 16 * depths[0]))
        self.groupScale0 = nn.ModuleList([Eq(nn.Conv2d(depths[0], depths[0], 3, padding=1))])
        self.scaleLayers = nn.ModuleList(
            nn.ModuleList([Eq(nn.Conv2d(a, b, 3, padding=1)), Eq(nn.Conv2d(b, b, 3, padding=1))])
            for a, b in zip(depths, depths[1:], strict=False))
        self.toRGBLayers = nn.ModuleList(Eq(nn.Conv2d(d, 3, 1)) for d in depths)
        self.alpha = alpha

    def forward(self, x):
        act = nn.LeakyReLU(0.2)
        x = _norm(x)
        x = _norm(act(self.formatLayer(x)).view(x.shape[0], -1, 4, 4))
        x = _norm(act(self.groupScale0[0](x)))
        y = None
        if self.alpha > 0 and len(self.scaleLayers) == 1:
            y = F.interpolate(self.toRGBLayers[-2](x), scale_factor=2)
        for i, group in enumerate(self.scaleLayers):
            x = F.interpolate(x, scale_factor=2)
            for conv in group:
                x = _norm(act(conv(x)))
            if self.alpha > 0 and i == len(self.scaleLayers) - 2:
                y = F.interpolate(self.toRGBLayers[-2](x), scale_factor=2)
        x = self.toRGBLayers[-1](x)
        return x if y is None else self.alpha * y + (1 - self.alpha) * x


@pytest.fixture
def zoo_config_class(monkeypatch):
    module = types.ModuleType("models.utils.config")

    class BaseConfig:  # the zoo's config class: an empty object of attributes
        pass

    BaseConfig.__module__, BaseConfig.__qualname__ = "models.utils.config", "BaseConfig"
    module.BaseConfig = BaseConfig
    monkeypatch.setitem(sys.modules, "models.utils.config", module)
    return BaseConfig


def write_zoo(path, config_class, alpha=0.0, legacy=False):
    torch.manual_seed(1)
    g, avg = ZooG(12, [16, 16, 8], alpha), ZooG(12, [16, 16, 8], alpha)
    cfg = config_class()
    cfg.depthScale0, cfg.depthOtherScales, cfg.alpha = 16, [16, 8], alpha
    cfg.latentVectorDim, cfg.dimOutput, cfg.equalizedlR = 12, 3, True
    cfg.perChannelNormalization, cfg.leakyReluLeak, cfg.lossCriterion = True, 0.2, "WGANGP"
    cfg.attribKeysOrder = None
    torch.save({"config": cfg, "netG": g.state_dict(), "avgG": avg.state_dict(),
                "netD": {"decisionLayer.module.weight": torch.zeros(1, 16)}}, path,
               _use_new_zipfile_serialization=not legacy)  # the public 2019 files are legacy
    return avg


@pytest.mark.parametrize(("alpha", "legacy"), [(0.0, True), (0.3, False)])
def test_gan_zoo_checkpoint_loads_and_matches_its_source(tmp_path, zoo_config_class, alpha,
                                                         legacy):
    source = write_zoo(tmp_path / "zoo.pth", zoo_config_class, alpha, legacy)
    model = gan_models.load_model(tmp_path / "zoo.pth")
    assert model.architecture == "progan" and model.resolution == 16
    assert model.metadata["source"]["format"] == "pgan-zoo"
    assert model.metadata["source"]["role"] == "avgG"
    assert model.config["alpha"] == pytest.approx(1 - alpha)
    z = torch.randn(3, 12)
    with torch.no_grad():
        assert torch.allclose(model.generator(z), source(z), atol=1e-5, rtol=1e-5)
    native = gan_models.save_model(model, tmp_path / "zoo.safetensors")
    with torch.no_grad():
        assert torch.equal(gan_models.load_model(native).generator(z), model.generator(z))


def test_a_gan_zoo_generator_can_be_fine_tuned(tmp_path, zoo_config_class, shapes):
    write_zoo(tmp_path / "zoo.pth", zoo_config_class)
    zoo = gan_models.load_model(tmp_path / "zoo.pth")
    recipe = make_recipe("progan", {**FAST, "conditional": False}, shapes.num_classes)
    tuned = Trainer(recipe, shapes, batch=4, seed=0, init_model=zoo)
    metrics = tuned.train_steps(2)
    assert metrics["stage_px"] == 16 and metrics["alpha"] == 1.0
    assert tuned.recipe.options["stage_channels"] == [16, 16, 8]


def test_truncated_gan_zoo_file_is_refused_clearly(tmp_path, zoo_config_class):
    write_zoo(tmp_path / "zoo.pth", zoo_config_class, legacy=True)
    data = (tmp_path / "zoo.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pth(: its tensors declare| is corrupt)"):
        gan_models.load_model(tmp_path / "cut.pth")
    # a GAN zoo file whose generator lacks a scale is named as such
    state = {k: v for k, v in ZooG(12, [16, 16, 8]).state_dict().items()
             if not k.startswith("toRGBLayers.0")}
    torch.save({"config": zoo_config_class(), "netG": state}, tmp_path / "odd.pth")
    with pytest.raises(CheckpointError, match="odd.pth: incomplete GAN zoo PGAN generator"):
        gan_models.load_model(tmp_path / "odd.pth")


def test_tensorflow_progan_pickle_is_refused_with_what_it_is(tmp_path):
    # The shape of karras2018iclr-*.pkl: a (G, D, Gs) tuple of tfutil.Network objects whose
    # state names the build function and holds TensorFlow variables; written by hand here.
    module = types.ModuleType("tfutil")

    class Network:
        def __reduce__(self):
            return (Network, (), {"name": "Gs", "build_func_name": "G_paper",
                                  "variables": [("4x4/Dense/weight", [[0.0]])]})

    Network.__module__, Network.__qualname__ = "tfutil", "Network"
    module.Network = Network
    sys.modules["tfutil"] = module
    try:
        (tmp_path / "karras2018iclr-celebahq-1024x1024.pkl").write_bytes(
            pickle.dumps((Network(), Network(), Network()), protocol=4))
    finally:
        del sys.modules["tfutil"]
    with pytest.raises(CheckpointError, match="TensorFlow Progressive GAN.*G_paper.*GAN zoo"):
        gan_models.load_model(tmp_path / "karras2018iclr-celebahq-1024x1024.pkl")
