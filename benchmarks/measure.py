"""Measure wall time and peak memory of a function in a fresh child process."""

from __future__ import annotations

import multiprocessing as mp
import resource
import time
from collections.abc import Callable
from typing import Any


def _child(fn: Callable[..., Any], args: tuple, conn: Any) -> None:
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    extra = fn(*args)
    seconds = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    conn.send(
        {
            "seconds": seconds,
            "peak_mb": peak_kb / 1024,
            "baseline_mb": baseline / 1024,
            "extra": extra,
        }
    )
    conn.close()


def measure(fn: Callable[..., Any], *args: Any) -> dict[str, Any]:
    """Run ``fn(*args)`` in a forked child; return seconds, peak RSS (MB) and fn's return value.

    The peak is the child's maximum resident set size, which includes what the parent had
    imported before the fork (reported as ``baseline_mb``).
    """
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(fn, args, child))
    proc.start()
    result = parent.recv()
    proc.join()
    return result
