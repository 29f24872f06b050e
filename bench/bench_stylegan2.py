"""StyleGAN2 generator throughput and peak memory, config-F channel sizes, random weights.

    .venv/bin/python bench/bench_stylegan2.py [--resolutions 256 1024] [--batches 1 8]
        [--baseline default|all|none] [--device cpu] [--no-efficiency] [--compile]

Each resolution runs in its own process so peak RSS belongs to that resolution alone
(it is read after our runs, before the baseline runs). Per case: one warm-up call (at
1024 px batch 1 also warms batch 8), then timed calls; images/s uses the best call.

The baseline is the op sequence the NVlabs reference code executes on the CPU (its CUDA
kernels are GPU-only): fused grouped modulated conv, upfirdn2d by explicit zero insertion,
padding and a 2D depthwise convolution, and bias/activation/gain/clamp as separate
out-of-place ops. It is written here from that description, runs on the same weights and
checks that our outputs match (max_abs_diff). By default it is skipped for 1024 px at
batch 8, which alone would take minutes on two cores. Speedups are given for wall time
and for process CPU time; on a busy machine the CPU-time ratio is the steadier one.

Efficiency (256 px, batch 1, its own process): the generator's FLOPs with every
convolution direct (counted by torch.utils.flop_counter: convolutions and matmuls) over
its best time, as a fraction of the machine's measured fp32 peak: the best of a large
matmul (MKL, and oneDNN's), and a large 3x3 convolution (oneDNN), timed alternately with
the generator so load from other processes hits both alike. Where Winograd runs a
convolution with fewer multiplies the rate is an effective one (it can pass the peak);
the generator with direct convolutions only is timed too (`winograd_speedup`). Given for
the default thread count and for one thread (on a shared machine the one-thread figure is
the steadier). Also bf16 autocast against fp32 (speed-up,
error) and, with --compile, torch.compile's speed-up.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

CONFIG_F = {"z_dim": 512, "c_dim": 0, "w_dim": 512, "img_channels": 3,
            "mapping_kwargs": {"num_layers": 8}, "channel_base": 32768, "channel_max": 512,
            "num_fp16_res": 4, "conv_clamp": 256}


# --- baseline: the NVlabs CPU op sequence --------------------------------------------------

def ref_upfirdn2d(x, f, up=1, pad=(0, 0, 0, 0), gain=1.0):
    n, c, h, w = x.shape
    x = F.pad(x.reshape(n, c, h, 1, w, 1), [0, up - 1, 0, 0, 0, up - 1])
    x = x.reshape(n, c, h * up, w * up)                       # zero insertion
    x = F.pad(x, list(pad))
    kernel = (f * gain).flip([0, 1])[None, None].repeat(c, 1, 1, 1)
    return F.conv2d(x, kernel, groups=c)


def ref_bias_act(x, b, lrelu, gain, clamp):
    x = x + b.reshape(1, -1, 1, 1)
    if lrelu:
        x = F.leaky_relu(x, 0.2)
    if gain != 1:
        x = x * gain
    return x.clamp(-clamp, clamp) if clamp is not None else x


def ref_fc(sd, name, x, lrelu=False, lr=1.0):
    w = sd[name + ".weight"] * (lr / math.sqrt(sd[name + ".weight"].shape[1]))
    b = sd[name + ".bias"] * lr
    if not lrelu:
        return torch.addmm(b[None], x, w.t())
    return F.leaky_relu(x.matmul(w.t()) + b, 0.2) * math.sqrt(2)


def ref_modconv(x, weight, styles, up, demodulate, f):
    batch, (out_ch, in_ch, kh, kw) = x.shape[0], weight.shape
    w = weight[None] * styles.reshape(batch, 1, -1, 1, 1)     # [B, O, I, k, k]
    if demodulate:
        w = w * (w.square().sum([2, 3, 4]) + 1e-8).rsqrt().reshape(batch, -1, 1, 1, 1)
    x = x.reshape(1, -1, *x.shape[2:])
    if up == 1:
        x = F.conv2d(x, w.reshape(-1, in_ch, kh, kw), padding=kh // 2, groups=batch)
    else:
        wt = w.transpose(1, 2).reshape(batch * in_ch, out_ch, kh, kw)
        x = F.conv_transpose2d(x, wt, stride=2, groups=batch)
        x = ref_upfirdn2d(x, f, pad=(1, 1, 1, 1), gain=4)
    return x.reshape(batch, -1, *x.shape[2:])


def ref_generator(gen, z):
    sd = gen.state_dict()
    x = z * (z.square().mean(1, keepdim=True) + 1e-8).rsqrt()
    for i in range(gen.mapping.num_layers):
        x = ref_fc(sd, f"mapping.fc{i}", x, lrelu=True, lr=0.01)
    ws = x[:, None].repeat(1, gen.num_ws, 1)
    x = img = None
    idx = 0
    for res in gen.synthesis.block_resolutions:
        p = f"synthesis.b{res}"
        f = sd[p + ".resample_filter"]
        names = ["conv1"] if res == 4 else ["conv0", "conv1"]
        if res == 4:
            x = sd[p + ".const"][None].repeat(ws.shape[0], 1, 1, 1)
        for name in names:
            q = f"{p}.{name}"
            styles = ref_fc(sd, q + ".affine", ws[:, idx])
            x = ref_modconv(x, sd[q + ".weight"], styles, 2 if name == "conv0" else 1, True, f)
            x = x.add_(sd[q + ".noise_const"] * sd[q + ".noise_strength"])
            x = ref_bias_act(x, sd[q + ".bias"], True, math.sqrt(2), CONFIG_F["conv_clamp"])
            idx += 1
        if img is not None:
            img = ref_upfirdn2d(img, f, up=2, pad=(2, 1, 2, 1), gain=4)
        wt = sd[p + ".torgb.weight"]
        styles = ref_fc(sd, p + ".torgb.affine", ws[:, idx]) / math.sqrt(wt.shape[1])
        y = ref_modconv(x, wt, styles, 1, False, f)
        y = ref_bias_act(y, sd[p + ".torgb.bias"], False, 1, CONFIG_F["conv_clamp"])
        img = img.add_(y) if img is not None else y
    return img


# --- one resolution, in a child process ---------------------------------------------------

def make_generator(resolution: int):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from gan_models.architectures.stylegan2 import Generator

    torch.manual_seed(0)
    gen = Generator(img_resolution=resolution, **CONFIG_F).eval().requires_grad_(False)
    for name, p in gen.named_parameters():  # non-zero noise and biases, as after training
        if name.endswith("noise_strength"):
            p.fill_(0.1)
        elif name.endswith(".bias") and "affine" not in name and "mapping" not in name:
            p.normal_(0, 0.1)
    return gen


def timed(fn, calls: int) -> tuple[float, float, torch.Tensor]:
    """Best wall seconds, best process CPU seconds (both threads; steadier than wall time
    on a shared machine), last output."""
    best, best_cpu, out = float("inf"), float("inf"), None
    for _ in range(calls):
        start, start_cpu = time.perf_counter(), time.process_time()
        out = fn()
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - start_cpu)
    return best, best_cpu, out


def run_resolution(resolution: int, batches: list[int], baseline: str, device: str) -> list:
    """Phase 1 times our generator alone (and reads peak memory); phase 2 alternates our
    calls with baseline calls, so a busy machine slows both alike."""
    gen = make_generator(resolution).to(device)
    big = resolution >= 1024
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    rows, inputs = [], {}
    with torch.no_grad():
        def ours(z):
            img = gen(z, None, noise_mode="const")
            sync()
            return img

        for i, batch in enumerate(batches):
            z = torch.randn(batch, 512, generator=torch.Generator().manual_seed(batch))
            z = z.to(device)
            inputs[batch] = z
            if i == 0 or not big:
                ours(z)  # warm-up: oneDNN primitives, allocator
            calls = 1 if big else (3 if batch == 1 else 2)
            seconds, cpu, _ = timed(lambda z=z: ours(z), calls)
            row = {"resolution": resolution, "batch": batch, "device": device,
                   "seconds_per_call": round(seconds, 4),
                   "images_per_s": round(batch / seconds, 3),
                   "cpu_seconds_per_call": round(cpu, 4)}
            if device == "cuda":
                row["peak_cuda_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
            else:
                row["peak_rss_mib"] = round(
                    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
            rows.append(row)
        if device != "cpu" or baseline == "none":
            return rows
        for i, row in enumerate(rows):
            batch = row["batch"]
            if baseline == "default" and big and batch > 1:
                continue
            z = inputs[batch].cpu()
            if i == 0 and not big:
                ref_generator(gen, z)  # warm-up
            best_ours, best_ref = row["seconds_per_call"], float("inf")
            cpu_ours, cpu_ref = row["cpu_seconds_per_call"], float("inf")
            for _ in range(2 if batch == 1 and not big else 1):
                t, c, img = timed(lambda z=z: ours(z), 1)
                t_ref, c_ref, ref_img = timed(lambda z=z: ref_generator(gen, z), 1)
                best_ours, best_ref = min(best_ours, t), min(best_ref, t_ref)
                cpu_ours, cpu_ref = min(cpu_ours, c), min(cpu_ref, c_ref)
            row["baseline_images_per_s"] = round(batch / best_ref, 3)
            row["speedup_vs_baseline"] = round(best_ref / best_ours, 2)
            row["cpu_time_speedup_vs_baseline"] = round(cpu_ref / cpu_ours, 2)
            row["max_abs_diff_vs_baseline"] = float(f"{(img - ref_img).abs().max():.2e}")
    return rows


# --- efficiency: fraction of the measured peak, bf16, compile -----------------------------

def peak_kernels() -> dict:
    """Dense fp32 kernels whose best rate is the machine's practical peak (FLOPs, fn)."""
    n = 4096
    a, b = torch.randn(n, n), torch.randn(n, n)
    x = torch.randn(1, 512, 64, 64).contiguous(memory_format=torch.channels_last)
    w = torch.randn(512, 512, 3, 3)
    from gan_models.ops import onednn
    return {"matmul_4096": (2 * n ** 3, lambda: torch.mm(a, b)),
            "onednn_matmul_4096": (2 * n ** 3, lambda: onednn.matmul_nt(a, b)),
            "conv3x3_512ch_64px": (2 * 64 * 64 * 512 * 512 * 9,
                                   lambda: F.conv2d(x, w, padding=1))}


def run_efficiency(rounds: int, compile_too: bool) -> dict:
    from torch.utils.flop_counter import FlopCounterMode

    gen = make_generator(256)  # also makes the library importable
    from gan_models.acceleration import bf16_is_native, precision_context, run_compiled
    from gan_models.ops import winograd

    z = torch.randn(1, 512, generator=torch.Generator().manual_seed(1))
    counter = FlopCounterMode(display=False)

    def fp32():
        return gen(z, None, noise_mode="const")

    def bf16():
        with precision_context("bf16", "cpu"):
            return gen(z, None, noise_mode="const").float()

    def fp32_direct():  # every convolution direct (no Winograd), for the A/B
        with winograd.disabled():
            return fp32()

    with torch.no_grad():
        # The direct convolutions' FLOPs: the work the generator stands for. Winograd does
        # the same convolutions with fewer multiplies, so its rate is an effective one.
        with counter:
            fp32_direct()
        flops = counter.get_total_flops()
        report = {"resolution": 256, "batch": 1, "gflop_per_image": round(flops / 1e9, 2),
                  "bf16_native": bf16_is_native("cpu")}
        report["bf16_error"] = error(bf16(), fp32())
        threads = torch.get_num_threads()
        for n_threads in dict.fromkeys([threads, 1]):
            torch.set_num_threads(n_threads)
            fns = ({"fp32": (flops, fp32), "fp32_direct": (flops, fp32_direct),
                    "bf16": (flops, bf16)} | peak_kernels())
            best = {name: math.inf for name in fns}
            for _, fn in fns.values():
                fn()  # warm-up
            for _ in range(rounds):  # alternate: fp32, bf16, matmul, conv, fp32, ...
                for name, (_, fn) in fns.items():
                    start = time.perf_counter()
                    fn()
                    best[name] = min(best[name], time.perf_counter() - start)
            rates = {name: fns[name][0] / best[name] / 1e9 for name in fns}
            generator = ("fp32", "fp32_direct", "bf16")
            peak = max(v for k, v in rates.items() if k not in generator)
            report[f"threads_{n_threads}"] = {
                "generator_s": round(best["fp32"], 4),
                "generator_gflops": round(rates["fp32"], 1),
                "direct_convs_s": round(best["fp32_direct"], 4),
                "winograd_speedup": round(best["fp32_direct"] / best["fp32"], 2),
                **{f"{k}_gflops": round(v, 1) for k, v in rates.items()
                   if k not in generator},
                "measured_peak_gflops": round(peak, 1),
                "fraction_of_peak": round(rates["fp32"] / peak, 3),
                "bf16_s": round(best["bf16"], 4),
                "bf16_speedup": round(best["fp32"] / best["bf16"], 2)}
        torch.set_num_threads(threads)
        if compile_too:
            start = time.perf_counter()
            run_compiled(gen, z, None, noise_mode="const")
            report["compile_first_call_s"] = round(time.perf_counter() - start, 1)
            report["compile"] = alternate(
                lambda: run_compiled(gen, z, None, noise_mode="const"), fp32, rounds)
    return report


def error(got: torch.Tensor, want: torch.Tensor) -> dict:
    """Differences of `got` from `want`: max, RMS, and RMS relative to want's RMS."""
    diff = got.float() - want.float()
    rms = diff.square().mean().sqrt()
    return {"max_abs": float(f"{diff.abs().max():.2e}"), "rms": float(f"{rms:.2e}"),
            "relative_rms": float(f"{rms / want.float().square().mean().sqrt():.2e}")}


def alternate(fast, slow, rounds: int) -> dict:
    """Best times of `fast` and `slow` run alternately; speed-up and error of fast."""
    fast(), slow()
    best_fast = best_slow = math.inf
    for _ in range(rounds):
        t, _, out_fast = timed(fast, 1)
        t_slow, _, out_slow = timed(slow, 1)
        best_fast, best_slow = min(best_fast, t), min(best_slow, t_slow)
    return {"seconds": round(best_fast, 4), "fp32_seconds": round(best_slow, 4),
            "speedup": round(best_slow / best_fast, 2), "error": error(out_fast, out_slow)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--baseline", choices=["default", "all", "none"], default="default")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--no-efficiency", action="store_true",
                        help="skip the fraction-of-peak / bf16 / compile section")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--rounds", type=int, default=4, help="alternations (efficiency)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--efficiency-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.efficiency_child:
        print(json.dumps(run_efficiency(args.rounds, args.compile)))
        return
    if args.child:
        rows = run_resolution(args.child, args.batches, args.baseline, args.device)
        print(json.dumps(rows))
        return
    devices = [args.device] + (["cuda"] if args.device == "cpu" and torch.cuda.is_available()
                               else [])
    report = {"benchmark": "stylegan2 generator, config-F channels, fp32 on CPU",
              "torch": torch.__version__, "threads": torch.get_num_threads(),
              "load_average_at_start": [round(v, 2) for v in os.getloadavg()], "results": []}
    start = time.perf_counter()
    if not args.no_efficiency and args.device == "cpu":
        cmd = [sys.executable, __file__, "--efficiency-child", "--rounds", str(args.rounds)]
        out = subprocess.run(cmd + (["--compile"] if args.compile else []), check=True,
                             capture_output=True, text=True).stdout
        report["efficiency"] = json.loads(out.strip().splitlines()[-1])
    for device in devices:
        for res in args.resolutions:
            cmd = [sys.executable, __file__, "--child", str(res), "--device", device,
                   "--baseline", args.baseline, "--batches", *map(str, args.batches)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            report["results"] += json.loads(out.strip().splitlines()[-1])
    report["total_seconds"] = round(time.perf_counter() - start, 1)
    report["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
