"""Editing nodes in the real ComfyUI engine: project a loaded image, edit it along a found
direction and animate it (Load Image -> Project Image -> Apply Direction -> Keyframe Path ->
Generate Images -> Save Animated WEBP); explore, save and load directions; bad inputs."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from helpers import tiny_style_model
from PIL import Image
from toy_families import make_translator, pack_library_names, register_toys

import gan_models

pytestmark = pytest.mark.engine
STYLE, OTHER, VAE = "edit_style.safetensors", "edit_other.safetensors", "edit_vae.safetensors"
PICTURE = "edit_input.png"  # 40x40: the 32 px model gets it resized


@pytest.fixture(scope="module")
def edit_files(engine, engine_dirs):
    for name in pack_library_names():
        register_toys(name)
    gan = engine_dirs["models"] / "gan"
    style = tiny_style_model(seed=7)
    gan_models.save_model(style, gan / STYLE)
    gan_models.save_model(tiny_style_model(seed=8), gan / OTHER)
    torch.manual_seed(0)
    gan_models.save_model(gan_models.GenerativeModel.create(
        "vae", {"resolution": 16, "z_dim": 8, "base_channels": 8, "max_channels": 16,
                "res_blocks": 0}), gan / VAE)
    gan_models.save_model(make_translator(seed=2), gan / "edit_translator.safetensors")
    image = gan_models.to_unit_hwc(style.synthesize(style.sample_latents(3, 1)))[0]
    image = Image.fromarray((image.numpy() * 255).round().astype(np.uint8))
    image.resize((40, 40), Image.BICUBIC).save(engine_dirs["input"] / PICTURE)
    return engine


def project_node(model="1", image=("2", 0), steps=20, space="w+", perceptual="none", **extra):
    inputs = {"model": [model, 0], "images": list(image), "space": space, "steps": steps,
              "seed": 0, "start": "auto", "perceptual": perceptual, "size_handling": "crop",
              "classes": "", "noise": "fixed", "learning_rate": 0.1, "pixel_weight": 1.0,
              "structure_weight": 1.0, "perceptual_weight": 1.0, **extra}
    return {"class_type": "GANStudioProjectImage", "inputs": inputs}


def sefa_node(model="1", count=4):
    return {"class_type": "GANStudioFindDirections", "inputs": {
        "model": [model, 0], "method": "sefa", "count": count, "layers": "all",
        "layer_start": 0, "layer_end": 4, "samples": 1000, "seed": 0, "name": "d"}}


def apply_node(latents, directions, model="1", strip="-2, 0, 2", strength=1.5):
    return {"class_type": "GANStudioApplyDirection", "inputs": {
        "model": [model, 0], "latents": list(latents), "directions": list(directions),
        "direction": "0", "strength": strength, "layers": "as found", "layer_start": 0,
        "layer_end": 4, "strip": strip}}


def base(ckpt=STYLE):
    return {"1": {"class_type": "GANStudioLoadModel", "inputs": {"ckpt_name": ckpt}},
            "2": {"class_type": "LoadImage", "inputs": {"image": PICTURE}}}


def animation_prompt():
    prompt = base()
    prompt["3"] = project_node(mask=["2", 1])
    prompt["4"] = sefa_node()
    prompt["5"] = apply_node(("3", 0), ("4", 0))
    prompt["6"] = {"class_type": "GANStudioKeyframePath", "inputs": {
        "model": ["1", 0], "seeds": "0", "frames_per_segment": 4, "interpolation": "spline",
        "easing": "constant speed", "loop": True, "truncation_psi": 1.0, "seconds": 0.0,
        "fps": 12.0, "keyframes": ["5", 0]}}
    prompt["7"] = {"class_type": "GANStudioGenerate", "inputs": {
        "model": ["1", 0], "latents": ["6", 0], "chunk_size": 0}}
    prompt["8"] = {"class_type": "SaveAnimatedWEBP", "inputs": {
        "images": ["7", 0], "filename_prefix": "edit_anim", "fps": 12.0, "lossless": True,
        "quality": 90, "method": "default"}}
    prompt["9"] = {"class_type": "SaveImage", "inputs": {"images": ["3", 2],
                                                         "filename_prefix": "edit_cmp"}}
    prompt["10"] = {"class_type": "PreviewAny", "inputs": {"source": ["3", 3]}}
    return prompt


def text_of(result, node) -> str:
    return " ".join(str(t) for t in result.outputs[node].get("text", []))


def test_project_edit_and_animate_a_loaded_image(edit_files, engine_dirs):
    result = edit_files.run(animation_prompt())
    assert result.success, result.describe_error()
    anim = result.outputs["8"]["images"][0]
    with Image.open(engine_dirs["output"] / anim["subfolder"] / anim["filename"]) as im:
        assert im.size == (32, 32) and im.n_frames == 12  # 3 keyframes x 4, looping
    cmp = result.outputs["9"]["images"][0]
    with Image.open(engine_dirs["output"] / cmp["subfolder"] / cmp["filename"]) as im:
        assert im.size[0] > 2 * 32  # input next to its reconstruction
    summary = text_of(result, "10")
    assert "projected 1 image(s) into w+ (20 steps" in summary
    assert "resized 1 image(s) from 40x40 to 32x32 (crop)" in summary


def test_explore_save_and_load_directions(edit_files, engine_dirs):
    prompt = base()
    prompt["3"] = {"class_type": "GANStudioSampleLatents", "inputs": {
        "model": ["1", 0], "seed": 0, "batch_size": 1, "truncation_psi": 1.0,
        "truncate_normal": 0.0, "seed_mode": "torch"}}
    del prompt["2"]
    prompt["4"] = sefa_node(count=3)
    prompt["5"] = {"class_type": "GANStudioDirectionExplorer", "inputs": {
        "model": ["1", 0], "latents": ["3", 0], "directions": ["4", 0], "show": "0-2",
        "strengths": "-3, 0, 3", "layers": "as found", "layer_start": 0, "layer_end": 4}}
    prompt["6"] = {"class_type": "SaveImage", "inputs": {"images": ["5", 0],
                                                         "filename_prefix": "edit_grid"}}
    prompt["7"] = {"class_type": "GANStudioSaveDirections", "inputs": {
        "directions": ["4", 0], "filename_prefix": "edit_test/sefa"}}
    result = edit_files.run(prompt)
    assert result.success, result.describe_error()
    grid = result.outputs["6"]["images"][0]
    with Image.open(engine_dirs["output"] / grid["subfolder"] / grid["filename"]) as im:
        assert im.size[0] > 3 * 96 and im.size[1] > 3 * 96  # 3 x 3 cells, enlarged, labelled
    saved = text_of(result, "7")
    assert saved.startswith("edit_test/sefa_") and saved.endswith(".safetensors")
    assert (engine_dirs["models"] / "gan_directions" / saved).is_file()

    # loaded again, the file drives Apply Direction on its model, and is refused on another
    for ckpt, ok in ((STYLE, True), (OTHER, False)):
        load = {"1": {"class_type": "GANStudioLoadModel", "inputs": {"ckpt_name": ckpt}},
                "2": {"class_type": "GANStudioLoadDirections",
                      "inputs": {"directions_file": saved}},
                "3": prompt["3"],
                "4": apply_node(("3", 0), ("2", 0), strip=""),
                "5": {"class_type": "GANStudioGenerate", "inputs": {
                    "model": ["1", 0], "latents": ["4", 0], "chunk_size": 0}},
                "6": {"class_type": "PreviewImage", "inputs": {"images": ["5", 0]}}}
        run = edit_files.run(load)
        assert run.success == ok, run.describe_error()
        if not ok:
            assert "Apply Direction: these directions were found on another model" in \
                run.describe_error()


def test_vae_encoder_start_with_zero_steps(edit_files):
    prompt = base(VAE)
    prompt["3"] = project_node(steps=0, space="auto")
    prompt["4"] = {"class_type": "PreviewAny", "inputs": {"source": ["3", 3]}}
    result = edit_files.run(prompt)
    assert result.success, result.describe_error()
    assert "into z (0 steps, start: encoder)" in text_of(result, "4")


@pytest.mark.parametrize("ckpt,change,message", [
    ("edit_translator.safetensors", {}, "Project Image: model toy-translator 32px, image to "
                                        "image ('edit_translator') cannot generate"),
    (STYLE, {"steps": 0}, "Project Image: steps is 0: nothing would be fitted"),
    ("tiny_uncond.safetensors", {"space": "w+"}, "Project Image: w+ needs a style-based model"),
    (STYLE, {"size_handling": "refuse"}, "Project Image: the images are 40x40 but the model "
                                         "takes 32x32"),
])
def test_bad_projection_inputs_give_clear_messages(edit_files, ckpt, change, message):
    prompt = base(ckpt)
    prompt["3"] = project_node(**change)
    prompt["4"] = {"class_type": "PreviewImage", "inputs": {"images": ["3", 1]}}
    result = edit_files.run(prompt)
    assert not result.success
    assert message in result.describe_error()


def test_bad_strengths_and_directions_are_named(edit_files):
    prompt = base()
    del prompt["2"]
    prompt["3"] = {"class_type": "GANStudioSampleLatents", "inputs": {
        "model": ["1", 0], "seed": 0, "batch_size": 1, "truncation_psi": 1.0,
        "truncate_normal": 0.0, "seed_mode": "torch"}}
    prompt["4"] = sefa_node()
    prompt["5"] = apply_node(("3", 0), ("4", 0), strip="1, lots")
    prompt["6"] = {"class_type": "GANStudioGenerate", "inputs": {
        "model": ["1", 0], "latents": ["5", 0], "chunk_size": 0}}
    prompt["7"] = {"class_type": "PreviewImage", "inputs": {"images": ["6", 0]}}
    result = edit_files.run(prompt)
    assert "Apply Direction: 'lots' is not a number" in result.describe_error()
    prompt["5"]["inputs"].update(strip="", direction="smile")
    result = edit_files.run(prompt)
    assert "Apply Direction: no direction named 'smile'" in result.describe_error()


def test_cancel_passes_on_the_best_latents_so_far(edit_files):
    import comfy.model_management as mm
    import comfy.utils

    prompt = base()
    prompt["3"] = project_node(steps=200)
    prompt["4"] = {"class_type": "PreviewAny", "inputs": {"source": ["3", 3]}}
    prompt["5"] = {"class_type": "GANStudioGenerate", "inputs": {
        "model": ["1", 0], "latents": ["3", 0], "chunk_size": 0}}
    prompt["6"] = {"class_type": "PreviewImage", "inputs": {"images": ["5", 0]}}

    pressed = []

    def press_cancel_at_step_five(value, total, preview=None, node_id=None):
        # as the Cancel button during the projection; newer engines throttle the progress
        # hook, so the first update at or after step 5 presses it
        if total == 200 and value >= 5 and not pressed:
            pressed.append(value)
            mm.interrupt_current_processing(True)

    saved = comfy.utils.PROGRESS_BAR_HOOK
    comfy.utils.set_progress_bar_global_hook(press_cancel_at_step_five)
    try:
        result = edit_files.run(prompt)
    finally:
        comfy.utils.set_progress_bar_global_hook(saved)
        mm.interrupt_current_processing(False)
    assert result.success, result.describe_error()
    report = text_of(result, "4")
    stopped = re.search(r"stopped after (\d+) steps \(best so far kept\)", report)
    assert stopped and pressed and int(stopped.group(1)) == pressed[0] + 1, report
    assert result.outputs["6"]["images"]  # the rest of the workflow ran on the result
