"""Style-space nodes for StyleGAN models: style mixing and StyleGAN3 view transforms."""

from __future__ import annotations

from dataclasses import replace

from comfy_api.v0_0_2 import io

from ..gan_models.motion.style_mixing import PRESETS, mixing_grid, preset_layers, style_mix
from .common import (
    CATEGORY,
    GanLatent,
    GanModel,
    NodeError,
    expect_latents,
    expect_model,
    place_for_inference,
    user_errors,
)

MIX_LAYOUTS = ("pairwise", "grid")


class StyleMix(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="GANStudioStyleMix",
            display_name="Style Mix",
            category=f"{CATEGORY}/edit",
            description="Mixes two latent batches in a StyleGAN model's style space: the base "
                        "keeps its styles except a range of layers taken from the donor "
                        "(coarse = pose and shape, middle = features, fine = colours and "
                        "texture). Outputs W+ latents for Generate Images.",
            inputs=[
                GanModel.Input("model", tooltip="A StyleGAN2/StyleGAN3 model."),
                GanLatent.Input("base", tooltip="Latents whose styles are kept."),
                GanLatent.Input("donor", tooltip="Latents that lend the chosen layers."),
                io.Combo.Input("preset", options=[*PRESETS, "custom"], default="coarse",
                               tooltip="Which layers come from the donor: coarse (pose, "
                                       "shape), middle (features), fine (colour, texture), or "
                                       "custom (layer_start..layer_end)."),
                io.Int.Input("layer_start", default=0, min=0, max=64,
                             tooltip="custom: first style layer taken from the donor."),
                io.Int.Input("layer_end", default=4, min=1, max=64,
                             tooltip="custom: layer after the last one taken from the donor."),
                io.Combo.Input("layout", options=list(MIX_LAYOUTS), default="pairwise",
                               tooltip="pairwise: base i mixed with donor i (a batch of one "
                                       "is broadcast). grid: every base with every donor, "
                                       "row by row (a style-mixing table)."),
            ],
            outputs=[GanLatent.Output(display_name="latents",
                                      tooltip="Mixed W+ latents.")],
        )

    @classmethod
    @user_errors("Style Mix")
    def execute(cls, model, base, donor, preset, layer_start, layer_end,
                layout) -> io.NodeOutput:
        model = expect_model(model, "Style Mix")
        base = expect_latents(base, "Style Mix")
        donor = expect_latents(donor, "Style Mix")
        if model.num_ws is None:
            raise NodeError(f"Style Mix: {model.describe()} is not a style-based model")
        if preset == "custom":
            start, end = layer_start, layer_end
        else:
            start, end = preset_layers(preset, model.num_ws)
        if start >= end:
            raise NodeError(f"Style Mix: the {preset} layers are {start}..{end}: empty for a "
                            f"model with {model.num_ws} style layers")
        place_for_inference(model)
        if layout == "grid":
            return io.NodeOutput(mixing_grid(model, base, donor, start, end))
        return io.NodeOutput(style_mix(model, base, donor, start, end))


class StyleGAN3View(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="GANStudioStyleGAN3View",
            display_name="StyleGAN3 Translate / Rotate",
            category=f"{CATEGORY}/edit",
            description="Moves and turns the camera of a StyleGAN3 model: the image is "
                        "re-synthesised with its content shifted and rotated (no resampling "
                        "of pixels). Attach to latents before Generate Images.",
            inputs=[
                GanModel.Input("model", tooltip="A StyleGAN3 model."),
                GanLatent.Input("latents", tooltip="Latents to view differently."),
                io.Float.Input("translate_x", default=0.0, min=-4.0, max=4.0, step=0.01,
                               tooltip="Horizontal shift, in image widths (0.1 = a tenth)."),
                io.Float.Input("translate_y", default=0.0, min=-4.0, max=4.0, step=0.01,
                               tooltip="Vertical shift, in image heights."),
                io.Float.Input("rotate", default=0.0, min=-360.0, max=360.0, step=1.0,
                               tooltip="Rotation in degrees (counter-clockwise)."),
            ],
            outputs=[GanLatent.Output(display_name="latents",
                                      tooltip="The same latents with the view attached.")],
        )

    @classmethod
    @user_errors("StyleGAN3 Translate / Rotate")
    def execute(cls, model, latents, translate_x, translate_y, rotate) -> io.NodeOutput:
        model = expect_model(model, "StyleGAN3 Translate / Rotate")
        latents = expect_latents(latents, "StyleGAN3 Translate / Rotate")
        if not model.can_transform:
            raise NodeError(f"StyleGAN3 Translate / Rotate: {model.describe()} cannot be "
                            "translated or rotated (only StyleGAN3 models can)")
        return io.NodeOutput(replace(latents, view=(translate_x, translate_y, rotate)))


NODES = [StyleMix, StyleGAN3View]
