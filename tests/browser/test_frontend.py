"""Every UI workflow loads in the real ComfyUI frontend with no missing node types and no
frontend errors; one opens from the Templates menu; one is queued from the page and its images
appear."""

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


TEMPLATE_CARDS = """
const dialog = document.querySelector('.p-dialog');
if (!dialog) return null;
const cards = [...dialog.querySelectorAll('[data-testid^="template-workflow-"]')];
// thumbnails load when their card scrolls into view: visit the next card on every call
window.__gsCard = ((window.__gsCard || 0) + 1) % Math.max(cards.length, 1);
if (cards.length) cards[window.__gsCard].scrollIntoView({block: 'nearest'});
return cards.map(card => ({
    name: card.getAttribute('data-testid').slice('template-workflow-'.length),
    thumbnails: [...card.querySelectorAll('img')].map(img => img.complete && img.naturalWidth)}));
"""

OPEN_GROUP = """
const item = [...document.querySelectorAll('.p-dialog nav *')]
    .find(e => e.children.length === 0 && e.textContent.trim() === arguments[0]);
if (!item) return false;
(item.closest('.cursor-pointer') || item).click();
return true;
"""

GRAPH_STATE = """
const nodes = window.app.graph.nodes || window.app.graph._nodes;
return {types: nodes.map(n => n.type).sort(),
        missing: nodes.filter(n => !window.LiteGraph.registered_node_types[n.type] || n.has_errors)
                      .map(n => n.type),
        dialog: !!document.querySelector('.p-dialog')};
"""


def wait_for(page, script, ok, *args, timeout=30):
    """Run `script` until ok(its value) or the timeout; return the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = page.execute_script(script, *args)
        if ok(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.3)


def test_open_a_workflow_from_the_templates_menu(page):
    """The Templates menu lists the pack's workflows under its folder name with their
    thumbnails, and picking one loads it (the frontend fetches it from
    /api/workflow_templates/gan-studio/<name>.json)."""
    names = sorted(p.stem for p in UI_WORKFLOWS)
    with_thumbnail = {p.stem for p in UI_WORKFLOWS if p.with_suffix(".jpg").is_file()}

    drawn = set()  # cards seen with their thumbnail loaded (cards far out of view have none)

    def shown(cards):  # every card there, and each thumbnail (workflows/<name>.jpg) drawn
        drawn.update(c["name"] for c in cards or [] if c["thumbnails"] and all(c["thumbnails"]))
        return bool(cards) and len(cards) == len(names) and with_thumbnail <= drawn

    page.execute_script("window.app.graph.clear()")
    page.find_element("css selector", ".templates-tab-button").click()
    assert wait_for(page, OPEN_GROUP, bool, "gan-studio"), "no gan-studio group under Templates"
    cards = wait_for(page, TEMPLATE_CARDS, shown)
    page.save_screenshot(str(ARTEFACTS / "templates_menu.png"))
    assert sorted(c["name"] for c in cards) == names, cards
    assert with_thumbnail <= drawn, f"thumbnails not shown: {sorted(with_thumbnail - drawn)}"
    page.find_element("css selector", '[data-testid="template-workflow-style_mixing"]').click()
    expected = sorted(n["type"] for n in json.loads(
        (REPO / "workflows" / "style_mixing.json").read_text())["nodes"])
    state = wait_for(page, GRAPH_STATE, lambda s: not s["dialog"] and s["types"] == expected)
    page.save_screenshot(str(ARTEFACTS / "template_style_mixing.png"))
    assert state["types"] == expected and not state["dialog"], state
    assert state["missing"] == []
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
