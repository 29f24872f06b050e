"""Text conditioning for text-conditioned generators."""

from __future__ import annotations

from comfy_api.v0_0_2 import io

from ..gan_models.errors import GanStudioError
from ..gan_models.latent.classes import MIX_MODES
from ..gan_models.latent.grammar import parse_mix
from ..gan_models.latent.text import pooled_rows, text_rows
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
                        "Words the model never saw are ignored and listed. A model trained on "
                        "CLIP pooled embeddings takes a CLIP Text Encode CONDITIONING instead.",
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
                io.Conditioning.Input("clip_conditioning", optional=True,
                                      tooltip="Optional: the output of a CLIP Text Encode node, "
                                              "for models trained on CLIP pooled embeddings "
                                              "(its pooled output is used; several entries "
                                              "cycle over the batch). Replaces the prompts. "
                                              "Models with their own word encoder refuse it."),
            ],
            outputs=[GanLatent.Output(display_name="latents",
                                      tooltip="The same latents with the text attached.")],
        )

    @classmethod
    @user_errors("Text Condition")
    def execute(cls, model, latents, prompts, mode, clip_conditioning=None) -> io.NodeOutput:
        model = expect_model(model, "Text Condition", needs="generate")
        model.require_conditioning("text")
        latents = expect_latents(latents, "Text Condition")
        if clip_conditioning is not None:
            labels = pooled_rows(model, _pooled(clip_conditioning), len(latents))
            return io.NodeOutput(latents.with_labels(labels),
                                 ui={"text": ["text from the CLIP conditioning"]})
        entries = parse_mix(prompts, what="prompt")
        labels = text_rows(entries, model.encode_text, len(latents), mode)
        names = sorted({part.name for entry in entries for part in entry})
        unknown = model.networks["text_encoder"].unknown_words(names)
        note = f"ignored unknown words: {', '.join(unknown)}" if unknown else "all words known"
        return io.NodeOutput(latents.with_labels(labels), ui={"text": [note]})


def _pooled(conditioning) -> list:
    """The pooled outputs of a CONDITIONING: a list of [cond, {"pooled_output": tensor}]."""
    if not isinstance(conditioning, (list, tuple)) or not conditioning:
        raise GanStudioError("clip_conditioning is not a CONDITIONING (connect a CLIP Text "
                             "Encode node)")
    pooled = []
    for entry in conditioning:
        extra = entry[1] if isinstance(entry, (list, tuple)) and len(entry) > 1 else None
        if not isinstance(extra, dict) or extra.get("pooled_output") is None:
            raise GanStudioError("the CONDITIONING has no pooled output (use one from a CLIP "
                                 "Text Encode node)")
        pooled.append(extra["pooled_output"])
    return pooled


NODES = [TextCondition]
