"""Bad prompts against the limited server: text that would expand to millions of items, NaN
and overflowing numbers, NaN latent files and save prefixes with control characters. Each
is refused with its exact message within its time and memory ceilings, and the server
answers /system_stats throughout (ceilings.py says how that is measured)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from ceilings import execution_error, measure, print_timings
from safetensors.torch import save_file

pytestmark = pytest.mark.server
COND = "tiny_cond.safetensors"
NAN_LATENTS = "bad_prompts_nan.safetensors"
TIMINGS: dict[str, tuple[float, float, float]] = {}  # case: (seconds, slowest answer, MB)


def load():
    return {"class_type": "GANStudioLoadModel", "inputs": {"ckpt_name": COND}}


def sample(**kw):
    return {"class_type": "GANStudioSampleLatents", "inputs": {
        "model": ["M", 0], "seed": 1, "batch_size": 2, "truncation_psi": 1.0,
        "truncate_normal": 0.0, "seed_mode": "torch", **kw}}


def generate(latents="L"):
    return {"class_type": "GANStudioGenerate", "inputs": {
        "model": ["M", 0], "latents": [latents, 0], "chunk_size": 0}}


def save(images="G", prefix="bad_prompts"):
    return {"class_type": "SaveImage", "inputs": {"images": [images, 0],
                                                  "filename_prefix": prefix}}


def keyframes(seeds):
    return {"M": load(), "K": {"class_type": "GANStudioKeyframePath", "inputs": {
        "model": ["M", 0], "seeds": seeds, "frames_per_segment": 2, "interpolation": "spline",
        "easing": "linear", "loop": True, "truncation_psi": 1.0, "seconds": 0.0,
        "fps": 24.0}}, "G": generate("K"), "S": save()}


def classes(text):
    return {"M": load(), "L": sample(), "C": {"class_type": "GANStudioClassCondition",
                                              "inputs": {"model": ["M", 0], "latents": ["L", 0],
                                                         "classes": text, "mode": "mix"}},
            "G": generate("C"), "S": save()}


def arithmetic(weight):
    return {"M": load(), "L": sample(), "A": {"class_type": "GANStudioLatentArithmetic",
                                              "inputs": {"latents_a": ["L", 0], "weight_a": weight,
                                                         "weight_b": 1.0, "weight_c": 1.0,
                                                         "latents_b": ["L", 0]}},
            "G": generate("A"), "S": save()}


def sampled(**kw):
    return {"M": load(), "L": sample(**kw), "G": generate(), "S": save()}


def pick(indices):
    return {"M": load(), "L": sample(), "P": {"class_type": "GANStudioPickLatents", "inputs": {
        "latents": ["L", 0], "indices": indices}}, "G": generate("P"), "S": save()}


def nan_latent_file():
    return {"M": load(), "L": {"class_type": "GANStudioLoadLatents",
                               "inputs": {"latent_file": NAN_LATENTS}},
            "G": generate(), "S": save()}


def save_images(prefix):
    return {"M": load(), "L": sample(), "G": generate(), "S": {
        "class_type": "GANStudioSaveImages", "inputs": {
            "images": ["G", 0], "filename_prefix": prefix, "latents": ["L", 0],
            "model": ["M", 0]}}}


@dataclass(frozen=True)
class BadPrompt:
    name: str
    prompt: Callable[[], dict]
    node: str          # the node the message names (class type; None for validation refusals)
    message: str       # regex the whole message must match
    seconds: float     # time ceiling, posting to answer


LIMIT = r"the limit is 100,000"
CASES = [
    BadPrompt("seed range of a million", lambda: keyframes("0-1000000"), "GANStudioKeyframePath",
              r"Keyframe Path: seeds '0-1000000' would make 1,000,001 seeds; " + LIMIT, 5),
    BadPrompt("4 KB of million-seed ranges", lambda: keyframes("0-1000000," * 400),
              "GANStudioKeyframePath",
              r"Keyframe Path: seeds '0-1000000' would make 1,000,001 seeds; " + LIMIT, 5),
    BadPrompt("64 KiB of text", lambda: classes("circle, " * 10_000), "GANStudioClassCondition",
              r"Class Condition: the class list text is 80,000 characters long; the limit is 65,536", 5),
    BadPrompt("index range of a billion", lambda: pick("0-1000000000"), "GANStudioPickLatents",
              r"Pick Latents: indices '0-1000000000' would make 1,000,000,001 indices; the "
              r"limit is .*", 5),
    BadPrompt("NaN truncation", lambda: sampled(truncation_psi=float("nan")),
              "GANStudioSampleLatents",
              r"Sample Latents: truncation_psi is not a finite number \(nan\); use a value "
              r"between 0(\.0)? and 2(\.0)?", 5),
    BadPrompt("1e309 truncation", lambda: sampled(truncation_psi=float("inf")), None,
              r".*truncation_psi.*", 5),
    BadPrompt("NaN class weight", lambda: classes("circle:nan, square"),
              "GANStudioClassCondition",
              r"Class Condition: weight of 'circle' is not a finite number \(nan\).*", 5),
    BadPrompt("1e309 class weight", lambda: classes("circle:1e309"), "GANStudioClassCondition",
              r"Class Condition: weight of 'circle' is not a finite number \(1e309\).*", 5),
    BadPrompt("NaN arithmetic weight", lambda: arithmetic(float("nan")),
              "GANStudioLatentArithmetic",
              r"Latent Arithmetic: weight_a is not a finite number \(nan\).*", 5),
    BadPrompt("NaN latent file", nan_latent_file, "GANStudioLoadLatents",
              r"Load Latents: " + re.escape(NAN_LATENTS) + r".*(NaN|not finite).*", 5),
    BadPrompt("NUL in a save prefix", lambda: save_images("bad\x00name"), "GANStudioSaveImages",
              r"Save Images \(GAN Studio\): .*control character.*", 5),
]


@pytest.fixture(scope="module")
def bad_server(limited_server):
    values = torch.randn(2, 16)
    values[0, 3] = float("nan")
    meta = {"format": "gan-studio-latents", "version": 1, "space": "z", "model_id": None,
            "truncation_psi": 1.0, "seeds": None, "extra": {}, "notes": {}}
    save_file({"values": values}, str(Path(limited_server.dirs["input"]) / NAN_LATENTS),
              metadata={"gan_studio_latents": json.dumps(meta)})
    yield limited_server
    print_timings("bad prompts", TIMINGS)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bad_prompt_is_refused_within_its_ceilings(bad_server, case):
    got = measure(bad_server, case.prompt(), timeout=case.seconds + 30)
    TIMINGS[case.name] = (got.seconds, got.slowest_answer, got.grown_mb)
    if case.node is None:  # ComfyUI's own validation refuses it before anything runs
        assert got.code == 400, got.answer
        message = json.dumps(got.answer["node_errors"])
        assert re.search(case.message, message), message
    else:
        assert got.code == 200, got.answer
        node, message = execution_error(got.entry)
        assert node == case.node, message
        assert re.fullmatch(case.message, message), message
    got.check_ceilings(case.seconds, case.name)
