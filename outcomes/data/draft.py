"""Draft a mapping file for an export: a starting point that accounts for every column.

``outcomes map draft EXPORT [--redcap-dictionary DD.csv] [--table T ...]`` writes YAML in the
full form (:mod:`outcomes.data.mapping`) where each export column is either mapped onto a
schema column (same name, or REDCap's ``record_id`` and data access group), recoded (coded
values whose labels match a codelist get a ``values:`` entry), used as a row filter, or listed
under ``drop:`` with a comment saying why (unmapped, form status, identifier). Dates are named
with the ``compute: {<day column>: {study_day: <date>}}`` line to write. The draft is read back
by the mapping loader, so what it writes is valid; what it guesses must be checked by a person.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from outcomes.data.dictionary import Dictionary, load_dictionary, normalise_name
from outcomes.data.readers import read_feed
from outcomes.data.redcap import SYSTEM_COLUMNS, RedcapDictionary, read_redcap_dictionary

__all__ = ["draft_mapping"]

DATE_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}|^\d{1,2}[/.]\d{1,2}[/.]\d{4}$")
ANCHOR_WORDS = ("enrol", "enroll", "consent", "random", "baseline", "inclusion", "screen")
#: export column names (normalised) that mean a schema column under another name
ALIASES = {
    "record_id": "subject_id",
    "redcap_data_access_group": "site_id",
    "patient_id": "subject_id",
    "subject": "subject_id",
    "site": "site_id",
    "centre": "site_id",
    "center": "site_id",
    "arm": "modality",
    "treatment": "modality",
    "gender": "sex",
    "fitzpatrick": "phototype",
    "skin_type": "phototype",
}
#: words in an export column's name that suggest a schema column (the first match wins)
KEYWORDS = {
    "needle_depth_mm": ("depth",),
    "passes": ("passes",),
    "prp_volume_ml": ("prp_ml", "prp_vol"),
    "device": ("device",),
    "modality": ("product", "modality", "arm", "treatment"),
    "numbing_agent": ("anaesth", "anesth", "numbing"),
    "session_number": ("number", "session_no"),
    "severity": ("severity",),
    "serious": ("serious",),
    "relatedness": ("relat", "causal"),
    "duration_days": ("duration",),
    "term": ("term", "event"),
    "visit": ("visit",),
    "rater_role": ("rater_role", "rated_by"),
    "rater_id": ("rater",),
    "end_reason": ("reason",),
    "phototype": ("fitz", "skin", "phototype"),
}
#: words in a REDCap form's name that tell its table
FORM_WORDS = {
    "subjects": ("enrol", "enroll", "demograph", "baseline", "screen", "consent"),
    "sessions": ("session", "treatment", "procedure"),
    "assessments": ("assess", "score", "outcome", "evaluation", "visit"),
    "adverse_events": ("adverse", "safety", "side_effect", "complication"),
}
DAY_COLUMNS = {
    "subjects": "end_day",
    "sessions": "day",
    "assessments": "day",
    "adverse_events": "onset_day",
}


def _q(text: str) -> str:
    """A YAML scalar: plain when safe, else double-quoted (JSON is YAML)."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.+-]*", text) and text.lower() not in (
        "true",
        "false",
        "null",
        "yes",
        "no",
        "on",
        "off",
        "y",
        "n",
    ):
        return text
    return json.dumps(text)


@dataclass
class _Group:
    """Columns that go to one table (a REDCap form, or the whole export)."""

    name: str
    columns: list[str]
    table: str | None = None
    where: str | None = None  # value of redcap_repeat_instrument
    mapped: dict[str, str] = field(default_factory=dict)
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    dates: list[str] = field(default_factory=list)


def _target(column: str, table: str, d: Dictionary, loose: bool = False) -> str | None:
    """The schema column of ``table`` an export column means: same name or alias, or (with
    ``loose``) a keyword in its name."""
    name = normalise_name(column)
    name = ALIASES.get(name, name)
    columns = d.table(table).columns
    if name in columns:
        return name
    if loose:
        for target, words in KEYWORDS.items():
            if target in columns and any(w in name for w in words):
                return target
    return None


def _form_table(form: str, candidates: list[str]) -> str | None:
    name = normalise_name(form)
    for table, words in FORM_WORDS.items():
        if table in candidates and any(w in name for w in words):
            return table
    return None


def _recode(labels: dict[str, str], codelist: dict[str, str]) -> dict[str, str]:
    """Label -> code of the codelist whose code or description matches the label."""
    out = {}
    for label in labels.values():
        low = label.strip().lower()
        for code, description in codelist.items():
            if low in (code.lower(), description.lower(), code.lower().replace("_", " ")):
                if label != code:
                    out[label] = code
                break
    return out


def draft_mapping(
    export: Path,
    redcap_dictionary: Path | None = None,
    tables: list[str] | None = None,
    d: Dictionary | None = None,
) -> str:
    """A starting mapping for ``export`` as YAML text (see the module docstring).

    Parameters
    ----------
    export
        The export file (CSV, Excel's first sheet, Parquet, SPSS, Stata or SAS).
    redcap_dictionary
        REDCap's Data Dictionary CSV: forms become tables with their row filter, coded
        fields are decoded, fields flagged as identifiers are named.
    tables
        Only draft these tables (default: every table some column matches).
    """
    d = d or load_dictionary()
    for t in tables or []:
        d.table(t)  # an unknown table name is an InputError naming the tables
    raw = read_feed(export)
    columns = list(raw.data.columns)
    dd = read_redcap_dictionary(redcap_dictionary) if redcap_dictionary else None
    labels = {**(dd.labels() if dd else {}), **raw.labels}
    candidates = list(tables or d.tables)
    groups = _groups(columns, dd)
    for g in groups:
        scores = {
            t: sum(_target(c, t, d) is not None for c in g.columns if c not in SYSTEM_COLUMNS)
            for t in candidates
        }
        best = max(scores.values(), default=0)
        g.table = _form_table(g.name, candidates) if dd is not None else None
        if g.table is None and best:
            g.table = next(t for t in candidates if scores[t] == best)
    used: set[str] = set()
    drop: list[tuple[str, str]] = []
    has_instrument = "redcap_repeat_instrument" in columns
    anchor = _anchor(columns, raw.data, dd)
    for g in groups:
        for c in g.columns:
            why = _identifier(c, dd, d)
            if why:
                drop.append((c, why))
                used.add(c)
                continue
            if g.table is None:
                continue
            target = _target(c, g.table, d, loose=not _is_date(c, raw.data[c], dd))
            if target is not None and target not in g.mapped.values():
                g.mapped[c] = target
                col = d.table(g.table).columns[target]
                if c in labels and col.codelist:
                    recode = _recode(labels[c], d.codelists[col.codelist])
                    if recode:
                        g.values[target] = recode
                used.add(c)
            elif c != anchor and _is_date(c, raw.data[c], dd):
                if g.dates or DAY_COLUMNS.get(g.table) is None:
                    drop.append((c, "a date: compute: {<day column>: {study_day: ...}} or drop"))
                    used.add(c)
                else:
                    g.dates.append(c)
    # the record id (and site) go to every table that has them
    for g in groups:
        if g.table is None:
            continue
        for c in ("record_id", "redcap_data_access_group"):
            target = _target(c, g.table, d) if c in columns else None
            if target and target not in g.mapped.values():
                g.mapped[c] = target
                used.add(c)
    lines = [
        f"# Draft mapping for {export.name} (written by `outcomes map draft`).",
        "# Every export column is mapped, recoded, used as a filter or dropped with a reason.",
        "# Check each guess, fill in the study's constants and the study days, then save it as",
        f"# {export.name}.mapping.yaml beside the export.",
    ]
    if dd is not None:
        lines.append(f"redcap_dictionary: {_q(dd.path.name)}")
    if labels:
        decode = [c for c in columns if c in labels]
        lines.append(f"decode: [{', '.join(map(_q, decode))}]   # codes -> labels")
    if anchor:
        where = ', where: {redcap_repeat_instrument: ""}' if has_instrument else ""
        key = "record_id" if "record_id" in columns else columns[0]
        lines.append(f"anchor: {{column: {_q(anchor)}, by: {_q(key)}{where}}}   # day 0; check")
        used.update({anchor, key})
    else:
        lines.append("# anchor: {column: <enrolment date>, by: <subject column>}  # for study days")
    if has_instrument:
        used.add("redcap_repeat_instrument")
    lines.append("tables:")
    studies_done = False
    for g in groups:
        if g.table is None:
            continue
        if g.table == "studies":
            studies_done = True
        lines += _table_lines(g, d, has_instrument)
    if not studies_done and (tables is None or "studies" in tables):
        lines += [
            "  studies:   # one row from constants: fill in",
            '    constants: {study_id: STUDY1, title: "Title", design: split_body,'
            " indication: acne_scars}",
        ]
    for g in groups:
        for c in g.dates:
            used.add(c)
    left = [c for c in columns if c not in used and c not in {x for x, _ in drop}]
    for c in left:
        drop.append((c, _unmapped_reason(c, dd, groups)))
    if drop:
        lines.append("drop:")
        lines += [f"  - {_q(c)}   # {why}" for c, why in drop]
    return "\n".join(lines) + "\n"


def _groups(columns: list[str], dd: RedcapDictionary | None) -> list[_Group]:
    """Columns grouped by REDCap form (repeating forms filtered by their instrument)."""
    if dd is None:
        return [_Group("export", list(columns))]
    by_form: dict[str, list[str]] = {}
    for c in columns:
        f = dd.field_of(c)
        form = f.form if f is not None else ""
        if not form and c.endswith("_complete"):
            form = c.removesuffix("_complete")
        by_form.setdefault(form, []).append(c)
    groups = []
    first = dd.forms()[0] if dd.forms() else ""
    for form, cols in by_form.items():
        if not form:
            continue
        g = _Group(form, cols)
        g.where = "" if form == first else form
        groups.append(g)
    groups.insert(0, _Group("(REDCap system columns)", by_form.get("", [])))
    return groups


def _identifier(column: str, dd: RedcapDictionary | None, d: Dictionary) -> str:
    f = dd.field_of(column) if dd else None
    if f is not None and f.identifier:
        return "IDENTIFIER (REDCap: Identifier? = y): export without it; ingest refuses it"
    if d.looks_like_identifier(column):
        return "IDENTIFIER (name looks like one): export without it; ingest refuses it"
    return ""


def _is_date(column: str, values, dd: RedcapDictionary | None) -> bool:
    f = dd.field_of(column) if dd else None
    if f is not None:
        return f.is_date
    sample = [v for v in values.dropna().head(50) if str(v).strip()]
    return bool(sample) and all(DATE_TEXT.match(str(v)) for v in sample)


def _anchor(columns: list[str], data, dd: RedcapDictionary | None) -> str | None:
    dates = [c for c in columns if _is_date(c, data[c], dd)]
    for c in dates:
        if any(w in c.lower() for w in ANCHOR_WORDS):
            return c
    return dates[0] if dates else None


def _table_lines(g: _Group, d: Dictionary, has_instrument: bool) -> list[str]:
    assert g.table is not None
    t = d.table(g.table)
    out = [f"  {g.table}:   # from {g.name}"]
    if has_instrument and g.where is not None:
        out.append(f"    where: {{redcap_repeat_instrument: {json.dumps(g.where)}}}")
    if g.mapped:
        out.append("    columns:")
        out += [f"      {_q(src)}: {tgt}" for src, tgt in g.mapped.items()]
    day = DAY_COLUMNS.get(g.table)
    if g.dates and day:
        out.append("    compute:")
        out.append(
            f"      {day}: {{study_day: {_q(g.dates[0])}}}   # a date -> days from the anchor"
        )
    if g.values:
        out.append("    values:")
        for target, codes in g.values.items():
            pairs = ", ".join(f"{_q(k)}: {_q(v)}" for k, v in codes.items())
            out.append(f"      {target}: {{{pairs}}}")
    made = set(g.mapped.values()) | ({day} if g.dates and day else set())
    missing = [c for c in t.required_columns if c not in made]
    if "study_id" in missing:
        out.append("    constants: {study_id: STUDY1}   # your study's id, the same in every table")
        missing.remove("study_id")
    if missing:
        out.append(f"    # required, not found: {', '.join(missing)} (map, compute or constants)")
    return out


def _unmapped_reason(column: str, dd: RedcapDictionary | None, groups: list[_Group]) -> str:
    if column.endswith("_complete"):
        return "REDCap form status"
    if column == "redcap_repeat_instance":
        return "REDCap instance number (ae_seq or session_number, if it is one)"
    if column in SYSTEM_COLUMNS:
        return "REDCap system column"
    f = dd.field_of(column) if dd else None
    label = f" ({f.label})" if f is not None and f.label else ""
    if any(g.table is None and column in g.columns for g in groups):
        return f"unmapped{label}: no table matched its form; map it or keep it dropped"
    return f"unmapped{label}: no schema column matched; map it or keep it dropped"
