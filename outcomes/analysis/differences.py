"""What differs between a re-run and the expected results, and why.

:func:`compare_ard` compares a re-run analysis results dataset with the committed expected one
(counts exactly, other statistics within a relative tolerance); :func:`explain` lists what
changed between the two manifests (input tables, source files, data dictionary, analysis spec
option by option, code modules, package versions). :func:`outcomes.analysis.audit.audit` puts
them together with the fingerprints of :mod:`outcomes.analysis.provenance`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from outcomes.errors import InputError
from outcomes.results import ARD_COLUMNS

#: Default relative tolerance of re-run estimates.
DEFAULT_RELATIVE_TOLERANCE = 1e-9
#: Statistic names that are counts and must match exactly (as must any name ``n_*``).
COUNT_STATS = frozenset({"n", "nobs", "records", "events", "rows", "subjects", "units"})
KEY = ["analysis", "group", "term", "stat_name"]


# --------------------------------------------------------------------------------------------
# comparing results
# --------------------------------------------------------------------------------------------


def is_count(stat_name: str) -> bool:
    """Whether a statistic is a count (compared exactly): :data:`COUNT_STATS` or ``n_*``."""
    return stat_name in COUNT_STATS or stat_name.startswith("n_")


@dataclass(frozen=True)
class Difference:
    """One statistic that differs between the expected and the re-run results.

    ``kind`` is ``"value"`` (beyond tolerance), ``"count"`` (a count, compared exactly),
    ``"missing"`` (expected, not produced), ``"new"`` (produced, not expected) or
    ``"warning"``/``"error"`` (the caveat text of a statistic changed).
    """

    analysis: str
    group: str
    term: str
    stat_name: str
    kind: str
    old: Any
    new: Any
    relative: float = math.nan

    def row(self) -> dict[str, Any]:
        """A plain dict, for tables."""
        return {
            "analysis": self.analysis,
            "group": self.group,
            "term": self.term,
            "stat_name": self.stat_name,
            "kind": self.kind,
            "old": self.old,
            "new": self.new,
            "relative": self.relative,
        }


def _close(old: float, new: float, rtol: float, atol: float) -> tuple[bool, float]:
    if math.isnan(old) and math.isnan(new):
        return True, 0.0
    if math.isnan(old) or math.isnan(new):
        return False, math.inf
    if old == new:
        return True, 0.0
    if math.isinf(old) or math.isinf(new):
        return False, math.inf
    scale = max(abs(old), abs(new))
    rel = abs(new - old) / scale
    return abs(new - old) <= atol + rtol * scale, rel


def compare_ard(
    expected: pd.DataFrame,
    new: pd.DataFrame,
    *,
    relative: float = DEFAULT_RELATIVE_TOLERANCE,
    absolute: float = 0.0,
    stats: Mapping[str, Mapping[str, float]] | None = None,
) -> list[Difference]:
    """Statistics of two analysis results datasets that differ.

    Rows are matched on ``analysis, group, term, stat_name`` (row order does not matter).
    Counts (:func:`is_count`) must be equal; other values must satisfy
    ``|new - old| <= absolute + relative * max(|old|, |new|)``; two missing values are equal.
    The ``warning`` and ``error`` texts must be equal.

    Parameters
    ----------
    expected, new
        Frames with :data:`~outcomes.results.ARD_COLUMNS`.
    relative, absolute
        Tolerances of non-count statistics.
    stats
        Per statistic name, tolerances that replace these, e.g.
        ``{"p_value": {"relative": 1e-6, "absolute": 1e-12}}`` (a missing key keeps the
        default).

    Returns
    -------
    list of Difference
        In the expected file's row order, then rows only in ``new``.
    """
    for what, df in (("expected", expected), ("new", new)):
        missing = [c for c in ARD_COLUMNS if c not in df.columns]
        if missing:
            raise InputError(f"{what} results lack column(s): {', '.join(missing)}")
        if df.duplicated(KEY).any():
            dup = df.loc[df.duplicated(KEY), KEY].iloc[0].to_dict()
            raise InputError(f"{what} results have duplicate statistic {dup}")
    old_rows = expected[list(ARD_COLUMNS)].assign(_order_old=range(len(expected)))
    new_rows = new[list(ARD_COLUMNS)].assign(_order_new=range(len(new)))
    merged = old_rows.merge(
        new_rows, on=KEY, how="outer", suffixes=("_old", "_new"), indicator=True
    ).sort_values(["_order_old", "_order_new"], na_position="last", kind="stable")
    out: list[Difference] = []
    for r in merged.to_dict("records"):
        key = (r["analysis"], r["group"], r["term"], r["stat_name"])
        old, newv = r["stat_value_old"], r["stat_value_new"]
        if r["_merge"] == "left_only":
            out.append(Difference(*key, "missing", old, None))
            continue
        if r["_merge"] == "right_only":
            out.append(Difference(*key, "new", None, newv))
            continue
        old, newv = float(old), float(newv)
        if is_count(r["stat_name"]):
            same = (old == newv) or (math.isnan(old) and math.isnan(newv))
            if not same:
                out.append(Difference(*key, "count", old, newv, _close(old, newv, 0, 0)[1]))
        else:
            tol = (stats or {}).get(r["stat_name"], {})
            ok, rel = _close(
                old, newv, tol.get("relative", relative), tol.get("absolute", absolute)
            )
            if not ok:
                out.append(Difference(*key, "value", old, newv, rel))
        for col in ("warning", "error"):
            a, b = _text(r[f"{col}_old"]), _text(r[f"{col}_new"])
            if a != b:
                out.append(Difference(*key, col, a, b))
    return out


def _text(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


# --------------------------------------------------------------------------------------------
# explaining differences
# --------------------------------------------------------------------------------------------


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out or {prefix: {}}
    if isinstance(obj, list) and any(isinstance(v, Mapping | list) for v in obj):
        out = {}
        for i, v in enumerate(obj):
            out.update(_flatten(v, f"{prefix}[{i}]"))
        return out or {prefix: []}
    return {prefix: obj}


def _short(h: Any) -> str:
    return str(h)[:12] if h else "none"


def package_differences(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    """Lines naming each package whose version differs (or that is only on one side)."""
    lines = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name, "absent"), new.get(name, "absent")
        if a != b:
            lines.append(f"package {name}: {a} -> {b}")
    return lines


def explain(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, list[str]]:
    """What changed between two run manifests, grouped by kind.

    Returns
    -------
    dict
        ``inputs`` (input tables, source files, data dictionary, snapshot), ``spec`` (each
        changed option of the analysis spec, as ``key: old -> new``), ``code`` (changed,
        added and removed modules; the git commit), ``environment`` (package versions,
        Python, platform). Empty lists mean no change of that kind.
    """
    causes: dict[str, list[str]] = {"inputs": [], "spec": [], "code": [], "environment": []}
    od, nd = old.get("data", {}), new.get("data", {})
    if od.get("snapshot") != nd.get("snapshot"):
        causes["inputs"].append(f"snapshot: {od.get('snapshot')} -> {nd.get('snapshot')}")
    ot, nt = od.get("tables", {}), nd.get("tables", {})
    for name in sorted(set(ot) | set(nt)):
        a, b = ot.get(name, {}), nt.get(name, {})
        if a.get("sha256") != b.get("sha256"):
            causes["inputs"].append(
                f"input table {name}: content sha256 {_short(a.get('sha256'))} -> "
                f"{_short(b.get('sha256'))} (rows {a.get('rows')} -> {b.get('rows')})"
            )
    of = {f["path"]: f for f in od.get("files", [])}
    nf = {f["path"]: f for f in nd.get("files", [])}
    for path in sorted(set(of) | set(nf)):
        a, b = of.get(path, {}), nf.get(path, {})
        if a.get("sha256") != b.get("sha256"):
            causes["inputs"].append(
                f"source file {path}: sha256 {_short(a.get('sha256'))} -> {_short(b.get('sha256'))}"
            )
    if od.get("dictionary_sha256") != nd.get("dictionary_sha256"):
        causes["inputs"].append(
            f"data dictionary: sha256 {_short(od.get('dictionary_sha256'))} -> "
            f"{_short(nd.get('dictionary_sha256'))}"
        )
    if od.get("skipped", []) != nd.get("skipped", []):
        causes["inputs"].append(
            f"files in the feed folders not read: {od.get('skipped', [])} -> "
            f"{nd.get('skipped', [])}"
        )
    if od.get("rows_quarantined") != nd.get("rows_quarantined"):
        causes["inputs"].append(
            f"rows quarantined at ingest: {od.get('rows_quarantined')} -> "
            f"{nd.get('rows_quarantined')}"
        )
    ospec = _flatten(old.get("spec", {}).get("content", {}))
    nspec = _flatten(new.get("spec", {}).get("content", {}))
    for key in sorted(set(ospec) | set(nspec)):
        a, b = ospec.get(key, "(absent)"), nspec.get(key, "(absent)")
        if a != b:
            causes["spec"].append(f"analysis spec {key}: {a!r} -> {b!r}")
    oc, nc = old.get("code", {}), new.get("code", {})
    ofiles, nfiles = oc.get("files", {}), nc.get("files", {})
    loaded = set(nc.get("loaded", nfiles))
    unused = []
    for path in sorted(set(ofiles) | set(nfiles)):
        if ofiles.get(path) == nfiles.get(path):
            continue
        if path in nfiles and path not in loaded:
            unused.append(path)
        elif path not in nfiles:
            causes["code"].append(f"code {path}: removed")
        elif path not in ofiles:
            causes["code"].append(f"code {path}: added")
        else:
            causes["code"].append(
                f"code {path}: sha256 {_short(ofiles[path])} -> {_short(nfiles[path])}"
            )
    if unused:
        causes["code"].append(f"code changed in modules this run did not load: {', '.join(unused)}")
    og, ng = oc.get("git", {}), nc.get("git", {})
    if og.get("commit") != ng.get("commit") and causes["code"]:
        causes["code"].append(
            f"git commit {_short(og.get('commit'))} -> {_short(ng.get('commit'))}"
        )
    oe, ne = old.get("environment", {}), new.get("environment", {})
    causes["environment"] += package_differences(oe.get("packages", {}), ne.get("packages", {}))
    for key in ("python", "platform"):
        if oe.get(key) != ne.get(key):
            causes["environment"].append(f"{key}: {oe.get(key)} -> {ne.get(key)}")
    return causes
