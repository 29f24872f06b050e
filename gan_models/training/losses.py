"""Adversarial losses on discriminator logits (one logit per image).

ns: non-saturating logistic loss (Goodfellow et al. 2014), the DCGAN default.
hinge: hinge loss (Lim & Ye 2017; Miyato et al. 2018).
wgan-gp: Wasserstein loss with a gradient penalty on real/fake interpolates (Gulrajani et
al. 2017), plus a small drift term that keeps real logits near zero (Karras et al. 2018).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

LOSSES = ("ns", "hinge", "wgan-gp")
WGAN_DRIFT = 1e-3


def check_loss(kind: str) -> str:
    if kind not in LOSSES:
        raise ValueError(f"unknown loss {kind!r} (expected one of {LOSSES})")
    return kind


def d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Discriminator loss (mean over the batch) from logits of real and fake images."""
    real, fake = real.float(), fake.float()
    if kind == "ns":
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    if kind == "wgan-gp":
        return fake.mean() - real.mean() + WGAN_DRIFT * real.square().mean()
    raise ValueError(f"unknown loss {kind!r}")


def g_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    """Generator loss (mean over the batch) from the discriminator's logits of fakes."""
    fake = fake.float()
    if kind == "ns":
        return F.softplus(-fake).mean()
    if kind in ("hinge", "wgan-gp"):
        return -fake.mean()
    raise ValueError(f"unknown loss {kind!r}")


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor,
                     fake: torch.Tensor, mix: torch.Tensor) -> torch.Tensor:
    """Mean of (||d critic / d x_hat|| - 1)^2 at x_hat = lerp(real, fake, mix).

    mix: `[n, 1, 1, 1]` uniform weights. The graph is kept (create_graph) so the penalty
    trains the critic; per-sample norms make the result independent of batch splitting.
    """
    x_hat = torch.lerp(real.detach(), fake.detach(), mix.to(real.dtype)).requires_grad_(True)
    out = critic(x_hat)
    (grad,) = torch.autograd.grad(out.float().sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).square().mean()


def d_accuracy(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Fraction of images the discriminator gets right by the sign of its logit."""
    return 0.5 * ((real > 0).float().mean() + (fake < 0).float().mean())
