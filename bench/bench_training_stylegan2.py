"""StyleGAN2-ADA training throughput at 64 px; prints one JSON document.

    .venv/bin/python bench/bench_training_stylegan2.py [--threads 1] [--steps 3] [--batch 16]

Cases, each in its own process (so peak RSS belongs to one case):
  cpu64   recipe stylegan2-ada at its defaults (64 px, base 64 / max 256 channels, z = w =
          256, 2 mapping layers), ADA pipeline 'bgc' at a fixed p = 0.5, on the CPU:
          ms per ordinary step (G, D), ms of a step that also runs lazy R1 (every 16 steps),
          images/s with R1 amortised, and peak RSS.
  augment the ADA pipeline alone on a [batch, 3, 64, 64] batch (forward + backward) at
          p = 0.5 and p = 1.
  cuda64  the cpu64 measurement on CUDA (batch 32, bf16 autocast and fp32), when a GPU is
          present.
About 1.5-3 minutes on a busy 2-core CPU with the defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_common import peak_rss_mb, use_library

REPO = Path(__file__).resolve().parent.parent
OPTIONS = {"resolution": 64, "augment": "fixed", "augment_p": 0.5}


def case_training(data: Path, device: str, steps: int, batch: int, amp: str) -> dict:
    import torch

    use_library()
    import gan_models.training as training

    dataset = training.load_image_folder(data, 64)
    recipe = training.make_recipe("stylegan2-ada", {**OPTIONS, "amp": amp}, 0)
    trainer = training.Trainer(recipe, dataset, batch=batch, device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def timed(n: int) -> float:
        sync()
        start = time.perf_counter()
        trainer.train_steps(n)
        sync()
        return (time.perf_counter() - start) / n

    timed(1)                      # step 0 (with R1): warm-up
    plain = timed(steps)          # steps 1..steps: G and D only
    interval = int(recipe.options["r1_interval"])
    trainer.step = interval       # the sampler is stateless: jump to the next R1 step
    with_r1 = timed(1)
    amortised = plain + (with_r1 - plain) / interval
    out = {"device": device, "batch": batch, "amp": amp, "timed_steps": steps,
           "step_ms": round(1000 * plain, 1), "r1_step_ms": round(1000 * with_r1, 1),
           "images_per_s": round(batch / amortised, 2), "peak_rss_mb": peak_rss_mb(),
           "params": sum(p.numel() for n in trainer.nets.values() for p in n.parameters())}
    if device.startswith("cuda"):
        out["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def case_augment(batch: int) -> dict:
    import torch

    use_library()
    from gan_models.training.ada import augment
    from gan_models.training.seeding import BatchRandom

    x = torch.rand(batch, 3, 64, 64) * 2 - 1
    out = {"batch": batch}
    for p in (0.5, 1.0):
        runs = []
        for rep in range(5):
            leaf = x.clone().requires_grad_(True)
            start = time.perf_counter()
            augment(leaf, p, BatchRandom(rep, batch, 0, batch)).square().sum().backward()
            runs.append(time.perf_counter() - start)
        out[f"p{p:g}_ms"] = round(1000 * min(runs), 2)
    return out


def child(args) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    data = Path(args.data)
    if args.case == "cpu64":
        result = case_training(data, "cpu", args.steps, args.batch, "off")
    elif args.case == "augment":
        result = case_augment(args.batch)
    else:
        result = {"bf16": case_training(data, "cuda", 20, 32, "auto"),
                  "fp32": case_training(data, "cuda", 20, 32, "off")}
    print("RESULT " + json.dumps(result))


def run_case(case: str, data: Path, args) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--case", case, "--data", str(data),
                           "--steps", str(args.steps), "--batch", str(args.batch),
                           "--threads", str(args.threads)],
                          capture_output=True, text=True, cwd=REPO)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    return {"error": (proc.stderr or proc.stdout)[-2000:]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=3, help="timed ordinary steps on the CPU")
    p.add_argument("--batch", type=int, default=16, help="CPU batch (a multiple of 4)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads per case (default: torch's choice)")
    p.add_argument("--case", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.case:
        return child(args)
    use_library()
    import torch

    from gan_models.training.shapes import write_shapes_folder

    data = write_shapes_folder(Path(tempfile.mkdtemp(prefix="bench_shapes_")), per_class=16,
                               size=64, conditional=False)
    report = {"torch": torch.__version__, "machine": platform.machine(),
              "cpu_count": os.cpu_count(), "threads": args.threads or torch.get_num_threads(),
              "load_average_before": [round(x, 2) for x in os.getloadavg()]}
    start = time.perf_counter()
    report["cpu64"] = run_case("cpu64", data, args)
    report["augment"] = run_case("augment", data, args)
    if torch.cuda.is_available():
        report["cuda64"] = run_case("cuda64", data, args)
    report["wall_s"] = round(time.perf_counter() - start, 1)
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
