"""Property: random corruption of a valid feed never crashes ingest, never loses a row, never
alters a stored value, never stores an identifier, and every CSV the toolkit writes from it is
free of formula prefixes (hostile values: leading-zero IDs, identifiers, formulas, control
characters)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from outcomes.data.dictionary import load_dictionary
from outcomes.data.ingest import ingest
from outcomes.data.safety import FORMULA_START, neutralise
from outcomes.data.store import Store

DATA = Path(__file__).parent / "data"
TABLES = ["subjects", "units", "sessions", "assessments", "adverse_events"]
NASTY = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        [
            "",
            " ",
            "NA",
            "null",
            "-1",
            "1e309",
            "nan",
            "3.5",
            "0",
            "true",
            "x,y",
            '"',
            "\n",
            "\u00e9",
            "99999999999999999999",
            "S1",
            "T1",
            "S1-L",
            "0001",
            "007",
            "00",
            "12345678901234567890",
        ]
    ),
    st.sampled_from(["=1+2", "+1", "-x", "@SUM(A1)", "\t=x", "\r=x", "=cmd|' /C calc'!A0"]),
    st.sampled_from(["\x1b[31m", "a\x1b]0;t\x07", "\u202eevil", "\x00", "x\x08y"]),
)
IDENTIFIERS = [
    "jane.doe@example.org",
    "+44 20 7946 0958",
    "078-05-1120",
    "AB 12 34 56 C",
    "Dr Mueller",
    "(555) 123-4567",
]
VALUES = st.one_of(
    NASTY,
    st.sampled_from(IDENTIFIERS),
    st.tuples(st.sampled_from(["note ", "", "x "]), st.sampled_from(IDENTIFIERS)).map("".join),
)


@st.composite
def corruptions(draw: st.DrawFn) -> tuple[str, list[tuple[int, str, str]], list[int]]:
    table = draw(st.sampled_from(TABLES))
    frame = pd.read_csv(DATA / "valid" / f"{table}.csv", dtype=str, keep_default_na=False)
    edits = draw(
        st.lists(
            st.tuples(st.integers(0, len(frame) - 1), st.sampled_from(list(frame.columns)), VALUES),
            min_size=1,
            max_size=6,
        )
    )
    duplicates = draw(st.lists(st.integers(0, len(frame) - 1), max_size=2))
    return table, edits, duplicates


TEMPLATES: dict[str, Path] = {}


def store_without(table: str) -> Path:
    """A store template holding every valid table that ingests before ``table``."""
    if table not in TEMPLATES:
        folder = Path(tempfile.mkdtemp())
        before = TABLES[: TABLES.index(table)]
        ingest([DATA / "valid" / f"{t}.csv" for t in ["studies", *before]], folder / "s.duckdb")
        TEMPLATES[table] = folder / "s.duckdb"
    return TEMPLATES[table]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corruptions())
def test_corrupted_feed_never_crashes_or_loses_rows(case: tuple) -> None:
    table, edits, duplicates = case
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "s.duckdb"
        shutil.copy(store_without(table), store)
        frame = pd.read_csv(DATA / "valid" / f"{table}.csv", dtype=str, keep_default_na=False)
        for row, column, value in edits:
            frame.loc[row, column] = value
        frame = pd.concat([frame, frame.iloc[duplicates]], ignore_index=True)
        feed = Path(tmp) / f"{table}.csv"
        frame.to_csv(feed, index=False)
        report = ingest([feed], store)
        assert report.exit_code in (0, 3, 4)
        identifiers = [v for _, _, v in edits if any(i in v for i in IDENTIFIERS)]
        for f in report.files:
            if f.status == "ingested":
                assert f.rows_accepted + f.rows_quarantined == f.rows_in
        [f] = report.files
        if report.snapshot is not None:
            with Store(store) as st:
                stored = len(st.table(table, report.snapshot)) - len(
                    st.table(table, report.snapshot - 1)
                )
                n_q = st.quarantine(report.snapshot)["row"].nunique()
                assert stored + n_q == f.rows_in == len(frame)
                data = st.table(table)
                quarantine = st.quarantine()
            # nothing altered: every stored text value is one the feed holds, as written
            written = {str(v).strip() for v in frame.to_numpy().ravel()}
            for name, col in load_dictionary().table(table).columns.items():
                if col.type == "string":
                    assert set(data[name].dropna()) <= written, name
            # nothing let in: no identifier in the tables, the quarantine or the report
            kept = data.to_csv() + quarantine.to_csv() + report.summary()
            assert not any(i in kept for v in identifiers for i in IDENTIFIERS if i in v)
            # nothing a spreadsheet would run in the CSV the toolkit writes
            for frame_out in (neutralise(data), neutralise(quarantine)):
                for name in frame_out.columns:
                    cells = frame_out[name].dropna()
                    assert not any(
                        isinstance(c, str) and c.startswith(FORMULA_START) for c in cells
                    )


FULL: dict[str, object] = {}


def full_store() -> tuple[Path, dict[str, str]]:
    """A store template holding every valid table, with each table's snapshot-1 hash."""
    if not FULL:
        folder = Path(tempfile.mkdtemp())
        ingest([DATA / "valid"], folder / "s.duckdb")
        with Store(folder / "s.duckdb", read_only=True) as st:
            FULL["hashes"] = {t: st.content_hash(t, 1) for t in st.dictionary.tables}
        FULL["path"] = folder / "s.duckdb"
    return FULL["path"], FULL["hashes"]  # type: ignore[return-value]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corruptions(), st.booleans(), st.lists(st.tuples(*[st.integers(0, 99)] * 3), max_size=4))
def test_resent_feed_keeps_accepted_quarantined_corrected_equal_to_rows_in(
    case: tuple, with_reason: bool, swaps: list[tuple[int, int, int]]
) -> None:
    """Re-sending a stored table with random changes (hostile values, and plausible ones: a
    value of the same column from another row): every row is accepted (new or unchanged),
    quarantined or corrected, and the store's rows say the same; snapshot 1 is untouched."""
    table, edits, duplicates = case
    template, hashes = full_store()
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "s.duckdb"
        shutil.copy(template, store)
        frame = pd.read_csv(DATA / "valid" / f"{table}.csv", dtype=str, keep_default_na=False)
        n, width = frame.shape
        for row, column, other in swaps:
            frame.iloc[row % n, column % width] = frame.iloc[other % n, column % width]
        for row, column, value in edits[: len(edits) // 2]:
            frame.loc[row, column] = value
        frame = pd.concat([frame, frame.iloc[duplicates]], ignore_index=True)
        feed = Path(tmp) / f"{table}.csv"
        frame.to_csv(feed, index=False)
        report = ingest([feed], store, reason="property test" if with_reason else None)
        [f] = report.files
        if f.status == "rejected":
            return
        assert f.rows_accepted + f.rows_quarantined + f.rows_corrected == f.rows_in == len(frame)
        assert with_reason or f.rows_corrected == 0
        event("some rows corrected" if f.rows_corrected else "no row corrected")
        assert len(report.corrections) >= f.rows_corrected
        with Store(store, read_only=True) as st:
            assert st.integrity_problems() == []
            assert {t: st.content_hash(t, 1) for t in hashes} == hashes
            if report.snapshot is None:
                return
            rows = st.all_rows(table)
            added = int((rows["snapshot_id"] == report.snapshot).sum())
            closed = int((rows["removed_in"] == report.snapshot).sum())
            history = st.history()
            q = st.quarantine(report.snapshot)
        assert added == f.rows_accepted - f.rows_unchanged + f.rows_corrected
        assert closed == f.rows_corrected == history["key"].nunique()
        assert q["row"].nunique() == f.rows_quarantined
