"""StyleGAN3-T generator throughput: images/s and peak RSS, random weights.

    .venv/bin/python bench/bench_stylegan3.py [--resolution 256] [--batch-sizes 1 8]

NVlabs' 256 px config T sizes (channel_base 32768, channel_max 512, z/w 512, 2 mapping
layers). Each batch size gets warm-up runs, then timed runs (defaults 1 + 1, about 2-3
minutes on an idle 2-core CPU); prints one JSON document.
CPU runs in fp32; CUDA (when present) runs as upstream does, fp16 in the top layers.
Peak RSS is the process high-water mark after each run, so it only grows down the list.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the library, no ComfyUI

import torch  # noqa: E402
from bench_common import peak_rss_mb

from gan_models.architectures.stylegan3 import Generator  # noqa: E402


def config(resolution: int, radial: bool) -> dict:
    cfg = {"z_dim": 512, "c_dim": 0, "w_dim": 512, "img_resolution": resolution,
           "img_channels": 3, "mapping_kwargs": {"num_layers": 2},
           "channel_base": 32768, "channel_max": 512}
    if radial:  # config R: 1x1 convs, radial filters, doubled channels
        cfg.update(channel_base=65536, channel_max=1024, conv_kernel=1, use_radial_filters=True)
    return cfg


def time_batches(g: Generator, batch: int, device: torch.device, warmup: int,
                 runs: int) -> dict:
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(batch, g.z_dim, generator=gen).to(device)

    def step():
        with torch.no_grad():
            img = g(z, None)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return img

    for _ in range(warmup):
        step()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    best, mean = min(times), sum(times) / len(times)
    return {"batch_size": batch, "runs": runs, "mean_s_per_batch": round(mean, 4),
            "best_s_per_batch": round(best, 4), "images_per_s": round(batch / mean, 3),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            **({"peak_cuda_mb": round(torch.cuda.max_memory_allocated(device) / 2**20, 1)}
               if device.type == "cuda" else {})}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--radial", action="store_true", help="config R instead of T")
    ap.add_argument("--devices", nargs="+", default=None,
                    help="default: cpu, plus cuda when available")
    args = ap.parse_args()
    devices = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

    torch.manual_seed(0)
    cfg = config(args.resolution, args.radial)
    g = Generator(**cfg).eval().requires_grad_(False)
    report = {"benchmark": "stylegan3-" + ("r" if args.radial else "t"),
              "resolution": args.resolution, "config": cfg,
              "parameters": sum(p.numel() for p in g.parameters()),
              "torch": torch.__version__, "threads": torch.get_num_threads(),
              "machine": platform.machine(), "cpus": os.cpu_count(),
              "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
              "peak_rss_mb_after_build": round(peak_rss_mb(), 1),
              "results": []}
    for name in devices:
        device = torch.device(name)
        g.to(device)
        for batch in args.batch_sizes:
            row = time_batches(g, batch, device, args.warmup, args.runs)
            report["results"].append({"device": name, "precision": (
                "fp32" if device.type == "cpu" else "fp16 top layers"), **row})
    report["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
