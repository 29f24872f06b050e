"""The capability contract in the real engine: a toy translator and a toy text-conditioned
generator load through Load GAN Model and run through the nodes that ask for their
capability, chained with core image nodes; a model without the capability is refused in
one line naming the node and the model."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from toy_families import make_text_model, make_translator, pack_library_names, register_toys

import gan_models

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def toys(engine, engine_dirs):
    for name in pack_library_names():
        register_toys(name)
    gan = engine_dirs["models"] / "gan"
    gan_models.save_model(make_translator(seed=2), gan / "toy_translator.safetensors")
    gan_models.save_model(make_text_model(seed=2), gan / "toy_text.safetensors")
    return engine


def saved(engine_dirs, result, node):
    return [np.asarray(Image.open(engine_dirs["output"] / f["subfolder"] / f["filename"]))
            for f in result.outputs[node]["images"]]


def translate_prompt(strength=1.0, masked=True, ckpt="toy_translator.safetensors", prefix="tr"):
    """EmptyImage -> ImageScale -> Translate Image (masked) -> ImageBlend -> SaveImage."""
    prompt = {
        "1": {"class_type": "GANStudioLoadModel", "inputs": {"ckpt_name": ckpt}},
        "2": {"class_type": "EmptyImage", "inputs": {
            "width": 24, "height": 20, "batch_size": 2, "color": 0x3366CC}},
        "3": {"class_type": "ImageScale", "inputs": {
            "image": ["2", 0], "upscale_method": "bilinear", "width": 37, "height": 29,
            "crop": "disabled"}},
        "5": {"class_type": "GANStudioTranslateImage", "inputs": {
            "model": ["1", 0], "images": ["3", 0], "strength": strength}},
        "6": {"class_type": "ImageBlend", "inputs": {
            "image1": ["5", 0], "image2": ["3", 0], "blend_factor": 0.25, "blend_mode": "normal"}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": prefix}},
    }
    if masked:
        prompt["4"] = {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 37, "height": 29}}
        prompt["5"]["inputs"]["mask"] = ["4", 0]
    return prompt


def text_prompt(prompts="red circle", mode="mix", ckpt="toy_text.safetensors", prefix="tx"):
    """Load -> Sample Latents -> Text Condition -> Generate -> ImageScale -> SaveImage."""
    return {
        "1": {"class_type": "GANStudioLoadModel", "inputs": {"ckpt_name": ckpt}},
        "2": {"class_type": "GANStudioSampleLatents", "inputs": {
            "model": ["1", 0], "seed": 7, "batch_size": 2, "truncation_psi": 1.0,
            "truncate_normal": 0.0, "seed_mode": "torch"}},
        "3": {"class_type": "GANStudioTextCondition", "inputs": {
            "model": ["1", 0], "latents": ["2", 0], "prompts": prompts, "mode": mode}},
        "4": {"class_type": "GANStudioGenerate", "inputs": {
            "model": ["1", 0], "latents": ["3", 0], "chunk_size": 0}},
        "5": {"class_type": "ImageScale", "inputs": {
            "image": ["4", 0], "upscale_method": "nearest-exact", "width": 32, "height": 32,
            "crop": "disabled"}},
        "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": prefix}},
    }


def test_translate_chain_keeps_size_and_changes_pixels(toys, engine_dirs):
    full = toys.run(translate_prompt(prefix="tr_full"))
    assert full.success, full.describe_error()
    images = saved(engine_dirs, full, "7")
    assert len(images) == 2 and images[0].shape == (29, 37, 3)
    none = saved(engine_dirs, toys.run(translate_prompt(strength=0.0, prefix="tr_none")), "7")
    assert np.abs(images[0].astype(int) - none[0].astype(int)).mean() > 1
    unmasked = toys.run(translate_prompt(masked=False, prefix="tr_nomask"))
    assert np.array_equal(saved(engine_dirs, unmasked, "7")[0], images[0])  # mask of ones


def test_text_condition_chain_follows_the_prompt(toys, engine_dirs):
    red = toys.run(text_prompt("red circle", prefix="tx_red"))
    assert red.success, red.describe_error()
    cat = saved(engine_dirs, toys.run(text_prompt("smiling cat", prefix="tx_cat")), "6")
    red = saved(engine_dirs, red, "6")
    assert red[0].shape == (32, 32, 3)
    assert np.abs(red[0].astype(int) - cat[0].astype(int)).mean() > 2
    cycled = saved(engine_dirs, toys.run(text_prompt("red circle, smiling cat", mode="cycle",
                                                     prefix="tx_cyc")), "6")
    assert np.array_equal(cycled[0], red[0]) and np.array_equal(cycled[1], cat[1])


def test_nodes_refuse_models_without_their_capability(toys):
    gan_in_translate = toys.run(translate_prompt(ckpt="tiny_uncond.safetensors", prefix="x1"))
    msg = gan_in_translate.describe_error()
    assert not gan_in_translate.success
    assert "Translate Image: model dcgan 32px ('tiny_uncond') cannot translate" in msg
    translator_in_sample = toys.run(text_prompt(ckpt="toy_translator.safetensors", prefix="x2"))
    assert "Sample Latents: model toy-translator 32px, image to image ('toy_translator') cannot generate" in translator_in_sample.describe_error()
    assert "cannot generate" in translator_in_sample.describe_error()
    gan_in_text = toys.run(text_prompt(ckpt="tiny_cond.safetensors", prefix="x3"))
    assert "Text Condition: model dcgan 32px, 3 classes ('tiny_cond')" in gan_in_text.describe_error()
    assert "takes no text condition: it is class-conditional" in gan_in_text.describe_error()
    unknown = toys.run(text_prompt("rocket ship", prefix="x4"))
    assert "Text Condition: prompt 'rocket ship' has no word this model knows" in unknown.describe_error()
