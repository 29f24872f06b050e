"""Class conditioning attached to latents."""

from __future__ import annotations

import torch
from comfy_api.v0_0_2 import io

from ..gan_models.latents import one_hot_weights
from .common import (
    CATEGORY,
    GanLatent,
    GanModel,
    NodeError,
    expect_latents,
    expect_model,
    user_errors,
)

MODES = ("mix", "cycle")


def parse_class_list(text: str) -> list[tuple[str, float]]:
    """'cat:0.7, dog:0.3' -> [('cat', 0.7), ('dog', 0.3)]; weight 1 when omitted."""
    items = []
    for part in text.replace("\n", ",").split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, weight = part.rpartition(":")
        if not sep:
            name, weight = part, "1"
        try:
            w = float(weight)
        except ValueError:
            name, w = part, 1.0  # a colon that is part of the class name
        if w < 0:
            raise NodeError(f"Class Condition: weight of {name.strip()!r} is negative ({w})")
        items.append((name.strip(), w))
    if not items:
        raise NodeError("Class Condition: no class given; write a name or index, e.g. 'cat' "
                        "or 'cat:0.7, dog:0.3'")
    return items


class ClassCondition(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="GANStudioClassCondition",
            display_name="Class Condition",
            category=f"{CATEGORY}/condition",
            description="Sets the class of each latent for a class-conditional model: one class, "
                        "a weighted mix of classes, or a list cycled over the batch.",
            inputs=[
                GanModel.Input("model",
                               tooltip="The conditional model (its class names are used)."),
                GanLatent.Input("latents", tooltip="Latents to condition."),
                io.String.Input("classes", default="0",
                                tooltip="Class names or indices, comma separated, optional "
                                        "weights: 'cat', '3', 'cat:0.7, dog:0.3'."),
                io.Combo.Input("mode", options=list(MODES), default="mix",
                               tooltip="mix: every sample gets the weighted mix of the classes. "
                                       "cycle: sample i gets the i-th class of the list "
                                       "(a class grid)."),
            ],
            outputs=[GanLatent.Output(display_name="latents",
                                      tooltip="The same latents with class weights attached.")],
        )

    @classmethod
    @user_errors("Class Condition")
    def execute(cls, model, latents, classes, mode) -> io.NodeOutput:
        model = expect_model(model, "Class Condition")
        latents = expect_latents(latents, "Class Condition")
        pairs = [(model.class_index(name), w) for name, w in parse_class_list(classes)]
        n = model.num_classes
        if mode == "mix":
            row = one_hot_weights(pairs, n)
            labels = row.expand(len(latents), n).clone()
        elif mode == "cycle":
            rows = [one_hot_weights([(idx, 1.0)], n) for idx, _ in pairs]
            labels = torch.stack([rows[i % len(rows)] for i in range(len(latents))])
        else:
            raise NodeError(f"Class Condition: unknown mode {mode!r}")
        return io.NodeOutput(latents.with_labels(labels))


NODES = [ClassCondition]
