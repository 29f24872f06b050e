"""Generate Images' precision input in the real ComfyUI engine: bf16 stays close to fp32 on
the CPU, fp16 (GPU only) is refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
from engine_prompts import raw_images_prompt
from PIL import Image

pytestmark = pytest.mark.engine


def _images(engine, engine_dirs, prefix, **generate_inputs):
    prompt = raw_images_prompt(seed=5, batch=2, prefix=prefix)
    prompt["4"]["inputs"].update(generate_inputs)
    result = engine.run(prompt)
    assert result.success, result.describe_error()
    return [np.asarray(Image.open(engine_dirs["output"] / f["subfolder"] / f["filename"]))
            .astype(int) for f in result.outputs["7"]["images"]]


def test_bf16_images_stay_close_to_fp32(engine, engine_dirs):
    fp32 = _images(engine, engine_dirs, "p32", precision="fp32")
    bf16 = _images(engine, engine_dirs, "pbf", precision="bf16")
    for a, b in zip(fp32, bf16, strict=True):
        assert np.abs(a - b).mean() < 4  # 8-bit levels


def test_fp16_on_the_cpu_is_a_one_line_error(engine):
    prompt = raw_images_prompt(seed=5, batch=1, prefix="p16")
    prompt["4"]["inputs"]["precision"] = "fp16"
    result = engine.run(prompt)
    assert not result.success
    assert "fp16 runs on GPUs only" in result.describe_error()
