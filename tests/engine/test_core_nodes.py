"""Issue-2 nodes in the real ComfyUI engine, chained with core nodes."""

from __future__ import annotations

import numpy as np
import pytest
from engine_prompts import raw_images_prompt, sample_prompt
from PIL import Image

pytestmark = pytest.mark.engine


def saved_images(engine_dirs, result, node="7"):
    files = result.outputs[node]["images"]
    return [np.asarray(Image.open(engine_dirs["output"] / f["subfolder"] / f["filename"]))
            for f in files]


def test_pack_registers_every_node(engine):
    expected = {"GANStudioLoadModel", "GANStudioSaveModel", "GANStudioSampleLatents",
                "GANStudioClassCondition", "GANStudioGenerate"}
    assert expected <= engine.node_types


def test_generate_chain_with_core_nodes(engine, engine_dirs):
    result = engine.run(sample_prompt(batch=3, prefix="chain"))
    assert result.success, result.describe_error()
    images = saved_images(engine_dirs, result)
    assert len(images) == 3
    assert all(img.shape == (64, 64, 3) for img in images)
    assert all(img.std() > 5 for img in images), "images should not be flat"


def test_same_seed_same_images_and_seed_offsets(engine, engine_dirs):
    a = saved_images(engine_dirs, engine.run(raw_images_prompt(seed=10, batch=3, prefix="a")))
    b = saved_images(engine_dirs, engine.run(raw_images_prompt(seed=10, batch=3, prefix="b")))
    c = saved_images(engine_dirs, engine.run(raw_images_prompt(seed=11, batch=1, prefix="c")))
    for x, y in zip(a, b):
        assert np.array_equal(x, y)
    assert np.array_equal(a[1], c[0])
    assert not np.array_equal(a[0], a[1])


def test_chunking_does_not_change_images(engine, engine_dirs):
    a = saved_images(engine_dirs, engine.run(raw_images_prompt(seed=3, batch=5, chunk=2, prefix="k2")))
    b = saved_images(engine_dirs, engine.run(raw_images_prompt(seed=3, batch=5, chunk=0, prefix="k0")))
    for x, y in zip(a, b):
        assert np.abs(x.astype(int) - y.astype(int)).max() <= 1


def test_class_condition_changes_images(engine, engine_dirs):
    circle = saved_images(engine_dirs, engine.run(raw_images_prompt(seed=4, batch=2, classes="circle", prefix="ci")))
    tri = saved_images(engine_dirs, engine.run(raw_images_prompt(seed=4, batch=2, classes="triangle", prefix="tr")))
    idx = saved_images(engine_dirs, engine.run(raw_images_prompt(seed=4, batch=2, classes="2", prefix="ix")))
    assert np.abs(circle[0].astype(int) - tri[0].astype(int)).mean() > 2
    assert np.array_equal(tri[0], idx[0])  # name and index select the same class


def test_class_mix_and_cycle(engine, engine_dirs):
    mixed = engine.run(raw_images_prompt(seed=4, batch=2, classes="circle:0.5, triangle:0.5", prefix="mx"))
    assert mixed.success, mixed.describe_error()
    cyc = saved_images(engine_dirs, engine.run(raw_images_prompt(
        seed=4, batch=3, classes="circle, triangle", mode="cycle", prefix="cy")))
    circle = saved_images(engine_dirs, engine.run(raw_images_prompt(seed=4, batch=3, classes="circle", prefix="c3")))
    tri = saved_images(engine_dirs, engine.run(raw_images_prompt(seed=4, batch=3, classes="triangle", prefix="t3")))
    assert np.array_equal(cyc[0], circle[0])
    assert np.array_equal(cyc[1], tri[1])
    assert np.array_equal(cyc[2], circle[2])


def test_truncation_zero_gives_the_average_image(engine, engine_dirs):
    imgs = saved_images(engine_dirs, engine.run(raw_images_prompt(
        ckpt="tiny_uncond.safetensors", seed=1, batch=2, psi=0.0, prefix="psi0")))
    assert np.array_equal(imgs[0], imgs[1])


def test_nvlabs_seed_mode_and_truncated_normal_run(engine):
    for kwargs in ({"seed_mode": "nvlabs", "seed": 2**40}, {"truncate": 1.5}):
        result = engine.run(raw_images_prompt(batch=2, prefix="modes", **kwargs))
        assert result.success, result.describe_error()


def test_save_model_writes_a_loadable_file(engine, engine_dirs):
    prompt = {
        "1": {"class_type": "GANStudioLoadModel", "inputs": {"ckpt_name": "tiny_cond.safetensors"}},
        "2": {"class_type": "GANStudioSaveModel", "inputs": {
            "model": ["1", 0], "filename_prefix": "saved/copy", "include_discriminator": False}},
    }
    first = engine.run(prompt)
    second = engine.run(prompt)
    assert first.success and second.success, first.describe_error()
    names = [first.outputs["2"]["text"][0], second.outputs["2"]["text"][0]]
    assert names[0] != names[1], "a save must never overwrite"
    import gan_models

    model = gan_models.load_model(engine_dirs["models"] / "gan" / names[0])
    assert set(model.networks) == {"generator"} and model.class_names[0] == "circle"
    # and the engine can load what it saved
    again = engine.run(raw_images_prompt(ckpt=names[0], batch=1, prefix="reload"))
    assert again.success, again.describe_error()
