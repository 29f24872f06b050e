"""Training GANs inside a graph: a dataset, a trainer, and steps that can be chained.

GAN_TRAINER values are never changed after a node returns them: Train Steps trains a copy
(weights, optimizer moments, EMA, history) and returns the copy. ComfyUI caches node outputs
and may feed one cached trainer to a re-run of the next node, so training in place would make
a second run continue from the first run's end instead of from its input.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import uuid
from pathlib import Path

import comfy.model_management as mm
import folder_paths
import torch
from comfy_api.v0_0_2 import io, ui

from ..gan_models.training import (
    FIT_MODES,
    Trainer,
    dataset_from_images,
    grad_enabled,
    load_image_folder,
    make_recipe,
    write_snapshot,
)
from ..gan_models.training.augment import POLICIES
from ..gan_models.training.datasets import IMAGE_EXTENSIONS, ImageDataset
from ..gan_models.training.losses import LOSSES
from ..gan_models.training.recipes import RECIPES, recipe_names
from .common import (
    CATEGORY,
    GanModel,
    NodeError,
    Progress,
    expect_model,
    to_output_device,
    user_errors,
)

GanDataset = io.Custom("GAN_DATASET")
GanTrainer = io.Custom("GAN_TRAINER")
CHECKPOINT_FOLDER = "gan_studio_training"
# Options the GAN Trainer node sets: every recipe listed in its menu must accept them.
NODE_OPTIONS = {"resolution", "base_channels", "loss", "lr_g", "lr_d", "beta1", "beta2",
                "diffaugment"}
AUGMENT_CHOICES = ["off", "color,translation,cutout", "translation,cutout", "translation"]
log = logging.getLogger("gan_studio")


def gan_recipes() -> list[str]:
    return [n for n in recipe_names() if NODE_OPTIONS <= set(RECIPES[n].DEFAULTS)]


def resolve_folder(text: str) -> Path:
    """A folder inside ComfyUI's input folder. Paths elsewhere are refused so that a shared
    server never reads arbitrary folders of its host; a symbolic link placed inside the
    input folder (by whoever runs the server) is the way to train on a folder elsewhere."""
    text = text.strip()
    if not text:
        raise NodeError("Training Dataset: give a folder inside ComfyUI's input folder, or "
                        "connect images")
    root = os.path.normpath(folder_paths.get_input_directory())
    path = os.path.normpath(os.path.join(root, text))
    if Path(text).is_absolute() or os.path.commonpath([root, path]) != root:
        raise NodeError(f"Training Dataset: {text!r} is outside ComfyUI's input folder; put "
                        "the images (or a link to their folder) into ComfyUI/input and give "
                        "the folder's name")
    return Path(path)


class TrainingDataset(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="GANStudioTrainingDataset",
            display_name="Training Dataset",
            category=f"{CATEGORY}/train",
            description="Reads training images once into memory: a folder (one subfolder per "
                        "class for class-conditional training, or images directly inside) or a "
                        "connected IMAGE batch. Images are converted to RGB and resized.",
            inputs=[
                io.String.Input("folder", default="gan_studio_shapes",
                                tooltip="Image folder inside ComfyUI's input folder (a link "
                                        "to a folder elsewhere works). Subfolders are classes. "
                                        "Ignored when images are connected."),
                io.Int.Input("resolution", default=64, min=8, max=1024, step=8,
                             tooltip="Size the images are resized to (square). DCGAN trains at "
                                     "32, 64, 128 or 256."),
                io.Combo.Input("fit", options=list(FIT_MODES), default="crop",
                               tooltip="Non-square images: crop = fill and cut the overhang, "
                                       "pad = fit inside on the background colour, stretch = "
                                       "ignore the aspect ratio."),
                io.Boolean.Input("xflip", default=False,
                                 tooltip="Also train on mirror images (doubles the variety of "
                                         "small datasets; avoid for text or asymmetric "
                                         "subjects)."),
                io.String.Input("background", default="#ffffff",
                                tooltip="Colour behind transparent pixels and padding: "
                                        "'#rrggbb', a name like 'white', or 'r,g,b'."),
                io.Image.Input("images", optional=True,
                               tooltip="Optional: train on this IMAGE batch instead of the "
                                       "folder (an unconditional dataset)."),
            ],
            outputs=[GanDataset.Output(display_name="dataset",
                                       tooltip="The decoded images (and classes) for GAN "
                                               "Trainer.")],
        )

    @classmethod
    def fingerprint_inputs(cls, folder, resolution, fit, xflip, background, images=None):
        # Re-read the folder when its files change, even if the inputs did not.
        if images is not None:
            return None
        try:
            path = resolve_folder(folder)
            entries = sorted((str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns)
                             for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        except (OSError, NodeError):
            return folder
        return hashlib.sha256(repr(entries).encode()).hexdigest()

    @classmethod
    @user_errors("Training Dataset")
    def execute(cls, folder, resolution, fit, xflip, background, images=None) -> io.NodeOutput:
        with torch.inference_mode(False):  # normal tensors: training uses them in autograd
            if images is not None:
                dataset = dataset_from_images(images, resolution, fit, background, xflip)
            else:
                path = resolve_folder(folder)
                progress = None

                def on_progress(done: int, total: int) -> None:
                    nonlocal progress
                    progress = progress or Progress(total)
                    progress.update(done)

                dataset = load_image_folder(path, resolution, fit, background, xflip,
                                            on_progress=on_progress)
        log.info("GAN Studio: dataset of %s", dataset.describe())
        return io.NodeOutput(dataset)


class GANTrainer(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="GANStudioTrainer",
            display_name="GAN Trainer",
            category=f"{CATEGORY}/train",
            description="Sets up a GAN training run: networks, optimizers and the averaged "
                        "generator. Nothing is trained yet: connect Train Steps.",
            inputs=[
                GanDataset.Input("dataset", tooltip="Images from Training Dataset."),
                io.Combo.Input("recipe", options=gan_recipes(), default="dcgan",
                               tooltip="dcgan: unconditional. cdcgan: class-conditional (needs "
                                       "a dataset with class subfolders)."),
                io.Int.Input("resolution", default=0, min=0, max=1024, step=8,
                             tooltip="Training resolution; 0 = the dataset's. Another value "
                                     "resizes the dataset."),
                io.Int.Input("batch_size", default=32, min=1, max=1024,
                             tooltip="Images per step. Larger is smoother but slower per "
                                     "step."),
                io.Float.Input("lr_g", default=0.0002, min=0.000001, max=0.1, step=0.00001,
                               round=0.000001,
                               tooltip="Generator learning rate (DCGAN: 0.0002)."),
                io.Float.Input("lr_d", default=0.0002, min=0.000001, max=0.1, step=0.00001,
                               round=0.000001,
                               tooltip="Discriminator learning rate (DCGAN: 0.0002)."),
                io.Float.Input("beta1", default=0.5, min=0.0, max=0.999, step=0.01,
                               tooltip="Adam beta1 (DCGAN: 0.5; WGAN-GP: 0.0)."),
                io.Float.Input("beta2", default=0.999, min=0.0, max=0.9999, step=0.001,
                               tooltip="Adam beta2 (DCGAN: 0.999; WGAN-GP: 0.9)."),
                io.Combo.Input("loss", options=list(LOSSES), default="ns",
                               tooltip="ns: non-saturating (standard). hinge: often steadier. "
                                       "wgan-gp: Wasserstein with gradient penalty (slower)."),
                io.Combo.Input("diffaugment", options=AUGMENT_CHOICES, default="off",
                               tooltip="Differentiable augmentation of real and fake images "
                                       f"({', '.join(POLICIES)}): helps with small datasets "
                                       "(a few hundred images)."),
                io.Int.Input("width", default=64, min=4, max=512,
                             tooltip="Network width (channels at full resolution). Smaller "
                                     "trains faster, larger can learn more detail."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF,
                             tooltip="Seed of the initial weights, data order and noise: the "
                                     "same settings and seed train the same model."),
                GanModel.Input("model", optional=True,
                               tooltip="Optional: start from this model (fine-tune). Its "
                                       "architecture (width, resolution, classes) is used."),
            ],
            outputs=[GanTrainer.Output(display_name="trainer",
                                       tooltip="The untrained run, for Train Steps.")],
        )

    @classmethod
    @user_errors("GAN Trainer")
    def execute(cls, dataset, recipe, resolution, batch_size, lr_g, lr_d, beta1, beta2, loss,
                diffaugment, width, seed, model=None) -> io.NodeOutput:
        if not isinstance(dataset, ImageDataset):
            raise NodeError(f"GAN Trainer: expected a GAN_DATASET, got {type(dataset).__name__}")
        options = {"resolution": resolution or dataset.resolution, "base_channels": width,
                   "lr_g": lr_g, "lr_d": lr_d, "beta1": beta1, "beta2": beta2, "loss": loss,
                   "diffaugment": "" if diffaugment == "off" else diffaugment}
        init = None
        if model is not None:
            init = expect_model(model, "GAN Trainer")
            if resolution and resolution != init.resolution:
                raise NodeError(f"GAN Trainer: the model is {init.resolution}px; set resolution "
                                f"to 0 or {init.resolution}")
            options["resolution"] = init.resolution
        run_name = f"{recipe}_{_safe(dataset.source) or 'images'}_{uuid.uuid4().hex[:6]}"
        trainer = Trainer(make_recipe(recipe, options, dataset.num_classes), dataset,
                          batch=batch_size, seed=seed, device=mm.unet_offload_device(),
                          init_model=init, run_name=run_name)
        log.info("GAN Studio: trainer %s", trainer.describe())
        return io.NodeOutput(trainer)


class TrainSteps(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="GANStudioTrainSteps",
            display_name="Train Steps",
            category=f"{CATEGORY}/train",
            description="Trains for a number of steps and outputs the continued run, the "
                        "current model (averaged generator), a sample grid and a loss curve. "
                        "Chain several to train in stages; cancelling saves a checkpoint to "
                        f"output/{CHECKPOINT_FOLDER}/ first.",
            is_output_node=True,
            inputs=[
                GanTrainer.Input("trainer", tooltip="From GAN Trainer or another Train Steps "
                                                    "(training continues where it stopped)."),
                io.Int.Input("steps", default=200, min=1, max=1_000_000,
                             tooltip="Training steps to run now (one step = one batch for D "
                                     "and one for G)."),
                io.Int.Input("preview_every", default=25, min=0, max=100_000,
                             tooltip="Show a live sample grid every this many steps; 0 = "
                                     "only at the end."),
            ],
            outputs=[
                GanTrainer.Output(display_name="trainer",
                                  tooltip="The run after these steps, to chain more steps."),
                GanModel.Output(display_name="model",
                                tooltip="The current model (averaged generator + "
                                        "discriminator): sample it or save it."),
                io.Image.Output(display_name="samples",
                                tooltip="A grid of fixed latents: the same images every time, "
                                        "so progress is easy to compare."),
                io.Image.Output(display_name="loss_curve",
                                tooltip="D and G losses and D accuracy over all steps so far."),
            ],
        )

    @classmethod
    @user_errors("Train Steps")
    def execute(cls, trainer, steps, preview_every) -> io.NodeOutput:
        if not isinstance(trainer, Trainer):
            raise NodeError(f"Train Steps: expected a GAN_TRAINER, got {type(trainer).__name__}")
        device = mm.get_torch_device()
        if device.type != "cpu":  # make room: ComfyUI may offload other models first
            mm.free_memory(4 * _bytes_of(trainer) + 512 * 2**20, device)
        work = trainer.clone(device)
        progress = Progress(steps)
        done = 0
        final: list[torch.Tensor] = []

        def on_step(t: Trainer, _metrics: dict) -> None:
            nonlocal done
            done += 1
            preview = None
            if done == steps:  # the output grid doubles as the last preview
                final.append(t.sample_grid()[None])
                preview = final[0]
            elif preview_every and done % preview_every == 0:
                preview = t.sample_grid()[None]
            progress.update(done, preview)  # also where a cancel is noticed, between steps

        try:
            work.train_steps(steps, on_step)
        except mm.InterruptProcessingException:
            path = save_checkpoint(work)
            log.warning("GAN Studio: training cancelled at step %d; checkpoint %s", work.step,
                        path)
            raise
        with grad_enabled():
            work.to(mm.unet_offload_device())  # rest on the offload device between runs
        samples, curve = final[0], work.loss_curve()[None]
        return io.NodeOutput(work, work.export_model(), to_output_device(samples),
                             to_output_device(curve), ui=ui.PreviewImage(samples, cls=cls))


def save_checkpoint(trainer: Trainer) -> Path:
    """Snapshot pair in output/gan_studio_training/<run>/snapshots (resumable by the CLI)."""
    folder = Path(folder_paths.get_output_directory()) / CHECKPOINT_FOLDER / trainer.run_name
    return write_snapshot(folder / "snapshots", trainer)["model"]


def _bytes_of(trainer: Trainer) -> int:
    return sum(p.numel() * p.element_size() for n in trainer.nets.values() for p in n.parameters())


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")[:40]


NODES = [TrainingDataset, GANTrainer, TrainSteps]
