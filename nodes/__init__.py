"""ComfyUI nodes: thin V3 adapters over the gan_models library."""

from __future__ import annotations

import os

import folder_paths
from comfy_api.v0_0_2 import ComfyExtension, io

from .condition import ClassCondition
from .load import MODEL_FOLDER, LoadGANModel, SaveGANModel
from .sample import GenerateImages, SampleLatents

NODES: list[type[io.ComfyNode]] = [
    LoadGANModel, SaveGANModel, SampleLatents, ClassCondition, GenerateImages,
]


def register_model_folders() -> None:
    """Make ComfyUI/models/gan (and any extra_model_paths 'gan' entries) a model folder."""
    default = os.path.join(folder_paths.models_dir, MODEL_FOLDER)
    os.makedirs(default, exist_ok=True)
    folder_paths.add_model_folder_path(MODEL_FOLDER, default, is_default=True)
    paths, exts = folder_paths.folder_names_and_paths[MODEL_FOLDER]
    exts.update({".safetensors", ".pkl", ".pt", ".pth"})


class GanStudioExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)
