"""Independent tiles of work on single-threaded workers.

Cache-sized tiles make many small ops. Split across the intra-op thread pool, each op pays a
fork/join, and on a busy machine a join waits for whichever thread the OS scheduled last.
Instead each tile runs start to end on one worker thread whose ops are single-threaded
(`torch.set_num_threads(1)` is per thread), and the workers share nothing but the output
they write to (disjoint regions). PyTorch ops release the GIL, so the workers run in
parallel; only the Python glue between ops is serialised.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import torch

_pools: dict[int, ThreadPoolExecutor] = {}
_lock = threading.Lock()
_settled = False


def settle_allocator() -> None:
    """Once per process: free one 30 MB block, so that glibc's malloc raises its adaptive
    mmap threshold to 30 MB (and its trim threshold to 60 MB), as it does after any such
    free. Tiles allocate and free blocks of a few MB; below the default thresholds each is a
    fresh mmap whose pages fault on first touch, which costs more than the arithmetic
    (measured: 2-3x slower tiles). Elsewhere (other allocators) this is a harmless no-op."""
    global _settled
    if not _settled:
        _settled = True
        torch.empty(30 << 20, dtype=torch.uint8)  # never touched: no pages are faulted


def _single_threaded() -> None:
    torch.get_num_threads()  # this thread's one-time init first: it would undo the next line
    torch.set_num_threads(1)


def _pool(workers: int) -> ThreadPoolExecutor:
    with _lock:
        if workers not in _pools:
            pool = ThreadPoolExecutor(max_workers=workers, initializer=_single_threaded,
                                      thread_name_prefix="gan-studio-tiles")
            # `torch.set_num_threads(1)` in each worker also sets the process-wide default
            # that threads started later take on their first op (ComfyUI's, for one). Start
            # every worker now, then put the default back from this thread (whose own count
            # it already is); the workers keep theirs.
            threads = torch.get_num_threads()
            started = threading.Barrier(workers)
            for future in [pool.submit(started.wait) for _ in range(workers)]:
                future.result()
            torch.set_num_threads(threads)
            _pools[workers] = pool
        return _pools[workers]


def run_tiles(fn: Callable[[object], None], tiles: Iterable, workers: int) -> None:
    """Call `fn(tile)` for every tile, on `workers` single-threaded threads (inline when
    that is one worker or one tile). The caller's grad and inference modes apply inside;
    autocast does not (thread-local), so `fn` must choose its dtypes itself."""
    tiles = list(tiles)
    if workers <= 1 or len(tiles) <= 1:
        for tile in tiles:
            fn(tile)
        return
    inference, grad = torch.is_inference_mode_enabled(), torch.is_grad_enabled()

    def task(tile):
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            fn(tile)

    futures = [_pool(workers).submit(task, tile) for tile in tiles]
    for future in futures:
        future.result()
