"""oneDNN's float32 matmul, called directly.

PyTorch sends float32 `torch.mm` / `F.linear` on the CPU to MKL, which serves AMD CPUs with
its AVX2 code; oneDNN's matmul (which PyTorch uses for bfloat16 and for compiled graphs)
runs AVX-512 there. Measured on a 2-core AMD EPYC (Zen 5), one thread, `[1444, 512] @
[512, 512]`: MKL 75-85 GFLOP/s, oneDNN 175-190, and 220 with the weight pre-packed in
oneDNN's blocked layout. The op is internal to PyTorch (it is what the inductor's CPU
backend emits), so `available()` checks it once and callers keep a fallback.
"""

from __future__ import annotations

import torch

_AVAILABLE: bool | None = None


def available() -> bool:
    """Whether `matmul_nt` and `pack` run on oneDNN in this PyTorch build."""
    global _AVAILABLE
    if _AVAILABLE is None:
        try:
            a = torch.ones(2, 2)
            torch.ops.mkldnn._linear_pointwise(a, a, None, "none", [], "")
            _AVAILABLE = True
        except (AttributeError, RuntimeError):
            _AVAILABLE = False
    return _AVAILABLE


def matmul_nt(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """`a @ b.T` for float32 CPU matrices a `[M, K]` and b `[N, K]` (any strides, or b
    from `pack`); a new contiguous `[M, N]`. Falls back to `torch.mm` without oneDNN."""
    if available():
        return torch.ops.mkldnn._linear_pointwise(a, b, None, "none", [], "")
    return torch.mm(a, b.t())


def pack(b: torch.Tensor, rows_hint: int) -> torch.Tensor:
    """b `[N, K]` in oneDNN's blocked layout for `matmul_nt` calls of about `rows_hint`
    rows (an opaque tensor; saves the reorder oneDNN otherwise does per call). Returns b
    itself where packing is not available."""
    if available():
        try:
            return torch.ops.mkldnn._reorder_linear_weight(b, rows_hint)
        except (AttributeError, RuntimeError):
            pass
    return b
