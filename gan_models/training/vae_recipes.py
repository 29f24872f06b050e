"""Training recipes for the autoencoder families: vae, beta_vae, cvae and vqvae.

Each trains the encoder and the decoder ("generator") together with one Adam optimizer in a
single phase. The loss pieces live in `gan_models.vae_losses`:
  vae / cvae:  reconstruction (summed over pixels) + KL term, where the KL term is
               beta * warm-up weight * KL (optionally with free bits) or, when capacity_max
               > 0, gamma * |KL - C| with C grown linearly (Burgess et al. 2018);
  beta_vae:    the same with beta = 4 by default;
  vqvae:       mean reconstruction error + commitment * ||z_e - sg[e]||^2 (+ the codebook
               loss when the codebook is a parameter); EMA codebooks update after the loss.
The loop's EMA of the decoder is off by default (ema_kimg 0): an averaged decoder would no
longer match the encoder it was trained with.
"""

from __future__ import annotations

import torch

from ..architectures import vae as vae_arch
from ..architectures import vqvae as vq_arch
from ..errors import GanStudioError
from ..model import to_unit_hwc
from ..vae_losses import (
    KL_SCHEDULES,
    RECON_LOSSES,
    capacity_at,
    capacity_loss,
    kl_divergence,
    kl_per_dim,
    kl_weight,
    psnr,
    reconstruction_loss,
    vq_losses,
)
from ..vae_ops import reconstruction_grid
from .recipes import RECIPES, Phase, Recipe, StepContext, register_recipe

OPTIMIZER = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "ema_kimg": 0.0}


class _AutoencoderRecipe(Recipe):
    """What the VAE and VQ-VAE recipes share: one phase, one optimizer, previews."""

    arch_module = vae_arch

    def validate(self) -> None:
        try:
            self.arch_module.full_config(self.model_config())
        except ValueError as exc:
            raise GanStudioError(f"recipe {self.name}: {exc}") from None
        o = self.options
        if o["recon_loss"] not in RECON_LOSSES:
            raise GanStudioError(f"recipe {self.name}: recon_loss must be one of "
                                 f"{RECON_LOSSES}, got {o['recon_loss']!r}")
        self.check_adam(lr_keys=("lr",))

    def make_optimizers(self, nets):
        params = [*nets["encoder"].parameters(), *nets["generator"].parameters()]
        betas = (float(self.options["beta1"]), float(self.options["beta2"]))
        return {"vae": torch.optim.Adam(params, lr=float(self.options["lr"]), betas=betas)}

    def phases(self):
        return (Phase("VAE", "vae", ("encoder", "generator")),)

    @torch.no_grad()
    def preview_grids(self, trainer, count: int = 16) -> dict[str, torch.Tensor]:
        """{'samples': decoded fixed latents, 'reconstructions': input|reconstruction pairs of
        `count` training images spread over the dataset (so over its classes, which are
        stored in order)}, each one `[H, W, 3]` image 0..1."""
        n = min(count, len(trainer.dataset))
        picks = torch.linspace(0, len(trainer.dataset) - 1, n).round().long()
        real, labels = trainer.dataset.batch(picks, None, trainer.device)
        recon = self.reconstruct(trainer.nets["encoder"], trainer.ema.module, real,
                                 labels if self.num_classes else None)
        pairs = reconstruction_grid(to_unit_hwc(real).cpu(), to_unit_hwc(recon).cpu())
        return {"samples": trainer.sample_grid(), "reconstructions": pairs}

    @staticmethod
    def reconstruct(encoder, decoder, real, labels):
        was = encoder.training
        encoder.eval()
        try:
            return decoder(encoder(real, labels)[0], labels)
        finally:
            encoder.train(was)


@register_recipe
class VAERecipe(_AutoencoderRecipe):
    """Convolutional VAE; KL warm-up, free bits and capacity annealing are options."""

    name = "vae"
    architecture = "vae"
    MODEL_KEYS = ("resolution", "z_dim", "base_channels", "max_channels", "embed_dim",
                  "res_blocks")
    DEFAULTS = {"resolution": 64, "z_dim": 64, "base_channels": 32, "max_channels": 256,
                "embed_dim": 32, "res_blocks": 1, "recon_loss": "mse", "beta": 1.0,
                "kl_schedule": "linear", "kl_warmup_steps": 2000, "kl_cycles": 4,
                "free_bits": 0.0, "capacity_max": 0.0, "capacity_steps": 20000,
                "capacity_gamma": 1000.0, **OPTIMIZER}

    def validate(self) -> None:
        super().validate()
        o = self.options
        if o["kl_schedule"] not in KL_SCHEDULES:
            raise GanStudioError(f"kl_schedule must be one of {KL_SCHEDULES}, "
                                 f"got {o['kl_schedule']!r}")
        for key in ("beta", "free_bits", "capacity_max", "capacity_gamma", "kl_warmup_steps",
                    "capacity_steps"):
            if float(o[key]) < 0:
                raise GanStudioError(f"{key} must not be negative, got {o[key]}")
        if int(o["kl_cycles"]) < 1:
            raise GanStudioError(f"kl_cycles must be at least 1, got {o['kl_cycles']}")

    def kl_term(self, kl: torch.Tensor, step: int) -> tuple[torch.Tensor, dict]:
        """The KL part of the loss at a step, and the schedule value to log."""
        o = self.options
        if float(o["capacity_max"]) > 0:
            cap = capacity_at(step, float(o["capacity_max"]), int(o["capacity_steps"]))
            return (capacity_loss(kl, cap, float(o["capacity_gamma"])),
                    {"capacity": torch.tensor(cap, device=kl.device)})
        w = float(o["beta"]) * kl_weight(step, o["kl_schedule"], int(o["kl_warmup_steps"]),
                                         int(o["kl_cycles"]))
        return w * kl, {"kl_weight": torch.tensor(w, device=kl.device)}

    def loss(self, phase, ctx: StepContext, real, labels):
        enc, dec = ctx.nets["encoder"], ctx.nets["generator"]
        mean, logvar = enc(real, labels)
        eps = ctx.rand.normal(mean.shape[1])
        recon = dec(vae_arch.reparameterize(mean, logvar, eps), labels)
        mean, logvar = mean.float(), logvar.float()
        rec = reconstruction_loss(recon.float(), real, self.options["recon_loss"], "sum")
        kl = kl_divergence(mean, logvar, float(self.options["free_bits"]))
        reg, extra = self.kl_term(kl, ctx.step)
        loss = rec + reg
        metrics = {"loss": loss.detach(), "recon": rec.detach(),
                   "kl": kl_per_dim(mean.detach(), logvar.detach()).sum(),
                   "psnr": psnr(recon.detach(), real), **extra}
        return loss, metrics


@register_recipe
class BetaVAERecipe(VAERecipe):
    """beta-VAE (Higgins et al. 2017): a heavier KL term for more disentangled latents."""

    name = "beta_vae"
    DEFAULTS = {**VAERecipe.DEFAULTS, "beta": 4.0}


@register_recipe
class ConditionalVAERecipe(VAERecipe):
    """Class-conditional VAE: classes feed both the encoder and the decoder."""

    name = "cvae"
    conditional = True


@register_recipe
class VQVAERecipe(_AutoencoderRecipe):
    """VQ-VAE with an EMA codebook (or a loss-trained one) and dead-code restarts."""

    name = "vqvae"
    architecture = "vqvae"
    arch_module = vq_arch
    MODEL_KEYS = ("resolution", "base_channels", "max_channels", "downsample", "code_dim",
                  "codebook_size", "codebook_update", "ema_decay", "dead_code_threshold",
                  "res_blocks")
    DEFAULTS = {"resolution": 64, "base_channels": 64, "max_channels": 128, "downsample": 4,
                "code_dim": 16, "codebook_size": 256, "codebook_update": "ema",
                "ema_decay": 0.99, "dead_code_threshold": 1.0, "res_blocks": 2,
                "recon_loss": "mse", "commitment": 0.25, **OPTIMIZER, "lr": 5e-4}

    def validate(self) -> None:
        super().validate()
        if float(self.options["commitment"]) < 0:
            raise GanStudioError(f"commitment must not be negative, got "
                                 f"{self.options['commitment']}")

    def loss(self, phase, ctx: StepContext, real, labels):
        enc, dec = ctx.nets["encoder"], ctx.nets["generator"]
        z_e = dec.to_map(enc(real)[0])
        z_st, z_q, codes = dec.quantizer(z_e)
        recon = dec.decode(z_st)
        rec = reconstruction_loss(recon.float(), real, self.options["recon_loss"], "mean")
        codebook, commit = vq_losses(z_e.float(), z_q.float())
        loss = rec + float(self.options["commitment"]) * commit
        if self.options["codebook_update"] == "loss":
            loss = loss + codebook
        # Bookkeeping after the forward pass: it never changes this step's gradients.
        gen = torch.Generator().manual_seed(int(ctx.rand.randint(2**62)[0]))
        dec.quantizer.update(z_e, codes, gen)
        usage = vq_arch.codebook_usage(codes, dec.quantizer.size)
        metrics = {"loss": loss.detach(), "recon": rec.detach(), "commitment": commit.detach(),
                   "psnr": psnr(recon.detach(), real),
                   "codes_used": torch.tensor(usage["fraction"], device=ctx.device),
                   "perplexity": torch.tensor(usage["perplexity"], device=ctx.device)}
        return loss, metrics

    @staticmethod
    def reconstruct(encoder, decoder, real, labels):
        return decoder(encoder(real)[0])


def autoencoder_recipes() -> list[str]:
    """Names of the registered recipes that train an encoder together with its decoder, in
    the order they were registered (vae, beta_vae, cvae, vqvae, then any later ones)."""
    return [n for n, cls in RECIPES.items() if issubclass(cls, _AutoencoderRecipe)]
