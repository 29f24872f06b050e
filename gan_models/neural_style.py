"""Neural style transfer by optimisation (Gatys et al. 2016): the pixels of one image are
optimised so that its features match the content image's and its Gram matrices match the
style image's, on a frozen feature network (style_features.py).

    loss = content_weight * |F_c(x) - F_c(content)|^2 + style_weight * sum_l |G_l(x) - G_l(style)|^2

The image starts from the content image and is optimised with Adam in 0..1 pixel space
(clamped after each step). The image of the lowest loss seen so far is returned, so a run
stopped early still gives its best result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .errors import GanStudioError
from .style_features import StyleFeatures, content_loss, gram, style_loss

# on_step(step, losses, image [1, 3, H, W] 0..1) -> False to stop early
OnStep = Callable[[int, dict, torch.Tensor], bool]


@dataclass
class StyleResult:
    image: torch.Tensor                 # [1, 3, H, W] 0..1, CPU
    best_step: int
    steps_run: int
    history: list[dict] = field(default_factory=list)  # per step: loss, style, content


def fit_style_image(style: torch.Tensor, size: tuple[int, int], scale: float = 1.0
                    ) -> torch.Tensor:
    """Resize the style image so its longer side is `scale` x the content's longer side."""
    target = max(size) * scale
    h, w = style.shape[-2:]
    factor = target / max(h, w)
    nh, nw = max(16, round(h * factor)), max(16, round(w * factor))
    if (nh, nw) == (h, w):
        return style
    return F.interpolate(style, size=(nh, nw), mode="bilinear", antialias=factor < 1,
                         align_corners=False).clamp(0, 1)


def stylize(content: torch.Tensor, style: torch.Tensor, features: StyleFeatures,
            steps: int = 200, style_weight: float = 1.0, content_weight: float = 1.0,
            learning_rate: float = 0.02, style_scale: float = 1.0,
            on_step: OnStep | None = None) -> StyleResult:
    """content `[1, 3, H, W]`, style `[1, 3, h, w]`, both 0..1 (any device; the work runs on
    the feature network's device)."""
    if steps < 1:
        raise GanStudioError(f"steps must be at least 1, got {steps}")
    for name, value in (("style_weight", style_weight), ("content_weight", content_weight),
                        ("learning_rate", learning_rate), ("style_scale", style_scale)):
        if not value >= 0 or value != value or value == float("inf"):
            raise GanStudioError(f"{name} must be a finite number >= 0, got {value}")
    if min(content.shape[-2:]) < 16:
        raise GanStudioError(f"the content image is {content.shape[-1]}x{content.shape[-2]}; "
                             "neural style needs at least 16x16")
    device = next(features.buffers(), next(features.parameters(), None))
    device = device.device if device is not None else torch.device("cpu")
    with torch.inference_mode(False), torch.enable_grad():
        content = content.detach().clone().float().to(device)
        style = fit_style_image(style.detach().clone().float().to(device),
                                tuple(content.shape[-2:]), style_scale)
        with torch.no_grad():
            target_grams = [gram(f) for f in features(style)[0]]
            target_content = features(content)[1]
        x = content.clone().requires_grad_(True)
        opt = torch.optim.Adam([x], lr=learning_rate)
        best, best_loss, best_step = content.clone(), float("inf"), 0
        history = []
        for step in range(1, steps + 1):
            opt.zero_grad(set_to_none=True)
            maps, c = features(x)
            s_loss = style_loss(maps, target_grams)
            c_loss = content_loss(c, target_content)
            loss = style_weight * s_loss + content_weight * c_loss
            loss.backward()
            record = {"loss": float(loss.detach()), "style": float(s_loss.detach()),
                      "content": float(c_loss.detach())}
            history.append(record)
            if record["loss"] < best_loss:  # the loss of x before this update
                best_loss, best_step = record["loss"], step - 1
                best = x.detach().clone()
            opt.step()
            with torch.no_grad():
                x.clamp_(0, 1)
            if on_step is not None and on_step(step, record, x.detach()) is False:
                break
        return StyleResult(image=best.clamp(0, 1).cpu(), best_step=best_step,
                           steps_run=len(history), history=history)
