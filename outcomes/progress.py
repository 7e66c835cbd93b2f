"""Progress bars for long jobs (power studies, large ingests): done, rate and time left.

One place for every long-running loop: ``with progress(total, "fitting") as bar:
bar.update(k)``. The bar (tqdm) is drawn on standard error when it is a terminal and stays
silent otherwise (pipes, log files, tests), unless ``enabled`` says so.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

__all__ = ["Progress", "progress", "track"]


class Progress(Protocol):
    """What a loop needs from a progress bar."""

    def update(self, n: float = 1) -> Any:
        """Count ``n`` more units done."""


class _Silent:
    def update(self, n: float = 1) -> None:
        return None


@contextmanager
def progress(
    total: int, description: str, *, unit: str = "it", enabled: bool | None = None
) -> Iterator[Progress]:
    """A progress bar over ``total`` units, closed on exit.

    Parameters
    ----------
    total
        Units of work (replicates, rows, files).
    description
        What is being done, shown before the bar.
    unit
        Name of one unit, for the rate ("replicate/s").
    enabled
        ``None`` (default): shown only when standard error is a terminal; ``True``/``False``
        to force it on or off.
    """
    show = sys.stderr.isatty() if enabled is None else enabled
    if not show:
        yield _Silent()
        return
    from tqdm import tqdm  # lazy: only long jobs on a terminal need it

    bar = tqdm(total=total, desc=description, unit=unit, file=sys.stderr, mininterval=0.5)
    try:
        yield bar
    finally:
        bar.close()


def track(
    items: Sequence[T],
    description: str,
    *,
    unit: str = "it",
    size: Callable[[T], int] | None = None,
) -> Iterator[T]:
    """Yield ``items`` while a progress bar counts them (or ``size(item)`` units each)."""
    total = sum(size(i) for i in items) if size else len(items)
    with progress(total, description, unit=unit) as bar:
        for item in items:
            yield item
            bar.update(size(item) if size else 1)
