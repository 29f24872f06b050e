"""Sampling latents and turning them into ComfyUI IMAGE batches."""

from __future__ import annotations

import uuid
from dataclasses import replace

from comfy_api.v0_0_2 import io

from ..gan_models.acceleration import ERROR_NOTE as PRECISION_ERROR
from ..gan_models.acceleration import PRECISIONS
from ..gan_models.latent import MAX_SEED, SEED_MODES
from ..gan_models.memory import activation_bytes, generate_peak, images_what
from ..gan_models.model import generate_in_chunks
from .common import (
    CATEGORY,
    MAX_BATCH,
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


class SampleLatents(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="GANStudioSampleLatents",
            display_name="Sample Latents",
            category=f"{CATEGORY}/sample",
            description="Draws a reproducible batch of random latents for a model. Sample i uses "
                        "seed + i, so any image of a batch can be regenerated on its own.",
            inputs=[
                GanModel.Input("model", tooltip="The model the latents are for (sets their size "
                                                "and classes)."),
                io.Int.Input("seed", default=0, min=0, max=MAX_SEED, control_after_generate=True,
                             tooltip="Seed of the first sample; sample i uses seed + i. Same seed, "
                                     "same image, on any device."),
                io.Int.Input("batch_size", default=4, min=1, max=MAX_BATCH,
                             tooltip="How many latents to draw."),
                io.Float.Input("truncation_psi", default=1.0, min=0.0, max=2.0, step=0.05,
                               tooltip="Pull toward the average latent: 1 = full variety, lower "
                                       "= more typical, cleaner images, 0 = the average image. "
                                       "BigGAN: its truncation (0..1), which also picks the "
                                       "batch-norm statistics of that truncation."),
                io.Float.Input("truncate_normal", default=0.0, min=0.0, max=4.0, step=0.1,
                               tooltip="Truncated normal: redraw any latent value beyond this "
                                       "many standard deviations. 0 = the model's default: off, "
                                       "or 2 for BigGAN."),
                io.Combo.Input("seed_mode", options=list(SEED_MODES), default="torch",
                               tooltip="torch: CPU torch generator. nvlabs: numpy RandomState"
                                       "(seed).randn as NVlabs gen_images.py (seed mod 2^32)."),
                io.Combo.Input("space", options=["z", "w"], default="z", optional=True,
                               tooltip="z: the input noise (any model). w: StyleGAN's style "
                                       "space, mapped now with the truncation (w+ when a "
                                       "truncation_cutoff is set); best for interpolating "
                                       "and editing StyleGAN."),
                io.Int.Input("truncation_cutoff", default=0, min=0, max=64, optional=True,
                             tooltip="StyleGAN: apply truncation only to the first N style "
                                     "layers (coarse features); 0 = all layers."),
            ],
            outputs=[GanLatent.Output(display_name="latents",
                                      tooltip="Latents with their seeds and (for conditional "
                                              "models) a class per sample drawn from its seed.")],
        )

    @classmethod
    @user_errors("Sample Latents")
    def execute(cls, model, seed, batch_size, truncation_psi, truncate_normal,
                seed_mode, space="z", truncation_cutoff=0) -> io.NodeOutput:
        model = expect_model(model, "Sample Latents", needs="generate")
        if not 1 <= batch_size <= MAX_BATCH:
            raise NodeError(f"Sample Latents: batch_size must be 1..{MAX_BATCH}, got {batch_size}")
        if 0 < truncate_normal < 0.1:
            raise NodeError("Sample Latents: truncate_normal below 0.1 would redraw almost "
                            "every value; use 0 (off) or at least 0.1")
        batch = model.sample_latents(seed, batch_size, truncation_psi, truncate_normal, seed_mode)
        if truncation_cutoff:
            if not model.has_mapping:
                raise NodeError(f"Sample Latents: truncation_cutoff needs a style-based model; "
                                f"{model.describe()} has none (set it to 0)")
            batch = replace(batch, truncation_cutoff=truncation_cutoff)
        if space != "z":
            if not model.has_mapping:
                raise NodeError(f"Sample Latents: {model.describe()} has no W space; use z")
            place_for_inference(model)
            batch = model.mapped(batch)
        return io.NodeOutput(batch)


class GenerateImages(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="GANStudioGenerate",
            display_name="Generate Images",
            category=f"{CATEGORY}/sample",
            description="Turns latents into an IMAGE batch with the model, chunk by chunk (with "
                        "progress and previews; can be cancelled). Works with every core image "
                        "node.",
            inputs=[
                GanModel.Input("model", tooltip="The generator (or VAE decoder) to run."),
                GanLatent.Input("latents", tooltip="Latents from Sample Latents or any latent "
                                                   "node."),
                io.Int.Input("chunk_size", default=0, min=0, max=MAX_BATCH,
                             tooltip="Images generated at once. 0 = automatic from the "
                                     "resolution; lower it if memory runs out."),
                io.Combo.Input("noise_mode", options=list(NOISE_MODES), default="const",
                               optional=True,
                               tooltip="StyleGAN2 per-pixel noise: const = the model's fixed "
                                       "noise (reproducible), random = fresh noise each run, "
                                       "none = no noise. Other models ignore it."),
                io.Combo.Input("precision", options=list(PRECISIONS), default="fp32",
                               optional=True,
                               tooltip="Arithmetic precision: fp32 = full precision "
                                       "(default; on CPUs big 3x3 convolutions use Winograd, "
                                       "whose images differ from direct convolutions' by "
                                       "about 2e-6 of their range); bf16 = "
                                       "faster on CPUs with AVX512-BF16/AMX and on GPUs; fp16 = "
                                       f"GPU only. Measured: {PRECISION_ERROR}."),
                io.Boolean.Input("compile", default=False, optional=True,
                                 tooltip="Run the network through torch.compile: the first run "
                                         "takes a minute or more to compile, later runs of the "
                                         "same size are faster. Falls back to the plain network "
                                         "where no compiler works."),
            ],
            outputs=[io.Image.Output(display_name="images",
                                     tooltip="IMAGE batch [B,H,W,3], values 0..1.")],
        )

    @classmethod
    def fingerprint_inputs(cls, noise_mode="const", **_inputs):
        """noise_mode=random promises fresh noise on every queue: a new fingerprint each time
        keeps the executor from reusing the cached images."""
        return uuid.uuid4().hex if noise_mode == "random" else noise_mode

    @classmethod
    @user_errors("Generate Images")
    def execute(cls, model, latents, chunk_size, noise_mode="const", precision="fp32",
                compile=False) -> io.NodeOutput:
        model = expect_model(model, "Generate Images", needs="generate")
        latents = expect_latents(latents, "Generate Images")
        model.check_latents(latents)
        res = model.resolution
        chunk = min(chunk_size or auto_chunk_size(res), len(latents))
        ensure_peak_fits(generate_peak(len(latents), res, chunk, latents.values.numel() * 4),
                         images_what(len(latents), res, res))
        place_for_inference(model, activation_bytes(chunk, res, res))
        progress = Progress(len(latents))
        images = generate_in_chunks(model, latents, chunk, noise_mode=noise_mode,
                                    precision=precision, compile=compile,
                                    on_chunk=lambda done, imgs: progress.update(done, imgs))
        return io.NodeOutput(to_output_device(images))


NOISE_MODES = ("const", "random", "none")


def auto_chunk_size(resolution: int) -> int:
    """64 images at 256 px and below, fewer as the pixel count grows (4 at 1024 px)."""
    return max(1, min(64, (64 * 256 * 256) // (resolution * resolution)))


NODES = [SampleLatents, GenerateImages]
