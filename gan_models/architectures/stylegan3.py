"""StyleGAN3 generator (Karras et al. 2021, "Alias-Free Generative Adversarial Networks").

Configs T (translation equivariant: 3x3 convs, separable Kaiser filters) and R (rotation
equivariant: 1x1 convs, radially symmetric jinc filters for downsampling).

    z --mapping--> w [B, num_ws, w_dim]
    w[0] -> SynthesisInput: Fourier features on a grid (with margins), rotated/translated
    w[i] -> SynthesisLayer i: modulated conv -> filtered leaky ReLU (upsample, lrelu,
            low-pass, downsample); cutoffs grow geometrically layer by layer
    w[-1] -> ToRGB (the last SynthesisLayer: 1x1 conv, no filters) -> scale -> image

Parameter and buffer names follow NVlabs `networks_stylegan3.py`, so their state dicts
map 1:1 (`mapping.fc0.weight`, `synthesis.input.freqs`, `synthesis.L3_52_512.up_filter`, ...),
and the constructor takes their pickles' `_init_kwargs`.
"""

from __future__ import annotations

import math
import threading
from weakref import WeakKeyDictionary

import numpy as np
import torch
from torch import nn

from .. import ops
from ..ops.filtered_lrelu import filtered_lrelu
from ..ops.scratch import Scratch
from ..registry import register
from .stylegan2 import Discriminator, FullyConnectedLayer, MappingNetwork

# Mapping defaults differ from StyleGAN2's: two layers instead of eight.
MAPPING_DEFAULTS = {"num_layers": 2, "lr_multiplier": 0.01, "w_avg_beta": 0.998}
# Mapping options that only freeze layers during training; accepted and ignored here.
_TRAINING_ONLY_MAPPING = ("freeze_layers", "freeze_embed")


# --- low-pass filter design (numpy float64; scipy.signal.firwin / kaiser equivalents) -----

def _kaiser_beta(atten_db: float) -> float:
    if atten_db > 50:
        return 0.1102 * (atten_db - 8.7)
    if atten_db > 21:
        return 0.5842 * (atten_db - 21) ** 0.4 + 0.07886 * (atten_db - 21)
    return 0.0


def _kaiser_window(numtaps: int, width: float, fs: float) -> np.ndarray:
    """Kaiser window whose transition band is `width` (Hz at sampling rate fs)."""
    atten_db = 2.285 * (numtaps - 1) * math.pi * (width / (fs / 2)) + 7.95
    return np.kaiser(numtaps, _kaiser_beta(atten_db))


def design_lowpass_filter(numtaps: int, cutoff: float, width: float, fs: float,
                          radial: bool = False) -> torch.Tensor | None:
    """Windowed low-pass FIR with unit DC gain: `[numtaps]` (separable), `[numtaps]*2`
    (radial jinc), or None for a single tap (identity)."""
    if numtaps < 1:
        raise ValueError(f"a filter needs at least one tap, got {numtaps}")
    if numtaps == 1:
        return None
    window = _kaiser_window(numtaps, width, fs)
    t = np.arange(numtaps) - (numtaps - 1) / 2  # tap positions in samples
    if not radial:
        f = np.sinc(2 * cutoff / fs * t) * window  # sinc low-pass at cutoff
        return torch.as_tensor(f / f.sum(), dtype=torch.float32)
    # jinc(r) = J1(2 pi fc r) / (pi r): the 2D disc low-pass; its limit at r=0 is fc.
    x = t / fs
    r = torch.as_tensor(np.hypot(*np.meshgrid(x, x)), dtype=torch.float64, device="cpu")
    safe = torch.where(r > 0, r, torch.ones_like(r))
    jinc = torch.special.bessel_j1(2 * math.pi * cutoff * safe) / (math.pi * safe)
    f = torch.where(r > 0, jinc, torch.full_like(r, cutoff)).numpy() * np.outer(window, window)
    return torch.as_tensor(f / f.sum(), dtype=torch.float32)


# --- user transforms ------------------------------------------------------------------------

def make_transform(translate=(0.0, 0.0), angle_degrees: float = 0.0) -> torch.Tensor:
    """3x3 rotate-then-translate matrix (float32), as NVlabs gen_images.py builds it.

    translate is in image widths/heights (1.0 = a full image). Its inverse is what the
    synthesis network takes: see `view_transform`.
    """
    a = math.radians(angle_degrees)
    s, c = math.sin(a), math.cos(a)
    tx, ty = (float(v) for v in translate)
    return torch.tensor([[c, s, tx], [-s, c, ty], [0.0, 0.0, 1.0]], dtype=torch.float64).float()


def view_transform(translate=(0.0, 0.0), angle_degrees: float = 0.0) -> torch.Tensor:
    """The matrix for `synthesis(ws, transform=...)` that moves the content by `translate`
    (+x right, +y down) and turns it counter-clockwise on screen by `angle_degrees` (the
    inverse of `make_transform`)."""
    return torch.linalg.inv(make_transform(translate, angle_degrees).double()).float()


# --- modulated convolution ---------------------------------------------------------------

def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor,
                     demodulate: bool = True, padding: int = 0,
                     input_gain: torch.Tensor | None = None,
                     out: torch.Tensor | None = None) -> torch.Tensor:
    """StyleGAN3's modulated conv: x `[N, I, H, W]`, weight `[O, I, k, k]`, styles `[N, I]`;
    input_gain (a scalar tensor) scales the result after demodulation; out: see
    `ops.modulated_conv2d`."""
    if demodulate and x.dtype == torch.float16:
        # Normalise weight and styles to unit RMS first (demodulation cancels the scale)
        # so the per-sample weights stay in range in fp16. float32 and bfloat16 have the
        # range without it, and skip two passes over the weight.
        weight = weight * weight.square().mean([1, 2, 3], keepdim=True).rsqrt()
        styles = styles * styles.square().mean().rsqrt()
    return ops.modulated_conv2d(x, weight, styles, padding=padding, demodulate=demodulate,
                                gain=1.0 if input_gain is None else input_gain, out=out)


# --- synthesis building blocks ---------------------------------------------------------

class SynthesisInput(nn.Module):
    """Fourier features of w-controlled rotation/translation: `[B, channels, size, size]`."""

    def __init__(self, w_dim: int, channels: int, size: int, sampling_rate: float,
                 bandwidth: float):
        super().__init__()
        self.w_dim, self.channels, self.size = w_dim, channels, int(size)
        self.sampling_rate, self.bandwidth = float(sampling_rate), float(bandwidth)
        # Frequencies drawn uniformly-ish from a disc of radius `bandwidth`, random phases.
        freqs = torch.randn([channels, 2])
        radii = freqs.square().sum(1, keepdim=True).sqrt()
        freqs = freqs / (radii * radii.square().exp().pow(0.25)) * bandwidth
        phases = torch.rand([channels]) - 0.5
        self.weight = nn.Parameter(torch.randn([channels, channels]))
        self.affine = FullyConnectedLayer(w_dim, 4)
        with torch.no_grad():  # starts as the identity transform (r_c=1, r_s=t_x=t_y=0)
            self.affine.weight.zero_()
            self.affine.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
        # Inverse user transform of the output image (NVlabs gen_images.py sets it).
        self.register_buffer("transform", torch.eye(3, 3))
        self.register_buffer("freqs", freqs)  # [channels, 2] cycles per unit, (x, y)
        self.register_buffer("phases", phases)  # [channels] in cycles

    def forward(self, w: torch.Tensor, transform: torch.Tensor | None = None) -> torch.Tensor:
        b = w.shape[0]
        user = self.transform if transform is None else torch.as_tensor(
            transform, dtype=torch.float32, device=w.device)
        user = user.to(torch.float32).expand(b, 3, 3)

        # w -> rotation (r_c, r_s) normalised to unit length, and translation (t_x, t_y).
        t = self.affine(w)
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        rc, rs, tx, ty = t.unbind(1)
        zero, one = torch.zeros_like(rc), torch.ones_like(rc)
        m_r = torch.stack([rc, -rs, zero, rs, rc, zero, zero, zero, one], 1).view(b, 3, 3)
        m_t = torch.stack([one, zero, -tx, zero, one, -ty, zero, zero, one], 1).view(b, 3, 3)
        transforms = m_r @ m_t @ user  # rotate, then translate, then the user transform

        freqs = self.freqs.unsqueeze(0)  # [B, C, 2]
        phases = self.phases.unsqueeze(0) + (freqs @ transforms[:, :2, 2:]).squeeze(2)
        freqs = freqs @ transforms[:, :2, :2]
        # Fade out frequencies a user rotation/zoom pushed beyond the band limit.
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth)
                      / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)

        # Pixel centres in units where the image proper spans [-0.5, 0.5].
        coords = (torch.arange(self.size, device=w.device, dtype=torch.float32)
                  + 0.5 - self.size / 2) / self.sampling_rate
        fx, fy = freqs[:, None, None, :, 0], freqs[:, None, None, :, 1]  # [B, 1, 1, C]
        x = coords[None, None, :, None] * fx + coords[None, :, None, None] * fy
        x = torch.sin((x + phases[:, None, None, :]) * (2 * math.pi))
        x = x * amplitudes[:, None, None, :]  # [B, H, W, C]

        weight = self.weight / math.sqrt(self.channels)
        x = x @ weight.t()  # mix channels
        return x.permute(0, 3, 1, 2)  # [B, C, H, W], stored channels-last

    def extra_repr(self) -> str:
        return (f"w_dim={self.w_dim}, channels={self.channels}, size={self.size}, "
                f"sampling_rate={self.sampling_rate:g}, bandwidth={self.bandwidth:g}")


class SynthesisLayer(nn.Module):
    """Modulated conv + filtered leaky ReLU between two sampling rates (or the ToRGB)."""

    def __init__(self, w_dim: int, is_torgb: bool, is_critically_sampled: bool,
                 use_fp16: bool, in_channels: int, out_channels: int, in_size: int,
                 out_size: int, in_sampling_rate: int, out_sampling_rate: int,
                 in_cutoff: float, out_cutoff: float, in_half_width: float,
                 out_half_width: float, conv_kernel: int = 3, filter_size: int = 6,
                 lrelu_upsampling: int = 2, use_radial_filters: bool = False,
                 conv_clamp: float | None = 256, magnitude_ema_beta: float = 0.999):
        super().__init__()
        self.w_dim, self.is_torgb = w_dim, is_torgb
        self.is_critically_sampled, self.use_fp16 = is_critically_sampled, use_fp16
        self.in_channels, self.out_channels = in_channels, out_channels
        self.in_size, self.out_size = int(in_size), int(out_size)
        self.in_sampling_rate, self.out_sampling_rate = in_sampling_rate, out_sampling_rate
        # The leaky ReLU runs at `lrelu_upsampling` times the higher of the two rates.
        self.tmp_sampling_rate = (max(in_sampling_rate, out_sampling_rate)
                                  * (1 if is_torgb else lrelu_upsampling))
        self.conv_kernel = 1 if is_torgb else conv_kernel
        self.conv_clamp = conv_clamp
        self.magnitude_ema_beta = magnitude_ema_beta

        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(
            torch.randn([out_channels, in_channels, self.conv_kernel, self.conv_kernel]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.register_buffer("magnitude_ema", torch.ones([]))  # running mean of x**2

        self.up_factor = self._ratio(self.tmp_sampling_rate, in_sampling_rate)
        self.up_taps = filter_size * self.up_factor if self.up_factor > 1 and not is_torgb else 1
        self.register_buffer("up_filter", design_lowpass_filter(
            self.up_taps, in_cutoff, in_half_width * 2, self.tmp_sampling_rate))
        self.down_factor = self._ratio(self.tmp_sampling_rate, out_sampling_rate)
        self.down_taps = (filter_size * self.down_factor
                          if self.down_factor > 1 and not is_torgb else 1)
        self.down_radial = use_radial_filters and not is_critically_sampled
        self.register_buffer("down_filter", design_lowpass_filter(
            self.down_taps, out_cutoff, out_half_width * 2, self.tmp_sampling_rate,
            radial=self.down_radial))

        # Pad so that the output grid is centred on the input grid (paper, appendix C.3):
        # desired size before downsampling - size after the conv and upsampling + filter
        # shrinkage.
        pad_total = ((self.out_size - 1) * self.down_factor + 1
                     - (self.in_size + self.conv_kernel - 1) * self.up_factor
                     + self.up_taps + self.down_taps - 2)
        pad_lo = (pad_total + self.up_factor) // 2
        pad_hi = pad_total - pad_lo
        self.padding = [pad_lo, pad_hi, pad_lo, pad_hi]

    @staticmethod
    def _ratio(high: float, low: float) -> int:
        ratio = int(round(high / low))
        if low * ratio != high:
            raise ValueError(f"sampling rates {high} and {low} are not integer multiples")
        return ratio

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "const",
                force_fp32: bool = False, update_emas: bool = False,
                buffers: Scratch | None = None) -> torch.Tensor:
        """buffers: where the conv output and the activation may be written (reused from
        layer to layer; see `ops.scratch`). The result may live in them."""
        if update_emas:
            with torch.no_grad():
                magnitude = x.detach().to(torch.float32).square().mean()
                self.magnitude_ema.copy_(magnitude.lerp(self.magnitude_ema,
                                                        self.magnitude_ema_beta))
        input_gain = self.magnitude_ema.rsqrt()
        styles = self.affine(w)
        if self.is_torgb:
            styles = styles / math.sqrt(self.in_channels * self.conv_kernel ** 2)
        fp16 = self.use_fp16 and not force_fp32 and x.device.type == "cuda"
        # Under autocast the convolution picks the dtype; a cast here would only add a pass.
        autocast = torch.is_autocast_enabled(x.device.type)
        dtype = torch.float16 if fp16 else (x.dtype if autocast else torch.float32)
        n = x.shape[0]
        conv_size = self.in_size + self.conv_kernel - 1
        x = modulated_conv2d(x.to(dtype), self.weight, styles, demodulate=not self.is_torgb,
                             padding=self.conv_kernel - 1, input_gain=input_gain,
                             out=buffers and buffers.take(
                                 "conv", (n, self.out_channels, conv_size, conv_size)))
        dtype = x.dtype
        return filtered_lrelu(
            x, fu=self.up_filter, fd=self.down_filter, b=self.bias.to(dtype),
            up=self.up_factor, down=self.down_factor, padding=self.padding,
            gain=1 if self.is_torgb else math.sqrt(2), slope=1 if self.is_torgb else 0.2,
            clamp=self.conv_clamp, out=buffers and buffers.take(
                "activation", (n, self.out_channels, self.out_size, self.out_size)))

    def extra_repr(self) -> str:
        return (f"w_dim={self.w_dim}, is_torgb={self.is_torgb}, in_channels={self.in_channels},"
                f" out_channels={self.out_channels}, in_size={self.in_size}, "
                f"out_size={self.out_size}, up={self.up_factor}, down={self.down_factor}")


# --- networks ----------------------------------------------------------------------------

KEEP_SCRATCH_BYTES = 384 << 20
_kept_scratch: WeakKeyDictionary = WeakKeyDictionary()  # network -> {(thread, batch): Scratch}


class SynthesisNetwork(nn.Module):
    """ws `[B, num_ws, w_dim]` -> images `[B, img_channels, res, res]` (float32)."""

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int,
                 channel_base: int = 32768, channel_max: int = 512, num_layers: int = 14,
                 num_critical: int = 2, first_cutoff: float = 2,
                 first_stopband: float = 2 ** 2.1, last_stopband_rel: float = 2 ** 0.3,
                 margin_size: int = 10, output_scale: float = 0.25, num_fp16_res: int = 4,
                 **layer_kwargs):
        super().__init__()
        if num_layers <= num_critical:
            raise ValueError(f"num_layers ({num_layers}) must exceed num_critical "
                             f"({num_critical})")
        self.w_dim, self.num_ws = w_dim, num_layers + 2
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.num_layers, self.num_critical = num_layers, num_critical
        self.margin_size, self.output_scale = margin_size, output_scale
        self.num_fp16_res = num_fp16_res

        # Per layer i = 0..num_layers: cutoff f_c and minimum stopband f_t grow
        # geometrically until the last num_critical layers, which sit at the image Nyquist.
        last_cutoff = img_resolution / 2
        last_stopband = last_cutoff * last_stopband_rel
        exponents = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
        cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** exponents
        stopbands = first_stopband * (last_stopband / first_stopband) ** exponents
        # Sampling rate: the power of two that holds the stopband; half widths of the
        # transition band; layer sizes with margins (the last two are the image itself).
        rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))
        half_widths = np.maximum(stopbands, rates / 2) - cutoffs
        sizes = rates + margin_size * 2
        sizes[-2:] = img_resolution
        channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
        channels[-1] = img_channels

        self.input = SynthesisInput(w_dim, int(channels[0]), int(sizes[0]), rates[0],
                                    cutoffs[0])
        self.layer_names = []
        for idx in range(num_layers + 1):
            prev = max(idx - 1, 0)
            layer = SynthesisLayer(
                w_dim=w_dim, is_torgb=idx == num_layers,
                is_critically_sampled=idx >= num_layers - num_critical,
                use_fp16=bool(rates[idx] * 2 ** num_fp16_res > img_resolution),
                in_channels=int(channels[prev]), out_channels=int(channels[idx]),
                in_size=int(sizes[prev]), out_size=int(sizes[idx]),
                in_sampling_rate=int(rates[prev]), out_sampling_rate=int(rates[idx]),
                in_cutoff=float(cutoffs[prev]), out_cutoff=float(cutoffs[idx]),
                in_half_width=float(half_widths[prev]), out_half_width=float(half_widths[idx]),
                **layer_kwargs)
            name = f"L{idx}_{layer.out_size}_{layer.out_channels}"
            setattr(self, name, layer)
            self.layer_names.append(name)

    def forward(self, ws: torch.Tensor, transform: torch.Tensor | None = None,
                noise_mode: str = "const", force_fp32: bool = False,
                update_emas: bool = False) -> torch.Tensor:
        """transform: a 3x3 (or `[B, 3, 3]`) inverse transform of the output image used
        instead of `input.transform` for this call only (see `view_transform`)."""
        if noise_mode not in ("random", "const", "none"):
            raise ValueError(f"unknown noise_mode {noise_mode!r}")  # StyleGAN3 has no noise
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must be [B, {self.num_ws}, {self.w_dim}], "
                             f"got {tuple(ws.shape)}")
        ws = ws.to(torch.float32).unbind(1)
        # On the CPU the depthwise filters and the convs run markedly faster channels-last;
        # every op below keeps the layout.
        cpu = ws[0].device.type == "cpu"
        layout = torch.channels_last if cpu else torch.contiguous_format
        x = self.input(ws[0], transform=transform).contiguous(memory_format=layout)
        buffers = self._scratch(x.shape[0]) if cpu and not torch.is_grad_enabled() else None
        for name, w in zip(self.layer_names, ws[1:], strict=True):
            last = name == self.layer_names[-1]  # its output is returned: a tensor of its own
            x = getattr(self, name)(x, w, force_fp32=force_fp32, update_emas=update_emas,
                                    buffers=None if last else buffers)
        if self.output_scale != 1:
            x = x * self.output_scale
        return x.to(torch.float32).contiguous()


    def _scratch(self, batch: int) -> Scratch:
        """This call's two reused activation buffers, sized for the largest layer. Kept
        for the next call in the same thread with the same batch when they are small
        (`KEEP_SCRATCH_BYTES`): fresh ones cost a page fault per 4 KB, about 4 % of a
        256 px image's time."""
        kept = _kept_scratch.setdefault(self, {})
        key = (threading.get_ident(), batch)
        if key in kept:
            return kept[key]
        buffers = Scratch(torch.device("cpu"))
        for name in self.layer_names[:-1]:
            layer = getattr(self, name)
            conv_size = layer.in_size + layer.conv_kernel - 1
            buffers.reserve("conv", (batch, layer.out_channels, conv_size, conv_size))
            buffers.reserve("activation", (batch, layer.out_channels, layer.out_size,
                                           layer.out_size))
        if buffers.reserved_bytes() <= KEEP_SCRATCH_BYTES:
            kept.clear()  # one size per network: a new batch size replaces the old
            kept[key] = buffers
        return buffers


class Generator(nn.Module):
    """z `[B, z_dim]` (+ class weights c `[B, c_dim]`) -> images `[B, C, res, res]`.

    Takes NVlabs' Generator kwargs: synthesis options are passed flat (channel_base,
    channel_max, num_layers, conv_kernel, use_radial_filters, ...).
    """

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, img_resolution: int,
                 img_channels: int, mapping_kwargs: dict | None = None, **synthesis_kwargs):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution,
                                          img_channels=img_channels, **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        mapping = {**MAPPING_DEFAULTS, **(mapping_kwargs or {})}
        for key in _TRAINING_ONLY_MAPPING:
            mapping.pop(key, None)
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim,
                                      num_ws=self.num_ws, **mapping)

    @staticmethod
    def view_transform(translate=(0.0, 0.0), angle_degrees: float = 0.0) -> torch.Tensor:
        """The `synthesis(ws, transform=...)` matrix that shifts the content by `translate`
        (image widths/heights) and turns it counter-clockwise by `angle_degrees`."""
        return view_transform(translate, angle_degrees)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None,
                truncation_psi: float = 1, truncation_cutoff: int | None = None,
                update_emas: bool = False, **synthesis_kwargs) -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi,
                          truncation_cutoff=truncation_cutoff, update_emas=update_emas)
        return self.synthesis(ws, update_emas=update_emas, **synthesis_kwargs)


@register("stylegan3")
def build(config: dict) -> dict[str, nn.Module]:
    """config: {"generator": Generator kwargs, "discriminator": StyleGAN2 D kwargs or None}."""
    unknown = set(config) - {"generator", "discriminator"}
    if unknown:
        raise ValueError(f"unknown StyleGAN3 config key(s) {sorted(unknown)}")
    if not isinstance(config.get("generator"), dict):
        raise ValueError("StyleGAN3 config needs a 'generator' dict of Generator kwargs")
    networks: dict[str, nn.Module] = {"generator": Generator(**config["generator"])}
    if config.get("discriminator") is not None:  # StyleGAN3 trains with StyleGAN2's D
        networks["discriminator"] = Discriminator(**config["discriminator"])
    return networks
