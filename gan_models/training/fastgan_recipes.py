"""Fast small-data GAN recipes.

* `fastgan`: the FastGAN generator (skip-layer excitation) against its own discriminator,
  hinge loss, DiffAugment on everything D sees, and FastGAN's self-supervision (D's decoder
  rebuilds a 32 px copy of each real image from its 8x8 features; `recon_weight`).
* `projected`: the FastGAN generator against a projected discriminator (projected.py): the
  images are judged in the features of a frozen EfficientNet-Lite0, through fixed random
  projections, by small trainable heads.
* `projected-stylegan2`: the StyleGAN2 generator (with its mapping network, style mixing and
  EMA) against the same projected discriminator; no R1 and no ADA (DiffAugment instead).

All three are class-conditional when the dataset has two or more classes (conditional=false
ignores them): class-conditional BatchNorm in the FastGAN generator, the class input of the
StyleGAN2 mapping network, and a projection term beside the class-free logit in every
discriminator (FastGAN's and each projected head, projected.ScaleHead).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import registry
from ..errors import GanStudioError
from . import losses
from .augment import diff_augment, parse_policy
from .projected import ProjectedDiscriminator, check_feature_network
from .recipes import Phase, Recipe, StepContext, register_recipe
from .stylegan2_recipe import StyleGAN2ADARecipe

PROJECTED_ROLE = "projected_discriminator"


class _ClassesWhenAny:
    """Class-conditional when the data has 2+ classes and the `conditional` option is on."""

    def _use_classes(self, num_classes: int) -> None:
        use = bool(self.options["conditional"]) and int(num_classes) >= 2
        self.num_classes = int(num_classes) if use else 0
        self.conditional = use


@register_recipe
class FastGANRecipe(_ClassesWhenAny, Recipe):
    """FastGAN: skip-layer excitation generator, self-supervised discriminator, DiffAugment."""

    name = "fastgan"
    architecture = "fastgan"
    MODEL_KEYS = ("resolution", "z_dim", "base_channels", "max_channels", "embed_dim")
    DEFAULTS = {"resolution": 64, "z_dim": 128, "base_channels": 32, "max_channels": 256,
                "embed_dim": 64, "loss": "hinge", "lr_g": 2e-4, "lr_d": 2e-4, "beta1": 0.5,
                "beta2": 0.999, "diffaugment": "color,translation,cutout", "recon_weight": 1.0,
                "conditional": True}
    LOSS_KINDS = ("hinge", "ns")

    def __init__(self, options: dict | None = None, num_classes: int = 0):
        super().__init__(options, num_classes)
        self._use_classes(num_classes)

    def validate(self) -> None:
        from ..architectures.fastgan import full_config

        o = self.options
        try:
            full_config({k: o[k] for k in self.MODEL_KEYS})
            self.policy = parse_policy(o["diffaugment"])
        except ValueError as exc:
            raise GanStudioError(f"recipe {self.name}: {exc}") from None
        if o["loss"] not in self.LOSS_KINDS:
            raise GanStudioError(f"recipe {self.name}: loss must be one of {self.LOSS_KINDS}, "
                                 f"got {o['loss']!r}")
        self.check_adam()
        if float(o.get("recon_weight", 0)) < 0:
            raise GanStudioError(f"recipe {self.name}: recon_weight must be 0 or more")

    # --- networks and optimizers ------------------------------------------------------------
    d_role = "discriminator"

    def make_optimizers(self, nets):
        betas = (float(self.options["beta1"]), float(self.options["beta2"]))
        return {"G": torch.optim.Adam(nets["generator"].parameters(),
                                      lr=float(self.options["lr_g"]), betas=betas),
                "D": torch.optim.Adam(nets[self.d_role].parameters(),
                                      lr=float(self.options["lr_d"]), betas=betas)}

    def phases(self):
        return (Phase("D", "D", (self.d_role,)), Phase("G", "G", ("generator",)))

    # --- losses ------------------------------------------------------------------------------
    def _inputs(self, ctx: StepContext):
        z = ctx.rand.normal(int(ctx.nets["generator"].z_dim))
        if not self.num_classes:
            return z, None
        return z, F.one_hot(ctx.rand.randint(self.num_classes), self.num_classes).float()

    def _augment(self, images: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return diff_augment(images, self.policy, ctx.rand) if self.policy else images

    def _generate(self, ctx: StepContext, z, c) -> torch.Tensor:
        return ctx.nets["generator"](z, c)

    def _real_logits(self, ctx: StepContext, real, labels):
        """(logits of augmented reals, extra loss, metrics): FastGAN's reconstruction."""
        D = ctx.nets[self.d_role]
        logits, rebuilt, target = D.reconstruct(self._augment(real, ctx), labels)
        recon = F.mse_loss(rebuilt.float(), target.float())
        return logits, recon * float(self.options["recon_weight"]), {"recon": recon.detach()}

    def loss(self, phase, ctx, real, labels):
        D = ctx.nets[self.d_role]
        kind = self.options["loss"]
        z, c = self._inputs(ctx)
        if phase == "G":
            fake_logits = D(self._augment(self._generate(ctx, z, c), ctx), c)
            loss = losses.g_loss(kind, fake_logits)
            return loss, {"loss_g": loss.detach()}
        if phase != "D":
            raise GanStudioError(f"recipe {self.name} has no phase {phase!r}")
        with torch.no_grad():
            fake = self._generate(ctx, z, c)
        real_logits, extra, metrics = self._real_logits(ctx, real, labels)
        fake_logits = D(self._augment(fake, ctx), c)
        loss = losses.d_loss(kind, real_logits, fake_logits) + extra
        real_logits, fake_logits = real_logits.detach(), fake_logits.detach()
        metrics.update({"loss_d": loss.detach(), "d_real": real_logits.float().mean(),
                        "d_fake": fake_logits.float().mean(),
                        "d_acc": losses.d_accuracy(real_logits, fake_logits)})
        return loss, metrics


@register_recipe
class ProjectedRecipe(FastGANRecipe):
    """Projected GAN: FastGAN generator, discriminator on frozen EfficientNet-Lite0 features."""

    name = "projected"
    picked_for_fine_tuning = False  # a FastGAN given without --recipe gets fastgan
    DEFAULTS = {**{k: v for k, v in FastGANRecipe.DEFAULTS.items() if k != "recon_weight"},
                "beta1": 0.0, "beta2": 0.99, "projected_size": 128, "projected_channels": 64}
    d_role = PROJECTED_ROLE

    def validate(self) -> None:
        super().validate()
        _check_projected(self)

    def build_networks(self):
        nets = registry.build(self.architecture, self.model_config())
        return {"generator": nets["generator"], self.d_role: _projected(self)}

    def _real_logits(self, ctx, real, labels):
        return ctx.nets[self.d_role](self._augment(real, ctx), labels), 0.0, {}


@register_recipe
class ProjectedStyleGAN2Recipe(StyleGAN2ADARecipe):
    """Projected GAN with the StyleGAN2 generator: frozen EfficientNet-Lite0 features judge."""

    name = "projected-stylegan2"
    picked_for_fine_tuning = False  # a StyleGAN2 given without --recipe gets stylegan2-ada
    DEFAULTS = {**StyleGAN2ADARecipe.DEFAULTS, "loss": "hinge", "lr_g": 0.0025,
                "lr_d": 0.002, "beta1": 0.0, "beta2": 0.99, "r1_gamma": 0.0,
                "augment": "off", "diffaugment": "color,translation,cutout",
                "projected_size": 128, "projected_channels": 64}

    def validate(self) -> None:
        super().validate()
        _check_projected(self)

    def build_networks(self):
        nets = registry.build(self.architecture, self.model_config())
        return {"generator": nets["generator"], PROJECTED_ROLE: _projected(self)}

    def make_optimizers(self, nets):
        shadow = {"generator": nets["generator"], "discriminator": nets[PROJECTED_ROLE]}
        return super().make_optimizers(shadow)

    def phases(self):
        swap = {"discriminator": PROJECTED_ROLE}
        return tuple(Phase(p.name, p.optimizer, tuple(swap.get(r, r) for r in p.trains),
                           p.interval) for p in super().phases())

    def _discriminate(self, ctx: StepContext, images: torch.Tensor, c):
        if self.policy:
            images = diff_augment(images, self.policy, ctx.rand)
        return ctx.nets[PROJECTED_ROLE](images, c)


def _check_projected(recipe) -> None:
    size = int(recipe.options["projected_size"])
    if size < 32 or size % 32:
        raise GanStudioError(f"recipe {recipe.name}: projected_size must be a multiple of 32 "
                             f"(the feature network halves the image five times), got {size}")
    if int(recipe.options["projected_channels"]) < 1:
        raise GanStudioError(f"recipe {recipe.name}: projected_channels must be positive")
    if recipe.options.get("augment", "off") != "off":
        raise GanStudioError(f"recipe {recipe.name}: use diffaugment with a projected "
                             "discriminator (augment=off)")
    check_feature_network()


def _projected(recipe) -> ProjectedDiscriminator:
    return ProjectedDiscriminator(recipe.num_classes, int(recipe.options["projected_size"]),
                                  int(recipe.options["projected_channels"]))
