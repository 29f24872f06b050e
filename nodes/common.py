"""What every GAN Studio node shares: socket types, error wording, device placement, progress.

Nodes are thin: they translate ComfyUI inputs into library calls (`gan_models`) and back.
"""

from __future__ import annotations

import functools
import weakref

import comfy.model_management as mm
import comfy.model_patcher
import comfy.utils
import torch
from comfy_api.v0_0_2 import io
from PIL import Image

from ..gan_models import GanStudioError, GenerativeModel, LatentBatch

CATEGORY = "GAN Studio"
GanModel = io.Custom("GAN_MODEL")
GanLatent = io.Custom("GAN_LATENT")

MAX_BATCH = 4096


class NodeError(GanStudioError):
    """A user-facing error already prefixed with the node's display name."""


def user_errors(display_name: str):
    """Prefix library errors with the node's name, so the UI says which node failed and why."""

    def deco(execute):
        @functools.wraps(execute)
        def wrapper(cls, *args, **kwargs):
            try:
                return execute(cls, *args, **kwargs)
            except NodeError:
                raise
            except GanStudioError as exc:
                raise NodeError(f"{display_name}: {exc}") from exc

        return wrapper

    return deco


def expect_model(value, node: str) -> GenerativeModel:
    if not isinstance(value, GenerativeModel):
        raise NodeError(f"{node}: expected a GAN_MODEL, got {type(value).__name__}")
    return value


def expect_latents(value, node: str) -> LatentBatch:
    if not isinstance(value, LatentBatch):
        raise NodeError(f"{node}: expected GAN_LATENT, got {type(value).__name__}")
    return value


# --- device placement through ComfyUI's model management -------------------------------
_patchers: "weakref.WeakKeyDictionary[GenerativeModel, comfy.model_patcher.ModelPatcher]" = (
    weakref.WeakKeyDictionary())


def place_for_inference(model: GenerativeModel, activation_bytes: int = 0) -> torch.device:
    """Load the model's inference networks on ComfyUI's device (it may offload them later)."""
    patcher = _patchers.get(model)
    if patcher is None:
        inference = torch.nn.ModuleDict(
            {k: v for k, v in model.networks.items() if k in ("generator", "encoder")})
        patcher = comfy.model_patcher.ModelPatcher(
            inference, load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device(),
            size=sum(t.numel() * t.element_size() for t in inference.state_dict().values()))
        _patchers[model] = patcher
    # Our layers are plain torch modules: load them whole (no partial/low-VRAM casting).
    mm.load_models_gpu([patcher], memory_required=activation_bytes, force_full_load=True)
    return model.device


def to_output_device(images: torch.Tensor) -> torch.Tensor:
    return images.to(mm.intermediate_device())


# --- progress ---------------------------------------------------------------------------
class Progress:
    """ProgressBar with previews; each update is also an interruption point."""

    def __init__(self, total: int, preview_size: int = 512):
        self.total = max(int(total), 1)
        self.bar = comfy.utils.ProgressBar(self.total)
        self.preview_size = preview_size

    def update(self, done: int, preview: torch.Tensor | None = None) -> None:
        mm.throw_exception_if_processing_interrupted()
        shown = None
        if preview is not None and preview.numel():
            shown = ("JPEG", to_pil(preview[-1]), self.preview_size)
        self.bar.update_absolute(done, self.total, shown)


def to_pil(image_hwc: torch.Tensor) -> Image.Image:
    arr = (image_hwc.detach().float().clamp(0, 1) * 255).round().byte().cpu().numpy()
    return Image.fromarray(arr)
