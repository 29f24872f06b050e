"""The capability contract: toy translate and text families load through the one loader and
answer for what they can and cannot do."""

from __future__ import annotations

import pytest
import torch
from toy_families import TEXT, TRANSLATOR, make_text_model, make_translator, register_toys

import gan_models
from gan_models.errors import CapabilityError, GanStudioError
from gan_models.formats import importers
from gan_models.translation import translate_images

register_toys()


def test_every_capability_has_a_role_and_the_model_lists_its_own():
    from gan_models.model import CAPABILITIES, ROLE_OF

    assert set(CAPABILITIES) == set(ROLE_OF)
    assert make_translator().abilities == {"translate"}
    assert make_text_model().abilities == {"generate"}


def test_translator_round_trips_through_the_loader(tmp_path):
    model = make_translator(seed=3)
    path = gan_models.save_model(model, tmp_path / "toy.safetensors")
    loaded = gan_models.load_model(path)
    assert loaded.architecture == TRANSLATOR and loaded.name == "toy"
    assert loaded.conditioning == "image" and loaded.capabilities()["capabilities"] == ["translate"]
    x = torch.rand(2, 3, 8, 10) * 2 - 1
    torch.testing.assert_close(loaded.translate(x), model.translate(x))


def test_translate_images_keeps_size_channels_strength_and_mask():
    model = make_translator()
    images = torch.rand(2, 15, 21, 3)  # odd sides: padded to the multiple, cropped back
    out = translate_images(model, images)
    assert out.shape == (2, 15, 21, 3) and 0 <= float(out.min()) and float(out.max()) <= 1
    torch.testing.assert_close(translate_images(model, images, strength=0.0), images)
    gray_alpha = torch.rand(1, 16, 16, 2)
    assert translate_images(model, gray_alpha).shape == (1, 16, 16, 3)
    mask = torch.zeros(1, 15, 21)
    mask[:, :, :10] = 1
    masked = translate_images(model, images, mask=mask)
    torch.testing.assert_close(masked[..., 10:, :], images[..., 10:, :])
    torch.testing.assert_close(masked[..., :10, :], out[..., :10, :])
    with pytest.raises(GanStudioError, match="NaN"):
        translate_images(model, images, mask=torch.full((1, 15, 21), float("nan")))


def test_a_model_refuses_what_it_cannot_do_in_one_line():
    translator, text, dcgan = make_translator(), make_text_model(), gan_models.GenerativeModel.create(
        "dcgan", {"resolution": 32, "z_dim": 8, "base_channels": 8, "max_channels": 16})
    with pytest.raises(CapabilityError, match=r"cannot generate .*it can: translate") as err:
        translator.sample_latents(0, 1)
    assert "\n" not in str(err.value) and TRANSLATOR in str(err.value)
    with pytest.raises(CapabilityError, match="cannot translate .*it can: generate"):
        translate_images(dcgan, torch.rand(1, 8, 8, 3))
    with pytest.raises(CapabilityError, match="cannot encode"):
        text.require("encode")
    with pytest.raises(CapabilityError, match="takes no class condition: it is text-conditioned"):
        text.class_index("cat")
    with pytest.raises(CapabilityError, match="takes no text condition: it is unconditional"):
        dcgan.encode_text(["cat"])


def test_text_model_keeps_its_vocabulary_and_generates_from_prompts(tmp_path):
    model = make_text_model(seed=1)
    loaded = gan_models.load_model(gan_models.save_model(model, tmp_path / "words.safetensors"))
    assert loaded.conditioning == "text" and loaded.architecture == TEXT
    assert loaded.networks["text_encoder"].vocab == model.networks["text_encoder"].vocab
    torch.testing.assert_close(loaded.encode_text(["red circle"]), model.encode_text(["red circle"]))
    batch = loaded.sample_latents(5, 2)
    with pytest.raises(GanStudioError, match="add a Text Condition node"):
        loaded.synthesize(batch)
    red = loaded.synthesize(batch.with_labels(loaded.encode_text(["red circle"] * 2)))
    cat = loaded.synthesize(batch.with_labels(loaded.encode_text(["smiling cat"] * 2)))
    assert red.shape == (2, 3, 16, 16) and (red - cat).abs().mean() > 0.01
    assert loaded.networks["text_encoder"].unknown_words(["red rocket", "cat"]) == ["rocket"]
    with pytest.raises(GanStudioError, match="no word this model knows"):
        loaded.encode_text(["rocket ship"])


def test_importers_recognise_content_not_extension(tmp_path):
    names = [i.name for i in importers()]
    assert {"gan-studio", "nvlabs-pkl", "rosinality-pt"} <= set(names)
    path = gan_models.save_model(make_translator(), tmp_path / "looks_like.pkl")
    assert gan_models.load_model(path).architecture == TRANSLATOR
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(gan_models.CheckpointError, match="GAN Studio .safetensors"):
        gan_models.load_model(junk)
