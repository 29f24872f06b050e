"""Generation throughput and peak memory on a GPU: StyleGAN2 and StyleGAN3 (T, R).

    .venv/bin/python bench/bench_gpu.py [--out DIR] [--budget 450] [--no-compile]
    .venv/bin/python bench/bench_gpu.py --device cpu --quick      # plumbing check, no GPU

Models (random weights, NVlabs configs): SG2 config F, SG3-T and SG3-R, at 256 and 1024 px.
Cases: batch 1, 8, 32 x precision fp32, bf16, fp16 x torch.compile off / on, each run
through `GenerativeModel.synthesize` exactly as the Generate Images node runs it. Per case:
warm-up, then timed calls until about a second has passed (at least two); images/s from the
mean, peak memory from the allocator's high-water mark since the case began. Precision
errors are measured against fp32 on the same latents (batch 8).

Eager cases run first, compiled ones after them while the time budget lasts (compiling
takes tens of seconds per shape), so the whole run stays under 8 minutes; cases left out
say so. Writes `gpu_bench.json` and `gpu_bench.md` (a Markdown table) to --out and prints
the table.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from bench_common import use_library

use_library()

from gan_models import GenerativeModel  # noqa: E402
from gan_models.acceleration import compile_status  # noqa: E402

SG3_T = {"z_dim": 512, "c_dim": 0, "w_dim": 512, "img_channels": 3,
         "mapping_kwargs": {"num_layers": 2}, "channel_base": 32768, "channel_max": 512}
SG3_R = {**SG3_T, "channel_base": 65536, "channel_max": 1024, "conv_kernel": 1,
         "use_radial_filters": True}
SG2_F = {"z_dim": 512, "c_dim": 0, "w_dim": 512, "img_channels": 3,
         "mapping_kwargs": {"num_layers": 8}, "channel_base": 32768, "channel_max": 512,
         "num_fp16_res": 4, "conv_clamp": 256}
# --quick: the same families, tiny, so a CPU checks the plumbing in seconds.
QUICK = {"sg2": {**SG2_F, "z_dim": 16, "w_dim": 16, "mapping_kwargs": {"num_layers": 2},
                 "channel_base": 256, "channel_max": 16},
         "sg3-t": {**SG3_T, "z_dim": 8, "w_dim": 8, "channel_base": 256, "channel_max": 16,
                   "num_layers": 4, "num_critical": 2, "margin_size": 2},
         "sg3-r": {**SG3_R, "z_dim": 8, "w_dim": 8, "channel_base": 512, "channel_max": 32,
                   "num_layers": 4, "num_critical": 2, "margin_size": 2}}


def model_specs(quick: bool) -> list[tuple[str, str, dict]]:
    """(name, architecture, generator config) for every model of the run."""
    if quick:
        return [("sg2-32", "stylegan2", {**QUICK["sg2"], "img_resolution": 32}),
                ("sg3-t-32", "stylegan3", {**QUICK["sg3-t"], "img_resolution": 32}),
                ("sg3-r-32", "stylegan3", {**QUICK["sg3-r"], "img_resolution": 32})]
    specs = []
    for res in (256, 1024):
        specs += [(f"sg2-{res}", "stylegan2", {**SG2_F, "img_resolution": res}),
                  (f"sg3-t-{res}", "stylegan3", {**SG3_T, "img_resolution": res}),
                  (f"sg3-r-{res}", "stylegan3", {**SG3_R, "img_resolution": res})]
    return specs


def build(architecture: str, config: dict, device: torch.device) -> GenerativeModel:
    torch.manual_seed(0)
    model = GenerativeModel.create(architecture, {"generator": config, "discriminator": None})
    with torch.no_grad():  # trained-looking biases and noise, so no path is all zeros
        for name, p in model.generator.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.1)
            elif name.endswith(".bias") and "affine" not in name and "mapping" not in name:
                p.normal_(0, 0.1)
    return model.to(device)


class Clock:
    """Wall time with the device's queue drained at both ends."""

    def __init__(self, device: torch.device):
        self.device = device

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def reset_peak(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak_mib(self) -> float | None:
        if self.device.type == "cuda":
            return round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1)
        return None


def time_case(model, latents, precision: str, compile_: bool, clock: Clock,
              min_seconds: float, max_calls: int) -> dict:
    def call():
        return model.synthesize(latents, precision=precision, compile=compile_)

    clock.reset_peak()
    start = time.perf_counter()
    call()  # warm-up (and for compile: the compilation)
    clock.sync()
    first = time.perf_counter() - start
    calls, elapsed = 0, 0.0
    while calls < 2 or (elapsed < min_seconds and calls < max_calls):
        start = time.perf_counter()
        call()
        clock.sync()
        elapsed += time.perf_counter() - start
        calls += 1
    return {"images_per_s": round(len(latents) * calls / elapsed, 2),
            "seconds_per_call": round(elapsed / calls, 4), "calls": calls,
            "first_call_s": round(first, 2), "peak_mib": clock.peak_mib()}


def precision_errors(model, latents, precisions: list[str]) -> dict:
    """Max and relative RMS difference of each precision's images from fp32's."""
    want = model.synthesize(latents, precision="fp32")
    errors = {}
    for precision in precisions:
        if precision == "fp32":
            continue
        diff = model.synthesize(latents, precision=precision) - want
        rms = diff.square().mean().sqrt() / want.square().mean().sqrt()
        errors[precision] = {"max_abs": float(f"{diff.abs().max():.2e}"),
                             "relative_rms": float(f"{rms:.2e}")}
    return errors


def markdown(rows: list[dict], errors: dict) -> str:
    lines = ["| model | batch | precision | compile | images/s | peak MiB | vs fp32 (rel. RMS) |",
             "| --- | ---: | --- | --- | ---: | ---: | ---: |"]
    for r in rows:
        ips = r.get("images_per_s", r.get("status", ""))
        err = errors.get(r["model"], {}).get(r["precision"], {}).get("relative_rms", "")
        peak = r.get("peak_mib")
        lines.append(f"| {r['model']} | {r['batch']} | {r['precision']} | "
                     f"{'yes' if r['compile'] else 'no'} | {ips} | "
                     f"{'' if peak is None else peak} | {err} |")
    return "\n".join(lines) + "\n"


def run(args) -> dict:
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here; use --device cpu --quick to check the script")
    clock = Clock(device)
    precisions = ["fp32", "bf16"] + (["fp16"] if device.type == "cuda" else [])
    if args.precisions:
        precisions = [p for p in args.precisions if p in precisions]
    batches = args.batches or ([1, 2] if args.quick else [1, 8, 32])
    deadline = time.perf_counter() + args.budget
    report = {"benchmark": "GAN Studio generation on " + (
        torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
        or "cpu"), "device": str(device), "torch": torch.__version__,
        "budget_s": args.budget, "rows": [], "precision_errors": {}}
    models = {}
    for name, arch, config in model_specs(args.quick):
        models[name] = build(arch, config, device)
        probe = models[name].sample_latents(1, min(8, max(batches)))
        report["precision_errors"][name] = precision_errors(models[name], probe, precisions)
    plan = [(name, batch, precision, False) for name in models for batch in batches
            for precision in precisions]
    if not args.no_compile:  # compiled cases after every eager one, mid-size batches first
        order = sorted(batches, key=lambda b: (b != 8, b))
        plan += [(name, batch, precision, True) for batch in order for name in models
                 for precision in precisions]
    for name, batch, precision, compile_ in plan:
        row = {"model": name, "batch": batch, "precision": precision, "compile": compile_}
        left = deadline - time.perf_counter()
        if left < (60 if compile_ and not args.quick else 5):
            row["status"] = "skipped (time budget)"
            report["rows"].append(row)
            continue
        latents = models[name].sample_latents(0, batch)
        try:
            row.update(time_case(models[name], latents, precision, compile_, clock,
                                 args.min_seconds, args.max_calls))
        except torch.cuda.OutOfMemoryError:
            row["status"] = "out of memory"
            torch.cuda.empty_cache()
        if compile_ and compile_status.get("last"):
            row["compile_note"] = compile_status["last"][:200]
        report["rows"].append(row)
        print(json.dumps(row), flush=True)
    report["total_s"] = round(args.budget - (deadline - time.perf_counter()), 1)
    return report


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true", help="tiny models (plumbing check)")
    ap.add_argument("--out", default=".", help="folder for gpu_bench.json / .md")
    ap.add_argument("--budget", type=float, default=450.0, help="seconds for the whole run")
    ap.add_argument("--batches", type=int, nargs="+")
    ap.add_argument("--precisions", nargs="+", choices=["fp32", "bf16", "fp16"])
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--min-seconds", type=float, default=1.0, help="timed seconds per case")
    ap.add_argument("--max-calls", type=int, default=20)
    args = ap.parse_args(argv)
    report = run(args)
    table = markdown(report["rows"], report["precision_errors"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_bench.json").write_text(json.dumps(report, indent=2))
    (out / "gpu_bench.md").write_text(f"{report['benchmark']}, torch {report['torch']}\n\n"
                                      + table)
    print(table)
    return report


if __name__ == "__main__":
    main()
