"""Hostile checkpoints against a real server: each is refused with its exact message within
its time and memory ceilings, and the server answers /system_stats throughout.

The server of this module runs under an address-space limit (RLIMIT_AS of SERVER_AS_GIB,
set in the server process before it starts; RLIMIT_AS rather than RLIMIT_DATA because
torch's allocator maps large blocks with mmap, which RLIMIT_DATA only counts on recent
kernels): a loader that regresses into allocating what a file declares fails with a
MemoryError here, instead of eating the machine. A normal server peaks near 4 GiB of
address space on this CPU build. Per case, the server's peak resident memory (VmHWM, reset
through /proc/<pid>/clear_refs) may grow by at most MEMORY_CEILING_MB.

While each prompt runs, /system_stats is asked every POLL_S seconds and must answer within
ANSWER_CEILING_S: loading never holds the HTTP thread. The cases and their messages are in
tests/fixtures_hostile.py (HOSTILE), shared with the unit tests.
"""

from __future__ import annotations

import re
import resource
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from comfy_server import start_server, stop_server
from engine_prompts import sample_prompt
from fixtures_hostile import HOSTILE

pytestmark = pytest.mark.server

SERVER_AS_GIB = 8
MEMORY_CEILING_MB = 256
ANSWER_CEILING_S = 2.0
POLL_S = 0.2
TIMINGS: dict[str, tuple[float, float, float]] = {}  # file: (seconds, slowest answer, MB)


def _limit_address_space() -> None:  # runs in the server process, before exec
    limit = SERVER_AS_GIB << 30
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("hostile"), preexec_fn=_limit_address_space)
    gan = Path(srv.dirs["models"]) / "gan"
    for case in HOSTILE:
        case.build(gan / case.file)
    yield srv
    stop_server(srv)
    for name, (seconds, answer, grown) in TIMINGS.items():
        print(f"\n  {name:28s} {seconds:5.2f} s  slowest answer {answer:4.2f} s  "
              f"peak +{grown:3.0f} MB", end="")
    if TIMINGS:
        slowest = max(TIMINGS, key=lambda k: TIMINGS[k][0])
        print(f"\nhostile checkpoints: {len(TIMINGS)} cases, slowest {slowest} "
              f"{TIMINGS[slowest][0]:.2f} s; slowest /system_stats answer "
              f"{max(t[1] for t in TIMINGS.values()):.2f} s; largest peak growth "
              f"{max(t[2] for t in TIMINGS.values()):.0f} MB")


class _Poller(threading.Thread):
    """Asks /system_stats every POLL_S seconds; records how long each answer took."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.stop, self.times, self.failures = url, threading.Event(), [], []

    def run(self):
        while not self.stop.is_set():
            start = time.monotonic()
            try:
                with urllib.request.urlopen(self.url + "/system_stats",
                                            timeout=ANSWER_CEILING_S) as resp:
                    resp.read()
                self.times.append(time.monotonic() - start)
            except OSError as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
            self.stop.wait(POLL_S)


def _peak_mb(pid: int, reset: bool = False) -> float:
    if reset:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024


def _error_message(entry: dict) -> tuple[str, str]:
    errors = [m[1] for m in entry["status"]["messages"] if m[0] == "execution_error"]
    assert errors, entry["status"]
    return errors[0]["node_type"], errors[0]["exception_message"].strip()


@pytest.mark.parametrize("case", HOSTILE, ids=lambda c: c.file)
def test_hostile_checkpoint_is_refused_within_its_ceilings(hostile_server, case):
    srv = hostile_server
    base = _peak_mb(srv.proc.pid, reset=True)
    poller = _Poller(srv.url)
    poller.start()
    start = time.monotonic()
    try:
        code, answer = srv.post_prompt(sample_prompt(ckpt=case.file, batch=1, prefix="hostile"))
        assert code == 200, answer
        entry = srv.wait(answer["prompt_id"], timeout=case.seconds + 30)
    finally:
        seconds = time.monotonic() - start
        poller.stop.set()
        poller.join()
    grown = _peak_mb(srv.proc.pid) - base
    TIMINGS[case.file] = (seconds, max(poller.times, default=0.0), grown)
    node, message = _error_message(entry)
    assert node == "GANStudioLoadModel"
    assert re.fullmatch("Load GAN Model: " + case.message, message), message
    assert seconds < case.seconds, f"{case.file}: refused after {seconds:.1f} s"
    assert grown < MEMORY_CEILING_MB, f"{case.file}: peak memory grew {grown:.0f} MB"
    assert not poller.failures, poller.failures
    assert poller.times and max(poller.times) < ANSWER_CEILING_S, poller.times
    assert srv.proc.poll() is None, "the server died"


def test_server_still_serves_a_good_prompt_afterwards(hostile_server):
    entry = hostile_server.run(sample_prompt(batch=1, prefix="after_hostile"))
    assert entry["status"]["status_str"] == "success", entry["status"]


@pytest.mark.parametrize("where", ["relative", "absolute"])
def test_a_checkpoint_outside_the_models_folder_is_never_read(hostile_server, where):
    """A good checkpoint just outside models/gan, named by a path that climbs out of it
    (or by its absolute path): the prompt fails, naming the load node; nothing is loaded."""
    gan = Path(hostile_server.dirs["models"]) / "gan"
    outside = gan.parent.parent / "outside.safetensors"
    outside.write_bytes((gan / "tiny_cond.safetensors").read_bytes())
    name = "../../outside.safetensors" if where == "relative" else str(outside)
    code, answer = hostile_server.post_prompt(sample_prompt(ckpt=name, batch=1))
    if code == 400:  # refused by validation
        assert "1" in answer["node_errors"], answer
        return
    assert code == 200, answer
    entry = hostile_server.wait(answer["prompt_id"])
    node, message = _error_message(entry)
    assert node == "GANStudioLoadModel"
    assert re.fullmatch(r"Load GAN Model: '.*outside\.safetensors' is not in the models/gan "
                        r"folder", message), message
