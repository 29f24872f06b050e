"""The Trainer: learning happens, resume is bit-exact, divergence stops cleanly, copies are
independent, and it trains when called from inference mode (as ComfyUI calls nodes)."""

from __future__ import annotations

import hashlib

import pytest
import torch

import gan_models
from gan_models import GanStudioError
from gan_models.training import (
    Trainer,
    TrainingDiverged,
    dataset_from_images,
    load_image_folder,
    make_recipe,
    read_state,
    write_snapshot,
)
from gan_models.training.shapes import write_shapes_folder

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py

TINY = {"resolution": 32, "z_dim": 16, "base_channels": 8, "max_channels": 32, "embed_dim": 8}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    folder = write_shapes_folder(tmp_path_factory.mktemp("data") / "shapes", per_class=6, size=32)
    return load_image_folder(folder, 32, xflip=True)


def tiny_trainer(dataset, recipe="cdcgan", batch=8, seed=0, **options):
    return Trainer(make_recipe(recipe, {**TINY, **options}, dataset.num_classes), dataset,
                   batch=batch, seed=seed)


def full_state(trainer: Trainer) -> dict[str, torch.Tensor]:
    tensors, _meta = trainer.state_dict(include_rng=False)
    return tensors


def assert_same_state(a: Trainer, b: Trainer) -> None:
    sa, sb = full_state(a), full_state(b)
    assert sa.keys() == sb.keys()
    different = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not different, f"differ: {different[:5]}"


def test_a_few_steps_move_the_losses_and_d_accuracy(shapes):
    trainer = tiny_trainer(shapes, lr_g=1e-3, lr_d=1e-3)
    seen = []
    trainer.train_steps(24, on_step=lambda t, m: seen.append(m))
    assert trainer.step == 24 and trainer.images_seen == 24 * 8 and len(seen) == 24
    first, last = seen[0], seen[-1]
    assert abs(first["loss_d"] - 2 * 0.6931) < 0.02  # untrained D: log(2) per term
    assert abs(last["loss_d"] - first["loss_d"]) > 0.1
    assert abs(last["loss_g"] - first["loss_g"]) > 0.05
    assert len({round(m["d_acc"], 4) for m in seen}) > 2
    assert trainer.history.as_dict()["loss_d"][-1] == pytest.approx(last["loss_d"])


@pytest.mark.parametrize("loss", ["hinge", "wgan-gp"])
def test_other_losses_and_diffaugment_train(shapes, loss):
    trainer = tiny_trainer(shapes, recipe="dcgan", loss=loss,
                           diffaugment="color,translation,cutout")
    metrics = trainer.train_steps(3)
    assert {"loss_d", "loss_g", "d_acc"} <= metrics.keys()
    assert ("gp" in metrics) == (loss == "wgan-gp")
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())


def test_save_and_resume_is_bit_exact(shapes, tmp_path):
    options = {"diffaugment": "color,translation,cutout", "ema_kimg": 0.05}
    straight = tiny_trainer(shapes, seed=5, **options)
    straight.train_steps(6)

    first = tiny_trainer(shapes, seed=5, **options)
    first.train_steps(3)
    paths = write_snapshot(tmp_path / "snaps", first)
    torch.manual_seed(123)
    expected_rng = torch.rand(3)
    del first
    tensors, meta = read_state(paths["state"])
    torch.manual_seed(999)  # scramble the global RNG; resume must restore it
    resumed = Trainer.from_state(tensors, meta, shapes, restore_global_rng=True)
    torch.manual_seed(123)
    assert torch.equal(torch.rand(3), expected_rng)
    assert resumed.step == 3
    resumed.train_steps(3)

    assert_same_state(straight, resumed)
    assert straight.history.as_dict() == resumed.history.as_dict()
    assert torch.equal(straight.sample_grid(), resumed.sample_grid())


def test_clones_are_independent_and_deterministic(shapes):
    base = tiny_trainer(shapes)
    base.train_steps(2)
    before = {k: v.clone() for k, v in full_state(base).items()}
    a, b = base.clone(), base.clone()
    a.train_steps(2)
    b.train_steps(2)
    assert_same_state(a, b)
    assert base.step == 2 and a.step == 4
    after = full_state(base)
    assert all(torch.equal(before[k], after[k]) for k in before)
    base.train_steps(2)  # the original continues exactly like its copies did
    assert_same_state(base, a)


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_a_nan_loss_stops_with_a_clear_error_and_keeps_the_last_snapshot(shapes, tmp_path):
    trainer = tiny_trainer(shapes, recipe="dcgan")
    trainer.train_steps(2)
    write_snapshot(tmp_path / "snaps", trainer)
    good = _digest(tmp_path / "snaps")
    for opt in trainer.optimizers.values():  # an absurd learning rate blows the weights up
        for group in opt.param_groups:
            group["lr"] = 1e30
    with pytest.raises(TrainingDiverged, match=r"diverged at step \d+: .*(nan|NaN|inf)"):
        trainer.train_steps(20)
    with pytest.raises(TrainingDiverged):
        write_snapshot(tmp_path / "snaps", trainer)
    with pytest.raises(TrainingDiverged):
        trainer.train_steps(1)
    assert _digest(tmp_path / "snaps") == good
    tensors, meta = read_state(tmp_path / "snaps" / "snapshot-00000002.state.safetensors")
    assert meta["step"] == 2 and all(torch.isfinite(t).all() for t in tensors.values()
                                     if t.is_floating_point())


def test_trains_when_called_under_inference_mode():
    with torch.inference_mode():  # how ComfyUI runs nodes: every input is an inference tensor
        images = torch.rand(6, 32, 32, 3)
        dataset = dataset_from_images(images, 32)
        trainer = tiny_trainer(dataset, recipe="dcgan")
        metrics = trainer.train_steps(2)
        model = trainer.export_model()
        grid = trainer.sample_grid(4)
    assert trainer.step == 2 and torch.isfinite(torch.tensor(metrics["loss_d"]))
    assert grid.shape[-1] == 3 and model.resolution == 32


def test_exported_model_saves_loads_and_fine_tunes(shapes, tmp_path):
    trainer = tiny_trainer(shapes)
    trainer.train_steps(2)
    model = trainer.export_model()
    assert model.class_names == ["circle", "square", "triangle"]
    assert model.metadata["provenance"]["steps"] == 2
    ema = trainer.ema.module.state_dict()
    assert all(torch.equal(v, ema[k]) for k, v in model.generator.state_dict().items())
    path = gan_models.save_model(model, tmp_path / "m.safetensors")
    loaded = gan_models.load_model(path)
    assert loaded.num_classes == 3 and set(loaded.networks) == {"generator", "discriminator"}
    assert loaded.metadata["provenance"]["recipe"] == "cdcgan"

    tuned = Trainer(make_recipe("cdcgan", {"resolution": 32}, 3), shapes, batch=8,
                    init_model=loaded)
    assert tuned.recipe.options["base_channels"] == TINY["base_channels"]  # from the model
    start = tuned.nets["generator"].state_dict()
    assert all(torch.equal(v, start[k]) for k, v in loaded.generator.state_dict().items())
    tuned.train_steps(1)
    with pytest.raises(GanStudioError, match="classes"):
        Trainer(make_recipe("dcgan", TINY), shapes, batch=8, init_model=loaded)


def test_pictures_of_the_run(shapes):
    trainer = tiny_trainer(shapes)
    empty_curve = trainer.loss_curve(320, 200)
    trainer.train_steps(3)
    grid, curve = trainer.sample_grid(), trainer.loss_curve(320, 200)
    assert grid.shape == (8 * 34 + 2, 8 * 34 + 2, 3) and 0 <= grid.min() and grid.max() <= 1
    assert curve.shape == (200, 320, 3) and not torch.equal(curve, empty_curve)


def test_bad_settings_are_explained(shapes):
    with pytest.raises(GanStudioError, match="class-conditional"):
        make_recipe("cdcgan", TINY, num_classes=0)
    with pytest.raises(GanStudioError, match="unknown recipe"):
        make_recipe("biggan-deep", TINY)
    with pytest.raises(GanStudioError, match="resolution"):
        make_recipe("dcgan", {**TINY, "resolution": 48})
    with pytest.raises(GanStudioError, match="unknown option"):
        make_recipe("dcgan", {"learning_rate": 1})
    with pytest.raises(GanStudioError, match="multiple"):
        Trainer(make_recipe("dcgan", TINY), shapes, batch=8, batch_gpu=3)
