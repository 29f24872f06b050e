"""Keeping latents and frames: Save/Load Latents (.safetensors) and PNGs that remember their
latent, so any saved frame can be traced back and regenerated."""

from __future__ import annotations

import hashlib
import json
import os

import folder_paths
import numpy as np
from comfy.cli_args import args
from comfy_api.v0_0_2 import io, ui
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from ..gan_models.latent_files import PNG_KEY, frame_record, load_latents, read_latent_metadata
from ..gan_models.latent_files import save_latents as write_latents
from .common import (
    CATEGORY,
    GanLatent,
    GanModel,
    NodeError,
    expect_latents,
    output_path,
    user_errors,
)

GROUP = f"{CATEGORY}/latent"
EXTENSION = ".safetensors"
OUTPUT_TAG = " [output]"


class SaveLatents(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="GANStudioSaveLatents",
            display_name="Save Latents",
            category=GROUP,
            description="Saves latents to the output folder as .safetensors with their model "
                        "id, space, seeds, classes and truncation, to reuse them later with Load "
                        "Latents (keyframes, favourite samples, whole animations).",
            is_output_node=True,
            inputs=[
                GanLatent.Input("latents", tooltip="The latents to keep."),
                io.String.Input("filename_prefix", default="gan_studio/latents",
                                tooltip="Name (and optional sub-folder) inside the output "
                                        "folder; a counter is appended."),
            ],
            outputs=[io.String.Output(display_name="filename",
                                      tooltip="The saved file, as Load Latents lists it.")],
        )

    @classmethod
    @user_errors("Save Latents")
    def execute(cls, latents, filename_prefix) -> io.NodeOutput:
        latents = expect_latents(latents, "Save Latents")
        folder, name, counter, subfolder, _ = output_path("Save Latents", filename_prefix,
                                                         "latents")
        file = f"{name}_{counter:05}_{EXTENSION}"
        write_latents(latents, os.path.join(folder, file))
        listed = os.path.join(subfolder, file).replace(os.sep, "/") + OUTPUT_TAG
        return io.NodeOutput(listed, ui={"text": [listed]})


class LoadLatents(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="GANStudioLoadLatents",
            display_name="Load Latents",
            category=GROUP,
            description="Loads latents saved by Save Latents: files in the input folder, and "
                        "(marked [output]) those saved in the output folder.",
            inputs=[
                io.Combo.Input("latent_file", options=list_latent_files(),
                               tooltip="A GAN Studio latent file (.safetensors) from the input "
                                       "folder, or one saved to the output folder."),
            ],
            outputs=[GanLatent.Output(display_name="latents",
                                      tooltip="The saved latents with their seeds and classes.")],
        )

    @classmethod
    @user_errors("Load Latents")
    def execute(cls, latent_file) -> io.NodeOutput:
        return io.NodeOutput(load_latents(resolve(latent_file)))

    @classmethod
    def fingerprint_inputs(cls, latent_file):
        try:
            with open(resolve(latent_file), "rb") as f:
                return hashlib.sha256(f.read()).hexdigest()
        except (OSError, NodeError):
            return latent_file

    @classmethod
    def validate_inputs(cls, latent_file):
        try:
            path = resolve(latent_file)
        except NodeError as exc:
            return str(exc)
        if not os.path.isfile(path):
            return f"Load Latents: file not found: {latent_file}"
        return True


def list_latent_files() -> list[str]:
    """GAN Studio latent files in input/ (plain names) and output/ (tagged), sorted."""
    found = []
    for base, tag in ((folder_paths.get_input_directory(), ""),
                      (folder_paths.get_output_directory(), OUTPUT_TAG)):
        names = []
        for root, _dirs, files in os.walk(base, followlinks=True):
            for f in files:
                path = os.path.join(root, f)
                if f.endswith(EXTENSION) and read_latent_metadata(path) is not None:
                    names.append(os.path.relpath(path, base).replace(os.sep, "/") + tag)
        found += sorted(names)
    return found


def resolve(name: str) -> str:
    """Full path of a listed file name, refusing names that lead outside their folder."""
    rel, base = folder_paths.annotated_filepath(name)
    base = os.path.abspath(base or folder_paths.get_input_directory())
    path = os.path.abspath(os.path.join(base, rel))
    if os.path.commonpath((base, path)) != base:
        raise NodeError(f"Load Latents: {name!r} points outside the input/output folders")
    return path


class SaveImagesWithLatents(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="GANStudioSaveImages",
            display_name="Save Images (GAN Studio)",
            category=GROUP,
            description="Saves PNGs to the output folder like Save Image, and writes into each "
                        "one the latent that made it (values, seed, classes, truncation, model) "
                        "so any frame can be regenerated. Adds about 3 KB per image for a 512-d "
                        "z or w, about 50 KB for an 18x512 w+.",
            is_output_node=True,
            inputs=[
                io.Image.Input("images", tooltip="The images to save."),
                io.String.Input("filename_prefix", default="gan_studio/frame",
                                tooltip="Name (and optional sub-folder) inside the output "
                                        "folder; a counter is appended."),
                GanLatent.Input("latents", optional=True,
                                tooltip="The latents the images were generated from (one per "
                                        "image, in the same order)."),
                GanModel.Input("model", optional=True,
                               tooltip="The model, to record its description with each image."),
            ],
            outputs=[],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo],
        )

    @classmethod
    @user_errors("Save Images (GAN Studio)")
    def execute(cls, images, filename_prefix, latents=None, model=None) -> io.NodeOutput:
        name = "Save Images (GAN Studio)"
        if latents is not None:
            latents = expect_latents(latents, name)
            if len(latents) != len(images):
                raise NodeError(f"{name}: {len(latents)} latents for {len(images)} images; "
                                "connect the latents the images were generated from")
        model_name = model.describe() if model is not None else None
        folder, file_name, counter, subfolder, _ = output_path(
            name, filename_prefix, "frame", images.shape[2], images.shape[1])
        results = []
        for i, image in enumerate(images):
            info = _workflow_pnginfo(cls.hidden)
            if latents is not None:
                info.add_text(PNG_KEY, json.dumps(frame_record(latents, i, model_name)))
            arr = np.clip(image.float().cpu().numpy() * 255.0, 0, 255).round().astype(np.uint8)
            file = f"{file_name.replace('%batch_num%', str(i))}_{counter:05}_.png"
            Image.fromarray(arr).save(os.path.join(folder, file), pnginfo=info, compress_level=4)
            results.append(ui.SavedResult(file, subfolder, io.FolderType.output))
            counter += 1
        return io.NodeOutput(ui=ui.SavedImages(results))


def _workflow_pnginfo(hidden) -> PngInfo:
    """The prompt and workflow, as core Save Image writes them (unless metadata is off)."""
    info = PngInfo()
    if args.disable_metadata or hidden is None:
        return info
    if hidden.prompt is not None:
        info.add_text("prompt", json.dumps(hidden.prompt))
    for key, value in (hidden.extra_pnginfo or {}).items():
        info.add_text(key, json.dumps(value))
    return info


NODES = [SaveLatents, LoadLatents, SaveImagesWithLatents]
