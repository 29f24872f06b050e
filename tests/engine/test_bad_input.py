"""Bad input fails with a message naming the node and the problem; the next prompt still runs."""

from __future__ import annotations

import pickle

import pytest
from engine_prompts import raw_images_prompt

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def bad_files(engine_dirs):
    gan = engine_dirs["models"] / "gan"
    (gan / "truncated.safetensors").write_bytes(
        (gan / "tiny_uncond.safetensors").read_bytes()[:500])
    (gan / "network.pkl").write_bytes(pickle.dumps({"G": [1, 2, 3]}, protocol=4))
    import torch
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(3)}, str(gan / "no_metadata.safetensors"))
    return gan


def assert_fails(engine, prompt, node_type, *fragments):
    result = engine.run(prompt)
    assert not result.success
    err = result.error
    assert err is not None, result.describe_error()
    assert err["node_type"] == node_type
    message = err["exception_message"]
    for fragment in fragments:
        assert fragment in message, message
    # the engine keeps serving: a good prompt runs right after
    ok = engine.run(raw_images_prompt(batch=1, prefix="after_error"))
    assert ok.success, ok.describe_error()
    return message


@pytest.mark.parametrize("ckpt, fragment", [
    ("corrupt.safetensors", "corrupt"),
    ("truncated.safetensors", "truncated"),
    ("network.pkl", "network.pkl"),
    ("no_metadata.safetensors", "without GAN Studio metadata"),
])
def test_unloadable_checkpoints(engine, bad_files, ckpt, fragment):
    assert_fails(engine, raw_images_prompt(ckpt=ckpt), "GANStudioLoadModel",
                 "Load GAN Model:", fragment)


def test_class_name_and_index_out_of_range(engine):
    assert_fails(engine, raw_images_prompt(classes="hexagon"), "GANStudioClassCondition",
                 "Class Condition:", "hexagon", "circle, square, triangle")
    assert_fails(engine, raw_images_prompt(classes="7"), "GANStudioClassCondition",
                 "Class Condition:", "out of range")
    assert_fails(engine, raw_images_prompt(classes=" , "), "GANStudioClassCondition",
                 "no class given")


def test_class_on_unconditional_model(engine):
    assert_fails(engine, raw_images_prompt(ckpt="tiny_uncond.safetensors", classes="0"),
                 "GANStudioClassCondition", "unconditional")


def test_batch_zero_and_absurd_batches_are_refused_by_validation(engine):
    for batch in (0, 10**9):
        result = engine.run(raw_images_prompt(batch=batch))
        assert not result.success and result.validation_error is not None
        assert "batch_size" in result.describe_error()


def test_wrong_kind_of_input(engine):
    prompt = raw_images_prompt()
    # a core LATENT where GAN_LATENT is expected is a type error caught by validation
    prompt["9"] = {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}}
    prompt["4"]["inputs"]["latents"] = ["9", 0]
    result = engine.run(prompt)
    assert not result.success and result.validation_error is not None
    assert "GAN_LATENT" in result.describe_error() or "LATENT" in result.describe_error()
