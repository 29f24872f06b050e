"""Start a real ComfyUI server (main.py --cpu) on a loopback port for server and browser tests."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


class Server:
    def __init__(self, url: str, log: Path, dirs: dict):
        self.url, self.log, self.dirs = url, log, dirs

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=30) as resp:
            return json.loads(resp.read())

    def post_prompt(self, prompt: dict) -> tuple[int, dict]:
        body = json.dumps({"prompt": prompt, "client_id": "gan-studio-tests"}).encode()
        req = urllib.request.Request(self.url + "/prompt", data=body,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def wait(self, prompt_id: str, timeout: float = 300) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            history = self.get(f"/history/{prompt_id}")
            entry = history.get(prompt_id)
            if entry and entry.get("status", {}).get("completed") is not None:
                return entry
            time.sleep(0.2)
        raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout} s")

    def run(self, prompt: dict) -> dict:
        code, answer = self.post_prompt(prompt)
        assert code == 200, answer
        return self.wait(answer["prompt_id"])

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(root: Path, frontend: bool = False, preexec_fn=None) -> Server:
    """ComfyUI with this pack, its own output/input/user folders and a models folder holding a
    tiny conditional model (plus the pack's shipped models). frontend=False serves no UI;
    preexec_fn runs in the server process before it starts (e.g. to set resource limits)."""
    from comfy_engine import default_comfy_dir

    comfy = default_comfy_dir()
    dirs = {n: root / n for n in ("output", "input", "models", "frontend", "user")}
    for d in dirs.values():
        d.mkdir()
    (dirs["models"] / "gan").mkdir()
    from helpers import save_tiny

    save_tiny(dirs["models"] / "gan", "tiny_cond.safetensors", num_classes=3,
              class_names=["circle", "square", "triangle"])
    from helpers import write_nvlabs_standins

    from gan_models.training.shapes import write_shapes_folder

    write_nvlabs_standins(dirs["models"] / "gan")

    write_shapes_folder(dirs["input"] / "gan_studio_shapes", per_class=16, size=32)
    settings = dirs["user"] / "default" / "comfy.settings.json"
    settings.parent.mkdir(parents=True)
    # a returning user: no first-run template browser over the canvas
    settings.write_text(json.dumps({"Comfy.TutorialCompleted": True}))
    extra = root / "extra_model_paths.yaml"
    extra.write_text(f"gan_studio_tests:\n  base_path: {dirs['models']}\n  gan: gan\n")
    port = _free_port()
    log = root / "server.log"
    cmd = [sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
           "--disable-auto-launch", "--disable-api-nodes",
           *([] if frontend else ["--front-end-root", str(dirs["frontend"])]),
           "--output-directory", str(dirs["output"]), "--input-directory", str(dirs["input"]),
           "--user-directory", str(dirs["user"]), "--extra-model-paths-config", str(extra)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=comfy, stdout=out, stderr=subprocess.STDOUT, env=env,
                                preexec_fn=preexec_fn)
    srv = Server(f"http://127.0.0.1:{port}", log, dirs)
    deadline = time.monotonic() + 180
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"ComfyUI exited during start-up:\n{srv.log_text()[-4000:]}")
        try:
            srv.get("/system_stats")
            break
        except (urllib.error.URLError, ConnectionError, OSError):
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"ComfyUI did not start:\n{srv.log_text()[-4000:]}") from None
            time.sleep(0.5)
    srv.proc = proc
    return srv


def stop_server(srv: Server) -> None:
    srv.proc.terminate()
    try:
        srv.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        srv.proc.kill()
