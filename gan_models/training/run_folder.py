"""The layout of a run folder, and keeping it sound when the process writing it dies.

RUN_DIR/run.json            settings of the run (RunSettings in run.py): enough to resume it
RUN_DIR/metrics.jsonl       one JSON line per logging interval
RUN_DIR/snapshots/          numbered snapshot pairs + latest.json (see snapshots.py)
RUN_DIR/samples/*.png       reals.png, loss_curve.png, and at each snapshot a grid of the
                            fixed latents (step-*.png) plus the recipe's other previews
                            (VAEs: recon-*.png, training images next to their reconstructions)
RUN_DIR/model.safetensors   the final model (EMA generator + discriminator; VAE: + encoder)
RUN_DIR/data/               the training images, for a run trained on images from memory
                            (a ComfyUI IMAGE batch), so that the CLI can resume it
RUN_DIR/run.lock            locked by the one process writing the run; holds its pid

A crash (kill -9, power loss) may leave a torn last line in metrics.jsonl, temporary files of
an interrupted atomic write (`.<name>.XXXX.tmp`) and a lock file naming a dead process: a run
that starts or resumes in the folder drops the first, removes the second and takes over the
third, saying so.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import GanStudioError
from ..formats.atomic import atomic_path
from .plots import image_grid, to_pil
from .snapshots import latest_snapshot, write_snapshot

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
try:
    import msvcrt
except ImportError:  # everywhere else
    msvcrt = None

Log = Callable[[str], None]

SETTINGS = "run.json"
METRICS = "metrics.jsonl"
SNAPSHOTS = "snapshots"
SAMPLES = "samples"
MODEL = "model.safetensors"
DATA = "data"
LOCK = "run.lock"
# Runs of the Train Steps node: <ComfyUI output>/gan_studio_training/<run name>/.
GRAPH_RUNS = "gan_studio_training"
# File names of preview grids: samples/<stem>-<step>.png (other grids use their own name).
GRID_STEMS = {"samples": "step", "reconstructions": "recon"}
# What formats.atomic leaves behind when a write is interrupted.
TEMP_FILE = re.compile(r"^\..+\.tmp$")
LOCK_BYTE = 1 << 20  # Windows locks a byte range; this one lies past the pid text


class RunFolderBusy(GanStudioError):
    """Another process is writing the run folder."""


class RunFolder:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.settings_file = self.root / SETTINGS
        self.metrics_file = self.root / METRICS
        self.snapshots = self.root / SNAPSHOTS
        self.samples = self.root / SAMPLES
        self.model_file = self.root / MODEL
        self.data = self.root / DATA
        self.lock_file = self.root / LOCK

    def __str__(self) -> str:
        return str(self.root)

    # --- settings -----------------------------------------------------------------------
    def read_settings(self) -> dict:
        """run.json, or {} when there is none."""
        if not self.settings_file.is_file():
            return {}
        try:
            data = json.loads(self.settings_file.read_text())
        except (ValueError, OSError) as exc:
            raise GanStudioError(f"{self.settings_file} is damaged ({exc}); fix or remove "
                                 "it (resuming then needs --data and the run's settings)"
                                 ) from None
        if not isinstance(data, dict):
            raise GanStudioError(f"{self.settings_file} does not hold a run's settings")
        return data

    def write_settings(self, settings: dict) -> None:
        with atomic_path(self.settings_file) as tmp:
            Path(tmp).write_text(json.dumps(settings, indent=1))

    # --- snapshots ----------------------------------------------------------------------
    def latest_snapshot(self) -> dict[str, Path] | None:
        """Paths ('model', 'state') of the newest complete snapshot, or None."""
        return latest_snapshot(self.snapshots)

    def write_snapshot(self, trainer, keep: int = 0,
                       grids: dict | None = None) -> dict[str, Path]:
        """A snapshot pair plus its preview grids and the loss curve in samples/; keep > 0
        deletes all but the newest `keep` pairs (never the one just written)."""
        paths = write_snapshot(self.snapshots, trainer)
        if keep > 0:
            self._prune(keep, paths["state"])
        self.samples.mkdir(parents=True, exist_ok=True)
        for name, grid in (grids or trainer.preview_grids()).items():
            stem = GRID_STEMS.get(name, name)
            to_pil(grid).save(self.samples / f"{stem}-{trainer.step:08d}.png")
        to_pil(trainer.loss_curve()).save(self.samples / "loss_curve.png")
        return paths

    def write_reals(self, dataset) -> None:
        self.samples.mkdir(parents=True, exist_ok=True)
        to_pil(image_grid(dataset.preview())).save(self.samples / "reals.png")

    def _prune(self, keep: int, current: Path) -> None:
        """Keep the pair just written and the newest keep-1 others. (A graph that re-runs a
        later Train Steps may write an earlier step than the folder's newest.)"""
        others = [p for p in sorted(self.snapshots.glob("snapshot-*.state.safetensors"))
                  if p != current]
        for state in others[:max(0, len(others) - (keep - 1))]:
            model = state.with_name(state.name.replace(".state.safetensors", ".safetensors"))
            for p in (state, model):
                p.unlink(missing_ok=True)

    # --- metrics ------------------------------------------------------------------------
    def append_metrics(self, line: dict) -> None:
        with open(self.metrics_file, "a") as f:
            f.write(json.dumps(line) + "\n")

    def read_metrics(self, log: Log = print) -> list[dict]:
        """The rows of metrics.jsonl. A torn last line (the process died while writing it)
        is dropped and damaged lines elsewhere are skipped; `log` is told about both."""
        return [row for row, _text in self._metric_lines(log)]

    def trim_metrics(self, step: int, log: Log = print) -> None:
        """Keep only the rows up to `step` (a resumed run writes the later ones again) and
        rewrite the file without torn or damaged lines."""
        if not self.metrics_file.is_file():
            return
        kept = [text for row, text in self._metric_lines(log) if row.get("step", 0) <= step]
        with atomic_path(self.metrics_file) as tmp:
            Path(tmp).write_text("".join(text + "\n" for text in kept))

    def _metric_lines(self, log: Log) -> list[tuple[dict, str]]:
        if not self.metrics_file.is_file():
            return []
        *lines, tail = self.metrics_file.read_bytes().decode("utf-8", "replace").split("\n")
        rows, damaged = [], []
        for number, text in enumerate(lines, 1):
            if text.strip():
                row = _json_object(text)
                if row is None:
                    damaged.append(number)
                else:
                    rows.append((row, text))
        if tail.strip():  # no newline after it: complete only if it parses
            row = _json_object(tail)
            if row is None:
                log(f"{self.metrics_file}: dropped a torn last line (the writing process "
                    f"stopped in the middle of it): {tail[:60]!r}")
            else:
                rows.append((row, tail))
        if damaged:
            shown = ", ".join(map(str, damaged[:10])) + (", ..." if len(damaged) > 10 else "")
            log(f"{self.metrics_file}: skipped {len(damaged)} damaged line(s) (not JSON "
                f"objects): line {shown}")
        return rows

    # --- crash leftovers ----------------------------------------------------------------
    def clean_temp_files(self, log: Log = print) -> int:
        """Remove the temporary files of interrupted atomic writes; returns how many. Call
        it only while holding the lock (another writer's temporary files are live)."""
        removed = 0
        for folder in (self.root, self.snapshots, self.samples):
            if not folder.is_dir():
                continue
            for p in folder.iterdir():
                if TEMP_FILE.match(p.name) and p.is_file():
                    p.unlink(missing_ok=True)
                    removed += 1
        if removed:
            log(f"removed {removed} temporary file(s) left in {self.root} by an interrupted "
                "write")
        return removed

    @contextlib.contextmanager
    def locked(self, log: Log = print) -> Iterator[RunFolder]:
        """Hold the folder's lock for the block (see RunLock)."""
        lock = RunLock(self, log)
        lock.acquire()
        try:
            yield self
        finally:
            lock.release()


class RunLock:
    """One writer per run folder: an exclusive lock on RUN_DIR/run.lock (flock on POSIX,
    msvcrt.locking on Windows), which the system drops when the process ends however it
    ends. The file holds the writer's pid, so a refused writer can say who holds the folder
    and a new one can say whose stale lock it took over."""

    def __init__(self, folder: RunFolder, log: Log = print):
        self.folder, self.log = folder, log
        self.fd: int | None = None

    def acquire(self) -> None:
        path = self.folder.lock_file
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            if not _try_lock(fd):
                holder = _read_pid(fd)
                who = f"process {holder}" if holder else "another process"
                raise RunFolderBusy(f"run folder {self.folder} is in use by {who}; wait for it "
                                    "or stop it")
            previous = _read_pid(fd)
            if previous and previous != os.getpid():
                state = ("is no longer running" if _pid_alive(previous) is False
                         else "no longer holds it")
                self.log(f"taking over run folder {self.folder}: its lock was left by process "
                         f"{previous}, which {state}")
            os.ftruncate(fd, 0)
            _write_at_start(fd, f"{os.getpid()}\n".encode())
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd

    def release(self) -> None:
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        try:
            os.ftruncate(fd, 0)  # a clean exit leaves no pid behind
            _unlock(fd)
        finally:
            os.close(fd)

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def graph_run_folder(output_dir: str | os.PathLike, run_name: str) -> RunFolder:
    """Where the Train Steps node keeps a run: <output>/gan_studio_training/<run name>."""
    return RunFolder(Path(output_dir) / GRAPH_RUNS / run_name)


def new_run_name(recipe: str, source: str) -> str:
    """'cdcgan_shapes_1a2b3c': recipe, data and a random suffix (a folder name)."""
    safe = re.sub(r"[^A-Za-z0-9_-]+", "-", source).strip("-")[:40]
    return f"{recipe}_{safe or 'images'}_{uuid.uuid4().hex[:6]}"


def snapshot_step(path: str | os.PathLike) -> int:
    """snapshot-00000068.safetensors (or .state.safetensors) -> 68."""
    return int(Path(path).name.split("-")[1].split(".")[0])


def _json_object(text: str) -> dict | None:
    try:
        row = json.loads(text)
    except ValueError:
        return None
    return row if isinstance(row, dict) else None


def _try_lock(fd: int) -> bool:
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise
        return True
    if msvcrt is not None:
        os.lseek(fd, LOCK_BYTE, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    return True  # no locking on this platform: one writer is the user's job


def _unlock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
    elif msvcrt is not None:
        os.lseek(fd, LOCK_BYTE, os.SEEK_SET)
        with contextlib.suppress(OSError):
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


def _read_pid(fd: int) -> int | None:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 32).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


def _write_at_start(fd: int, data: bytes) -> None:
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, data)


def _pid_alive(pid: int) -> bool | None:
    """False when no process has this pid, True when one has; None when unknown."""
    if os.name != "posix":
        return None  # os.kill(pid, 0) would end the process on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return None
    return True
