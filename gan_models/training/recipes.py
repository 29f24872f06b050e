"""Training recipes: what networks to build, how to optimise them and with which losses.

A recipe plugs into the loop by name (`make_recipe("dcgan", options, num_classes)`). The loop
owns everything generic: data, batching across ranks and micro-batches, mixed precision,
gradient averaging, EMA, snapshots. A recipe only says:
  * which architecture (a `gan_models.registry` family) and config it trains,
  * its optimizers and its phases (e.g. D then G; a phase may run every k steps, for lazy
    regularisation), and
  * the loss of one phase on one micro-batch, drawing all randomness from `ctx.rand`.
Options are plain JSON values, so a run's recipe is recorded in its snapshots.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from .. import registry
from ..errors import GanStudioError
from . import losses
from .augment import diff_augment, parse_policy
from .seeding import BatchRandom

AMP_MODES = ("auto", "off", "bf16")


@dataclass(frozen=True)
class Phase:
    name: str                  # e.g. "D", "G"
    optimizer: str             # key of the optimizer it steps
    trains: tuple[str, ...]    # network roles whose parameters receive gradients
    interval: int = 1          # run on steps where step % interval == 0


@dataclass
class StepContext:
    """What a recipe's loss sees for one micro-batch."""

    nets: dict[str, nn.Module]
    rand: BatchRandom
    step: int
    device: torch.device


class Recipe:
    name: ClassVar[str] = ""
    architecture: ClassVar[str] = ""
    MODEL_KEYS: ClassVar[tuple[str, ...]] = ()   # options passed to the architecture
    DEFAULTS: ClassVar[dict] = {}
    COMMON: ClassVar[dict] = {"ema_kimg": 10.0, "ema_rampup": 0.05, "amp": "auto"}
    conditional: ClassVar[bool] = False
    ema_role: ClassVar[str] = "generator"    # the network the loop averages and exports
    data_kind: ClassVar[str] = "images"      # images, or paired / unpaired / style (pairs.py)

    def __init__(self, options: dict | None = None, num_classes: int = 0):
        defaults = {**self.COMMON, **self.DEFAULTS}
        options = {k: v for k, v in (options or {}).items() if v is not None}
        unknown = sorted(set(options) - set(defaults))
        if unknown:
            raise GanStudioError(
                f"recipe {self.name}: unknown option(s) {unknown}; it knows {sorted(defaults)}")
        self.options = {**defaults, **options}
        if self.conditional and num_classes < 1:
            raise GanStudioError(
                f"recipe {self.name} is class-conditional and needs a dataset with classes "
                "(images in one subfolder per class)")
        self.num_classes = int(num_classes) if self.conditional else 0
        if self.options["amp"] not in AMP_MODES:
            raise GanStudioError(f"amp must be one of {AMP_MODES}, got {self.options['amp']!r}")
        self.validate()

    # --- what a recipe defines ------------------------------------------------------------
    def validate(self) -> None:
        """Raise GanStudioError for bad option values."""

    def check_adam(self, lr_keys: tuple[str, ...] = ("lr_g", "lr_d")) -> None:
        """The Adam options every recipe shares: positive learning rates, betas in [0, 1)."""
        o = self.options
        for key in lr_keys:
            if not float(o[key]) > 0:
                raise GanStudioError(f"recipe {self.name}: {key} must be positive, got {o[key]}")
        for key in ("beta1", "beta2"):
            if not 0 <= float(o[key]) < 1:
                raise GanStudioError(f"recipe {self.name}: {key} must be in [0, 1), got {o[key]}")

    def make_optimizers(self, nets: dict[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def phases(self) -> tuple[Phase, ...]:
        raise NotImplementedError

    def loss(self, phase: str, ctx: StepContext, real: torch.Tensor,
             labels: torch.Tensor | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(loss to minimise, metrics to log) of one phase on one micro-batch."""
        raise NotImplementedError

    def state_dict(self) -> dict:
        """Recipe state that changes during training (e.g. an adaptive augmentation level)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    # --- shared -----------------------------------------------------------------------------
    @property
    def resolution(self) -> int:
        return int(self.options["resolution"])

    def model_config(self) -> dict:
        config = {k: self.options[k] for k in self.MODEL_KEYS}
        return {**config, "num_classes": self.num_classes}

    def build_networks(self) -> dict[str, nn.Module]:
        return registry.build(self.architecture, self.model_config())

    def adopt_model_config(self, architecture: str, config: dict) -> None:
        """Take the architecture options of a model we fine-tune, or explain why we cannot."""
        if architecture != self.architecture:
            raise GanStudioError(
                f"recipe {self.name} trains {self.architecture} models; the given model is "
                f"{architecture}")
        classes = int(config.get("num_classes", 0))
        if classes != self.num_classes:
            hint = ("use a class-conditional recipe" if classes and not self.conditional
                    else "the dataset must have the same number of classes")
            raise GanStudioError(
                f"the model has {classes} classes but recipe {self.name} on this dataset trains "
                f"{self.num_classes}: {hint}")
        for key in self.MODEL_KEYS:
            if key in config:
                self.options[key] = config[key]
        self.validate()


RECIPES: dict[str, type[Recipe]] = {}


def register_recipe(cls: type[Recipe]) -> type[Recipe]:
    if cls.name in RECIPES and RECIPES[cls.name] is not cls:
        raise ValueError(f"recipe {cls.name!r} registered twice")
    RECIPES[cls.name] = cls
    return cls


def recipe_names() -> list[str]:
    return sorted(RECIPES)


def make_recipe(name: str, options: dict | None = None, num_classes: int = 0) -> Recipe:
    if name not in RECIPES:
        raise GanStudioError(f"unknown recipe {name!r} (known: {', '.join(recipe_names())})")
    return RECIPES[name](options, num_classes)


@register_recipe
class DCGANRecipe(Recipe):
    """DCGAN with Adam; one D step then one G step per training step."""

    name = "dcgan"
    architecture = "dcgan"
    MODEL_KEYS = ("resolution", "z_dim", "base_channels", "max_channels", "embed_dim")
    DEFAULTS = {"resolution": 64, "z_dim": 128, "base_channels": 64, "max_channels": 512,
                "embed_dim": 128, "loss": "ns", "lr_g": 2e-4, "lr_d": 2e-4,
                "beta1": 0.5, "beta2": 0.999, "gp_weight": 10.0, "diffaugment": ""}

    def validate(self) -> None:
        from ..architectures.dcgan import full_config

        try:
            full_config(self.model_config())
            losses.check_loss(self.options["loss"])
            self.policy = parse_policy(self.options["diffaugment"])
        except ValueError as exc:
            raise GanStudioError(f"recipe {self.name}: {exc}") from None
        self.check_adam()

    def make_optimizers(self, nets):
        betas = (float(self.options["beta1"]), float(self.options["beta2"]))
        return {
            "G": torch.optim.Adam(nets["generator"].parameters(), lr=float(self.options["lr_g"]),
                                  betas=betas),
            "D": torch.optim.Adam(nets["discriminator"].parameters(),
                                  lr=float(self.options["lr_d"]), betas=betas),
        }

    def phases(self):
        return (Phase("D", "D", ("discriminator",)), Phase("G", "G", ("generator",)))

    def _fakes_input(self, ctx: StepContext) -> tuple[torch.Tensor, torch.Tensor | None]:
        z = ctx.rand.normal(int(self.options["z_dim"]))
        if not self.num_classes:
            return z, None
        c = torch.nn.functional.one_hot(ctx.rand.randint(self.num_classes), self.num_classes)
        return z, c.float()

    def _augment(self, images: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return diff_augment(images, self.policy, ctx.rand) if self.policy else images

    def loss(self, phase, ctx, real, labels):
        G, D = ctx.nets["generator"], ctx.nets["discriminator"]
        kind = self.options["loss"]
        z, c = self._fakes_input(ctx)
        if phase == "G":
            fake_logits = D(self._augment(G(z, c), ctx), c)
            loss = losses.g_loss(kind, fake_logits)
            return loss, {"loss_g": loss.detach()}
        with torch.no_grad():
            fake = G(z, c)
        n = real.shape[0]
        # Augment real and fake separately (one random row per image), then run D once on
        # both: the DCGAN discriminator has no BatchNorm, so this equals two passes.
        both = torch.cat([self._augment(real, ctx), self._augment(fake, ctx)])
        both_c = None if c is None else torch.cat([labels, c])
        real_logits, fake_logits = D(both, both_c).split(n)
        loss = losses.d_loss(kind, real_logits, fake_logits)
        metrics = {"d_real": real_logits.detach().float().mean(),
                   "d_fake": fake_logits.detach().float().mean(),
                   "d_acc": losses.d_accuracy(real_logits.detach(), fake_logits.detach())}
        if kind == "wgan-gp":
            mix = ctx.rand.uniform(1, 1, 1)
            gp = losses.gradient_penalty(lambda x: D(x, labels), both[:n], both[n:], mix)
            loss = loss + float(self.options["gp_weight"]) * gp
            metrics["gp"] = gp.detach()
        metrics["loss_d"] = loss.detach()
        return loss, metrics


@register_recipe
class ConditionalDCGANRecipe(DCGANRecipe):
    """Class-conditional DCGAN: class embedding in G, projection discriminator."""

    name = "cdcgan"
    conditional = True
