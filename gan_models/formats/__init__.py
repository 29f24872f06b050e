"""Reading and writing checkpoints. Nothing here ever executes code stored in a file.

Each format module registers an importer (importers.py); the import list below is the
registry's table of contents: a new format is one module plus one name here.
"""

# Each import registers that module's importer.
from . import (  # noqa: F401
    biggan_pretrained,
    fast_style_pth,
    native,
    nvlabs,
    pgan_zoo,
    pix2pix_pth,
    rosinality,
)
from .detect import detect_format
from .importers import importers
from .loader import load_model
from .native import save_model

__all__ = ["detect_format", "importers", "load_model", "save_model"]
