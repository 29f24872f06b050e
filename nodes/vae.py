"""VAE nodes: images into latents, reconstructions, latent arithmetic.

Decoding is Generate Images: a VAE's decoder is its generator.
"""

from __future__ import annotations

import logging

from comfy_api.v0_0_2 import io

from ..gan_models.checks import require_finite
from ..gan_models.latent import MAX_SEED
from ..gan_models.memory import activation_bytes, encode_peak, images_what
from ..gan_models.vae_ops import (
    SIZE_MODES,
    class_weights,
    encode_images,
    latent_arithmetic,
    reconstruct,
    reconstruction_grid,
    to_model_input,
    with_mask_alpha,
)
from .common import (
    CATEGORY,
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

log = logging.getLogger("gan_studio")
CHUNK = 64
SIZE_TOOLTIP = ("Images of another size than the model's: crop (fill the square, cut the "
                "overhang), pad (fit inside on white), stretch (ignore the aspect ratio), or "
                "refuse (stop with an error).")
CLASSES_TOOLTIP = ("Class-conditional models only: the images' classes, names or indices, one "
                   "per image and cycled ('cat' for all, 'cat, dog' alternating, "
                   "'cat:0.7 + dog:0.3' for a mix). Leave empty for other models.")
MASK_TOOLTIP = ("Optional MASK of transparent areas (Load Image's mask output): they are "
                "flattened onto white, as training images with alpha are.")


def _model_inputs(node: str, model, images, size_handling, mask, reconstruct=False):
    """IMAGE (+ MASK) -> model input tensor, logging a warning when images were resized;
    refused first when the job's peak memory would not fit."""
    b, h, w = images.shape[:3]
    res = model.resolution
    ensure_peak_fits(encode_peak(b, h, w, res, model.channels, CHUNK, masked=mask is not None,
                                 reconstruct=reconstruct), images_what(b, h, w))
    if mask is not None:
        images = with_mask_alpha(images, mask)
    x, note = to_model_input(images, model.resolution, model.channels, size_handling)
    if note:
        log.warning("GAN Studio %s: %s", node, note)
    return x


class EncodeImages(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="GANStudioEncodeImages",
            display_name="Encode Images",
            category=f"{CATEGORY}/vae",
            description="Turns images into a VAE's latents (the encoder's mean, or a seeded "
                        "sample). Interpolate, edit or add them, then decode with Generate "
                        "Images.",
            inputs=[
                GanModel.Input("model", tooltip="A VAE or VQ-VAE (a model with an encoder)."),
                io.Image.Input("images", tooltip="Images to encode; resized to the model's "
                                                 "resolution as size_handling says."),
                io.Combo.Input("mode", options=["mean", "sample"], default="mean",
                               tooltip="mean: the most likely latent (same image, same latent). "
                                       "sample: draw from the encoder's distribution (VQ-VAEs "
                                       "always give their one latent)."),
                io.Int.Input("seed", default=0, min=0, max=MAX_SEED, control_after_generate=True,
                             tooltip="Noise seed for mode 'sample'; image i uses seed + i."),
                io.Combo.Input("size_handling", options=list(SIZE_MODES), default="crop",
                               tooltip=SIZE_TOOLTIP),
                io.String.Input("classes", default="", tooltip=CLASSES_TOOLTIP),
                io.Mask.Input("mask", optional=True, tooltip=MASK_TOOLTIP),
            ],
            outputs=[GanLatent.Output(display_name="latents",
                                      tooltip="z latents of the model, one per image (with "
                                              "their classes for conditional models).")],
        )

    @classmethod
    @user_errors("Encode Images")
    def execute(cls, model, images, mode, seed, size_handling, classes,
                mask=None) -> io.NodeOutput:
        model = expect_model(model, "Encode Images", needs="encode")
        if mode not in ("mean", "sample"):
            raise NodeError(f"Encode Images: unknown mode {mode!r}")
        x = _model_inputs("Encode Images", model, images, size_handling, mask)
        labels = class_weights(model, classes, x.shape[0])
        place_for_inference(model, activation_bytes(CHUNK, model.resolution, model.resolution))
        progress = Progress(x.shape[0])
        latents = encode_images(model, x, labels, sample=mode == "sample", seed=seed,
                                chunk_size=CHUNK, on_chunk=progress.update)
        return io.NodeOutput(latents)


class Reconstruct(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="GANStudioReconstruct",
            display_name="Reconstruct",
            category=f"{CATEGORY}/vae",
            description="Encodes images and decodes them again, to see what a VAE keeps: a grid "
                        "of input|reconstruction pairs and the reconstructions themselves.",
            inputs=[
                GanModel.Input("model", tooltip="A VAE or VQ-VAE (a model with an encoder)."),
                io.Image.Input("images", tooltip="Images to reconstruct."),
                io.Combo.Input("size_handling", options=list(SIZE_MODES), default="crop",
                               tooltip=SIZE_TOOLTIP),
                io.String.Input("classes", default="", tooltip=CLASSES_TOOLTIP),
                io.Int.Input("pairs_per_row", default=4, min=1, max=64,
                             tooltip="How many input|reconstruction pairs the grid puts in "
                                     "one row."),
                io.Mask.Input("mask", optional=True, tooltip=MASK_TOOLTIP),
            ],
            outputs=[
                io.Image.Output(display_name="grid",
                                tooltip="One image: each input next to its reconstruction."),
                io.Image.Output(display_name="reconstructions",
                                tooltip="The reconstructions as an IMAGE batch at the model's "
                                        "resolution."),
            ],
        )

    @classmethod
    @user_errors("Reconstruct")
    def execute(cls, model, images, size_handling, classes, pairs_per_row,
                mask=None) -> io.NodeOutput:
        model = expect_model(model, "Reconstruct", needs="encode")
        x = _model_inputs("Reconstruct", model, images, size_handling, mask, reconstruct=True)
        labels = class_weights(model, classes, x.shape[0])
        place_for_inference(model, activation_bytes(CHUNK, model.resolution, model.resolution))
        progress = Progress(x.shape[0])
        recons = reconstruct(model, x, labels, chunk_size=CHUNK, on_chunk=progress.update)
        inputs = x.add(1).mul(0.5).clamp(0, 1)
        inputs = inputs[:, :3] if inputs.shape[1] >= 3 else inputs.expand(-1, 3, -1, -1)
        grid = reconstruction_grid(inputs.permute(0, 2, 3, 1).cpu(), recons, pairs_per_row)
        return io.NodeOutput(to_output_device(grid[None]), to_output_device(recons))


class LatentArithmetic(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="GANStudioLatentArithmetic",
            display_name="Latent Arithmetic",
            category=f"{CATEGORY}/vae",
            description="weight_a * a - weight_b * b + weight_c * c on latents of one model "
                        "(e.g. 'smiling woman' - 'woman' + 'man'). A single latent is applied to "
                        "every latent of the other batches. Works on any GAN or VAE latents.",
            inputs=[
                GanLatent.Input("latents_a", tooltip="The starting point."),
                io.Float.Input("weight_a", default=1.0, min=-10.0, max=10.0, step=0.05,
                               tooltip="Multiplier of a."),
                io.Float.Input("weight_b", default=1.0, min=-10.0, max=10.0, step=0.05,
                               tooltip="Multiplier of b, which is subtracted."),
                io.Float.Input("weight_c", default=1.0, min=-10.0, max=10.0, step=0.05,
                               tooltip="Multiplier of c, which is added."),
                GanLatent.Input("latents_b", optional=True,
                                tooltip="Subtracted (what to take away); optional."),
                GanLatent.Input("latents_c", optional=True,
                                tooltip="Added (what to put in its place); optional."),
            ],
            outputs=[GanLatent.Output(display_name="latents",
                                      tooltip="The result; classes combine the same way.")],
        )

    @classmethod
    @user_errors("Latent Arithmetic")
    def execute(cls, latents_a, weight_a, weight_b, weight_c, latents_b=None,
                latents_c=None) -> io.NodeOutput:
        a = expect_latents(latents_a, "Latent Arithmetic")
        b = None if latents_b is None else expect_latents(latents_b, "Latent Arithmetic")
        c = None if latents_c is None else expect_latents(latents_c, "Latent Arithmetic")
        out = latent_arithmetic(a, b, c, weight_a, weight_b, weight_c)
        require_finite(out.values, "the result", "the latents or weights are too large")
        return io.NodeOutput(out)


NODES = [EncodeImages, Reconstruct, LatentArithmetic]
