"""Picking, joining and repeating latents; latent files and PNG frame records."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import tiny_dcgan
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from gan_models import GanStudioError, LatentBatch
from gan_models.latent import concat, pick, repeat
from gan_models.latent_files import (
    PNG_KEY,
    frame_record,
    latents_from_records,
    load_latents,
    read_latent_metadata,
    read_png_record,
    save_latents,
)
from gan_models.motion.animation import keyframes_from_seeds, path_latents


def test_pick_concat_repeat_keep_seeds_and_labels():
    model = tiny_dcgan(num_classes=3, class_names=["a", "b", "c"])
    batch = model.sample_latents(10, 5)
    picked = pick(batch, [0, 2, -1])
    assert picked.seeds == (10, 12, 14) and torch.equal(picked.labels[2], batch.labels[4])
    with pytest.raises(GanStudioError, match="out of range"):
        pick(batch, [5])
    joined = concat(picked, model.sample_latents(30, 2))
    assert joined.seeds == (10, 12, 14, 30, 31) and joined.labels.shape == (5, 3)
    assert repeat(picked, 2).seeds == (10, 12, 14, 10, 12, 14)
    assert repeat(picked, 2, "each latent").seeds == (10, 10, 12, 12, 14, 14)
    with pytest.raises(GanStudioError, match="classes"):
        concat(picked, picked.with_labels(None))


def test_latent_file_round_trip(tmp_path):
    model = tiny_dcgan(num_classes=3, class_names=["a", "b", "c"])
    path = path_latents(keyframes_from_seeds(model, [2**64 - 1, 7], 0.6), 6)
    file = save_latents(path, tmp_path / "path.safetensors", notes={"why": "test"})
    back = load_latents(file)
    assert torch.equal(back.values, path.values) and torch.equal(back.labels, path.labels)
    assert back.space == "z" and back.model_id == model.model_id
    assert back.truncation_psi == 0.6 and back.seeds is None
    assert back.extra["keyframe_seeds"] == [2**64 - 1, 7]
    sampled = model.sample_latents(2**64 - 2, 2)
    assert load_latents(save_latents(sampled, tmp_path / "s.safetensors")).seeds == sampled.seeds
    assert read_latent_metadata(tmp_path / "s.safetensors")["notes"] == {}


def test_non_latent_files_are_refused(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    assert read_latent_metadata(junk) is None
    with pytest.raises(GanStudioError, match="not a GAN Studio latent file"):
        load_latents(junk)


def test_w_plus_latents_survive_a_file(tmp_path):
    batch = LatentBatch(values=torch.randn(3, 4, 8), space="w+", extra={"obj": object()})
    back = load_latents(save_latents(batch, tmp_path / "w.safetensors"))
    assert back.space == "w+" and torch.equal(back.values, batch.values)
    assert back.extra == {}  # entries that are not JSON are dropped, not pickled


def test_png_record_regenerates_the_frame(tmp_path):
    model = tiny_dcgan(num_classes=3, class_names=["a", "b", "c"])
    batch = model.sample_latents(42, 3, 0.7)
    record = frame_record(batch, 1, model.describe())
    assert record["seed"] == 43 and record["model"] == model.describe()
    size = len(json.dumps(record))
    assert size < 600  # z of 16 floats: small; a 512-d z is ~2.7 KB of base64
    info = PngInfo()
    info.add_text(PNG_KEY, json.dumps(record))
    Image.new("RGB", (4, 4)).save(tmp_path / "f.png", pnginfo=info)
    back = latents_from_records([read_png_record(tmp_path / "f.png")])
    assert torch.equal(back.values[0], batch.values[1]) and back.seeds == (43,)
    assert torch.equal(back.labels[0], batch.labels[1]) and back.truncation_psi == 0.7
    assert torch.equal(model.synthesize(back), model.synthesize(batch.select([1])))
    Image.new("RGB", (4, 4)).save(tmp_path / "plain.png")
    with pytest.raises(GanStudioError, match="no GAN Studio frame record"):
        read_png_record(tmp_path / "plain.png")


def test_style_settings_travel_with_the_latents(tmp_path):
    from dataclasses import replace

    from gan_models.motion.animation import interpolate_latents

    batch = replace(LatentBatch(values=torch.randn(2, 8), model_id="m"), truncation_cutoff=4,
                    view=(0.1, -0.2, 15.0))
    assert interpolate_latents(batch, batch, 3).truncation_cutoff == 4
    assert repeat(batch, 2).view == (0.1, -0.2, 15.0)
    back = load_latents(save_latents(batch, tmp_path / "v.safetensors"))
    assert back.truncation_cutoff == 4 and back.view == (0.1, -0.2, 15.0)
    record = latents_from_records([frame_record(batch, 0)])
    assert record.truncation_cutoff == 4 and record.view == (0.1, -0.2, 15.0)
    with pytest.raises(GanStudioError, match="view"):
        concat(batch, replace(batch, view=None))
