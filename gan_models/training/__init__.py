"""Training GANs: datasets, recipes (dcgan, cdcgan, ...), a resumable loop, snapshots, DDP.

Pure PyTorch like the rest of the library; ComfyUI nodes and the CLI sit on top of it.
"""

# Each import registers recipes: fastgan, projected, ...; progan; fast-style; pix2pix, cyclegan;
# vae, beta_vae, cvae, vqvae; vae-perceptual.
from . import (  # noqa: E402,F401
    biggan_recipe,
    fastgan_recipes,
    progan_recipe,
    stackgan_recipe,
    style_recipe,
    translator_recipes,
    vae_gan_recipe,
    vae_recipes,
)
from .datasets import ImageDataset, dataset_from_images, load_image_folder
from .decode import FIT_MODES, parse_color
from .distributed import DistContext, init_from_env
from .loop import Trainer, TrainingDiverged, grad_enabled
from .recipes import Phase, Recipe, StepContext, make_recipe, recipe_names, register_recipe
from .snapshots import latest_snapshot, read_state, write_snapshot
from .stylegan2_recipe import StyleGAN2ADARecipe  # noqa: F401  (registers stylegan2-ada)

__all__ = [
    "FIT_MODES", "DistContext", "ImageDataset", "Phase", "Recipe", "StepContext", "Trainer",
    "TrainingDiverged", "dataset_from_images", "grad_enabled", "init_from_env",
    "latest_snapshot", "load_image_folder", "make_recipe", "parse_color", "read_state",
    "recipe_names", "register_recipe", "write_snapshot",
]
