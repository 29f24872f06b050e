"""The one model interface every node talks to.

A `GenerativeModel` wraps the networks of one family (built by the registry from a config,
keyed by role) and says what it can do. Nodes ask for a CAPABILITY, never for a family:

    generate   latent [+ condition] -> image    needs a "generator" network
    translate  image -> image                   needs a "translator" network
    encode     image -> latent                  needs an "encoder" network

and the model's CONDITIONING kind says what its condition vector means:
    none    unconditional
    class   weights over class names, [B, num_classes] (one-hot or a mix summing to 1)
    text    a text embedding [B, c_dim] made by the model's own "text_encoder" network
    image   the input image itself (translators)

Network contracts (duck-typed; any nn.Module with these members plugs in):
    generator     z_dim, c_dim, img_resolution, img_channels
                  forward(z, c) -> images [B, C, H, W] in [-1, 1]; c: [B, c_dim] or None
                  optional, style-based generators:
                  w_dim, num_ws, mapping(z, c, truncation_psi=1, truncation_cutoff=None)
                  -> [B, num_ws, w_dim]; synthesis(ws, **kwargs) -> images
    encoder       forward(images [B, C, H, W] in [-1, 1], c) -> (mean, logvar), each
                  [B, z_dim] (logvar None for deterministic encoders such as VQ-VAE's)
    translator    in_channels, out_channels, size_multiple (input H and W must be
                  multiples of it), img_resolution (the size it was trained at)
                  forward(images [B, in_channels, H, W] in [-1, 1]) -> [B, out_channels, H, W]
                  optional: min_size (the smallest side it takes; default 1)
    text_encoder  embed_dim (== the generator's c_dim)
                  encode_text(prompts: list[str]) -> [B, embed_dim]; raises GanStudioError
                  naming the prompt when it holds no word the encoder knows
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace

import torch
from torch import nn

from . import acceleration, registry
from .errors import CapabilityError, GanStudioError
from .latent import LatentBatch, one_hot_weights, seeded_normal
from .latent.classes import unknown_class_hint
from .memory import ensure_output_fits  # noqa: F401  (moved to memory.py)

CAPABILITIES = ("generate", "translate", "encode")
ROLE_OF = {"generate": "generator", "translate": "translator", "encode": "encoder"}
CAPABILITY_OF = {role: cap for cap, role in ROLE_OF.items()}
CAPABILITY_HELP = {
    "generate": "make images from latents; use a GAN or a VAE",
    "translate": "turn an image into another image; use an image-to-image model",
    "encode": "read images into latents; use a VAE, or invert by optimisation",
}
CONDITIONING_KINDS = ("none", "class", "text", "image")


class GenerativeModel:
    def __init__(self, architecture: str, config: dict, networks: dict[str, nn.Module],
                 class_names: list[str] | None = None, metadata: dict | None = None,
                 model_id: str | None = None):
        if not {"generator", "translator"} & set(networks):
            raise GanStudioError(
                f"{architecture}: a model needs a 'generator' or a 'translator' network")
        self.architecture = architecture
        self.name = ""  # the file it was loaded from (stem), for messages
        self.config = dict(config)
        self.networks = dict(networks)
        self.metadata = dict(metadata or {})
        self.model_id = model_id or uuid.uuid4().hex[:16]
        n = self.num_classes
        self.class_names = list(class_names) if class_names else [f"class {i}" for i in range(n)]
        if len(self.class_names) != n:
            raise GanStudioError(
                f"{architecture}: {len(self.class_names)} class names for {n} classes")
        for net in self.networks.values():
            net.eval().requires_grad_(False)

    @classmethod
    def create(cls, architecture: str, config: dict, **kwargs) -> "GenerativeModel":
        """A freshly initialised model of a registered family."""
        return cls(architecture, config, registry.build(architecture, config), **kwargs)

    # --- what the model can do --------------------------------------------------------
    @property
    def abilities(self) -> frozenset[str]:
        """The capabilities this model has: a subset of CAPABILITIES."""
        return frozenset(c for c, role in ROLE_OF.items() if role in self.networks)

    def can(self, capability: str) -> bool:
        if capability not in CAPABILITIES:
            raise ValueError(f"unknown capability {capability!r}")
        return capability in self.abilities

    def require(self, capability: str) -> None:
        """Raise a one-line CapabilityError naming the model and what it lacks."""
        if not self.can(capability):
            has = ", ".join(sorted(self.abilities)) or "nothing"
            raise CapabilityError(
                f"model {self.describe()} cannot {capability} ({CAPABILITY_HELP[capability]}); "
                f"it can: {has}")

    def require_conditioning(self, kind: str) -> None:
        if self.conditioning != kind:
            what = {"none": "unconditional", "class": "class-conditional",
                    "text": "text-conditioned", "image": "an image translator"}[self.conditioning]
            raise CapabilityError(
                f"model {self.describe()} takes no {kind} condition: it is {what}")

    def _network(self, role: str) -> nn.Module:
        if role not in self.networks:
            self.require(CAPABILITY_OF[role])
        return self.networks[role]

    # --- what the model is ----------------------------------------------------------
    @property
    def generator(self) -> nn.Module:
        return self._network("generator")

    @property
    def translator(self) -> nn.Module:
        return self._network("translator")

    @property
    def z_dim(self) -> int:
        return int(self.generator.z_dim)

    @property
    def condition_dim(self) -> int:
        """Width of the condition vector the generator takes (0 = none)."""
        if "generator" not in self.networks:
            return 0
        return int(getattr(self.generator, "c_dim", 0))

    @property
    def num_classes(self) -> int:
        return self.condition_dim if self.conditioning == "class" else 0

    @property
    def resolution(self) -> int:
        main = self.networks.get("generator", self.networks.get("translator"))
        return int(main.img_resolution)

    @property
    def channels(self) -> int:
        if "generator" in self.networks:
            return int(self.generator.img_channels)
        return int(self.translator.out_channels)

    @property
    def has_mapping(self) -> bool:
        gen = self.networks.get("generator")
        return hasattr(gen, "mapping") and hasattr(gen, "synthesis")

    @property
    def w_dim(self) -> int | None:
        return int(self.generator.w_dim) if self.has_mapping else None

    @property
    def num_ws(self) -> int | None:
        return int(self.generator.num_ws) if self.has_mapping else None

    @property
    def can_encode(self) -> bool:
        return self.can("encode")

    @property
    def can_transform(self) -> bool:
        """StyleGAN3-style generators take a view transform (translate/rotate) at synthesis."""
        return hasattr(self.networks.get("generator"), "view_transform")

    @property
    def conditioning(self) -> str:
        if "generator" not in self.networks:
            return "image"
        if "text_encoder" in self.networks:
            return "text"
        return "class" if self.condition_dim > 0 else "none"

    def describe(self) -> str:
        cond = {"class": f", {self.num_classes} classes", "text": ", text-conditioned",
                "image": ", image to image"}.get(self.conditioning, "")
        name = f" ({self.name!r})" if self.name else ""
        return f"{self.architecture} {self.resolution}px{cond}{name}"

    def capabilities(self) -> dict:
        generates = self.can("generate")
        return {
            "capabilities": sorted(self.abilities),
            "architecture": self.architecture, "resolution": self.resolution,
            "channels": self.channels, "z_dim": self.z_dim if generates else None,
            "w_dim": self.w_dim, "num_ws": self.num_ws, "num_classes": self.num_classes,
            "class_names": self.class_names, "conditioning": self.conditioning,
            "can_encode": self.can_encode, "can_transform": self.can_transform,
        }

    # --- placement --------------------------------------------------------------------
    def parameter_bytes(self) -> int:
        return sum(t.numel() * t.element_size()
                   for net in self.networks.values()
                   for t in list(net.parameters()) + list(net.buffers()))

    @property
    def device(self) -> torch.device:
        for net in self.networks.values():
            for t in net.parameters():
                return t.device
        return torch.device("cpu")

    def to(self, device: torch.device | str) -> "GenerativeModel":
        for net in self.networks.values():
            net.to(device)
        return self

    # --- classes ------------------------------------------------------------------------
    def class_index(self, name_or_index: str | int) -> int:
        """Resolve a class by name (case-insensitive) or index, with a helpful error."""
        self.require_conditioning("class")
        if isinstance(name_or_index, int) or str(name_or_index).strip().lstrip("-").isdigit():
            idx = int(name_or_index)
            if not 0 <= idx < self.num_classes:
                raise GanStudioError(
                    f"class index {idx} is out of range: model has classes "
                    f"0..{self.num_classes - 1}")
            return idx
        wanted = str(name_or_index).strip().lower()
        for i, name in enumerate(self.class_names):
            if name.lower() == wanted:
                return i
        raise GanStudioError(f"unknown class {name_or_index!r}: "
                             f"{unknown_class_hint(str(name_or_index), self.class_names)}")

    def seeded_labels(self, seeds: list[int]) -> torch.Tensor:
        """One class per sample, drawn from its seed (deterministic), as one-hot rows."""
        rows = []
        for s in seeds:
            gen = torch.Generator().manual_seed((s ^ 0x5EED) & 0xFFFFFFFFFFFFFFFF)
            idx = int(torch.randint(self.num_classes, (1,), generator=gen))
            rows.append(one_hot_weights([(idx, 1.0)], self.num_classes))
        return torch.stack(rows)

    # --- sampling and synthesis ---------------------------------------------------------
    def sample_latents(self, seed: int, batch_size: int, truncation_psi: float = 1.0,
                       truncate: float = 0.0, seed_mode: str = "torch") -> LatentBatch:
        if batch_size < 1:
            raise GanStudioError(f"batch size must be at least 1, got {batch_size}")
        if not truncate:  # the model's own default: BigGAN draws z from a normal cut at 2
            truncate = float(getattr(self.generator, "default_truncate", 0.0))
        z = seeded_normal(seed, batch_size, self.z_dim, seed_mode, truncate)
        seeds = tuple((seed + i) & 0xFFFFFFFFFFFFFFFF for i in range(batch_size))
        labels = self.seeded_labels(list(seeds)) if self.num_classes else None
        return LatentBatch(values=z, space="z", labels=labels, seeds=seeds,
                           model_id=self.model_id, truncation_psi=truncation_psi)

    def check_latents(self, batch: LatentBatch) -> None:
        """Raise a clear error when a latent batch cannot drive this model."""
        if batch.space == "z":
            want = (self.z_dim,)
        elif not self.has_mapping:
            raise CapabilityError(
                f"{batch.space} latents need a style-based model; {self.describe()} takes z")
        elif batch.space == "w":
            want = (self.w_dim,)
        else:
            want = (self.num_ws, self.w_dim)
        if tuple(batch.values.shape[1:]) != want:
            raise GanStudioError(
                f"latents of shape {tuple(batch.values.shape[1:])} do not fit {self.describe()}, "
                f"which takes {batch.space} of shape {want}")
        n = self.condition_dim
        if batch.labels is not None and n and batch.labels.shape[1] != n:
            what = "text embeddings" if self.conditioning == "text" else "classes"
            raise GanStudioError(
                f"the latents' condition has {batch.labels.shape[1]} values, model "
                f"{self.describe()} takes {n} {what}")

    @torch.no_grad()
    def synthesize(self, batch: LatentBatch, noise_mode: str = "const",
                   precision: str = "fp32", compile: bool = False) -> torch.Tensor:
        """Images `[B, C, H, W]` in [-1, 1] on the model's device (float32).

        noise_mode (style models with per-pixel noise): const (reproducible), random, none.
        precision: fp32, bf16 or fp16 (GPU); compile: run the network through
        torch.compile where a compiler works (see `acceleration`).
        """
        self.check_latents(batch)
        with acceleration.precision_context(precision, self.device):
            return self._synthesize(batch, noise_mode, precision, compile).float()

    def _synthesize(self, batch: LatentBatch, noise_mode: str, precision: str,
                    compile: bool) -> torch.Tensor:
        def run(net, *args, **kwargs):
            return acceleration.run_compiled(net, *args, **kwargs) if compile else net(
                *args, **kwargs)

        if not self.has_mapping:
            labels = self._labels_for(batch, self.device)
            # BigGAN: the truncation also picks the batch-norm statistics it was drawn with.
            extra = ({"truncation": batch.truncation_psi}
                     if getattr(self.generator, "truncation_stats", False) else {})
            return run(self.generator, batch.values.to(self.device) * batch.truncation_psi,
                       labels, **extra)
        # fp16 lets StyleGAN's own float16 layers run (GPU); other precisions are exact.
        options = {"noise_mode": noise_mode, "force_fp32": precision != "fp16"}
        if batch.view is not None:
            if not self.can_transform:
                raise CapabilityError(
                    f"model {self.describe()} cannot translate or rotate its output "
                    "(only StyleGAN3 models can)")
            tx, ty, angle = batch.view
            options["transform"] = self.generator.view_transform((tx, ty), angle).to(self.device)
        return run(self.generator.synthesis, self.to_wplus(batch), **options)

    @torch.no_grad()
    def to_wplus(self, batch: LatentBatch) -> torch.Tensor:
        """Per-layer styles `[B, num_ws, w_dim]` on the model's device (z mapped with the
        batch's truncation; w broadcast to every layer)."""
        if not self.has_mapping:
            raise CapabilityError(f"model {self.describe()} has no style (W) space")
        self.check_latents(batch)
        values = batch.values.to(self.device)
        if batch.space == "z":
            return self.generator.mapping(values, self._labels_for(batch, self.device),
                                          truncation_psi=batch.truncation_psi,
                                          truncation_cutoff=batch.truncation_cutoff)
        if batch.space == "w":
            return values.unsqueeze(1).repeat(1, self.num_ws, 1)
        return values

    def mapped(self, batch: LatentBatch) -> LatentBatch:
        """The batch in W (or W+ when a truncation cutoff makes layers differ), truncation
        already applied, so it can be interpolated, mixed and edited in style space."""
        ws = self.to_wplus(batch).float().cpu()
        if batch.space == "z" and batch.truncation_cutoff is None:
            values, space = ws[:, 0], "w"
        else:
            values, space = ws, "w+"
        return replace(batch, values=values, space=space, truncation_psi=1.0,
                       truncation_cutoff=None)

    @torch.no_grad()
    def encode(self, images: torch.Tensor, labels: torch.Tensor | None = None,
               sample: bool = False, seed: int = 0) -> LatentBatch:
        """Images `[B, C, H, W]` in [-1, 1] -> z latents: the encoder's mean, or a sample whose
        noise for image i comes from seed + i. Deterministic encoders (VQ-VAE) give one latent."""
        if not self.can_encode:
            raise CapabilityError(f"model {self.describe()} cannot encode images (it has no "
                                  "encoder); use a VAE or VQ-VAE")
        if self.num_classes and labels is None:
            raise GanStudioError(f"model {self.describe()} is class-conditional: give the "
                                 "images' classes to encode them")
        if tuple(images.shape[1:]) != (self.channels, self.resolution, self.resolution):
            raise GanStudioError(f"images of shape {tuple(images.shape[1:])} do not fit "
                                 f"{self.describe()} ({self.channels} channels)")
        device = self.device
        mean, logvar = self.networks["encoder"](
            images.to(device), None if labels is None else labels.to(device))
        z = mean.float()
        if sample and logvar is not None:
            eps = seeded_normal(seed, len(images), z.shape[1]).to(device)
            z = z + eps * torch.exp(0.5 * logvar.float())
        return LatentBatch(values=z.cpu(), space="z",
                           labels=None if labels is None else labels.float().cpu(),
                           model_id=self.model_id)

    @torch.no_grad()
    def translate(self, images: torch.Tensor) -> torch.Tensor:
        """Images `[B, in_channels, H, W]` in [-1, 1] -> `[B, out_channels, H, W]` in [-1, 1]
        on the model's device; H and W must be multiples of `size_multiple`."""
        net = self.translator
        multiple = int(getattr(net, "size_multiple", 1))
        if images.dim() != 4 or images.shape[1] != net.in_channels:
            raise GanStudioError(f"images of shape {tuple(images.shape[1:])} do not fit "
                                 f"{self.describe()}, which takes {net.in_channels} channels")
        if images.shape[2] % multiple or images.shape[3] % multiple:
            raise GanStudioError(f"{self.describe()} needs sides that are multiples of "
                                 f"{multiple}; got {images.shape[3]}x{images.shape[2]}")
        return net(images.to(self.device)).clamp(-1, 1)

    @torch.no_grad()
    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        """Prompts -> condition vectors `[B, c_dim]` (CPU float32) for a text-conditioned
        model, from its own text encoder."""
        self.require_conditioning("text")
        if not prompts:
            raise GanStudioError("no prompt given")
        return self.networks["text_encoder"].encode_text(list(prompts)).float().cpu()

    def _labels_for(self, batch: LatentBatch, device) -> torch.Tensor | None:
        if self.condition_dim == 0:
            return None
        if batch.labels is None and self.conditioning == "text":
            raise GanStudioError(f"model {self.describe()} is text-conditioned: these latents "
                                 "carry no text; add a Text Condition node")
        if batch.labels is None:
            if batch.seeds is None:
                raise GanStudioError(
                    f"model {self.describe()} is class-conditional: these latents carry no class;"
                    " add a Class Condition node")
            return self.seeded_labels(list(batch.seeds)).to(device)
        return batch.labels.to(device=device, dtype=torch.float32)


def generate_in_chunks(model: GenerativeModel, batch: LatentBatch, chunk_size: int,
                       on_chunk: Callable[[int, torch.Tensor], None] | None = None,
                       noise_mode: str = "const", precision: str = "fp32",
                       compile: bool = False) -> torch.Tensor:
    """Synthesize a batch chunk by chunk; returns `[B, H, W, C]` float32 0..1 on the CPU.

    on_chunk(done, images_of_chunk) is called after each chunk (progress, previews,
    interruption); peak device memory stays bounded by the chunk size. precision and
    compile as in `GenerativeModel.synthesize`.
    """
    if chunk_size < 1:
        raise GanStudioError(f"chunk size must be at least 1, got {chunk_size}")
    out = []
    done = 0
    for start in range(0, len(batch), chunk_size):
        chunk = batch.select(slice(start, start + chunk_size))
        images = to_unit_hwc(model.synthesize(chunk, noise_mode=noise_mode,
                                              precision=precision, compile=compile)).cpu()
        out.append(images)
        done += len(chunk)
        if on_chunk is not None:
            on_chunk(done, images)
    return torch.cat(out)


def to_unit_hwc(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] `[B, C, H, W]` -> 0..1 `[B, H, W, 3]` float32 (gray repeated, alpha dropped)."""
    images = images.float().clamp(-1, 1).add(1).mul(0.5)
    if images.shape[1] == 1:
        images = images.repeat(1, 3, 1, 1)
    elif images.shape[1] == 4:
        images = images[:, :3]
    return images.permute(0, 2, 3, 1).contiguous()
