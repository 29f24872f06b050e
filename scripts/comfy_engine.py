"""Run ComfyUI prompts in-process with the real engine (no HTTP server, no frontend).

Used by the headless workflow runner and by the engine tests. This module must be imported
from a process whose sys.path does NOT hold the pack's root (ComfyUI has top-level modules
named `nodes` and `utils` that the pack's folders would shadow); the pack itself is loaded
by ComfyUI from `custom_nodes/`, exactly as in a real install.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def default_comfy_dir() -> Path:
    """COMFYUI_DIR if set; else the pinned engine COMFYUI_VERSION (set up by scripts/setup.sh);
    else the default pinned engine."""
    if os.environ.get("COMFYUI_DIR"):
        return Path(os.environ["COMFYUI_DIR"]).resolve()
    if os.environ.get("COMFYUI_VERSION"):
        path = REPO / ".comfyui" / f"ComfyUI-{os.environ['COMFYUI_VERSION']}"
        if not (path / "main.py").is_file():
            raise RuntimeError(f"no ComfyUI at {path}: run COMFYUI_VERSION="
                               f"{os.environ['COMFYUI_VERSION']} scripts/setup.sh")
        return path
    current = REPO / ".comfyui" / "current"
    if current.is_file():
        return Path(current.read_text().strip())
    raise RuntimeError("no ComfyUI found: run scripts/setup.sh or set COMFYUI_DIR")


class _ServerStub:
    """The few PromptServer attributes the executor touches when no client is connected."""

    def __init__(self):
        self.client_id = None
        self.last_node_id = None
        self.last_prompt_id = None
        self.sockets_metadata = {}
        self.messages: list[tuple[str, dict]] = []

    def send_sync(self, event, data, sid=None):
        self.messages.append((event, data))

    def queue_updated(self):
        pass

    def send_progress_text(self, *args, **kwargs):
        pass


@dataclass
class RunResult:
    prompt_id: str
    success: bool
    outputs: dict = field(default_factory=dict)   # node id -> ui output (images, text, ...)
    messages: list = field(default_factory=list)  # executor status messages
    validation_error: dict | None = None  # also set when only some outputs were refused

    @property
    def error(self) -> dict | None:
        """The execution_error payload (node_id, node_type, exception_message, ...)."""
        for event, data in self.messages:
            if event == "execution_error":
                return data
        return None

    def describe_error(self) -> str:
        parts = [_format_validation(self.validation_error)] if self.validation_error else []
        err = self.error
        if err:
            parts.append(f"node {err.get('node_id')} ({err.get('node_type')}): "
                         f"{err.get('exception_message', '').strip()}")
        return "; ".join(parts) or "failed without an error message"


class Engine:
    """One booted ComfyUI per process (ComfyUI keeps global state: boot it once)."""

    _booted: "Engine | None" = None

    def __init__(self, comfy_dir: Path | None = None, output_dir: Path | None = None,
                 input_dir: Path | None = None, models_dir: Path | None = None,
                 cache: bool = False, quiet: bool = False):
        """quiet: keep the engine's start-up log (e.g. its optional audio nodes failing to
        import) in self.boot_log and show only what concerns custom node packs, then only
        warnings and errors that are not about a node the caller reports itself."""
        if Engine._booted is not None:
            raise RuntimeError("ComfyUI is already booted in this process; reuse Engine.get()")
        self.comfy_dir = Path(comfy_dir or default_comfy_dir()).resolve()
        self.boot_log: list[logging.LogRecord] = []
        if quiet:
            with _QuietLog(self.boot_log):
                self._boot(output_dir, input_dir, models_dir, cache)
        else:
            self._boot(output_dir, input_dir, models_dir, cache)
        Engine._booted = self

    @classmethod
    def get(cls, **kwargs) -> "Engine":
        return cls._booted or cls(**kwargs)

    def _boot(self, output_dir, input_dir, models_dir, cache) -> None:
        comfy = str(self.comfy_dir)
        repo = str(REPO)
        sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != repo]
        sys.path.insert(0, comfy)
        os.chdir(comfy)
        sys.argv = [sys.argv[0]]
        from comfy.cli_args import args  # before anything imports comfy.model_management

        args.cpu = args.cpu or not _has_accelerator()
        args.disable_api_nodes = True
        import folder_paths
        import utils.extra_config  # noqa: F401  (before `nodes`, which shadows `utils`)
        import utils.install_util  # noqa: F401

        if output_dir:
            folder_paths.set_output_directory(str(output_dir))
        if input_dir:
            folder_paths.set_input_directory(str(input_dir))
        if models_dir:
            _use_models_dir(folder_paths, Path(models_dir))
        import execution
        import hook_breaker_ac10a0
        import server

        import nodes

        self.stub = _ServerStub()
        if hasattr(server, "PromptServer"):
            server.PromptServer.instance = self.stub
        try:  # ComfyUI >= 0.30 looks this up on the server instance
            import app.node_replace_manager as nrm
            self.stub.node_replace_manager = nrm.NodeReplaceManager()
        except ImportError:
            pass
        hook_breaker_ac10a0.save_functions()
        asyncio.run(nodes.init_extra_nodes(init_custom_nodes=True, init_api_nodes=False))
        hook_breaker_ac10a0.restore_functions()
        self.nodes = nodes
        self.folder_paths = folder_paths
        self.execution = execution
        self.node_types = set(nodes.NODE_CLASS_MAPPINGS)
        # cache=False re-executes every node each run (tests want that); cache=True keeps
        # outputs of unchanged nodes between runs, as a server does.
        cache_type = execution.CacheType.CLASSIC if cache else execution.CacheType.NONE
        self.executor = execution.PromptExecutor(
            self.stub, cache_type=cache_type, cache_args={"lru": 0, "ram": 0, "ram_inactive": 0})

    def run(self, prompt: dict, prompt_id: str | None = None,
            outputs: list[str] | None = None) -> RunResult:
        """Validate and execute a prompt. outputs: node ids to execute up to (default: the
        prompt's output nodes), e.g. to time a non-output node without file I/O."""
        prompt_id = prompt_id or uuid.uuid4().hex
        valid = asyncio.run(self.execution.validate_prompt(prompt_id, prompt, None))
        if not valid[0]:
            return RunResult(prompt_id, False, validation_error={"error": valid[1],
                                                                   "node_errors": valid[3]})
        self.stub.messages.clear()
        self.executor.execute(prompt, prompt_id, {"client_id": None}, outputs or valid[2])
        # The engine runs the outputs that validated and skips the others (a server does the
        # same): a run is a success only when every output ran.
        refused = {"error": None, "node_errors": valid[3]} if valid[3] else None
        return RunResult(prompt_id, bool(self.executor.success) and refused is None,
                         outputs=dict(self.executor.history_result.get("outputs", {})),
                         messages=[(m[0], m[1]) for m in self.executor.status_messages],
                         validation_error=refused)


def _has_accelerator() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def _use_models_dir(folder_paths, models_dir: Path) -> None:
    """Point every model folder at models_dir/<name> (tests and runs with their own models)."""
    folder_paths.models_dir = str(models_dir)
    for name, (_paths, exts) in list(folder_paths.folder_names_and_paths.items()):
        if name == "custom_nodes":
            continue
        folder_paths.folder_names_and_paths[name] = ([str(models_dir / name)], exts)


class _QuietLog:
    """Collects the engine's log records while it boots (into `records`), then passes on
    those about custom node packs (a pack that fails to import is a real error) and every
    ERROR; afterwards shows WARNING and above, except the executor's own report of a failing
    node (the runner reports that in one line)."""

    def __init__(self, records: list):
        self.records = records
        self.root = logging.getLogger()

    def __enter__(self):
        self.saved = (self.root.handlers[:], self.root.level)
        self.buffer = _ListHandler(self.records)
        self.root.handlers[:] = [self.buffer]  # also keeps logging.warning() from basicConfig
        self.root.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc):
        shown = logging.StreamHandler(sys.stderr)
        shown.setFormatter(logging.Formatter("%(message)s"))
        shown.addFilter(_hide_executor_reports)
        self.root.handlers[:] = self.saved[0] or [shown]
        self.root.setLevel(logging.WARNING)
        for record in self.records:
            message = record.getMessage()
            about_packs = "custom_nodes" in message and "comfy_extras" not in message
            if record.levelno >= logging.ERROR or (record.levelno >= logging.WARNING
                                                   and about_packs):
                self.root.handle(record)
        return False


class _ListHandler(logging.Handler):
    def __init__(self, records: list):
        super().__init__(logging.DEBUG)
        self.records = records

    def emit(self, record):
        self.records.append(record)


def _hide_executor_reports(record: logging.LogRecord) -> bool:
    return not record.pathname.endswith("execution.py")


def _format_validation(err: dict) -> str:
    top = err.get("error")
    parts = [str(top.get("message", top) if isinstance(top, dict) else top)] if top else []
    for node_id, info in (err.get("node_errors") or {}).items():
        for e in info.get("errors", []):
            parts.append(f"node {node_id} ({info.get('class_type')}): {e.get('message')}: "
                         f"{e.get('details')}")
    return "; ".join(parts)
