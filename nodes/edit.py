"""Editing nodes: find latent directions, apply them with strengths, explore them as a
labelled grid, and keep them in files. (Projecting images into a model: project.py.)"""

from __future__ import annotations

import os

import folder_paths
from comfy_api.v0_0_2 import io

from ..gan_models.editing.directions import (
    METHODS,
    class_directions,
    edit_values,
    explorer_latents,
    ganspace,
    group_direction,
    load_directions,
    save_directions,
    sefa,
)
from ..gan_models.editing.sheet import labelled_grid
from ..gan_models.latent import MAX_SEED, parse_indices
from ..gan_models.latent.grammar import parse_float_list
from ..gan_models.memory import Peak, activation_bytes, image_bytes, images_what
from ..gan_models.model import generate_in_chunks
from ..gan_models.motion.style_mixing import PRESETS, preset_layers
from .common import (
    CATEGORY,
    GanLatent,
    GanModel,
    NodeError,
    Progress,
    check_prefix,
    ensure_peak_fits,
    expect_latents,
    expect_model,
    place_for_inference,
    to_output_device,
    user_errors,
)

GROUP = f"{CATEGORY}/edit"
GanDirections = io.Custom("GAN_DIRECTIONS")
DIRECTIONS_FOLDER = "gan_directions"
MAX_STRENGTHS = 64
OWN_LAYERS = "as found"
LAYER_CHOICES = ("all", *PRESETS, "custom")


def register_folder(name: str) -> None:
    """ComfyUI/models/<name>, listed in dropdowns (directions here, feature networks for
    the projection's perceptual loss in project.py)."""
    path = os.path.join(folder_paths.models_dir, name)
    os.makedirs(path, exist_ok=True)
    folder_paths.add_model_folder_path(name, path, is_default=True)
    folder_paths.folder_names_and_paths[name][1].update({".safetensors", ".pt", ".pth"})


def files_in(folder: str) -> list[str]:
    try:
        return folder_paths.get_filename_list(folder)
    except KeyError:  # not registered (the pack's entry point registers it)
        return []


def _layer_inputs(default: str, own: bool = False) -> list:
    choices = [OWN_LAYERS, *LAYER_CHOICES] if own else list(LAYER_CHOICES)
    return [
        io.Combo.Input("layers", options=choices, default=default,
                       tooltip="StyleGAN style layers to edit: "
                               + ("as found = the range the directions were found on; "
                                  if own else "")
                               + "all, coarse (0-3: shape, layout), middle (4-7: features), "
                                 "fine (8+: colour, texture) or custom (layer_start.."
                                 "layer_end). Other models ignore it."),
        io.Int.Input("layer_start", default=0, min=0, max=64,
                     tooltip="custom: the first style layer."),
        io.Int.Input("layer_end", default=4, min=1, max=64,
                     tooltip="custom: the layer after the last one."),
    ]


def _layers(node: str, model, choice: str, start: int, end: int):
    """(start, end) style rows, or None for all / the directions' own range."""
    if not model.has_mapping or choice in ("all", OWN_LAYERS):
        return None
    if choice == "custom":
        if start >= end:
            raise NodeError(f"{node}: layer_start {start} must be below layer_end {end}")
        return start, end
    lo, hi = preset_layers(choice, model.num_ws)
    if lo >= hi:
        raise NodeError(f"{node}: the {choice} layers are empty for a model with "
                        f"{model.num_ws} style layers")
    return lo, hi


def _expect_directions(value, node: str):
    from ..gan_models.editing.directions import Directions

    if not isinstance(value, Directions):
        raise NodeError(f"{node}: expected GAN_DIRECTIONS, got {type(value).__name__}")
    return value


def _strengths(text: str) -> list[float]:
    return parse_float_list(text, "strength", "strengths", -1000, 1000, MAX_STRENGTHS,
                            "-3, 0, 3")


# --- directions ------------------------------------------------------------------------------
class FindDirections(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="GANStudioFindDirections",
            display_name="Find Directions",
            category=GROUP,
            description="Finds meaningful directions in a model's latent space: sefa "
                        "(closed-form, from the weights; any StyleGAN, DCGAN or VAE), "
                        "ganspace (principal components of style vectors; StyleGAN), classes "
                        "(towards each class; conditional StyleGAN) or groups (from one set "
                        "of latents towards another). Explore them with Direction Explorer.",
            inputs=[
                GanModel.Input("model", tooltip="The model to analyse."),
                io.Combo.Input("method", options=list(METHODS), default="sefa",
                               tooltip="sefa: instant, no sampling. ganspace: PCA of sampled "
                                       "w. classes: one direction per class. groups: "
                                       "from group_away towards group_towards."),
                io.Int.Input("count", default=10, min=1, max=512,
                             tooltip="How many directions to keep (strongest first; sefa "
                                     "and ganspace)."),
                *_layer_inputs("all"),
                io.Int.Input("samples", default=10000, min=100, max=1_000_000,
                             tooltip="ganspace and classes: latents sampled for the "
                                     "statistics."),
                io.Int.Input("seed", default=0, min=0, max=MAX_SEED,
                             tooltip="Seed of the sampled latents (same seed, same "
                                     "directions)."),
                io.String.Input("name", default="my direction",
                                tooltip="groups: the direction's name."),
                GanLatent.Input("group_away", optional=True,
                                tooltip="groups: latents without the feature (e.g. "
                                        "projected images of frowning faces)."),
                GanLatent.Input("group_towards", optional=True,
                                tooltip="groups: latents with the feature."),
            ],
            outputs=[GanDirections.Output(display_name="directions",
                                          tooltip="Directions for Apply Direction, Direction "
                                                  "Explorer and Save Directions."),
                     io.String.Output(display_name="summary",
                                      tooltip="What was found (names, scales).")],
        )

    @classmethod
    @user_errors("Find Directions")
    def execute(cls, model, method, count, layers, layer_start, layer_end, samples, seed,
                name, group_away=None, group_towards=None) -> io.NodeOutput:
        node = "Find Directions"
        model = expect_model(model, node, needs="generate")
        rows = _layers(node, model, layers, layer_start, layer_end)
        place_for_inference(model)
        if method == "sefa":
            found = sefa(model, count, rows, seed)
        elif method == "ganspace":
            found = ganspace(model, count, rows, samples, seed)
        elif method == "classes":
            found = class_directions(model, samples, seed, rows)
        elif method == "groups":
            if group_away is None or group_towards is None:
                raise NodeError(f"{node}: method groups needs both group_away and "
                                "group_towards connected")
            found = group_direction(model, expect_latents(group_away, node),
                                    expect_latents(group_towards, node), name, rows)
        else:
            raise NodeError(f"{node}: unknown method {method!r} (use one of {METHODS})")
        scales = ", ".join(f"{n} ({s:.2f})" for n, s in zip(found.names[:10],
                                                             found.scales.tolist()))
        summary = f"{found.describe()}: {scales}{', ...' if len(found) > 10 else ''}"
        return io.NodeOutput(found, summary, ui={"text": [summary]})


class ApplyDirection(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="GANStudioApplyDirection",
            display_name="Apply Direction",
            category=GROUP,
            description="Moves latents along one direction by a strength (a slider; chain "
                        "several for several edits). A list of strengths instead gives an "
                        "edit strip (each latent at every strength, in order), ready for "
                        "Generate Images or Keyframe Path.",
            inputs=[
                GanModel.Input("model", tooltip="The model the directions were found on."),
                GanLatent.Input("latents", tooltip="Latents to edit (sampled, projected or "
                                                   "loaded)."),
                GanDirections.Input("directions", tooltip="From Find Directions or Load "
                                                          "Directions."),
                io.String.Input("direction", default="0",
                                tooltip="Which direction: its index (0 = strongest) or its "
                                        "name (e.g. a class name for class directions)."),
                io.Float.Input("strength", default=0.0, min=-20.0, max=20.0, step=0.1,
                               display_mode=io.NumberDisplay.slider,
                               tooltip="How far to move (negative = the other way). 1 = one "
                                       "standard deviation of the model's latents along it "
                                       "(sefa, ganspace) or the whole class/group "
                                       "difference."),
                *_layer_inputs(OWN_LAYERS, own=True),
                io.String.Input("strip", default="", optional=True,
                                tooltip="Optional list of strengths, e.g. '-3, -1.5, 0, 1.5, "
                                        "3': each latent at each of them (an edit strip); "
                                        "strength is then ignored. Empty: use strength."),
            ],
            outputs=[GanLatent.Output(display_name="latents",
                                      tooltip="Edited latents: each input latent at each "
                                              "strength (w, or w+ when only some layers "
                                              "move).")],
        )

    @classmethod
    @user_errors("Apply Direction")
    def execute(cls, model, latents, directions, direction, strength, layers, layer_start,
                layer_end, strip="") -> io.NodeOutput:
        node = "Apply Direction"
        model = expect_model(model, node, needs="generate")
        latents = expect_latents(latents, node)
        directions = _expect_directions(directions, node)
        values = _strengths(strip) if strip.strip() else [strength]
        index = directions.index(direction)
        rows = _layers(node, model, layers, layer_start, layer_end)
        place_for_inference(model)
        return io.NodeOutput(edit_values(model, latents, directions, index, values, rows))


class DirectionExplorer(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="GANStudioDirectionExplorer",
            display_name="Direction Explorer",
            category=GROUP,
            description="Shows what directions do: one latent moved along each of k "
                        "directions at m strengths, as one labelled image grid (a row per "
                        "direction, a column per strength).",
            inputs=[
                GanModel.Input("model", tooltip="The model the directions were found on."),
                GanLatent.Input("latents", tooltip="The latent to explore from (the first "
                                                   "of the batch)."),
                GanDirections.Input("directions", tooltip="From Find Directions or Load "
                                                          "Directions."),
                io.String.Input("show", default="0-7",
                                tooltip="Which directions, as indices: '0-7', '0, 3, 5'."),
                io.String.Input("strengths", default="-3, -1.5, 0, 1.5, 3",
                                tooltip="One column per strength."),
                *_layer_inputs(OWN_LAYERS, own=True),
            ],
            outputs=[io.Image.Output(display_name="grid",
                                     tooltip="One labelled image: rows are directions, "
                                             "columns strengths."),
                     GanLatent.Output(display_name="latents",
                                      tooltip="The grid's latents, row by row.")],
        )

    @classmethod
    @user_errors("Direction Explorer")
    def execute(cls, model, latents, directions, show, strengths, layers, layer_start,
                layer_end) -> io.NodeOutput:
        node = "Direction Explorer"
        model = expect_model(model, node, needs="generate")
        latents = expect_latents(latents, node)
        directions = _expect_directions(directions, node)
        values = _strengths(strengths)
        indices = [directions.index(i) for i in parse_indices(show, limit=64)]
        rows = _layers(node, model, layers, layer_start, layer_end)
        count, res = len(indices) * len(values), model.resolution
        ensure_peak_fits(Peak(host=3 * image_bytes(count, res, res) + image_bytes(
            count, 2 * res, 2 * res), activations=activation_bytes(min(count, 64), res, res)),
            images_what(count, res, res))
        place_for_inference(model, activation_bytes(min(count, 64), res, res))
        batch = explorer_latents(model, latents, directions, indices, values, rows)
        progress = Progress(count)
        images = generate_in_chunks(model, batch, 64,
                                    on_chunk=lambda done, imgs: progress.update(done, imgs))
        grid = labelled_grid(images, len(indices), len(values),
                             [f"{i}: {directions.names[i]}" for i in indices],
                             [f"{v:+g}" if v else "0" for v in values])
        return io.NodeOutput(to_output_device(grid[None]), batch)


# --- files -----------------------------------------------------------------------------------
class SaveDirections(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="GANStudioSaveDirections",
            display_name="Save Directions",
            category=GROUP,
            description="Saves directions to ComfyUI/models/gan_directions as a small "
                        ".safetensors file that remembers its model (Load Directions refuses "
                        "it on another model). Never overwrites a file.",
            is_output_node=True,
            inputs=[
                GanDirections.Input("directions", tooltip="The directions to keep."),
                io.String.Input("filename_prefix", default="directions",
                                tooltip="Name (and optional sub-folder) inside "
                                        "models/gan_directions; a counter is appended."),
            ],
            outputs=[io.String.Output(display_name="filename",
                                      tooltip="The saved file, as Load Directions lists it.")],
        )

    @classmethod
    @user_errors("Save Directions")
    def execute(cls, directions, filename_prefix) -> io.NodeOutput:
        node = "Save Directions"
        directions = _expect_directions(directions, node)
        prefix = check_prefix(node, filename_prefix, "gan_directions folder") or "directions"
        paths = folder_paths.get_folder_paths(DIRECTIONS_FOLDER) if DIRECTIONS_FOLDER in \
            folder_paths.folder_names_and_paths else []
        if not paths:
            raise NodeError(f"{node}: the models/{DIRECTIONS_FOLDER} folder is not registered")
        base = paths[0]
        counter = 1
        while os.path.exists(os.path.join(base, f"{prefix}_{counter:05}.safetensors")):
            counter += 1
        rel = f"{prefix}_{counter:05}.safetensors"
        target = os.path.join(base, rel)
        try:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            save_directions(directions, target)
        except OSError as exc:
            raise NodeError(f"{node}: cannot save {rel} ({exc.strerror})") from None
        rel = rel.replace(os.sep, "/")
        return io.NodeOutput(rel, ui={"text": [rel]})


class LoadDirections(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="GANStudioLoadDirections",
            display_name="Load Directions",
            category=GROUP,
            description="Loads directions saved by Save Directions from "
                        "ComfyUI/models/gan_directions.",
            inputs=[io.Combo.Input("directions_file", options=files_in(DIRECTIONS_FOLDER),
                                   tooltip="A directions file in models/gan_directions.")],
            outputs=[GanDirections.Output(display_name="directions",
                                          tooltip="The saved directions (checked against "
                                                  "the model where they are used).")],
        )

    @classmethod
    @user_errors("Load Directions")
    def execute(cls, directions_file) -> io.NodeOutput:
        path = folder_paths.get_full_path(DIRECTIONS_FOLDER, directions_file)
        if path is None:
            raise NodeError(f"Load Directions: {directions_file!r} is not in "
                            f"models/{DIRECTIONS_FOLDER}")
        return io.NodeOutput(load_directions(path))


NODES = [FindDirections, ApplyDirection, DirectionExplorer, SaveDirections,
         LoadDirections]
