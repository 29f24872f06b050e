"""Side-by-side quality of several checkpoints, with an independent judge. Prints one JSON
document (and writes it with --out); draws a labelled picture with --sheet.

    .venv/bin/python bench/bench_judge.py NAME=MODEL.safetensors [NAME=...] \\
        [--data data/twemoji64] [--num 2000] [--judge bench/twemoji_judge.safetensors] \\
        [--sheet sheet.jpg] [--out numbers.json] [--no-lite0]

For every model, from one set of --num samples (classes drawn with the data's frequencies):
FD and KID on EfficientNet-Lite0 features (the metrics the projected discriminator trains
on, so they flatter it), FD on the judge's features (a small CNN trained from scratch on 90 %
of the real images, never used in training), the class accuracy of conditional samples under
the judge (per class, averaged per class, and as a share of the judge's own held-out
accuracy on real images: the ceiling), and the fraction of near-blank samples next to the
real data's. The judge file is trained when missing and named with its sha256 in the output.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench_common import use_library

REPO = Path(__file__).resolve().parent.parent
JUDGE = REPO / "bench" / "twemoji_judge.safetensors"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("models", nargs="+", help="NAME=checkpoint")
    parser.add_argument("--data", type=Path, default=REPO / "data" / "twemoji64")
    parser.add_argument("--num", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--judge", type=Path, default=JUDGE)
    parser.add_argument("--judge-steps", type=int, default=1500)
    parser.add_argument("--sheet", type=Path, default=None)
    parser.add_argument("--seeds", type=int, default=6, help="samples per class on the sheet")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--no-lite0", action="store_true", help="skip FD/KID on Lite0")
    args = parser.parse_args()
    use_library()
    import gan_models
    from gan_models.metrics.evaluation import CACHE_FOLDER
    from gan_models.metrics.judge import check_same_data, compare, load_or_train_judge
    from gan_models.metrics.sheet import labelled_sheet, real_panel
    from gan_models.training import load_image_folder

    pairs = [m.split("=", 1) if "=" in m else (Path(m).stem, m) for m in args.models]
    models = {name: gan_models.load_model(path) for name, path in pairs}
    resolution = next(iter(models.values())).resolution
    dataset = load_image_folder(args.data, resolution)
    log = lambda msg: print(msg, file=sys.stderr)  # noqa: E731
    judge, report, digest = load_or_train_judge(args.judge, dataset, args.judge_steps,
                                                args.seed, log)
    check_same_data(report, dataset)
    result = compare(models, dataset, judge, report, num=args.num, seed=args.seed,
                     lite0=not args.no_lite0, cache_dir=args.data / CACHE_FOLDER, log=log)
    result["judge"] = {"file": args.judge.name, "sha256": digest, "steps": report.get("steps"),
                       "train_images": report.get("train_images"),
                       "heldout_images": report.get("heldout_images")}
    result["checkpoints"] = {name: str(path) for name, path in pairs}
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    if args.sheet:
        names = next(iter(models.values())).class_names
        real = real_panel(dataset, names, args.seeds, args.seed)
        labelled_sheet(models, args.seeds, real=real).save(args.sheet, quality=92)
        log(f"sheet: {args.sheet}")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
