"""Mapping files: how an export's columns, codes and shape become the schema's tables.

A mapping file sits beside its export, ``<export name>.mapping.yaml``. The simple form maps one
file onto one table (``table``, ``columns``, ``values``, ``constants``, ``drop``), every other
column keeping its name. The full form (``tables:``) turns one export -- a REDCap CSV, a
workbook with a sheet per table, an SPSS/Stata/SAS file -- into several tables: row filters
(``where``, ``where_not``), wide to long (``melt``), keys joined from several columns and dates
turned into study days (``compute``), value labels decoded (``decode``, from REDCap's Data
Dictionary or the file's own labels), one source column feeding several targets. Every key is
described in the README's ingest section.

Problems with the mapping itself are raised as ``InputError("file: line n: key 'k': message")``.
Problems with single rows (a partial date, a date in no given format, a subject without an
anchor date) are row violations that go to quarantine like any other, naming the source row.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from pydantic import Field, StrictBool, StrictFloat, StrictInt, StrictStr, model_validator

from outcomes.data.readers import RawFeed
from outcomes.data.yaml_model import YamlModel, problems
from outcomes.errors import InputError

__all__ = [
    "MappedTable",
    "Mapping",
    "apply_mapping",
    "load_mapping",
    "map_export",
    "mapping_sha256",
]

SIMPLE_KEYS = ("table", "columns", "values", "constants", "drop")
DEFAULT_DATE_FORMATS = ("%Y-%m-%d", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S")
# a date with its day or month missing, or marked unknown (UN, UNK, NK, XX)
PARTIAL_DATE = re.compile(
    r"^\d{4}$|^\d{4}[-/.]\d{1,2}$|^\d{1,2}[-/.]\d{4}$|(?:^|[-/. ])(?:UN|UNK|NK|XX|00)(?:[-/. ]|$)",
    re.IGNORECASE,
)
Scalar = StrictStr | StrictInt | StrictFloat | StrictBool
Match = Scalar | list[Scalar]


def _text(value: Any) -> str:
    """A YAML scalar as the text a feed would hold (``true`` -> ``true``, ``1`` -> ``1``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Compute(YamlModel):
    """A target column computed from source columns: ``join`` (with ``sep``, and fixed
    ``prefix``/``suffix`` text, as ``S001`` -> ``S001-W``) or ``study_day`` (one of them)."""

    join: list[StrictStr] | None = Field(default=None, min_length=1)
    sep: StrictStr = "-"
    prefix: StrictStr = ""
    suffix: StrictStr = ""
    study_day: StrictStr | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Compute:
        if (self.join is None) == (self.study_day is None):
            raise ValueError("give either `join: [columns]` or `study_day: date column`")
        if self.join is None and (self.prefix or self.suffix):
            raise ValueError("`prefix` and `suffix` go with `join`, not with `study_day`")
        return self


class Melt(YamlModel):
    """Wide to long: each listed column becomes one output row per source row."""

    columns: dict[str, Scalar | dict[str, Scalar]] = Field(min_length=1)
    into: StrictStr | None = None
    value: StrictStr = "value"
    keep_empty: StrictBool = False

    @model_validator(mode="after")
    def _named(self) -> Melt:
        if self.into is None and any(not isinstance(v, dict) for v in self.columns.values()):
            raise ValueError(
                "`into:` names the column that holds each melted column's key "
                "(or give each column a {column: value} mapping)"
            )
        return self


class TableMap(YamlModel):
    """How one table is made from the export."""

    sheet: StrictStr | None = None
    where: dict[str, Match] = Field(default_factory=dict)
    where_not: dict[str, Match] = Field(default_factory=dict)
    melt: Melt | None = None
    columns: dict[str, StrictStr | list[StrictStr]] = Field(default_factory=dict)
    compute: dict[str, Compute] = Field(default_factory=dict)
    values: dict[str, dict[str, Scalar]] = Field(default_factory=dict)
    constants: dict[str, Scalar] = Field(default_factory=dict)
    drop: list[StrictStr] = Field(default_factory=list)
    distinct: StrictBool = False


class Anchor(YamlModel):
    """Day 0 of each subject: a date column, found by key, possibly on other rows or sheets."""

    column: StrictStr
    by: StrictStr | list[StrictStr]
    where: dict[str, Match] = Field(default_factory=dict)
    sheet: StrictStr | None = None

    @property
    def keys(self) -> list[str]:
        return [self.by] if isinstance(self.by, str) else list(self.by)


class MappingFile(TableMap):
    """The whole file: one table (``table:`` and the table keys) or several (``tables:``)."""

    table: StrictStr | None = None
    tables: dict[str, TableMap] | None = None
    redcap_dictionary: StrictStr | None = None
    decode: StrictBool | list[StrictStr] = False
    anchor: Anchor | None = None
    date_formats: list[StrictStr] = Field(default_factory=lambda: list(DEFAULT_DATE_FORMATS))


@dataclass
class Mapping:
    """A checked mapping file.

    ``simple`` mappings (only ``table``, ``columns``, ``values``, ``constants``, ``drop``) keep
    their dict form (``spec``) and behave as they always have; full mappings have ``model``.
    """

    path: Path
    spec: dict[str, Any]
    model: MappingFile | None = None
    lines: dict[str, int] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        return mapping_sha256(self.spec)

    def fail(self, key: str, message: str) -> InputError:
        """An InputError naming this file, the key and its line."""
        return InputError(f"{self.path}: line {self.line(key)}: key {key!r}: {message}")

    def line(self, key: str) -> int:
        """The line of ``key`` (``tables.units.melt``), or of its nearest parent."""
        while key and key not in self.lines:
            key = key.rsplit(".", 1)[0] if "." in key else ""
        return self.lines.get(key, 1)


@dataclass
class MappedTable:
    """One table made from an export: its data (text), each row's source row number, the row
    violations found while mapping (dates, anchors) and notes on rows filtered out."""

    table: str
    data: pd.DataFrame
    rows: np.ndarray
    violations: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def mapping_sha256(mapping: dict[str, Any]) -> str:
    """Hash of a checked mapping (comments and layout of the file do not count)."""
    return hashlib.sha256(json.dumps(mapping, sort_keys=True).encode()).hexdigest()


class _Loader(yaml.SafeLoader):
    """YAML with YAML 1.2's booleans: only true/false, so a column ``No`` or a code ``Y``,
    ``yes``, ``off`` stays text (YAML 1.1 would read them as booleans)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def _key_lines(text: str) -> dict[str, int]:
    """Dotted key -> line of the key in the YAML text (1-based)."""
    out: dict[str, int] = {}
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError:
        return out

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = f"{prefix}.{k.value}" if prefix else str(k.value)
                out[key] = k.start_mark.line + 1
                walk(v, key)
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                out[f"{prefix}[{i}]"] = v.start_mark.line + 1
                walk(v, f"{prefix}[{i}]")

    walk(root, "")
    return out


def _keys_as_text(value: Any) -> Any:
    """YAML keys as text, recursively (codes like ``1:`` or ``yes:`` are keys of a feed)."""
    if isinstance(value, dict):
        return {_text(k): _keys_as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_keys_as_text(v) for v in value]
    return value


def load_mapping(path: Path) -> Mapping:
    """Read and check a mapping file (see the module docstring and the README)."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
        raw = yaml.load(text, Loader=_Loader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise InputError(f"{path}: cannot read mapping ({err})") from None
    raw = {} if raw is None else raw
    lines = _key_lines(text)
    if isinstance(raw, dict) and set(map(str, raw)) <= set(SIMPLE_KEYS):
        return Mapping(path, _load_simple(path, raw, lines), lines=lines)
    mapping = Mapping(path, {}, lines=lines)
    if not isinstance(raw, dict):
        raise InputError(f"{path}: a mapping must be a set of keys ({', '.join(SIMPLE_KEYS)})")
    allowed = set(MappingFile.model_fields)
    unknown = sorted(map(str, set(raw) - allowed))
    if unknown:
        raise InputError(
            f"{path}: line {mapping.line(unknown[0])}: unknown mapping keys {unknown}; use "
            f"{', '.join(sorted(allowed))}"
        )
    raw = _keys_as_text(raw)
    found = problems(MappingFile, raw)
    if found:
        key, message = found[0].key, found[0].message.removeprefix("Value error, ")
        if len(message) > 160:  # "must be text, got {a whole table}": the value is in the file
            message = message.split(", got ")[0]
        raise mapping.fail(key, message)
    model = MappingFile.model_validate(raw)
    mapping.model, mapping.spec = model, model.model_dump(mode="json", exclude_defaults=True)
    _check_model(mapping)
    return mapping


def _check_model(m: Mapping) -> None:
    """Shape rules pydantic cannot say: one form or the other, one source per target."""
    model = m.model
    assert model is not None
    table_keys = set(TableMap.model_fields) - {"drop", "sheet"}
    if model.tables is not None:
        for key in sorted(table_keys & set(model.model_fields_set)):
            raise m.fail(key, "with `tables:`, give this key under each table")
        if model.table is not None:
            raise m.fail("table", "give either `table:` (one table) or `tables:` (several)")
        if not model.tables:
            raise m.fail("tables", "name at least one table")
    for name, spec in _specs(model).items():
        where = f"tables.{name}" if model.tables is not None else ""
        made = [
            (t, f"columns.{source}")
            for source, target in spec.columns.items()
            for t in ([target] if isinstance(target, str) else target)
        ]
        made += [(t, f"compute.{t}") for t in spec.compute]
        made += [(t, f"constants.{t}") for t in spec.constants]
        targets: dict[str, str] = {}
        for target, key in made:
            if target in targets:
                raise m.fail(
                    f"{where}.{key}".strip("."),
                    f"column {target!r} is already made by {targets[target]}; one source per "
                    "column [mapping_shape]",
                )
            targets[target] = key
        for target in spec.values:
            if target not in targets and model.tables is not None:
                raise m.fail(
                    f"{where}.values.{target}".strip("."),
                    f"{target!r} is not a column this table makes (values recode target columns)",
                )
        uses_day = any(c.study_day for c in spec.compute.values())
        if uses_day and model.anchor is None:
            raise m.fail(
                f"{where}.compute".strip("."),
                "study_day needs `anchor:` (the date column that is day 0 of each subject)",
            )


def needs_source(spec: TableMap) -> bool:
    """Whether a table reads the export (a table of constants alone does not)."""
    return bool(spec.columns or spec.compute or spec.melt or spec.where or spec.where_not)


def source_sheets(model: MappingFile) -> set[str | None]:
    """The sheets the mapping reads (``None``: the file's only table, or a workbook's first)."""
    sheets = {
        s.sheet if s.sheet is not None else model.sheet
        for s in _specs(model).values()
        if needs_source(s) or model.tables is None
    }
    if model.anchor is not None:
        sheets.add(model.anchor.sheet if model.anchor.sheet is not None else model.sheet)
    return sheets


def _specs(model: MappingFile) -> dict[str, TableMap]:
    """Table name -> its spec (the single-table form as one entry; its table may be None)."""
    if model.tables is not None:
        return dict(model.tables)
    return {model.table or "": model}


def _load_simple(path: Path, raw: dict[Any, Any], lines: dict[str, int]) -> dict[str, Any]:
    """The simple form, checked as it always has been (messages kept, lines added)."""

    def scalar(v: Any) -> bool:
        return isinstance(v, str | int | float | bool) and not isinstance(v, dict | list)

    def need(key: str, ok: bool, shape: str) -> None:
        if not ok:
            raise InputError(
                f"{path}: line {lines.get(key, 1)}: key {key!r} must be {shape} [mapping_shape]"
            )

    if "table" in raw:
        need("table", isinstance(raw["table"], str), "a table name")
    columns = raw.get("columns") or {}
    need(
        "columns",
        isinstance(columns, dict)
        and all(scalar(k) and isinstance(v, str) for k, v in columns.items()),
        "feed column: schema column pairs",
    )
    values = raw.get("values") or {}
    need(
        "values",
        isinstance(values, dict)
        and all(
            isinstance(codes, dict) and all(scalar(k) and scalar(v) for k, v in codes.items())
            for codes in values.values()
        ),
        "schema column: {feed code: schema code} pairs",
    )
    constants = raw.get("constants") or {}
    need(
        "constants",
        isinstance(constants, dict) and all(scalar(v) for v in constants.values()),
        "schema column: value pairs",
    )
    drop = raw.get("drop") or []
    need("drop", isinstance(drop, list) and all(scalar(v) for v in drop), "a list of feed columns")
    targets: dict[str, str] = {}
    for source, target in columns.items():
        if target in targets:
            raise InputError(
                f"{path}: line {lines.get(f'columns.{source}', 1)}: columns "
                f"{targets[target]!r} and {source!r} are both mapped onto "
                f"{target!r}; map one and drop the other [mapping_shape]"
            )
        targets[target] = str(source)
    return {
        "table": raw.get("table"),
        "columns": {str(k): v for k, v in columns.items()},
        "values": {
            str(c): {str(k): str(v) for k, v in codes.items()} for c, codes in values.items()
        },
        "constants": {str(k): str(v) for k, v in constants.items()},
        "drop": [str(c) for c in drop],
    }


def apply_mapping(
    df: pd.DataFrame, mapping: dict[str, Any], path: Path | None = None
) -> pd.DataFrame:
    """The simple form: rename columns, recode values, add constants, drop listed columns.

    A rename onto a column the feed already has, or a constant for a column the feed
    already has, is refused: the feed's own values are never overwritten.
    """
    from outcomes.data.schema import TEXT

    where = f"{path}: " if path is not None else ""
    df = df.drop(columns=[c for c in mapping.get("drop", []) if c in df])
    renames = {k: v for k, v in (mapping.get("columns") or {}).items() if k in df}
    clash = [v for k, v in renames.items() if v in df and v not in renames and v != k]
    if clash:
        raise InputError(
            f"{where}the mapping renames a column onto {clash[0]!r}, which the feed already "
            "has; drop one of them [mapping_shape]"
        )
    df = df.rename(columns=renames)
    for column, codes in (mapping.get("values") or {}).items():
        if column in df:
            df[column] = df[column].replace({str(k): str(v) for k, v in codes.items()})
    for column, value in (mapping.get("constants") or {}).items():
        if column in df:
            raise InputError(
                f"{where}mapping constant {column}: {value!r} would overwrite the feed's own "
                f"column {column!r}; remove the constant or drop the column [mapping_constant]"
            )
        df[column] = pd.Series(str(value), index=df.index, dtype=TEXT)
    return df


def map_export(
    m: Mapping,
    sources: dict[str | None, RawFeed],
    labels: dict[str, dict[str, str]],
    table_of: dict[str, str],
) -> list[MappedTable]:
    """Apply a full mapping to the export's sources (sheet -> feed; ``None`` = the file).

    Parameters
    ----------
    m
        The checked mapping (full form).
    sources
        The export as read, one entry per sheet the mapping names.
    labels
        Value labels to decode with: column -> {code: label} (REDCap's choices or the file's).
    table_of
        Spec name -> table name (the single-table form's table may come from the file name).
    """
    from outcomes.data.transform import build_table, decode, find_anchor, unused_columns

    model = m.model
    assert model is not None
    frames = decode(m, {sheet: raw.data for sheet, raw in sources.items()}, labels)
    anchor = None
    if model.anchor is not None:
        sheet = model.anchor.sheet if model.anchor.sheet is not None else model.sheet
        anchor = find_anchor(m, frames[sheet], sources[sheet].rows)
    out = []
    for name, spec in _specs(model).items():
        sheet = spec.sheet if spec.sheet is not None else model.sheet
        if needs_source(spec) or model.tables is None:
            frame, rows = frames[sheet], sources[sheet].rows
        else:
            frame, rows = pd.DataFrame(index=range(1)), np.zeros(1, dtype=np.int64)
        out.append(build_table(m, name, table_of[name], spec, frame, rows, anchor))
    unused = unused_columns(m, {s: f.columns for s, f in frames.items()})
    if unused:
        listed = ", ".join(map(repr, unused))
        raise InputError(
            f"{m.path}: export column(s) {listed} are neither mapped nor dropped; map them or "
            "list them under `drop:` (so that nothing is left out unsaid) [unknown_column]"
        )
    return out
