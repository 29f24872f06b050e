"""Generation speed options: numeric precision and an optional `torch.compile`.

precision:
- "fp32" (default): float32 everywhere, the reference numbers.
- "bf16": bfloat16 autocast (convolutions and matmuls in bf16, float32 accumulation).
  On CPUs with AVX512-BF16 or AMX, and on recent GPUs, that is up to twice the arithmetic
  rate; images differ from fp32 by 0.4-2.3 % of their RMS (see ERROR_NOTE).
- "fp16": float16 autocast plus the float16 layers StyleGAN models declare
  (`num_fp16_res`), as NVlabs runs them. GPU only.

compile: wrap the synthesis network in `torch.compile` (off by default). When no compiler
works on this machine (no C++ toolchain, an unsupported platform), generation quietly
falls back to the uncompiled network; `compile_status` says what happened.
"""

from __future__ import annotations

import contextlib
import threading
import weakref

import torch
from torch import nn

from .errors import GanStudioError

PRECISIONS = ("fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

# Measured with bench/bench_stylegan2.py and bench_stylegan3.py (256 px, batch 1, CPU);
# shown in the Generate Images tooltip so people know what they trade.
ERROR_NOTE = ("bf16 images differ from fp32 by 0.4-2.3 % of their RMS (StyleGAN3-T 0.4 %, "
              "StyleGAN3-R 1.0 %, StyleGAN2 2.3 %); fp16 was not measured (no GPU here)")


def check_precision(precision: str, device: torch.device | str) -> None:
    """Refuse a precision this device cannot run, in one line."""
    device = torch.device(device)
    if precision not in PRECISIONS:
        raise GanStudioError(f"unknown precision {precision!r}; choose one of "
                             f"{', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type == "cpu":
        raise GanStudioError("fp16 runs on GPUs only; on the CPU choose bf16 (or fp32)")


def precision_context(precision: str, device: torch.device | str):
    """A context manager that runs the enclosed generation in `precision`."""
    check_precision(precision, device)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=DTYPES[precision])


def bf16_is_native(device: torch.device | str = "cpu") -> bool:
    """True when bf16 arithmetic has hardware support (AVX512-BF16/AMX CPUs, or a GPU that
    says so), i.e. when bf16 should be faster rather than only smaller."""
    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type != "cpu":
        return False
    try:  # mkldnn's check covers avx512_bf16 and AMX
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


# --- torch.compile ------------------------------------------------------------------------

_compiled: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_failed: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_lock = threading.Lock()
compile_status: dict[str, str] = {}


def compiled(module: nn.Module) -> nn.Module:
    """`torch.compile(module)`, made once per module and reused; the module itself when
    compiling is impossible here (the reason lands in `compile_status`)."""
    with _lock:
        if module in _failed:
            return module
        if module not in _compiled:
            try:
                _compiled[module] = torch.compile(module, dynamic=False)
            except Exception as exc:  # noqa: BLE001 - any failure means: run uncompiled
                _failed[module] = True
                compile_status["last"] = f"torch.compile unavailable: {exc}"
                return module
        return _compiled[module]


def run_compiled(module: nn.Module, *args, **kwargs):
    """Call the compiled module; on a compiler failure (raised at the first call, when the
    graph is built) run the plain module instead, now and from then on."""
    fn = compiled(module)
    if fn is module:
        return module(*args, **kwargs)
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - a missing toolchain shows up here
        out = module(*args, **kwargs)  # an error of the inputs raises here again, as is
        with _lock:  # the plain module works: the compiler was the problem
            _failed[module] = True
            _compiled.pop(module, None)
        compile_status["last"] = f"torch.compile failed, running uncompiled: {exc}"
        return out
