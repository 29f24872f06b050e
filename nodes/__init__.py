"""ComfyUI nodes: thin V3 adapters over the gan_models library.

Each module groups the nodes of one job and lists them in its NODES; add a new module to
NODE_MODULES to register its nodes.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import folder_paths
from comfy_api.v0_0_2 import ComfyExtension, io

from ..gan_models.training.shapes import write_shapes_folder
from . import (
    condition,
    edit,
    genes,
    image_to_image,
    interpolate,
    latent_batch,
    latent_io,
    load,
    project,
    sample,
    style,
    text,
    train,
    translate,
    vae,
)

NODE_MODULES = (load, sample, condition, genes, text, style, interpolate, latent_batch, latent_io,
                translate, image_to_image, train, vae, project, edit)
MODEL_FOLDER = load.MODEL_FOLDER
PACK_ROOT = Path(__file__).resolve().parent.parent
PACK_MODELS = PACK_ROOT / "models"  # models shipped with the pack
PACK_EXAMPLES = PACK_ROOT / "example_inputs"  # input images the example workflows start from


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
    exts.update({".safetensors", ".pkl", ".pt", ".pth", ".bin"})  # .bin: BigGAN releases
    edit.register_folder(edit.DIRECTIONS_FOLDER)  # models/gan_directions
    project.register_folders()  # models/gan_perceptual


EXAMPLE_DATASET = "gan_studio_shapes"  # the training workflows' dataset folder


def install_example_inputs() -> None:
    """Put the example workflows' inputs into ComfyUI's input folder (only what is missing;
    never overwrites): the shipped example images, and a small procedural class-per-folder
    dataset of shapes for the training workflows. So workflows that start from files run as
    shipped."""
    target = Path(folder_paths.get_input_directory())
    if not (target / EXAMPLE_DATASET).exists():
        try:
            write_shapes_folder(target / EXAMPLE_DATASET, per_class=16, size=32)
        except OSError:  # a read-only input folder must not stop the pack from loading
            pass
    for source in PACK_EXAMPLES.glob("gan_studio_*.png"):
        dest = target / source.name
        if not dest.exists():
            try:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, dest)
            except OSError:  # a read-only input folder must not stop the pack from loading
                pass


class GanStudioExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return all_nodes()
