"""A ComfyUI process killed (SIGKILL) during Train Steps leaves a run folder that
`python -m gan_models train --out FOLDER --resume` continues with no other flags: the headless
runner trains a prompt in a subprocess, is killed once snapshots appear, and the CLI takes
over the dead process's lock and finishes the run the node had been asked for."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import gan_models
from gan_models.__main__ import main
from gan_models.training.shapes import write_shapes_folder

pytestmark = [pytest.mark.engine, pytest.mark.slow, pytest.mark.usefixtures("one_thread")]
REPO = Path(__file__).resolve().parents[2]
STEPS = 300


def prompt(folder: str) -> dict:
    return {
        "1": {"class_type": "GANStudioTrainingDataset", "inputs": {
            "folder": folder, "resolution": 32, "fit": "crop", "xflip": False,
            "background": "#ffffff"}},
        "2": {"class_type": "GANStudioTrainer", "inputs": {
            "dataset": ["1", 0], "recipe": "dcgan", "resolution": 0, "batch_size": 8,
            "lr_g": 0.0005, "lr_d": 0.0005, "beta1": 0.5, "beta2": 0.999, "loss": "ns",
            "diffaugment": "off", "width": 8, "seed": 7, "options": "z_dim=16"}},
        # A snapshot after every step or so (3 ms), and far more steps than the test waits.
        "3": {"class_type": "GANStudioTrainSteps", "inputs": {
            "trainer": ["2", 0], "steps": STEPS, "preview_every": 0,
            "snapshot_minutes": 0.00005}},
    }


def test_a_killed_train_steps_run_resumes_from_the_cli(tmp_path, capsys):
    inputs, output = tmp_path / "input", tmp_path / "output"
    data = write_shapes_folder(inputs / "gs_crash_shapes", per_class=3, size=32)
    workflow = tmp_path / "train.json"
    workflow.write_text(json.dumps(prompt(data.name)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "run_workflow.py"), str(workflow),
         "--out", str(output), "--input", str(inputs)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    runs = output / "gan_studio_training"
    try:
        deadline = time.monotonic() + 180  # the engine boots first
        pointers: list[Path] = []
        while time.monotonic() < deadline and not pointers:
            assert proc.poll() is None, proc.stdout.read()
            pointers = list(runs.glob("*/snapshots/latest.json")) if runs.is_dir() else []
            time.sleep(0.05)
        assert pointers, "no snapshot appeared"
        time.sleep(0.2)  # a few more snapshots: the kill may land in the middle of one
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()

    folder = pointers[0].parent.parent
    assert (folder / "run.lock").read_text().strip() == str(proc.pid)
    step = json.loads(pointers[0].read_text())["step"]
    assert 0 < step < STEPS
    assert not (folder / "model.safetensors").exists()

    capsys.readouterr()
    assert main(["train", "--out", str(folder), "--resume"]) == 0
    out = capsys.readouterr().out
    assert f"its lock was left by process {proc.pid}, which is no longer running" in out
    assert "resumed dcgan 32px, batch 8" in out
    model = gan_models.load_model(folder / "model.safetensors")
    assert model.metadata["provenance"]["steps"] == STEPS
    assert not list(folder.rglob(".*.tmp"))
