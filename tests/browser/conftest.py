"""A ComfyUI server with the real frontend package, and headless Chromium driving it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from comfy_server import start_server, stop_server

HERE = Path(__file__).resolve().parent

ARTEFACTS = HERE.parent.parent / "test-artefacts" / "browser"
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--window-size=1600,1000"]


def _chromium() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def _try_install_chromium() -> None:
    """Install Chromium from Debian's packages (needs root and the package mirror)."""
    if shutil.which("apt-get") is None:
        return
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"], env=env,
                   capture_output=True, timeout=900)


@pytest.fixture(scope="session")
def chromium_paths():
    if _chromium() is None:
        _try_install_chromium()
    found = _chromium()
    if found is None:
        pytest.skip("Chromium and chromedriver are not installed and could not be installed "
                    "from Debian packages (apt-get install chromium chromium-driver)")
    return found


@pytest.fixture(scope="session")
def ui_server(tmp_path_factory, chromium_paths):
    srv = start_server(tmp_path_factory.mktemp("ui_server"), frontend=True)
    yield srv
    stop_server(srv)


@pytest.fixture(scope="session")
def browser(chromium_paths, tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = chromium_paths
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_script_timeout(120)
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()
