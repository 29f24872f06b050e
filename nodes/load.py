"""Loading and saving models from ComfyUI's models/gan folder."""

from __future__ import annotations

import logging
from pathlib import Path

import folder_paths
from comfy_api.v0_0_2 import io

from ..gan_models import load_model, save_model
from .common import CATEGORY, GanModel, NodeError, check_prefix, expect_model, user_errors

MODEL_FOLDER = "gan"
log = logging.getLogger("gan_studio")


class LoadGANModel(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="GANStudioLoadModel",
            display_name="Load GAN Model",
            category=f"{CATEGORY}/load",
            description="Loads a GAN or VAE checkpoint from ComfyUI/models/gan: GAN Studio "
                        ".safetensors, NVlabs StyleGAN2-ADA / StyleGAN3 network pickles (.pkl) "
                        "and rosinality stylegan2-pytorch checkpoints (.pt). Files are read as "
                        "data only: no code inside a file is ever run.",
            inputs=[
                io.Combo.Input("ckpt_name", options=folder_paths.get_filename_list(MODEL_FOLDER),
                               tooltip="Checkpoint file in ComfyUI/models/gan (GAN Studio "
                                       ".safetensors, NVlabs .pkl or rosinality .pt; the "
                                       "format is detected from the content)."),
            ],
            outputs=[GanModel.Output(display_name="model",
                                     tooltip="The loaded model, ready for sampling nodes.")],
        )

    @classmethod
    @user_errors("Load GAN Model")
    def execute(cls, ckpt_name: str) -> io.NodeOutput:
        path = folder_paths.get_full_path(MODEL_FOLDER, ckpt_name)
        if path is None:
            raise NodeError(f"Load GAN Model: {ckpt_name!r} is not in the models/gan folder")
        model = load_model(path)
        log.info("GAN Studio: loaded %s (%s)", ckpt_name, model.describe())
        return io.NodeOutput(model)


class SaveGANModel(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="GANStudioSaveModel",
            display_name="Save GAN Model",
            category=f"{CATEGORY}/load",
            description="Saves a model to ComfyUI/models/gan in GAN Studio's safetensors format "
                        "(weights + metadata, no pickle). Never overwrites an existing file.",
            is_output_node=True,
            inputs=[
                GanModel.Input("model", tooltip="The model to save."),
                io.String.Input("filename_prefix", default="gan_studio/model",
                                tooltip="Name (and optional sub-folder) inside models/gan; a "
                                        "counter is appended."),
                io.Boolean.Input("include_discriminator", default=True,
                                 tooltip="Keep the discriminator (needed to fine-tune later). "
                                         "Off gives a smaller file for generation only."),
            ],
            outputs=[io.String.Output(display_name="path",
                                      tooltip="Name of the saved file inside models/gan.")],
        )

    @classmethod
    @user_errors("Save GAN Model")
    def execute(cls, model, filename_prefix: str, include_discriminator: bool) -> io.NodeOutput:
        model = expect_model(model, "Save GAN Model")
        root = Path(folder_paths.get_folder_paths(MODEL_FOLDER)[0]).resolve()
        prefix = Path(check_prefix("Save GAN Model", filename_prefix, "models/gan folder")
                      or "model")
        target_dir = (root / prefix.parent).resolve()
        if root != target_dir and root not in target_dir.parents:
            raise NodeError(f"Save GAN Model: {filename_prefix!r} points outside models/gan")
        target_dir.mkdir(parents=True, exist_ok=True)
        counter = 1
        while (path := target_dir / f"{prefix.name}_{counter:05d}.safetensors").exists():
            counter += 1
        roles = tuple(r for r in model.networks if include_discriminator or r != "discriminator")
        save_model(model, path, roles=roles)
        relative = path.relative_to(root).as_posix()
        log.info("GAN Studio: saved %s", path)
        return io.NodeOutput(relative, ui={"text": [relative]})


NODES = [LoadGANModel, SaveGANModel]
