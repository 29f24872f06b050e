"""Plain `torch.save(state_dict)` files: peeking at their keys and reading their tensors.

Importers of state-dict formats (pix2pix/CycleGAN, fast neural style) recognise a file by
the names of its tensors. `state_keys` lists the text constants of the pickle inside the
file WITHOUT unpickling it (pickletools only decodes opcodes), for both the zip format
(torch >= 1.6) and the older raw stream; `read_state` loads it with weights_only=True.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import warnings
import zipfile
from pathlib import Path

import torch

from .. import registry
from ..errors import CheckpointError
from ..model import GenerativeModel
from . import detect
from .native import file_sha256
from .safe_pickle import check_torch_save

MAX_PICKLE_BYTES = 64 << 20   # the pickle of a state dict is small (names + storage refs)
MAX_STRINGS = 200_000


def state_keys(path: str | Path) -> frozenset[str]:
    """Text constants in the file's object pickle (tensor names among them); empty when the
    file is not a torch.save file or cannot be read."""
    path = Path(path)
    try:
        kind = detect.detect_format(path)
        if kind == detect.TORCH_ZIP:
            with zipfile.ZipFile(path) as z:
                member = next(i for i in z.infolist() if i.filename.endswith("data.pkl"))
                if member.file_size > MAX_PICKLE_BYTES:
                    return frozenset()
                return _strings(io.BytesIO(z.read(member)))
        if kind == detect.PICKLE:
            with open(path, "rb") as f:
                for _ in range(3):  # magic number, protocol version, system info
                    _skip(f)
                return _strings(f)
    except (OSError, ValueError, StopIteration, zipfile.BadZipFile, CheckpointError,
            MemoryError, OverflowError):  # a declared length beyond memory: not recognised
        pass
    return frozenset()


def _skip(f) -> None:
    for _ in pickletools.genops(f):
        pass


def _strings(f) -> frozenset[str]:
    found = set()
    for _op, arg, _pos in pickletools.genops(f):
        if isinstance(arg, str):
            found.add(arg)
            if len(found) > MAX_STRINGS:
                break
    return frozenset(found)


def read_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The file's state dict (weights_only=True: plain containers and tensors only), with a
    DataParallel `module.` prefix removed."""
    path = Path(path)
    check_torch_save(path)  # declared sizes within budgets before torch.load allocates
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise CheckpointError(f"refused to load {path.name}: it holds objects other than "
                                  f"tensors ({str(exc).splitlines()[0][:200]})") from None
        except (RuntimeError, EOFError, ValueError, OSError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise CheckpointError(f"{path.name} is corrupt or truncated ({first})") from None
    if isinstance(data, dict) and "state_dict" in data and isinstance(data["state_dict"], dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                             for k, v in data.items()):
        raise CheckpointError(f"{path.name} is not a plain state dict (name -> tensor)")
    if data and all(k.startswith("module.") for k in data):
        data = {k[len("module."):]: v for k, v in data.items()}
    return data


def load_strict(net: torch.nn.Module, state: dict[str, torch.Tensor], source: str,
                optional: tuple[str, ...] = ("num_batches_tracked",)) -> None:
    """Load every tensor the network has; only names ending in `optional` may be missing
    (files from before torch 0.4.1 have no BatchNorm step counters)."""
    own = net.state_dict()
    missing = [k for k in own if k not in state and not k.endswith(optional)]
    extra = [k for k in state if k not in own]
    if missing or extra:
        raise CheckpointError(
            f"{source}: the tensors do not fit the network (missing {missing[:3]}, unexpected "
            f"{extra[:3]})")
    for k, v in state.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise CheckpointError(f"{source}: {k} has shape {tuple(v.shape)}, the network "
                                  f"expects {tuple(own[k].shape)}")
    net.load_state_dict({**own, **state}, strict=True)


def translator_from_state(architecture: str, config: dict, state: dict[str, torch.Tensor],
                          path: Path, fmt: str) -> GenerativeModel:
    """A registered translator built from `config` within the loader budgets (sizes checked
    against the file's size first), its weights loaded strictly from `state`, wrapped with
    the file's name and sha256 as its source."""
    net = registry.build(architecture, config, source=path.name,
                         file_bytes=path.stat().st_size)["translator"]
    load_strict(net, state, path.name)
    model = GenerativeModel(architecture, config, {"translator": net}, metadata={
        "source": {"format": fmt, "file": path.name, "sha256": file_sha256(path)}})
    model.name = path.stem
    return model
