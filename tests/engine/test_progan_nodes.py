"""A class-conditional ProGAN at an early stage (8 px, mid-fade) and at its final stage
(16 px), through Sample Latents, Class Condition, Interpolate, Keyframe Path and Generate in
the real ComfyUI engine, with core nodes saving the pictures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import gan_models
from gan_models.model import to_unit_hwc

pytestmark = pytest.mark.engine
CLASSES = ["red", "green", "blue"]
TINY = {"resolution": 16, "z_dim": 16, "base_channels": 8, "max_channels": 16, "embed_dim": 8,
        "num_classes": 3}


@pytest.fixture(scope="module")
def progan_files(engine_dirs):
    names = {}
    for stage, alpha in ((8, 0.5), (16, 1.0)):
        torch.manual_seed(4)
        model = gan_models.GenerativeModel.create(
            "progan", {**TINY, "stage_resolution": stage, "alpha": alpha}, class_names=CLASSES)
        name = f"progan_{stage}px.safetensors"
        gan_models.save_model(model, engine_dirs["models"] / "gan" / name)
        names[stage] = name
    return names


def sizes(engine_dirs, result, node):
    out = []
    for entry in result.outputs[node]["images"]:
        path = engine_dirs["output"] / entry["subfolder"] / entry["filename"]
        with Image.open(path) as img:
            out.append(img.size)
    return out


@pytest.mark.parametrize("stage", [8, 16])
def test_latent_nodes_generate_at_the_stage_resolution(engine, engine_dirs, progan_files,
                                                       stage):
    sample = {"class_type": "GANStudioSampleLatents", "inputs": {
        "model": ["1", 0], "seed": 7, "batch_size": 2, "truncation_psi": 1.0,
        "truncate_normal": 0.0, "seed_mode": "torch"}}
    prompt = {
        "1": {"class_type": "GANStudioLoadModel", "inputs": {"ckpt_name": progan_files[stage]}},
        "2": sample,
        "3": {"class_type": "GANStudioClassCondition", "inputs": {
            "model": ["1", 0], "latents": ["2", 0], "classes": "red:0.6, blue:0.4",
            "mode": "mix"}},
        "4": {**sample, "inputs": {**sample["inputs"], "seed": 8}},
        "5": {"class_type": "GANStudioClassCondition", "inputs": {
            "model": ["1", 0], "latents": ["4", 0], "classes": "green", "mode": "mix"}},
        "6": {"class_type": "GANStudioInterpolateLatents", "inputs": {
            "latents_a": ["3", 0], "latents_b": ["5", 0], "steps": 3, "method": "auto",
            "easing": "linear", "include_end": True}},
        "7": {"class_type": "GANStudioGenerate", "inputs": {
            "model": ["1", 0], "latents": ["6", 0], "chunk_size": 0}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["7", 0],
                                                    "filename_prefix": f"progan/{stage}"}},
        "9": {"class_type": "GANStudioKeyframePath", "inputs": {
            "model": ["1", 0], "seeds": "1, 2", "frames_per_segment": 3,
            "interpolation": "spline", "easing": "constant speed", "loop": False,
            "truncation_psi": 1.0, "seconds": 0.0, "fps": 12.0}},
        "10": {"class_type": "GANStudioGenerate", "inputs": {
            "model": ["1", 0], "latents": ["9", 0], "chunk_size": 2}},
        "11": {"class_type": "SaveImage", "inputs": {"images": ["10", 0],
                                                     "filename_prefix": f"progan/path{stage}"}},
    }
    result = engine.run(prompt)
    assert result.success, result.describe_error()
    mixed = sizes(engine_dirs, result, "8")
    assert len(mixed) >= 6 and set(mixed) == {(stage, stage)}
    path = sizes(engine_dirs, result, "11")
    assert path and set(path) == {(stage, stage)}

    # the engine's images are the library's, at this stage and with these class weights
    model = gan_models.load_model(engine_dirs["models"] / "gan" / progan_files[stage])
    z = model.sample_latents(7, 2).with_labels(torch.tensor([[0.6, 0.0, 0.4]] * 2))
    with torch.no_grad():
        first = to_unit_hwc(model.synthesize(z))[0]
    entry = result.outputs["8"]["images"][0]
    with Image.open(engine_dirs["output"] / entry["subfolder"] / entry["filename"]) as img:
        saved = torch.from_numpy(np.array(img.convert("RGB"))).float()
    assert (saved / 255.0 - first.cpu()).abs().max() <= 1.0 / 255 + 1e-6


def test_the_gallery_workflow_grows_to_the_dataset_size(engine, engine_dirs):
    """workflows/api/progan_training.json as shipped: 4 -> 32 px on the shapes folder."""
    import json
    from pathlib import Path

    api = Path(__file__).resolve().parents[2] / "workflows" / "api" / "progan_training.json"
    prompt = json.loads(api.read_text())
    save = next(k for k, v in prompt.items() if v["class_type"] == "SaveImage")
    scale = next(k for k, v in prompt.items() if v["class_type"] == "ImageScale")
    # The model draws at the stage it reached (32 px); the workflow saves it enlarged to 64.
    prompt[save]["inputs"]["images"] = prompt[scale]["inputs"]["image"]
    del prompt[scale]
    result = engine.run(prompt)
    assert result.success, result.describe_error()
    assert set(sizes(engine_dirs, result, save)) == {(32, 32)}


def test_bad_progan_input_gives_one_line_messages(engine, engine_dirs):
    trainer = {
        "1": {"class_type": "GANStudioTrainingDataset", "inputs": {
            "folder": "gan_studio_shapes", "resolution": 16, "fit": "crop", "xflip": False,
            "background": "#ffffff"}},
        "2": {"class_type": "GANStudioTrainer", "inputs": {
            "dataset": ["1", 0], "recipe": "progan", "resolution": 0, "batch_size": 4,
            "lr_g": 0.0, "lr_d": 0.0, "beta1": 0.0, "beta2": 0.0, "loss": "wgan-gp",
            "diffaugment": "off", "width": 8, "seed": 0, "options": "fade_kimg=-1"}},
        "3": {"class_type": "GANStudioTrainSteps", "inputs": {
            "trainer": ["2", 0], "steps": 1, "preview_every": 1}},
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 3]}},
    }
    result = engine.run(trainer)
    assert not result.success
    error = result.describe_error()
    assert "GAN Trainer: recipe progan: stage_kimg must be positive and fade_kimg 0 or more" \
        in error

