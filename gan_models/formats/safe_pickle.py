"""A restricted unpickler for network pickles, plus the inert records it builds.

NVlabs network pickles store each network as a "persistent object": the source code of
its Python module plus the module's state (parameters, buffers, submodules, constructor
arguments). Their own loader executes that source. We never do: `find_class` resolves
only the few globals such files need to rebuild tensors, arrays and dicts, and turns
network objects into plain records that keep the class name, the source as text and the
module tree. Any other global raises CheckpointError before anything is called.
"""

from __future__ import annotations

import _compat_pickle
import collections
import io
import pickle
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError

try:  # numpy >= 2 moved the pickling helpers; older pickles name numpy.core
    from numpy._core import multiarray as _np_multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _np_multiarray


class EasyDict(dict):
    """Stands in for dnnlib.util.EasyDict: a dict whose keys read as attributes."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class ModuleRecord:
    """A torch module as stored in a pickle: its class name and its `__dict__`, inert.

    Subclasses are made per allowed torch.nn class so NEWOBJ/BUILD opcodes land here
    instead of constructing the real class.
    """

    class_name = "torch.nn.Module"

    def __new__(cls, *args, **kwargs):
        # NEWOBJ makes records without __init__; BUILD may never follow.
        obj = super().__new__(cls)
        obj.state = {}
        return obj

    def __init__(self, class_name: str | None = None, state: dict | None = None):
        if class_name is not None:
            self.class_name = class_name
        self.state = dict(state or {})

    def __setstate__(self, state: Any) -> None:
        # BUILD with a (dict, slots) pair is legal pickle; torch modules use a plain dict.
        if isinstance(state, tuple) and len(state) == 2:
            state = state[0]
        self.state = dict(state) if isinstance(state, dict) else {}

    # --- the module tree --------------------------------------------------------------
    def _section(self, key: str) -> dict:
        value = self.state.get(key)
        return value if isinstance(value, dict) else {}

    @property
    def parameters(self) -> dict:
        return self._section("_parameters")

    @property
    def buffers(self) -> dict:
        return self._section("_buffers")

    @property
    def modules(self) -> dict:
        return self._section("_modules")

    def named_tensors(self, prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
        """(dotted name, tensor) for every parameter and persistent buffer, like state_dict."""
        skip = self.state.get("_non_persistent_buffers_set") or set()
        for name, t in self.parameters.items():
            if isinstance(t, torch.Tensor):
                yield prefix + name, t
        for name, t in self.buffers.items():
            if isinstance(t, torch.Tensor) and name not in skip:
                yield prefix + name, t
        for name, child in self.modules.items():
            if isinstance(child, ModuleRecord):
                yield from child.named_tensors(f"{prefix}{name}.")

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.named_tensors())

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.class_name}>"


class PersistentRecord(ModuleRecord):
    """An NVlabs persistent object (torch_utils.persistence), never executed.

    module_src is kept as text only, for the curious; nothing here runs it.
    """

    def __init__(self, meta: dict):
        state = meta.get("state")
        super().__init__(str(meta.get("class_name")), state if isinstance(state, dict) else {})
        self.module_src = str(meta.get("module_src") or "")
        self.version = meta.get("version")
        self.meta_type = meta.get("type", "class")
        # persistence keeps the constructor arguments in the object's own state
        self.init_args = tuple(self.state.get("_init_args") or meta.get("init_args") or ())
        self.init_kwargs = dict(self.state.get("_init_kwargs") or meta.get("init_kwargs") or {})


class TFNetworkRecord(ModuleRecord):
    """A TensorFlow-era dnnlib.tflib.network.Network: static_kwargs, components, variables."""

    class_name = "dnnlib.tflib.network.Network"


# --- inert stand-ins for the functions such pickles call -------------------------------
def _reconstruct_persistent_obj(meta: Any) -> PersistentRecord:
    if not isinstance(meta, dict) or not isinstance(meta.get("class_name"), str):
        raise CheckpointError("malformed persistent object in network pickle")
    return PersistentRecord(meta)


def _load_from_bytes(payload: bytes):
    # Storages are nested torch.save payloads (legacy format); read them the safe way.
    if not isinstance(payload, (bytes, bytearray)):
        raise CheckpointError("malformed tensor storage in network pickle")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TypedStorage deprecation chatter
        try:
            return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise CheckpointError(f"a tensor inside the pickle was refused: {_first_line(exc)}") \
                from exc


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    # Hooks are dropped: they would be callables run during backward.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, False,
                                            collections.OrderedDict())
    return t.requires_grad_(bool(requires_grad)) if t.is_floating_point() else t


def _rebuild_parameter(data, requires_grad, backward_hooks=None, state=None):
    return torch.nn.Parameter(data, requires_grad=bool(requires_grad))


def _rebuild_from_type_v2(func, new_type, args, state):
    # Tensor subclasses with Python state: keep the plain tensor, drop the state.
    return func(*args)


def _reconstructor(cls, base, state):
    # Protocol 0/1 way to make an object; only our record classes may be made this way.
    if not (isinstance(cls, type) and issubclass(cls, ModuleRecord)) or base is not object:
        raise CheckpointError(f"refused to rebuild {getattr(cls, '__name__', cls)!r}")
    return cls.__new__(cls)


def _codecs_encode(text, encoding="latin1"):
    # Protocol-2 pickles write bytes as _codecs.encode(str, "latin1").
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise CheckpointError("refused _codecs.encode with an unexpected encoding")
    return text.encode("latin1")


class TypeToken:
    """Stands in for a torch class named in a pickle; it cannot be called or built."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


def _type_tokens() -> dict[tuple[str, str], TypeToken]:
    # Tensor/Parameter appear only as the type argument of _rebuild_from_type_v2; storage
    # classes only inside nested torch.save payloads, which torch.load reads itself.
    names = [("torch", "Tensor"), ("torch.nn.parameter", "Parameter")] + [
        ("torch", f"{kind}Storage") for kind in (
            "Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte",
            "Bool")]
    return {key: TypeToken(".".join(key)) for key in names}


def _allowed_globals() -> dict[tuple[str, str], Any]:
    table: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "object"): object,  # copyreg._reconstructor(cls, object, None)
        ("_codecs", "encode"): _codecs_encode,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
        ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
        ("torch.storage", "_load_from_bytes"): _load_from_bytes,
        ("numpy", "dtype"): np.dtype,
        ("numpy", "ndarray"): np.ndarray,
        ("copyreg", "_reconstructor"): _reconstructor,
        ("dnnlib.util", "EasyDict"): EasyDict,
        ("dnnlib", "EasyDict"): EasyDict,
        ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
        ("dnnlib.tflib.network", "Network"): TFNetworkRecord,
        **_type_tokens(),
        # dtype objects are plain values (an attribute may hold one); they cannot run code
        **{("torch", n): getattr(torch, n) for n in (
            "float32", "float16", "bfloat16", "float64", "int64", "int32", "int16", "int8",
            "uint8", "bool")},
    }
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[(mod, "_reconstruct")] = _np_multiarray._reconstruct
        table[(mod, "scalar")] = _np_multiarray.scalar
    return table


_ALLOWED = _allowed_globals()
_TORCH_MODULE_RECORDS: dict[str, type] = {}

# Globals that give away what kind of foreign file this is, for a kinder refusal.
_HINTS = {
    "timm": "a Projected GAN or StyleGAN-XL pickle (its discriminator holds timm networks)",
    "pg_modules": "a Projected GAN pickle",
    "feature_networks": "a StyleGAN-XL pickle",
    "dnnlib.tflib": "a TensorFlow-era StyleGAN pickle",
}


def _torch_module_record(module: str, name: str) -> type:
    """A ModuleRecord subclass standing in for a plain torch.nn class (never instantiated)."""
    full = f"{module}.{name}"
    cls = _TORCH_MODULE_RECORDS.get(full)
    if cls is None:
        cls = type(name, (ModuleRecord,), {"class_name": full, "__module__": __name__})
        _TORCH_MODULE_RECORDS[full] = cls
    return cls


class SafeUnpickler(pickle.Unpickler):
    def __init__(self, file, source_name: str = "file"):
        super().__init__(file)
        self.source_name = source_name

    def find_class(self, module: str, name: str) -> Any:
        # Protocols 0-2 write Python 2 names (copy_reg, __builtin__); the mapped name
        # still has to pass the allow-list.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        hit = _ALLOWED.get((module, name))
        if hit is not None:
            return hit
        if module.startswith("torch.nn.modules.") and name.isidentifier():
            return _torch_module_record(module, name)
        hint = next((v for k, v in _HINTS.items() if module == k or module.startswith(k + ".")),
                    None)
        extra = f"; the file appears to be {hint}, which is not supported" if hint else ""
        raise CheckpointError(f"refused to load {module}.{name} from {self.source_name}: "
                              f"not allowed in a GAN checkpoint{extra}")

    def persistent_load(self, pid: Any) -> Any:
        raise CheckpointError(f"{self.source_name}: unexpected persistent id in a plain pickle "
                              "(a torch.save file read the wrong way?)")


def safe_load(path: str | Path) -> Any:
    """Unpickle `path` with the allow-list above. Raises CheckpointError on anything else."""
    path = Path(path)
    with open(path, "rb") as f:
        return safe_loads_file(f, path.name)


def safe_loads_file(f, source_name: str) -> Any:
    try:
        return SafeUnpickler(f, source_name).load()
    except CheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, RuntimeError, MemoryError) as exc:
        raise CheckpointError(
            f"{source_name} is corrupt or not a network pickle ({_first_line(exc)})") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
