"""`python -m gan_models train`: the run folder, bit-exact resume, refusals, and a Ctrl+C that
leaves a checkpoint to resume from."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import gan_models
from gan_models.__main__ import main
from gan_models.training import read_state
from gan_models.training.shapes import write_shapes_folder

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py

REPO = Path(__file__).resolve().parents[2]
TINY_ARGS = ["--resolution", "32", "--z-dim", "16", "--base-channels", "8",
             "--max-channels", "32", "--batch", "8", "--seed", "3"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_shapes_folder(tmp_path_factory.mktemp("data") / "shapes", per_class=4, size=32)


def train(data, out, *extra) -> int:
    return main(["train", "--data", str(data), "--out", str(out), "--recipe", "cdcgan",
                 *TINY_ARGS, *extra])


def metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_a_run_writes_snapshots_samples_metrics_and_the_model(data, tmp_path):
    out = tmp_path / "run"
    assert train(data, out, "--kimg", "0.08", "--snap-every", "5", "--log-every", "5") == 0
    snaps = sorted(p.name for p in (out / "snapshots").iterdir())
    assert snaps == ["latest.json", "snapshot-00000005.safetensors",
                     "snapshot-00000005.state.safetensors", "snapshot-00000010.safetensors",
                     "snapshot-00000010.state.safetensors"]
    assert json.loads((out / "snapshots" / "latest.json").read_text())["step"] == 10
    samples = sorted(p.name for p in (out / "samples").iterdir())
    assert samples == ["loss_curve.png", "reals.png", "step-00000005.png", "step-00000010.png"]
    lines = metrics(out)
    assert [m["step"] for m in lines] == [5, 10]
    expected = {"kimg", "loss_d", "loss_g", "d_acc", "images_per_s", "elapsed_s", "time"}
    assert expected <= set(lines[0])
    model = gan_models.load_model(out / "model.safetensors")
    assert model.class_names == ["circle", "square", "triangle"]
    assert model.metadata["provenance"]["steps"] == 10
    # Snapshot model files are ordinary models too.
    snapshot_model = gan_models.load_model(out / "snapshots" / "snapshot-00000005.safetensors")
    assert snapshot_model.resolution == 32


def test_resume_matches_an_uninterrupted_run_bit_for_bit(data, tmp_path):
    common = ("--snap-every", "4", "--log-every", "2", "--diffaugment", "translation,cutout",
              "--xflip", "--option", "ema_kimg=0.5")
    assert train(data, tmp_path / "straight", "--kimg", "0.08", *common) == 0
    assert train(data, tmp_path / "split", "--kimg", "0.048", *common) == 0
    # --data may be left out: run.json remembers it.
    assert main(["train", "--out", str(tmp_path / "split"), "--resume", "--kimg", "0.08"]) == 0

    a = load_file(tmp_path / "straight" / "model.safetensors")
    b = load_file(tmp_path / "split" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    sa, meta_a = read_state(tmp_path / "straight/snapshots/snapshot-00000010.state.safetensors")
    sb, meta_b = read_state(tmp_path / "split/snapshots/snapshot-00000010.state.safetensors")
    keys = [k for k in sa if not k.startswith("rng.")]
    assert all(torch.equal(sa[k], sb[k]) for k in keys)
    assert meta_a["history"] == meta_b["history"]
    assert meta_b["options"]["ema_kimg"] == 0.5
    assert [m["step"] for m in metrics(tmp_path / "split")] == [2, 4, 6, 8, 10]


def test_refuses_to_overwrite_a_run_or_change_its_settings(data, tmp_path, capsys):
    out = tmp_path / "run"
    assert train(data, out, "--kimg", "0.016") == 0
    assert train(data, out, "--kimg", "0.032") == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "--out", str(out), "--resume", "--kimg", "0.032",
                 "--batch", "16"]) == 2
    assert "batch = 8" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "nothing")]) == 2
    assert "--data is required" in capsys.readouterr().err
    # --option reaches the recipe, which names the options it knows.
    assert train(data, tmp_path / "other", "--option", "lr=0.001") == 2
    err = capsys.readouterr().err
    assert "recipe cdcgan: unknown option(s) ['lr']" in err and "'lr_g'" in err


def test_ctrl_c_writes_a_checkpoint_that_resumes(data, tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gan_models", "train", "--data", str(data), "--out", str(out),
         "--recipe", "dcgan", *TINY_ARGS, "--kimg", "1000", "--snap-every", "100000",
         "--log-every", "1"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            path = out / "metrics.jsonl"
            if path.is_file() and len(path.read_text().splitlines()) >= 2:
                break
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=45)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, output
    assert "stopped at step" in output
    pointer = json.loads((out / "snapshots" / "latest.json").read_text())
    step = pointer["step"]
    assert step >= 2
    assert not (out / "model.safetensors").exists()
    # Continue to two more steps and finish.
    kimg = (step + 2) * 8 / 1000
    assert main(["train", "--out", str(out), "--resume", "--kimg", str(kimg)]) == 0
    final = gan_models.load_model(out / "model.safetensors")
    assert final.metadata["provenance"]["steps"] == step + 2


def test_a_time_budget_ends_the_run_with_a_snapshot_and_the_model(data, tmp_path):
    out = tmp_path / "run"
    # 6 ms of training: the first step already uses it up.
    assert train(data, out, "--kimg", "1", "--minutes", "0.0001", "--snap-every", "50") == 0
    assert json.loads((out / "snapshots" / "latest.json").read_text())["step"] == 1
    assert gan_models.load_model(out / "model.safetensors").metadata["provenance"]["steps"] == 1
    assert [m["step"] for m in metrics(out)] == [1]
    # The budget counts the run's whole training time: resuming with it does nothing more...
    assert main(["train", "--out", str(out), "--resume"]) == 0
    assert json.loads((out / "snapshots" / "latest.json").read_text())["step"] == 1
    # ...and a larger budget carries on.
    assert main(["train", "--out", str(out), "--resume", "--minutes", "0", "--kimg", "0.024"]) == 0
    assert json.loads((out / "snapshots" / "latest.json").read_text())["step"] == 3


def test_a_cpu_time_budget_counts_the_process_cpu_time_and_survives_resume(data, tmp_path):
    out = tmp_path / "run"
    assert train(data, out, "--kimg", "1", "--cpu-minutes", "0.0001", "--snap-every", "50") == 0
    assert json.loads((out / "snapshots" / "latest.json").read_text())["step"] == 1
    (line,) = metrics(out)
    assert 0 < line["cpu_s"]
    assert main(["train", "--out", str(out), "--resume"]) == 0  # the budget is spent already
    assert json.loads((out / "snapshots" / "latest.json").read_text())["step"] == 1


@pytest.mark.parametrize("flag", ["--minutes", "--cpu-minutes"])
def test_a_negative_time_budget_is_refused(data, tmp_path, capsys, flag):
    assert train(data, tmp_path / "run", flag, "-1") != 0
    assert flag in capsys.readouterr().err
