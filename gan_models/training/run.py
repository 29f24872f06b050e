"""A headless training run in a folder (what `python -m gan_models train` drives).

RUN_DIR/run.json            settings of the run (data, recipe, batch, seed, the checkpoint it
                            was fine-tuned from with its sha256, ...)
RUN_DIR/snapshots/          numbered snapshot pairs + latest.json (see snapshots.py)
RUN_DIR/samples/*.png       reals.png, loss_curve.png, and at each snapshot a grid of the
                            fixed latents (step-*.png) plus the recipe's other previews
                            (VAEs: recon-*.png, training images next to their reconstructions)
RUN_DIR/metrics.jsonl       one JSON line per logging interval
RUN_DIR/model.safetensors   the final model (EMA generator + discriminator; VAE: + encoder)

Works as one process or under torchrun (every rank trains; only rank 0 writes files).
A stop request (Ctrl+C, SIGTERM) is honoured between steps: a snapshot is written first.
A run may start from a checkpoint (`init`, any format `load_model` reads): the recipe adopts
the model's architecture and the networks start from its weights (fine-tuning). Resuming needs
only the snapshots; an `init` given again must be the same file (checked by sha256).
Recipe options come as `key=value` text (CLI `--option`, the trainer nodes' options box):
`parse_options` reads them and `typed_options` checks them against the recipe's defaults.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..errors import GanStudioError
from ..formats import load_model, save_model
from ..formats.atomic import atomic_path
from ..formats.native import file_sha256
from ..model import GenerativeModel
from .datasets import load_image_folder
from .distributed import DistContext
from .loop import Trainer, learning_rates
from .plots import image_grid, to_pil
from .recipes import RECIPES, make_recipe, recipe_names
from .snapshots import latest_snapshot, read_state, write_snapshot

# Settings that define the run's math: a resumed run must keep them.
FIXED = ("recipe", "options", "batch", "seed", "xflip", "fit", "background")
# Settings a resumed run may change; when not given again they keep their stored values.
ADJUSTABLE = ("data", "kimg", "minutes", "batch_gpu", "snap_every", "log_every", "keep")
STOPPED = 130
# File names of preview grids: samples/<stem>-<step>.png (other grids use their own name).
GRID_STEMS = {"samples": "step", "reconstructions": "recon"}


@dataclass
class RunSettings:
    data: str
    out: str
    recipe: str = "dcgan"
    options: dict = field(default_factory=dict)   # recipe options (resolution, lr_g, beta, ...)
    batch: int = 32
    batch_gpu: int | None = None
    kimg: float = 100.0
    minutes: float = 0.0      # training-time budget, resumes included (0 = none)
    seed: int = 0
    xflip: bool = False
    fit: str = "crop"
    background: str = "#ffffff"
    snap_every: int = 1000    # steps
    log_every: int = 50       # steps
    keep: int = 0             # snapshots to keep (0 = all)
    init: str | None = None   # checkpoint the run was started from (fine-tuning)
    init_sha256: str | None = None


class Run:
    def __init__(self, settings: RunSettings, dist: DistContext, device: torch.device,
                 log: Callable[[str], None] = print):
        self.s, self.dist, self.device = settings, dist, device
        self.out = Path(settings.out)
        self.snap_dir, self.sample_dir = self.out / "snapshots", self.out / "samples"
        self.log = log if dist.is_main else (lambda _msg: None)

    # --- set-up ---------------------------------------------------------------------------
    def start(self, resume: bool, explicit: set[str]) -> Trainer:
        """A fresh trainer, or the latest snapshot's when resuming (explicit: the settings
        the user typed, checked against the stored run)."""
        latest = latest_snapshot(self.snap_dir)
        if latest and not resume:
            raise GanStudioError(f"{self.out} already holds a run (step "
                                 f"{_step_of(latest)}); pass --resume to continue it or "
                                 "choose another --out")
        if latest:
            return self._resume(latest, explicit)
        init = self._load_init("recipe" in explicit)
        options = typed_options(self.s.recipe, self.s.options)
        if init is not None:
            if int(options.get("resolution", init.resolution)) != init.resolution:
                raise GanStudioError(f"the model is {init.resolution}px but the run asks for "
                                     f"{options['resolution']}px: leave out --resolution (the "
                                     "dataset is resized to the model's)")
            options["resolution"] = init.resolution
        # Check the options before reading a folder that may take minutes to decode; the
        # class count is not known yet, so a conditional recipe is checked with one class.
        conditional = self.s.recipe in RECIPES and RECIPES[self.s.recipe].conditional
        probe = make_recipe(self.s.recipe, options, int(conditional))
        dataset = self._load_data(probe.resolution)
        recipe = make_recipe(self.s.recipe, options, dataset.num_classes)
        trainer = Trainer(recipe, dataset, batch=self.s.batch, seed=self.s.seed,
                          device=self.device, batch_gpu=self.s.batch_gpu, dist=self.dist,
                          init_model=init)
        self.s.options = dict(trainer.recipe.options)  # with the adopted architecture
        if self.dist.is_main:
            _write_json(self.out / "run.json", asdict(self.s))
            self.sample_dir.mkdir(parents=True, exist_ok=True)
            to_pil(image_grid(trainer.dataset.preview())).save(self.sample_dir / "reals.png")
        self.log(f"training {trainer.describe()}")
        return trainer

    def _load_init(self, recipe_given: bool) -> GenerativeModel | None:
        """The model a fresh run starts from (None: random init); picks the recipe from the
        model when none was given, and refuses a recipe that trains another architecture
        before any data is read."""
        if not self.s.init:
            return None
        path = Path(self.s.init)
        if not path.is_file():
            raise GanStudioError(f"--init {path}: no such file")
        self.log(f"starting from {path.name}")
        model = load_model(path)
        self.s.init, self.s.init_sha256 = str(path), file_sha256(path)
        if not recipe_given:
            self.s.recipe = recipe_for(model)
        elif self.s.recipe in RECIPES and RECIPES[self.s.recipe].architecture != \
                model.architecture:
            raise GanStudioError(
                f"recipe {self.s.recipe} trains {RECIPES[self.s.recipe].architecture} models "
                f"but {path.name} is a {model.describe()} model; "
                + _recipes_hint(model.architecture))
        return model

    def _check_init(self, stored: dict) -> None:
        """A resumed run keeps the checkpoint it started from: an --init given again must be
        that file (any path, same sha256)."""
        given, theirs = self.s.init, stored.get("init")
        self.s.init, self.s.init_sha256 = theirs, stored.get("init_sha256")
        if not given:
            return
        if not theirs:
            raise GanStudioError(f"this run was not started from a checkpoint, so it cannot "
                                 f"continue from {Path(given).name}: leave out --init to "
                                 "resume it, or start a new run in another --out")
        if not Path(given).is_file():
            raise GanStudioError(f"--init {given}: no such file")
        if file_sha256(given) != stored.get("init_sha256"):
            raise GanStudioError(
                f"this run was started from {Path(theirs).name} (sha256 "
                f"{str(stored.get('init_sha256'))[:12]}...), not {Path(given).name}: leave "
                "out --init to resume it (the snapshots hold the weights), or start a new "
                "run in another --out")

    def _resume(self, latest: dict[str, Path], explicit: set[str]) -> Trainer:
        tensors, meta = read_state(latest["state"])
        stored = self._stored_settings(meta)
        self._check_init(stored)
        # Learning rates may change on resume (e.g. lower after a divergence); other recipe
        # options define the run and must stay.
        rates = {k: v for k, v in self.s.options.items() if k in learning_rates(meta["options"])}
        self.s.options = {k: v for k, v in self.s.options.items() if k not in rates}
        for key in FIXED:
            mine, theirs = getattr(self.s, key), stored.get(key)
            if key in explicit and theirs is not None:
                _check_same(key, mine, theirs, meta["recipe"])
            if theirs is not None:
                setattr(self.s, key, theirs)
        for key in ADJUSTABLE:
            if key not in explicit and stored.get(key) is not None:
                setattr(self.s, key, stored[key])
        if not self.s.data:
            raise GanStudioError(f"{self.out} has no run.json naming its data: pass --data")
        dataset = self._load_data(int(meta["options"]["resolution"]))
        if dataset.fingerprint != meta["dataset"]["fingerprint"]:
            self.log(f"note: the data differs from what the run trained on so far "
                     f"({len(dataset)} images now, {meta['dataset']['count']} before)")
        trainer = Trainer.from_state(tensors, meta, dataset, device=self.device,
                                     batch_gpu=self.s.batch_gpu, dist=self.dist,
                                     restore_global_rng=True)
        rates = typed_options(trainer.recipe.name, rates)
        changed = {k: v for k, v in rates.items() if trainer.recipe.options[k] != v}
        if changed:
            self.log("learning rate " + ", ".join(
                f"{k} {trainer.recipe.options[k]:g} -> {v:g}" for k, v in changed.items()))
            trainer.change_learning_rates(changed)
            self.s.options = dict(trainer.recipe.options)
        self._trim_metrics(trainer.step)
        if self.dist.is_main:  # remember the new target etc. for the next resume
            _write_json(self.out / "run.json", asdict(self.s))
        self.log(f"resumed {trainer.describe()}")
        return trainer

    def _stored_settings(self, meta: dict) -> dict:
        """run.json when present; else what the state itself records (e.g. a node's run)."""
        path = self.out / "run.json"
        stored = json.loads(path.read_text()) if path.is_file() else {}
        stored.update({"recipe": meta["recipe"], "options": meta["options"],
                       "batch": meta["batch"], "seed": meta["seed"]})
        if "xflip" in meta.get("dataset", {}):
            stored["xflip"] = meta["dataset"]["xflip"]
        return stored

    def _load_data(self, resolution: int):
        res = int(resolution)
        self.log(f"reading images from {self.s.data} at {res}px")
        return load_image_folder(self.s.data, res, fit=self.s.fit, background=self.s.background,
                                 xflip=self.s.xflip)

    def _trim_metrics(self, step: int) -> None:
        """Drop log lines past the resumed step (they will be written again)."""
        path = self.out / "metrics.jsonl"
        if not self.dist.is_main or not path.is_file():
            return
        kept = [line for line in path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= step]
        with atomic_path(path) as tmp:
            Path(tmp).write_text("".join(line + "\n" for line in kept))

    # --- the loop -------------------------------------------------------------------------
    def train(self, trainer: Trainer, stop_requested: Callable[[], bool] = lambda: False) -> int:
        """Train to the settings' kimg or time budget (whichever comes first); returns 0 when
        done or STOPPED after a stop request."""
        total = max(1, math.ceil(self.s.kimg * 1000 / trainer.batch))
        budget_s = self.s.minutes * 60 if self.s.minutes > 0 else math.inf
        window: list[dict] = []
        stopped = out_of_time = False
        logged_at = trainer.elapsed_s  # training seconds (snapshot writing excluded)

        def on_step(t: Trainer, metrics: dict) -> None:
            nonlocal stopped, out_of_time
            window.append(metrics)
            stopped = self.dist.any_flag(stop_requested(), self.device)
            # Ranks agree, so all of them leave the loop at the same step.
            out_of_time = self.dist.any_flag(t.elapsed_s >= budget_s, self.device)

        out_of_time = trainer.elapsed_s >= budget_s
        while trainer.step < total and not stopped and not out_of_time:
            trainer.train_steps(1, on_step)
            step = trainer.step
            last = step == total or stopped or out_of_time
            if step % self.s.log_every == 0 or last:
                self._write_metrics(trainer, window, trainer.elapsed_s - logged_at)
                window, logged_at = [], trainer.elapsed_s
            if step % self.s.snap_every == 0 or last:
                self.snapshot(trainer)
        if out_of_time and not stopped:
            self.log(f"time budget of {self.s.minutes:g} min reached at step {trainer.step} "
                     f"({trainer.kimg:.1f} kimg)")
        if stopped:
            self.log(f"stopped at step {trainer.step}; resume with --resume")
            return STOPPED
        if self.dist.is_main:
            save_model(trainer.export_model(), self.out / "model.safetensors")
        self.dist.barrier()
        self.log(f"done: {self.out / 'model.safetensors'}")
        return 0

    def snapshot(self, trainer: Trainer) -> None:
        self.dist.check_in_sync(trainer.nets, self.device)
        if self.dist.is_main:
            write_snapshot(self.snap_dir, trainer, keep=self.s.keep)
            self.sample_dir.mkdir(parents=True, exist_ok=True)
            for name, grid in trainer.preview_grids().items():
                stem = GRID_STEMS.get(name, name)
                to_pil(grid).save(self.sample_dir / f"{stem}-{trainer.step:08d}.png")
            to_pil(trainer.loss_curve()).save(self.sample_dir / "loss_curve.png")
        self.dist.barrier()

    def _write_metrics(self, trainer: Trainer, window: list[dict], seconds: float) -> None:
        if not self.dist.is_main or not window:
            return
        keys = sorted({k for m in window for k in m})
        means = {k: sum(m[k] for m in window if k in m) / sum(1 for m in window if k in m)
                 for k in keys}
        line = {"step": trainer.step, "kimg": round(trainer.kimg, 4), **means,
                "images_per_s": round(len(window) * trainer.batch / max(seconds, 1e-9), 2),
                "elapsed_s": round(trainer.elapsed_s, 3), "time": round(time.time(), 3)}
        with open(self.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(line) + "\n")
        self.log(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                          for k, v in line.items() if k != "time"))


def _check_same(key: str, mine, theirs, recipe: str) -> None:
    """Refuse a resumed run whose (explicitly given) setting differs from the stored one."""
    if key != "options":
        pairs = [(key, mine, theirs)] if mine != theirs else []
    else:  # only the options the user set are compared, one by one
        unknown = sorted(set(mine) - set(theirs))
        if unknown:
            raise GanStudioError(f"recipe {recipe} (this run's) has no option(s) {unknown}; "
                                 f"it knows {sorted(theirs)}")
        pairs = [(k, v, theirs[k]) for k, v in mine.items() if theirs[k] != v]
    if pairs:
        name, a, b = pairs[0]
        raise GanStudioError(
            f"this run was started with {name} = {b!r}, not {a!r}; resume with the same value "
            "or start a new run in another --out (of the recipe options only learning rates "
            "may change on resume)")


# --- recipe options from text -------------------------------------------------------------
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


def recipe_for(model: GenerativeModel) -> str:
    """The recipe that fine-tunes `model` when none is named: the one it was trained with,
    else one for its architecture (conditional when the model has classes)."""
    named = (model.metadata.get("provenance") or {}).get("recipe")
    if named in RECIPES and RECIPES[named].architecture == model.architecture:
        return named
    fits = [n for n in recipe_names() if RECIPES[n].architecture == model.architecture]
    if not fits:
        raise GanStudioError(f"GAN Studio cannot train {model.architecture} models; "
                             + _recipes_hint(model.architecture))
    conditional = model.num_classes > 0
    return min(fits, key=lambda n: (RECIPES[n].conditional != conditional,
                                    n != model.architecture, n))


def _recipes_hint(architecture: str) -> str:
    fits = [n for n in recipe_names() if RECIPES[n].architecture == architecture]
    if fits:
        return f"use --recipe {' or '.join(fits)} (or leave out --recipe)"
    trainable = sorted({cls.architecture for cls in RECIPES.values()})
    return f"the recipes train {', '.join(trainable)} models"


def _step_of(latest: dict[str, Path]) -> int:
    return int(latest["state"].name.split("-")[1].split(".")[0])


def _write_json(path: Path, data: dict) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=1))
