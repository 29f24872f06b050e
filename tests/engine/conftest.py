"""One real ComfyUI per test session, booted in-process (see scripts/comfy_engine.py)."""

from __future__ import annotations

import pytest
from helpers import SHAPE_CLASSES, save_tiny


@pytest.fixture(scope="session")
def engine_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("comfy")
    dirs = {name: root / name for name in ("models", "output", "input")}
    for d in dirs.values():
        d.mkdir()
    gan = dirs["models"] / "gan"
    gan.mkdir()
    save_tiny(gan, "tiny_uncond.safetensors", seed=1)
    save_tiny(gan, "tiny_cond.safetensors", num_classes=3, class_names=SHAPE_CLASSES, seed=2)
    from helpers import write_nvlabs_standins

    from gan_models.training.shapes import write_shapes_folder

    write_nvlabs_standins(gan)

    write_shapes_folder(dirs["input"] / "gan_studio_shapes", per_class=16, size=32)
    (gan / "corrupt.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\": 1")
    return dirs


@pytest.fixture(scope="session")
def engine(engine_dirs):
    from comfy_engine import Engine

    eng = Engine.get(models_dir=engine_dirs["models"], output_dir=engine_dirs["output"],
                     input_dir=engine_dirs["input"])
    assert "GANStudioGenerate" in eng.node_types, "the GAN Studio pack did not load"
    return eng
