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


def _fresh_child(module: str, function: str, args: tuple, conn: Any) -> None:
    import importlib

    fn = getattr(importlib.import_module(module), function)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    extra = dict(fn(*args))
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    conn.send(
        {
            "seconds": extra.pop("seconds"),
            "peak_mb": peak_kb / 1024,
            "baseline_mb": baseline / 1024,
            "extra": extra,
        }
    )
    conn.close()


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
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_fresh_child, args=(module, function, args, child))
    proc.start()
    result = parent.recv()
    proc.join()
    return result
