"""Regenerate the workflow gallery: workflows/<name>.json (UI) + workflows/api/<name>.json.

    .venv/bin/python scripts/build_workflows.py [--thumbnails]

Each workflow is described once below with scripts/workflow_builder.py, against the node
definitions of the real engine, so UI files and API twins cannot disagree. --thumbnails also runs each one on the real
engine and saves workflows/<name>.jpg from its outputs.
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


def train_from_folder(wf) -> None:
    data = wf.add("GANStudioTrainingDataset", folder="gan_studio_shapes", resolution=32,
                  fit="crop", xflip=True, background="#ffffff")
    trainer = wf.add("GANStudioTrainer", dataset=data.out(), recipe="cdcgan", resolution=0,
                     batch_size=32, loss="ns", diffaugment="off", width=32, seed=0)
    first = wf.add("GANStudioTrainSteps", title="Train Steps (first 200)", trainer=trainer.out(),
                   steps=200, preview_every=25)
    second = wf.add("GANStudioTrainSteps", title="Train Steps (200 more)", trainer=first.out(0),
                    steps=200, preview_every=25)
    wf.add("PreviewImage", images=second.out(3))
    wf.add("GANStudioSaveModel", model=second.out(1), filename_prefix="gan_studio/shapes_cdcgan",
           include_discriminator=True)
    latents = wf.add("GANStudioSampleLatents", model=second.out(1), seed=0, batch_size=9)
    cond = wf.add("GANStudioClassCondition", model=second.out(1), latents=latents.out(),
                  classes="circle, square, triangle", mode="cycle")
    images = wf.add("GANStudioGenerate", model=second.out(1), latents=cond.out())
    wf.add("SaveImage", images=images.out(), filename_prefix="gan_studio/shapes_trained")
    wf.note("**Train a GAN on a folder.** `Training Dataset` reads `ComfyUI/input/"
            "gan_studio_shapes` (one subfolder per class; put your own images in a folder "
            "there, or a link to a folder elsewhere). `GAN Trainer` sets up the run; each `Train Steps` "
            "trains on and shows a fixed sample grid, and can be chained or re-queued with "
            "more steps (training continues, inputs are never changed). Cancelling saves a "
            "checkpoint to `output/gan_studio_training/`. `Save GAN Model` writes the averaged "
            "generator to `models/gan`.", near=trainer)


WORKFLOWS = {"sample_grid": sample_grid, "class_grid": class_grid,
             "looping_animation": looping_animation, "train_from_folder": train_from_folder}


def thumbnail(engine, api: dict, target: Path) -> None:
    """Run the workflow and tile (up to 8 of) its output images into a small JPEG."""
    from PIL import Image

    result = engine.run(api)
    if not result.success:
        raise SystemExit(f"{target.stem}: {result.describe_error()}")
    frames = []
    for out in result.outputs.values():
        for item in out.get("images", []):
            with Image.open(Path(engine.folder_paths.get_output_directory()) / item["subfolder"]
                            / item["filename"]) as im:
                count = getattr(im, "n_frames", 1)
                for k in range(0, count, max(1, count // 8)):
                    im.seek(k)
                    frames.append(im.convert("RGB").resize((96, 96), Image.LANCZOS))
    frames = frames[:8]
    cols = min(4, len(frames))
    rows = (len(frames) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * 96, rows * 96), "white")
    for i, frame in enumerate(frames):
        sheet.paste(frame, ((i % cols) * 96, (i // cols) * 96))
    sheet.save(target, quality=85)


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(HERE))
    import tempfile

    from comfy_engine import Engine
    from run_workflow import engine_object_info
    from workflow_builder import Workflow

    engine = Engine.get(output_dir=Path(tempfile.mkdtemp(prefix="gan_studio_thumbs_")))
    info = engine_object_info(engine)
    for name, build in WORKFLOWS.items():
        wf = Workflow(info)
        build(wf)
        api = wf.api()
        for path, data in ((REPO / "workflows" / f"{name}.json", wf.ui()),
                           (REPO / "workflows" / "api" / f"{name}.json", api)):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(data, indent=2) + "\n")
            print(path.relative_to(REPO))
        if "--thumbnails" in argv:
            thumbnail(engine, api, REPO / "workflows" / f"{name}.jpg")
            print(f"workflows/{name}.jpg")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
