"""StackGAN in the real engine: Text Condition -> Generate -> ImageScale -> SaveImage on a
small StackGAN file (prompts, weighted mixes, lists cycled over the batch, unknown words),
a prompt morph through Keyframe Path, and CLIP conditionings: a CONDITIONING shaped as the
core CLIP Text Encode node outputs it is refused by a model with its own word encoder and
taken by a model trained on CLIP pooled embeddings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import gan_models

pytestmark = pytest.mark.engine

VOCAB = ["red", "green", "blue", "circle", "square", "triangle"]
TINY = {"resolution": 32, "vocab": VOCAB, "embed_dim": 16, "word_dim": 16, "noise_dim": 8,
        "ca_dim": 8, "base_channels": 16, "stage2_channels": 16, "res_blocks": 1,
        "d_channels": 16}
WORDS, CLIP = "tiny_stackgan.safetensors", "tiny_stackgan_clip.safetensors"


@pytest.fixture(scope="module")
def stackgan(engine, engine_dirs):
    gan = engine_dirs["models"] / "gan"
    torch.manual_seed(0)
    model = gan_models.GenerativeModel.create("stackgan", {**TINY, "text_input": "words"})
    with torch.no_grad():  # a prompt should visibly change a random-init model's images
        model.networks["text_encoder"].words.weight.mul_(8)
    gan_models.save_model(model, gan / WORDS, roles=("generator", "text_encoder"))
    clip = gan_models.GenerativeModel.create(
        "stackgan", {**TINY, "vocab": [], "text_input": "clip_pooled", "clip_dim": 12})
    gan_models.save_model(clip, gan / CLIP, roles=("generator", "text_encoder"))
    return engine


def saved(engine_dirs, result, node):
    return [np.asarray(Image.open(engine_dirs["output"] / f["subfolder"] / f["filename"]),
                       dtype=np.int16)
            for f in result.outputs[node]["images"]]


def text_prompt(prompts="red circle", mode="mix", batch=2, prefix="sg"):
    """Load -> Sample Latents -> Text Condition -> Generate -> ImageScale -> SaveImage."""
    return {
        "1": {"class_type": "GANStudioLoadModel", "inputs": {"ckpt_name": WORDS}},
        "2": {"class_type": "GANStudioSampleLatents", "inputs": {
            "model": ["1", 0], "seed": 7, "batch_size": batch, "truncation_psi": 1.0,
            "truncate_normal": 0.0, "seed_mode": "torch"}},
        "3": {"class_type": "GANStudioTextCondition", "inputs": {
            "model": ["1", 0], "latents": ["2", 0], "prompts": prompts, "mode": mode}},
        "4": {"class_type": "GANStudioGenerate", "inputs": {
            "model": ["1", 0], "latents": ["3", 0], "chunk_size": 0}},
        "5": {"class_type": "ImageScale", "inputs": {
            "image": ["4", 0], "upscale_method": "nearest-exact", "width": 64, "height": 64,
            "crop": "disabled"}},
        "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": prefix}},
    }


def test_prompts_mixes_and_lists(stackgan, engine_dirs):
    red = stackgan.run(text_prompt("red circle", prefix="sg_red"))
    assert red.success, red.describe_error()
    red = saved(engine_dirs, red, "6")
    assert len(red) == 2 and red[0].shape == (64, 64, 3)
    blue = saved(engine_dirs, stackgan.run(text_prompt("blue square", prefix="sg_blue")), "6")
    assert np.abs(red[0] - blue[0]).mean() > 2
    cycled = saved(engine_dirs, stackgan.run(text_prompt("red circle, blue square", "cycle",
                                                         prefix="sg_cyc")), "6")
    assert np.array_equal(cycled[0], red[0]) and np.array_equal(cycled[1], blue[1])
    mixed = saved(engine_dirs, stackgan.run(text_prompt("red circle:0.7, blue square:0.3",
                                                        prefix="sg_mix")), "6")
    assert not np.array_equal(mixed[0], red[0]) and not np.array_equal(mixed[0], blue[0])
    # An unknown word is ignored and listed; a prompt of unknown words only is refused.
    zebra = stackgan.run(text_prompt("red zebra circle", prefix="sg_zebra"))
    assert np.array_equal(saved(engine_dirs, zebra, "6")[0], red[0])
    assert zebra.outputs["3"]["text"] == ["ignored unknown words: zebra"]
    unknown = stackgan.run(text_prompt("purple zebra", prefix="sg_unknown"))
    assert not unknown.success
    assert "Text Condition: prompt 'purple zebra' has no word this model knows" in \
        unknown.describe_error()


def test_prompt_morph_through_keyframe_path(stackgan, engine_dirs):
    prompt = text_prompt("red circle, blue square", "cycle", prefix="sg_keys")
    prompt["7"] = {"class_type": "GANStudioKeyframePath", "inputs": {
        "model": ["1", 0], "seeds": "1", "frames_per_segment": 4, "interpolation": "linear",
        "easing": "linear", "loop": False, "truncation_psi": 1.0, "seconds": 0.0, "fps": 24.0,
        "keyframes": ["3", 0]}}
    prompt["8"] = {"class_type": "GANStudioGenerate", "inputs": {
        "model": ["1", 0], "latents": ["7", 0], "chunk_size": 0}}
    prompt["9"] = {"class_type": "SaveImage", "inputs": {"images": ["8", 0],
                                                         "filename_prefix": "sg_morph"}}
    prompt["5"]["inputs"].update(width=32, height=32)
    result = stackgan.run(prompt)
    assert result.success, result.describe_error()
    keys, frames = saved(engine_dirs, result, "6"), saved(engine_dirs, result, "9")
    assert len(frames) == 5
    # The path starts and ends on the keyframes (z and text together) and moves between.
    assert np.abs(frames[0] - keys[0]).max() <= 1 and np.abs(frames[-1] - keys[1]).max() <= 1
    steps = [np.abs(a - b).mean() for a, b in zip(frames, frames[1:])]
    assert all(s > 0.1 for s in steps)


def test_interpolate_latents_moves_between_prompts(stackgan, engine_dirs):
    prompt = text_prompt("red circle", batch=1, prefix="sg_from")
    prompt["12"] = {"class_type": "GANStudioTextCondition", "inputs": {
        "model": ["1", 0], "latents": ["2", 0], "prompts": "blue square", "mode": "mix"}}
    prompt["13"] = {"class_type": "GANStudioInterpolateLatents", "inputs": {
        "latents_a": ["3", 0], "latents_b": ["12", 0], "steps": 5, "method": "lerp",
        "easing": "linear", "include_end": True}}
    prompt["14"] = {"class_type": "GANStudioGenerate", "inputs": {
        "model": ["1", 0], "latents": ["13", 0], "chunk_size": 0}}
    prompt["15"] = {"class_type": "SaveImage", "inputs": {"images": ["14", 0],
                                                          "filename_prefix": "sg_between"}}
    prompt["5"]["inputs"].update(width=32, height=32)
    result = stackgan.run(prompt)
    assert result.success, result.describe_error()
    frames = saved(engine_dirs, result, "15")
    blue = saved(engine_dirs, stackgan.run(text_prompt("blue square", batch=1,
                                                       prefix="sg_to")), "6")[0]
    assert np.abs(frames[0] - saved(engine_dirs, result, "6")[0]).max() <= 1
    assert np.abs(frames[-1] - blue[::2, ::2]).mean() < np.abs(frames[0] - blue[::2, ::2]).mean()
    assert len({f.tobytes() for f in frames}) == len(frames)


def _condition(engine, ckpt, conditioning, batch=2):
    nodes = engine.nodes.NODE_CLASS_MAPPINGS
    model = nodes["GANStudioLoadModel"].execute(ckpt_name=ckpt).result[0]
    latents = nodes["GANStudioSampleLatents"].execute(
        model=model, seed=3, batch_size=batch, truncation_psi=1.0, truncate_normal=0.0,
        seed_mode="torch").result[0]
    return model, nodes["GANStudioTextCondition"].execute(
        model=model, latents=latents, prompts="red circle", mode="mix",
        clip_conditioning=conditioning)


def clip_conditioning(width, entries=1):
    """As the core CLIP Text Encode node outputs it: [[tokens, {"pooled_output": ...}]]."""
    gen = torch.Generator().manual_seed(width)
    return [[torch.randn(1, 77, width, generator=gen),
             {"pooled_output": torch.randn(1, width, generator=gen)}] for _ in range(entries)]


def test_clip_conditioning_is_refused_by_a_word_model(stackgan):
    with pytest.raises(Exception) as info:
        _condition(stackgan, WORDS, clip_conditioning(768))
    message = str(info.value)
    assert message.startswith("Text Condition: model stackgan 32px, text-conditioned")
    assert "was trained with its own word encoder; type the prompt instead" in message


def test_clip_conditioning_drives_a_clip_pooled_model(stackgan):
    model, out = _condition(stackgan, CLIP, clip_conditioning(12, entries=2), batch=3)
    labels = out.result[0].labels
    assert labels.shape == (3, 16) and torch.equal(labels[0], labels[2])
    assert not torch.equal(labels[0], labels[1])
    with pytest.raises(Exception, match="trained on width 12"):
        _condition(stackgan, CLIP, clip_conditioning(768))
    with pytest.raises(Exception, match="has no pooled output"):
        _condition(stackgan, CLIP, [[torch.zeros(1, 77, 12), {}]])


# --- the shipped text -> emoji model ----------------------------------------------------------------
SHIPPED = "gan_studio_text2emoji.safetensors"


def shipped_prompt(prompts, mode="mix", prefix="t2e"):
    prompt = text_prompt(prompts, mode, batch=3, prefix=prefix)
    prompt["1"]["inputs"]["ckpt_name"] = SHIPPED
    return prompt


def test_the_shipped_model_takes_lists_mixes_and_unknown_words(engine, engine_dirs):
    heart = engine.run(shipped_prompt("red heart", prefix="t2e_heart"))
    assert heart.success, heart.describe_error()
    heart = saved(engine_dirs, heart, "6")
    assert heart[0].shape == (64, 64, 3)
    flag = saved(engine_dirs, engine.run(shipped_prompt("flag, flags", prefix="t2e_flag")), "6")
    assert np.abs(heart[0] - flag[0]).mean() > 2
    cycled = saved(engine_dirs, engine.run(shipped_prompt("red heart, flag + flags", "cycle",
                                                          prefix="t2e_cycle")), "6")
    assert np.array_equal(cycled[0], heart[0]) and np.array_equal(cycled[1], flag[1])
    assert np.array_equal(cycled[2], heart[2])
    mixed = saved(engine_dirs, engine.run(shipped_prompt("red heart:0.5, flag:0.5",
                                                         prefix="t2e_mix")), "6")
    assert not np.array_equal(mixed[0], heart[0])
    unknown = engine.run(shipped_prompt("red heart qwertyuiop", prefix="t2e_unknown"))
    assert unknown.outputs["3"]["text"] == ["ignored unknown words: qwertyuiop"]
