"""A run folder survives the process that writes it: one writer at a time (its pid in the
refusal), a dead writer's lock taken over, a torn or damaged metrics.jsonl read without a
crash, temporary files of interrupted writes cleaned up, in-memory data saved for resuming."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gan_models.__main__ import main
from gan_models.training import ImageDataset, load_image_folder
from gan_models.training.datasets import write_image_folder
from gan_models.training.run import steps_for_kimg
from gan_models.training.run_folder import RunFolder, RunFolderBusy, RunLock
from gan_models.training.shapes import write_shapes_folder

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py

REPO = Path(__file__).resolve().parents[2]
TINY_ARGS = ["--recipe", "dcgan", "--resolution", "32", "--z-dim", "16", "--base-channels",
             "8", "--max-channels", "32", "--batch", "8", "--seed", "3"]
# Holds a run folder's lock until killed (the library's own lock, in another process).
HOLDER = """
import sys, time
from gan_models.training.run_folder import RunFolder, RunLock
RunLock(RunFolder(sys.argv[1])).acquire()
print("locked", flush=True)
time.sleep(120)
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_shapes_folder(tmp_path_factory.mktemp("data") / "shapes", per_class=3, size=32,
                               conditional=False)


def train(data, out, *extra) -> int:
    return main(["train", "--data", str(data), "--out", str(out), *TINY_ARGS, *extra])


def steps(out: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_a_second_writer_is_refused_by_pid_and_a_dead_writers_lock_is_taken_over(
        data, tmp_path, capsys):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], env=env,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert train(data, out, "--kimg", "0.016") == 2
        err = capsys.readouterr().err
        assert f"run folder {out} is in use by process {holder.pid}; wait for it or stop " \
               "it" in err
        assert not (out / "run.json").exists()  # refused before writing anything
        # --resume is refused the same way.
        assert main(["train", "--out", str(out), "--resume", "--data", str(data)]) == 2
        assert f"in use by process {holder.pid}" in capsys.readouterr().err
    finally:
        holder.kill()  # SIGKILL: no chance to clean up; the system drops its lock
        holder.wait()
    assert (out / "run.lock").read_text().strip() == str(holder.pid)
    assert train(data, out, "--kimg", "0.016") == 0
    text = capsys.readouterr().out
    assert f"taking over run folder {out}: its lock was left by process {holder.pid}, which " \
           "is no longer running" in text
    assert (out / "run.lock").read_text() == ""  # a clean exit leaves no pid behind


def test_the_lock_is_exclusive_within_a_process_too(tmp_path):
    folder = RunFolder(tmp_path / "run")
    with RunLock(folder):
        with pytest.raises(RunFolderBusy, match=f"in use by process {os.getpid()};"):
            RunLock(folder).acquire()
    with RunLock(folder):  # released: free again
        pass


def test_a_torn_last_metrics_line_is_dropped_and_resume_works(data, tmp_path, capsys):
    out = tmp_path / "run"
    assert train(data, out, "--kimg", "0.032", "--snap-every", "2", "--log-every", "1") == 0
    with open(out / "metrics.jsonl", "a") as f:  # killed in the middle of writing step 5
        f.write('{"step": 5, "kimg": 0.0')
    messages = []
    assert [row["step"] for row in RunFolder(out).read_metrics(messages.append)] == [1, 2, 3, 4]
    assert len(messages) == 1 and "dropped a torn last line" in messages[0]
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--resume", "--kimg", "0.048"]) == 0
    assert "dropped a torn last line" in capsys.readouterr().out
    assert steps(out) == [1, 2, 3, 4, 5, 6]


def test_damaged_metrics_lines_are_skipped_and_named(tmp_path, capsys):
    folder = RunFolder(tmp_path)
    folder.metrics_file.write_text('{"step": 1}\nnot json\n{"step": 2}\n[3]\n{"step": 3}')
    messages = []
    assert [r["step"] for r in folder.read_metrics(messages.append)] == [1, 2, 3]
    assert messages == [f"{folder.metrics_file}: skipped 2 damaged line(s) (not JSON "
                        "objects): line 2, 4"]
    folder.trim_metrics(2, messages.append)
    assert folder.metrics_file.read_text() == '{"step": 1}\n{"step": 2}\n'


def test_temp_files_of_interrupted_writes_are_removed_on_resume(data, tmp_path, capsys):
    out = tmp_path / "run"
    assert train(data, out, "--kimg", "0.016") == 0
    leftovers = [out / ".run.json.k2j4x.tmp", out / "snapshots" / ".latest.json.a8f1.tmp",
                 out / "snapshots" / ".snapshot-00000004.state.safetensors.3q1.tmp"]
    for p in leftovers:
        p.write_bytes(b"half")
    keep = out / "snapshots" / ".notes"  # hidden, but not a temporary file
    keep.write_text("mine")
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--resume", "--kimg", "0.024"]) == 0
    assert "removed 3 temporary file(s)" in capsys.readouterr().out
    assert not any(p.exists() for p in leftovers) and keep.read_text() == "mine"


def test_a_run_that_died_before_its_first_snapshot_starts_clean(data, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2}\n{"st')
    assert train(data, out, "--kimg", "0.016", "--log-every", "1") == 0
    assert steps(out) == [1, 2]


def test_images_from_memory_are_saved_so_the_folder_reads_them_back_unchanged(tmp_path):
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8, generator=gen)
    labels = torch.tensor([0, 1, 1, 0, 1])
    dataset = ImageDataset(images=images, labels=labels, class_names=("a", "b"))
    folder = write_image_folder(dataset, tmp_path / "data")
    back = load_image_folder(folder, 16)
    assert back.class_names == ("a", "b") and sorted(back.labels.tolist()) == [0, 0, 1, 1, 1]
    order = sorted(range(5), key=lambda i: (int(labels[i]), i))
    assert torch.equal(back.images, images[order])
    assert write_image_folder(dataset, folder) == folder  # written once


def test_kimg_noise_does_not_add_a_step():
    assert steps_for_kimg(400 * 8 / 1000, 8) == 400
    assert steps_for_kimg(0.0805, 8) == 11 and steps_for_kimg(0.0, 8) == 1


def test_a_lock_left_by_a_live_process_that_no_longer_holds_it_is_taken(tmp_path):
    folder = RunFolder(tmp_path)
    folder.lock_file.write_text(f"{os.getppid()}\n")  # alive, but holds no lock on the file
    messages = []
    with RunLock(folder, messages.append):
        assert folder.lock_file.read_text().strip() == str(os.getpid())
    assert messages == [f"taking over run folder {tmp_path}: its lock was left by process "
                        f"{os.getppid()}, which no longer holds it"]

