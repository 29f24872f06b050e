"""Meaningful directions in latent space: finding them, keeping them in files, applying them.

Methods:
    sefa      closed-form factorisation (Shen & Zhou 2021): the eigenvectors of A^T A, where A
              stacks the weights that turn a latent into what the first layers see, each
              output unit's row scaled to unit length. StyleGAN: the style affines of the
              chosen layers (the style rows they read are found by one probing pass, so any
              StyleGAN2/3 generator works); DCGAN and VAE decoders: the first layer's z part.
    ganspace  principal components of sampled W (Harkonen et al. 2020); StyleGAN only.
    classes   class-conditional StyleGAN: from the average W of all classes towards each
              class's average W.
    groups    from the mean of one group of latents towards the mean of another (e.g.
              images with and without a feature, projected or picked by hand).

Every direction is a unit vector with a scale: strength 1 moves one standard deviation of
sampled latents along it (sefa, ganspace), or the whole way from one mean to the other
(classes, groups). StyleGAN directions live in W and are applied to a range of style layers
(the range they were found on unless another is given); a latent edited on part of the
layers becomes W+. Directions know the id of the model they were found on and refuse another.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from ..errors import CapabilityError, GanStudioError
from ..formats.tagged import read_tagged_meta, read_tagged_tensors, write_tagged
from ..latent import LatentBatch, seeded_normal
from ..model import GenerativeModel

METHODS = ("sefa", "ganspace", "classes", "groups")
TAG = "gan_studio_directions"
FORMAT = "gan-studio-directions"
VERSION = 1
WHAT = "GAN Studio directions file"
SCALE_SAMPLES = 2000
MAX_DIRECTIONS = 512


@dataclass
class Directions:
    """What travels between nodes as GAN_DIRECTIONS.

    vectors: unit vectors `[K, D]` (or `[K, num_ws, D]`: one part per style layer).
    scales: `[K]`, the latent step of strength 1. space: "w" (style models) or "z".
    layers: default style layers [start, end) to edit (None: all). names: one per direction.
    """

    vectors: torch.Tensor
    scales: torch.Tensor
    names: list[str]
    space: str
    method: str
    model_id: str | None
    model_name: str = ""
    layers: tuple[int, int] | None = None
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        k = self.vectors.shape[0]
        if self.vectors.dim() not in (2, 3) or k == 0:
            raise GanStudioError(f"directions must be [K, D] or [K, layers, D], got "
                                 f"{tuple(self.vectors.shape)}")
        if tuple(self.scales.shape) != (k,) or len(self.names) != k:
            raise GanStudioError(f"{k} directions with {len(self.names)} names and "
                                 f"{tuple(self.scales.shape)} scales")
        if self.space not in ("z", "w"):
            raise GanStudioError(f"directions live in z or w, not {self.space!r}")

    def __len__(self) -> int:
        return self.vectors.shape[0]

    def describe(self) -> str:
        where = "" if self.layers is None else f", layers {self.layers[0]}-{self.layers[1] - 1}"
        model = f" of {self.model_name!r}" if self.model_name else ""
        return f"{len(self)} {self.method} directions in {self.space}{where}{model}"

    def index(self, key: str | int) -> int:
        """A direction by index (negative counts from the end) or name (case-insensitive)."""
        text = str(key).strip()
        if text.lstrip("-").isdigit():
            i = int(text)
            if not -len(self) <= i < len(self):
                raise GanStudioError(f"direction {i} is out of range: there are {len(self)} "
                                     f"(0..{len(self) - 1})")
            return i % len(self)
        for i, name in enumerate(self.names):
            if name.lower() == text.lower():
                return i
        shown = ", ".join(self.names[:12]) + (", ..." if len(self) > 12 else "")
        raise GanStudioError(f"no direction named {text!r}; give an index or one of: {shown}")

    def check_model(self, model: GenerativeModel) -> None:
        if self.model_id and model.model_id != self.model_id:
            found = f"{self.model_name!r} " if self.model_name else ""
            raise GanStudioError(
                f"these directions were found on another model ({found}id {self.model_id}); "
                f"{model.describe()} has id {model.model_id}: find directions on this model")


# --- layer ranges -----------------------------------------------------------------------------
def check_layers(model: GenerativeModel, layers: tuple[int, int] | None
                 ) -> tuple[int, int] | None:
    """[start, end) within the model's style layers; None (or the full range) = all."""
    if layers is None or not model.has_mapping:
        return None
    start, end = int(layers[0]), int(layers[1])
    if not 0 <= start < end <= model.num_ws:
        raise GanStudioError(f"layer range {start}..{end} is empty or outside 0..{model.num_ws} "
                             f"(this model has {model.num_ws} style layers)")
    return None if (start, end) == (0, model.num_ws) else (start, end)


# --- finding ----------------------------------------------------------------------------------
def style_affines(model: GenerativeModel) -> list[tuple[int, torch.Tensor]]:
    """(style row, weight `[out, w_dim]`) of every style affine of a StyleGAN synthesis
    network, found by one pass with distinct rows and hooks on the affines."""
    synthesis = model.generator.synthesis
    w_dim, num_ws = model.w_dim, model.num_ws
    affines = [m for name, m in synthesis.named_modules()
               if name.split(".")[-1] == "affine" and getattr(m, "in_features", None) == w_dim]
    if not affines:
        raise CapabilityError(f"model {model.describe()} has no style affine layers")
    ws = seeded_normal(12345, num_ws, w_dim).to(model.device)[None]
    seen: dict[int, int] = {}

    def hook(module, inputs, _output):
        diffs = (inputs[0][0].detach().float()[None] - ws[0].float()).abs().amax(1)
        seen[id(module)] = int(diffs.argmin())

    handles = [m.register_forward_hook(hook) for m in affines]
    try:
        with torch.no_grad():
            synthesis(ws, noise_mode="const")
    finally:
        for h in handles:
            h.remove()
    out = []
    for m in affines:
        if id(m) in seen:
            out.append((seen[id(m)], m.weight.detach().float().cpu()))
    return out


def first_layer_z_weight(model: GenerativeModel) -> torch.Tensor:
    """`[out, z_dim]`: how the first layer of a z-input generator reads z (DCGAN, VAE
    decoders concatenate z first, then any class embedding)."""
    z = model.z_dim
    for name, m in model.generator.named_modules():
        if name.split(".")[-1] == "embed":
            continue
        if isinstance(m, torch.nn.Linear) and m.in_features >= z:
            return m.weight.detach().float().cpu()[:, :z]
        if isinstance(m, torch.nn.ConvTranspose2d) and m.in_channels >= z:
            w = m.weight.detach().float().cpu()[:z]  # [z, out, kh, kw]
            return w.reshape(z, -1).t()
        if isinstance(m, torch.nn.Conv2d):
            break
    raise CapabilityError(f"model {model.describe()} has no linear first layer on z for SeFa")


def _eigen(a: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k eigenvectors `[k, D]` (rows) and eigenvalues of a^T a, signs fixed so the largest
    entry of each vector is positive (deterministic)."""
    a = a.double()
    a = a / a.norm(dim=1, keepdim=True).clamp_min(1e-12)
    values, vectors = torch.linalg.eigh(a.t() @ a)  # ascending
    order = torch.argsort(values, descending=True)[:k]
    vectors, values = vectors[:, order].t(), values[order]
    return _fix_signs(vectors).float(), values.float()


def _fix_signs(vectors: torch.Tensor) -> torch.Tensor:
    idx = vectors.abs().argmax(1)
    signs = torch.sign(vectors[torch.arange(len(vectors)), idx])
    return vectors * torch.where(signs == 0, torch.ones_like(signs), signs)[:, None]


@torch.no_grad()
def sample_w(model: GenerativeModel, count: int, seed: int) -> torch.Tensor:
    """`[count, w_dim]` mapped W of seeded z (with each seed's class, as Sample Latents)."""
    z = seeded_normal(seed, count, model.z_dim).to(model.device)
    labels = None
    if model.num_classes:
        labels = model.seeded_labels([seed + i for i in range(count)]).to(model.device)
    return model.generator.mapping(z, labels)[:, 0].float().cpu()


def _spread(model: GenerativeModel, vectors: torch.Tensor, space: str, seed: int) -> torch.Tensor:
    """Standard deviation of sampled latents along each unit vector `[K]`."""
    if space == "z":
        return torch.ones(len(vectors))
    w = sample_w(model, SCALE_SAMPLES, seed)
    return (w @ vectors.t()).std(0)


def _check_k(k: int) -> int:
    if not 1 <= k <= MAX_DIRECTIONS:
        raise GanStudioError(f"number of directions must be 1..{MAX_DIRECTIONS}, got {k}")
    return k


def sefa(model: GenerativeModel, k: int = 16, layers: tuple[int, int] | None = None,
         seed: int = 0) -> Directions:
    """Closed-form directions of the layers in `layers` (style models) or of the first layer."""
    model.require("generate")
    layers = check_layers(model, layers)
    if model.has_mapping:
        lo, hi = layers or (0, model.num_ws)
        parts = [w for row, w in style_affines(model) if lo <= row < hi]
        if not parts:
            raise GanStudioError(f"no style affine reads layers {lo}..{hi}")
        a, space = torch.cat(parts), "w"
    else:
        a, space = first_layer_z_weight(model), "z"
    k = min(_check_k(k), a.shape[1])
    vectors, values = _eigen(a, k)
    return Directions(vectors, _spread(model, vectors, space, seed),
                      [f"sefa {i}" for i in range(k)], space, "sefa", model.model_id,
                      model.name, layers, {"eigenvalues": values.tolist(), "seed": seed})


def ganspace(model: GenerativeModel, k: int = 16, layers: tuple[int, int] | None = None,
             samples: int = 10000, seed: int = 0) -> Directions:
    """Principal components of `samples` mapped W; scales are their standard deviations."""
    if not model.has_mapping:
        raise CapabilityError(f"GANSpace needs a StyleGAN (a mapping network); the z of "
                              f"{model.describe()} has no preferred directions: use sefa")
    if samples < max(100, k + 1):
        raise GanStudioError(f"GANSpace needs at least {max(100, k + 1)} samples, got {samples}")
    layers = check_layers(model, layers)
    w = sample_w(model, samples, seed).double()
    centred = w - w.mean(0)
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    k = min(_check_k(k), vh.shape[0])
    vectors = _fix_signs(vh[:k]).float()
    std = (s[:k] / math.sqrt(samples - 1)).float()
    explained = (s[:k].square() / s.square().sum()).tolist()
    return Directions(vectors, std, [f"pc {i}" for i in range(k)], "w", "ganspace",
                      model.model_id, model.name, layers,
                      {"samples": samples, "seed": seed, "explained_variance": explained})


def class_directions(model: GenerativeModel, samples: int = 1000, seed: int = 0,
                     layers: tuple[int, int] | None = None) -> Directions:
    """For each class: from the average W of all classes towards that class's average W."""
    if not model.num_classes:
        raise CapabilityError(f"model {model.describe()} is not class-conditional")
    if not model.has_mapping:
        raise CapabilityError(f"class directions need a StyleGAN: in {model.describe()} the "
                              "class is an input beside z, not a place in it; change classes "
                              "with Class Condition")
    layers = check_layers(model, layers)
    z = seeded_normal(seed, samples, model.z_dim).to(model.device)
    means = []
    with torch.no_grad():
        for k in range(model.num_classes):
            c = torch.zeros(samples, model.num_classes, device=model.device)
            c[:, k] = 1
            means.append(model.generator.mapping(z, c)[:, 0].float().mean(0).cpu())
    means = torch.stack(means)
    diffs = means - means.mean(0)
    scales = diffs.norm(dim=1)
    return Directions(diffs / scales.clamp_min(1e-12)[:, None], scales, list(model.class_names),
                      "w", "classes", model.model_id, model.name, layers,
                      {"samples": samples, "seed": seed})


def group_direction(model: GenerativeModel, away: LatentBatch, towards: LatentBatch,
                    name: str = "direction", layers: tuple[int, int] | None = None
                    ) -> Directions:
    """From the mean of `away` to the mean of `towards` (W for StyleGAN, per style layer when
    either group is W+; else z)."""
    for batch in (away, towards):
        model.check_latents(batch)
    if model.has_mapping:
        a, b = model.to_wplus(away).float().cpu(), model.to_wplus(towards).float().cpu()
        diff = b.mean(0) - a.mean(0)  # [num_ws, w_dim]
        if "w+" not in (away.space, towards.space) and not (away.truncation_cutoff
                                                              or towards.truncation_cutoff):
            diff = diff[0]
        space = "w"
    else:
        if away.space != "z" or towards.space != "z":
            raise GanStudioError("both groups must be z latents of this model")
        diff, space = towards.values.float().mean(0) - away.values.float().mean(0), "z"
    scale = diff.norm()
    if float(scale) < 1e-8:
        raise GanStudioError("the two groups have the same mean: there is no direction "
                             "between them")
    return Directions((diff / scale)[None], scale[None].float(), [str(name) or "direction"],
                      space, "groups", model.model_id, model.name, check_layers(model, layers),
                      {"away": len(away), "towards": len(towards)})


# --- applying ---------------------------------------------------------------------------------
def edit_values(model: GenerativeModel, batch: LatentBatch, directions: Directions,
                index: int, strengths: list[float],
                layers: tuple[int, int] | None = None) -> LatentBatch:
    """Each latent moved by each strength along direction `index`: `[B * S]` latents, latent
    by latent (latent 0 at every strength, then latent 1, ...)."""
    directions.check_model(model)
    model.check_latents(batch)
    if not strengths:
        raise GanStudioError("no strengths given")
    layers = check_layers(model, layers if layers is not None else directions.layers)
    vector = directions.vectors[index] * directions.scales[index]
    s = torch.tensor([float(x) for x in strengths], dtype=torch.float32)
    if directions.space == "z":
        if batch.space != "z" or model.has_mapping:
            raise GanStudioError("z directions apply to z latents of a model without a style "
                                 "space")
        base, out_space = batch.values.float(), "z"
        shaped = vector
    else:
        if not model.has_mapping:
            raise CapabilityError(f"w directions need a StyleGAN; {model.describe()} takes z")
        mapped = model.mapped(batch) if batch.space == "z" else batch
        whole = layers is None and vector.dim() == 1 and mapped.space == "w"
        if whole:
            base, shaped, out_space = mapped.values.float(), vector, "w"
        else:
            base = model.to_wplus(mapped).float().cpu()
            shaped = vector.expand(model.num_ws, -1) if vector.dim() == 1 else vector
            lo, hi = layers or (0, model.num_ws)
            mask = torch.zeros(model.num_ws, 1)
            mask[lo:hi] = 1
            shaped, out_space = shaped * mask, "w+"
        batch = mapped
    values = base[:, None] + s.view(1, -1, *([1] * shaped.dim())) * shaped
    values = values.reshape(-1, *values.shape[2:])
    n = len(strengths)
    labels = None if batch.labels is None else batch.labels.repeat_interleave(n, 0)
    edit = {"direction": directions.names[index], "method": directions.method,
            "strengths": [float(x) for x in strengths],
            "layers": list(layers) if layers else None}
    extra = {**batch.extra, "edit": edit}
    if batch.seeds is not None:
        extra["source_seeds"] = [int(x) for x in batch.seeds]
    return replace(batch, values=values.contiguous(), space=out_space, labels=labels,
                   seeds=None, truncation_psi=1.0 if out_space != "z" else batch.truncation_psi,
                   truncation_cutoff=None if out_space != "z" else batch.truncation_cutoff,
                   extra=extra)


def explorer_latents(model: GenerativeModel, latent: LatentBatch, directions: Directions,
                     indices: list[int], strengths: list[float],
                     layers: tuple[int, int] | None = None) -> LatentBatch:
    """One latent along several directions: `[K * S]`, a row of strengths per direction."""
    one = latent.select([0])
    rows = [edit_values(model, one, directions, i, strengths, layers) for i in indices]
    spaces = {r.space for r in rows}
    if len(spaces) > 1:  # some rows edit every layer (w), others part of them (w+)
        rows = [r if r.space == "w+" else replace(r, values=model.to_wplus(r).float().cpu(),
                                                  space="w+") for r in rows]
    labels = None if rows[0].labels is None else torch.cat([r.labels for r in rows])
    return replace(rows[0], values=torch.cat([r.values for r in rows]), labels=labels,
                   extra={**rows[0].extra, "edit": {
                       "directions": [directions.names[i] for i in indices],
                       "strengths": [float(x) for x in strengths]}})


# --- files ------------------------------------------------------------------------------------
def save_directions(d: Directions, path: str | Path) -> Path:
    meta = {"format": FORMAT, "version": VERSION, "names": d.names, "space": d.space,
            "method": d.method, "model_id": d.model_id, "model_name": d.model_name,
            "layers": list(d.layers) if d.layers else None, "info": d.info}
    return write_tagged(path, {"vectors": d.vectors.float(), "scales": d.scales.float()},
                        TAG, meta)


def load_directions(path: str | Path) -> Directions:
    path = Path(path)
    meta = read_tagged_meta(path, TAG, WHAT, "make one with Find Directions and Save "
                                              "Directions")
    if meta.get("format") != FORMAT:
        raise GanStudioError(f"{path.name} is not a {WHAT}")
    if not isinstance(meta.get("version"), int) or meta["version"] > VERSION:
        raise GanStudioError(f"{path.name} was written by a newer GAN Studio; update the pack")
    tensors = read_tagged_tensors(path, WHAT)
    if set(tensors) != {"vectors", "scales"}:
        raise GanStudioError(f"{path.name}: expected tensors 'vectors' and 'scales'")
    names, layers = meta.get("names"), meta.get("layers")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise GanStudioError(f"{path.name}: its direction names are not a list of text")
    if layers is not None and (not isinstance(layers, list) or len(layers) != 2
                               or not all(isinstance(x, int) for x in layers)):
        raise GanStudioError(f"{path.name}: its layer range is not two whole numbers")
    for key in ("vectors", "scales"):
        if not torch.isfinite(tensors[key]).all():
            raise GanStudioError(f"{path.name}: its {key} hold NaN or infinite values")
    try:
        return Directions(tensors["vectors"].float(), tensors["scales"].float(), names,
                          str(meta.get("space")), str(meta.get("method", "loaded")),
                          meta.get("model_id") if isinstance(meta.get("model_id"), str)
                          else None, str(meta.get("model_name") or ""),
                          tuple(layers) if layers else None,
                          meta.get("info") if isinstance(meta.get("info"), dict) else {})
    except GanStudioError as exc:
        raise GanStudioError(f"{path.name}: {exc}") from None
