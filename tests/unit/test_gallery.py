"""The gallery stays current: every workflow whose models ship with the pack has a thumbnail,
and the README shows every workflow with its thumbnail (or says which download it needs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / "workflows" / "api").glob("*.json"))
SHIPPED = {p.name for p in (REPO / "models" / "gan").glob("*.safetensors")}
README = (REPO / "README.md").read_text()


def models_needed(api_file: Path) -> set[str]:
    prompt = json.loads(api_file.read_text())
    return {n["inputs"]["ckpt_name"] for n in prompt.values()
            if n["class_type"] == "GANStudioLoadModel"}


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_is_in_the_readme_gallery(workflow):
    name = workflow.stem
    thumb = REPO / "workflows" / f"{name}.jpg"
    if models_needed(workflow) <= SHIPPED:  # runs out of the box: it must show its result
        assert thumb.is_file(), f"workflows/{name}.jpg is missing: run `make workflows`"
    row = next((line for line in README.splitlines() if f"`{name}`" in line), None)
    assert row is not None, f"README's gallery has no row for {name}"
    if thumb.is_file():
        assert f"workflows/{name}.jpg" in row, f"README's row for {name} lacks its thumbnail"
    else:  # only workflows that need a model the pack cannot ship, and the row says which
        assert all(m in row for m in models_needed(workflow) - SHIPPED), row


def test_shipped_models_fit_the_size_limit():
    for name in SHIPPED:
        size = (REPO / "models" / "gan" / name).stat().st_size
        assert size <= 20 * 1024 * 1024, f"{name} is {size / 2**20:.1f} MiB (limit 20 MiB)"
