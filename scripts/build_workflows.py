"""Regenerate the workflow gallery: workflows/<name>.json (UI) + workflows/api/<name>.json.

    .venv/bin/python scripts/build_workflows.py

Each workflow is described once below with scripts/workflow_builder.py, against the node
definitions of the real engine, so UI files and API twins cannot disagree.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEMO_MODEL = "gan_studio_demo.safetensors"


def sample_grid(wf) -> None:
    model = wf.add("GANStudioLoadModel", ckpt_name=DEMO_MODEL)
    latents = wf.add("GANStudioSampleLatents", model=model.out(), seed=0, batch_size=16)
    images = wf.add("GANStudioGenerate", model=model.out(), latents=latents.out())
    bigger = wf.add("ImageScaleBy", image=images.out(), upscale_method="nearest-exact", scale_by=2.0)
    wf.add("SaveImage", images=bigger.out(), filename_prefix="gan_studio/sample_grid")
    wf.note("**Sample grid.** Draws 16 images from the model. Sample *i* uses seed + *i*, so any "
            "image can be regenerated on its own: set `seed` to its number and `batch_size` to "
            "1. Lower `truncation_psi` for cleaner, more typical images. Pick your own model "
            "in **Load GAN Model** (files in `ComfyUI/models/gan`).", near=latents)


def class_grid(wf) -> None:
    model = wf.add("GANStudioLoadModel", ckpt_name=DEMO_MODEL)
    latents = wf.add("GANStudioSampleLatents", model=model.out(), seed=7, batch_size=8)
    cond = wf.add("GANStudioClassCondition", model=model.out(), latents=latents.out(),
                  classes="0, 1, 2, 3", mode="cycle")
    images = wf.add("GANStudioGenerate", model=model.out(), latents=cond.out())
    wf.add("SaveImage", images=images.out(), filename_prefix="gan_studio/class_grid")
    wf.note("**Class-conditional grid.** `classes` lists class names or indices of a "
            "conditional model; `cycle` gives sample *i* the *i*-th class, `mix` blends them "
            "with weights such as `0:0.5, 3:0.5`.", near=cond)


def looping_animation(wf) -> None:
    model = wf.add("GANStudioLoadModel", ckpt_name=DEMO_MODEL)
    path = wf.add("GANStudioKeyframePath", model=model.out(), seeds="1, 5, 42, 7",
                  frames_per_segment=24, interpolation="spline", easing="constant speed",
                  loop=True, truncation_psi=0.8, seconds=0.0, fps=24.0)
    images = wf.add("GANStudioGenerate", model=model.out(), latents=path.out())
    wf.add("SaveAnimatedWEBP", images=images.out(), filename_prefix="gan_studio/loop", fps=24.0,
           lossless=True, quality=90, method="default")
    wf.note("**Looping animation.** The path visits the images of the seeds in `seeds` (each "
            "seed is the image Sample Latents draws for it) and returns to the first, so the "
            "clip loops seamlessly. `frames_per_segment` x number of seeds = frames; or set "
            "`seconds` (with `fps`) for a fixed length. `spline` + `constant speed` gives the "
            "smoothest, evenly paced motion; `linear` easing puts every keyframe on an exact "
            "frame, `ease-in-out` pauses at each one. Keep the fps of **Save Animated WEBP** "
            "equal to the path's fps. For a random journey instead of chosen seeds, swap the "
            "path for **Latent Walk**.", near=path)


WORKFLOWS = {"sample_grid": sample_grid, "class_grid": class_grid,
             "looping_animation": looping_animation}


def main() -> int:
    sys.path.insert(0, str(HERE))
    from comfy_engine import Engine
    from run_workflow import engine_object_info
    from workflow_builder import Workflow

    engine = Engine.get()
    info = engine_object_info(engine)
    for name, build in WORKFLOWS.items():
        wf = Workflow(info)
        build(wf)
        for path, data in ((REPO / "workflows" / f"{name}.json", wf.ui()),
                           (REPO / "workflows" / "api" / f"{name}.json", wf.api())):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(data, indent=2) + "\n")
            print(path.relative_to(REPO))
    return 0


if __name__ == "__main__":
    sys.exit(main())
