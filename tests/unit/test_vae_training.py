"""Training VAEs headless: `python -m gan_models train --recipe vae --option KEY=VALUE`, the
run folder's preview grids, bit-exact resume, learning rates that may change on resume, option
parsing and refusals, and divergence messages that name the recipe's learning rates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import gan_models
from gan_models import GanStudioError
from gan_models.__main__ import main
from gan_models.training import ImageDataset, Trainer, TrainingDiverged, make_recipe, read_state
from gan_models.training.options import parse_options, typed_options
from gan_models.training.shapes import write_shapes_folder
from gan_models.training.state import unflatten

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py

TINY = ["--resolution", "16", "--z-dim", "8", "--base-channels", "8", "--batch", "8",
        "--seed", "5", "--option", "max_channels=16", "--option", "res_blocks=0"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """12 procedural shapes directly in the folder: an unconditional dataset."""
    return write_shapes_folder(tmp_path_factory.mktemp("data") / "shapes", per_class=4, size=32,
                               conditional=False)


def train(data, out, *extra, recipe="vae") -> int:
    return main(["train", "--data", str(data), "--out", str(out), "--recipe", recipe, *TINY,
                 *extra])


def test_options_reach_the_recipe_and_the_run_writes_both_preview_grids(data, tmp_path):
    out = tmp_path / "run"
    assert train(data, out, "--kimg", "0.08", "--snap-every", "5", "--log-every", "5",
                 "--option", "beta=2", "--option", "kl-warmup-steps=4",
                 "--option", "kl_schedule=cyclical", "--option", "free_bits=0.1",
                 "--option", "recon_loss=l1") == 0
    samples = sorted(p.name for p in (out / "samples").iterdir())
    assert samples == ["loss_curve.png", "reals.png", "recon-00000005.png", "recon-00000010.png",
                       "step-00000005.png", "step-00000010.png"]
    # All 12 images as input|reconstruction pairs of 16 px, 4 pairs a row (3 rows); the
    # sample grid is 8x8 latents.
    assert Image.open(out / "samples" / "recon-00000010.png").size == (166, 72)
    assert Image.open(out / "samples" / "step-00000010.png").size == (146, 146)
    assert len(list((out / "snapshots").glob("*.state.safetensors"))) == 2

    model = gan_models.load_model(out / "model.safetensors")
    assert model.can_encode and model.architecture == "vae" and model.resolution == 16
    options = model.metadata["provenance"]["options"]
    assert options["beta"] == 2.0 and isinstance(options["beta"], float)
    assert options["kl_warmup_steps"] == 4 and options["kl_schedule"] == "cyclical"
    assert options["recon_loss"] == "l1" and options["max_channels"] == 16
    line = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"loss", "recon", "kl", "kl_weight", "psnr"} <= set(line)
    assert json.loads((out / "run.json").read_text())["options"]["free_bits"] == 0.1


def test_resume_is_bit_exact_and_may_lower_the_learning_rate_only(data, tmp_path, capsys):
    common = ("--snap-every", "3", "--log-every", "3", "--option", "kl_warmup_steps=4")
    assert train(data, tmp_path / "straight", "--kimg", "0.064", *common) == 0
    assert train(data, tmp_path / "split", "--kimg", "0.032", *common) == 0
    assert main(["train", "--out", str(tmp_path / "split"), "--resume", "--kimg", "0.064"]) == 0
    a = load_file(tmp_path / "straight" / "model.safetensors")
    b = load_file(tmp_path / "split" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    state, _ = read_state(tmp_path / "split/snapshots/snapshot-00000008.state.safetensors")
    assert {k.split(".")[1] for k in state if k.startswith("net.")} == {"encoder", "generator",
                                                                          "ema"}

    split = str(tmp_path / "split")
    assert main(["train", "--out", split, "--resume", "--kimg", "0.08",
                 "--option", "beta=3"]) == 2
    assert "started with beta = 1.0, not 3" in capsys.readouterr().err
    assert main(["train", "--out", split, "--resume", "--kimg", "0.08", "--lr-g", "1e-4"]) == 2
    assert "has no option(s) ['lr_g']" in capsys.readouterr().err
    assert main(["train", "--out", split, "--resume", "--kimg", "0.08",
                 "--option", "lr=2.5e-4"]) == 0
    assert "lr 0.001 -> 0.00025" in capsys.readouterr().out
    tensors, meta = read_state(tmp_path / "split/snapshots/snapshot-00000010.state.safetensors")
    assert meta["options"]["lr"] == 2.5e-4
    adam = unflatten(meta["optimizers"]["vae"], tensors)
    assert {g["lr"] for g in adam["param_groups"]} == {2.5e-4} and adam["state"]
    assert json.loads((tmp_path / "split" / "run.json").read_text())["options"]["lr"] == 2.5e-4


def test_refusals_name_the_problem(data, tmp_path, capsys):
    out = str(tmp_path / "never")
    assert train(data, out, "--option", "bogus=1") == 2
    captured = capsys.readouterr()
    assert "unknown option(s) ['bogus']" in captured.err and "kl_warmup_steps" in captured.err
    assert "reading images" not in captured.out  # refused before the data is read
    assert train(data, out, "--option", "beta=lots") == 2
    assert "beta must be a number" in capsys.readouterr().err
    assert train(data, out, "--option", "kl_warmup_steps=2.5") == 2
    assert "kl_warmup_steps must be a whole number" in capsys.readouterr().err
    assert train(data, out, "--option", "z_dim=4") == 2
    assert "z_dim is given both as --z-dim and as --option" in capsys.readouterr().err
    assert train(data, out, "--option", "beta") == 2
    assert "is not key=value" in capsys.readouterr().err
    assert train(data, out, "--option", "codebook_size=8") == 2  # a vqvae option
    assert "unknown option(s) ['codebook_size']" in capsys.readouterr().err
    assert not Path(out).exists()


def test_vqvae_trains_from_the_cli_with_its_own_options(data, tmp_path):
    out = tmp_path / "vq"
    assert main(["train", "--data", str(data), "--out", str(out), "--recipe", "vqvae",
                 "--resolution", "16", "--base-channels", "8", "--max-channels", "16",
                 "--batch", "8", "--kimg", "0.016", "--option", "codebook_size=16",
                 "--option", "code_dim=4", "--option", "res_blocks=0",
                 "--option", "commitment=0.5"]) == 0
    assert (out / "samples" / "recon-00000002.png").is_file()
    model = gan_models.load_model(out / "model.safetensors")
    assert model.architecture == "vqvae" and model.config["codebook_size"] == 16


def test_parse_options_reads_json_values_and_falls_back_to_text():
    parsed = parse_options(["beta=4", "lr = 1e-3", "diffaugment=color,translation",
                            "amp=\"off\"", "xflip=true", "kl-warmup-steps=10"])
    assert parsed == {"beta": 4, "lr": 1e-3, "diffaugment": "color,translation", "amp": "off",
                      "xflip": True, "kl_warmup_steps": 10}
    assert parse_options("# a comment\n\nbeta=2\n  free_bits=0.5 \n") == {"beta": 2,
                                                                          "free_bits": 0.5}
    with pytest.raises(GanStudioError, match="given twice"):
        parse_options("beta=2\nbeta=3")
    typed = typed_options("vae", {"beta": 4, "kl_warmup_steps": 100.0, "unknown": "x"})
    assert typed == {"beta": 4.0, "kl_warmup_steps": 100, "unknown": "x"}
    assert isinstance(typed["beta"], float) and isinstance(typed["kl_warmup_steps"], int)
    with pytest.raises(GanStudioError, match="recon_loss must be text"):
        typed_options("vae", {"recon_loss": 1})


@pytest.mark.parametrize(("recipe", "named", "absent"), [
    ("vae", "Lower lr (now lr = 0.001)", "lr_g"),
    ("dcgan", "Lower lr_g and lr_d (now lr_g = 0.0002, lr_d = 0.0002) or try another loss",
     "Lower lr "),
])
def test_divergence_names_the_recipes_learning_rates(recipe, named, absent):
    images = (torch.rand(8, 3, 16, 16) * 255).to(torch.uint8)
    options = {"resolution": 16, "base_channels": 8, "max_channels": 16}
    if recipe == "vae":
        options.update(z_dim=4, res_blocks=0)
    else:
        options.update(z_dim=4, resolution=32)
        images = (torch.rand(8, 3, 32, 32) * 255).to(torch.uint8)
    trainer = Trainer(make_recipe(recipe, options), ImageDataset(images=images), batch=4)
    with torch.no_grad():  # a poisoned weight: the next loss is NaN
        next(trainer.nets["generator"].parameters()).fill_(float("nan"))
    with pytest.raises(TrainingDiverged) as info:
        trainer.train_steps(1)
    message = str(info.value)
    assert named in message and absent not in message
    assert "then resume from the last snapshot or start again" in message
