"""The embedded store: a DuckDB file of append-only tables and immutable numbered snapshots.

Every ingest that adds or corrects anything, and every withdrawal, creates snapshot ``n + 1``.
Data rows carry the number of the snapshot that added them (``snapshot_id``) and the number of
the snapshot that removed them (``removed_in``: empty while current). Their values are never
changed and no row is deleted, so snapshot ``k`` is exactly the rows with ``snapshot_id <= k``
and ``removed_in`` empty or greater than ``k``: an analysis that pins a snapshot reads the same
data forever. A *correction* closes the stored row (``removed_in`` = the new snapshot) and adds
the corrected row in the new snapshot; a *withdrawal* (consent withdrawn) closes every row of the
subject. Stores written before corrections existed have no ``removed_in`` column: opening them
for writing adds it (empty, so every snapshot reads as before); read-only opening reads them as
they are.

Besides the dictionary's tables the store keeps:

``snapshots``
    one row per snapshot: time, dictionary hash and version, toolkit version, row counts.
``snapshot_files``
    each source file of a snapshot: path, SHA-256 of its bytes, table, SHA-256 of its mapping,
    rows in / accepted / quarantined, and of the accepted rows those already stored unchanged.
    A file's identity is its bytes, its mapping and its outcome: the same bytes under the
    same mapping with every row accepted are not read again; with quarantined rows they are
    (their parents may have arrived since).
``quarantine``
    every rejected row with file, row number, column, value, rule, message and the whole
    original record (JSON), so nothing is lost.
``history``
    one row per corrected cell (table, key, column, old value, new value, snapshot, source file,
    reason) and per row removed by a withdrawal (``change = "withdrawn"``, with the reason).

Reading never needs the write lock: ``Store(path, read_only=True)`` opens the file read-only,
so readers do not block each other; when another process holds the store open for writing (a
notebook), readers read a copy of its last committed state. A writer that finds the store
locked retries for :data:`LOCK_WAIT_SECONDS`, then says which process holds it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from outcomes.data.dictionary import Dictionary, load_dictionary
from outcomes.errors import InputError

__all__ = ["HISTORY_COLUMNS", "LOCK_WAIT_SECONDS", "Store", "key_text", "open_store"]

SQL_TYPES = {
    "string": "VARCHAR",
    "code": "VARCHAR",
    "instrument": "VARCHAR",
    "integer": "BIGINT",
    "number": "DOUBLE",
    "boolean": "BOOLEAN",
}
PANDAS_TYPES = {
    "VARCHAR": "string[pyarrow]",
    "BIGINT": "Int64",
    "DOUBLE": "Float64",
    "BOOLEAN": "boolean",
}
#: How long a writer waits for another process to release the store before giving up.
LOCK_WAIT_SECONDS = 5.0
HISTORY_COLUMNS = [
    "table_name",
    "key",
    "column_name",
    "old_value",
    "new_value",
    "change",
    "file",
    "reason",
]

META_DDL = """
CREATE TABLE IF NOT EXISTS snapshots (
    snapshot_id INTEGER PRIMARY KEY, created_at VARCHAR, dictionary_sha256 VARCHAR,
    dictionary_version VARCHAR, outcomes_version VARCHAR, rows_accepted BIGINT,
    rows_quarantined BIGINT, note VARCHAR);
ALTER TABLE snapshots ADD COLUMN IF NOT EXISTS rows_corrected BIGINT;
ALTER TABLE snapshots ADD COLUMN IF NOT EXISTS rows_removed BIGINT;
CREATE TABLE IF NOT EXISTS snapshot_files (
    snapshot_id INTEGER, path VARCHAR, sha256 VARCHAR, table_name VARCHAR, rows_in BIGINT,
    rows_accepted BIGINT, rows_quarantined BIGINT);
ALTER TABLE snapshot_files ADD COLUMN IF NOT EXISTS mapping_sha256 VARCHAR;
ALTER TABLE snapshot_files ADD COLUMN IF NOT EXISTS rows_unchanged BIGINT;
ALTER TABLE snapshot_files ADD COLUMN IF NOT EXISTS rows_corrected BIGINT;
CREATE TABLE IF NOT EXISTS quarantine (
    snapshot_id INTEGER, file VARCHAR, table_name VARCHAR, "row" BIGINT, column_name VARCHAR,
    value VARCHAR, rule VARCHAR, message VARCHAR, record VARCHAR);
CREATE TABLE IF NOT EXISTS history (
    snapshot_id INTEGER, table_name VARCHAR, "key" VARCHAR, column_name VARCHAR,
    old_value VARCHAR, new_value VARCHAR, change VARCHAR, file VARCHAR, reason VARCHAR);
"""


def key_text(values: Mapping[str, object]) -> str:
    """A row's key as the history records it: JSON of key column -> value as text."""
    return json.dumps({k: str(v) for k, v in values.items()}, ensure_ascii=False)


class Store:
    """A DuckDB store of snapshots.

    Parameters
    ----------
    path
        The DuckDB file; created when ``create`` is true and it does not exist.
    create
        Allow creating a new store.
    dictionary
        The data dictionary (default: the shipped one).
    read_only
        Open without the write lock (see the module docstring); nothing can be written.

    Examples
    --------
    >>> store = open_store("outcomes.duckdb")            # doctest: +SKIP
    >>> store.snapshots()                                # doctest: +SKIP
    >>> visits = store.table("assessments", snapshot=2)  # doctest: +SKIP
    >>> store.history(table="assessments")               # doctest: +SKIP
    """

    def __init__(
        self,
        path: str | Path,
        *,
        create: bool = False,
        dictionary: Dictionary | None = None,
        read_only: bool = False,
    ) -> None:
        self.path = Path(path)
        self.dictionary = dictionary or load_dictionary()
        self.read_only = read_only
        self.notes: list[str] = []
        self._copy: tempfile.TemporaryDirectory[str] | None = None
        memory = str(path) == ":memory:"
        if not memory:
            _check_store_file(self.path, create and not read_only)
        try:
            self.con = self._connect(memory)
        except InputError:
            self.close()  # drop a copy made before the failure
            raise
        try:
            if read_only:
                self._check_tables()
            else:
                self.con.execute(META_DDL)
                for table in self.dictionary.tables.values():
                    cols = ", ".join(
                        f'"{c.name}" {SQL_TYPES[c.type]}' for c in table.columns.values()
                    )
                    self.con.execute(
                        f'CREATE TABLE IF NOT EXISTS "{table.name}" '
                        f"(snapshot_id INTEGER, {cols}, removed_in INTEGER)"
                    )
                    self.con.execute(
                        f'ALTER TABLE "{table.name}" ADD COLUMN IF NOT EXISTS removed_in INTEGER'
                    )
        except duckdb.Error as err:
            self.close()
            raise InputError(
                f"{self.path}: the store is damaged or not an outcomes store ({err})"
            ) from None
        columns = self.con.execute(
            "SELECT table_name, column_name FROM duckdb_columns() WHERE database_name = "
            "current_database()"
        ).fetchall()
        self._has = {(str(t), str(c)) for t, c in columns}

    def _connect(self, memory: bool) -> duckdb.DuckDBPyConnection:
        """Open the connection: read-only, or for writing with a short wait for the lock."""
        if memory:
            return duckdb.connect(":memory:")
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=self.read_only)
            except duckdb.ConnectionException as err:
                if "different configuration" not in str(err):
                    raise InputError(
                        f"{self.path}: cannot open as a DuckDB store ({err})"
                    ) from None
                if self.read_only:  # this process holds it for writing: share that instance
                    return duckdb.connect(str(self.path))
                raise InputError(
                    f"{self.path}: this process holds the store open read-only (a notebook's "
                    "open_store); close it (store.close()) before writing"
                ) from None
            except (duckdb.Error, OSError) as err:
                holder = _lock_holder(err)
                if holder is None:
                    raise InputError(
                        f"{self.path}: cannot open as a DuckDB store ({err})"
                    ) from None
                if self.read_only:
                    return self._connect_copy(holder)
                if time.monotonic() >= deadline:
                    raise InputError(
                        f"{self.path}: the store is in use by another process ({holder}); "
                        f"waited {LOCK_WAIT_SECONDS:g} s. Close it there (store.close() in a "
                        "notebook) and try again"
                    ) from None
                time.sleep(0.2)

    def _connect_copy(self, holder: str) -> duckdb.DuckDBPyConnection:
        """Read a copy of a store another process holds for writing (its committed state)."""
        self._copy = tempfile.TemporaryDirectory(prefix="outcomes-store-")
        copy = Path(self._copy.name) / "store.duckdb"
        wal = self.path.with_name(self.path.name + ".wal")
        for _ in range(20):  # retry while the writer is changing the files
            before = [
                (f.stat().st_size, f.stat().st_mtime_ns) for f in (self.path, wal) if f.exists()
            ]
            shutil.copyfile(self.path, copy)
            copy.with_name("store.duckdb.wal").unlink(missing_ok=True)
            if wal.exists():
                shutil.copyfile(wal, copy.with_name("store.duckdb.wal"))
            after = [
                (f.stat().st_size, f.stat().st_mtime_ns) for f in (self.path, wal) if f.exists()
            ]
            if before == after:
                break
            time.sleep(0.1)
        self.notes.append(
            f"{self.path} is open for writing in another process ({holder}); read its last "
            "committed state from a copy"
        )
        try:
            return duckdb.connect(str(copy), read_only=True)
        except duckdb.Error as err:
            raise InputError(
                f"{self.path}: in use by another process ({holder}) and its copy cannot be read "
                f"({err}); try again when it is closed"
            ) from None

    def _check_tables(self) -> None:
        names = {
            r[0] for r in self.con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        }
        needed = {"snapshots", "snapshot_files", "quarantine", *self.dictionary.tables}
        if not needed <= names:
            raise duckdb.CatalogException(f"missing table(s) {sorted(needed - names)}")

    def close(self) -> None:
        """Close the connection (and drop the copy a read-only open may have made)."""
        with contextlib.suppress(AttributeError):
            self.con.close()
        if self._copy is not None:
            self._copy.cleanup()
            self._copy = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def snapshots(self) -> pd.DataFrame:
        """All snapshots, oldest first."""
        return self.con.execute("SELECT * FROM snapshots ORDER BY snapshot_id").df()

    def latest(self) -> int | None:
        """The newest snapshot number, or None for an empty store."""
        row = self.con.execute("SELECT max(snapshot_id) FROM snapshots").fetchone()
        return None if row is None else row[0]

    def _resolve(self, snapshot: int | None) -> int:
        latest = self.latest()
        if latest is None:
            raise InputError(f"{self.path}: the store has no snapshots yet")
        if snapshot is None:
            return latest
        if not 1 <= int(snapshot) <= latest:
            raise InputError(f"{self.path}: no snapshot {snapshot} (snapshots are 1 to {latest})")
        return int(snapshot)

    def _live(self, name: str) -> str:
        """SQL condition: a row of ``name`` is part of snapshot ``?`` (two parameters)."""
        if (name, "removed_in") in self._has:
            return "snapshot_id <= ? AND (removed_in IS NULL OR removed_in > ?)"
        return "snapshot_id <= ? AND ? IS NOT NULL"  # a store written before corrections

    def table(self, name: str, snapshot: int | None = None) -> pd.DataFrame:
        """One table as of a snapshot (default: the latest), in a stable row order.

        Parameters
        ----------
        name
            A dictionary table name, e.g. ``"assessments"``.
        snapshot
            The snapshot to read; rows added later are not included, rows corrected or
            withdrawn later are.

        Returns
        -------
        pandas.DataFrame
            The dictionary's columns with pandas nullable types, sorted by primary key.
        """
        t = self.dictionary.table(name)
        snap = self._resolve(snapshot)
        cols = ", ".join(f'"{c}"' for c in t.columns)
        order = ", ".join(f'"{c}"' for c in t.primary_key)
        df = self.con.execute(
            f'SELECT {cols} FROM "{name}" WHERE {self._live(name)} ORDER BY {order}', [snap, snap]
        ).df()
        return df.astype({c.name: PANDAS_TYPES[SQL_TYPES[c.type]] for c in t.columns.values()})

    def tables(self, snapshot: int | None = None) -> dict[str, pd.DataFrame]:
        """Every dictionary table as of a snapshot."""
        return {name: self.table(name, snapshot) for name in self.dictionary.tables}

    def all_rows(self, name: str) -> pd.DataFrame:
        """Every row a table ever held (current, corrected and withdrawn), oldest first."""
        t = self.dictionary.table(name)
        cols = ", ".join(f'"{c}"' for c in t.columns)
        removed = "removed_in" if (name, "removed_in") in self._has else "NULL AS removed_in"
        return self.con.execute(
            f'SELECT snapshot_id, {removed}, {cols} FROM "{name}" ORDER BY snapshot_id'
        ).df()

    def quarantine(self, snapshot: int | None = None) -> pd.DataFrame:
        """Rejected rows with their reasons (all snapshots, or one)."""
        where, args = ("WHERE snapshot_id = ?", [snapshot]) if snapshot is not None else ("", [])
        return self.con.execute(
            f'SELECT * FROM quarantine {where} ORDER BY snapshot_id, file, "row", rule', args
        ).df()

    def history(
        self,
        table: str | None = None,
        key: Sequence[str] | Mapping[str, str] | None = None,
    ) -> pd.DataFrame:
        """Corrections and withdrawals, oldest first: one row per corrected cell or removed row.

        Parameters
        ----------
        table
            Only this table's changes.
        key
            Only rows whose key matches: values in the table's key order (``["T1", "S1"]``
            matches every key starting with them) or ``{column: value}``.

        Returns
        -------
        pandas.DataFrame
            snapshot_id, table_name, key (JSON of key column -> value), column_name,
            old_value, new_value, change ("corrected" or "withdrawn"), file, reason.
        """
        if table is not None:
            self.dictionary.table(table)  # an unknown name is an InputError
        if ("history", "key") not in self._has:  # a store written before corrections
            return pd.DataFrame(columns=["snapshot_id", *HISTORY_COLUMNS])
        where, args = ("WHERE table_name = ?", [table]) if table is not None else ("", [])
        df = self.con.execute(
            f'SELECT * FROM history {where} ORDER BY snapshot_id, table_name, "key", column_name',
            args,
        ).df()
        if key:
            keys = df["key"].map(json.loads)
            if isinstance(key, Mapping):
                hit = keys.map(lambda k: all(k.get(c) == str(v) for c, v in key.items()))
            else:
                want = [str(v) for v in key]
                hit = keys.map(lambda k: list(k.values())[: len(want)] == want)
            df = df[hit.astype(bool)].reset_index(drop=True)
        return df

    def withdrawn(self) -> pd.DataFrame:
        """Withdrawn subjects: study_id, subject_id, snapshot_id, reason."""
        h = self.history(table="subjects")
        h = h[h["change"] == "withdrawn"]
        keys = pd.DataFrame(list(h["key"].map(json.loads)), columns=["study_id", "subject_id"])
        keys["snapshot_id"] = h["snapshot_id"].to_numpy()
        keys["reason"] = h["reason"].to_numpy()
        return keys

    def files(self) -> pd.DataFrame:
        """Source files of every snapshot."""
        return self.con.execute("SELECT * FROM snapshot_files ORDER BY snapshot_id, path").df()

    def file_outcome(self, sha256: str, table: str, mapping_sha256: str) -> tuple[int, int] | None:
        """(snapshot, rows quarantined) of the latest ingest of these bytes under this mapping
        and the current dictionary."""
        row = self.con.execute(
            "SELECT f.snapshot_id, f.rows_quarantined FROM snapshot_files f JOIN snapshots s "
            "USING (snapshot_id) WHERE f.sha256 = ? AND f.table_name = ? AND "
            "f.mapping_sha256 = ? AND s.dictionary_sha256 = ? ORDER BY f.snapshot_id DESC LIMIT 1",
            [sha256, table, mapping_sha256, self.dictionary.sha256],
        ).fetchone()
        return None if row is None else (int(row[0]), int(row[1]))

    def dictionary_warnings(self) -> list[str]:
        """A warning per other dictionary (not the current one) that snapshots were made under."""
        rows = self.con.execute(
            "SELECT dictionary_version, dictionary_sha256, min(snapshot_id), max(snapshot_id) "
            "FROM snapshots WHERE dictionary_sha256 <> ? GROUP BY 1, 2 ORDER BY 3",
            [self.dictionary.sha256],
        ).fetchall()
        return [
            f"warning: snapshots {a}-{b} of {self.path} were made under data dictionary "
            f"version {v} (sha256 {h[:12]}), not the current {self.dictionary.version} "
            f"(sha256 {self.dictionary.sha256[:12]}); rows are checked by the current one"
            for v, h, a, b in rows
        ]

    def integrity_problems(self) -> list[str]:
        """Bookkeeping the store's tables contradict: rows or quarantine entries removed or added.

        For each snapshot the data rows it added must number the accepted rows recorded (minus
        those already stored) plus the corrected ones; the rows it removed must number the keys
        its history names; and the quarantine must name as many distinct rows as recorded.
        """
        problems = []
        corrected = (
            "coalesce(f.rows_corrected, 0)"
            if ("snapshot_files", "rows_corrected") in (self._has)
            else "0"
        )
        recorded = self.con.execute(
            "SELECT s.snapshot_id, coalesce(sum(f.rows_accepted - coalesce(f.rows_unchanged, 0) "
            f"+ {corrected}), 0), coalesce(sum(f.rows_quarantined), 0) FROM snapshots s "
            "LEFT JOIN snapshot_files f USING (snapshot_id) GROUP BY 1 ORDER BY 1"
        ).fetchall()
        union = " UNION ALL ".join(
            f'SELECT snapshot_id FROM "{name}"' for name in self.dictionary.tables
        )
        data = dict(
            self.con.execute(f"SELECT snapshot_id, count(*) FROM ({union}) GROUP BY 1").fetchall()
        )
        quarantined = dict(
            self.con.execute(
                'SELECT snapshot_id, count(DISTINCT (file, "row")) FROM quarantine GROUP BY 1'
            ).fetchall()
        )
        removed: dict[int, int] = {}
        changed: dict[int, int] = {}
        if ("history", "key") in self._has:
            union = " UNION ALL ".join(
                f'SELECT removed_in FROM "{name}" WHERE removed_in IS NOT NULL'
                for name in self.dictionary.tables
            )
            removed = dict(
                self.con.execute(
                    f"SELECT removed_in, count(*) FROM ({union}) GROUP BY 1"
                ).fetchall()
            )
            changed = dict(
                self.con.execute(
                    'SELECT snapshot_id, count(DISTINCT (table_name, "key")) FROM history '
                    "GROUP BY 1"
                ).fetchall()
            )
        for snap, n_accepted, n_quarantined in recorded:
            if data.get(snap, 0) != n_accepted:
                problems.append(
                    f"{self.path}: snapshot {snap} records {n_accepted} accepted row(s) but "
                    f"the tables hold {data.get(snap, 0)}"
                )
            if quarantined.get(snap, 0) != n_quarantined:
                problems.append(
                    f"{self.path}: snapshot {snap} records {n_quarantined} quarantined row(s) "
                    f"but the quarantine holds {quarantined.get(snap, 0)}"
                )
            if removed.get(snap, 0) != changed.get(snap, 0):
                problems.append(
                    f"{self.path}: snapshot {snap} removed {removed.get(snap, 0)} row(s) but "
                    f"its history names {changed.get(snap, 0)}"
                )
        return problems

    def content_hash(self, name: str, snapshot: int | None = None) -> str:
        """SHA-256 of a table's content as of a snapshot (stable row order, typed values).

        Two stores holding the same rows give the same hash whatever the ingest history.
        """
        df = self.table(name, snapshot)
        return hashlib.sha256(df.to_csv(index=False, lineterminator="\n").encode()).hexdigest()

    def add_snapshot(
        self,
        accepted: dict[str, pd.DataFrame],
        files: pd.DataFrame,
        quarantine: pd.DataFrame,
        note: str = "",
        *,
        corrections: Mapping[str, pd.DataFrame] | None = None,
        history: pd.DataFrame | None = None,
    ) -> int:
        """Write one new snapshot atomically and return its number.

        Parameters
        ----------
        accepted
            Typed new rows per table, with the dictionary's columns.
        files
            One row per source file (path, sha256, table_name, rows_in, rows_accepted,
            rows_quarantined, mapping_sha256, rows_unchanged, rows_corrected).
        quarantine
            One row per violation (file, table_name, row, column_name, value, rule, message,
            record).
        note
            Free text kept with the snapshot.
        corrections
            Typed corrected rows per table: each replaces the current row with its key.
        history
            One row per corrected cell (:data:`HISTORY_COLUMNS`).
        """
        corrections = corrections or {}
        snap = (self.latest() or 0) + 1

        def write() -> tuple[int, int, int, int]:
            for name, df in corrections.items():
                if len(df):
                    closed = self._close(
                        name, df[list(self.dictionary.table(name).primary_key)], snap
                    )
                    if closed != len(df):
                        raise InputError(
                            f"{self.path}: {len(df)} correction(s) of {name} matched {closed} "
                            "current row(s); nothing written"
                        )
            for name, df in [*accepted.items(), *corrections.items()]:
                if len(df):
                    cols = list(self.dictionary.table(name).columns)
                    self._insert(name, df[cols], snap)
            for meta, df in (("snapshot_files", files), ("quarantine", quarantine)):
                if len(df):
                    self._insert(meta, df, snap)
            if history is not None and len(history):
                self._insert("history", history[HISTORY_COLUMNS], snap)
            n_corrected = sum(len(df) for df in corrections.values())
            n_accepted, n_quarantined = (
                files["rows_accepted"].sum(),
                files["rows_quarantined"].sum(),
            )
            return int(n_accepted), int(n_quarantined), n_corrected, 0

        return self._transaction(snap, note, write)

    def withdraw(self, subject_id: str, reason: str, *, study_id: str | None = None) -> int:
        """Remove a subject who withdrew consent from every later snapshot; return its number.

        The subject's rows in every table (its units and, through them, sessions and
        assessments; its adverse events) leave the data as of a new snapshot, each recorded
        in the history with the reason. Earlier snapshots still hold them.

        Parameters
        ----------
        subject_id
            The subject.
        reason
            Why (kept in the history), e.g. ``"consent withdrawn 2026-03-02"``.
        study_id
            The subject's study; may be left out when only one study has this subject.
        """
        if not reason or not reason.strip():
            raise InputError("a withdrawal needs a reason (--reason TEXT)")
        latest = self._resolve(None)
        subjects = self.table("subjects", latest)
        hit = subjects["subject_id"] == subject_id
        if study_id is None and hit.sum() > 1:
            studies = ", ".join(sorted(subjects.loc[hit, "study_id"]))
            raise InputError(
                f"{self.path}: subject {subject_id!r} is in several studies ({studies}); "
                "name the study (--study)"
            )
        if study_id is None and hit.sum() == 1:
            study_id = str(subjects.loc[hit, "study_id"].iloc[0])
        hit &= subjects["study_id"] == study_id
        if not hit.any():
            done = self.withdrawn()
            done = done[done["subject_id"] == subject_id]
            if study_id is not None:
                done = done[done["study_id"] == study_id]
            if len(done):
                raise InputError(
                    f"{self.path}: subject {subject_id} of study {done['study_id'].iloc[0]} was "
                    f"already withdrawn in snapshot {int(done['snapshot_id'].iloc[0])}"
                )
            where = f" in study {study_id!r}" if study_id else ""
            raise InputError(f"{self.path}: no subject {subject_id!r}{where} in snapshot {latest}")
        snap = latest + 1
        units = self.con.execute(
            "SELECT DISTINCT unit_id FROM units WHERE study_id = ? AND subject_id = ?",
            [study_id, subject_id],
        ).fetchall()

        def write() -> tuple[int, int, int, int]:
            n_removed = 0
            for name, t in self.dictionary.tables.items():
                if "subject_id" in t.columns:
                    rows = pd.DataFrame({"study_id": [study_id], "subject_id": [subject_id]})
                elif "unit_id" in t.columns:
                    rows = pd.DataFrame(
                        {"study_id": study_id, "unit_id": [u for (u,) in units]}, dtype=object
                    )
                else:
                    continue
                keys = self._current_keys(name, rows)
                if not len(keys):
                    continue
                n_removed += self._close(name, rows, snap)
                history = pd.DataFrame(
                    {
                        "table_name": name,
                        "key": [
                            key_text(dict(zip(keys.columns, r, strict=True)))
                            for r in keys.to_numpy()
                        ],
                        "column_name": None,
                        "old_value": None,
                        "new_value": None,
                        "change": "withdrawn",
                        "file": None,
                        "reason": reason.strip(),
                    }
                )
                self._insert("history", history, snap)
            return 0, 0, 0, n_removed

        note = f"withdrawal of subject {subject_id} of study {study_id}: {reason.strip()}"
        return self._transaction(snap, note, write)

    def _current_keys(self, name: str, match: pd.DataFrame) -> pd.DataFrame:
        """Primary keys of the current rows of ``name`` matching ``match`` on its columns."""
        pk = self.dictionary.table(name).primary_key
        on = " AND ".join(f't."{c}" = m."{c}"' for c in match.columns)
        self.con.register("match_rows", match)
        try:
            cols = ", ".join(f't."{c}"' for c in pk)
            return self.con.execute(
                f'SELECT DISTINCT {cols} FROM "{name}" t JOIN match_rows m ON {on} '
                f"WHERE t.removed_in IS NULL ORDER BY {cols}"
            ).df()
        finally:
            with contextlib.suppress(duckdb.Error):  # keep the first error of a failed write
                self.con.unregister("match_rows")

    def _close(self, name: str, match: pd.DataFrame, snap: int) -> int:
        """Mark the current rows of ``name`` equal to a row of ``match`` (on its columns) as
        removed in ``snap``; return how many."""
        on = " AND ".join(f'"{name}"."{c}" = m."{c}"' for c in match.columns)
        self.con.register("match_rows", match.drop_duplicates())
        try:
            row = self.con.execute(
                f'UPDATE "{name}" SET removed_in = ? FROM match_rows m WHERE {on} AND '
                f'"{name}".removed_in IS NULL',
                [snap],
            ).fetchone()
        finally:
            with contextlib.suppress(duckdb.Error):  # keep the first error of a failed write
                self.con.unregister("match_rows")
        return int(row[0]) if row else 0

    def _insert(self, table: str, df: pd.DataFrame, snap: int) -> None:
        frame = df.copy()
        frame.insert(0, "snapshot_id", snap)
        self.con.register("incoming", frame)
        try:
            col_sql = ", ".join(f'"{c}"' for c in frame.columns)
            self.con.execute(f'INSERT INTO "{table}" ({col_sql}) SELECT {col_sql} FROM incoming')
        finally:
            with contextlib.suppress(duckdb.Error):  # keep the first error of a failed write
                self.con.unregister("incoming")

    def _transaction(
        self, snap: int, note: str, write: Callable[[], tuple[int, int, int, int]]
    ) -> int:
        """Run ``write`` (returning accepted, quarantined, corrected, removed row counts) and
        record snapshot ``snap``, all or nothing."""
        from outcomes import __version__

        if self.read_only:
            raise InputError(
                f"{self.path}: opened read-only; open it for writing "
                "(open_store(path, write=True)) to add a snapshot"
            )
        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            n_accepted, n_quarantined, n_corrected, n_removed = write()
            d = self.dictionary
            con.execute(
                "INSERT INTO snapshots (snapshot_id, created_at, dictionary_sha256, "
                "dictionary_version, outcomes_version, rows_accepted, rows_quarantined, note, "
                "rows_corrected, rows_removed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    snap,
                    datetime.now(UTC).isoformat(timespec="seconds"),
                    d.sha256,
                    d.version,
                    __version__,
                    n_accepted,
                    n_quarantined,
                    note,
                    n_corrected,
                    n_removed,
                ],
            )
            con.execute("COMMIT")
        except InputError:
            con.execute("ROLLBACK")
            raise
        except (duckdb.Error, OSError) as err:
            with contextlib.suppress(duckdb.Error):  # the cause to report is the write's
                con.execute("ROLLBACK")
            raise InputError(f"{self.path}: cannot write snapshot {snap} ({err})") from None
        return snap


def _lock_holder(err: Exception) -> str | None:
    """The process holding a store's lock, from DuckDB's message; None if not a lock error."""
    text = str(err)
    if "Could not set lock" not in text and "Conflicting lock" not in text:
        return None
    pid = re.search(r"PID (\d+)", text)
    return f"PID {pid.group(1)}" if pid else "another process"


DUCKDB_MAGIC = b"DUCK"  # bytes 8-11 of every DuckDB database file


def _check_store_file(path: Path, create: bool) -> None:
    """Refuse a path that is not a DuckDB database (or is missing, unless creating)."""
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a store file")
    if not path.exists():
        if not create:
            raise InputError(f"{path}: no such store (run `outcomes ingest` to create it)")
        if not path.parent.is_dir():
            raise InputError(f"{path}: folder {path.parent} does not exist")
        return
    try:
        with path.open("rb") as f:
            head = f.read(12)
    except OSError as err:
        raise InputError(f"{path}: cannot be read ({err.strerror or err})") from None
    if head[8:12] != DUCKDB_MAGIC:
        raise InputError(
            f"{path}: is not a DuckDB store (an existing file of another kind); give a new "
            "file name or an existing store"
        )


def open_store(path: str | Path, *, create: bool = False, write: bool = False) -> Store:
    """Open a store (see :class:`Store`): read-only unless ``create`` or ``write``.

    Read-only is the notebook's way: it never blocks other readers, and a writer
    (``outcomes ingest``) waits for it only briefly before saying so.
    """
    return Store(path, create=create, read_only=not (create or write))
