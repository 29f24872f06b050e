"""Style mixing: take some style layers (W+ rows) from one latent batch and the rest from another.

Layer ranges follow the generator's resolution ladder: for StyleGAN2, styles 0-3 drive the
4-8 px blocks (pose, shape: "coarse"), 4-7 the 16-32 px blocks ("middle": features, hair) and
8+ the rest ("fine": colour, texture). StyleGAN3 layers are not tied to resolutions the same
way, but the same split gives the same coarse-to-fine behaviour in practice.
"""

from __future__ import annotations

from dataclasses import replace

from ..errors import GanStudioError
from ..latent import LatentBatch
from ..model import GenerativeModel

PRESETS = {"coarse": (0, 4), "middle": (4, 8), "fine": (8, None)}


def preset_layers(preset: str, num_ws: int) -> tuple[int, int]:
    """[start, end) style rows of a preset, clipped to the model's num_ws."""
    if preset not in PRESETS:
        raise GanStudioError(f"unknown style-mix preset {preset!r} (use {', '.join(PRESETS)})")
    start, end = PRESETS[preset]
    end = num_ws if end is None else min(end, num_ws)
    return min(start, num_ws), end


def style_mix(model: GenerativeModel, base: LatentBatch, donor: LatentBatch,
              start: int, end: int) -> LatentBatch:
    """W+ batch: `base` everywhere except style rows [start, end), taken from `donor`.

    Batches pair up sample by sample; a batch of one is broadcast over the other.
    """
    num_ws = model.num_ws
    if num_ws is None:
        raise GanStudioError(f"model {model.describe()} has no style layers to mix")
    if not 0 <= start < end <= num_ws:
        raise GanStudioError(f"layer range {start}..{end} is empty or outside 0..{num_ws} "
                             f"(this model has {num_ws} style layers)")
    a = model.to_wplus(base).float().cpu()
    b = model.to_wplus(donor).float().cpu()
    if len(a) != len(b):
        if len(a) == 1:
            a = a.expand(len(b), -1, -1)
        elif len(b) == 1:
            b = b.expand(len(a), -1, -1)
        else:
            raise GanStudioError(f"cannot pair {len(a)} base latents with {len(b)} donors: "
                                 "use batches of the same size, or one of size 1")
    mixed = a.clone()
    mixed[:, start:end] = b[:, start:end]
    source = base if len(base) == len(mixed) else donor
    return replace(source, values=mixed, space="w+", truncation_psi=1.0,
                   truncation_cutoff=None,
                   labels=None if source.labels is None else source.labels.clone(),
                   extra={**source.extra, "style_mix": {"layers": [start, end]}})


def mixing_grid(model: GenerativeModel, rows: LatentBatch, cols: LatentBatch,
                start: int, end: int) -> LatentBatch:
    """Every row latent with layers [start, end) from every column latent, row-major."""
    r = model.to_wplus(rows).float().cpu()
    c = model.to_wplus(cols).float().cpu()
    grid = r.repeat_interleave(len(c), dim=0).clone()
    grid[:, start:end] = c.repeat(len(r), 1, 1)[:, start:end]
    labels = None if rows.labels is None else rows.labels.repeat_interleave(len(c), dim=0)
    return LatentBatch(values=grid, space="w+", labels=labels, model_id=rows.model_id)


__all__ = ["PRESETS", "mixing_grid", "preset_layers", "style_mix"]
