"""StyleGAN3 generator (configs T and R) against the NVlabs CPU reference path, side by side.

    .venv/bin/python bench/bench_stylegan3.py [--configs t r] [--resolution 256]
        [--batch 1] [--rounds 2] [--no-bf16] [--compile]

NVlabs' configs at 256 px (channel_base 32768 / 65536 for R, z/w 512, 2 mapping layers),
random weights with non-zero biases and magnitude EMAs, as after training.

The baseline is the op sequence NVlabs' code runs on the CPU, where its CUDA kernels do not
exist (`filtered_lrelu` falls back to `_filtered_lrelu_ref`, `upfirdn2d` to
`_upfirdn2d_ref`): weights modulated per sample and applied by a grouped convolution;
bias, zero-stuffing upsample, two full-size 1D passes (or one 2D pass for radial filters),
leaky ReLU / gain / clamp as separate ops, and downsampling by filtering at full size and
then dropping pixels. It is written here from that description, runs on the same weights
and must match ours (max_abs_diff).

Ours and the baseline alternate (ours, baseline, ours, baseline ...) in one process, so load
from other processes slows both alike; the best round of each is reported, with wall and
process-CPU times. A Winograd row gives ours against ours with every convolution direct;
bf16 rows give ours under bfloat16 autocast against ours in fp32 (speed and error);
--compile adds torch.compile. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time

import torch
import torch.nn.functional as F
from bench_common import peak_rss_mb, use_library

use_library()

from gan_models.acceleration import bf16_is_native, precision_context, run_compiled  # noqa: E402
from gan_models.architectures.stylegan3 import Generator  # noqa: E402
from gan_models.ops import winograd  # noqa: E402


def config(resolution: int, radial: bool) -> dict:
    cfg = {"z_dim": 512, "c_dim": 0, "w_dim": 512, "img_resolution": resolution,
           "img_channels": 3, "mapping_kwargs": {"num_layers": 2},
           "channel_base": 32768, "channel_max": 512}
    if radial:  # config R: 1x1 convs, radial filters, doubled channels
        cfg.update(channel_base=65536, channel_max=1024, conv_kernel=1, use_radial_filters=True)
    return cfg


def make_generator(resolution: int, radial: bool) -> Generator:
    torch.manual_seed(0)
    gen = Generator(**config(resolution, radial)).eval().requires_grad_(False)
    for name, t in gen.named_buffers():
        if name.endswith("magnitude_ema"):  # trained layers have magnitudes far from 1
            t.fill_(2.0)
    for name, p in gen.named_parameters():
        if name.startswith("synthesis.L") and name.endswith(".bias") and "affine" not in name:
            p.normal_(0, 0.1)
    return gen


# --- baseline: the NVlabs CPU op sequence ---------------------------------------------------

def ref_upfirdn2d(x, f, up=1, down=1, pad=(0, 0, 0, 0), gain=1.0):
    """`_upfirdn2d_ref`: zero insertion, pad/crop, 1D+1D (or 2D) conv, drop pixels."""
    n, c, h, w = x.shape
    x = F.pad(x.reshape(n, c, h, 1, w, 1), [0, up - 1, 0, 0, 0, up - 1])
    x = x.reshape(n, c, h * up, w * up)
    px0, px1, py0, py1 = pad
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0):x.shape[2] - max(-py1, 0), max(-px0, 0):x.shape[3] - max(-px1, 0)]
    f = (f * gain ** (f.ndim / 2)).to(x.dtype).flip(list(range(f.ndim)))
    if f.ndim == 2:
        x = F.conv2d(x, f[None, None].repeat(c, 1, 1, 1), groups=c)
    else:
        f = f[None, None].repeat(c, 1, 1)
        x = F.conv2d(x, f.unsqueeze(2), groups=c)
        x = F.conv2d(x, f.unsqueeze(3), groups=c)
    return x[:, :, ::down, ::down]


def ref_filtered_lrelu(x, fu, fd, b, up, down, padding, gain, slope, clamp):
    """`_filtered_lrelu_ref`: bias_act, upfirdn2d (up), bias_act (lrelu), upfirdn2d (down)."""
    x = x + b.reshape(1, -1, 1, 1)
    if fu is not None or up > 1 or any(padding):
        fu = torch.ones([1, 1]) if fu is None else fu
        x = ref_upfirdn2d(x, fu, up=up, pad=tuple(padding), gain=up ** 2)
    x = F.leaky_relu(x, slope)
    if gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    if fd is not None or down > 1:
        fd = torch.ones([1, 1]) if fd is None else fd
        x = ref_upfirdn2d(x, fd, down=down)
    return x


def ref_modulated_conv2d(x, w, s, demodulate, padding, input_gain):
    batch, (_, in_ch, kh, kw) = x.shape[0], w.shape
    if demodulate:
        w = w * w.square().mean([1, 2, 3], keepdim=True).rsqrt()
        s = s * s.square().mean().rsqrt()
    w = w.unsqueeze(0) * s.unsqueeze(1).unsqueeze(3).unsqueeze(4)           # [N, O, I, k, k]
    if demodulate:
        w = w * (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()[:, :, None, None, None]
    w = w * input_gain.expand(batch, in_ch)[:, None, :, None, None]
    x = x.reshape(1, -1, *x.shape[2:])
    x = F.conv2d(x, w.reshape(-1, in_ch, kh, kw), padding=padding, groups=batch)
    return x.reshape(batch, -1, *x.shape[2:])


def ref_fc(layer, x):
    weight = layer.weight * layer.weight_gain
    return torch.addmm(layer.bias[None] * layer.bias_gain, x, weight.t())


def ref_generator(gen: Generator, z: torch.Tensor) -> torch.Tensor:
    m = gen.mapping
    x = z * (z.square().mean(1, keepdim=True) + 1e-8).rsqrt()
    for i in range(m.num_layers):
        x = F.leaky_relu(ref_fc(getattr(m, f"fc{i}"), x), 0.2) * math.sqrt(2)
    ws = x[:, None].repeat(1, gen.num_ws, 1).unbind(1)
    s = gen.synthesis
    x = s.input(ws[0]).contiguous()  # Fourier features: cheap, same code as NVlabs'
    for name, w in zip(s.layer_names, ws[1:], strict=True):
        layer = getattr(s, name)
        styles = ref_fc(layer.affine, w)
        if layer.is_torgb:
            styles = styles / math.sqrt(layer.in_channels * layer.conv_kernel ** 2)
        x = ref_modulated_conv2d(x, layer.weight, styles, not layer.is_torgb,
                                 layer.conv_kernel - 1, layer.magnitude_ema.rsqrt())
        x = ref_filtered_lrelu(x, layer.up_filter, layer.down_filter, layer.bias,
                               layer.up_factor, layer.down_factor, layer.padding,
                               1 if layer.is_torgb else math.sqrt(2),
                               1 if layer.is_torgb else 0.2, layer.conv_clamp)
    return x * s.output_scale


# --- timing -------------------------------------------------------------------------------

def timed(fn) -> tuple[float, float, torch.Tensor]:
    start, start_cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - start, time.process_time() - start_cpu, out


def error(got: torch.Tensor, want: torch.Tensor) -> dict:
    """Max and RMS difference, and the RMS relative to want's RMS."""
    diff = got.float() - want.float()
    rms = diff.square().mean().sqrt()
    return {"max_abs_diff": float(f"{diff.abs().max():.2e}"), "rms_diff": float(f"{rms:.2e}"),
            "relative_rms": float(f"{rms / want.float().square().mean().sqrt():.2e}")}


def compare(name: str, ours, theirs, rounds: int) -> dict:
    """Alternate `ours` and `theirs` `rounds` times after one warm-up each; best of each."""
    ours()
    theirs()
    best = {"ours": [math.inf, math.inf], "theirs": [math.inf, math.inf]}
    out = {}
    for _ in range(rounds):
        for key, fn in (("ours", ours), ("theirs", theirs)):
            wall, cpu, out[key] = timed(fn)
            best[key] = [min(best[key][0], wall), min(best[key][1], cpu)]
    return {"case": name,
            "ours_s": round(best["ours"][0], 3), "theirs_s": round(best["theirs"][0], 3),
            "speedup": round(best["theirs"][0] / best["ours"][0], 2),
            "cpu_time_speedup": round(best["theirs"][1] / best["ours"][1], 2),
            **error(out["ours"], out["theirs"])}


def run_config(cfg: str, args, z: torch.Tensor) -> list[dict]:
    """Every comparison for one config (t or r)."""
    gen = make_generator(args.resolution, cfg == "r")
    name = f"sg3-{cfg}-{args.resolution} b{args.batch} {torch.get_num_threads()} threads"
    rows = []

    def ours():
        return gen(z, None)

    def ours_direct():  # every convolution direct (no Winograd)
        with winograd.disabled():
            return gen(z, None)

    def ours_bf16():
        with precision_context("bf16", "cpu"):
            return gen(z, None).float()

    def ours_compiled():
        return run_compiled(gen, z, None)

    with torch.no_grad():
        if not args.no_baseline:
            rows.append(compare(f"{name}: fp32 vs NVlabs CPU path", ours,
                                lambda: ref_generator(gen, z), args.rounds))
        row = compare(f"{name}: Winograd vs direct convolutions (ours, fp32)", ours,
                      ours_direct, args.rounds)
        row["winograd_speedup"] = row.pop("speedup")
        rows.append(row)
        if not args.no_bf16:
            row = compare(f"{name}: bf16 vs fp32 (ours)", ours_bf16, ours, args.rounds)
            row["bf16_speedup"] = row.pop("speedup")
            rows.append(row)
        if args.compile:
            start = time.perf_counter()
            ours_compiled()
            row = compare(f"{name}: compiled vs eager (ours, fp32)", ours_compiled, ours,
                          args.rounds)
            row["compile_speedup"] = row.pop("speedup")
            row["compile_first_call_s"] = round(time.perf_counter() - start, 1)
            rows.append(row)
    rows[-1]["peak_rss_mb"] = peak_rss_mb()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", nargs="+", default=["t", "r"], choices=["t", "r"])
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, nargs="+",
                    help="thread counts to run (default: torch's default)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the NVlabs path")
    ap.add_argument("--no-bf16", action="store_true")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile")
    args = ap.parse_args()

    report = {"benchmark": "stylegan3 generator vs the NVlabs CPU reference path",
              "resolution": args.resolution, "batch": args.batch,
              "torch": torch.__version__, "default_threads": torch.get_num_threads(),
              "machine": platform.machine(), "cpus": os.cpu_count(),
              "bf16_native": bf16_is_native("cpu"),
              "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
              "results": []}
    z = torch.randn(args.batch, 512, generator=torch.Generator().manual_seed(1))
    for threads in args.threads or [torch.get_num_threads()]:
        torch.set_num_threads(threads)
        for cfg in args.configs:
            report["results"] += run_config(cfg, args, z)
    report["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    report["note"] = ("ours/theirs alternate in one process, best of the rounds; on a "
                      "shared machine compare the ratios, not the absolute times")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
