"""The embedded store: a DuckDB file of append-only tables and immutable numbered snapshots.

Every ingest that adds anything creates snapshot ``n + 1``. Data rows carry the number of the
snapshot that added them and are never changed or deleted, so snapshot ``k`` is exactly the
rows with ``snapshot_id <= k``: an analysis that pins a snapshot reads the same data forever.

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
"""

from __future__ import annotations

import contextlib
import hashlib
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from outcomes.data.dictionary import Dictionary, load_dictionary
from outcomes.errors import InputError

__all__ = ["Store", "open_store"]

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

META_DDL = """
CREATE TABLE IF NOT EXISTS snapshots (
    snapshot_id INTEGER PRIMARY KEY, created_at VARCHAR, dictionary_sha256 VARCHAR,
    dictionary_version VARCHAR, outcomes_version VARCHAR, rows_accepted BIGINT,
    rows_quarantined BIGINT, note VARCHAR);
CREATE TABLE IF NOT EXISTS snapshot_files (
    snapshot_id INTEGER, path VARCHAR, sha256 VARCHAR, table_name VARCHAR, rows_in BIGINT,
    rows_accepted BIGINT, rows_quarantined BIGINT);
ALTER TABLE snapshot_files ADD COLUMN IF NOT EXISTS mapping_sha256 VARCHAR;
ALTER TABLE snapshot_files ADD COLUMN IF NOT EXISTS rows_unchanged BIGINT;
CREATE TABLE IF NOT EXISTS quarantine (
    snapshot_id INTEGER, file VARCHAR, table_name VARCHAR, "row" BIGINT, column_name VARCHAR,
    value VARCHAR, rule VARCHAR, message VARCHAR, record VARCHAR);
"""


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

    Examples
    --------
    >>> store = open_store("outcomes.duckdb")            # doctest: +SKIP
    >>> store.snapshots()                                # doctest: +SKIP
    >>> visits = store.table("assessments", snapshot=2)  # doctest: +SKIP
    """

    def __init__(
        self, path: str | Path, *, create: bool = False, dictionary: Dictionary | None = None
    ) -> None:
        self.path = Path(path)
        self.dictionary = dictionary or load_dictionary()
        memory = str(path) == ":memory:"
        if not memory:
            _check_store_file(self.path, create)
        try:
            self.con = duckdb.connect(str(path))
        except (duckdb.Error, OSError) as err:
            raise InputError(f"{self.path}: cannot open as a DuckDB store ({err})") from None
        try:
            self.con.execute(META_DDL)
            for table in self.dictionary.tables.values():
                cols = ", ".join(f'"{c.name}" {SQL_TYPES[c.type]}' for c in table.columns.values())
                self.con.execute(
                    f'CREATE TABLE IF NOT EXISTS "{table.name}" (snapshot_id INTEGER, {cols})'
                )
        except duckdb.Error as err:
            self.con.close()
            raise InputError(
                f"{self.path}: the store is damaged or not an outcomes store ({err})"
            ) from None

    def close(self) -> None:
        """Close the connection."""
        self.con.close()

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

    def table(self, name: str, snapshot: int | None = None) -> pd.DataFrame:
        """One table as of a snapshot (default: the latest), in a stable row order.

        Parameters
        ----------
        name
            A dictionary table name, e.g. ``"assessments"``.
        snapshot
            The snapshot to read; rows added later are not included.

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
            f'SELECT {cols} FROM "{name}" WHERE snapshot_id <= ? ORDER BY {order}', [snap]
        ).df()
        return df.astype({c.name: PANDAS_TYPES[SQL_TYPES[c.type]] for c in t.columns.values()})

    def tables(self, snapshot: int | None = None) -> dict[str, pd.DataFrame]:
        """Every dictionary table as of a snapshot."""
        return {name: self.table(name, snapshot) for name in self.dictionary.tables}

    def quarantine(self, snapshot: int | None = None) -> pd.DataFrame:
        """Rejected rows with their reasons (all snapshots, or one)."""
        where, args = ("WHERE snapshot_id = ?", [snapshot]) if snapshot is not None else ("", [])
        return self.con.execute(
            f'SELECT * FROM quarantine {where} ORDER BY snapshot_id, file, "row", rule', args
        ).df()

    def files(self) -> pd.DataFrame:
        """Source files of every snapshot."""
        return self.con.execute("SELECT * FROM snapshot_files ORDER BY snapshot_id, path").df()

    def file_outcome(self, sha256: str, table: str, mapping_sha256: str) -> tuple[int, int] | None:
        """(snapshot, rows quarantined) of the latest ingest of these bytes under this mapping."""
        row = self.con.execute(
            "SELECT snapshot_id, rows_quarantined FROM snapshot_files WHERE sha256 = ? AND "
            "table_name = ? AND mapping_sha256 = ? ORDER BY snapshot_id DESC LIMIT 1",
            [sha256, table, mapping_sha256],
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

        For each snapshot the data rows must number the accepted rows recorded (minus those
        already stored), and the quarantine must name as many distinct rows as recorded.
        """
        problems = []
        recorded = self.con.execute(
            "SELECT snapshot_id, sum(rows_accepted - coalesce(rows_unchanged, 0)), "
            "sum(rows_quarantined) FROM snapshot_files GROUP BY 1 ORDER BY 1"
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
    ) -> int:
        """Write one new snapshot atomically and return its number.

        Parameters
        ----------
        accepted
            Typed rows per table, with the dictionary's columns.
        files
            One row per source file (path, sha256, table_name, rows_in, rows_accepted,
            rows_quarantined).
        quarantine
            One row per violation (file, table_name, row, column_name, value, rule, message,
            record).
        note
            Free text kept with the snapshot.
        """
        from outcomes import __version__

        snap = (self.latest() or 0) + 1
        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            for name, df in accepted.items():
                if df.empty:
                    continue
                cols = list(self.dictionary.table(name).columns)
                frame = df[cols].copy()
                frame.insert(0, "snapshot_id", snap)
                con.register("incoming", frame)
                col_sql = ", ".join(f'"{c}"' for c in ["snapshot_id", *cols])
                con.execute(f'INSERT INTO "{name}" ({col_sql}) SELECT {col_sql} FROM incoming')
                con.unregister("incoming")
            for meta, df in (("snapshot_files", files), ("quarantine", quarantine)):
                if len(df):
                    frame = df.copy()
                    frame.insert(0, "snapshot_id", snap)
                    con.register("incoming", frame)
                    col_sql = ", ".join(f'"{c}"' for c in frame.columns)
                    con.execute(f"INSERT INTO {meta} ({col_sql}) SELECT {col_sql} FROM incoming")
                    con.unregister("incoming")
            d = self.dictionary
            con.execute(
                "INSERT INTO snapshots VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    snap,
                    datetime.now(UTC).isoformat(timespec="seconds"),
                    d.sha256,
                    d.version,
                    __version__,
                    int(files["rows_accepted"].sum()),
                    int(files["rows_quarantined"].sum()),
                    note,
                ],
            )
            con.execute("COMMIT")
        except (duckdb.Error, OSError) as err:
            with contextlib.suppress(duckdb.Error):  # the cause to report is the write's
                con.execute("ROLLBACK")
            raise InputError(f"{self.path}: cannot write snapshot {snap} ({err})") from None
        return snap


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


def open_store(path: str | Path, *, create: bool = False) -> Store:
    """Open a store (see :class:`Store`)."""
    return Store(path, create=create)
