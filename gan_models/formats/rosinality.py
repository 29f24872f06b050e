"""rosinality/stylegan2-pytorch checkpoints (.pt) -> our StyleGAN2 (NVlabs names).

A rosinality checkpoint is `torch.save({"g_ema": state_dict, "g": ..., "d": ...,
"latent_avg": [style_dim], "args": argparse.Namespace, ...})`. It is read with
`torch.load(weights_only=True)`; argparse.Namespace is the one extra class allowed.

Both code bases descend from the TensorFlow StyleGAN2 and keep its parameterisation:
weights are stored unscaled and multiplied at run time by 1/sqrt(fan_in) (mapping layers:
lr_mul/sqrt(fan_in), biases by lr_mul), modulation biases start at 1, and the upsampling
conv weights are stored flipped in both. So the mapping is names and shapes only:

    style.{i+1}              -> mapping.fc{i}                   (PixelNorm is style.0)
    input.input [1,C,4,4]    -> synthesis.b4.const [C,4,4]
    conv1 / to_rgb1          -> synthesis.b4.conv1 / synthesis.b4.torgb
    convs.{2k} / convs.{2k+1} / to_rgbs.{k}
                             -> synthesis.b{8*2**k}.conv0 / .conv1 / .torgb
    <styled>.conv.weight [1,O,I,k,k]      -> .weight [O,I,k,k]
    <styled>.conv.modulation.{weight,bias} -> .affine.{weight,bias}
    <styled>.noise.weight [1]             -> .noise_strength []
    <styled>.activate.bias                -> .bias  (FusedLeakyReLU: same sqrt(2) gain)
    <torgb>.bias [1,3,1,1]                -> .bias [3]
    noises.noise_{j} [1,1,r,r]            -> .noise_const [r,r]   (j: layer index)
    latent_avg                            -> mapping.w_avg
Blur/upsample kernels are fixed buffers; ours are rebuilt from the same 1-D kernel.
"""

from __future__ import annotations

import argparse
import math
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from .. import registry
from ..errors import CheckpointError
from ..model import GenerativeModel
from . import budgets, detect
from .importers import Importer, Probe, register_importer
from .native import file_sha256
from .safe_pickle import check_torch_save

FORMAT = "rosinality-pt"
LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19"
MAPPING_LR = 0.01  # rosinality Generator(lr_mlp=0.01); not recorded in checkpoints
W_AVG_SAMPLES = 4096
# Tensors rosinality keeps that have no counterpart to copy (fixed resampling kernels).
_IGNORED = re.compile(r".*\.(blur|upsample)\.kernel$")


def is_legacy_torch_save(path: str | Path) -> bool:
    """torch.save's pre-1.6 format is a raw pickle stream that starts with a magic number."""
    with open(path, "rb") as f:
        return f.read(len(LEGACY_TORCH_MAGIC)) == LEGACY_TORCH_MAGIC


def torch_load_safe(path: Path) -> Any:
    """torch.load with weights_only=True; argparse.Namespace (training args) also allowed.

    Before torch.load allocates anything, the file is checked within the budgets: a zip's
    members against the file size (budgets.check_zip: zip bombs, members claiming
    gigabytes) and its data.pkl, or a legacy stream's pickles and declared storage sizes,
    scanned by safe_pickle's bounded scanner."""
    check_torch_save(path)
    with warnings.catch_warnings(), torch.serialization.safe_globals([argparse.Namespace]):
        warnings.simplefilter("ignore")
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            refused = re.search(r"GLOBAL\s+([\w.]+)", str(exc))
            what = refused.group(1) if refused else "an object"
            raise CheckpointError(f"refused to load {what} from {path.name}: not allowed in a "
                                  "GAN checkpoint") from exc
        except (RuntimeError, EOFError, ValueError, OSError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(f"{path.name} is corrupt or truncated ({first})") from exc


def load_rosinality(path: str | Path) -> GenerativeModel:
    path = Path(path)
    ckpt = torch_load_safe(path)
    state, role = _generator_state(ckpt, path.name)
    budgets.check_tensors(state, path.name)
    layout = infer_layout(state, path.name)
    gen_kwargs = generator_kwargs(layout)
    config = {"generator": gen_kwargs, "discriminator": None}
    networks = registry.build("stylegan2", config, source=path.name,
                              file_bytes=path.stat().st_size)
    gen = networks["generator"]
    mapped = to_nvlabs_state(state, layout, gen.state_dict(), path.name)

    latent_avg = ckpt.get("latent_avg") if isinstance(ckpt, dict) else None
    if isinstance(latent_avg, torch.Tensor) and latent_avg.numel() == layout["style_dim"]:
        mapped["mapping.w_avg"] = latent_avg.reshape(-1).float()
        w_avg_from = "file (latent_avg)"
    else:
        mapped["mapping.w_avg"] = gen.state_dict()["mapping.w_avg"]  # replaced below
        w_avg_from = f"estimated from {W_AVG_SAMPLES} samples"
    try:
        gen.load_state_dict(mapped, strict=True)
    except RuntimeError as exc:
        lines = " ".join(line.strip() for line in str(exc).strip().splitlines()[:3])
        raise CheckpointError(f"{path.name}: weights do not fit StyleGAN2: {lines}") from exc
    if not w_avg_from.startswith("file"):
        _estimate_w_avg(gen)

    sha = file_sha256(path)
    args = ckpt.get("args") if isinstance(ckpt, dict) else None
    provenance = {"resolution": layout["size"], "channel_multiplier": layout["multiplier"],
                  "w_avg": w_avg_from}
    if isinstance(args, argparse.Namespace):
        # converted within budgets.MAX_PLAIN_ITEMS: a few bytes can reference one list
        # 2**60 times, so args are never repr'ed or walked without a bound
        provenance["args"] = budgets.plain_data(vars(args), path.name, "args")
    metadata = {"source": {"file": path.name, "sha256": sha, "format": FORMAT, "role": role},
                "provenance": provenance}
    if isinstance(ckpt, dict) and "d" in ckpt:
        metadata["notes"] = "discriminator not imported: rosinality discriminators are not mapped"
    return GenerativeModel("stylegan2", config, {"generator": gen}, metadata=metadata,
                           model_id=sha[:16])


def _generator_state(ckpt: Any, name: str) -> tuple[dict, str]:
    if isinstance(ckpt, dict):
        for role in ("g_ema", "g"):
            if isinstance(ckpt.get(role), dict) and "input.input" in ckpt[role]:
                return ckpt[role], role
        if "input.input" in ckpt:  # a bare generator state dict
            return ckpt, "state_dict"
        keys = budgets.name_list(ckpt)
        raise CheckpointError(
            f"{name} is a torch.save checkpoint, but not a rosinality stylegan2-pytorch "
            f"generator (top-level keys: {keys or 'none'}); it is not supported")
    raise CheckpointError(f"{name} is a torch.save file holding {type(ckpt).__name__}, not a "
                          "checkpoint GAN Studio can import")


def infer_layout(sd: dict, name: str) -> dict:
    """size, style_dim, n_mlp, channels per resolution (and their NVlabs form) from shapes."""
    try:
        n_mlp = 0
        while f"style.{n_mlp + 1}.weight" in sd:
            n_mlp += 1
        style_dim = int(sd["style.1.weight"].shape[1])
        n_up = 0
        while f"to_rgbs.{n_up}.conv.weight" in sd:
            n_up += 1
        channels = {4: int(sd["input.input"].shape[1])}
        for k in range(n_up):
            channels[8 * 2 ** k] = int(sd[f"convs.{2 * k}.conv.weight"].shape[1])
        img_channels = int(sd["to_rgb1.conv.weight"].shape[1])
    except (KeyError, IndexError, AttributeError) as exc:
        raise CheckpointError(f"{name}: not a rosinality StyleGAN2 generator (missing {exc})") \
            from exc
    size = 4 * 2 ** n_up
    base, cmax = _channel_rule(channels, name)
    kernel = sd.get("convs.0.conv.blur.kernel") if n_up else None
    return {"size": size, "style_dim": style_dim, "n_mlp": n_mlp, "n_up": n_up,
            "channels": channels, "img_channels": img_channels, "channel_base": base,
            "channel_max": cmax,
            # rosinality's channel_multiplier; unknowable when every layer is at the cap
            "multiplier": base / 16384 if cmax == 512 and min(channels.values()) < 512 else None,
            "resample_filter": _filter_1d(kernel, name)}


def _channel_rule(channels: dict[int, int], name: str) -> tuple[int, int]:
    """channel_base, channel_max with min(base // res, max) == channels[res] for every res.

    rosinality's table is exactly base = 16384 * channel_multiplier, max = 512.
    """
    cmax = max(channels.values())
    narrow = [r for r, c in channels.items() if c < cmax]
    base = channels[max(narrow)] * max(narrow) if narrow else cmax * max(channels)
    if any(min(base // r, cmax) != c for r, c in channels.items()):
        raise CheckpointError(
            f"{name}: channel counts {channels} follow no StyleGAN2 channel rule; not supported")
    return base, cmax


def _filter_1d(kernel: torch.Tensor | None, name: str) -> list:
    """The 1-D resampling kernel behind rosinality's 2-D blur buffer ([1, 3, 3, 1] usually)."""
    if kernel is None:
        return [1, 3, 3, 1]
    k2 = kernel.double() / kernel.double().sum()
    row = k2.sum(1)
    if kernel.ndim != 2 or not torch.allclose(torch.outer(row, row), k2, atol=1e-6):
        raise CheckpointError(f"{name}: its blur kernel is not separable; not supported")
    row = row / row[0]
    ints = row.round()
    return [int(v) for v in ints] if torch.allclose(row, ints, atol=1e-4) else row.tolist()


def generator_kwargs(layout: dict) -> dict:
    """NVlabs Generator kwargs for the rosinality generator described by `layout`."""
    return {
        "z_dim": layout["style_dim"], "c_dim": 0, "w_dim": layout["style_dim"],
        "img_resolution": layout["size"], "img_channels": layout["img_channels"],
        "mapping_kwargs": {"num_layers": layout["n_mlp"], "lr_multiplier": MAPPING_LR},
        "channel_base": layout["channel_base"], "channel_max": layout["channel_max"],
        "num_fp16_res": 0, "conv_clamp": None, "architecture": "skip",
        "resample_filter": layout["resample_filter"],
    }


def to_nvlabs_state(sd: dict, layout: dict, built: dict, name: str) -> dict:
    """Rename (and reshape) a rosinality generator state dict to NVlabs StyleGAN2 names."""
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()

    def take(key: str) -> torch.Tensor:
        if key not in sd:
            raise CheckpointError(f"{name}: rosinality tensor {key!r} is missing")
        used.add(key)
        return sd[key].detach().float()

    def styled(src: str, dst: str, noise_index: int) -> None:
        out[f"{dst}.weight"] = take(f"{src}.conv.weight")[0]
        out[f"{dst}.affine.weight"] = take(f"{src}.conv.modulation.weight")
        out[f"{dst}.affine.bias"] = take(f"{src}.conv.modulation.bias")
        out[f"{dst}.noise_strength"] = take(f"{src}.noise.weight").reshape([])
        out[f"{dst}.bias"] = take(f"{src}.activate.bias")
        out[f"{dst}.noise_const"] = take(f"noises.noise_{noise_index}")[0, 0]

    def torgb(src: str, dst: str) -> None:
        out[f"{dst}.weight"] = take(f"{src}.conv.weight")[0]
        out[f"{dst}.affine.weight"] = take(f"{src}.conv.modulation.weight")
        out[f"{dst}.affine.bias"] = take(f"{src}.conv.modulation.bias")
        out[f"{dst}.bias"] = take(f"{src}.bias").reshape(-1)

    for i in range(layout["n_mlp"]):
        out[f"mapping.fc{i}.weight"] = take(f"style.{i + 1}.weight")
        out[f"mapping.fc{i}.bias"] = take(f"style.{i + 1}.bias")
    out["synthesis.b4.const"] = take("input.input")[0]
    styled("conv1", "synthesis.b4.conv1", 0)
    torgb("to_rgb1", "synthesis.b4.torgb")
    for k in range(layout["n_up"]):
        res = 8 * 2 ** k
        log2 = int(math.log2(res))
        styled(f"convs.{2 * k}", f"synthesis.b{res}.conv0", 2 * log2 - 5)
        styled(f"convs.{2 * k + 1}", f"synthesis.b{res}.conv1", 2 * log2 - 4)
        torgb(f"to_rgbs.{k}", f"synthesis.b{res}.torgb")
    for key, t in built.items():
        if key.endswith("resample_filter"):
            out[key] = t
    extra = sorted(k for k in sd if k not in used and not _IGNORED.match(k))
    if extra:
        raise CheckpointError(f"{name}: tensors this importer does not understand: "
                              f"{', '.join(extra[:5])}{' ...' if len(extra) > 5 else ''}")
    return out


@torch.no_grad()
def _estimate_w_avg(gen: torch.nn.Module) -> None:
    # Files written by rosinality's train.py carry no latent_avg; truncation needs one.
    z = torch.randn([W_AVG_SAMPLES, gen.z_dim], generator=torch.Generator().manual_seed(0))
    ws = gen.mapping(z, None)
    gen.mapping.w_avg.copy_(ws[:, 0].mean(0))


# --- registration -----------------------------------------------------------------------
def _is_torch_save(probe: Probe) -> bool:
    return probe.container == detect.TORCH_ZIP or (
        probe.container == detect.PICKLE and is_legacy_torch_save(probe.path))


register_importer(Importer(
    name=FORMAT, description="rosinality stylegan2-pytorch .pt", recognise=_is_torch_save,
    read=load_rosinality))
