"""Builders of hostile checkpoint files: small files that declare huge things.

Each builder writes one file in well under a second and returns its path. Every file here
is refused by gan_models' budgets (formats/budgets.py) before anything big is allocated or
walked; `HOSTILE` lists them with the exact message the loader gives. No builder ever
creates the structure it describes (hashing or printing it would hang the test itself):
shared references are written through pickle's memo, oversized declarations by patching
lengths and counts.
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import pickle
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from fixtures_foreign import (
    TINY_G_KW,
    Persistent,
    legacy_torch_bytes,
    nvlabs_network_dict,
    write_nvlabs_pickle,
    write_rosinality_checkpoint,
)
from torch import nn

from gan_models.formats import budgets

GIB = 1 << 30


def shared_list(depth: int = 30) -> list:
    """[[x, x], [x, x]] ... `depth` levels: 2**depth leaves, a few hundred pickled bytes
    (30 levels: within MAX_PLAIN_DEPTH, so the count of shared references is what trips)."""
    x: list = []
    for _ in range(depth):
        x = [x, x]
    return x


def shared_tuple_pickle_body(depth: int = 80) -> bytes:
    """Pickle opcodes (no PROTO/STOP) pushing ((t, t), (t, t)) ... `depth` levels deep."""
    t: tuple = ()
    for _ in range(depth):
        t = (t, t)
    return pickle.dumps(t, protocol=2)[2:-1]


def tiny_stylegan2() -> nn.Module:
    from gan_models import registry

    torch.manual_seed(0)
    return registry.build("stylegan2", {"generator": dict(TINY_G_KW)})["generator"]


# --- rosinality .pt (torch.save) ------------------------------------------------------------
def rosinality_shared_args(path: Path) -> Path:
    """A working rosinality checkpoint whose `args` hold a list referenced 2**30 times."""
    args = argparse.Namespace(size=16, latent=8, n_mlp=2, blob=shared_list())
    return write_rosinality_checkpoint(path, tiny_stylegan2(), with_args=False,
                                       extra={"args": args})


def _rewrite_zip(src: bytes, path: Path, change: Callable[[zipfile.ZipFile], None] | None = None,
                 replace: dict[str, tuple[bytes, int]] | None = None) -> Path:
    """Copy a torch.save zip member by member, replacing some members' data (and their
    compression), then let `change` edit the ZipInfos before the central directory is written."""
    replace = replace or {}
    with zipfile.ZipFile(io.BytesIO(src)) as old, zipfile.ZipFile(path, "w") as new:
        for info in old.infolist():
            tail = info.filename.split("/", 1)[1]
            data, method = replace.get(tail, (old.read(info), zipfile.ZIP_STORED))
            new.writestr(zipfile.ZipInfo(info.filename, info.date_time), data,
                         compress_type=method)
        if change is not None:
            change(new)
    return path


def _torch_zip(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def zip_claims_12gib(path: Path) -> Path:
    """A torch.save zip whose storage member's central-directory entry claims 12 GiB."""
    def claim(z: zipfile.ZipFile) -> None:
        info = next(i for i in z.infolist() if i.filename.endswith("/data/0"))
        info.file_size = 12 * GIB  # written as a zip64 extra when the zip is closed
    return _rewrite_zip(_torch_zip({"g_ema": {"input.input": torch.zeros(4)}}), path, claim)


def zip_bomb(path: Path) -> Path:
    """A torch.save zip whose storage member really inflates ~64 KiB into 64 MiB of zeros."""
    src = _torch_zip({"g_ema": {"input.input": torch.zeros(4)}})
    chunk = bytes(1 << 20)
    with zipfile.ZipFile(io.BytesIO(src)) as old, zipfile.ZipFile(path, "w") as new:
        for info in old.infolist():
            zi = zipfile.ZipInfo(info.filename, info.date_time)
            if not info.filename.endswith("/data/0"):
                new.writestr(zi, old.read(info))
                continue
            zi.compress_type = zipfile.ZIP_DEFLATED
            with new.open(zi, "w") as out:  # compressed a chunk at a time
                for _ in range(64):
                    out.write(chunk)
    return path


def legacy_claims_12gib(path: Path) -> Path:
    """A pre-1.6 torch.save stream whose 16-byte storage declares 3 Gi floats (12 GiB)."""
    data = legacy_torch_bytes({"g_ema": {"input.input": torch.zeros(4)}})
    numel = b"K\x04N"  # BININT1 4 (the storage's element count), then view_metadata None
    assert data.count(numel) == 1
    path.write_bytes(data.replace(numel, b"\x8a\x05" + (3 * GIB).to_bytes(5, "little") + b"N"))
    return path


def stride0_tensor(path: Path) -> Path:
    """A rosinality-looking state whose 4-byte tensor claims 2**34 elements (stride 0)."""
    big = torch.zeros(1).expand(1 << 34)
    torch.save({"g_ema": {"input.input": big}}, path)
    return path


# --- NVlabs .pkl ------------------------------------------------------------------------------
def nvlabs_shared_kwargs(path: Path) -> Path:
    """A working NVlabs pickle whose generator _init_kwargs hold a list referenced 2**30
    times (the importer once repr'ed such structures)."""
    gen = tiny_stylegan2()
    data = nvlabs_network_dict(gen, {**TINY_G_KW, "blob": shared_list()})
    return write_nvlabs_pickle(path, data)


def nvlabs_shared_modules(path: Path) -> Path:
    """A network pickle whose module tree shares each level's child twice, 40 levels deep
    (2**40 paths through 40 records)."""
    child = None
    for level in range(40):
        modules = collections.OrderedDict() if child is None else collections.OrderedDict(
            a=child, b=child)
        state = {"_parameters": collections.OrderedDict(w=torch.zeros(1)), "_buffers": {},
                 "_modules": modules, "_init_kwargs": {}}
        child = Persistent(dict(type="class", version=6, module_src="", state=state,
                                class_name="Generator" if level == 39 else "Block"))
    return write_nvlabs_pickle(path, {"G_ema": child})


def pickle_tuple_key(path: Path) -> Path:
    """A pickle whose dict key is a tuple of 2**80 leaves: hashing it would never end."""
    path.write_bytes(b"\x80\x02}" + shared_tuple_pickle_body(80) + b"K\x01s.")
    return path


def pickle_huge_string(path: Path) -> Path:
    """BINUNICODE declaring 2 GiB in a 11-byte file."""
    path.write_bytes(b"\x80\x02X" + struct.pack("<I", 0x7FFFFFFF) + b"abc")
    return path


def pickle_huge_string8(path: Path) -> Path:
    """BINUNICODE8 declaring 2**60 bytes (an empty MemoryError once, from a pre-scan)."""
    path.write_bytes(b"\x80\x04\x8d" + struct.pack("<Q", 1 << 60) + b"abc")
    return path


# --- native .safetensors ----------------------------------------------------------------------
def _native(path: Path, meta, header_extra: dict | None = None) -> Path:
    text = meta if isinstance(meta, str) else json.dumps(meta)
    header = {"__metadata__": {"gan_studio": text},
              "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, **(header_extra or {})}
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(4))
    return path


def _stylegan2_meta(**generator) -> dict:
    return {"format": "gan-studio", "format_version": 1, "architecture": "stylegan2",
            "config": {"generator": {**TINY_G_KW, **generator}, "discriminator": None}}


def native_32768px(path: Path) -> Path:
    return _native(path, _stylegan2_meta(img_resolution=32768))


def native_too_big_for_file(path: Path) -> Path:
    """Declared sizes within the limits, but weights of gigabytes claimed by a tiny file."""
    return _native(path, _stylegan2_meta(img_resolution=1024, channel_base=1 << 20,
                                         channel_max=4096, w_dim=4096, z_dim=4096))


def native_config_list(path: Path) -> Path:
    return _native(path, {**_stylegan2_meta(), "config": [1, 2, 3]})


def native_architecture_number(path: Path) -> Path:
    return _native(path, {**_stylegan2_meta(), "architecture": 7})


def native_class_names_dict(path: Path) -> Path:
    return _native(path, {**_stylegan2_meta(), "class_names": {"a": 1}})


def native_deep_metadata(path: Path) -> Path:
    """The model metadata nested 100000 levels deep (a RecursionError in json once)."""
    return _native(path, "[" * 100_000 + "]" * 100_000)


def native_deep_header(path: Path) -> Path:
    """The header JSON itself nested 200 levels (within the parser, over MAX_JSON_DEPTH)."""
    raw = b'{"__metadata__": {}, "x": ' + b"[" * 200 + b"]" * 200 + b"}"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    return path


def native_huge_header(path: Path) -> Path:
    """A header length of 100 MB declared by a 20-byte file."""
    path.write_bytes(struct.pack("<Q", budgets.MAX_HEADER_BYTES) + b'{"a": 1}    ')
    return path


# --- not checkpoints at all ---------------------------------------------------------------------
def not_a_checkpoint(path: Path) -> Path:
    path.write_bytes(b"GAN Studio test: plain text, not a checkpoint.\n" * 4)
    return path


def empty_file(path: Path) -> Path:
    path.write_bytes(b"")
    return path


@dataclass(frozen=True)
class Hostile:
    file: str                       # name in the models folder
    build: Callable[[Path], Path]
    message: str                    # regex the whole library message must match
    seconds: float                  # time ceiling for the refusal (server: whole prompt)


N = budgets.MAX_PLAIN_ITEMS
HOSTILE = [
    Hostile("rosi_shared_args.pt", rosinality_shared_args,
            rf"rosi_shared_args\.pt: args holds more than {N} values \(shared references "
            rf"counted each time\), over the limit of {N}", 10),
    Hostile("nv_shared_kwargs.pkl", nvlabs_shared_kwargs,
            rf"nv_shared_kwargs\.pkl \(G_ema\): _init_kwargs holds more than {N} values "
            rf"\(shared references counted each time\), over the limit of {N}", 10),
    Hostile("nv_shared_modules.pkl", nvlabs_shared_modules,
            rf"nv_shared_modules\.pkl: its module tree holds more than "
            rf"{budgets.MAX_MODULE_ITEMS} modules and tensors \(shared submodules counted "
            rf"each time\), over the limit of {budgets.MAX_MODULE_ITEMS}", 10),
    Hostile("tuple_key.pkl", pickle_tuple_key,
            rf"tuple_key\.pkl: its pickle reaches more than {budgets.MAX_PICKLE_REFS} objects "
            rf"\(shared references counted each time they are used\), over the limit of "
            rf"{budgets.MAX_PICKLE_REFS}", 10),
    Hostile("huge_string.pkl", pickle_huge_string,
            r"huge_string\.pkl is corrupt or truncated: its pickle declares 2147483647 bytes "
            r"of data at byte 7, but only 3 remain \(the limit\)", 5),
    Hostile("huge_string8.pkl", pickle_huge_string8,
            r"huge_string8\.pkl is corrupt or truncated: its pickle declares "
            r"1152921504606846976 bytes of data at byte 11, but only 3 remain \(the limit\)", 5),
    Hostile("zip_12gib.pt", zip_claims_12gib,
            r"zip_12gib\.pt: zip member archive/data/0 declares 12884901888 bytes "
            r"uncompressed \(\d+ times the file's \d+ bytes\), over the limit of 16 times the "
            r"file size plus 1048576", 5),
    Hostile("zip_bomb.pt", zip_bomb,
            r"zip_bomb\.pt: zip member archive/data/0 declares 67108864 bytes uncompressed "
            r"\(\d+ times the file's \d+ bytes\), over the limit of 16 times the file size "
            r"plus 1048576", 5),
    Hostile("legacy_12gib.pt", legacy_claims_12gib,
            r"legacy_12gib\.pt: its tensors declare 12884901896 bytes of storage, but only "
            r"\d+ bytes follow their description \(the limit\)", 5),
    Hostile("stride0.pt", stride0_tensor,
            r"stride0\.pt: tensor input\.input declares 68719476736 bytes over a storage of 4 "
            r"bytes \(the limit: its storage\); refused", 5),
    Hostile("res_32768.safetensors", native_32768px,
            rf"res_32768\.safetensors: config\.generator\.img_resolution is 32768 px, over the "
            rf"limit of {budgets.MAX_RESOLUTION} px", 5),
    Hostile("too_big.safetensors", native_too_big_for_file,
            r"too_big\.safetensors: architecture 'stylegan2' would need \d+ bytes of weights "
            r"and buffers, over the limit of \d+ bytes \(a \d+-byte file may build 8 bytes per "
            r"byte plus 67108864\)", 10),
    Hostile("config_list.safetensors", native_config_list,
            r"config_list\.safetensors: its metadata field 'config' is a list, not an object of "
            r"constructor settings", 5),
    Hostile("arch_number.safetensors", native_architecture_number,
            r"arch_number\.safetensors: unknown architecture \(its metadata field "
            r"'architecture' is a number, not an architecture name\)", 5),
    Hostile("classes_dict.safetensors", native_class_names_dict,
            r"classes_dict\.safetensors: its metadata field 'class_names' is an object, not a "
            r"list of names", 5),
    Hostile("deep_meta.safetensors", native_deep_metadata,
            rf"deep_meta\.safetensors: metadata nested too deeply \(its GAN Studio checkpoint "
            rf"metadata nests deeper than the limit of {budgets.MAX_JSON_DEPTH} levels\)", 5),
    Hostile("deep_header.safetensors", native_deep_header,
            rf"deep_header\.safetensors: metadata nested too deeply \(its safetensors header "
            rf"nests deeper than the limit of {budgets.MAX_JSON_DEPTH} levels\)", 5),
    Hostile("huge_header.safetensors", native_huge_header,
            r"huge_header\.safetensors is corrupt or truncated: its header declares 100000000 "
            r"bytes but the file holds only 12 after the length field", 5),
    Hostile("not_a_checkpoint.pt", not_a_checkpoint,
            r"not_a_checkpoint\.pt is not a checkpoint format GAN Studio recognises \(it "
            r"reads: .*\)", 5),
    Hostile("empty.pt", empty_file, r"empty\.pt is empty or truncated \(0 bytes\)", 5),
]
