"""Run every benchmark in this folder and print a table of time, peak memory and target.

Each ``bench_*.py`` module defines ``run(quick: bool) -> list[dict]``; every dict has at least
``name``, ``seconds`` and ``peak_mb`` (use :func:`measure`), and may add ``target`` and ``note``.
Results are also written to ``benchmarks/results.json``.

    python benchmarks/run.py              all benchmarks
    python benchmarks/run.py ingest       only modules whose name contains "ingest"
    python benchmarks/run.py --quick      smaller sizes, for a smoke run
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))


def main(argv: list[str]) -> int:
    """Run the selected benchmark modules; return the process exit code."""
    quick = "--quick" in argv
    wanted = [a for a in argv if not a.startswith("--")]
    rows: list[dict] = []
    for path in sorted(HERE.glob("bench_*.py")):
        if wanted and not any(w in path.stem for w in wanted):
            continue
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        print(f"== {path.stem}", flush=True)
        for row in module.run(quick=quick):
            rows.append({"module": path.stem, **row})
            peak = row.get("peak_mb", float("nan"))
            print(
                f"  {row['name']:<55} {row['seconds']:>9.3f} s {peak:>9.1f} MB"
                f"  {row.get('target', '')}  {row.get('note', '')}",
                flush=True,
            )
    (HERE / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
