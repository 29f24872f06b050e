"""Quality and text faithfulness of a text-to-image model on the captioned Twemoji set
(scripts/fetch_twemoji_captions.py). Prints one JSON document (and writes it with --out);
draws a labelled sheet of held-out captions with --sheet.

    .venv/bin/python bench/bench_text2image.py models/gan/gan_studio_text2emoji.safetensors \\
        --captions ~/data/twemoji_captions [--data data/twemoji64] [--num 2000] [--per 10] \\
        [--judge bench/twemoji_judge.safetensors] [--sheet sheet.jpg] [--out numbers.json]

* Fréchet distances of --num samples, captions drawn uniformly from the training captions,
  against all real Twemoji (--data): on EfficientNet-Lite0 features and on the independent
  judge's features (bench_judge.py's judge, trained from scratch, never used in training).
* Text faithfulness on the HELD-OUT captions (emoji the model never trained on), --per
  samples each: category accuracy under the judge, sub-category accuracy under a
  nearest-neighbour judge on the judge's features (bank: the training images), with chance,
  the judge's own accuracy on the real held-out images, and two controls (shuffled labels,
  shuffled captions); see gan_models/metrics/text_faithfulness.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench_common import use_library

REPO = Path(__file__).resolve().parent.parent
JUDGE = REPO / "bench" / "twemoji_judge.safetensors"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", type=Path)
    parser.add_argument("--captions", type=Path, required=True,
                        help="the folder written by scripts/fetch_twemoji_captions.py")
    parser.add_argument("--data", type=Path, default=REPO / "data" / "twemoji64",
                        help="all real Twemoji, one folder per category (the judge's data)")
    parser.add_argument("--judge", type=Path, default=JUDGE)
    parser.add_argument("--num", type=int, default=2000)
    parser.add_argument("--per", type=int, default=10, help="samples per held-out caption")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sheet", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    use_library()
    import torch

    import gan_models
    from gan_models.metrics.evaluation import CACHE_FOLDER, cached_real_features
    from gan_models.metrics.features import load_feature_extractor
    from gan_models.metrics.frechet import frechet_distance
    from gan_models.metrics.judge import (
        check_same_data,
        judge_features,
        load_or_train_judge,
        samples,
    )
    from gan_models.metrics.text_faithfulness import text_faithfulness
    from gan_models.training import load_image_folder
    from gan_models.training.captions import load_captioned_folder

    log = lambda msg: print(msg, file=sys.stderr)  # noqa: E731
    t0 = time.perf_counter()
    model = gan_models.load_model(args.model)
    res = model.resolution
    labels = json.loads((args.captions / "labels.json").read_text())
    train = load_captioned_folder(args.captions / "train", res)
    held = load_captioned_folder(args.captions / "heldout", res)
    data = load_image_folder(args.data, res)
    judge, report, digest = load_or_train_judge(args.judge, data, log=log)
    check_same_data(report, data)

    # Distribution: samples from training captions against every real emoji.
    gen = torch.Generator().manual_seed(args.seed)
    picks = torch.randint(len(train.captions), (args.num,), generator=gen).tolist()
    embed = torch.cat([model.encode_text([train.captions[i] for i in picks[k:k + 256]])
                       for k in range(0, args.num, 256)])
    fakes = samples(model, args.num, args.seed, embed)
    real01 = data.images.float() / 255
    extract = load_feature_extractor("cpu", 64)
    real_lite0 = cached_real_features(extract, data, "lite0", args.data / CACHE_FOLDER)[0]
    fake_lite0 = torch.cat([extract(fakes[i:i + 256]) for i in range(0, len(fakes), 256)])
    distances = {
        "fd_lite0": round(frechet_distance(fake_lite0, real_lite0["features"]), 3),
        "fd_judge": round(frechet_distance(judge_features(judge, fakes),
                                           judge_features(judge, real01)), 3),
        "num_samples": args.num, "real_images": len(real01)}
    log(f"distances: {distances}")

    # Faithfulness on held-out captions.
    held_keys = [f"heldout/{Path(f).name}" for f in _files(args.captions / "heldout")]
    train_keys = [f"train/{Path(f).name}" for f in _files(args.captions / "train")]
    faith = text_faithfulness(
        model, judge, list(held.captions), [labels[k]["category"] for k in held_keys],
        [labels[k]["subcategory"] for k in held_keys], train.images.float() / 255,
        [labels[k]["subcategory"] for k in train_keys], held.images.float() / 255,
        per=args.per, seed=args.seed)
    result = {"model": model.describe(), "file": args.model.name,
              "provenance": model.metadata.get("provenance", {}), **distances,
              "text_faithfulness": faith,
              "judge": {"file": args.judge.name, "sha256": digest,
                        "heldout_balanced_accuracy": report.get("heldout_balanced_accuracy")},
              "seconds": round(time.perf_counter() - t0, 1)}
    result["provenance"].pop("options", None)
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    if args.sheet:
        _sheet(model, held, args.seed).save(args.sheet, quality=92)
        log(f"sheet: {args.sheet}")
    print(text)
    return 0


def _files(folder: Path) -> list[Path]:
    """The images in the order load_captioned_folder reads them."""
    from gan_models.training.captions import _image_files

    return _image_files(folder)


def _sheet(model, held, seed: int, rows: int = 10, per: int = 6):
    """Held-out captions, one per row: the real emoji, then `per` samples, then the caption."""
    import torch
    from PIL import Image, ImageDraw

    from gan_models.images import label_font

    size, pad, text_w = 64, 4, 420
    step = max(1, len(held.captions) // rows)
    picked = list(range(0, len(held.captions), step))[:rows]
    sheet = Image.new("RGB", (pad + (per + 1) * (size + pad) + text_w,
                              pad + rows * (size + pad) + 20), "white")
    draw = ImageDraw.Draw(sheet)
    font = label_font(11)
    draw.text((pad, 4), "real (held out) | generated from its caption, never trained on",
              fill="black", font=font)
    for r, i in enumerate(picked):
        y = 20 + pad + r * (size + pad)
        real = held.images[i].permute(1, 2, 0).numpy()
        sheet.paste(Image.fromarray(real), (pad, y))
        e = model.encode_text([held.captions[i]]).expand(per, -1)
        with torch.no_grad():
            x = model.synthesize(model.sample_latents(seed + 100 * r, per).with_labels(e))
        x = ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
        for k in range(per):
            sheet.paste(Image.fromarray(x[k]), (pad + (k + 1) * (size + pad), y))
        caption = held.captions[i]
        lines = [caption[j:j + 60] for j in range(0, min(len(caption), 180), 60)]
        for li, line in enumerate(lines):
            draw.text((pad + (per + 1) * (size + pad) + 4, y + 4 + 14 * li), line,
                      fill="black", font=font)
    return sheet


if __name__ == "__main__":
    sys.exit(main())
