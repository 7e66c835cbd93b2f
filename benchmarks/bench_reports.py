"""Rendering the demo's reports: trial and registry, each to HTML, PDF and Word (target: < 60 s
for both on 2 cores).

The store is the demo's (``simulate_trial(seed=1)`` and ``simulate_registry(seed=2)``, 2,000
registry patients), made once outside the timings. Each report renders in a fresh child
process with the built-in engine: kernel start-up, the models (the registry report runs the
propensity-weighted comparison of every indication), 300-dpi figures, three pandoc calls and
one Typst compile all count. The quick run renders the trial report to HTML only.

The note gives the CPU time of the whole render (this process, the kernel, pandoc), which is
what the wall time approaches on an otherwise idle machine.
"""

from __future__ import annotations

import resource
import tempfile
import warnings
from pathlib import Path

from measure import measure

from outcomes.data.ingest import ingest
from outcomes.report import render
from outcomes.simulate.output import write_feeds
from outcomes.simulate.registry import simulate_registry
from outcomes.simulate.trial import simulate_trial

REPORTS = Path(__file__).resolve().parents[1] / "reports"


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _render(name: str, store: Path, formats: tuple[str, ...], out: Path) -> dict:
    cpu = _cpu_seconds()
    result = render(
        REPORTS / f"{name}.qmd",
        to=formats,
        params={"store": str(store)},
        out_dir=out,
        engine="builtin",
    )
    return {"warnings": len(result.warnings), "cpu_seconds": _cpu_seconds() - cpu}


def _demo_store(root: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_feeds(simulate_trial(seed=1), root / "trial")
        write_feeds(simulate_registry(seed=2), root / "registry")
    store = root / "outcomes.duckdb"
    ingest([root / "trial", root / "registry"], store)
    return store


def run(quick: bool) -> list[dict]:
    """Measure each report's render in a fresh child process, then the demo's total."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        store = _demo_store(Path(tmp))
        formats = ("html",) if quick else ("html", "pdf", "docx")
        names = ("trial",) if quick else ("trial", "registry")
        total, cpu = 0.0, 0.0
        for name in names:
            out = measure(_render, name, store, formats, Path(tmp) / "out")
            extra = out["extra"]
            total += out["seconds"]
            cpu += extra["cpu_seconds"]
            rows.append(
                {
                    "name": f"{name}.qmd -> {' + '.join(formats)}",
                    "seconds": out["seconds"],
                    "peak_mb": out["peak_mb"],
                    "note": f"CPU {extra['cpu_seconds']:.1f} s; {extra['warnings']} warnings",
                }
            )
        if not quick:
            rows.append(
                {
                    "name": "demo reports (trial + registry) -> html + pdf + docx",
                    "seconds": total,
                    "peak_mb": max(r["peak_mb"] for r in rows),
                    "target": "< 60 s",
                    "note": f"CPU {cpu:.1f} s",
                }
            )
    return rows
