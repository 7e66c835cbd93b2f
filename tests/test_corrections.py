"""Corrections, withdrawals and the history: one test per rule of issue 15, items 2-3."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from outcomes.cli import main
from outcomes.data.ingest import ingest
from outcomes.data.store import Store
from outcomes.errors import InputError

VALID = Path(__file__).parent / "data" / "valid"


def resend(tmp_path: Path, table: str, edit: dict[tuple[int, str], str], name: str = "") -> Path:
    """A copy of a valid feed with some cells changed, in its own folder."""
    folder = tmp_path / (name or f"resend_{table}")
    folder.mkdir(exist_ok=True)
    df = pd.read_csv(VALID / f"{table}.csv", dtype=str, keep_default_na=False)
    for (row, column), value in edit.items():
        df.loc[row, column] = value
    df.to_csv(folder / f"{table}.csv", index=False)
    return folder / f"{table}.csv"


def test_changed_value_is_a_correction_with_history(tmp_path: Path, valid_store: Path) -> None:
    feed = resend(tmp_path, "assessments", {(2, "value"): "1"})  # S1-L gb_qual week 24: 2 -> 1
    report = ingest([feed], valid_store, reason="query 12: re-read from the photo")
    [f] = report.files
    assert (f.rows_in, f.rows_accepted, f.rows_unchanged, f.rows_corrected) == (11, 10, 10, 1)
    assert f.rows_accepted + f.rows_quarantined + f.rows_corrected == f.rows_in
    assert report.exit_code == 0 and report.snapshot == 2
    assert "Corrected cells (1; reason: query 12: re-read from the photo)" in report.summary()
    with Store(valid_store, read_only=True) as st:
        h = st.history()
        a = st.table("assessments")
        assert st.integrity_problems() == []
    [row] = h.to_dict("records")
    assert json.loads(row["key"]) == {
        "study_id": "T1",
        "unit_id": "S1-L",
        "instrument": "gb_qual",
        "day": "168",
        "rater_id": "I1",
    }
    assert (row["column_name"], row["old_value"], row["new_value"]) == ("value", "2.0", "1.0")
    assert (row["snapshot_id"], row["change"], row["file"]) == (2, "corrected", str(feed))
    assert row["reason"] == "query 12: re-read from the photo"
    hit = (a["unit_id"] == "S1-L") & (a["instrument"] == "gb_qual") & (a["day"] == 168)
    assert a.loc[hit, "value"].tolist() == [1.0] and len(a) == 11


def test_earlier_snapshot_returns_exactly_what_it_returned(
    tmp_path: Path, valid_store: Path
) -> None:
    with Store(valid_store, read_only=True) as st:
        before = {name: st.table(name, 1) for name in st.dictionary.tables}
        hashes = {name: st.content_hash(name, 1) for name in st.dictionary.tables}
    ingest([resend(tmp_path, "subjects", {(0, "age"): "32"})], valid_store, reason="typo")
    ingest([resend(tmp_path, "units", {(0, "body_site"): "back"})], valid_store, reason="typo")
    with Store(valid_store) as st:
        st.withdraw("S2", "consent withdrawn")
    with Store(valid_store, read_only=True) as st:
        assert st.latest() == 4
        for name, df in before.items():
            pd.testing.assert_frame_equal(st.table(name, 1), df)
            assert st.content_hash(name, 1) == hashes[name]
        assert st.table("subjects", 2).set_index("subject_id").loc["S1", "age"] == 32
        assert st.table("units", 2).set_index("unit_id").loc["S1-L", "body_site"] == "face"
        assert st.table("units", 3).set_index("unit_id").loc["S1-L", "body_site"] == "back"
        assert st.integrity_problems() == []


def test_correction_without_reason_is_quarantined_with_the_changed_cells(
    tmp_path: Path, valid_store: Path
) -> None:
    feed = resend(tmp_path, "subjects", {(0, "age"): "32", (0, "site_id"): "B"})
    report = ingest([feed], valid_store)
    assert report.exit_code == 3
    [v] = report.quarantine.to_dict("records")
    assert (v["rule"], v["column_name"], v["value"]) == (
        "correction_needs_reason",
        "site_id, age",
        "'A' -> 'B'; '31' -> '32'",
    )
    assert "--reason" in v["message"]
    with Store(valid_store, read_only=True) as st:
        assert st.table("subjects").set_index("subject_id").loc["S1", "age"] == 31
        assert st.history().empty
    # the same file with a reason: the held rows come in as corrections
    again = ingest([feed], valid_store, reason="site moved the subject")
    assert (again.files[0].rows_corrected, again.exit_code) == (1, 0)
    assert len(again.corrections) == 2


def test_identical_resent_rows_add_nothing(tmp_path: Path, valid_store: Path) -> None:
    feed = resend(tmp_path, "assessments", {})
    (feed.parent / "assessments.csv").write_text(
        (VALID / "assessments.csv").read_text().replace("\n", "\r\n")  # other bytes, same rows
    )
    report = ingest([feed], valid_store, reason="re-export")
    [f] = report.files
    assert (f.rows_unchanged, f.rows_corrected, f.rows_quarantined) == (11, 0, 0)
    with Store(valid_store, read_only=True) as st:
        assert len(st.table("assessments")) == 11 and st.history().empty
        assert st.integrity_problems() == []


def test_swapped_arm_codes_in_a_mapping_are_a_change(tmp_path: Path) -> None:
    """Issue 15's bug: swapping arm codes in a mapping and re-ingesting said 'unchanged'."""
    site = tmp_path / "site"
    site.mkdir()
    for name in ("studies", "subjects"):
        shutil.copy(VALID / f"{name}.csv", site)
    units = pd.read_csv(VALID / "units.csv", dtype=str, keep_default_na=False)
    units = units[units["study_id"] == "T1"]
    units["modality"] = units["modality"].map({"MN": "1", "MN+PRP": "2"})
    units.to_csv(site / "units.csv", index=False)
    mapping = site / "units.csv.mapping.yaml"
    mapping.write_text("values: {modality: {1: MN, 2: MN+PRP}}\n")
    store = tmp_path / "s.duckdb"
    assert ingest([site], store).exit_code == 0
    mapping.write_text("values: {modality: {1: MN+PRP, 2: MN}}\n")  # the arms swapped
    refused = ingest([site], store)
    assert refused.exit_code == 3
    assert set(refused.quarantine["rule"]) == {"correction_needs_reason"}
    assert len(refused.quarantine) == 4
    fixed = ingest([site], store, reason="arm codes were swapped")
    assert fixed.exit_code == 0 and fixed.files[-1].rows_corrected == 4
    with Store(store, read_only=True) as st:
        files = st.files()
        assert files["mapping_sha256"].nunique() == 3  # studies/subjects + two units mappings
        units_now = st.table("units").set_index("unit_id")["modality"]
        units_then = st.table("units", 1).set_index("unit_id")["modality"]
        assert (units_now != units_then).all()
        assert set(st.history()["reason"]) == {"arm codes were swapped"}
        assert st.integrity_problems() == []


def test_withdrawal_is_recorded_and_cascades(tmp_path: Path, valid_store: Path) -> None:
    assert main(["withdraw", "--store", str(valid_store), "--subject", "S1", "--reason", "x"]) == 0
    with Store(valid_store, read_only=True) as st:
        latest, first = st.tables(2), st.tables(1)
        h = st.history()
        assert st.integrity_problems() == []
        withdrawn = st.withdrawn()
    assert withdrawn[["study_id", "subject_id", "snapshot_id"]].values.tolist() == [["T1", "S1", 2]]
    removed = h.groupby("table_name").size().to_dict()
    assert removed == {
        "subjects": 1,
        "units": 2,
        "sessions": 4,
        "assessments": 7,
        "adverse_events": 1,
    }
    assert set(h["change"]) == {"withdrawn"} and set(h["reason"]) == {"x"}
    for name, df in latest.items():
        gone = len(first[name]) - len(df)
        assert gone == removed.get(name, 0), name
    assert "S1" not in set(latest["subjects"]["subject_id"])
    # a later export that still holds the subject's rows does not bring them back
    feeds = tmp_path / "export"
    shutil.copytree(VALID, feeds)
    for name in ("units", "assessments"):  # new bytes, same rows
        (feeds / f"{name}.csv").write_text(
            (VALID / f"{name}.csv").read_text().replace("\n", "\r\n")
        )
    report = ingest([feeds / "units.csv", feeds / "assessments.csv"], valid_store, reason="r")
    q = report.quarantine
    assert set(q["rule"]) == {"withdrawn_subject"}
    assert q.groupby("table_name").size().to_dict() == {"assessments": 7, "units": 2}
    with Store(valid_store, read_only=True) as st:
        assert len(st.table("units")) == 4 and st.integrity_problems() == []
    with Store(valid_store) as st, pytest.raises(InputError, match="already withdrawn"):
        st.withdraw("S1", "again")


def test_strict_mode_writes_nothing_on_a_correction_without_reason(
    tmp_path: Path, valid_store: Path
) -> None:
    size = valid_store.stat().st_size
    feed = resend(tmp_path, "subjects", {(0, "age"): "32"})
    assert ingest([feed], valid_store, strict=True).exit_code == 5
    with Store(valid_store, read_only=True) as st:
        assert st.latest() == 1 and st.history().empty and st.quarantine().empty
    assert valid_store.stat().st_size == size
    # with a reason but another violation in the delivery: still nothing
    bad = resend(tmp_path, "units", {(0, "side"): "top"}, name="bad")
    report = ingest([feed, bad], valid_store, strict=True, reason="typo")
    assert report.exit_code == 5
    with Store(valid_store, read_only=True) as st:
        assert st.latest() == 1
    # with a reason and nothing wrong: a correction is no violation
    assert ingest([feed], valid_store, strict=True, reason="typo").exit_code == 0


def test_history_filters_by_table_and_key(tmp_path: Path, valid_store: Path) -> None:
    ingest(
        [resend(tmp_path, "subjects", {(0, "age"): "32", (1, "age"): "28"})],
        valid_store,
        reason="r",
    )
    with Store(valid_store, read_only=True) as st:
        assert len(st.history()) == 2
        assert st.history(table="subjects", key=["T1", "S2"])["new_value"].tolist() == ["28"]
        assert st.history(key={"subject_id": "S1"})["new_value"].tolist() == ["32"]
        assert st.history(table="units").empty
        with pytest.raises(InputError):
            st.history(table="nope")
    out = tmp_path / "h.csv"
    code = main(
        ["history", "--store", str(valid_store), "--key", "subject_id=S2", "--out", str(out)]
    )
    assert code == 0
    assert pd.read_csv(out)["old_value"].tolist() == [27]


OLD_DDL = """
CREATE TABLE snapshots (snapshot_id INTEGER PRIMARY KEY, created_at VARCHAR,
    dictionary_sha256 VARCHAR, dictionary_version VARCHAR, outcomes_version VARCHAR,
    rows_accepted BIGINT, rows_quarantined BIGINT, note VARCHAR);
CREATE TABLE snapshot_files (snapshot_id INTEGER, path VARCHAR, sha256 VARCHAR,
    table_name VARCHAR, rows_in BIGINT, rows_accepted BIGINT, rows_quarantined BIGINT,
    mapping_sha256 VARCHAR, rows_unchanged BIGINT);
CREATE TABLE quarantine (snapshot_id INTEGER, file VARCHAR, table_name VARCHAR, "row" BIGINT,
    column_name VARCHAR, value VARCHAR, rule VARCHAR, message VARCHAR, record VARCHAR);
"""


def old_layout_copy(valid_store: Path, tmp_path: Path) -> Path:
    """The valid store as the code before corrections wrote it (no removed_in, no history)."""
    old = tmp_path / "old.duckdb"
    con = duckdb.connect(str(old))
    con.execute(OLD_DDL)
    con.execute(f"ATTACH '{valid_store}' AS src (READ_ONLY)")
    for t in ("snapshots", "snapshot_files", "quarantine"):
        cols = [r[0] for r in con.execute(f"DESCRIBE {t}").fetchall()]
        col_sql = ", ".join(f'"{c}"' for c in cols)
        con.execute(f"INSERT INTO {t} SELECT {col_sql} FROM src.{t}")
    with Store(valid_store, read_only=True) as st:
        names = list(st.dictionary.tables)
    for t in names:
        con.execute(f'CREATE TABLE "{t}" AS SELECT * EXCLUDE (removed_in) FROM src."{t}"')
    con.execute("DETACH src")
    con.close()
    return old


def test_store_written_before_corrections_reads_and_migrates(
    tmp_path: Path, valid_store: Path
) -> None:
    old = old_layout_copy(valid_store, tmp_path)
    with Store(valid_store, read_only=True) as st:
        hashes = {t: st.content_hash(t, 1) for t in st.dictionary.tables}
    with Store(old, read_only=True) as st:  # read as it is, nothing written
        assert {t: st.content_hash(t, 1) for t in hashes} == hashes
        assert st.history().empty and st.integrity_problems() == []
    con = duckdb.connect(str(old), read_only=True)
    assert "removed_in" not in [r[0] for r in con.execute("DESCRIBE units").fetchall()]
    con.close()
    report = ingest([resend(tmp_path, "subjects", {(0, "age"): "40"})], old, reason="r")
    assert report.snapshot == 2  # opened for writing: migrated in place, then corrected
    with Store(old, read_only=True) as st:
        assert {t: st.content_hash(t, 1) for t in hashes} == hashes
        assert st.table("subjects").set_index("subject_id").loc["S1", "age"] == 40
        assert st.integrity_problems() == []


def test_nothing_accepted_creates_no_store(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    report = ingest([VALID / "units.csv"], store)  # no studies or subjects: every row orphaned
    assert report.exit_code == 3 and report.snapshot is None
    assert not store.exists()
    assert any("was not created" in n for n in report.notes)


def test_mapping_that_matches_no_feed_is_reported(tmp_path: Path) -> None:
    feeds = tmp_path / "feeds"
    shutil.copytree(VALID, feeds)
    (feeds / "units.mapping.yaml").write_text("drop: []\n")  # should be units.csv.mapping.yaml
    report = ingest([feeds], tmp_path / "s.duckdb")
    [note] = [n for n in report.notes if "mapping file matches no feed" in n]
    assert "units.mapping.yaml" in note and "did you mean units.csv.mapping.yaml" in note
    assert report.exit_code == 0
    strict = ingest([feeds], tmp_path / "t.duckdb", strict=True)
    assert strict.exit_code == 5 and not (tmp_path / "t.duckdb").exists()


def test_rows_of_a_withdrawn_subject_take_their_mapping_problems_with_them() -> None:
    # a mapped feed's date problems point at rows of its data; cutting withdrawn rows must
    # renumber them, or a problem would land on another subject's row
    import numpy as np

    from outcomes.data.ingest import _Feed, _rows_of

    data = pd.DataFrame({"subject_id": ["S1", "S2", "S3", "S4"]})
    problems = pd.DataFrame(
        {
            "row": [1, 3],
            "column": ["day", "day"],
            "value": ["2024-05", "x"],
            "rule": ["partial_date", "date_format"],
            "message": ["m1", "m2"],
        }
    )
    feed = _Feed(
        Path("e.csv"),
        "assessments",
        "sha",
        data,
        np.array([10, 11, 12, 13]),
        "m",
        violations=problems,
    )
    cut = _rows_of(feed, np.array([0, 2, 3]))  # S2 withdrew
    assert cut.data["subject_id"].tolist() == ["S1", "S3", "S4"]
    assert cut.rows.tolist() == [10, 12, 13]
    assert cut.violations is not None
    assert cut.violations[["row", "rule"]].values.tolist() == [[2, "date_format"]]
    assert _rows_of(feed, np.arange(4)) is feed
