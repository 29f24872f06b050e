"""The VAE Trainer node with kind vae-perceptual in the real engine: it trains through Train
Steps (past adv_start, so the PatchGAN phase runs), and its model encodes and decodes."""

from __future__ import annotations

import pytest
from test_vae_train_nodes import saved, vae_input, vae_prompt, vae_trainer_inputs  # noqa: F401

import gan_models

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("one_thread")]


def test_the_vae_trainer_trains_vae_perceptual(engine, engine_dirs, vae_input):  # noqa: F811
    prompt = vae_prompt([3], "gs_vae_perceptual")
    prompt["2"]["inputs"] = vae_trainer_inputs(
        kind="vae-perceptual", recon_loss="l1",
        options="max_channels=16\nres_blocks=0\ndisc_channels=8\ndisc_layers=1\nadv_start=2")
    result = engine.run(prompt)
    assert result.success, result.describe_error()
    model = gan_models.load_model(saved(engine_dirs, result))
    assert model.architecture == "vae" and model.can_encode
    provenance = model.metadata["provenance"]
    assert provenance["recipe"] == "vae-perceptual" and provenance["steps"] == 3
    assert provenance["options"]["beta"] == 0.25  # 0 on the node = the kind's default
    assert provenance["options"]["recon_loss"] == "l1"
