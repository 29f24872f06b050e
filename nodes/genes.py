"""Class Genes: seeded mutations of the class mix, next to Class Condition."""

from __future__ import annotations

from comfy_api.v0_0_2 import io

from ..gan_models.latent import MAX_SEED
from ..gan_models.latent.genes import MAX_NEW_CLASSES, mutate_classes
from .common import (
    CATEGORY,
    GanLatent,
    GanModel,
    NodeError,
    expect_latents,
    expect_model,
    user_errors,
)


class ClassGenes(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="GANStudioClassGenes",
            display_name="Class Genes",
            category=f"{CATEGORY}/condition",
            description="Mutates the class weights of latents with a seed and a strength "
                        "(Ganbreeder-style genes): classes in the mix are re-weighted and a "
                        "few random classes join it. Same seed, same mutation.",
            inputs=[
                GanModel.Input("model", tooltip="The class-conditional model the latents are "
                                                "for (classes of latents without any are "
                                                "drawn from their seeds first)."),
                GanLatent.Input("latents", tooltip="Latents whose class weights to mutate "
                                                   "(usually after Class Condition)."),
                io.Int.Input("seed", default=0, min=0, max=MAX_SEED, control_after_generate=True,
                             tooltip="Seed of the mutation: the same seed gives the same genes."),
                io.Float.Input("strength", default=0.3, min=0.0, max=4.0, step=0.05,
                               tooltip="How far to move: 0 = unchanged; 0.3 = a nudge; 1 or "
                                       "more = new classes weigh as much as the mix."),
                io.Int.Input("new_classes", default=2, min=0, max=MAX_NEW_CLASSES,
                             tooltip="How many random classes join the mix (with weights up "
                                     "to strength)."),
                io.Boolean.Input("per_sample", default=False,
                                 tooltip="Off: every latent gets the same mutation. On: "
                                         "latent i gets its own, from seed + i."),
            ],
            outputs=[GanLatent.Output(display_name="latents",
                                      tooltip="The same latents with mutated class weights.")],
        )

    @classmethod
    @user_errors("Class Genes")
    def execute(cls, model, latents, seed, strength, new_classes, per_sample) -> io.NodeOutput:
        model = expect_model(model, "Class Genes")
        latents = expect_latents(latents, "Class Genes")
        model.require_conditioning("class")
        model.check_latents(latents)
        labels = latents.labels
        if labels is None:
            if latents.seeds is None:
                raise NodeError("Class Genes: these latents carry no class and no seeds; add "
                                "a Class Condition node before Class Genes")
            labels = model.seeded_labels(list(latents.seeds))
        return io.NodeOutput(latents.with_labels(
            mutate_classes(labels, seed, strength, new_classes, per_sample)))


NODES = [ClassGenes]
