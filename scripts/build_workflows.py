"""Regenerate the workflow gallery: workflows/<name>.json (UI) + workflows/api/<name>.json.

    .venv/bin/python scripts/build_workflows.py [--thumbnails] [NAME ...]

Each workflow is described once below with scripts/workflow_builder.py, against the node
definitions of the real engine, so UI files and API twins cannot disagree. --thumbnails also
runs each one on the real engine and saves workflows/<name>.jpg from its outputs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# Shipped in the pack's models/gan (docs/models.md): every workflow that uses only these runs
# out of the box.
STARTER_MODEL = "gan_studio_twemoji_stylegan2.safetensors"
VAE_MODEL = "gan_studio_twemoji_vae.safetensors"
SKETCH_MODEL = "gan_studio_sketch2emoji.safetensors"
TEXT_MODEL = "gan_studio_text2emoji.safetensors"
NGC = "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/"
SG2_FFHQ = "stylegan2-ffhq-256x256.pkl"  # NVlabs' official pickles: users download them
SG3_FFHQU = "stylegan3-t-ffhqu-256x256.pkl"
BIGGAN_MODEL = "gan_studio_twemoji_biggan.safetensors"
BIGGAN_RELEASE = "https://s3.amazonaws.com/models.huggingface.co/biggan/"


def nvlabs_model(name: str) -> list[dict]:
    """properties.models entry: the frontend names the missing file and where to get it."""
    return [{"name": name, "url": NGC + name, "directory": "gan"}]


def biggan_releases() -> list[dict]:
    """properties.models: the public BigGAN-deep 128/256/512 weights, each a .bin and the
    config.json the importer reads beside it (pytorch-pretrained-BigGAN release names)."""
    return [{"name": f"biggan-deep-{size}-{part}", "url": BIGGAN_RELEASE +
             f"biggan-deep-{size}-{part}", "directory": "gan"}
            for size in (128, 256, 512) for part in ("pytorch_model.bin", "config.json")]


def sample_grid(wf) -> None:
    model = wf.add("GANStudioLoadModel", ckpt_name=STARTER_MODEL)
    latents = wf.add("GANStudioSampleLatents", model=model.out(), seed=0, batch_size=16)
    images = wf.add("GANStudioGenerate", model=model.out(), latents=latents.out())
    bigger = wf.add("ImageScaleBy", image=images.out(), upscale_method="nearest-exact",
                    scale_by=2.0)
    wf.add("SaveImage", images=bigger.out(), filename_prefix="gan_studio/sample_grid")
    wf.note("**Sample grid.** Draws 16 images from the model. Sample *i* uses seed + *i*, so any "
            "image can be regenerated on its own: set `seed` to its number and `batch_size` to "
            "1. Lower `truncation_psi` for cleaner, more typical images. Pick your own model "
            "in **Load GAN Model** (files in `ComfyUI/models/gan`).", near=latents)


def class_grid(wf) -> None:
    model = wf.add("GANStudioLoadModel", ckpt_name=STARTER_MODEL)
    latents = wf.add("GANStudioSampleLatents", model=model.out(), seed=7, batch_size=8)
    cond = wf.add("GANStudioClassCondition", model=model.out(), latents=latents.out(),
                  classes="smileys_and_emotion, animals_and_nature, food_and_drink, flags",
                  mode="cycle")
    images = wf.add("GANStudioGenerate", model=model.out(), latents=cond.out())
    wf.add("SaveImage", images=images.out(), filename_prefix="gan_studio/class_grid")
    wf.note("**Class-conditional grid.** `classes` lists class names or indices of a "
            "conditional model (the starter model's nine are the Unicode emoji categories: "
            "activities, animals_and_nature, flags, food_and_drink, objects, people_and_body, "
            "smileys_and_emotion, symbols, travel_and_places); `cycle` gives sample *i* the "
            "*i*-th class, `mix` blends them with weights such as `flags:0.5, symbols:0.5`.",
            near=cond)


def looping_animation(wf) -> None:
    model = wf.add("GANStudioLoadModel", ckpt_name=STARTER_MODEL)
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
            "there, or a link to a folder elsewhere). `GAN Trainer` sets up the run; each "
            "`Train Steps` "
            "trains on and shows a fixed sample grid, and can be chained or re-queued with "
            "more steps (training continues, inputs are never changed). Cancelling saves a "
            "checkpoint to `output/gan_studio_training/`. `Save GAN Model` writes the averaged "
            "generator to `models/gan`.", near=trainer)


def progan_training(wf) -> None:
    data = wf.add("GANStudioTrainingDataset", folder="gan_studio_shapes", resolution=32,
                  fit="crop", xflip=True, background="#ffffff")
    # Tiny phases (100 images stable, 50 fading) so the graph grows 4 -> 32 px in seconds;
    # for real data leave stage_kimg / fade_kimg at the recipe's defaults (2 kimg a phase).
    trainer = wf.add("GANStudioTrainer", dataset=data.out(), recipe="progan", resolution=0,
                     batch_size=8, loss="wgan-gp", diffaugment="off", width=8, seed=0,
                     options="stage_kimg=0.1\nfade_kimg=0.05\nmax_channels=32\nz_dim=32")
    steps = wf.add("GANStudioTrainSteps", title="Train Steps (grows 4 -> 32 px)",
                   trainer=trainer.out(), steps=200, preview_every=10)
    wf.add("PreviewImage", images=steps.out(3))
    latents = wf.add("GANStudioSampleLatents", model=steps.out(1), seed=0, batch_size=9)
    cond = wf.add("GANStudioClassCondition", model=steps.out(1), latents=latents.out(),
                  classes="circle, square, triangle", mode="cycle")
    images = wf.add("GANStudioGenerate", model=steps.out(1), latents=cond.out())
    # The model draws at the stage it has reached (4 px at first): show every stage at 64 px.
    bigger = wf.add("ImageScale", image=images.out(), upscale_method="nearest-exact", width=64,
                    height=64, crop="disabled")
    wf.add("SaveImage", images=bigger.out(), filename_prefix="gan_studio/progan_shapes")
    wf.note("**Grow a Progressive GAN.** The `progan` recipe starts at 4x4 and adds a block "
            "per doubling, fading each one in (`stage_kimg` stable and `fade_kimg` fading, in "
            "thousands of images). The preview names the stage (e.g. `16px fade 0.40`) and "
            "shows it enlarged; the model generates at the stage it has reached. Re-queue "
            "Train Steps to keep growing; on your own data keep the default phases.",
            near=trainer)


def seed_morph(wf) -> None:
    model = wf.add("GANStudioLoadModel", ckpt_name=STARTER_MODEL)
    start = wf.add("GANStudioSampleLatents", title="Sample Latents (from)", model=model.out(),
                   seed=3, batch_size=1, truncation_psi=0.8)
    end = wf.add("GANStudioSampleLatents", title="Sample Latents (to)", model=model.out(),
                 seed=11, batch_size=1, truncation_psi=0.8)
    morph = wf.add("GANStudioInterpolateLatents", latents_a=start.out(), latents_b=end.out(),
                   steps=24, method="auto", easing="smoothstep", include_end=True)
    images = wf.add("GANStudioGenerate", model=model.out(), latents=morph.out())
    wf.add("SaveAnimatedWEBP", images=images.out(), filename_prefix="gan_studio/morph",
           fps=12.0, lossless=True, quality=90, method="default")
    wf.note("**Morph between two seeds.** Set the two seeds to images you like (find them "
            "with the sample grid: image *i* of a grid seeded *s* is seed *s* + *i*). "
            "`smoothstep` starts and stops gently; `slerp` (auto for z) keeps every frame a "
            "typical sample.", near=morph)


def text_to_emoji(wf) -> None:
    model = wf.add("GANStudioLoadModel", ckpt_name=TEXT_MODEL)
    latents = wf.add("GANStudioSampleLatents", model=model.out(), seed=0, batch_size=8)
    text = wf.add("GANStudioTextCondition", model=model.out(), latents=latents.out(),
                  prompts="grinning face + smileys and emotion, flag + flags, "
                          "keycap + symbols, pizza + food and drink", mode="cycle")
    images = wf.add("GANStudioGenerate", model=model.out(), latents=text.out())
    bigger = wf.add("ImageScale", image=images.out(), upscale_method="nearest-exact",
                    width=128, height=128, crop="disabled")
    wf.add("SaveImage", images=bigger.out(), filename_prefix="gan_studio/text_to_emoji")
    wf.note("**Type a prompt, get emoji.** The shipped text-to-emoji StackGAN draws 64 px "
            "emoji from words of Twemoji names, short names and categories (e.g. `cat face`, "
            "`pizza, food and drink`, `flag, flags`, `grinning face`). Commas separate "
            "prompts: in `mix` mode their embeddings are averaged (weights like "
            "`cat:0.7, rocket:0.3`), in `cycle` mode sample *i* gets prompt *i*. Words the "
            "model never saw are ignored and listed under the node; `+` mixes prompts "
            "within one entry of a cycle. Each seed is another drawing of the same text.",
            near=text)


def prompt_morph(wf) -> None:
    model = wf.add("GANStudioLoadModel", ckpt_name=TEXT_MODEL)
    latent = wf.add("GANStudioSampleLatents", model=model.out(), seed=3, batch_size=1)
    copies = wf.add("GANStudioRepeatLatents", latents=latent.out(), times=3,
                    mode="whole batch")
    text = wf.add("GANStudioTextCondition", model=model.out(), latents=copies.out(),
                  prompts="red heart\ngrinning face + smileys and emotion\n"
                          "fire + travel and places",
                  mode="cycle")
    path = wf.add("GANStudioKeyframePath", model=model.out(), seeds="0",
                  frames_per_segment=12, interpolation="spline", easing="ease-in-out",
                  loop=True, truncation_psi=1.0, seconds=0.0, fps=12.0,
                  keyframes=text.out())
    images = wf.add("GANStudioGenerate", model=model.out(), latents=path.out())
    bigger = wf.add("ImageScale", image=images.out(), upscale_method="bilinear", width=128,
                    height=128, crop="disabled")
    wf.add("SaveAnimatedWEBP", images=bigger.out(), filename_prefix="gan_studio/prompt_morph",
           fps=12.0, lossless=False, quality=90, method="default")
    wf.note("**Prompt morph.** One latent repeated three times, each copy given its own "
            "prompt (`cycle`: one entry per line, `+` mixes prompts within an entry), then "
            "Keyframe Path travels through them "
            "and back: the text embedding moves together with the latent, so the emoji "
            "morphs from one prompt to the next. Add lines for more keyframes; keep the fps "
            "of **Save Animated WEBP** equal to the path's.", near=path)


def style_mixing(wf) -> None:
    model = wf.add("GANStudioLoadModel", ckpt_name=STARTER_MODEL)
    rows = wf.add("GANStudioSampleLatents", title="Sample Latents (rows)", model=model.out(),
                  seed=0, batch_size=3, truncation_psi=0.7)
    cols = wf.add("GANStudioSampleLatents", title="Sample Latents (columns)",
                  model=model.out(), seed=100, batch_size=3, truncation_psi=0.7)
    mixed = wf.add("GANStudioStyleMix", model=model.out(), base=rows.out(), donor=cols.out(),
                   preset="coarse", layer_start=0, layer_end=4, layout="grid")
    images = wf.add("GANStudioGenerate", model=model.out(), latents=mixed.out())
    wf.add("SaveImage", images=images.out(), filename_prefix="gan_studio/style_mixing")
    wf.note("**Style mixing** (StyleGAN2). Each row image takes the *coarse* styles (overall "
            "shape and layout; pose and face shape in a face model) of each column image: "
            "3 x 3 results, row by row. Try `middle` (features) or `fine` (colours). Any "
            "StyleGAN2 works, e.g. NVIDIA's `stylegan2-ffhq-256x256.pkl` in "
            "`ComfyUI/models/gan` (pickles and rosinality .pt files are read safely, without "
            "running code from the file).", near=mixed)


def stylegan3_transform(wf) -> None:
    model = wf.add("GANStudioLoadModel", ckpt_name=SG3_FFHQU, models=nvlabs_model(SG3_FFHQU))
    latents = wf.add("GANStudioSampleLatents", model=model.out(), seed=4, batch_size=1,
                     truncation_psi=0.7)
    view = wf.add("GANStudioStyleGAN3View", model=model.out(), latents=latents.out(),
                  translate_x=0.15, translate_y=0.0, rotate=15.0)
    still = wf.add("GANStudioGenerate", title="Generate Images (original)", model=model.out(),
                   latents=latents.out())
    moved = wf.add("GANStudioGenerate", title="Generate Images (moved)", model=model.out(),
                   latents=view.out())
    pair = wf.add("ImageBatch", image1=still.out(), image2=moved.out())
    wf.add("SaveImage", images=pair.out(), filename_prefix="gan_studio/stylegan3_view")
    wf.note("**StyleGAN3 translate / rotate.** The same face, re-synthesised with the camera "
            "moved and turned: StyleGAN3's alias-free layers keep details attached to the "
            "surface. Needs NVIDIA's `stylegan3-t-ffhqu-256x256.pkl` (or any StyleGAN3 "
            "pickle) in `ComfyUI/models/gan`.", near=view)


def vae_morph(wf) -> None:
    model = wf.add("GANStudioLoadModel", ckpt_name=VAE_MODEL)
    first = wf.add("LoadImage", image="gan_studio_emoji_grinning.png")
    second = wf.add("LoadImage", image="gan_studio_emoji_cat.png")
    enc_a = wf.add("GANStudioEncodeImages", title="Encode Images (from)", model=model.out(),
                   images=first.out(0), mask=first.out(1))
    enc_b = wf.add("GANStudioEncodeImages", title="Encode Images (to)", model=model.out(),
                   images=second.out(0), mask=second.out(1))
    morph = wf.add("GANStudioInterpolateLatents", latents_a=enc_a.out(), latents_b=enc_b.out(),
                   steps=24, method="auto", easing="smoothstep", include_end=True)
    images = wf.add("GANStudioGenerate", model=model.out(), latents=morph.out())
    wf.add("SaveAnimatedWEBP", images=images.out(), filename_prefix="gan_studio/vae_morph",
           fps=12.0, lossless=True, quality=90, method="default")
    wf.note("**Morph between two of your images** with a VAE: each picture is encoded to a "
            "latent, the path between them is decoded frame by frame. Load your own images "
            "instead of the two emoji (any size: they are cropped to the model's resolution). "
            "The shipped VAE was trained on Twemoji at 64 px, so emoji-like pictures work "
            "best; train your own with the VAE Trainer.", near=morph)


def latent_arithmetic(wf) -> None:
    model = wf.add("GANStudioLoadModel", ckpt_name=VAE_MODEL)
    names = ("gan_studio_emoji_heart_eyes.png", "gan_studio_emoji_grinning.png",
             "gan_studio_emoji_cat.png")
    loads = [wf.add("LoadImage", image=name) for name in names]
    enc = [wf.add("GANStudioEncodeImages", title=f"Encode Images ({label})",
                  model=model.out(), images=load.out(0), mask=load.out(1))
           for label, load in zip("abc", loads)]
    result = wf.add("GANStudioLatentArithmetic", latents_a=enc[0].out(), latents_b=enc[1].out(),
                    latents_c=enc[2].out(), weight_a=1.0, weight_b=1.0, weight_c=1.0)
    images = wf.add("GANStudioGenerate", model=model.out(), latents=result.out())
    wf.add("SaveImage", images=images.out(), filename_prefix="gan_studio/latent_arithmetic")
    wf.note("**Latent arithmetic**: heart-eyes face - grinning face + cat = a cat with the "
            "heart-eyes feature, as far as the model has learned it. Change the weights to "
            "exaggerate or soften the edit.", near=result)


def fine_tune(wf) -> None:
    model = wf.add("GANStudioLoadModel", ckpt_name=SG2_FFHQ, models=nvlabs_model(SG2_FFHQ))
    data = wf.add("GANStudioTrainingDataset", folder="gan_studio_shapes", resolution=256,
                  fit="crop", xflip=True, background="#ffffff")
    trainer = wf.add("GANStudioTrainer", dataset=data.out(), recipe="stylegan2-ada",
                     resolution=0, batch_size=4, lr_g=0.0025, lr_d=0.0025, beta1=0.0,
                     beta2=0.99, loss="ns", diffaugment="off", width=64, seed=0,
                     model=model.out(), options="freeze_d=2\nconditional=false")
    steps = wf.add("GANStudioTrainSteps", trainer=trainer.out(), steps=20, preview_every=5)
    wf.add("GANStudioSaveModel", model=steps.out(1), filename_prefix="gan_studio/finetuned",
           include_discriminator=True)
    latents = wf.add("GANStudioSampleLatents", model=steps.out(1), seed=0, batch_size=4,
                     truncation_psi=0.7)
    images = wf.add("GANStudioGenerate", model=steps.out(1), latents=latents.out())
    wf.add("SaveImage", images=images.out(), filename_prefix="gan_studio/finetuned")
    wf.note("**Fine-tune a StyleGAN2 on your images** (StyleGAN2-ADA: adaptive augmentation "
            "for small datasets). Put a folder of your pictures in `ComfyUI/input` and name it "
            "in Training Dataset, at the model's resolution (256 here). `freeze_d=2` keeps the "
            "discriminator's two highest-resolution blocks fixed (Freeze-D), which helps with "
            "few images; `conditional=false` ignores class subfolders (the FFHQ model has no "
            "classes). 20 steps only show the plumbing: on a GPU, queue Train Steps again "
            "(training continues) or raise `steps` to a few thousand. The pickle is read "
            "safely; the result saves as a GAN Studio .safetensors.", near=trainer)


def sketch_to_emoji(wf) -> None:
    model = wf.add("GANStudioLoadModel", ckpt_name=SKETCH_MODEL)
    drawing = wf.add("LoadImage", title="Load Image (your drawing)",
                     image="gan_studio_drawing_smiley.png")
    canvas = wf.add("LoadImage", title="Load Image (draw in the mask editor)",
                    image="gan_studio_canvas_drawing.png")
    strokes = wf.add("MaskToImage", mask=canvas.out(1))
    lines = wf.add("ImageInvert", image=strokes.out())
    sketches = [wf.add("ImageScale", image=source.out(), upscale_method="area", width=64,
                       height=64, crop="center") for source in (drawing, lines)]
    both = wf.add("ImageBatch", image1=sketches[0].out(), image2=sketches[1].out())
    emoji = wf.add("GANStudioTranslateImage", model=model.out(), images=both.out(),
                   strength=1.0)
    pairs = wf.add("ImageBatch", image1=both.out(), image2=emoji.out())
    bigger = wf.add("ImageScaleBy", image=pairs.out(), upscale_method="nearest-exact",
                    scale_by=4.0)
    wf.add("SaveImage", images=bigger.out(), filename_prefix="gan_studio/sketch_to_emoji")
    wf.note("**Sketch -> emoji.** Black lines on white become a Twemoji-style colouring "
            "(the shipped pix2pix model, 64 px). Two ways in: load your own drawing (top), "
            "or right-click the second Load Image > Open in MaskEditor and draw on the "
            "white canvas: the painted mask becomes the lines. Drawings are scaled to 64 x 64 "
            "first, so draw big with a thick pen. Saved: the two sketches, then their "
            "emoji.", near=emoji)


def photo_to_style(wf) -> None:
    photo = wf.add("LoadImage", title="Load Image (content)", image="gan_studio_photo_cat.png")
    style = wf.add("LoadImage", title="Load Image (style)", image="gan_studio_style_mosaic.png")
    styled = wf.add("GANStudioNeuralStyle", content=photo.out(), style=style.out(), steps=150,
                    style_weight=1.0, content_weight=1.0, size=384,
                    features="EfficientNet-Lite0 (pip package)", learning_rate=0.02,
                    style_scale=1.0)
    wf.add("SaveImage", images=styled.out(), filename_prefix="gan_studio/photo_to_style")
    wf.add("PreviewAny", source=styled.out(1))
    wf.note("**Photo -> painting** by neural style optimisation: no trained model, only a "
            "pretrained feature network (EfficientNet-Lite0 from the pip package; put a "
            "torchvision VGG-16/19 .pth in `ComfyUI/models/gan_perceptual` to use that). "
            "About 40 s for 150 steps at 384 px on a CPU. Lower `style_weight` to keep more of "
            "the photo; press Cancel any time to get the best image so far.", near=styled)


def edit_sliders(wf) -> None:
    model = wf.add("GANStudioLoadModel", ckpt_name=STARTER_MODEL)
    latents = wf.add("GANStudioSampleLatents", model=model.out(), seed=1, batch_size=1,
                     truncation_psi=0.7)
    found = wf.add("GANStudioFindDirections", model=model.out(), method="sefa", count=8)
    explore = wf.add("GANStudioDirectionExplorer", model=model.out(), latents=latents.out(),
                     directions=found.out(0), show="0-5", strengths="-4, -2, 0, 2, 4")
    wf.add("SaveImage", images=explore.out(0), filename_prefix="gan_studio/directions")
    first = wf.add("GANStudioApplyDirection", title="Apply Direction (slider 1)",
                   model=model.out(), latents=latents.out(), directions=found.out(0),
                   direction="1", strength=-2.0)
    second = wf.add("GANStudioApplyDirection", title="Apply Direction (slider 5)",
                    model=model.out(), latents=first.out(), directions=found.out(0),
                    direction="5", strength=3.0)
    images = wf.add("GANStudioGenerate", model=model.out(), latents=second.out())
    wf.add("SaveImage", images=images.out(), filename_prefix="gan_studio/edited")
    wf.note("**Edit a sample with sliders.** Find Directions reads the model's weights (SeFa) "
            "and lists its strongest directions; Direction Explorer shows what each does "
            "(rows) at five strengths (columns). Pick the ones you like and drag the "
            "`strength` sliders of the Apply Direction nodes (chain more for more edits; 1 = "
            "one standard deviation of the model's style vectors). `ganspace` and `classes` "
            "(towards each emoji category) are other methods; Save Directions keeps them.",
            near=found)


def project_and_animate(wf) -> None:
    model = wf.add("GANStudioLoadModel", ckpt_name=STARTER_MODEL)
    image = wf.add("LoadImage", image="gan_studio_emoji_grinning.png")
    projected = wf.add("GANStudioProjectImage", model=model.out(), images=image.out(0),
                       mask=image.out(1), space="auto", steps=200, perceptual="auto")
    wf.add("SaveImage", images=projected.out(2), filename_prefix="gan_studio/projected")
    found = wf.add("GANStudioFindDirections", model=model.out(), method="sefa", count=8)
    edit = wf.add("GANStudioApplyDirection", model=model.out(), latents=projected.out(0),
                  directions=found.out(0), direction="2", strip="0, -2.5, 0, 2.5")
    path = wf.add("GANStudioKeyframePath", model=model.out(), keyframes=edit.out(),
                  frames_per_segment=12, interpolation="spline", easing="ease-in-out",
                  loop=True)
    frames = wf.add("GANStudioGenerate", model=model.out(), latents=path.out())
    wf.add("SaveAnimatedWEBP", images=frames.out(), filename_prefix="gan_studio/projected_loop",
           fps=12.0, lossless=True, quality=90, method="default")
    wf.note("**Project your image, then animate it.** Project Image searches the model for "
            "the latent that draws your picture (w+ for StyleGAN: one style per layer; 200 "
            "steps take about a minute on a CPU; Cancel keeps the best so far). The "
            "comparison shows input | reconstruction. Apply Direction moves it both ways "
            "along SeFa direction 2 (`strip` lists the keyframes: bolder, back, paler) and "
            "Keyframe Path loops through them; try other directions, or `classes` to move "
            "towards an emoji category. Load your own image (any size: it is cropped to "
            "64 px); emoji-like pictures suit the shipped model. Save Latents keeps the "
            "projection.",
            near=projected)


def class_mixing(wf) -> None:
    model = wf.add("GANStudioLoadModel", ckpt_name=BIGGAN_MODEL, models=biggan_releases())
    # a walk from one class mix to another: z and class weights move together
    start = wf.add("GANStudioSampleLatents", title="Sample Latents (from)", model=model.out(),
                   seed=5, batch_size=1, truncation_psi=0.6)
    start_mix = wf.add("GANStudioClassCondition", title="Class Condition (from)",
                       model=model.out(), latents=start.out(),
                       classes="smileys_and_emotion:0.7, food_and_drink:0.3", mode="mix")
    end = wf.add("GANStudioSampleLatents", title="Sample Latents (to)", model=model.out(),
                 seed=9, batch_size=1, truncation_psi=0.6)
    end_mix = wf.add("GANStudioClassCondition", title="Class Condition (to)",
                     model=model.out(), latents=end.out(),
                     classes="animals_and_nature:0.5, travel_and_places:0.5", mode="mix")
    walk = wf.add("GANStudioInterpolateLatents", latents_a=start_mix.out(),
                  latents_b=end_mix.out(), steps=8, method="auto", easing="smoothstep",
                  include_end=True)
    frames = wf.add("GANStudioGenerate", model=model.out(), latents=walk.out())
    wf.add("SaveImage", images=frames.out(), filename_prefix="gan_studio/class_mixing_walk")
    # genes: seeded mutations around one mix, one per sample
    latents = wf.add("GANStudioSampleLatents", title="Sample Latents (genes)",
                     model=model.out(), seed=21, batch_size=4, truncation_psi=0.6)
    mix = wf.add("GANStudioClassCondition", title="Class Condition (genes)", model=model.out(),
                 latents=latents.out(), classes="food_and_drink:0.5, objects:0.5", mode="mix")
    genes = wf.add("GANStudioClassGenes", model=model.out(), latents=mix.out(), seed=3,
                   strength=0.6, new_classes=2, per_sample=True)
    images = wf.add("GANStudioGenerate", model=model.out(), latents=genes.out())
    wf.add("SaveImage", images=images.out(), filename_prefix="gan_studio/class_genes")
    # a looping keyframe path through three class mixes
    keys = wf.add("GANStudioSampleLatents", title="Sample Latents (keyframes)",
                  model=model.out(), seed=40, batch_size=3, truncation_psi=0.6)
    key_mixes = wf.add("GANStudioClassCondition", title="Class Condition (keyframes)",
                       model=model.out(), latents=keys.out(),
                       classes="smileys_and_emotion, animals_and_nature:0.5 + flags:0.5, "
                               "food_and_drink", mode="cycle")
    path = wf.add("GANStudioKeyframePath", model=model.out(), seeds="1, 5, 42",
                  frames_per_segment=16, interpolation="spline", easing="constant speed", loop=True,
                  truncation_psi=0.6, seconds=0.0, fps=16.0, keyframes=key_mixes.out())
    clip = wf.add("GANStudioGenerate", model=model.out(), latents=path.out())
    wf.add("SaveAnimatedWEBP", images=clip.out(), filename_prefix="gan_studio/class_path",
           fps=16.0, lossless=True, quality=90, method="default")
    wf.note("**Class mixing** (BigGAN). A class-conditional model takes weights over its "
            "classes, so `classes` can mix them: `smileys_and_emotion:0.7, food_and_drink:0.3`. "
            "**Interpolate Latents** walks from one mix to another (z and the class weights "
            "move together); **Class Genes** mutates a mix with a seed and a strength (classes "
            "re-weighted, `new_classes` random ones join); **Keyframe Path** loops through "
            "class mixes (`cycle` gives keyframe *i* the *i*-th entry, `+` joins classes in one "
            "entry). The model here is our small BigGAN trained on the nine Twemoji "
            "categories. For ImageNet, put a public BigGAN-deep release in `ComfyUI/models/gan` "
            "(e.g. `biggan-deep-256-pytorch_model.bin` with `biggan-deep-256-config.json` "
            "beside it) and mix by name: `golden retriever:0.6, volcano:0.4`. "
            "`truncation_psi` is BigGAN's truncation (lower: cleaner, less varied).",
            near=genes)


WORKFLOWS = {"sample_grid": sample_grid, "class_grid": class_grid,
             "looping_animation": looping_animation, "seed_morph": seed_morph,
             "style_mixing": style_mixing, "stylegan3_transform": stylegan3_transform,
             "vae_morph": vae_morph, "latent_arithmetic": latent_arithmetic,
             "train_from_folder": train_from_folder, "fine_tune": fine_tune,
             "sketch_to_emoji": sketch_to_emoji, "photo_to_style": photo_to_style,
             "edit_sliders": edit_sliders, "project_and_animate": project_and_animate,
             "class_mixing": class_mixing,
             "progan_training": progan_training, "text_to_emoji": text_to_emoji,
             "prompt_morph": prompt_morph}


def missing_models(engine, api: dict) -> list[str]:
    names = [n["inputs"]["ckpt_name"] for n in api.values()
             if n["class_type"] == "GANStudioLoadModel"]
    return [n for n in names if engine.folder_paths.get_full_path("gan", n) is None]


def thumbnail(engine, api: dict, target: Path) -> None:
    """Run the workflow and tile (up to 8 of) its output images into a small JPEG."""
    from PIL import Image

    result = engine.run(api)
    if not result.success:
        raise SystemExit(f"{target.stem}: {result.describe_error()}")
    frames = []
    for out in result.outputs.values():
        for item in out.get("images", []):
            if item.get("type") != "output":  # previews live in the temp folder
                continue
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

    engine = Engine.get(output_dir=Path(tempfile.mkdtemp(prefix="gan_studio_thumbs_")),
                        input_dir=Path(tempfile.mkdtemp(prefix="gan_studio_inputs_")))
    info = engine_object_info(engine)
    chosen = [a for a in argv if not a.startswith("--")]  # names: only these workflows
    for name, build in WORKFLOWS.items():
        if chosen and name not in chosen:
            continue
        wf = Workflow(info)
        build(wf)
        api = wf.api()
        for path, data in ((REPO / "workflows" / f"{name}.json", wf.ui()),
                           (REPO / "workflows" / "api" / f"{name}.json", api)):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(data, indent=2) + "\n")
            print(path.relative_to(REPO))
        if "--thumbnails" in argv:
            missing = missing_models(engine, api)
            if missing:  # e.g. NVIDIA's pickles: never render a thumbnail from a stand-in
                print(f"workflows/{name}.jpg: skipped, {', '.join(missing)} not installed")
                continue
            thumbnail(engine, api, REPO / "workflows" / f"{name}.jpg")
            print(f"workflows/{name}.jpg")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
