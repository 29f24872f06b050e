"""A labelled comparison picture of class-conditional models: a row per class (its name on
the left), a panel per model (its name on top), the same seeds in every row and panel."""

from __future__ import annotations

import torch
from PIL import Image, ImageDraw

from ..errors import GanStudioError
from ..images import label_font

GAP, LABEL_W, HEADER_H = 10, 170, 28


@torch.no_grad()
def class_panel(model, seeds: int, psi: float = 1.0, seed: int = 0) -> torch.Tensor:
    """`[C * R, seeds * R, 3]` in 0..1: row c = class c, column i = seed + i."""
    from ..latent import one_hot_weights

    rows = []
    for index in range(model.num_classes):
        batch = model.sample_latents(seed=seed, batch_size=seeds, truncation_psi=psi)
        labels = one_hot_weights([(index, 1.0)], model.num_classes).expand(seeds, -1).clone()
        images = model.synthesize(batch.with_labels(labels)).float().clamp(-1, 1)
        images = images[:, :3].add(1).mul(0.5).cpu()                  # [seeds, 3, R, R]
        rows.append(torch.cat(list(images.permute(0, 2, 3, 1)), dim=1))  # [R, seeds*R, 3]
    return torch.cat(rows, dim=0)


def labelled_sheet(models: dict, seeds: int = 6, psi: float = 1.0, seed: int = 0,
                   real: torch.Tensor | None = None) -> Image.Image:
    """{name: class-conditional GenerativeModel} -> one labelled RGB picture. `real`: an
    optional panel of real images `[C * R, W, 3]` drawn first, headed "real data"."""
    if not models:
        raise GanStudioError("no models to draw")
    first = next(iter(models.values()))
    names = first.class_names
    if not names or any(m.class_names != names for m in models.values()):
        raise GanStudioError("the models must be class-conditional with the same classes")
    panels = ([("real data", real)] if real is not None else []) + [
        (name, class_panel(m, seeds, psi, seed)) for name, m in models.items()]
    h = panels[0][1].shape[0]
    width = LABEL_W + sum(p.shape[1] + GAP for _, p in panels)
    sheet = Image.new("RGB", (width, HEADER_H + h), "white")
    draw = ImageDraw.Draw(sheet)
    font = label_font(14)
    row_h = h // len(names)
    for i, name in enumerate(names):
        draw.text((6, HEADER_H + i * row_h + row_h // 2 - 8), name.replace("_", " "),
                  fill="black", font=font)
    x = LABEL_W
    for title, panel in panels:
        img = Image.fromarray((panel.clamp(0, 1) * 255).round().byte().numpy())
        sheet.paste(img, (x, HEADER_H))
        draw.text((x + 4, 6), title, fill="black", font=font)
        x += panel.shape[1] + GAP
    return sheet


def real_panel(dataset, class_names: list[str], per_class: int, seed: int = 0) -> torch.Tensor:
    """Real images of each class (a row per class, in `class_names` order) as one panel."""
    gen = torch.Generator().manual_seed(seed)
    lower = [n.lower() for n in dataset.class_names]
    rows = []
    for name in class_names:
        idx = (dataset.labels == lower.index(name.lower())).nonzero().flatten()
        pick = idx[torch.randperm(len(idx), generator=gen)[:per_class]]
        imgs = dataset.images[pick].float() / 255                      # [k, 3, R, R]
        rows.append(torch.cat(list(imgs.permute(0, 2, 3, 1)), dim=1))
    return torch.cat(rows, dim=0)
