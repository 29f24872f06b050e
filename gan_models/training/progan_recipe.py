"""`progan`: Progressive GAN, grown from 4x4 to the dataset resolution while it trains.

The schedule is a pure function of the images shown so far (`stage_at`): `stage_kimg` of
stable training at 4x4, then for every doubling `fade_kimg` while the new block fades in
(alpha 0 -> 1) and `stage_kimg` stable; after the last fade it stays at full size. Nothing
but the step counter decides the stage, so a run resumed in the middle of a fade continues
bit for bit. Real images are shown at the stage size (average-pooled) and, during a fade,
blended with their own half-size copy exactly as G blends its two outputs, so D never
judges G by detail G cannot draw yet.

Loss: WGAN-GP with the drift term, the loss ProGAN was designed and tuned with (its linear
output and unbounded critic rely on the drift term to keep logits near zero); `loss=ns` or
`hinge` are there to compare. Class-conditional (class embedding in G, projection term in D)
when the dataset has 2+ classes, unless conditional=false. DiffAugment optional.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..architectures.progan import full_config, levels_of, upsample
from ..errors import GanStudioError
from ..images import label_font
from ..model import to_unit_hwc
from . import losses
from .augment import diff_augment, parse_policy
from .fastgan_recipes import _ClassesWhenAny
from .plots import image_grid
from .recipes import Phase, Recipe, StepContext, register_recipe


def stage_at(images: int, resolution: int, stage_kimg: float,
             fade_kimg: float) -> tuple[int, float]:
    """(stage resolution, alpha) after `images` images: stable 4x4, then fade + stable per
    doubling; alpha is the new block's weight (1 = fully grown)."""
    top = levels_of(resolution)
    t = images / 1000.0 - stage_kimg
    for level in range(1, top + 1):
        if t < 0:
            return 4 * 2 ** (level - 1), 1.0
        if t < fade_kimg:
            return 4 * 2 ** level, t / fade_kimg
        t -= fade_kimg + stage_kimg
    return resolution, 1.0


def images_at(resolution: int, alpha: float, stage_kimg: float, fade_kimg: float) -> int:
    """The first image count at which `stage_at` reaches (resolution, alpha)."""
    level = levels_of(resolution)
    if level == 0:
        return 0
    kimg = stage_kimg + (level - 1) * (fade_kimg + stage_kimg) + float(alpha) * fade_kimg
    return math.ceil(kimg * 1000 - 1e-6)


@register_recipe
class ProGANRecipe(_ClassesWhenAny, Recipe):
    """Progressive GAN: grows G and D from 4x4 with fade-in, WGAN-GP; classes optional."""

    name = "progan"
    architecture = "progan"
    MODEL_KEYS = ("resolution", "z_dim", "base_channels", "max_channels", "embed_dim",
                  "mbstd_group", "stage_channels", "output")
    # Sized for CPUs: 128 channels at most (256 makes the 8-16 px stages four times slower);
    # 2 kimg per phase starts the 64 px fade at 14 kimg and is fully grown at 18 kimg (at
    # 64 px this network sees ~10 images per CPU second, gradient penalty included).
    # stage_channels: explicit widths (4 px first), set by imported models being fine-tuned.
    DEFAULTS = {"resolution": 64, "z_dim": 128, "base_channels": 32, "max_channels": 128,
                "embed_dim": 32, "mbstd_group": 4, "stage_channels": None, "output": "linear",
                "loss": "wgan-gp", "lr_g": 1e-3, "lr_d": 1e-3, "beta1": 0.0, "beta2": 0.99,
                "gp_weight": 10.0, "stage_kimg": 2.0, "fade_kimg": 2.0, "diffaugment": "",
                "conditional": True}

    def __init__(self, options: dict | None = None, num_classes: int = 0):
        self.images = 0  # images shown before the last trained step (what its stage was)
        self.start = 0   # a fine-tuned ProGAN continues from its own stage: images it had
        super().__init__(options, num_classes)
        self._use_classes(num_classes)

    def validate(self) -> None:
        o = self.options
        try:
            full_config({k: o[k] for k in self.MODEL_KEYS})
            losses.check_loss(o["loss"])
            self.policy = parse_policy(o["diffaugment"])
        except ValueError as exc:
            raise GanStudioError(f"recipe {self.name}: {exc}") from None
        self.check_adam()
        if not float(o["stage_kimg"]) > 0 or not float(o["fade_kimg"]) >= 0:
            raise GanStudioError(f"recipe {self.name}: stage_kimg must be positive and "
                                 "fade_kimg 0 or more (thousands of images per phase)")
        if float(o["gp_weight"]) < 0:
            raise GanStudioError(f"recipe {self.name}: gp_weight must be 0 or more")

    # --- the schedule -------------------------------------------------------------------------
    def stage(self, images: int | None = None) -> tuple[int, float]:
        images = self.start + (self.images if images is None else images)
        return stage_at(images, self.resolution, float(self.options["stage_kimg"]),
                        float(self.options["fade_kimg"]))

    def adopt_model_config(self, architecture: str, config: dict) -> None:
        """Fine-tuning a ProGAN (e.g. a GAN zoo import) keeps its widths and its stage: the
        schedule continues from where that model had grown to, not from 4x4."""
        super().adopt_model_config(architecture, config)
        res = int(config.get("stage_resolution") or config.get("resolution", 4))
        self.start = images_at(min(res, self.resolution), float(config.get("alpha", 1.0)),
                               float(self.options["stage_kimg"]),
                               float(self.options["fade_kimg"]))

    def model_config(self) -> dict:
        res, alpha = self.stage()
        return {**super().model_config(), "stage_resolution": res, "alpha": alpha}

    def state_dict(self) -> dict:
        return {"images": self.images, "start": self.start}

    def load_state_dict(self, state: dict) -> None:
        self.images = int(state.get("images", 0))
        self.start = int(state.get("start", 0))

    # --- networks and optimizers --------------------------------------------------------------
    def make_optimizers(self, nets):
        betas = (float(self.options["beta1"]), float(self.options["beta2"]))
        return {"G": torch.optim.Adam(nets["generator"].parameters(),
                                      lr=float(self.options["lr_g"]), betas=betas),
                "D": torch.optim.Adam(nets["discriminator"].parameters(),
                                      lr=float(self.options["lr_d"]), betas=betas)}

    def phases(self):
        return (Phase("D", "D", ("discriminator",)), Phase("G", "G", ("generator",)))

    # --- losses --------------------------------------------------------------------------------
    def _grow(self, ctx: StepContext) -> tuple[int, float]:
        """Set both networks to the stage of this step (images shown before it)."""
        self.images = ctx.step * ctx.rand.global_batch
        res, alpha = self.stage()
        ctx.nets["generator"].set_stage(res, alpha)
        ctx.nets["discriminator"].set_stage(res, alpha)
        return res, alpha

    def _inputs(self, ctx: StepContext):
        z = ctx.rand.normal(int(self.options["z_dim"]))
        if not self.num_classes:
            return z, None
        return z, F.one_hot(ctx.rand.randint(self.num_classes), self.num_classes).float()

    def _augment(self, images: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return diff_augment(images, self.policy, ctx.rand) if self.policy else images

    @staticmethod
    def reals_at(real: torch.Tensor, res: int, alpha: float) -> torch.Tensor:
        """Dataset images as D should see them at a stage: pooled to its size and, during a
        fade, blended with their half-size copy like G's two outputs."""
        if real.shape[-1] != res:
            real = F.adaptive_avg_pool2d(real, res)
        if alpha < 1.0 and res > 4:
            real = torch.lerp(upsample(F.avg_pool2d(real, 2)), real, alpha)
        return real

    def loss(self, phase, ctx, real, labels):
        G, D = ctx.nets["generator"], ctx.nets["discriminator"]
        kind = self.options["loss"]
        res, alpha = self._grow(ctx)
        z, c = self._inputs(ctx)
        stage = {"stage_px": torch.tensor(float(res)), "alpha": torch.tensor(alpha)}
        if phase == "G":
            fake_logits = D(self._augment(G(z, c), ctx), c)
            loss = losses.g_loss(kind, fake_logits)
            return loss, {"loss_g": loss.detach(), **stage}
        if phase != "D":
            raise GanStudioError(f"recipe {self.name} has no phase {phase!r}")
        with torch.no_grad():
            fake = G(z, c)
        real = self.reals_at(real, res, alpha)
        # Separate passes: minibatch stddev must not mix reals and fakes in one group.
        real_aug, fake_aug = self._augment(real, ctx), self._augment(fake, ctx)
        real_logits, fake_logits = D(real_aug, labels), D(fake_aug, c)
        loss = losses.d_loss(kind, real_logits, fake_logits)
        metrics = {"d_real": real_logits.detach().float().mean(),
                   "d_fake": fake_logits.detach().float().mean(),
                   "d_acc": losses.d_accuracy(real_logits.detach(), fake_logits.detach())}
        if kind == "wgan-gp" and float(self.options["gp_weight"]) > 0:
            mix = ctx.rand.uniform(1, 1, 1)
            gp = losses.gradient_penalty(lambda x: D(x, labels), real_aug, fake_aug, mix)
            loss = loss + float(self.options["gp_weight"]) * gp
            metrics["gp"] = gp.detach()
        metrics["loss_d"] = loss.detach()
        return loss, {**metrics, **stage}

    # --- pictures ------------------------------------------------------------------------------
    @torch.no_grad()
    def sample_grid(self, trainer) -> torch.Tensor:
        """The EMA generator at the current stage, enlarged (nearest) to the dataset size,
        with the stage written in the corner."""
        z, c = trainer.grid_latents()
        g = trainer.ema.module
        res, alpha = self.stage()
        g.set_stage(res, alpha)
        images = torch.cat([
            g(z[i:i + 16].to(trainer.device),
              None if c is None else c[i:i + 16].to(trainer.device))
            for i in range(0, len(z), 16)])
        if res < self.resolution:
            images = F.interpolate(images, size=self.resolution, mode="nearest")
        grid = image_grid(to_unit_hwc(images).cpu())
        return _caption(grid, f"{res}px" + (f" fade {alpha:.2f}" if alpha < 1 else ""))


def _caption(grid: torch.Tensor, text: str) -> torch.Tensor:
    """Write `text` in white on a dark strip at the top-left of a `[H, W, 3]` 0..1 image."""
    import numpy as np
    from PIL import Image, ImageDraw

    img = Image.fromarray((grid.clamp(0, 1).numpy() * 255).round().astype(np.uint8))
    draw = ImageDraw.Draw(img)
    font = label_font(12)
    box = draw.textbbox((2, 2), text, font=font)
    draw.rectangle((0, 0, box[2] + 3, box[3] + 3), fill=(0, 0, 0))
    draw.text((2, 2), text, fill=(255, 255, 255), font=font)
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)
