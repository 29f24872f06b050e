"""Run a ComfyUI workflow headless: python scripts/run_workflow.py WORKFLOW.json [options]

Runs API-format workflows (and UI-format ones, converted with the engine's own node
definitions) either in-process on the real ComfyUI engine (default: the pinned engine from
scripts/setup.sh, or COMFYUI_DIR) or against a running ComfyUI server (--server URL).
Exits non-zero with the failing node's error message when a run fails.

Examples:
  python scripts/run_workflow.py workflows/api/sample_grid.json --out output/demo
  python scripts/run_workflow.py workflows/sample_grid.json --set 2.seed=42 --seeds 0-3
  python scripts/run_workflow.py workflows/api/sample_grid.json --server http://127.0.0.1:8188
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

SEED_INPUTS = ("seed", "noise_seed")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n", 2)[2])
    p.add_argument("workflow", type=Path, help="workflow JSON, UI or API format")
    p.add_argument("--out", type=Path, default=Path("output"), help="folder for the outputs")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="NODE.INPUT=VALUE",
                   help="override an input, e.g. --set 2.seed=42 (a JSON value, or text)")
    p.add_argument("--seeds", default=None,
                   help="run once per seed ('0-7', '1,5,42'), setting every seed input")
    p.add_argument("--server", default=None, help="URL of a running ComfyUI server")
    p.add_argument("--models", type=Path, default=None,
                   help="in-process only: a models folder to use instead of ComfyUI's")
    p.add_argument("--input", type=Path, default=None, help="in-process only: input folder")
    p.add_argument("--timeout", type=float, default=3600, help="seconds to wait per run (server)")
    return p.parse_args(argv)


def parse_seed_list(text: str) -> list[int]:
    seeds = []
    for part in text.replace(" ", "").split(","):
        if part:
            lo, sep, hi = part.partition("-")
            seeds.extend(range(int(lo), int(hi) + 1) if sep else [int(part)])
    return seeds


def apply_overrides(prompt: dict, overrides: list[str]) -> dict:
    prompt = copy.deepcopy(prompt)
    for item in overrides:
        target, sep, raw = item.partition("=")
        node, dot, name = target.partition(".")
        if not sep or not dot or node not in prompt:
            raise SystemExit(f"bad --set {item!r}: expected NODE.INPUT=VALUE with a node id of "
                             f"the workflow ({', '.join(sorted(prompt))})")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        prompt[node]["inputs"][name] = value
    return prompt


def set_seeds(prompt: dict, seed: int) -> dict:
    prompt = copy.deepcopy(prompt)
    found = False
    for node in prompt.values():
        for name in SEED_INPUTS:
            if name in node["inputs"] and not isinstance(node["inputs"][name], list):
                node["inputs"][name] = seed
                found = True
    if not found:
        raise SystemExit("--seeds given but the workflow has no seed input")
    return prompt


def is_ui_format(data: dict) -> bool:
    return isinstance(data.get("nodes"), list) and "links" in data


# --- in-process --------------------------------------------------------------------------
def run_in_process(prompts: list[dict], args, ui_workflow: dict | None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from comfy_engine import Engine

    args.out.mkdir(parents=True, exist_ok=True)
    engine = Engine.get(output_dir=args.out.resolve(),
                        input_dir=args.input.resolve() if args.input else None,
                        models_dir=args.models.resolve() if args.models else None)
    if ui_workflow is not None:
        prompts = [convert_with(engine_object_info(engine), ui_workflow, args)]
        prompts = expand(prompts[0], args)
    status = 0
    for prompt in prompts:
        result = engine.run(prompt)
        if not result.success:
            print(f"error: {result.describe_error()}", file=sys.stderr)
            status = 1
            continue
        report(result.outputs, args.out)
    return status


def engine_object_info(engine) -> dict:
    """What the server's /object_info says about each node (inputs and their order)."""
    from comfy_api.internal import _ComfyNodeInternal

    info = {}
    for name, cls in engine.nodes.NODE_CLASS_MAPPINGS.items():
        try:
            if issubclass(cls, _ComfyNodeInternal):
                info[name] = cls.GET_NODE_INFO_V1()
            else:
                types = cls.INPUT_TYPES()
                outputs = list(cls.RETURN_TYPES)
                info[name] = {"input": types, "input_order": {k: list(v) for k, v in types.items()},
                              "output": outputs,
                              "output_name": list(getattr(cls, "RETURN_NAMES", None) or outputs)}
        except Exception:  # a broken third-party node must not stop converting the others
            continue
    return info


# --- server ---------------------------------------------------------------------------
def run_on_server(prompts: list[dict], args, ui_workflow: dict | None) -> int:
    base = args.server.rstrip("/")
    if ui_workflow is not None:
        info = json.loads(_http(f"{base}/object_info"))
        prompts = expand(convert_with(info, ui_workflow, args), args)
    args.out.mkdir(parents=True, exist_ok=True)
    status = 0
    for prompt in prompts:
        body = json.dumps({"prompt": prompt, "client_id": uuid.uuid4().hex}).encode()
        try:
            answer = json.loads(_http(f"{base}/prompt", body))
        except urllib.error.HTTPError as exc:
            print(f"error: server refused the workflow: {exc.read().decode()}", file=sys.stderr)
            status = 1
            continue
        entry = _wait_for(base, answer["prompt_id"], args.timeout)
        if entry["status"].get("status_str") != "success":
            print(f"error: {_server_error(entry)}", file=sys.stderr)
            status = 1
            continue
        for node_out in entry["outputs"].values():
            for image in node_out.get("images", []) + node_out.get("gifs", []):
                fields = ("filename", "subfolder", "type")
                query = urllib.parse.urlencode({k: image[k] for k in fields})
                target = args.out / image.get("subfolder", "") / image["filename"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(_http(f"{base}/view?{query}", raw=True))
        report(entry["outputs"], args.out)
    return status


def _http(url: str, body: bytes | None = None, raw: bool = False):
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        data = resp.read()
    return data if raw else data.decode()


def _wait_for(base: str, prompt_id: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        history = json.loads(_http(f"{base}/history/{prompt_id}"))
        entry = history.get(prompt_id)
        if entry and entry.get("status", {}).get("completed") is not None:
            if entry["status"].get("status_str") in ("success", "error"):
                return entry
        time.sleep(0.25)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for prompt {prompt_id}")


def _server_error(entry: dict) -> str:
    for event, data in entry["status"].get("messages", []):
        if event == "execution_error":
            return (f"node {data.get('node_id')} ({data.get('node_type')}): "
                    f"{data.get('exception_message', '').strip()}")
    return "the run failed"


# --- shared ------------------------------------------------------------------------------
def convert_with(object_info: dict, ui_workflow: dict, args) -> dict:
    from ui_to_api import ui_to_api

    return ui_to_api(ui_workflow, object_info)


def expand(prompt: dict, args) -> list[dict]:
    prompt = apply_overrides(prompt, args.overrides)
    if args.seeds:
        return [set_seeds(prompt, s) for s in parse_seed_list(args.seeds)]
    return [prompt]


def report(outputs: dict, out: Path) -> None:
    for node_id, node_out in sorted(outputs.items()):
        for image in node_out.get("images", []):
            print(out / image.get("subfolder", "") / image["filename"])
        for text in node_out.get("text", []):
            print(f"node {node_id}: {text}")


def main(argv=None) -> int:
    args = parse_args(argv)
    data = json.loads(args.workflow.read_text())
    ui_workflow = data if is_ui_format(data) else None
    prompts = [] if ui_workflow is not None else expand(data, args)
    if args.server:
        return run_on_server(prompts, args, ui_workflow)
    return run_in_process(prompts, args, ui_workflow)


if __name__ == "__main__":
    sys.exit(main())
