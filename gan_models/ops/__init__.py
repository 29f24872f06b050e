"""Pure-PyTorch kernels shared by the architectures (no compiled extensions)."""

from .bias_act import activation_gain, bias_act
from .conv2d_resample import conv2d_resample
from .modulated_conv import demod_coefficients, modulated_conv2d, squared_taps
from .upfirdn2d import downsample2d, filter2d, setup_filter, upfirdn2d, upsample2d

__all__ = ["activation_gain", "bias_act", "conv2d_resample", "demod_coefficients",
           "downsample2d", "filter2d", "modulated_conv2d", "setup_filter", "squared_taps",
           "upfirdn2d", "upsample2d"]
