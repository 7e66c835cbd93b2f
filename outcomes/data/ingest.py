"""Ingest feeds into the store, validating against the dictionary.

Feeds are CSV, Excel, Parquet, SPSS, Stata or SAS files (:mod:`outcomes.data.readers`).
Without a mapping a file holds one table, told by its name (``assessments.csv``,
``site3_assessments.xlsx``). A mapping file beside the feed, ``<feed name>.mapping.yaml``
(:mod:`outcomes.data.mapping`), turns a site's own names and codes into the schema's; its full
form (``tables:``) makes several tables from one export, each checked and counted on its own.
The simple form::

    table: assessments
    columns: {record: unit_id, scale: instrument, score: value}   # feed name -> schema name
    values: {instrument: {GBQ: gb_qual, GAIS_INV: gais}}          # schema column -> codes
    constants: {study_id: REG1}                                    # columns the feed lacks
    drop: [redcap_event_name]                                      # feed columns to ignore

Every value is read as the text written (:mod:`outcomes.data.readers`) and parsed by the
dictionary's type during validation, so IDs like ``0001`` are stored as written.

What happens to bad input:

- a file that cannot be read, whose table cannot be told, whose mapping is malformed (or
  maps two columns onto one, or sets a constant the feed already has), that lacks a required
  column, has a column the schema does not know (and the mapping does not drop), or has a
  column whose own or mapped name looks like a direct identifier is *rejected* whole, with a
  message naming file, line or column and rule; the other files go on;
- a row that breaks a rule goes to the store's quarantine table with file, row number,
  column, value, rule and the whole record; accepted + quarantined rows = input rows (for a
  mapped table: the rows the mapping made, each numbered by its source row; rows its filters
  left out are counted in the notes). A date that cannot become a study day (partial, in no
  given format, no anchor) is such a row problem too. A value
  that looks like an identifier (e-mail, phone, national number, person name) quarantines its
  row and is replaced by ``[removed: <kind>]`` everywhere it would be kept;
- files and folders not read (other formats, subfolders, extra Excel sheets) are named in
  the report's notes with the reason;
- with ``strict=True`` any rejection or violation, or no feed at all, fails the ingest and
  nothing is written (not even a new store file).

A file's identity is its bytes, its mapping (and the data dictionary) and its outcome. The
same bytes under the same mapping with every row accepted add nothing. A file with quarantined
rows is checked again when re-sent (its parents may have arrived, or its mapping been fixed):
rows already stored with the same values count as accepted and unchanged, new rows are added,
and a re-send that changes nothing writes no snapshot. A changed mapping makes the same bytes a
new file: its rows are checked again.

A stored key with *different* values is a correction (:mod:`outcomes.data.corrections`): with
``reason=`` it replaces the stored row in the new snapshot, earlier snapshots keep the old
value, and the history records each changed cell; without a reason it is quarantined as
``correction_needs_reason`` listing the changed cells. Accepted + quarantined + corrected rows
= input rows, always. Rows of a withdrawn subject are quarantined as ``withdrawn_subject``.
An ingest that accepts nothing does not create a store, and a mapping file that matches no
feed is named in the notes.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from outcomes.data.corrections import Withdrawn, classify_resent, row_texts
from outcomes.data.dictionary import Dictionary, load_dictionary
from outcomes.data.feeds import MAPPING_SUFFIX, discover_feeds
from outcomes.data.mapping import Mapping, apply_mapping, load_mapping, mapping_sha256
from outcomes.data.readers import read_feed
from outcomes.data.schema import TableValidation, validate_table
from outcomes.data.store import HISTORY_COLUMNS, Store
from outcomes.errors import InputError
from outcomes.progress import track

__all__ = [
    "EXIT_CODES",
    "FileResult",
    "IngestReport",
    "apply_mapping",
    "discover_feeds",
    "ingest",
    "prepare_feed",
    "read_feed",
    "validate_feed",
]

EXIT_CODES = {
    0: "every row accepted (or nothing new to add)",
    2: "nothing to ingest (a folder without feeds under --strict), or a store that cannot be used",
    3: "ingested, but some rows were quarantined",
    4: "ingested, but some files were rejected whole",
    5: "strict mode: violations found, nothing written",
}
QUARANTINE_COLUMNS = [
    "file",
    "table_name",
    "row",
    "column_name",
    "value",
    "rule",
    "message",
    "record",
]


@dataclass
class FileResult:
    """What happened to one feed file.

    ``rows_in = rows_accepted + rows_quarantined + rows_corrected`` always; ``rows_unchanged``
    of the accepted rows were already stored with the same values (a re-sent file) and are not
    added again; ``rows_corrected`` rows replaced stored rows with other values.
    """

    path: str
    table: str | None
    sha256: str | None
    status: str  # "ingested", "already_ingested", "rejected"
    rows_in: int = 0
    rows_accepted: int = 0
    rows_quarantined: int = 0
    message: str = ""
    mapping_sha256: str | None = None
    rows_unchanged: int = 0
    rows_corrected: int = 0


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
        record); ``row`` is the record's line in the file minus one (the header is line 1),
        or its sheet row minus one for Excel, its position from 1 for Parquet.
    strict
        Whether strict mode was on.
    notes
        Files skipped and why, sheets not read, mapping files that match no feed, warnings
        about the store.
    corrections
        One row per corrected cell (table_name, key, column_name, old_value, new_value,
        change, file, reason), as the store's history records them.
    """

    snapshot: int | None
    files: list[FileResult]
    quarantine: pd.DataFrame
    strict: bool = False
    notes: list[str] = field(default_factory=list)
    no_feeds: bool = False
    corrections: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=HISTORY_COLUMNS))
    unused_mappings: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """The CLI exit code (see :data:`EXIT_CODES`)."""
        rejected = any(f.status == "rejected" for f in self.files)
        if self.strict and self.no_feeds:
            return 2
        if self.strict and (rejected or len(self.quarantine) or self.unused_mappings):
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
                again = f" ({f.rows_unchanged} already stored)" if f.rows_unchanged else ""
                fixed = f", {f.rows_corrected} corrected" if f.rows_corrected else ""
                lines.append(
                    f"ok        {f.path} -> {f.table}: {f.rows_in} rows in, {f.rows_accepted} "
                    f"accepted{again}{fixed}, {f.rows_quarantined} quarantined"
                )
        if self.no_feeds:
            lines.append(
                "no feed files found"
                + (" (--strict: an empty delivery is an error)" if self.strict else "")
            )
        c = self.corrections
        if len(c):
            lines.append(f"\nCorrected cells ({len(c)}; reason: {c['reason'].iloc[0]}):")
            for h in c.head(limit).itertuples(index=False):
                lines.append(
                    f"  {h.table_name} {h.key}: {h.column_name} {h.old_value!r} -> "
                    f"{h.new_value!r} ({h.file})"
                )
            if len(c) > limit:
                lines.append(f"  ... {len(c) - limit} more (see `outcomes history`)")
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
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _table_of(path: Path, table: str | None, d: Dictionary) -> str:
    if table:
        if table not in d.tables:
            raise InputError(f"{path}: mapping names unknown table {table!r}")
        return str(table)
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
    """One table's rows from one file (an export mapped onto several tables gives several).

    ``rows`` is each row's record number in the file (a melted row points at its source
    row); ``violations`` are row problems found while mapping (dates, anchors), with ``row``
    the position in ``data``.
    """

    path: Path
    table: str
    sha256: str
    data: pd.DataFrame
    rows: np.ndarray  # each record's row number in the file
    mapping_sha256: str
    notes: list[str] = field(default_factory=list)
    violations: pd.DataFrame | None = None


def _identifier_names(path: Path, names: list[str], d: Dictionary, what: str) -> None:
    identifiers = [c for c in names if d.looks_like_identifier(c)]
    if identifiers:
        raise InputError(
            f"{path}: {what} {', '.join(map(repr, identifiers))} look like direct "
            "identifiers; remove them from the export (the store holds pseudonymous data only) "
            "[identifier_column]"
        )


def prepare_feed(path: Path, d: Dictionary | None = None) -> list[_Feed]:
    """Read, map and screen one feed; one :class:`_Feed` per table it holds.

    Raises InputError when the whole file is unusable.
    """
    d = d or load_dictionary()
    mapping_path = path.with_name(path.name + ".mapping.yaml")
    mapping = load_mapping(mapping_path) if mapping_path.exists() else None
    if mapping is not None and mapping.model is not None:
        return _prepare_mapped(path, mapping, d)
    spec = mapping.spec if mapping is not None else {}
    table = _table_of(path, spec.get("table"), d)
    raw = read_feed(path)
    _identifier_names(path, list(raw.data.columns), d, "column(s)")
    data = apply_mapping(raw.data, spec, path)
    _identifier_names(path, [c for c in data.columns if c not in raw.data], d, "mapped column(s)")
    _check_columns(path, table, data, d, f"{path.name}.mapping.yaml")
    return [_Feed(path, table, raw.sha256, data, raw.rows, mapping_sha256(spec), raw.notes)]


def _check_columns(path: Path, table: str, data: pd.DataFrame, d: Dictionary, where: str) -> None:
    t = d.table(table)
    missing = [c for c in t.required_columns if c not in data]
    if missing:
        raise InputError(
            f"{path}: missing required column(s) {', '.join(map(repr, missing))} of table "
            f"{table} [missing_column]"
        )
    unknown = [c for c in data.columns if c not in t.columns]
    if unknown:
        raise InputError(
            f"{path}: column(s) {', '.join(map(repr, unknown))} are not in table {table}; "
            f"map them (`columns:`) or drop them (`drop:`) in {where} [unknown_column]"
        )


def _prepare_mapped(path: Path, mapping: Mapping, d: Dictionary) -> list[_Feed]:
    """An export under a full mapping: one feed per table, all with the file's hash."""
    from outcomes.data.mapping import _specs, map_export, source_sheets
    from outcomes.data.readers import read_bytes, sheet_names
    from outcomes.data.redcap import read_redcap_dictionary

    model = mapping.model
    assert model is not None
    data, sha = read_bytes(path)
    specs = _specs(model)
    sheets = source_sheets(model)
    sources = {s: read_feed(path, s, data, sha) for s in sorted(sheets, key=str)}
    notes = [n for raw in sources.values() for n in raw.notes]
    if path.suffix.lower() == ".xlsx" and None not in sheets:
        unread = [s for s in sheet_names(path, data) if s not in sheets]
        if unread:
            notes.append(f"{path}: sheet(s) {', '.join(map(repr, unread))} not read (no table)")
    labels: dict[str, dict[str, str]] = {}
    mapping_hash = mapping.sha256
    flagged: list[str] = []
    if model.redcap_dictionary is not None:
        dd_path = mapping.path.parent / model.redcap_dictionary
        if not dd_path.is_file():
            raise mapping.fail("redcap_dictionary", f"no file {dd_path}")
        dd = read_redcap_dictionary(dd_path)
        labels.update(dd.labels())
        mapping_hash = mapping_sha256({"mapping": mapping_hash, "redcap_dictionary": dd.sha256})
        flagged = [
            c
            for raw in sources.values()
            for c in raw.data.columns
            if (f := dd.field_of(c)) is not None and f.identifier
        ]
    for raw in sources.values():
        labels.update(raw.labels)
        _identifier_names(path, list(raw.data.columns), d, "column(s)")
    if flagged:
        raise InputError(
            f"{path}: column(s) {', '.join(map(repr, flagged))} are marked as identifiers in the "
            "REDCap data dictionary (Identifier? = y); export with REDCap's option to remove "
            "identifier fields (the store holds pseudonymous data only) [identifier_column]"
        )
    table_of = {}
    for name in specs:
        if model.tables is None:
            table_of[name] = _table_of(path, model.table, d)
        elif name not in d.tables:
            raise mapping.fail(
                f"tables.{name}", f"unknown table; the dictionary has {', '.join(d.tables)}"
            )
        else:
            table_of[name] = name
    feeds = []
    for mt in map_export(mapping, sources, labels, table_of):
        source_names = {c for raw in sources.values() for c in raw.data.columns}
        new = [c for c in mt.data.columns if c not in source_names]
        _identifier_names(path, new, d, f"mapped column(s) of {mt.table}")
        _check_columns(path, mt.table, mt.data, d, mapping.path.name)
        feed_notes = notes + [f"{path} -> {mt.table}: {n}" for n in mt.notes]
        feeds.append(
            _Feed(path, mt.table, sha, mt.data, mt.rows, mapping_hash, feed_notes, mt.violations)
        )
        notes = []
    return feeds


def validate_feed(
    feed: _Feed, refs: dict[str, pd.DataFrame] | None = None, d: Dictionary | None = None
) -> TableValidation:
    """Validate one table feed, with the row problems found while mapping it."""
    return _with_mapping_violations(validate_table(feed.data, feed.table, refs, d), feed)


def _rows_of(feed: _Feed, keep: np.ndarray) -> _Feed:
    """The feed cut to the rows at positions ``keep`` (renumbered 0..), mapping problems too."""
    if len(keep) == len(feed.data):
        return feed
    extra = feed.violations
    if extra is not None and len(extra):
        new_position = pd.Series(np.arange(len(keep)), index=keep)
        extra = extra[extra["row"].isin(keep)]
        extra = extra.assign(row=new_position.loc[extra["row"]].to_numpy())
    data = feed.data.iloc[keep].reset_index(drop=True)
    return replace(feed, data=data, rows=feed.rows[keep], violations=extra)


def _with_mapping_violations(check: TableValidation, feed: _Feed) -> TableValidation:
    """Add the row problems found while mapping (dates, anchors) to a table's validation.

    A cell with a mapping problem is empty in the data, so the "required" violation
    validation finds there is left out: the mapping's reason is the one reported.
    """
    extra = feed.violations
    if extra is None or not len(extra):
        return check
    n = len(feed.data)
    bad_before = np.zeros(n, dtype=bool)
    bad_before[check.violations["row"].to_numpy(dtype=int)] = True
    cells = set(zip(extra["row"], extra["column"], strict=True))
    kept = check.violations[
        [
            (int(r), c) not in cells
            for r, c in zip(check.violations["row"], check.violations["column"], strict=True)
        ]
    ]
    extra = extra.assign(table=feed.table)[list(check.violations.columns)]
    violations = pd.concat([kept, extra], ignore_index=True)
    violations["row"] = violations["row"].astype(int)
    violations = violations.sort_values(["row", "rule"], kind="stable").reset_index(drop=True)
    bad = np.zeros(n, dtype=bool)
    bad[violations["row"].to_numpy()] = True
    still = ~bad[~bad_before]  # of the rows accepted before, those still accepted
    rejected = pd.concat([check.rejected, feed.data[bad & ~bad_before]]).sort_index()
    accepted = check.accepted[still].reset_index(drop=True)
    return TableValidation(check.table, accepted, rejected, violations, check.file_errors)


def _stack(frames: Sequence[pd.DataFrame | None]) -> pd.DataFrame:
    """Concatenate the non-empty frames (an empty frame when there are none)."""
    parts = [f for f in frames if f is not None and len(f)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def unused_mappings(paths: list[str | Path], feeds: list[Path]) -> list[str]:
    """A note per mapping file in a searched folder that belongs to no feed found there."""
    from difflib import get_close_matches

    names = {f.name for f in feeds}
    notes = []
    for folder in (Path(p) for p in paths):
        if not folder.is_dir():
            continue
        for m in sorted(folder.glob("*" + MAPPING_SUFFIX)):
            feed = m.name.removesuffix(MAPPING_SUFFIX)
            if feed in names and m.with_name(feed) in feeds:
                continue
            near = get_close_matches(feed, sorted(n for n in names if n), n=1)
            hint = f"; did you mean {near[0]}{MAPPING_SUFFIX}?" if near else ""
            notes.append(
                f"{m}: mapping file matches no feed (it must be named after its feed, "
                f"<feed file name>{MAPPING_SUFFIX}); it was not used{hint}"
            )
    return notes


def ingest(
    paths: list[str | Path],
    store: str | Path | Store,
    *,
    strict: bool = False,
    note: str = "",
    reason: str | None = None,
) -> IngestReport:
    """Validate feeds and add them to the store as one new snapshot.

    Parameters
    ----------
    paths
        Feed files and/or folders of feeds.
    store
        A store path (created if missing, unless nothing is accepted) or a
        :class:`~outcomes.data.store.Store` opened for writing.
    strict
        Fail without writing anything on any rejected file or row violation, an unused
        mapping file, or when there are no feeds at all.
    note
        Free text kept with the snapshot.
    reason
        Why stored rows are re-sent with other values: with it they are corrections (kept in
        the history with this reason); without it they are quarantined.

    Returns
    -------
    IngestReport
        Per-file results, corrected cells, quarantined rows, notes and the snapshot written.
    """
    feeds, skipped = discover_feeds(paths)
    unused = unused_mappings(paths, feeds)
    reason = reason.strip() if reason and reason.strip() else None
    run = partial(_ingest, feeds, skipped, strict=strict, note=note, reason=reason, unused=unused)
    if isinstance(store, Store):
        return run(store, store)
    path = Path(store)
    if path.exists():
        with Store(path) as st:
            return run(st, st)
    # a new store: validate against an empty one in memory; create the file only to write
    with Store(":memory:", create=True) as empty:
        return run(empty, path)


def _ingest(
    paths: list[Path],
    skipped: list[str],
    store: Store,
    target: Store | Path,
    *,
    strict: bool,
    note: str,
    reason: str | None,
    unused: list[str],
) -> IngestReport:
    d = store.dictionary
    results: list[FileResult] = []
    feeds: list[_Feed] = []
    notes = [f"skipped {s}" for s in skipped] + unused
    notes += store.dictionary_warnings()
    for path in track(paths, "reading feeds", unit="file"):
        try:
            prepared = prepare_feed(path, d)
        except InputError as err:
            results.append(FileResult(str(path), None, None, "rejected", message=str(err)))
            continue
        for feed in prepared:
            feeds.append(feed)
            notes += feed.notes
    order = list(d.tables)
    feeds.sort(key=lambda f: (order.index(f.table), str(f.path)))

    latest = store.latest()
    stored = {name: store.table(name) for name in order} if latest else {}
    withdrawn = Withdrawn.of(store) if latest else Withdrawn({}, {})
    batch: dict[str, list[pd.DataFrame]] = {name: [] for name in order}  # new and corrected
    accepted: dict[str, list[pd.DataFrame]] = {name: [] for name in order}
    corrected: dict[str, list[pd.DataFrame]] = {name: [] for name in order}
    history: list[pd.DataFrame] = []
    quarantine: list[pd.DataFrame] = []
    to_store: list[pd.DataFrame] = []
    seen: set[tuple[str, str, str]] = set()
    for feed in track(feeds, "checking rows", unit="row", size=lambda f: len(f.data)):
        identity = (feed.sha256, feed.table, feed.mapping_sha256)
        previous = store.file_outcome(*identity)
        if identity in seen or (previous is not None and previous[1] == 0):
            in_batch = identity in seen or previous is None
            where = "this ingest" if in_batch else f"snapshot {previous[0]}"  # type: ignore[index]
            results.append(
                FileResult(
                    str(feed.path),
                    feed.table,
                    feed.sha256,
                    "already_ingested",
                    len(feed.data),
                    len(feed.data),
                    message=f"identical file and mapping already in {where}, every row accepted",
                    rows_unchanged=len(feed.data),
                )
            )
            continue
        seen.add(identity)
        check = _check_feed(feed, d, stored, batch, withdrawn, reason)
        result, q = check.result, check.quarantine
        accepted[feed.table].append(check.new)
        batch[feed.table].append(check.new)
        if len(check.corrected):
            corrected[feed.table].append(check.corrected)
            batch[feed.table].append(check.corrected)
            stored[feed.table] = _without_keys(
                stored[feed.table], check.corrected, d.table(feed.table).primary_key
            )
            history.append(check.history)
        if len(q):
            quarantine.append(q)
        if (
            previous is not None
            and result.rows_accepted == result.rows_unchanged
            and result.rows_corrected == 0
            and (result.rows_quarantined == previous[1])
        ):
            # re-sent unchanged: its rows still fail as recorded; nothing new to write
            result.status = "already_ingested"
            result.message = (
                f"identical file and mapping already in snapshot {previous[0]}; its "
                f"{previous[1]} quarantined row(s) still fail (listed below)"
            )
        elif len(q):
            to_store.append(q)
        results.append(result)

    q_all = _stack(quarantine) if quarantine else pd.DataFrame(columns=QUARANTINE_COLUMNS)
    report = IngestReport(None, results, q_all, strict, notes, no_feeds=not paths)
    report.unused_mappings = unused
    if history:
        report.corrections = pd.concat(history, ignore_index=True)
    ingested = [r for r in results if r.status == "ingested"]
    if (strict and report.exit_code in (2, 5)) or not ingested:
        return report
    if not isinstance(target, Store) and not any(
        r.rows_accepted + r.rows_corrected for r in ingested
    ):
        report.notes.append(f"no row accepted: the store {target} was not created")
        return report
    files = pd.DataFrame(
        [
            (
                r.path,
                r.sha256,
                r.table,
                r.rows_in,
                r.rows_accepted,
                r.rows_quarantined,
                r.mapping_sha256,
                r.rows_unchanged,
                r.rows_corrected,
            )
            for r in ingested
        ],
        columns=[
            "path",
            "sha256",
            "table_name",
            "rows_in",
            "rows_accepted",
            "rows_quarantined",
            "mapping_sha256",
            "rows_unchanged",
            "rows_corrected",
        ],
    )
    tables = {name: _stack(parts) for name, parts in accepted.items() if parts}
    fixes = {name: _stack(parts) for name, parts in corrected.items() if parts}
    q_store = _stack(to_store) if to_store else pd.DataFrame(columns=QUARANTINE_COLUMNS)
    with contextlib.ExitStack() as stack:
        st = (
            target if isinstance(target, Store) else stack.enter_context(Store(target, create=True))
        )
        report.snapshot = st.add_snapshot(
            tables, files, q_store, note, corrections=fixes, history=report.corrections
        )
    return report


def _without_keys(df: pd.DataFrame, rows: pd.DataFrame, key: tuple[str, ...]) -> pd.DataFrame:
    """``df`` without the rows whose key ``rows`` holds."""
    cols = list(key)
    drop = set(row_texts(rows, cols))
    keep = [r not in drop for r in row_texts(df, cols)]
    return df[keep].reset_index(drop=True)


@dataclass
class _Checked:
    result: FileResult
    new: pd.DataFrame  # typed rows to add
    corrected: pd.DataFrame  # typed rows replacing stored ones
    history: pd.DataFrame  # one row per corrected cell
    quarantine: pd.DataFrame


def _check_feed(
    feed: _Feed,
    d: Dictionary,
    stored: dict[str, pd.DataFrame],
    batch: dict[str, list[pd.DataFrame]],
    withdrawn: Withdrawn,
    reason: str | None,
) -> _Checked:
    """Validate one feed against the store and this batch.

    A row whose key is already stored (or in this batch) is classified by
    :func:`~outcomes.data.corrections.classify_resent`: unchanged (accepted, not added again),
    a correction, or quarantined. Rows of withdrawn subjects are quarantined.
    """
    refs = {
        name: _stack([stored.get(name), *batch[name]]) for name in ("studies", "subjects", "units")
    }
    t = d.table(feed.table)
    gone, gone_violations = withdrawn.rows(feed.data, feed.table)
    keep = np.flatnonzero(~gone)
    check = validate_feed(_rows_of(feed, keep), refs, d)
    bad = check.violations["row"].to_numpy(dtype=int)
    violations = check.violations.assign(row=keep[bad])
    rejected = check.rejected.set_axis(keep[check.rejected.index.to_numpy(dtype=int)])
    typed = check.accepted.set_axis(keep[np.setdiff1d(np.arange(len(keep)), bad)])
    # valid rows whose key is stored or came earlier in this ingest: unchanged, corrected, held
    key = list(t.primary_key)
    earlier = _stack([stored.get(feed.table), *batch[feed.table]])
    known = set(row_texts(earlier, key)) if len(earlier) else set()
    again = np.array([k in known for k in row_texts(typed, key)], dtype=bool)
    resent = classify_resent(
        typed[again],
        t,
        stored.get(feed.table),
        _stack(batch[feed.table]),
        file=str(feed.path),
        reason=reason,
    )
    held = resent.violations["row"].to_numpy(dtype=int)
    violations = _stack([violations, resent.violations, gone_violations])
    if len(violations):
        violations = violations.sort_values(["row", "rule"], kind="stable").reset_index(drop=True)
        rejected = pd.concat(
            [rejected, feed.data.iloc[np.concatenate([held, np.flatnonzero(gone)])]]
        )
    n_in = len(feed.data)
    n_bad = violations["row"].nunique() if len(violations) else 0
    n_fixed = len(resent.corrected)
    result = FileResult(
        str(feed.path),
        feed.table,
        feed.sha256,
        "ingested",
        n_in,
        n_in - n_bad - n_fixed,
        n_bad,
        mapping_sha256=feed.mapping_sha256,
        rows_unchanged=len(resent.unchanged),
        rows_corrected=n_fixed,
    )
    q = _quarantine_rows(feed, violations, rejected) if len(violations) else pd.DataFrame()
    new_rows = typed[~again].reset_index(drop=True)
    return _Checked(result, new_rows, resent.corrected, resent.history, q)


def _quarantine_rows(feed: _Feed, violations: pd.DataFrame, rejected: pd.DataFrame) -> pd.DataFrame:
    """Violations in the store's quarantine shape, each with its original record.

    The record is the row as read, except values that looked like identifiers (removed).
    """
    positions = violations["row"].to_numpy()
    records = rejected.loc[positions]
    return pd.DataFrame(
        {
            "file": str(feed.path),
            "table_name": feed.table,
            "row": feed.rows[positions],
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
