"""PyTorch GAN zoo Progressive GAN checkpoints (.pth) -> our `progan` architecture.

A GAN zoo PGAN file is `torch.save({"config": BaseConfig, "netG": state, "avgG": state,
"netD": state})`. `config` is an object of the zoo's `models.utils.config.BaseConfig` (an
empty class holding attributes); it is read with `torch.load(weights_only=True)` and one
allow-listed stand-in class, then turned into plain data within the budgets.

The zoo's layers (EqualizedConv2d / EqualizedLinear) wrap a plain conv or linear as
`.module`, initialise it N(0, 1) and multiply the layer's OUTPUT (bias included) by
sqrt(2 / fan_in). Ours scale the weight and keep a separate bias, so biases are multiplied by
that constant when converted (weights copy as they are). Names (`.module.` may be absent in
files written by the zoo's own state_dict):

    formatLayer                 -> format      (latent -> 4x4 map, C0 = weight rows / 16)
    groupScale0.0               -> conv4       (3x3 at 4x4)
    scaleLayers.i.{0,1}         -> blocks.i.{0,1}  (the two 3x3 convs after each upsampling)
    toRGBLayers.i               -> to_rgb.i    (1x1 per scale)
The zoo's `alpha` weighs the OLD (upsampled) output; ours weighs the new block: 1 - alpha.
The generator only is imported (the moving average `avgG` when present).

The original TensorFlow ProGAN pickles (`karras2018iclr-*.pkl`, tfutil.Network objects
G_paper / D_paper / Gs) are recognised and refused with what they are and what to do.
"""

from __future__ import annotations

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
from .torch_state import state_keys

FORMAT = "pgan-zoo"
_KEY = re.compile(r"^(formatLayer|groupScale0\.0|scaleLayers\.(\d+)\.([01])|toRGBLayers\.(\d+))"
                  r"\.(?:module\.)?(weight|bias)$")


class BaseConfig:
    """Stands in for the zoo's models.utils.config.BaseConfig: an object of attributes."""


_CONFIG_NAME = "models.utils.config.BaseConfig"


# --- reading ---------------------------------------------------------------------------------
def _torch_load(path: Path) -> Any:
    check_torch_save(path)  # declared sizes within budgets before torch.load allocates
    with warnings.catch_warnings(), torch.serialization.safe_globals(
            [(BaseConfig, _CONFIG_NAME)]):
        warnings.simplefilter("ignore")
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            refused = re.search(r"GLOBAL\s+([\w.]+)", str(exc))
            what = refused.group(1) if refused else "an object"
            raise CheckpointError(f"refused to load {what} from {path.name}: not allowed in a "
                                  "GAN checkpoint") from exc
        except (RuntimeError, EOFError, ValueError, OSError, AttributeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(f"{path.name} is corrupt or truncated ({first[:200]})") \
                from exc


def _generator_state(ckpt: Any, name: str) -> tuple[dict, str]:
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{name} is a torch.save file holding {type(ckpt).__name__}, "
                              "not a GAN zoo PGAN checkpoint")
    for role in ("avgG", "netG"):
        state = ckpt.get(role)
        if isinstance(state, dict) and state:
            return {_plain_key(k): v for k, v in state.items()}, role
    raise CheckpointError(f"{name} has no netG or avgG generator weights (keys: "
                          f"{budgets.name_list(ckpt)})")


def _plain_key(key: Any) -> str:
    key = str(key)
    return key[len("module."):] if key.startswith("module.") else key


def config_data(ckpt: dict, name: str) -> dict:
    """The checkpoint's config as JSON values ({} when it has none)."""
    cfg = ckpt.get("config")
    if cfg is None:
        return {}
    if isinstance(cfg, BaseConfig):
        cfg = vars(cfg)
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{name}: its config is a {type(cfg).__name__}, not a GAN zoo "
                              "BaseConfig")
    return budgets.plain_data(cfg, name, "config")


def layout(state: dict, name: str) -> tuple[dict, dict]:
    """(our progan config, {our key: (their key, he constant or None)}) from the weights."""
    ours: dict[str, str] = {}
    for key in state:
        m = _KEY.match(key)
        if m is None:
            raise CheckpointError(f"{name}: unexpected generator tensor "
                                  f"{budgets.short(key, 80)!r} for a GAN zoo PGAN")
        group, scale, conv, rgb, kind = m.groups()
        if group == "formatLayer":
            ours[f"format.{kind}"] = key
        elif group.startswith("groupScale0"):
            ours[f"conv4.{kind}"] = key
        elif scale is not None:
            ours[f"blocks.{scale}.{conv}.{kind}"] = key
        else:
            ours[f"to_rgb.{rgb}.{kind}"] = key
    try:
        scales = 1 + max(int(k.split(".")[1]) for k in ours if k.startswith("to_rgb."))
        fmt = state[ours["format.weight"]]
        widths = [int(state[ours[f"to_rgb.{i}.weight"]].shape[1]) for i in range(scales)]
        channels = int(state[ours["to_rgb.0.weight"]].shape[0])
    except (KeyError, ValueError, IndexError) as exc:
        raise CheckpointError(f"{name}: incomplete GAN zoo PGAN generator ({exc!s:.80})") \
            from None
    if fmt.dim() != 2 or fmt.shape[0] != 16 * widths[0]:
        raise CheckpointError(f"{name}: formatLayer weight {tuple(fmt.shape)} does not make "
                              f"a 4x4 map of {widths[0]} channels")
    config = {"resolution": 4 * 2 ** (scales - 1), "z_dim": int(fmt.shape[1]),
              "channels": channels, "stage_channels": widths, "num_classes": 0}
    return config, ours


def _check_zoo_config(cfg: dict, name: str) -> None:
    if cfg.get("perChannelNormalization", True) is not True:
        raise CheckpointError(f"{name}: a GAN zoo PGAN without pixel normalisation is not "
                              "supported (ours always normalises)")
    leak = cfg.get("leakyReluLeak", 0.2)
    if not isinstance(leak, (int, float)) or abs(float(leak) - 0.2) > 1e-9:
        raise CheckpointError(f"{name}: leakyReluLeak {budgets.describe(leak)} is not "
                              "supported (ours is 0.2)")


def load_pgan_zoo(path: str | Path) -> GenerativeModel:
    path = Path(path)
    ckpt = _torch_load(path)
    state, role = _generator_state(ckpt, path.name)
    budgets.check_tensors(state, path.name)
    zoo = config_data(ckpt, path.name)
    _check_zoo_config(zoo, path.name)
    config, names = layout(state, path.name)
    zoo_alpha = zoo.get("alpha", 0)
    alpha = 1.0 - float(zoo_alpha) if isinstance(zoo_alpha, (int, float)) else 1.0
    config["alpha"] = min(max(alpha, 0.0), 1.0)
    networks = registry.build("progan", config, source=path.name,
                              file_bytes=path.stat().st_size)
    gen = networks["generator"]
    equalized = zoo.get("equalizedlR", True) is not False
    mapped = {}
    for key, current in gen.state_dict().items():
        if key not in names:
            mapped[key] = current  # stage and alpha buffers: from the config
            continue
        value = state[names[key]].float()
        weight = state[names[key].rsplit(".", 1)[0] + ".weight"]
        he = math.sqrt(2.0 / max(1, math.prod(weight.shape[1:])))
        if equalized and key.endswith(".bias"):
            value = value * he       # the zoo scales its bias with the output
        elif not equalized and key.endswith(".weight"):
            value = value / he       # ours always multiplies weights by he at run time
        if value.shape != current.shape:
            raise CheckpointError(f"{path.name}: {names[key]} has shape {tuple(value.shape)}, "
                                  f"expected {tuple(current.shape)}")
        mapped[key] = value
    missing = sorted(set(gen.state_dict()) - set(mapped))
    if missing:
        raise CheckpointError(f"{path.name}: the generator lacks {budgets.name_list(missing)}")
    gen.load_state_dict(mapped, strict=True)
    sha = file_sha256(path)
    metadata = {"source": {"file": path.name, "sha256": sha, "format": FORMAT, "role": role},
                "provenance": {"config": zoo},
                "notes": "PyTorch GAN zoo PGAN: generator only (the discriminator is not "
                         "imported)"}
    return GenerativeModel("progan", config, {"generator": gen}, metadata=metadata,
                           model_id=sha[:16])


# --- the TensorFlow originals ---------------------------------------------------------------
def _is_tf_progan(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(4096)
    return b"tfutil" in head and b"Network" in head


def refuse_tf_progan(path: str | Path) -> GenerativeModel:
    path = Path(path)
    raise CheckpointError(
        f"{path.name} is an original TensorFlow Progressive GAN pickle (karras2018iclr: "
        "tfutil.Network objects G_paper / D_paper / Gs holding TensorFlow variables); it "
        "cannot be read without TensorFlow and is not converted. Use a PyTorch GAN zoo PGAN "
        "checkpoint (.pth) of the same dataset instead, or train one with the progan recipe")


def _read(path: Path) -> GenerativeModel:
    if detect.detect_format(path) == detect.PICKLE and _is_tf_progan(path):
        return refuse_tf_progan(path)
    return load_pgan_zoo(path)


def _recognise(probe: Probe) -> bool:
    if probe.container == detect.PICKLE and _is_tf_progan(probe.path):
        return True
    if probe.container not in (detect.TORCH_ZIP, detect.PICKLE):
        return False
    keys = state_keys(probe.path)
    return bool({"formatLayer.weight", "formatLayer.module.weight"} & keys) and any(
        k.startswith("toRGBLayers.") for k in keys)


register_importer(Importer(
    name=FORMAT, description="PyTorch GAN zoo PGAN .pth (TensorFlow ProGAN .pkl refused)",
    recognise=_recognise, read=_read, priority=10))
