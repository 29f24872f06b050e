"""Distribution distances between two sets of image features.

Fréchet distance (FD): fit a Gaussian to each set and compare them,
    |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)).
With Inception features this is the FID; here the features are usually EfficientNet-Lite0's,
so the numbers are comparable with each other, not with published FIDs.

Kernel inception distance (KID): the unbiased squared MMD with the cubic polynomial kernel
k(x, y) = (x.y / d + 1)^3, averaged over random subsets. Unlike FD it has no bias that
depends on the number of samples, so it suits small sample counts.

Statistics of a real dataset (mean, covariance and the features themselves, for KID) can be
saved as .safetensors so repeated evaluations do not recompute them.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import GanStudioError
from ..formats.tagged import read_tagged, write_tagged

STATS_KEY = "gan_studio_feature_stats"
WHAT = "GAN Studio feature statistics file"


def _as_array(feats) -> np.ndarray:
    arr = feats.detach().cpu().double().numpy() if isinstance(feats, torch.Tensor) \
        else np.asarray(feats, dtype=np.float64)
    if arr.ndim != 2 or len(arr) < 2:
        raise GanStudioError(f"features must be [N >= 2, D], got shape {arr.shape}")
    return arr


def feature_stats(feats) -> tuple[np.ndarray, np.ndarray]:
    """(mean [D], covariance [D, D]) in float64."""
    arr = _as_array(feats)
    return arr.mean(axis=0), np.cov(arr, rowvar=False)


def frechet_distance(feats_a, feats_b) -> float:
    """FD between two feature sets `[N, D]` (tensors or arrays)."""
    return frechet_from_stats(*feature_stats(feats_a), *feature_stats(feats_b))


def frechet_from_stats(mu_a, sigma_a, mu_b, sigma_b, method: str = "eigh") -> float:
    """FD between two Gaussians. method "eigh" (default: symmetric eigendecompositions, about
    5x faster than scipy at 1280 dims and never complex) or "scipy" (scipy.linalg.sqrtm of
    S_a S_b, the classic route; used as a cross-check). Both give the same value."""
    mu_a, mu_b = np.asarray(mu_a, np.float64), np.asarray(mu_b, np.float64)
    sigma_a, sigma_b = np.atleast_2d(sigma_a).astype(np.float64), \
        np.atleast_2d(sigma_b).astype(np.float64)
    if mu_a.shape != mu_b.shape or sigma_a.shape != sigma_b.shape:
        raise GanStudioError(f"feature statistics differ in size: {mu_a.shape} vs {mu_b.shape}")
    if method not in ("eigh", "scipy"):
        raise GanStudioError(f"unknown matrix square root method {method!r}")
    cross = _trace_sqrt_scipy(sigma_a, sigma_b) if method == "scipy" \
        else _trace_sqrt_eigh(sigma_a, sigma_b)
    diff = mu_a - mu_b
    value = diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2.0 * cross
    return float(max(value, 0.0))  # rounding can take an exact 0 slightly below


def _trace_sqrt_scipy(sigma_a: np.ndarray, sigma_b: np.ndarray) -> float:
    """tr((S_a S_b)^(1/2)) with scipy's general matrix square root."""
    try:
        from scipy.linalg import LinAlgWarning, sqrtm
    except ImportError:
        raise GanStudioError("scipy is not installed; use the 'eigh' method") from None

    with warnings.catch_warnings():
        # Fewer samples than dimensions make the product singular; scipy warns, and the
        # result is checked below instead.
        warnings.simplefilter("ignore", LinAlgWarning)
        root = sqrtm(sigma_a @ sigma_b)
        if not np.isfinite(root).all():
            eps = 1e-6 * np.eye(len(sigma_a))  # nudge both off singularity
            root = sqrtm((sigma_a + eps) @ (sigma_b + eps))
    if np.iscomplexobj(root):
        # The product of two PSD matrices has real, non-negative eigenvalues, so any
        # imaginary part is numerical noise; a large one means the input is broken.
        imag = np.abs(np.diagonal(root).imag).max()
        scale = max(1.0, np.abs(np.diagonal(root).real).max())
        if imag > 1e-3 * scale:
            raise GanStudioError(f"matrix square root has a large imaginary part ({imag:.3g}); "
                                 "the features may contain NaN or infinite values")
        root = root.real
    return float(np.trace(root))


def _trace_sqrt_eigh(sigma_a: np.ndarray, sigma_b: np.ndarray) -> float:
    """The same trace without scipy: S_a S_b is similar to the symmetric PSD matrix
    A^(1/2) S_b A^(1/2) (A = S_a), whose eigenvalues are real and non-negative."""
    vals, vecs = np.linalg.eigh(sigma_a)
    root_a = (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T
    inner = root_a @ sigma_b @ root_a
    inner = (inner + inner.T) / 2  # remove asymmetric rounding before eigvalsh
    return float(np.sqrt(np.clip(np.linalg.eigvalsh(inner), 0, None)).sum())


def kid(feats_a, feats_b, subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
    """(mean, std) of the unbiased polynomial-kernel MMD^2 over random subsets.

    Each subset draws min(subset_size, N_a, N_b) rows of each set without replacement.
    """
    a, b = _as_array(feats_a), _as_array(feats_b)
    if a.shape[1] != b.shape[1]:
        raise GanStudioError(f"feature sizes differ: {a.shape[1]} vs {b.shape[1]}")
    if subsets < 1:
        raise GanStudioError(f"KID needs at least one subset, got {subsets}")
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise GanStudioError("KID needs at least 2 samples per set")
    dim = a.shape[1]

    def kernel(x, y):
        return (x @ y.T / dim + 1) ** 3

    # Up to a few thousand samples, three full kernel matrices are cheaper than 3 products
    # per subset; subsets then only index into them.
    full = max(len(a), len(b)) <= 8192
    if full:
        k_aa, k_bb, k_ab = kernel(a, a), kernel(b, b), kernel(a, b)
    rng = np.random.default_rng(seed)
    values = np.empty(subsets)
    for i in range(subsets):
        ia = rng.choice(len(a), m, replace=False)
        ib = rng.choice(len(b), m, replace=False)
        if full:
            k_xx, k_yy, k_xy = k_aa[np.ix_(ia, ia)], k_bb[np.ix_(ib, ib)], k_ab[np.ix_(ia, ib)]
        else:
            x, y = a[ia], b[ib]
            k_xx, k_yy, k_xy = kernel(x, x), kernel(y, y), kernel(x, y)
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
        values[i] = within - 2 * k_xy.mean()
    return float(values.mean()), float(values.std())


# --- cached statistics of a real dataset ---------------------------------------------------
def make_stats(feats: torch.Tensor, info: dict | None = None) -> dict:
    """{"features" [N, D] float32, "mu" [D] and "sigma" [D, D] float64, "info"}."""
    mu, sigma = feature_stats(feats)
    return {"features": feats.detach().float().cpu().contiguous(), "mu": torch.from_numpy(mu),
            "sigma": torch.from_numpy(sigma), "info": dict(info or {})}


def save_stats(path: str | Path, stats: dict) -> Path:
    """Write a make_stats dict as .safetensors (info as JSON metadata), atomically."""
    tensors = {k: stats[k] for k in ("features", "mu", "sigma")}
    return write_tagged(path, tensors, STATS_KEY, stats.get("info") or {})


def load_stats(path: str | Path) -> dict:
    """The make_stats dict stored at `path` by save_stats."""
    path = Path(path)
    tensors, info = read_tagged(path, STATS_KEY, WHAT)
    if not {"features", "mu", "sigma"} <= set(tensors):
        raise GanStudioError(f"{path.name} is not a {WHAT} (tensors missing)")
    return {**tensors, "info": info}


def cached_stats(cache_dir: str | Path | None, key: str, compute, info: dict | None = None
                 ) -> tuple[dict, bool]:
    """({"features", "mu", "sigma", "info"}, came_from_cache). `key` must name everything the
    features depend on (data content, resolution, feature network); `compute()` -> features
    runs on a miss. A cache folder that cannot be written is skipped: caching only saves time."""
    path = Path(cache_dir) / f"{key}.safetensors" if cache_dir else None
    if path is not None and path.is_file():
        try:
            return load_stats(path), True
        except GanStudioError:
            pass  # damaged: recompute and overwrite
    stats = make_stats(compute(), info)
    if path is not None:
        try:
            save_stats(path, stats)
        except OSError:
            pass
    return stats, False
