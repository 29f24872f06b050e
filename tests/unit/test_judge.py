"""The independent judge: near-blank detection, its features, and the side-by-side numbers
with a labelled picture."""

from __future__ import annotations

import pytest
import torch

import gan_models
from gan_models.metrics.judge import compare, judge_features, near_blank, train_judge
from gan_models.metrics.sheet import labelled_sheet, real_panel
from gan_models.training import load_image_folder
from gan_models.training.shapes import write_shapes_folder

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def test_near_blank_counts_almost_white_images():
    white = torch.ones(3, 3, 32, 32)
    white[1, :, :4, :4] = 0.0          # 16 of 1024 pixels drawn: still near-blank
    white[2, :, :16, :16] = 0.0        # a quarter drawn: not blank
    white[0] -= 0.05                   # off-white within tolerance
    assert near_blank(white).tolist() == [True, True, False]


def test_compare_reports_every_number_and_draws_a_labelled_sheet(tmp_path):
    data = load_image_folder(write_shapes_folder(tmp_path / "d", per_class=6, size=16), 16)
    judge, report = train_judge(data, steps=5, holdout=0.34)
    assert judge_features(judge, data.images[:4].float() / 255).shape == (4, 128)
    torch.manual_seed(0)
    model = gan_models.GenerativeModel.create(
        "fastgan", {"resolution": 32, "z_dim": 8, "num_classes": 3, "base_channels": 4,
                    "max_channels": 8, "embed_dim": 4}, class_names=list(data.class_names))
    data32 = load_image_folder(tmp_path / "d", 32)
    result = compare({"tiny": model}, data32, judge, report, num=12, lite0=False)
    row = result["models"]["tiny"]
    assert {"judge_fd", "blank_fraction", "class_accuracy", "class_accuracy_per_class"} <= set(row)
    assert set(row["class_accuracy_per_class"]) == set(data.class_names)
    assert result["reference"]["chance"] == pytest.approx(1 / 3, abs=1e-3)
    assert 0 <= result["reference"]["real_blank_fraction"] <= 1
    sheet = labelled_sheet({"tiny": model, "again": model}, seeds=2,
                           real=real_panel(data32, model.class_names, 2))
    assert sheet.size[1] == 28 + 3 * 32 and sheet.size[0] > 3 * (2 * 32)
