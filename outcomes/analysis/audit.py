"""The audit: re-run every declared analysis and compare its ARD with the expected results."""

from __future__ import annotations

import contextlib
import json
import math
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from outcomes.analysis.differences import (
    Difference,
    compare_ard,
    explain,
)
from outcomes.analysis.provenance import (
    check_lock,
    compare_lock,
    sha256_file,
)
from outcomes.analysis.results import RESULT_FILES, read_ard
from outcomes.analysis.run import _execute, _save_expected
from outcomes.analysis.session import _Session
from outcomes.analysis.spec import AnalysisSpec, _canonical_json, discover_specs, load_spec
from outcomes.errors import OutcomesError

AUDIT_FAILED = 6  # exit code of `outcomes audit` when results differ


# --------------------------------------------------------------------------------------------
# audit
# --------------------------------------------------------------------------------------------


@dataclass
class AuditReport:
    """The audit of a set of declared analyses (see :func:`audit`)."""

    entries: list[AuditEntry]
    strict: bool = False
    lock_diff: list[str] | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every analysis matched (or had its expected results updated) and the lock file (if
        checked) is current."""
        entries_ok = all(e.ok or e.updated for e in self.entries)
        return entries_ok and not self.lock_diff and not self.problems

    def text(self, limit: int = 30) -> str:
        """The report for people: per analysis, differing statistics and their likely causes."""
        lines = []
        for e in self.entries:
            tol = e.tolerance
            tol_text = f"relative {tol['relative']:g}, absolute {tol['absolute']:g}" + "".join(
                f"; {k}: " + ", ".join(f"{kk} {vv:g}" for kk, vv in v.items())
                for k, v in tol["stats"].items()
            )
            if e.ok:
                lines.append(
                    f"[ok]   {e.name} ({e.spec}): matches the expected results ({tol_text})"
                )
            else:
                lines.append(f"[FAIL] {e.name} ({e.spec})")
            lines += [f"       problem: {p}" for p in e.problems]
            changed_values = [d for d in e.differences if d.kind not in ("missing", "new")]
            if changed_values:
                lines.append(
                    f"       {len(changed_values)} statistic(s) differ (counts exactly; "
                    f"others {tol_text}):"
                )
                rows = [d.row() for d in changed_values[:limit]]
                table = format_table(
                    rows, ["group", "term", "stat_name", "kind", "old", "new", "relative"]
                )
                lines += ["         " + line for line in table.splitlines()]
                if len(changed_values) > limit:
                    lines.append(f"         ... and {len(changed_values) - limit} more")
            for kind, what in (
                ("missing", "expected but not produced"),
                ("new", "produced, not expected"),
            ):
                rows_kind = [d for d in e.differences if d.kind == kind]
                if rows_kind:
                    lines.append(f"       {len(rows_kind)} statistic(s) {what}, e.g.:")
                    lines += [
                        f"         {d.group} | {d.term} | {d.stat_name} = "
                        f"{d.old if kind == 'missing' else d.new!r}"
                        for d in rows_kind[:5]
                    ]
            if e.updated:
                lines.append(f"       expected results updated from this run: {e.updated}")
            changed = [
                c
                for kind in ("inputs", "spec", "code", "environment")
                for c in e.causes.get(kind, [])
            ]
            if not e.ok:
                if changed:
                    lines.append("       what changed since the expected results were made:")
                    lines += [f"         - {c}" for c in changed]
                elif e.differences:
                    lines.append(
                        "       no change of inputs, spec, code or package versions was found: "
                        "the difference comes from the machine (CPU, BLAS threads) or from "
                        "nondeterminism; see the spec's tolerance"
                    )
            lines += [f"       note: {n}" for n in e.notes]
        if self.lock_diff is not None:
            if self.lock_diff:
                lines.append("[FAIL] requirements.lock is not what `uv pip compile` gives now:")
                lines += ["         " + line for line in self.lock_diff]
            else:
                lines.append("[ok]   requirements.lock is current")
        lines += [f"[FAIL] {p}" for p in self.problems]
        failed = [e.name for e in self.entries if not e.ok]
        updated = [e.name for e in self.entries if e.updated]
        if updated:
            lines.append(
                f"UPDATED the expected results of {', '.join(updated)}: review "
                "`git diff analyses/expected` and commit"
            )
        if self.ok:
            done = "match or were updated" if updated else "reproduce their expected results"
            lines.append(f"AUDIT PASSED: {len(self.entries)} analyses {done}")
        else:
            what = "; ".join(
                w
                for w, bad in (
                    (f"{len(failed)} of {len(self.entries)} analyses fail", failed),
                    ("the lock file is not current", self.lock_diff),
                    ("expected results without a spec", self.problems),
                )
                if bad
            )
            lines.append(f"AUDIT FAILED: {what}")
        return "\n".join(lines)


def audit_results(
    spec: str | Path | AnalysisSpec, results: str | Path, *, strict: bool = False
) -> AuditEntry:
    """Compare one results folder with the spec's committed expected results (no re-run).

    Parameters
    ----------
    spec
        The declared analysis.
    results
        A folder written by :func:`run_analyses` for it.
    strict
        Package or Python versions that differ from the expected manifest are problems (else
        warnings).

    Returns
    -------
    AuditEntry
        ``.ok``, ``.differences``, ``.causes``, ``.problems``, ``.notes``.
    """
    spec = spec if isinstance(spec, AnalysisSpec) else load_spec(spec)
    new_dir = Path(results)
    entry = AuditEntry(name=spec.name, spec=spec.path.as_posix(), tolerance=spec.tolerance)
    expected = spec.expected_dir
    if not (expected / "ard.csv").is_file() or not (expected / "manifest.json").is_file():
        entry.problems.append(
            f"no expected results in {expected} (make them with "
            f"`outcomes run {spec.path} --save-expected` and commit them)"
        )
        return entry
    old_manifest = json.loads((expected / "manifest.json").read_text())
    new_manifest = json.loads((new_dir / "manifest.json").read_text())
    tol = spec.tolerance
    entry.differences = compare_ard(
        read_ard(expected / "ard.csv"),
        read_ard(new_dir / "ard.csv"),
        relative=float(tol["relative"]),
        absolute=float(tol["absolute"]),
        stats=tol["stats"],
    )
    entry.causes = explain(old_manifest, new_manifest)
    entry.problems += _tampered_expected(expected, old_manifest)
    committed_tol = old_manifest.get("tolerance")
    if committed_tol is not None and committed_tol != tol:
        what = (
            f"the spec's tolerance {_canonical_json(tol)} is not the one the expected results "
            f"were made with {_canonical_json(committed_tol)}"
        )
        (entry.problems if strict else entry.notes).append(what + (" (--strict)" if strict else ""))
    if strict:
        entry.problems += [
            f"{c} (inputs differ from the manifest; --strict)" for c in entry.causes["inputs"]
        ]
    env = entry.causes["environment"]
    dependency = [c for c in env if c.startswith(("package ", "python:"))]
    machine = [c for c in env if c not in dependency]
    if dependency:
        if strict:
            entry.problems += [f"{c} (differs from the manifest; --strict)" for c in dependency]
        else:
            entry.notes += [f"warning: {c} (differs from the manifest)" for c in dependency]
    entry.notes += [f"{c}" for c in machine]
    if not entry.differences:
        for kind in ("inputs", "spec"):
            entry.notes += [f"{c} (results unchanged)" for c in entry.causes[kind]]
        if entry.causes["code"]:
            entry.notes.append(
                "code changed since the expected results were made, results unchanged: "
                + "; ".join(entry.causes["code"])
            )
    old_figs = {
        k: v
        for k, v in old_manifest.get("results", {}).get("files", {}).items()
        if k.startswith("figures/")
    }
    new_figs = {
        k: v
        for k, v in new_manifest.get("results", {}).get("files", {}).items()
        if k.startswith("figures/")
    }
    for fig in sorted(set(old_figs) | set(new_figs)):
        if old_figs.get(fig) != new_figs.get(fig):
            entry.notes.append(
                f"{fig} is not byte-identical to the one recorded (PNG rendering depends on "
                "fonts and FreeType; the numbers it shows are checked in the ARD)"
            )
    return entry


def _tampered_expected(expected: Path, manifest: Mapping[str, Any]) -> list[str]:
    """Expected result files whose bytes are not those their manifest records."""
    recorded = manifest.get("results", {}).get("files", {})
    problems = []
    for name in RESULT_FILES:
        path = expected / name
        if name in recorded and path.is_file() and sha256_file(path) != recorded[name]:
            problems.append(
                f"{path}: sha256 {sha256_file(path)[:12]} is not the {recorded[name][:12]} its "
                "manifest records (the expected results were edited after they were made)"
            )
    return problems


def audit(
    paths: Sequence[str | Path] = ("analyses",),
    *,
    strict: bool = False,
    lock: str | Path | None = None,
    compiled_lock: str | Path | None = None,
    project: str | Path = ".",
    out_dir: str | Path | None = None,
    update_expected: bool = False,
) -> AuditReport:
    """Re-run declared analyses and compare them with their committed expected results.

    Parameters
    ----------
    paths
        Spec files or folders of specs (default ``analyses``).
    strict
        Dependency versions (packages, Python) that differ from the expected manifest fail
        the audit; otherwise they are reported as warnings.
    lock
        ``requirements.lock`` to check: compiled again with ``uv`` (see
        :func:`~outcomes.analysis.provenance.check_lock`) unless ``compiled_lock`` gives a
        fresh compile.
    compiled_lock
        A lock file compiled just now (e.g. by the nox session) to compare ``lock`` with.
    project
        Folder with ``pyproject.toml`` (for compiling the lock).
    out_dir
        Where the re-run results go (default: a temporary folder, removed afterwards).
    update_expected
        Accept the re-run: replace the expected results of every analysis that differs (or
        has none) with the new ones, after reporting the differences. For when a change of
        inputs or code is intended; review and commit ``analyses/expected`` afterwards.

    Returns
    -------
    AuditReport
        ``.ok`` and ``.text()``.
    """
    specs = [load_spec(p) for p in discover_specs(paths)]
    report = AuditReport(entries=[], strict=strict)
    with contextlib.ExitStack() as stack:
        root = (
            Path(out_dir)
            if out_dir is not None
            else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="outcomes-audit-")))
        )
        root.mkdir(parents=True, exist_ok=True)
        with _Session() as session:
            for spec in specs:
                try:
                    folder = _execute(spec, session, root)
                except OutcomesError as err:  # one failing analysis does not stop the audit
                    entry = AuditEntry(spec.name, spec.path.as_posix(), tolerance=spec.tolerance)
                    entry.problems.append(f"the analysis did not run: {err}")
                    report.entries.append(entry)
                    continue
                entry = audit_results(spec, folder, strict=strict)
                if update_expected and not entry.ok:
                    _save_expected(spec, folder)
                    entry.updated = str(spec.expected_dir)
                report.entries.append(entry)
    expected_roots = {Path(p) / "expected" for p in paths if Path(p).is_dir()}
    declared = {s.name for s in specs}
    for exp_root in sorted(expected_roots):
        if exp_root.is_dir():
            stale = sorted(
                p.name for p in exp_root.iterdir() if p.is_dir() and p.name not in declared
            )
            report.problems += [
                f"{exp_root / s}: expected results of no declared analysis (a spec was removed "
                "or renamed?)"
                for s in stale
            ]
    if lock is not None:
        if compiled_lock is not None:
            report.lock_diff = compare_lock(Path(lock).read_text(), Path(compiled_lock).read_text())
        else:
            report.lock_diff = check_lock(lock, project)
    return report


def format_table(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A plain fixed-width text table (for terminal reports)."""
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "-" if math.isnan(v) else f"{v:.17g}"
    text = str(v)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass
class AuditEntry:
    """The audit of one declared analysis."""

    name: str
    spec: str
    differences: list[Difference] = field(default_factory=list)
    causes: dict[str, list[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tolerance: dict[str, Any] = field(default_factory=dict)
    updated: str = ""  # the expected folder rewritten from this run (``update_expected``)

    @property
    def ok(self) -> bool:
        """No difference and no problem."""
        return not self.differences and not self.problems
