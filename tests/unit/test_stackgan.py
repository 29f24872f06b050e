"""StackGAN: conditioning augmentation's KL and the matching-aware loss on known inputs,
captioned folders (.txt, JSON, CSV), save/load keeps the vocabulary, unknown-only prompts,
the CLIP pooled path, resume bit for bit, and a few hundred steps on procedural captioned
shapes ("red circle", "blue square", ...) teaching colour and shape well above chance."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import torch
from helpers import assert_resume_is_bit_exact
from PIL import Image, ImageDraw

import gan_models
from gan_models.architectures.stackgan import conditioning_augmentation, kl_divergence
from gan_models.errors import GanStudioError
from gan_models.latent.text import pooled_rows, text_input_of
from gan_models.training import Trainer, make_recipe
from gan_models.training.captions import CaptionedDataset, load_captioned_folder
from gan_models.training.stackgan_recipe import matching_aware_d_loss

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py

COLOURS = {"red": (220, 30, 30), "green": (30, 180, 30), "blue": (30, 30, 220)}
SHAPES = ("circle", "square", "triangle")
TINY = {"resolution": 32, "embed_dim": 16, "word_dim": 16, "noise_dim": 8, "ca_dim": 8,
        "base_channels": 16, "stage2_channels": 16, "res_blocks": 1, "d_channels": 16}


def draw(colour: str, shape: str, size: int, rng: random.Random) -> np.ndarray:
    img = Image.new("RGB", (size, size), (255, 255, 255))
    d = ImageDraw.Draw(img)
    r = rng.uniform(0.3, 0.4) * size
    cx, cy = size / 2 + rng.uniform(-2, 2), size / 2 + rng.uniform(-2, 2)
    fg = COLOURS[colour]
    if shape == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fg)
    elif shape == "square":
        d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fg)
    else:
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fg)
    return np.asarray(img)


@pytest.fixture(scope="module")
def shapes() -> CaptionedDataset:
    rng = random.Random(0)
    images, captions = [], []
    for _ in range(8):
        for colour in COLOURS:
            for shape in SHAPES:
                images.append(draw(colour, shape, 32, rng))
                captions.append(f"{colour} {shape}")
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return CaptionedDataset(images=x, captions=tuple(captions), source="shapes")


def trainer(data, batch=16, seed=0, **options) -> Trainer:
    return Trainer(make_recipe("stackgan", {**TINY, **options}), data, batch=batch, seed=seed)


# --- the losses on known inputs ----------------------------------------------------------------
def test_kl_of_conditioning_augmentation():
    assert float(kl_divergence(torch.zeros(4, 3), torch.zeros(4, 3))) == 0.0
    mu = torch.tensor([[1.0, -2.0]])
    logvar = torch.tensor([[0.0, math.log(4.0)]])
    # KL(N(mu, s^2) || N(0, 1)) = (s^2 + mu^2 - 1 - log s^2) / 2 per dimension, then the mean
    per_dim = [(1 + 1 - 1 - 0) / 2, (4 + 4 - 1 - math.log(4.0)) / 2]
    assert float(kl_divergence(mu, logvar)) == pytest.approx(sum(per_dim) / 2, rel=1e-6)
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, torch.exp(0.5 * logvar)),
        torch.distributions.Normal(torch.zeros(1, 2), torch.ones(1, 2))).mean()
    assert float(kl_divergence(mu, logvar)) == pytest.approx(float(ref), rel=1e-6)
    # The reparameterised sample: mu + sigma * eps.
    eps = torch.tensor([[0.5, -1.0]])
    assert torch.allclose(conditioning_augmentation(mu, logvar, eps), torch.tensor([[1.5, -4.0]]))


def test_matching_aware_loss():
    zero = torch.zeros(3)
    # All logits 0: real, and half of each of wrong and fake, each log 2.
    assert float(matching_aware_d_loss("ns", zero, zero, zero)) == pytest.approx(2 * math.log(2))
    real, wrong, fake = torch.tensor([2.0]), torch.tensor([-1.0]), torch.tensor([3.0])
    soft = lambda x: math.log1p(math.exp(x))  # noqa: E731
    expected = soft(-2.0) + 0.5 * (soft(-1.0) + soft(3.0))
    assert float(matching_aware_d_loss("ns", real, wrong, fake)) == pytest.approx(expected)
    # Real image + wrong text is penalised like a fake: a high wrong logit costs more.
    assert matching_aware_d_loss("ns", real, fake, fake) > matching_aware_d_loss(
        "ns", real, wrong, fake)
    assert float(matching_aware_d_loss("hinge", real, wrong, fake)) == pytest.approx(
        0.0 + 0.5 * (0.0 + 4.0))


# --- captioned folders ---------------------------------------------------------------------------
def _write_images(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(1)
    for name in names:
        Image.fromarray(draw("red", "circle", 16, rng)).save(folder / name)


def test_captioned_folders(tmp_path):
    beside = tmp_path / "beside"
    _write_images(beside, ["a.png", "b.png"])
    (beside / "a.txt").write_text("red circle\n")
    (beside / "b.txt").write_text("  blue   square ")
    data = load_captioned_folder(beside, 16)
    assert data.captions == ("red circle", "blue square") and data.kind == "captioned"
    x, idx = data.batch(torch.tensor([1, 0]), None)
    assert x.shape == (2, 3, 16, 16) and idx.tolist() == [1, 0]

    mapped = tmp_path / "mapped"
    _write_images(mapped, ["a.png", "b.png"])
    (mapped / "captions.json").write_text(json.dumps({"a.png": "green", "b.png": "cat face"}))
    assert load_captioned_folder(mapped, 16).captions == ("green", "cat face")

    table = tmp_path / "table"
    _write_images(table, ["a.png", "b.png"])
    (table / "captions.csv").write_text("file,caption\na.png,\"red, round\"\nb.png,blue\n")
    assert load_captioned_folder(table, 16).captions == ("red, round", "blue")

    (beside / "b.txt").unlink()
    with pytest.raises(GanStudioError, match="b.png has no caption"):
        load_captioned_folder(beside, 16)


def test_recipe_refuses_uncaptioned_data(tmp_path):
    from gan_models.training import dataset_from_images

    plain = dataset_from_images(torch.rand(4, 16, 16, 3), 32)
    with pytest.raises(GanStudioError, match="captioned images"):
        trainer(plain)


# --- the model file --------------------------------------------------------------------------------
def test_save_load_keeps_vocabulary(shapes, tmp_path):
    t = trainer(shapes)
    t.train_steps(1)
    assert t.recipe.options["vocab"] == sorted({"red", "green", "blue", *SHAPES})
    exported = t.export_model()
    path = gan_models.save_model(exported, tmp_path / "m.safetensors",
                                 roles=("generator", "text_encoder"))
    model = gan_models.load_model(path)
    assert model.conditioning == "text" and model.resolution == 32
    assert model.networks["text_encoder"].vocab == t.recipe.options["vocab"]
    assert model.config["text_input"] == "words" == text_input_of(model)
    z = model.sample_latents(3, 2)
    with torch.no_grad():
        a = model.synthesize(z.with_labels(model.encode_text(["red circle", "blue square"])))
        e = exported.networks["text_encoder"].encode_text(["red circle", "blue square"])
        b = exported.networks["generator"](z.values, e)
    assert torch.allclose(a, b, atol=1e-6)
    # Unknown words are reported and ignored; a prompt of unknown words only is refused.
    assert model.networks["text_encoder"].unknown_words(["red zebra"]) == ["zebra"]
    with pytest.raises(GanStudioError, match="no word this model knows"):
        model.encode_text(["purple zebra"])


def test_clip_pooled_models(shapes):
    words_model = trainer(shapes).export_model()
    with pytest.raises(GanStudioError, match="its own word encoder; type the prompt"):
        pooled_rows(words_model, [torch.randn(1, 768)], 2)
    config = {**TINY, "text_input": "clip_pooled", "clip_dim": 12}
    clip_model = gan_models.GenerativeModel.create("stackgan", config)
    assert clip_model.conditioning == "text" and text_input_of(clip_model) == "clip_pooled"
    rows = pooled_rows(clip_model, [torch.randn(1, 12), torch.randn(1, 12)], 3)
    assert rows.shape == (3, 16) and torch.equal(rows[0], rows[2])
    images = clip_model.synthesize(clip_model.sample_latents(0, 3).with_labels(rows))
    assert images.shape == (3, 3, 32, 32)
    with pytest.raises(GanStudioError, match="width 12"):
        pooled_rows(clip_model, [torch.randn(1, 768)], 1)
    with pytest.raises(GanStudioError, match="CLIP pooled embeddings"):
        clip_model.encode_text(["red circle"])


# --- training ----------------------------------------------------------------------------------------
def test_resume_is_bit_exact(shapes, tmp_path):
    resumed = assert_resume_is_bit_exact(
        lambda: trainer(shapes, batch=8, seed=3, ema_kimg=0.05), shapes, tmp_path / "snaps", 2, 2)
    # A copy made without the data (new learning rates) keeps the tokenised captions.
    resumed.change_learning_rates({"lr_g": 1e-4})
    resumed.train_steps(1)


def _fill(img: torch.Tensor) -> float:
    """Foreground pixels / bounding-box pixels: square ~1, circle ~pi/4, triangle ~1/2."""
    fg = img.min(0).values < 0.6
    if int(fg.sum()) < 4:
        return 0.0
    ys, xs = torch.nonzero(fg, as_tuple=True)
    box = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
    return float(fg.sum()) / float(box)


def _shape_of(img: torch.Tensor) -> str:
    fill = _fill(img)
    return "square" if fill > 0.9 else "circle" if fill > 0.65 else "triangle"


def _accuracy(model, per_prompt: int = 20) -> tuple[float, float]:
    colour_ok = shape_ok = n = 0
    for colour in COLOURS:
        for shape in SHAPES:
            e = model.encode_text([f"{colour} {shape}"]).expand(per_prompt, -1)
            with torch.no_grad():
                x = (model.synthesize(model.sample_latents(1, per_prompt).with_labels(e)) + 1) / 2
            for img in x:
                fg = img.min(0).values < 0.6
                mean = img[:, fg].mean(1) if bool(fg.any()) else img.mean((1, 2))
                colour_ok += int(mean.argmax()) == list(COLOURS).index(colour)
                shape_ok += _shape_of(img) == shape
                n += 1
    return colour_ok / n, shape_ok / n


@pytest.mark.slow
def test_a_few_hundred_steps_learn_colour_and_shape(shapes):
    # The shape check itself is right on the real images.
    real = shapes.images.float() / 255
    assert all(_shape_of(img) == cap.split()[1] for img, cap in zip(real, shapes.captions))
    # Two time-scale learning rates: the spectrally normalised discriminator learns slowly.
    t = trainer(shapes, lr_g=1e-3, lr_d=4e-3, diffaugment="", word_keep=1.0)
    before = _accuracy(t.export_model())
    t.train_steps(300)
    colour, shape = _accuracy(t.export_model())
    chance = 1 / 3
    assert colour >= 0.6 and colour >= before[0] + 0.2, (before, colour)
    assert shape >= chance + 0.1 and shape >= before[1] + 0.1, (before, shape)


# --- text faithfulness (bench/bench_text2image.py) ---------------------------------------------------
def test_text_faithfulness_numbers(shapes):
    from gan_models.metrics.classifier import SmallClassifier
    from gan_models.metrics.text_faithfulness import _scores, nearest_labels

    bank = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    assert nearest_labels(torch.tensor([[0.9, 0.2], [-2.0, 0.1]]), bank, ["a", "b", "c"]) == \
        ["a", "c"]
    scores = _scores(torch.tensor([1.0, 0.0, 1.0, 1.0]), ["x", "x", "y", "y"])
    assert scores == {"overall": 0.75, "balanced": 0.75, "per_category": {"x": 0.5, "y": 1.0}}

    from gan_models.metrics.text_faithfulness import text_faithfulness

    torch.manual_seed(0)
    judge = SmallClassifier(3, resolution=16, width=4, class_names=list(SHAPES)).eval()
    model = trainer(shapes).export_model()
    real = shapes.images[:6].float() / 255
    caps = list(shapes.captions[:6])
    shape_of = [c.split()[1] for c in caps]
    result = text_faithfulness(model, judge, caps, shape_of, [c.split()[0] for c in caps],
                               real, [c.split()[0] for c in caps], real, per=2, seed=1)
    assert result["samples"] == 12 and result["category_chance"] == pytest.approx(1 / 3, 1e-3)
    for key in ("category_accuracy", "category_accuracy_shuffled_labels",
                "category_accuracy_shuffled_captions", "subcategory_accuracy"):
        assert 0 <= result[key]["overall"] <= 1
    # Real images are their own nearest neighbours in the bank: the ceiling is 1.
    assert result["subcategory_judge_on_real"]["overall"] == 1.0


# --- the shipped model ---------------------------------------------------------------------------------
def test_the_shipped_text_to_emoji_model():
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "models" / "gan" / \
        "gan_studio_text2emoji.safetensors"
    assert path.stat().st_size < 20 * 2**20
    model = gan_models.load_model(path)
    assert (model.architecture, model.resolution, model.conditioning) == ("stackgan", 64, "text")
    assert text_input_of(model) == "words" and model.config["text_input"] == "words"
    assert model.metadata["provenance"]["recipe"] == "stackgan"
    assert {"cat", "face", "flag", "heart", "pizza"} <= set(model.networks["text_encoder"].vocab)
    # Different prompts, different pictures: flags come out redder-and-bluer than faces, which
    # are yellow (mean colour over eight seeds).
    z = model.sample_latents(0, 8)
    with torch.no_grad():
        face = model.synthesize(z.with_labels(model.encode_text(
            ["grinning face, smileys and emotion"]).expand(8, -1)))
        flag = model.synthesize(z.with_labels(model.encode_text(["flag, flags"]).expand(8, -1)))
    yellow = lambda x: float((x[:, 0] + x[:, 1] - 2 * x[:, 2]).mean())  # noqa: E731
    assert yellow(face) > yellow(flag) + 0.1
