"""GAN Studio's model library: pure PyTorch, never imports ComfyUI.

Importable as the pack's subpackage and as a top-level package for the headless CLI.
"""

from .errors import CapabilityError, CheckpointError, GanStudioError
from .formats import detect_format, load_model, save_model
from .latent import LatentBatch, seeded_normal
from .model import GenerativeModel, generate_in_chunks, to_unit_hwc

__all__ = [
    "CapabilityError", "CheckpointError", "GanStudioError", "GenerativeModel", "LatentBatch",
    "detect_format", "generate_in_chunks", "load_model", "save_model", "seeded_normal",
    "to_unit_hwc",
]
