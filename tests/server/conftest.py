"""Real ComfyUI servers (headless, no frontend) for the whole test session: `server` for the
workflows, `limited_server` under an address-space limit for hostile files and prompts."""

from __future__ import annotations

import pytest
from ceilings import limit_address_space
from comfy_server import start_server, stop_server


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("server"))
    yield srv
    stop_server(srv)


@pytest.fixture(scope="session")
def limited_server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("limited"), preexec_fn=limit_address_space)
    yield srv
    stop_server(srv)
