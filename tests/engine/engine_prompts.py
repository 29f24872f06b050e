"""API-format prompt builders for engine tests."""

from __future__ import annotations


def sample_prompt(ckpt="tiny_cond.safetensors", seed=1, batch=4, classes=None, mode="mix",
                  psi=1.0, truncate=0.0, seed_mode="torch", chunk=0, prefix="gs_test"):
    """Load -> Sample -> [Class Condition] -> Generate -> ImageScale -> ImageBlur -> SaveImage."""
    prompt = {
        "1": {"class_type": "GANStudioLoadModel", "inputs": {"ckpt_name": ckpt}},
        "2": {"class_type": "GANStudioSampleLatents", "inputs": {
            "model": ["1", 0], "seed": seed, "batch_size": batch, "truncation_psi": psi,
            "truncate_normal": truncate, "seed_mode": seed_mode}},
        "4": {"class_type": "GANStudioGenerate", "inputs": {
            "model": ["1", 0], "latents": ["2", 0], "chunk_size": chunk}},
        "5": {"class_type": "ImageScale", "inputs": {
            "image": ["4", 0], "upscale_method": "nearest-exact", "width": 64, "height": 64,
            "crop": "disabled"}},
        "6": {"class_type": "ImageBlur", "inputs": {
            "image": ["5", 0], "blur_radius": 1, "sigma": 0.5}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": prefix}},
    }
    if classes is not None:
        prompt["3"] = {"class_type": "GANStudioClassCondition", "inputs": {
            "model": ["1", 0], "latents": ["2", 0], "classes": classes, "mode": mode}}
        prompt["4"]["inputs"]["latents"] = ["3", 0]
    return prompt


def raw_images_prompt(**kwargs):
    """Like sample_prompt but saves the generated images unscaled and unblurred."""
    prompt = sample_prompt(**kwargs)
    del prompt["5"], prompt["6"]
    prompt["7"]["inputs"]["images"] = ["4", 0]
    return prompt
