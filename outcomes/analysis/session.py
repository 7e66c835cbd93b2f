"""The data source of a run (feeds, a simulation or a store snapshot) in a temporary store."""

from __future__ import annotations

import contextlib
import hashlib
import io
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from outcomes.analysis.spec import AnalysisSpec, _canonical_json
from outcomes.errors import InputError, OutcomesWarning

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
        elif "published" in d:
            key = _canonical_json(["published", str(d["published"]), str(base.resolve())])
        else:
            key = _canonical_json(["store", str((base / d["store"]).resolve()), d["snapshot"]])
        if key not in self._cache:
            self._cache[key] = self._open(spec)
        return self._cache[key]

    def _open(self, spec: AnalysisSpec) -> _Data:
        from outcomes.data.ingest import ingest
        from outcomes.data.store import Store

        d = spec.content["data"]
        base = spec.path.parent
        info: dict[str, Any] = {}
        if "published" in d:
            return _published(d["published"], base)
        if "store" in d:
            store_path = base / d["store"]
            store = Store(store_path, read_only=True)
            self._stack.callback(store.close)
            damaged = store.integrity_problems()
            if damaged:
                raise InputError(f"{spec.path}: key 'data.store': " + "; ".join(damaged))
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
                from outcomes.simulate.output import write_feeds
                from outcomes.simulate.registry import simulate_registry
                from outcomes.simulate.trial import simulate_trial

                seed = int(d.get("seed", spec.seed))
                options = dict(d.get("options") or {})
                func = simulate_trial if d["simulate"] == "trial" else simulate_registry
                feed_dir = self._tmp() / "feeds"
                write_feeds(func(seed=seed, **options), feed_dir)
                paths = [feed_dir]
                info.update(source="simulate", simulate=d["simulate"], seed=seed, options=options)
                relative_to = feed_dir
            store = Store(self._tmp() / "store.duckdb", create=True)
            self._stack.callback(store.close)
            report = ingest(paths, store, note=f"declared analysis {spec.name}")
            skipped = [n for n in report.notes if n.startswith("skipped ")]
            if skipped:  # recorded only when there are some, so older manifests compare
                info["skipped"] = sorted(
                    _relative(n.removeprefix("skipped ").split(": ")[0], relative_to)
                    for n in skipped
                )
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


def _published(name: str, base: Path) -> _Data:
    """A published study-level data set: a shipped one by name, or a CSV file (table
    ``published``); its file's SHA-256 is recorded like a feed's."""
    from importlib import resources

    if name == "microneedling_network":
        source = resources.files("outcomes") / "data" / "published" / f"{name}.csv"
        label = f"outcomes/data/published/{name}.csv"
    else:
        source, label = base / name, name
    raw = source.read_bytes()
    if name == "microneedling_network":
        from outcomes.models.network.published import microneedling_network

        table = microneedling_network()
    else:
        try:
            table = pd.read_csv(io.BytesIO(raw))
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(f"{label}: not a readable CSV file ({exc})") from None
    sha = hashlib.sha256(raw).hexdigest()
    rows = len(table)
    info = {
        "source": "published",
        "published": name,
        "tables": {"published": {"rows": rows, "sha256": sha}},
        "files": [
            {
                "path": label,
                "sha256": sha,
                "table": "published",
                "rows_in": rows,
                "rows_accepted": rows,
                "rows_quarantined": 0,
            }
        ],
    }
    return _Data(tables={"published": table}, info=info)


def _relative(path: str, base: Path | None) -> str:
    if base is None:
        return path
    try:
        return Path(path).resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return path
