"""Hostile checkpoints against a real server: each is refused with its exact message within
its time and memory ceilings, and the server answers /system_stats throughout (see
ceilings.py for the address-space limit and how memory and answers are measured). The cases
and their messages are in tests/fixtures_hostile.py (HOSTILE), shared with the unit tests.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ceilings import execution_error, measure, print_timings
from engine_prompts import sample_prompt
from fixtures_hostile import HOSTILE

pytestmark = pytest.mark.server
TIMINGS: dict[str, tuple[float, float, float]] = {}  # file: (seconds, slowest answer, MB)


@pytest.fixture(scope="module")
def hostile_server(limited_server):
    gan = Path(limited_server.dirs["models"]) / "gan"
    for case in HOSTILE:
        case.build(gan / case.file)
    yield limited_server
    print_timings("hostile checkpoints", TIMINGS)


@pytest.mark.parametrize("case", HOSTILE, ids=lambda c: c.file)
def test_hostile_checkpoint_is_refused_within_its_ceilings(hostile_server, case):
    got = measure(hostile_server, sample_prompt(ckpt=case.file, batch=1, prefix="hostile"),
                  timeout=case.seconds + 30)
    TIMINGS[case.file] = (got.seconds, got.slowest_answer, got.grown_mb)
    assert got.code == 200, got.answer
    node, message = execution_error(got.entry)
    assert node == "GANStudioLoadModel"
    assert re.fullmatch("Load GAN Model: " + case.message, message), message
    got.check_ceilings(case.seconds, case.file)


def test_server_still_serves_a_good_prompt_afterwards(hostile_server):
    entry = hostile_server.run(sample_prompt(batch=1, prefix="after_hostile"))
    assert entry["status"]["status_str"] == "success", entry["status"]


@pytest.mark.parametrize("where", ["relative", "absolute"])
def test_a_checkpoint_outside_the_models_folder_is_never_read(hostile_server, where):
    """A good checkpoint just outside models/gan, named by a path that climbs out of it
    (or by its absolute path): the prompt fails, naming the load node; nothing is loaded."""
    gan = Path(hostile_server.dirs["models"]) / "gan"
    outside = gan.parent.parent / "outside.safetensors"
    outside.write_bytes((gan / "tiny_cond.safetensors").read_bytes())
    name = "../../outside.safetensors" if where == "relative" else str(outside)
    code, answer = hostile_server.post_prompt(sample_prompt(ckpt=name, batch=1))
    if code == 400:  # refused by validation
        assert "1" in answer["node_errors"], answer
        return
    assert code == 200, answer
    entry = hostile_server.wait(answer["prompt_id"])
    node, message = execution_error(entry)
    assert node == "GANStudioLoadModel"
    assert re.fullmatch(r"Load GAN Model: '.*outside\.safetensors' is not in the models/gan "
                        r"folder", message), message
