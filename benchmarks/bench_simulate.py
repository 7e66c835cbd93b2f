"""Speed and memory of the feed simulator at ingest-benchmark size.

``simulate_registry(n_subjects=100_000)`` gives about a million assessment rows (the size the
ingest benchmark reads); the quick run uses 10,000 subjects. Each step runs in a fresh child
process (see :func:`measure.measure`), so peak memory includes the imports.
"""

from __future__ import annotations

import tempfile

from measure import measure

from outcomes.simulate.output import write_feeds
from outcomes.simulate.registry import simulate_registry
from outcomes.simulate.trial import simulate_trial


def _registry(n: int) -> dict:
    feeds = simulate_registry(seed=1, n_subjects=n)
    return {k: len(v) for k, v in feeds.tables.items()}


def _registry_written(n: int, fmt: str) -> dict:
    feeds = simulate_registry(seed=1, n_subjects=n)
    with tempfile.TemporaryDirectory() as tmp:
        write_feeds(feeds, tmp, format=fmt)
    return {"assessments": len(feeds.tables["assessments"])}


def _trial(n: int) -> dict:
    feeds = simulate_trial(seed=1, n_subjects=n)
    return {"assessments": len(feeds.tables["assessments"])}


def run(quick: bool) -> list[dict]:
    """Time simulation alone, then simulation plus writing CSV and Parquet."""
    n = 10_000 if quick else 100_000
    rows = []
    res = measure(_registry, n)
    rows.append(
        {
            "name": f"simulate_registry n_subjects={n}",
            "seconds": res["seconds"],
            "peak_mb": res["peak_mb"],
            "target": "< 60 s, a few GB",
            "note": f"{res['extra']['assessments']:,} assessment rows",
        }
    )
    for fmt in ("csv", "parquet"):
        res = measure(_registry_written, n, fmt)
        rows.append(
            {
                "name": f"simulate_registry n_subjects={n} + write {fmt}",
                "seconds": res["seconds"],
                "peak_mb": res["peak_mb"],
                "target": "< 60 s",
            }
        )
    res = measure(_trial, 50)
    rows.append(
        {
            "name": "simulate_trial n_subjects=50 (defaults)",
            "seconds": res["seconds"],
            "peak_mb": res["peak_mb"],
        }
    )
    return rows
