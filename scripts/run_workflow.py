"""Run a ComfyUI workflow headless: python scripts/run_workflow.py WORKFLOW.json [options]

Runs API-format workflows (and UI-format ones, converted with the engine's own node
definitions) either in-process on the real ComfyUI engine (default: the pinned engine from
scripts/setup.sh, or COMFYUI_DIR) or against a running ComfyUI server (--server URL).
Exit status: 0 when every output node ran; 1 when a node failed, an output node was refused
or is muted/bypassed; 2 when the workflow cannot be read (unknown node type, bad JSON, ...).
Errors are one line each; --verbose also shows the engine's own log.

Examples:
  python scripts/run_workflow.py workflows/api/sample_grid.json --out output/demo
  python scripts/run_workflow.py workflows/sample_grid.json --set 2.seed=42 --seeds 0-3
  python scripts/run_workflow.py workflows/sample_grid.json --export-api sample_grid_api.json
  python scripts/run_workflow.py workflows/api/sample_grid.json --server http://127.0.0.1:8188
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ui_to_api import ConversionError, skipped_outputs, ui_to_api  # noqa: E402

SEED_INPUTS = ("seed", "noise_seed")
NAME = "run_workflow"
STARTED_IN = Path.cwd()  # set again by main(): the engine changes the working folder


class WorkflowError(Exception):
    """The workflow cannot be run as given: reported in one line, exit status 2."""


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=NAME, description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n", 2)[2])
    p.add_argument("workflow", type=Path, help="workflow JSON, UI or API format")
    p.add_argument("--out", type=Path, default=Path("output"), help="folder for the outputs")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="NODE.INPUT=VALUE",
                   help="override an input, e.g. --set 2.seed=42 (a JSON value, or text)")
    p.add_argument("--seeds", default=None,
                   help="run once per seed ('0-7', '1,5,42'), setting every seed input")
    p.add_argument("--export-api", type=Path, default=None, metavar="OUT.json",
                   help="write the API-format prompt (after --set) to OUT.json and exit "
                        "without running it")
    p.add_argument("--contact-sheet", type=Path, default=None, metavar="SHEET.jpg",
                   help="also tile every image the run saved into one labelled picture")
    p.add_argument("--print-paths", action="store_true",
                   help="print every saved file's path, one per line (for scripts)")
    p.add_argument("--verbose", action="store_true",
                   help="show the engine's own log (start-up, warnings, tracebacks)")
    p.add_argument("--server", default=None, help="URL of a running ComfyUI server")
    p.add_argument("--models", type=Path, default=None,
                   help="in-process only: a models folder to use instead of ComfyUI's")
    p.add_argument("--input", type=Path, default=None, help="in-process only: input folder")
    p.add_argument("--timeout", type=float, default=3600, help="seconds to wait per run (server)")
    return p.parse_args(argv)


def parse_seed_list(text: str) -> list[int]:
    seeds = []
    try:
        for part in text.replace(" ", "").split(","):
            if part:
                lo, sep, hi = part.partition("-")
                seeds.extend(range(int(lo), int(hi) + 1) if sep else [int(part)])
    except ValueError:
        raise WorkflowError(f"bad --seeds {text!r}: expected e.g. '0-7' or '1,5,42'") from None
    return seeds


def apply_overrides(prompt: dict, overrides: list[str]) -> dict:
    prompt = copy.deepcopy(prompt)
    for item in overrides:
        target, sep, raw = item.partition("=")
        node, dot, name = target.partition(".")
        if not sep or not dot or node not in prompt:
            raise WorkflowError(f"bad --set {item!r}: expected NODE.INPUT=VALUE with a node id "
                                f"of the workflow ({', '.join(sorted(prompt))})")
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
        raise WorkflowError("--seeds given but the workflow has no seed input")
    return prompt


def is_ui_format(data: dict) -> bool:
    return isinstance(data.get("nodes"), list) and "links" in data


def read_workflow(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise WorkflowError(f"no such file: {shown(path)}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkflowError(f"cannot read {shown(path)}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise WorkflowError(f"{shown(path)} is not JSON ({exc})") from None
    if isinstance(data, dict) and is_ui_format(data):
        return data
    if isinstance(data, dict) and data and all(
            isinstance(node, dict) and isinstance(node.get("class_type"), str)
            and isinstance(node.get("inputs", {}), dict) for node in data.values()):
        for node in data.values():
            node.setdefault("inputs", {})
        return data
    raise WorkflowError(f"{shown(path)} is neither a UI-format workflow (nodes and links) nor an "
                        "API-format prompt (node id -> class_type and inputs)")


def check_node_types(prompt: dict, known) -> None:
    for node_id, node in prompt.items():
        if node["class_type"] not in known:
            raise WorkflowError(f"unknown node type {node['class_type']!r} (node {node_id}); "
                                "is its custom node pack installed?")


def to_api(data: dict, object_info: dict | None, known) -> tuple[dict, list[str]]:
    """(the API prompt, one line per output node that will not run)."""
    if not is_ui_format(data):
        check_node_types(data, known)
        return data, []
    try:
        return ui_to_api(data, object_info), skipped_outputs(data, object_info)
    except ConversionError as exc:
        raise WorkflowError(str(exc)) from None
    except (KeyError, TypeError, IndexError, AttributeError, ValueError) as exc:
        raise WorkflowError(f"the workflow does not follow ComfyUI's UI format "
                            f"({type(exc).__name__}: {exc})") from None


# --- in-process --------------------------------------------------------------------------
def boot_engine(args):
    from comfy_engine import Engine

    args.out.mkdir(parents=True, exist_ok=True)
    try:
        return Engine.get(output_dir=args.out.resolve(),
                          input_dir=args.input.resolve() if args.input else None,
                          models_dir=args.models.resolve() if args.models else None,
                          quiet=not args.verbose)
    except RuntimeError as exc:  # no ComfyUI found
        raise WorkflowError(str(exc)) from None


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
                              "output_name": list(getattr(cls, "RETURN_NAMES", None) or outputs),
                              "output_node": bool(getattr(cls, "OUTPUT_NODE", False))}
        except Exception:  # a broken third-party node must not stop converting the others
            continue
    return info


def run_in_process(data: dict, args) -> int:
    engine = boot_engine(args)
    info = engine_object_info(engine) if is_ui_format(data) else None
    prompt, skipped = to_api(data, info, engine.node_types)
    if args.export_api:
        return export(prompt, skipped, args)
    status = report_skipped(skipped)
    saved = []
    for seed, run in expand(prompt, args):
        started = time.monotonic()
        result = engine.run(run)
        if not result.success:
            print(f"{NAME}: {result.describe_error()}", file=sys.stderr)
            status = 1
        saved += report(result.outputs, args, seed, time.monotonic() - started,
                        Path(engine.folder_paths.get_output_directory()), result.success)
    return finish(status, saved, args)


# --- server ---------------------------------------------------------------------------
def run_on_server(data: dict, args) -> int:
    base = args.server.rstrip("/")
    try:
        info = json.loads(_http(f"{base}/object_info"))
    except (urllib.error.URLError, OSError) as exc:
        raise WorkflowError(f"cannot reach the ComfyUI server at {base}: {exc}") from None
    prompt, skipped = to_api(data, info, info)
    if args.export_api:
        return export(prompt, skipped, args)
    args.out.mkdir(parents=True, exist_ok=True)
    status = report_skipped(skipped)
    saved = []
    for seed, run in expand(prompt, args):
        started, ok = time.monotonic(), True
        body = json.dumps({"prompt": run, "client_id": uuid.uuid4().hex}).encode()
        try:
            answer = json.loads(_http(f"{base}/prompt", body))
        except urllib.error.HTTPError as exc:
            print(f"{NAME}: the server refused the workflow: {_refusal(exc.read())}",
                  file=sys.stderr)
            status = 1
            continue
        if answer.get("node_errors"):  # the outputs that validated run, the others do not
            print(f"{NAME}: {_node_errors(answer['node_errors'])}", file=sys.stderr)
            ok = False
        entry = _wait_for(base, answer["prompt_id"], args.timeout)
        if entry["status"].get("status_str") != "success":
            print(f"{NAME}: {_server_error(entry)}", file=sys.stderr)
            ok = False
        status = status if ok else 1
        for node_out in entry["outputs"].values():
            for image in node_out.get("images", []) + node_out.get("gifs", []):
                if image.get("type", "output") != "output":
                    continue
                fields = ("filename", "subfolder", "type")
                query = urllib.parse.urlencode({k: image.get(k, "") for k in fields})
                target = args.out / image.get("subfolder", "") / image["filename"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(_http(f"{base}/view?{query}", raw=True))
        saved += report(entry["outputs"], args, seed, time.monotonic() - started, args.out, ok)
    return finish(status, saved, args)


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
    raise WorkflowError(f"timed out after {timeout:.0f} s waiting for prompt {prompt_id}")


def _refusal(body: bytes) -> str:
    try:
        answer = json.loads(body)
    except json.JSONDecodeError:
        return body.decode(errors="replace").strip()
    parts = [str(answer.get("error", {}).get("message", ""))]
    if answer.get("node_errors"):
        parts.append(_node_errors(answer["node_errors"]))
    return "; ".join(p for p in parts if p)


def _node_errors(node_errors: dict) -> str:
    return "; ".join(f"node {node_id} ({info.get('class_type')}): {e.get('message')}: "
                     f"{e.get('details')}"
                     for node_id, info in node_errors.items() for e in info.get("errors", []))


def _server_error(entry: dict) -> str:
    for event, data in entry["status"].get("messages", []):
        if event == "execution_error":
            return (f"node {data.get('node_id')} ({data.get('node_type')}): "
                    f"{data.get('exception_message', '').strip()}")
    return "the run failed"


# --- shared ------------------------------------------------------------------------------
def expand(prompt: dict, args) -> list[tuple[int | None, dict]]:
    prompt = apply_overrides(prompt, args.overrides)
    if args.seeds:
        return [(s, set_seeds(prompt, s)) for s in parse_seed_list(args.seeds)]
    return [(None, prompt)]


def export(prompt: dict, skipped: list[str], args) -> int:
    if args.seeds:
        raise WorkflowError("--export-api writes one prompt: use --set NODE.seed=N, not --seeds")
    prompt = apply_overrides(prompt, args.overrides)
    args.export_api.parent.mkdir(parents=True, exist_ok=True)
    args.export_api.write_text(json.dumps(prompt, indent=2) + "\n")
    for line in skipped:  # the frontend leaves them out of the prompt too
        print(f"{NAME}: note: {line} (left out)", file=sys.stderr)
    print(f"API prompt ({len(prompt)} nodes): {shown(args.export_api)}")
    return 0


def report_skipped(skipped: list[str]) -> int:
    for line in skipped:
        print(f"{NAME}: {line}; unmute it, or delete it if it is not wanted", file=sys.stderr)
    return 1 if skipped else 0


def report(outputs: dict, args, seed: int | None, seconds: float, root: Path,
           ok: bool) -> list[Path]:
    """Say what a run saved under the output folder `root` (one line per folder, or every
    path with --print-paths)."""
    files: list[Path] = []
    for node_id, node_out in sorted(outputs.items()):
        for image in node_out.get("images", []):
            if image.get("type", "output") == "output":
                files.append(root / image.get("subfolder", "") / image["filename"])
        for text in node_out.get("text", []):
            print(f"node {node_id}: {text}")
    if args.print_paths:
        for path in files:
            print(shown(path))
        return files
    folders: dict[Path, list[Path]] = {}
    for path in files:
        folders.setdefault(path.parent, []).append(path)
    head = f"seed {seed}: " if seed is not None else ""
    if not files and ok:
        print(f"{head}ran in {seconds:.1f} s, saved no image")
    for folder, paths in folders.items():
        names = paths[0].name if len(paths) == 1 else f"{paths[0].name} .. {paths[-1].name}"
        print(f"{head}{len(paths)} image{'s' * (len(paths) > 1)} in {shown(folder)}{os.sep} "
              f"({names}), {seconds:.1f} s")
    return files


def shown(path: Path) -> str:
    """A path as the user would type it: relative to where they started the runner."""
    try:
        return str(Path(path).relative_to(STARTED_IN))
    except ValueError:
        return str(path)


def finish(status: int, saved: list[Path], args) -> int:
    if args.contact_sheet and saved:
        from contact_sheet import contact_sheet

        contact_sheet(saved, args.contact_sheet)
        print(f"contact sheet: {shown(args.contact_sheet)}")
    return status


def main(argv=None) -> int:
    global STARTED_IN
    STARTED_IN = Path.cwd()
    args = parse_args(argv)
    for name in ("workflow", "out", "export_api", "contact_sheet", "models", "input"):
        if getattr(args, name) is not None:  # the engine changes the working folder
            setattr(args, name, getattr(args, name).resolve())
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        data = read_workflow(args.workflow)
        if args.export_api and not is_ui_format(data):  # nothing to convert: no engine needed
            return export(data, [], args)
        if args.server:
            return run_on_server(data, args)
        return run_in_process(data, args)
    except WorkflowError as exc:
        print(f"{NAME}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
