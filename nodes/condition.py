"""Class conditioning attached to latents."""

from __future__ import annotations

from comfy_api.v0_0_2 import io

from ..gan_models.latent import MIX_MODES, class_rows, parse_mix
from .common import CATEGORY, GanLatent, GanModel, expect_latents, expect_model, user_errors


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
                                        "weights: 'cat', '3', 'cat:0.7, dog:0.3'; '+' joins a "
                                        "mix into one entry: 'cat:0.7 + dog:0.3, bird'."),
                io.Combo.Input("mode", options=list(MIX_MODES), default="mix",
                               tooltip="mix: every sample gets the weighted mix of all the "
                                       "classes. cycle: sample i gets the i-th entry of the "
                                       "list (a class grid)."),
            ],
            outputs=[GanLatent.Output(display_name="latents",
                                      tooltip="The same latents with class weights attached.")],
        )

    @classmethod
    @user_errors("Class Condition")
    def execute(cls, model, latents, classes, mode) -> io.NodeOutput:
        model = expect_model(model, "Class Condition")
        latents = expect_latents(latents, "Class Condition")
        labels = class_rows(parse_mix(classes), model.num_classes, model.class_index,
                            len(latents), mode)
        return io.NodeOutput(latents.with_labels(labels))


NODES = [ClassCondition]
