"""The steps of a full mapping, applied to an export read as text (see :mod:`.mapping`).

Order, per table: decode value labels (whole export), row filters (``where``, ``where_not``),
wide to long (``melt``), then the output columns (``columns``, ``compute``, ``constants``), then
``values`` recodes them, then ``distinct``. Nothing is dropped unsaid: rows left out by filters,
empty melted cells and collapsed duplicates are counted in the table's notes, and a date that
cannot become a study day is a row violation (quarantined with the source row).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from outcomes.data.mapping import MappedTable, Mapping, TableMap

__all__ = ["Anchor", "build_table", "decode", "find_anchor", "parse_dates", "unused_columns"]

VIOLATIONS = ["row", "column", "value", "rule", "message"]


@dataclass
class Anchor:
    """Day 0 per key: key tuple -> date, and key tuple -> why there is none."""

    keys: list[str]
    dates: dict[tuple[str, ...], pd.Timestamp]
    problems: dict[tuple[str, ...], tuple[str, str]]  # key -> (rule, message)


def decode(
    m: Mapping, frames: dict[str | None, pd.DataFrame], labels: dict[str, dict[str, str]]
) -> dict[str | None, pd.DataFrame]:
    """Replace codes by their labels in the columns ``decode:`` names (all labelled if true)."""
    model = m.model
    assert model is not None
    if model.decode is False:
        return frames
    if model.decode is not True:
        present = {c for df in frames.values() for c in df.columns}
        for i, c in enumerate(model.decode):
            if c not in present:
                raise m.fail(f"decode[{i}]", f"no column {c!r} in the export")
            if c not in labels:
                raise m.fail(
                    f"decode[{i}]",
                    f"column {c!r} has no value labels (in the REDCap dictionary or the file)",
                )
    wanted = set(labels) if model.decode is True else set(model.decode)
    out = {}
    for sheet, df in frames.items():
        df = df.copy()
        for c in [c for c in df.columns if c in wanted]:
            df[c] = _relabel(df[c], labels[c])
        out[sheet] = df
    return out


def _relabel(values: pd.Series, codes: dict[str, str]) -> pd.Series:
    """Each value's label (a value without one stays as written)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = pa.array(values.astype("string[pyarrow]").array)
    at = pc.index_in(arr, value_set=pa.array(list(codes), pa.string()))
    labelled = pc.take(pa.array(list(codes.values()), pa.string()), at)
    out = pc.if_else(pc.is_null(at), arr, labelled)
    return pd.Series(pd.arrays.ArrowStringArray(out), index=values.index).astype(values.dtype)


def _require(m: Mapping, df: pd.DataFrame, columns: Iterable[str], key: str) -> None:
    for c in columns:
        if c not in df.columns:
            raise m.fail(key, f"no column {c!r} in the export (columns: {', '.join(df.columns)})")


def _match(df: pd.DataFrame, conditions: dict[str, Any]) -> np.ndarray:
    """Rows where every column equals its value (or one of its values; '' = empty)."""
    from outcomes.data.mapping import _text

    ok = np.ones(len(df), dtype=bool)
    for column, wanted in conditions.items():
        values = {_text(w) for w in (wanted if isinstance(wanted, list) else [wanted])}
        text = df[column].fillna("").astype(str).str.strip()
        ok &= text.isin(values).to_numpy()
    return ok


def _describe(conditions: dict[str, Any]) -> str:
    parts = []
    for column, wanted in conditions.items():
        values = wanted if isinstance(wanted, list) else [wanted]
        shown = " or ".join("empty" if str(v) == "" else repr(str(v)) for v in values)
        parts.append(f"{column} is {shown}")
    return " and ".join(parts)


def parse_dates(values: pd.Series, formats: list[str]) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Dates from text in the first of ``formats`` that fits each value.

    Returns the dates (NaT where empty or not a date), and per value the rule and message of
    the problem (missing where none): ``partial_date`` for a date without its day or month,
    ``date_format`` for text in none of the formats.
    """
    from outcomes.data.mapping import PARTIAL_DATE

    text = values.fillna("").astype(str).str.strip()
    dates = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    for fmt in formats:
        todo = dates.isna() & (text != "")
        if not todo.any():
            break
        parsed = pd.to_datetime(text[todo], format=fmt, errors="coerce")
        dates[todo] = parsed
    bad = dates.isna() & (text != "")
    rule = pd.Series(pd.NA, index=values.index, dtype=object)
    message = pd.Series(pd.NA, index=values.index, dtype=object)
    partial = bad & text.map(lambda v: bool(PARTIAL_DATE.search(v))).astype(bool)
    rule[partial] = "partial_date"
    message[partial] = (
        "partial date (day or month missing or unknown): a study day needs a full date; "
        "correct it at the source or leave it empty"
    )
    other = bad & ~partial
    rule[other] = "date_format"
    message[other] = f"not a date in the mapping's date_formats ({', '.join(formats)})"
    return dates, rule, message


def find_anchor(m: Mapping, df: pd.DataFrame, rows: np.ndarray) -> Anchor:
    """Day 0 of each key from the anchor rows (``anchor.where``, else rows with a date)."""
    model = m.model
    assert model is not None and model.anchor is not None
    a = model.anchor
    _require(m, df, [a.column, *a.keys, *a.where], "anchor")
    use = _match(df, a.where) if a.where else df[a.column].fillna("").str.strip().ne("").to_numpy()
    held = df.loc[use, [*a.keys, a.column]].reset_index(drop=True)
    dates, rule, _ = parse_dates(held[a.column], model.date_formats)
    found: dict[tuple[str, ...], pd.Timestamp] = {}
    problems: dict[tuple[str, ...], tuple[str, str]] = {}
    source = rows[use]
    for i, key in enumerate(held[a.keys].fillna("").astype(str).itertuples(index=False, name=None)):
        if pd.isna(dates.iloc[i]):
            why = "empty" if pd.isna(rule.iloc[i]) else str(rule.iloc[i]).replace("_", " ")
            problems.setdefault(
                key,
                (
                    "anchor_date",
                    f"the anchor date {a.column} of {'/'.join(key)} (row {source[i]}) is "
                    f"{why}: {held[a.column].iloc[i]!r}",
                ),
            )
        elif key in found and found[key] != dates.iloc[i]:
            problems[key] = (
                "anchor_date",
                f"{'/'.join(key)} has two different anchor dates {a.column} "
                f"({found[key].date()} and {dates.iloc[i].date()})",
            )
        else:
            found[key] = dates.iloc[i]
    for key in problems:
        found.pop(key, None)
    return Anchor(a.keys, found, problems)


def _melt(
    m: Mapping, where: str, spec: TableMap, df: pd.DataFrame, rows: np.ndarray, notes: list[str]
) -> tuple[pd.DataFrame, np.ndarray]:
    """One output row per source row and melted column (empty cells dropped and counted)."""
    from outcomes.data.mapping import _text

    melt = spec.melt
    assert melt is not None
    _require(m, df, melt.columns, f"{where}melt.columns")
    parts, sources = [], []
    keep = [c for c in df.columns if c not in melt.columns]
    made = {melt.value, *([melt.into] if melt.into else [])}
    made |= {k for v in melt.columns.values() if isinstance(v, dict) for k in v}
    clash = sorted(made & set(keep))
    if clash:
        raise m.fail(
            f"{where}melt",
            f"the melt would make column(s) {', '.join(map(repr, clash))}, which the export "
            "already has; give `into:`/`value:` other names",
        )
    empty = 0
    for column, key in melt.columns.items():
        part = df[keep].copy()
        labels = key if isinstance(key, dict) else {str(melt.into): key}
        for name, value in labels.items():
            part[name] = pd.Series(_text(value), index=part.index, dtype=df[column].dtype)
        part[melt.value] = df[column]
        has = df[column].fillna("").str.strip().ne("").to_numpy()
        if not melt.keep_empty:
            empty += int((~has).sum())
            part, kept_rows = part[has], rows[has]
        else:
            kept_rows = rows
        parts.append(part)
        sources.append(kept_rows)
    out = pd.concat(parts, ignore_index=False)
    order = np.argsort(
        np.concatenate([np.asarray(p.index) for p in parts]), kind="stable"
    )  # source order, melted columns in their listed order within a row
    out = out.iloc[order].reset_index(drop=True)
    out_rows = np.concatenate(sources)[order]
    if empty:
        notes.append(
            f"{empty} empty cell(s) of the melted column(s) {', '.join(melt.columns)} made no row "
            "(`keep_empty: true` keeps them)"
        )
    return out, out_rows


def build_table(
    m: Mapping,
    name: str,
    table: str,
    spec: TableMap,
    df: pd.DataFrame,
    rows: np.ndarray,
    anchor: Anchor | None,
) -> MappedTable:
    """One table from the (decoded) export: filter, melt, compute, recode."""
    from outcomes.data.mapping import MappedTable, _text
    from outcomes.data.schema import TEXT

    model = m.model
    assert model is not None
    where = f"tables.{name}." if model.tables is not None else ""
    notes: list[str] = []
    _require(m, df, [*spec.where, *spec.where_not], f"{where}where")
    keep = np.ones(len(df), dtype=bool)
    if spec.where:
        keep &= _match(df, spec.where)
    if spec.where_not:
        keep &= ~_match(df, spec.where_not)
    if not keep.all():
        rule = " and ".join(
            [f"where {_describe(spec.where)}"] * bool(spec.where)
            + [f"not where {_describe(spec.where_not)}"] * bool(spec.where_not)
        )
        notes.append(f"{int(keep.sum())} of {len(df)} source rows taken ({rule})")
    df, rows = df[keep].reset_index(drop=True), rows[keep]
    if spec.melt is not None:
        df, rows = _melt(m, where, spec, df, rows, notes)
    made_of_source = bool(spec.columns or spec.compute or spec.melt)
    if not made_of_source and model.tables is not None:
        # a table of constants alone: one row, row 0 (the mapping, not a source row)
        df, rows = df.iloc[:1].reset_index(drop=True), np.zeros(1, dtype=np.int64)
        notes.append("one row made from the mapping's constants")
    out = pd.DataFrame(index=df.index)
    violations: list[pd.DataFrame] = []
    _require(m, df, spec.columns, f"{where}columns")
    for source, target in spec.columns.items():
        for t in [target] if isinstance(target, str) else target:
            out[t] = df[source]
    for target, comp in spec.compute.items():
        key = f"{where}compute.{target}"
        if comp.join is not None:
            _require(m, df, comp.join, key)
            parts = [df[c].astype(TEXT).fillna("").str.strip() for c in comp.join]
            joined = parts[0]
            for part in parts[1:]:
                joined = joined + comp.sep + part
            missing = np.logical_or.reduce([(p == "").to_numpy(dtype=bool) for p in parts])
            out[target] = (comp.prefix + joined + comp.suffix).astype(TEXT).mask(missing)
        else:
            assert comp.study_day is not None and anchor is not None
            _require(m, df, [comp.study_day, *anchor.keys], key)
            out[target], v = _study_days(df, comp.study_day, target, anchor, model.date_formats)
            violations.append(v)
    if model.tables is None:  # the single-table form: other columns keep their names
        used = _used_in_table(spec) | set(model.drop)
        for c in df.columns:
            if c not in used and c not in out:
                out[c] = df[c]
    for target, codes in spec.values.items():
        if target in out:
            out[target] = out[target].replace({k: _text(v) for k, v in codes.items()})
    for target, value in spec.constants.items():
        if target in out:
            raise m.fail(
                f"{where}constants.{target}",
                f"would overwrite the export's own column {target!r} [mapping_constant]",
            )
        out[target] = pd.Series(_text(value), index=out.index, dtype=TEXT)
    out = out.astype(TEXT)
    found = [v for v in violations if len(v)]
    bad = pd.concat(found, ignore_index=True) if found else pd.DataFrame(columns=VIOLATIONS)
    if spec.distinct:
        dup = out.duplicated().to_numpy() & ~np.isin(np.arange(len(out)), bad["row"])
        if dup.any():
            notes.append(f"{int(dup.sum())} repeated row(s) collapsed (`distinct: true`)")
            positions = np.flatnonzero(~dup)
            renumber = {int(p): i for i, p in enumerate(positions)}
            bad["row"] = bad["row"].map(renumber)
            out, rows = out[~dup].reset_index(drop=True), rows[~dup]
    return MappedTable(table, out, rows, bad, notes)


def _study_days(
    df: pd.DataFrame, column: str, target: str, anchor: Anchor, formats: list[str]
) -> tuple[pd.Series, pd.DataFrame]:
    """Days from each row's anchor to its date, and a violation per row that has none."""
    from outcomes.data.schema import TEXT

    dates, rule, message = parse_dates(df[column], formats)
    keys = list(df[anchor.keys].fillna("").astype(str).itertuples(index=False, name=None))
    day0 = pd.Series([anchor.dates.get(k, pd.NaT) for k in keys], index=df.index, dtype=dates.dtype)
    days = (dates.dt.normalize() - day0.dt.normalize()).dt.days  # calendar days
    text = pd.Series(
        [None if pd.isna(d) else str(int(d)) for d in days], index=df.index, dtype=TEXT
    )
    found = []
    for i in np.flatnonzero(rule.notna().to_numpy()):
        found.append((i, target, df[column].iloc[i], rule.iloc[i], f"{column}: {message.iloc[i]}"))
    has_date = dates.notna().to_numpy()
    for i in np.flatnonzero(has_date & day0.isna().to_numpy()):
        key = keys[i]
        why = anchor.problems.get(key)
        if why is None:
            why = (
                "anchor_missing",
                f"no anchor date for {'/'.join(key)} ({', '.join(anchor.keys)}), so {column} "
                "cannot become a study day",
            )
        found.append((i, target, df[column].iloc[i], why[0], why[1]))
    return text, pd.DataFrame(found, columns=VIOLATIONS)


def _used_in_table(spec: TableMap) -> set[str]:
    used = set(spec.where) | set(spec.where_not) | set(spec.columns) | set(spec.drop)
    if spec.melt is not None:
        used |= set(spec.melt.columns)
    for comp in spec.compute.values():
        used |= set(comp.join or []) | ({comp.study_day} if comp.study_day else set())
    return used


def unused_columns(m: Mapping, columns: dict[str | None, Iterable[str]]) -> list[str]:
    """Export columns that no table, filter, anchor or ``drop:`` of the full form uses."""
    from outcomes.data.mapping import _specs, needs_source

    model = m.model
    assert model is not None
    if model.tables is None:
        return []  # the single-table form passes other columns on under their own names
    used: dict[str | None, set[str]] = {s: set(model.drop) for s in columns}
    for spec in _specs(model).values():
        if not needs_source(spec):
            continue
        sheet = spec.sheet if spec.sheet is not None else model.sheet
        used[sheet] |= _used_in_table(spec)
    if model.anchor is not None:
        a = model.anchor
        sheet = a.sheet if a.sheet is not None else model.sheet
        used[sheet] |= {a.column, *a.keys, *a.where}
    out = []
    for sheet, names in columns.items():
        prefix = f"{sheet}: " if sheet else ""
        out += [f"{prefix}{c}" for c in names if c not in used[sheet]]
    return out
