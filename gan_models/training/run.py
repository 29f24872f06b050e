"""A headless training run in a folder (what `python -m gan_models train` drives).

RUN_DIR/run.json            settings of the run (data, recipe, batch, seed, ...)
RUN_DIR/snapshots/          numbered snapshot pairs + latest.json (see snapshots.py)
RUN_DIR/samples/*.png       reals.png, then a grid of the fixed latents at each snapshot
RUN_DIR/metrics.jsonl       one JSON line per logging interval
RUN_DIR/model.safetensors   the final model (EMA generator + discriminator)

Works as one process or under torchrun (every rank trains; only rank 0 writes files).
A stop request (Ctrl+C, SIGTERM) is honoured between steps: a snapshot is written first.
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
from ..formats import save_model
from ..formats.atomic import atomic_path
from .datasets import load_image_folder
from .distributed import DistContext
from .loop import Trainer
from .plots import image_grid, to_pil
from .recipes import make_recipe
from .snapshots import latest_snapshot, read_state, write_snapshot

# Settings that define the run's math: a resumed run must keep them.
FIXED = ("recipe", "options", "batch", "seed", "xflip", "fit", "background")
# Settings a resumed run may change; when not given again they keep their stored values.
ADJUSTABLE = ("data", "kimg", "batch_gpu", "snap_every", "log_every", "keep")
STOPPED = 130


@dataclass
class RunSettings:
    data: str
    out: str
    recipe: str = "dcgan"
    options: dict = field(default_factory=dict)   # recipe options (resolution, loss, lr_g, ...)
    batch: int = 32
    batch_gpu: int | None = None
    kimg: float = 100.0
    seed: int = 0
    xflip: bool = False
    fit: str = "crop"
    background: str = "#ffffff"
    snap_every: int = 1000    # steps
    log_every: int = 50       # steps
    keep: int = 0             # snapshots to keep (0 = all)


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
        dataset = self._load_data()
        recipe = make_recipe(self.s.recipe, self.s.options, dataset.num_classes)
        self.s.options = dict(recipe.options)
        trainer = Trainer(recipe, dataset, batch=self.s.batch, seed=self.s.seed,
                          device=self.device, batch_gpu=self.s.batch_gpu, dist=self.dist)
        if self.dist.is_main:
            _write_json(self.out / "run.json", asdict(self.s))
            self.sample_dir.mkdir(parents=True, exist_ok=True)
            to_pil(image_grid(trainer.dataset.preview())).save(self.sample_dir / "reals.png")
        self.log(f"training {trainer.describe()}")
        return trainer

    def _resume(self, latest: dict[str, Path], explicit: set[str]) -> Trainer:
        tensors, meta = read_state(latest["state"])
        stored = self._stored_settings(meta)
        for key in FIXED:
            mine, theirs = getattr(self.s, key), stored.get(key)
            if key in explicit and theirs is not None and not _same(key, mine, theirs):
                raise GanStudioError(
                    f"this run was started with {key} = {theirs!r}, not {mine!r}; resume with "
                    "the same value or start a new run in another --out")
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

    def _load_data(self, resolution: int | None = None):
        res = int(resolution or self.s.options.get("resolution") or 64)
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
        """Train to the settings' kimg; returns 0 when done or STOPPED after a stop request."""
        total = max(1, math.ceil(self.s.kimg * 1000 / trainer.batch))
        window: list[dict] = []
        stopped = False
        logged_at = trainer.elapsed_s  # training seconds (snapshot writing excluded)

        def on_step(t: Trainer, metrics: dict) -> None:
            nonlocal stopped
            window.append(metrics)
            stopped = self.dist.any_flag(stop_requested(), self.device)

        while trainer.step < total and not stopped:
            trainer.train_steps(1, on_step)
            step = trainer.step
            if step % self.s.log_every == 0 or step == total or stopped:
                self._write_metrics(trainer, window, trainer.elapsed_s - logged_at)
                window, logged_at = [], trainer.elapsed_s
            if step % self.s.snap_every == 0 or step == total or stopped:
                self.snapshot(trainer)
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
            to_pil(trainer.sample_grid()).save(self.sample_dir / f"step-{trainer.step:08d}.png")
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


def _same(key: str, a, b) -> bool:
    if key == "options":  # only the options the user set are compared
        return all(b.get(k) == v for k, v in a.items())
    return a == b


def _step_of(latest: dict[str, Path]) -> int:
    return int(latest["state"].name.split("-")[1].split(".")[0])


def _write_json(path: Path, data: dict) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=1))
