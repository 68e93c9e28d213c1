"""One level of parallelism: a process pool over clips, each worker single-threaded in OpenCV.

Per-clip work (decode, mask, resize) is CPU-bound and independent, so one process per core is the fastest
arrangement; OpenCV's own thread pool is switched off in workers so that N workers use N cores, not N².
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

import cv2

# Modules the forkserver imports once, so that each worker forked from it starts in milliseconds.
_PRELOAD = ["__main__", "echo_pipeline.masking.sectors", "echo_pipeline.masking.clips"]
_POOLS: dict[int, ProcessPoolExecutor] = {}

T = TypeVar("T")
R = TypeVar("R")


def available_cores() -> int:
    """Cores this process may run on (the affinity mask, which containers and batch systems set)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _single_threaded() -> None:
    cv2.setNumThreads(1)


def _pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes, kept for the life of this process (later calls reuse it)."""
    if workers not in _POOLS:
        # Never plain fork: the parent may hold native thread pools (OpenCV's, an orchestrator's threads)
        # whose locks a forked child inherits mid-use, and deadlocks. Workers fork from a clean forkserver.
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(_PRELOAD)
        _POOLS[workers] = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_single_threaded)
    return _POOLS[workers]


@atexit.register
def _shutdown() -> None:
    for pool in _POOLS.values():
        pool.shutdown(wait=False, cancel_futures=True)
    _POOLS.clear()


def map_clips(fn: Callable[[T], R], items: Iterable[T], workers: int | None = None) -> Iterator[R]:
    """``fn`` over ``items``, results in completion order. ``workers`` 0/None = one per core; 1 = in this
    process (no pool). ``fn`` must be a module-level function (or a partial of one), items picklable."""
    items = list(items)
    workers = available_cores() if not workers else workers
    if min(workers, len(items)) <= 1:
        yield from map(fn, items)
        return
    pool = _pool(workers)
    try:
        futures = [pool.submit(fn, item) for item in items]
        for future in as_completed(futures):
            yield future.result()
    except BrokenProcessPool:
        _POOLS.pop(workers, None)  # a worker died (killed, out of memory): the next call starts a fresh pool
        raise
