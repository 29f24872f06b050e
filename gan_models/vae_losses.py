"""Loss pieces for training VAEs and VQ-VAEs, as pure functions (recipes combine them).

Conventions: images in [-1, 1]; reconstruction and KL are summed over a sample's pixels or
latent dimensions and averaged over the batch, so beta = 1 is the plain VAE objective
(Gaussian decoder with fixed variance) and beta > 1 the beta-VAE (Higgins et al. 2017).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

RECON_LOSSES = ("mse", "l1")
KL_SCHEDULES = ("constant", "linear", "cyclical")


def reconstruction_loss(recon: torch.Tensor, target: torch.Tensor, kind: str = "mse",
                        reduction: str = "sum") -> torch.Tensor:
    """Per-sample squared (mse) or absolute (l1) error; reduction 'sum' adds a sample's
    pixels (VAE convention) and 'mean' averages them (VQ-VAE convention); batch mean."""
    if kind not in RECON_LOSSES:
        raise ValueError(f"reconstruction loss must be one of {RECON_LOSSES}, got {kind!r}")
    err = F.mse_loss(recon, target, reduction="none") if kind == "mse" else (recon - target).abs()
    per_sample = err.flatten(1)
    per_sample = per_sample.sum(1) if reduction == "sum" else per_sample.mean(1)
    return per_sample.mean()


def kl_per_dim(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, 1)) of each latent dimension, batch-averaged: [z_dim]."""
    kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar)
    return kl.mean(0)


def kl_divergence(mean: torch.Tensor, logvar: torch.Tensor, free_bits: float = 0.0) -> torch.Tensor:
    """KL summed over dimensions (nats per sample). free_bits > 0 stops pushing any dimension
    below that many nats (Kingma et al. 2016), which keeps dimensions from collapsing."""
    per_dim = kl_per_dim(mean, logvar)
    if free_bits > 0:
        per_dim = per_dim.clamp(min=free_bits)
    return per_dim.sum()


def capacity_loss(kl: torch.Tensor, capacity: float, gamma: float) -> torch.Tensor:
    """gamma * |KL - C| (Burgess et al. 2018): the KL is held near a capacity C (nats) that
    grows during training, so the latent channel opens gradually."""
    return gamma * (kl - capacity).abs()


def capacity_at(step: int, capacity_max: float, capacity_steps: int) -> float:
    """Capacity C grown linearly from 0 to capacity_max over capacity_steps."""
    if capacity_steps <= 0:
        return float(capacity_max)
    return float(capacity_max) * min(1.0, step / capacity_steps)


def kl_weight(step: int, schedule: str = "linear", warmup_steps: int = 0,
              cycles: int = 4, ratio: float = 0.5) -> float:
    """Multiplier 0..1 of the KL term at a step.

    constant: 1 throughout. linear: warm-up from 0 to 1 over warmup_steps (Bowman et al.
    2016), then 1. cyclical: warmup_steps split into `cycles` cycles, each ramping 0 -> 1 over
    its first `ratio` and holding 1 for the rest (Fu et al. 2019); 1 after the last cycle.
    """
    if schedule not in KL_SCHEDULES:
        raise ValueError(f"KL schedule must be one of {KL_SCHEDULES}, got {schedule!r}")
    if schedule == "constant" or warmup_steps <= 0 or step >= warmup_steps:
        return 1.0
    if schedule == "linear":
        return step / warmup_steps
    period = warmup_steps / max(1, cycles)
    phase = (step % period) / period
    return min(1.0, phase / max(ratio, 1e-8))


def vq_losses(z_e: torch.Tensor, z_q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(codebook loss ||sg[z_e] - e||^2, commitment loss ||z_e - sg[e]||^2), both means.

    The codebook loss trains a parameter codebook; with EMA codebooks only the commitment
    loss (weighted, typically 0.25) is used."""
    codebook = F.mse_loss(z_q, z_e.detach())
    commitment = F.mse_loss(z_e, z_q.detach())
    return codebook, commitment


def psnr(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean peak signal-to-noise ratio in dB of images in [-1, 1] (peak-to-peak range 2)."""
    mse = (recon.float() - target.float()).pow(2).flatten(1).mean(1).clamp(min=1e-10)
    return (10 * torch.log10(4.0 / mse)).mean()

