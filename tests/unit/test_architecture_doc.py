"""docs/architecture.md lists every registered architecture, importer, recipe and capability,
so the page cannot silently fall behind the code."""

from __future__ import annotations

import re
from pathlib import Path

import gan_models
from gan_models import registry
from gan_models.model import CAPABILITIES, CONDITIONING_KINDS
from gan_models.training.recipes import recipe_names

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def listed() -> set[str]:
    return set(re.findall(r"`([^`\s]+)`", DOC.read_text(encoding="utf-8")))


def test_every_registered_architecture_importer_and_recipe_is_listed():
    names = listed()
    real_architectures = [n for n in registry.names() if not n.startswith("toy-")]
    missing = {
        "architectures": [n for n in real_architectures if n not in names],
        "importers": [i.name for i in gan_models.formats.importers() if i.name not in names],
        "recipes": [n for n in recipe_names() if n not in names],
        "capabilities": [c for c in CAPABILITIES if c not in names],
        "conditioning kinds": [c for c in CONDITIONING_KINDS if c not in names],
    }
    assert not any(missing.values()), f"docs/architecture.md does not list {missing}"
