"""Declared analyses: a YAML spec in, a results folder with a manifest out, and its audit.

A declared analysis (``analyses/NAME.yaml``) states the question, the data (feeds, a simulated
data set, or a store snapshot), the population, the outcome, the model and its options, the
comparisons and the seed::

    name: trial_lmm_gb_quant
    question: Does MN+PRP lower the Goodman & Baron score faster than MN alone?
    data: {feeds: data/trial_seed1}          # relative to the spec; ingested into a
                                             # temporary store, snapshot 1
    population: {study_id: TRIAL1}
    outcome: {instrument: gb_quant, rater_role: investigator}
    model: {kind: lmm, formula: "value ~ week * modality", design: split_body,
            re_formula: "~week"}
    comparisons:
      - {specs: modality, at: {week: 24}, ref: MN}
    seed: 1

:func:`run_analysis` (``outcomes run analyses/NAME.yaml``) writes ``results/NAME/``:

``ard.csv``, ``ard.parquet``
    The analysis results dataset: one row per statistic with
    :data:`~outcomes.results.ARD_COLUMNS` (``analysis, group, term, stat_name, stat_value,
    warning, error``). ``group`` always holds ``table=...`` (which result table the row comes
    from) and the grouping of that table.
``estimates.csv``, ``estimates.parquet``
    The same estimates as tidy tables (``analysis, table, group`` + the tidy columns), for
    reports.
``figures/*.png``
    Figures (PNG without software or time metadata).
``manifest.json``
    What produced the numbers: the snapshot and the SHA-256 of every input table and source
    file, the data dictionary hash, the spec (its bytes' hash, its parsed content and that
    content's hash), the code (git commit and dirty flag; hash of every module that ran),
    Python, platform and package versions, the seeds, start and end times, and every warning.

Results files are byte-identical for the same inputs: rows in a fixed order, floats written
with ``repr`` (shortest round-trip), Parquet without pandas metadata, PNGs without metadata;
time stamps live only in the manifest.

:func:`audit` (``outcomes audit``, ``nox -s audit``) re-runs every declared analysis and
compares it with the expected results committed beside the specs
(``analyses/expected/NAME/``): counts exactly, other statistics within the spec's tolerance
(default relative ``1e-9``), and explains any difference from the two manifests.
:func:`load_results` reads a results folder back.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import math
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from outcomes.audit import (
    DEFAULT_RELATIVE_TOLERANCE,
    AuditEntry,
    check_lock,
    code_fingerprint,
    compare_ard,
    compare_lock,
    environment_fingerprint,
    explain,
    format_table,
    git_state,
    sha256_file,
)
from outcomes.errors import InputError, OutcomesError, OutcomesWarning
from outcomes.results import ARD_COLUMNS, TIDY_COLUMNS, to_ard

__all__ = [
    "MODEL_KINDS",
    "AnalysisResults",
    "AnalysisSpec",
    "AuditReport",
    "audit",
    "audit_results",
    "discover_specs",
    "load_results",
    "load_spec",
    "read_ard",
    "run_analyses",
    "run_analysis",
]

MANIFEST_VERSION = 1
ESTIMATE_COLUMNS: tuple[str, ...] = ("analysis", "table", "group", *TIDY_COLUMNS)
RESULT_FILES = ("ard.csv", "ard.parquet", "estimates.csv", "estimates.parquet")
EXPECTED_FILES = ("ard.csv", "estimates.csv", "manifest.json")
AUDIT_FAILED = 6  # exit code of `outcomes audit` when results differ
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
_FIGURE_DPI = 100

# --------------------------------------------------------------------------------------------
# the spec
# --------------------------------------------------------------------------------------------

TOP_KEYS = {
    "name": True,
    "question": True,
    "data": True,
    "population": False,
    "outcome": False,
    "model": True,
    "comparisons": False,
    "seed": True,
    "tolerance": False,
    "figures": False,
    "notes": False,
}
DATA_KEYS = {
    "feeds": {"feeds"},
    "simulate": {"simulate", "seed", "options"},
    "store": {"store", "snapshot"},
}
TOLERANCE_KEYS = {"relative", "absolute", "stats", "reason"}


@dataclass(frozen=True)
class _Kind:
    """What one model kind accepts: keys of ``outcome``, ``model`` and each comparison."""

    outcome_required: frozenset[str]
    outcome_optional: frozenset[str]
    model_required: frozenset[str]
    model_optional: frozenset[str]
    comparison_required: frozenset[str]
    comparison_optional: frozenset[str]


def _kind(
    outcome: tuple[Iterable[str], Iterable[str]],
    model: tuple[Iterable[str], Iterable[str]],
    comparison: tuple[Iterable[str], Iterable[str]],
) -> _Kind:
    return _Kind(
        frozenset(outcome[0]),
        frozenset(outcome[1]),
        frozenset(model[0]),
        frozenset(model[1]),
        frozenset(comparison[0]),
        frozenset(comparison[1]),
    )


#: Model kinds of declared analyses and the options each accepts.
MODEL_KINDS: dict[str, _Kind] = {
    "lmm": _kind(
        (["instrument"], ["rater_role"]),
        (["formula"], ["design", "groups", "nested", "re_formula", "reml", "engine", "level"]),
        (["specs"], ["at", "by", "ref", "method", "adjust"]),
    ),
    "time_to_result": _kind(
        (["endpoint"], ["retreatment_gap"]),
        (["by"], ["times", "conf_level"]),
        (["test"], ["formula", "cluster", "strata", "ties"]),
    ),
    "comparison": _kind(
        ([], []),
        (
            [],
            [
                "reference",
                "primary_day",
                "window",
                "responder_threshold",
                "estimand",
                "trim",
                "ae_outcomes",
                "published",
                "level",
            ],
        ),
        ([], []),
    ),
}


@dataclass(frozen=True)
class AnalysisSpec:
    """A validated declared analysis (see :func:`load_spec`).

    Attributes
    ----------
    path
        The YAML file.
    content
        The parsed spec, as written (no defaults filled in).
    sha256
        SHA-256 of the file's bytes.
    """

    path: Path
    content: dict[str, Any]
    sha256: str

    @property
    def name(self) -> str:
        """The analysis name (folder name of its results)."""
        return str(self.content["name"])

    @property
    def kind(self) -> str:
        """The model kind."""
        return str(self.content["model"]["kind"])

    @property
    def seed(self) -> int:
        """The spec's seed."""
        return int(self.content["seed"])

    @property
    def tolerance(self) -> dict[str, Any]:
        """Audit tolerance: ``relative`` (default 1e-9), ``absolute`` (default 0), ``stats``
        (per statistic name, ``{relative, absolute}`` replacing these) and ``reason``."""
        tol = dict(self.content.get("tolerance") or {})
        tol.setdefault("relative", DEFAULT_RELATIVE_TOLERANCE)
        tol.setdefault("absolute", 0.0)
        tol.setdefault("stats", {})
        return tol

    @property
    def content_sha256(self) -> str:
        """SHA-256 of the parsed content (comments and layout of the file do not count)."""
        return hashlib.sha256(_canonical_json(self.content).encode()).hexdigest()

    @property
    def expected_dir(self) -> Path:
        """Where the committed expected results live: ``<spec folder>/expected/<name>/``."""
        return self.path.parent / "expected" / self.name


def _canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def _fail(path: Path, key: str, message: str) -> InputError:
    where = f"{path}: key {key!r}" if key else str(path)
    return InputError(f"{where}: {message}")


def _check_keys(
    path: Path,
    where: str,
    value: Any,
    required: Iterable[str],
    optional: Iterable[str],
) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(path, where, f"must be a mapping, got {type(value).__name__}")
    allowed = set(required) | set(optional)
    for key in value:
        if key not in allowed:
            raise _fail(
                path,
                f"{where}.{key}" if where else str(key),
                f"unknown key; allowed here: {', '.join(sorted(allowed)) or 'none'}",
            )
    for key in sorted(required):
        if key not in value:
            raise _fail(path, f"{where}.{key}" if where else key, "missing required key")
    return dict(value)


def _check_type(path: Path, key: str, value: Any, types: tuple[type, ...], what: str) -> None:
    if isinstance(value, bool) and bool not in types:
        raise _fail(path, key, f"must be {what}, got {value!r}")
    if not isinstance(value, types):
        raise _fail(path, key, f"must be {what}, got {value!r}")


def load_spec(path: str | Path) -> AnalysisSpec:
    """Read and validate a declared analysis.

    Parameters
    ----------
    path
        A YAML file.

    Returns
    -------
    AnalysisSpec

    Raises
    ------
    InputError
        Naming the file and the key: unreadable YAML, unknown keys, missing required keys,
        an unknown model kind, a wrong type, a data source that does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such analysis spec")
    raw = path.read_bytes()
    try:
        content = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML ({exc})") from None
    content = _check_keys(
        path, "", content, [k for k, r in TOP_KEYS.items() if r], [k for k, r in TOP_KEYS.items()]
    )
    name = content["name"]
    if not isinstance(name, str) or not _NAME.match(name):
        raise _fail(path, "name", "must be letters, digits, '_', '-' or '.' (a folder name)")
    _check_type(path, "question", content["question"], (str,), "text")
    _check_type(path, "seed", content["seed"], (int,), "a whole number")
    if content["seed"] < 0:
        raise _fail(path, "seed", "must be >= 0")
    _validate_data(path, content["data"])
    model = content["model"]
    if not isinstance(model, Mapping) or "kind" not in model:
        raise _fail(path, "model.kind", "missing required key")
    kind = model["kind"]
    if kind not in MODEL_KINDS:
        raise _fail(
            path, "model.kind", f"unknown model kind {kind!r}; use one of {', '.join(MODEL_KINDS)}"
        )
    k = MODEL_KINDS[kind]
    _check_keys(path, "model", model, k.model_required | {"kind"}, k.model_optional)
    if k.outcome_required or "outcome" in content:
        if "outcome" not in content:
            raise _fail(path, "outcome", f"missing required key (model kind {kind!r})")
        _check_keys(path, "outcome", content["outcome"], k.outcome_required, k.outcome_optional)
    comparisons = content.get("comparisons") or []
    if not isinstance(comparisons, list):
        raise _fail(path, "comparisons", "must be a list of mappings")
    for i, comp in enumerate(comparisons):
        _check_keys(path, f"comparisons[{i}]", comp, k.comparison_required, k.comparison_optional)
    population = content.get("population") or {}
    _check_keys(path, "population", population, [], population.keys())
    for column, rule in population.items():
        if isinstance(rule, Mapping):
            _check_keys(path, f"population.{column}", rule, [], ["min", "max"])
    tol = content.get("tolerance")
    if tol is not None:
        tol = _check_keys(path, "tolerance", tol, [], TOLERANCE_KEYS)
        stats = _check_keys(
            path, "tolerance.stats", tol.get("stats") or {}, [], tol.get("stats") or {}
        )
        levels = [("tolerance", tol)] + [
            (
                f"tolerance.stats.{k}",
                _check_keys(path, f"tolerance.stats.{k}", v, [], ["relative", "absolute"]),
            )
            for k, v in stats.items()
        ]
        loose = False
        for where, level in levels:
            for key in ("relative", "absolute"):
                if key in level:
                    _check_type(path, f"{where}.{key}", level[key], (int, float), "a number")
                    if not 0 <= level[key] < 1:
                        raise _fail(path, f"{where}.{key}", "must be in [0, 1)")
            loose |= level.get("relative", 0) > DEFAULT_RELATIVE_TOLERANCE
            loose |= level.get("absolute", 0) > 0
        if loose and not str(tol.get("reason", "")).strip():
            raise _fail(
                path, "tolerance.reason", "a tolerance looser than the default needs a reason"
            )
    if "figures" in content:
        _check_type(path, "figures", content["figures"], (bool,), "true or false")
    return AnalysisSpec(path=path, content=content, sha256=hashlib.sha256(raw).hexdigest())


def _validate_data(path: Path, data: Any) -> None:
    if not isinstance(data, Mapping):
        raise _fail(path, "data", "must be a mapping with one of feeds, simulate or store")
    sources = [s for s in DATA_KEYS if s in data]
    if len(sources) != 1:
        raise _fail(path, "data", "give exactly one of feeds, simulate or store")
    source = sources[0]
    _check_keys(path, "data", data, [source], DATA_KEYS[source])
    base = path.parent
    if source == "feeds":
        feeds = data["feeds"] if isinstance(data["feeds"], list) else [data["feeds"]]
        for f in feeds:
            if not isinstance(f, str) or not (base / f).exists():
                raise _fail(path, "data.feeds", f"{f!r}: no such file or folder (from {base})")
    elif source == "simulate":
        if data["simulate"] not in ("trial", "registry"):
            raise _fail(path, "data.simulate", "must be 'trial' or 'registry'")
        if "seed" in data:
            _check_type(path, "data.seed", data["seed"], (int,), "a whole number")
        options = data.get("options") or {}
        from outcomes import simulate

        func = (
            simulate.simulate_trial if data["simulate"] == "trial" else simulate.simulate_registry
        )
        allowed = set(inspect.signature(func).parameters) - {"seed"}
        _check_keys(path, "data.options", options, [], allowed)
    else:
        if not isinstance(data["store"], str) or not (base / data["store"]).is_file():
            raise _fail(path, "data.store", f"{data['store']!r}: no such store (from {base})")
        if "snapshot" not in data:
            raise _fail(path, "data.snapshot", "a store source must pin its snapshot")
        _check_type(path, "data.snapshot", data["snapshot"], (int,), "a snapshot number")


def discover_specs(paths: Sequence[str | Path]) -> list[Path]:
    """Spec files among ``paths``: files as given, folders' ``*.yaml``/``*.yml`` (not nested)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(q for q in p.iterdir() if q.suffix in (".yaml", ".yml") and q.is_file())
        elif p.is_file():
            out.append(p)
        else:
            raise InputError(f"{p}: no such spec file or folder")
    if not out:
        raise InputError(f"no analysis specs (*.yaml) in {', '.join(map(str, paths))}")
    return out


# --------------------------------------------------------------------------------------------
# data sources
# --------------------------------------------------------------------------------------------


@dataclass
class _Data:
    tables: dict[str, pd.DataFrame]
    info: dict[str, Any]


class _Session:
    """Opened data sources shared by the analyses of one run (each ingested once)."""

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()
        self._cache: dict[str, _Data] = {}

    def __enter__(self) -> _Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _tmp(self) -> Path:
        return Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="outcomes-")))

    def data(self, spec: AnalysisSpec) -> _Data:
        d = spec.content["data"]
        base = spec.path.parent
        if "feeds" in d:
            feeds = d["feeds"] if isinstance(d["feeds"], list) else [d["feeds"]]
            paths = [(base / f).resolve() for f in feeds]
            key = _canonical_json(["feeds", [str(p) for p in paths]])
        elif "simulate" in d:
            seed = int(d.get("seed", spec.seed))
            key = _canonical_json(["simulate", d["simulate"], seed, d.get("options") or {}])
        else:
            key = _canonical_json(["store", str((base / d["store"]).resolve()), d["snapshot"]])
        if key not in self._cache:
            self._cache[key] = self._open(spec)
        return self._cache[key]

    def _open(self, spec: AnalysisSpec) -> _Data:
        from outcomes.ingest import ingest
        from outcomes.store import Store

        d = spec.content["data"]
        base = spec.path.parent
        info: dict[str, Any] = {}
        if "store" in d:
            store_path = base / d["store"]
            store = Store(store_path)
            self._stack.callback(store.close)
            latest = store.latest() or 0
            if not 1 <= d["snapshot"] <= latest:
                raise InputError(
                    f"{spec.path}: key 'data.snapshot': {store_path} has no snapshot "
                    f"{d['snapshot']} (snapshots are 1 to {latest})"
                )
            snap = d["snapshot"]
            info.update(source="store", store=d["store"])
            relative_to = None
        else:
            if "feeds" in d:
                feeds = d["feeds"] if isinstance(d["feeds"], list) else [d["feeds"]]
                paths = [base / f for f in feeds]
                info.update(source="feeds", feeds=feeds)
                relative_to = base
            else:
                from outcomes import simulate

                seed = int(d.get("seed", spec.seed))
                options = dict(d.get("options") or {})
                func = (
                    simulate.simulate_trial
                    if d["simulate"] == "trial"
                    else simulate.simulate_registry
                )
                feed_dir = self._tmp() / "feeds"
                simulate.write_feeds(func(seed=seed, **options), feed_dir)
                paths = [feed_dir]
                info.update(source="simulate", simulate=d["simulate"], seed=seed, options=options)
                relative_to = feed_dir
            store = Store(self._tmp() / "store.duckdb", create=True)
            self._stack.callback(store.close)
            report = ingest(paths, store, note=f"declared analysis {spec.name}")
            rejected = [f for f in report.files if f.status == "rejected"]
            if rejected:
                raise InputError(
                    f"{spec.path}: key 'data': feed file(s) rejected at ingest: "
                    + "; ".join(f"{f.path}: {f.message}" for f in rejected)
                )
            if report.snapshot is None:
                raise InputError(f"{spec.path}: key 'data': the feeds hold no rows")
            if len(report.quarantine):
                warnings.warn(
                    f"{len(report.quarantine)} violation(s) quarantined at ingest of the data "
                    f"of {spec.name}: those rows are not analysed (`outcomes ingest` on the "
                    "feeds lists them)",
                    OutcomesWarning,
                    stacklevel=2,
                )
            snap = report.snapshot
        snaps = store.snapshots()
        row = snaps.loc[snaps["snapshot_id"] == snap].iloc[0]
        files = store.files()
        files = files.loc[files["snapshot_id"] <= snap]
        tables = store.tables(snap)
        info.update(
            snapshot=int(snap),
            dictionary_sha256=str(row["dictionary_sha256"]),
            dictionary_version=str(row["dictionary_version"]),
            rows_quarantined=int(snaps.loc[snaps["snapshot_id"] <= snap, "rows_quarantined"].sum()),
            tables={
                name: {"rows": len(df), "sha256": store.content_hash(name, snap)}
                for name, df in tables.items()
            },
            files=[
                {
                    "path": _relative(f["path"], relative_to),
                    "sha256": f["sha256"],
                    "table": f["table_name"],
                    "rows_in": int(f["rows_in"]),
                    "rows_accepted": int(f["rows_accepted"]),
                    "rows_quarantined": int(f["rows_quarantined"]),
                }
                for _, f in files.iterrows()
            ],
        )
        info["files"].sort(key=lambda f: (f["path"], f["table"]))
        return _Data(tables=tables, info=info)


def _relative(path: str, base: Path | None) -> str:
    if base is None:
        return path
    try:
        return Path(path).resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return path


# --------------------------------------------------------------------------------------------
# analysis datasets and model kinds
# --------------------------------------------------------------------------------------------


@dataclass
class _Output:
    """What a model kind returns: ARD pieces, tidy estimate tables and figures."""

    ard: list[pd.DataFrame] = field(default_factory=list)
    estimates: list[pd.DataFrame] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)


def _filter(spec: AnalysisSpec, df: pd.DataFrame) -> pd.DataFrame:
    """Apply the spec's population filters to an analysis dataset."""
    population = spec.content.get("population") or {}
    mask = pd.Series(True, index=df.index)
    for column, rule in population.items():
        if column not in df.columns:
            raise _fail(
                spec.path,
                f"population.{column}",
                f"no such column in the analysis dataset; columns: {', '.join(df.columns)}",
            )
        values = df[column]
        if isinstance(rule, Mapping):
            if "min" in rule:
                mask &= (values >= rule["min"]).fillna(False).astype(bool)
            if "max" in rule:
                mask &= (values <= rule["max"]).fillna(False).astype(bool)
        elif isinstance(rule, list):
            mask &= values.isin(rule).fillna(False).astype(bool)
        else:
            mask &= (values == rule).fillna(False).astype(bool)
    out = df.loc[mask].reset_index(drop=True)
    if out.empty:
        raise _fail(spec.path, "population", "no rows left after the population filters")
    return out


def _population_ard(name: str, df: pd.DataFrame) -> pd.DataFrame:
    counts = {"n_rows": float(len(df))}
    for col, stat in (("subject_id", "n_subjects"), ("unit_id", "n_units")):
        if col in df.columns:
            key = ["study_id", col] if "study_id" in df.columns else [col]
            counts[stat] = float(len(df[key].drop_duplicates()))
    tidy = pd.DataFrame([{"term": "analysis_set", **counts}])
    return to_ard(tidy, analysis=name, groups={"table": "population"})


def _ard(
    tidy: pd.DataFrame,
    name: str,
    table: str,
    stats: Sequence[str],
    diagnostics: pd.DataFrame | None = None,
    groups: Mapping[str, object] | None = None,
) -> pd.DataFrame:
    stats = [s for s in stats if s in tidy.columns]
    return to_ard(
        tidy[["term", *stats]],
        analysis=name,
        groups={"table": table, **(groups or {})},
        diagnostics=diagnostics,
        stats=stats,
    )


def _estimates(
    tidy: pd.DataFrame, name: str, table: str, groups: Mapping[str, object] | None = None
) -> pd.DataFrame:
    out = tidy.copy()
    for col in TIDY_COLUMNS:
        if col not in out.columns:
            out[col] = np.nan
    out = out[list(TIDY_COLUMNS)]
    out.insert(0, "group", ";".join(f"{k}={v}" for k, v in sorted((groups or {}).items())))
    out.insert(0, "table", table)
    out.insert(0, "analysis", name)
    return out


def _lmm_dataset(spec: AnalysisSpec, tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    outcome = spec.content["outcome"]
    a = tables["assessments"]
    a = a.loc[a["instrument"] == outcome["instrument"]]
    if "rater_role" in outcome:
        a = a.loc[a["rater_role"] == outcome["rater_role"]]
    if a.empty:
        raise _fail(spec.path, "outcome", f"no assessments match {dict(outcome)}")
    df = a.merge(tables["units"], on=["study_id", "unit_id"], validate="many_to_one").merge(
        tables["subjects"], on=["study_id", "subject_id"], validate="many_to_one"
    )
    df["week"] = df["day"].astype(float) / 7
    return _filter(spec, df)


def _run_lmm(spec: AnalysisSpec, tables: Mapping[str, pd.DataFrame]) -> _Output:
    """Linear mixed model on assessments joined with units and subjects (+ ``week``)."""
    import plotnine as p9

    from outcomes.models.lmm.fit import lmm

    name = spec.name
    model = {k: v for k, v in spec.content["model"].items() if k != "kind"}
    df = _lmm_dataset(spec, tables)
    fit = lmm(df, **model)
    out = _Output()
    out.ard += [_population_ard(name, df), fit.to_ard(name, groups={"table": "lmm"})]
    out.estimates.append(_estimates(fit.fixed, name, "fixed"))
    diag = fit.diagnostics
    for i, comp in enumerate(spec.content.get("comparisons") or [], start=1):
        at = comp.get("at") or {}
        groups = {"comparison": i, **{f"at_{k}": v for k, v in sorted(at.items())}}
        options = {k: comp[k] for k in ("by", "ref", "method", "adjust") if k in comp}
        con = fit.contrasts(comp["specs"], at=at or None, **options)
        con = con.assign(term=_labels(con, comp.get("by")))
        em = fit.emmeans(comp["specs"], by=comp.get("by"), at=at or None)
        stats = [c for c in TIDY_COLUMNS if c != "term"]
        out.ard += [
            _ard(con, name, "contrast", stats, diag, groups),
            _ard(em, name, "emmeans", stats, diag, groups),
        ]
        out.estimates += [
            _estimates(con, name, "contrast", groups),
            _estimates(em, name, "emmeans", groups),
        ]
    response = spec.content["model"]["formula"].split("~")[0].strip()
    colour = (spec.content.get("comparisons") or [{}])[0].get("specs")
    keys = ["day", *([colour] if colour else [])]
    means = (
        df.assign(**{response: df[response].astype(float)})
        .groupby(keys, observed=True)[response]
        .mean()
        .reset_index()
    )
    means["day"] = means["day"].astype(float)
    aes = p9.aes("day", response, **({"color": colour, "group": colour} if colour else {}))
    out.figures["observed_means"] = (
        p9.ggplot(means, aes)
        + p9.geom_line()
        + p9.geom_point()
        + p9.labs(x="study day", y=f"mean {response}", title=spec.content["question"][:80])
        + p9.theme_bw()
    )
    return out


def _labels(table: pd.DataFrame, by: str | Sequence[str] | None) -> list[str]:
    base = table["contrast"].astype(str) if "contrast" in table else table["term"].astype(str)
    by_l = [] if by is None else ([by] if isinstance(by, str) else list(by))
    if not by_l:
        return list(base)
    extra = table[by_l].astype(str).agg(", ".join, axis=1)
    return [f"{b} | {e}" for b, e in zip(base, extra, strict=True)]


def _run_time_to_result(spec: AnalysisSpec, tables: Mapping[str, pd.DataFrame]) -> _Output:
    """Time-to-result: derive_tte, Kaplan-Meier by group, log-rank and Cox comparisons."""
    from outcomes.derive import derive_tte
    from outcomes.models.survival.cox import cox
    from outcomes.models.survival.kaplan_meier import kaplan_meier, logrank

    name = spec.name
    outcome = spec.content["outcome"]
    model = spec.content["model"]
    options = (
        {"retreatment_gap": outcome["retreatment_gap"]} if "retreatment_gap" in outcome else {}
    )
    tte = _filter(spec, derive_tte(tables, outcome["endpoint"], **options))
    by = model["by"]
    km = kaplan_meier(tte, by=by, conf_level=model.get("conf_level", 0.95))
    out = _Output()
    median = km.tidy()
    out.ard += [
        _population_ard(name, tte),
        _ard(
            median,
            name,
            "median",
            ["records", "events", "estimate", "conf_low", "conf_high"],
            km.diagnostics,
        ),
    ]
    out.estimates.append(_estimates(median, name, "median"))
    times = model.get("times") or []
    if times:
        surv = km.survival_at(times)
        surv["term"] = [
            f"{s}, day={t:g}" for s, t in zip(surv["strata"], surv["time"], strict=True)
        ]
        out.ard.append(
            _ard(
                surv,
                name,
                "survival",
                ["n_risk", "n_event", "surv", "std_err", "conf_low", "conf_high"],
                km.diagnostics,
            )
        )
    for i, comp in enumerate(spec.content.get("comparisons") or [], start=1):
        groups = {"comparison": i}
        if comp["test"] == "logrank":
            lr = logrank(tte, by=by, strata=comp.get("strata"))
            out.ard.append(
                _ard(
                    lr.table,
                    name,
                    "logrank",
                    ["statistic", "df", "p_value"],
                    lr.diagnostics,
                    groups,
                )
            )
            out.estimates.append(_estimates(lr.table, name, "logrank", groups))
        elif comp["test"] == "cox":
            options = {k: comp[k] for k in ("cluster", "strata", "ties") if k in comp}
            fit = cox(tte, comp.get("formula", by), **options)
            stats = [c for c in TIDY_COLUMNS if c not in ("term", "df")]
            stats += ["hazard_ratio", "hr_conf_low", "hr_conf_high"]
            counts = pd.DataFrame([{"term": "model", "n": fit.n, "n_events": fit.n_events}])
            ph = fit.ph_test.rename(columns={"chisq": "statistic"})
            out.ard += [
                _ard(fit.table, name, "cox", stats, fit.diagnostics, groups),
                _ard(counts, name, "cox", ["n", "n_events"], fit.diagnostics, groups),
                _ard(ph, name, "ph_test", ["statistic", "df", "p_value"], fit.diagnostics, groups),
            ]
            out.estimates.append(_estimates(fit.table, name, "cox", groups))
        else:
            raise _fail(spec.path, f"comparisons[{i - 1}].test", "must be 'logrank' or 'cox'")
    out.figures["kaplan_meier"] = km.plot(title=spec.content["question"][:80])
    return out


def _subset_population(
    spec: AnalysisSpec, tables: Mapping[str, pd.DataFrame]
) -> dict[str, pd.DataFrame]:
    """The schema tables restricted to the subjects the population filters keep."""
    subjects = _filter(spec, tables["subjects"])
    keep = subjects[["study_id", "subject_id"]]
    units = tables["units"].merge(keep, on=["study_id", "subject_id"])
    unit_keys = units[["study_id", "unit_id"]]
    out = {
        "studies": tables["studies"].loc[tables["studies"]["study_id"].isin(keep["study_id"])],
        "subjects": subjects,
        "units": units,
        "sessions": tables["sessions"].merge(unit_keys, on=["study_id", "unit_id"]),
        "assessments": tables["assessments"].merge(unit_keys, on=["study_id", "unit_id"]),
        "adverse_events": tables["adverse_events"].merge(keep, on=["study_id", "subject_id"]),
    }
    return {k: v.reset_index(drop=True) for k, v in out.items()}


def _run_comparison(spec: AnalysisSpec, tables: Mapping[str, pd.DataFrame]) -> _Output:
    """Combination-vs-MN effects per indication (:func:`outcomes.models.comparison.compare`).

    ``model`` options are :func:`~outcomes.models.comparison.compare`'s keyword arguments;
    ``population`` filters the subjects (and with them their units, sessions, assessments and
    adverse events).
    """
    from outcomes.models.comparison import compare

    name = spec.name
    options = {k: v for k, v in spec.content["model"].items() if k != "kind"}
    subset = _subset_population(spec, tables)
    res = compare(subset, **options)
    keys = ["source", "study_id", "indication", "outcome", "measure", "adjustment"]
    out = _Output()
    ard = res.to_ard()
    ard["analysis"] = name
    ard["group"] = [";".join(sorted([*g.split(";"), "table=comparison"])) for g in ard["group"]]
    out.ard += [_population_ard(name, subset["units"]), ard]
    for _, row in res.table.iterrows():
        tidy = pd.DataFrame([{"term": row["comparison"], **row[list(TIDY_COLUMNS[1:])]}])
        out.estimates.append(_estimates(tidy, name, "comparison", {k: row[k] for k in keys}))
    if len(res.table):
        out.figures["forest"] = res.forest_plot()
    return out


# --------------------------------------------------------------------------------------------
# writing and reading results
# --------------------------------------------------------------------------------------------


def _format_floats(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for col in out.columns:
        if pd.api.types.is_float_dtype(out[col]):
            out[col] = [
                "" if (v is None or (isinstance(v, float) and math.isnan(v))) else repr(float(v))
                for v in out[col].astype(object)
            ]
    return out


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    _format_floats(df).to_csv(path, index=False, lineterminator="\n")


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False).replace_schema_metadata(None)
    pq.write_table(table, path, compression="zstd")


def _save_figure(plot: Any, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plot.draw()
    try:
        fig.savefig(path, format="png", dpi=_FIGURE_DPI, metadata={"Software": None})
    finally:
        plt.close(fig)


def _read_csv(path: Path, numeric: Sequence[str]) -> pd.DataFrame:
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    for col in numeric:
        if col in df.columns:
            df[col] = pd.to_numeric(df[col].replace("", np.nan), errors="raise").astype(float)
    return df


def read_ard(path: str | Path) -> pd.DataFrame:
    """An ``ard.csv`` as a DataFrame (``stat_value`` float, texts with ``""`` for none)."""
    return _read_csv(Path(path), ["stat_value"])


@dataclass
class AnalysisResults:
    """A results folder read back (see :func:`load_results`).

    Attributes
    ----------
    name, path
        The analysis and its folder.
    ard
        The analysis results dataset (:data:`~outcomes.results.ARD_COLUMNS`).
    estimates
        Tidy estimate tables stacked: ``analysis, table, group`` + the tidy columns.
    manifest
        The run manifest (dict).
    figures
        Figure files by name.
    """

    name: str
    path: Path
    ard: pd.DataFrame
    estimates: pd.DataFrame
    manifest: dict[str, Any]
    figures: dict[str, Path]

    def table(self, table: str) -> pd.DataFrame:
        """One tidy table (``"fixed"``, ``"contrast"``, ``"emmeans"``, ``"median"``, ``"cox"``)."""
        known = list(dict.fromkeys(self.estimates["table"]))
        if table not in known:
            raise InputError(f"{self.name}: no table {table!r}; tables: {', '.join(known)}")
        out = self.estimates.loc[self.estimates["table"] == table]
        return out.drop(columns=["analysis", "table"]).reset_index(drop=True)

    def stat(self, term: str, stat_name: str, table: str | None = None, **group: object) -> float:
        """One statistic of the ARD.

        Parameters
        ----------
        term, stat_name
            The row's term and statistic, e.g. ``"MN+PRP - MN"`` and ``"estimate"``.
        table
            The result table (``group`` holds ``table=...``), e.g. ``"contrast"``.
        **group
            Further ``key=value`` parts the row's group must hold, e.g. ``at_week=24``.

        Examples
        --------
        >>> res.stat("MN+PRP - MN", "estimate", table="contrast", at_week=24)  # doctest: +SKIP
        """
        wanted = {f"{k}={v}" for k, v in group.items()} | ({f"table={table}"} if table else set())
        rows = self.ard.loc[(self.ard["term"] == term) & (self.ard["stat_name"] == stat_name)]
        rows = rows.loc[[wanted <= set(g.split(";")) for g in rows["group"]]]
        if len(rows) != 1:
            hint = "; give table= or group parts to choose one" if len(rows) > 1 else ""
            raise InputError(
                f"{self.name}: {len(rows)} rows for term {term!r}, stat {stat_name!r}"
                f"{' with ' + ', '.join(sorted(wanted)) if wanted else ''}{hint}"
            )
        return float(rows["stat_value"].iloc[0])


def load_results(name_or_path: str | Path, root: str | Path = "results") -> AnalysisResults:
    """Read a results folder: ``results/NAME`` by name, or any folder by path.

    Examples
    --------
    >>> res = load_results("trial_lmm_gb_quant")            # doctest: +SKIP
    >>> res.table("contrast")                               # doctest: +SKIP
    >>> res.stat("MN+PRP - MN", "estimate", table="contrast")  # doctest: +SKIP
    """
    path = Path(name_or_path)
    if not path.is_dir():
        path = Path(root) / str(name_or_path)
    if not (path / "ard.csv").is_file():
        raise InputError(f"{path}: no results here (no ard.csv); run `outcomes run` first")
    if (path / "ard.parquet").is_file():
        ard = pd.read_parquet(path / "ard.parquet")
    else:
        ard = read_ard(path / "ard.csv")
    if (path / "estimates.parquet").is_file():
        estimates = pd.read_parquet(path / "estimates.parquet")
    else:
        estimates = _read_csv(path / "estimates.csv", TIDY_COLUMNS[1:])
    manifest = (
        json.loads((path / "manifest.json").read_text())
        if (path / "manifest.json").is_file()
        else {}
    )
    figures = {p.stem: p for p in sorted((path / "figures").glob("*.png"))}
    return AnalysisResults(
        name=str(manifest.get("analysis", path.name)),
        path=path,
        ard=ard,
        estimates=estimates,
        manifest=manifest,
        figures=figures,
    )


# --------------------------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _execute(spec: AnalysisSpec, session: _Session, out_dir: Path) -> Path:
    started, t0 = _now(), time.perf_counter()
    final = out_dir / spec.name
    work = out_dir / f"{spec.name}.tmp"
    shutil.rmtree(work, ignore_errors=True)
    (work / "figures").mkdir(parents=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = session.data(spec)
        try:
            output = _RUNNERS[spec.kind](spec, data.tables)
        except OutcomesError as err:
            if str(err).startswith(str(spec.path)):
                raise
            raise type(err)(f"{spec.path}: analysis {spec.name}: {err}") from None
        figure_files = {}
        if spec.content.get("figures", True):
            for fig_name, plot in output.figures.items():
                fig_path = work / "figures" / f"{fig_name}.png"
                _save_figure(plot, fig_path)
                figure_files[f"figures/{fig_name}.png"] = sha256_file(fig_path)
    ard = pd.concat(output.ard, ignore_index=True)[list(ARD_COLUMNS)]
    dup = ard.duplicated(["analysis", "group", "term", "stat_name"])
    if dup.any():
        raise RuntimeError(f"duplicate ARD rows: {ard.loc[dup].head().to_dict('records')}")
    estimates = pd.concat(output.estimates, ignore_index=True)[list(ESTIMATE_COLUMNS)]
    _write_csv(ard, work / "ard.csv")
    _write_parquet(ard, work / "ard.parquet")
    _write_csv(estimates, work / "estimates.csv")
    _write_parquet(estimates, work / "estimates.parquet")
    messages = list(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))
    code = code_fingerprint()
    code["git"] = git_state(spec.path)
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "analysis": spec.name,
        "question": spec.content["question"],
        "kind": spec.kind,
        "spec": {
            "path": spec.path.as_posix(),
            "sha256": spec.sha256,
            "content_sha256": spec.content_sha256,
            "content": spec.content,
        },
        "data": data.info,
        "code": code,
        "environment": environment_fingerprint(),
        "seeds": {
            "spec_seed": spec.seed,
            "seed_sequence_entropy": np.random.SeedSequence(spec.seed).entropy,
            "data_seed": data.info.get("seed"),
        },
        "tolerance": spec.tolerance,
        "results": {
            "rows": len(ard),
            "files": {
                **{f: sha256_file(work / f) for f in RESULT_FILES},
                **figure_files,
            },
        },
        "warnings": messages,
        "started_at": started,
        "finished_at": _now(),
        "duration_seconds": round(time.perf_counter() - t0, 3),
    }
    (work / "manifest.json").write_text(
        json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n"
    )
    shutil.rmtree(final, ignore_errors=True)
    work.rename(final)
    return final


def run_analyses(
    specs: Sequence[str | Path | AnalysisSpec],
    out_dir: str | Path = "results",
    *,
    save_expected: bool = False,
) -> list[Path]:
    """Run declared analyses (sharing each data source) into ``out_dir/<name>/``.

    Parameters
    ----------
    specs
        Spec files (or loaded specs).
    out_dir
        Results root (``results`` by default).
    save_expected
        Also copy ``ard.csv``, ``estimates.csv`` and ``manifest.json`` to each spec's
        ``expected/<name>/`` folder: the reference :func:`audit` compares with.

    Returns
    -------
    list of Path
        The results folders.
    """
    loaded = [s if isinstance(s, AnalysisSpec) else load_spec(s) for s in specs]
    names = [s.name for s in loaded]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"two specs declare the same analysis name: {', '.join(dup)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    folders = []
    with _Session() as session:
        for spec in loaded:
            folder = _execute(spec, session, out)
            folders.append(folder)
            if save_expected:
                _save_expected(spec, folder)
    return folders


def _save_expected(spec: AnalysisSpec, folder: Path) -> None:
    dest = spec.expected_dir
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for f in EXPECTED_FILES:
        shutil.copy(folder / f, dest / f)


def run_analysis(
    spec: str | Path | AnalysisSpec, out_dir: str | Path = "results"
) -> AnalysisResults:
    """Run one declared analysis into ``out_dir/<name>/`` and return its results.

    Examples
    --------
    >>> res = run_analysis("analyses/trial_lmm_gb_quant.yaml")  # doctest: +SKIP
    >>> res.table("fixed")                                      # doctest: +SKIP
    """
    (folder,) = run_analyses([spec], out_dir)
    return load_results(folder)


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
        :func:`outcomes.audit.check_lock`) unless ``compiled_lock`` gives a fresh compile.
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


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------


def cli_run(args: Any) -> int:
    """``outcomes run SPEC...``: run declared analyses into ``--results``."""
    paths = discover_specs(args.specs)
    t0 = time.perf_counter()
    folders = run_analyses(paths, args.results, save_expected=args.save_expected)
    for folder in folders:
        manifest = json.loads((folder / "manifest.json").read_text())
        n_fig = sum(k.startswith("figures/") for k in manifest["results"]["files"])
        print(
            f"wrote {folder}/: {manifest['results']['rows']} statistics, {n_fig} figure(s), "
            f"{len(manifest['warnings'])} warning(s)"
        )
    if args.save_expected:
        print("copied ard.csv, estimates.csv, manifest.json to each spec's expected/<name>/")
    print(f"{len(folders)} analyses in {time.perf_counter() - t0:.1f} s")
    return 0


def cli_audit(args: Any) -> int:
    """``outcomes audit``: re-run, compare, explain; exit 6 on any difference."""
    report = audit(
        args.paths or ["analyses"],
        strict=args.strict,
        lock=args.lock if (args.check_lock or args.compiled_lock) else None,
        compiled_lock=args.compiled_lock,
        project=args.project,
        out_dir=args.keep,
        update_expected=args.update_expected,
    )
    print(report.text())
    return 0 if report.ok else AUDIT_FAILED


_RUNNERS: dict[str, Callable[[AnalysisSpec, Mapping[str, pd.DataFrame]], _Output]] = {
    "lmm": _run_lmm,
    "time_to_result": _run_time_to_result,
    "comparison": _run_comparison,
}
