"""Training GANs and VAEs inside a graph: a dataset, a trainer, and steps that can be chained.

GAN_TRAINER values are never changed after a node returns them: Train Steps trains a copy
(weights, optimizer moments, EMA, history) and returns the copy. ComfyUI caches node outputs
and may feed one cached trainer to a re-run of the next node, so training in place would make
a second run continue from the first run's end instead of from its input.
"""

from __future__ import annotations

import hashlib
import logging
import os
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
)
from ..gan_models.training.augment import POLICIES
from ..gan_models.training.captions import is_captioned_folder, load_captioned_folder
from ..gan_models.training.datasets import IMAGE_EXTENSIONS, ImageDataset
from ..gan_models.training.losses import LOSSES
from ..gan_models.training.options import (
    ADAM_WIDGETS,
    AUGMENT_CHOICES,
    gan_recipes,
    merge_options,
    recipe_defaults,
    recipe_help,
)
from ..gan_models.training.run import GRAPH_KEEP, GraphRun
from ..gan_models.training.run_folder import GRAPH_RUNS, graph_run_folder, new_run_name
from ..gan_models.training.vae_recipes import autoencoder_recipes
from ..gan_models.vae_losses import RECON_LOSSES
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
OPTIONS_TOOLTIP = ("More recipe options, one key=value per line ({examples}). Options that "
                   "have their own input above are set there{exception}; an unknown key "
                   "lists the recipe's options.")
log = logging.getLogger("gan_studio")


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
                                        "to a folder elsewhere works). Subfolders are classes; "
                                        "a caption .txt beside each image (or a captions.json "
                                        "/ .csv map) makes it a captioned dataset for the "
                                        "stackgan recipe. Ignored when images are connected."),
                io.Int.Input("resolution", default=64, min=8, max=1024, step=8,
                             tooltip="Size the images are resized to (square). DCGAN trains at "
                                     "32, 64, 128 or 256; StyleGAN2-ADA at powers of two (8 "
                                     "to 1024 here; fine-tuning: the model's); VAEs at 16, "
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
                                               "Trainer or VAE Trainer.")],
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

                read = load_captioned_folder if is_captioned_folder(path) else load_image_folder
                dataset = read(path, resolution, fit, background, xflip, on_progress=on_progress)
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
                               tooltip=recipe_help()),
                io.Int.Input("resolution", default=0, min=0, max=1024, step=8,
                             tooltip="Training resolution; 0 = the dataset's. Another value "
                                     "resizes the dataset."),
                io.Int.Input("batch_size", default=32, min=1, max=1024,
                             tooltip="Images per step. Larger is smoother but slower per "
                                     "step."),
                io.Float.Input("lr_g", default=0.0, min=0.0, max=0.1, step=0.00001,
                               round=0.000001,
                               tooltip="Generator learning rate; 0 = the recipe's default ("
                                       f"{recipe_defaults('lr_g')})."),
                io.Float.Input("lr_d", default=0.0, min=0.0, max=0.1, step=0.00001,
                               round=0.000001,
                               tooltip="Discriminator learning rate; 0 = the recipe's default "
                                       f"({recipe_defaults('lr_d')})."),
                io.Float.Input("beta1", default=0.0, min=0.0, max=0.999, step=0.01,
                               tooltip="Adam beta1; 0 = the recipe's default ("
                                       f"{recipe_defaults('beta1')}). For exactly 0 with "
                                       "DCGAN (as WGAN-GP likes), leave it at 0 and write "
                                       "beta1=0 in options."),
                io.Float.Input("beta2", default=0.0, min=0.0, max=0.9999, step=0.001,
                               tooltip="Adam beta2; 0 = the recipe's default ("
                                       f"{recipe_defaults('beta2')}; WGAN-GP likes 0.9)."),
                io.Combo.Input("loss", options=list(LOSSES), default="ns",
                               tooltip="ns: non-saturating (standard). hinge: often steadier. "
                                       "wgan-gp: Wasserstein with gradient penalty (slower; "
                                       "dcgan, cdcgan and progan; "
                                       "stylegan2-ada regularises D with R1)."),
                io.Combo.Input("diffaugment", options=list(AUGMENT_CHOICES), default="off",
                               tooltip="Differentiable augmentation of real and fake images "
                                       f"({', '.join(POLICIES)}): helps with small datasets "
                                       "(a few hundred images)."),
                io.Int.Input("width", default=64, min=4, max=512,
                             tooltip="Network width (channels at full resolution). Smaller "
                                     "trains faster, larger can learn more detail. Ignored "
                                     "when fine-tuning a model."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF,
                             tooltip="Seed of the initial weights, data order and noise: the "
                                     "same settings and seed train the same model."),
                GanModel.Input("model", optional=True,
                               tooltip="Optional: start from this model (fine-tune): a DCGAN "
                                       "for dcgan/cdcgan, a StyleGAN2 (e.g. an NVlabs .pkl) "
                                       "for stylegan2-ada. Its architecture (width, "
                                       "resolution, classes) is used."),
                io.String.Input("options", default="", multiline=True, optional=True,
                                tooltip=OPTIONS_TOOLTIP.format(
                                    examples="e.g. gp_weight=5, ema_kimg=20, z_dim=64, "
                                             "max_channels=256; stylegan2-ada: freeze_d=2, "
                                             "r1_gamma=1, augment=off",
                                    exception=" (learning rates and betas left at 0 may be "
                                              "set here, e.g. beta1=0)")),
            ],
            outputs=[GanTrainer.Output(display_name="trainer",
                                       tooltip="The untrained run, for Train Steps.")],
        )

    @classmethod
    @user_errors("GAN Trainer")
    def execute(cls, dataset, recipe, resolution, batch_size, lr_g, lr_d, beta1, beta2, loss,
                diffaugment, width, seed, model=None, options="") -> io.NodeOutput:
        # 0 (None) = the recipe's own default: StyleGAN2-ADA and DCGAN want different ones.
        widgets = {"base_channels": width, "lr_g": lr_g or None, "lr_d": lr_d or None,
                   "beta1": beta1 or None, "beta2": beta2 or None, "loss": loss,
                   "diffaugment": "" if diffaugment == "off" else diffaugment}
        return io.NodeOutput(make_trainer("GAN Trainer", dataset, recipe, resolution, widgets,
                                          options, batch_size, seed, model,
                                          open_at_default=ADAM_WIDGETS))


class VAETrainer(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        kinds = autoencoder_recipes()
        return io.Schema(
            node_id="GANStudioVAETrainer",
            display_name="VAE Trainer",
            category=f"{CATEGORY}/train",
            description="Sets up a VAE training run: encoder, decoder (the generator) and their "
                        "optimizer. Nothing is trained yet: connect Train Steps. Its model "
                        "output encodes images (Encode Images) and decodes latents (Generate "
                        "Images).",
            inputs=[
                GanDataset.Input("dataset", tooltip="Images from Training Dataset."),
                io.Combo.Input("kind", options=kinds, default="vae",
                               tooltip="vae: standard VAE. beta_vae: heavier KL term (beta 4) "
                                       "for smoother, more disentangled latents. cvae: "
                                       "class-conditional (needs class subfolders). vqvae: "
                                       "discrete codebook latents, sharper reconstructions. "
                                       "vae-perceptual: a VAE trained with L1 + a perceptual "
                                       "loss on frozen EfficientNet-Lite0 features + a "
                                       "PatchGAN term after adv_start steps, for sharp "
                                       "reconstructions (needs efficientnet-lite0-pytorch-"
                                       "model; use recon_loss l1)."),
                io.Int.Input("resolution", default=0, min=0, max=256, step=8,
                             tooltip="Training resolution (16, 32, 64, 128 or 256); 0 = the "
                                     "dataset's. Another value resizes the dataset."),
                io.Int.Input("batch_size", default=32, min=1, max=1024,
                             tooltip="Images per step."),
                io.Int.Input("z_dim", default=64, min=1, max=4096,
                             tooltip="Latent size (vae, beta_vae, cvae). Not used by vqvae, "
                                     "whose latent is a code map (code_dim, downsample in "
                                     "options)."),
                io.Float.Input("beta", default=0.0, min=0.0, max=1000.0, step=0.1,
                               tooltip="Weight of the KL term; 0 = the kind's default (1; "
                                       "beta_vae 4; vae-perceptual 0.25, per pixel of a "
                                       "mean reconstruction error). Higher: a smoother "
                                       "latent space and better samples, blurrier "
                                       "reconstructions. Not used by vqvae."),
                io.Int.Input("kl_warmup_steps", default=2000, min=0, max=1_000_000,
                             tooltip="Steps over which the KL weight ramps up from 0, so the "
                                     "encoder learns to reconstruct before the latents are "
                                     "pulled together. Not used by vqvae."),
                io.Combo.Input("recon_loss", options=list(RECON_LOSSES), default="mse",
                               tooltip="Reconstruction error: mse (squared, smooth) or l1 "
                                       "(absolute, sharper edges)."),
                io.Float.Input("lr", default=0.0, min=0.0, max=0.1, step=0.00001,
                               round=0.000001,
                               tooltip="Adam learning rate; 0 = the kind's default (0.001; "
                                       "vqvae and vae-perceptual 0.0005)."),
                io.Int.Input("width", default=32, min=4, max=512,
                             tooltip="Network width (channels at full resolution). Smaller "
                                     "trains faster, larger can learn more detail."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF,
                             tooltip="Seed of the initial weights, data order and noise: the "
                                     "same settings and seed train the same model."),
                GanModel.Input("model", optional=True,
                               tooltip="Optional: continue training this VAE (fine-tune). Its "
                                       "architecture is used: z_dim, width and resolution "
                                       "follow the model."),
                io.String.Input("options", default="", multiline=True, optional=True,
                                tooltip=OPTIONS_TOOLTIP.format(
                                    examples="e.g. kl_schedule=cyclical, free_bits=0.5, "
                                             "capacity_max=25, max_channels=128; vqvae: "
                                             "codebook_size=512, commitment=0.25",
                                    exception="")),
            ],
            outputs=[GanTrainer.Output(display_name="trainer",
                                       tooltip="The untrained run, for Train Steps.")],
        )

    @classmethod
    @user_errors("VAE Trainer")
    def execute(cls, dataset, kind, resolution, batch_size, z_dim, beta, kl_warmup_steps,
                recon_loss, lr, width, seed, model=None, options="") -> io.NodeOutput:
        if kind not in autoencoder_recipes():
            raise NodeError(f"VAE Trainer: unknown kind {kind!r} (choose one of "
                            f"{', '.join(autoencoder_recipes())})")
        # None = the kind's default (the recipe drops None values).
        widgets = {"z_dim": z_dim, "beta": beta or None, "kl_warmup_steps": kl_warmup_steps,
                   "recon_loss": recon_loss, "lr": lr or None, "base_channels": width}
        return io.NodeOutput(make_trainer("VAE Trainer", dataset, kind, resolution, widgets,
                                          options, batch_size, seed, model))


def make_trainer(node: str, dataset, recipe: str, resolution: int, widgets: dict, text: str,
                 batch: int, seed: int, model, open_at_default: frozenset = frozenset()
                 ) -> Trainer:
    """A fresh run of `recipe` from a trainer node's inputs: its widgets (only those the recipe
    has; None = the recipe's default) plus the key=value lines of its options box."""
    if not isinstance(dataset, ImageDataset):
        raise NodeError(f"{node}: expected a GAN_DATASET, got {type(dataset).__name__}")
    options = merge_options(recipe, widgets, text, resolution or dataset.resolution,
                            open_at_default)
    init = None
    if model is not None:
        init = expect_model(model, node)
        if resolution and resolution != init.resolution:
            raise NodeError(f"{node}: the model is {init.resolution}px; set resolution to 0 or "
                            f"{init.resolution}")
        options["resolution"] = init.resolution
    run_name = new_run_name(recipe, dataset.source)
    trainer = Trainer(make_recipe(recipe, options, dataset.num_classes), dataset,
                      batch=batch, seed=seed, device=mm.unet_offload_device(),
                      init_model=init, run_name=run_name)
    log.info("GAN Studio: trainer %s", trainer.describe())
    return trainer


class TrainSteps(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="GANStudioTrainSteps",
            display_name="Train Steps",
            category=f"{CATEGORY}/train",
            description="Trains for a number of steps and outputs the continued run, the "
                        "current model (averaged generator; for a VAE encoder + decoder), a "
                        "sample grid and a loss curve; VAE runs also preview training images "
                        "next to their reconstructions. Chain several to train in stages. "
                        f"The run is kept in output/{GRAPH_RUNS}/<run>/ (run.json and "
                        "snapshots: every snapshot_minutes, at the end and when cancelled), "
                        "so even after a crash `python -m gan_models train --out <that "
                        "folder> --resume` continues it.",
            is_output_node=True,
            inputs=[
                GanTrainer.Input("trainer", tooltip="From GAN Trainer, VAE Trainer or another "
                                                    "Train Steps (training continues where it "
                                                    "stopped)."),
                io.Int.Input("steps", default=200, min=1, max=1_000_000,
                             tooltip="Training steps to run now (one step = one batch for D "
                                     "and one for G; for a VAE one batch through encoder "
                                     "and decoder)."),
                io.Int.Input("preview_every", default=25, min=0, max=100_000,
                             tooltip="Show a live sample grid every this many steps; 0 = "
                                     "only at the end."),
                io.Float.Input("snapshot_minutes", default=5.0, min=0.0, max=1440.0, step=0.5,
                               round=0.001, optional=True,
                               tooltip="Save a resumable snapshot of the run every this many "
                                       f"minutes while training (in output/{GRAPH_RUNS}/"
                                       f"<run>/snapshots; the newest {GRAPH_KEEP} are kept), "
                                       "so a crash or a stopped server loses at most that "
                                       "much; 0 = only at the end and when cancelled. "
                                       "Continue such a run with python -m gan_models train "
                                       "--out <run folder> --resume."),
            ],
            outputs=[
                GanTrainer.Output(display_name="trainer",
                                  tooltip="The run after these steps, to chain more steps."),
                GanModel.Output(display_name="model",
                                tooltip="The current model (averaged generator + "
                                        "discriminator; for a VAE encoder + decoder): sample, "
                                        "encode or save it."),
                io.Image.Output(display_name="samples",
                                tooltip="A grid of fixed latents: the same images every time, "
                                        "so progress is easy to compare."),
                io.Image.Output(display_name="loss_curve",
                                tooltip="The losses (GAN: D, G and D accuracy) over all steps "
                                        "so far."),
            ],
        )

    @classmethod
    @user_errors("Train Steps")
    def execute(cls, trainer, steps, preview_every, snapshot_minutes=5.0) -> io.NodeOutput:
        if not isinstance(trainer, Trainer):
            raise NodeError(f"Train Steps: expected a GAN_TRAINER, got {type(trainer).__name__}")
        device = mm.get_torch_device()
        if device.type != "cpu":  # make room: ComfyUI may offload other models first
            mm.free_memory(4 * _bytes_of(trainer) + 512 * 2**20, device)
        work = trainer.clone(device)
        folder = graph_run_folder(folder_paths.get_output_directory(), work.run_name)
        progress = Progress(steps)
        done = 0
        final: dict[str, torch.Tensor] = {}

        def note(message: str) -> None:
            log.warning("GAN Studio: %s", message)

        with GraphRun(folder, work, work.step + steps, snapshot_minutes or 0.0, log=note) as run:

            def on_step(t: Trainer, _metrics: dict) -> None:
                nonlocal done
                done += 1
                preview = None
                if done == steps:  # the output grid doubles as the last preview
                    final.update(t.preview_grids())
                    preview = final["samples"][None]
                elif preview_every and done % preview_every == 0:
                    preview = t.sample_grid()[None]
                run.step(t)  # a snapshot when snapshot_minutes have passed
                progress.update(done, preview)  # also where a cancel is noticed

            try:
                work.train_steps(steps, on_step)
            except mm.InterruptProcessingException:
                path = run.snapshot(work)["model"]
                log.warning("GAN Studio: training cancelled at step %d; checkpoint %s",
                            work.step, path)
                raise
            run.snapshot(work, final)
        with grad_enabled():
            work.to(mm.unet_offload_device())  # rest on the offload device between runs
        samples, curve = final["samples"][None], work.loss_curve()[None]
        return io.NodeOutput(work, work.export_model(), to_output_device(samples),
                             to_output_device(curve), ui=preview_images(cls, final.values()))


def preview_images(cls, grids) -> ui.SavedImages:
    """Show grids of different sizes on the node (the sample grid first): a batch could not
    hold them, so each is saved as its own temporary image."""
    results = []
    for grid in grids:
        results += ui.ImageSaveHelper.save_images(
            grid[None], filename_prefix=f"GANStudio_temp_{uuid.uuid4().hex[:8]}",
            folder_type=io.FolderType.temp, cls=cls, compress_level=1)
    return ui.SavedImages(results)


def _bytes_of(trainer: Trainer) -> int:
    return sum(p.numel() * p.element_size() for n in trainer.nets.values() for p in n.parameters())


NODES = [TrainingDataset, GANTrainer, VAETrainer, TrainSteps]
