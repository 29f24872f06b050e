"""Every UI workflow loads in the real ComfyUI frontend with no missing node types and no
frontend errors; one is queued from the page and its images appear."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser
REPO = Path(__file__).resolve().parents[2]
ARTEFACTS = REPO / "test-artefacts" / "browser"  # screenshots (git-ignored)
UI_WORKFLOWS = sorted((REPO / "workflows").glob("*.json"))
# Console noise that is not about the workflow (missing optional endpoints, favicon, ...).
BENIGN = ("favicon", "/api/userdata", "/api/i18n", "Failed to load resource",
          "manager", "/api/settings", "api.comfy.org", "DevTools")


@pytest.fixture(scope="module")
def page(ui_server, browser):
    browser.get(ui_server.url + "/")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready = browser.execute_script(
            "return !!(window.app && window.app.graph && window.LiteGraph "
            "&& window.LiteGraph.registered_node_types['GANStudioGenerate'])")
        if ready:
            break
        time.sleep(0.5)
    else:
        browser.save_screenshot(str(ARTEFACTS / "frontend_not_ready.png"))
        pytest.fail("the frontend did not finish loading with GAN Studio's nodes")
    frontend_errors(browser)  # start-up messages are not about our workflows
    return browser


TOASTS = """
const toasts = [...document.querySelectorAll('.p-toast-message')]
    .filter(t => !t.className.includes('success') && !t.className.includes('info'))
    .map(t => t.innerText.replace(/\\s+/g, ' ').trim());
document.querySelectorAll('.p-toast-message').forEach(t => t.remove());
return toasts;
"""


def frontend_errors(browser) -> list[str]:
    """Severe console messages and warning/error toasts (e.g. schema alerts) since last call."""
    console = [entry["message"] for entry in browser.get_log("browser")
               if entry["level"] == "SEVERE" and not any(b in entry["message"] for b in BENIGN)]
    return console + browser.execute_script(TOASTS)


LOAD_AND_CHECK = """
const [workflow, done] = [arguments[0], arguments[arguments.length - 1]];
(async () => {
  try {
    await window.app.loadGraphData(workflow, true, true, null,
        {showMissingNodesDialog: false, showMissingModelsDialog: false});
    const nodes = window.app.graph.nodes || window.app.graph._nodes;
    const missing = nodes.filter(n => !window.LiteGraph.registered_node_types[n.type] || n.has_errors)
                         .map(n => n.type);
    done({count: nodes.length, missing});
  } catch (e) { done({error: String(e && e.stack || e)}); }
})();
"""


@pytest.mark.parametrize("ui_file", UI_WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_loads_without_missing_nodes(page, ui_file):
    workflow = json.loads(ui_file.read_text())
    result = page.execute_async_script(LOAD_AND_CHECK, workflow)
    page.save_screenshot(str(ARTEFACTS / f"{ui_file.stem}.png"))
    assert "error" not in result, result.get("error")
    assert result["missing"] == [], f"missing node types: {result['missing']}"
    assert result["count"] == len(workflow["nodes"])
    assert frontend_errors(page) == []


QUEUE = """
const done = arguments[arguments.length - 1];
window.app.queuePrompt(0, 1).then(r => done({ok: true, r: String(r)}),
                                   e => done({ok: false, error: String(e)}));
"""

SAVED_IMAGES = """
const nodes = window.app.graph.nodes || window.app.graph._nodes;
const save = nodes.find(n => n.type === 'SaveImage');
const outputs = window.app.nodeOutputs || {};
const out = outputs[String(save.id)] || outputs[save.id];
return {imgs: (save.imgs || []).length, outputs: out ? (out.images || []).length : 0};
"""


def test_queue_from_the_page_and_see_images(page, ui_server):
    workflow = json.loads((REPO / "workflows" / "sample_grid.json").read_text())
    for node in workflow["nodes"]:
        if node["type"] == "GANStudioSampleLatents":
            node["widgets_values"][2] = 4  # batch_size: keep the browser run short
    before = set(ui_server.get("/history"))
    loaded = page.execute_async_script(LOAD_AND_CHECK, workflow)
    assert loaded.get("missing") == [], loaded
    queued = page.execute_async_script(QUEUE)
    assert queued["ok"], queued
    deadline = time.monotonic() + 120
    entry = None
    while time.monotonic() < deadline:
        new = set(ui_server.get("/history")) - before
        if new:
            entry = ui_server.get(f"/history/{new.pop()}")
            entry = next(iter(entry.values()))
            if entry.get("status", {}).get("completed") is not None:
                break
        time.sleep(0.5)
    assert entry and entry["status"]["status_str"] == "success", entry
    shown = {}
    while time.monotonic() < deadline:
        shown = page.execute_script(SAVED_IMAGES)
        if shown["imgs"] or shown["outputs"]:
            break
        time.sleep(0.5)
    page.save_screenshot(str(ARTEFACTS / "queued_sample_grid.png"))
    assert max(shown["imgs"], shown["outputs"]) == 4, shown
    assert frontend_errors(page) == []
