"""Ingest: the bad-input corpus, snapshots, idempotence, strict mode, mappings."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from outcomes.data.dictionary import load_dictionary
from outcomes.data.ingest import ingest
from outcomes.data.store import Store

DATA = Path(__file__).parent / "data"
CORPUS = DATA / "bad_inputs"
CASES = yaml.safe_load((CORPUS / "cases.yaml").read_text())["cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_corpus_case_gives_its_expected_message(case: dict, valid_store: Path) -> None:
    report = ingest([CORPUS / case["file"]], valid_store)
    [result] = report.files
    if "rejected" in case:
        assert result.status == "rejected"
        assert case["file"] in result.message
        assert case["rejected"] in result.message
        assert report.exit_code == 4
        return
    q = report.quarantine
    assert len(q) == 1, q.to_string()
    v = q.iloc[0]
    assert (v["file"].endswith(case["file"]), v["row"], v["column_name"], v["rule"]) == (
        True,
        case["row"],
        case["column"],
        case["rule"],
    )
    assert case["message"] in v["message"]
    assert result.rows_accepted + result.rows_quarantined == result.rows_in == case["rows_in"]
    assert report.exit_code == 3
    with Store(valid_store) as store:
        stored_q = store.quarantine(report.snapshot)
        assert len(stored_q) == 1
        record = pd.read_json(pd.io.common.StringIO("[" + stored_q["record"].iloc[0] + "]"))
        assert list(record.columns) == list(pd.read_csv(CORPUS / case["file"]).columns)


def _dictionary_rules() -> set[str]:
    """Every row-level rule the dictionary defines, by the name violations carry."""
    d = load_dictionary()
    rules = {
        "required",
        "duplicate_key",
        "correction_needs_reason",
        "instrument_range",
        "within_follow_up",
    }
    for t in d.tables.values():
        for c in t.columns.values():
            if c.type in ("code", "instrument"):
                rules.add(f"code_{c.codelist or 'instrument'}")
            if c.type in ("integer", "number", "boolean"):
                rules.add(f"type_{c.type}")
            if c.range:
                rules.add("range")
            if c.pattern:
                rules.add("pattern")
        rules |= {f"foreign_key_{fk.references}" for fk in t.foreign_keys}
        rules |= {r["name"] for r in t.rules}
    return rules


def test_corpus_fires_every_dictionary_rule() -> None:
    fired = {c["rule"] for c in CASES if "rule" in c}
    assert _dictionary_rules() - fired == set()


def test_reingest_of_identical_files_adds_nothing(valid_store: Path) -> None:
    report = ingest([DATA / "valid"], valid_store)
    assert report.snapshot is None
    assert {f.status for f in report.files} == {"already_ingested"}
    with Store(valid_store) as store:
        assert store.latest() == 1
        assert len(store.table("assessments")) == 11


def test_snapshots_pin_the_data_an_analysis_used(valid_store: Path) -> None:
    with Store(valid_store) as store:
        before = store.table("assessments", snapshot=1)
        hash_before = store.content_hash("assessments", 1)
    report = ingest([CORPUS / "duplicate_in_file_assessments.csv"], valid_store)
    assert report.snapshot == 2
    with Store(valid_store) as store:
        pd.testing.assert_frame_equal(store.table("assessments", snapshot=1), before)
        assert store.content_hash("assessments", 1) == hash_before
        assert len(store.table("assessments", snapshot=2)) == len(before) + 1
        assert store.content_hash("assessments", 2) != hash_before
        files = store.files()
        assert set(files["snapshot_id"]) == {1, 2}
        assert files["sha256"].str.fullmatch("[0-9a-f]{64}").all()
        snaps = store.snapshots()
        assert (snaps["dictionary_sha256"] == load_dictionary().sha256).all()


def test_strict_mode_writes_nothing(tmp_path: Path, valid_store: Path) -> None:
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    shutil.copy(CORPUS / "score_above_range_assessments.csv", feeds)
    shutil.copy(DATA / "bad_inputs" / "design_code_studies.csv", feeds)
    size_before = valid_store.stat().st_size
    report = ingest([feeds], valid_store, strict=True)
    assert report.exit_code == 5
    assert report.snapshot is None
    with Store(valid_store) as store:
        assert store.latest() == 1
        assert store.quarantine().empty
    assert "nothing was written" in report.summary()
    fresh = tmp_path / "new.duckdb"
    assert ingest([feeds], fresh, strict=True).exit_code == 5
    assert not fresh.exists()  # strict mode does not even create the store file
    assert valid_store.stat().st_size == size_before


def test_orphans_within_one_ingest_point_at_rejected_parents(tmp_path: Path) -> None:
    """A unit whose subject was quarantined in the same ingest is itself quarantined."""
    feeds = tmp_path / "feeds"
    shutil.copytree(DATA / "valid", feeds)
    subjects = (
        (feeds / "subjects.csv").read_text().replace("T1,S2,A,27,male,IV", "T1,S2,A,27,male,IX")
    )
    (feeds / "subjects.csv").write_text(subjects)
    report = ingest([feeds], tmp_path / "s.duckdb")
    q = report.quarantine
    assert set(q.loc[q["table_name"] == "units", "rule"]) == {"foreign_key_subjects"}
    assert set(q.loc[q["table_name"] == "units", "row"]) == {3, 4}
    for f in report.files:
        assert f.rows_accepted + f.rows_quarantined == f.rows_in


def test_redcap_style_export_is_mapped(tmp_path: Path, valid_store: Path) -> None:
    feed = tmp_path / "redcap_export.csv"
    feed.write_text(
        "record,redcap_event_name,scale,score,visit_day,visit_name,rater\n"
        "S1-R,week_12_arm_1,GBQ,2,84,week_12,I1\n"
        "S1-L,week_12_arm_1,GAIS_INV,4,84,week_12,I1\n"
    )
    (tmp_path / "redcap_export.csv.mapping.yaml").write_text(
        "table: assessments\n"
        "columns: {record: unit_id, scale: instrument, score: value, visit_day: day,"
        " visit_name: visit, rater: rater_id}\n"
        "values: {instrument: {GBQ: gb_qual, GAIS_INV: gais}}\n"
        "constants: {study_id: T1, rater_role: investigator}\n"
        "drop: [redcap_event_name]\n"
    )
    report = ingest([feed], valid_store)
    assert report.exit_code == 0, report.summary()
    with Store(valid_store) as store:
        a = store.table("assessments")
    new = a[a["day"] == 84].set_index("unit_id")
    assert new.loc["S1-R", "instrument"] == "gb_qual"
    assert new.loc["S1-L", "instrument"] == "gais"
    assert new.loc["S1-L", "value"] == 4


@pytest.mark.parametrize("suffix", ["parquet", "xlsx"])
def test_parquet_and_excel_feeds(tmp_path: Path, suffix: str) -> None:
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    for csv in (DATA / "valid").glob("*.csv"):
        df = pd.read_csv(csv, dtype=str, keep_default_na=False)
        out = feeds / f"{csv.stem}.{suffix}"
        if suffix == "parquet":
            df.to_parquet(out, index=False)
        else:
            df.to_excel(out, index=False)
    report = ingest([feeds], tmp_path / "s.duckdb")
    assert report.exit_code == 0, report.summary()
    with Store(tmp_path / "s.duckdb") as store:
        assert len(store.table("sessions")) == 8


def test_ingest_shows_progress_on_a_terminal_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    ingest([DATA / "valid"], tmp_path / "quiet.duckdb")
    assert capsys.readouterr().err == ""  # tests, pipes and logs stay clean
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    ingest([DATA / "valid"], tmp_path / "shown.duckdb")
    err = capsys.readouterr().err
    assert "reading feeds" in err and "file/s" in err
    assert "checking rows" in err and "row/s" in err
