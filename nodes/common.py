"""What every GAN Studio node shares: socket types, error wording, device placement, progress.

Nodes are thin: they translate ComfyUI inputs into library calls (`gan_models`) and back.
"""

from __future__ import annotations

import functools
import os
import re
import weakref

import comfy.model_management as mm
import comfy.model_patcher
import comfy.utils
import folder_paths
import torch
from comfy_api.v0_0_2 import io
from PIL import Image

from ..gan_models import GanStudioError, GenerativeModel, LatentBatch
from ..gan_models.checks import is_finite_number, require_finite
from ..gan_models.memory import Peak, ensure_fits, format_bytes

CATEGORY = "GAN Studio"
GanModel = io.Custom("GAN_MODEL")
GanLatent = io.Custom("GAN_LATENT")

MAX_BATCH = 4096
MAX_NAME_BYTES = 200  # longest file or folder name in a filename_prefix (systems allow 255)


class NodeError(GanStudioError):
    """A user-facing error already prefixed with the node's display name."""


def user_errors(display_name: str):
    """The one error path of every node's execute: what a user can get wrong reaches them as
    "<Node Name>: what is wrong, what to do".

    Before the node runs, every float input is checked to be a finite number (NaN passes
    ComfyUI's min/max checks) and every GAN_LATENT input to hold finite values. Library
    errors (GanStudioError) get the node's name in front; running out of memory becomes
    "not enough memory ...; use a smaller batch". Any other exception is a bug and is left
    as it is, so it shows up in tests.
    """

    def deco(execute):
        @functools.wraps(execute)
        def wrapper(cls, *args, **kwargs):
            try:
                check_numbers(cls, display_name, kwargs)
                return execute(cls, *args, **kwargs)
            except NodeError:
                raise
            except GanStudioError as exc:
                raise NodeError(f"{display_name}: {exc}") from exc
            except (MemoryError, RuntimeError) as exc:
                message = out_of_memory_message(exc)
                if message is None:
                    raise
                raise NodeError(f"{display_name}: {message}") from exc

        wrapper.display_name = display_name  # the sweep checks it matches the schema's
        return wrapper

    return deco


def check_numbers(cls, display_name: str, inputs: dict) -> None:
    """Refuse NaN/inf in float inputs (with the input's allowed range) and in latents."""
    for key, value in inputs.items():
        if isinstance(value, float) and not is_finite_number(value):
            low, high = float_range(cls, key)
            hint = (f"; use a value between {low:g} and {high:g}"
                    if low is not None and high is not None else "; use a finite number")
            raise NodeError(f"{display_name}: {key} is not a finite number ({value!r}){hint}")
        if isinstance(value, LatentBatch):
            for part, tensor in (("values", value.values), ("class/text weights", value.labels)):
                if isinstance(tensor, torch.Tensor):
                    try:
                        require_finite(tensor, f"the {part} of {key}",
                                       "check the node or file they come from")
                    except GanStudioError as exc:
                        raise NodeError(f"{display_name}: {exc}") from None


@functools.cache
def _float_ranges(cls) -> dict:
    return {inp.id: (inp.min, inp.max) for inp in cls.define_schema().inputs
            if isinstance(inp, io.Float.Input)}


def float_range(cls, key: str) -> tuple[float | None, float | None]:
    """(min, max) of a node's Float input, (None, None) when unknown."""
    return _float_ranges(cls).get(key, (None, None))


_ALLOC_BYTES = re.compile(r"(?:tried to allocate|allocate)\s+(\d+)\s*bytes", re.I)
_ALLOC_SIZE = re.compile(r"tried to allocate\s+([\d.]+\s*[KMGT]i?B)", re.I)


def out_of_memory_message(exc: BaseException) -> str | None:
    """The user-facing message for running out of memory, or None when `exc` is not that.
    A GPU out-of-memory also frees ComfyUI's loaded models, as the executor would."""
    text = str(exc)
    gpu = isinstance(exc, getattr(torch, "OutOfMemoryError", ()))
    if not (gpu or isinstance(exc, MemoryError) or "DefaultCPUAllocator" in text
            or "alloc_cpu" in text or "can't allocate memory" in text):
        return None
    size = ""
    if match := _ALLOC_BYTES.search(text):
        size = f" (it needed {format_bytes(int(match.group(1)))} more)"
    elif match := _ALLOC_SIZE.search(text):
        size = f" (it needed {match.group(1)} more)"
    if gpu:
        mm.unload_all_models()
        mm.soft_empty_cache()
        return f"not enough GPU memory{size}; use a smaller batch or chunk size"
    return f"not enough memory{size}; use a smaller batch"


# --- memory estimates -------------------------------------------------------------------
def ensure_peak_fits(peak: Peak, what: str, advice: str = "use a smaller batch") -> int:
    """Refuse a job whose peak would take over half the free main memory (before any of it
    is allocated); activations count there when the network runs on the CPU."""
    on_host = mm.get_torch_device().type == "cpu"
    return ensure_fits(peak, what, mm.get_free_memory(torch.device("cpu")), on_host, advice)


# --- file names from users --------------------------------------------------------------
def check_prefix(node: str, prefix: str, folder: str = "output folder") -> str:
    """A filename_prefix that stays inside `folder`: no NUL or control characters, not an
    absolute path, no '..' (the path itself is never echoed: it may name server folders)."""
    prefix = str(prefix).strip()
    if any(ord(ch) < 32 for ch in prefix):
        raise NodeError(f"{node}: filename_prefix holds a control character (e.g. a NUL "
                        f"byte); use letters, digits, '_', '-' and '/' for sub-folders")
    if os.path.isabs(prefix) or prefix.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", prefix):
        raise NodeError(f"{node}: filename_prefix is an absolute path; give a name inside the "
                        f"{folder}, e.g. gan_studio/name")
    parts = re.split(r"[\\/]", prefix)
    if ".." in parts:
        raise NodeError(f"{node}: filename_prefix {prefix!r} points outside the {folder} "
                        "('..'); give a name inside it, e.g. gan_studio/name")
    if any(len(part.encode()) > MAX_NAME_BYTES for part in parts):
        raise NodeError(f"{node}: filename_prefix has a name longer than {MAX_NAME_BYTES} "
                        "bytes; use a shorter one")
    return prefix


def output_path(node: str, prefix: str, default: str, width: int = 0, height: int = 0):
    """folder_paths.get_save_image_path for a checked prefix (empty -> default): (folder,
    name, counter, subfolder, prefix), refused in one line when it cannot be used."""
    prefix = check_prefix(node, prefix) or default
    try:
        return folder_paths.get_save_image_path(prefix, folder_paths.get_output_directory(),
                                                width, height)
    except OSError as exc:
        raise NodeError(f"{node}: cannot save as {prefix!r} ({exc.strerror}); use another "
                        "filename_prefix") from None
    except Exception as exc:  # ComfyUI raises a bare Exception for a folder outside output/
        if "outside the output folder" not in str(exc):
            raise
        raise NodeError(f"{node}: filename_prefix {prefix!r} points outside the output "
                        "folder; give a name inside it") from None


def expect_model(value, node: str, needs: str | None = None) -> GenerativeModel:
    """The GAN_MODEL input, checked for the capability the node needs (generate, translate,
    encode): a model without it is refused in one line naming the node and the model."""
    if not isinstance(value, GenerativeModel):
        raise NodeError(f"{node}: expected a GAN_MODEL, got {type(value).__name__}")
    if needs is not None:
        try:
            value.require(needs)
        except GanStudioError as exc:
            raise NodeError(f"{node}: {exc}") from exc
    return value


def expect_latents(value, node: str) -> LatentBatch:
    if not isinstance(value, LatentBatch):
        raise NodeError(f"{node}: expected GAN_LATENT, got {type(value).__name__}")
    return value


# --- device placement through ComfyUI's model management -------------------------------
INFERENCE_ROLES = ("generator", "encoder", "translator", "text_encoder")  # not discriminators
_patchers: "weakref.WeakKeyDictionary[GenerativeModel, comfy.model_patcher.ModelPatcher]" = (
    weakref.WeakKeyDictionary())


def place_for_inference(model: GenerativeModel, activation_bytes: int = 0) -> torch.device:
    """Load the model's inference networks on ComfyUI's device (it may offload them later)."""
    patcher = _patchers.get(model)
    if patcher is None:
        inference = torch.nn.ModuleDict(
            {k: v for k, v in model.networks.items() if k in INFERENCE_ROLES})
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
