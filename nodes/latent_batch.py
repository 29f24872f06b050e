"""Editing latent batches: pick, join and repeat (build keyframe lists and frame orders)."""

from __future__ import annotations

import math

from comfy_api.v0_0_2 import io

from ..gan_models.latent import REPEAT_MODES, concat, parse_indices, pick, repeat
from ..gan_models.memory import latents_peak, latents_what
from .common import (
    CATEGORY,
    MAX_BATCH,
    GanLatent,
    NodeError,
    ensure_peak_fits,
    expect_latents,
    user_errors,
)

GROUP = f"{CATEGORY}/latent"
MAX_LATENTS = 100_000


class PickLatents(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="GANStudioPickLatents",
            display_name="Pick Latents",
            category=GROUP,
            description="Keeps the latents at the listed positions, in the listed order (pick "
                        "favourites from a grid as keyframes, reorder or reverse frames).",
            inputs=[
                GanLatent.Input("latents", tooltip="The batch to pick from."),
                io.String.Input("indices", default="0",
                                tooltip="Positions counted from 0, commas and ranges: '0, 2-4', "
                                        "'7-0' (reversed), '-1' (the last)."),
            ],
            outputs=[GanLatent.Output(display_name="latents", tooltip="The picked latents.")],
        )

    @classmethod
    @user_errors("Pick Latents")
    def execute(cls, latents, indices) -> io.NodeOutput:
        latents = expect_latents(latents, "Pick Latents")
        return io.NodeOutput(pick(latents, parse_indices(indices, MAX_LATENTS)))


class ConcatLatents(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="GANStudioConcatLatents",
            display_name="Concat Latents",
            category=GROUP,
            description="Joins two latent batches of the same model and space: A's latents "
                        "followed by B's (e.g. two animation clips one after the other).",
            inputs=[
                GanLatent.Input("latents_a", tooltip="First part."),
                GanLatent.Input("latents_b", tooltip="Second part (same model, space, "
                                                     "truncation and conditioning)."),
            ],
            outputs=[GanLatent.Output(display_name="latents", tooltip="A then B.")],
        )

    @classmethod
    @user_errors("Concat Latents")
    def execute(cls, latents_a, latents_b) -> io.NodeOutput:
        a = expect_latents(latents_a, "Concat Latents")
        b = expect_latents(latents_b, "Concat Latents")
        if len(a) + len(b) > MAX_LATENTS:
            raise NodeError(f"Concat Latents: more than {MAX_LATENTS} latents")
        _ensure_fits(a, len(a) + len(b), "use shorter batches")
        return io.NodeOutput(concat(a, b))


class RepeatLatents(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="GANStudioRepeatLatents",
            display_name="Repeat Latents",
            category=GROUP,
            description="Repeats a batch: the whole batch several times (play a loop again), "
                        "or each latent several times in a row (hold frames).",
            inputs=[
                GanLatent.Input("latents", tooltip="The batch to repeat."),
                io.Int.Input("times", default=2, min=1, max=MAX_BATCH,
                             tooltip="How many copies."),
                io.Combo.Input("mode", options=list(REPEAT_MODES), default=REPEAT_MODES[0],
                               tooltip="whole batch: a b c a b c. each latent: a a b b c c."),
            ],
            outputs=[GanLatent.Output(display_name="latents", tooltip="The repeated batch.")],
        )

    @classmethod
    @user_errors("Repeat Latents")
    def execute(cls, latents, times, mode) -> io.NodeOutput:
        latents = expect_latents(latents, "Repeat Latents")
        if len(latents) * times > MAX_LATENTS:
            raise NodeError(f"Repeat Latents: {len(latents)} x {times} is more than "
                            f"{MAX_LATENTS} latents")
        _ensure_fits(latents, len(latents) * times, "use fewer copies")
        return io.NodeOutput(repeat(latents, times, mode))


def _ensure_fits(latents, count: int, advice: str) -> None:
    """Refuse a batch of `count` latents like `latents` that would not fit in memory."""
    shape = latents.values.shape[1:]
    labels = 0 if latents.labels is None else latents.labels.shape[-1]
    ensure_peak_fits(latents_peak(count, math.prod(shape), labels),
                     latents_what(count, shape), advice)


NODES = [PickLatents, ConcatLatents, RepeatLatents]
