"""Training throughput and overhead; prints one JSON document.

    .venv/bin/python bench/bench_training.py [--threads 1] [--steps 6] [--skip-node]

Cases, each in its own process (so peak RSS belongs to one case):
  cpu64   DCGAN 64 px at full width (base 64, max 512 channels, z 128), batch 32, on the CPU:
          images/s over timed steps after a warm-up step, and peak RSS.
  cuda64  the same on CUDA (batch 64, bf16 autocast and fp32), when a GPU is present.
  cli     `python -m gan_models train` (in-process) on a small config for two run lengths:
          per-step cost (the slope) and fixed cost (data, snapshots, final model).
  node    the Train Steps node class inside a booted ComfyUI, same small config, two step
          counts: per-step cost and fixed cost per execution (copying the trainer, sample
          grid, loss curve, model export), next to the bare Trainer loop.
About 1.5 minutes on a 2-core CPU with --threads 1; more threads on a machine that is busy
with other work make CPU timings slow and erratic (threads wait on each other).
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
SMALL = {"resolution": 32, "base_channels": 16, "batch": 16}  # cli / node cases


def case_throughput(data: Path, device: str, steps: int, batch: int, amp: str) -> dict:
    import torch

    use_library()
    import gan_models.training as training

    dataset = training.load_image_folder(data, 64)
    recipe = training.make_recipe("dcgan", {"resolution": 64, "amp": amp}, 0)
    trainer = training.Trainer(recipe, dataset, batch=batch, device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    trainer.train_steps(2 if device.startswith("cuda") else 1)  # warm-up (kernel selection)
    sync()
    start = time.perf_counter()
    trainer.train_steps(steps)
    sync()
    seconds = time.perf_counter() - start
    out = {"device": device, "batch": batch, "amp": amp, "steps": steps,
           "images_per_s": round(steps * batch / seconds, 2),
           "step_ms": round(1000 * seconds / steps, 1), "peak_rss_mb": peak_rss_mb(),
           "params": sum(p.numel() for n in trainer.nets.values() for p in n.parameters())}
    if device.startswith("cuda"):
        out["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def case_cli(data: Path, short: int, long: int) -> dict:
    use_library()
    from gan_models.__main__ import main

    def run(steps: int) -> float:
        out = Path(tempfile.mkdtemp(prefix="bench_cli_"))
        kimg = steps * SMALL["batch"] / 1000
        start = time.perf_counter()
        code = main(["train", "--data", str(data), "--out", str(out), "--recipe", "cdcgan",
                     "--resolution", str(SMALL["resolution"]), "--batch", str(SMALL["batch"]),
                     "--base-channels", str(SMALL["base_channels"]), "--kimg", str(kimg),
                     "--log-every", "5", "--snap-every", "100000"])
        assert code == 0
        return time.perf_counter() - start

    run(2)  # warm-up
    a, b = min(run(short) for _ in range(2)), min(run(long) for _ in range(2))
    per_step = (b - a) / (long - short)
    return {"per_step_ms": round(1000 * per_step, 1),
            "fixed_ms": round(1000 * (a - short * per_step), 1),
            "steps": [short, long], "wall_s": [round(a, 2), round(b, 2)]}


def case_node(data: Path, short: int, long: int) -> dict:
    sys.path.insert(0, str(REPO / "scripts"))
    import torch
    from comfy_engine import Engine

    engine = Engine.get()
    nodes = engine.nodes.NODE_CLASS_MAPPINGS
    with torch.inference_mode():  # as the executor runs nodes
        dataset = nodes["GANStudioTrainingDataset"].execute(
            str(data), SMALL["resolution"], "crop", False, "#ffffff").result[0]
        trainer = nodes["GANStudioTrainer"].execute(
            dataset, "cdcgan", 0, SMALL["batch"], 2e-4, 2e-4, 0.5, 0.999, "ns", "off",
            SMALL["base_channels"], 0).result[0]
        steps_node = nodes["GANStudioTrainSteps"]

        def node(steps: int, preview_every: int = 0) -> float:
            start = time.perf_counter()
            steps_node.execute(trainer, steps, preview_every)
            return time.perf_counter() - start

        node(2)  # warm-up
        # The fastest of two runs: the least disturbed by other processes.
        a, b = min(node(short) for _ in range(2)), min(node(long) for _ in range(2))
        with_previews = min(node(long, preview_every=5) for _ in range(2))
        bare = trainer.clone()
        bare.train_steps(2)
        loop = []
        for _ in range(2):
            start = time.perf_counter()
            bare.train_steps(long)
            loop.append((time.perf_counter() - start) / long)
        loop = min(loop)
    per_step = (b - a) / (long - short)
    return {"per_step_ms": round(1000 * per_step, 1),
            "fixed_ms_per_execution": round(1000 * (a - short * per_step), 1),
            "bare_loop_per_step_ms": round(1000 * loop, 1),
            "preview_every_5_extra_ms_per_step": round(1000 * (with_previews - b) / long, 1),
            "steps": [short, long], "wall_s": [round(a, 2), round(b, 2)]}


def child(args) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    data = Path(args.data)
    if args.case == "cpu64":
        result = case_throughput(data, "cpu", args.steps, 32, "off")
    elif args.case == "cuda64":
        result = {"bf16": case_throughput(data, "cuda", 50, 64, "auto"),
                  "fp32": case_throughput(data, "cuda", 50, 64, "off")}
    elif args.case == "cli":
        result = case_cli(data, 5, 25)
    else:
        result = case_node(data, 5, 25)
    print("RESULT " + json.dumps(result))


def run_case(case: str, data: Path, args) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--case", case, "--data", str(data),
                           "--steps", str(args.steps), "--threads", str(args.threads)],
                          capture_output=True, text=True, cwd=REPO)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    return {"error": (proc.stderr or proc.stdout)[-2000:]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=6, help="timed steps of the cpu64 case")
    p.add_argument("--skip-node", action="store_true", help="skip the ComfyUI node case")
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

    data = write_shapes_folder(Path(tempfile.mkdtemp(prefix="bench_shapes_")), per_class=32,
                               size=64)
    report = {"torch": torch.__version__, "machine": platform.machine(),
              "cpu_count": os.cpu_count(),
              "threads": args.threads or torch.get_num_threads(),
              "load_average_before": [round(x, 2) for x in os.getloadavg()]}
    report["cpu64"] = run_case("cpu64", data, args)
    if torch.cuda.is_available():
        report["cuda64"] = run_case("cuda64", data, args)
    report["cli"] = run_case("cli", data, args)
    if not args.skip_node:
        report["node"] = run_case("node", data, args)
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
