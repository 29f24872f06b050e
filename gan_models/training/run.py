"""A training run in a folder: what `python -m gan_models train` drives (`Run`), and what the
Train Steps node keeps for the run it trains (`GraphRun`). The folder's layout is described in
run_folder.py; a run in it may be resumed by the CLI whichever of the two started it.

Works as one process or under torchrun (every rank trains; only rank 0 writes files).
A stop request (Ctrl+C, SIGTERM) is honoured between steps: a snapshot is written first.
One process at a time writes a run folder (its lock); a run that starts or resumes cleans up
what a crashed one left behind (see run_folder.py).
A run may start from a checkpoint (`init`, any format `load_model` reads): the recipe adopts
the model's architecture and the networks start from its weights (fine-tuning). Resuming needs
only the snapshots; an `init` given again must be the same file (checked by sha256).
Recipe options come as `key=value` text (see options.py).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..errors import GanStudioError
from ..formats import load_model, save_model
from ..formats.native import file_sha256
from ..model import GenerativeModel
from .captions import load_captioned_folder
from .datasets import load_image_folder, write_image_folder
from .distributed import DistContext
from .loop import Trainer, learning_rates
from .options import typed_options
from .pairs import load_pairs
from .recipes import RECIPES, make_recipe, recipe_names
from .run_folder import RunFolder, RunFolderBusy, RunLock, snapshot_step
from .snapshots import read_state

# Settings that define the run's math: a resumed run must keep them.
FIXED = ("recipe", "options", "batch", "seed", "xflip", "fit", "background")
# Settings a resumed run may change; when not given again they keep their stored values.
ADJUSTABLE = ("data", "kimg", "minutes", "cpu_minutes", "batch_gpu", "snap_every", "log_every",
              "keep")
STOPPED = 130
# Snapshots a Train Steps run keeps (it writes one every few minutes however long it runs).
GRAPH_KEEP = 3


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
    cpu_minutes: float = 0.0  # the same in this process's CPU time (fair on a shared machine)
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
        self.folder = RunFolder(settings.out)
        self.out = self.folder.root
        self.log = log if dist.is_main else (lambda _msg: None)
        self._lock: RunLock | None = None

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Release the run folder (also done by the system when the process ends)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    # --- set-up ---------------------------------------------------------------------------
    def start(self, resume: bool, explicit: set[str]) -> Trainer:
        """A fresh trainer, or the latest snapshot's when resuming (explicit: the settings
        the user typed, checked against the stored run)."""
        latest = self.folder.latest_snapshot()
        if latest and not resume:
            raise _already_a_run(self.out, latest)
        if latest:
            self._take_folder()
            return self._resume(self.folder.latest_snapshot(), explicit)
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
        self._take_folder()
        latest = self.folder.latest_snapshot()
        if latest:  # written while we were checking the options
            raise _already_a_run(self.out, latest)
        dataset = self._load_data(probe.resolution)
        recipe = make_recipe(self.s.recipe, options, dataset.num_classes)
        trainer = Trainer(recipe, dataset, batch=self.s.batch, seed=self.s.seed,
                          device=self.device, batch_gpu=self.s.batch_gpu, dist=self.dist,
                          init_model=init)
        self.s.options = dict(trainer.recipe.options)  # with the adopted architecture
        if self.dist.is_main:
            self.folder.trim_metrics(0, self.log)  # lines of a run that died before a snapshot
            self.folder.write_settings(asdict(self.s))
            self.folder.write_reals(trainer.dataset)
        self.log(f"training {trainer.describe()}")
        return trainer

    def _take_folder(self) -> None:
        """Lock the run folder (rank 0; all ranks stop if it is taken) and clean up what a
        crashed run left in it."""
        busy = None
        if self.dist.is_main and self._lock is None:
            lock = RunLock(self.folder, self.log)
            try:
                lock.acquire()
                self._lock = lock
            except RunFolderBusy as exc:
                busy = exc
        if self.dist.any_flag(busy is not None, self.device):
            raise busy or RunFolderBusy(f"run folder {self.out} is in use (see rank 0)")
        if self.dist.is_main:
            self.folder.clean_temp_files(self.log)

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
        if self.dist.is_main:
            # Drop log lines past the resumed step (they will be written again) and remember
            # the new target etc. for the next resume.
            self.folder.trim_metrics(trainer.step, self.log)
            self.folder.write_settings(asdict(self.s))
        self.log(f"resumed {trainer.describe()}")
        return trainer

    def _stored_settings(self, meta: dict) -> dict:
        """run.json when present; else what the state itself records."""
        stored = self.folder.read_settings()
        stored.update({"recipe": meta["recipe"], "options": meta["options"],
                       "batch": meta["batch"], "seed": meta["seed"]})
        if "xflip" in meta.get("dataset", {}):
            stored["xflip"] = meta["dataset"]["xflip"]
        return stored

    def _load_data(self, resolution: int):
        res = int(resolution)
        self.log(f"reading images from {self.s.data} at {res}px")
        kind = getattr(RECIPES.get(self.s.recipe), "data_kind", "images")
        if kind == "captioned":
            return load_captioned_folder(self.s.data, res, fit=self.s.fit,
                                         background=self.s.background, xflip=self.s.xflip)
        if kind != "images":  # image-to-image recipes read two sides (pairs.py)
            return load_pairs(self.s.data, kind, res, fit=self.s.fit,
                              background=self.s.background, xflip=self.s.xflip)
        return load_image_folder(self.s.data, res, fit=self.s.fit, background=self.s.background,
                                 xflip=self.s.xflip)

    # --- the loop -------------------------------------------------------------------------
    def train(self, trainer: Trainer, stop_requested: Callable[[], bool] = lambda: False) -> int:
        """Train to the settings' kimg or time budget (whichever comes first); returns 0 when
        done or STOPPED after a stop request."""
        total = steps_for_kimg(self.s.kimg, trainer.batch)
        budget_s = self.s.minutes * 60 if self.s.minutes > 0 else math.inf
        cpu_budget_s = self.s.cpu_minutes * 60 if self.s.cpu_minutes > 0 else math.inf

        def spent(t: Trainer) -> bool:
            return t.elapsed_s >= budget_s or t.cpu_s >= cpu_budget_s
        window: list[dict] = []
        stopped = out_of_time = False
        logged_at = trainer.elapsed_s  # training seconds (snapshot writing excluded)

        def on_step(t: Trainer, metrics: dict) -> None:
            nonlocal stopped, out_of_time
            window.append(metrics)
            stopped = self.dist.any_flag(stop_requested(), self.device)
            # Ranks agree, so all of them leave the loop at the same step.
            out_of_time = self.dist.any_flag(spent(t), self.device)

        out_of_time = spent(trainer)
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
            self.log(f"time budget reached after {trainer.elapsed_s / 60:.1f} min "
                     f"({trainer.cpu_s / 60:.1f} CPU-min) at step {trainer.step} "
                     f"({trainer.kimg:.1f} kimg)")
        if stopped:
            self.log(f"stopped at step {trainer.step}; resume with --resume")
            return STOPPED
        if self.dist.is_main:
            save_model(trainer.export_model(), self.folder.model_file)
        self.dist.barrier()
        self.log(f"done: {self.folder.model_file}")
        return 0

    def snapshot(self, trainer: Trainer) -> None:
        self.dist.check_in_sync(trainer.nets, self.device)
        if self.dist.is_main:
            self.folder.write_snapshot(trainer, keep=self.s.keep)
        self.dist.barrier()

    def _write_metrics(self, trainer: Trainer, window: list[dict], seconds: float) -> None:
        if not self.dist.is_main or not window:
            return
        keys = sorted({k for m in window for k in m})
        means = {k: sum(m[k] for m in window if k in m) / sum(1 for m in window if k in m)
                 for k in keys}
        line = {"step": trainer.step, "kimg": round(trainer.kimg, 4), **means,
                "images_per_s": round(len(window) * trainer.batch / max(seconds, 1e-9), 2),
                "elapsed_s": round(trainer.elapsed_s, 3),
                "cpu_s": round(trainer.cpu_s, 3), "time": round(time.time(), 3)}
        self.folder.append_metrics(line)
        self.log(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                          for k, v in line.items() if k != "time"))


class GraphRun:
    """The run folder of a trainer that a caller drives step by step (the Train Steps node).

    While open it holds the folder's lock; it writes run.json as the CLI would (so that
    `python -m gan_models train --out FOLDER --resume` continues the run to `target_step`
    with no other flags), a snapshot whenever `every_minutes` of wall time have passed since
    the last one (0 = never on its own) and one whenever the caller asks (at the end, on a
    cancel). A trainer on images from memory gets a copy of them in the folder's data/."""

    def __init__(self, folder: RunFolder, trainer: Trainer, target_step: int,
                 every_minutes: float = 0.0, keep: int = GRAPH_KEEP,
                 log: Callable[[str], None] = print):
        self.folder, self.trainer, self.target_step = folder, trainer, int(target_step)
        self.every_s = max(0.0, float(every_minutes)) * 60
        self.keep, self.log = keep, log
        self._lock = RunLock(folder, log)
        self._last_time = time.monotonic()
        self._last: tuple[int, dict[str, Path]] | None = None

    def __enter__(self) -> GraphRun:
        self._lock.acquire()
        try:
            self.folder.clean_temp_files(self.log)
            self.folder.write_settings(asdict(self.settings()))
            if not (self.folder.samples / "reals.png").is_file():
                self.folder.write_reals(self.trainer.dataset)
        except BaseException:
            self._lock.release()
            raise
        self._last_time = time.monotonic()
        return self

    def __exit__(self, *exc) -> None:
        self._lock.release()

    def settings(self) -> RunSettings:
        t, data = self.trainer, self.trainer.dataset
        if data.folder:
            source, fit, background = data.folder, data.fit, data.background
        else:  # square already, at the run's resolution: read back as they are
            write = getattr(data, "write_folder", None)  # two-sided datasets write their own
            written = write(self.folder.data) if write else write_image_folder(data,
                                                                                self.folder.data)
            source = str(written.resolve())
            fit, background = "crop", "#ffffff"
        return RunSettings(data=source, out=str(self.folder.root), recipe=t.recipe.name,
                           options=dict(t.recipe.options), batch=t.batch, seed=t.seed,
                           xflip=data.xflip, fit=fit, background=background,
                           kimg=self.target_step * t.batch / 1000, keep=self.keep)

    def step(self, trainer: Trainer) -> None:
        """After each step: a snapshot when it is time for one."""
        if self.every_s > 0 and time.monotonic() - self._last_time >= self.every_s:
            self.snapshot(trainer)

    def snapshot(self, trainer: Trainer, grids: dict | None = None) -> dict[str, Path]:
        """Write a snapshot of the trainer now (once per step)."""
        if self._last is None or self._last[0] != trainer.step:
            self._last = (trainer.step, self.folder.write_snapshot(trainer, self.keep, grids))
        self._last_time = time.monotonic()
        return self._last[1]


def steps_for_kimg(kimg: float, batch: int) -> int:
    """Training steps to show `kimg` thousand images (at least 1); float noise such as
    3.2 kimg / 8 = 400.00000000000006 steps does not add a step."""
    return max(1, math.ceil(round(kimg * 1000 / batch, 6)))


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
    return min(fits, key=lambda n: (not getattr(RECIPES[n], "picked_for_fine_tuning", True),
                                    RECIPES[n].conditional != conditional,
                                    n != model.architecture, n))


def _recipes_hint(architecture: str) -> str:
    fits = sorted((n for n in recipe_names() if RECIPES[n].architecture == architecture),
                  key=lambda n: not getattr(RECIPES[n], "picked_for_fine_tuning", True))
    if fits:
        return f"use --recipe {' or '.join(fits)} (or leave out --recipe)"
    trainable = sorted({cls.architecture for cls in RECIPES.values()})
    return f"the recipes train {', '.join(trainable)} models"


def _already_a_run(out: Path, latest: dict[str, Path]) -> GanStudioError:
    return GanStudioError(f"{out} already holds a run (step {snapshot_step(latest['state'])}); "
                          "pass --resume to continue it or choose another --out")
