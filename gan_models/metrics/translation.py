"""Measuring an image-to-image model on held-out pairs: how close each output is to its
target (mean absolute error, L1, in 0..1 units) and how close the outputs are to the targets
as a set (Fréchet distance and KID on EfficientNet-Lite0 features).

Two references put the numbers in context: the inputs themselves scored against the targets
(what doing nothing gets) and, when given, other real targets (e.g. the training images)
against the held-out targets (what a perfect model could get with this many images).
"""

from __future__ import annotations

import torch

from ..model import GenerativeModel
from .frechet import frechet_distance, kid


@torch.no_grad()
def translate_pairs(model: GenerativeModel, inputs: torch.Tensor, batch: int = 64
                    ) -> torch.Tensor:
    """`[N, 3, R, R]` 0..1 -> the model's outputs, same shape, 0..1 (CPU)."""
    out = [model.translate(inputs[i:i + batch].mul(2).sub(1)).float().cpu().add(1).div(2)
           for i in range(0, len(inputs), batch)]
    return torch.cat(out).clamp(0, 1)


def evaluate_translator(model: GenerativeModel, inputs: torch.Tensor, targets: torch.Tensor,
                        reference: torch.Tensor | None = None, features: str = "lite0",
                        kid_subset_size: int = 100) -> dict:
    """inputs, targets (and reference): `[N, 3, R, R]` float 0..1. Returns a JSON-able dict."""
    from .features import load_feature_extractor

    outputs = translate_pairs(model, inputs)
    extract = load_feature_extractor(spec=features)
    f_out, f_target, f_in = extract(outputs), extract(targets), extract(inputs)
    size = min(kid_subset_size, len(targets))
    result = {
        "pairs": len(inputs), "features": features,
        "l1": round(float((outputs - targets).abs().mean()), 4),
        "fd": round(frechet_distance(f_out, f_target), 2),
        "kid": round(kid(f_out, f_target, subset_size=size)[0], 5),
        "inputs_l1": round(float((inputs - targets).abs().mean()), 4),
        "inputs_fd": round(frechet_distance(f_in, f_target), 2),
    }
    if reference is not None:
        f_ref = extract(reference)
        result["reference_fd"] = round(frechet_distance(f_ref, f_target), 2)
        result["reference_images"] = len(reference)
    return result
