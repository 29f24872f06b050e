"""The pack inside a real ComfyUI server: start-up, /object_info, example workflows over HTTP."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

pytestmark = pytest.mark.server
REPO = Path(__file__).resolve().parents[2]
API_WORKFLOWS = sorted((REPO / "workflows" / "api").glob("*.json"))
UI_WORKFLOWS = sorted((REPO / "workflows").glob("*.json"))
PACK = "gan-studio"  # the folder name under custom_nodes/ (scripts/setup.sh links it so)
# ComfyUI serves a pack's templates from the FIRST of these folders that exists
TEMPLATE_FOLDERS = ("example_workflows", "example", "examples", "workflow", "workflows")


def test_startup_log_shows_pack_imported_without_error(server):
    log = server.log_text()
    lines = [line for line in log.splitlines() if "gan-studio" in line]
    assert any(re.search(r"\d+\.\d seconds: .*custom_nodes.gan-studio", line) for line in lines), log[-3000:]
    assert not any("IMPORT FAILED" in line or "Cannot import" in line for line in lines), lines
    assert "Error while calling comfy_entrypoint" not in log


def test_object_info_lists_every_node_with_tooltips(server):
    info = server.get("/object_info")
    ours = {name: spec for name, spec in info.items() if name.startswith("GANStudio")}
    assert {"GANStudioLoadModel", "GANStudioSaveModel", "GANStudioSampleLatents",
            "GANStudioClassCondition", "GANStudioGenerate"} <= set(ours)
    for name, spec in ours.items():
        assert spec["description"], f"{name} has no description"
        assert spec["category"].startswith("GAN Studio/"), name
        assert spec["display_name"] and not spec["display_name"].startswith("GANStudio"), name
        for group in ("required", "optional"):
            for input_name, entry in spec["input"].get(group, {}).items():
                options = entry[1] if len(entry) > 1 else {}
                assert options.get("tooltip"), f"{name}.{input_name} has no tooltip"


def test_loader_dropdown_lists_shipped_and_user_models(server):
    options = server.get("/object_info/GANStudioLoadModel")["GANStudioLoadModel"]["input"]["required"]["ckpt_name"]
    names = options[1]["options"] if options[0] == "COMBO" else options[0]
    shipped = {"gan_studio_twemoji_stylegan2.safetensors", "gan_studio_twemoji_vae.safetensors"}
    assert shipped <= set(names) and "tiny_cond.safetensors" in names


@pytest.mark.parametrize("workflow", API_WORKFLOWS, ids=lambda p: p.stem)
def test_example_workflow_runs_over_http(server, workflow):
    prompt = json.loads(workflow.read_text())
    for node in prompt.values():  # training and optimising: a few steps prove the plumbing
        if node["class_type"] in ("GANStudioTrainSteps", "GANStudioNeuralStyle"):
            node["inputs"]["steps"] = 5
    entry = server.run(prompt)
    errors = [m[1] for m in entry["status"]["messages"] if m[0] == "execution_error"]
    assert entry["status"]["status_str"] == "success", [
        (e["node_type"], e["exception_message"]) for e in errors]
    images = [img for out in entry["outputs"].values() for img in out.get("images", [])
              if img.get("type") == "output"]  # previews go to the temp folder
    assert images, "the workflow saved no image"
    for img in images:
        path = server.dirs["output"] / img["subfolder"] / img["filename"]
        with Image.open(path) as im:
            assert im.size[0] >= 32 and im.mode in ("RGB", "RGBA")


def test_bad_prompt_reports_error_and_server_keeps_serving(server):
    prompt = json.loads((REPO / "workflows" / "api" / "sample_grid.json").read_text())
    loader = next(k for k, v in prompt.items() if v["class_type"] == "GANStudioLoadModel")
    cond = json.loads(json.dumps(prompt))
    cond[loader]["inputs"]["ckpt_name"] = "tiny_cond.safetensors"
    sampler = next(k for k, v in cond.items() if v["class_type"] == "GANStudioSampleLatents")
    generate = next(k for k, v in cond.items() if v["class_type"] == "GANStudioGenerate")
    cond["99"] = {"class_type": "GANStudioClassCondition", "inputs": {
        "model": [loader, 0], "latents": [sampler, 0], "classes": "hexagon", "mode": "mix"}}
    cond[generate]["inputs"]["latents"] = ["99", 0]
    entry = server.run(cond)
    assert entry["status"]["status_str"] == "error"
    errors = [m[1] for m in entry["status"]["messages"] if m[0] == "execution_error"]
    assert errors and errors[0]["node_type"] == "GANStudioClassCondition"
    assert "Class Condition:" in errors[0]["exception_message"]
    assert "hexagon" in errors[0]["exception_message"]
    # invalid input values are refused at validation with HTTP 400 and node_errors
    bad = json.loads(json.dumps(prompt))
    bad[sampler]["inputs"]["batch_size"] = 0
    code, answer = server.post_prompt(bad)
    assert code == 400 and sampler in answer["node_errors"]
    # and the next good prompt runs normally
    assert server.run(prompt)["status"]["status_str"] == "success"


def fetch(server, path: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(server.url + path, timeout=30) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, "", b""


def test_only_the_workflow_folder_has_a_template_folder_name():
    present = [name for name in TEMPLATE_FOLDERS if (REPO / name).exists()]
    assert present == ["workflows"], f"{present}: only workflows/ may use these names"


def test_templates_menu_lists_every_workflow(server):
    listing = server.get("/api/workflow_templates")  # what the frontend's Templates menu reads
    assert sorted(listing.get(PACK, [])) == sorted(p.stem for p in UI_WORKFLOWS), listing


@pytest.mark.parametrize("ui_file", UI_WORKFLOWS, ids=lambda p: p.stem)
def test_template_file_is_served(server, ui_file):
    # the URL the frontend fetches when a template is picked from the menu
    code, _type, body = fetch(server, f"/api/workflow_templates/{PACK}/{ui_file.name}")
    assert code == 200, f"{ui_file.name}: HTTP {code}"
    assert json.loads(body) == json.loads(ui_file.read_text())
    thumb = ui_file.with_suffix(".jpg")  # the menu shows <name>.jpg as the card's picture
    if thumb.is_file():
        code, content_type, body = fetch(server, f"/api/workflow_templates/{PACK}/{thumb.name}")
        assert code == 200 and content_type == "image/jpeg" and body == thumb.read_bytes()


def tiny_sample_grid_ui() -> dict:
    ui = json.loads((REPO / "workflows" / "sample_grid.json").read_text())
    for node in ui["nodes"]:
        if node["type"] == "GANStudioLoadModel":
            node["widgets_values"] = ["tiny_cond.safetensors"]
        if node["type"] == "GANStudioSampleLatents":
            node["widgets_values"][2] = 2  # batch_size
    return ui


def test_runner_against_the_server(server, tmp_path, capsys):
    import run_workflow

    path = tmp_path / "wf.json"
    path.write_text(json.dumps(tiny_sample_grid_ui()))
    out = tmp_path / "out"
    assert run_workflow.main([str(path), "--server", server.url, "--out", str(out)]) == 0
    assert "2 images in " in capsys.readouterr().out
    assert len(list((out / "gan_studio").glob("sample_grid_*.png"))) == 2
    # one output refused at validation: the other still runs, the exit status says it failed
    api = json.loads((REPO / "workflows" / "api" / "sample_grid.json").read_text())
    api["1"]["inputs"]["ckpt_name"] = "tiny_cond.safetensors"
    api["9"] = {"class_type": "SaveImage", "inputs": {"images": ["3", 0],
                                                      "filename_prefix": "ok/part"}}
    api["4"]["inputs"]["scale_by"] = -1.0
    path.write_text(json.dumps(api))
    assert run_workflow.main([str(path), "--server", server.url, "--out", str(out)]) == 1
    printed = capsys.readouterr()
    assert "node 4 (ImageScaleBy)" in printed.err and "16 images in " in printed.out
    # a muted output node is an error too, in one line
    ui = tiny_sample_grid_ui()
    next(n for n in ui["nodes"] if n["type"] == "SaveImage")["mode"] = 2
    path.write_text(json.dumps(ui))
    assert run_workflow.main([str(path), "--server", server.url, "--out", str(out)]) == 1
    assert "output node 5 (SaveImage) is muted" in capsys.readouterr().err
