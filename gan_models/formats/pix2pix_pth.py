"""pix2pix / CycleGAN generators (`latest_net_G.pth`, `*_net_G_A.pth`): a plain state dict.

The layout (ResNet or U-Net, widths, block count, norm) is read from the tensor names and
shapes; parameter names are ours too (architectures/pix2pix.py), so nothing is renamed:
    ResNet  model.1.weight [ngf, in, 7, 7]; model.{10..}.conv_block.{1,5}.weight per block
            (.6 instead of .5 with dropout); the last 7x7 conv gives the output channels
    U-Net   model.model.0.weight [ngf, in, 4, 4]; one `.model.1` deeper per level; the
            outer transposed conv model.model.3.weight [2 ngf, out, 4, 4]
    norm    BatchNorm when running_mean entries exist, else InstanceNorm (no parameters)
The resolution is not stored: U-Nets get 2**levels (unet_256 -> 256), ResNets 256.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import CheckpointError
from ..model import GenerativeModel
from . import detect
from .importers import Importer, Probe, register_importer
from .torch_state import read_state, state_keys, translator_from_state

FORMAT = "pix2pix-pth"
_BLOCK = re.compile(r"^model\.(\d+)\.conv_block\.(\d+)\.weight$")


def _strip(keys) -> set[str]:
    return {k[len("module."):] if k.startswith("module.") else k for k in keys}


def layout(state: dict, name: str) -> tuple[str, dict]:
    """(architecture, config) of a generator state dict."""
    keys = set(state)
    batch = any(k.endswith("running_mean") for k in keys)
    norm = "batch" if batch else "instance"
    if "model.model.0.weight" in keys:
        first = state["model.model.0.weight"]
        levels, prefix = 1, "model.model.1"
        while f"{prefix}.model.1.weight" in keys:
            levels, prefix = levels + 1, f"{prefix}.model.3"
        out = state["model.model.3.weight"].shape[1]
        cfg = {"in_channels": first.shape[1], "out_channels": out, "ngf": first.shape[0],
               "num_downs": levels, "norm": norm, "resolution": 2 ** levels}
        return "pix2pix-unet", cfg
    if "model.1.weight" in keys:
        blocks = {int(m.group(1)) for k in keys if (m := _BLOCK.match(k))}
        # with dropout the second conv of a block is .6 (else .6 is that conv's BatchNorm)
        dropout = any(_BLOCK.match(k) and k.endswith(".6.weight") and state[k].dim() == 4
                      for k in keys)
        first = state["model.1.weight"]
        last = max(int(k.split(".")[1]) for k in keys if re.match(r"^model\.\d+\.weight$", k))
        cfg = {"in_channels": first.shape[1], "out_channels": state[f"model.{last}.weight"]
               .shape[0], "ngf": first.shape[0], "n_blocks": len(blocks), "norm": norm,
               "dropout": dropout, "resolution": 256}
        return "pix2pix-resnet", cfg
    raise CheckpointError(f"{name}: not a pix2pix/CycleGAN generator (no model.1 or "
                          "model.model.0 weights)")


def drop_stale_norm_stats(state: dict) -> dict:
    """Files from before torch 0.4 carry running statistics for InstanceNorm layers, which
    have no parameters and use no statistics: drop statistics of layers without a weight."""
    stats = ("running_mean", "running_var", "num_batches_tracked")
    return {k: v for k, v in state.items()
            if not (k.endswith(stats) and f"{k.rsplit('.', 1)[0]}.weight" not in state)}


def load_pix2pix(path: str | Path) -> GenerativeModel:
    path = Path(path)
    state = drop_stale_norm_stats(read_state(path))
    architecture, config = layout(state, path.name)
    return translator_from_state(architecture, config, state, path, FORMAT)


def _recognise(probe: Probe) -> bool:
    if probe.container not in (detect.TORCH_ZIP, detect.PICKLE):
        return False
    keys = _strip(state_keys(probe.path))
    resnet = "model.1.weight" in keys and any(_BLOCK.match(k) for k in keys)
    unet = {"model.model.0.weight", "model.model.1.model.1.weight"} <= keys
    return resnet or unet


register_importer(Importer(
    name=FORMAT, description="pix2pix / CycleGAN generator .pth (latest_net_G.pth)",
    recognise=_recognise, read=load_pix2pix, priority=10))
