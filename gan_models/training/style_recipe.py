"""Fast neural style (Johnson et al. 2016): train one feed-forward network per style image.

Data: content images plus one style image (a PairedDataset of kind "style", pairs.py). The
transformer network (architectures/fast_style.py) is trained so that its output keeps the
content image's features and takes on the style image's Gram matrices, on a frozen feature
network (style_features.py: EfficientNet-Lite0 by default, or a VGG-16/19 file):
    loss = content_weight * |F_c(T(x)) - F_c(x)|^2 + style_weight * sum_l |G_l(T(x)) - G_l(s)|^2
         + tv_weight * total variation of T(x)
"""

from __future__ import annotations

import torch

from ..errors import GanStudioError
from ..model import to_unit_hwc
from ..style_features import LITE0, content_loss, gram, load_style_features, style_loss
from .plots import image_grid
from .recipes import Phase, Recipe, StepContext, register_recipe


@register_recipe
class FastStyleRecipe(Recipe):
    """Fast neural style: a feed-forward stylisation network for one style image, trained on a
    folder of content images with a perceptual (Gram) loss."""

    name = "fast-style"
    architecture = "fast-style"
    data_kind = "style"
    ema_role = "translator"
    DEFAULTS = {"resolution": 256, "base_channels": 32, "lr": 1e-3, "beta1": 0.9,
                "beta2": 0.999, "style_weight": 1.0, "content_weight": 1.0, "tv_weight": 0.0,
                "features": LITE0, "ema_kimg": 0.0}

    def __init__(self, options=None, num_classes=0):
        super().__init__(options, num_classes)
        self._features = None

    def validate(self) -> None:
        o = self.options
        if self.resolution % 4 or self.resolution < 16:
            raise GanStudioError(f"recipe fast-style: resolution must be a multiple of 4 and at "
                                 f"least 16, got {self.resolution}")
        if not 1 <= int(o["base_channels"]) <= 256:
            raise GanStudioError(f"base_channels must be 1..256, got {o['base_channels']}")
        if not float(o["lr"]) > 0:
            raise GanStudioError(f"lr must be positive, got {o['lr']}")
        for key in ("style_weight", "content_weight", "tv_weight"):
            if not float(o[key]) >= 0:
                raise GanStudioError(f"{key} must not be negative, got {o[key]}")

    def model_config(self) -> dict:
        return {"width": int(self.options["base_channels"]), "resolution": self.resolution}

    def adopt_model_config(self, architecture: str, config: dict) -> None:
        if architecture != self.architecture:
            raise GanStudioError(f"recipe fast-style trains fast-style models; the given model "
                                 f"is {architecture}")
        self.options["base_channels"] = int(config.get("width", self.options["base_channels"]))
        self.validate()

    def make_optimizers(self, nets):
        betas = (float(self.options["beta1"]), float(self.options["beta2"]))
        return {"T": torch.optim.Adam(nets["translator"].parameters(),
                                      lr=float(self.options["lr"]), betas=betas)}

    def phases(self):
        return (Phase("T", "T", ("translator",)),)

    def features(self, device):
        if self._features is None or next(self._features.buffers(), torch.empty(0, device=device)
                                          ).device != torch.device(device):
            self._features = load_style_features(self.options["features"], device)
        return self._features

    def loss(self, phase, ctx: StepContext, real, labels):
        if real.shape[1] != 6:
            raise GanStudioError("fast-style trains on content images plus one style image: "
                                 "make the dataset with pairing 'style' (a content/ folder "
                                 "and style.png)")
        x01, s01 = (real[:, :3] + 1) / 2, (real[:1, 3:] + 1) / 2
        feats = self.features(ctx.device)
        net = ctx.nets["translator"]
        y01 = net.forward_255(x01 * 255) / 255
        with torch.no_grad():
            targets = [gram(f) for f in feats(s01)[0]]
            content_target = feats(x01)[1]
        maps, content = feats(y01)
        s_loss = style_loss(maps, targets)
        c_loss = content_loss(content, content_target)
        tv = (y01[..., 1:, :] - y01[..., :-1, :]).abs().mean() + \
            (y01[..., 1:] - y01[..., :-1]).abs().mean()
        o = self.options
        loss = float(o["style_weight"]) * s_loss + float(o["content_weight"]) * c_loss + \
            float(o["tv_weight"]) * tv
        return loss, {"loss": loss.detach(), "style": s_loss.detach(),
                      "content": c_loss.detach()}

    @torch.no_grad()
    def sample_grid(self, trainer) -> torch.Tensor:
        """Rows of content | stylised for fixed training images, and the style image."""
        n = min(8, len(trainer.dataset))
        picks = torch.linspace(0, len(trainer.dataset) - 1, n).round().long()
        batch = trainer.dataset.batch(picks, None, trainer.device)[0]
        x, style = batch[:, :3], batch[:1, 3:]
        y = trainer.ema.module(x)
        rows = torch.cat([to_unit_hwc(x), to_unit_hwc(y)], 2).cpu()
        style_row = torch.cat([to_unit_hwc(style), torch.ones_like(to_unit_hwc(style))], 2)
        return image_grid(torch.cat([style_row.cpu(), rows]), cols=3)

    def preview_grids(self, trainer) -> dict[str, torch.Tensor]:
        return {"samples": self.sample_grid(trainer)}
