"""VAE family: architecture, native format, loss pieces, image preprocessing, latent
arithmetic, and a short real training run on procedural shapes."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import gan_models
from gan_models import CapabilityError, CheckpointError, GanStudioError, LatentBatch
from gan_models.training import (
    ImageDataset,
    Trainer,
    make_recipe,
    vae_recipes,  # noqa: F401  (registers the recipes)
)
from gan_models.training.shapes import SHAPES, draw_shape
from gan_models.vae_losses import (
    capacity_at,
    capacity_loss,
    kl_divergence,
    kl_per_dim,
    kl_weight,
    psnr,
    reconstruction_loss,
)
from gan_models.vae_ops import (
    class_weights,
    encode_images,
    latent_arithmetic,
    reconstruct,
    reconstruction_grid,
    to_model_input,
    with_mask_alpha,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py

TINY = {"resolution": 16, "z_dim": 8, "base_channels": 16, "max_channels": 32, "res_blocks": 0}


def shapes(n: int, seed: int, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 `[n, 3, size, size]` procedural shapes and their class indices."""
    rng = random.Random(seed)
    arr = np.stack([np.asarray(draw_shape(SHAPES[i % 3], size, rng)) for i in range(n)])
    return (torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous(),
            torch.arange(n) % len(SHAPES))


def as_model_input(images_u8: torch.Tensor) -> torch.Tensor:
    return images_u8.float() / 127.5 - 1


def tiny_vae(num_classes: int = 0, seed: int = 0, **overrides) -> gan_models.GenerativeModel:
    torch.manual_seed(seed)
    names = list(SHAPES) if num_classes == 3 else None
    return gan_models.GenerativeModel.create(
        "vae", {**TINY, "num_classes": num_classes, **overrides}, class_names=names)


# --- architecture and format ----------------------------------------------------------------
@pytest.mark.parametrize("num_classes", [0, 3])
def test_save_load_round_trip(tmp_path, num_classes):
    model = tiny_vae(num_classes, res_blocks=1)
    path = gan_models.save_model(model, tmp_path / "vae.safetensors")
    loaded = gan_models.load_model(path)
    assert loaded.architecture == "vae" and loaded.config == model.config
    assert loaded.can_encode and loaded.num_classes == num_classes
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    labels = torch.eye(3)[[0, 1, 2]] if num_classes else None
    a, b = encode_images(model, x, labels), encode_images(loaded, x, labels)
    assert torch.equal(a.values, b.values)
    assert torch.equal(model.synthesize(a), loaded.synthesize(b))


def test_generator_contract_and_capabilities():
    model = tiny_vae()
    caps = model.capabilities()
    assert caps["can_encode"] and caps["z_dim"] == 8 and caps["resolution"] == 16
    images = model.synthesize(model.sample_latents(seed=1, batch_size=2))
    assert images.shape == (2, 3, 16, 16)
    assert images.min() >= -1 and images.max() <= 1


def test_gray_and_rgba_models_and_all_resolutions():
    for res in (16, 32, 64, 128, 256):
        nets = gan_models.registry.build("vae", {**TINY, "resolution": res})
        assert nets["generator"](torch.zeros(1, 8)).shape == (1, 3, res, res)
    for ch in (1, 4):
        model = tiny_vae(channels=ch)
        x = torch.rand(2, ch, 16, 16) * 2 - 1
        assert model.synthesize(encode_images(model, x)).shape == (2, ch, 16, 16)


def test_bad_configs_are_refused():
    with pytest.raises(CheckpointError, match="unknown VAE option"):
        gan_models.registry.build("vae", {"resolution": 16, "latent": 3})
    with pytest.raises(CheckpointError, match="resolution"):
        gan_models.registry.build("vae", {"resolution": 48})
    with pytest.raises(CheckpointError, match="channels"):
        gan_models.registry.build("vae", {"channels": 2})


def test_mixed_classes_change_the_decoder_smoothly():
    model = tiny_vae(num_classes=3)
    torch.nn.init.normal_(model.generator.embed.weight, 0, 2.0)
    z = torch.zeros(3, 8)
    mix = torch.tensor([[1.0, 0, 0], [0.5, 0.5, 0], [0, 1.0, 0]])
    out = model.synthesize(LatentBatch(values=z, labels=mix))
    ends = (out[0] - out[2]).abs().mean()
    assert ends > 0.01
    assert (out[1] - out[0]).abs().mean() < ends and (out[1] - out[2]).abs().mean() < ends


# --- loss pieces -------------------------------------------------------------------------------
def test_kl_is_zero_for_the_prior_and_free_bits_hold_a_floor():
    mean, logvar = torch.zeros(4, 6), torch.zeros(4, 6)
    assert float(kl_divergence(mean, logvar)) == pytest.approx(0.0)
    assert float(kl_divergence(mean, logvar, free_bits=0.5)) == pytest.approx(3.0)
    mean = torch.ones(4, 6)
    assert float(kl_divergence(mean, logvar)) == pytest.approx(3.0)  # 0.5 * 1 per dim
    assert kl_per_dim(mean, logvar).shape == (6,)


def test_schedules_and_capacity():
    assert kl_weight(0, "linear", 100) == 0 and kl_weight(50, "linear", 100) == 0.5
    assert kl_weight(500, "linear", 100) == 1.0 and kl_weight(3, "constant", 100) == 1.0
    # 2 cycles over 100 steps, ramp over the first half of each
    assert [kl_weight(s, "cyclical", 100, cycles=2) for s in (0, 10, 25, 40, 50, 60)] == \
        pytest.approx([0.0, 0.4, 1.0, 1.0, 0.0, 0.4])
    assert capacity_at(50, 20.0, 100) == 10.0 and capacity_at(500, 20.0, 100) == 20.0
    assert float(capacity_loss(torch.tensor(12.0), 10.0, 100.0)) == pytest.approx(200.0)
    with pytest.raises(ValueError, match="schedule"):
        kl_weight(0, "cosine", 10)


def test_reconstruction_losses_and_psnr():
    a, b = torch.zeros(2, 3, 4, 4), torch.full((2, 3, 4, 4), 0.5)
    assert float(reconstruction_loss(a, b, "mse")) == pytest.approx(48 * 0.25)
    assert float(reconstruction_loss(a, b, "l1", "mean")) == pytest.approx(0.5)
    assert float(psnr(a, b)) == pytest.approx(10 * np.log10(4 / 0.25))
    with pytest.raises(ValueError, match="reconstruction loss"):
        reconstruction_loss(a, b, "huber")


# --- image preprocessing ------------------------------------------------------------------
def test_channels_are_converted_for_the_model():
    rgb = torch.rand(2, 16, 16, 3)
    x, note = to_model_input(rgb, 16, 3)
    assert note is None and torch.allclose(x, rgb.permute(0, 3, 1, 2) * 2 - 1)
    gray, _ = to_model_input(rgb, 16, 1)
    luma = (rgb * torch.tensor([0.299, 0.587, 0.114])).sum(-1)
    assert torch.allclose(gray[:, 0], luma * 2 - 1, atol=1e-6)
    mask_batch, _ = to_model_input(torch.rand(2, 16, 16), 16, 3)  # [B, H, W] gray
    assert mask_batch.shape == (2, 3, 16, 16)
    assert torch.equal(mask_batch[:, 0], mask_batch[:, 2])
    rgba = torch.cat([torch.zeros(1, 16, 16, 3), torch.zeros(1, 16, 16, 1)], -1)
    flat, _ = to_model_input(rgba, 16, 3)  # fully transparent black -> the white background
    assert torch.allclose(flat, torch.ones_like(flat))
    kept, _ = to_model_input(rgba, 16, 4)
    assert kept.shape == (1, 4, 16, 16) and float(kept[:, 3].max()) == -1.0
    opaque, _ = to_model_input(rgb, 16, 4)
    assert torch.equal(opaque[:, 3], torch.ones(2, 16, 16))
    la = torch.cat([torch.full((1, 16, 16, 1), 0.2), torch.ones(1, 16, 16, 1)], -1)
    assert torch.allclose(to_model_input(la, 16, 3)[0], torch.full((1, 3, 16, 16), -0.6))


def test_mask_becomes_alpha():
    images = torch.zeros(2, 16, 16, 3)
    mask = torch.zeros(1, 16, 16)
    mask[:, :8] = 1.0  # top half transparent
    x, _ = to_model_input(with_mask_alpha(images, mask), 16, 3)
    assert torch.allclose(x[:, :, :8], torch.ones(2, 3, 8, 16))
    assert torch.allclose(x[:, :, 8:], -torch.ones(2, 3, 8, 16))
    blank = with_mask_alpha(images, torch.zeros(1, 64, 64))  # Load Image's blank mask
    assert blank.shape == (2, 16, 16, 4) and bool((blank[..., 3] == 1).all())
    with pytest.raises(GanStudioError, match="does not fit"):
        with_mask_alpha(images, torch.zeros(3, 16, 16))


def test_other_sizes_are_resized_or_refused():
    wide = torch.rand(1, 20, 40, 3)
    with pytest.raises(GanStudioError, match="40x20.*16x16"):
        to_model_input(wide, 16, 3, "refuse")
    for mode in ("crop", "pad", "stretch"):
        x, note = to_model_input(wide, 16, 3, mode)
        assert x.shape == (1, 3, 16, 16) and "40x20 to 16x16" in note
    padded, _ = to_model_input(torch.zeros(1, 20, 40, 3), 16, 3, "pad")
    assert float(padded[0, :, 0].min()) == 1.0 and float(padded[0, :, 8].max()) == -1.0
    with pytest.raises(GanStudioError, match="1 to 4 channels"):
        to_model_input(torch.rand(1, 16, 16, 5), 16, 3)


def test_class_text_cycles_and_mixes():
    model = tiny_vae(num_classes=3)
    rows = class_weights(model, "circle, 2", 3)
    assert torch.equal(rows, torch.eye(3)[[0, 2, 0]])
    mixed = class_weights(model, "square:3 + triangle:1", 2)
    assert torch.allclose(mixed, torch.tensor([[0, 0.75, 0.25]] * 2))
    with pytest.raises(GanStudioError, match="class-conditional"):
        class_weights(model, " ", 2)
    with pytest.raises(GanStudioError, match="hexagon"):
        class_weights(model, "hexagon", 1)
    assert class_weights(tiny_vae(), "", 2) is None
    with pytest.raises(CapabilityError, match="unconditional"):
        class_weights(tiny_vae(), "circle", 2)


def test_encoding_needs_an_encoder_and_classes():
    torch.manual_seed(0)
    dcgan = gan_models.GenerativeModel.create(
        "dcgan", {"resolution": 32, "z_dim": 8, "base_channels": 8, "max_channels": 16})
    with pytest.raises(CapabilityError, match="dcgan 32px cannot encode"):
        encode_images(dcgan, torch.zeros(1, 3, 32, 32))
    with pytest.raises(GanStudioError, match="class-conditional"):
        encode_images(tiny_vae(num_classes=3), torch.zeros(1, 3, 16, 16))


def test_sampled_encoding_is_seeded_per_image():
    model = tiny_vae()
    x = torch.rand(5, 3, 16, 16) * 2 - 1
    mean = encode_images(model, x).values
    one = encode_images(model, x, sample=True, seed=7, chunk_size=64).values
    chunked = encode_images(model, x, sample=True, seed=7, chunk_size=2).values
    assert torch.allclose(one, chunked, atol=1e-6)
    assert not torch.allclose(one, mean)
    later = encode_images(model, x[1:], sample=True, seed=8).values  # image i uses seed + i
    assert torch.allclose(later, one[1:], atol=1e-6)


def test_reconstruction_grid_places_pairs():
    inputs, recons = torch.zeros(5, 4, 4, 3), torch.full((5, 4, 4, 3), 0.5)
    grid = reconstruction_grid(inputs, recons, pairs_per_row=2, pad=1)
    # 3 rows of (4 + gap 3) + 3; 2 pairs of (4 + 1 + 4) + gaps of 3
    assert grid.shape == (3 * 7 + 3, 2 * 12 + 3, 3)
    assert float(grid[3, 3, 0]) == 0.0 and float(grid[3, 3 + 5, 0]) == 0.5
    assert float(grid[3, 3 + 4, 0]) == 1.0  # the thin white gap inside a pair


# --- latent arithmetic ----------------------------------------------------------------------
def test_arithmetic_broadcasts_and_combines_classes():
    a = LatentBatch(values=torch.ones(3, 4), labels=torch.eye(3)[[0, 0, 0]], model_id="m")
    b = LatentBatch(values=torch.full((1, 4), 2.0), labels=torch.eye(3)[[0]], model_id="m")
    c = LatentBatch(values=torch.full((1, 4), 5.0), labels=torch.eye(3)[[2]], model_id="m")
    out = latent_arithmetic(a, b, c, 1.0, 0.5, 2.0)
    assert torch.allclose(out.values, torch.full((3, 4), 1 - 1 + 10.0))
    # class: 1 * circle - 0.5 * circle + 2 * triangle -> (0.5, 0, 2) / 2.5
    assert torch.allclose(out.labels, torch.tensor([[0.2, 0.0, 0.8]] * 3))
    assert out.model_id == "m" and out.seeds is None and out.space == "z"
    only_a = latent_arithmetic(a, weight_a=2.0)
    assert torch.equal(only_a.values, 2 * a.values) and torch.equal(only_a.labels, a.labels)
    w_plus = LatentBatch(values=torch.ones(2, 3, 4), space="w+")
    assert latent_arithmetic(w_plus, w_plus, w_plus).values.shape == (2, 3, 4)


def test_arithmetic_refuses_what_cannot_mix():
    a = LatentBatch(values=torch.ones(3, 4), model_id="m")
    with pytest.raises(GanStudioError, match="batch sizes"):
        latent_arithmetic(a, LatentBatch(values=torch.ones(2, 4)))
    with pytest.raises(GanStudioError, match="different shapes"):
        latent_arithmetic(a, LatentBatch(values=torch.ones(3, 5)))
    with pytest.raises(GanStudioError, match="different models"):
        latent_arithmetic(a, LatentBatch(values=torch.ones(3, 4), model_id="other"))
    with pytest.raises(GanStudioError, match="z space with latents in w"):
        latent_arithmetic(a, LatentBatch(values=torch.ones(3, 4), space="w"))
    labelled = LatentBatch(values=torch.ones(1, 4), labels=torch.eye(2)[[0]])
    with pytest.raises(GanStudioError, match="cancel out"):
        latent_arithmetic(labelled, labelled)


# --- a real (short) training run -------------------------------------------------------------
@pytest.fixture(scope="module")
def trained():
    """A tiny VAE trained 300 steps on procedural shapes with the `vae` recipe, and the
    untrained model it started from."""
    images, _ = shapes(256, seed=0)
    recipe = make_recipe("vae", {**TINY, "kl_warmup_steps": 100})
    trainer = Trainer(recipe, ImageDataset(images=images), batch=32, seed=0)
    untrained = trainer.export_model()
    trainer.train_steps(300)
    return trainer, untrained, trainer.export_model()


def test_training_lowers_reconstruction_error_on_held_out_images(trained):
    _, untrained, model = trained
    test = as_model_input(shapes(64, seed=1)[0])

    def error(m):
        return float((reconstruct(m, test) * 2 - 1 - test.permute(0, 2, 3, 1)).pow(2).mean())

    before, after = error(untrained), error(model)
    assert after < 0.3 * before, (before, after)


def test_encoder_recovers_latents_of_decoded_images(trained):
    _, untrained, model = trained
    z = torch.randn(64, 8, generator=torch.Generator().manual_seed(3))

    def cycle_error(m):
        images = m.synthesize(LatentBatch(values=z))
        back = encode_images(m, images).values
        return float((back - z).pow(2).mean() / z.pow(2).mean())

    assert cycle_error(untrained) > 0.8
    assert cycle_error(model) < 0.5


def test_trained_model_round_trips_and_records_its_recipe(trained, tmp_path):
    trainer, _, model = trained
    loaded = gan_models.load_model(gan_models.save_model(model, tmp_path / "t.safetensors"))
    assert loaded.metadata["provenance"]["recipe"] == "vae"
    assert loaded.metadata["provenance"]["steps"] == 300
    grids = trainer.recipe.preview_grids(trainer, count=8)
    assert grids["samples"].shape[-1] == 3 and grids["reconstructions"].shape[-1] == 3
    assert 0 <= float(grids["reconstructions"].min()) <= float(grids["reconstructions"].max()) <= 1


def test_recipes_cvae_beta_and_capacity_train_a_few_steps():
    images, labels = shapes(48, seed=2)
    data = ImageDataset(images=images, labels=labels, class_names=SHAPES)
    cvae = Trainer(make_recipe("cvae", {**TINY, "kl_schedule": "cyclical"}, 3), data, batch=16)
    metrics = cvae.train_steps(3)
    assert {"loss", "recon", "kl", "kl_weight", "psnr"} <= set(metrics)
    model = cvae.export_model()
    assert model.num_classes == 3 and model.class_names == list(SHAPES)
    beta = make_recipe("beta_vae", TINY)
    assert beta.options["beta"] == 4.0
    capped = Trainer(make_recipe("vae", {**TINY, "capacity_max": 5.0}),
                     ImageDataset(images=images), batch=16)
    assert "capacity" in capped.train_steps(2)
    with pytest.raises(GanStudioError, match="needs a dataset with classes"):
        make_recipe("cvae", TINY, 0)
    with pytest.raises(GanStudioError, match="recon_loss"):
        make_recipe("vae", {**TINY, "recon_loss": "bce"})
    with pytest.raises(GanStudioError, match="kl_schedule"):
        make_recipe("vae", {**TINY, "kl_schedule": "sometimes"})
