"""The mapping language: errors with file, line and key; row problems to quarantine; melt,
filters, identifiers, REDCap's dictionary, the optional SPSS/Stata/SAS reader, map draft."""

from __future__ import annotations

import builtins
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from outcomes.cli import main
from outcomes.data.ingest import ingest, prepare_feed
from outcomes.data.mapping import load_mapping
from outcomes.data.redcap import parse_choices
from outcomes.data.store import Store
from outcomes.errors import InputError

EXPORT = """\
record_id,redcap_repeat_instrument,redcap_repeat_instance,dag,enrol_date,age,sex,arm_l,arm_r,as_side,as_date,gbqs
1001,,,site_a,2024-01-10,30,1,2,1,,,
1001,assessment,1,site_a,,,,,,1,2024-01-10,20
1001,assessment,2,site_a,,,,,,2,2024-01-10,22
1001,assessment,3,site_a,,,,,,1,2024-03,15
1001,assessment,4,site_a,,,,,,2,10/03/2024,16
1002,,,site_b,2024-02,41,2,1,2,,,
1002,assessment,1,site_b,,,,,,1,2024-02-05,30
1003,,,site_b,2024-02-07,35,2,1,2,,,
1003,assessment,1,site_b,,,,,,2,2024-02-07,25
"""
DD_HEADER = (
    'Variable / Field Name,Form Name,Field Type,Field Label,"Choices, Calculations, OR Slider '
    'Labels",Text Validation Type OR Show Slider Number,Identifier?\n'
)
DD = (
    DD_HEADER
    + """\
record_id,enrolment,text,Record ID,,,
enrol_date,enrolment,text,Enrolment date,,date_ymd,
age,enrolment,text,Age,,integer,
sex,enrolment,radio,Sex,"1, Female | 2, Male",,
arm_l,enrolment,radio,Left side,"1, MN | 2, MN+PRP",,
arm_r,enrolment,radio,Right side,"1, MN | 2, MN+PRP",,
as_side,assessment,radio,Side,"1, left | 2, right",,
as_date,assessment,text,Date,,date_ymd,
gbqs,assessment,text,G&B score,,integer,
"""
)
MAPPING = """\
redcap_dictionary: dd.csv
decode: true
anchor: {column: enrol_date, by: record_id, where: {redcap_repeat_instrument: ""}}
drop: [redcap_repeat_instance]
tables:
  studies:
    constants: {study_id: T9, title: A trial, design: split_body}
  subjects:
    where: {redcap_repeat_instrument: ""}
    columns: {record_id: subject_id, dag: site_id, age: age, sex: sex}
    values: {sex: {Female: female, Male: male}}
    constants: {study_id: T9, phototype: III, indication: acne_scars}
  units:
    where: {redcap_repeat_instrument: ""}
    melt: {columns: {arm_l: left, arm_r: right}, into: side, value: modality}
    columns: {record_id: subject_id, side: side, modality: modality}
    compute: {unit_id: {join: [record_id, side]}}
    constants: {study_id: T9, body_site: face, randomised: true}
  assessments:
    where: {redcap_repeat_instrument: assessment}
    columns: {gbqs: value}
    compute:
      unit_id: {join: [record_id, as_side]}
      day: {study_day: as_date}
    constants: {study_id: T9, instrument: gb_quant, visit: v, rater_role: investigator,
                rater_id: R1}
"""


def _export(folder: Path, mapping: str = MAPPING, export: str = EXPORT, dd: str = DD) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "export.csv").write_text(export)
    (folder / "dd.csv").write_text(dd)
    (folder / "export.csv.mapping.yaml").write_text(mapping)
    return folder / "export.csv"


def test_row_problems_go_to_quarantine_with_file_row_column_and_rule(tmp_path: Path) -> None:
    path = _export(tmp_path)
    report = ingest([path], tmp_path / "s.duckdb")
    by_table = {f.table: f for f in report.files}
    for f in report.files:
        assert f.rows_accepted + f.rows_quarantined == f.rows_in, f
    q = report.quarantine.set_index(["table_name", "row"])
    # line 5 = row 4: a partial date; line 6 = row 5: a date in no format given
    assert q.loc[("assessments", 4), "rule"] == "partial_date"
    assert q.loc[("assessments", 4), "column_name"] == "day"
    assert q.loc[("assessments", 4), "value"] == "2024-03"
    assert "as_date: partial date" in q.loc[("assessments", 4), "message"]
    assert q.loc[("assessments", 5), "rule"] == "date_format"
    # record 1002's own enrolment date is partial: its assessments cannot get a day
    assert q.loc[("assessments", 7), "rule"] == "anchor_date"
    assert "2024-02" in q.loc[("assessments", 7), "message"]
    assert set(q["file"]) == {str(path)}
    assert by_table["assessments"].rows_in == 6
    assert by_table["assessments"].rows_quarantined == 3
    # the units: 3 records x 2 sides, each pointing at its enrolment row
    assert by_table["units"].rows_in == 6
    assert any("3 of 9 source rows taken" in n for n in report.notes), report.notes
    with Store(tmp_path / "s.duckdb") as store:
        a = store.table("assessments").set_index("unit_id")
        units = store.table("units").set_index("unit_id")
        stored_q = store.quarantine(report.snapshot)
    assert a.loc["1001-left", "day"] == 0 and a.loc["1003-right", "value"] == 25
    assert units.loc["1001-left", "modality"] == "MN+PRP"
    assert units.loc["1002-right", "modality"] == "MN+PRP"
    assert len(stored_q) == 3


def test_strict_mode_writes_nothing_on_a_partial_date(tmp_path: Path) -> None:
    path = _export(tmp_path)
    report = ingest([path], tmp_path / "s.duckdb", strict=True)
    assert report.exit_code == 5 and not (tmp_path / "s.duckdb").exists()


def test_date_formats_are_tried_in_order(tmp_path: Path) -> None:
    mapping = MAPPING.replace(
        "drop: [redcap_repeat_instance]",
        'drop: [redcap_repeat_instance]\ndate_formats: ["%Y-%m-%d", "%d/%m/%Y"]',
    )
    report = ingest([_export(tmp_path, mapping)], tmp_path / "s.duckdb")
    rules = set(report.quarantine["rule"])
    assert "date_format" not in rules and "partial_date" in rules
    with Store(tmp_path / "s.duckdb") as store:
        a = store.table("assessments")
    assert 60 in set(a["day"])  # 10/03/2024 is day 60 after 10 January 2024


@pytest.mark.parametrize(
    ("change", "line", "key", "message"),
    [
        (("tables:", "table:"), 5, "table", "must be text"),
        (("tables:", "tablez:"), 5, "tablez", "unknown mapping keys ['tablez']"),
        (
            ("    melt: {columns", "    melt: {into: side, colums"),
            15,
            "tables.units.melt",
            "colums",
        ),
        (("{join: [record_id, side]}", "{join: []}"), 17, "tables.units.compute", "at least 1"),
        (("{join: [record_id, side]}", "{split: x}"), 17, "tables.units.compute.unit_id", "split"),
        (("  studies:", "  patients:"), 6, "tables.patients", "unknown table"),
        (("decode: true", "decode: [age]"), 2, "decode[0]", "has no value labels"),
        (("columns: {gbqs: value}", "columns: {gbqs: value, age: value}"), 21, "age", "already"),
        (("age: age", "agee: age"), 10, "subjects.columns", "no column 'agee'"),
        (("redcap_dictionary: dd.csv", "redcap_dictionary: nope.csv"), 1, "redcap", "no file"),
        (("drop: [redcap_repeat_instance]", "drop: []"), None, "", "redcap_repeat_instance"),
        (("{study_day: as_date}", "{study_day: as_date, join: [a]}"), 24, "day", "either"),
        (
            (
                "melt: {columns: {arm_l: left, arm_r: right}, into: side,",
                "melt: {columns: {arm_l: left, arm_r: right},",
            ),
            15,
            "melt",
            "into",
        ),
    ],
)
def test_mapping_errors_name_file_line_and_key(
    tmp_path: Path, change: tuple[str, str], line: int | None, key: str, message: str
) -> None:
    assert change[0] in MAPPING
    path = _export(tmp_path, MAPPING.replace(change[0], change[1], 1))
    report = ingest([path], tmp_path / "s.duckdb")
    [result] = report.files
    assert result.status == "rejected"
    assert "export.csv" in result.message and message in result.message, result.message
    if line is not None:
        assert f"mapping.yaml: line {line}: " in result.message, result.message
        assert f"key '{key}" in result.message or key in result.message
    assert "Traceback" not in result.message
    assert report.exit_code == 4


def test_identifier_columns_are_refused_even_when_dropped(tmp_path: Path) -> None:
    lines = EXPORT.splitlines()
    text = "\n".join([lines[0] + ",patient_name", *(line + "," for line in lines[1:])]) + "\n"
    mapping = MAPPING.replace(
        "drop: [redcap_repeat_instance]", "drop: [redcap_repeat_instance, patient_name]"
    )
    report = ingest([_export(tmp_path, mapping, text)], tmp_path / "s.duckdb")
    [result] = report.files
    assert result.status == "rejected" and "[identifier_column]" in result.message
    assert "'patient_name'" in result.message


def test_redcap_identifier_flag_refuses_the_field(tmp_path: Path) -> None:
    dd = DD.replace("age,enrolment,text,Age,,integer,", "age,enrolment,text,Age,,integer,y")
    report = ingest([_export(tmp_path, dd=dd)], tmp_path / "s.duckdb")
    [result] = report.files
    assert "marked as identifiers in the REDCap data dictionary" in result.message
    assert "'age'" in result.message


def test_record_id_is_not_an_identifier(tmp_path: Path) -> None:
    from outcomes.data.dictionary import load_dictionary

    d = load_dictionary()
    assert not d.looks_like_identifier("record_id")
    assert d.looks_like_identifier("medical_record_number")
    assert d.looks_like_identifier("patient_name")


def test_choices_are_parsed_and_bad_ones_named() -> None:
    assert parse_choices("1, MN | 2, MN+PRP | 3, MN, saline") == {
        "1": "MN",
        "2": "MN+PRP",
        "3": "MN, saline",
    }
    with pytest.raises(InputError, match="'oops' is not 'code, label'"):
        parse_choices("1, MN | oops", "dd.csv: row 3: ")


@settings(max_examples=40, deadline=None)
@given(
    cells=st.lists(
        st.tuples(*[st.one_of(st.just(""), st.integers(0, 84).map(str))] * 3),
        min_size=1,
        max_size=15,
    )
)
def test_melt_round_trip_keeps_every_filled_cell(tmp_path_factory, cells) -> None:
    folder = tmp_path_factory.mktemp("melt")
    rows = [f"S{i},{a},{b},{c}" for i, (a, b, c) in enumerate(cells)]
    (folder / "wide.csv").write_text("sid,w0,w4,w8\n" + "\n".join(rows) + "\n")
    (folder / "wide.csv.mapping.yaml").write_text(
        "table: assessments\n"
        "melt:\n"
        "  columns: {w0: {visit: baseline, day: 0}, w4: {visit: week_4, day: 28},"
        " w8: {visit: week_8, day: 56}}\n"
        "columns: {sid: unit_id}\n"
        "constants: {study_id: T1, instrument: gb_quant, rater_role: investigator, rater_id: R}\n"
    )
    [feed] = prepare_feed(folder / "wide.csv")
    filled = sum(v != "" for r in cells for v in r)
    assert len(feed.data) == filled
    back = feed.data.pivot_table(
        index="unit_id", columns="visit", values="value", aggfunc="first", observed=True
    )
    for i, r in enumerate(cells):
        for visit, v in zip(("baseline", "week_4", "week_8"), r, strict=True):
            got = back.loc[f"S{i}", visit] if f"S{i}" in back.index and visit in back else None
            assert (v == "" and (got is None or pd.isna(got))) or got == v
    # each output row points at its source row, in source order
    assert np.all(np.diff(feed.rows) >= 0)
    assert set(feed.rows) <= set(range(1, len(cells) + 1))


def test_missing_pyreadstat_says_how_to_install(tmp_path: Path, monkeypatch) -> None:
    import pyreadstat

    from outcomes.data.readers import read_feed

    path = tmp_path / "x.sav"
    pyreadstat.write_sav(pd.DataFrame({"a": [1.0]}), path)
    real = builtins.__import__

    def no_pyreadstat(name, *args, **kwargs):
        if name == "pyreadstat":
            raise ImportError("no pyreadstat")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyreadstat)
    with pytest.raises(InputError, match=r"pip install 'outcomes\[formats\]'"):
        read_feed(path)


def test_sas_transport_file_is_read_with_its_values(tmp_path: Path) -> None:
    import pyreadstat

    from outcomes.data.readers import read_feed

    path = tmp_path / "studies.xpt"
    df = pd.DataFrame({"study_id": ["T1"], "title": ["A"], "design": ["parallel"], "n": [12.0]})
    pyreadstat.write_xport(df, path)
    raw = read_feed(path)
    assert raw.data.iloc[0].tolist() == ["T1", "A", "parallel", "12"]
    assert raw.rows.tolist() == [1]


def test_a_sheet_that_is_not_there_is_named(tmp_path: Path) -> None:
    path = tmp_path / "book.xlsx"
    pd.DataFrame({"study_id": ["T1"]}).to_excel(path, sheet_name="Studies", index=False)
    (tmp_path / "book.xlsx.mapping.yaml").write_text(
        "tables:\n  studies:\n    sheet: Trials\n    columns: {study_id: study_id}\n"
    )
    report = ingest([path], tmp_path / "s.duckdb")
    assert "no sheet 'Trials'; the workbook has 'Studies'" in report.files[0].message


def test_validate_reports_each_table_of_an_export(tmp_path: Path, capsys) -> None:
    path = _export(tmp_path)
    assert main(["validate", str(path)]) == 3
    out = capsys.readouterr().out
    assert "assessments:" in out and "partial date" in out and "subjects:" in out


def test_map_draft_without_a_dictionary(tmp_path: Path, capsys) -> None:
    path = tmp_path / "site.csv"
    path.write_text("subject,age,gender,visit_date,score,comments\nS1,30,F,2024-01-02,12,ok\n")
    assert main(["map", "draft", str(path), "--table", "subjects"]) == 0
    draft = capsys.readouterr().out
    (tmp_path / "site.csv.mapping.yaml").write_text(draft)
    m = load_mapping(tmp_path / "site.csv.mapping.yaml")
    assert m.model is not None and m.model.tables is not None
    assert dict(m.model.tables["subjects"].columns) == {
        "subject": "subject_id",
        "age": "age",
        "gender": "sex",
    }
    assert "comments" in m.model.drop and "score" in m.model.drop
    assert main(["map", "draft", str(path), "--table", "patients"]) == 2
    assert "unknown table 'patients'" in capsys.readouterr().err


def test_a_folder_ingest_reads_the_dictionary_with_its_export(tmp_path: Path) -> None:
    _export(tmp_path / "delivery")
    report = ingest([tmp_path / "delivery"], tmp_path / "s.duckdb")
    assert {f.path for f in report.files} == {str(tmp_path / "delivery" / "export.csv")}
    assert any("dd.csv: a REDCap data dictionary" in n for n in report.notes), report.notes


def test_study_days_count_calendar_days_and_melt_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text(
        "sid,enrolled,seen,score,visit\n"
        "S1,2024-01-10 14:00,2024-01-10 09:00,12,x\n"
        "S1,2024-01-10 14:00,2024-01-11 08:00,11,x\n"
    )
    mapping = (
        "table: assessments\n"
        "anchor: {column: enrolled, by: sid}\n"
        "columns: {sid: unit_id, score: value}\n"
        "compute: {day: {study_day: seen}}\n"
        "drop: [enrolled]\n"
        "constants: {study_id: T1, instrument: gb_quant, rater_role: investigator,"
        " rater_id: R}\n"
    )
    (tmp_path / "a.csv.mapping.yaml").write_text(mapping)
    [feed] = prepare_feed(tmp_path / "a.csv")
    assert feed.data["day"].tolist() == ["0", "1"]
    (tmp_path / "a.csv.mapping.yaml").write_text(
        mapping.replace("columns: {", "melt: {columns: {score: 1}, into: visit}\ncolumns: {")
    )
    with pytest.raises(InputError, match=r"line 3: key 'melt': the melt would make .*'visit'"):
        prepare_feed(tmp_path / "a.csv")


DATES = st.sampled_from(["2024-02-01", "2024-03-15", "2024-02", "UNK-03-2024", "15.03.24", ""])


@settings(max_examples=15, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.sampled_from(["1001", "1002", "1003"]), st.sampled_from(["1", "2"]), DATES),
        max_size=12,
    ),
    other=st.integers(0, 4),
)
def test_mapped_rows_are_all_accounted_for(tmp_path_factory, rows, other) -> None:
    """Accepted + quarantined = rows the mapping made; filtered rows are counted; every
    quarantined row names a source row of the right kind with the rule of its date."""
    folder = tmp_path_factory.mktemp("acct")
    lines = EXPORT.splitlines()
    base = [line for line in lines[1:] if ",assessment," not in line]
    made = [
        f"{r},assessment,{i},site_a,,,,,,{side},{day},20" for i, (r, side, day) in enumerate(rows)
    ]
    noise = [f"1001,visit_note,{i},site_a,,,,,,,," for i in range(other)]
    body = [lines[0], *base, *made, *noise]
    path = _export(folder, export="\n".join(body) + "\n")
    report = ingest([path], folder / "s.duckdb")
    files = {f.table: f for f in report.files}
    for f in report.files:
        assert f.rows_accepted + f.rows_quarantined == f.rows_in
    a = files["assessments"]
    assert a.rows_in == len(rows)
    total = len(body) - 1
    assert any(f"{len(rows)} of {total} source rows taken" in n for n in report.notes) or (
        len(rows) == total
    )
    q = report.quarantine[report.quarantine["table_name"] == "assessments"]
    first = len(base) + 1  # source row of the first assessment
    for row, rules in q.groupby("row")["rule"]:
        record, _, day = rows[int(row) - first]
        if day == "":
            expected = "required"  # no date, no day
        elif day in ("2024-02", "UNK-03-2024"):
            expected = "partial_date"
        elif day == "15.03.24":
            expected = "date_format"
        elif record == "1002":
            expected = "anchor_date"  # its enrolment date is partial
        else:
            expected = None
        # (identical generated rows are also a duplicate_key, so look for the rule among all)
        assert expected is None or expected in set(rules), (set(rules), row, rows)


@pytest.mark.parametrize(
    ("choices", "identifier"),
    [
        ("Choices OR Calculations", "Identifier"),
        ("Choices Calculations OR Slider Labels", "Identifier?"),
    ],
)
def test_older_redcap_dictionary_headers_still_decode(
    tmp_path: Path, choices: str, identifier: str
) -> None:
    # REDCap versions spell these headers differently; a missed choices column would leave
    # arms and sexes as bare codes and a missed identifier column would let a flagged field in
    header = DD_HEADER.replace('"Choices, Calculations, OR Slider Labels"', choices)
    header = header.replace("Identifier?", identifier)
    dd = DD.replace(DD_HEADER, header)
    plain = ingest([_export(tmp_path / "plain", dd=dd)], tmp_path / "plain.duckdb")
    with Store(tmp_path / "plain.duckdb", read_only=True) as store:
        assert set(store.table("units")["modality"]) == {"MN", "MN+PRP"}
    assert plain.snapshot == 1
    flagged = dd.replace("age,enrolment,text,Age,,integer,", "age,enrolment,text,Age,,integer,y")
    report = ingest([_export(tmp_path / "flagged", dd=flagged)], tmp_path / "f.duckdb")
    assert "marked as identifiers in the REDCap data dictionary" in report.files[0].message


def test_join_takes_fixed_text_around_the_key(tmp_path: Path) -> None:
    # a site numbering patients S001 whose trial treats the whole face: unit S001-W
    (tmp_path / "site.csv").write_text("Code,Visit,Score\nS001,baseline,12\nS002,baseline,9\n")
    (tmp_path / "site.csv.mapping.yaml").write_text(
        "tables:\n"
        "  assessments:\n"
        "    columns: {Visit: visit, Score: value}\n"
        "    compute:\n"
        '      unit_id: {join: [Code], prefix: "U-", suffix: "-W"}\n'
        "    constants: {study_id: T1, instrument: gb_quant, day: 0, rater_role: investigator,"
        " rater_id: R1}\n"
    )
    [feed] = prepare_feed(tmp_path / "site.csv")
    assert feed.data["unit_id"].tolist() == ["U-S001-W", "U-S002-W"]
    (tmp_path / "site.csv.mapping.yaml").write_text(
        'tables:\n  assessments:\n    compute:\n      day: {study_day: Visit, suffix: "-W"}\n'
    )
    with pytest.raises(InputError, match="`prefix` and `suffix` go with `join`"):
        prepare_feed(tmp_path / "site.csv")
