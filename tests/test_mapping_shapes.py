"""Exports of other shapes go in with a mapping alone, and the trial analysis runs on them.

Each export is built from a simulated trial (``tests/export_shapes.py``), ingested with nothing
but a mapping file, and the store is compared row by row with the simulator's own tables; then a
mixed model (or the trial comparison) fitted on the store equals the same fit on the truth.
"""

from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from outcomes import compare, lmm
from outcomes.data.ingest import ingest
from outcomes.data.store import Store
from outcomes.errors import StatisticalWarning

_spec = importlib.util.spec_from_file_location(
    "export_shapes", Path(__file__).parent / "export_shapes.py"
)
assert _spec is not None and _spec.loader is not None
shapes = importlib.util.module_from_spec(_spec)
sys.modules["export_shapes"] = shapes
_spec.loader.exec_module(shapes)

STUDY = "{study_id: X1, title: An export, design: %s, indication: acne_scars}"

PARALLEL = """\
date_formats: ["%%d/%%m/%%Y"]          # 31/01/2024
anchor: {column: enrolled, by: pid}    # day 0 is in the same row
tables:
  studies: {constants: %s}
  subjects:
    columns: {pid: subject_id, centre: site_id, age: age, gender: sex, fitz: phototype,
              end_why: end_reason}
    compute: {end_day: {study_day: last_seen}}
    values: {sex: {F: female, M: male}}
    constants: {study_id: X1, indication: acne_scars}
  units:
    columns: {pid: [subject_id, unit_id], arm: modality}    # one column, two targets
    values: {modality: {A: MN, B: MN+PRP}}
    constants: {study_id: X1, body_site: face, side: whole, randomised: true}
  sessions:
    melt:                                   # one date column per session
      columns: {s1_date: {session_number: 1}, s2_date: {session_number: 2},
                s3_date: {session_number: 3}}
      value: session_date
    columns: {pid: unit_id, arm: modality, session_number: session_number}
    compute: {day: {study_day: session_date}}
    values: {modality: {A: MN, B: MN+PRP}}
    constants: {study_id: X1, device: pen}
  assessments:
    melt:                                   # one score column per visit
      columns:
        gbqs_w0: {visit: baseline, day: 0}
        gbqs_w4: {visit: week_4, day: 28}
        gbqs_w8: {visit: week_8, day: 56}
        gbqs_w12: {visit: week_12, day: 84}
        gbqs_w24: {visit: week_24, day: 168}
      value: score
    columns: {pid: unit_id, investigator: rater_id, score: value, visit: visit, day: day}
    constants: {study_id: X1, instrument: gb_quant, rater_role: investigator}
""" % (STUDY % "parallel")

WORKBOOK = """\
anchor: {column: Enrolled, by: Patient, sheet: Patients}   # day 0 is on another sheet
tables:
  studies: {constants: %s}
  subjects:
    sheet: Patients
    columns: {Patient: subject_id, Clinic: site_id, Age: age, Sex: sex,
              Skin type: phototype, Reason: end_reason}
    compute: {end_day: {study_day: Last contact}}
    values: {sex: {F: female, M: male}}
    constants: {study_id: X1, indication: acne_scars}
  units:
    sheet: Sides
    columns: {Patient: subject_id, Side: side, Treatment: modality}
    compute: {unit_id: {join: [Patient, Side]}}
    values: {side: {L: left, R: right}}
    constants: {study_id: X1, body_site: face, randomised: true}
  sessions:
    sheet: Treatments
    columns: {Session: session_number, Product: modality, Device: device,
              Depth mm: needle_depth_mm, Passes: passes, Anaesthetic: numbing_agent,
              PRP mL: prp_volume_ml}
    compute: {unit_id: {join: [Patient, Side]}, day: {study_day: Date}}
    constants: {study_id: X1}
  assessments:
    sheet: Scores
    melt: {columns: {GB score: gb_quant, GB grade: gb_qual}, into: instrument}
    columns: {instrument: instrument, value: value, Visit: visit, Rated by: rater_role,
              Rater: rater_id}
    compute: {unit_id: {join: [Patient, Side]}, day: {study_day: Date}}
    constants: {study_id: X1}
  adverse_events:
    sheet: Side effects
    columns: {Patient: subject_id, No: ae_seq, Event: term, Days: duration_days,
              Severity: severity, Serious: serious, Relation: relatedness}
    compute: {unit_id: {join: [Patient, Side]}, onset_day: {study_day: Onset}}
    constants: {study_id: X1}
""" % (STUDY % "split_body")

STAT = """\
decode: [site, sex, skin, arm, visit]      # the file's own value labels
anchor: {column: enrol, by: subj}
tables:
  studies: {constants: %s}
  subjects:
    columns: {subj: subject_id, site: site_id, age: age, sex: sex, skin: phototype}
    values: {sex: {Female: female, Male: male}}
    constants: {study_id: X1, indication: acne_scars}
    distinct: true                          # repeated on every score row
  units:
    columns: {subj: [subject_id, unit_id], arm: modality}
    constants: {study_id: X1, body_site: face, side: whole, randomised: true}
    distinct: true
  assessments:
    columns: {subj: unit_id, visit: visit, rater: rater_id, gbqs: value}
    compute: {day: {study_day: vdate}}
    constants: {study_id: X1, instrument: gb_quant, rater_role: investigator}
""" % (STUDY % "parallel")


def _ingest(export: Path, mapping: str, store: Path):
    Path(f"{export}.mapping.yaml").write_text(mapping)
    report = ingest([export], store)
    assert report.exit_code == 0, report.summary()
    for f in report.files:
        assert f.rows_accepted + f.rows_quarantined == f.rows_in
    return report


def _stored(store: Path) -> dict[str, pd.DataFrame]:
    with Store(store) as st:
        return st.tables()


def _check_tables(stored, expected, columns: dict[str, list[str]]) -> None:
    for name, cols in columns.items():
        ok, why = shapes.same_rows(stored[name], expected[name], cols)
        assert ok, f"{name}: {why}"


def _gb_fit(t: dict[str, pd.DataFrame], split: bool) -> pd.DataFrame:
    """G&B score by week and arm, random intercept per subject (and side within subject)."""
    a = t["assessments"]
    a = a[(a["instrument"] == "gb_quant") & (a["rater_role"] == "investigator")]
    data = a.merge(t["units"][["unit_id", "subject_id", "modality"]], on="unit_id")
    data = pd.DataFrame(
        {
            "value": data["value"].astype(float).to_numpy(),
            "week": data["day"].astype(float).to_numpy() / 7,
            "prp": (data["modality"].astype(str) == "MN+PRP").astype(float).to_numpy(),
            "subject": data["subject_id"].astype(str).to_numpy(),
            "unit": data["unit_id"].astype(str).to_numpy(),
        }
    ).sort_values(["subject", "unit", "week"], ignore_index=True)
    fit = lmm(data, "value ~ week * prp", groups="subject", nested="unit" if split else None)
    return fit.fixed.set_index("term")[["estimate", "std_error"]]


def _same_fit(stored: dict[str, pd.DataFrame], truth: dict[str, pd.DataFrame], split: bool):
    got, want = _gb_fit(stored, split), _gb_fit(truth, split)
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-7, atol=1e-9)
    assert np.isfinite(got.loc["week:prp", "estimate"])


SUBJECT_COLS = ["subject_id", "site_id", "age", "sex", "phototype", "end_day", "end_reason"]
UNIT_COLS = ["unit_id", "subject_id", "body_site", "side", "modality", "randomised"]
SESSION_COLS = ["unit_id", "session_number", "day", "modality", "device"]
SCORE_COLS = ["unit_id", "instrument", "visit", "day", "value", "rater_role", "rater_id"]
AE_COLS = [
    "subject_id",
    "ae_seq",
    "unit_id",
    "term",
    "onset_day",
    "duration_days",
    "severity",
    "serious",
    "relatedness",
]


def test_parallel_trial_one_column_per_visit(tmp_path: Path) -> None:
    feeds = shapes.trial(seed=11, n_subjects=20, design="parallel")
    export = shapes.parallel_wide_csv(feeds, tmp_path)
    report = _ingest(export, PARALLEL, tmp_path / "s.duckdb")
    truth = shapes.expected_tables(feeds, {"W": ""})
    a = truth["assessments"]
    truth["assessments"] = a[
        (a["instrument"] == "gb_quant") & (a["rater_role"] == "investigator")
    ].copy()
    stored = _stored(tmp_path / "s.duckdb")
    _check_tables(
        stored,
        truth,
        {
            "subjects": SUBJECT_COLS,
            "units": UNIT_COLS,
            "sessions": SESSION_COLS,
            "assessments": SCORE_COLS,
        },
    )
    # empty visit cells (drop-outs) made no row, and the summary says how many
    empty = sum(
        pd.read_csv(export, dtype=str)[[f"gbqs_w{w}" for w in (0, 4, 8, 12, 24)]].isna().sum()
    )
    assert empty > 0
    assert any(f"{empty} empty cell(s)" in n for n in report.notes), report.notes
    _same_fit(stored, truth, split=False)
    # and the trial comparison runs on the store as on the truth
    with warnings.catch_warnings():  # few clusters in a small trial: expected here
        warnings.simplefilter("ignore", StatisticalWarning)
        got = compare(tmp_path / "s.duckdb").table
        want = compare(truth).table
    key = ["outcome", "measure", "comparison"]
    rows = got.merge(want, on=key, suffixes=("", "_truth"))
    md = rows[rows["measure"] == "mean_difference"]
    assert len(md) == 1
    np.testing.assert_allclose(md["estimate"], md["estimate_truth"], rtol=1e-8)


def test_workbook_with_a_sheet_per_table(tmp_path: Path) -> None:
    feeds = shapes.trial(seed=12, n_subjects=14)
    export = shapes.workbook_per_table(feeds, tmp_path)
    _ingest(export, WORKBOOK, tmp_path / "s.duckdb")
    truth = shapes.expected_tables(feeds, {"L": "L", "R": "R"})
    stored = _stored(tmp_path / "s.duckdb")
    _check_tables(
        stored,
        truth,
        {
            "subjects": SUBJECT_COLS,
            "units": UNIT_COLS,
            "sessions": [*SESSION_COLS, "needle_depth_mm", "passes", "prp_volume_ml"],
            "assessments": SCORE_COLS,
            "adverse_events": AE_COLS,
        },
    )
    _same_fit(stored, truth, split=True)


@pytest.mark.parametrize("suffix", [".sav", ".dta"])
def test_spss_and_stata_files_with_value_labels(tmp_path: Path, suffix: str) -> None:
    feeds = shapes.trial(seed=13, n_subjects=18, design="parallel")
    export = shapes.stat_file(feeds, tmp_path, suffix)
    report = _ingest(export, STAT, tmp_path / "s.duckdb")
    subjects = {f.table: f for f in report.files}["subjects"]
    assert subjects.rows_in == feeds.tables["subjects"]["subject_id"].nunique()
    assert any("repeated row(s) collapsed" in n for n in report.notes)
    truth = shapes.expected_tables(feeds, {"W": ""})
    a = truth["assessments"]
    truth["assessments"] = a[
        (a["instrument"] == "gb_quant") & (a["rater_role"] == "investigator")
    ].copy()
    for name in ("subjects", "units", "assessments"):
        for col in ("subject_id", "unit_id"):
            if col in truth[name]:
                truth[name][col] = truth[name][col].astype(str).str.lstrip("S").str.lstrip("0")
    stored = _stored(tmp_path / "s.duckdb")
    _check_tables(
        stored,
        truth,
        {
            "subjects": ["subject_id", "site_id", "age", "sex", "phototype"],
            "units": UNIT_COLS,
            "assessments": SCORE_COLS,
        },
    )
    _same_fit(stored, truth, split=False)
