"""One real ComfyUI server (headless, no frontend) for the whole test session."""

from __future__ import annotations

import pytest
from comfy_server import start_server, stop_server


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("server"))
    yield srv
    stop_server(srv)
