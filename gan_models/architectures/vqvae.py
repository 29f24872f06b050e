"""VQ-VAE (van den Oord et al. 2017): a convolutional autoencoder with a discrete codebook.

    encoder: image [B, C, R, R] -> convs down by `downsample` -> res blocks -> 1x1 conv
             -> z_e [B, D, h, w], returned flat as [B, D*h*w] (the pre-quantisation latent)
    decoder: flat z [B, D*h*w] -> [B, D, h, w] -> nearest codebook vector per position
             (straight-through) -> res blocks -> upsampling convs -> tanh image

The latent that travels between nodes is the encoder output before quantisation, flat, so
z_dim = D*h*w and every interpolation node works on it; the decoder snaps whatever it gets
to the codebook. Random normal latents decode to a patchwork of codes (a VQ-VAE has no
prior of its own), so for this family sampling nodes are for curiosity, encoding is the job.

The codebook learns in one of two ways (config `codebook_update`); both pass gradients to
the encoder straight through the quantiser:
  "ema":  codebook vectors are running means of the encoder outputs assigned to them
          (buffers updated by `Quantizer.update` during training; only a commitment loss);
  "loss": the codebook is a parameter trained by the codebook loss ||sg[z_e] - e||^2.
Codes that fall out of use are restarted on random encoder outputs of the batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register
from .vae import ResBlock, down, level_channels, norm, up

UPDATES = ("ema", "loss")
DEFAULTS = {"resolution": 64, "channels": 3, "num_classes": 0, "base_channels": 64,
            "max_channels": 128, "downsample": 4, "code_dim": 16, "codebook_size": 256,
            "codebook_update": "ema", "ema_decay": 0.99, "dead_code_threshold": 1.0,
            "res_blocks": 2}


def full_config(config: dict) -> dict:
    unknown = set(config) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown VQ-VAE option(s) {sorted(unknown)}")
    cfg = {**DEFAULTS, **config}
    res, ds = int(cfg["resolution"]), int(cfg["downsample"])
    if res not in (16, 32, 64, 128, 256):
        raise ValueError(f"VQ-VAE resolution must be 16, 32, 64, 128 or 256, got {res}")
    if ds not in (2, 4, 8, 16) or ds > res // 2:
        raise ValueError(f"downsample must be 2, 4, 8 or 16 and leave at least 2x2 latents, "
                         f"got {ds} at {res}px")
    if cfg["codebook_update"] not in UPDATES:
        raise ValueError(f"codebook_update must be one of {UPDATES}, "
                         f"got {cfg['codebook_update']!r}")
    if int(cfg["num_classes"]):
        raise ValueError("this VQ-VAE is unconditional (num_classes must be 0)")
    if cfg["channels"] not in (1, 3, 4):
        raise ValueError(f"channels must be 1, 3 or 4, got {cfg['channels']}")
    if not 0 < float(cfg["ema_decay"]) < 1:
        raise ValueError(f"ema_decay must be between 0 and 1, got {cfg['ema_decay']}")
    for key in ("code_dim", "codebook_size", "base_channels", "max_channels"):
        if int(cfg[key]) < 1:
            raise ValueError(f"{key} must be at least 1, got {cfg[key]}")
    return cfg


class Quantizer(nn.Module):
    """Nearest-neighbour lookup into a [K, D] codebook with straight-through gradients."""

    def __init__(self, codebook_size: int, code_dim: int, update: str = "ema",
                 decay: float = 0.99, dead_code_threshold: float = 1.0):
        super().__init__()
        self.update_mode, self.decay = update, float(decay)
        self.threshold = float(dead_code_threshold)
        init = torch.randn(codebook_size, code_dim)
        if update == "ema":
            self.register_buffer("codebook", init)
            self.register_buffer("code_sum", init.clone())  # running sum of assigned z_e
        else:
            self.codebook = nn.Parameter(init)
        # Running count of uses per training step (cluster size), for EMA means and restarts.
        self.register_buffer("usage", torch.ones(codebook_size))
        # 0 until the first training batch seeds the codebook with encoder outputs.
        self.register_buffer("initialized", torch.zeros(1))

    @property
    def size(self) -> int:
        return self.codebook.shape[0]

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """`[N, D]` -> `[N]` index of the closest code (squared Euclidean distance, in
        float32 even under autocast: bf16 distances would pick wrong codes)."""
        flat, cb = flat.float(), self.codebook.detach().float()
        with torch.autocast(flat.device.type, enabled=False):
            dist = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ cb.t()
                    + cb.pow(2).sum(1)[None, :])
        return dist.argmin(1)

    def forward(self, z_e: torch.Tensor):
        """z_e `[B, D, h, w]` -> (straight-through z_q, z_q with codebook gradients,
        codes `[B, h, w]`)."""
        b, d, h, w = z_e.shape
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, d)
        codes = self.nearest(flat.detach())
        z_q = F.embedding(codes, self.codebook).view(b, h, w, d).permute(0, 3, 1, 2)
        z_q = z_q.to(z_e.dtype)
        return z_e + (z_q - z_e).detach(), z_q, codes.view(b, h, w)

    @torch.no_grad()
    def update(self, z_e: torch.Tensor, codes: torch.Tensor,
               generator: torch.Generator | None = None) -> None:
        """Training-time codebook bookkeeping for one batch: seed the codebook from data on
        the first call, track usage, move EMA codes to the mean of their assignments and
        restart dead codes on random encoder outputs (drawn with `generator`)."""
        d = z_e.shape[1]
        flat = z_e.detach().permute(0, 2, 3, 1).reshape(-1, d).float()
        codes = codes.reshape(-1)
        k = self.size
        if not bool(self.initialized.item()):
            self._set_codes(torch.arange(k, device=flat.device),
                            self._random_rows(flat, k, generator))
            self.usage.fill_(1.0)
            self.initialized.fill_(1.0)
            return
        counts = torch.bincount(codes, minlength=k).to(self.usage.dtype)
        self.usage.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        if self.update_mode == "ema":
            sums = torch.zeros(k, d, device=flat.device).index_add_(0, codes, flat)
            self.code_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
            total = self.usage.sum()
            # Laplace smoothing keeps a code with no assignments from dividing by zero.
            size = (self.usage + 1e-5) / (total + k * 1e-5) * total
            self.codebook.copy_(self.code_sum / size[:, None])
        dead = (self.usage < self.threshold).nonzero().flatten()
        if self.threshold > 0 and len(dead):
            self._set_codes(dead, self._random_rows(flat, len(dead), generator))

    def _set_codes(self, which: torch.Tensor, rows: torch.Tensor) -> None:
        self.codebook.data[which] = rows.to(self.codebook.dtype)
        if self.update_mode == "ema":
            self.code_sum[which] = rows * self.usage[which, None].clamp(min=1e-5)

    @staticmethod
    def _random_rows(flat: torch.Tensor, n: int, generator: torch.Generator | None):
        pick = torch.randint(flat.shape[0], (n,), generator=generator)
        return flat[pick.to(flat.device)]


class Encoder(nn.Module):
    def __init__(self, resolution, channels, base_channels, max_channels, downsample, code_dim,
                 res_blocks, **_):
        super().__init__()
        self.img_resolution, self.img_channels = resolution, channels
        self.c_dim = 0
        steps = int(math.log2(downsample))
        self.latent_res = resolution // downsample
        self.z_dim = code_dim * self.latent_res ** 2
        ch = [level_channels(base_channels, max_channels, i) for i in range(steps + 1)]
        layers: list[nn.Module] = [nn.Conv2d(channels, ch[0], 3, padding=1)]
        layers += [down(ch[i], ch[i + 1]) for i in range(steps)]
        layers += [ResBlock(ch[-1]) for _ in range(res_blocks)]
        layers += [norm(ch[-1]), nn.SiLU(), nn.Conv2d(ch[-1], code_dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor, c: torch.Tensor | None = None):
        """-> (z_e flat [B, D*h*w], None): deterministic, so there is no logvar."""
        return self.net(images).flatten(1), None


class Decoder(nn.Module):
    def __init__(self, resolution, channels, base_channels, max_channels, downsample, code_dim,
                 codebook_size, codebook_update, ema_decay, dead_code_threshold, res_blocks,
                 **_):
        super().__init__()
        self.img_resolution, self.img_channels = resolution, channels
        self.c_dim = 0
        steps = int(math.log2(downsample))
        self.code_dim, self.latent_res = code_dim, resolution // downsample
        self.z_dim = code_dim * self.latent_res ** 2
        self.quantizer = Quantizer(codebook_size, code_dim, codebook_update, ema_decay,
                                   dead_code_threshold)
        ch = [level_channels(base_channels, max_channels, i) for i in range(steps + 1)]
        layers: list[nn.Module] = [nn.Conv2d(code_dim, ch[-1], 3, padding=1)]
        layers += [ResBlock(ch[-1]) for _ in range(res_blocks)]
        layers += [up(ch[i], ch[i - 1]) for i in range(steps, 0, -1)]
        layers += [norm(ch[0]), nn.SiLU(), nn.Conv2d(ch[0], channels, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def to_map(self, z: torch.Tensor) -> torch.Tensor:
        """Flat latents [B, D*h*w] -> [B, D, h, w]."""
        return z.reshape(-1, self.code_dim, self.latent_res, self.latent_res)

    def decode(self, z_q: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(z_q))

    def codes(self, z: torch.Tensor) -> torch.Tensor:
        """Code indices `[B, h, w]` that flat latents quantise to."""
        return self.quantizer(self.to_map(z))[2]

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        z_q, _, _ = self.quantizer(self.to_map(z))
        return self.decode(z_q)


def codebook_usage(codes: torch.Tensor, codebook_size: int) -> dict[str, float]:
    """How much of the codebook a set of code indices uses.

    used: distinct codes; fraction: used / codebook size; perplexity: exp(entropy) of the
    code histogram (= codebook size when every code is used equally, 1 on collapse)."""
    counts = torch.bincount(codes.reshape(-1).cpu(), minlength=codebook_size).double()
    p = counts / counts.sum().clamp(min=1)
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    used = int((counts > 0).sum())
    return {"used": used, "fraction": used / codebook_size,
            "perplexity": float(entropy.exp())}


@register("vqvae")
def build(config: dict) -> dict[str, nn.Module]:
    cfg = full_config(config)
    return {"generator": Decoder(**cfg), "encoder": Encoder(**cfg)}
