"""The error sweep: a table of bad prompts through the real engine.

Every failure a user can cause must reach them as "Node Name: what is wrong, what to do":
raised as the pack's NodeError (a raw Python exception from our code is a bug), starting
with the failing node's display name and a colon, with no traceback text and no absolute
paths. The table is generated where it can be:

- every Float input of every GAN Studio node gets NaN, inf and -inf (NaN passes ComfyUI's
  min/max checks, so our nodes must refuse it; inf may be refused by validation instead);
- every String input gets an empty string (runs, or fails in one clear line);
- malformed latent files (1-D labels, NaN values, wrong dims, truncated, nested header,
  metadata of the wrong types) through Load Latents, and malformed checkpoints through Load
  GAN Model;
- save prefixes with a NUL byte, '..', an absolute path, an over-long name;
- batches too big for memory (real sizes, and ordinary sizes with the free memory made
  small), and an allocation failure inside a node.

A GAN Studio node with a Float or String input must have a base prompt in BASES, so a new
node joins the sweep when it is added.
"""

from __future__ import annotations

import json
import math
import re
import struct
import sys

import pytest
import torch
from safetensors.torch import save_file
from toy_families import make_text_model, make_translator, pack_library_names, register_toys

import gan_models

pytestmark = pytest.mark.engine

COND, UNCOND, SG2_256, SG3 = ("tiny_cond.safetensors", "tiny_uncond.safetensors",
                              "stylegan2-ffhq-256x256.pkl", "stylegan3-t-ffhqu-256x256.pkl")
TRANSLATOR, TEXT, VAE = "sweep_translator.safetensors", "sweep_text.safetensors", \
    "sweep_vae.safetensors"
TINY_VAE = {"resolution": 16, "z_dim": 8, "base_channels": 8, "max_channels": 16,
            "res_blocks": 0}
SHAPES = "gan_studio_shapes"
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|File \"|line \d+, in ")
ABSOLUTE = re.compile(r"(?<![\w.~])/(?:[\w.@+-]+/)+[\w.@+-]*|\b[A-Za-z]:\\")


# --- prompt pieces --------------------------------------------------------------------------
def load(ckpt):
    return {"class_type": "GANStudioLoadModel", "inputs": {"ckpt_name": ckpt}}


def sample(model="M", batch=2, **kw):
    return {"class_type": "GANStudioSampleLatents", "inputs": {
        "model": [model, 0], "seed": 1, "batch_size": batch, "truncation_psi": 1.0,
        "truncate_normal": 0.0, "seed_mode": "torch", **kw}}


def save_latents(source, prefix="sweep/latents"):
    return {"class_type": "GANStudioSaveLatents", "inputs": {
        "latents": [source, 0], "filename_prefix": prefix}}


def save_image(source, index=0, prefix="sweep/image"):
    return {"class_type": "SaveImage", "inputs": {"images": [source, index],
                                                  "filename_prefix": prefix}}


def generate(latents, model="M"):
    return {"class_type": "GANStudioGenerate", "inputs": {
        "model": [model, 0], "latents": [latents, 0], "chunk_size": 0}}


def empty_image(size=16, batch=1):
    return {"class_type": "EmptyImage", "inputs": {
        "width": size, "height": size, "batch_size": batch, "color": 0x3366CC}}


def dataset(folder=SHAPES, background="#ffffff"):
    return {"class_type": "GANStudioTrainingDataset", "inputs": {
        "folder": folder, "resolution": 32, "fit": "crop", "xflip": False,
        "background": background}}


def gan_trainer(**kw):
    return {"class_type": "GANStudioTrainer", "inputs": {
        "dataset": ["D", 0], "recipe": "cdcgan", "resolution": 0, "batch_size": 4,
        "lr_g": 0.0005, "lr_d": 0.0005, "beta1": 0.5, "beta2": 0.999, "loss": "ns",
        "diffaugment": "off", "width": 8, "seed": 1, **kw}}


def vae_trainer(**kw):
    return {"class_type": "GANStudioVAETrainer", "inputs": {
        "dataset": ["D", 0], "kind": "vae", "resolution": 16, "batch_size": 4, "z_dim": 8,
        "beta": 1.0, "kl_warmup_steps": 0, "lr": 0.001, "width": 8, "seed": 1, **kw}}


def train_steps(trainer="X", **kw):
    return {"class_type": "GANStudioTrainSteps", "inputs": {
        "trainer": [trainer, 0], "steps": 1, "preview_every": 0, "snapshot_minutes": 5.0, **kw}}


def find_directions(model="M"):
    return {"class_type": "GANStudioFindDirections", "inputs": {
        "model": [model, 0], "method": "sefa", "count": 2, "samples": 100, "seed": 0,
        "name": "sweep"}}


def save_directions(source, prefix="sweep/directions"):
    return {"class_type": "GANStudioSaveDirections", "inputs": {
        "directions": [source, 0], "filename_prefix": prefix}}


# Base prompt of each node with a Float or String input: the node under test is "T"; the
# sweep executes up to "T" (a downstream output node only makes the prompt valid).
BASES = {
    "GANStudioSampleLatents": lambda: {"M": load(COND), "T": sample(), "S": save_latents("T")},
    "GANStudioClassCondition": lambda: {
        "M": load(COND), "L": sample(),
        "T": {"class_type": "GANStudioClassCondition", "inputs": {
            "model": ["M", 0], "latents": ["L", 0], "classes": "circle", "mode": "mix"}},
        "S": save_latents("T")},
    "GANStudioClassGenes": lambda: {
        "M": load(COND), "L": sample(),
        "T": {"class_type": "GANStudioClassGenes", "inputs": {
            "model": ["M", 0], "latents": ["L", 0], "seed": 1, "strength": 0.5,
            "new_classes": 1, "per_sample": False}},
        "S": save_latents("T")},
    "GANStudioTextCondition": lambda: {
        "M": load(TEXT), "L": sample(),
        "T": {"class_type": "GANStudioTextCondition", "inputs": {
            "model": ["M", 0], "latents": ["L", 0], "prompts": "red circle", "mode": "mix"}},
        "S": save_latents("T")},
    "GANStudioKeyframePath": lambda: {
        "M": load(COND),
        "T": {"class_type": "GANStudioKeyframePath", "inputs": {
            "model": ["M", 0], "seeds": "1, 2", "frames_per_segment": 2,
            "interpolation": "spline", "easing": "linear", "loop": True,
            "truncation_psi": 1.0, "seconds": 0.0, "fps": 24.0}},
        "S": save_latents("T")},
    "GANStudioLatentWalk": lambda: {
        "M": load(COND),
        "T": {"class_type": "GANStudioLatentWalk", "inputs": {
            "model": ["M", 0], "seed": 0, "frames": 4, "smoothness": 0.75, "loop": True,
            "truncation_psi": 1.0, "seconds": 0.0, "fps": 24.0}},
        "S": save_latents("T")},
    "GANStudioStyleGAN3View": lambda: {
        "M": load(SG3), "L": sample(),
        "T": {"class_type": "GANStudioStyleGAN3View", "inputs": {
            "model": ["M", 0], "latents": ["L", 0], "translate_x": 0.0, "translate_y": 0.0,
            "rotate": 0.0}},
        "S": save_latents("T")},
    "GANStudioPickLatents": lambda: {
        "M": load(COND), "L": sample(),
        "T": {"class_type": "GANStudioPickLatents", "inputs": {
            "latents": ["L", 0], "indices": "0"}},
        "S": save_latents("T")},
    "GANStudioSaveLatents": lambda: {"M": load(COND), "L": sample(), "T": save_latents("L")},
    "GANStudioSaveImages": lambda: {
        "M": load(COND), "L": sample(), "G": generate("L"),
        "T": {"class_type": "GANStudioSaveImages", "inputs": {
            "images": ["G", 0], "filename_prefix": "sweep/frame", "latents": ["L", 0]}}},
    "GANStudioSaveModel": lambda: {
        "M": load(UNCOND),
        "T": {"class_type": "GANStudioSaveModel", "inputs": {
            "model": ["M", 0], "filename_prefix": "sweep/model",
            "include_discriminator": False}}},
    "GANStudioTranslateImage": lambda: {
        "M": load(TRANSLATOR), "E": empty_image(8),
        "T": {"class_type": "GANStudioTranslateImage", "inputs": {
            "model": ["M", 0], "images": ["E", 0], "strength": 1.0}},
        "S": save_image("T")},
    "GANStudioEncodeImages": lambda: {
        "M": load(VAE), "E": empty_image(),
        "T": {"class_type": "GANStudioEncodeImages", "inputs": {
            "model": ["M", 0], "images": ["E", 0], "mode": "mean", "seed": 0,
            "size_handling": "crop", "classes": ""}},
        "S": save_latents("T")},
    "GANStudioReconstruct": lambda: {
        "M": load(VAE), "E": empty_image(),
        "T": {"class_type": "GANStudioReconstruct", "inputs": {
            "model": ["M", 0], "images": ["E", 0], "size_handling": "crop", "classes": "",
            "pairs_per_row": 4}},
        "S": save_image("T")},
    "GANStudioLatentArithmetic": lambda: {
        "M": load(COND), "L": sample(),
        "T": {"class_type": "GANStudioLatentArithmetic", "inputs": {
            "latents_a": ["L", 0], "weight_a": 1.0, "weight_b": 1.0, "weight_c": 1.0,
            "latents_b": ["L", 0]}},
        "S": save_latents("T")},
    "GANStudioProjectImage": lambda: {
        "M": load(UNCOND), "E": empty_image(32),
        "T": {"class_type": "GANStudioProjectImage", "inputs": {
            "model": ["M", 0], "images": ["E", 0], "steps": 2, "perceptual": "none"}},
        "S": save_latents("T")},
    "GANStudioFindDirections": lambda: {"M": load(SG3), "T": find_directions(),
                                        "S": save_directions("T")},
    "GANStudioApplyDirection": lambda: {
        "M": load(SG3), "L": sample(), "F": find_directions(),
        "T": {"class_type": "GANStudioApplyDirection", "inputs": {
            "model": ["M", 0], "latents": ["L", 0], "directions": ["F", 0], "direction": "0",
            "strengths": "2"}},
        "S": save_latents("T")},
    "GANStudioDirectionExplorer": lambda: {
        "M": load(SG3), "L": sample(), "F": find_directions(),
        "T": {"class_type": "GANStudioDirectionExplorer", "inputs": {
            "model": ["M", 0], "latents": ["L", 0], "directions": ["F", 0], "show": "0-1",
            "strengths": "-1, 1"}},
        "S": save_image("T")},
    "GANStudioSaveDirections": lambda: {"M": load(SG3), "F": find_directions(),
                                        "T": save_directions("F")},
    "GANStudioTrainingDataset": lambda: {
        "T": dataset(), "X": gan_trainer(dataset=["T", 0]), "S": train_steps()},
    "GANStudioTrainer": lambda: {"D": dataset(), "T": gan_trainer(), "S": train_steps("T")},
    "GANStudioVAETrainer": lambda: {"D": dataset(), "T": vae_trainer(), "S": train_steps("T")},
    "GANStudioTrainSteps": lambda: {"D": dataset(), "X": gan_trainer(), "T": train_steps()},
    "GANStudioNeuralStyle": lambda: {
        "C": empty_image(32, 2), "Y": empty_image(32, 1),
        "T": {"class_type": "GANStudioNeuralStyle", "inputs": {
            "content": ["C", 0], "style": ["Y", 0], "steps": 1, "size": 32}},
        "S": save_image("T")},
    "GANStudioPairedDataset": lambda: {
        "T": {"class_type": "GANStudioPairedDataset", "inputs": {
            "folder": SHAPES, "pairing": "paired", "resolution": 32}},
        "X": gan_trainer(dataset=["T", 0], recipe="pix2pix", width=4, options="ndf=4"),
        "S": train_steps()},
    "GANStudioStyleTrainer": lambda: {
        "C": empty_image(32, 2), "Y": empty_image(32, 1),
        "D": {"class_type": "GANStudioPairedDataset", "inputs": {
            "folder": "", "pairing": "style", "resolution": 32, "images_a": ["C", 0],
            "images_b": ["Y", 0]}},
        "T": {"class_type": "GANStudioStyleTrainer", "inputs": {
            "dataset": ["D", 0], "batch_size": 2, "width": 4}},
        "S": train_steps("T")},
}


# --- the engine side ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sweep(engine, engine_dirs):
    """Models the base prompts need, written once."""
    for name in pack_library_names():
        register_toys(name)
    gan = engine_dirs["models"] / "gan"
    gan_models.save_model(make_translator(seed=3), gan / TRANSLATOR)
    gan_models.save_model(make_text_model(seed=3), gan / TEXT)
    torch.manual_seed(0)
    gan_models.save_model(gan_models.GenerativeModel.create("vae", TINY_VAE), gan / VAE)
    return engine


def our_nodes(engine) -> dict[str, object]:
    return {name: cls for name, cls in engine.nodes.NODE_CLASS_MAPPINGS.items()
            if name.startswith("GANStudio")}


def schema_of(cls):
    return cls.define_schema()


def display_names(engine) -> dict[str, str]:
    return {name: schema_of(cls).display_name for name, cls in our_nodes(engine).items()}


def inputs_of_kind(engine, kind: str) -> list[tuple[str, str]]:
    """(node type, input id) of every `kind` ("Float" or "String") input of our nodes."""
    from comfy_api.v0_0_2 import io

    wanted = getattr(io, kind).Input
    return sorted((name, inp.id) for name, cls in our_nodes(engine).items()
                  for inp in schema_of(cls).inputs if isinstance(inp, wanted))


def engine_paths(engine, engine_dirs) -> list[str]:
    import folder_paths

    return [str(p) for p in (*engine_dirs.values(), engine.comfy_dir,
                             folder_paths.get_output_directory(),
                             folder_paths.get_input_directory())]


def assert_user_error(engine, engine_dirs, result, node_type=None) -> str:
    """The run failed in one line for the user; returns the message."""
    assert not result.success, "the bad prompt ran"
    if result.validation_error is not None and result.error is None:
        return result.describe_error()  # ComfyUI's own validation refused it: fine
    err = result.error
    assert err is not None, result.describe_error()
    names = display_names(engine)
    message = err["exception_message"].strip()
    failing = err["node_type"]
    if node_type is not None:
        assert failing == node_type, message
    assert failing in names, f"failed outside the pack ({failing}): {message}"
    assert err["exception_type"].split(".")[-1] == "NodeError", (
        f"raw {err['exception_type']} from {failing}: {message}")
    assert message.startswith(f"{names[failing]}: "), message
    assert "\n" not in message, message
    assert not TRACEBACK.search(message), message
    assert not ABSOLUTE.search(message), message
    for path in engine_paths(engine, engine_dirs):
        assert path not in message, message
    return message


def run(engine, prompt, through=None):
    """Run `prompt` (through node `through` only, when given). Widget inputs a base prompt
    leaves out get their schema default, so the table survives new inputs."""
    nodes = our_nodes(engine)
    for node in prompt.values():
        cls = nodes.get(node["class_type"])
        for inp in schema_of(cls).inputs if cls is not None else ():
            default = getattr(inp, "default", None)
            if inp.id not in node["inputs"] and not inp.optional and default is not None:
                node["inputs"][inp.id] = default
    return engine.run(prompt, outputs=[through] if through else None)


# --- generated cases: every Float input, every String input ----------------------------------
def test_every_node_runs_through_the_one_error_path(sweep):
    """Every execute is wrapped by nodes.common.user_errors under the node's display name."""
    for name, cls in our_nodes(sweep).items():
        wrapped = getattr(cls.execute, "display_name", None)
        assert wrapped == schema_of(cls).display_name, f"{name}: user_errors({wrapped!r})"


def test_every_node_with_a_number_or_text_input_has_a_base_prompt(sweep):
    nodes = {n for n, _ in inputs_of_kind(sweep, "Float") + inputs_of_kind(sweep, "String")}
    assert nodes <= set(BASES), f"add base prompts for {sorted(nodes - set(BASES))}"
    for node_type, build in BASES.items():
        assert build()["T"]["class_type"] == node_type


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, float("1e309")],
                         ids=["nan", "inf", "-inf", "1e309"])
def test_non_finite_floats_are_refused_naming_the_input(sweep, engine_dirs, bad):
    cases = inputs_of_kind(sweep, "Float")
    assert len(cases) >= 20
    names = display_names(sweep)
    for node_type, key in cases:
        prompt = BASES[node_type]()
        prompt["T"]["inputs"][key] = bad
        result = run(sweep, prompt, "T")
        message = assert_user_error(sweep, engine_dirs, result, node_type)
        assert key in message, message
        if result.error is not None:
            assert message.startswith(f"{names[node_type]}: {key} is not a finite number ("), \
                message
            assert "use a value between" in message, message
        else:
            assert not math.isnan(bad), f"NaN must reach the node: {message}"


def test_the_nan_message(sweep):
    prompt = BASES["GANStudioSampleLatents"]()
    prompt["T"]["inputs"]["truncation_psi"] = math.nan
    result = run(sweep, prompt, "T")
    assert result.error["exception_message"].strip() == (
        "Sample Latents: truncation_psi is not a finite number (nan); use a value between 0 "
        "and 2")


def test_empty_text_inputs_run_or_fail_in_one_line(sweep, engine_dirs):
    cases = inputs_of_kind(sweep, "String")
    assert len(cases) >= 12
    outcomes = {}
    for node_type, key in cases:
        prompt = BASES[node_type]()
        prompt["T"]["inputs"][key] = ""
        result = run(sweep, prompt, "T")
        outcomes[node_type, key] = result.success or assert_user_error(
            sweep, engine_dirs, result, node_type)
    # the ones that cannot mean anything empty say so
    assert "no class given" in outcomes["GANStudioClassCondition", "classes"]
    assert "no seeds given" in outcomes["GANStudioKeyframePath", "seeds"]
    assert "no indices given" in outcomes["GANStudioPickLatents", "indices"]


@pytest.mark.parametrize("node_type", ["GANStudioTrainer", "GANStudioVAETrainer"])
def test_non_finite_numbers_in_recipe_options_are_refused(sweep, engine_dirs, node_type):
    prompt = BASES[node_type]()
    prompt["T"]["inputs"]["options"] = "ema_kimg=1e309"
    message = assert_user_error(sweep, engine_dirs, run(sweep, prompt, "T"), node_type)
    assert "ema_kimg" in message, message


# --- save prefixes ---------------------------------------------------------------------------
SAVERS = ["GANStudioSaveLatents", "GANStudioSaveImages", "GANStudioSaveModel",
          "GANStudioSaveDirections"]


@pytest.mark.parametrize("prefix, fragment", [
    ("bad\x00name", "control character"),
    ("../escape", "points outside"),
    ("sub/../../escape", "points outside"),
    ("/tmp/gs_sweep_abs", "absolute path"),
    ("x" * 300, "longer than"),
], ids=["nul", "dotdot", "nested-dotdot", "absolute", "too-long"])
def test_bad_save_prefixes(sweep, engine_dirs, prefix, fragment):
    for node_type in SAVERS:
        prompt = BASES[node_type]()
        prompt["T"]["inputs"]["filename_prefix"] = prefix
        message = assert_user_error(sweep, engine_dirs, run(sweep, prompt), node_type)
        assert fragment in message, message
        assert "filename_prefix" in message, message


# --- malformed latent files --------------------------------------------------------------------
def _meta(**overrides):
    meta = {"format": "gan-studio-latents", "version": 1, "space": "z", "model_id": None,
            "truncation_psi": 1.0, "seeds": None, "extra": {}, "notes": {}}
    meta.update(overrides)
    return meta


def _latent_file(path, values, labels=None, raw_meta=None, **meta):
    tensors = {"values": values}
    if labels is not None:
        tensors["labels"] = labels
    text = raw_meta if raw_meta is not None else json.dumps(_meta(**meta))
    save_file(tensors, str(path), metadata={"gan_studio_latents": text})


def _nested_header(path):
    header = b'{"__metadata__":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    path.write_bytes(struct.pack("<Q", len(header)) + header)


Z = 16  # z size of the tiny models
LATENT_FILES = {
    "labels_1d": (lambda p: _latent_file(p, torch.randn(2, Z), torch.ones(2)), "class/text"),
    "labels_rows": (lambda p: _latent_file(p, torch.randn(2, Z), torch.ones(3, 3)),
                    "one row per latent"),
    "nan_values": (lambda p: _latent_file(p, torch.full((2, Z), math.nan)), "NaN"),
    "inf_values": (lambda p: _latent_file(p, torch.full((2, Z), math.inf)), "NaN or infinite"),
    "nan_labels": (lambda p: _latent_file(p, torch.randn(2, Z), torch.full((2, 3), math.nan)),
                   "NaN"),
    "values_1d": (lambda p: _latent_file(p, torch.randn(Z)), "2-D"),
    "values_4d": (lambda p: _latent_file(p, torch.randn(1, 2, 3, Z), space="w+"), "3-D"),
    "no_latents": (lambda p: _latent_file(p, torch.zeros(0, Z)), "at least one"),
    "wrong_size": (lambda p: _latent_file(p, torch.randn(2, 7)), "do not fit"),
    "text_values": (lambda p: _latent_file(p, torch.zeros(2, Z, dtype=torch.bool)),
                    "not numbers"),
    "psi_nan": (lambda p: _latent_file(p, torch.randn(2, Z), truncation_psi=math.nan),
                "truncation_psi"),
    "psi_text": (lambda p: _latent_file(p, torch.randn(2, Z), truncation_psi="high"),
                 "truncation_psi"),
    "version_text": (lambda p: _latent_file(p, torch.randn(2, Z), version="1"), "version"),
    "version_new": (lambda p: _latent_file(p, torch.randn(2, Z), version=99), "newer"),
    "space_unknown": (lambda p: _latent_file(p, torch.randn(2, Z), space="q"), "space"),
    "seeds_text": (lambda p: _latent_file(p, torch.randn(2, Z), seeds="1, 2"), "seeds"),
    "seeds_count": (lambda p: _latent_file(p, torch.randn(2, Z), seeds=[1]), "seeds"),
    "seeds_negative": (lambda p: _latent_file(p, torch.randn(2, Z), seeds=[-1, 2]), "seeds"),
    "extra_list": (lambda p: _latent_file(p, torch.randn(2, Z), extra=[1]), "extra"),
    "model_id_number": (lambda p: _latent_file(p, torch.randn(2, Z), model_id=5), "model id"),
    "view_text": (lambda p: _latent_file(p, torch.randn(2, Z), view="left"), "view"),
    "cutoff_text": (lambda p: _latent_file(p, torch.randn(2, Z), truncation_cutoff="all"),
                    "truncation_cutoff"),
    "meta_not_json": (lambda p: _latent_file(p, torch.randn(2, Z), raw_meta="{nope"),
                      "not valid JSON"),
    "meta_list": (lambda p: _latent_file(p, torch.randn(2, Z), raw_meta="[1, 2]"),
                  "not a JSON object"),
    "meta_nested": (lambda p: _latent_file(p, torch.randn(2, Z),
                                           raw_meta="[" * 100_000 + "]" * 100_000),
                    "nested too deeply"),
    "header_nested": (_nested_header, "not a GAN Studio latent file"),
    "truncated": (None, "truncated"),
    "empty": (lambda p: p.write_bytes(b""), "not a GAN Studio latent file"),
}


@pytest.fixture(scope="module")
def latent_files(sweep, engine_dirs):
    folder = engine_dirs["input"] / "sweep_latents"
    folder.mkdir(exist_ok=True)
    for name, (write, _fragment) in LATENT_FILES.items():
        if write is not None:
            write(folder / f"{name}.safetensors")
    good = folder / "good.safetensors"
    _latent_file(good, torch.randn(64, Z))
    (folder / "truncated.safetensors").write_bytes(good.read_bytes()[:-100])
    return folder


@pytest.mark.parametrize("name", sorted(LATENT_FILES))
def test_malformed_latent_files(sweep, engine_dirs, latent_files, name):
    prompt = {"M": load(COND),
              "LL": {"class_type": "GANStudioLoadLatents",
                     "inputs": {"latent_file": f"sweep_latents/{name}.safetensors"}},
              "G": generate("LL"), "S": save_image("G")}
    message = assert_user_error(sweep, engine_dirs, run(sweep, prompt))
    assert LATENT_FILES[name][1] in message, message
    if name != "wrong_size":  # that one loads, and Generate Images refuses it
        assert message.startswith("Load Latents: ") and f"{name}.safetensors" in message, \
            message


def test_a_good_latent_file_still_loads(sweep, latent_files):
    prompt = {"M": load(UNCOND),
              "LL": {"class_type": "GANStudioLoadLatents",
                     "inputs": {"latent_file": "sweep_latents/good.safetensors"}},
              "G": generate("LL"), "S": save_image("G")}
    result = run(sweep, prompt)
    assert result.success, result.describe_error()


# --- misuse: inputs that do not fit each other ------------------------------------------------
def solid_mask(width, height):
    return {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": width,
                                                  "height": height}}


def _misuse():
    def base(node_type, **inputs):
        prompt = BASES[node_type]()
        prompt["T"]["inputs"].update(inputs)
        return prompt

    def style_mix(ckpt, **inputs):
        return {"M": load(ckpt), "L": sample(),
                "T": {"class_type": "GANStudioStyleMix", "inputs": {
                    "model": ["M", 0], "base": ["L", 0], "donor": ["L", 0], "preset": "coarse",
                    "layer_start": 0, "layer_end": 4, "layout": "pairwise", **inputs}},
                "S": save_latents("T")}

    def two_models(class_type, **inputs):
        return {"M": load(COND), "N": load(SG3), "A": sample(), "B": sample("N"),
                "T": {"class_type": class_type, "inputs": {
                    "latents_a": ["A", 0], "latents_b": ["B", 0], **inputs}},
                "S": save_latents("T")}

    translate_masked = base("GANStudioTranslateImage", mask=["K", 0])
    translate_masked["K"] = {"class_type": "SolidMask", "inputs": {
        "value": 1.0, "width": 3, "height": 5}}
    encode_masked = base("GANStudioEncodeImages", mask=["K", 0])
    encode_masked["K"] = solid_mask(7, 5)
    keyframes_other_model = base("GANStudioKeyframePath", keyframes=["K", 0])
    keyframes_other_model.update({"N": load(SG3), "K": sample("N")})
    w_on_dcgan = {"M": load(COND), "N": load(SG3), "L": sample("N", space="w"),
                  "T": generate("L"), "S": save_image("T")}
    return {
        "style mix on a DCGAN": (style_mix(COND), "not a style-based model"),
        "style mix empty custom layers": (style_mix(SG3, preset="custom", layer_start=40,
                                                    layer_end=41), "empty"),
        "view on a StyleGAN2": ({"M": load(SG2_256), "L": sample(),
                                 "T": {"class_type": "GANStudioStyleGAN3View", "inputs": {
                                     "model": ["M", 0], "latents": ["L", 0],
                                     "translate_x": 0.1, "translate_y": 0.0, "rotate": 0.0}},
                                 "S": save_latents("T")}, "StyleGAN3"),
        "w space on a DCGAN": (base("GANStudioSampleLatents", space="w"), "no W space"),
        "cutoff on a DCGAN": (base("GANStudioSampleLatents", truncation_cutoff=2),
                              "truncation_cutoff"),
        "w latents into a DCGAN": (w_on_dcgan, "style-based"),
        "interpolate across models": (two_models(
            "GANStudioInterpolateLatents", steps=3, method="auto", easing="linear",
            include_end=True), "different shapes"),
        "concat across models": (two_models("GANStudioConcatLatents"), "different shapes"),
        "keyframes of another model": (keyframes_other_model, "do not fit"),
        "text condition on a class model": (base("GANStudioTextCondition") | {"M": load(COND)},
                                            "text"),
        "class condition on a text model": (base("GANStudioClassCondition") | {"M": load(TEXT)},
                                            "no class condition"),
        "class weight NaN": (base("GANStudioClassCondition", classes="circle:nan"),
                             "not a finite number"),
        "class weight 1e309": (base("GANStudioClassCondition", classes="circle:1e309"),
                               "not a finite number"),
        "class weights zero": (base("GANStudioClassCondition", classes="circle:0"),
                               "add up to 0"),
        "class genes on a text model": (base("GANStudioClassGenes") | {"M": load(TEXT)},
                                        "no class condition"),
        "encode classes on an unconditional VAE": (base("GANStudioEncodeImages",
                                                        classes="circle"),
                                                   "no class condition"),
        "translate with a mask of another size": (translate_masked, None),
        "encode with a mask of another size": (encode_masked, None),
        "pick out of range": (base("GANStudioPickLatents", indices="5"), "out of range"),
        "generate with a translator": ({"M": load(TRANSLATOR), "N": load(COND), "L": sample("N"),
                                        "T": generate("L"), "S": save_image("T")}, "generate"),
        "translate with a GAN": (base("GANStudioTranslateImage") | {"M": load(COND)},
                                 "translate"),
    }


@pytest.mark.parametrize("case", sorted(_misuse()))
def test_misuse_fails_in_one_line(sweep, engine_dirs, case):
    prompt, fragment = _misuse()[case]
    result = run(sweep, prompt)
    if fragment is None and result.success:  # e.g. a mask that is resized: fine
        return
    message = assert_user_error(sweep, engine_dirs, result)
    assert fragment in message, message


# --- malformed checkpoints (gan_models/formats reads them; listed here so the sweep sees them) ---
def _checkpoint_variants(gan):
    """Copies of a good checkpoint with its metadata replaced: {name: fragment}."""
    from safetensors import safe_open

    with safe_open(str(gan / UNCOND), "pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    base = json.loads(meta["gan_studio"])
    config = base["config"]
    cases = {
        "ck_arch_number": ({**base, "architecture": 5}, "unknown architecture"),
        "ck_config_text": ({**base, "config": "x"}, "config"),
        "ck_resolution_text": ({**base, "config": {**config, "resolution": "a"}}, "resolution"),
        "ck_resolution_huge": ({**base, "config": {**config, "resolution": 2**20}},
                               "resolution"),
        "ck_meta_list": ([1, 2], "not a JSON object"),
        "ck_meta_nested": ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        "ck_z_negative": ({**base, "config": {**config, "z_dim": -3}}, "z_dim"),
        "ck_classes_number": ({**base, "class_names": 7}, "class"),
        "ck_version_text": ({**base, "format_version": "x"}, "version"),
    }
    for name, (value, _fragment) in cases.items():
        text = value if isinstance(value, str) else json.dumps(value)
        save_file(tensors, str(gan / f"{name}.safetensors"), metadata={**meta, "gan_studio": text})
    _nested_header(gan / "ck_header_nested.safetensors")
    cases["ck_header_nested"] = (None, "nested too deeply")
    return {name: fragment for name, (_value, fragment) in cases.items()}


CHECKPOINT_CASES = ["ck_arch_number", "ck_config_text", "ck_resolution_text",
                    "ck_resolution_huge", "ck_meta_list", "ck_meta_nested", "ck_header_nested",
                    "ck_z_negative", "ck_classes_number", "ck_version_text"]


@pytest.fixture(scope="module")
def checkpoints(sweep, engine_dirs):
    return _checkpoint_variants(engine_dirs["models"] / "gan")


@pytest.mark.parametrize("name", CHECKPOINT_CASES)
def test_malformed_checkpoints(sweep, engine_dirs, checkpoints, name):
    prompt = {"M": load(f"{name}.safetensors"), "L": sample(), "G": generate("L"),
              "S": save_image("G")}
    message = assert_user_error(sweep, engine_dirs, run(sweep, prompt), "GANStudioLoadModel")
    assert checkpoints[name] in message, message


# --- memory -------------------------------------------------------------------------------------
PEAK = re.compile(r"^[^:]+: \d+ (images?|latents?) of \d+(x\d+)* need ~[\d.]+ [KMG]iB at peak, "
                  r"more than half the free memory \([\d.]+ [KMG]iB\); use (a smaller batch|fewer "
                  r"frames|fewer copies|shorter batches)$")


def test_a_batch_too_big_for_memory_is_refused_before_allocating(sweep, engine_dirs):
    prompt = {"M": load(SG2_256), "L": sample(batch=4096),
              "R": {"class_type": "GANStudioRepeatLatents", "inputs": {
                  "latents": ["L", 0], "times": 24, "mode": "whole batch"}},
              "G": generate("R"), "S": save_image("G")}
    message = assert_user_error(sweep, engine_dirs, run(sweep, prompt), "GANStudioGenerate")
    assert PEAK.match(message) and "98304 images of 256x256" in message, message


def _small_memory_cases():
    keyframes = BASES["GANStudioKeyframePath"]()
    keyframes["T"]["inputs"]["frames_per_segment"] = 5000
    walk = BASES["GANStudioLatentWalk"]()
    walk["T"]["inputs"]["frames"] = 20000
    interpolate = {"M": load(COND), "L": sample(),
                   "T": {"class_type": "GANStudioInterpolateLatents", "inputs": {
                       "latents_a": ["L", 0], "latents_b": ["L", 0], "steps": 5000,
                       "method": "auto", "easing": "linear", "include_end": True}},
                   "S": save_latents("T")}
    repeat = {"M": load(COND), "L": sample(batch=64),
              "T": {"class_type": "GANStudioRepeatLatents", "inputs": {
                  "latents": ["L", 0], "times": 1000, "mode": "whole batch"}},
              "S": save_latents("T")}
    big_image = {"E": empty_image(size=256, batch=8)}
    translate = BASES["GANStudioTranslateImage"]() | big_image
    encode = BASES["GANStudioEncodeImages"]() | big_image
    reconstruct = BASES["GANStudioReconstruct"]() | big_image
    gen = {"M": load(COND), "L": sample(batch=256), "T": generate("L"), "S": save_image("T")}
    return {"Generate": gen, "Translate": translate, "Encode": encode,
            "Reconstruct": reconstruct, "Keyframe": keyframes, "Walk": walk,
            "Interpolate": interpolate, "Repeat": repeat}


@pytest.mark.parametrize("case", sorted(_small_memory_cases()))
def test_peak_estimates_refuse_when_memory_is_short(sweep, engine_dirs, monkeypatch, case):
    import comfy.model_management as mm

    monkeypatch.setattr(mm, "get_free_memory", lambda *a, **k: 2 * 2**20)  # 2 MiB free
    prompt = _small_memory_cases()[case]
    message = assert_user_error(sweep, engine_dirs, run(sweep, prompt, "T"),
                                prompt["T"]["class_type"])
    assert PEAK.match(message), message


CPU_ALLOC = RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: "
                         "can't allocate memory: you tried to allocate 68719476736 bytes. "
                         "Error code 12 (Cannot allocate memory)")
GPU_ALLOC = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has "
                                   "a total capacity of 8.00 GiB of which 1.00 GiB is free.")


@pytest.mark.parametrize("error, expected", [
    (CPU_ALLOC, "Generate Images: not enough memory (it needed 64.0 GiB more); use a smaller "
                "batch"),
    (GPU_ALLOC, "Generate Images: not enough GPU memory (it needed 2.00 GiB more); use a "
                "smaller batch or chunk size"),
], ids=["cpu", "gpu"])
def test_an_allocation_failure_becomes_a_memory_message(sweep, engine_dirs, monkeypatch,
                                                        error, expected):
    def out_of_memory(*args, **kwargs):
        raise error

    modules = [m for name, m in sys.modules.items()
               if name.endswith("nodes.sample") and hasattr(m, "generate_in_chunks")]
    assert modules
    for module in modules:
        monkeypatch.setattr(module, "generate_in_chunks", out_of_memory)
    prompt = {"M": load(COND), "L": sample(), "T": generate("L"), "S": save_image("T")}
    message = assert_user_error(sweep, engine_dirs, run(sweep, prompt), "GANStudioGenerate")
    assert message == expected, message


def test_a_bug_is_not_dressed_up_as_a_user_error(sweep, monkeypatch):
    """Only what a user can fix becomes a NodeError: a bug stays its own exception."""
    def bug(*args, **kwargs):
        raise RuntimeError("shape mismatch inside the network")

    for name, module in sys.modules.items():
        if name.endswith("nodes.sample") and hasattr(module, "generate_in_chunks"):
            monkeypatch.setattr(module, "generate_in_chunks", bug)
    prompt = {"M": load(COND), "L": sample(), "T": generate("L"), "S": save_image("T")}
    result = run(sweep, prompt)
    assert result.error["exception_type"].split(".")[-1] == "RuntimeError"


def test_the_engine_keeps_serving_after_the_sweep(sweep):
    prompt = {"M": load(COND), "L": sample(batch=1), "G": generate("L"),
              "S": save_image("G", prefix="sweep/after")}
    result = run(sweep, prompt)
    assert result.success, result.describe_error()

