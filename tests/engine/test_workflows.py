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


def test_runner_runs_ui_file_with_overrides_and_seed_batches(engine, engine_dirs, tmp_path, capsys):
    import run_workflow

    ui = json.loads((REPO / "workflows" / "sample_grid.json").read_text())
    for node in ui["nodes"]:
        if node["type"] == "GANStudioLoadModel":
            node["widgets_values"] = ["tiny_cond.safetensors"]
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(ui))
    status = run_workflow.main([str(path), "--out", str(engine_dirs["output"]),
                                "--set", "2.batch_size=2", "--seeds", "5-6"])
    assert status == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if line.endswith(".png")]
    assert len(printed) == 4  # two runs of two images
    assert all(Path(p).is_file() for p in printed)


def test_runner_exits_nonzero_with_the_node_error(engine, engine_dirs, tmp_path, capsys):
    import run_workflow

    api = json.loads((REPO / "workflows" / "api" / "sample_grid.json").read_text())
    api["1"]["inputs"]["ckpt_name"] = "corrupt.safetensors"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(api))
    assert run_workflow.main([str(path), "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "GANStudioLoadModel" in err and "Load GAN Model:" in err
