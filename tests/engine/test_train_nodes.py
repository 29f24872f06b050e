"""Training nodes in the real engine: Training Dataset -> GAN Trainer -> Train Steps x2 ->
Sample Latents -> Generate Images -> SaveImage, plus cancel-saves-a-checkpoint, the
no-mutation rule that ComfyUI's output cache relies on, and the run folder Train Steps keeps
(resumable by the CLI, one writer at a time)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import gan_models
from gan_models.__main__ import main
from gan_models.training import load_image_folder, read_state
from gan_models.training.run_folder import RunFolder, RunLock
from gan_models.training.shapes import write_shapes_folder

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("one_thread")]
REPO = Path(__file__).resolve().parents[2]
SHAPES = "gan_studio_shapes"


@pytest.fixture(scope="module")
def shapes_input(engine_dirs):
    """The procedural dataset the workflow names, inside ComfyUI's input folder."""
    return write_shapes_folder(engine_dirs["input"] / SHAPES, per_class=6, size=32)


def trainer_inputs(**overrides) -> dict:
    inputs = {"dataset": ["1", 0], "recipe": "cdcgan", "resolution": 0, "batch_size": 8,
              "lr_g": 0.0005, "lr_d": 0.0005, "beta1": 0.5, "beta2": 0.999, "loss": "ns",
              "diffaugment": "translation", "width": 8, "seed": 11}
    return {**inputs, **overrides}


def train_prompt(step_plan: list[int], prefix: str) -> dict:
    """Dataset -> Trainer -> Train Steps (one node per entry of step_plan) -> outputs."""
    prompt = {
        "1": {"class_type": "GANStudioTrainingDataset", "inputs": {
            "folder": SHAPES, "resolution": 32, "fit": "crop", "xflip": True,
            "background": "#ffffff"}},
        "2": {"class_type": "GANStudioTrainer", "inputs": trainer_inputs()},
    }
    source = ["2", 0]
    for i, steps in enumerate(step_plan):
        node = str(10 + i)
        prompt[node] = {"class_type": "GANStudioTrainSteps", "inputs": {
            "trainer": source, "steps": steps, "preview_every": 2}}
        source = [node, 0]
    last = source[0]
    prompt.update({
        "20": {"class_type": "GANStudioSampleLatents", "inputs": {
            "model": [last, 1], "seed": 0, "batch_size": 4, "truncation_psi": 1.0,
            "truncate_normal": 0.0, "seed_mode": "torch"}},
        "21": {"class_type": "GANStudioGenerate", "inputs": {
            "model": [last, 1], "latents": ["20", 0], "chunk_size": 0}},
        "22": {"class_type": "SaveImage", "inputs": {"images": ["21", 0],
                                                     "filename_prefix": f"{prefix}/gen"}},
        "23": {"class_type": "SaveImage", "inputs": {"images": [last, 3],
                                                     "filename_prefix": f"{prefix}/curve"}},
        "24": {"class_type": "GANStudioSaveModel", "inputs": {
            "model": [last, 1], "filename_prefix": f"{prefix}/model",
            "include_discriminator": True}},
    })
    return prompt


def saved_model(engine, engine_dirs, result) -> Path:
    name = result.outputs["24"]["text"][0]
    return engine_dirs["models"] / "gan" / name


def test_chained_train_steps_continue_one_run_and_feed_generation(engine, engine_dirs,
                                                                  shapes_input):
    chained = engine.run(train_prompt([3, 2], "gs_train_chain"))
    assert chained.success, chained.describe_error()
    assert len(chained.outputs["22"]["images"]) == 4
    assert len(chained.outputs["23"]["images"]) == 1
    assert len(chained.outputs["11"]["images"]) == 1  # Train Steps previews its grid

    model = gan_models.load_model(saved_model(engine, engine_dirs, chained))
    assert model.metadata["provenance"]["steps"] == 5
    assert model.class_names == ["circle", "square", "triangle"]

    # 3 steps then 2 more equal 5 steps in one go: chaining continues the same state.
    straight = engine.run(train_prompt([5], "gs_train_straight"))
    assert straight.success, straight.describe_error()
    a = load_file(saved_model(engine, engine_dirs, chained))
    b = load_file(saved_model(engine, engine_dirs, straight))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_gallery_workflow_runs(engine, shapes_input):
    prompt = json.loads((REPO / "workflows" / "api" / "train_from_folder.json").read_text())
    for node in prompt.values():  # the same graph, made small enough for a test
        inputs = node["inputs"]
        if node["class_type"] == "GANStudioTrainingDataset":
            inputs["resolution"] = 32
        elif node["class_type"] == "GANStudioTrainer":
            inputs.update(width=8, batch_size=8)
        elif node["class_type"] == "GANStudioTrainSteps":
            inputs.update(steps=2, preview_every=1)
        elif node["class_type"] == "GANStudioSaveModel":
            inputs["filename_prefix"] = "gs_gallery/trained"
    result = engine.run(prompt)
    assert result.success, result.describe_error()


def node_class(engine, node_id):
    return engine.nodes.NODE_CLASS_MAPPINGS[node_id]


def make_trainer(engine, shapes_input):
    dataset = node_class(engine, "GANStudioTrainingDataset").execute(
        SHAPES, 32, "crop", False, "#ffffff").result[0]
    trainer_inputs_ = {k: v for k, v in trainer_inputs(recipe="dcgan").items() if k != "dataset"}
    return node_class(engine, "GANStudioTrainer").execute(dataset, **trainer_inputs_).result[0]


def test_zero_rates_and_betas_mean_each_recipes_own_defaults(engine, shapes_input):
    dataset = node_class(engine, "GANStudioTrainingDataset").execute(
        SHAPES, 32, "crop", False, "#ffffff").result[0]
    node = node_class(engine, "GANStudioTrainer")
    zeros = {"lr_g": 0.0, "lr_d": 0.0, "beta1": 0.0, "beta2": 0.0}

    def options(recipe, text="", **widgets):
        inputs = {k: v for k, v in trainer_inputs(recipe=recipe, **widgets).items()
                  if k != "dataset"}
        trainer = node.execute(dataset, **inputs, options=text).result[0]
        return {k: trainer.recipe.options[k] for k in zeros}

    sg2 = options("stylegan2-ada", "z_dim=16\nw_dim=16\nmax_channels=16", **zeros,
                  diffaugment="off")
    assert sg2 == {"lr_g": 0.0025, "lr_d": 0.0025, "beta1": 0.0, "beta2": 0.99}
    assert options("dcgan", **zeros) == {"lr_g": 0.0002, "lr_d": 0.0002, "beta1": 0.5,
                                         "beta2": 0.999}
    # Values set in the widgets win; a widget left at 0 may be set in options instead.
    assert options("dcgan", "beta1=0", **{**zeros, "lr_g": 0.0001, "beta2": 0.9},
                   loss="wgan-gp") == {"lr_g": 0.0001, "lr_d": 0.0002, "beta1": 0.0,
                                       "beta2": 0.9}
    with pytest.raises(Exception, match="set beta2 with its own input"):
        options("dcgan", "beta2=0.5", beta2=0.9)


def test_train_steps_never_changes_its_input(engine, shapes_input):
    trainer = make_trainer(engine, shapes_input)
    steps_node = node_class(engine, "GANStudioTrainSteps")
    with torch.inference_mode():  # as the executor calls nodes
        first = steps_node.execute(trainer, 2, 0).result
        again = steps_node.execute(trainer, 2, 0).result  # e.g. a re-run after a cache hit
    assert trainer.step == 0 and first[0].step == 2 and again[0].step == 2
    assert first[0] is not trainer
    a, _ = first[0].state_dict(include_rng=False)
    b, _ = again[0].state_dict(include_rng=False)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(first[2], again[2]) and first[2].shape[-1] == 3


def test_cancel_saves_a_checkpoint_then_stops(engine, engine_dirs, shapes_input):
    import comfy.model_management as mm

    trainer = make_trainer(engine, shapes_input)
    steps_node = node_class(engine, "GANStudioTrainSteps")
    mm.interrupt_current_processing(True)
    try:
        with pytest.raises(mm.InterruptProcessingException), torch.inference_mode():
            steps_node.execute(trainer, 50, 0)
    finally:
        mm.interrupt_current_processing(False)
    folder = engine_dirs["output"] / "gan_studio_training" / trainer.run_name / "snapshots"
    pointer = json.loads((folder / "latest.json").read_text())
    assert pointer["step"] == 1  # the cancel is noticed after the first step
    _tensors, meta = read_state(folder / pointer["state"])
    assert meta["step"] == 1 and meta["recipe"] == "dcgan"
    assert trainer.step == 0


def test_dataset_errors_name_the_node(engine, engine_dirs):
    (engine_dirs["input"] / "gs_empty").mkdir(exist_ok=True)
    prompt = {
        "1": {"class_type": "GANStudioTrainingDataset", "inputs": {
            "folder": "gs_empty", "resolution": 32, "fit": "crop", "xflip": False,
            "background": "#ffffff"}},
        "2": {"class_type": "GANStudioTrainer", "inputs": trainer_inputs()},
        "3": {"class_type": "GANStudioTrainSteps", "inputs": {
            "trainer": ["2", 0], "steps": 1, "preview_every": 0}},
    }
    result = engine.run(prompt)
    assert not result.success
    assert "Training Dataset: no images found" in result.describe_error()
    prompt["1"]["inputs"]["folder"] = SHAPES
    prompt["1"]["inputs"]["background"] = "not-a-colour"
    result = engine.run(prompt)
    assert "cannot read colour" in result.describe_error()


def run_folder(engine_dirs, trainer) -> Path:
    return engine_dirs["output"] / "gan_studio_training" / trainer.run_name


def test_train_steps_refuses_a_run_folder_in_use(engine, engine_dirs, shapes_input):
    trainer = make_trainer(engine, shapes_input)
    steps_node = node_class(engine, "GANStudioTrainSteps")
    with RunLock(RunFolder(run_folder(engine_dirs, trainer))):  # e.g. the CLI resuming it
        with pytest.raises(Exception, match=rf"Train Steps: run folder .* is in use by process "
                                            rf"{os.getpid()}; wait for it or stop it"):
            steps_node.execute(trainer, 2, 0)


def test_a_run_on_an_image_batch_is_continued_by_the_cli_with_no_other_flags(
        engine, engine_dirs, shapes_input, capsys):
    pictures = load_image_folder(shapes_input, 32).images.permute(0, 2, 3, 1).float() / 255
    dataset = node_class(engine, "GANStudioTrainingDataset").execute(
        "", 32, "crop", True, "#ffffff", images=pictures).result[0]
    inputs = {k: v for k, v in trainer_inputs(recipe="dcgan").items() if k != "dataset"}
    trainer = node_class(engine, "GANStudioTrainer").execute(dataset, **inputs).result[0]
    steps_node = node_class(engine, "GANStudioTrainSteps")
    folder = run_folder(engine_dirs, trainer)
    with torch.inference_mode():  # as the executor calls nodes
        steps_node.execute(trainer, 5, 0, 0.0)
        straight = load_file(folder / "snapshots" / "snapshot-00000005.safetensors")
        steps_node.execute(trainer, 3, 0, 0.0)  # the same run, ending at step 3 this time

    settings = json.loads((folder / "run.json").read_text())
    assert settings["data"] == str((folder / "data").resolve()) and settings["xflip"] is True
    assert settings["recipe"] == "dcgan" and settings["kimg"] == 0.024
    assert len(list((folder / "data").glob("*.png"))) == len(pictures)
    assert json.loads((folder / "snapshots" / "latest.json").read_text())["step"] == 3
    assert (folder / "run.lock").read_text() == ""  # released

    capsys.readouterr()
    assert main(["train", "--out", str(folder), "--resume"]) == 0  # to the node's step 3
    assert gan_models.load_model(folder / "model.safetensors").metadata["provenance"][
        "steps"] == 3
    assert main(["train", "--out", str(folder), "--resume", "--kimg", "0.04"]) == 0
    out = capsys.readouterr().out
    assert "resumed" in out and "data differs" not in out  # data/ holds the very images
    # Node to step 3, then the CLI to step 5 = the node straight to step 5.
    resumed = load_file(folder / "model.safetensors")
    assert resumed.keys() == straight.keys()
    assert all(torch.equal(resumed[k], straight[k]) for k in straight)
