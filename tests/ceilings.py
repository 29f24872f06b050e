"""Running one prompt against the limited server under ceilings: how long it took, the
slowest /system_stats answer while it ran, and how much the server's peak memory grew.

The limited server (conftest.limited_server) runs under an address-space limit (RLIMIT_AS of
SERVER_AS_GIB, set in the server process before it starts; RLIMIT_AS rather than
RLIMIT_DATA because torch's allocator maps large blocks with mmap, which RLIMIT_DATA only
counts on recent kernels): a regression into allocating what an input declares fails with
a MemoryError instead of eating the machine. A normal server peaks near 4 GiB of address
space on this CPU build. Peak resident memory (VmHWM) is reset per prompt through
/proc/<pid>/clear_refs.
"""

from __future__ import annotations

import re
import resource
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

SERVER_AS_GIB = 8
MEMORY_CEILING_MB = 256
ANSWER_CEILING_S = 2.0
POLL_S = 0.2


def limit_address_space() -> None:  # runs in the server process, before exec
    limit = SERVER_AS_GIB << 30
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


class Poller(threading.Thread):
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


def peak_mb(pid: int, reset: bool = False) -> float:
    if reset:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024


def execution_error(entry: dict) -> tuple[str, str]:
    """(node type, message) of the prompt's execution error."""
    errors = [m[1] for m in entry["status"]["messages"] if m[0] == "execution_error"]
    assert errors, entry["status"]
    return errors[0]["node_type"], errors[0]["exception_message"].strip()


@dataclass
class Measured:
    code: int                  # HTTP status of POST /prompt (400: refused by validation)
    answer: dict               # its JSON body
    entry: dict | None         # /history entry when the prompt was queued
    seconds: float
    slowest_answer: float
    grown_mb: float
    failures: list = field(default_factory=list)

    def check_ceilings(self, seconds: float, what: str) -> None:
        assert self.seconds < seconds, f"{what}: took {self.seconds:.1f} s (ceiling {seconds} s)"
        assert self.grown_mb < MEMORY_CEILING_MB, f"{what}: peak memory grew {self.grown_mb:.0f} MB"
        assert not self.failures, self.failures
        assert self.slowest_answer < ANSWER_CEILING_S, \
            f"{what}: /system_stats took {self.slowest_answer:.1f} s to answer"


def measure(srv, prompt: dict, timeout: float) -> Measured:
    """POST the prompt and wait for it, polling /system_stats all the while."""
    base = peak_mb(srv.proc.pid, reset=True)
    poller = Poller(srv.url)
    poller.start()
    start = time.monotonic()
    entry = None
    try:
        code, answer = srv.post_prompt(prompt)
        if code == 200:
            entry = srv.wait(answer["prompt_id"], timeout=timeout)
    finally:
        seconds = time.monotonic() - start
        poller.stop.set()
        poller.join()
    assert srv.proc.poll() is None, "the server died"
    return Measured(code, answer, entry, seconds, max(poller.times, default=0.0),
                    peak_mb(srv.proc.pid) - base, poller.failures)


def print_timings(what: str, timings: dict[str, tuple[float, float, float]]) -> None:
    """One line per case (seconds, slowest /system_stats answer, peak growth), then a summary."""
    for name, (seconds, answer, grown) in timings.items():
        print(f"\n  {name:32s} {seconds:5.2f} s  slowest answer {answer:4.2f} s  "
              f"peak +{grown:3.0f} MB", end="")
    if timings:
        slowest = max(timings, key=lambda k: timings[k][0])
        print(f"\n{what}: {len(timings)} cases, slowest {slowest!r} "
              f"{timings[slowest][0]:.2f} s; slowest /system_stats answer "
              f"{max(t[1] for t in timings.values()):.2f} s; largest peak growth "
              f"{max(t[2] for t in timings.values()):.0f} MB")
