"""Text conditioning for text-conditioned generators."""

from __future__ import annotations

from comfy_api.v0_0_2 import io

from ..gan_models.latent.classes import MIX_MODES
from ..gan_models.latent.grammar import parse_mix
from ..gan_models.latent.text import text_rows
from .common import CATEGORY, GanLatent, GanModel, expect_latents, expect_model, user_errors

MODES = MIX_MODES


class TextCondition(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="GANStudioTextCondition",
            display_name="Text Condition",
            category=f"{CATEGORY}/condition",
            description="Sets what each latent should show for a text-conditioned model: one "
                        "prompt, a weighted mix of prompts, or a list cycled over the batch. "
                        "Words the model never saw are ignored and listed.",
            inputs=[
                GanModel.Input("model", tooltip="A text-conditioned model (it encodes the "
                                                "prompts with its own text encoder)."),
                GanLatent.Input("latents", tooltip="Latents to condition."),
                io.String.Input("prompts", default="smiling cat", multiline=True,
                                tooltip="Prompts separated by commas or new lines, optional "
                                        "weights: 'red circle', 'cat:0.7, rocket:0.3'; "
                                        "'+' mixes prompts within one entry of a cycle."),
                io.Combo.Input("mode", options=list(MODES), default="mix",
                               tooltip="mix: every sample gets the weighted mix of the prompts' "
                                       "embeddings. cycle: sample i gets the i-th prompt."),
            ],
            outputs=[GanLatent.Output(display_name="latents",
                                      tooltip="The same latents with the text attached.")],
        )

    @classmethod
    @user_errors("Text Condition")
    def execute(cls, model, latents, prompts, mode) -> io.NodeOutput:
        model = expect_model(model, "Text Condition", needs="generate")
        model.require_conditioning("text")
        latents = expect_latents(latents, "Text Condition")
        entries = parse_mix(prompts, what="prompt")
        labels = text_rows(entries, model.encode_text, len(latents), mode)
        names = sorted({part.name for entry in entries for part in entry})
        unknown = model.networks["text_encoder"].unknown_words(names)
        note = f"ignored unknown words: {', '.join(unknown)}" if unknown else "all words known"
        return io.NodeOutput(latents.with_labels(labels), ui={"text": [note]})


NODES = [TextCondition]
