"""Budgets: the limits every loader checks before it builds anything from a file.

A checkpoint is untrusted data, and a small file can declare huge things: a 32768 px
generator, a zip member that inflates to 12 GiB, a 100 MB header, a pickle whose few bytes
reference one list two-to-the-sixty times. Every loader checks what a file declares against
the limits below BEFORE allocating or walking it, and refuses with a CheckpointError that
names the file, the field and the limit.

Untrusted structures are never `repr`ed, `str`ed or walked without a budget: `plain_data`
converts the few values a loader keeps into JSON values, counting every value it visits
(a shared reference counts each time it is reached), and `describe`/`name_list` make short
texts for messages.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError

MIB, GIB = 1 << 20, 1 << 30

# --- what a model may declare (architecture configs, whatever the file format) ------------
MAX_RESOLUTION = 4096            # image side in pixels
MAX_CHANNELS = 8192              # feature widths, latent, style and embedding sizes
MAX_CLASSES = 100_000            # class count (c_dim, num_classes) and class names
MAX_LAYERS = 256                 # layer and block counts
MAX_CONFIG_INT = 1 << 20         # any other whole number in a config
MAX_NETWORK_BYTES = 4 * GIB      # parameters + buffers of all networks one file builds,
NETWORK_BYTES_PER_FILE_BYTE = 8  # and at most this many per byte of the file
NETWORK_BYTES_SLACK = 64 * MIB   # (plus this much: tiny files of small networks)

# --- headers, metadata and the values loaders keep ----------------------------------------
MAX_HEADER_BYTES = 100_000_000   # a safetensors header (the safetensors library's own limit)
MAX_METADATA_BYTES = 16 * MIB    # one JSON document in a header (a tag's metadata)
MAX_JSON_DEPTH = 64              # nesting of any JSON document
MAX_PLAIN_ITEMS = 100_000        # values in one converted structure (kwargs, args, config)
MAX_PLAIN_DEPTH = 32             # nesting of one converted structure
MAX_TEXT_CHARS = 1 * MIB         # one string kept from a file
MAX_NAME_CHARS = 256             # one class name

# --- pickles (restricted unpickling; torch.save streams are scanned the same way) ---------
MAX_PICKLE_OPS = 2_000_000       # opcodes in one pickle
MAX_PICKLE_REFS = 10_000_000     # objects reached: every opcode, every element a call or
#                                  BUILD takes, every tuple by its full size each time a
#                                  shared reference to it is used
MAX_MODULE_ITEMS = 100_000       # modules + tensors in one pickled module tree (shared
MAX_MODULE_DEPTH = 64            # submodules counted each time they are reached)

# --- zip containers (torch.save) ----------------------------------------------------------
MAX_ZIP_MEMBERS = 100_000
MAX_ZIP_RATIO = 16               # declared uncompressed bytes per byte of the file (torch
ZIP_SLACK_BYTES = 1 * MIB        # stores members uncompressed: a ratio near 1)
MAX_PICKLE_MEMBER_BYTES = 256 * MIB  # the data.pkl of a torch.save zip


def refuse(source: str, field: str, value: Any, limit: Any, unit: str = "") -> CheckpointError:
    """The one refusal message: '<file>: <field> is <value>, over the limit of <limit>'."""
    where = f"{source}: " if source else ""
    return CheckpointError(f"{where}{field} is {value}{unit}, over the limit of {limit}{unit}")


def check_max(source: str, field: str, value: int | float, limit: int | float,
              unit: str = "") -> None:
    if not value <= limit:  # NaN fails too
        raise refuse(source, field, value, limit, unit)


# --- short texts for messages -------------------------------------------------------------
def short(text: str, limit: int = 80) -> str:
    """`text` cut to `limit` characters (file-supplied names in messages)."""
    return text if len(text) <= limit else text[:limit - 3] + "..."


def name_list(keys: Any, limit: int = 8) -> str:
    """'a, b, c ...' from the first string keys of a dict or list, never str() of others."""
    names, more = [], False
    for i, key in enumerate(keys):
        if i >= limit:
            more = True
            break
        names.append(short(key, 40) if isinstance(key, str) else f"<{type(key).__name__}>")
    return ", ".join(sorted(names)) + (" ..." if more else "")


def describe(value: Any, limit: int = 160) -> str:
    """A short JSON-like text of an untrusted value, computed within a small budget."""
    try:
        text = json.dumps(plain_data(value, "", "value", max_items=2000, max_depth=12))
    except (CheckpointError, ValueError):
        return f"<{type(value).__name__}>"
    return short(text, limit)


# --- bounded conversion of untrusted structures to JSON values ----------------------------
def plain_data(value: Any, source: str, field: str, *, max_items: int = MAX_PLAIN_ITEMS,
               max_depth: int = MAX_PLAIN_DEPTH) -> Any:
    """JSON values (dict, list, str, int, float, bool, None) from pickled data: EasyDicts and
    OrderedDicts become dicts, tuples and sets lists, numpy scalars numbers, small arrays and
    tensors lists; anything else a '<TypeName>' placeholder. Refuses, naming `field`, a
    structure that holds more than `max_items` values (every visit counted, so a shared
    reference counts each time) or nests deeper than `max_depth`."""
    return _Plain(source, field, max_items, max_depth).convert(value, 0)


class _Plain:
    SMALL = 4096  # array / tensor elements converted to lists; larger ones are summarised

    def __init__(self, source: str, field: str, max_items: int, max_depth: int):
        self.source, self.field = source, field
        self.where = f"{source}: " if source else ""
        self.left, self.max_items, self.max_depth = max_items, max_items, max_depth

    def _count(self, n: int = 1) -> None:
        self.left -= n
        if self.left < 0:
            raise CheckpointError(
                f"{self.where}{self.field} holds more than {self.max_items} values (shared "
                f"references counted each time), over the limit of {self.max_items}")

    def convert(self, value: Any, depth: int) -> Any:
        self._count()
        if value is None or isinstance(value, (bool, np.bool_)):
            return None if value is None else bool(value)
        if isinstance(value, (int, np.integer)):
            value = int(value)
            if value.bit_length() > 64:
                raise CheckpointError(f"{self.where}{self.field} holds an integer of "
                                      f"{value.bit_length()} bits, over the limit of 64")
            return value
        if isinstance(value, (float, np.floating)):
            return float(value)
        if isinstance(value, str):
            check_max(self.source, f"a string in {self.field}", len(value), MAX_TEXT_CHARS,
                      " characters")
            return str(value)
        if depth >= self.max_depth:
            raise CheckpointError(f"{self.where}{self.field} nests deeper than "
                                  f"{self.max_depth} levels, over the limit of {self.max_depth}")
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                if isinstance(key, (bool, int, float, str, np.integer)) or key is None:
                    key = self.convert(key, depth + 1)
                    out[key if isinstance(key, str) else json.dumps(key)] = \
                        self.convert(item, depth + 1)
                else:
                    raise CheckpointError(f"{self.where}{self.field} has a key of type "
                                          f"{short(type(key).__name__, 40)}, not a name")
            return out
        if isinstance(value, (list, tuple, set, frozenset)):
            return [self.convert(item, depth + 1) for item in value]
        if isinstance(value, (np.ndarray, torch.Tensor)):
            numel = value.size if isinstance(value, np.ndarray) else value.numel()
            kind = value.dtype.kind if isinstance(value, np.ndarray) else (
                "f" if value.is_floating_point() else "c" if value.is_complex() else "i")
            shape = [int(s) for s in value.shape]
            if numel <= self.SMALL and kind in "biuf" and value.ndim <= 8:
                self._count(numel)
                return value.tolist()
            return f"<{type(value).__name__} {shape}>"
        if isinstance(value, torch.dtype):
            return str(value)
        if isinstance(value, np.dtype):
            return value.str if value.fields is None else "<structured dtype>"
        return f"<{short(type(value).__name__, 60)}>"


# --- JSON documents from headers ----------------------------------------------------------
def load_json(raw: str | bytes, source: str, part: str,
              max_bytes: int = MAX_METADATA_BYTES) -> Any:
    """json.loads of one JSON document of a header (`part` names it in messages), after
    checking its size against `max_bytes` (MAX_HEADER_BYTES for a whole header); nested
    deeper than MAX_JSON_DEPTH is refused."""
    check_max(source, f"the size of {part}", len(raw), max_bytes, " bytes")
    try:
        value = json.loads(raw)
    except RecursionError:
        raise CheckpointError(f"{source}: metadata nested too deeply ({part} nests deeper "
                              f"than the limit of {MAX_JSON_DEPTH} levels)") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{source} is corrupt: {part} is not valid JSON ({exc})") \
            from None
    if json_depth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise CheckpointError(f"{source}: metadata nested too deeply ({part} nests deeper "
                              f"than the limit of {MAX_JSON_DEPTH} levels)")
    return value


def json_depth(value: Any, stop: int) -> int:
    """Nesting depth of parsed JSON (a tree: no shared references), counted up to stop + 1."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if depth > stop:
                return depth
            todo.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict)
                                                 else item))
    return deepest


# --- architecture configs and the networks they build -------------------------------------
_RESOLUTION_KEYS = {"img_resolution", "resolution", "size", "img_size", "image_size"}
_CLASS_KEYS = {"c_dim", "num_classes", "n_classes", "label_size"}
_LAYER_KEYS = {"num_layers", "n_mlp", "mapping_layers", "res_blocks", "num_blocks",
               "layers", "depth", "n_layers"}
_WIDTH_SUFFIXES = ("channels", "_dim", "_features", "fmaps", "fmap_max", "_width")


def check_config(config: Any, source: str, field: str = "config") -> None:
    """Declared sizes of an architecture config within the limits above (by field name:
    resolutions, widths, class counts, layer counts; any other whole number within
    MAX_CONFIG_INT), and the config itself a bounded JSON-like structure."""
    plain_data(config, source, field)  # size, depth and types, within budget
    todo = [(config, field)]
    while todo:
        value, where = todo.pop()
        if isinstance(value, dict):
            todo.extend((v, f"{where}.{k}" if isinstance(k, str) else where)
                        for k, v in value.items())
            continue
        if isinstance(value, (list, tuple)):
            todo.extend((v, where) for v in value)
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        key = where.rsplit(".", 1)[-1]
        limit, unit = _named_limit(key)
        if limit is None:
            if not isinstance(value, int):
                continue
            limit = MAX_CONFIG_INT
        elif value < 0:  # sizes and counts: never negative
            raise CheckpointError(f"{source + ': ' if source else ''}{where} is {value}, "
                                  "below 0")
        if not -limit <= value <= limit:
            raise refuse(source, where, value, limit, unit)


def _named_limit(key: str) -> tuple[int | None, str]:
    if key in _RESOLUTION_KEYS:
        return MAX_RESOLUTION, " px"
    if key in _CLASS_KEYS:
        return MAX_CLASSES, ""
    if key in _LAYER_KEYS:
        return MAX_LAYERS, ""
    if key.endswith(_WIDTH_SUFFIXES) or key in ("channel_max", "max_channels", "width"):
        return MAX_CHANNELS, ""
    return None, ""


def network_bytes(networks: dict[str, torch.nn.Module]) -> int:
    """Bytes of every parameter and buffer (works on the meta device: nothing allocated)."""
    total = 0
    for net in networks.values():
        for t in [*net.parameters(), *net.buffers()]:
            total += t.numel() * t.element_size()
    return total


def network_budget(file_bytes: int | None) -> int:
    if file_bytes is None:
        return MAX_NETWORK_BYTES
    return min(MAX_NETWORK_BYTES, NETWORK_BYTES_PER_FILE_BYTE * file_bytes + NETWORK_BYTES_SLACK)


def check_network_bytes(nbytes: int, source: str, what: str, file_bytes: int | None) -> None:
    limit = network_budget(file_bytes)
    if nbytes > limit:
        per_file = "" if file_bytes is None or limit == MAX_NETWORK_BYTES else (
            f" (a {file_bytes}-byte file may build {NETWORK_BYTES_PER_FILE_BYTE} bytes per "
            f"byte plus {NETWORK_BYTES_SLACK})")
        raise CheckpointError(f"{source}: {what} would need {nbytes} bytes of weights and "
                              f"buffers, over the limit of {limit} bytes{per_file}")


# --- tensors a file holds -----------------------------------------------------------------
def check_tensor_view(t: torch.Tensor, source: str, name: str) -> None:
    """A stored tensor may not claim more elements than its storage holds (a zero-stride
    view of a few bytes can declare terabytes, which any copy would then allocate)."""
    nbytes = t.numel() * t.element_size()
    storage = t.untyped_storage().nbytes()
    if nbytes > storage:
        raise CheckpointError(
            f"{source}: tensor {short(name, 80)} declares {nbytes} bytes over a storage of "
            f"{storage} bytes (the limit: its storage); refused")


def check_tensors(state: dict, source: str) -> None:
    for name, t in state.items():
        if isinstance(t, torch.Tensor):
            check_tensor_view(t, source, name if isinstance(name, str) else "?")


# --- zip containers (torch.save files) ----------------------------------------------------
def check_zip(path: str | Path) -> list[zipfile.ZipInfo]:
    """The members of a zip, after checking from its central directory alone (nothing is
    inflated) that their count and declared sizes fit the file: a zip bomb or a member that
    claims gigabytes is refused before torch.load asks for the memory."""
    path = Path(path)
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(f"{path.name} is corrupt: not a readable zip ({exc})") from None
    check_max(path.name, "the number of zip members", len(infos), MAX_ZIP_MEMBERS)
    limit = MAX_ZIP_RATIO * size + ZIP_SLACK_BYTES
    total = 0
    for info in infos:
        member = short(info.filename, 80)
        if info.header_offset + info.compress_size > size:
            raise CheckpointError(f"{path.name} is corrupt or truncated: zip member {member} "
                                  f"ends past the end of the file")
        if info.file_size > limit:
            raise CheckpointError(
                f"{path.name}: zip member {member} declares {info.file_size} bytes "
                f"uncompressed ({_ratio(info.file_size, size)} times the file's {size} bytes), "
                f"over the limit of {MAX_ZIP_RATIO} times the file size plus {ZIP_SLACK_BYTES}")
        total += info.file_size
    if total > limit:
        raise CheckpointError(
            f"{path.name}: its zip members declare {total} bytes uncompressed "
            f"({_ratio(total, size)} times the file's {size} bytes), over the limit of "
            f"{MAX_ZIP_RATIO} times the file size plus {ZIP_SLACK_BYTES}")
    return infos


def _ratio(part: int, whole: int) -> str:
    return f"{part / max(whole, 1):.0f}" if part >= whole else f"{part / max(whole, 1):.2f}"


# --- native metadata types ----------------------------------------------------------------
def check_model_metadata(meta: dict, source: str) -> None:
    """Types and sizes of the fields a model file's metadata declares, before any use."""
    version = meta.get("format_version", 0)
    if type(version) is not int:
        raise CheckpointError(f"{source}: its metadata field 'format_version' is "
                              f"{_kind(version)}, not a version number")
    arch = meta.get("architecture")
    if not isinstance(arch, str) or not arch or len(arch) > MAX_NAME_CHARS:
        what = "too long" if isinstance(arch, str) and arch else _kind(arch)
        raise CheckpointError(f"{source}: unknown architecture (its metadata field "
                              f"'architecture' is {what}, not an architecture name)")
    config = meta.get("config")
    if not isinstance(config, dict):
        raise CheckpointError(f"{source}: its metadata field 'config' is {_kind(config)}, "
                              "not an object of constructor settings")
    names = meta.get("class_names")
    if names is not None:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise CheckpointError(f"{source}: its metadata field 'class_names' is "
                                  f"{_kind(names)}, not a list of names")
        check_max(source, "the number of class_names", len(names), MAX_CLASSES)
        longest = max((len(n) for n in names), default=0)
        check_max(source, "the longest class name", longest, MAX_NAME_CHARS, " characters")


def _kind(value: Any) -> str:
    if value is None:
        return "missing"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            int: "a number", float: "a number"}.get(type(value), f"a {type(value).__name__}")
