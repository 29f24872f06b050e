"""StyleGAN2/3 in the engine: W-space sampling, truncation cutoff, noise modes, style mixing,
StyleGAN3 translate/rotate, each chained with core image nodes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import gan_models

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def style_models(engine_dirs):
    from helpers import tiny_style_model

    gan = engine_dirs["models"] / "gan"
    gan_models.save_model(tiny_style_model("stylegan2", seed=3), gan / "tiny_sg2.safetensors")
    gan_models.save_model(tiny_style_model("stylegan3", seed=4), gan / "tiny_sg3.safetensors")
    return gan


def chain(ckpt, *, space="z", cutoff=0, mix=None, view=None, noise="const", seed=1, batch=2,
          prefix="style"):
    prompt = {
        "1": {"class_type": "GANStudioLoadModel", "inputs": {"ckpt_name": ckpt}},
        "2": {"class_type": "GANStudioSampleLatents", "inputs": {
            "model": ["1", 0], "seed": seed, "batch_size": batch, "truncation_psi": 0.7,
            "truncate_normal": 0.0, "seed_mode": "torch", "space": space,
            "truncation_cutoff": cutoff}},
        "5": {"class_type": "GANStudioGenerate", "inputs": {
            "model": ["1", 0], "latents": ["2", 0], "chunk_size": 0, "noise_mode": noise}},
        "6": {"class_type": "ImageScale", "inputs": {
            "image": ["5", 0], "upscale_method": "bilinear", "width": 48, "height": 48,
            "crop": "disabled"}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": prefix}},
    }
    last = "2"
    if mix is not None:
        prompt["3"] = {"class_type": "GANStudioSampleLatents", "inputs": {
            "model": ["1", 0], "seed": 100, "batch_size": 1, "truncation_psi": 0.7,
            "truncate_normal": 0.0, "seed_mode": "torch"}}
        prompt["4"] = {"class_type": "GANStudioStyleMix", "inputs": {
            "model": ["1", 0], "base": [last, 0], "donor": ["3", 0], "preset": mix,
            "layer_start": 0, "layer_end": 2, "layout": "pairwise"}}
        last = "4"
    if view is not None:
        prompt["8"] = {"class_type": "GANStudioStyleGAN3View", "inputs": {
            "model": ["1", 0], "latents": [last, 0], "translate_x": view[0],
            "translate_y": view[1], "rotate": view[2]}}
        last = "8"
    prompt["5"]["inputs"]["latents"] = [last, 0]
    return prompt


def images(engine, engine_dirs, prompt):
    result = engine.run(prompt)
    assert result.success, result.describe_error()
    return [np.asarray(Image.open(engine_dirs["output"] / f["subfolder"] / f["filename"]))
            for f in result.outputs["7"]["images"]]


@pytest.mark.parametrize("ckpt", ["tiny_sg2.safetensors", "tiny_sg3.safetensors"])
def test_load_sample_mix_generate_scale_save(engine, engine_dirs, style_models, ckpt):
    plain = images(engine, engine_dirs, chain(ckpt, prefix="plain"))
    mixed = images(engine, engine_dirs, chain(ckpt, mix="coarse", prefix="mixed"))
    assert len(mixed) == 2 and mixed[0].shape == (48, 48, 3)
    assert np.abs(plain[0].astype(int) - mixed[0].astype(int)).mean() > 0.5


def test_z_and_w_space_give_the_same_images(engine, engine_dirs, style_models):
    z = images(engine, engine_dirs, chain("tiny_sg2.safetensors", space="z", prefix="z"))
    w = images(engine, engine_dirs, chain("tiny_sg2.safetensors", space="w", prefix="w"))
    cut = images(engine, engine_dirs, chain("tiny_sg2.safetensors", space="w", cutoff=2,
                                            prefix="cut"))
    for a, b in zip(z, w):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    assert np.abs(z[0].astype(int) - cut[0].astype(int)).mean() > 0.1


def test_noise_modes(engine, engine_dirs, style_models):
    const_a = images(engine, engine_dirs, chain("tiny_sg2.safetensors", prefix="ca"))
    const_b = images(engine, engine_dirs, chain("tiny_sg2.safetensors", prefix="cb"))
    none = images(engine, engine_dirs, chain("tiny_sg2.safetensors", noise="none", prefix="nn"))
    assert np.array_equal(const_a[0], const_b[0])
    assert not np.array_equal(const_a[0], none[0])


def test_stylegan3_view(engine, engine_dirs, style_models):
    still = images(engine, engine_dirs, chain("tiny_sg3.safetensors", prefix="still"))
    ident = images(engine, engine_dirs, chain("tiny_sg3.safetensors", view=(0, 0, 0), prefix="id"))
    moved = images(engine, engine_dirs, chain("tiny_sg3.safetensors", view=(0.25, 0, 10), prefix="mv"))
    assert np.abs(still[0].astype(int) - ident[0].astype(int)).max() <= 1
    assert np.abs(still[0].astype(int) - moved[0].astype(int)).mean() > 0.5


def test_style_nodes_refuse_models_without_styles(engine, style_models):
    for prompt, node, text in [
        (chain("tiny_cond.safetensors", mix="coarse"), "GANStudioStyleMix", "not a style-based"),
        (chain("tiny_sg2.safetensors", view=(0.1, 0, 0)), "GANStudioStyleGAN3View", "only StyleGAN3"),
        (chain("tiny_uncond.safetensors", space="w"), "GANStudioSampleLatents", "no W space"),
    ]:
        if node == "GANStudioStyleMix":
            prompt["2"]["inputs"]["space"] = "z"
        result = engine.run(prompt)
        assert not result.success
        assert result.error["node_type"] == node, result.describe_error()
        assert text in result.error["exception_message"]
