"""Ingest feeds (CSV, Excel, Parquet) into the store, validating against the dictionary.

A feed file holds one table. Which table is told by its mapping's ``table:`` or by its name
(``assessments.csv``, ``site3_assessments.xlsx``). A mapping file beside the feed,
``<feed name>.mapping.yaml``, turns a site's own names and codes into the schema's::

    table: assessments
    columns: {record: unit_id, scale: instrument, score: value}   # feed name -> schema name
    values: {instrument: {GBQ: gb_qual, GAIS_INV: gais}}          # schema column -> codes
    constants: {study_id: REG1}                                    # columns the feed lacks
    drop: [redcap_event_name]                                      # feed columns to ignore

What happens to bad input:

- a file that cannot be read, whose table cannot be told, that lacks a required column, has
  a column the schema does not know (and the mapping does not drop), or has a column that
  looks like a direct identifier is *rejected* whole, with a message naming file and column;
- a row that breaks a rule goes to the store's quarantine table with file, row number,
  column, value, rule and the whole record; accepted + quarantined rows = input rows;
- with ``strict=True`` any rejection or violation fails the ingest and nothing is written;
- a file whose bytes were already ingested into the same table adds nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from outcomes.dictionary import Dictionary, load_dictionary
from outcomes.errors import InputError
from outcomes.schema import validate_table
from outcomes.store import Store

__all__ = [
    "EXIT_CODES",
    "FileResult",
    "IngestReport",
    "apply_mapping",
    "discover_feeds",
    "ingest",
    "prepare_feed",
    "read_feed",
]

FEED_SUFFIXES = (".csv", ".parquet", ".xlsx", ".xls")
EXIT_CODES = {
    0: "every row accepted (or nothing new to add)",
    3: "ingested, but some rows were quarantined",
    4: "ingested, but some files were rejected whole",
    5: "strict mode: violations found, nothing written",
}


@dataclass
class FileResult:
    """What happened to one feed file."""

    path: str
    table: str | None
    sha256: str | None
    status: str  # "ingested", "already_ingested", "rejected"
    rows_in: int = 0
    rows_accepted: int = 0
    rows_quarantined: int = 0
    message: str = ""


@dataclass
class IngestReport:
    """The outcome of one ingest.

    Attributes
    ----------
    snapshot
        The snapshot written, or None when nothing was written.
    files
        One :class:`FileResult` per feed file.
    quarantine
        One row per violation (file, table_name, row, column_name, value, rule, message,
        record); ``row`` counts data rows from 1 (a CSV's header is line 1, so row r is line
        r + 1).
    strict
        Whether strict mode was on.
    """

    snapshot: int | None
    files: list[FileResult]
    quarantine: pd.DataFrame
    strict: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """The CLI exit code (see :data:`EXIT_CODES`)."""
        rejected = any(f.status == "rejected" for f in self.files)
        if self.strict and (rejected or len(self.quarantine)):
            return 5
        if rejected:
            return 4
        return 3 if len(self.quarantine) else 0

    def summary(self, limit: int = 30) -> str:
        """A readable summary: per file, then the first quarantined rows."""
        lines = []
        for f in self.files:
            if f.status == "rejected":
                lines.append(f"REJECTED  {f.message}")
            elif f.status == "already_ingested":
                lines.append(f"unchanged {f.path}: {f.message}")
            else:
                lines.append(
                    f"ok        {f.path} -> {f.table}: {f.rows_in} rows in, {f.rows_accepted} "
                    f"accepted, {f.rows_quarantined} quarantined"
                )
        q = self.quarantine
        if len(q):
            lines.append(f"\nQuarantined rows ({len(q)} violations):")
            for v in q.head(limit).itertuples(index=False):
                lines.append(
                    f"  {v.file} row {v.row}: column {v.column_name} = {v.value!r}: "
                    f"{v.message} [{v.rule}]"
                )
            if len(q) > limit:
                lines.append(f"  ... {len(q) - limit} more (see `outcomes quarantine`)")
        if self.exit_code == 5:
            lines.append("\nStrict mode: nothing was written.")
        elif self.snapshot is not None:
            lines.append(f"\nSnapshot {self.snapshot} written.")
        else:
            lines.append("\nNothing new: no snapshot written.")
        lines += self.notes
        return "\n".join(lines)


def discover_feeds(paths: list[str | Path]) -> list[Path]:
    """Feed files named by ``paths``: files as given, folders searched (not recursively)."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(f for f in p.iterdir() if f.suffix.lower() in FEED_SUFFIXES)
        elif p.exists():
            found.append(p)
        else:
            raise InputError(f"{p}: no such file or folder")
    return found


def read_feed(path: Path) -> pd.DataFrame:
    """Read a feed with every value as text (types are checked by validation, per row)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            df = pd.read_csv(path, dtype=str, keep_default_na=False, engine="pyarrow")
        elif suffix == ".parquet":
            df = pd.read_parquet(path)
        elif suffix in (".xlsx", ".xls"):
            df = pd.read_excel(path, dtype=str, keep_default_na=False)
        else:
            raise InputError(f"{path}: unknown feed format {suffix!r} (use CSV, Excel or Parquet)")
    except InputError:
        raise
    except Exception as err:  # any reader failure means an unreadable file, named as such
        raise InputError(f"{path}: cannot be read as {suffix[1:].upper()} ({err})") from None
    df.columns = [str(c).strip() for c in df.columns]
    return df.astype("string[pyarrow]")


def load_mapping(path: Path) -> dict[str, Any]:
    """Read a mapping file (see the module docstring for its keys)."""
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise InputError(f"{path}: cannot read mapping ({err})") from None
    unknown = set(raw) - {"table", "columns", "values", "constants", "drop"}
    if unknown:
        raise InputError(
            f"{path}: unknown mapping keys {sorted(unknown)}; "
            "use table, columns, values, constants, drop"
        )
    return raw


def apply_mapping(df: pd.DataFrame, mapping: dict[str, Any]) -> pd.DataFrame:
    """Rename columns, recode values, add constant columns and drop listed columns."""
    df = df.drop(columns=[c for c in mapping.get("drop", []) if c in df])
    df = df.rename(columns=mapping.get("columns", {}))
    for column, codes in (mapping.get("values") or {}).items():
        if column in df:
            df[column] = df[column].replace({str(k): str(v) for k, v in codes.items()})
    for column, value in (mapping.get("constants") or {}).items():
        df[column] = pd.Series(str(value), index=df.index, dtype="string")
    return df


def _table_of(path: Path, mapping: dict[str, Any], d: Dictionary) -> str:
    if "table" in mapping:
        if mapping["table"] not in d.tables:
            raise InputError(f"{path}: mapping names unknown table {mapping['table']!r}")
        return str(mapping["table"])
    stem = path.stem.lower()
    for name in sorted(d.tables, key=len, reverse=True):
        if stem == name or stem.endswith(("_" + name, "-" + name)):
            return name
    raise InputError(
        f"{path}: cannot tell which table this feed holds; name it after a table "
        f"({', '.join(d.tables)}) or give `table:` in {path.name}.mapping.yaml"
    )


@dataclass
class _Feed:
    path: Path
    table: str
    sha256: str
    data: pd.DataFrame


def prepare_feed(path: Path, d: Dictionary | None = None) -> _Feed:
    """Read, map and screen one feed; raise InputError when the whole file is unusable."""
    d = d or load_dictionary()
    mapping_path = path.with_name(path.name + ".mapping.yaml")
    mapping = load_mapping(mapping_path) if mapping_path.exists() else {}
    table = _table_of(path, mapping, d)
    try:
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as err:
        raise InputError(f"{path}: cannot be read ({err})") from None
    raw = read_feed(path)
    identifiers = [c for c in raw.columns if d.looks_like_identifier(c)]
    if identifiers:
        raise InputError(
            f"{path}: column(s) {', '.join(map(repr, identifiers))} look like direct "
            "identifiers; remove them from the export (the store holds pseudonymous data only)"
        )
    data = apply_mapping(raw, mapping)
    t = d.table(table)
    missing = [c for c in t.required_columns if c not in data]
    if missing:
        raise InputError(
            f"{path}: missing required column(s) {', '.join(map(repr, missing))} of table {table}"
        )
    unknown = [c for c in data.columns if c not in t.columns]
    if unknown:
        raise InputError(
            f"{path}: column(s) {', '.join(map(repr, unknown))} are not in table {table}; "
            f"map them (`columns:`) or drop them (`drop:`) in {path.name}.mapping.yaml"
        )
    return _Feed(path, table, sha, data)


def _stack(frames: list[pd.DataFrame | None]) -> pd.DataFrame:
    """Concatenate the non-empty frames (an empty frame when there are none)."""
    parts = [f for f in frames if f is not None and len(f)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _key_columns(df: pd.DataFrame, cols: tuple[str, ...]) -> pd.DataFrame:
    return df[list(cols)].drop_duplicates()


def ingest(
    paths: list[str | Path],
    store: str | Path | Store,
    *,
    strict: bool = False,
    note: str = "",
) -> IngestReport:
    """Validate feeds and add them to the store as one new snapshot.

    Parameters
    ----------
    paths
        Feed files and/or folders of feeds.
    store
        A store path (created if missing) or an open :class:`~outcomes.store.Store`.
    strict
        Fail without writing anything on any rejected file or row violation.
    note
        Free text kept with the snapshot.

    Returns
    -------
    IngestReport
        Per-file results, quarantined rows and the snapshot written (if any).
    """
    feeds = discover_feeds(paths)
    if isinstance(store, Store):
        return _ingest(feeds, store, strict=strict, note=note)
    with Store(store, create=True) as st:
        return _ingest(feeds, st, strict=strict, note=note)


def _ingest(paths: list[Path], store: Store, *, strict: bool, note: str) -> IngestReport:
    d = store.dictionary
    results: list[FileResult] = []
    feeds: list[_Feed] = []
    for path in paths:
        try:
            feeds.append(prepare_feed(path, d))
        except InputError as err:
            results.append(FileResult(str(path), None, None, "rejected", message=str(err)))
    order = list(d.tables)
    feeds.sort(key=lambda f: (order.index(f.table), str(f.path)))

    latest = store.latest()
    stored = {name: store.table(name) for name in order} if latest else {}
    accepted: dict[str, list[pd.DataFrame]] = {name: [] for name in order}
    quarantine: list[pd.DataFrame] = []
    seen: set[tuple[str, str]] = set()
    for feed in feeds:
        rows_in = len(feed.data)
        previous = store.snapshot_of_file(feed.sha256, feed.table)
        if previous is not None or (feed.sha256, feed.table) in seen:
            where = f"snapshot {previous}" if previous is not None else "this ingest"
            results.append(
                FileResult(
                    str(feed.path),
                    feed.table,
                    feed.sha256,
                    "already_ingested",
                    rows_in,
                    message=f"identical file already in {where}",
                )
            )
            continue
        seen.add((feed.sha256, feed.table))
        refs = {
            name: _stack([stored.get(name), *accepted[name]])
            for name in ("studies", "subjects", "units")
        }
        t = d.table(feed.table)
        earlier = _stack([stored.get(feed.table), *accepted[feed.table]])
        if len(earlier):
            refs[f"stored_{feed.table}"] = _key_columns(earlier, t.primary_key)
        check = validate_table(feed.data, feed.table, refs, d)
        accepted[feed.table].append(check.accepted)
        n_bad = len(check.rejected)
        if len(check.violations):
            quarantine.append(_quarantine_rows(feed, check.violations))
        results.append(
            FileResult(
                str(feed.path),
                feed.table,
                feed.sha256,
                "ingested",
                rows_in,
                len(check.accepted),
                n_bad,
            )
        )

    q = (
        pd.concat(quarantine, ignore_index=True)
        if quarantine
        else pd.DataFrame(
            columns=[
                "file",
                "table_name",
                "row",
                "column_name",
                "value",
                "rule",
                "message",
                "record",
            ]
        )
    )
    report = IngestReport(None, results, q, strict)
    ingested = [r for r in results if r.status == "ingested"]
    if (strict and report.exit_code == 5) or not ingested:
        return report
    files = pd.DataFrame(
        [
            (r.path, r.sha256, r.table, r.rows_in, r.rows_accepted, r.rows_quarantined)
            for r in ingested
        ],
        columns=["path", "sha256", "table_name", "rows_in", "rows_accepted", "rows_quarantined"],
    )
    tables = {
        name: pd.concat(parts, ignore_index=True) for name, parts in accepted.items() if parts
    }
    report.snapshot = store.add_snapshot(tables, files, q, note=note)
    return report


def _quarantine_rows(feed: _Feed, violations: pd.DataFrame) -> pd.DataFrame:
    """Violations in the store's quarantine shape, each with its whole original record."""
    records = feed.data.iloc[violations["row"].to_numpy()]
    return pd.DataFrame(
        {
            "file": str(feed.path),
            "table_name": feed.table,
            "row": violations["row"].to_numpy() + 1,
            "column_name": violations["column"].astype(str).to_numpy(),
            "value": violations["value"].map(lambda v: "" if pd.isna(v) else str(v)).to_numpy(),
            "rule": violations["rule"].to_numpy(),
            "message": violations["message"].to_numpy(),
            "record": [
                json.dumps({k: (None if pd.isna(v) else str(v)) for k, v in r.items()})
                for r in records.to_dict("records")
            ],
        }
    )
