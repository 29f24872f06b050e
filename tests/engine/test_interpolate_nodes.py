"""Animation, latent-batch and latent-file nodes in the real ComfyUI engine, with core nodes."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import gan_models
from gan_models.latent_files import latents_from_records, load_latents, read_png_record
from gan_models.motion.animation import keyframes_from_seeds, path_latents, walk_latents

pytestmark = pytest.mark.engine
TINY = "tiny_uncond.safetensors"


def load(node="1", ckpt=TINY):
    return {node: {"class_type": "GANStudioLoadModel", "inputs": {"ckpt_name": ckpt}}}


def keyframe_path(seeds="1, 5, 42", per_segment=4, interpolation="spline",
                  easing="constant speed", loop=True, seconds=0.0, fps=24.0):
    return {"class_type": "GANStudioKeyframePath", "inputs": {
        "model": ["1", 0], "seeds": seeds, "frames_per_segment": per_segment,
        "interpolation": interpolation, "easing": easing, "loop": loop, "truncation_psi": 1.0,
        "seconds": seconds, "fps": fps}}


def generate(latents, chunk=0):
    return {"class_type": "GANStudioGenerate", "inputs": {
        "model": ["1", 0], "latents": latents, "chunk_size": chunk}}


def save_latents(latents, prefix):
    return {"class_type": "GANStudioSaveLatents", "inputs": {
        "latents": latents, "filename_prefix": prefix}}


def webp(images, prefix, fps=12.0):
    return {"class_type": "SaveAnimatedWEBP", "inputs": {
        "images": images, "filename_prefix": prefix, "fps": fps, "lossless": True,
        "quality": 80, "method": "fastest"}}


def run_ok(engine, prompt):
    result = engine.run(prompt)
    assert result.success, result.describe_error()
    return result


def output_file(engine_dirs, entry):
    return engine_dirs["output"] / entry["subfolder"] / entry["filename"]


def webp_frames(path) -> list[np.ndarray]:
    frames = []
    with Image.open(path) as img:
        for i in range(getattr(img, "n_frames", 1)):
            img.seek(i)
            frames.append(np.asarray(img.convert("RGB")))
    return frames


def saved_latents(engine_dirs, result, node):
    listed = result.outputs[node]["text"][0]
    assert listed.endswith(" [output]")
    return load_latents(engine_dirs["output"] / listed[:-len(" [output]")])


def test_seed_list_path_to_animated_webp(engine, engine_dirs):
    prompt = {**load(), "2": keyframe_path(per_segment=4), "3": generate(["2", 0]),
              "4": webp(["3", 0], "anim/loop")}
    first = run_ok(engine, prompt)
    files = first.outputs["4"]["images"]
    assert len(files) == 1 and first.outputs["4"]["animated"] == [True]
    frames = webp_frames(output_file(engine_dirs, files[0]))
    assert len(frames) == 3 * 4 and frames[0].shape == (32, 32, 3)
    assert not np.array_equal(frames[0], frames[-1])
    # a shared workflow renders the same frames again (lossless WEBP keeps them exact)
    again = webp_frames(output_file(engine_dirs, run_ok(engine, prompt).outputs["4"]["images"][0]))
    assert all(np.array_equal(x, y) for x, y in zip(frames, again, strict=True))
    # open path ends on its last keyframe; fps x seconds sets the length
    prompt["2"] = keyframe_path(per_segment=4, loop=False, easing="linear")
    assert len(webp_frames(output_file(
        engine_dirs, run_ok(engine, prompt).outputs["4"]["images"][0]))) == 2 * 4 + 1
    prompt["2"] = keyframe_path(seconds=1.5, fps=10)
    assert len(webp_frames(output_file(
        engine_dirs, run_ok(engine, prompt).outputs["4"]["images"][0]))) == 15


def test_keyframe_path_from_a_latent_batch_matches_the_library(engine, engine_dirs):
    prompt = {**load(),
              "2": {"class_type": "GANStudioSampleLatents", "inputs": {
                  "model": ["1", 0], "seed": 5, "batch_size": 6, "truncation_psi": 1.0,
                  "truncate_normal": 0.0, "seed_mode": "torch"}},
              "3": {"class_type": "GANStudioPickLatents", "inputs": {
                  "latents": ["2", 0], "indices": "0, 2-3, -1"}},
              "4": keyframe_path(seeds="", per_segment=5, interpolation="linear",
                                 easing="ease-in-out"),
              "5": save_latents(["4", 0], "gs_path/from_batch")}
    prompt["4"]["inputs"]["keyframes"] = ["3", 0]
    path = saved_latents(engine_dirs, run_ok(engine, prompt), "5")
    model = gan_models.load_model(engine_dirs["models"] / "gan" / TINY)
    keys = model.sample_latents(5, 6).select([0, 2, 3, 5])
    want = path_latents(keys, 20, "linear", "ease-in-out", loop=True)
    assert torch.equal(path.values, want.values)
    assert path.extra["keyframe_seeds"] == [5, 7, 8, 10] and path.model_id == model.model_id


def test_walk_interpolate_concat_repeat_and_save(engine, engine_dirs):
    sample = {"class_type": "GANStudioSampleLatents", "inputs": {
        "model": ["1", 0], "seed": 10, "batch_size": 2, "truncation_psi": 1.0,
        "truncate_normal": 0.0, "seed_mode": "torch"}}
    prompt = {**load(),
              "2": {"class_type": "GANStudioLatentWalk", "inputs": {
                  "model": ["1", 0], "seed": 3, "frames": 10, "smoothness": 0.5, "loop": True,
                  "truncation_psi": 1.0, "seconds": 0.0, "fps": 24.0}},
              "3": sample,
              "4": {**sample, "inputs": {**sample["inputs"], "seed": 20}},
              "5": {"class_type": "GANStudioInterpolateLatents", "inputs": {
                  "latents_a": ["3", 0], "latents_b": ["4", 0], "steps": 5, "method": "auto",
                  "easing": "smoothstep", "include_end": False}},
              "6": {"class_type": "GANStudioConcatLatents", "inputs": {
                  "latents_a": ["2", 0], "latents_b": ["5", 0]}},
              "7": {"class_type": "GANStudioRepeatLatents", "inputs": {
                  "latents": ["6", 0], "times": 2, "mode": "each latent"}},
              "8": save_latents(["7", 0], "gs_chain/walk"),
              "9": generate(["7", 0]),
              "10": {"class_type": "PreviewImage", "inputs": {"images": ["9", 0]}}}
    result = run_ok(engine, prompt)
    saved = saved_latents(engine_dirs, result, "8")
    assert len(saved) == 2 * (10 + 2 * 5)
    model = gan_models.load_model(engine_dirs["models"] / "gan" / TINY)
    walk = walk_latents(model, 3, 10, 0.5, True)
    assert torch.equal(saved.values[0:20:2], walk.values)
    assert torch.equal(saved.values[0], saved.values[1])  # each latent twice
    assert torch.equal(saved.values[20], model.sample_latents(10, 1).values[0])
    assert len(result.outputs["10"]["images"]) == 40


def test_pick_out_of_range_names_the_node(engine):
    prompt = {**load(), "2": keyframe_path(),
              "3": {"class_type": "GANStudioPickLatents", "inputs": {
                  "latents": ["2", 0], "indices": "0, 99"}},
              "4": save_latents(["3", 0], "gs_bad/pick")}
    result = engine.run(prompt)
    assert not result.success
    assert "Pick Latents: index 99 is out of range" in result.describe_error()


def test_save_and_load_latents_round_trip(engine, engine_dirs):
    prompt = {**load(), "2": keyframe_path(seeds="7, 8", per_segment=3),
              "3": save_latents(["2", 0], "gs_io/keys")}
    result = run_ok(engine, prompt)
    listed = result.outputs["3"]["text"][0]
    original = saved_latents(engine_dirs, result, "3")
    # load it straight from the output folder, and as a copy in the input folder
    name = listed[:-len(" [output]")]
    copy = engine_dirs["input"] / "kept.safetensors"
    shutil.copy(engine_dirs["output"] / name, copy)
    node = engine.nodes.NODE_CLASS_MAPPINGS["GANStudioLoadLatents"]
    options = node.INPUT_TYPES()["required"]["latent_file"][1]["options"]  # what the UI offers
    assert listed in options and "kept.safetensors" in options
    for choice in (listed, "kept.safetensors"):
        prompt = {**load(),
                  "2": {"class_type": "GANStudioLoadLatents", "inputs": {"latent_file": choice}},
                  "3": save_latents(["2", 0], "gs_io/reloaded")}
        back = saved_latents(engine_dirs, run_ok(engine, prompt), "3")
        assert torch.equal(back.values, original.values)
        assert back.model_id == original.model_id and back.extra["keyframe_seeds"] == [7, 8]
    bad = engine.run({"2": {"class_type": "GANStudioLoadLatents",
                            "inputs": {"latent_file": "../outside.safetensors"}},
                      "3": save_latents(["2", 0], "gs_io/bad")})
    assert not bad.success


def test_save_images_embeds_the_latent_to_regenerate_a_frame(engine, engine_dirs):
    prompt = {**load(ckpt="tiny_cond.safetensors"), "2": keyframe_path(seeds="3, 4", per_segment=3),
              "3": generate(["2", 0]),
              "4": {"class_type": "GANStudioSaveImages", "inputs": {
                  "images": ["3", 0], "filename_prefix": "gs_frames/frame",
                  "latents": ["2", 0], "model": ["1", 0]}}}
    result = run_ok(engine, prompt)
    files = result.outputs["4"]["images"]
    assert len(files) == 6 and all(f["type"] == "output" for f in files)
    paths = [output_file(engine_dirs, f) for f in files]
    record = read_png_record(paths[4])
    assert record["model"].startswith("dcgan 32px") and record["space"] == "z"
    assert len(record["label"]) == 3 and len(record["latent"]) < 200
    with Image.open(paths[4]) as img:
        assert "prompt" in img.text and json.loads(img.text["prompt"])["4"]
        pixels = np.asarray(img.convert("RGB"))
    # regenerate frame 4 from its PNG alone
    model = gan_models.load_model(engine_dirs["models"] / "gan" / "tiny_cond.safetensors")
    latents = latents_from_records([record])
    assert latents.model_id == model.model_id
    image = gan_models.to_unit_hwc(model.synthesize(latents))[0]
    regenerated = (image.numpy() * 255).round().astype(np.uint8)
    assert np.abs(regenerated.astype(int) - pixels.astype(int)).max() <= 1
    # and it is the frame the path made
    keys = keyframes_from_seeds(model, [3, 4])
    assert torch.equal(latents.values[0], path_latents(keys, 6).values[4])


def test_a_1000_frame_path_generates_in_chunks(engine, engine_dirs):
    import comfy.utils

    calls = []

    def hook(value, total, preview, node_id=None):
        calls.append((value, total))

    previous = comfy.utils.PROGRESS_BAR_HOOK
    comfy.utils.set_progress_bar_global_hook(hook)  # what the server installs for the UI
    try:
        prompt = {**load(), "2": keyframe_path(seeds="1, 2, 3, 4", per_segment=250),
                  "3": generate(["2", 0], chunk=64), "4": webp(["3", 0], "gs_long/long", 30.0)}
        result = run_ok(engine, prompt)
    finally:
        comfy.utils.set_progress_bar_global_hook(previous)
    generate_calls = [c for c in calls if c[1] == 1000]
    assert [v for v, _ in generate_calls] == [min(64 * i, 1000) for i in range(1, 17)]
    frames = webp_frames(output_file(engine_dirs, result.outputs["4"]["images"][0]))
    assert len(frames) == 1000


# --- ComfyUI diffusion latents through core VAE nodes -----------------------------------
@pytest.fixture(scope="module")
def tiny_taesd(engine, engine_dirs):
    """A random-weight VAE in TAESD layout (ComfyUI's tiny autoencoder), which core VAELoader
    detects from its keys: latents [B, 4, H/8, W/8]. Written offline, no download."""
    from comfy.taesd.taesd import TAESD
    from safetensors.torch import save_file

    net = TAESD(latent_channels=4)
    gen = torch.Generator().manual_seed(0)
    state = {}
    for key, value in net.state_dict().items():
        if key.startswith(("taesd_encoder.", "taesd_decoder.")):
            if value.dim() == 1:  # biases: zero, so the colours (not offsets) drive the latents
                state[key] = torch.zeros(value.shape)
            else:
                state[key] = torch.randn(value.shape, generator=gen) / value[0].numel() ** 0.5
    folder = engine_dirs["models"] / "vae"
    folder.mkdir(exist_ok=True)
    save_file(state, folder / "tiny_taesd.safetensors")
    return "tiny_taesd.safetensors"


def vae_prompt(vae_name, width=64, steps=5):
    image = {"class_type": "EmptyImage", "inputs": {
        "width": width, "height": width, "batch_size": 1, "color": 0xFF0000}}
    return {
        "1": {"class_type": "VAELoader", "inputs": {"vae_name": vae_name}},
        "2": image,
        "3": {**image, "inputs": {**image["inputs"], "color": 0x0000FF}},
        "4": {"class_type": "VAEEncode", "inputs": {"pixels": ["2", 0], "vae": ["1", 0]}},
        "5": {"class_type": "VAEEncode", "inputs": {"pixels": ["3", 0], "vae": ["1", 0]}},
        "6": {"class_type": "GANStudioInterpolateDiffusionLatents", "inputs": {
            "latent_a": ["4", 0], "latent_b": ["5", 0], "steps": steps, "method": "slerp",
            "easing": "linear", "include_end": True}},
        "7": {"class_type": "VAEDecode", "inputs": {"samples": ["6", 0], "vae": ["1", 0]}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["7", 0],
                                                   "filename_prefix": f"gs_vae/{vae_name}"}},
    }


def saved_pngs(engine_dirs, result, node="8"):
    return [np.asarray(Image.open(output_file(engine_dirs, f)).convert("RGB")).astype(int)
            for f in result.outputs[node]["images"]]


def test_vae_encode_slerp_decode_with_a_tiny_vae(engine, engine_dirs, tiny_taesd):
    prompt = vae_prompt(tiny_taesd, 32, steps=5)
    for node, latent in (("9", "4"), ("11", "5")):  # decode the two endpoints on their own
        prompt[node] = {"class_type": "VAEDecode", "inputs": {"samples": [latent, 0],
                                                              "vae": ["1", 0]}}
        prompt[str(int(node) + 1)] = {"class_type": "SaveImage", "inputs": {
            "images": [node, 0], "filename_prefix": f"gs_vae/end{node}"}}
    result = run_ok(engine, prompt)
    frames = saved_pngs(engine_dirs, result)
    assert len(frames) == 5 and frames[0].shape == (32, 32, 3)
    start, end = saved_pngs(engine_dirs, result, "10")[0], saved_pngs(engine_dirs, result, "12")[0]
    # batched and single decodes may round differently by one level
    assert np.abs(frames[0] - start).max() <= 1 and np.abs(frames[-1] - end).max() <= 1
    assert np.abs(start - end).mean() > 1  # the decoder tells the two latents apart
    assert not np.array_equal(frames[2], start) and not np.array_equal(frames[2], end)


def test_vae_slerp_in_pixel_space_is_exact(engine, engine_dirs):
    # core's pixel_space VAE: the latent is the image scaled to -1..1, so the decoded frames
    # show the slerp itself: red (1,-1,-1) to blue (-1,-1,1), equal norms, 109.5 degrees apart
    frames = saved_pngs(engine_dirs, run_ok(engine, vae_prompt("pixel_space", 8, steps=3)))
    assert len(frames) == 3
    assert (frames[0] == [255, 0, 0]).all() and (frames[2] == [0, 0, 255]).all()
    # midpoint direction (0, -1, 0) at the same norm sqrt(3): green clamps to 0, red = blue
    assert (frames[1][..., 1] == 0).all() and (frames[1][..., 0] == frames[1][..., 2]).all()
    assert (frames[1][..., 0] == 127).all()  # (0 + 1) / 2 * 255, truncated by SaveImage
