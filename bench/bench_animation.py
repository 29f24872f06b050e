"""Animation throughput: a 240-frame looping keyframe path at 256 px, generated in chunks.

    .venv/bin/python bench/bench_animation.py [--arch auto|stylegan2|dcgan] [--chunk 8]
                                              [--frames 240] [--limit N] [--device cpu]

Builds Keyframe Path's latents (4 seeds, spline, constant speed, loop) and runs
gan_models.generate_in_chunks on them, as Generate Images does. The model is StyleGAN2
config F at 256 px (512-d z/w, 8-layer mapping, channel_base 32768, channel_max 512) when
that family is available, else a 256 px DCGAN; random weights (speed does not depend on
them). --limit generates only the first N frames of the path (for slow CPUs); frames/s is
then measured on those.

Prints JSON: frames/s (all chunks, and without the first), seconds to build the path, and
memory: RSS before generating, peak RSS, the size of the output IMAGE batch, and the rest
of the peak ("working"), which should stay about one chunk's activations whatever the
number of frames. Run one configuration per process: peak RSS is a per-process high mark.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

from bench_common import peak_rss_mb

REPO = Path(__file__).resolve().parent.parent
SEEDS = [1, 5, 42, 7]
STYLEGAN2_F = {"z_dim": 512, "c_dim": 0, "w_dim": 512, "img_resolution": 256, "img_channels": 3,
               "mapping_kwargs": {"num_layers": 8}, "channel_base": 32768, "channel_max": 512}
DCGAN_256 = {"resolution": 256, "z_dim": 128}


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def build_model(arch: str):
    import gan_models
    from gan_models import registry

    if arch == "auto":
        arch = "stylegan2" if "stylegan2" in registry.names() else "dcgan"
    if arch == "stylegan2":
        return arch, gan_models.GenerativeModel.create("stylegan2", {"generator": STYLEGAN2_F})
    return arch, gan_models.GenerativeModel.create("dcgan", DCGAN_256)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--arch", choices=["auto", "stylegan2", "dcgan"], default="auto")
    parser.add_argument("--frames", type=int, default=240)
    parser.add_argument("--limit", type=int, default=0, help="generate only the first N frames")
    parser.add_argument("--chunk", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "tests"))
    import conftest  # noqa: F401  (imports the library as top-level gan_models, like the tests)
    import torch

    import gan_models
    from gan_models.motion.animation import keyframes_from_seeds, path_latents

    torch.manual_seed(0)
    arch, model = build_model(args.arch)
    model.to(args.device)
    t0 = time.perf_counter()
    path = path_latents(keyframes_from_seeds(model, SEEDS), args.frames, "spline",
                        "constant speed", loop=True)
    path_s = time.perf_counter() - t0
    if args.limit:
        path = path.select(slice(0, args.limit))
    stamps = []
    rss_before, peak_before = rss_mb(), peak_rss_mb()
    t0 = time.perf_counter()
    with torch.inference_mode():  # as the executor runs nodes
        images = gan_models.generate_in_chunks(
            model, path, args.chunk, on_chunk=lambda done, _: stamps.append(
                (done, time.perf_counter())))
    total_s = time.perf_counter() - t0
    first_done, first_t = stamps[0]
    rest = (len(path) - first_done) / (stamps[-1][1] - first_t) if len(stamps) > 1 else None
    output_mb = images.numel() * images.element_size() / 2**20
    peak = peak_rss_mb()
    print(json.dumps({
        "arch": arch, "resolution": model.resolution, "device": args.device,
        "threads": torch.get_num_threads(), "parameters_mb": model.parameter_bytes() / 2**20,
        "path_frames": args.frames, "generated_frames": len(path), "chunk": args.chunk,
        "path_build_s": round(path_s, 4), "generate_s": round(total_s, 2),
        "frames_per_s": round(len(path) / total_s, 3),
        "frames_per_s_after_first_chunk": None if rest is None else round(rest, 3),
        "rss_before_mb": round(rss_before, 1), "peak_rss_before_mb": round(peak_before, 1),
        "peak_rss_mb": round(peak, 1), "output_mb": round(output_mb, 1),
        "working_mb": round(peak - rss_before - output_mb, 1),
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
