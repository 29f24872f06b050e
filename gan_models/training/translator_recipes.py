"""Training recipes for image-to-image GANs: pix2pix (paired data) and CycleGAN (unpaired).

Both read a PairedDataset (pairs.py), whose batches hold A and B side by side in channels.
  pix2pix   U-Net translator A -> B and a PatchGAN that judges (A, B) pairs;
            G loss = adversarial + l1_weight * |G(A) - B|  (Isola et al. 2017).
  cyclegan  two ResNet translators (A -> B, the model; B -> A, kept in the file as
            translator_ba) and one PatchGAN per domain; G loss = adversarial + cycle_weight *
            (|F(G(A)) - A| + |G(F(B)) - B|) + identity * cycle_weight * (|G(B) - B| +
            |F(A) - A|); D sees fakes from a pool of earlier ones (Zhu et al. 2017).
Adversarial losses: ns (the papers' "vanilla"), lsgan (CycleGAN's) or hinge; every D loss is
halved as in the public code. The loop's average ("EMA") follows the A -> B translator.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..architectures.pix2pix import NORMS, unet_levels
from ..errors import GanStudioError
from ..model import to_unit_hwc
from .augment import diff_augment, parse_policy
from .plots import image_grid
from .recipes import Phase, Recipe, StepContext, register_recipe

TRANSLATOR_LOSSES = ("ns", "lsgan", "hinge")
GAN_OPTIONS = {"base_channels": 64, "ndf": 64, "d_layers": 3, "loss": "ns", "lr_g": 2e-4,
               "lr_d": 2e-4, "beta1": 0.5, "beta2": 0.999, "diffaugment": ""}


def d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    real, fake = real.float(), fake.float()
    if kind == "ns":
        loss = F.softplus(-real).mean() + F.softplus(fake).mean()
    elif kind == "lsgan":
        loss = (real - 1).square().mean() + fake.square().mean()
    else:
        loss = F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    return 0.5 * loss


def g_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    fake = fake.float()
    if kind == "ns":
        return F.softplus(-fake).mean()
    if kind == "lsgan":
        return (fake - 1).square().mean()
    return -fake.mean()


class _TranslatorRecipe(Recipe):
    """What pix2pix and CycleGAN share: options, the PatchGAN, previews."""

    data_kind = "paired"
    ema_role = "translator"
    ARCH_KEYS = {"base_channels": "ngf", "ndf": "ndf", "d_layers": "d_layers", "norm": "norm",
                 "dropout": "dropout"}

    def validate(self) -> None:
        o = self.options
        if o["loss"] not in TRANSLATOR_LOSSES:
            raise GanStudioError(f"recipe {self.name}: loss must be one of {TRANSLATOR_LOSSES}, "
                                 f"got {o['loss']!r}")
        if o["norm"] not in NORMS:
            raise GanStudioError(f"recipe {self.name}: norm must be one of {NORMS}")
        self.check_adam()
        for key in ("base_channels", "ndf"):
            if not 1 <= int(o[key]) <= 512:
                raise GanStudioError(f"{key} must be 1..512, got {o[key]}")
        if not 1 <= int(o["d_layers"]) <= 6:
            raise GanStudioError(f"d_layers must be 1..6, got {o['d_layers']}")
        try:
            self.policy = parse_policy(o["diffaugment"])
        except ValueError as exc:
            raise GanStudioError(f"recipe {self.name}: {exc}") from None

    def model_config(self) -> dict:
        o = self.options
        cfg = {arch: o[key] for key, arch in self.ARCH_KEYS.items()}
        return {**cfg, "resolution": self.resolution, "discriminator": self.DISCRIMINATOR}

    def adopt_model_config(self, architecture: str, config: dict) -> None:
        if architecture != self.architecture:
            raise GanStudioError(f"recipe {self.name} trains {self.architecture} models; the "
                                 f"given model is {architecture}")
        for key, arch in self.ARCH_KEYS.items():
            if arch in config:
                self.options[key] = config[arch]
        self.validate()

    def make_optimizers(self, nets):
        betas = (float(self.options["beta1"]), float(self.options["beta2"]))
        g = [p for role in self.G_ROLES for p in nets[role].parameters()]
        d = [p for role in self.D_ROLES for p in nets[role].parameters()]
        return {"G": torch.optim.Adam(g, lr=float(self.options["lr_g"]), betas=betas),
                "D": torch.optim.Adam(d, lr=float(self.options["lr_d"]), betas=betas)}

    def phases(self):
        return (Phase("D", "D", self.D_ROLES), Phase("G", "G", self.G_ROLES))

    def _augment(self, x: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return diff_augment(x, self.policy, ctx.rand) if self.policy else x

    @staticmethod
    def split(batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if batch.shape[1] != 6:
            raise GanStudioError("image-to-image recipes train on pairs: make the dataset "
                                 "from A/ and B/ folders (Paired Dataset node, or --data with "
                                 "A/ and B/ subfolders)")
        return batch[:, :3], batch[:, 3:]

    # --- pictures -------------------------------------------------------------------------
    def preview_batch(self, trainer, count: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
        n = min(count, len(trainer.dataset))
        picks = torch.linspace(0, len(trainer.dataset) - 1, n).round().long()
        return self.split(trainer.dataset.batch(picks, None, trainer.device)[0])

    @torch.no_grad()
    def sample_grid(self, trainer) -> torch.Tensor:
        """Rows of input | translation | target for fixed training pairs: `[H, W, 3]` 0..1."""
        a, b = self.preview_batch(trainer)
        net = trainer.ema.module
        y = net(a)
        rows = torch.cat([to_unit_hwc(a), to_unit_hwc(y), to_unit_hwc(b)], 2).cpu()
        return image_grid(rows, cols=2)

    def preview_grids(self, trainer) -> dict[str, torch.Tensor]:
        return {"samples": self.sample_grid(trainer)}


@register_recipe
class Pix2PixRecipe(_TranslatorRecipe):
    """pix2pix on paired data: U-Net translator, PatchGAN on (input, output) pairs, L1 +
    adversarial loss."""

    name = "pix2pix"
    architecture = "pix2pix-unet"
    DISCRIMINATOR = "paired"
    G_ROLES, D_ROLES = ("translator",), ("discriminator",)
    DEFAULTS = {"resolution": 64, **GAN_OPTIONS, "norm": "batch", "dropout": True,
                "l1_weight": 100.0}

    def validate(self) -> None:
        super().validate()
        try:
            unet_levels(self.resolution)
        except ValueError as exc:
            raise GanStudioError(f"recipe pix2pix: {exc}") from None
        if float(self.options["l1_weight"]) < 0:
            raise GanStudioError(f"l1_weight must not be negative, got "
                                 f"{self.options['l1_weight']}")

    def model_config(self) -> dict:
        return {**super().model_config(), "num_downs": unet_levels(self.resolution)}

    def loss(self, phase, ctx: StepContext, real, labels):
        G, D = ctx.nets["translator"], ctx.nets["discriminator"]
        a, b = self.split(real)
        kind = self.options["loss"]
        if phase == "G":
            fake = G(a)
            adv = g_loss(kind, D(self._augment(torch.cat([a, fake], 1), ctx)))
            l1 = (fake.float() - b).abs().mean()
            loss = adv + float(self.options["l1_weight"]) * l1
            return loss, {"loss_g": adv.detach(), "l1": l1.detach()}
        with torch.no_grad():
            fake = G(a)
        real_logits = D(self._augment(torch.cat([a, b], 1), ctx))
        fake_logits = D(self._augment(torch.cat([a, fake], 1), ctx))
        loss = d_loss(kind, real_logits, fake_logits)
        return loss, {"loss_d": loss.detach(), "d_real": real_logits.detach().float().mean(),
                      "d_fake": fake_logits.detach().float().mean()}


class ImagePool:
    """Earlier fakes for the discriminators (Shrivastava et al. 2017): until full, each new
    fake is stored and used; then with probability 1/2 a stored one is used instead and the
    new one takes its place. Randomness comes from the step's BatchRandom."""

    def __init__(self, size: int):
        self.size = int(size)
        self.images: torch.Tensor | None = None

    def query(self, fakes: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        coin = ctx.rand.uniform()
        slot = ctx.rand.randint(max(self.size, 1))
        if self.size == 0:
            return fakes
        if self.images is not None:
            self.images = self.images.to(fakes.device)
        out = []
        for i, img in enumerate(fakes.detach()):
            img = img[None]
            stored = 0 if self.images is None else len(self.images)
            if stored < self.size:
                self.images = img.clone() if self.images is None else torch.cat([self.images, img])
                out.append(img)
            elif float(coin[i]) < 0.5:
                k = int(slot[i]) % stored
                out.append(self.images[k:k + 1].clone())
                self.images[k] = img[0]
            else:
                out.append(img)
        return torch.cat(out)


@register_recipe
class CycleGANRecipe(_TranslatorRecipe):
    """CycleGAN on two unpaired folders: ResNet translators both ways, a PatchGAN per domain,
    cycle and identity losses, an image pool."""

    name = "cyclegan"
    architecture = "pix2pix-resnet"
    data_kind = "unpaired"
    DISCRIMINATOR = "cycle"
    G_ROLES = ("translator", "translator_ba")
    D_ROLES = ("discriminator", "discriminator_a")
    ARCH_KEYS = {**_TranslatorRecipe.ARCH_KEYS, "n_blocks": "n_blocks"}
    DEFAULTS = {"resolution": 64, **GAN_OPTIONS, "loss": "lsgan", "norm": "instance",
                "dropout": False, "n_blocks": 9, "cycle_weight": 10.0, "identity": 0.5,
                "pool_size": 50}

    def __init__(self, options=None, num_classes=0):
        super().__init__(options, num_classes)
        self.pools = {"a": ImagePool(self.options["pool_size"]),
                      "b": ImagePool(self.options["pool_size"])}

    def validate(self) -> None:
        super().validate()
        o = self.options
        if self.resolution % 4:
            raise GanStudioError(f"recipe cyclegan: resolution must be a multiple of 4, got "
                                 f"{self.resolution}")
        if not 0 <= int(o["n_blocks"]) <= 64:
            raise GanStudioError(f"n_blocks must be 0..64, got {o['n_blocks']}")
        for key in ("cycle_weight", "identity"):
            if float(o[key]) < 0:
                raise GanStudioError(f"{key} must not be negative, got {o[key]}")
        if not 0 <= int(o["pool_size"]) <= 1000:
            raise GanStudioError(f"pool_size must be 0..1000, got {o['pool_size']}")

    def loss(self, phase, ctx: StepContext, real, labels):
        G, Fb = ctx.nets["translator"], ctx.nets["translator_ba"]
        Db, Da = ctx.nets["discriminator"], ctx.nets["discriminator_a"]
        a, b = self.split(real)
        kind, lam = self.options["loss"], float(self.options["cycle_weight"])
        if phase == "G":
            fake_b, fake_a = G(a), Fb(b)
            adv = g_loss(kind, Db(self._augment(fake_b, ctx))) + \
                g_loss(kind, Da(self._augment(fake_a, ctx)))
            cycle = (Fb(fake_b).float() - a).abs().mean() + (G(fake_a).float() - b).abs().mean()
            loss = adv + lam * cycle
            metrics = {"loss_g": adv.detach(), "cycle": cycle.detach()}
            weight = float(self.options["identity"])
            if weight > 0:
                same = (G(b).float() - b).abs().mean() + (Fb(a).float() - a).abs().mean()
                loss = loss + lam * weight * same
                metrics["identity"] = same.detach()
            return loss, metrics
        with torch.no_grad():
            fake_b = self.pools["b"].query(G(a), ctx)
            fake_a = self.pools["a"].query(Fb(b), ctx)
        loss_b = d_loss(kind, Db(self._augment(b, ctx)), Db(self._augment(fake_b, ctx)))
        loss_a = d_loss(kind, Da(self._augment(a, ctx)), Da(self._augment(fake_a, ctx)))
        loss = loss_a + loss_b
        return loss, {"loss_d": loss.detach(), "loss_d_b": loss_b.detach()}

    def state_dict(self) -> dict:
        return {k: pool.images.cpu() for k, pool in self.pools.items()
                if pool.images is not None}

    def load_state_dict(self, state: dict) -> None:
        for k, pool in self.pools.items():
            pool.images = state[k].clone() if k in state else None

    @torch.no_grad()
    def sample_grid(self, trainer) -> torch.Tensor:
        """Rows of A | A -> B | B | B -> A (unpaired: B is not A's target)."""
        a, b = self.preview_batch(trainer)
        back = trainer.nets["translator_ba"]
        was = back.training
        back.eval()
        try:
            rows = torch.cat([to_unit_hwc(a), to_unit_hwc(trainer.ema.module(a)),
                              to_unit_hwc(b), to_unit_hwc(back(b))], 2).cpu()
        finally:
            back.train(was)
        return image_grid(rows, cols=2)
