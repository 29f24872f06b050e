"""VQ-VAE family: quantiser, codebook bookkeeping, native format, and a short real training
run whose codebook must stay in use (no collapse)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import gan_models
from gan_models import CheckpointError, LatentBatch
from gan_models.architectures.vqvae import Quantizer, codebook_usage
from gan_models.training import (
    ImageDataset,
    Trainer,
    make_recipe,
    vae_recipes,  # noqa: F401  (registers the recipes)
)
from gan_models.training.shapes import SHAPES, draw_shape
from gan_models.vae_losses import vq_losses
from gan_models.vae_ops import encode_images, reconstruct

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py

TINY = {"resolution": 16, "base_channels": 16, "max_channels": 32, "res_blocks": 0,
        "codebook_size": 32, "code_dim": 4, "downsample": 4}


def shapes(n: int, seed: int, size: int = 16) -> torch.Tensor:
    rng = random.Random(seed)
    arr = np.stack([np.asarray(draw_shape(SHAPES[i % 3], size, rng)) for i in range(n)])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def tiny_vqvae(**overrides) -> gan_models.GenerativeModel:
    torch.manual_seed(0)
    return gan_models.GenerativeModel.create("vqvae", {**TINY, **overrides})


# --- architecture and format ----------------------------------------------------------------
@pytest.mark.parametrize("update", ["ema", "loss"])
def test_save_load_round_trip_keeps_the_codebook(tmp_path, update):
    model = tiny_vqvae(codebook_update=update)
    q = model.generator.quantizer
    q.update(torch.randn(2, 4, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long),
             torch.Generator().manual_seed(0))  # data-seeded codebook, non-default buffers
    loaded = gan_models.load_model(gan_models.save_model(model, tmp_path / "vq.safetensors"))
    assert loaded.architecture == "vqvae" and loaded.config == model.config
    lq = loaded.generator.quantizer
    assert torch.equal(lq.codebook, q.codebook) and float(lq.initialized) == 1.0
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    a, b = encode_images(model, x), encode_images(loaded, x)
    assert torch.equal(a.values, b.values)
    assert torch.equal(model.synthesize(a), loaded.synthesize(b))


def test_latents_are_flat_pre_quantisation_maps():
    model = tiny_vqvae()
    assert model.z_dim == 4 * 4 * 4 and model.can_encode
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    latents = encode_images(model, x, sample=True, seed=1)  # deterministic encoder: no noise
    assert latents.values.shape == (3, 64)
    assert torch.equal(latents.values, encode_images(model, x).values)
    # any flat vector decodes (snapped to the codebook), so blends between images work
    blend = LatentBatch(values=0.5 * latents.values[:1] + 0.5 * latents.values[1:2])
    assert model.synthesize(blend).shape == (1, 3, 16, 16)
    assert model.synthesize(model.sample_latents(seed=0, batch_size=2)).shape == (2, 3, 16, 16)


def test_bad_configs_are_refused():
    with pytest.raises(CheckpointError, match="codebook_update"):
        gan_models.registry.build("vqvae", {**TINY, "codebook_update": "kmeans"})
    with pytest.raises(CheckpointError, match="downsample"):
        gan_models.registry.build("vqvae", {**TINY, "downsample": 16})
    with pytest.raises(CheckpointError, match="unconditional"):
        gan_models.registry.build("vqvae", {**TINY, "num_classes": 3})


# --- quantiser ---------------------------------------------------------------------------------
def test_quantiser_picks_the_nearest_code_and_passes_gradients_straight_through():
    q = Quantizer(10, 3, update="loss")
    z_e = torch.randn(2, 3, 4, 4, requires_grad=True)
    z_st, z_q, codes = q(z_e)
    flat = z_e.detach().permute(0, 2, 3, 1).reshape(-1, 3)
    assert torch.equal(codes.flatten(), torch.cdist(flat, q.codebook.detach()).argmin(1))
    assert torch.allclose(z_st, z_q)
    z_st.sum().backward()
    assert torch.equal(z_e.grad, torch.ones_like(z_e))  # identity gradient to the encoder
    codebook_loss, commitment = vq_losses(z_e, z_q)
    codebook_loss.backward()
    assert q.codebook.grad is not None and float(q.codebook.grad.abs().sum()) > 0
    assert float(commitment.detach()) == pytest.approx(float(codebook_loss.detach()))


def test_first_update_seeds_the_codebook_from_data_then_ema_moves_codes_to_their_means():
    q = Quantizer(4, 2, update="ema", decay=0.5, dead_code_threshold=0.0)
    data = torch.tensor([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0], [9.0, 9.0]])
    z_e = data.t().reshape(1, 2, 2, 2)
    gen = torch.Generator().manual_seed(0)
    q.update(z_e, torch.zeros(1, 2, 2, dtype=torch.long), gen)
    assert float(q.initialized) == 1.0
    assert all(any(torch.equal(row, d) for d in data) for row in q.codebook)  # rows of the batch
    q.codebook.copy_(torch.tensor([[0.0, 0.0], [10.0, 10.0], [20.0, 20.0], [30.0, 30.0]]))
    q.code_sum.copy_(q.codebook * q.usage[:, None])
    codes = torch.tensor([0, 0, 1, 1]).view(1, 2, 2)
    q.update(z_e, codes, gen)
    # usage 0.5 * 1 + 0.5 * 2 = 1.5 for codes 0, 1; code 0 sum 0.5 * 0 + 0.5 * 1 = 0.5
    assert q.usage.tolist() == pytest.approx([1.5, 1.5, 0.5, 0.5])
    assert q.codebook[0].tolist() == pytest.approx([0.5 / 1.5] * 2, rel=1e-3)
    # code 1: sum 0.5 * 10 (its old sum) + 0.5 * (5 + 9), over usage 1.5
    assert q.codebook[1].tolist() == pytest.approx([(0.5 * 10 + 0.5 * 14) / 1.5] * 2, rel=1e-3)


def test_dead_codes_restart_on_encoder_outputs():
    q = Quantizer(8, 2, update="loss", decay=0.5, dead_code_threshold=1.0)
    z_e = torch.randn(1, 2, 4, 4)
    gen = torch.Generator().manual_seed(0)
    q.update(z_e, torch.zeros(1, 4, 4, dtype=torch.long), gen)  # seeds from data
    with torch.no_grad():
        q.codebook.fill_(100.0)  # far from every input: nothing uses them
    q.update(z_e, torch.zeros(1, 4, 4, dtype=torch.long), gen)
    flat = z_e.permute(0, 2, 3, 1).reshape(-1, 2)
    codebook = q.codebook.detach()
    restarted = [i for i in range(8) if float(codebook[i, 0]) != 100.0]
    assert restarted == list(range(1, 8))  # code 0 was used 16 times, the rest were dead
    assert all(any(torch.equal(codebook[i], f) for f in flat) for i in restarted)


def test_codebook_usage_report():
    assert codebook_usage(torch.arange(8).repeat(3), 8) == {
        "used": 8, "fraction": 1.0, "perplexity": pytest.approx(8.0)}
    collapsed = codebook_usage(torch.zeros(50, dtype=torch.long), 8)
    assert collapsed["used"] == 1 and collapsed["perplexity"] == pytest.approx(1.0)


# --- a real (short) training run -------------------------------------------------------------
def test_training_keeps_the_codebook_in_use_and_reconstructs():
    recipe = make_recipe("vqvae", {**TINY, "lr": 1e-3})
    trainer = Trainer(recipe, ImageDataset(images=shapes(256, seed=0)), batch=32, seed=0)
    untrained = trainer.export_model()
    metrics = trainer.train_steps(200)
    assert {"recon", "commitment", "codes_used", "perplexity", "psnr"} <= set(metrics)
    model = trainer.export_model()
    test = shapes(64, seed=1).float() / 127.5 - 1

    def error(m):
        return float((reconstruct(m, test) * 2 - 1 - test.permute(0, 2, 3, 1)).pow(2).mean())

    assert error(model) < 0.3 * error(untrained)
    codes = model.generator.codes(encode_images(model, test).values)
    usage = codebook_usage(codes, 32)
    assert usage["fraction"] >= 0.5 and usage["perplexity"] >= 8, usage
    grids = recipe.preview_grids(trainer, count=4)
    assert set(grids) == {"samples", "reconstructions"}


def test_loss_trained_codebook_recipe_runs():
    recipe = make_recipe("vqvae", {**TINY, "codebook_update": "loss"})
    trainer = Trainer(recipe, ImageDataset(images=shapes(32, seed=2)), batch=16, seed=0)
    before = trainer.nets["generator"].quantizer.codebook.detach().clone()
    trainer.train_steps(3)
    assert not torch.equal(before, trainer.nets["generator"].quantizer.codebook.detach())
