"""The data dictionary: the single source of tables, columns, codes, ranges and instruments.

The YAML lives in ``data_dictionary/dictionary.yaml`` (shipped inside the package as
``outcomes/data/dictionary.yaml``). Everything else -- validation schemas, ingest rules, the
readable dictionary page -- is generated from the :class:`Dictionary` loaded here.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, StrictBool, StrictFloat, StrictInt, StrictStr, model_validator
from pydantic_core import PydanticCustomError

from outcomes.data.yaml_model import YamlModel, validate
from outcomes.errors import InputError

__all__ = [
    "Column",
    "Dictionary",
    "ForeignKey",
    "Instrument",
    "Table",
    "load_dictionary",
    "render_dictionary",
]

TABLE_ORDER = ("studies", "subjects", "units", "sessions", "assessments", "adverse_events")


@dataclass(frozen=True)
class Instrument:
    """An outcome instrument: its range, direction and type."""

    code: str
    label: str
    low: float
    high: float
    direction: str  # "higher_worse" or "higher_better"
    type: str  # "continuous" or "ordinal"
    integer: bool
    levels: dict[int, str] = field(default_factory=dict)
    source: str = ""

    @property
    def higher_is_better(self) -> bool:
        """Whether a higher score means a better outcome."""
        return self.direction == "higher_better"


@dataclass(frozen=True)
class Column:
    """One column of a table."""

    name: str
    type: str  # string, integer, number, boolean, code, instrument
    required: bool
    description: str
    codelist: str | None = None
    range: tuple[float, float] | None = None
    pattern: str | None = None
    unit: str | None = None
    instrument_range: bool = False


@dataclass(frozen=True)
class ForeignKey:
    """Columns that must match the primary key of another table."""

    columns: tuple[str, ...]
    references: str
    optional: bool = False


@dataclass(frozen=True)
class Table:
    """One table of the schema."""

    name: str
    description: str
    primary_key: tuple[str, ...]
    columns: dict[str, Column]
    foreign_keys: tuple[ForeignKey, ...] = ()
    within_follow_up: str | None = None
    rules: tuple[dict[str, Any], ...] = ()

    @property
    def required_columns(self) -> list[str]:
        """Names of the columns that may not be missing."""
        return [c.name for c in self.columns.values() if c.required]


@dataclass(frozen=True)
class Dictionary:
    """The loaded data dictionary."""

    version: str
    instruments: dict[str, Instrument]
    codelists: dict[str, dict[str, str]]
    tables: dict[str, Table]
    identifier_patterns: tuple[str, ...]
    sha256: str
    identifier_values: tuple[dict[str, Any], ...] = ()

    def table(self, name: str) -> Table:
        """Return a table by name, with a readable error for an unknown name."""
        try:
            return self.tables[name]
        except KeyError:
            known = ", ".join(self.tables)
            raise InputError(f"unknown table {name!r}; the dictionary has: {known}") from None

    def codes(self, column: Column) -> list[str]:
        """Allowed values of a code or instrument column."""
        if column.type == "instrument":
            return list(self.instruments)
        if column.codelist is None:
            return []
        return list(self.codelists[column.codelist])

    def looks_like_identifier(self, column_name: str) -> bool:
        """Whether a feed column name looks like a direct identifier (name, e-mail, ...)."""
        return any(re.search(p, normalise_name(column_name)) for p in self.identifier_patterns)

    def value_patterns(self, column: str) -> dict[str, str]:
        """Identifier value patterns that apply to ``column``: regex -> kind of identifier."""
        return {
            v["pattern"]: v["kind"]
            for v in self.identifier_values
            if column in v.get("columns", [column])
        }


def normalise_name(column_name: str) -> str:
    """A column name as the identifier screen compares it: ``HospitalNo.`` -> ``hospital_no``."""
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", column_name.strip()).replace("ß", "ss")
    name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


# --------------------------------------------------------------------------------------------
# the YAML file's shape: checked before the dictionary is built, so a broken dictionary file
# gives "file: key 'tables.units.columns.unit_id.codelist': message" instead of a traceback

Text = StrictStr
Number = StrictFloat  # whole numbers too; not true/false or text


class _InstrumentSpec(YamlModel):
    label: Text
    range: tuple[Number, Number]
    direction: Literal["higher_worse", "higher_better"]
    type: Literal["continuous", "ordinal"]
    integer: StrictBool = False
    levels: dict[StrictInt, Text] | None = None
    source: Text = ""


class _ColumnSpec(YamlModel):
    type: Literal["string", "integer", "number", "boolean", "code", "instrument"]
    required: StrictBool
    description: Text
    codelist: Text | None = None
    range: tuple[Number, Number] | None = None
    pattern: Text | None = None
    unit: Text | None = None
    instrument_range: StrictBool = False


class _ForeignKeySpec(YamlModel):
    columns: list[Text]
    references: Text
    optional: StrictBool = False


class _TableSpec(YamlModel):
    description: Text
    primary_key: list[Text]
    columns: dict[Text, _ColumnSpec]
    foreign_keys: list[_ForeignKeySpec] = Field(default_factory=list)
    within_follow_up: Text | None = None
    rules: list[dict[Text, Any]] = Field(default_factory=list)


class _IdentifierValueSpec(YamlModel):
    kind: Text
    pattern: Text
    columns: list[Text] | None = None


class _DictionaryFile(YamlModel):
    version: Text | Number
    instruments: dict[Text, _InstrumentSpec]
    codelists: dict[Text, dict[Text | StrictInt, Text | Number]]
    tables: dict[Text, _TableSpec]
    identifier_patterns: list[Text] = Field(default_factory=list)
    identifier_values: list[_IdentifierValueSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> _DictionaryFile:
        """Codelists, key columns and referenced tables exist."""
        for name, table in self.tables.items():
            where = f"tables.{name}"
            for col, spec in table.columns.items():
                if spec.codelist is not None and spec.codelist not in self.codelists:
                    raise _missing(f"{where}.columns.{col}.codelist", "codelist", spec.codelist)
                if spec.type == "code" and spec.codelist is None:
                    raise _missing(f"{where}.columns.{col}.codelist", "key", "codelist")
            for col in table.primary_key:
                if col not in table.columns:
                    raise _missing(f"{where}.primary_key", "column", col)
            if table.within_follow_up and table.within_follow_up not in table.columns:
                raise _missing(f"{where}.within_follow_up", "column", table.within_follow_up)
            for i, fk in enumerate(table.foreign_keys):
                if fk.references not in self.tables:
                    raise _missing(f"{where}.foreign_keys[{i}].references", "table", fk.references)
                for col in fk.columns:
                    if col not in table.columns:
                        raise _missing(f"{where}.foreign_keys[{i}].columns", "column", col)
        return self


def _missing(key: str, what: str, name: str) -> PydanticCustomError:
    message = "missing required key" if what == "key" else f"unknown {what} {name!r}"
    return PydanticCustomError("reference", message, {"key": key})


def _parse(raw: dict[str, Any], sha256: str) -> Dictionary:
    instruments = {
        code: Instrument(
            code=code,
            label=spec["label"],
            low=float(spec["range"][0]),
            high=float(spec["range"][1]),
            direction=spec["direction"],
            type=spec["type"],
            integer=bool(spec.get("integer", False)),
            levels={int(k): v for k, v in (spec.get("levels") or {}).items()},
            source=spec.get("source", ""),
        )
        for code, spec in raw["instruments"].items()
    }
    tables = {}
    for name, spec in raw["tables"].items():
        columns = {
            col: Column(
                name=col,
                type=c["type"],
                required=bool(c["required"]),
                description=c["description"],
                codelist=c.get("codelist"),
                range=tuple(c["range"]) if "range" in c else None,  # type: ignore[arg-type]
                pattern=c.get("pattern"),
                unit=c.get("unit"),
                instrument_range=bool(c.get("instrument_range", False)),
            )
            for col, c in spec["columns"].items()
        }
        tables[name] = Table(
            name=name,
            description=" ".join(spec["description"].split()),
            primary_key=tuple(spec["primary_key"]),
            columns=columns,
            foreign_keys=tuple(
                ForeignKey(tuple(fk["columns"]), fk["references"], bool(fk.get("optional", False)))
                for fk in spec.get("foreign_keys", [])
            ),
            within_follow_up=spec.get("within_follow_up"),
            rules=tuple(spec.get("rules", [])),
        )
    return Dictionary(
        version=str(raw["version"]),
        instruments=instruments,
        codelists={
            k: {str(code): str(label) for code, label in v.items()}
            for k, v in raw["codelists"].items()
        },
        tables={name: tables[name] for name in TABLE_ORDER if name in tables},
        identifier_patterns=tuple(raw.get("identifier_patterns", [])),
        sha256=sha256,
        identifier_values=tuple(raw.get("identifier_values", [])),
    )


@cache
def load_dictionary(path: str | Path | None = None) -> Dictionary:
    """Load the data dictionary.

    Parameters
    ----------
    path
        A dictionary YAML file; by default the one shipped with the package.

    Returns
    -------
    Dictionary
        The parsed dictionary, with ``sha256`` the hash of the file's bytes.

    Raises
    ------
    InputError
        ``"<file>: key 'tables.units.columns.unit_id.codelist': unknown codelist 'x'"``: an
        unknown or missing key, a value of the wrong type, or a reference to a codelist, table
        or column that does not exist.
    """
    if path is None:
        data = resources.files("outcomes").joinpath("data/dictionary.yaml").read_bytes()
        name = "data_dictionary/dictionary.yaml"
    else:
        data = Path(path).read_bytes()
        name = str(path)
    try:
        raw = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise InputError(f"{name}: not valid YAML ({exc})") from None
    validate(_DictionaryFile, raw, name)
    return _parse(raw, hashlib.sha256(data).hexdigest())


def _allowed(d: Dictionary, col: Column) -> str:
    if col.type == "instrument":
        return "an instrument code (see Instruments)"
    if col.codelist:
        return ", ".join(f"`{c}`" for c in d.codelists[col.codelist])
    if col.range:
        return f"{col.range[0]:g} to {col.range[1]:g}"
    if col.instrument_range:
        return "the instrument's range"
    if col.pattern:
        return f"matches `{col.pattern}`"
    return ""


def render_dictionary(d: Dictionary | None = None) -> str:
    """Render the dictionary as a Markdown page for people (auditors, data managers)."""
    d = d or load_dictionary()
    out = [
        "# outcomes data dictionary",
        "",
        f"Version {d.version}; file SHA-256 `{d.sha256}`.",
        "",
        "Days are study days counted from the subject's enrolment (day 0). "
        "No calendar dates or direct identifiers are stored.",
        "",
    ]
    for t in d.tables.values():
        out += [f"## Table `{t.name}`", "", t.description, ""]
        out.append(f"Key: ({', '.join(t.primary_key)}), unique.")
        for fk in t.foreign_keys:
            opt = " when given" if fk.optional else ""
            out.append(f"Each ({', '.join(fk.columns)}) must exist in `{fk.references}`{opt}.")
        if t.within_follow_up:
            out.append(
                f"`{t.within_follow_up}` may not be after the subject's `end_day` (subjects)."
            )
        for rule in t.rules:
            out.append(f"Rule `{rule['name']}`: {rule['description']}")
        out += [
            "",
            "| column | type | unit | required | allowed | description |",
            "|---|---|---|---|---|---|",
        ]
        for c in t.columns.values():
            typ = (c.codelist and f"code ({c.codelist})") or c.type
            out.append(
                f"| `{c.name}` | {typ} | {c.unit or ''} | {'yes' if c.required else 'no'} "
                f"| {_allowed(d, c)} | {c.description} |"
            )
        out.append("")
    out += [
        "## Instruments",
        "",
        "| code | instrument | range | direction | type | levels |",
        "|---|---|---|---|---|---|",
    ]
    for i in d.instruments.values():
        levels = "; ".join(f"{k} {v}" for k, v in i.levels.items())
        direction = "higher = better" if i.higher_is_better else "higher = worse"
        out.append(
            f"| `{i.code}` | {i.label} | {i.low:g}-{i.high:g} | {direction} | {i.type} | {levels} |"
        )
    out += [
        "",
        "## Refused columns",
        "",
        "Feeds with a column whose name matches one of these patterns are refused:",
        "",
    ]
    out += [f"- `{p}`" for p in d.identifier_patterns]
    out += [
        "",
        "## Refused values",
        "",
        "A row with a value matching one of these patterns is quarantined, and the value "
        "itself is not kept:",
        "",
    ]
    out += [
        f"- {v['kind']}: `{v['pattern']}`"
        + (f" (columns {', '.join(v['columns'])})" if v.get("columns") else "")
        for v in d.identifier_values
    ]
    return "\n".join(out) + "\n"
