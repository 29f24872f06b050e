"""Style-modulated convolution (StyleGAN2 weight modulation/demodulation).

Two equivalent ways to run it; `fused_modconv=None` picks per call:
- fused: build a weight per sample (weight * style * demod). With one sample this is a
  single plain convolution; with more it is one grouped convolution (groups = batch).
  The default for one sample when the weight is no larger than the input.
- plain: scale the input channels by the styles, convolve with the shared weight, scale
  the output channels by the demodulation coefficients. One big batched convolution and
  no per-sample weights; the default for batches > 1 and for small, many-channel inputs.
Many-channel 3x3 convolutions without autograd on the CPU take a third way, Winograd's
F(4x4, 3x3) (`winograd`), with the styles and the demodulation folded into its transforms.
"""

from __future__ import annotations

import torch

from . import winograd
from .conv2d_resample import conv2d_resample
from .weight_cache import PerWeight


def squared_taps(weight: torch.Tensor) -> torch.Tensor:
    """`[O, I]` sum of squared kernel taps (at least float32): what demodulation needs.

    One fused norm kernel: no weight-sized temporary, one pass over the weight. Without
    autograd the result is kept per weight tensor until the weight changes (`weight_cache`),
    so generation does not re-read every weight on every call.
    """
    # Inference tensors (weights loaded under ComfyUI's inference mode) are not cached: the
    # result would be an inference tensor too, which autograd (inversion) cannot save.
    if (torch.compiler.is_compiling() or weight.is_inference()
            or (torch.is_grad_enabled() and weight.requires_grad)):
        return _squared_taps(weight)
    return _taps.get(weight, _squared_taps)


def _squared_taps(weight: torch.Tensor) -> torch.Tensor:
    dtype = torch.promote_types(weight.dtype, torch.float32)
    flat = weight.to(dtype).reshape(weight.shape[0], weight.shape[1], -1)
    return torch.linalg.vector_norm(flat, dim=2).square()


_taps = PerWeight()


def demod_coefficients(weight: torch.Tensor, styles: torch.Tensor,
                       weight_sq: torch.Tensor | None = None) -> torch.Tensor:
    """`[B, O]` 1 / ||weight * style|| per sample and output channel (at least float32).

    sum_{i,k} (w[o,i,k] s[b,i])^2 = s[b]^2 . sum_k w[o,:,k]^2: a small matmul instead of
    materialising the `[B, O, I, kh, kw]` modulated weights. weight_sq: a precomputed
    `squared_taps(weight)`.
    """
    wsq = squared_taps(weight) if weight_sq is None else weight_sq        # [O, I]
    dtype = torch.promote_types(wsq.dtype, styles.dtype)
    return (styles.to(dtype).square() @ wsq.to(dtype).t() + 1e-8).rsqrt()  # [B, O]


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor,
                     noise: torch.Tensor | None = None, up: int = 1, down: int = 1,
                     padding=0, resample_filter: torch.Tensor | None = None,
                     demodulate: bool = True, flip_weight: bool = True,
                     fused_modconv: bool | None = None, bias: torch.Tensor | None = None,
                     gain: float = 1.0, overwrite_input: bool = False,
                     weight_sq: torch.Tensor | None = None,
                     out: torch.Tensor | None = None) -> torch.Tensor:
    """gain * (conv(x, weight modulated by styles [and demodulated]) + bias) + noise.

    x `[B, I, H, W]`, weight `[O, I, kh, kw]`, styles `[B, I]`; bias is `[O]`; noise
    broadcasts to the output (`[B, 1, H, W]` or `[H, W]`) and is added as given, so a
    caller that wants it inside the gain scales it (one small tensor) beforehand.
    up/down/padding/resample_filter/flip_weight as in `conv2d_resample`. The gain is folded
    into the weights or the demodulation, which saves a pass over the activations.
    overwrite_input: the caller is done with `x`, so the plain path may scale it in place
    (without autograd). Fresh multi-megabyte tensors cost page faults on the CPU, often
    more than the arithmetic that fills them.
    weight_sq: a precomputed `squared_taps(weight)` (saves a pass over the weight).
    out: a buffer the Winograd path writes its result into when it fits (see `scratch`);
    use the returned tensor either way.
    """
    batch = x.shape[0]
    out_ch, in_ch, kh, kw = weight.shape
    if styles.shape != (batch, in_ch):
        raise ValueError(f"styles {tuple(styles.shape)} do not fit input {tuple(x.shape)}")
    if x.dtype == torch.float16 and demodulate:
        # Pre-normalise so fp16 cannot overflow; demodulation cancels the scale.
        weight = weight * (1 / (in_ch * kh * kw) ** 0.5
                           / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)
        weight_sq = None
    if fused_modconv is None:
        # One sample: modulate whichever is smaller, the weight or the input (small
        # images with many channels: the input). More samples: one shared-weight conv.
        fused_modconv = batch == 1 and weight.numel() <= x.numel()
    scale = demod_coefficients(weight, styles, weight_sq) * gain if demodulate else None
    grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (x, weight, styles, noise, bias))

    if (up == 1 and down == 1 and flip_weight and not grad
            and winograd.worth_it(x, weight, padding)):
        # Many-channel 3x3 convs on the CPU: Winograd, with the modulation and the
        # demodulation folded into its transforms (no per-sample weights either way).
        x = winograd.conv3x3(x, weight, padding, in_scale=styles,
                             out_scale=scale if scale is not None else gain, out=out)
        if bias is not None:
            x.add_((bias * gain).to(x.dtype)[None, :, None, None])
    elif fused_modconv:
        coef = styles[:, None, :]                                         # [B, 1, I]
        coef = coef * (scale[:, :, None] if scale is not None else gain)  # [B, O|1, I]
        if batch == 1:
            w = weight * coef[0, :, :, None, None]
            x = conv2d_resample(x, w.to(x.dtype), resample_filter, up=up, down=down,
                                padding=padding, flip_weight=flip_weight,
                                bias=None if bias is None else bias * gain)
        else:
            w = (weight[None] * coef[:, :, :, None, None]).reshape(-1, in_ch, kh, kw)
            x = x.reshape(1, batch * in_ch, *x.shape[2:])
            bias_all = None if bias is None else (bias * gain).repeat(batch)
            x = conv2d_resample(x, w.to(x.dtype), resample_filter, up=up, down=down,
                                padding=padding, groups=batch, flip_weight=flip_weight,
                                bias=bias_all)
            x = x.reshape(batch, out_ch, *x.shape[2:])
    else:
        style = styles.to(x.dtype)[:, :, None, None]
        x = x.mul_(style) if overwrite_input and not grad else x * style
        x = conv2d_resample(x, weight.to(x.dtype), resample_filter, up=up, down=down,
                            padding=padding, flip_weight=flip_weight)
        mul = scale.to(x.dtype)[:, :, None, None] if scale is not None else gain  # [B,O,1,1]
        add = None if bias is None else (bias * gain).to(x.dtype)[None, :, None, None]
        if not torch.is_tensor(mul) and mul == 1:
            if add is not None:
                x = x + add if grad else x.add_(add)
        elif grad:
            x = x * mul if add is None else torch.addcmul(add, x, mul)
        elif add is None:
            x.mul_(mul)
        elif torch.is_tensor(mul):
            torch.addcmul(add, x, mul, out=x)
        else:  # no demodulation: the gain is a float
            x.mul_(mul).add_(add)
    if noise is not None:
        noise = noise.to(x.dtype)
        x = x + noise if grad else x.add_(noise)
    return x
