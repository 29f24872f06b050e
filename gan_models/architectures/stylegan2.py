"""StyleGAN2 (Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN")
and its ADA / class-conditional variant.

Generator: z (+ class embedding) -> 8-layer mapping MLP -> w, broadcast to num_ws style
vectors -> synthesis network: a learned 4x4 constant, then one block per resolution
(4, 8, ..., img_resolution) of style-modulated 3x3 convolutions with per-pixel noise;
each block adds its RGB output to the upsampled image of the block before ('skip'),
or only the last block emits RGB ('orig', 'resnet').
Discriminator: resnet blocks that halve the resolution down to 4x4, then minibatch
standard deviation, a conv, two fully connected layers and, when conditional, a
projection onto the mapped class vector.

Module, parameter and buffer names and constructor keywords equal those of the NVlabs
PyTorch releases (stylegan2-ada-pytorch, stylegan3 `networks_stylegan2`), so their state
dicts and `_init_kwargs` map one to one. Blocks listed in `num_fp16_res` run in float16
on CUDA only; on the CPU everything is float32.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..ops import (
    activation_gain,
    bias_act,
    conv2d_resample,
    downsample2d,
    modulated_conv2d,
    setup_filter,
    upsample2d,
)
from ..registry import register

_HOMOGENEOUS = ("linear", "relu", "lrelu")  # act(g * x) == g * act(x) for g > 0


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def _no_grad_for(*tensors) -> bool:
    """True when no autograd graph is being built, so in-place updates are safe."""
    return not torch.is_grad_enabled() or not any(
        t is not None and t.requires_grad for t in tensors)


# --- building blocks --------------------------------------------------------------------

class FullyConnectedLayer(nn.Module):
    """Linear layer with equalized learning rate (weights scaled at run time)."""

    def __init__(self, in_features, out_features, bias=True, activation="linear",
                 lr_multiplier=1.0, bias_init=0.0):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.activation = activation
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype)
        if self.bias is None:
            x = x.matmul(w.t()) * self.weight_gain
        else:  # the gains ride on addmm's alpha/beta: no scaled copy of the weight
            x = torch.addmm(self.bias.to(x.dtype)[None], x, w.t(), beta=self.bias_gain,
                            alpha=self.weight_gain)
        if self.activation == "linear":
            return x
        return bias_act(x, act=self.activation, inplace=_no_grad_for(x))

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, act={self.activation}"


class Conv2dLayer(nn.Module):
    """Convolution with equalized learning rate, optional FIR up/downsampling, bias_act."""

    def __init__(self, in_channels, out_channels, kernel_size, bias=True, activation="linear",
                 up=1, down=1, resample_filter=(1, 3, 3, 1), conv_clamp=None,
                 channels_last=False, trainable=True):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.activation, self.up, self.down, self.conv_clamp = activation, up, down, conv_clamp
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.act_gain = activation_gain(activation)
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size])
        bias = torch.zeros([out_channels]) if bias else None
        if trainable:
            self.weight = nn.Parameter(weight)
            self.bias = nn.Parameter(bias) if bias is not None else None
        else:  # frozen (Freeze-D): buffers, which no requires_grad_(True) can unfreeze
            self.register_buffer("weight", weight)
            self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor, gain: float = 1) -> torch.Tensor:
        w = (self.weight * self.weight_gain).to(x.dtype)
        # flip_weight=False for upsampling matches NVlabs (transposed conv convolves)
        x = conv2d_resample(x, w, self.resample_filter, up=self.up, down=self.down,
                            padding=self.padding, flip_weight=self.up == 1)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        b = self.bias.to(x.dtype) if self.bias is not None else None
        return bias_act(x, b, act=self.activation, gain=self.act_gain * gain, clamp=clamp,
                        inplace=_no_grad_for(x, b))


class MappingNetwork(nn.Module):
    """z (+ class vector c) -> w, tracking the running average w_avg for truncation."""

    def __init__(self, z_dim, c_dim, w_dim, num_ws, num_layers=8, embed_features=None,
                 layer_features=None, activation="lrelu", lr_multiplier=0.01,
                 w_avg_beta=0.998):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.num_layers, self.w_avg_beta = num_layers, w_avg_beta
        embed_features = 0 if c_dim == 0 else (w_dim if embed_features is None else embed_features)
        layer_features = w_dim if layer_features is None else layer_features
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            # A linear layer on class weights, so mixed class vectors interpolate.
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            setattr(self, f"fc{idx}", FullyConnectedLayer(
                features[idx], features[idx + 1], activation=activation,
                lr_multiplier=lr_multiplier))
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, update_emas=False):
        x = None
        if self.z_dim > 0:
            _check_shape(z, (None, self.z_dim), "z")
            x = normalize_2nd_moment(z.float())
        if self.c_dim > 0:
            if c is None:
                raise ValueError(f"this network is class-conditional: pass c [B, {self.c_dim}]")
            _check_shape(c, (None, self.c_dim), "c")
            y = normalize_2nd_moment(self.embed(c.float()))
            x = torch.cat([x, y], dim=1) if x is not None else y
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        if update_emas and self.w_avg_beta is not None:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])          # [B, num_ws, w_dim]
        if truncation_psi != 1:
            if self.w_avg_beta is None:
                raise ValueError("truncation needs w_avg, which this network does not track")
            if self.num_ws is None or truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                head = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
                x = torch.cat([head, x[:, truncation_cutoff:]], dim=1)
        return x


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (optionally upsampling x2) + noise + bias + activation."""

    def __init__(self, in_channels, out_channels, w_dim, resolution, kernel_size=3, up=1,
                 use_noise=True, activation="lrelu", resample_filter=(1, 3, 3, 1),
                 conv_clamp=None, channels_last=False):
        super().__init__()
        self.in_channels, self.out_channels, self.w_dim = in_channels, out_channels, w_dim
        self.resolution, self.up, self.use_noise = resolution, up, use_noise
        self.activation, self.conv_clamp = activation, conv_clamp
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))
        self.padding = kernel_size // 2
        self.act_gain = activation_gain(activation)
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(
            torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x, w, noise_mode="random", fused_modconv=None, gain=1,
                overwrite_input=False):
        if noise_mode not in ("random", "const", "none"):
            raise ValueError(f"noise_mode must be 'random', 'const' or 'none', got {noise_mode!r}")
        _check_shape(x, (None, self.in_channels, self.resolution // self.up,
                         self.resolution // self.up), "input")
        styles = self.affine(w)                                     # [B, in_channels]
        act_gain = self.act_gain * gain
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        # For (leaky) ReLU the activation gain folds into the conv; else applied after it.
        pre_gain = act_gain if self.activation in _HOMOGENEOUS else 1.0
        noise = None
        if self.use_noise and noise_mode == "random":
            noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution],
                                device=x.device) * (self.noise_strength * pre_gain)
        elif self.use_noise and noise_mode == "const":
            noise = self.noise_const * (self.noise_strength * pre_gain)  # [H, W]
        x = modulated_conv2d(x, self.weight, styles, noise=noise, up=self.up,
                             padding=self.padding, resample_filter=self.resample_filter,
                             flip_weight=self.up == 1, fused_modconv=fused_modconv,
                             bias=self.bias, gain=pre_gain, overwrite_input=overwrite_input)
        return bias_act(x, act=self.activation, gain=act_gain / pre_gain, clamp=clamp,
                        inplace=_no_grad_for(x))


class ToRGBLayer(nn.Module):
    """Modulated 1x1 conv (no demodulation) to image channels."""

    def __init__(self, in_channels, out_channels, w_dim, kernel_size=1, conv_clamp=None,
                 channels_last=False):
        super().__init__()
        self.in_channels, self.out_channels, self.w_dim = in_channels, out_channels, w_dim
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(
            torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)

    def forward(self, x, w, fused_modconv=None):
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False,
                             fused_modconv=fused_modconv, bias=self.bias)
        if self.conv_clamp is None:
            return x
        return bias_act(x, clamp=self.conv_clamp, inplace=_no_grad_for(x))


class SynthesisBlock(nn.Module):
    """One resolution of the synthesis network: (const |) conv0 (x2 up), conv1, torgb."""

    def __init__(self, in_channels, out_channels, w_dim, resolution, img_channels, is_last,
                 architecture="skip", resample_filter=(1, 3, 3, 1), conv_clamp=256,
                 use_fp16=False, fp16_channels_last=False, fused_modconv_default=None,
                 **layer_kwargs):
        super().__init__()
        if architecture not in ("orig", "skip", "resnet"):
            raise ValueError(
                f"architecture must be 'orig', 'skip' or 'resnet', got {architecture!r}")
        self.in_channels, self.w_dim, self.resolution = in_channels, w_dim, resolution
        self.img_channels, self.is_last, self.architecture = img_channels, is_last, architecture
        self.use_fp16 = use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        # NVlabs' hint (True / 'inference_only'): both paths compute the same values, so
        # None (pick the faster path per call) serves every value.
        self.fused_modconv_default = fused_modconv_default
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))
        self.num_conv = self.num_torgb = 0
        common = dict(w_dim=w_dim, resolution=resolution, conv_clamp=conv_clamp,
                      channels_last=self.channels_last)
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, up=2,
                                        resample_filter=resample_filter, **common, **layer_kwargs)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, **common, **layer_kwargs)
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim,
                                    conv_clamp=conv_clamp, channels_last=self.channels_last)
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
            self.skip = Conv2dLayer(in_channels, out_channels, kernel_size=1, bias=False, up=2,
                                    resample_filter=resample_filter,
                                    channels_last=self.channels_last)

    def forward(self, x, img, ws, force_fp32=False, fused_modconv=None, update_emas=False,
                **layer_kwargs):
        # ws: [B, num_conv + num_torgb, w_dim]
        fp16 = self.use_fp16 and not force_fp32 and ws.device.type == "cuda"
        dtype = torch.float16 if fp16 else torch.float32
        if not fp16 and torch.is_autocast_enabled(ws.device.type):
            # Activations stay in the autocast dtype: casting them back to float32 between
            # layers would only add passes (the convolutions cast them again).
            dtype = torch.get_autocast_dtype(ws.device.type)
        fmt = _memory_format(ws.device, self.channels_last and fp16)
        w_iter = iter(ws.unbind(dim=1))
        if self.in_channels == 0:
            # A fresh copy (never a view of the parameter): conv1 may scale it in place.
            x = torch.empty([ws.shape[0], *self.const.shape], dtype=dtype, device=ws.device,
                            memory_format=fmt).copy_(self.const[None])
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv,
                           overwrite_input=True, **layer_kwargs)
        else:
            _check_shape(x, (None, self.in_channels, self.resolution // 2,
                             self.resolution // 2), "block input")
            x = x.to(dtype=dtype, memory_format=fmt)
            if self.architecture == "resnet":
                y = self.skip(x, gain=math.sqrt(0.5))
                x = self.conv0(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
                x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv,
                               gain=math.sqrt(0.5), overwrite_input=True, **layer_kwargs)
                x = y.add_(x) if _no_grad_for(x, y) else y + x
            else:
                x = self.conv0(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
                x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv,
                               overwrite_input=True, **layer_kwargs)
        if img is not None:
            img = upsample2d(img.contiguous(memory_format=fmt), self.resample_filter)
        if self.is_last or self.architecture == "skip":
            y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv)
            y = y.to(dtype=torch.float32, memory_format=fmt)
            if img is None:
                img = y
            else:
                img = img.add_(y) if _no_grad_for(img, y) else img + y
        return x, img


class SynthesisNetwork(nn.Module):
    """ws [B, num_ws, w_dim] -> image [B, img_channels, img_resolution, img_resolution]."""

    def __init__(self, w_dim, img_resolution, img_channels, channel_base=32768,
                 channel_max=512, num_fp16_res=4, **block_kwargs):
        super().__init__()
        if img_resolution < 4 or img_resolution & (img_resolution - 1):
            raise ValueError(f"img_resolution must be a power of two >= 4, got {img_resolution}")
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.img_resolution_log2 = int(math.log2(img_resolution))
        self.num_fp16_res = num_fp16_res
        self.block_resolutions = [2 ** i for i in range(2, self.img_resolution_log2 + 1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)
        self.num_ws = 0
        for res in self.block_resolutions:
            is_last = res == img_resolution
            block = SynthesisBlock(channels[res // 2] if res > 4 else 0, channels[res],
                                   w_dim=w_dim, resolution=res, img_channels=img_channels,
                                   is_last=is_last, use_fp16=res >= fp16_resolution,
                                   **block_kwargs)
            self.num_ws += block.num_conv + (block.num_torgb if is_last else 0)
            setattr(self, f"b{res}", block)

    def forward(self, ws, noise_mode=None, force_fp32=False, fused_modconv=None,
                update_emas=False):
        """noise_mode: 'const' (the stored noise: deterministic), 'random' or 'none';
        None means 'random' while training and 'const' in eval mode."""
        _check_shape(ws, (None, self.num_ws, self.w_dim), "ws")
        if noise_mode is None:
            noise_mode = "random" if self.training else "const"
        ws = ws.float()
        x = img = None
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            # Each block's torgb shares its w with the next block's conv0.
            block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            w_idx += block.num_conv
            x, img = block(x, img, block_ws, force_fp32=force_fp32,
                           fused_modconv=fused_modconv, noise_mode=noise_mode)
        return img.contiguous()


class Generator(nn.Module):
    """The StyleGAN2 generator: `mapping` (z, c -> ws) and `synthesis` (ws -> image).

    Constructor keywords follow NVlabs: synthesis options come flat (stylegan3 release)
    or as a `synthesis_kwargs` dict (stylegan2-ada-pytorch release).
    """

    def __init__(self, z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs=None,
                 synthesis_kwargs=None, **flat_synthesis_kwargs):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        synthesis_kwargs = {**(synthesis_kwargs or {}), **flat_synthesis_kwargs}
        self.synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution,
                                          img_channels=img_channels, **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim,
                                      num_ws=self.num_ws, **(mapping_kwargs or {}))

    def forward(self, z, c=None, truncation_psi=1, truncation_cutoff=None, noise_mode=None,
                update_emas=False, **synthesis_kwargs):
        ws = self.mapping(z, c, truncation_psi=truncation_psi,
                          truncation_cutoff=truncation_cutoff, update_emas=update_emas)
        return self.synthesis(ws, noise_mode=noise_mode, update_emas=update_emas,
                              **synthesis_kwargs)


# --- discriminator ----------------------------------------------------------------------

class DiscriminatorBlock(nn.Module):
    """One resolution: (fromrgb), conv0, conv1 (x2 down), resnet skip (x2 down)."""

    def __init__(self, in_channels, tmp_channels, out_channels, resolution, img_channels,
                 first_layer_idx, architecture="resnet", activation="lrelu",
                 resample_filter=(1, 3, 3, 1), conv_clamp=None, use_fp16=False,
                 fp16_channels_last=False, freeze_layers=0):
        super().__init__()
        if in_channels not in (0, tmp_channels):
            raise ValueError("in_channels must be 0 or tmp_channels")
        if architecture not in ("orig", "skip", "resnet"):
            raise ValueError(
                f"architecture must be 'orig', 'skip' or 'resnet', got {architecture!r}")
        self.in_channels, self.resolution = in_channels, resolution
        self.img_channels, self.first_layer_idx = img_channels, first_layer_idx
        self.architecture, self.use_fp16 = architecture, use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))
        self.num_layers = 0

        def layer(*args, **kwargs):  # Freeze-D: the first `freeze_layers` layers stay fixed
            trainable = first_layer_idx + self.num_layers >= freeze_layers
            self.num_layers += 1
            return Conv2dLayer(*args, trainable=trainable, channels_last=self.channels_last,
                               **kwargs)

        if in_channels == 0 or architecture == "skip":
            self.fromrgb = layer(img_channels, tmp_channels, kernel_size=1,
                                 activation=activation, conv_clamp=conv_clamp)
        self.conv0 = layer(tmp_channels, tmp_channels, kernel_size=3, activation=activation,
                           conv_clamp=conv_clamp)
        self.conv1 = layer(tmp_channels, out_channels, kernel_size=3, activation=activation,
                           down=2, resample_filter=resample_filter, conv_clamp=conv_clamp)
        if architecture == "resnet":
            self.skip = layer(tmp_channels, out_channels, kernel_size=1, bias=False, down=2,
                              resample_filter=resample_filter)

    def forward(self, x, img, force_fp32=False):
        device = (x if x is not None else img).device
        fp16 = self.use_fp16 and not force_fp32 and device.type == "cuda"
        dtype = torch.float16 if fp16 else torch.float32
        fmt = _memory_format(device, self.channels_last and fp16)
        if x is not None:
            x = x.to(dtype=dtype, memory_format=fmt)
        if self.in_channels == 0 or self.architecture == "skip":
            img = img.to(dtype=dtype, memory_format=fmt)
            y = self.fromrgb(img)
            x = x + y if x is not None else y
            img = downsample2d(img, self.resample_filter) if self.architecture == "skip" else None
        if self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv1(self.conv0(x), gain=math.sqrt(0.5))
            x = y.add_(x) if _no_grad_for(x, y) else y + x
        else:
            x = self.conv1(self.conv0(x))
        return x, img


class MinibatchStdLayer(nn.Module):
    """Appends the standard deviation across groups of samples as extra feature maps."""

    def __init__(self, group_size, num_channels=1):
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x):
        n, c, h, w = x.shape
        g = min(self.group_size, n) if self.group_size is not None else n
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)        # [G, n, F, c, H, W]
        y = y - y.mean(dim=0)
        y = (y.square().mean(dim=0) + 1e-8).sqrt()   # [n, F, c, H, W] std over the group
        y = y.mean(dim=[2, 3, 4]).reshape(-1, f, 1, 1)
        y = y.repeat(g, 1, h, w)                     # [N, F, H, W]
        return torch.cat([x, y], dim=1)


class DiscriminatorEpilogue(nn.Module):
    """The 4x4 head: mbstd, conv, fc, out (+ projection onto the class map)."""

    def __init__(self, in_channels, cmap_dim, resolution, img_channels, architecture="resnet",
                 mbstd_group_size=4, mbstd_num_channels=1, activation="lrelu", conv_clamp=None):
        super().__init__()
        self.in_channels, self.cmap_dim, self.resolution = in_channels, cmap_dim, resolution
        self.img_channels, self.architecture = img_channels, architecture
        if architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, in_channels, kernel_size=1,
                                       activation=activation)
        self.mbstd = (MinibatchStdLayer(mbstd_group_size, mbstd_num_channels)
                      if mbstd_num_channels > 0 else None)
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, kernel_size=3,
                                activation=activation, conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * resolution ** 2, in_channels,
                                      activation=activation)
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x, img, cmap, force_fp32=False):
        x = x.to(dtype=torch.float32, memory_format=torch.contiguous_format)
        if self.architecture == "skip":
            x = x + self.fromrgb(img.float())
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.out(self.fc(self.conv(x).flatten(1)))
        if self.cmap_dim > 0:
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / math.sqrt(self.cmap_dim))
        return x                                     # [B, 1]


class Discriminator(nn.Module):
    """images [B, C, H, W] (+ class vectors c) -> realness logits [B, 1]."""

    def __init__(self, c_dim, img_resolution, img_channels, architecture="resnet",
                 channel_base=32768, channel_max=512, num_fp16_res=4, conv_clamp=256,
                 cmap_dim=None, block_kwargs=None, mapping_kwargs=None, epilogue_kwargs=None):
        super().__init__()
        self.c_dim, self.img_resolution, self.img_channels = c_dim, img_resolution, img_channels
        self.img_resolution_log2 = int(math.log2(img_resolution))
        self.block_resolutions = [2 ** i for i in range(self.img_resolution_log2, 2, -1)]
        channels = {res: min(channel_base // res, channel_max)
                    for res in self.block_resolutions + [4]}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)
        cmap_dim = 0 if c_dim == 0 else (channels[4] if cmap_dim is None else cmap_dim)
        common = dict(img_channels=img_channels, architecture=architecture,
                      conv_clamp=conv_clamp)
        layer_idx = 0
        for res in self.block_resolutions:
            block = DiscriminatorBlock(
                channels[res] if res < img_resolution else 0, channels[res], channels[res // 2],
                resolution=res, first_layer_idx=layer_idx, use_fp16=res >= fp16_resolution,
                **(block_kwargs or {}), **common)
            setattr(self, f"b{res}", block)
            layer_idx += block.num_layers
        if c_dim > 0:
            self.mapping = MappingNetwork(z_dim=0, c_dim=c_dim, w_dim=cmap_dim, num_ws=None,
                                          w_avg_beta=None, **(mapping_kwargs or {}))
        self.b4 = DiscriminatorEpilogue(channels[4], cmap_dim=cmap_dim, resolution=4,
                                        **(epilogue_kwargs or {}), **common)

    def forward(self, img, c=None, update_emas=False, **block_kwargs):
        x = None
        for res in self.block_resolutions:
            x, img = getattr(self, f"b{res}")(x, img, **block_kwargs)
        cmap = self.mapping(None, c) if self.c_dim > 0 else None
        return self.b4(x, img, cmap)


def _memory_format(device: torch.device, channels_last: bool) -> torch.memory_format:
    # On the CPU, oneDNN runs both the dense and the depthwise (FIR) convolutions
    # markedly faster on channels-last activations; on CUDA follow the model's setting.
    if channels_last or device.type == "cpu":
        return torch.channels_last
    return torch.contiguous_format


def _check_shape(t: torch.Tensor, shape: tuple, what: str) -> None:
    if t is None or t.ndim != len(shape) or any(
            want is not None and have != want for have, want in zip(t.shape, shape, strict=True)):
        got = None if t is None else tuple(t.shape)
        want = tuple("B" if s is None else s for s in shape)
        raise ValueError(f"{what} has shape {got}, expected {want}")


@register("stylegan2")
def build(config: dict) -> dict[str, nn.Module]:
    """config: {"generator": Generator kwargs, "discriminator": Discriminator kwargs | None}."""
    unknown = set(config) - {"generator", "discriminator"}
    if unknown or "generator" not in config:
        raise ValueError("a stylegan2 config has keys 'generator' (required) and "
                         f"'discriminator'; got {sorted(config)}")
    networks = {"generator": Generator(**config["generator"])}
    if config.get("discriminator") is not None:
        networks["discriminator"] = Discriminator(**config["discriminator"])
    return networks
