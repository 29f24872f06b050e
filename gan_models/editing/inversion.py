"""Inversion: find the latents whose images look like given images, for any model that
generates.

Optimisation (after the StyleGAN2-ADA projector, Karras et al. 2020): Adam on the latent,
learning rate ramped up over the first 5 % of the steps and down (cosine) over the last
25 %; while starting from the average latent, Gaussian noise is added to the latent and
ramped to zero over the first 75 % of the steps, so the early steps explore. The loss per
image is

    pixel_weight * pixel_loss + structure_weight * structure_loss
        + perceptual_weight * perceptual distance (+ noise_weight * noise regularisation)

Spaces: z (any generator, through the mapping network for StyleGAN), w (one style vector
for every layer) or w+ (one per layer: closer fits, less typical latents; "auto" picks it
for StyleGAN, z for the others). Start: the
encoder's guess for models that have one (VAEs; the steps then refine it), else the average
latent: the mean of 1,000 mapped samples for StyleGAN (of the image's class for conditional
models), z = 0 otherwise. A class-conditional model without given classes tries each class's
average and keeps the closest.

StyleGAN2 noise: `noise="fixed"` keeps the model's stored noise maps, so Generate Images
renders exactly what was fitted. `noise="optimise"` also fits one noise map per image and
layer, regularised so they stay noise-like; those maps are not part of a latent, so the
returned images and PSNR are re-rendered with the stored noise (what Generate shows).

Each image is its own problem: the result keeps, per image, the latent of the step with the
lowest loss. `on_step(step, total, images)` runs after every step and may raise
StopProjection: project() then returns the best latents so far (`interrupted=True`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..errors import CapabilityError, GanStudioError
from ..latent import LatentBatch, seeded_normal
from ..model import GenerativeModel
from .losses import (
    noise_regularisation,
    normalise_noise_,
    pixel_loss,
    psnr,
    structure_loss,
)
from .perceptual import PerceptualDistance

SPACES = ("auto", "z", "w", "w+")
STARTS = ("auto", "average", "encoder")
NOISE_MODES = ("fixed", "optimise")
AVERAGE_SAMPLES = 1000
MAX_GUESS_CLASSES = 64  # above this, classes must be given (each guess renders a batch)

OnStep = Callable[[int, int, torch.Tensor], None]


class StopProjection(Exception):
    """Raised by an on_step callback to end a projection early; project() then returns the
    best latents found so far."""


@dataclass(frozen=True)
class ProjectionSettings:
    space: str = "auto"
    steps: int = 300
    learning_rate: float = 0.1
    pixel_weight: float = 1.0
    structure_weight: float = 1.0
    perceptual_weight: float = 1.0
    noise: str = "fixed"
    noise_weight: float = 1e5
    latent_noise: float = 0.05  # start noise, as a fraction of the latents' spread
    start: str = "auto"
    seed: int = 0
    rampup: float = 0.05
    rampdown: float = 0.25
    noise_ramp: float = 0.75


@dataclass
class ProjectionResult:
    latents: LatentBatch
    images: torch.Tensor  # best reconstructions `[B, C, R, R]` in [-1, 1], CPU
    loss: torch.Tensor  # `[B]` best loss of each image
    psnr: torch.Tensor  # `[B]` dB, reconstruction against target
    steps_done: int
    interrupted: bool
    space: str
    start: str
    history: list[float] = field(default_factory=list)  # mean loss: start, each step
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        done = (f"stopped after {self.steps_done} steps (best so far kept)" if self.interrupted
                else f"{self.steps_done} steps")
        values = ", ".join(f"{v:.1f}" for v in self.psnr.tolist()[:8])
        more = ", ..." if len(self.psnr) > 8 else ""
        text = (f"projected {len(self.psnr)} image(s) into {self.space} ({done}, start: "
                f"{self.start}); PSNR {values}{more} dB (mean {self.psnr.mean():.2f})")
        return "; ".join([text, *self.notes])


# --- settings ------------------------------------------------------------------------------
def resolve_space(model: GenerativeModel, space: str) -> str:
    if space not in SPACES:
        raise GanStudioError(f"unknown space {space!r} (expected one of {SPACES})")
    if space == "auto":  # w+ fits images from outside the training set far better than w
        return "w+" if model.has_mapping else "z"
    if space != "z" and not model.has_mapping:
        raise CapabilityError(f"{space} needs a style-based model (StyleGAN); "
                              f"{model.describe()} takes z")
    return space


def resolve_start(model: GenerativeModel, start: str, given: bool) -> str:
    if given:
        return "given latents"
    if start not in STARTS:
        raise GanStudioError(f"unknown start {start!r} (expected one of {STARTS})")
    if start == "encoder" and not model.can_encode:
        raise CapabilityError(f"model {model.describe()} has no encoder; start from the "
                              "average latent")
    if start == "auto":
        return "encoder" if model.can_encode else "average"
    return start


def check_settings(model: GenerativeModel, s: ProjectionSettings, space: str,
                   start: str) -> None:
    if s.steps < 0:
        raise GanStudioError(f"steps must not be negative, got {s.steps}")
    if s.steps == 0 and start != "encoder":
        what = ("start from the encoder, or give" if model.can_encode else "give")
        raise GanStudioError(f"steps is 0: nothing would be fitted; {what} at least a few "
                             "steps (e.g. 300; 0 steps only makes sense with an encoder)")
    if s.noise not in NOISE_MODES:
        raise GanStudioError(f"unknown noise mode {s.noise!r} (expected one of {NOISE_MODES})")
    for name in ("learning_rate", "pixel_weight", "structure_weight", "perceptual_weight",
                 "noise_weight", "latent_noise"):
        value = getattr(s, name)
        if not math.isfinite(value) or value < 0:
            raise GanStudioError(f"{name} must be a finite number >= 0, got {value}")
    if s.steps and s.learning_rate <= 0:
        raise GanStudioError("learning_rate must be above 0")


def learning_rate(s: ProjectionSettings, step: int) -> float:
    """Ramp up over the first `rampup`, cosine down over the last `rampdown` of the steps."""
    t = step / max(s.steps, 1)
    ramp = min(1.0, (1.0 - t) / s.rampdown) if s.rampdown > 0 else 1.0
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    if s.rampup > 0:
        ramp *= min(1.0, t / s.rampup)
    return s.learning_rate * max(ramp, 0.0)


# --- the generator as a differentiable function of the latent -----------------------------
def render(model: GenerativeModel, gen: torch.nn.Module, space: str, latent: torch.Tensor,
           labels: torch.Tensor | None) -> torch.Tensor:
    """Images `[B, C, R, R]` of latents in `space`, with the stored noise maps."""
    if space == "z" and not model.has_mapping:
        return gen(latent, labels)
    if space == "z":
        ws = gen.mapping(latent, labels)
    elif space == "w":
        ws = latent[:, None].expand(-1, model.num_ws, -1)
    else:
        ws = latent
    return gen.synthesis(ws, noise_mode="const")


class Renderer:
    """A private copy of the generator (outside inference mode, so autograd works even for
    a model loaded under ComfyUI's inference mode) that renders latents of one space; its
    noise maps can be swapped for free per-image ones without touching the model."""

    def __init__(self, model: GenerativeModel, space: str, labels: torch.Tensor | None):
        self.model, self.space = model, space
        self.device = model.device
        self.gen = copy.deepcopy(model.generator).to(self.device).eval().requires_grad_(False)
        self.labels = None if labels is None else labels.to(self.device, torch.float32)
        self.noise_layers = [m for m in self.gen.modules()
                             if isinstance(getattr(m, "noise_const", None), torch.Tensor)
                             and getattr(m, "use_noise", True)]
        self.stored_noise = [m.noise_const for m in self.noise_layers]

    def __call__(self, latent: torch.Tensor) -> torch.Tensor:
        return render(self.model, self.gen, self.space, latent, self.labels)

    def free_noise(self, batch: int) -> list[torch.Tensor]:
        """Per-image noise maps `[B, 1, H, W]` (leaves that require grad) put in place of the
        stored ones, starting from them."""
        maps = []
        for layer, stored in zip(self.noise_layers, self.stored_noise, strict=True):
            v = stored.detach().float().reshape(1, 1, *stored.shape[-2:]).repeat(batch, 1, 1, 1)
            v = v.to(self.device).requires_grad_(True)
            layer.noise_const = v
            maps.append(v)
        normalise_noise_(maps)
        return maps

    def restore_noise(self) -> None:
        for layer, stored in zip(self.noise_layers, self.stored_noise, strict=True):
            layer.noise_const = stored


class Objective:
    """Per-image loss of rendered images against fixed targets."""

    def __init__(self, targets: torch.Tensor, s: ProjectionSettings,
                 perceptual: PerceptualDistance | None):
        self.targets, self.s = targets, s
        self.perceptual = perceptual if s.perceptual_weight > 0 else None
        self.target_features = None
        if self.perceptual is not None:
            with torch.no_grad():
                self.target_features = self.perceptual.features(targets)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        s, t = self.s, self.targets
        loss = s.pixel_weight * pixel_loss(images, t)
        if s.structure_weight:
            loss = loss + s.structure_weight * structure_loss(images, t)
        if self.perceptual is not None:
            dist = self.perceptual.distance(self.perceptual.features(images),
                                            self.target_features)
            loss = loss + s.perceptual_weight * dist
        return loss


# --- starting points -----------------------------------------------------------------------
@torch.no_grad()
def average_w(model: GenerativeModel, labels: torch.Tensor | None, seed: int,
              samples: int = AVERAGE_SAMPLES) -> tuple[torch.Tensor, float]:
    """Mean mapped W per image `[B, w_dim]` (per class row of `labels`, or one shared) and the
    spread of W (root mean squared distance of samples from their mean)."""
    gen, device = model.generator, model.device
    z = seeded_normal(seed, samples, model.z_dim).to(device)
    rows = [None] if labels is None else list(labels.to(device, torch.float32))
    means, spread = [], 0.0
    for row in rows:
        c = None if row is None else row[None].expand(samples, -1)
        w = gen.mapping(z, c)[:, 0].float()
        mean = w.mean(0)
        means.append(mean)
        spread = max(spread, float((w - mean).square().sum(1).mean().sqrt()))
    return torch.stack(means), spread


def start_latents(model: GenerativeModel, space: str, start: str, targets: torch.Tensor,
                  labels: torch.Tensor | None, seed: int) -> tuple[torch.Tensor, float]:
    """(latents `[B, ...]` on the model's device, their spread for the exploration noise)."""
    b = targets.shape[0]
    if start == "encoder":
        z = model.encode(targets, labels).values.to(model.device)
        return z, math.sqrt(model.z_dim)
    if space == "z":
        return torch.zeros(b, model.z_dim, device=model.device), math.sqrt(model.z_dim)
    w, spread = average_w(model, labels, seed)
    w = w.expand(b, -1) if len(w) == 1 else w
    if space == "w+":
        w = w[:, None].repeat(1, model.num_ws, 1)
    return w.contiguous(), spread


def from_given(model: GenerativeModel, given: LatentBatch, space: str, count: int
               ) -> torch.Tensor:
    """Given start latents in the projection's space, one per image."""
    model.check_latents(given)
    if len(given) not in (1, count):
        raise GanStudioError(f"{len(given)} start latents for {count} images: give one, or "
                             "one per image")
    if space == "z":
        if given.space != "z":
            raise GanStudioError(f"start latents in {given.space} cannot start a projection "
                                 "in z; project in w or w+ instead")
        values = given.values
    else:
        ws = model.to_wplus(given).float()
        values = ws if space == "w+" else ws.mean(1)
    values = values.to(model.device).float()
    return values.expand(count, *values.shape[1:]).clone() if len(values) == 1 else values


@torch.no_grad()
def guess_classes(model: GenerativeModel, targets: torch.Tensor, objective: Objective,
                  space: str, start: str, seed: int) -> torch.Tensor:
    """One-hot classes `[B, num_classes]`: for each image the class whose starting image
    is closest (lowest loss)."""
    n = model.num_classes
    if n > MAX_GUESS_CLASSES:
        raise GanStudioError(f"model {model.describe()} has {n} classes: give the images' "
                             "classes (trying each one would take too long)")
    b = targets.shape[0]
    losses = []
    for k in range(n):
        labels = torch.zeros(b, n)
        labels[:, k] = 1
        latent, _ = start_latents(model, space, start, targets, labels, seed)
        images = render(model, model.generator, space, latent, labels.to(model.device))
        losses.append(objective(images))
    best = torch.stack(losses, 1).argmin(1).cpu()
    return torch.nn.functional.one_hot(best, n).float()


# --- the projection ------------------------------------------------------------------------
def project(model: GenerativeModel, targets: torch.Tensor, settings: ProjectionSettings,
            labels: torch.Tensor | None = None, start_from: LatentBatch | None = None,
            perceptual: PerceptualDistance | None = None,
            on_step: OnStep | None = None) -> ProjectionResult:
    """Latents for target images `[B, C, R, R]` in [-1, 1] at the model's resolution.

    labels: class weights `[B, num_classes]` for class-conditional models (None: guessed).
    start_from: latents to start from (one, or one per image) instead of settings.start.
    perceptual: a distance from perceptual.load_perceptual (None: no perceptual term).
    """
    model.require("generate")
    s = settings
    space = resolve_space(model, s.space)
    start = resolve_start(model, s.start, start_from is not None)
    check_settings(model, s, space, start)
    want = (model.channels, model.resolution, model.resolution)
    if targets.dim() != 4 or tuple(targets.shape[1:]) != want or len(targets) == 0:
        raise GanStudioError(f"images of shape {tuple(targets.shape)} do not fit "
                             f"{model.describe()}, which makes [B, {', '.join(map(str, want))}]")
    if model.conditioning == "text":
        raise CapabilityError(f"model {model.describe()} is text-conditioned; projecting "
                              "into it is not supported")
    notes: list[str] = []
    with torch.inference_mode(False), torch.enable_grad():
        targets = targets.detach().clone().float().to(model.device)
        if perceptual is not None:
            perceptual = perceptual.to(model.device)
        objective = Objective(targets, s, perceptual)
        if model.num_classes and labels is None:
            if start_from is not None and start_from.labels is not None:
                labels = start_from.labels.expand(len(targets), -1).clone()
            else:
                labels = guess_classes(model, targets, objective, space,
                                       "average" if start == "given latents" else start, s.seed)
                names = [model.class_names[int(i)] for i in labels.argmax(1)]
                notes.append("classes guessed: " + ", ".join(names[:8])
                             + (", ..." if len(names) > 8 else ""))
        if labels is not None:
            labels = labels.detach().clone().float()
            if model.num_classes == 0:
                labels = None
        if start_from is not None:
            latent = from_given(model, start_from, space, len(targets))
            spread = 0.0
        else:
            latent, spread = start_latents(model, space, start, targets, labels, s.seed)
        renderer = Renderer(model, space, labels)
        best, steps_done, interrupted, history = _optimise(
            renderer, objective, latent.detach().clone(), s,
            spread if start == "average" else 0.0, on_step)
        with torch.no_grad():  # what Generate Images will show: the stored noise
            renderer.restore_noise()
            images = renderer(best["latent"]).float()
    if s.noise == "optimise" and not renderer.noise_layers:
        notes.append("this model has no noise maps; noise 'optimise' changed nothing")
    batch = LatentBatch(
        values=best["latent"].float().cpu(), space=space,
        labels=None if labels is None else labels.cpu(), model_id=model.model_id,
        extra={"origin": "projection", "projection": {
            "space": space, "steps": steps_done, "of": s.steps, "interrupted": interrupted,
            "start": start, "psnr": [round(float(v), 3) for v in psnr(images, targets).cpu()],
        }})
    return ProjectionResult(latents=batch, images=images.detach().cpu(),
                            loss=best["loss"].detach().cpu(),
                            psnr=psnr(images, targets).detach().cpu(),
                            steps_done=steps_done, interrupted=interrupted, space=space,
                            start=start, history=history, notes=notes)


def _optimise(renderer: Renderer, objective: Objective, latent: torch.Tensor,
              s: ProjectionSettings, spread: float, on_step: OnStep | None):
    gen = torch.Generator().manual_seed(int(s.seed) & 0xFFFFFFFFFFFFFFFF)
    b = latent.shape[0]
    with torch.no_grad():
        first = objective(renderer(latent))
    best = {"latent": latent.clone(), "loss": first.clone()}
    history = [float(first.mean())]
    if s.steps == 0:
        return best, 0, False, history
    latent.requires_grad_(True)
    noise_maps = renderer.free_noise(b) if s.noise == "optimise" else []
    optimizer = torch.optim.Adam([latent, *noise_maps], lr=s.learning_rate, betas=(0.9, 0.999))
    done, interrupted = 0, False
    try:
        for step in range(s.steps):
            t = step / s.steps
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(s, step)
            noise_scale = spread * s.latent_noise * max(0.0, 1.0 - t / s.noise_ramp) ** 2
            used = latent
            if noise_scale > 0:
                used = latent + noise_scale * torch.randn(latent.shape, generator=gen).to(latent)
            images = renderer(used)
            per_image = objective(images)
            loss = per_image.sum()
            if noise_maps and s.noise_weight > 0:
                loss = loss + s.noise_weight * noise_regularisation(noise_maps).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            normalise_noise_(noise_maps)
            with torch.no_grad():
                better = per_image.detach() < best["loss"]
                if bool(better.any()):
                    best["latent"][better] = used.detach()[better]
                    best["loss"] = torch.where(better, per_image.detach(), best["loss"])
            history.append(float(per_image.detach().mean()))
            done = step + 1
            if on_step is not None:
                on_step(done, s.steps, images.detach())
    except StopProjection:
        interrupted = True
    return best, done, interrupted, history
