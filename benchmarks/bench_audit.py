"""Speed of the declared demo analyses, i.e. of `nox -s audit` (without building the venv).

Each row runs declared analyses from ``analyses/`` in a fresh child process (imports and the
ingest of their feeds included, as in the audit): each demo analysis on its own, then the whole
audit (re-run plus comparison with the committed expected results). The quick run times the
two trial analyses only.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from measure import measure

from outcomes.analysis.audit import audit
from outcomes.analysis.run import run_analyses
from outcomes.analysis.spec import discover_specs

ANALYSES = Path(__file__).resolve().parents[1] / "analyses"


def _run(spec: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        (folder,) = run_analyses([spec], tmp)
        rows = sum(1 for _ in (folder / "ard.csv").open()) - 1
    return {"rows": rows}


def _audit() -> dict:
    report = audit([ANALYSES])
    return {"ok": report.ok, "analyses": len(report.entries)}


def run(quick: bool) -> list[dict]:
    """Time each demo analysis alone, then the whole audit."""
    specs = discover_specs([ANALYSES])
    if quick:
        specs = [s for s in specs if s.name.startswith("trial_")]
    rows = []
    for spec in specs:
        res = measure(_run, spec)
        rows.append(
            {
                "name": f"outcomes run {spec.stem}",
                "seconds": res["seconds"],
                "peak_mb": res["peak_mb"],
                "target": "< 15 s (imports and ingest included)",
                "note": f"{res['extra']['rows']} statistics",
            }
        )
    if not quick:
        res = measure(_audit)
        rows.append(
            {
                "name": "outcomes audit analyses (every demo analysis)",
                "seconds": res["seconds"],
                "peak_mb": res["peak_mb"],
                "target": "< 60 s",
                "note": f"passed: {res['extra']['ok']}",
            }
        )
    return rows
