"""Study exports of several real-world shapes, built from a simulated trial, for mapping tests.

Each builder writes an export (and what comes with it) into a folder and returns its path, so a
test can ingest it with a mapping alone and compare the store with the simulator's own tables:

- :func:`redcap_split_face`: a REDCap records export (raw CSV) of a split-face trial with its
  Data Dictionary CSV: one enrolment row per record, repeating treatment, assessment and adverse
  event instruments, calendar dates, coded arms, sides and grades, the data access group as site;
- :func:`parallel_wide_csv`: a parallel-arm trial, one row per subject, one column per visit and
  per session date, day/month/year dates, letters for arms;
- :func:`workbook_per_table`: an Excel workbook with one sheet per table in a site's own words,
  dates as Excel dates, the anchor date on another sheet;
- :func:`stat_file`: an SPSS or Stata file, one row per assessment, numeric codes with value
  labels, subjects and units repeated on every row.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from outcomes.simulate.output import Feeds
from outcomes.simulate.trial import simulate_trial

DD_COLUMNS = [
    "Variable / Field Name",
    "Form Name",
    "Section Header",
    "Field Type",
    "Field Label",
    "Choices, Calculations, OR Slider Labels",
    "Field Note",
    "Text Validation Type OR Show Slider Number",
    "Text Validation Min",
    "Text Validation Max",
    "Identifier?",
    "Branching Logic (Show field only if...)",
    "Required Field?",
    "Custom Alignment",
    "Question Number (surveys only)",
    "Matrix Group Name",
    "Matrix Ranking?",
    "Field Annotation",
]
SIDE = {"left": ("1", "Left"), "right": ("2", "Right")}
GRADES = ("gb_qual", "gb_quant")


def trial(seed: int = 7, n_subjects: int = 16, design: str = "split_body") -> Feeds:
    """A small simulated trial (the truth the exports are made from)."""
    return simulate_trial(seed=seed, n_subjects=n_subjects, design=design)


def enrolment_dates(subjects: pd.DataFrame) -> dict[str, date]:
    """A calendar enrolment date per subject (every third day from 8 January 2024)."""
    start = date(2024, 1, 8)
    return {s: start + timedelta(days=3 * i) for i, s in enumerate(subjects["subject_id"])}


def _text(value: object) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):  # type: ignore[arg-type]
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, bool | np.bool_):
        return "1" if value else "0"
    return str(value)


def _codes(labels: list[str]) -> str:
    return " | ".join(f"{i}, {label}" for i, label in enumerate(labels, start=1))


def redcap_split_face(feeds: Feeds, folder: Path) -> tuple[Path, Path]:
    """``trial_export.csv`` and ``trial_DataDictionary.csv`` (see the module docstring)."""
    t = feeds.tables
    subjects, units, sessions = t["subjects"], t["units"], t["sessions"]
    enrol = enrolment_dates(subjects)
    terms = (
        list(t["adverse_events"]["term"].cat.categories)
        if hasattr(t["adverse_events"]["term"], "cat")
        else sorted(set(t["adverse_events"]["term"]))
    )
    term_code = {term: str(i) for i, term in enumerate(terms, start=1)}
    reasons = ["completed", "lost to follow-up", "withdrew consent", "adverse event", "other"]
    reason_code = {
        "completed": "1",
        "lost_to_follow_up": "2",
        "withdrew": "3",
        "adverse_event": "4",
        "other": "5",
    }
    related = ["not related", "unlikely", "possible", "probable", "definite"]
    rel_code = {
        c: str(i)
        for i, c in enumerate(
            ["not_related", "unlikely", "possible", "probable", "definite"], start=1
        )
    }
    visits = ["baseline", "week_4", "week_8", "week_12", "week_24"]
    fields = [
        ("record_id", "enrolment", "text", "Record ID", "", ""),
        ("enrol_date", "enrolment", "text", "Date of enrolment", "", "date_ymd"),
        ("age", "enrolment", "text", "Age (years)", "", "integer"),
        ("sex", "enrolment", "radio", "Sex", "1, Female | 2, Male", ""),
        (
            "phototype",
            "enrolment",
            "dropdown",
            "Fitzpatrick phototype",
            _codes(["I", "II", "III", "IV", "V", "VI"]),
            "",
        ),
        ("arm_left", "enrolment", "radio", "Treatment, left side", "1, MN | 2, MN+PRP", ""),
        ("arm_right", "enrolment", "radio", "Treatment, right side", "1, MN | 2, MN+PRP", ""),
        ("end_date", "enrolment", "text", "Date of last contact", "", "date_ymd"),
        ("end_reason", "enrolment", "dropdown", "End of follow-up", _codes(reasons), ""),
        ("tx_side", "treatment", "radio", "Side", "1, Left | 2, Right", ""),
        ("tx_number", "treatment", "text", "Session number", "", "integer"),
        ("tx_date", "treatment", "text", "Date of session", "", "date_ymd"),
        ("tx_product", "treatment", "radio", "Product", "1, MN | 2, MN+PRP", ""),
        ("tx_device", "treatment", "radio", "Device", "1, pen | 2, roller", ""),
        ("tx_depth", "treatment", "text", "Needle depth (mm)", "", "number"),
        ("tx_passes", "treatment", "text", "Passes", "", "integer"),
        (
            "tx_anaesthetic",
            "treatment",
            "dropdown",
            "Topical anaesthetic",
            "0, none | 1, lidocaine | 2, lidocaine_prilocaine | 3, tetracaine",
            "",
        ),
        ("tx_prp_ml", "treatment", "text", "PRP volume (mL)", "", "number"),
        ("as_side", "assessment", "radio", "Side", "1, Left | 2, Right", ""),
        (
            "as_visit",
            "assessment",
            "dropdown",
            "Visit",
            " | ".join(f"{i}, {v}" for i, v in enumerate(visits)),
            "",
        ),
        ("as_date", "assessment", "text", "Date of assessment", "", "date_ymd"),
        (
            "as_rater_role",
            "assessment",
            "radio",
            "Rater",
            "1, investigator | 2, blinded_photo_rater",
            "",
        ),
        ("as_rater", "assessment", "text", "Rater code", "", ""),
        ("gbqs", "assessment", "text", "Goodman & Baron quantitative score", "", "integer"),
        ("gbql", "assessment", "text", "Goodman & Baron grade (1-4)", "", "integer"),
        ("ae_term", "adverse_event", "dropdown", "Event", _codes(terms), ""),
        ("ae_side", "adverse_event", "radio", "Side (if local)", "1, Left | 2, Right", ""),
        ("ae_onset", "adverse_event", "text", "Date of onset", "", "date_ymd"),
        ("ae_duration", "adverse_event", "text", "Duration (days)", "", "number"),
        (
            "ae_severity",
            "adverse_event",
            "radio",
            "Severity",
            "1, mild | 2, moderate | 3, severe",
            "",
        ),
        ("ae_serious", "adverse_event", "yesno", "Serious?", "", ""),
        ("ae_related", "adverse_event", "dropdown", "Relation to treatment", _codes(related), ""),
    ]
    dd = pd.DataFrame("", index=range(len(fields)), columns=DD_COLUMNS)
    for i, (name, form, ftype, label, choices, valid) in enumerate(fields):
        dd.loc[i, [DD_COLUMNS[j] for j in (0, 1, 3, 4, 5, 7)]] = [
            name,
            form,
            ftype,
            label,
            choices,
            valid,
        ]
    columns = [
        "record_id",
        "redcap_repeat_instrument",
        "redcap_repeat_instance",
        "redcap_data_access_group",
    ]
    forms: dict[str, list[str]] = {}
    for name, form, *_ in fields:
        forms.setdefault(form, [])
        if name != "record_id":
            forms[form].append(name)
    for form, names in forms.items():
        columns += [*names, f"{form}_complete"]

    def when(subject: str, day: object) -> str:
        return "" if pd.isna(day) else (enrol[subject] + timedelta(days=int(day))).isoformat()  # type: ignore[call-overload]

    def side_of(unit: object) -> str:
        return "" if pd.isna(unit) else SIDE[str(units_by_id.loc[unit, "side"])][0]  # type: ignore[call-overload]

    units_by_id = units.set_index("unit_id")
    records: list[dict[str, str]] = []
    scores = t["assessments"][t["assessments"]["instrument"].isin(GRADES)]
    wide = scores.pivot_table(
        index=["unit_id", "visit", "day", "rater_role", "rater_id"],
        columns="instrument",
        values="value",
        aggfunc="first",
        observed=True,
    ).reset_index()
    for s in subjects.itertuples(index=False):
        sid = str(s.subject_id)
        mine = units[units["subject_id"] == sid].set_index("side")
        records.append(
            {
                "record_id": sid,
                "redcap_data_access_group": str(s.site_id).lower(),
                "enrol_date": enrol[sid].isoformat(),
                "age": _text(s.age),
                "sex": {"female": "1", "male": "2"}[str(s.sex)],
                "phototype": str(["I", "II", "III", "IV", "V", "VI"].index(str(s.phototype)) + 1),
                "arm_left": {"MN": "1", "MN+PRP": "2"}[str(mine.loc["left", "modality"])],
                "arm_right": {"MN": "1", "MN+PRP": "2"}[str(mine.loc["right", "modality"])],
                "end_date": when(sid, s.end_day),
                "end_reason": "" if pd.isna(s.end_reason) else reason_code[str(s.end_reason)],
                "enrolment_complete": "2",
            }
        )
        unit_ids = set(mine["unit_id"])
        tx = sessions[sessions["unit_id"].isin(unit_ids)]
        for i, x in enumerate(tx.itertuples(index=False), start=1):
            records.append(
                {
                    "record_id": sid,
                    "redcap_repeat_instrument": "treatment",
                    "redcap_repeat_instance": str(i),
                    "redcap_data_access_group": str(s.site_id).lower(),
                    "tx_side": side_of(x.unit_id),
                    "tx_number": _text(x.session_number),
                    "tx_date": when(sid, x.day),
                    "tx_product": {"MN": "1", "MN+PRP": "2"}[str(x.modality)],
                    "tx_device": {"pen": "1", "roller": "2"}[str(x.device)],
                    "tx_depth": _text(x.needle_depth_mm),
                    "tx_passes": _text(x.passes),
                    "tx_anaesthetic": {
                        "none": "0",
                        "lidocaine": "1",
                        "lidocaine_prilocaine": "2",
                        "tetracaine": "3",
                    }[str(x.numbing_agent)],
                    "tx_prp_ml": _text(x.prp_volume_ml),
                    "treatment_complete": "2",
                }
            )
        asm = wide[wide["unit_id"].isin(unit_ids)]
        for i, a in enumerate(asm.to_dict("records"), start=1):
            records.append(
                {
                    "record_id": sid,
                    "redcap_repeat_instrument": "assessment",
                    "redcap_repeat_instance": str(i),
                    "redcap_data_access_group": str(s.site_id).lower(),
                    "as_side": side_of(a["unit_id"]),
                    "as_visit": str(visits.index(str(a["visit"]))),
                    "as_date": when(sid, a["day"]),
                    "as_rater_role": {"investigator": "1", "blinded_photo_rater": "2"}[
                        str(a["rater_role"])
                    ],
                    "as_rater": str(a["rater_id"]),
                    "gbqs": _text(a.get("gb_quant")),
                    "gbql": _text(a.get("gb_qual")),
                    "assessment_complete": "2",
                }
            )
        aes = t["adverse_events"][t["adverse_events"]["subject_id"] == sid]
        for e in aes.itertuples(index=False):
            records.append(
                {
                    "record_id": sid,
                    "redcap_repeat_instrument": "adverse_event",
                    "redcap_repeat_instance": _text(e.ae_seq),
                    "redcap_data_access_group": str(s.site_id).lower(),
                    "ae_term": term_code[str(e.term)],
                    "ae_side": side_of(e.unit_id),
                    "ae_onset": when(sid, e.onset_day),
                    "ae_duration": _text(e.duration_days),
                    "ae_severity": {"mild": "1", "moderate": "2", "severe": "3"}[str(e.severity)],
                    "ae_serious": _text(bool(e.serious)),
                    "ae_related": rel_code[str(e.relatedness)],
                    "adverse_event_complete": "2",
                }
            )
    export = pd.DataFrame(records, columns=columns).fillna("")
    folder.mkdir(parents=True, exist_ok=True)
    export.to_csv(folder / "trial_export.csv", index=False)
    dd.to_csv(folder / "trial_DataDictionary.csv", index=False)
    return folder / "trial_export.csv", folder / "trial_DataDictionary.csv"


def expected_tables(feeds: Feeds, unit_suffix: dict[str, str]) -> dict[str, pd.DataFrame]:
    """The simulator's tables as an export carries them: grades only, unit ids renamed."""
    t = {k: v.copy() for k, v in feeds.tables.items()}
    t["assessments"] = t["assessments"][t["assessments"]["instrument"].isin(GRADES)]

    def rename(ids: pd.Series) -> pd.Series:
        out = ids.astype("string")
        for old, new in unit_suffix.items():
            out = out.str.replace(f"-{old}$", f"-{new}" if new else "", regex=True)
        return out

    for name in ("units", "sessions", "assessments", "adverse_events"):
        t[name]["unit_id"] = rename(t[name]["unit_id"])
    return t


def same_rows(stored: pd.DataFrame, expected: pd.DataFrame, columns: list[str]) -> tuple[bool, str]:
    """Whether two tables hold the same rows in ``columns`` (as text, numbers to 1e-9)."""

    def norm(df: pd.DataFrame) -> pd.DataFrame:
        out = pd.DataFrame(index=range(len(df)))
        for c in columns:
            s = df[c].reset_index(drop=True)
            if pd.api.types.is_bool_dtype(s):
                out[c] = s.map(lambda v: "" if pd.isna(v) else str(bool(v)).lower())
            elif pd.api.types.is_numeric_dtype(s):
                out[c] = s.map(lambda v: "" if pd.isna(v) else f"{float(v):.9g}")
            else:
                out[c] = s.astype("string").fillna("").str.lower()
        return out.sort_values(columns).reset_index(drop=True)

    a, b = norm(stored), norm(expected)
    if a.equals(b):
        return True, ""
    diff = pd.concat([a, b]).drop_duplicates(keep=False)
    return False, f"{len(a)} vs {len(b)} rows; differing:\n{diff.head(10).to_string()}"


def _dmy(d: date) -> str:
    return d.strftime("%d/%m/%Y")


def parallel_wide_csv(feeds: Feeds, folder: Path) -> Path:
    """``parallel_trial.csv``: one row per subject, a column per visit score and session date."""
    t = feeds.tables
    enrol = enrolment_dates(t["subjects"])
    units = t["units"].set_index("subject_id")
    sessions = t["sessions"].pivot_table(
        index="unit_id", columns="session_number", values="day", aggfunc="first"
    )
    scores = t["assessments"][
        (t["assessments"]["instrument"] == "gb_quant")
        & (t["assessments"]["rater_role"] == "investigator")
    ]
    raters = scores.groupby("unit_id", observed=True)["rater_id"].agg(lambda r: set(r))
    wide = scores.pivot_table(
        index="unit_id", columns="day", values="value", aggfunc="first", observed=True
    )
    rows = []
    for s in t["subjects"].itertuples(index=False):
        sid = str(s.subject_id)
        unit = str(units.loc[sid, "unit_id"])
        [rater] = raters.get(unit, {""})
        row = {
            "pid": sid,
            "centre": str(s.site_id),
            "age": _text(s.age),
            "gender": {"female": "F", "male": "M"}[str(s.sex)],
            "fitz": str(s.phototype),
            "arm": {"MN": "A", "MN+PRP": "B"}[str(units.loc[sid, "modality"])],
            "enrolled": _dmy(enrol[sid]),
            "last_seen": "" if pd.isna(s.end_day) else _dmy(enrol[sid] + timedelta(int(s.end_day))),
            "end_why": _text(s.end_reason),
            "investigator": rater,
        }
        for n in (1, 2, 3):
            day = sessions.loc[unit, n] if unit in sessions.index else np.nan
            row[f"s{n}_date"] = "" if pd.isna(day) else _dmy(enrol[sid] + timedelta(int(day)))
        for day, col in zip((0, 28, 56, 84, 168), ("w0", "w4", "w8", "w12", "w24"), strict=True):
            value = wide.loc[unit, day] if unit in wide.index and day in wide.columns else np.nan
            row[f"gbqs_{col}"] = _text(value)
        rows.append(row)
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(folder / "parallel_trial.csv", index=False)
    return folder / "parallel_trial.csv"


def workbook_per_table(feeds: Feeds, folder: Path) -> Path:
    """``site_workbook.xlsx``: sheets Patients, Sides, Treatments, Scores and Side effects."""
    t = feeds.tables
    enrol = enrolment_dates(t["subjects"])
    units = t["units"].set_index("unit_id")
    letter = {"left": "L", "right": "R"}

    def stamp(sid: str, day: object) -> object:
        if pd.isna(day):  # type: ignore[call-overload]
            return None
        return pd.Timestamp(enrol[sid] + timedelta(days=int(day)))  # type: ignore[call-overload]

    patients = pd.DataFrame(
        {
            "Patient": t["subjects"]["subject_id"].astype(str),
            "Clinic": t["subjects"]["site_id"].astype(str),
            "Age": t["subjects"]["age"].astype(int),
            "Sex": t["subjects"]["sex"].astype(str).str.upper().str[0],
            "Skin type": t["subjects"]["phototype"].astype(str),
            "Enrolled": [pd.Timestamp(enrol[s]) for s in t["subjects"]["subject_id"]],
            "Last contact": [
                stamp(str(s), d)
                for s, d in zip(t["subjects"]["subject_id"], t["subjects"]["end_day"], strict=True)
            ],
            "Reason": t["subjects"]["end_reason"].astype(str),
        }
    )
    sides = pd.DataFrame(
        {
            "Patient": t["units"]["subject_id"].astype(str),
            "Side": t["units"]["side"].astype(str).map(letter),
            "Treatment": t["units"]["modality"].astype(str),
        }
    )
    s = t["sessions"]
    s_subject = [str(units.loc[u, "subject_id"]) for u in s["unit_id"]]
    treatments = pd.DataFrame(
        {
            "Patient": s_subject,
            "Side": [letter[str(units.loc[u, "side"])] for u in s["unit_id"]],
            "Session": s["session_number"].astype(int),
            "Date": [stamp(p, d) for p, d in zip(s_subject, s["day"], strict=True)],
            "Product": s["modality"].astype(str),
            "Device": s["device"].astype(str),
            "Depth mm": s["needle_depth_mm"].astype(float),
            "Passes": s["passes"].astype("Int64"),
            "Anaesthetic": s["numbing_agent"].astype(str),
            "PRP mL": s["prp_volume_ml"].astype(float),
        }
    )
    a = t["assessments"][t["assessments"]["instrument"].isin(GRADES)]
    wide = a.pivot_table(
        index=["unit_id", "visit", "day", "rater_role", "rater_id"],
        columns="instrument",
        values="value",
        aggfunc="first",
        observed=True,
    ).reset_index()
    a_subject = [str(units.loc[u, "subject_id"]) for u in wide["unit_id"]]
    scores = pd.DataFrame(
        {
            "Patient": a_subject,
            "Side": [letter[str(units.loc[u, "side"])] for u in wide["unit_id"]],
            "Visit": wide["visit"].astype(str),
            "Date": [stamp(p, d) for p, d in zip(a_subject, wide["day"], strict=True)],
            "Rated by": wide["rater_role"].astype(str),
            "Rater": wide["rater_id"].astype(str),
            "GB score": wide["gb_quant"],
            "GB grade": wide["gb_qual"],
        }
    )
    e = t["adverse_events"]
    effects = pd.DataFrame(
        {
            "Patient": e["subject_id"].astype(str),
            "No": e["ae_seq"].astype(int),
            "Event": e["term"].astype(str),
            "Side": [
                None if pd.isna(u) else letter[str(units.loc[u, "side"])] for u in e["unit_id"]
            ],
            "Onset": [
                stamp(str(p), d) for p, d in zip(e["subject_id"], e["onset_day"], strict=True)
            ],
            "Days": e["duration_days"].astype(float),
            "Severity": e["severity"].astype(str),
            "Serious": e["serious"].map({True: "Y", False: "N"}),
            "Relation": e["relatedness"].astype(str),
        }
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "site_workbook.xlsx"
    with pd.ExcelWriter(path) as xl:
        for name, df in [
            ("Patients", patients),
            ("Sides", sides),
            ("Treatments", treatments),
            ("Scores", scores),
            ("Side effects", effects),
        ]:
            df.to_excel(xl, sheet_name=name, index=False)
    return path


def stat_file(feeds: Feeds, folder: Path, suffix: str) -> Path:
    """``scores.sav`` or ``scores.dta``: one row per investigator G&B score of a parallel trial,
    subject and arm repeated on every row, numeric codes with value labels, real dates."""
    import pyreadstat

    t = feeds.tables
    enrol = enrolment_dates(t["subjects"])
    subjects = t["subjects"].set_index("subject_id")
    units = t["units"].set_index("unit_id")
    a = t["assessments"][
        (t["assessments"]["instrument"] == "gb_quant")
        & (t["assessments"]["rater_role"] == "investigator")
    ]
    visits = ["baseline", "week_4", "week_8", "week_12", "week_24"]
    sites = sorted(set(t["subjects"]["site_id"].astype(str)))
    rows = []
    for r in a.itertuples(index=False):
        sid = str(units.loc[r.unit_id, "subject_id"])
        s = subjects.loc[sid]
        rows.append(
            {
                "subj": float(sid.lstrip("S")),
                "site": float(sites.index(str(s["site_id"])) + 1),
                "age": float(s["age"]),
                "sex": {"female": 1.0, "male": 2.0}[str(s["sex"])],
                "skin": float(["I", "II", "III", "IV", "V", "VI"].index(str(s["phototype"])) + 1),
                "arm": {"MN": 1.0, "MN+PRP": 2.0}[str(units.loc[r.unit_id, "modality"])],
                "enrol": pd.Timestamp(enrol[sid]),
                "visit": float(visits.index(str(r.visit))),
                "vdate": pd.Timestamp(enrol[sid] + timedelta(days=int(r.day))),
                "rater": str(r.rater_id),
                "gbqs": float(r.value),
            }
        )
    df = pd.DataFrame(rows)
    labels = {
        "site": {float(i + 1): s for i, s in enumerate(sites)},
        "sex": {1.0: "Female", 2.0: "Male"},
        "skin": {float(i + 1): p for i, p in enumerate(["I", "II", "III", "IV", "V", "VI"])},
        "arm": {1.0: "MN", 2.0: "MN+PRP"},
        "visit": {float(i): v for i, v in enumerate(visits)},
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"scores{suffix}"
    if suffix == ".sav":
        pyreadstat.write_sav(df, path, variable_value_labels=labels)
    else:
        int_labels = {k: {int(c): v for c, v in m.items()} for k, m in labels.items()}
        pyreadstat.write_dta(df, path, variable_value_labels=int_labels)
    return path
