"""Does a text-to-image model draw what the caption says? Judged by an image classifier
that never took part in training (metrics/judge.py), on captions the model never saw.

For each caption (with the category and sub-category of the image it describes), `per`
samples are drawn (seeds differ per caption) and judged:
  * category accuracy: the judge's class of each sample == the caption's category;
  * sub-category accuracy: the sub-category of the sample's nearest real image in the
    judge's feature space (a 1-nearest-neighbour judge over labelled real images) == the
    caption's sub-category. Its ceiling is the same rule applied to the real images of the
    captions themselves (held out of the bank, so never their own neighbour);
  * controls: the same samples scored against shuffled labels (a fixed permutation of the
    captions' labels: what matching by luck scores on this label mix), and samples drawn
    from shuffled captions scored against the original labels (what the model's average
    output scores, whatever the text).
Accuracies are averaged per category (balanced) and overall.
"""

from __future__ import annotations

import torch

from .judge import judge_features, samples


@torch.no_grad()
def _draw(model, captions: list[str], per: int, seed: int) -> torch.Tensor:
    embed = model.encode_text(captions).repeat_interleave(per, dim=0)
    return samples(model, len(embed), seed, embed)


def _scores(hits: torch.Tensor, groups: list[str]) -> dict:
    by: dict[str, list[float]] = {}
    for h, g in zip(hits.tolist(), groups, strict=True):
        by.setdefault(g, []).append(h)
    per_group = {g: sum(v) / len(v) for g, v in sorted(by.items())}
    return {"overall": round(float(hits.float().mean()), 4),
            "balanced": round(sum(per_group.values()) / len(per_group), 4),
            "per_category": {g: round(v, 4) for g, v in per_group.items()}}


def nearest_labels(feats: torch.Tensor, bank: torch.Tensor, bank_labels: list[str]) -> list[str]:
    """The label of each feature row's nearest bank row (cosine similarity)."""
    a = torch.nn.functional.normalize(feats.float(), dim=1)
    b = torch.nn.functional.normalize(bank.float(), dim=1)
    return [bank_labels[i] for i in (a @ b.T).argmax(1).tolist()]


def text_faithfulness(model, judge, captions: list[str], categories: list[str],
                      subcategories: list[str], bank_images: torch.Tensor,
                      bank_subcategories: list[str], real_images: torch.Tensor,
                      per: int = 10, seed: int = 0) -> dict:
    """Numbers described in the module docstring. bank_images `[M, 3, H, W]` in [0, 1] are
    labelled real images for the sub-category judge (e.g. the training images);
    real_images `[N, 3, H, W]` in [0, 1] are the real images of the captions (ceilings)."""
    n = len(captions)
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=gen).tolist()
    cats = [categories[i] for i in range(n) for _ in range(per)]
    subs = [subcategories[i] for i in range(n) for _ in range(per)]
    shuffled_cats = [categories[perm[i]] for i in range(n) for _ in range(per)]
    shuffled_subs = [subcategories[perm[i]] for i in range(n) for _ in range(per)]
    index = {name: i for i, name in enumerate(judge.class_names)}

    def judged(images: torch.Tensor) -> tuple[list[str], list[str]]:
        predicted = [judge.class_names[i] for i in judge.predict(images).tolist()]
        feats = judge_features(judge, images)
        return predicted, nearest_labels(feats, bank_feats, bank_subcategories)

    bank_feats = judge_features(judge, bank_images)
    images = _draw(model, captions, per, seed)
    cat_pred, sub_pred = judged(images)
    control = _draw(model, [captions[p] for p in perm], per, seed)
    ctl_cat, ctl_sub = judged(control)

    def hits(pred, truth):
        return torch.tensor([float(p == t) for p, t in zip(pred, truth, strict=True)])

    real_cat = [judge.class_names[i] for i in judge.predict(real_images).tolist()]
    real_feats = judge_features(judge, real_images)
    real_sub = nearest_labels(real_feats, bank_feats, bank_subcategories)
    missing = sorted(set(categories) - set(index))
    return {
        "captions": n, "samples_per_caption": per, "samples": len(images),
        "categories_unknown_to_judge": missing,
        "category_accuracy": _scores(hits(cat_pred, cats), cats),
        "category_accuracy_shuffled_labels": _scores(hits(cat_pred, shuffled_cats), cats),
        "category_accuracy_shuffled_captions": _scores(hits(ctl_cat, cats), cats),
        "category_chance": round(1 / len(judge.class_names), 4),
        "category_judge_on_real": _scores(hits(real_cat, categories), categories),
        "subcategory_accuracy": _scores(hits(sub_pred, subs), cats),
        "subcategory_accuracy_shuffled_labels": _scores(hits(sub_pred, shuffled_subs), cats),
        "subcategory_accuracy_shuffled_captions": _scores(hits(ctl_sub, subs), cats),
        "subcategory_judge_on_real": _scores(hits(real_sub, subcategories), categories),
        "subcategories": len(set(bank_subcategories) | set(subcategories)),
    }
