"""Projection (GAN inversion) benchmark: speed and quality on the CPU. Prints one JSON document.

    .venv/bin/python bench/bench_projection.py [--count 8] [--steps 100,500] [--threads 1]
                                               [--skip-speed] [--skip-quality] [--sheet PNG]

Speed: projection steps per second, batch of 1, in W+, with pixel + structure loss and with
the EfficientNet-Lite0 perceptual loss added, at 64 px (the shipped starter StyleGAN2) and at
256 px (a random-init StyleGAN2 of the same channel recipe: only its speed means anything).

Quality: held-out Twemoji, projected into the shipped GAN (W and W+) and the shipped VAE
(its encoder alone, then refined). The held-out images are skin-tone variants of people and
hand emoji from npm emoji-datasource-twitter@16.0.0 (CC-BY-4.0): both models were trained on
the base emoji only, so these were never seen, but each has a seen base version of another
skin colour. `--count` of them are taken evenly from the sorted list. For every run (a run of
N steps has its own learning-rate schedule, so "after 100 steps" is a 100-step run): PSNR,
an SSIM score (single scale, 7x7 Gaussian window) and the perceptual distance on
EfficientNet-Lite0 features (the LPIPS-style distance of editing/perceptual.py). The default
loss uses that same network, so its distance flatters those runs: the `w+, no perceptual`
run is the control whose loss never saw it. --sheet writes a picture: targets, then each
500-step result, one row each.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tarfile
import time
from pathlib import Path

import torch
from bench_common import REPO, peak_rss_mb, use_library

GAN = REPO / "models" / "gan" / "gan_studio_twemoji_stylegan2.safetensors"
VAE = REPO / "models" / "gan" / "gan_studio_twemoji_vae.safetensors"
TARBALL = REPO / "data" / ".cache" / "emoji-datasource-twitter-16.0.0.tgz"


def held_out_twemoji(count: int) -> tuple[torch.Tensor, list[str]]:
    """`count` skin-tone variants as 0..1 RGBA `[N, 64, 64, 4]`, and their file names."""
    import io

    import numpy as np
    from PIL import Image

    if not TARBALL.is_file():
        sys.path.insert(0, str(REPO / "scripts"))
        from fetch_twemoji import fetch

        fetch(REPO / "data" / "twemoji64", REPO / "data" / ".cache")
    with tarfile.open(TARBALL) as tar:
        index = json.load(tar.extractfile("package/emoji.json"))
        names = sorted(v["image"] for e in index if e.get("has_img_twitter")
                       for v in (e.get("skin_variations") or {}).values()
                       if v.get("has_img_twitter"))
        step = max(1, len(names) // count)
        chosen = names[::step][:count]
        images = []
        for name in chosen:
            data = tar.extractfile(f"package/img/twitter/64/{name}").read()
            im = Image.open(io.BytesIO(data)).convert("RGBA")
            images.append(torch.from_numpy(np.asarray(im, dtype=np.float32) / 255))
    return torch.stack(images), chosen


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    from gan_models.editing.losses import _ssim_terms, _window

    x, y = (a + 1) / 2, (b + 1) / 2
    return _ssim_terms(x, y, _window(x.shape[1], x.device, x.dtype))[0]


def scores(result, targets, perceptual) -> dict:
    with torch.no_grad():
        dist = None if perceptual is None else perceptual(result.images, targets)
    return {"psnr": round(float(result.psnr.mean()), 2),
            "psnr_per_image": [round(float(v), 1) for v in result.psnr],
            "ssim": round(float(ssim(result.images, targets).mean()), 3),
            "lite0_distance": None if dist is None else round(float(dist.mean()), 4)}


def quality(count: int, step_counts: list[int], sheet: Path | None) -> dict:
    import gan_models
    from gan_models.editing.inversion import ProjectionSettings, project
    from gan_models.editing.perceptual import LITE0, lite0_available, load_perceptual
    from gan_models.images import to_model_input

    rgba, names = held_out_twemoji(count)
    targets, _ = to_model_input(rgba, 64, 3)  # transparent pixels on white, as in training
    perceptual = load_perceptual(LITE0) if lite0_available() else None
    gan, vae = gan_models.load_model(GAN), gan_models.load_model(VAE)
    runs = [(f"gan {space}", gan, {"space": space}) for space in ("w", "w+")]
    runs += [("gan w+, no perceptual", gan, {"space": "w+", "perceptual_weight": 0.0}),
             ("vae refined", vae, {})]
    out = {"images": names, "perceptual_loss": LITE0 if perceptual else "none"}
    rows = [targets]
    start = time.perf_counter()
    encoder = project(vae, targets, ProjectionSettings(steps=0))
    out["vae encoder alone"] = scores(encoder, targets, perceptual)
    rows.append(encoder.images)
    for label, model, options in runs:
        out[label] = {}
        for steps in step_counts:
            if label.endswith("no perceptual") and steps != max(step_counts):
                continue
            t = time.perf_counter()
            weight = options.get("perceptual_weight", 1.0)
            result = project(model, targets, ProjectionSettings(steps=steps, **options),
                             perceptual=perceptual if weight else None)
            out[label][f"{steps} steps"] = {**scores(result, targets, perceptual),
                                            "seconds": round(time.perf_counter() - t, 1)}
            if steps == max(step_counts):
                rows.append(result.images)
            print(f"{label} {steps}: {out[label][f'{steps} steps']['psnr']} dB",
                  file=sys.stderr, flush=True)
    out["seconds"] = round(time.perf_counter() - start, 1)
    if sheet is not None:
        write_sheet(rows, ["target", "vae encoder", *[r[0] + f" {max(step_counts)}"
                                                      for r in runs]], sheet)
        out["sheet"] = str(sheet)
    return out


def write_sheet(rows: list[torch.Tensor], labels: list[str], path: Path) -> None:
    from PIL import Image

    from gan_models.editing.sheet import labelled_grid
    from gan_models.model import to_unit_hwc

    images = torch.cat([to_unit_hwc(r) for r in rows])
    cols = rows[0].shape[0]
    grid = labelled_grid(images, len(rows), cols, labels, [str(i) for i in range(cols)])
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((grid.numpy() * 255).round().astype("uint8")).save(path)


def speed(seconds: float = 8.0) -> dict:
    import gan_models
    from gan_models.editing.inversion import ProjectionSettings, project
    from gan_models.editing.perceptual import LITE0, lite0_available, load_perceptual

    small = gan_models.load_model(GAN)
    config = {"generator": {**small.config["generator"], "img_resolution": 256, "c_dim": 0},
              "discriminator": None}
    torch.manual_seed(0)
    large = gan_models.GenerativeModel.create("stylegan2", config)
    perceptual = load_perceptual(LITE0) if lite0_available() else None
    out = {}
    for model in (small, large):
        res = model.resolution
        target = torch.rand(1, 3, res, res) * 2 - 1
        labels = torch.eye(model.num_classes)[:1] if model.num_classes else None
        for label, weight in (("pixel+structure", 0.0), ("+ lite0 perceptual", 1.0)):
            if weight and perceptual is None:
                continue
            steps, elapsed = 5, 0.0
            while True:  # grow the run until it lasts long enough to time
                t = time.perf_counter()
                project(model, target, ProjectionSettings(space="w+", steps=steps,
                                                          perceptual_weight=weight),
                        labels=labels, perceptual=perceptual if weight else None)
                elapsed = time.perf_counter() - t
                if elapsed > seconds or steps >= 2000:
                    break
                steps = int(steps * max(2.0, seconds / max(elapsed, 1e-3)))
            out[f"{res}px {label}"] = round(steps / elapsed, 2)
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--steps", default="100,500")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--sheet", type=Path, default=None)
    args = parser.parse_args(argv)
    use_library()
    torch.set_num_threads(args.threads)
    report = {"bench": "projection", "torch": torch.__version__, "threads": args.threads,
              "machine": platform.machine(), "cpus": os.cpu_count(),
              "load_average_at_start": [round(v, 2) for v in os.getloadavg()]}
    if not args.skip_speed:
        report["steps_per_second"] = speed()
    if not args.skip_quality:
        report["held_out_twemoji"] = quality(args.count, [int(s) for s in
                                                          args.steps.split(",")], args.sheet)
    report["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    report["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
