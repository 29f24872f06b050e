"""Budgets before allocation (gan_models/formats/budgets.py): every hostile file is refused
with its exact message, fast, and the checks themselves never walk more than their limit."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_foreign import TINY_G_KW, write_rosinality_checkpoint
from fixtures_hostile import HOSTILE, shared_list, tiny_stylegan2

import gan_models
from gan_models import registry
from gan_models.errors import CheckpointError
from gan_models.formats import budgets
from gan_models.formats.budgets import (
    check_config,
    check_model_metadata,
    check_network_bytes,
    check_zip,
    describe,
    load_json,
    name_list,
    plain_data,
)

TESTS = Path(__file__).resolve().parents[1]
AS_LIMIT_GIB = 8  # the subprocess that loads the hostile files runs under this limit

_LOAD_ALL = f"""
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, ({AS_LIMIT_GIB} << 30, {AS_LIMIT_GIB} << 30))
sys.path.insert(0, {str(TESTS)!r})
import conftest  # the library and the test helpers, as pytest sees them
import gan_models
from fixtures_hostile import HOSTILE
out = {{}}
for case in HOSTILE:
    path = case.build(__import__("pathlib").Path(sys.argv[1]) / case.file)
    start = time.monotonic()
    try:
        gan_models.load_model(path)
        message = "loaded"
    except gan_models.errors.CheckpointError as exc:
        message = str(exc)
    except BaseException as exc:
        message = f"raw {{type(exc).__name__}}: {{str(exc)[:300]}}"
    out[case.file] = [message, time.monotonic() - start]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def refusals(tmp_path_factory):
    """{file: (message, seconds)} of every HOSTILE case, loaded in one subprocess under an
    address-space limit, so a regression fails instead of eating the machine."""
    folder = tmp_path_factory.mktemp("hostile")
    run = subprocess.run([sys.executable, "-c", _LOAD_ALL, str(folder)], capture_output=True,
                         text=True, timeout=300, cwd=TESTS.parent,
                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", HOSTILE, ids=lambda c: c.file)
def test_hostile_file_is_refused_with_its_message(refusals, case):
    message, seconds = refusals[case.file]
    assert re.fullmatch(case.message, message), message
    assert seconds < case.seconds


# --- plain_data: bounded conversion of untrusted structures -------------------------------
def test_plain_data_counts_shared_references_each_time():
    blob = shared_list(30)  # 2**30 leaves through 31 lists
    start = time.monotonic()
    with pytest.raises(CheckpointError, match=r"^f\.pt: args holds more than 100 values "
                                              r"\(shared references counted each time\), over "
                                              r"the limit of 100$"):
        plain_data({"blob": blob}, "f.pt", "args", max_items=100)
    assert time.monotonic() - start < 0.5


def test_plain_data_depth_keys_ints_and_strings():
    deep: list = []
    for _ in range(40):
        deep = [deep]
    with pytest.raises(CheckpointError, match="nests deeper than 32 levels, over the limit"):
        plain_data(deep, "f", "kwargs")
    with pytest.raises(CheckpointError, match="has a key of type tuple, not a name"):
        plain_data({(1, 2): 3}, "f", "kwargs")
    with pytest.raises(CheckpointError, match="an integer of 101 bits, over the limit of 64"):
        plain_data({"x": 1 << 100}, "f", "kwargs")
    with pytest.raises(CheckpointError, match="a string in kwargs is 1048577 characters"):
        plain_data(["x" * (budgets.MAX_TEXT_CHARS + 1)], "f", "kwargs")


def test_plain_data_keeps_the_values_loaders_need():
    value = {"a": (1, 2.5, None, True), "b": np.int64(3), "c": np.float32(0.5),
             "d": np.array([1, 2]), "e": torch.tensor([1.0]), "f": torch.float16,
             "g": np.zeros((100, 100)), 4: "four", "h": {1, 2}}
    out = plain_data(value, "f", "kwargs")
    assert out == {"a": [1, 2.5, None, True], "b": 3, "c": 0.5, "d": [1, 2], "e": [1.0],
                   "f": "torch.float16", "g": "<ndarray [100, 100]>", "4": "four",
                   "h": [1, 2]}
    json.dumps(out)


class _Loud:
    def __repr__(self):  # pragma: no cover - must never be called
        raise AssertionError("repr of an untrusted object")


def test_messages_never_repr_untrusted_values():
    assert plain_data([_Loud()], "f", "x") == ["<_Loud>"]
    assert describe({"blob": shared_list(30)}) == "<dict>"
    assert describe({"a": 1}) == '{"a": 1}'
    assert name_list({"b": 1, ("t",): 2, "a": 3}) == "<tuple>, a, b"
    assert name_list({str(i): i for i in range(20)}).endswith(" ...")


# --- JSON ----------------------------------------------------------------------------------
def test_load_json_limits():
    with pytest.raises(CheckpointError, match=r"^f: metadata nested too deeply \(x nests "
                                              r"deeper than the limit of 64 levels\)$"):
        load_json("[" * 65 + "]" * 65, "f", "x")
    assert load_json("[" * 64 + "]" * 64, "f", "x")
    with pytest.raises(CheckpointError, match="metadata nested too deeply"):
        load_json("[" * 100_000 + "]" * 100_000, "f", "x")
    with pytest.raises(CheckpointError, match=r"the size of x is 11 bytes, over the limit "
                                              r"of 10 bytes"):
        load_json('{"a": 1234}', "f", "x", max_bytes=10)
    with pytest.raises(CheckpointError, match="f is corrupt: x is not valid JSON"):
        load_json("{", "f", "x")


# --- configs and what they build -------------------------------------------------------------
@pytest.mark.parametrize("config, message", [
    ({"generator": {"img_resolution": 8192}}, r"f: config\.generator\.img_resolution is 8192 "
                                              r"px, over the limit of 4096 px"),
    ({"resolution": 64, "z_dim": 100_000}, r"f: config\.z_dim is 100000, over the limit of "
                                           r"8192"),
    ({"num_classes": 10**6}, r"f: config\.num_classes is 1000000, over the limit of 100000"),
    ({"mapping_kwargs": {"num_layers": 10**5}},
     r"f: config\.mapping_kwargs\.num_layers is 100000, over the limit of 256"),
    ({"codebook_size": 1 << 30}, r"f: config\.codebook_size is 1073741824, over the limit of "
                                 r"1048576"),
    ({"z_dim": -3}, r"f: config\.z_dim is -3, below 0"),
    ({"resolution": float("nan")}, r"f: config\.resolution is nan px, over the limit of 4096 "
                                   r"px"),
    ({"x": shared_list(30)}, r"f: config holds more than 100000 values"),
])
def test_declared_sizes_of_configs(config, message):
    with pytest.raises(CheckpointError, match=message):
        check_config(config, "f")


def test_legit_configs_pass():
    check_config({"generator": {"z_dim": 512, "w_dim": 512, "c_dim": 0, "img_resolution": 1024,
                                "img_channels": 3, "channel_base": 32768, "channel_max": 512,
                                "mapping_kwargs": {"num_layers": 8, "lr_multiplier": 0.01},
                                "resample_filter": [1, 3, 3, 1]}}, "f")


def test_registry_counts_bytes_on_the_meta_device_before_building():
    config = {"generator": {"z_dim": 8, "w_dim": 8, "c_dim": 0, "img_resolution": 1024,
                            "img_channels": 3, "channel_base": 1 << 20, "channel_max": 4096}}
    start = time.monotonic()
    with pytest.raises(CheckpointError, match=r"^f\.pt: architecture 'stylegan2' would need "
                                              r"\d+ bytes of weights and buffers, over the "
                                              r"limit of 4294967296 bytes$"):
        registry.build("stylegan2", config, source="f.pt")
    assert time.monotonic() - start < 5
    small = {"generator": {"z_dim": 8, "w_dim": 8, "c_dim": 0, "img_resolution": 16,
                           "img_channels": 3, "channel_base": 128, "channel_max": 16}}
    registry.build("stylegan2", small, source="f.pt", file_bytes=100)  # within the slack
    with pytest.raises(CheckpointError, match=r"the config of 'stylegan2' is not an object"):
        registry.build("stylegan2", [1], source="f.pt")
    with pytest.raises(CheckpointError, match=r"^f\.pt: unknown architecture 'nope'"):
        registry.build("nope", {}, source="f.pt")


def test_network_bytes_against_the_file():
    check_network_bytes(100, "f", "x", file_bytes=1)
    with pytest.raises(CheckpointError, match=r"a 10-byte file may build 8 bytes per byte "
                                              r"plus 67108864"):
        check_network_bytes(budgets.NETWORK_BYTES_SLACK + 81, "f", "x", file_bytes=10)


def test_model_metadata_types():
    good = {"format_version": 1, "architecture": "dcgan", "config": {}, "class_names": ["a"]}
    check_model_metadata(good, "f")
    for change, message in [({"format_version": "x"}, "'format_version' is a string, not a "
                                                      "version number"),
                            ({"architecture": "a" * 300}, "'architecture' is too long"),
                            ({"architecture": None}, "'architecture' is missing"),
                            ({"config": "x"}, "'config' is a string"),
                            ({"class_names": 7}, "'class_names' is a number"),
                            ({"class_names": [1]}, "'class_names' is a list, not a list of "
                                                   "names"),
                            ({"class_names": ["x" * 300]}, "the longest class name is 300 "
                                                           "characters, over the limit of 256"),
                            ({"class_names": ["a"] * 100_001}, "the number of class_names is "
                                                               "100001, over the limit")]:
        with pytest.raises(CheckpointError, match=message):
            check_model_metadata({**good, **change}, "f")


# --- zips and tensors --------------------------------------------------------------------------
def test_check_zip_allows_torch_saves_and_small_compressed_members(tmp_path):
    path = tmp_path / "ok.pt"
    torch.save({"w": torch.randn(1000)}, path)
    assert any(i.filename.endswith("data.pkl") for i in check_zip(path))
    small = tmp_path / "small.zip"
    with zipfile.ZipFile(small, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a/data.pkl", bytes(500_000))  # within the slack despite its ratio
    check_zip(small)
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(CheckpointError, match="bad.zip is corrupt: not a readable zip"):
        check_zip(tmp_path / "bad.zip")


def test_a_zero_stride_view_may_not_outgrow_its_storage():
    budgets.check_tensor_view(torch.zeros(4)[1:3], "f", "t")
    with pytest.raises(CheckpointError, match=r"f: tensor t declares 400 bytes over a storage "
                                              r"of 4 bytes"):
        budgets.check_tensor_view(torch.zeros(1).expand(100), "f", "t")


def test_working_checkpoints_still_load(tmp_path):
    gen = tiny_stylegan2()
    path = write_rosinality_checkpoint(tmp_path / "ok.pt", gen)
    assert gan_models.load_model(path).metadata["provenance"]["args"]["size"] == 16
    legacy = write_rosinality_checkpoint(tmp_path / "legacy.pt", gen, legacy=True)
    config = gan_models.load_model(legacy).config["generator"]
    assert config["img_resolution"] == TINY_G_KW["img_resolution"]
