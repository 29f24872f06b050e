"""A small imported BigGAN (the public pytorch_model.bin + config.json layout, 1,000 ImageNet
classes, written by our own code) in the real ComfyUI engine: Class Condition by ImageNet
name, Class Genes, an interpolation through class mixes, and clear messages for typos and
a missing config."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import gan_models
from gan_models import registry
from gan_models.architectures import biggan
from gan_models.model import to_unit_hwc

pytestmark = pytest.mark.engine
CONFIG = {"output_dim": 16, "z_dim": 8, "class_embed_dim": 8, "channel_width": 4,
          "num_classes": 1000, "layers": [[False, 4, 4], [True, 4, 2], [False, 2, 2],
                                          [True, 2, 1]],
          "attention_layer_position": 2, "eps": 1e-4, "n_stats": 6}
NAME = "biggan-deep-tiny-pytorch_model.bin"


@pytest.fixture(scope="module")
def biggan_file(engine_dirs):
    torch.manual_seed(0)
    net = registry.build("biggan", CONFIG)["generator"]
    biggan.standing_statistics(net, batches=1, batch_size=16)
    gan = engine_dirs["models"] / "gan"
    torch.save(net.state_dict(), gan / NAME)
    (gan / "biggan-deep-tiny-config.json").write_text(json.dumps(CONFIG))
    (gan / "biggan_no_config.bin").write_bytes((gan / NAME).read_bytes())
    return gan / NAME


def sample(seed=3, batch=2, psi=0.5):
    return {"class_type": "GANStudioSampleLatents", "inputs": {
        "model": ["1", 0], "seed": seed, "batch_size": batch, "truncation_psi": psi,
        "truncate_normal": 0.0, "seed_mode": "torch"}}


def condition(latents, classes, mode="mix"):
    return {"class_type": "GANStudioClassCondition", "inputs": {
        "model": ["1", 0], "latents": latents, "classes": classes, "mode": mode}}


def generate_and_save(latents, prefix):
    return ({"class_type": "GANStudioGenerate", "inputs": {
                "model": ["1", 0], "latents": latents, "chunk_size": 0}},
            {"class_type": "SaveImage", "inputs": {"images": None, "filename_prefix": prefix}})


def saved(engine_dirs, result, node) -> list[torch.Tensor]:
    out = []
    for entry in result.outputs[node]["images"]:
        with Image.open(engine_dirs["output"] / entry["subfolder"] / entry["filename"]) as img:
            out.append(torch.from_numpy(np.array(img.convert("RGB"))).float() / 255)
    return out


def test_class_condition_by_imagenet_name_then_genes(engine, engine_dirs, biggan_file):
    gen, save = generate_and_save(["3", 0], "biggan/mix")
    gen2, save2 = generate_and_save(["5", 0], "biggan/genes")
    prompt = {
        "1": {"class_type": "GANStudioLoadModel", "inputs": {"ckpt_name": NAME}},
        "2": sample(),
        "3": condition(["2", 0], "golden retriever:0.6, volcano:0.4"),
        "4": gen, "6": {**save, "inputs": {**save["inputs"], "images": ["4", 0]}},
        "5": {"class_type": "GANStudioClassGenes", "inputs": {
            "model": ["1", 0], "latents": ["3", 0], "seed": 11, "strength": 0.8,
            "new_classes": 3, "per_sample": False}},
        "7": gen2, "8": {**save2, "inputs": {**save2["inputs"], "images": ["7", 0]}},
    }
    result = engine.run(prompt)
    assert result.success, result.describe_error()
    mixed, mutated = saved(engine_dirs, result, "6"), saved(engine_dirs, result, "8")
    assert len(mixed) == 2 and mixed[0].shape == (16, 16, 3)

    # the engine's pictures are the library's for golden retriever 0.6 + volcano 0.4
    model = gan_models.load_model(biggan_file)
    weights = torch.zeros(2, 1000)
    weights[:, 207], weights[:, 980] = 0.6, 0.4
    batch = model.sample_latents(3, 2, 0.5).with_labels(weights)
    with torch.no_grad():
        want = to_unit_hwc(model.synthesize(batch)).cpu()
    assert (mixed[0] - want[0]).abs().max() <= 1 / 255 + 1e-6
    assert (mutated[0] - mixed[0]).abs().max() > 2 / 255  # the genes moved the picture

    again = engine.run(prompt)  # seeded: the same genes twice
    assert again.success
    assert torch.equal(saved(engine_dirs, again, "8")[0], mutated[0])


def test_interpolation_through_class_mixes(engine, engine_dirs, biggan_file):
    gen, save = generate_and_save(["6", 0], "biggan/walk")
    prompt = {
        "1": {"class_type": "GANStudioLoadModel", "inputs": {"ckpt_name": NAME}},
        "2": sample(seed=1, batch=1),
        "3": condition(["2", 0], "goldfish:0.5 + volcano:0.5"),
        "4": sample(seed=2, batch=1),
        "5": condition(["4", 0], "jellyfish"),
        "6": {"class_type": "GANStudioInterpolateLatents", "inputs": {
            "latents_a": ["3", 0], "latents_b": ["5", 0], "steps": 5, "method": "auto",
            "easing": "linear", "include_end": True}},
        "7": gen, "8": {**save, "inputs": {**save["inputs"], "images": ["7", 0]}},
    }
    result = engine.run(prompt)
    assert result.success, result.describe_error()
    frames = saved(engine_dirs, result, "8")
    assert len(frames) == 5
    steps = [float((b - a).abs().mean()) for a, b in zip(frames, frames[1:])]
    assert max(steps) < float((frames[-1] - frames[0]).abs().mean())


def test_a_typo_lists_the_nearest_imagenet_names(engine, biggan_file):
    prompt = {
        "1": {"class_type": "GANStudioLoadModel", "inputs": {"ckpt_name": NAME}},
        "2": sample(),
        "3": condition(["2", 0], "golden retreiver"),
        "4": {"class_type": "GANStudioGenerate", "inputs": {
            "model": ["1", 0], "latents": ["3", 0], "chunk_size": 0}},
        "5": {"class_type": "PreviewImage", "inputs": {"images": ["4", 0]}},
    }
    result = engine.run(prompt)
    assert not result.success
    message = result.error["exception_message"]
    assert message.startswith("Class Condition: unknown class 'golden retreiver'")
    assert "'golden retriever'" in message


def test_a_missing_config_is_named(engine, biggan_file):
    prompt = {
        "1": {"class_type": "GANStudioLoadModel", "inputs": {"ckpt_name": "biggan_no_config.bin"}},
        "2": sample(),
        "4": {"class_type": "GANStudioGenerate", "inputs": {
            "model": ["1", 0], "latents": ["2", 0], "chunk_size": 0}},
        "5": {"class_type": "PreviewImage", "inputs": {"images": ["4", 0]}},
    }
    result = engine.run(prompt)
    assert not result.success
    message = result.error["exception_message"]
    assert "config.json is missing" in message and "biggan_no_config.json" in message
