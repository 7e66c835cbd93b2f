"""Report rendering time with the built-in engine (target for real reports: < 60 s on 2 cores).

Renders ``reports/_example.qmd`` to HTML, PDF and Word: kernel start-up, running the cells
(imports, a 300-dpi plotnine figure), three pandoc calls and one Typst compile all count. A
second row renders a one-cell report to HTML only, which is the fixed cost of any render
(kernel start and stop, one pandoc call). The quick run does only the second row.

``peak_mb`` is the rendering process; the kernel and pandoc run as child processes, and the
largest of them is given in the note, with the CPU time of the whole render (own and
children's), which is what the wall time approaches on an otherwise idle machine.
"""

from __future__ import annotations

import resource
import tempfile
from pathlib import Path

from measure import measure

from outcomes.report import render

EXAMPLE = Path(__file__).resolve().parents[1] / "reports" / "_example.qmd"


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _render(path: Path, formats: tuple[str, ...], out: Path) -> dict:
    cpu = _cpu_seconds()
    result = render(path, to=formats, out_dir=out, engine="builtin")
    children_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "warnings": len(result.warnings),
        "child_peak_mb": children_kb / 1024,
        "cpu_seconds": _cpu_seconds() - cpu,
    }


def run(quick: bool) -> list[dict]:
    """Measure the renders, each in a fresh child process."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tiny = Path(tmp) / "tiny.qmd"
        tiny.write_text("---\ntitle: Tiny\n---\n\n```{python}\n1 + 1\n```\n", encoding="utf-8")
        jobs = [("one-cell report -> html (fixed cost)", tiny, ("html",), "")]
        if not quick:
            jobs.insert(
                0, ("_example.qmd -> html + pdf + docx", EXAMPLE, ("html", "pdf", "docx"), "< 60 s")
            )
        for name, path, formats, target in jobs:
            out = measure(_render, path, formats, Path(tmp) / "out")
            extra = out["extra"]
            rows.append(
                {
                    "name": name,
                    "seconds": out["seconds"],
                    "peak_mb": out["peak_mb"],
                    "target": target,
                    "note": (
                        f"CPU {extra['cpu_seconds']:.1f} s (this process, kernel, pandoc); "
                        f"largest child {extra['child_peak_mb']:.0f} MB"
                    ),
                }
            )
    return rows
