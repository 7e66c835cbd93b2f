"""Ingest speed and peak memory for a 1,000,000-row assessment feed (target: < 20 s, < 2 GB).

The feed comes from the registry simulator (the same path as real data). The store first
receives the registry's studies, subjects, units and sessions; then the timed step ingests the
1,000,000-row ``assessments.csv`` alone, in a fresh child process, so the peak memory is that
of one ingest (imports included). The quick run uses 100,000 rows.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from measure import measure

from outcomes.data.ingest import ingest
from outcomes.simulate.output import write_feeds
from outcomes.simulate.registry import simulate_registry


def _ingest(paths: list[Path], store: Path) -> dict:
    report = ingest(paths, store)
    [f] = [f for f in report.files if f.table == "assessments"]
    return {"rows_in": f.rows_in, "accepted": f.rows_accepted, "exit_code": report.exit_code}


def _write(n_rows: int, out: Path) -> int:
    feeds = simulate_registry(seed=1, n_subjects=int(n_rows / 9.0))
    assessments = feeds.tables["assessments"]
    if len(assessments) < n_rows:
        raise RuntimeError(f"simulator gave {len(assessments)} rows, fewer than {n_rows}")
    feeds.tables["assessments"] = assessments.iloc[:n_rows]
    write_feeds(feeds, out, format="csv")
    return len(feeds.tables["units"])


def run(quick: bool) -> list[dict]:
    """Build the feeds, ingest the parents, then measure the big assessment ingest.

    Every step runs in its own child process, so the measuring parent stays small.
    """
    n_rows = 100_000 if quick else 1_000_000
    tmp = Path(tempfile.mkdtemp())
    try:
        n_units = measure(_write, n_rows, tmp / "feeds")["extra"]
        store = tmp / "bench.duckdb"
        parents = [tmp / "feeds" / f"{t}.csv" for t in ("studies", "subjects", "units")]
        setup = measure(ingest, parents, store)
        big = measure(_ingest, [tmp / "feeds" / "assessments.csv"], store)
        extra = big["extra"]
        return [
            {
                "name": f"ingest parents ({n_units:,} units)",
                "seconds": setup["seconds"],
                "peak_mb": setup["peak_mb"],
            },
            {
                "name": f"ingest assessments.csv, {extra['rows_in']:,} rows",
                "seconds": big["seconds"],
                "peak_mb": big["peak_mb"],
                "target": "< 20 s, < 2048 MB" if not quick else "",
                "note": f"{extra['accepted']:,} accepted, exit code {extra['exit_code']}",
            },
        ]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
