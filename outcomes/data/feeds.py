"""Find and read feed files exactly as written, and read their mapping files.

Every value is read as the text the file holds -- no type inference -- so ``0001`` stays
``0001`` and a 20-digit registration number keeps every digit; validation parses each column by
the dictionary's type afterwards. The bytes hashed are the bytes parsed (one read per file).

Each row keeps its place in the file: ``row`` is the line (CSV) or sheet row (Excel) where the
record starts, minus one for the header, so with no blank lines row *r* is line *r + 1*, and
blank lines or multi-line cells do not shift the numbers reported.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from outcomes.errors import InputError

__all__ = ["FEED_SUFFIXES", "RawFeed", "discover_feeds", "load_mapping", "read_feed"]

FEED_SUFFIXES = (".csv", ".parquet", ".xlsx")
MAPPING_SUFFIX = ".mapping.yaml"
# Files a feed folder may hold besides feeds, skipped without a word.
QUIET_NAMES = ("truth.json",)
SKIP_REASONS = {
    ".gz": "compressed files are not read; decompress it first",
    ".zip": "compressed files are not read; extract it first",
    ".tsv": "tab-separated files are not read; save it as CSV (comma-separated)",
    ".txt": "text files are not read; save it as CSV",
    ".xlsm": "macro-enabled workbooks are not read; save it as .xlsx",
    ".xls": "the old Excel format is not read; save it as .xlsx",
    ".xlsb": "binary workbooks are not read; save it as .xlsx",
    ".ods": "OpenDocument sheets are not read; save it as .xlsx or CSV",
    ".json": "JSON is not a feed format (CSV, Excel .xlsx or Parquet)",
}
MAPPING_KEYS = ("table", "columns", "values", "constants", "drop")


@dataclass
class RawFeed:
    """A feed file as read: text columns, each row's place in the file, the bytes' hash."""

    path: Path
    data: pd.DataFrame
    rows: np.ndarray  # row number per record (line of its start minus one)
    sha256: str
    notes: list[str] = field(default_factory=list)


def discover_feeds(paths: list[str | Path]) -> tuple[list[Path], list[str]]:
    """Feed files named by ``paths`` and a note for each file or folder skipped.

    Folders are searched one level deep; subfolders, mapping files and files of other formats
    are not read, and each skipped entry (except mapping files and the simulator's
    ``truth.json``) is named with the reason.
    """
    found: list[Path] = []
    skipped: list[str] = []
    for p in map(Path, paths):
        if p.is_dir():
            for f in sorted(p.iterdir()):
                if f.name.endswith(MAPPING_SUFFIX) or f.name in QUIET_NAMES:
                    continue
                if f.is_dir():
                    skipped.append(f"{f}: subfolder not searched (name it to ingest its feeds)")
                elif f.name.startswith("."):
                    skipped.append(f"{f}: hidden file not read")
                elif f.suffix.lower() in FEED_SUFFIXES:
                    found.append(f)
                else:
                    why = SKIP_REASONS.get(
                        f.suffix.lower(), "not a feed format (CSV, .xlsx, Parquet)"
                    )
                    skipped.append(f"{f}: {why}")
        elif p.is_file():
            found.append(p)
        elif p.exists():
            raise InputError(f"{p}: not a file or folder")
        else:
            raise InputError(f"{p}: no such file or folder")
    return found, skipped


def read_feed(path: Path) -> RawFeed:
    """Read one feed with every value as the text written (see the module docstring)."""
    suffix = path.suffix.lower()
    if suffix not in FEED_SUFFIXES:
        why = SKIP_REASONS.get(suffix, "use CSV, Excel (.xlsx) or Parquet")
        raise InputError(f"{path}: unknown feed format {suffix!r}: {why}")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InputError(f"{path}: cannot be read ({err.strerror or err})") from None
    sha = hashlib.sha256(data).hexdigest()
    if suffix == ".csv":
        df, rows, notes = _read_csv(path, data)
    elif suffix == ".xlsx":
        df, rows, notes = _read_xlsx(path, data)
    else:
        df, rows, notes = _read_parquet(path, data)
    names = [str(c).strip() for c in df.columns]
    empty = [i + 1 for i, n in enumerate(names) if not n]
    if empty:
        raise InputError(f"{path}: header field(s) {empty} have no column name")
    seen: dict[str, int] = {}
    for i, n in enumerate(names):
        if n in seen:
            raise InputError(
                f"{path}: column {n!r} appears twice (header fields {seen[n] + 1} and {i + 1}); "
                "each column name must be unique [duplicate_column]"
            )
        seen[n] = i
    df.columns = names
    return RawFeed(path, df.astype("string[pyarrow]"), rows, sha, notes)


def _frame(path: Path, header: list[str], records: list[list[str]], lines: list[int]):
    for rec, line in zip(records, lines, strict=True):
        if len(rec) != len(header):
            raise InputError(
                f"{path}: line {line} has {len(rec)} fields but the header has {len(header)} "
                "[field_count]"
            )
    columns = list(zip(*records, strict=True)) if records else [()] * len(header)
    df = pd.DataFrame(
        {i: pd.array(list(c), dtype="string[pyarrow]") for i, c in enumerate(columns)}
    )
    df.columns = header
    return df, np.asarray(lines, dtype=np.int64) - 1


def _read_csv(path: Path, data: bytes):
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise InputError(
            f"{path}: line {line}: byte {err.start} is not UTF-8; save the file as UTF-8 [encoding]"
        ) from None
    fast = _read_simple_csv(data)
    if fast is not None:
        return fast
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    records: list[list[str]] = []
    lines: list[int] = []
    try:
        while True:
            start = reader.line_num + 1
            try:
                rec = next(reader)
            except StopIteration:
                break
            if not rec:
                continue  # a blank line
            if header is None:
                header = rec
            else:
                records.append(rec)
                lines.append(start)
    except csv.Error as err:
        raise InputError(f"{path}: line {reader.line_num}: cannot be read as CSV ({err})") from None
    if header is None:
        raise InputError(f"{path}: the file is empty (no header line)")
    df, rows = _frame(path, header, records, lines)
    return df, rows, []


def _read_simple_csv(data: bytes) -> tuple[pd.DataFrame, np.ndarray, list[str]] | None:
    """The fast path (Arrow's reader, every column as text) for a CSV where each line is one
    record: no blank lines, no multi-line cells, every row as wide as the header. None when
    the file is not that simple (the exact reader then numbers the lines)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    body = data.removeprefix(b"\xef\xbb\xbf")
    first = body.split(b"\n", 1)[0]
    if not first.strip() or b'"' in first:
        return None
    width = len(next(csv.reader([first.decode("utf-8").rstrip("\r")])))
    names = [f"f{i}" for i in range(width)]
    try:
        table = pacsv.read_csv(
            io.BytesIO(body),
            read_options=pacsv.ReadOptions(column_names=names),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                null_values=[],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, ValueError):
        return None
    lines = body.count(b"\n") + (0 if body.endswith(b"\n") else 1)
    if table.num_rows != lines or table.num_rows == 0:
        return None
    header = [str(v) for v in table.slice(0, 1).to_pylist()[0].values()]
    df = table.slice(1).to_pandas(types_mapper=lambda t: pd.StringDtype("pyarrow"))
    df.columns = header
    return df, np.arange(1, table.num_rows, dtype=np.int64), []


def _cell_text(value: Any) -> str:
    """An Excel cell as text: text as written, whole numbers without a decimal point."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)


def _read_xlsx(path: Path, data: bytes):
    from openpyxl import load_workbook

    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as err:  # any openpyxl failure means the workbook cannot be read
        raise InputError(f"{path}: cannot be read as XLSX ({err})") from None
    try:
        sheets = wb.sheetnames
        ws = wb[sheets[0]]
        header: list[str] | None = None
        records: list[list[str]] = []
        lines: list[int] = []
        for number, row in enumerate(ws.iter_rows(values_only=True), start=1):
            cells = [_cell_text(v) for v in row]
            if not any(cells):
                continue
            if header is None:
                while cells and not cells[-1]:
                    cells.pop()
                header = cells
                continue
            extra = cells[len(header) :]
            if any(extra):
                raise InputError(
                    f"{path}: sheet {sheets[0]!r} row {number} has values beyond the header's "
                    f"{len(header)} columns [field_count]"
                )
            records.append((cells + [""] * len(header))[: len(header)])
            lines.append(number)
    except InputError:
        raise
    except Exception as err:  # a damaged sheet
        raise InputError(f"{path}: cannot be read as XLSX ({err})") from None
    finally:
        wb.close()
    if header is None:
        raise InputError(f"{path}: the first sheet {sheets[0]!r} is empty")
    notes = []
    if len(sheets) > 1:
        notes.append(
            f"{path}: only the first sheet {sheets[0]!r} was read; sheet(s) "
            f"{', '.join(map(repr, sheets[1:]))} skipped (one table per file)"
        )
    df, rows = _frame(path, header, records, lines)
    return df, rows, notes


def _read_parquet(path: Path, data: bytes):
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(data))
    except Exception as err:  # any pyarrow failure means the file cannot be read
        raise InputError(f"{path}: cannot be read as PARQUET ({err})") from None
    columns = {}
    for i in range(table.num_columns):
        values = table.column(i).to_pylist()
        columns[i] = pd.array(
            [None if v is None else _cell_text(v) for v in values], dtype="string[pyarrow]"
        )
    df = pd.DataFrame(columns, index=pd.RangeIndex(table.num_rows))
    df.columns = list(table.column_names)
    return df, np.arange(1, table.num_rows + 1, dtype=np.int64), []


def load_mapping(path: Path) -> dict[str, Any]:
    """Read and check a mapping file: its keys and the shape of each (see ``data.ingest``)."""
    try:
        raw = yaml.safe_load(path.read_bytes())
    except (OSError, yaml.YAMLError) as err:
        raise InputError(f"{path}: cannot read mapping ({err})") from None
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise InputError(f"{path}: a mapping must be a set of keys ({', '.join(MAPPING_KEYS)})")
    unknown = sorted(map(str, set(raw) - set(MAPPING_KEYS)))
    if unknown:
        raise InputError(f"{path}: unknown mapping keys {unknown}; use {', '.join(MAPPING_KEYS)}")

    def scalar(v: Any) -> bool:
        return isinstance(v, str | int | float | bool) and not isinstance(v, dict | list)

    def need(key: str, ok: bool, shape: str) -> None:
        if not ok:
            raise InputError(f"{path}: key {key!r} must be {shape} [mapping_shape]")

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
                f"{path}: columns {targets[target]!r} and {source!r} are both mapped onto "
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


def mapping_sha256(mapping: dict[str, Any]) -> str:
    """Hash of a checked mapping (comments and layout of the file do not count)."""
    return hashlib.sha256(json.dumps(mapping, sort_keys=True).encode()).hexdigest()
