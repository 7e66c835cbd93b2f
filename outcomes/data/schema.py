"""Validation generated from the data dictionary with pandera.

Validation runs in two pandera passes, both generated from :mod:`outcomes.data.dictionary`:

1. *parse*: every column arrives as text; each value must parse as its column's type
   (integer, number, boolean) -- a value that does not is a row-level violation, not a crash.
2. *rules*: on the typed table, required values, codelists, ranges, patterns, instrument
   ranges, primary-key uniqueness, table rules, and the cross-table rules (foreign keys,
   days within follow-up) against reference tables. Keys already in the store are classified
   by the ingest (:mod:`outcomes.data.corrections`).

:func:`validate_table` turns pandera's failure cases into one row per violation (row, column,
value, rule, message) and splits the input into accepted and rejected rows, so nothing is lost:
``len(accepted) + len(rejected) == len(input)`` always.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow
import pyarrow.compute as pc
from pandera.errors import SchemaErrors

from outcomes.data.dictionary import Column, Dictionary, Table, load_dictionary
from outcomes.data.safety import identifier_cells

__all__ = [
    "VIOLATION_COLUMNS",
    "TableValidation",
    "coerce_table",
    "parse_schema",
    "rules_schema",
    "validate_table",
    "validate_tables",
]

VIOLATION_COLUMNS = ("table", "row", "column", "value", "rule", "message")
TEXT = pd.StringDtype("pyarrow")  # Arrow-backed text: vectorised string operations
PANDAS_DTYPES: dict[str, Any] = {
    "string": TEXT,
    "code": TEXT,
    "instrument": TEXT,
    "integer": "Int64",
    "number": "Float64",
    "boolean": "boolean",
}
MISSING_MARKERS = ("NA", "N/A", "NAN", ".", "NULL", "NONE", "-", "?", "MISSING", "UNKNOWN")
LARGEST_INTEGER = 2**53  # whole numbers are exact up to here (and fit 64 bits)
TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1"})
FALSE_WORDS = frozenset({"false", "f", "no", "n", "0"})


def _as_text(s: pd.Series) -> pd.Series:
    return s if s.dtype == TEXT else s.astype(TEXT)


def _parse_boolean(s: pd.Series) -> pd.Series:
    low = _as_text(s).str.lower()
    out = pd.Series(pd.NA, index=s.index, dtype="boolean")
    out[low.isin(TRUE_WORDS).fillna(False)] = True
    out[low.isin(FALSE_WORDS).fillna(False)] = False
    return out


NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"


def _parse_number(s: pd.Series) -> pd.Series:
    """Numbers from text, NaN where a value is missing or not a plain decimal number."""
    text = pa_arrow.array(_as_text(s).array)
    numeric = pc.if_else(pc.match_substring_regex(text, NUMBER), text, None)
    values = pc.cast(numeric, pa_arrow.float64()).to_numpy(zero_copy_only=False)
    return pd.Series(values, index=s.index)


def _parses(col: Column):
    """A check that each non-missing value of a text column parses as the column's type."""
    if col.type == "boolean":
        return pa.Check(
            lambda s: s.isna() | _parse_boolean(s).notna(),
            name="type_boolean",
            error="must be true or false (true/false, yes/no, 1/0)",
        )
    if col.type == "integer":

        def is_integer(s: pd.Series) -> pd.Series:
            num = _parse_number(s)
            return s.isna() | (num.notna() & (num % 1 == 0) & (num.abs() < LARGEST_INTEGER))

        return pa.Check(
            is_integer,
            name="type_integer",
            error="must be a whole number (at most 15 digits)",
        )
    return pa.Check(
        lambda s: s.isna() | _parse_number(s).notna(), name="type_number", error="must be a number"
    )


def parse_schema(table: Table) -> pa.DataFrameSchema:
    """Pass 1: each present value parses as its column's type.

    Also refuses a table whose columns differ from the dictionary's (missing required
    columns, unknown columns): those make the whole file unusable, not a row.
    """
    columns = {}
    for col in table.columns.values():
        checks = [_parses(col)] if col.type in ("integer", "number", "boolean") else []
        if col.required and col.type == "string":
            checks.append(
                pa.Check(
                    lambda s: s.isna() | ~s.str.upper().isin(MISSING_MARKERS).fillna(False),
                    name="required",
                    error="is required but holds a missing-value marker "
                    f"({', '.join(MISSING_MARKERS)})",
                )
            )
        columns[col.name] = pa.Column(
            TEXT, nullable=True, required=col.required, checks=checks, coerce=True
        )
    return pa.DataFrameSchema(columns, strict=True, name=table.name)


def coerce_table(df: pd.DataFrame, table: Table) -> pd.DataFrame:
    """Convert text columns to the dictionary's types; unparseable values become missing."""
    out = pd.DataFrame(index=df.index)
    for name, col in table.columns.items():
        if name not in df:
            out[name] = pd.Series(pd.NA, index=df.index, dtype=PANDAS_DTYPES[col.type])
            continue
        if col.type == "boolean":
            out[name] = _parse_boolean(df[name])
        elif col.type in ("integer", "number"):
            num = _parse_number(df[name])
            if col.type == "integer":
                num = num.where((num % 1 == 0) & (num.abs() < LARGEST_INTEGER))
            out[name] = num.astype(PANDAS_DTYPES[col.type])
        else:
            out[name] = _as_text(df[name])
    return out


def _column_checks(d: Dictionary, col: Column) -> list[pa.Check]:
    checks = []
    if col.type in ("code", "instrument"):
        allowed = d.codes(col)
        what = f"codelist {col.codelist}" if col.codelist else "instruments"
        checks.append(
            pa.Check.isin(
                allowed,
                name=f"code_{col.codelist or 'instrument'}",
                error=f"must be one of the {what}: {', '.join(allowed)}",
            )
        )
    if col.range is not None:
        low, high = col.range
        checks.append(
            pa.Check.in_range(
                low, high, name="range", error=f"must be between {low:g} and {high:g}"
            )
        )
    if col.pattern is not None:
        checks.append(
            pa.Check.str_matches(col.pattern, name="pattern", error=f"must match {col.pattern}")
        )
    return checks


@dataclass(frozen=True)
class _Rule:
    """A table-level check and the column(s) a violation is reported on."""

    check: pa.Check
    columns: tuple[str, ...]


def _key_frame(df: pd.DataFrame, cols: tuple[str, ...]) -> pd.DataFrame:
    return df[list(cols)].astype("string")


def _in_reference(
    df: pd.DataFrame, cols: tuple[str, ...], ref: pd.DataFrame | None, ref_cols: tuple[str, ...]
) -> pd.Series:
    """Whether each row's ``cols`` values appear as ``ref_cols`` in ``ref``."""
    if ref is None or ref.empty or df.empty:
        return pd.Series(False, index=df.index)
    keys = _key_frame(df, cols).set_axis(list(ref_cols), axis=1)
    ref_keys = _key_frame(ref, ref_cols).drop_duplicates()
    hits = pd.MultiIndex.from_frame(keys).isin(pd.MultiIndex.from_frame(ref_keys))
    return pd.Series(hits, index=df.index)


def _table_rules(d: Dictionary, table: Table, refs: Mapping[str, pd.DataFrame]) -> list[_Rule]:
    rules: list[_Rule] = []
    for col in table.columns.values():
        if col.instrument_range:
            bounds = pd.DataFrame(
                [(i.code, i.low, i.high, i.integer) for i in d.instruments.values()],
                columns=["instrument", "low", "high", "integer"],
            ).set_index("instrument")

            def in_instrument_range(
                df: pd.DataFrame, name: str = col.name, bounds: pd.DataFrame = bounds
            ) -> pd.Series:
                b = bounds.reindex(df["instrument"].astype(object))
                value = df[name].astype(float).to_numpy()
                ok = (value >= b["low"].to_numpy()) & (value <= b["high"].to_numpy())
                whole = ~b["integer"].fillna(False).to_numpy(dtype=bool) | (value % 1 == 0)
                known = b["low"].notna().to_numpy()
                return pd.Series(~known | np.isnan(value) | (ok & whole), index=df.index)

            rules.append(
                _Rule(
                    pa.Check(
                        in_instrument_range,
                        name="instrument_range",
                        error="must lie in the instrument's range (whole numbers for integer "
                        "instruments)",
                    ),
                    (col.name, "instrument"),
                )
            )
    for rule in table.rules:
        if "requires_modality_containing" in rule:
            token = rule["requires_modality_containing"]

            def adjunct_matches(
                df: pd.DataFrame, name: str = rule["column"], token: str = token
            ) -> pd.Series:
                has_token = df["modality"].astype("string").str.contains(token, regex=False)
                return df[name].isna() | has_token.fillna(False)

            rules.append(
                _Rule(
                    pa.Check(adjunct_matches, name=rule["name"], error=rule["description"]),
                    (rule["column"], "modality"),
                )
            )
    for fk in table.foreign_keys:
        if fk.references not in refs:
            continue  # checked only against reference tables that were given
        ref_table = d.table(fk.references)

        def fk_present(df: pd.DataFrame, fk=fk, ref_pk=ref_table.primary_key) -> pd.Series:
            present = _in_reference(df, fk.columns, refs.get(fk.references), ref_pk)
            if fk.optional:
                present |= df[list(fk.columns)].isna().any(axis=1)
            return present

        rules.append(
            _Rule(
                pa.Check(
                    fk_present,
                    name=f"foreign_key_{fk.references}",
                    error=f"({', '.join(fk.columns)}) not found in {fk.references}",
                ),
                fk.columns,
            )
        )
    if table.within_follow_up and "subjects" in refs:
        day_col = table.within_follow_up

        def within_follow_up(df: pd.DataFrame) -> pd.Series:
            end = _end_day(df, refs)
            day = df[day_col].astype(float).to_numpy()
            return pd.Series(np.isnan(end) | np.isnan(day) | (day <= end), index=df.index)

        rules.append(
            _Rule(
                pa.Check(
                    within_follow_up,
                    name="within_follow_up",
                    error=f"{day_col} is after the subject's end_day (end of follow-up)",
                ),
                (day_col,),
            )
        )
    return rules


def _end_day(df: pd.DataFrame, refs: Mapping[str, pd.DataFrame]) -> np.ndarray:
    """Each row's subject end_day (NaN when unknown), reaching subjects via units if needed."""
    subjects = refs.get("subjects")
    if subjects is None or subjects.empty:
        return np.full(len(df), np.nan)
    keys = df[["study_id"]].astype("string")
    if "subject_id" in df and df["subject_id"].notna().all():
        keys["subject_id"] = df["subject_id"].astype("string")
    else:
        units = refs.get("units")
        if units is None or units.empty:
            return np.full(len(df), np.nan)
        unit_map = _key_frame(units, ("study_id", "unit_id", "subject_id"))
        keys["unit_id"] = df["unit_id"].astype("string")
        keys = keys.merge(unit_map, on=["study_id", "unit_id"], how="left")
    ends = _key_frame(subjects, ("study_id", "subject_id"))
    ends["end_day"] = subjects["end_day"].astype(float).to_numpy()
    merged = keys[["study_id", "subject_id"]].merge(ends, on=["study_id", "subject_id"], how="left")
    return merged["end_day"].to_numpy(dtype=float)


def rules_schema(
    table: Table, refs: Mapping[str, pd.DataFrame] | None = None, d: Dictionary | None = None
) -> tuple[pa.DataFrameSchema, dict[str, tuple[str, ...]]]:
    """Pass 2: the dictionary's rules on a typed table.

    Parameters
    ----------
    table
        The dictionary table.
    refs
        Reference tables for cross-table rules: accepted ``studies``, ``subjects``, ``units``
        (stored plus this batch). Keys already stored are the ingest's business
        (:mod:`outcomes.data.corrections`).
    d
        The dictionary (default: the shipped one).

    Returns
    -------
    schema, rule_columns
        The pandera schema, and for each table-level check the columns its violations name.
    """
    d = d or load_dictionary()
    columns = {
        col.name: pa.Column(
            PANDAS_DTYPES[col.type], nullable=not col.required, checks=_column_checks(d, col)
        )
        for col in table.columns.values()
    }
    rules = _table_rules(d, table, refs or {})
    schema = pa.DataFrameSchema(
        columns,
        checks=[r.check for r in rules],
        unique=list(table.primary_key),
        report_duplicates="exclude_first",
        name=table.name,
    )
    return schema, {str(r.check.name): r.columns for r in rules}


RULE_MESSAGES = {
    "not_nullable": "is required but missing",
    "multiple_fields_uniqueness": "duplicates the key of an earlier row in this file",
    "column_in_dataframe": "required column is missing",
    "column_in_schema": "is not a column of this table (map or drop it)",
}
RULE_NAMES = {
    "multiple_fields_uniqueness": "duplicate_key",
    "not_nullable": "required",
    "column_in_dataframe": "missing_column",
    "column_in_schema": "unknown_column",
}


def _failures(
    schema: pa.DataFrameSchema,
    df: pd.DataFrame,
    table: Table,
    rule_columns: Mapping[str, tuple[str, ...]],
) -> pd.DataFrame:
    """Run a pandera schema lazily; return one row per (row, rule) violation."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandera's own pandas deprecation noise
        try:
            schema.validate(df, lazy=True)
            return pd.DataFrame(columns=list(VIOLATION_COLUMNS))
        except SchemaErrors as err:
            fc = err.failure_cases.copy()
    all_checks = [c for col in schema.columns.values() for c in col.checks] + list(schema.checks)
    # pandera reports a check by its error text
    by_error = {c.error: c.name for c in all_checks if c.error}
    fc["check"] = fc["check"].astype(str)
    fc = fc[~fc["check"].str.startswith(("dtype(", "coerce_dtype("))]
    cell = {
        (rec.index, by_error.get(rec.check, rec.check), rec.column): rec.failure_case
        for rec in fc.itertuples()
    }
    rows = []
    for rec in fc.itertuples(index=False):
        check = by_error.get(rec.check, rec.check)
        rule = RULE_NAMES.get(check, check)
        message = rec.check if rec.check in by_error else RULE_MESSAGES.get(check, check)
        column, value = rec.column, rec.failure_case
        if check in rule_columns or check == "multiple_fields_uniqueness":
            cols = rule_columns.get(check, table.primary_key)
            column = ", ".join(cols)
            value = ", ".join(str(cell.get((rec.index, check, c), "")) for c in cols)
        elif check in ("column_in_dataframe", "column_in_schema"):
            column = str(rec.failure_case)
        value = "" if value is None or (isinstance(value, float) and np.isnan(value)) else value
        rows.append((table.name, rec.index, column, str(value), rule, message))
    out = pd.DataFrame(rows, columns=list(VIOLATION_COLUMNS))
    return out.drop_duplicates(subset=["row", "column", "rule"]).reset_index(drop=True)


@dataclass
class TableValidation:
    """The outcome of validating one table.

    Attributes
    ----------
    table
        Table name.
    accepted
        Rows that passed every rule, typed as the dictionary says.
    rejected
        Input rows (as given) that broke at least one rule, with the input row position.
    violations
        One row per violation: table, row (0-based position in the input), column, value,
        rule, message. Empty when everything passed.
    file_errors
        Problems that make the whole table unusable (missing required or unknown columns).
    """

    table: str
    accepted: pd.DataFrame
    rejected: pd.DataFrame
    violations: pd.DataFrame
    file_errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when there are no violations and no file errors."""
        return not self.file_errors and self.violations.empty

    def report(self, limit: int = 20) -> str:
        """A readable report of what failed."""
        if self.ok:
            return f"{self.table}: {len(self.accepted)} rows, all valid"
        lines = [f"{self.table}: {len(self.accepted)} accepted, {len(self.rejected)} rejected"]
        lines += [f"  {e}" for e in self.file_errors]
        for v in self.violations.head(limit).to_dict("records"):
            lines.append(
                f"  row {int(v['row']) + 1}: {v['column']} = {v['value']!r}: {v['message']} "
                f"[{v['rule']}]"
            )
        if len(self.violations) > limit:
            lines.append(f"  ... and {len(self.violations) - limit} more")
        return "\n".join(lines)


def validate_table(
    df: pd.DataFrame,
    table: str,
    refs: Mapping[str, pd.DataFrame] | None = None,
    d: Dictionary | None = None,
) -> TableValidation:
    """Validate a DataFrame against one dictionary table.

    Parameters
    ----------
    df
        The data, with the dictionary's column names; values may be text (as read from a
        feed) or already typed.
    table
        The dictionary table name, e.g. ``"assessments"``.
    refs
        Reference tables for cross-table rules (see :func:`rules_schema`). Foreign keys are
        only checked against tables given here.
    d
        The dictionary (default: the shipped one).

    Returns
    -------
    TableValidation
        Accepted rows (typed), rejected rows and one row per violation.

    Examples
    --------
    >>> import pandas as pd
    >>> from outcomes.data.schema import validate_table
    >>> studies = pd.DataFrame({"study_id": ["T1"], "title": ["Trial"], "design": ["crossover"]})
    >>> print(validate_table(studies, "studies").report())  # doctest: +NORMALIZE_WHITESPACE
    studies: 0 accepted, 1 rejected
      row 1: design = 'crossover': must be one of the codelist design: parallel, split_body,
      single_arm, observational [code_design]
    """
    d = d or load_dictionary()
    t = d.table(table)
    refs = dict(refs or {})
    df = df.reset_index(drop=True)
    text = df.astype(TEXT).apply(lambda s: s.str.strip()).replace("", pd.NA)
    df, text, found = _screen_identifiers(df, text, t, d)
    parse_fail = _failures(parse_schema(t), text, t, {})
    file_level = parse_fail[parse_fail["row"].isna()]
    if not file_level.empty:
        errors = [f"column {r.column!r}: {r.message}" for r in file_level.itertuples()]
        empty = pd.DataFrame(columns=list(VIOLATION_COLUMNS))
        return TableValidation(table, df.iloc[0:0], df, empty, errors)
    typed = coerce_table(text, t)
    schema, rule_columns = rules_schema(t, refs, d)
    rule_fail = _failures(schema, typed, t, rule_columns)
    parse_fail = pd.concat([f for f in (found, parse_fail) if len(f)] or [parse_fail])
    parse_fail["row"] = parse_fail["row"].astype(int)
    bad_cells = set(zip(parse_fail["row"], parse_fail["column"], strict=True))
    rule_fail = rule_fail[
        [
            (int(r), c) not in bad_cells
            for r, c in zip(rule_fail["row"], rule_fail["column"], strict=True)
        ]
    ]
    violations = pd.concat(
        [f for f in (parse_fail, rule_fail) if len(f)] or [parse_fail], ignore_index=True
    )
    violations["row"] = violations["row"].astype(int)
    violations = violations.sort_values(["row", "rule"], kind="stable").reset_index(drop=True)
    bad = np.zeros(len(df), dtype=bool)
    bad[violations["row"].to_numpy()] = True
    return TableValidation(table, typed[~bad].reset_index(drop=True), df[bad], violations)


def _screen_identifiers(
    df: pd.DataFrame, text: pd.DataFrame, table: Table, d: Dictionary
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Find identifier-like values; return the data without them and one violation per value.

    The value is replaced by ``[removed: <kind>]`` in the data (so neither the quarantine nor
    any report keeps it) and is missing in the text to validate.
    """
    rows = []
    df, text = df.copy(), text.copy()
    for name in text.columns:
        kinds = identifier_cells(text[name], d.value_patterns(str(name)))
        hit = kinds.notna().to_numpy()
        if not hit.any():
            continue
        placeholder = "[removed: " + kinds[hit].astype(str) + "]"
        df[name] = df[name].astype(TEXT)
        df.loc[hit, name] = placeholder.to_numpy()
        text.loc[hit, name] = pd.NA
        for i, kind in zip(np.flatnonzero(hit), kinds[hit], strict=True):
            rows.append(
                (
                    table.name,
                    int(i),
                    str(name),
                    f"[removed: {kind}]",
                    "identifier_value",
                    f"looks like a {kind} (a direct identifier); the value is not kept",
                )
            )
    return df, text, pd.DataFrame(rows, columns=list(VIOLATION_COLUMNS))


def validate_tables(
    tables: Mapping[str, pd.DataFrame], d: Dictionary | None = None
) -> dict[str, TableValidation]:
    """Validate a set of tables together, in dictionary order, with cross-table rules.

    Foreign keys are checked against the *accepted* rows of the referenced tables, so an
    orphan is reported on the row that points at nothing.
    """
    d = d or load_dictionary()
    refs: dict[str, pd.DataFrame] = {}
    out = {}
    for name in d.tables:
        if name not in tables:
            continue
        result = validate_table(tables[name], name, refs, d)
        refs[name] = result.accepted
        out[name] = result
    return out
