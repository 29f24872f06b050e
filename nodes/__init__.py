"""ComfyUI nodes: thin V3 adapters over the gan_models library.

Each module groups the nodes of one job and lists them in its NODES; add a new module to
NODE_MODULES to register its nodes.
"""

from __future__ import annotations

import os
from pathlib import Path

import folder_paths
from comfy_api.v0_0_2 import ComfyExtension, io

from . import condition, interpolate, latent_batch, latent_io, load, sample, style, train, vae

NODE_MODULES = (load, sample, condition, style, interpolate, latent_batch, latent_io, train, vae)
MODEL_FOLDER = load.MODEL_FOLDER
PACK_MODELS = Path(__file__).resolve().parent.parent / "models"  # models shipped with the pack


def all_nodes() -> list[type[io.ComfyNode]]:
    return [node for module in NODE_MODULES for node in module.NODES]


def register_model_folders() -> None:
    """Register ComfyUI/models/gan (first) and the pack's own models/gan as model folders."""
    default = os.path.join(folder_paths.models_dir, MODEL_FOLDER)
    os.makedirs(default, exist_ok=True)
    folder_paths.add_model_folder_path(MODEL_FOLDER, default, is_default=True)
    shipped = PACK_MODELS / MODEL_FOLDER
    if shipped.is_dir():  # listed after the user's folder: their files win on a name clash
        folder_paths.add_model_folder_path(MODEL_FOLDER, str(shipped))
    _paths, exts = folder_paths.folder_names_and_paths[MODEL_FOLDER]
    exts.update({".safetensors", ".pkl", ".pt", ".pth"})


class GanStudioExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return all_nodes()
