"""docs/nodes.md is generated from the node schemas and must match them."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.engine
REPO = Path(__file__).resolve().parents[2]


def test_node_reference_is_current(engine):
    from node_reference import render
    from run_workflow import engine_object_info

    expected = render(engine_object_info(engine))
    current = (REPO / "docs" / "nodes.md").read_text()
    assert current == expected, "docs/nodes.md is stale: run scripts/node_reference.py"


def test_every_node_is_documented_with_tooltips(engine):
    from run_workflow import engine_object_info

    info = engine_object_info(engine)
    text = (REPO / "docs" / "nodes.md").read_text()
    for name, spec in info.items():
        if name.startswith("GANStudio"):
            assert f"`{name}`" in text
            for group in ("required", "optional"):
                for input_name, entry in spec["input"].get(group, {}).items():
                    assert entry[1].get("tooltip"), f"{name}.{input_name} has no tooltip"
