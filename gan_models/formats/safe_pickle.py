"""A restricted unpickler for network pickles, plus the inert records it builds.

NVlabs network pickles store each network as a "persistent object": the source code of
its Python module plus the module's state (parameters, buffers, submodules, constructor
arguments). Their own loader executes that source. We never do: `find_class` resolves
only the few globals such files need to rebuild tensors, arrays and dicts, and turns
network objects into plain records that keep the class name, the source as text and the
module tree. Any other global raises CheckpointError before anything is called.

Unpickling runs within budgets (formats/budgets.py): pickle's pure-Python unpickler counts
every opcode and every object reached, a shared reference each time it is used, and no
declared length is read past the end of the stream. The same counting scans torch.save
streams (`check_torch_save`) before torch.load reads them; records are walked only within
MAX_MODULE_ITEMS, and nothing from a file is ever repr'ed.
"""

from __future__ import annotations

import _compat_pickle
import collections
import io
import pickle
import struct
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError
from . import budgets

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
    instead of constructing the real class. Nothing is copied while unpickling (a pickle may
    hand one big state to many records); the module tree is walked only by `named_tensors`,
    within MAX_MODULE_ITEMS and MAX_MODULE_DEPTH.
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
        self.state = state if isinstance(state, dict) else {}

    def __setstate__(self, state: Any) -> None:
        # BUILD with a (dict, slots) pair is legal pickle; torch modules use a plain dict.
        if isinstance(state, tuple) and len(state) == 2:
            state = state[0]
        self.state = state if isinstance(state, dict) else {}

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

    def named_tensors(self, source: str = "the network") -> Iterator[tuple[str, torch.Tensor]]:
        """(dotted name, tensor) for every parameter and persistent buffer, like state_dict.
        A tree deeper than MAX_MODULE_DEPTH or with more than MAX_MODULE_ITEMS modules and
        tensors (a shared submodule counted each time it is reached) is refused."""
        left = [budgets.MAX_MODULE_ITEMS]

        def spend() -> None:
            left[0] -= 1
            if left[0] < 0:
                raise CheckpointError(
                    f"{source}: its module tree holds more than {budgets.MAX_MODULE_ITEMS} "
                    "modules and tensors (shared submodules counted each time), over the "
                    f"limit of {budgets.MAX_MODULE_ITEMS}")

        def walk(record: ModuleRecord, prefix: str, depth: int):
            if depth > budgets.MAX_MODULE_DEPTH:
                raise CheckpointError(
                    f"{source}: its module tree nests deeper than {budgets.MAX_MODULE_DEPTH} "
                    f"levels, over the limit of {budgets.MAX_MODULE_DEPTH}")
            skip = record.state.get("_non_persistent_buffers_set")
            skip = skip if isinstance(skip, (set, frozenset)) else set()
            for section, persistent in ((record.parameters, False), (record.buffers, True)):
                for name, t in section.items():
                    spend()
                    if isinstance(name, str) and isinstance(t, torch.Tensor) and not (
                            persistent and name in skip):
                        yield prefix + name, t
            for name, child in record.modules.items():
                spend()
                if isinstance(name, str) and isinstance(child, ModuleRecord):
                    yield from walk(child, f"{prefix}{name}.", depth + 1)

        yield from walk(self, "", 0)

    def state_dict(self, source: str = "the network") -> dict[str, torch.Tensor]:
        return dict(self.named_tensors(source))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {budgets.short(self.class_name, 60)}>"


class PersistentRecord(ModuleRecord):
    """An NVlabs persistent object (torch_utils.persistence), never executed.

    module_src is kept as text only, for the curious; nothing here runs it.
    """

    def __init__(self, meta: dict):
        state = meta.get("state")
        super().__init__(meta["class_name"], state)
        src = meta.get("module_src")
        self.module_src = src if isinstance(src, str) else ""
        self.version = meta.get("version")
        self._meta = meta

    # persistence keeps the constructor arguments in the object's own state (older
    # versions in the meta); read only when a loader asks, never copied while unpickling
    def _constructor_value(self, key: str) -> Any:
        return self.state.get(f"_{key}") or self._meta.get(key)

    @property
    def init_args(self) -> tuple:
        value = self._constructor_value("init_args")
        if not value:
            return ()
        return tuple(value) if isinstance(value, (tuple, list)) else ("<malformed>",)

    @property
    def init_kwargs(self) -> dict:
        value = self._constructor_value("init_kwargs")
        return value if isinstance(value, dict) else {}


class TFNetworkRecord(ModuleRecord):
    """A TensorFlow-era dnnlib.tflib.network.Network: static_kwargs, components, variables."""

    class_name = "dnnlib.tflib.network.Network"


# --- inert stand-ins for the functions such pickles call -------------------------------
def _reconstruct_persistent_obj(meta: Any) -> PersistentRecord:
    if not isinstance(meta, dict) or not isinstance(meta.get("class_name"), str):
        raise CheckpointError("malformed persistent object in network pickle")
    return PersistentRecord(meta)


def _load_from_bytes(payload: bytes, source: str = "network pickle"):
    # Storages are nested torch.save payloads (legacy format): scanned within budget (their
    # declared storage sizes against the payload's length), then read the safe way.
    if not isinstance(payload, (bytes, bytearray)):
        raise CheckpointError(f"{source}: malformed tensor storage in network pickle")
    scan_legacy_torch(io.BytesIO(payload), len(payload), f"{source} (a tensor storage)")
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


def _np_reconstruct(subtype, shape, dtype):
    # numpy pickles make an empty array here and fill it in BUILD; a declared shape would
    # be allocated at once, so only the empty shapes numpy writes are accepted.
    if not (isinstance(shape, tuple) and all(type(n) is int and 0 <= n <= 1 for n in shape)):
        raise CheckpointError("refused a numpy array that declares its size before its data")
    return _np_multiarray._reconstruct(subtype, shape, dtype)


def _rebuild_parameter(data, requires_grad, backward_hooks=None, state=None):
    return torch.nn.Parameter(data, requires_grad=bool(requires_grad))


def _rebuild_from_type_v2(func, new_type, args, state):
    # Tensor subclasses with Python state: keep the plain tensor, drop the state.
    return func(*args)


def _reconstructor(cls, base, state):
    # Protocol 0/1 way to make an object; only our record classes may be made this way.
    if not (isinstance(cls, type) and issubclass(cls, ModuleRecord)) or base is not object:
        name = cls.__name__ if isinstance(cls, type) else type(cls).__name__
        raise CheckpointError(f"refused to rebuild {budgets.short(name, 60)!r}")
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
        table[(mod, "_reconstruct")] = _np_reconstruct
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


# --- unpickling within budgets ------------------------------------------------------------
_CORRUPT = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, RuntimeError, MemoryError, OverflowError, struct.error)


class _BoundedReader:
    """The file as the unpickler reads it: no read may ask for more than the stream holds,
    so a declared length (a 4 GiB string in a 40-byte file) is refused before anything is
    allocated for it."""

    def __init__(self, f, size: int, source: str):
        self._f, self.left, self.size, self._source = f, size, size, source

    def _need(self, n: int) -> None:
        if n > self.left:
            raise CheckpointError(
                f"{self._source} is corrupt or truncated: its pickle declares {n} bytes of data "
                f"at byte {self.size - self.left}, but only {self.left} remain (the limit)")

    def read(self, n: int = -1) -> bytes:
        n = self.left if n is None or n < 0 else n
        self._need(n)
        data = self._f.read(n)
        self.left -= len(data)
        return data

    def readline(self) -> bytes:
        line = self._f.readline(self.left)
        self.left -= len(line)
        return line


class BoundedUnpickler(pickle._Unpickler):
    """pickle's own (pure-Python) unpickler, counting as it goes: every opcode, every
    element a call or BUILD takes, every tuple by its full size each time a shared reference
    to it is used (hashing a tuple walks all of it). Beyond MAX_PICKLE_OPS or MAX_PICKLE_REFS
    the pickle is refused, so a few bytes that reference one structure 2**60 times cost no
    more than their budget. Lengths are checked against the bytes left before any read."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, source_name: str = "file", size: int | None = None):
        if size is None:
            here = file.tell()
            size = file.seek(0, io.SEEK_END) - here
            file.seek(here)
        self.source_name = source_name
        self._reader = _BoundedReader(file, size, source_name)
        super().__init__(self._reader)
        self._ops = self._refs = 0
        self._tuples: dict[int, tuple[tuple, int]] = {}  # id -> (tuple kept alive, size)
        self._results: dict = {}

    def _spend(self, n: int) -> None:
        self._refs += n
        if self._refs > budgets.MAX_PICKLE_REFS:
            raise CheckpointError(
                f"{self.source_name}: its pickle reaches more than {budgets.MAX_PICKLE_REFS} "
                "objects (shared references counted each time they are used), over the limit "
                f"of {budgets.MAX_PICKLE_REFS}")

    def _size(self, obj: Any) -> int:
        if type(obj) is tuple:
            known = self._tuples.get(id(obj))
            return known[1] if known else 1 + len(obj)
        return 1

    def _cost(self, value: Any) -> int:
        """What a call or BUILD may do with `value`: walk its elements, hash its keys."""
        if isinstance(value, (list, tuple, set, frozenset)):
            return 1 + sum(self._size(x) for x in value)
        if isinstance(value, dict):
            return 1 + sum(self._size(k) + 1 for k in value)
        return 1

    # --- opcode handlers that count ---------------------------------------------------
    def _made_tuple(self) -> None:
        t = self.stack[-1]
        size = 1 + sum(self._size(x) for x in t)
        self._spend(len(t))
        if size > budgets.MAX_PICKLE_REFS:
            self._spend(size)  # refuses, naming the limit
        self._tuples[id(t)] = (t, size)

    def _reused(self) -> None:
        self._spend(self._size(self.stack[-1]))

    def _call_cost(self) -> None:
        args = self.stack[-1]
        self._spend(sum(self._cost(a) for a in args) if isinstance(args, tuple) else 1)

    def _state_cost(self) -> None:
        state = self.stack[-1]
        parts = state if isinstance(state, tuple) and len(state) == 2 else (state,)
        self._spend(sum(self._cost(p) for p in parts))

    def _newobj_ex_cost(self) -> None:
        self._spend(self._cost(self.stack[-2]) + self._cost(self.stack[-1]))

    def _instantiate(self, klass, args) -> None:  # INST and OBJ opcodes
        self._spend(sum(self._cost(a) for a in args))
        super()._instantiate(klass, args)

    def _check_bytearray8(self) -> None:
        raise CheckpointError(f"{self.source_name}: its pickle uses BYTEARRAY8, which "
                              "network checkpoints never need; refused")


def _counting(handler, before=None, after=None):
    def run(self):
        self._ops += 1
        if self._ops > budgets.MAX_PICKLE_OPS:
            raise CheckpointError(
                f"{self.source_name}: its pickle has more than {budgets.MAX_PICKLE_OPS} "
                f"opcodes, over the limit of {budgets.MAX_PICKLE_OPS}")
        self._spend(1)
        if before is not None:
            before(self)
        handler(self)
        if after is not None:
            after(self)

    return run


def _install_counters(table: dict) -> None:
    op = {name: code[0] for name, code in vars(pickle).items()
          if name.isupper() and isinstance(code, bytes) and len(code) == 1}
    before = {op["REDUCE"]: BoundedUnpickler._call_cost,
              op["NEWOBJ"]: BoundedUnpickler._call_cost,
              op["NEWOBJ_EX"]: BoundedUnpickler._newobj_ex_cost,
              op["BUILD"]: BoundedUnpickler._state_cost,
              op["BYTEARRAY8"]: BoundedUnpickler._check_bytearray8}
    after = {op[n]: BoundedUnpickler._made_tuple for n in ("TUPLE", "TUPLE1", "TUPLE2",
                                                            "TUPLE3")}
    after.update({op[n]: BoundedUnpickler._reused for n in ("GET", "BINGET", "LONG_BINGET",
                                                            "DUP")})
    for code, handler in list(table.items()):
        table[code] = _counting(handler, before.get(code), after.get(code))


_install_counters(BoundedUnpickler.dispatch)


# --- scanning torch.save streams before torch.load reads them ----------------------------
_STORAGE_ITEMSIZE = {"UntypedStorage": 1, "ByteStorage": 1, "CharStorage": 1, "BoolStorage": 1,
                     "ShortStorage": 2, "HalfStorage": 2, "BFloat16Storage": 2,
                     "IntStorage": 4, "FloatStorage": 4, "LongStorage": 8, "DoubleStorage": 8,
                     "ComplexFloatStorage": 8, "ComplexDoubleStorage": 16}


class _StandIn:
    """Whatever a scanned pickle names or builds: callable, buildable, fillable, inert."""

    __slots__ = ("name",)

    def __new__(cls, *args, **kwargs):  # also NEWOBJ's cls.__new__(cls, *args)
        return object.__new__(_StandIn)

    def __init__(self, name: str = ""):
        self.name = name

    def __call__(self, *args, **kwargs):
        return _StandIn()

    def __setstate__(self, state):
        pass

    def __setitem__(self, key, value):
        pass

    def append(self, item):
        pass

    def extend(self, items):
        pass

    def add(self, item):
        pass


class StructureScanner(BoundedUnpickler):
    """Runs a pickle within the budgets without making anything real: every global is a
    stand-in, every call returns one. torch.load then reads a stream this has passed, so
    torch's own unpickler never meets more than the budgets allow. Persistent ids of
    storages are collected: {key: declared bytes}."""

    def __init__(self, file, source_name: str, size: int, storages: dict | None = None):
        super().__init__(file, source_name, size)
        self.storages = {} if storages is None else storages

    def find_class(self, module: str, name: str) -> Any:
        return _StandIn(name if isinstance(name, str) else "")

    def persistent_load(self, pid: Any) -> Any:
        if type(pid) is tuple and len(pid) >= 5 and pid[0] == "storage":
            kind = pid[1].name if isinstance(pid[1], _StandIn) else ""
            numel = pid[4]
            if type(numel) is not int or numel < 0:
                raise CheckpointError(f"{self.source_name} is corrupt: a tensor storage "
                                      "declares no valid size")
            key = pid[2] if isinstance(pid[2], (str, int)) else id(pid[2])
            self.storages[key] = numel * _STORAGE_ITEMSIZE.get(kind, 1)
        return _StandIn()


def scan_torch_pickle(raw: bytes, source: str) -> dict:
    """Scan the data.pkl of a torch.save zip; returns its storages {key: declared bytes}."""
    scanner = StructureScanner(io.BytesIO(raw), source, len(raw))
    _scan(scanner)
    return scanner.storages


def scan_legacy_torch(f, size: int, source: str) -> None:
    """Scan a pre-1.6 torch.save stream (magic, protocol, system info, the object, storage
    keys: five pickles, then the raw storages) from f's position; the storages its pickles
    declare must fit in the bytes that follow them, checked before torch.load allocates
    them. f is left where it was."""
    start = f.tell()
    storages: dict = {}
    for _ in range(5):
        _scan(StructureScanner(f, source, size - (f.tell() - start), storages))
    declared = sum(storages.values()) + 8 * len(storages)
    left = size - (f.tell() - start)
    f.seek(start)
    if declared > left:
        raise CheckpointError(
            f"{source}: its tensors declare {declared} bytes of storage, but only {left} bytes "
            "follow their description (the limit)")


def check_torch_save(path: str | Path) -> None:
    """A torch.save file's declared sizes within the budgets, checked before torch.load runs:
    a zip's members against the file size (budgets.check_zip: zip bombs, members claiming
    gigabytes) and its data.pkl, or a legacy stream's pickles and declared storage sizes,
    scanned without making anything. Call it before every torch.load of a user's file."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        zipped = f.read(4) == b"PK\x03\x04"
        if not zipped:
            f.seek(0)
            scan_legacy_torch(f, size, path.name)
            return
    infos = budgets.check_zip(path)
    pickles = [i for i in infos if i.filename.endswith("/data.pkl") or i.filename == "data.pkl"]
    if len(pickles) != 1:
        raise CheckpointError(f"{path.name} is corrupt: a torch.save zip holds one data.pkl, "
                              f"this one {len(pickles)}")
    budgets.check_max(path.name, "the size of its data.pkl", pickles[0].file_size,
                      budgets.MAX_PICKLE_MEMBER_BYTES, " bytes")
    try:
        with zipfile.ZipFile(path) as z:
            raw = z.read(pickles[0])
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error) as exc:
        raise CheckpointError(f"{path.name} is corrupt: its data.pkl cannot be read ({exc})") \
            from None
    scan_torch_pickle(raw, path.name)


def _scan(scanner: StructureScanner) -> None:
    try:
        scanner.load()
    except CheckpointError:
        raise
    except _CORRUPT as exc:
        raise CheckpointError(f"{scanner.source_name} is corrupt or truncated "
                              f"({_first_line(exc)})") from exc


class SafeUnpickler(BoundedUnpickler):
    """The restricted unpickler: the allow-list above, within the budgets of its base."""

    def find_class(self, module: str, name: str) -> Any:
        # Protocols 0-2 write Python 2 names (copy_reg, __builtin__); the mapped name
        # still has to pass the allow-list.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        hit = _ALLOWED.get((module, name))
        if hit is _load_from_bytes or hit is _codecs_encode:
            return self._once_per_object(hit)
        if hit is _rebuild_tensor_v2:
            return self._rebuild_tensor
        if hit is not None:
            return hit
        if module.startswith("torch.nn.modules.") and name.isidentifier():
            return _torch_module_record(module, name)
        hint = next((v for k, v in _HINTS.items() if module == k or module.startswith(k + ".")),
                    None)
        extra = f"; the file appears to be {hint}, which is not supported" if hint else ""
        raise CheckpointError(f"refused to load {budgets.short(module, 80)}."
                              f"{budgets.short(name, 80)} from {self.source_name}: "
                              f"not allowed in a GAN checkpoint{extra}")

    def _once_per_object(self, func):
        # A payload the pickle reuses through its memo is decoded once, not once per use.
        def call(payload, *args):
            key = (func, id(payload), args)
            if key not in self._results:
                self._results[key] = (payload, func(payload, *args) if func is not
                                      _load_from_bytes else func(payload, self.source_name))
            return self._results[key][1]

        return call

    def _rebuild_tensor(self, *args, **kwargs) -> torch.Tensor:
        t = _rebuild_tensor_v2(*args, **kwargs)
        budgets.check_tensor_view(t, self.source_name, "in the pickle")
        return t

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
    except _CORRUPT as exc:
        raise CheckpointError(
            f"{source_name} is corrupt or not a network pickle ({_first_line(exc)})") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return budgets.short(text[0], 200) if text else type(exc).__name__
