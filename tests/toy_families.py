"""Two toy families that prove the capability contract before real ones arrive: a 2-layer
conv image translator and a text-conditioned generator with its own word encoder.

They are registered under test-only names in every copy of the library loaded in this
process (the tests' top-level `gan_models` and, in engine tests, the pack's own copy that
ComfyUI imported from custom_nodes/), so files written here load through the same loader
and run through the nodes that ask for their capability.
"""

from __future__ import annotations

import importlib
import sys

import torch
from torch import nn

TRANSLATOR = "toy-translator"
TEXT = "toy-text"
TOY_VOCAB = ["red", "green", "blue", "circle", "square", "triangle", "smiling", "cat"]


class ToyTranslator(nn.Module):
    """Down by 2, up by 2: inputs need even sides (size_multiple 2)."""

    in_channels = out_channels = 3
    size_multiple = 2

    def __init__(self, resolution: int = 32, width: int = 8):
        super().__init__()
        self.img_resolution = resolution
        self.down = nn.Conv2d(3, width, 4, stride=2, padding=1)
        self.up = nn.ConvTranspose2d(width, 3, 4, stride=2, padding=1)

    def forward(self, x):
        return torch.tanh(self.up(torch.relu(self.down(x))) + x)


class ToyTextGenerator(nn.Module):
    img_channels = 3

    def __init__(self, z_dim: int = 8, c_dim: int = 8, resolution: int = 16):
        super().__init__()
        self.z_dim, self.c_dim, self.img_resolution = z_dim, c_dim, resolution
        self.fc = nn.Linear(z_dim + c_dim, 3 * resolution * resolution)

    def forward(self, z, c):
        x = self.fc(torch.cat([z, c], 1))
        return torch.tanh(x.view(-1, 3, self.img_resolution, self.img_resolution))


def register_toys(library_name: str = "gan_models") -> None:
    """Register both toys in the library copy loaded as `library_name` (idempotent). The
    text encoder comes from that same copy, so its errors are that copy's GanStudioError."""
    registry = sys.modules[f"{library_name}.registry"]
    encoder_cls = importlib.import_module(
        f"{library_name}.architectures.text_encoder").BagOfWordsEncoder

    def build_translator(config: dict) -> dict[str, nn.Module]:
        return {"translator": ToyTranslator(**config)}

    def build_text(config: dict) -> dict[str, nn.Module]:
        return {"generator": ToyTextGenerator(z_dim=8, c_dim=8, resolution=16),
                "text_encoder": encoder_cls(config.get("vocab", TOY_VOCAB), embed_dim=8,
                                            word_dim=8)}

    if TRANSLATOR not in registry.names():
        registry.register(TRANSLATOR)(build_translator)
        registry.register(TEXT)(build_text)


def pack_library_names() -> list[str]:
    """Names of every copy of the library loaded in this process."""
    return sorted(name[:-len(".registry")] for name in sys.modules
                  if name.endswith("gan_models.registry"))


def make_translator(seed: int = 0):
    import gan_models

    torch.manual_seed(seed)
    return gan_models.GenerativeModel.create(TRANSLATOR, {"resolution": 32, "width": 8})


def make_text_model(seed: int = 0):
    import gan_models

    torch.manual_seed(seed)
    model = gan_models.GenerativeModel.create(TEXT, {"vocab": TOY_VOCAB})
    with torch.no_grad():  # a prompt should visibly change a random-init model's images
        model.networks["text_encoder"].project.weight.mul_(4)
    return model
