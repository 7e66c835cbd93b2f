"""Run BLAS on one thread while a model is fitted.

The mixed-model engines do many small matrix products; BLAS threads only add synchronisation
cost there, which becomes large when another process keeps a core busy.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager

from threadpoolctl import ThreadpoolController

__all__ = ["one_blas_thread"]


@functools.cache
def _blas_controller() -> ThreadpoolController:
    """The BLAS thread pools, found once (finding them scans every loaded library)."""
    return ThreadpoolController()


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run BLAS on one thread inside the ``with`` block (restored afterwards)."""
    with _blas_controller().limit(limits=1, user_api="blas"):
        yield
