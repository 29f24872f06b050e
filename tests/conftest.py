"""Shared test set-up.

The repo root is never put on sys.path: ComfyUI has top-level modules `nodes` and `utils`
that the pack's own folders would shadow. The library is imported as top-level `gan_models`
straight from its folder (as `python -m gan_models` sees it); ComfyUI loads the pack itself
from custom_nodes/, as in a real install.

Test modules import their shared helpers by plain name; this file is the one place that makes
them importable (no test module edits sys.path): tests/ (helpers, fixtures_foreign,
comfy_server, ceilings), tests/engine/ (engine_prompts) and scripts/ (comfy_engine, run_workflow).
None of these names clashes with a ComfyUI module.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
SCRIPTS = REPO / "scripts"


def _import_library() -> None:
    if "gan_models" in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(
        "gan_models", REPO / "gan_models" / "__init__.py",
        submodule_search_locations=[str(REPO / "gan_models")])
    module = importlib.util.module_from_spec(spec)
    sys.modules["gan_models"] = module
    spec.loader.exec_module(module)


def _test_paths() -> None:
    for folder in (TESTS / "engine", TESTS):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    if str(SCRIPTS) not in sys.path:
        sys.path.append(str(SCRIPTS))


def _torchaudio_shim() -> None:
    """ComfyUI 0.30.0 imports torchaudio at module level; stand in for it when missing."""
    try:
        import torchaudio  # noqa: F401
    except ImportError:
        shims = str(TESTS / "shims")
        sys.path.append(shims)
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (os.environ.get("PYTHONPATH"), shims) if p)  # for server subprocesses


_import_library()
_test_paths()
_torchaudio_shim()


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of tiny-network tests: extra OpenMP threads only add
    synchronisation (badly so on a busy machine), and one thread keeps CPU results
    independent of the core count. Use with pytest.mark.usefixtures("one_thread")."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
