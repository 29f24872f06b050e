"""StyleGAN2-ADA training (Karras et al. 2020) for small datasets, from scratch or fine-tuning.

Per step, as in NVlabs' loss: G (non-saturating loss on augmented fakes), optionally G path
length regularisation every `pl_interval` steps, D (logistic loss on augmented reals and
fakes), and lazy R1 on augmented reals every `r1_interval` steps, scaled by the interval.
Adam's lr and betas of a lazily regularised network are adjusted for the extra steps, as in
the paper. Style mixing (per image) and the mapping network's w_avg tracking run as in
NVlabs; the loop keeps the generator EMA. Adaptive augmentation (ada.py) is on by default.

Sizes come from options (resolution, z_dim, w_dim, map_layers, base_channels = channels at
full resolution, max_channels) with CPU-friendly defaults. A dataset with 2+ classes trains a
class-conditional model. Fine-tuning adopts the given StyleGAN2's config (its G, and its D
when it has one, else a fresh D of matching size); `freeze_d` freezes the highest-resolution
D blocks (Freeze-D, Mo et al. 2020). The adopted config is kept in the `network` option so
snapshots of a fine-tuning run resume like any other.

Mixed precision: on CUDA the loop's bf16 autocast (amp=auto) or the network's own float16
blocks (num_fp16_res); the CPU always trains in float32.
"""

from __future__ import annotations

import contextlib
import copy
import math

import torch
import torch.nn.functional as F

from ..errors import GanStudioError
from . import losses
from .ada import AdaController, augment, parse_ops
from .augment import diff_augment, parse_policy
from .recipes import Phase, Recipe, StepContext, register_recipe

AUGMENT_MODES = ("ada", "fixed", "off")
LOSS_KINDS = ("ns", "hinge")


@register_recipe
class StyleGAN2ADARecipe(Recipe):
    """StyleGAN2 with adaptive discriminator augmentation, R1 and (optional) path length."""

    name = "stylegan2-ada"
    architecture = "stylegan2"
    DEFAULTS = {
        # network size (ignored when fine-tuning: the model's own config is used)
        "resolution": 64, "z_dim": 256, "w_dim": 256, "map_layers": 2, "base_channels": 64,
        "max_channels": 256, "mbstd_group": 4, "num_fp16_res": 0,
        # optimisation (NVlabs: lr 0.0025, betas (0, 0.99))
        "loss": "ns", "lr_g": 0.0025, "lr_d": 0.0025, "beta1": 0.0, "beta2": 0.99,
        # regularisation; r1_gamma < 0: NVlabs' auto value 0.0002 * resolution² / batch
        "r1_gamma": -1.0, "r1_interval": 16, "pl_weight": 0.0, "pl_interval": 4,
        "pl_decay": 0.01, "pl_batch_shrink": 2, "style_mixing": 0.9,
        # augmentation: adaptive (ada), constant p (fixed) or none (off)
        "augment": "ada", "augment_p": 0.0, "ada_target": 0.6, "ada_interval": 4,
        "ada_kimg": 100.0, "ada_ops": "bgc", "diffaugment": "",
        # fine-tuning
        "freeze_d": 0, "conditional": True, "network": None,
    }

    def __init__(self, options: dict | None = None, num_classes: int = 0):
        given = {k for k, v in (options or {}).items() if v is not None}
        super().__init__(options, num_classes)
        # Classes are used when the dataset has two or more (and conditional is on).
        use = bool(self.options["conditional"]) and int(num_classes) >= 2
        self.num_classes = int(num_classes) if use else 0
        self.conditional = use
        self._given = given
        self.ada = AdaController(
            float(self.options["ada_target"]), int(self.options["ada_interval"]),
            float(self.options["ada_kimg"]), float(self.options["augment_p"]),
            adaptive=self.options["augment"] == "ada")
        self.pl_mean = torch.zeros([])

    # --- options -----------------------------------------------------------------------------
    def validate(self) -> None:
        o = self.options
        res = int(o["resolution"])
        if res < 8 or res > 2048 or res & (res - 1):
            raise GanStudioError(f"recipe {self.name}: resolution must be a power of two from "
                                 f"8 to 2048, got {res}")
        if o["loss"] not in LOSS_KINDS:
            raise GanStudioError(f"recipe {self.name}: loss must be one of {LOSS_KINDS} (it "
                                 f"regularises D with R1, not a WGAN penalty), got {o['loss']!r}")
        if o["augment"] not in AUGMENT_MODES:
            raise GanStudioError(f"recipe {self.name}: augment must be one of {AUGMENT_MODES}, "
                                 f"got {o['augment']!r}")
        try:
            self.ops = parse_ops(o["ada_ops"])
            self.policy = parse_policy(o["diffaugment"])
        except ValueError as exc:
            raise GanStudioError(f"recipe {self.name}: {exc}") from None
        positive = ("lr_g", "lr_d", "ada_kimg", "z_dim", "w_dim", "map_layers",
                    "base_channels", "max_channels", "mbstd_group", "r1_interval",
                    "pl_interval", "ada_interval", "pl_batch_shrink")
        for key in positive:
            if not float(o[key]) > 0:
                raise GanStudioError(f"recipe {self.name}: {key} must be positive, got {o[key]}")
        for key in ("beta1", "beta2", "augment_p", "ada_target"):
            if not 0 <= float(o[key]) < 1:
                raise GanStudioError(f"recipe {self.name}: {key} must be in [0, 1), got {o[key]}")
        for key in ("style_mixing", "pl_decay"):
            if not 0 <= float(o[key]) <= 1:
                raise GanStudioError(f"recipe {self.name}: {key} must be in [0, 1], got {o[key]}")
        for key in ("pl_weight", "freeze_d", "num_fp16_res"):
            if float(o[key]) < 0:
                raise GanStudioError(f"recipe {self.name}: {key} must be 0 or more, got {o[key]}")
        blocks = int(math.log2(res)) - 2  # D blocks above the 4x4 epilogue
        if int(o["freeze_d"]) > blocks:
            raise GanStudioError(f"recipe {self.name}: freeze_d = {o['freeze_d']} but a "
                                 f"{res}px discriminator has {blocks} blocks to freeze")
        if o["network"] is not None and not isinstance(o["network"], dict):
            raise GanStudioError(f"recipe {self.name}: network must be a stylegan2 config")

    # --- networks ----------------------------------------------------------------------------
    def model_config(self) -> dict:
        o = self.options
        if o["network"] is not None:
            config = copy.deepcopy(o["network"])
            g = config["generator"]
            d = config.get("discriminator") or self._fresh_discriminator(g)
        else:
            res = int(o["resolution"])
            width = {"channel_base": int(o["base_channels"]) * res,
                     "channel_max": int(o["max_channels"])}
            g = {"z_dim": int(o["z_dim"]), "w_dim": int(o["w_dim"]), "c_dim": self.num_classes,
                 "img_resolution": res, "img_channels": 3,
                 "mapping_kwargs": {"num_layers": int(o["map_layers"])},
                 "conv_clamp": 256, **width}
            d = self._fresh_discriminator(g)
        fp16 = int(o["num_fp16_res"])
        _set_synthesis_option(g, "num_fp16_res", fp16)
        d["num_fp16_res"] = fp16
        d["block_kwargs"] = {**(d.get("block_kwargs") or {}),
                             "freeze_layers": _frozen_layers(d, int(o["freeze_d"]))}
        return {"generator": g, "discriminator": d}

    def _fresh_discriminator(self, g: dict) -> dict:
        """A D that fits generator config g (its resolution, classes and widths)."""
        return {"c_dim": int(g.get("c_dim", 0)), "img_resolution": int(g["img_resolution"]),
                "img_channels": int(g.get("img_channels", 3)), "architecture": "resnet",
                "channel_base": int(_synthesis_option(g, "channel_base", 32768)),
                "channel_max": int(_synthesis_option(g, "channel_max", 512)),
                "conv_clamp": _synthesis_option(g, "conv_clamp", 256),
                "block_kwargs": {}, "mapping_kwargs": {},
                "epilogue_kwargs": {"mbstd_group_size": int(self.options["mbstd_group"])}}

    def adopt_model_config(self, architecture: str, config: dict) -> None:
        """Fine-tune a StyleGAN2: keep its networks' config, or refuse with the reason."""
        if architecture != self.architecture:
            raise GanStudioError(f"recipe {self.name} fine-tunes stylegan2 models; the given "
                                 f"model is {architecture}")
        g = dict(config["generator"])
        res, classes = int(g["img_resolution"]), int(g.get("c_dim", 0))
        channels = int(g.get("img_channels", 3))
        if channels != 3:
            raise GanStudioError(f"the model makes {channels}-channel images; training data "
                                 "is RGB, so it cannot be fine-tuned here")
        if "resolution" in self._given and int(self.options["resolution"]) != res:
            raise GanStudioError(f"the model is {res}px but the run asks for "
                                 f"{self.options['resolution']}px: train at {res}px (the "
                                 "dataset is resized to it)")
        if classes != self.num_classes:
            if classes:
                hint = ("use a dataset with one subfolder per class, as many classes as the "
                        "model's")
            else:
                hint = ("use images without class subfolders, or set conditional=false to "
                        "ignore the dataset's classes")
            raise GanStudioError(f"the model has {classes or 'no'} classes but this dataset "
                                 f"gives {self.num_classes or 'none'}: {hint}")
        self.options["resolution"] = res
        self.options["z_dim"], self.options["w_dim"] = int(g["z_dim"]), int(g["w_dim"])
        disc = config.get("discriminator")
        self.options["network"] = {"generator": g, "discriminator": copy.deepcopy(disc)}
        self.validate()

    def make_optimizers(self, nets):
        def adam(params, lr: float, interval: int | None):
            # Lazy regularisation: the network steps interval + 1 times per `interval`
            # steps, so lr and betas are scaled to keep the per-step dynamics (NVlabs).
            ratio = interval / (interval + 1) if interval else 1.0
            betas = (float(self.options["beta1"]) ** ratio, float(self.options["beta2"]) ** ratio)
            return torch.optim.Adam(params, lr=lr * ratio, betas=betas, eps=1e-8)

        pl = int(self.options["pl_interval"]) if self._pl_on else None
        r1 = int(self.options["r1_interval"]) if self._r1_on else None
        return {"G": adam(nets["generator"].parameters(), float(self.options["lr_g"]), pl),
                "D": adam(nets["discriminator"].parameters(), float(self.options["lr_d"]), r1)}

    @property
    def _pl_on(self) -> bool:
        return float(self.options["pl_weight"]) > 0

    @property
    def _r1_on(self) -> bool:
        return float(self.options["r1_gamma"]) != 0

    def phases(self):
        phases = [Phase("G", "G", ("generator",))]
        if self._pl_on:
            phases.append(Phase("Greg", "G", ("generator",), int(self.options["pl_interval"])))
        phases.append(Phase("D", "D", ("discriminator",)))
        if self._r1_on:
            phases.append(Phase("Dreg", "D", ("discriminator",),
                                int(self.options["r1_interval"])))
        return tuple(phases)

    # --- losses ------------------------------------------------------------------------------
    def loss(self, phase, ctx, real, labels):
        self.ada.step(ctx.step, ctx.rand.global_batch)
        with _seeded_noise(ctx):  # synthesis noise: a function of (seed, step, phase, rows)
            if phase == "G":
                return self._g_main(ctx, real.shape[0])
            if phase == "Greg":
                return self._g_path_length(ctx, real.shape[0])
            if phase == "D":
                return self._d_main(ctx, real, labels)
            if phase == "Dreg":
                return self._d_r1(ctx, real, labels)
        raise GanStudioError(f"recipe {self.name} has no phase {phase!r}")

    def _g_main(self, ctx: StepContext, n: int):
        z, c = self._latents(ctx, n)
        fake, _ws = self._generate(ctx, z, c)
        loss = losses.g_loss(self.options["loss"], self._discriminate(ctx, fake, c))
        return loss, {"loss_g": loss.detach()}

    def _g_path_length(self, ctx: StepContext, n: int):
        z, c = self._latents(ctx, n)
        m = max(1, n // int(self.options["pl_batch_shrink"]))  # a smaller batch suffices
        z, c = z[:m], None if c is None else c[:m]
        fake, ws = self._generate(ctx, z, c)
        _b, ch, h, w = fake.shape
        noise = ctx.rand.normal(ch, h, w)[:m].to(fake.dtype) / math.sqrt(h * w)
        (grads,) = torch.autograd.grad((fake * noise).sum(), ws, create_graph=True)
        lengths = grads.float().square().sum(2).mean(1).sqrt()        # [m]
        mean = self.pl_mean.to(lengths.device).lerp(lengths.mean().detach(),
                                                    float(self.options["pl_decay"]))
        self.pl_mean = mean.detach()
        penalty = (lengths - mean).square().mean()
        loss = penalty * float(self.options["pl_weight"]) * int(self.options["pl_interval"])
        return loss, {"pl_penalty": penalty.detach(), "pl_mean": mean.detach()}

    def _d_main(self, ctx: StepContext, real: torch.Tensor, labels):
        n = real.shape[0]
        z, c = self._latents(ctx, n)
        with torch.no_grad():
            fake, _ws = self._generate(ctx, z, c, update_emas=True)  # tracks w_avg
        fake_logits = self._discriminate(ctx, fake, c)
        real_logits = self._discriminate(ctx, real, labels)
        self.ada.accumulate(real_logits)
        loss = losses.d_loss(self.options["loss"], real_logits, fake_logits)
        real_logits, fake_logits = real_logits.detach(), fake_logits.detach()
        return loss, {"loss_d": loss.detach(), "d_real": real_logits.float().mean(),
                      "d_fake": fake_logits.float().mean(),
                      "d_acc": losses.d_accuracy(real_logits, fake_logits),
                      "ada_p": torch.tensor(self.ada.p, device=real.device)}

    def _d_r1(self, ctx: StepContext, real: torch.Tensor, labels):
        real = real.detach().requires_grad_(True)
        logits = self._discriminate(ctx, real, labels)
        (grad,) = torch.autograd.grad(logits.float().sum(), real, create_graph=True)
        penalty = grad.float().square().sum(dim=(1, 2, 3)).mean()
        gamma = self.r1_gamma(ctx.rand.global_batch)
        loss = penalty * (gamma / 2) * int(self.options["r1_interval"])
        return loss, {"r1": penalty.detach()}

    def r1_gamma(self, batch: int) -> float:
        gamma = float(self.options["r1_gamma"])
        return gamma if gamma >= 0 else 0.0002 * self.resolution ** 2 / batch

    # --- pieces ------------------------------------------------------------------------------
    def _latents(self, ctx: StepContext, n: int):
        """z `[n, z_dim]` and one-hot classes `[n, C]` (None when unconditional)."""
        z = ctx.rand.normal(int(ctx.nets["generator"].z_dim))
        if not self.num_classes:
            return z, None
        return z, F.one_hot(ctx.rand.randint(self.num_classes), self.num_classes).float()

    def _generate(self, ctx: StepContext, z, c, update_emas: bool = False):
        """Images and the styles that made them, with per-image style mixing."""
        G = ctx.nets["generator"]
        ws = G.mapping(z, c, update_emas=update_emas)                  # [n, num_ws, w_dim]
        prob = float(self.options["style_mixing"])
        if prob > 0:
            n, num_ws = ws.shape[:2]  # n may be a part of the micro-batch (path length)
            other = G.mapping(ctx.rand.normal(z.shape[1])[:n], c, update_emas=False)
            mix = (ctx.rand.uniform() < prob)[:n]
            cutoff = torch.where(mix, (ctx.rand.randint(num_ws - 1) + 1)[:n],
                                 torch.full_like(mix, num_ws, dtype=torch.long))
            later = torch.arange(num_ws, device=ws.device)[None, :] >= cutoff[:, None]
            ws = torch.where(later[:, :, None], other, ws)
        return G.synthesis(ws, noise_mode="random"), ws

    def _discriminate(self, ctx: StepContext, images: torch.Tensor, c):
        D = ctx.nets["discriminator"]
        _check_group(D, images.shape[0])
        if self.options["augment"] != "off":
            images = augment(images, self.ada.p, ctx.rand, self.ops)
        if self.policy:
            images = diff_augment(images, self.policy, ctx.rand)
        return D(images, c)

    # --- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"ada": self.ada.state_dict(), "pl_mean": self.pl_mean.detach().cpu()}

    def load_state_dict(self, state: dict) -> None:
        if "ada" in state:
            self.ada.load_state_dict(state["ada"])
        if "pl_mean" in state:
            self.pl_mean = state["pl_mean"].detach().clone().float()


def _synthesis_option(g: dict, key: str, default):
    """A synthesis option of a generator config, flat or in synthesis_kwargs."""
    nested = g.get("synthesis_kwargs") or {}
    return g.get(key, nested.get(key, default))


def _set_synthesis_option(g: dict, key: str, value) -> None:
    if key not in g and isinstance(g.get("synthesis_kwargs"), dict):
        g["synthesis_kwargs"][key] = value
    else:
        g[key] = value


def _frozen_layers(d: dict, blocks: int) -> int:
    """Freeze-D: the number of D layers in its `blocks` highest-resolution blocks (the
    discriminator counts layers from the top: fromrgb, conv0, conv1, skip, ...)."""
    arch = d.get("architecture", "resnet")
    layers = 0
    for k in range(blocks):
        layers += (k == 0 or arch == "skip") + 2 + (arch == "resnet")
    return layers


def _check_group(D, n: int) -> None:
    """Minibatch std compares images in groups: a micro-batch must split into them."""
    mbstd = getattr(getattr(D, "b4", None), "mbstd", None)
    if mbstd is None or mbstd.group_size is None:
        return
    group = min(int(mbstd.group_size), n)
    if n % group:
        raise GanStudioError(
            f"the discriminator compares images in groups of {mbstd.group_size} (minibatch "
            f"std), so each batch (or micro-batch) must be a multiple of it; {n} is not")


@contextlib.contextmanager
def _seeded_noise(ctx: StepContext):
    """Seed the global RNG (used by the synthesis network's per-pixel noise) from the step's
    generator, and restore it afterwards, so training noise never depends on what ran
    before and a resumed run draws the same noise."""
    rows = torch.randint(2 ** 62, (ctx.rand.global_batch,), generator=ctx.rand.gen)
    seed = int(rows[ctx.rand.lo])
    devices = [ctx.device] if ctx.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
