"""Reading and writing checkpoints. Nothing here ever executes code stored in a file."""

from .detect import detect_format
from .loader import load_model
from .native import save_model

__all__ = ["detect_format", "load_model", "save_model"]
