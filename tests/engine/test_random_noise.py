"""Generate Images with noise_mode=random runs again on every queue (fresh noise), while the
reproducible modes are served from the executor's cache like any other unchanged node."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import gan_models

pytestmark = pytest.mark.engine
SG2 = "tiny_sg2_noise.safetensors"


@pytest.fixture(scope="module")
def cached_engine(engine, engine_dirs):
    """The session engine, but with a server's caching executor (re-queues reuse outputs)."""
    from helpers import tiny_style_model

    gan_models.save_model(tiny_style_model("stylegan2", seed=5),
                          engine_dirs["models"] / "gan" / SG2)
    plain = engine.executor
    engine.executor = engine.execution.PromptExecutor(
        engine.stub, cache_type=engine.execution.CacheType.CLASSIC,
        cache_args={"lru": 0, "ram": 0, "ram_inactive": 0})
    yield engine
    engine.executor = plain


def prompt(noise_mode: str) -> dict:
    return {
        "1": {"class_type": "GANStudioLoadModel", "inputs": {"ckpt_name": SG2}},
        "2": {"class_type": "GANStudioSampleLatents", "inputs": {
            "model": ["1", 0], "seed": 3, "batch_size": 2, "truncation_psi": 1.0,
            "truncate_normal": 0.0, "seed_mode": "torch"}},
        "3": {"class_type": "GANStudioGenerate", "inputs": {
            "model": ["1", 0], "latents": ["2", 0], "chunk_size": 0, "noise_mode": noise_mode}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0],
                                                    "filename_prefix": f"noise_{noise_mode}"}},
    }


def cached_nodes(result) -> set[str]:
    return {n for event, data in result.messages if event == "execution_cached"
            for n in data.get("nodes", [])}


def first_image(result, engine_dirs) -> np.ndarray:
    item = result.outputs["4"]["images"][0]
    with Image.open(engine_dirs["output"] / item["subfolder"] / item["filename"]) as im:
        return np.asarray(im.convert("RGB"), dtype=np.int16)


def test_random_noise_runs_again_on_every_queue(cached_engine, engine_dirs):
    first = cached_engine.run(prompt("random"))
    second = cached_engine.run(prompt("random"))
    assert first.success and second.success, second.describe_error()
    assert "3" not in cached_nodes(second), "Generate Images was served from the cache"
    assert {"1", "2"} <= cached_nodes(second)  # the unchanged upstream nodes still are
    diff = np.abs(first_image(first, engine_dirs) - first_image(second, engine_dirs)).max()
    assert diff > 0, "random noise gave the same image twice"


def test_const_noise_is_cached_on_requeue(cached_engine):
    assert cached_engine.run(prompt("const")).success
    again = cached_engine.run(prompt("const"))
    assert again.success
    assert {"1", "2", "3", "4"} <= cached_nodes(again)
