"""The training loop: a Trainer holds one run's models, optimizers, EMA, step and history.

`train_steps(n)` runs n steps; each step runs the recipe's phases (e.g. D then G). A phase
splits this rank's share of the global batch into micro-batches, accumulates their gradients,
averages them across ranks, checks the losses and gradients are finite and steps its
optimizer. All randomness comes from generators seeded by (seed, step, phase), so a run is
reproducible, and k steps + save + load + (n - k) steps equal n steps bit for bit on the CPU.

Training runs with grad enabled and outside inference mode whoever calls it (ComfyUI runs
nodes under torch.inference_mode()).
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
import uuid
from collections.abc import Callable

import torch
from torch import nn

from ..errors import GanStudioError
from ..model import GenerativeModel, to_unit_hwc
from .datasets import ImageDataset
from .distributed import DistContext
from .ema import EMA
from .history import LossHistory
from .pairs import check_data_kind
from .plots import image_grid, loss_curve
from .recipes import Phase, Recipe, StepContext, make_recipe
from .sampler import StepSampler
from .seeding import BatchRandom, derive_seed
from .state import capture_rng, flatten, restore_rng, unflatten

STATE_FORMAT = "gan-studio-training"
STATE_VERSION = 1
OnStep = Callable[["Trainer", dict], None]


class TrainingDiverged(GanStudioError):
    """A loss or gradient became NaN/inf; the run cannot continue from its current weights."""


@contextlib.contextmanager
def grad_enabled():
    """Autograd on, inference mode off (for callers running under torch.inference_mode)."""
    with torch.inference_mode(False), torch.enable_grad():
        yield


class Trainer:
    def __init__(self, recipe: Recipe, dataset: ImageDataset, batch: int = 32, seed: int = 0,
                 device: torch.device | str = "cpu", batch_gpu: int | None = None,
                 dist: DistContext | None = None, init_model: GenerativeModel | None = None,
                 run_name: str | None = None):
        with grad_enabled():
            self.recipe, self.seed, self.batch = recipe, int(seed), int(batch)
            self.dist = dist or DistContext()
            self.device = torch.device(device)
            self.run_name = run_name or f"run-{uuid.uuid4().hex[:8]}"
            self._check_batch(batch_gpu)
            if recipe.conditional and dataset.num_classes != recipe.num_classes:
                raise GanStudioError(
                    f"recipe {recipe.name} was set up for {recipe.num_classes} classes, the "
                    f"dataset has {dataset.num_classes}")
            check_data_kind(recipe.name, recipe.data_kind, dataset)
            adopt = getattr(recipe, "adopt_dataset", None)
            if adopt is not None:  # e.g. StackGAN's vocabulary comes from the captions
                adopt(dataset)
            if init_model is not None:
                recipe.adopt_model_config(init_model.architecture, init_model.config)
            self.dataset = _usable(dataset.at_resolution(recipe.resolution))
            self.sampler = StepSampler(len(self.dataset), self.batch, self.seed, self.dataset.xflip)
            with torch.random.fork_rng(devices=[]):  # init from the run seed, globals untouched
                torch.manual_seed(derive_seed(self.seed, "init"))
                nets = recipe.build_networks()
            if init_model is not None:
                _load_weights(nets, init_model)
            self.nets = {role: net.to(self.device).train() for role, net in nets.items()}
            for net in self.nets.values():
                self.dist.broadcast(net)
            self.ema = EMA(self.nets[recipe.ema_role], float(recipe.options["ema_kimg"]),
                           recipe.options["ema_rampup"])
            if init_model is not None:  # the given generator is already an average: keep it
                self.ema.module.load_state_dict(self.nets[recipe.ema_role].state_dict())
            self.optimizers = recipe.make_optimizers(self.nets)
            self.step = 0
            self.images_seen = 0
            self.elapsed_s = 0.0
            self.cpu_s = 0.0  # this process's CPU time in steps: a fair clock on a shared machine
            self.history = LossHistory()
            self.broken: str | None = None
            self.amp_dtype = _amp_dtype(recipe.options["amp"], self.device)

    def _check_batch(self, batch_gpu: int | None) -> None:
        world = self.dist.world
        if self.batch < 1 or self.batch % world:
            raise GanStudioError(f"batch {self.batch} must be a positive multiple of the "
                                 f"number of processes ({world})")
        self.local_batch = self.batch // world
        self.batch_gpu = int(batch_gpu or self.local_batch)
        if self.batch_gpu < 1 or self.local_batch % self.batch_gpu:
            raise GanStudioError(f"batch per process ({self.local_batch}) must be a multiple of "
                                 f"the micro-batch ({self.batch_gpu})")

    # --- training -----------------------------------------------------------------------------
    def train_steps(self, n: int, on_step: OnStep | None = None) -> dict[str, float]:
        """Run n steps; on_step(trainer, metrics) after each (it may raise to stop)."""
        if self.broken:
            raise TrainingDiverged(self.broken)
        metrics: dict[str, float] = {}
        with grad_enabled():
            for _ in range(int(n)):
                metrics = self._one_step()
                if on_step is not None:
                    on_step(self, metrics)
        return metrics

    def _one_step(self) -> dict[str, float]:
        start, cpu_start = time.perf_counter(), time.process_time()
        indices, flips = self.sampler.global_batch(self.step)
        metrics: dict[str, float] = {}
        for phase in self.recipe.phases():
            if self.step % phase.interval == 0:
                metrics.update(self._run_phase(phase, indices, flips))
        for net in self.nets.values():
            self.dist.average_buffers(net)
        self.images_seen += self.batch
        self.ema.update(self.nets[self.recipe.ema_role], self.images_seen, self.batch)
        self.step += 1
        self.history.add(self.step, metrics)
        self.elapsed_s += time.perf_counter() - start
        self.cpu_s += time.process_time() - cpu_start
        return metrics

    def _run_phase(self, phase: Phase, indices: torch.Tensor,
                   flips: torch.Tensor | None) -> dict[str, float]:
        opt = self.optimizers[phase.optimizer]
        for role, net in self.nets.items():
            net.requires_grad_(role in phase.trains)
        params = [p for role in phase.trains for p in self.nets[role].parameters()]
        opt.zero_grad(set_to_none=True)
        seed = derive_seed(self.seed, "step", self.step, phase.name)
        first = self.dist.rank * self.local_batch
        sums: dict[str, torch.Tensor] = {}
        for lo in range(first, first + self.local_batch, self.batch_gpu):
            hi = lo + self.batch_gpu
            real, labels = self.dataset.batch(
                indices[lo:hi], None if flips is None else flips[lo:hi], self.device)
            rand = BatchRandom(seed, self.batch, lo, hi, self.device)
            ctx = StepContext(self.nets, rand, self.step, self.device)
            with self._autocast():
                wants = self.recipe.num_classes or self.recipe.data_kind == "captioned"
                loss, parts = self.recipe.loss(phase.name, ctx, real, labels if wants else None)
            weight = (hi - lo) / self.local_batch  # micro-batch share of this rank's mean
            (loss * weight).backward()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0) + v.detach().float() * weight
        metrics = self.dist.average_metrics(sums)
        for k, v in metrics.items():
            if not math.isfinite(v):
                self._diverge(f"{k} became {v}")
        self.dist.sync_grads(params)
        grads = [p.grad for p in params if p.grad is not None]
        if grads and not bool(torch.stack([torch.isfinite(g).all() for g in grads]).all()):
            self._diverge(f"the {phase.name} gradients became NaN or infinite")
        opt.step()
        return metrics

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _diverge(self, what: str) -> None:
        rates = learning_rates(self.recipe.options)
        now = ", ".join(f"{k} = {float(v):g}" for k, v in rates.items())
        advice = (f"Lower {' and '.join(rates)} (now {now})" if rates
                  else "Lower the learning rate")
        if "loss" in self.recipe.options:
            advice += " or try another loss"
        self.broken = (
            f"training diverged at step {self.step + 1}: {what}. These weights cannot be "
            "trained further; any snapshot written before was left as it was. "
            f"{advice}, then resume from the last snapshot or start again (the same settings "
            "diverge at the same step again).")
        raise TrainingDiverged(self.broken)

    def change_learning_rates(self, rates: dict[str, float]) -> None:
        """Set learning-rate options (e.g. lower ones on resume) in the recipe and its
        optimizers; moments, step and everything else stay as they are."""
        known = learning_rates(self.recipe.options)
        unknown = sorted(set(rates) - set(known))
        if unknown:
            raise GanStudioError(f"recipe {self.recipe.name} has no learning rate(s) {unknown}; "
                                 f"its learning rates are {sorted(known)}")
        recipe = make_recipe(self.recipe.name, {**self.recipe.options, **rates},
                             self.recipe.num_classes)
        recipe.load_state_dict(self.recipe.state_dict())
        # Fresh optimizers say which lr each param group takes; the moments stay ours.
        fresh = recipe.make_optimizers(self.nets)
        for key, opt in self.optimizers.items():
            for group, new in zip(opt.param_groups, fresh[key].param_groups, strict=True):
                group["lr"] = new["lr"]
        self.recipe = recipe

    def check_finite(self) -> None:
        """Raise instead of letting NaN/inf weights reach a snapshot."""
        if self.broken:
            raise TrainingDiverged(self.broken)
        for role, net in [*self.nets.items(), ("ema", self.ema.module)]:
            for name, t in net.state_dict().items():
                if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                    self.broken = f"training diverged: {role}.{name} holds NaN or infinite values"
                    raise TrainingDiverged(self.broken)

    # --- what the run produces ----------------------------------------------------------------
    @property
    def kimg(self) -> float:
        return self.images_seen / 1000

    def export_model(self) -> GenerativeModel:
        """A GenerativeModel of copies on the CPU: the EMA generator (or translator) + the
        other networks."""
        averaged = self.recipe.ema_role
        with grad_enabled():
            nets = {role: copy.deepcopy(net).to("cpu") for role, net in self.nets.items()
                    if role != averaged}
            nets[averaged] = copy.deepcopy(self.ema.module).to("cpu")
            finish = getattr(self.recipe, "finish_export", None)
            if finish is not None:  # e.g. BigGAN's standing batch-norm statistics
                finish(nets)
        names = list(self.dataset.class_names) if self.recipe.num_classes else None
        provenance = {"recipe": self.recipe.name, "options": self.recipe.options,
                      "steps": self.step, "kimg": round(self.kimg, 3), "seed": self.seed,
                      "batch": self.batch, "data": self.dataset.source,
                      "images": len(self.dataset)}
        return GenerativeModel(self.recipe.architecture, self.recipe.model_config(), nets,
                               class_names=names, metadata={"provenance": provenance})

    def grid_latents(self, count: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Fixed latents (from the run seed) for sample grids; conditional rows cycle classes."""
        res = self.recipe.resolution
        count = count or (64 if res <= 64 else 16 if res <= 256 else 4)
        gen = torch.Generator().manual_seed(derive_seed(self.seed, "grid"))
        z = torch.randn(count, self.ema.module.z_dim, generator=gen)
        if not self.recipe.num_classes:
            return z, None
        cols = math.ceil(math.sqrt(count))
        rows = torch.arange(count) // cols % self.recipe.num_classes
        return z, torch.nn.functional.one_hot(rows, self.recipe.num_classes).float()

    @torch.no_grad()
    def sample_grid(self, count: int | None = None) -> torch.Tensor:
        """The EMA generator on the fixed grid latents: one `[H, W, 3]` image, 0..1 (or
        the recipe's own grid, e.g. a translator's inputs and outputs)."""
        if hasattr(self.recipe, "sample_grid"):
            return self.recipe.sample_grid(self)
        z, c = self.grid_latents(count)
        g = self.ema.module
        images = torch.cat([
            g(z[i:i + 16].to(self.device), None if c is None else c[i:i + 16].to(self.device))
            for i in range(0, len(z), 16)])
        return image_grid(to_unit_hwc(images).cpu())

    def preview_grids(self) -> dict[str, torch.Tensor]:
        """Pictures of the run's progress, each one `[H, W, 3]` image 0..1: always 'samples'
        (the fixed latents), plus whatever else the recipe shows (e.g. VAE reconstructions)."""
        grids = getattr(self.recipe, "preview_grids", None)
        return dict(grids(self)) if grids else {"samples": self.sample_grid()}

    def loss_curve(self, width: int = 640, height: int = 400) -> torch.Tensor:
        img = loss_curve(self.history.as_dict(), width, height)
        return torch.from_numpy(_pil_array(img)).float() / 255.0

    # --- state ----------------------------------------------------------------------------
    def state_dict(self, include_rng: bool = True) -> tuple[dict[str, torch.Tensor], dict]:
        """(tensors, JSON metadata) holding everything needed to continue the run exactly."""
        tensors: dict[str, torch.Tensor] = {}
        for role, net in [*self.nets.items(), ("ema", self.ema.module)]:
            for name, t in net.state_dict().items():
                tensors[f"net.{role}.{name}"] = t.detach().to("cpu").contiguous().clone()
        meta = {
            "format": STATE_FORMAT, "version": STATE_VERSION,
            "recipe": self.recipe.name, "options": self.recipe.options,
            "num_classes": self.recipe.num_classes, "class_names": list(self.dataset.class_names),
            "batch": self.batch, "seed": self.seed, "step": self.step,
            "images_seen": self.images_seen, "elapsed_s": self.elapsed_s, "cpu_s": self.cpu_s,
            "run_name": self.run_name,
            "dataset": {"source": self.dataset.source, "count": len(self.dataset),
                        "resolution": self.dataset.resolution, "xflip": self.dataset.xflip,
                        "fingerprint": self.dataset.fingerprint},
            "optimizers": {k: flatten(o.state_dict(), f"opt.{k}", tensors)
                           for k, o in self.optimizers.items()},
            "recipe_state": flatten(self.recipe.state_dict(), "recipe", tensors),
            "history": flatten(self.history.state_dict(), "history", tensors),
        }
        if include_rng:
            meta["rng"] = flatten(capture_rng(), "rng", tensors)
        return tensors, meta

    def load_state_dict(self, tensors: dict[str, torch.Tensor], meta: dict,
                        restore_global_rng: bool = False) -> None:
        with grad_enabled():
            for role, net in [*self.nets.items(), ("ema", self.ema.module)]:
                prefix = f"net.{role}."
                net.load_state_dict({k[len(prefix):]: v for k, v in tensors.items()
                                     if k.startswith(prefix)})
            for k, opt in self.optimizers.items():
                opt.load_state_dict(_own_tensors(unflatten(meta["optimizers"][k], tensors)))
            self.recipe.load_state_dict(unflatten(meta["recipe_state"], tensors))
            self.history.load_state_dict(unflatten(meta["history"], tensors))
        self.step, self.images_seen = int(meta["step"]), int(meta["images_seen"])
        self.elapsed_s = float(meta.get("elapsed_s", 0.0))
        self.cpu_s = float(meta.get("cpu_s", 0.0))
        self.run_name = meta.get("run_name", self.run_name)
        if restore_global_rng and "rng" in meta:
            restore_rng(unflatten(meta["rng"], tensors))

    @classmethod
    def from_state(cls, tensors: dict[str, torch.Tensor], meta: dict, dataset: ImageDataset,
                   device: torch.device | str = "cpu", batch_gpu: int | None = None,
                   dist: DistContext | None = None, restore_global_rng: bool = False) -> "Trainer":
        if meta.get("format") != STATE_FORMAT:
            raise GanStudioError("not a GAN Studio training state")
        if int(meta.get("version", 0)) > STATE_VERSION:
            raise GanStudioError(f"training state version {meta['version']} is newer than this "
                                 f"version of GAN Studio reads ({STATE_VERSION}); update the pack")
        recipe = make_recipe(meta["recipe"], meta["options"], int(meta["num_classes"]))
        if recipe.conditional and dataset.num_classes != recipe.num_classes:
            raise GanStudioError(
                f"the run was trained on {recipe.num_classes} classes "
                f"({', '.join(meta['class_names'])}); this dataset has {dataset.num_classes}")
        trainer = cls(recipe, dataset, batch=int(meta["batch"]), seed=int(meta["seed"]),
                      device=device, batch_gpu=batch_gpu, dist=dist)
        trainer.load_state_dict(tensors, meta, restore_global_rng)
        return trainer

    def clone(self, device: torch.device | str | None = None) -> "Trainer":
        """An independent copy (weights, optimizer moments, EMA, history); the dataset is
        shared because nothing ever writes to it."""
        tensors, meta = self.state_dict(include_rng=False)
        recipe = make_recipe(self.recipe.name, self.recipe.options, self.recipe.num_classes)
        twin = Trainer.__new__(Trainer)
        twin.__dict__.update(self.__dict__)
        with grad_enabled():
            twin.recipe = recipe
            twin.device = torch.device(device) if device is not None else self.device
            twin.nets = {r: copy.deepcopy(n).to(twin.device) for r, n in self.nets.items()}
            twin.ema = copy.copy(self.ema)
            twin.ema.module = copy.deepcopy(self.ema.module).to(twin.device)
            twin.optimizers = recipe.make_optimizers(twin.nets)
            twin.history = LossHistory()
            twin.sampler = StepSampler(len(self.dataset), self.batch, self.seed,
                                       self.dataset.xflip)
            twin.amp_dtype = _amp_dtype(recipe.options["amp"], twin.device)
        twin.load_state_dict(tensors, meta)
        return twin

    def to(self, device: torch.device | str) -> "Trainer":
        """Move the models and optimizer state (e.g. to rest on the CPU between node runs)."""
        self.device = torch.device(device)
        with grad_enabled():
            for net in [*self.nets.values(), self.ema.module]:
                net.to(self.device)
            for opt in self.optimizers.values():
                for st in opt.state.values():
                    for k, v in st.items():
                        if torch.is_tensor(v) and k != "step":
                            st[k] = v.to(self.device)
        self.amp_dtype = _amp_dtype(self.recipe.options["amp"], self.device)
        return self

    def describe(self) -> str:
        return (f"{self.recipe.name} {self.recipe.resolution}px, batch {self.batch}, "
                f"step {self.step} ({self.kimg:.1f} kimg), data: {self.dataset.describe()}")


def learning_rates(options: dict) -> dict[str, float]:
    """The learning-rate options of a recipe's options: lr, or lr_g and lr_d, ..."""
    return {k: v for k, v in options.items() if k == "lr" or k.startswith("lr_")}


def _usable(dataset: ImageDataset) -> ImageDataset:
    inference = dataset.images.is_inference() or (
        dataset.labels is not None and dataset.labels.is_inference())
    return dataset.detached() if inference else dataset


def _load_weights(nets: dict[str, nn.Module], model: GenerativeModel) -> None:
    """Copy a model's weights into fresh training networks (never sharing its tensors)."""
    for role, net in nets.items():
        source = model.networks.get(role)
        if source is None:
            continue  # e.g. a generator-only file: this role starts from random init
        state = {k: v.detach().to("cpu").clone() for k, v in source.state_dict().items()}
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            raise GanStudioError(f"the model's {role} does not fit the recipe's network: "
                                 f"{str(exc).splitlines()[0]}") from None


def _own_tensors(state):
    """Optimizer.load_state_dict may keep the given tensors: give it private copies."""
    if torch.is_tensor(state):
        return state.clone()
    if isinstance(state, dict):
        return {k: _own_tensors(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(_own_tensors(v) for v in state)
    return state


def _amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """bf16 autocast on CUDA devices that support it ('auto' or 'bf16'); never on the CPU."""
    if mode == "off" or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else None


def _pil_array(img):
    import numpy as np

    return np.asarray(img, dtype=np.uint8).copy()
