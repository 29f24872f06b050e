"""The one tagged-safetensors reader/writer: round trip and every way a file can be wrong."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from safetensors.torch import save_file

from gan_models.errors import CheckpointError
from gan_models.formats import tagged
from gan_models.formats.tagged import (
    MAX_HEADER_BYTES,
    read_tagged,
    read_tagged_meta,
    safetensors_metadata,
    write_tagged,
)

TAG, WHAT = "test_tag", "test file"


def _header_file(path, header: bytes, declared: int | None = None, body: bytes = b""):
    n = len(header) if declared is None else declared
    path.write_bytes(struct.pack("<Q", n) + header + body)
    return path


def test_round_trip_with_shared_and_strided_tensors(tmp_path):
    base = torch.arange(12.0).reshape(3, 4)
    tensors = {"a": base, "a_view": base[1], "t": base.t(), "i": torch.tensor([1, 2])}
    meta = {"name": "x", "nested": {"list": [1, 2.5, None]}}
    path = write_tagged(tmp_path / "f.safetensors", tensors, TAG, meta,
                        extra_metadata={"format": "pt"})
    loaded, loaded_meta = read_tagged(path, TAG, WHAT)
    assert loaded_meta == meta
    assert set(loaded) == set(tensors)
    for name, t in tensors.items():
        assert torch.equal(loaded[name], t)
    assert read_tagged_meta(path, TAG, WHAT) == meta
    assert safetensors_metadata(path)["format"] == "pt"
    assert [p.name for p in tmp_path.iterdir()] == ["f.safetensors"]


def test_extra_metadata_cannot_shadow_the_tag(tmp_path):
    with pytest.raises(ValueError):
        write_tagged(tmp_path / "f.safetensors", {}, TAG, {}, extra_metadata={TAG: "x"})


def test_wrong_tag_names_file_and_kind(tmp_path):
    path = write_tagged(tmp_path / "other.safetensors", {"w": torch.zeros(2)}, "other", {})
    with pytest.raises(CheckpointError, match=r"^other\.safetensors is not a test file; try"):
        read_tagged(path, TAG, WHAT, hint="try this")
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(CheckpointError, match="plain.safetensors is not a test file"):
        read_tagged_meta(plain, TAG, WHAT)


def test_messages_name_the_file_not_its_folder(tmp_path):
    for name, content in [("junk.bin", b"not a safetensors file at all"), ("empty", b"")]:
        (tmp_path / name).write_bytes(content)
        with pytest.raises(CheckpointError, match="not a safetensors file") as info:
            read_tagged(tmp_path / name, TAG, WHAT)
        assert name in str(info.value) and str(tmp_path) not in str(info.value)
    with pytest.raises(CheckpointError, match="missing.safetensors not found") as info:
        read_tagged(tmp_path / "missing.safetensors", TAG, WHAT)
    assert str(tmp_path) not in str(info.value)


def test_truncated_tensors(tmp_path):
    path = write_tagged(tmp_path / "t.safetensors", {"w": torch.randn(64, 64)}, TAG, {"k": 1})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert read_tagged_meta(path, TAG, WHAT) == {"k": 1}  # the header is intact
    with pytest.raises(CheckpointError, match="test file t.safetensors is corrupt or truncated"):
        read_tagged(path, TAG, WHAT)


def test_truncated_header(tmp_path):
    path = write_tagged(tmp_path / "h.safetensors", {"w": torch.zeros(2)}, TAG, {"k": 1})
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(CheckpointError, match="h.safetensors is corrupt or truncated"):
        read_tagged_meta(path, TAG, WHAT)


def test_huge_declared_header_is_refused_before_reading(tmp_path, monkeypatch):
    path = _header_file(tmp_path / "big.safetensors", b"{}", declared=MAX_HEADER_BYTES + 1)
    with pytest.raises(CheckpointError, match="over the limit"):
        safetensors_metadata(path)
    # a declared length within the limit but beyond the file is refused without a read
    monkeypatch.setattr(tagged, "MAX_HEADER_BYTES", 10 * MAX_HEADER_BYTES)
    path = _header_file(tmp_path / "big.safetensors", b"{}", declared=MAX_HEADER_BYTES + 1)
    with pytest.raises(CheckpointError, match="truncated"):
        safetensors_metadata(path)


@pytest.mark.parametrize("header, message", [
    (b"{not json}", "not valid JSON"),
    (b"{\xff\xfe}", "not valid JSON"),
    (b"[" * 2 + b"]" * 2, "not a safetensors file"),  # must open with "{"
    (b'{"__metadata__": {"a": 1}}', "not a string table"),
])
def test_corrupt_headers(tmp_path, header, message):
    path = _header_file(tmp_path / "c.safetensors", header)
    with pytest.raises(CheckpointError, match=message):
        read_tagged_meta(path, TAG, WHAT)


def test_deeply_nested_json(tmp_path):
    depth = 100_000
    deep = b'{"a": ' + b"[" * depth + b"]" * depth + b"}"
    path = _header_file(tmp_path / "deep.safetensors", deep)
    with pytest.raises(CheckpointError, match="metadata nested too deeply"):
        safetensors_metadata(path)
    nested = "[" * depth + "]" * depth
    path = _header_file(tmp_path / "deep_meta.safetensors",
                        json.dumps({"__metadata__": {TAG: nested}}).encode())
    with pytest.raises(CheckpointError, match="deep_meta.safetensors: metadata nested too deeply"):
        read_tagged_meta(path, TAG, WHAT)


def test_meta_must_be_an_object(tmp_path):
    path = _header_file(tmp_path / "m.safetensors",
                        json.dumps({"__metadata__": {TAG: "[1, 2]"}}).encode())
    with pytest.raises(CheckpointError, match="not a JSON object"):
        read_tagged_meta(path, TAG, WHAT)


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "keep.safetensors"
    write_tagged(target, {"w": torch.ones(3)}, TAG, {"v": 1})
    before = target.read_bytes()

    def broken_save(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(tagged, "save_file", broken_save)
    with pytest.raises(OSError, match="disk full"):
        write_tagged(target, {"w": torch.zeros(3)}, TAG, {"v": 2})
    assert [p.name for p in tmp_path.iterdir()] == ["keep.safetensors"]
    assert target.read_bytes() == before
    with pytest.raises(TypeError):
        write_tagged(target, {"w": [1, 2]}, TAG, {})
    assert [p.name for p in tmp_path.iterdir()] == ["keep.safetensors"]
