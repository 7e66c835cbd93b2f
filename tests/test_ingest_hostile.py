"""Careless and hostile input: one test per defect class of issue 13.

Nothing lost (accepted + quarantined = rows in), nothing altered (values stored as written),
nothing let in (no identifier stored, no formula or terminal escape passed on), and every bad
input a clear message, never an internal error.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from outcomes.cli import main
from outcomes.data.dictionary import load_dictionary
from outcomes.data.ingest import ingest
from outcomes.data.safety import neutralise, printable
from outcomes.data.store import Store
from outcomes.errors import InputError

DATA = Path(__file__).parent / "data"
VALID = DATA / "valid"


def feeds(tmp_path: Path, *skip: str) -> Path:
    folder = tmp_path / "feeds"
    folder.mkdir()
    for f in VALID.glob("*.csv"):
        if f.stem not in skip:
            shutil.copy(f, folder)
    return folder


def plant(folder: Path, table: str, column: str, value: str, row: int = 0) -> None:
    """Put ``value`` (CSV-quoted) into one cell of a feed."""
    path = folder / f"{table}.csv"
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df.loc[row, column] = value
    df.to_csv(path, index=False)


def everything(store: Path) -> str:
    con = duckdb.connect(str(store), read_only=True)
    try:
        names = [r[0] for r in con.execute("SHOW TABLES").fetchall()]
        return "\n".join(str(con.execute(f'SELECT * FROM "{n}"').fetchall()) for n in names)
    finally:
        con.close()


# ---- values as written -------------------------------------------------------------------


def test_leading_zero_ids_and_long_numbers_are_kept_exactly(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.mkdir()
    (f / "studies.csv").write_text(
        "study_id,title,design,registration_id\n007,T,parallel,12345678901234567890\n"
    )
    (f / "subjects.csv").write_text(
        "study_id,subject_id,site_id,age,sex,phototype,indication\n"
        "007,0001,007,30,female,III,acne_scars\n007,1,010,31,male,II,acne_scars\n"
    )
    (f / "units.csv").write_text(
        "study_id,unit_id,subject_id,body_site,side,modality,randomised\n"
        "007,0001-L,0001,face,whole,MN,false\n"
    )
    report = ingest([f], tmp_path / "s.duckdb")
    assert report.exit_code == 0, report.summary()
    with Store(tmp_path / "s.duckdb") as st:
        assert st.table("studies")["registration_id"].tolist() == ["12345678901234567890"]
        assert sorted(st.table("subjects")["subject_id"]) == ["0001", "1"]
        assert sorted(st.table("subjects")["site_id"]) == ["007", "010"]
        assert st.table("units")["subject_id"].tolist() == ["0001"]


def test_excel_and_parquet_text_cells_are_kept_as_written(tmp_path: Path) -> None:
    studies = pd.DataFrame(
        {"study_id": ["007"], "title": ["T"], "design": ["parallel"], "start_year": [2020]}
    )
    studies.to_excel(tmp_path / "studies.xlsx", index=False)
    report = ingest([tmp_path / "studies.xlsx"], tmp_path / "s.duckdb")
    assert report.exit_code == 0, report.summary()
    with Store(tmp_path / "s.duckdb") as st:
        row = st.table("studies").iloc[0]
        assert (row["study_id"], int(row["start_year"])) == ("007", 2020)


def test_integer_beyond_64_bits_is_a_row_violation(tmp_path: Path) -> None:
    f = feeds(tmp_path)
    plant(f, "subjects", "age", "99999999999999999999")
    report = ingest([f], tmp_path / "s.duckdb")
    assert report.exit_code == 3
    q = report.quarantine
    [v] = q[q["table_name"] == "subjects"].itertuples()
    assert (v.column_name, v.rule) == ("age", "type_integer")


# ---- the store ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["data.csv", "data.parquet", "data.json", "empty.duckdb"])
def test_a_file_that_is_not_a_duckdb_store_is_refused(tmp_path: Path, name: str) -> None:
    target = tmp_path / name
    target.write_bytes(b"" if name == "empty.duckdb" else b"a,b\n1,2\n")
    before = target.read_bytes()
    with pytest.raises(InputError, match="is not a DuckDB store"):
        ingest([VALID], target)
    assert target.read_bytes() == before
    assert main(["ingest", str(VALID), "--store", str(target)]) == 2


def test_corrupted_store_is_an_input_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    store = tmp_path / "s.duckdb"
    ingest([VALID], store)
    data = bytearray(store.read_bytes())
    for i in range(0, len(data), 5):
        data[i] = (data[i] * 7 + 13) % 256
    data[8:12] = b"DUCK"
    store.write_bytes(bytes(data))
    for cmd in (["summary"], ["snapshots"], ["quarantine"], ["ingest", str(VALID)]):
        assert main([*cmd, "--store", str(store)]) == 2
    assert "internal error" not in capsys.readouterr().err


def test_store_made_under_another_dictionary_warns(valid_store: Path, tmp_path: Path) -> None:
    con = duckdb.connect(str(valid_store))
    con.execute("UPDATE snapshots SET dictionary_sha256 = 'abc', dictionary_version = '0.9'")
    con.close()
    report = ingest([VALID / "units.csv"], valid_store)
    assert any("dictionary version 0.9" in n for n in report.notes)


def test_disk_full_shows_the_real_cause(valid_store: Path, tmp_path: Path) -> None:
    with Store(valid_store) as st:
        st.con.execute("DROP TABLE quarantine")  # the write fails inside the transaction
        with pytest.raises(InputError, match=r"cannot write snapshot 2.*quarantine"):
            st.add_snapshot(
                {},
                pd.DataFrame(
                    {
                        "path": ["x"],
                        "sha256": ["y"],
                        "table_name": ["units"],
                        "rows_in": [1],
                        "rows_accepted": [0],
                        "rows_quarantined": [1],
                    }
                ),
                pd.DataFrame({"file": ["x"], "table_name": ["units"], "row": [1]}),
            )


def test_strict_mode_creates_no_store_file(tmp_path: Path) -> None:
    f = feeds(tmp_path)
    plant(f, "subjects", "sex", "x")
    assert ingest([f], tmp_path / "s.duckdb", strict=True).exit_code == 5
    assert not (tmp_path / "s.duckdb").exists()


# ---- file identity: bytes + mapping + outcome --------------------------------------------


def test_children_before_parents_come_in_when_re_sent(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    ingest([VALID / "studies.csv"], store)
    first = ingest([VALID / "units.csv"], store)  # no subjects yet: every unit an orphan
    assert first.files[0].rows_quarantined == first.files[0].rows_in
    ingest([VALID / "subjects.csv"], store)
    again = ingest([VALID / "units.csv"], store)
    [f] = again.files
    assert (f.status, f.rows_accepted, f.rows_quarantined) == ("ingested", f.rows_in, 0)
    # re-sent once more: every row accepted before, so nothing is read or written
    third = ingest([VALID / "units.csv"], store)
    assert third.files[0].status == "already_ingested" and third.snapshot is None
    with Store(store) as st:
        assert len(st.table("units")) == f.rows_in
        assert st.integrity_problems() == []


def test_fixed_mapping_lets_quarantined_rows_in(tmp_path: Path, valid_store: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    df = pd.read_csv(VALID / "assessments.csv", dtype=str, keep_default_na=False)
    df["rater_id"] = df["rater_id"] + "x"  # new keys
    df["rater_role"] = df["rater_role"].str.upper()
    df.to_csv(site / "assessments.csv", index=False)
    mapping = site / "assessments.csv.mapping.yaml"
    mapping.write_text("values: {rater_role: {INV: investigator}}\n")
    first = ingest([site], valid_store)
    assert first.files[0].rows_quarantined > 0
    codes = {c.upper(): c for c in load_dictionary().codelists["rater_role"]}
    mapping.write_text(f"values: {{rater_role: {json.dumps(codes)}}}\n")
    second = ingest([site], valid_store)
    [f] = second.files
    assert f.status == "ingested" and f.rows_quarantined == 0 and f.rows_accepted == len(df)
    assert f.rows_unchanged == first.files[0].rows_accepted  # accepted the first time


def test_re_sent_file_that_still_fails_writes_no_snapshot(valid_store: Path) -> None:
    bad = DATA / "bad_inputs" / "unit_orphan_subject_units.csv"
    first = ingest([bad], valid_store)
    again = ingest([bad], valid_store)
    assert first.snapshot == 2 and again.snapshot is None
    assert again.files[0].status == "already_ingested" and again.exit_code == 3
    with Store(valid_store) as st:
        assert st.latest() == 2 and st.integrity_problems() == []


# ---- identifiers -------------------------------------------------------------------------

PLANTED = [
    ("studies", "title", "Contact jane.doe@example.org", "e-mail address"),
    ("studies", "registration_id", "078-05-1120", "social security number"),
    ("subjects", "site_id", "+44 20 7946 0958", "phone number"),
    ("assessments", "rater_id", "Smith, John", "person name"),
    ("assessments", "rater_id", "John Smith", "person name"),
    ("assessments", "visit", "AB 12 34 56 C", "national insurance number"),
    ("adverse_events", "term", "call 0171 555 1234", "phone number"),
    ("studies", "title", "Trial run by Dr Mueller", "person name"),
    ("subjects", "age", "555-867-5309", "phone or health-service number"),
    ("units", "unit_id", "a@b.org", "e-mail address"),
]


@pytest.mark.parametrize(("table", "column", "value", "kind"), PLANTED)
def test_identifier_values_are_quarantined_without_the_value(
    tmp_path: Path, table: str, column: str, value: str, kind: str
) -> None:
    f = feeds(tmp_path)
    plant(f, table, column, value)
    store = tmp_path / "s.duckdb"
    report = ingest([f], store)
    hits = report.quarantine[report.quarantine["rule"] == "identifier_value"]
    assert hits["column_name"].tolist() == [column]
    assert hits["value"].tolist() == [f"[removed: {kind}]"]
    assert value not in everything(store)
    assert value not in report.summary()
    out = tmp_path / "q.csv"
    assert main(["quarantine", "--store", str(store), "--out", str(out)]) == 0
    assert value not in out.read_text()


def test_identifier_screen_passes_ordinary_values() -> None:
    from outcomes.data.schema import validate_table

    studies = pd.DataFrame(
        {
            "study_id": ["NCT0001", "R-2"],
            "title": ["Split-face PRP trial 2021-2022, 40 patients", "Clinic registry (v2.1)"],
            "design": ["split_body", "observational"],
            "registration_id": ["ISRCTN12345678", "12345678901234567890"],
        }
    )
    result = validate_table(studies, "studies")
    assert result.ok, result.report()


IDENTIFIER_NAMES = [
    "zip",
    "postal_code",
    "hospital_number",
    "nhsno",
    "national_id",
    "forename",
    "year_of_birth",
    "Geburtsdatum",
    "PLZ",
    "Postleitzahl",
    "Vorname",
    "Nachname",
    "telefono",
    "courriel",
    "HospNo",
    "HospitalNumber",
    "codice_fiscale",
    "apellidos",
    "prenom",
    "date_naissance",
    "Straße",
    "fodselsnummer",
    "pesel",
    "NIR",
    "social_security_no",
    "patient_name",
    "given_name",
    "mobile_phone",
    "e-mail",
    "DOB",
    "city",
    "address_line_1",
]


@pytest.mark.parametrize("name", IDENTIFIER_NAMES)
def test_identifier_names_are_refused_also_when_mapped(tmp_path: Path, name: str) -> None:
    f = feeds(tmp_path)
    text = (f / "subjects.csv").read_text().replace("site_id", name, 1)
    (f / "subjects.csv").write_text(text)
    (f / "subjects.csv.mapping.yaml").write_text(json.dumps({"columns": {name: "site_id"}}))
    report = ingest([f], tmp_path / "s.duckdb")
    [rejected] = [r for r in report.files if r.status == "rejected"]
    assert "identifier" in rejected.message and "subjects.csv" in rejected.message


def test_no_dictionary_column_looks_like_an_identifier() -> None:
    d = load_dictionary()
    columns = {c for t in d.tables.values() for c in t.columns}
    columns |= {"record_id", "patient_id", "redcap_event_name", "clinic", "arm", "score"}
    assert [c for c in columns if d.looks_like_identifier(c)] == []


# ---- injection ---------------------------------------------------------------------------


def test_csv_written_by_the_toolkit_neutralises_formulas(tmp_path: Path) -> None:
    f = feeds(tmp_path)
    plant(f, "studies", "title", '=HYPERLINK("http://x")')
    plant(f, "subjects", "sex", "@SUM(1)")
    store = tmp_path / "s.duckdb"
    ingest([f], store)
    assert (
        main(
            [
                "export",
                "--store",
                str(store),
                "--table",
                "studies",
                "--out",
                str(tmp_path / "e.csv"),
            ]
        )
        == 0
    )
    exported = pd.read_csv(tmp_path / "e.csv", dtype=str, keep_default_na=False)
    assert '\'=HYPERLINK("http://x")' in exported["title"].tolist()
    assert main(["quarantine", "--store", str(store), "--out", str(tmp_path / "q.csv")]) == 0
    q = pd.read_csv(tmp_path / "q.csv", dtype=str, keep_default_na=False)
    assert q.loc[q["rule"] == "code_sex", "value"].tolist() == ["'@SUM(1)"]
    # numbers stay numbers, text cells of every formula prefix are neutralised
    df = pd.DataFrame({"n": [-1.5, 2.0], "t": ["-1", "\tx"], "u": ["+1", "ok"]})
    assert neutralise(df).to_dict("list") == {
        "n": [-1.5, 2.0],
        "t": ["'-1", "'\tx"],
        "u": ["'+1", "ok"],
    }


def test_control_characters_never_reach_the_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    f = feeds(tmp_path)
    plant(f, "subjects", "sex", "\x1b[2J\x1b]0;pwned\x07\u202e")
    store = tmp_path / "s.duckdb"
    assert main(["ingest", str(f), "--store", str(store)]) == 3
    assert main(["quarantine", "--store", str(store)]) == 0
    out = capsys.readouterr()
    assert "\x1b" not in out.out + out.err and "\u202e" not in out.out
    assert "\\x1b[2J" in out.out
    assert printable("a\x1bb\nc") == "a\\x1bb\nc"


# ---- bad input: exit 2/4 with file, row, column, rule; the other files go on ------------


def test_duplicate_column_names_reject_that_file_only(tmp_path: Path) -> None:
    f = feeds(tmp_path)
    text = (f / "subjects.csv").read_text().replace("end_reason", "age", 1)
    (f / "subjects.csv").write_text(text)
    report = ingest([f], tmp_path / "s.duckdb")
    [rejected] = [r for r in report.files if r.status == "rejected"]
    assert "'age' appears twice" in rejected.message and "subjects.csv" in rejected.message
    assert report.exit_code == 4 and report.snapshot == 1


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ("columns: [site_id, age]", "key 'columns' must be"),
        ("- a\n- b", "a mapping must be a set of keys"),
        ("values: {sex: [a, b]}", "key 'values' must be"),
        ("drop: site_id", "key 'drop' must be"),
        ("columns: {clinic: site_id, centre: site_id}", "both mapped onto 'site_id'"),
        ("columns: {end_reason: site_id}", "which the feed already has"),
        ("constants: {site_id: Z}", "would overwrite the feed's own column 'site_id'"),
        ("table: [units]", "key 'table' must be"),
        ("columns: {a: b", "cannot read mapping"),
    ],
)
def test_bad_mappings_are_named(tmp_path: Path, mapping: str, message: str) -> None:
    f = feeds(tmp_path)
    (f / "subjects.csv.mapping.yaml").write_text(mapping + "\n")
    report = ingest([f], tmp_path / "s.duckdb")
    [rejected] = [r for r in report.files if r.status == "rejected"]
    assert message in rejected.message, rejected.message
    assert report.snapshot == 1  # the other files went in


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"study_id,unit_id,subject_id\nT1,U\xe9,S1\n", "line 2: byte"),
        (
            b"study_id,unit_id,subject_id,body_site,side,modality,randomised\nT1,U1\n",
            "line 2 has 2 fields",
        ),
    ],
)
def test_unreadable_csv_is_named_with_its_line(
    tmp_path: Path, content: bytes, message: str
) -> None:
    (tmp_path / "units.csv").write_bytes(content)
    report = ingest([tmp_path / "units.csv", VALID / "studies.csv"], tmp_path / "s.duckdb")
    [rejected] = [r for r in report.files if r.status == "rejected"]
    assert message in rejected.message
    assert report.snapshot == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["simulate", "trial", "--seed", "-1", "--out", "{tmp}/sim"],
        ["export", "--store", "{store}", "--table", "units", "--out", "{tmp}/no/u.csv"],
        ["quarantine", "--store", "{store}", "--out", "{tmp}/no/q.csv"],
        ["dictionary", "--out", "{tmp}/no/d.md"],
        ["ingest", "{tmp}/missing", "--store", "{store}"],
        ["summary", "--store", "{tmp}/no/s.duckdb"],
    ],
)
def test_bad_options_exit_2_not_internal_error(
    argv: list[str], valid_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = [a.format(tmp=tmp_path, store=valid_store) for a in argv]
    assert main(args) == 2
    assert "internal error" not in capsys.readouterr().err


def test_os_error_is_reported_with_its_cause(
    valid_store: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    def full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device", str(tmp_path / "e.csv"))

    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    args = [
        "export",
        "--store",
        str(valid_store),
        "--table",
        "units",
        "--out",
        str(tmp_path / "e.csv"),
    ]
    assert main(args) == 2
    assert "No space left on device" in capsys.readouterr().err


# ---- skipped files -----------------------------------------------------------------------


def test_skipped_files_are_named_with_the_reason(tmp_path: Path) -> None:
    f = feeds(tmp_path)
    for name in ("extra_units.csv.gz", "more_units.tsv", "macro_units.xlsm", "old_units.xls"):
        (f / name).write_bytes(b"x")
    (f / "site2").mkdir()
    pd.read_csv(VALID / "studies.csv").to_csv(f / "site2" / "studies.csv", index=False)
    with pd.ExcelWriter(tmp_path / "studies.xlsx") as w:
        pd.read_csv(VALID / "studies.csv", dtype=str).to_excel(w, sheet_name="data", index=False)
        pd.DataFrame({"a": [1]}).to_excel(w, sheet_name="more rows", index=False)
    report = ingest([f, tmp_path / "studies.xlsx"], tmp_path / "s.duckdb")
    text = report.summary()
    for name, why in [
        ("extra_units.csv.gz", "decompress"),
        ("more_units.tsv", "tab-separated"),
        ("macro_units.xlsm", "macro-enabled"),
        ("old_units.xls", "old Excel format"),
        ("site2", "subfolder"),
        ("'more rows'", "skipped"),
    ]:
        assert any(name in n and why in n for n in report.notes), (name, text)


def test_empty_feed_folder_warns_and_fails_under_strict(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    lenient = ingest([tmp_path / "empty"], tmp_path / "s.duckdb")
    assert lenient.exit_code == 0 and "no feed files found" in lenient.summary()
    strict = ingest([tmp_path / "empty"], tmp_path / "s.duckdb", strict=True)
    assert strict.exit_code == 2
    assert not (tmp_path / "s.duckdb").exists()


# ---- smaller -----------------------------------------------------------------------------


def test_row_numbers_count_blank_lines_and_multi_line_cells(tmp_path: Path) -> None:
    (tmp_path / "studies.csv").write_text(
        'study_id,title,design\n\nA,"two\nlines",parallel\n\nB,ok,crossover\n'
    )
    report = ingest([tmp_path / "studies.csv"], tmp_path / "s.duckdb")
    assert report.quarantine["row"].tolist() == [5]  # B starts on line 6


@pytest.mark.parametrize("marker", ["NA", "n/a", ".", "NULL", "none"])
def test_required_text_refuses_missing_value_markers(tmp_path: Path, marker: str) -> None:
    f = feeds(tmp_path)
    plant(f, "studies", "title", marker)
    report = ingest([f / "studies.csv"], tmp_path / "s.duckdb")
    [v] = report.quarantine.itertuples()
    assert (v.column_name, v.rule) == ("title", "required")


def test_hash_is_of_the_bytes_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    from outcomes.data import readers as feeds_module

    path = tmp_path / "studies.csv"
    shutil.copy(VALID / "studies.csv", path)
    real = Path.read_bytes
    calls = []

    def read_then_replace(self: Path) -> bytes:
        data = real(self)
        if self == path:
            calls.append(1)
            self.write_text("replaced while reading\n")
        return data

    monkeypatch.setattr(Path, "read_bytes", read_then_replace)
    raw = feeds_module.read_feed(path)
    assert calls == [1]
    assert raw.sha256 == hashlib.sha256((VALID / "studies.csv").read_bytes()).hexdigest()
    assert len(raw.data) == len(pd.read_csv(VALID / "studies.csv"))


def test_fast_and_exact_csv_readers_agree(tmp_path: Path) -> None:
    from outcomes.data.readers import read_feed

    body = 'study_id,title,design\n007,"a, b",parallel\n0001, NA ,"=1"\n"x""y",,n/a\n'
    simple, blank = tmp_path / "simple.csv", tmp_path / "blank.csv"
    simple.write_text(body)
    blank.write_text("\n" + body)  # a blank line: the exact reader numbers the lines
    fast, exact = read_feed(simple), read_feed(blank)
    pd.testing.assert_frame_equal(fast.data, exact.data)
    assert fast.data.iloc[:, 0].tolist() == ["007", "0001", 'x"y']
    assert fast.data.iloc[1, 1] == " NA "
    assert fast.rows.tolist() == [1, 2, 3] and exact.rows.tolist() == [2, 3, 4]
