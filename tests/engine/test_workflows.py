"""The gallery: UI files convert to their API twins; the headless runner runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.engine
REPO = Path(__file__).resolve().parents[2]
UI_WORKFLOWS = sorted((REPO / "workflows").glob("*.json"))


def strip_meta(prompt: dict) -> dict:
    return {k: {kk: vv for kk, vv in v.items() if kk != "_meta"} for k, v in prompt.items()}


@pytest.fixture(scope="module")
def object_info(engine):
    from run_workflow import engine_object_info

    return engine_object_info(engine)


def test_every_ui_workflow_has_an_api_twin():
    assert UI_WORKFLOWS, "the gallery is empty"
    for ui in UI_WORKFLOWS:
        assert (REPO / "workflows" / "api" / ui.name).is_file(), f"{ui.name} has no API twin"


@pytest.mark.parametrize("ui_file", UI_WORKFLOWS, ids=lambda p: p.stem)
def test_ui_converts_to_its_api_twin(object_info, ui_file):
    from ui_to_api import ui_to_api

    ui = json.loads(ui_file.read_text())
    twin = json.loads((REPO / "workflows" / "api" / ui_file.name).read_text())
    assert strip_meta(ui_to_api(ui, object_info)) == strip_meta(twin)


def test_conversion_follows_reroutes_primitives_and_bypass(object_info):
    from ui_to_api import ui_to_api

    ui = json.loads((REPO / "workflows" / "sample_grid.json").read_text())
    nodes = {n["id"]: n for n in ui["nodes"]}
    sampler = next(n for n in ui["nodes"] if n["type"] == "GANStudioSampleLatents")
    generate = next(n for n in ui["nodes"] if n["type"] == "GANStudioGenerate")
    # a Reroute between the loader and Generate's model input
    model_link = next(i for i in generate["inputs"] if i["name"] == "model")["link"]
    link = next(lk for lk in ui["links"] if lk[0] == model_link)
    reroute_id, new_link = 900, 901
    ui["nodes"].append({"id": reroute_id, "type": "Reroute", "mode": 0,
                        "inputs": [{"name": "", "type": "*", "link": model_link}],
                        "outputs": [{"name": "", "type": "GAN_MODEL", "links": [new_link]}]})
    ui["links"].append([new_link, reroute_id, 0, generate["id"], link[4], "GAN_MODEL"])
    link[3], link[4] = reroute_id, 0
    next(i for i in generate["inputs"] if i["name"] == "model")["link"] = new_link
    # a PrimitiveNode driving the seed widget
    prim_link = 902
    ui["nodes"].append({"id": 903, "type": "PrimitiveNode", "mode": 0, "inputs": [],
                        "outputs": [{"name": "INT", "type": "INT", "links": [prim_link]}],
                        "widgets_values": [1234, "fixed"]})
    sampler["inputs"].append({"name": "seed", "type": "INT", "link": prim_link,
                              "widget": {"name": "seed"}})
    ui["links"].append([prim_link, 903, 0, sampler["id"], len(sampler["inputs"]) - 1, "INT"])
    # a bypassed ImageScaleBy passes its image straight through to SaveImage
    scale = next(n for n in ui["nodes"] if n["type"] == "ImageScaleBy")
    scale["mode"] = 4
    # a muted note-like node is dropped
    nodes[1]["title"] = "My model"
    api = ui_to_api(ui, object_info)
    assert api[str(generate["id"])]["inputs"]["model"] == [str(link[1]), 0]
    assert api[str(sampler["id"])]["inputs"]["seed"] == 1234
    save = next(v for v in api.values() if v["class_type"] == "SaveImage")
    assert save["inputs"]["images"] == [str(generate["id"]), 0]
    assert str(scale["id"]) not in api and "900" not in api and "903" not in api
    assert api["1"]["_meta"]["title"] == "My model"


def test_unknown_node_type_is_reported(object_info):
    from ui_to_api import ConversionError, ui_to_api

    ui = json.loads((REPO / "workflows" / "sample_grid.json").read_text())
    ui["nodes"][0]["type"] = "SomeMissingPackNode"
    with pytest.raises(ConversionError, match="SomeMissingPackNode"):
        ui_to_api(ui, object_info)


def object_links(ui: dict) -> dict:
    """The same workflow in the newer link schema (links as objects)."""
    ui = json.loads(json.dumps(ui))
    ui["links"] = [dict(zip(("id", "origin_id", "origin_slot", "target_id", "target_slot",
                             "type"), link)) for link in ui["links"]]
    ui["version"] = 1
    return ui


@pytest.mark.parametrize("ui_file", UI_WORKFLOWS, ids=lambda p: p.stem)
def test_object_links_convert_like_array_links(object_info, ui_file):
    from ui_to_api import ui_to_api

    ui = json.loads(ui_file.read_text())
    assert ui_to_api(object_links(ui), object_info) == ui_to_api(ui, object_info)


def test_missing_widget_values_are_left_out(object_info):
    from ui_to_api import ui_to_api

    ui = json.loads((REPO / "workflows" / "sample_grid.json").read_text())
    sampler = next(n for n in ui["nodes"] if n["type"] == "GANStudioSampleLatents")
    sampler["widgets_values"] = sampler["widgets_values"][:3]  # seed, its control, batch_size
    save = next(n for n in ui["nodes"] if n["type"] == "SaveImage")
    save["widgets_values"] = [None]
    api = ui_to_api(ui, object_info)
    assert api[str(sampler["id"])]["inputs"] == {"model": ["1", 0], "seed": 0, "batch_size": 16}
    assert api[str(save["id"])]["inputs"] == {"images": ["4", 0]}
    assert None not in (v for node in api.values() for v in node["inputs"].values())


# --- the headless runner -------------------------------------------------------------------
def tiny_ui() -> dict:
    ui = json.loads((REPO / "workflows" / "sample_grid.json").read_text())
    for node in ui["nodes"]:
        if node["type"] == "GANStudioLoadModel":
            node["widgets_values"] = ["tiny_cond.safetensors"]
        if node["type"] == "GANStudioSampleLatents":
            node["widgets_values"][2] = 2
    return ui


def run(tmp_path, capsys, workflow: dict, *options) -> tuple[int, str, str]:
    import run_workflow

    path = tmp_path / "wf.json"
    path.write_text(json.dumps(workflow))
    status = run_workflow.main([str(path), "--out", str(tmp_path / "out"), *options])
    out, err = capsys.readouterr()
    return status, out, err


def test_runner_runs_ui_file_with_overrides_and_seed_batches(engine, engine_dirs, tmp_path, capsys):
    import run_workflow

    path = tmp_path / "wf.json"
    path.write_text(json.dumps(tiny_ui()))
    status = run_workflow.main([str(path), "--out", str(engine_dirs["output"]),
                                "--set", "2.batch_size=2", "--seeds", "5-6", "--print-paths"])
    assert status == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if line.endswith(".png")]
    assert len(printed) == 4  # two runs of two images
    assert all(Path(p).is_file() for p in printed)


def test_runner_summarises_and_draws_a_contact_sheet(engine, engine_dirs, tmp_path, capsys):
    from PIL import Image

    sheet = tmp_path / "sheet.jpg"
    status, out, err = run(tmp_path, capsys, tiny_ui(), "--contact-sheet", str(sheet))
    assert status == 0, err
    lines = out.splitlines()
    assert len(lines) == 2 and "2 images in " in lines[0] and "gan_studio" in lines[0], out
    assert lines[1] == f"contact sheet: {sheet}"
    with Image.open(sheet) as im:
        assert im.width > 2 * 128 and im.height > 128


def test_runner_exits_nonzero_with_the_node_error(engine, engine_dirs, tmp_path, capsys):
    api = json.loads((REPO / "workflows" / "api" / "sample_grid.json").read_text())
    api["1"]["inputs"]["ckpt_name"] = "corrupt.safetensors"
    status, _out, err = run(tmp_path, capsys, api)
    assert status == 1
    assert "GANStudioLoadModel" in err and "Load GAN Model:" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


@pytest.mark.parametrize("mode,word", [(2, "muted"), (4, "bypassed")])
def test_runner_exits_nonzero_for_a_muted_output_node(engine, tmp_path, capsys, mode, word):
    ui = tiny_ui()
    save = next(n for n in ui["nodes"] if n["type"] == "SaveImage")
    save["mode"] = mode
    status, _out, err = run(tmp_path, capsys, ui)
    assert status == 1
    assert f"output node {save['id']} (SaveImage) is {word}" in err, err


def test_runner_exits_nonzero_when_one_output_is_refused(engine, tmp_path, capsys):
    """The engine runs the outputs that validate and skips the others: still a failure."""
    api = json.loads((REPO / "workflows" / "api" / "sample_grid.json").read_text())
    api["1"]["inputs"]["ckpt_name"] = "tiny_cond.safetensors"
    api["2"]["inputs"]["batch_size"] = 2
    api["9"] = {"class_type": "SaveImage", "inputs": {"images": ["3", 0],
                                                      "filename_prefix": "ok/part"}}
    api["4"]["inputs"]["scale_by"] = -1.0  # refused at validation: output 5 does not run
    status, out, err = run(tmp_path, capsys, api)
    assert status == 1
    assert "node 4 (ImageScaleBy)" in err and "scale_by" in err, err
    assert "2 images in " in out and "ok" in out  # the valid output still ran


@pytest.mark.parametrize("fmt", ["ui", "api"])
def test_runner_reports_an_unknown_node_type_in_one_line(engine, tmp_path, capsys, fmt):
    if fmt == "ui":
        workflow = tiny_ui()
        workflow["nodes"][3]["type"] = "Foo"
        node_id = workflow["nodes"][3]["id"]
    else:
        workflow = json.loads((REPO / "workflows" / "api" / "sample_grid.json").read_text())
        workflow["7"] = {"class_type": "Foo", "inputs": {}}
        node_id = 7
    status, out, err = run(tmp_path, capsys, workflow)
    assert status == 2 and out == ""
    assert err == (f"run_workflow: unknown node type 'Foo' (node {node_id}); is its custom "
                   "node pack installed?\n")


@pytest.mark.parametrize("text,message", [
    ("{not json", "is not JSON"),
    ("[1, 2]", "neither a UI-format workflow"),
    (json.dumps({"nodes": [{"id": 1, "type": "SaveImage", "inputs": [{"name": "images", "link": 5}]}],
                 "links": []}), "uses link 5, which is not in the workflow's links"),
    (json.dumps({"nodes": [], "links": [[1, 2]]}), "links[0] is neither"),
])
def test_runner_reports_a_broken_file_in_one_line(engine, tmp_path, capsys, text, message):
    import run_workflow

    path = tmp_path / "broken.json"
    path.write_text(text)
    assert run_workflow.main([str(path), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("run_workflow: ") and message in err, err
    assert len(err.strip().splitlines()) == 1


def test_runner_runs_the_newer_link_schema(engine, tmp_path, capsys):
    status, out, err = run(tmp_path, capsys, object_links(tiny_ui()))
    assert status == 0, err
    assert "2 images in " in out


def test_export_api_writes_the_prompt_and_runs_nothing(engine, engine_dirs, tmp_path, capsys):
    target = tmp_path / "exported.json"
    before = sorted(engine_dirs["output"].rglob("*"))
    ui = json.loads((REPO / "workflows" / "sample_grid.json").read_text())
    status, out, err = run(tmp_path, capsys, object_links(ui), "--export-api", str(target),
                           "--set", "2.seed=42")
    assert status == 0, err
    twin = json.loads((REPO / "workflows" / "api" / "sample_grid.json").read_text())
    twin["2"]["inputs"]["seed"] = 42
    assert strip_meta(json.loads(target.read_text())) == strip_meta(twin)
    assert out.strip() == f"API prompt (5 nodes): {target}"
    assert sorted(engine_dirs["output"].rglob("*")) == before  # nothing ran


def test_export_api_from_an_api_file_needs_no_engine(tmp_path):
    """A subprocess: --export-api of an API file applies --set without booting ComfyUI."""
    import subprocess
    import sys

    target = tmp_path / "out.json"
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "run_workflow.py"),
                           str(REPO / "workflows" / "api" / "sample_grid.json"),
                           "--export-api", str(target), "--set", "2.batch_size=4"],
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "COMFYUI_DIR": str(tmp_path / "none")})
    assert done.returncode == 0, done.stderr
    assert json.loads(target.read_text())["2"]["inputs"]["batch_size"] == 4


def test_runner_process_prints_one_clean_line_for_an_unknown_node(engine_dirs, tmp_path):
    """A real process: the engine's start-up log (its optional audio nodes failing to import
    without torchaudio, ...) stays hidden; the error is the only line."""
    import os
    import subprocess
    import sys

    api = {"1": {"class_type": "Foo", "inputs": {}}}
    path = tmp_path / "foo.json"
    path.write_text(json.dumps(api))
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "run_workflow.py"), str(path),
                           "--out", str(tmp_path / "out"), "--input", str(tmp_path / "in"),
                           "--models", str(engine_dirs["models"])],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")})
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == ("run_workflow: unknown node type 'Foo' (node 1); is its custom node "
                           "pack installed?\n")
