"""`stackgan`: text-to-image on captioned images (captions.py), both stages trained jointly.

Why jointly (StackGAN++'s way) rather than stage I first: one run, one optimizer pair, one
budget; stage II starts from a blurry stage I and both sharpen together, which is what a
short CPU run needs. Per step:

  D phase  both discriminators and the word encoder learn, from the matching-aware loss
           (real image + its caption = real; real image + another image's caption = fake;
           generated image + caption = fake) plus an image-only real/fake term. The encoder
           learns here because telling captions apart is what the matching term asks of it.
  G phase  the generator learns to fool both discriminators (matching and image-only
           logits) with the KL term of conditioning augmentation; the encoder is frozen.

The vocabulary is every word of the training captions, fixed when the run starts (an option,
so it travels with snapshots and into the model file). Captions lose words at random in
training (`word_keep`), so that a short prompt ("cat") is not out of distribution for a
model trained on long captions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..architectures.stackgan import full_config, kl_divergence, recalibrate
from ..architectures.text_encoder import words
from ..errors import GanStudioError
from . import losses
from .augment import diff_augment, parse_policy
from .plots import image_grid
from .recipes import Phase, Recipe, StepContext, register_recipe

MAX_CAPTION_WORDS = 48
CALIBRATION = 256  # samples that set the exported generator's batch-norm statistics
GRID_CAPTIONS = 8


def matching_aware_d_loss(kind: str, real: torch.Tensor, wrong: torch.Tensor,
                          fake: torch.Tensor) -> torch.Tensor:
    """StackGAN's discriminator loss on matching logits: real pairs count once, wrong-text
    and fake pairs half each (real image + wrong text is fake)."""
    real, wrong, fake = real.float(), wrong.float(), fake.float()
    if kind == "ns":
        return F.softplus(-real).mean() + 0.5 * (F.softplus(wrong).mean()
                                                 + F.softplus(fake).mean())
    if kind == "hinge":
        return F.relu(1 - real).mean() + 0.5 * (F.relu(1 + wrong).mean()
                                                + F.relu(1 + fake).mean())
    raise ValueError(f"unknown loss {kind!r}")


def caption_vocabulary(captions) -> list[str]:
    return sorted({w for c in captions for w in words(c)})


@register_recipe
class StackGANRecipe(Recipe):
    """StackGAN: two-stage text-to-image GAN with conditioning augmentation and
    matching-aware discriminators, on captioned images."""

    name = "stackgan"
    architecture = "stackgan"
    data_kind = "captioned"
    MODEL_KEYS = ("resolution", "vocab", "embed_dim", "word_dim", "noise_dim", "ca_dim",
                  "base_channels", "stage2_channels", "res_blocks", "d_channels")
    DEFAULTS = {"resolution": 64, "vocab": [], "embed_dim": 128, "word_dim": 128,
                "noise_dim": 64, "ca_dim": 64, "base_channels": 32, "stage2_channels": 64,
                "res_blocks": 2, "d_channels": 32, "loss": "ns", "lr_g": 2e-4, "lr_d": 2e-4,
                "beta1": 0.5, "beta2": 0.999, "kl_weight": 1.0, "image_weight": 1.0,
                "word_keep": 0.6, "diffaugment": "translation,cutout"}
    LOSS_KINDS = ("ns", "hinge")

    def __init__(self, options: dict | None = None, num_classes: int = 0):
        super().__init__(options, 0)  # captions, not classes
        self.captions: list[list[int]] = []

    def validate(self) -> None:
        o = self.options
        if o["vocab"]:
            try:
                full_config(self.model_config())
            except ValueError as exc:
                raise GanStudioError(f"recipe {self.name}: {exc}") from None
        elif int(o["resolution"]) not in (32, 64, 128):
            raise GanStudioError(f"recipe {self.name}: resolution must be 32, 64 or 128, got "
                                 f"{o['resolution']}")
        try:
            self.policy = parse_policy(o["diffaugment"])
        except ValueError as exc:
            raise GanStudioError(f"recipe {self.name}: {exc}") from None
        if o["loss"] not in self.LOSS_KINDS:
            raise GanStudioError(f"recipe {self.name}: loss must be one of {self.LOSS_KINDS}, "
                                 f"got {o['loss']!r}")
        self.check_adam()
        for key in ("kl_weight", "image_weight"):
            if not float(o[key]) >= 0:
                raise GanStudioError(f"recipe {self.name}: {key} must be 0 or more")
        if not 0 < float(o["word_keep"]) <= 1:
            raise GanStudioError(f"recipe {self.name}: word_keep must be in (0, 1]")

    def model_config(self) -> dict:
        # The file records that the model reads its own words (not CLIP pooled embeddings).
        return {**{k: self.options[k] for k in self.MODEL_KEYS}, "text_input": "words"}

    # --- data ---------------------------------------------------------------------------------
    def adopt_dataset(self, dataset) -> None:
        """Take the vocabulary from the captions (a fresh run) and tokenise every caption."""
        captions = getattr(dataset, "captions", ())
        if not self.options["vocab"]:
            self.options["vocab"] = caption_vocabulary(captions)
            self.validate()
        index = {w: i for i, w in enumerate(self.options["vocab"])}
        self.captions = []
        for text in captions:
            ids = [index[w] for w in words(text) if w in index][:MAX_CAPTION_WORDS]
            if not ids:
                raise GanStudioError(f"caption {text[:80]!r} has no word of this run's "
                                     "vocabulary (it was taken from the captions the run "
                                     "started with)")
            self.captions.append(ids)

    def state_dict(self) -> dict:
        """The tokenised captions, so that a copy of the recipe made without the data (a
        cloned trainer, new learning rates) can still train."""
        flat = [w for ids in self.captions for w in ids]
        lengths = [len(ids) for ids in self.captions]
        return {"caption_words": torch.tensor(flat, dtype=torch.int64),
                "caption_lengths": torch.tensor(lengths, dtype=torch.int64)}

    def load_state_dict(self, state: dict) -> None:
        if self.captions or "caption_words" not in state:
            return  # a resumed run tokenised the data it was given (adopt_dataset)
        flat = state["caption_words"].tolist()
        ends = state["caption_lengths"].cumsum(0).tolist()
        self.captions = [flat[a:b] for a, b in zip([0, *ends[:-1]], ends)]

    def _embed(self, ctx: StepContext, caption_idx: torch.Tensor, keep: float) -> torch.Tensor:
        """Text embeddings of captions, each word kept with probability `keep` (at least one
        word per caption); the draw is per row of the global batch."""
        coins = ctx.rand.uniform(MAX_CAPTION_WORDS).cpu()
        ids, offsets = [], []
        for row, idx in enumerate(caption_idx.tolist()):
            words_ = self.captions[idx]
            kept = [w for w, u in zip(words_, coins[row].tolist()) if u < keep]
            offsets.append(len(ids))
            ids += kept or [words_[int(coins[row].argmin()) % len(words_)]]
        encoder = ctx.nets["text_encoder"]
        dev = encoder.project.weight.device
        return encoder(torch.tensor(ids, device=dev), torch.tensor(offsets, device=dev))

    # --- optimisation -------------------------------------------------------------------------
    def make_optimizers(self, nets):
        betas = (float(self.options["beta1"]), float(self.options["beta2"]))
        d_params = [*nets["discriminator"].parameters(), *nets["text_encoder"].parameters()]
        return {"G": torch.optim.Adam(nets["generator"].parameters(),
                                      lr=float(self.options["lr_g"]), betas=betas),
                "D": torch.optim.Adam(d_params, lr=float(self.options["lr_d"]), betas=betas)}

    def phases(self):
        return (Phase("D", "D", ("discriminator", "text_encoder")),
                Phase("G", "G", ("generator",)))

    def _augment(self, images: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return diff_augment(images, self.policy, ctx.rand) if self.policy else images

    def loss(self, phase, ctx, real, labels):
        if labels is None or not self.captions:
            raise GanStudioError(f"recipe {self.name} trains on captioned images")
        G, D = ctx.nets["generator"], ctx.nets["discriminator"]
        kind, keep = self.options["loss"], float(self.options["word_keep"])
        image_w = float(self.options["image_weight"])
        z = ctx.rand.normal(int(G.z_dim))
        if phase == "G":
            with torch.no_grad():
                e = self._embed(ctx, labels, keep)
            small, large, mu, logvar = G.stages(z, e)
            total, metrics = 0.0, {}
            for stage, fake in (("1", small), ("2", large)):
                d = getattr(D, f"stage{stage}")
                h = d.features(self._augment(fake, ctx))
                adv = losses.g_loss(kind, d.matching_logit(h, e))
                adv = adv + image_w * losses.g_loss(kind, d.image_logit(h))
                total = total + adv
                metrics[f"g_stage{stage}"] = adv.detach()
            kl = kl_divergence(mu.float(), logvar.float())
            total = total + float(self.options["kl_weight"]) * kl
            metrics.update({"kl": kl.detach(), "loss_g": total.detach()})
            return total, metrics
        if phase != "D":
            raise GanStudioError(f"recipe {self.name} has no phase {phase!r}")
        # Another caption for each real image: drawn from the whole dataset, never its own.
        n = len(self.captions)
        shift = 1 + ctx.rand.randint(max(n - 1, 1)).to(labels.device)
        wrong_idx = (labels + shift) % n
        e = self._embed(ctx, labels, keep)
        e_wrong = self._embed(ctx, wrong_idx, keep)
        with torch.no_grad():
            small, large, _, _ = G.stages(z, e)
        real_small = F.avg_pool2d(real, 2)
        total, metrics = 0.0, {}
        for stage, r, f in (("1", real_small, small), ("2", real, large)):
            d = getattr(D, f"stage{stage}")
            h_real, h_fake = d.features(self._augment(r, ctx)), d.features(self._augment(f, ctx))
            real_l, fake_l = d.matching_logit(h_real, e), d.matching_logit(h_fake, e)
            wrong_l = d.matching_logit(h_real, e_wrong)
            loss = matching_aware_d_loss(kind, real_l, wrong_l, fake_l)
            loss = loss + image_w * losses.d_loss(kind, d.image_logit(h_real),
                                                  d.image_logit(h_fake))
            total = total + loss
            metrics[f"d_stage{stage}"] = loss.detach()
            metrics[f"d_acc{stage}"] = losses.d_accuracy(real_l.detach(), fake_l.detach())
            metrics[f"d_wrong{stage}"] = (wrong_l.detach() < 0).float().mean()
        metrics["loss_d"] = total.detach()
        return total, metrics

    def finish_export(self, nets) -> None:
        """The exported (averaged) generator gets batch-norm statistics of its own, measured
        on CALIBRATION samples of the training captions (all words kept)."""
        if not self.captions:
            return
        gen = torch.Generator().manual_seed(0)
        picks = torch.randint(len(self.captions), (CALIBRATION,), generator=gen).tolist()
        ids = [w for i in picks for w in self.captions[i]]
        offsets = torch.tensor([0, *[len(self.captions[i]) for i in picks[:-1]]]).cumsum(0)
        with torch.no_grad():
            e = nets["text_encoder"](torch.tensor(ids), offsets)
        recalibrate(nets["generator"], e)

    # --- pictures -----------------------------------------------------------------------------
    @torch.no_grad()
    def sample_grid(self, trainer) -> torch.Tensor:
        """Rows of the first GRID_CAPTIONS distinct captions (as they are, every word), 8
        fixed latents each."""
        from ..model import to_unit_hwc
        from .seeding import derive_seed

        data = trainer.dataset
        step = max(1, len(data.captions) // GRID_CAPTIONS)
        picked = list(range(0, len(data.captions), step))[:GRID_CAPTIONS]
        gen = torch.Generator().manual_seed(derive_seed(trainer.seed, "grid"))
        g = trainer.ema.module
        z = torch.randn(len(picked) * 8, g.z_dim, generator=gen).to(trainer.device)
        encoder = trainer.nets["text_encoder"]
        e = encoder.encode_text([data.captions[i] for i in picked])
        e = e.repeat_interleave(8, dim=0)
        was = g.training
        images = g(z, e)
        g.train(was)
        return image_grid(to_unit_hwc(images).cpu(), cols=8)

    def preview_grids(self, trainer) -> dict:
        return {"samples": self.sample_grid(trainer)}

