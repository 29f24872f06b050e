"""Recipe `biggan`: a small BigGAN-deep trained by us on a folder of classes.

What makes it BigGAN rather than the conditional DCGAN it shares its loop code with
(recipes.ConditionalDCGANRecipe: the D-then-G phases, one-hot fake classes, DiffAugment on
everything D sees, the loss functions):
  * generator: architectures/biggan.py (shared class embedding concatenated with z and fed
    to every conditional batch norm, deep residual blocks, self-attention, spectral norm),
  * discriminator: residual, spectral norm, projection on class weights,
  * hinge loss, Adam with beta1 = 0 and two time-scale learning rates (SAGAN/BigGAN),
  * orthogonal initialisation,
  * exported models get standing statistics: every truncation row of the batch-norm tables
    is measured on samples drawn at that truncation (the exported EMA generator only;
    training state is untouched, so resuming stays bit-exact).
"""

from __future__ import annotations

import math

from ..architectures import biggan
from ..errors import GanStudioError
from . import losses
from .augment import parse_policy
from .recipes import ConditionalDCGANRecipe, register_recipe

ATTENTION_SIDE = 32  # self-attention where the features are 32x32 (or the largest below)


def deep_layers(resolution: int) -> tuple[list[list], int]:
    """(layers, attention position) of a BigGAN-deep generator for `resolution`: per
    resolution one block that keeps the width and one that upsamples and narrows, widths
    16, 8, 4, 2, 1 x channel_width from the top, as in the released 128-512 px models."""
    ups = int(math.log2(resolution // 4))
    mults = [16] * max(ups - 4, 0) + [2 ** k for k in range(min(ups, 4), 0, -1)] + [1]
    layers, attention = [], 0
    for i in range(ups):
        side = 4 * 2 ** i
        if side == min(ATTENTION_SIDE, resolution // 2):
            attention = len(layers)
        layers += [[False, mults[i], mults[i]], [True, mults[i], mults[i + 1]]]
    return layers, attention


@register_recipe
class BigGANRecipe(ConditionalDCGANRecipe):
    """Small BigGAN-deep: class-conditional BN, projection D, hinge loss, DiffAugment."""

    name = "biggan"
    architecture = "biggan"
    MODEL_KEYS = ("resolution", "z_dim", "embed_dim", "base_channels", "n_stats")
    DEFAULTS = {"resolution": 64, "z_dim": 128, "embed_dim": 128, "base_channels": 32,
                "n_stats": 11, "loss": "hinge", "lr_g": 1e-4, "lr_d": 4e-4, "beta1": 0.0,
                "beta2": 0.999, "gp_weight": 10.0, "diffaugment": "color,translation"}
    # the architecture's keys for our options (everything else is derived)
    CONFIG_OF = {"z_dim": "z_dim", "embed_dim": "class_embed_dim",
                 "base_channels": "channel_width", "n_stats": "n_stats"}

    def validate(self) -> None:
        res = int(self.options["resolution"])
        if res not in (32, 64, 128, 256):
            raise GanStudioError(f"recipe {self.name}: resolution must be 32, 64, 128 or 256, "
                                 f"got {res}")
        try:
            biggan.full_config(self.model_config())
            losses.check_loss(self.options["loss"])
            self.policy = parse_policy(self.options["diffaugment"])
        except ValueError as exc:
            raise GanStudioError(f"recipe {self.name}: {exc}") from None
        self.check_adam()

    def model_config(self) -> dict:
        o = self.options
        layers, attention = deep_layers(int(o["resolution"]))
        config = {arch: o[key] for key, arch in self.CONFIG_OF.items()}
        return {**config, "output_dim": int(o["resolution"]), "num_classes": self.num_classes,
                "layers": layers, "attention_layer_position": attention, "eps": 1e-4,
                "d_channel_width": int(o["base_channels"])}

    def build_networks(self):
        nets = super().build_networks()
        for net in nets.values():
            biggan.init_orthogonal(net)
        return nets

    def adopt_model_config(self, architecture: str, config: dict) -> None:
        if architecture != self.architecture:
            raise GanStudioError(f"recipe {self.name} trains {self.architecture} models; the "
                                 f"given model is {architecture}")
        if not config.get("d_channel_width"):
            raise GanStudioError(f"recipe {self.name}: the model has no discriminator (an "
                                 "imported generator); train from scratch")
        if int(config.get("num_classes", 0)) != self.num_classes:
            raise GanStudioError(f"the model has {config.get('num_classes')} classes but the "
                                 f"dataset has {self.num_classes}")
        for key, arch in self.CONFIG_OF.items():
            self.options[key] = config[arch]
        self.options["resolution"] = config["output_dim"]
        self.validate()
        if self.model_config() != {k: config.get(k) for k in self.model_config()}:
            raise GanStudioError(f"recipe {self.name}: the model's layer layout is not the one "
                                 "this recipe builds")

    def finish_export(self, nets: dict) -> None:
        """Standing statistics for every truncation row of the exported generator."""
        biggan.standing_statistics(nets["generator"])
