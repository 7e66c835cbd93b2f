"""Measure wall time and peak memory of a function in a child process (forked or fresh)."""

from __future__ import annotations

import importlib
import multiprocessing as mp
import resource
import time
from collections.abc import Callable
from typing import Any


def _child(fn: Callable[..., Any], args: tuple, conn: Any, self_timed: bool = False) -> None:
    """Call ``fn(*args)`` and send its time, the peak RSS and its return value.

    ``self_timed``: ``fn`` returns a dict with the ``seconds`` it measured itself.
    """
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    extra = fn(*args)
    seconds = time.perf_counter() - start
    if self_timed:
        extra = dict(extra)
        seconds = extra.pop("seconds")
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


def _fresh_child(module: str, function: str, args: tuple, conn: Any) -> None:
    _child(getattr(importlib.import_module(module), function), args, conn, self_timed=True)


def _run(method: str, target: Callable[..., None], *args: Any) -> dict[str, Any]:
    """Start ``target(*args, conn)`` in a child process started by ``method``; its report."""
    ctx = mp.get_context(method)
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=target, args=(*args, child))
    proc.start()
    result = parent.recv()
    proc.join()
    return result


def measure(fn: Callable[..., Any], *args: Any) -> dict[str, Any]:
    """Run ``fn(*args)`` in a forked child; return seconds, peak RSS (MB) and fn's return value.

    The peak is the child's maximum resident set size, which includes what the parent had
    imported before the fork (reported as ``baseline_mb``).
    """
    return _run("fork", _child, fn, args)


def measure_fresh(module: str, function: str, *args: Any) -> dict[str, Any]:
    """Run ``module.function(*args)`` in a new Python process (spawned, not forked).

    The function times itself (after whatever warm-up it does) and returns a dict with
    ``seconds``; the rest of its dict comes back as ``extra``, with the process's peak RSS (MB,
    imports included; ``baseline_mb`` is the peak before the call).

    A fresh process is how a user's script, notebook kernel or loky/Dask worker runs. A forked
    child is not neutral for NumPy/SciPy code: OpenBLAS stops its thread pool before a fork and
    the child's first BLAS or LAPACK call (or thread-count change) starts a new one, whose
    threads busy-wait for about 0.1 s, a cost a package that does not use OpenBLAS never pays.
    """
    return _run("spawn", _fresh_child, module, function, args)
