import json
import struct

import pytest
import torch
from helpers import tiny_dcgan

import gan_models
from gan_models import CapabilityError, CheckpointError, GanStudioError, detect_format
from gan_models.formats.native import read_metadata


def test_dcgan_shapes_and_range_for_each_resolution():
    for res in (32, 64, 128):
        model = gan_models.GenerativeModel.create(
            "dcgan", {"resolution": res, "z_dim": 8, "base_channels": 4, "max_channels": 16})
        batch = model.sample_latents(0, 2)
        images = model.synthesize(batch)
        assert images.shape == (2, 3, res, res)
        assert images.min() >= -1 and images.max() <= 1


def test_dcgan_rejects_bad_config():
    with pytest.raises(CheckpointError, match="resolution"):
        gan_models.GenerativeModel.create("dcgan", {"resolution": 48})
    with pytest.raises(CheckpointError, match="unknown DCGAN option"):
        gan_models.GenerativeModel.create("dcgan", {"resolution": 32, "depth": 3})
    with pytest.raises(CheckpointError, match="unknown architecture"):
        gan_models.GenerativeModel.create("no-such-gan", {})


def test_capabilities_and_classes():
    model = tiny_dcgan(num_classes=3, class_names=["circle", "square", "triangle"])
    caps = model.capabilities()
    assert caps["num_classes"] == 3 and caps["conditioning"] == "class"
    assert caps["resolution"] == 32 and caps["w_dim"] is None
    assert model.class_index("Square") == 1 and model.class_index("2") == 2
    with pytest.raises(GanStudioError, match="unknown class 'hexagon'.*circle, square"):
        model.class_index("hexagon")
    with pytest.raises(GanStudioError, match="out of range"):
        model.class_index(3)
    with pytest.raises(CapabilityError, match="unconditional"):
        tiny_dcgan().class_index(0)


def test_generation_is_batch_and_chunk_independent():
    model = tiny_dcgan(num_classes=3)
    batch = model.sample_latents(11, 6)
    full = gan_models.generate_in_chunks(model, batch, 6)
    chunked = gan_models.generate_in_chunks(model, batch, 4)
    single = gan_models.generate_in_chunks(model, model.sample_latents(13, 1), 1)
    assert full.shape == (6, 32, 32, 3) and full.dtype == torch.float32
    assert 0 <= float(full.min()) and float(full.max()) <= 1
    assert torch.allclose(full, chunked, atol=1e-6)
    assert torch.allclose(full[2], single[0], atol=1e-6)


def test_class_changes_the_image():
    model = tiny_dcgan(num_classes=3)
    batch = model.sample_latents(1, 1)
    a = model.synthesize(batch.with_labels(torch.tensor([[1.0, 0, 0]])))
    b = model.synthesize(batch.with_labels(torch.tensor([[0, 0, 1.0]])))
    assert (a - b).abs().mean() > 1e-4


def test_wrong_latent_size_is_refused():
    model = tiny_dcgan()
    batch = gan_models.LatentBatch(torch.zeros(2, 99))
    with pytest.raises(GanStudioError, match="do not fit"):
        model.synthesize(batch)
    with pytest.raises(CapabilityError, match="style-based"):
        model.synthesize(gan_models.LatentBatch(torch.zeros(2, 16), space="w"))


def test_native_round_trip(tmp_path):
    model = tiny_dcgan(num_classes=3, class_names=["a", "b", "c"])
    model.metadata["provenance"] = {"steps": 0, "data": "none"}
    path = gan_models.save_model(model, tmp_path / "m.safetensors")
    assert detect_format(path) == "safetensors"
    meta = read_metadata(path)
    assert meta["architecture"] == "dcgan" and meta["class_names"] == ["a", "b", "c"]
    assert meta["provenance"]["steps"] == 0
    loaded = gan_models.load_model(path)
    batch = model.sample_latents(5, 3)
    assert torch.equal(model.synthesize(batch), loaded.synthesize(batch))
    assert set(loaded.networks) == {"generator", "discriminator"}
    assert loaded.model_id == gan_models.formats.native.file_sha256(path)[:16]


def test_generator_only_save(tmp_path):
    model = tiny_dcgan()
    path = gan_models.save_model(model, tmp_path / "g.safetensors", roles=("generator",))
    assert set(gan_models.load_model(path).networks) == {"generator"}


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path):
    model = tiny_dcgan()
    target = tmp_path / "m.safetensors"
    target.write_bytes(b"previous")
    gan_models.save_model(model, target)
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]
    gan_models.load_model(target)


@pytest.mark.parametrize("content, message", [
    (b"", "empty or truncated"),
    (b"\x80\x04\x95" + b"\x00" * 20, "pickle"),
    (b"hello world, not a model", "not a checkpoint format"),
])
def test_bad_files_are_refused_clearly(tmp_path, content, message):
    path = tmp_path / "bad.pkl"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        gan_models.load_model(path)


def test_truncated_safetensors(tmp_path):
    path = gan_models.save_model(tiny_dcgan(), tmp_path / "m.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        gan_models.load_model(path)


def test_safetensors_without_our_metadata(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "sd.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match="without GAN Studio metadata"):
        gan_models.load_model(path)


def test_newer_format_and_mismatched_weights(tmp_path):
    from safetensors.torch import save_file

    meta = {"format": "gan-studio", "format_version": 99, "architecture": "dcgan", "config": {}}
    path = tmp_path / "new.safetensors"
    save_file({"generator.x": torch.zeros(1)}, str(path), metadata={"gan_studio": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="Update the pack"):
        gan_models.load_model(path)
    meta["format_version"] = 1
    save_file({"generator.x": torch.zeros(1)}, str(path), metadata={"gan_studio": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="weights do not fit"):
        gan_models.load_model(path)


def test_corrupt_header(tmp_path):
    path = tmp_path / "c.safetensors"
    path.write_bytes(struct.pack("<Q", 10) + b"{not json}")
    with pytest.raises(CheckpointError):
        gan_models.load_model(path)


def test_cli_generate(tmp_path):
    from gan_models.__main__ import main

    path = gan_models.save_model(tiny_dcgan(num_classes=2, class_names=["x", "y"]), tmp_path / "m.safetensors")
    assert main(["generate", str(path), "--seeds", "3-4", "--out", str(tmp_path / "o"), "--class", "y"]) == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["seed000003.png", "seed000004.png"]
    # One seed grammar for nodes and CLI: a descending range is a list in that order, and
    # what the grammar cannot read is refused with exit code 2.
    assert main(["generate", str(path), "--seeds", "4-x", "--out", str(tmp_path / "p")]) == 2
    assert main(["generate", str(path), "--seeds", "4-3", "--out", str(tmp_path / "d")]) == 0
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["seed000003.png", "seed000004.png"]


def test_output_memory_guard():
    from gan_models.model import ensure_output_fits

    ensure_output_fits(16, 64, free_bytes=2**30)
    with pytest.raises(GanStudioError, match="smaller batch"):
        ensure_output_fits(4096, 1024, free_bytes=16 * 2**30)


def test_half_precision_storage(tmp_path):
    model = tiny_dcgan(num_classes=2)
    path = gan_models.save_model(model, tmp_path / "h.safetensors", half=True)
    full = gan_models.save_model(model, tmp_path / "f.safetensors")
    assert path.stat().st_size < 0.6 * full.stat().st_size
    loaded = gan_models.load_model(path)
    assert next(loaded.generator.parameters()).dtype == torch.float32
    batch = model.sample_latents(2, 2)
    assert torch.allclose(model.synthesize(batch), loaded.synthesize(batch), atol=2e-2)


def test_saved_files_get_the_usual_permissions(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        path = gan_models.save_model(tiny_dcgan(), tmp_path / "p.safetensors")
    finally:
        os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o644
