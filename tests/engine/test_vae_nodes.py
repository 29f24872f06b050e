"""VAE nodes in the real ComfyUI engine, chained with core nodes (Load Image, Save Image,
Save Animated WEBP) and the pack's interpolation and generation nodes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import SHAPE_CLASSES
from PIL import Image

import gan_models
from gan_models.vae_ops import encode_images, to_model_input

pytestmark = pytest.mark.engine
TINY = {"resolution": 16, "z_dim": 8, "base_channels": 8, "max_channels": 16, "res_blocks": 0}
VAE, CVAE, VQVAE = "tiny_vae.safetensors", "tiny_cvae.safetensors", "tiny_vqvae.safetensors"


@pytest.fixture(scope="module")
def vae_files(engine_dirs):
    """Tiny random-init VAE, conditional VAE and VQ-VAE checkpoints, and two input PNGs:
    a 16x16 RGB image and a 24x20 RGBA one (resized and alpha-flattened by the nodes)."""
    gan = engine_dirs["models"] / "gan"
    torch.manual_seed(0)
    models = {
        VAE: gan_models.GenerativeModel.create("vae", TINY),
        CVAE: gan_models.GenerativeModel.create("vae", {**TINY, "num_classes": 3},
                                                class_names=SHAPE_CLASSES),
        VQVAE: gan_models.GenerativeModel.create(
            "vqvae", {"resolution": 16, "base_channels": 8, "max_channels": 16,
                      "res_blocks": 0, "codebook_size": 16, "code_dim": 4}),
    }
    for name, model in models.items():
        gan_models.save_model(model, gan / name)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(
        engine_dirs["input"] / "vae_a.png")
    rgba = rng.integers(0, 256, (20, 24, 4), dtype=np.uint8)
    rgba[:, :12, 3] = 0  # left half transparent
    Image.fromarray(rgba, "RGBA").save(engine_dirs["input"] / "vae_b.png")
    return gan


def load_model(node, ckpt):
    return {node: {"class_type": "GANStudioLoadModel", "inputs": {"ckpt_name": ckpt}}}


def load_image(name):
    return {"class_type": "LoadImage", "inputs": {"image": name}}


def encode(image, model=("1", 0), mode="mean", size="crop", classes="", mask=None, seed=0):
    inputs = {"model": list(model), "images": image, "mode": mode, "seed": seed,
              "size_handling": size, "classes": classes}
    if mask is not None:
        inputs["mask"] = mask
    return {"class_type": "GANStudioEncodeImages", "inputs": inputs}


def generate(latents, model=("1", 0)):
    return {"class_type": "GANStudioGenerate", "inputs": {
        "model": list(model), "latents": latents, "chunk_size": 0}}


def save(images, prefix):
    return {"class_type": "SaveImage", "inputs": {"images": images, "filename_prefix": prefix}}


def run_ok(engine, prompt):
    result = engine.run(prompt)
    assert result.success, result.describe_error()
    return result


def saved_images(engine_dirs, result, node) -> list[np.ndarray]:
    out = []
    for entry in result.outputs[node]["images"]:
        with Image.open(engine_dirs["output"] / entry["subfolder"] / entry["filename"]) as img:
            out.append(np.asarray(img.convert("RGB")))
    return out


def expected_reconstruction(vae_files, image_name, engine_dirs) -> np.ndarray:
    """decode(encode_mean(image)) computed with the library, as 8-bit RGB."""
    model = gan_models.load_model(vae_files / VAE)
    with Image.open(engine_dirs["input"] / image_name) as img:
        rgb = torch.from_numpy(np.array(img.convert("RGB"))).float()[None] / 255
    x, _ = to_model_input(rgb, 16, 3)
    images = gan_models.to_unit_hwc(model.synthesize(encode_images(model, x)))
    return (images[0] * 255).round().byte().numpy()


def test_two_images_morph_into_an_animated_webp(engine, engine_dirs, vae_files):
    prompt = {**load_model("1", VAE),
              "2": load_image("vae_a.png"), "3": load_image("vae_b.png"),
              "4": encode(["2", 0]), "5": encode(["3", 0], mask=["3", 1]),
              "6": {"class_type": "GANStudioInterpolateLatents", "inputs": {
                  "latents_a": ["4", 0], "latents_b": ["5", 0], "steps": 6, "method": "auto",
                  "easing": "linear", "include_end": True}},
              "7": generate(["6", 0]),
              "8": {"class_type": "SaveAnimatedWEBP", "inputs": {
                  "images": ["7", 0], "filename_prefix": "vae/morph", "fps": 6.0,
                  "lossless": True, "quality": 80, "method": "fastest"}}}
    result = run_ok(engine, prompt)
    entry = result.outputs["8"]["images"][0]
    with Image.open(engine_dirs["output"] / entry["subfolder"] / entry["filename"]) as img:
        assert img.n_frames == 6 and img.size == (16, 16)
        img.seek(0)
        first = np.asarray(img.convert("RGB"))
    expected = expected_reconstruction(vae_files, "vae_a.png", engine_dirs)
    assert np.abs(first.astype(int) - expected.astype(int)).max() <= 1


def test_reconstruct_gives_a_pair_grid_and_the_batch(engine, engine_dirs, vae_files):
    prompt = {**load_model("1", VAE), "2": load_image("vae_b.png"),
              "3": {"class_type": "GANStudioReconstruct", "inputs": {
                  "model": ["1", 0], "images": ["2", 0], "size_handling": "pad",
                  "classes": "", "pairs_per_row": 4, "mask": ["2", 1]}},
              "4": save(["3", 0], "vae/grid"), "5": save(["3", 1], "vae/recon")}
    result = run_ok(engine, prompt)
    [grid] = saved_images(engine_dirs, result, "4")
    [recon] = saved_images(engine_dirs, result, "5")
    assert recon.shape == (16, 16, 3)
    assert grid.shape == (16 + 12, 2 * 16 + 2 + 12, 3)  # one pair with its margins
    assert np.array_equal(grid[6:22, 6 + 18:6 + 34], recon)  # the right half of the pair
    # the transparent left half of the input was flattened onto white
    assert grid[6:22, 6:10].min() >= 250


def test_arithmetic_a_minus_b_plus_b_gives_back_a(engine, engine_dirs, vae_files):
    prompt = {**load_model("1", VAE), "2": load_image("vae_a.png"), "3": load_image("vae_b.png"),
              "4": encode(["2", 0]), "5": encode(["3", 0]),
              "6": {"class_type": "GANStudioLatentArithmetic", "inputs": {
                  "latents_a": ["4", 0], "latents_b": ["5", 0], "latents_c": ["5", 0],
                  "weight_a": 1.0, "weight_b": 1.0, "weight_c": 1.0}},
              "7": save(["8", 0], "vae/arith"), "8": generate(["6", 0]),
              "9": generate(["4", 0]), "10": save(["9", 0], "vae/a")}
    result = run_ok(engine, prompt)
    [arith] = saved_images(engine_dirs, result, "7")
    [direct] = saved_images(engine_dirs, result, "10")
    assert np.abs(arith.astype(int) - direct.astype(int)).max() <= 1


def test_conditional_vae_and_vqvae_encode_and_decode(engine, engine_dirs, vae_files):
    prompt = {**load_model("1", CVAE), **load_model("2", VQVAE),
              "3": {"class_type": "ImageBatch", "inputs": {
                  "image1": ["4", 0], "image2": ["4", 0]}},
              "4": load_image("vae_a.png"),
              "5": encode(["3", 0], classes="circle, triangle", mode="sample", seed=3),
              "6": save(["7", 0], "vae/cvae"), "7": generate(["5", 0]),
              "8": encode(["4", 0], model=("2", 0)),
              "9": generate(["8", 0], model=("2", 0)), "10": save(["9", 0], "vae/vq")}
    result = run_ok(engine, prompt)
    cvae = saved_images(engine_dirs, result, "6")
    assert len(cvae) == 2 and cvae[0].shape == (16, 16, 3)
    assert not np.array_equal(cvae[0], cvae[1])  # different classes, different noise
    assert saved_images(engine_dirs, result, "10")[0].shape == (16, 16, 3)


def assert_fails(engine, prompt, node_type, *fragments):
    last = max(prompt, key=int)
    prompt = {**prompt, "99": {"class_type": "PreviewImage", "inputs": {"images": [last, 0]}}}
    result = engine.run(prompt)
    assert not result.success
    err = result.error
    assert err is not None, result.describe_error()
    assert err["node_type"] == node_type
    for fragment in fragments:
        assert fragment in err["exception_message"], err["exception_message"]


def test_errors_name_the_node_and_the_problem(engine, vae_files):
    gan = {**load_model("1", "tiny_uncond.safetensors"), "2": load_image("vae_a.png"),
           "3": encode(["2", 0]), "4": generate(["3", 0])}
    assert_fails(engine, gan, "GANStudioEncodeImages", "Encode Images:", "dcgan 32px",
                 "cannot encode")
    refuse = {**load_model("1", VAE), "2": load_image("vae_b.png"),
              "3": encode(["2", 0], size="refuse"), "4": generate(["3", 0])}
    assert_fails(engine, refuse, "GANStudioEncodeImages", "Encode Images:", "24x20", "16x16")
    no_class = {**load_model("1", CVAE), "2": load_image("vae_a.png"),
                "3": encode(["2", 0]), "4": generate(["3", 0])}
    assert_fails(engine, no_class, "GANStudioEncodeImages", "class-conditional")
    mixed = {**load_model("1", VAE), **load_model("2", CVAE), "3": load_image("vae_a.png"),
             "4": encode(["3", 0]), "5": encode(["3", 0], model=("2", 0), classes="square"),
             "6": {"class_type": "GANStudioLatentArithmetic", "inputs": {
                 "latents_a": ["4", 0], "latents_b": ["5", 0],
                 "weight_a": 1.0, "weight_b": 1.0, "weight_c": 1.0}},
             "7": generate(["6", 0])}
    assert_fails(engine, mixed, "GANStudioLatentArithmetic", "Latent Arithmetic:",
                 "different models")
