"""Training a VAE in the real engine: Training Dataset -> VAE Trainer -> Train Steps x2 ->
Encode Images (of a Load Image) -> Generate Images -> SaveImage; the options box and its
refusals; fine-tuning a trained VAE; the GAN Trainer's options box."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file

import gan_models
from gan_models.training.shapes import write_shapes_folder

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("one_thread")]
SHAPES = "gs_vae_shapes"
PICTURE = "gs_vae_circle.png"
TINY_OPTIONS = "max_channels=16\n# no residual blocks: fast\nres_blocks=0\n"


@pytest.fixture(scope="module")
def vae_input(engine_dirs):
    """12 unconditional shapes in ComfyUI's input folder, and one of them as a lone picture."""
    folder = write_shapes_folder(engine_dirs["input"] / SHAPES, per_class=4, size=32,
                                 conditional=False)
    shutil.copy(folder / "circle_0000.png", engine_dirs["input"] / PICTURE)
    return folder


def vae_trainer_inputs(**overrides) -> dict:
    inputs = {"dataset": ["1", 0], "kind": "vae", "resolution": 16, "batch_size": 8,
              "z_dim": 8, "beta": 0.0, "kl_warmup_steps": 4, "recon_loss": "mse",
              "lr": 0.002, "width": 8, "seed": 3, "options": TINY_OPTIONS}
    return {**inputs, **overrides}


def dataset_node(folder=SHAPES) -> dict:
    return {"class_type": "GANStudioTrainingDataset", "inputs": {
        "folder": folder, "resolution": 32, "fit": "crop", "xflip": False,
        "background": "#ffffff"}}


def vae_prompt(step_plan: list[int], prefix: str) -> dict:
    prompt = {"1": dataset_node(),
              "2": {"class_type": "GANStudioVAETrainer", "inputs": vae_trainer_inputs()}}
    source = ["2", 0]
    for i, steps in enumerate(step_plan):
        node = str(10 + i)
        prompt[node] = {"class_type": "GANStudioTrainSteps", "inputs": {
            "trainer": source, "steps": steps, "preview_every": 2}}
        source = [node, 0]
    last = source[0]
    prompt.update({
        "20": {"class_type": "LoadImage", "inputs": {"image": PICTURE}},
        "21": {"class_type": "GANStudioEncodeImages", "inputs": {
            "model": [last, 1], "images": ["20", 0], "mode": "mean", "seed": 0,
            "size_handling": "crop", "classes": ""}},
        "22": {"class_type": "GANStudioGenerate", "inputs": {
            "model": [last, 1], "latents": ["21", 0], "chunk_size": 0}},
        "23": {"class_type": "SaveImage", "inputs": {"images": ["22", 0],
                                                     "filename_prefix": f"{prefix}/recon"}},
        "24": {"class_type": "GANStudioSaveModel", "inputs": {
            "model": [last, 1], "filename_prefix": f"{prefix}/model",
            "include_discriminator": True}},
    })
    return prompt


def saved(engine_dirs, result):
    return engine_dirs["models"] / "gan" / result.outputs["24"]["text"][0]


def test_a_vae_trains_in_chained_steps_then_encodes_and_decodes_a_picture(
        engine, engine_dirs, vae_input):
    chained = engine.run(vae_prompt([3, 2], "gs_vae_chain"))
    assert chained.success, chained.describe_error()
    # Train Steps shows the sample grid and the reconstruction grid.
    assert len(chained.outputs["11"]["images"]) == 2
    (decoded,) = chained.outputs["23"]["images"]
    from PIL import Image

    picture = engine_dirs["output"] / decoded["subfolder"] / decoded["filename"]
    assert Image.open(picture).size == (16, 16)

    model = gan_models.load_model(saved(engine_dirs, chained))
    assert model.architecture == "vae" and model.can_encode and model.resolution == 16
    provenance = model.metadata["provenance"]
    assert provenance["steps"] == 5 and provenance["recipe"] == "vae"
    assert provenance["options"]["kl_warmup_steps"] == 4
    assert provenance["options"]["beta"] == 1.0  # 0 on the node = the kind's default
    assert provenance["options"]["max_channels"] == 16

    # 3 steps then 2 more equal 5 steps in one go.
    straight = engine.run(vae_prompt([5], "gs_vae_straight"))
    assert straight.success, straight.describe_error()
    a, b = load_file(saved(engine_dirs, chained)), load_file(saved(engine_dirs, straight))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(k.startswith("encoder.") for k in a)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"options": "bogus=1"}, "VAE Trainer: recipe vae: unknown option(s) ['bogus']; it knows"),
    ({"options": "beta=2"}, "VAE Trainer: set beta with its own input, not in options"),
    ({"options": "free_bits=lots"}, "VAE Trainer: recipe option free_bits must be a number"),
    ({"options": "free_bits"}, "is not key=value"),
    ({"kind": "cvae"}, "recipe cvae is class-conditional and needs a dataset with classes"),
    ({"kind": "vqvae", "options": "codebook_size=16\nz_dim=4"},
     "recipe vqvae: unknown option(s) ['z_dim']"),
])
def test_vae_trainer_refusals_name_the_node_and_the_problem(engine, vae_input, overrides,
                                                            message):
    prompt = {"1": dataset_node(),
              "2": {"class_type": "GANStudioVAETrainer",
                    "inputs": vae_trainer_inputs(**overrides)},
              "3": {"class_type": "GANStudioTrainSteps", "inputs": {
                  "trainer": ["2", 0], "steps": 1, "preview_every": 0}}}
    result = engine.run(prompt)
    assert not result.success
    assert message in result.describe_error()


def node_class(engine, node_id):
    return engine.nodes.NODE_CLASS_MAPPINGS[node_id]


def test_fine_tuning_continues_from_a_trained_vae_and_refuses_a_gan(engine, vae_input):
    dataset = node_class(engine, "GANStudioTrainingDataset").execute(
        SHAPES, 16, "crop", False, "#ffffff").result[0]
    trainer_node = node_class(engine, "GANStudioVAETrainer")
    inputs = {k: v for k, v in vae_trainer_inputs(kind="vqvae", resolution=0).items()
              if k != "dataset"}
    inputs["options"] = "codebook_size=16\ncode_dim=4\nres_blocks=0"
    with torch.inference_mode():  # as the executor calls nodes
        trainer = trainer_node.execute(dataset, **inputs).result[0]
        trained = node_class(engine, "GANStudioTrainSteps").execute(trainer, 2, 0).result[1]
        tuned = trainer_node.execute(dataset, **inputs, model=trained).result[0]
    assert trained.architecture == "vqvae" and trained.can_encode
    for role in ("encoder", "generator"):
        mine, theirs = tuned.nets[role].state_dict(), trained.networks[role].state_dict()
        assert all(torch.equal(mine[k], theirs[k]) for k in mine)

    gan = node_class(engine, "GANStudioLoadModel").execute("tiny_uncond.safetensors").result[0]
    with pytest.raises(Exception, match="VAE Trainer: recipe vqvae trains vqvae models; the "
                                        "given model is dcgan"):
        trainer_node.execute(dataset, **inputs, model=gan)


def test_gan_trainer_takes_more_options_in_its_options_box(engine, vae_input):
    dataset = node_class(engine, "GANStudioTrainingDataset").execute(
        "gan_studio_shapes", 32, "crop", False, "#ffffff").result[0]
    gan_node = node_class(engine, "GANStudioTrainer")
    inputs = {"recipe": "dcgan", "resolution": 0, "batch_size": 8, "lr_g": 0.0005,
              "lr_d": 0.0005, "beta1": 0.5, "beta2": 0.999, "loss": "wgan-gp",
              "diffaugment": "off", "width": 8, "seed": 1}
    trainer = gan_node.execute(dataset, **inputs, options="gp_weight=5\nz_dim=16").result[0]
    assert trainer.recipe.options["gp_weight"] == 5.0 and trainer.recipe.options["z_dim"] == 16
    with pytest.raises(Exception, match="GAN Trainer: set lr_g with its own input"):
        gan_node.execute(dataset, **inputs, options="lr_g=0.1")
