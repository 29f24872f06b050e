"""BigGAN-deep (Brock et al. 2018): the generator of the public pytorch-pretrained-BigGAN
weights, and the small class-conditional BigGAN we train ourselves (recipe `biggan`).

Parameter names follow the public `config.json` + `pytorch_model.bin` release exactly, so a
public file loads with a strict state-dict load and nothing renamed:
    embeddings.weight                 [class_embed_dim, num_classes]  (Linear on class weights)
    generator.gen_z.weight_orig/_u/_v spectral norm (torch's hook layout, kept as is)
    generator.layers.N.bn_0..bn_3     conditional batch norm; running_means / running_vars are
                                      [n_stats, C] tables, one row per truncation 0..1
    generator.layers.N.conv_0..conv_3 1x1 -> 3x3 -> 3x3 -> 1x1 bottleneck (deep residual block)
    generator.layers.K.snconv1x1_*    self-attention, inserted before layer entry K
    generator.bn, generator.conv_to_rgb
Spectral norm stays on (not folded into plain weights): the names then match the release,
the module we train is the module we import, and in eval mode torch's hook computes sigma
from the stored u, v without a power iteration, as the public code does.

The config uses the release's keys: output_dim, z_dim, class_embed_dim, channel_width,
num_classes, layers ([up_sample, in_multiplier, out_multiplier] per block), attention_layer_
position, eps, n_stats; ours adds d_channel_width (> 0 builds a projection discriminator
for training; imported generators have none).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from ..registry import register

# biggan-deep-128 (the public release's config.json).
DEFAULTS = {
    "output_dim": 128, "z_dim": 128, "class_embed_dim": 128, "channel_width": 128,
    "num_classes": 1000,
    "layers": [[False, 16, 16], [True, 16, 16], [False, 16, 16], [True, 16, 8],
               [False, 8, 8], [True, 8, 4], [False, 4, 4], [True, 4, 2],
               [False, 2, 2], [True, 2, 1]],
    "attention_layer_position": 8, "eps": 1e-4, "n_stats": 51, "d_channel_width": 0,
}
MAX_OUTPUT = 1024
MAX_STATS = 1001
TRUNCATION_LIMIT = 2.0  # BigGAN's z is a normal truncated to [-2, 2], then scaled


def full_config(config: dict) -> dict:
    """The config with defaults filled in, or ValueError saying what does not fit."""
    unknown = set(config) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown BigGAN option(s) {sorted(unknown)}")
    cfg = {**DEFAULTS, **config}
    for key in ("output_dim", "z_dim", "class_embed_dim", "channel_width", "num_classes",
                "n_stats", "attention_layer_position", "d_channel_width"):
        if isinstance(cfg[key], bool) or not isinstance(cfg[key], int):
            raise ValueError(f"{key} must be a whole number, got {cfg[key]!r}")
    for key in ("z_dim", "class_embed_dim", "channel_width", "num_classes"):
        if cfg[key] < 1:
            raise ValueError(f"{key} must be at least 1, got {cfg[key]}")
    if not 2 <= cfg["n_stats"] <= MAX_STATS:
        raise ValueError(f"n_stats must be 2..{MAX_STATS}, got {cfg['n_stats']}")
    if not (isinstance(cfg["eps"], (int, float)) and 0 < cfg["eps"] < 1):
        raise ValueError(f"eps must be a small positive number, got {cfg['eps']!r}")
    layers = cfg["layers"]
    if not isinstance(layers, (list, tuple)) or not layers:
        raise ValueError("layers must be a non-empty list of [up_sample, in, out] entries")
    for i, entry in enumerate(layers):
        ok = (isinstance(entry, (list, tuple)) and len(entry) == 3
              and isinstance(entry[0], bool)
              and all(isinstance(m, int) and not isinstance(m, bool) and m >= 1
                      for m in entry[1:]))
        if not ok:
            raise ValueError(f"layers[{i}] must be [up_sample (true/false), in multiplier, "
                             f"out multiplier], got {entry!r}")
        if entry[2] > entry[1]:
            raise ValueError(f"layers[{i}] widens {entry[1]} -> {entry[2]}; blocks keep or "
                             "narrow their channels")
        if i and layers[i - 1][2] != entry[1]:
            raise ValueError(f"layers[{i}] takes {entry[1]} x channel_width channels but "
                             f"layers[{i - 1}] gives {layers[i - 1][2]}")
    if layers[-1][2] != 1:
        raise ValueError("the last layer must end at multiplier 1 (channel_width channels)")
    if cfg["channel_width"] < 3:
        raise ValueError("channel_width must be at least 3 (conv_to_rgb keeps 3 of them)")
    ups = sum(1 for entry in layers if entry[0])
    if ups > 10 or 4 * 2 ** ups != cfg["output_dim"]:
        raise ValueError(f"output_dim {cfg['output_dim']} does not match the layers: {ups} "
                         f"upsampling blocks from 4x4 give {4 * 2 ** min(ups, 10)}")
    if cfg["output_dim"] > MAX_OUTPUT:
        raise ValueError(f"output_dim must be at most {MAX_OUTPUT}, got {cfg['output_dim']}")
    pos = cfg["attention_layer_position"]
    if 0 <= pos < len(layers):
        if cfg["channel_width"] * layers[pos][1] < 8:
            raise ValueError("self-attention needs at least 8 channels where it sits")
    if cfg["d_channel_width"] < 0:
        raise ValueError("d_channel_width must be 0 (no discriminator) or more")
    return cfg


def _sn(module: nn.Module, eps: float) -> nn.Module:
    return spectral_norm(module, eps=eps)


# --- building blocks ----------------------------------------------------------------------
class SelfAttn(nn.Module):
    """SAGAN self-attention: keys and values pooled 2x2, output added with a learned gain."""

    def __init__(self, in_channels: int, eps: float):
        super().__init__()
        c = in_channels
        self.snconv1x1_theta = _sn(nn.Conv2d(c, c // 8, 1, bias=False), eps)
        self.snconv1x1_phi = _sn(nn.Conv2d(c, c // 8, 1, bias=False), eps)
        self.snconv1x1_g = _sn(nn.Conv2d(c, c // 2, 1, bias=False), eps)
        self.snconv1x1_o_conv = _sn(nn.Conv2d(c // 2, c, 1, bias=False), eps)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        theta = self.snconv1x1_theta(x).view(b, c // 8, h * w)                  # queries
        phi = F.max_pool2d(self.snconv1x1_phi(x), 2).view(b, c // 8, h * w // 4)  # keys
        attn = torch.softmax(torch.bmm(theta.transpose(1, 2), phi), dim=-1)     # [B, HW, HW/4]
        g = F.max_pool2d(self.snconv1x1_g(x), 2).view(b, c // 2, h * w // 4)     # values
        out = torch.bmm(g, attn.transpose(1, 2)).view(b, c // 2, h, w)
        return x + self.gamma * self.snconv1x1_o_conv(out)


class StatsBatchNorm(nn.Module):
    """Batch norm whose running statistics are a table over truncation (row r holds the
    statistics of samples drawn with truncation r / (n_stats - 1)), conditional (gain
    1 + scale(cond), bias offset(cond)) or plain (weight, bias).

    Eval: the rows around the truncation, linearly interpolated. Train: batch statistics,
    and the running row of the given truncation follows them (momentum 0.1); `collect`
    gathers per-batch statistics instead, for standing statistics (see
    `standing_statistics`)."""

    momentum = 0.1

    def __init__(self, num_features: int, cond_dim: int | None, n_stats: int, eps: float):
        super().__init__()
        self.eps = eps
        self.conditional = cond_dim is not None
        self.register_buffer("running_means", torch.zeros(n_stats, num_features))
        self.register_buffer("running_vars", torch.ones(n_stats, num_features))
        self.step_size = 1.0 / (n_stats - 1)
        self.collected: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        if self.conditional:
            self.scale = _sn(nn.Linear(cond_dim, num_features, bias=False), eps)
            self.offset = _sn(nn.Linear(cond_dim, num_features, bias=False), eps)
        else:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))

    def row_weights(self, truncation: float) -> tuple[int, int, float]:
        """(row below, row above, share of the row above) for a truncation; clamped to 0..1
        and snapped to a row when within 1e-6 of it (0.4 / 0.02 is 20.000000000000004)."""
        pos = min(max(float(truncation), 0.0), 1.0) / self.step_size
        if abs(pos - round(pos)) < 1e-6:
            pos = float(round(pos))
        low = min(int(math.floor(pos)), self.running_means.shape[0] - 1)
        frac = pos - low
        return low, min(low + 1, self.running_means.shape[0] - 1), frac

    def forward(self, x: torch.Tensor, truncation: float,
                cond: torch.Tensor | None = None) -> torch.Tensor:
        if self.training:
            mean = x.mean((0, 2, 3))
            var = x.var((0, 2, 3), unbiased=False)
            self._track(x, mean.detach(), var.detach(), truncation)
        else:
            low, high, frac = self.row_weights(truncation)
            mean, var = self.running_means[low], self.running_vars[low]
            if frac:
                mean = torch.lerp(mean, self.running_means[high], frac)
                var = torch.lerp(var, self.running_vars[high], frac)
        mean, var = mean.view(1, -1, 1, 1), var.view(1, -1, 1, 1)
        if self.conditional:
            weight = 1 + self.scale(cond).unsqueeze(-1).unsqueeze(-1)
            bias = self.offset(cond).unsqueeze(-1).unsqueeze(-1)
        else:
            weight, bias = self.weight.view(1, -1, 1, 1), self.bias.view(1, -1, 1, 1)
        return (x - mean) / torch.sqrt(var + self.eps) * weight + bias

    @torch.no_grad()
    def _track(self, x, mean, var, truncation) -> None:
        n = x.numel() / x.shape[1]
        unbiased = var * n / max(n - 1, 1)
        if self.collected is not None:
            self.collected.append((mean, unbiased))
            return
        low, high, frac = self.row_weights(truncation)
        row = high if frac >= 0.5 else low
        self.running_means[row].lerp_(mean.to(self.running_means.dtype), self.momentum)
        self.running_vars[row].lerp_(unbiased.to(self.running_vars.dtype), self.momentum)


class GenBlock(nn.Module):
    """BigGAN-deep residual block: BN-ReLU-1x1 down to in/4 channels, (upsample), two 3x3,
    1x1 out; the skip keeps the first out_size channels (and is upsampled)."""

    def __init__(self, in_size: int, out_size: int, cond_dim: int, up_sample: bool,
                 n_stats: int, eps: float):
        super().__init__()
        mid = max(in_size // 4, 1)
        self.up_sample, self.out_size = up_sample, out_size
        self.bn_0 = StatsBatchNorm(in_size, cond_dim, n_stats, eps)
        self.conv_0 = _sn(nn.Conv2d(in_size, mid, 1), eps)
        self.bn_1 = StatsBatchNorm(mid, cond_dim, n_stats, eps)
        self.conv_1 = _sn(nn.Conv2d(mid, mid, 3, padding=1), eps)
        self.bn_2 = StatsBatchNorm(mid, cond_dim, n_stats, eps)
        self.conv_2 = _sn(nn.Conv2d(mid, mid, 3, padding=1), eps)
        self.bn_3 = StatsBatchNorm(mid, cond_dim, n_stats, eps)
        self.conv_3 = _sn(nn.Conv2d(mid, out_size, 1), eps)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, truncation: float) -> torch.Tensor:
        skip = x[:, :self.out_size]
        x = self.conv_0(F.relu(self.bn_0(x, truncation, cond)))
        x = F.relu(self.bn_1(x, truncation, cond))
        if self.up_sample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            skip = F.interpolate(skip, scale_factor=2, mode="nearest")
        x = self.conv_1(x)
        x = self.conv_2(F.relu(self.bn_2(x, truncation, cond)))
        x = self.conv_3(F.relu(self.bn_3(x, truncation, cond)))
        return x + skip


class SynthesisNetwork(nn.Module):
    """[z, class embedding] -> 4x4 features -> blocks (+ attention) -> BN-ReLU-conv -> RGB."""

    def __init__(self, cfg: dict):
        super().__init__()
        ch, eps, n_stats = cfg["channel_width"], float(cfg["eps"]), cfg["n_stats"]
        cond_dim = cfg["z_dim"] + cfg["class_embed_dim"]
        self.first_channels = ch * cfg["layers"][0][1]
        self.gen_z = _sn(nn.Linear(cond_dim, 4 * 4 * self.first_channels), eps)
        layers: list[nn.Module] = []
        for i, (up, m_in, m_out) in enumerate(cfg["layers"]):
            if i == cfg["attention_layer_position"]:
                layers.append(SelfAttn(ch * m_in, eps))
            layers.append(GenBlock(ch * m_in, ch * m_out, cond_dim, up, n_stats, eps))
        self.layers = nn.ModuleList(layers)
        self.bn = StatsBatchNorm(ch, None, n_stats, eps)
        self.conv_to_rgb = _sn(nn.Conv2d(ch, ch, 3, padding=1), eps)

    def forward(self, cond: torch.Tensor, truncation: float) -> torch.Tensor:
        # The released weights come from TensorFlow: gen_z's output is laid out [4, 4, C].
        x = self.gen_z(cond).view(-1, 4, 4, self.first_channels).permute(0, 3, 1, 2)
        x = x.contiguous()
        for layer in self.layers:
            x = layer(x, cond, truncation) if isinstance(layer, GenBlock) else layer(x)
        x = self.conv_to_rgb(F.relu(self.bn(x, truncation)))
        return torch.tanh(x[:, :3])


class BigGAN(nn.Module):
    """The generator network (role "generator"): forward(z, class weights, truncation).

    z is already scaled by the truncation (the model wrapper multiplies by truncation_psi);
    the truncation also picks the batch-norm statistics row."""

    truncation_stats = True                 # the wrapper passes truncation= to forward
    default_truncate = TRUNCATION_LIMIT     # sample z from a normal truncated to [-2, 2]

    def __init__(self, cfg: dict):
        super().__init__()
        self.z_dim, self.c_dim = cfg["z_dim"], cfg["num_classes"]
        self.img_resolution, self.img_channels = cfg["output_dim"], 3
        # Linear on class weights (not a lookup) so mixed classes interpolate.
        self.embeddings = nn.Linear(cfg["num_classes"], cfg["class_embed_dim"], bias=False)
        self.generator = SynthesisNetwork(cfg)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None,
                truncation: float = 1.0) -> torch.Tensor:
        if c is None:
            raise ValueError("BigGAN is class-conditional: pass class weights c")
        embed = self.embeddings(c.to(z.dtype))
        return self.generator(torch.cat([z, embed], dim=1), float(truncation))


# --- discriminator (training only) ----------------------------------------------------------
class DBlock(nn.Module):
    """Pre-activation residual block: (ReLU)-conv3-ReLU-conv3-avgpool, 1x1 conv skip."""

    def __init__(self, cin: int, cout: int, down: bool, first: bool, eps: float):
        super().__init__()
        self.down, self.first = down, first
        self.conv1 = _sn(nn.Conv2d(cin, cout, 3, padding=1), eps)
        self.conv2 = _sn(nn.Conv2d(cout, cout, 3, padding=1), eps)
        self.skip = _sn(nn.Conv2d(cin, cout, 1), eps) if (cin != cout or down) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(x)
        h = self.conv2(F.relu(self.conv1(h)))
        skip = x
        if self.skip is not None:
            skip = self.skip(F.avg_pool2d(x, 2) if self.first and self.down else x)
        if self.down:
            h = F.avg_pool2d(h, 2)
            if not self.first:
                skip = F.avg_pool2d(skip, 2)
        return h + skip


class Discriminator(nn.Module):
    """BigGAN discriminator: residual blocks halving to 4x4 (widths ch*1, 2, 4, 8, 16...),
    ReLU, sum pooling, a linear score plus a projection term <embed(c), h> (Miyato & Koyama
    2018) on class weights, so mixed classes work too. Spectral norm everywhere."""

    def __init__(self, cfg: dict):
        super().__init__()
        ch, eps = cfg["d_channel_width"], 1e-4
        self.c_dim, self.img_resolution = cfg["num_classes"], cfg["output_dim"]
        downs = int(math.log2(cfg["output_dim"] // 4))
        widths = [ch * min(2 ** i, 16) for i in range(downs + 1)]
        blocks, cin = [], 3
        for i in range(downs):
            blocks.append(DBlock(cin, widths[i], True, i == 0, eps))
            cin = widths[i]
        blocks.append(DBlock(cin, widths[downs], False, False, eps))
        self.blocks = nn.Sequential(*blocks)
        self.linear = _sn(nn.Linear(widths[downs], 1), eps)
        self.embed = _sn(nn.Linear(cfg["num_classes"], widths[downs], bias=False), eps)

    def forward(self, images: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        h = F.relu(self.blocks(images)).sum((2, 3))
        logits = self.linear(h).squeeze(1)
        if c is not None:
            logits = logits + (self.embed(c.to(h.dtype)) * h).sum(1)
        return logits


# --- after training ---------------------------------------------------------------------------
def init_orthogonal(module: nn.Module) -> None:
    """BigGAN's initialisation: orthogonal weights for every conv and linear layer."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            weight = getattr(m, "weight_orig", m.weight)
            nn.init.orthogonal_(weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


@torch.no_grad()
def standing_statistics(net: BigGAN, seed: int = 0, batches: int = 4,
                        batch_size: int = 32) -> None:
    """Fill every truncation row of the batch-norm tables with the statistics of samples
    drawn at that truncation (BigGAN's "standing statistics"): for row r, z from a normal
    truncated to [-2, 2] times t = r / (n_stats - 1), classes cycling one-hot. Only the
    batch norms run in training mode, so spectral-norm vectors stay as they are."""
    norms = [m for m in net.modules() if isinstance(m, StatsBatchNorm)]
    if not norms:
        return
    modes = {m: m.training for m in net.modules()}
    net.eval()
    for m in norms:
        m.train()
    gen = torch.Generator().manual_seed(seed)
    device = next(net.parameters()).device
    n_stats = norms[0].running_means.shape[0]
    try:
        for row in range(n_stats):
            t = row / (n_stats - 1)
            for m in norms:
                m.collected = []
            for b in range(batches):
                z = torch.randn(batch_size, net.z_dim, generator=gen)
                while (bad := z.abs() > TRUNCATION_LIMIT).any():
                    z[bad] = torch.randn(int(bad.sum()), generator=gen)
                classes = (torch.arange(batch_size) + b * batch_size) % net.c_dim
                c = F.one_hot(classes, net.c_dim).float()
                net((z * t).to(device), c.to(device), t)
            for m in norms:
                m.running_means[row] = torch.stack([s[0] for s in m.collected]).mean(0)
                m.running_vars[row] = torch.stack([s[1] for s in m.collected]).mean(0)
    finally:
        for m in norms:
            m.collected = None
        for m, mode in modes.items():
            m.training = mode


@register("biggan")
def build(config: dict) -> dict[str, nn.Module]:
    cfg = full_config(config)
    nets: dict[str, nn.Module] = {"generator": BigGAN(cfg)}
    if cfg["d_channel_width"]:
        nets["discriminator"] = Discriminator(cfg)
    return nets
