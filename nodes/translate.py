"""Image-to-image: any model with the `translate` capability, between core image nodes."""

from __future__ import annotations

from dataclasses import replace

from comfy_api.v0_0_2 import io

from ..gan_models.memory import activation_bytes, images_what, translate_peak
from ..gan_models.translation import translate_images
from .common import (
    CATEGORY,
    MAX_BATCH,
    GanModel,
    NodeError,
    Progress,
    ensure_peak_fits,
    expect_model,
    place_for_inference,
    to_output_device,
    user_errors,
)

CHUNK = 4  # images translated at once


class TranslateImage(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="GANStudioTranslateImage",
            display_name="Translate Image",
            category=f"{CATEGORY}/image",
            description="Turns each image into another with an image-to-image model (for "
                        "example sketch -> rendering). The output has the input's size; "
                        "strength and an optional mask limit the change. Large images are "
                        "translated in overlapping tiles blended without seams.",
            inputs=[
                GanModel.Input("model", tooltip="An image-to-image model (its capability is "
                                                "'translate'); a GAN or VAE is refused."),
                io.Image.Input("images", tooltip="Images to translate, any size; alpha is "
                                                 "flattened onto white."),
                io.Float.Input("strength", default=1.0, min=0.0, max=1.0, step=0.05,
                               tooltip="1 = the translation; lower blends it with the input."),
                io.Mask.Input("mask", optional=True,
                              tooltip="Translate only where the mask is 1 (ComfyUI MASK; a "
                                      "different size is resized)."),
                io.Int.Input("tile_size", default=512, min=0, max=8192, step=64, optional=True,
                             tooltip="Images larger than this are translated in overlapping "
                                     "square tiles of this size (rounded up to the model's "
                                     "size multiple) and blended, to bound memory; 0 = "
                                     "always whole."),
                io.Int.Input("overlap", default=64, min=0, max=1024, step=8, optional=True,
                             tooltip="Pixels neighbouring tiles share; their results are "
                                     "cross-faded there so no seam shows."),
            ],
            outputs=[io.Image.Output(display_name="images",
                                     tooltip="IMAGE batch [B,H,W,3] of the input's size.")],
        )

    @classmethod
    @user_errors("Translate Image")
    def execute(cls, model, images, strength, mask=None, tile_size=512,
                overlap=64) -> io.NodeOutput:
        model = expect_model(model, "Translate Image", needs="translate")
        if images.shape[0] > MAX_BATCH:
            raise NodeError(f"Translate Image: {images.shape[0]} images is more than the "
                            f"limit of {MAX_BATCH}")
        b, h, w = images.shape[:3]
        tiled = tile_size and max(h, w) > tile_size  # activations of one tile at a time
        th, tw = (min(h, tile_size), min(w, tile_size)) if tiled else (h, w)
        peak = replace(translate_peak(b, h, w, CHUNK), activations=activation_bytes(CHUNK, th, tw))
        ensure_peak_fits(peak, images_what(b, h, w))
        place_for_inference(model, activation_bytes(CHUNK, th, tw))
        progress = Progress(b)
        out = translate_images(model, images, strength=strength, mask=mask, chunk_size=CHUNK,
                               on_chunk=lambda done, imgs: progress.update(done, imgs),
                               tile=tile_size, overlap=overlap)
        return io.NodeOutput(to_output_device(out))


NODES = [TranslateImage]
