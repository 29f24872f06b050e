"""Training datasets: folders, IMAGE batches, image modes, fitting, errors, the step sampler."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from gan_models import GanStudioError
from gan_models.training import dataset_from_images, load_image_folder
from gan_models.training.sampler import StepSampler
from gan_models.training.shapes import write_shapes_folder


def test_class_subfolders_make_a_conditional_dataset(tmp_path):
    write_shapes_folder(tmp_path / "shapes", per_class=3, size=20)
    ds = load_image_folder(tmp_path / "shapes", 16)
    assert ds.class_names == ("circle", "square", "triangle")
    assert ds.images.shape == (9, 3, 16, 16) and ds.images.dtype == torch.uint8
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    x, c = ds.batch(torch.tensor([0, 8]), None)
    assert x.shape == (2, 3, 16, 16) and -1 <= x.min() and x.max() <= 1
    assert c.tolist() == [[1, 0, 0], [0, 0, 1]]


def test_loose_images_make_an_unconditional_dataset(tmp_path):
    write_shapes_folder(tmp_path / "flat", per_class=2, size=16, conditional=False)
    (tmp_path / "flat" / "notes.txt").write_text("not an image, ignored")
    (tmp_path / "flat" / "empty_subfolder").mkdir()
    ds = load_image_folder(tmp_path / "flat", 16)
    assert len(ds) == 6 and ds.labels is None and ds.num_classes == 0


def test_transparent_pixels_take_the_background_colour(tmp_path):
    folder = tmp_path / "rgba"
    folder.mkdir()
    img = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    img.putpixel((0, 0), (255, 0, 0, 255))
    img.save(folder / "a.png")
    ds = load_image_folder(folder, 8, background="#00ff00")
    pixels = ds.images[0].permute(1, 2, 0)
    assert pixels[0, 0].tolist() == [255, 0, 0]
    assert pixels[4, 4].tolist() == [0, 255, 0]


def test_gray_palette_and_16bit_images_become_rgb(tmp_path):
    folder = tmp_path / "modes"
    folder.mkdir()
    Image.new("L", (8, 8), 128).save(folder / "gray.png")
    pal = Image.new("P", (8, 8), 0)
    pal.putpalette([10, 20, 30] + [0] * 765)
    pal.save(folder / "palette.png")
    Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16)).save(folder / "deep.png")
    ds = load_image_folder(folder, 8)
    colours = {tuple(ds.images[i, :, 3, 3].tolist()) for i in range(3)}
    assert colours == {(128, 128, 128), (10, 20, 30), (255, 255, 255)}


@pytest.mark.parametrize("fit, corner", [("crop", (255, 0, 0)), ("pad", (0, 0, 255))])
def test_non_square_images_are_cropped_or_padded(tmp_path, fit, corner):
    folder = tmp_path / fit
    folder.mkdir()
    Image.new("RGB", (32, 16), (255, 0, 0)).save(folder / "wide.png")
    ds = load_image_folder(folder, 8, fit=fit, background="#0000ff")
    assert ds.images.shape[-2:] == (8, 8)
    assert tuple(ds.images[0, :, 0, 0].tolist()) == corner  # padding shows the background
    assert tuple(ds.images[0, :, 4, 4].tolist()) == (255, 0, 0)


def test_empty_folder_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(GanStudioError, match="no images found"):
        load_image_folder(tmp_path / "empty", 16)
    with pytest.raises(GanStudioError, match="not found"):
        load_image_folder(tmp_path / "missing", 16)


def test_corrupt_file_is_named(tmp_path):
    write_shapes_folder(tmp_path / "data", per_class=2, size=16)
    (tmp_path / "data" / "square" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(GanStudioError, match="square/broken.png"):
        load_image_folder(tmp_path / "data", 16)


def test_truncated_file_is_named(tmp_path):
    folder = tmp_path / "trunc"
    folder.mkdir()
    Image.effect_noise((64, 64), 50).convert("RGB").save(folder / "cut.jpg", quality=90)
    data = (folder / "cut.jpg").read_bytes()
    (folder / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(GanStudioError, match="cut.jpg"):
        load_image_folder(folder, 16)


def test_loose_images_beside_class_folders_is_an_error(tmp_path):
    write_shapes_folder(tmp_path / "mixed", per_class=2, size=16)
    Image.new("RGB", (16, 16)).save(tmp_path / "mixed" / "stray.png")
    with pytest.raises(GanStudioError, match="both loose images"):
        load_image_folder(tmp_path / "mixed", 16)


def test_image_batch_from_inference_mode_becomes_a_trainable_dataset():
    with torch.inference_mode():
        graph_images = torch.rand(5, 12, 20, 3)
        ds = dataset_from_images(graph_images, 8, fit="stretch", xflip=True)
    assert not ds.images.is_inference()
    assert ds.images.shape == (5, 3, 8, 8) and ds.xflip and ds.labels is None
    with pytest.raises(GanStudioError, match="IMAGE batch"):
        dataset_from_images(torch.rand(4, 4, 3), 8)


def test_resizing_a_dataset_keeps_its_labels(tmp_path):
    write_shapes_folder(tmp_path / "s", per_class=2, size=32)
    ds = load_image_folder(tmp_path / "s", 32)
    small = ds.at_resolution(16)
    assert small.images.shape == (6, 3, 16, 16) and small.labels is ds.labels
    assert small.fingerprint != ds.fingerprint


def test_sampler_is_deterministic_covers_epochs_and_shards_cleanly():
    a, b = StepSampler(10, 4, seed=3, xflip=True), StepSampler(10, 4, seed=3, xflip=True)
    steps = [a.global_batch(s) for s in range(5)]  # 20 positions = exactly 2 epochs
    assert all(torch.equal(i, b.global_batch(s)[0]) for s, (i, _) in enumerate(steps))
    stream = torch.cat([i for i, _ in steps])
    assert sorted(stream[:10].tolist()) == list(range(10))
    assert sorted(stream[10:].tolist()) == list(range(10))
    assert not torch.equal(stream[:10], stream[10:])  # a new order each epoch
    # Random access (as after a resume) gives the same batch as sequential access.
    assert torch.equal(StepSampler(10, 4, 3, True).global_batch(3)[0], steps[3][0])
    flips = torch.cat([f for _, f in steps])
    assert flips.dtype == torch.bool and 0 < int(flips.sum()) < 20
