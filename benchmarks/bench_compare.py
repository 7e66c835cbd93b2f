"""Speed of ``outcomes compare``: the default simulated trial (50 subjects) and registry.

The target of the issue: the comparison table and forest plot for the default simulated trial
(50 subjects) and registry (2,000 subjects) in under 60 s. Steps, each in a fresh child process
(imports included in the time, as for the command): the comparison from a store, and the
comparison plus writing the table and forest plot (PNG and PDF). The full run also times a
registry of 20,000 subjects (comparison only); the quick run skips it.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

from measure import measure

from outcomes.data.ingest import ingest
from outcomes.simulate.output import write_feeds
from outcomes.simulate.registry import simulate_registry
from outcomes.simulate.trial import simulate_trial


def _store(folder: Path, n_registry: int) -> Path:
    write_feeds(simulate_trial(seed=1), folder / "trial")
    write_feeds(simulate_registry(seed=2, n_subjects=n_registry), folder / "registry")
    path = folder / "outcomes.duckdb"
    ingest([folder / "trial", folder / "registry"], path)
    return path


def _compare(store: Path, out: str | None) -> dict:
    from outcomes.comparisons.comparison import compare

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = compare(store)
        if out is not None:
            result.save(out)
    return {"rows": len(result.table)}


def run(quick: bool) -> list[dict]:
    """Time the comparison alone and with its files, for the default trial and registry."""
    rows = []
    sizes = [2_000] if quick else [2_000, 20_000]
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            store = _store(Path(tmp) / f"n{n}", n)
            res = measure(_compare, store, None)
            rows.append(
                {
                    "name": f"compare trial 50 + registry {n:,} (table)",
                    "seconds": res["seconds"],
                    "peak_mb": res["peak_mb"],
                    "target": "< 60 s" if n == 2_000 else "",
                    "note": f"{res['extra']['rows']} rows",
                }
            )
            if n == 2_000:
                res = measure(_compare, store, str(Path(tmp) / "out"))
                rows.append(
                    {
                        "name": "compare trial 50 + registry 2,000 (table + forest png/pdf)",
                        "seconds": res["seconds"],
                        "peak_mb": res["peak_mb"],
                        "target": "< 60 s",
                        "note": "what `outcomes compare --out` does",
                    }
                )
    return rows
