"""Data-parallel training: 2 CPU processes (gloo) launched by torchrun.

Replicas must stay identical, and 2 ranks x 4 images must do the same math as one process
with a global batch of 8 split into 2 micro-batches of 4 (--batch-gpu 4). Why micro-batches:
the DCGAN generator has BatchNorm, which normalises with the statistics of the images it is
given at once, i.e. per rank. One process with micro-batches of the per-rank size normalises
the same groups, so weights match up to float summation order (gradients are averaged in a
different order). BatchNorm *running* statistics are not compared: one process updates them
micro-batch after micro-batch, ranks average theirs; they only matter for eval-mode sampling.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gan_models.__main__ import main
from gan_models.training import Trainer, load_image_folder, make_recipe
from gan_models.training.shapes import write_shapes_folder

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py
REPO = Path(__file__).resolve().parents[2]
TINY = {"resolution": 32, "z_dim": 16, "base_channels": 8, "max_channels": 32, "embed_dim": 8,
        "diffaugment": "translation,color", "loss": "wgan-gp", "ema_kimg": 0.05}
STEPS = 4

CLI_ARGS = ["--recipe", "dcgan", "--resolution", "32", "--z-dim", "16", "--base-channels", "8",
            "--max-channels", "32", "--batch", "8", "--kimg", "0.032", "--snap-every", "2",
            "--log-every", "1", "--seed", "1"]

# One torchrun launch (process start-up dominates the cost) does both jobs: the Trainer API,
# saving each rank's full state, then the CLI (which reuses the process group).
WORKER = """
import sys
from safetensors.torch import save_file
from gan_models.__main__ import main
from gan_models.training import Trainer, init_from_env, load_image_folder, make_recipe

data, out, options, cli_args = sys.argv[1], sys.argv[2], eval(sys.argv[3]), eval(sys.argv[4])
dist, device = init_from_env("cpu")
dataset = load_image_folder(data, 32, xflip=True)
trainer = Trainer(make_recipe("cdcgan", options, dataset.num_classes), dataset, batch=8,
                  seed=7, device=device, dist=dist)
trainer.train_steps({steps})
tensors, _ = trainer.state_dict(include_rng=False)
save_file(tensors, f"{{out}}/rank{{dist.rank}}.safetensors")
sys.exit(main(["train", "--data", data, "--out", f"{{out}}/ddp", *cli_args]))
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_shapes_folder(tmp_path_factory.mktemp("data") / "shapes", per_class=4, size=32)


def torchrun(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           *args]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def is_parameter(name: str) -> bool:
    return not name.endswith(("running_mean", "running_var", "num_batches_tracked"))


@pytest.fixture(scope="module")
def ddp_run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    script = out / "worker.py"
    script.write_text(textwrap.dedent(WORKER.format(steps=STEPS)))
    proc = torchrun([str(script), str(data), str(out), repr(TINY), repr(CLI_ARGS)], cwd=out)
    return out, proc


def test_two_ranks_stay_in_sync_and_match_one_process(data, ddp_run):
    out, _proc = ddp_run
    rank0, rank1 = load_file(out / "rank0.safetensors"), load_file(out / "rank1.safetensors")
    assert rank0.keys() == rank1.keys()
    drift = [k for k in rank0 if not torch.equal(rank0[k], rank1[k])]
    assert not drift, f"replicas differ in {drift[:5]}"

    dataset = load_image_folder(data, 32, xflip=True)
    single = Trainer(make_recipe("cdcgan", TINY, dataset.num_classes), dataset, batch=8, seed=7,
                     batch_gpu=4)
    single.train_steps(STEPS)
    mine, _ = single.state_dict(include_rng=False)
    compared = [k for k in rank0 if k.startswith("net.") and is_parameter(k)]
    assert len(compared) > 20
    for k in compared:
        torch.testing.assert_close(rank0[k], mine[k], rtol=1e-4, atol=1e-5, msg=k)
    assert rank0["net.generator.stem.0.weight"].abs().sum() > 0


def test_torchrun_cli_writes_one_run_from_rank_zero(data, ddp_run, tmp_path):
    out, proc = ddp_run
    assert proc.stdout.count("done:") == 1  # only rank 0 reports
    steps = [json.loads(line)["step"] for line in (out / "ddp" / "metrics.jsonl").open()]
    assert steps == [1, 2, 3, 4]
    assert json.loads((out / "ddp/snapshots/latest.json").read_text())["step"] == 4

    single = tmp_path / "single"
    assert main(["train", "--data", str(data), "--out", str(single), "--batch-gpu", "4",
                 *CLI_ARGS]) == 0
    ddp, one = load_file(out / "ddp" / "model.safetensors"), load_file(single / "model.safetensors")
    for k in (k for k in ddp if is_parameter(k)):
        torch.testing.assert_close(ddp[k], one[k], rtol=1e-4, atol=1e-5, msg=k)
