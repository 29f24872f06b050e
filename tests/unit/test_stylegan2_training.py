"""The stylegan2-ada recipe: training moves the losses, the EMA and w_avg; lazy R1 runs on its
interval; resume is bit-exact; fine-tuning an NVlabs pickle with frozen D layers; refusals;
the CLI; and the GAN Trainer node lists the recipe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from fixtures_foreign import TINY_D_KW as D_KW
from fixtures_foreign import TINY_G_KW as G_KW
from fixtures_foreign import nvlabs_network_dict, write_nvlabs_pickle

import gan_models
from gan_models import GanStudioError
from gan_models.__main__ import main
from gan_models.training import Trainer, load_image_folder, make_recipe, read_state, write_snapshot
from gan_models.training.shapes import write_shapes_folder

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py

TINY = {"resolution": 16, "z_dim": 16, "w_dim": 16, "base_channels": 8, "max_channels": 16}


@pytest.fixture(scope="module")
def classes(tmp_path_factory):
    folder = write_shapes_folder(tmp_path_factory.mktemp("data") / "classes", per_class=4,
                                 size=16)
    return load_image_folder(folder, 16, xflip=True)


@pytest.fixture(scope="module")
def flat(tmp_path_factory):
    folder = write_shapes_folder(tmp_path_factory.mktemp("data") / "flat", per_class=4,
                                 size=16, conditional=False)
    return load_image_folder(folder, 16)


def trainer(dataset, batch=8, seed=0, init=None, **options):
    recipe = make_recipe("stylegan2-ada", {**TINY, **options}, dataset.num_classes)
    return Trainer(recipe, dataset, batch=batch, seed=seed, init_model=init)


def state(t: Trainer) -> dict[str, torch.Tensor]:
    return t.state_dict(include_rng=False)[0]


def assert_same_state(a: Trainer, b: Trainer) -> None:
    sa, sb = state(a), state(b)
    assert sa.keys() == sb.keys()
    # History columns hold NaN on steps without that metric (e.g. R1 every k steps).
    different = [k for k in sa if not (sa[k].shape == sb[k].shape
                                       and torch.allclose(sa[k], sb[k], rtol=0, atol=0,
                                                          equal_nan=True))]
    assert not different, f"differ: {different[:5]}"


def test_training_moves_losses_ema_and_w_avg(classes):
    t = trainer(classes, lr_g=0.005, lr_d=0.005)
    assert t.recipe.num_classes == 3 and t.nets["generator"].c_dim == 3
    g0 = {k: v.clone() for k, v in t.ema.module.state_dict().items()}
    seen = []
    t.train_steps(8, on_step=lambda _t, m: seen.append(m))
    assert abs(seen[-1]["loss_d"] - seen[0]["loss_d"]) > 0.02
    assert abs(seen[-1]["loss_g"] - seen[0]["loss_g"]) > 0.02
    assert all(m["ada_p"] == 0.0 for m in seen)  # r_t is measured over 4 steps first
    w_avg = t.nets["generator"].mapping.w_avg
    assert w_avg.abs().sum() > 0  # tracked from zero through update_emas
    ema = t.ema.module.state_dict()
    assert torch.equal(ema["mapping.w_avg"], w_avg)
    moved = [k for k in g0 if k.endswith("weight") and not torch.equal(g0[k], ema[k])]
    assert moved
    model = t.export_model()
    assert model.architecture == "stylegan2" and model.class_names == ["circle", "square",
                                                                       "triangle"]
    assert model.has_mapping and model.num_classes == 3
    batch = model.sample_latents(0, 4)
    assert model.synthesize(batch).shape == (4, 3, 16, 16)


def test_r1_runs_on_its_interval_and_adam_is_adjusted_for_it(flat):
    t = trainer(flat, r1_interval=3, style_mixing=0.0)
    lrs = {k: o.param_groups[0]["lr"] for k, o in t.optimizers.items()}
    assert lrs == {"G": pytest.approx(0.0025), "D": pytest.approx(0.0025 * 3 / 4)}
    assert t.optimizers["D"].param_groups[0]["betas"][1] == pytest.approx(0.99 ** 0.75)
    steps_with_r1 = []
    t.train_steps(7, on_step=lambda tr, m: "r1" in m and steps_with_r1.append(tr.step - 1))
    assert steps_with_r1 == [0, 3, 6]
    assert t.recipe.r1_gamma(8) == pytest.approx(0.0002 * 16 ** 2 / 8)  # NVlabs' auto gamma
    off = trainer(flat, r1_gamma=0.0)
    assert [p.name for p in off.recipe.phases()] == ["G", "D"]


def test_resume_is_bit_exact_with_ada_and_path_length(classes, tmp_path):
    options = {"augment_p": 0.3, "ada_interval": 2, "ada_kimg": 0.5, "pl_weight": 2.0,
               "pl_interval": 2, "r1_interval": 2, "ema_kimg": 0.05}
    straight = trainer(classes, seed=5, **options)
    straight.train_steps(6)
    assert straight.recipe.ada.p != 0.3  # the controller moved p

    first = trainer(classes, seed=5, **options)
    first.train_steps(3)
    paths = write_snapshot(tmp_path / "snaps", first)
    del first
    tensors, meta = read_state(paths["state"])
    torch.manual_seed(999)  # training noise must not depend on the global RNG
    resumed = Trainer.from_state(tensors, meta, classes)
    resumed.train_steps(3)

    assert_same_state(straight, resumed)
    assert straight.recipe.ada.p == resumed.recipe.ada.p
    assert torch.equal(straight.recipe.pl_mean, resumed.recipe.pl_mean)


def test_clones_train_identically(flat):
    base = trainer(flat, augment_p=0.5, augment="fixed")
    base.train_steps(1)
    a, b = base.clone(), base.clone()
    a.train_steps(2)
    b.train_steps(2)
    assert_same_state(a, b)


def nvlabs_pickle(path: Path, with_d: bool = True, c_dim: int = 0) -> Path:
    torch.manual_seed(4)
    model = gan_models.GenerativeModel.create(
        "stylegan2", {"generator": {**G_KW, "c_dim": c_dim},
                      "discriminator": {**D_KW, "c_dim": c_dim}})
    d = model.networks["discriminator"] if with_d else None
    data = nvlabs_network_dict(model.generator, {**G_KW, "c_dim": c_dim}, d,
                               {**D_KW, "c_dim": c_dim} if with_d else None)
    return write_nvlabs_pickle(path, data)


def test_fine_tunes_an_nvlabs_pickle_with_frozen_d_blocks(flat, tmp_path):
    source = gan_models.load_model(nvlabs_pickle(tmp_path / "network-snapshot.pkl"))
    assert "discriminator" in source.networks
    t = trainer(flat, init=source, freeze_d=1, base_channels=64)  # the model's sizes win
    assert t.recipe.options["z_dim"] == 8 and t.nets["generator"].z_dim == 8
    D = t.nets["discriminator"]
    frozen = {n for n, _ in D.named_buffers() if n.startswith("b16.")
              and n.endswith(("weight", "bias"))}
    assert frozen == {"b16.fromrgb.weight", "b16.fromrgb.bias", "b16.conv0.weight",
                      "b16.conv0.bias", "b16.conv1.weight", "b16.conv1.bias", "b16.skip.weight"}
    before = {k: v.clone() for k, v in D.state_dict().items()}
    g_before = t.nets["generator"].state_dict()["synthesis.b16.conv1.weight"].clone()
    t.train_steps(3)
    after = D.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in frozen)
    assert not torch.equal(before["b8.conv0.weight"], after["b8.conv0.weight"])
    assert not torch.equal(g_before, t.nets["generator"].state_dict()["synthesis.b16.conv1.weight"])
    model = t.export_model()
    assert model.config["discriminator"]["block_kwargs"]["freeze_layers"] == 4
    assert model.config["generator"]["channel_base"] == 128
    # Its snapshots resume like any run: the adopted config travels in the options.
    paths = write_snapshot(tmp_path / "snaps", t)
    resumed = Trainer.from_state(*read_state(paths["state"]), flat)
    assert_same_state(t, resumed)


def test_fine_tunes_a_generator_only_pickle_with_a_fresh_discriminator(flat, tmp_path):
    source = gan_models.load_model(nvlabs_pickle(tmp_path / "g_only.pkl", with_d=False))
    assert "discriminator" not in source.networks
    t = trainer(flat, init=source)
    assert t.nets["discriminator"].img_resolution == 16
    torch.testing.assert_close(t.ema.module.state_dict()["synthesis.b16.conv1.weight"],
                               source.generator.state_dict()["synthesis.b16.conv1.weight"])
    metrics = t.train_steps(1)
    assert {"loss_g", "loss_d", "r1"} <= metrics.keys()


def test_refusals_are_clear(classes, flat, tmp_path):
    conditional = gan_models.load_model(nvlabs_pickle(tmp_path / "cond.pkl", c_dim=2))
    with pytest.raises(GanStudioError, match="model has 2 classes"):
        trainer(flat, init=conditional)
    unconditional = gan_models.load_model(nvlabs_pickle(tmp_path / "uncond.pkl"))
    with pytest.raises(GanStudioError, match="conditional=false"):
        trainer(classes, init=unconditional)
    trainer(classes, init=unconditional, conditional=False).train_steps(1)  # classes ignored
    with pytest.raises(GanStudioError, match="model is 16px but the run asks for 32px"):
        trainer(flat, init=unconditional, resolution=32)
    dcgan = gan_models.GenerativeModel.create(
        "dcgan", {"resolution": 32, "z_dim": 8, "base_channels": 8, "max_channels": 16,
                  "embed_dim": 8, "num_classes": 0})
    with pytest.raises(GanStudioError, match="fine-tunes stylegan2 models"):
        trainer(flat, init=dcgan)
    with pytest.raises(GanStudioError, match="freeze_d = 3 but a 16px discriminator has 2"):
        trainer(flat, freeze_d=3)
    with pytest.raises(GanStudioError, match="loss must be one of"):
        trainer(flat, loss="wgan-gp")
    with pytest.raises(GanStudioError, match="multiple of it; 6 is not"):
        trainer(flat, batch=6).train_steps(1)


def test_cli_trains_and_writes_a_snapshot(tmp_path):
    data = write_shapes_folder(tmp_path / "shapes", per_class=2, size=16)
    out = tmp_path / "run"
    code = main(["train", "--data", str(data), "--out", str(out), "--recipe", "stylegan2-ada",
                 "--resolution", "16", "--z-dim", "16", "--base-channels", "8",
                 "--max-channels", "16", "--batch", "4", "--kimg", "0.008",
                 "--snap-every", "2", "--log-every", "1", "--option", "w_dim=16"])
    assert code == 0
    latest = json.loads((out / "snapshots" / "latest.json").read_text())
    assert latest["step"] == 2
    model = gan_models.load_model(out / "snapshots" / latest["model"])
    assert model.architecture == "stylegan2" and model.num_classes == 3
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2] and "ada_p" in lines[0]


def test_the_gan_trainer_node_lists_the_recipe():
    # The options the GAN Trainer node sets (listed in the library, beside its recipe menu).
    from gan_models.training.options import NODE_OPTIONS as wanted
    from gan_models.training.recipes import RECIPES

    assert wanted <= set(RECIPES["stylegan2-ada"].DEFAULTS)
