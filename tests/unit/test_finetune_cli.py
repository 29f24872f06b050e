"""`python -m gan_models train --init CHECKPOINT`: fine-tuning from an NVlabs pickle (with
Freeze-D), a native DCGAN and a VAE; run.json remembers the checkpoint, --resume continues
without it, and a different --init is refused."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fixtures_foreign import TINY_D_KW as D_KW
from fixtures_foreign import TINY_G_KW as G_KW
from fixtures_foreign import nvlabs_network_dict, write_nvlabs_pickle
from helpers import tiny_dcgan
from safetensors.torch import load_file

import gan_models
from gan_models.__main__ import main
from gan_models.formats.native import file_sha256
from gan_models.training.shapes import write_shapes_folder

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py

STEPS = ["--batch", "4", "--snap-every", "1", "--log-every", "1"]


@pytest.fixture(scope="module")
def flat(tmp_path_factory):
    return write_shapes_folder(tmp_path_factory.mktemp("data") / "flat", per_class=2, size=16,
                               conditional=False)


def nvlabs_pickle(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    model = gan_models.GenerativeModel.create(
        "stylegan2", {"generator": G_KW, "discriminator": D_KW})
    data = nvlabs_network_dict(model.generator, G_KW, model.networks["discriminator"], D_KW)
    return write_nvlabs_pickle(path, data)


def run_json(out: Path) -> dict:
    return json.loads((out / "run.json").read_text())


def latest_step(out: Path) -> int:
    return json.loads((out / "snapshots" / "latest.json").read_text())["step"]


def test_fine_tunes_an_nvlabs_pickle_resumes_and_refuses_another_init(flat, tmp_path, capsys):
    pkl = nvlabs_pickle(tmp_path / "network-snapshot.pkl", seed=4)
    out = tmp_path / "run"
    # No --recipe: a StyleGAN2 model picks stylegan2-ada; the model's sizes win.
    assert main(["train", "--data", str(flat), "--out", str(out), "--init", str(pkl),
                 "--kimg", "0.008", *STEPS, "--option", "freeze_d=1"]) == 0
    settings = run_json(out)
    assert settings["recipe"] == "stylegan2-ada"
    assert settings["init"] == str(pkl) and settings["init_sha256"] == file_sha256(pkl)
    assert latest_step(out) == 2

    source = gan_models.load_model(pkl)
    tuned = gan_models.load_model(out / "model.safetensors")
    assert tuned.config["generator"]["channel_base"] == 128 and tuned.z_dim == 8
    src_d = source.networks["discriminator"].state_dict()
    d = tuned.networks["discriminator"].state_dict()
    # Freeze-D kept the 16 px block as it came from the pickle; the rest of D trained.
    assert torch.equal(d["b16.conv0.weight"], src_d["b16.conv0.weight"])
    assert not torch.equal(d["b8.conv0.weight"], src_d["b8.conv0.weight"])
    g, src_g = tuned.generator.state_dict(), source.generator.state_dict()
    key = "synthesis.b16.conv1.weight"
    assert not torch.equal(g[key], src_g[key])
    assert (g[key] - src_g[key]).abs().max() < 0.1  # a couple of steps from the pickle

    # Resume: the snapshots hold the weights, so --init may be left out ...
    assert main(["train", "--out", str(out), "--resume", "--kimg", "0.012"]) == 0
    assert latest_step(out) == 3
    # ... or given again, as the same file under any name.
    copy = shutil.copy(pkl, tmp_path / "renamed.pkl")
    assert main(["train", "--out", str(out), "--resume", "--init", str(copy),
                 "--kimg", "0.016"]) == 0
    assert latest_step(out) == 4
    assert run_json(out)["init"] == str(pkl)  # the record keeps the original

    other = nvlabs_pickle(tmp_path / "other.pkl", seed=5)
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--resume", "--init", str(other),
                 "--kimg", "0.02"]) == 2
    err = capsys.readouterr().err
    assert "started from network-snapshot.pkl" in err and "not other.pkl" in err
    assert latest_step(out) == 4

    # The shippable export records where the fine-tuning started and drops D.
    exported = tmp_path / "exported.safetensors"
    subprocess.run([sys.executable, str(REPO / "scripts" / "export_model.py"), str(out),
                    str(exported), "--half"], check=True, capture_output=True)
    shipped = gan_models.load_model(exported)
    provenance = shipped.metadata["provenance"]
    assert provenance["init"] == str(pkl) and provenance["init_sha256"] == file_sha256(pkl)
    assert provenance["steps"] == 4 and provenance["recipe"] == "stylegan2-ada"
    assert "discriminator" not in shipped.networks


def test_refusals_name_the_problem(flat, tmp_path, capsys):
    pkl = nvlabs_pickle(tmp_path / "g.pkl", seed=4)

    def error(*args) -> str:
        capsys.readouterr()
        assert main(["train", "--data", str(flat), *STEPS, "--kimg", "0.004", *args]) == 2
        return capsys.readouterr().err

    assert "use --recipe stylegan2-ada" in error("--out", str(tmp_path / "a"), "--init",
                                                 str(pkl), "--recipe", "dcgan")
    assert "model is 16px but the run asks for 32px" in error(
        "--out", str(tmp_path / "b"), "--init", str(pkl), "--resolution", "32")
    assert "no such file" in error("--out", str(tmp_path / "c"), "--init",
                                   str(tmp_path / "missing.pkl"))
    # A run started from scratch cannot later claim a checkpoint.
    scratch = tmp_path / "scratch"
    assert main(["train", "--data", str(flat), "--out", str(scratch), "--recipe", "dcgan",
                 "--resolution", "32", "--z-dim", "8", "--base-channels", "8",
                 "--max-channels", "16", *STEPS, "--kimg", "0.004"]) == 0
    capsys.readouterr()
    assert main(["train", "--out", str(scratch), "--resume", "--init", str(pkl),
                 "--kimg", "0.008"]) == 2
    assert "not started from a checkpoint" in capsys.readouterr().err


def test_fine_tunes_a_native_conditional_dcgan(tmp_path):
    data = write_shapes_folder(tmp_path / "classes", per_class=2, size=32)
    model = tiny_dcgan(num_classes=3, class_names=["circle", "square", "triangle"], seed=2)
    init = tmp_path / "cdcgan.safetensors"
    gan_models.save_model(model, init)
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(out), "--init", str(init),
                 "--kimg", "0.004", *STEPS]) == 0
    assert run_json(out)["recipe"] == "cdcgan"  # 3 classes: the conditional recipe
    tuned = load_file(out / "model.safetensors")
    source = {k: v for k, v in model.generator.state_dict().items()}
    moved = [k for k, v in source.items() if v.is_floating_point()
             and not torch.equal(tuned[f"generator.{k}"], v)]
    assert moved and all((tuned[f"generator.{k}"] - source[k]).abs().max() < 0.1
                         for k in moved)


def test_fine_tunes_a_vae_with_the_recipe_it_was_trained_with(flat, tmp_path):
    first = tmp_path / "first"
    assert main(["train", "--data", str(flat), "--out", str(first), "--recipe", "beta_vae",
                 "--resolution", "16", "--z-dim", "8", "--base-channels", "8",
                 "--option", "max_channels=16", "--option", "res_blocks=0",
                 "--kimg", "0.004", *STEPS]) == 0
    out = tmp_path / "tuned"
    assert main(["train", "--data", str(flat), "--out", str(out), "--init",
                 str(first / "model.safetensors"), "--kimg", "0.004", *STEPS]) == 0
    settings = run_json(out)
    assert settings["recipe"] == "beta_vae" and settings["options"]["z_dim"] == 8
    tuned = gan_models.load_model(out / "model.safetensors")
    assert tuned.can_encode and tuned.z_dim == 8
