"""Read feed files exactly as written: CSV, Excel (any sheet), Parquet, SPSS, Stata and SAS.

Every value is read as the text the file holds -- no type inference -- so ``0001`` stays
``0001`` and a 20-digit registration number keeps every digit; validation parses each column by
the dictionary's type afterwards. The bytes hashed are the bytes parsed (one read per file).

Each row keeps its place in the file: ``row`` is the line (CSV) or sheet row (Excel) where the
record starts, minus one for the header, so with no blank lines row *r* is line *r + 1*, and
blank lines or multi-line cells do not shift the numbers reported; for Parquet, SPSS, Stata
and SAS files it is the record's position from 1.

SPSS (``.sav``), Stata (``.dta``) and SAS (``.sas7bdat``, ``.xpt``) files are read with
pyreadstat, the optional extra ``formats`` (``pip install 'outcomes[formats]'``); their value
labels come with them (:attr:`RawFeed.labels`) for a mapping's ``decode:``. Dates become
``YYYY-MM-DD`` text.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import os
import tempfile
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from outcomes.errors import InputError

__all__ = [
    "FEED_SUFFIXES",
    "SKIP_REASONS",
    "STAT_SUFFIXES",
    "RawFeed",
    "read_bytes",
    "read_feed",
    "sheet_names",
]

STAT_SUFFIXES = (".sav", ".zsav", ".dta", ".sas7bdat", ".xpt")
FEED_SUFFIXES = (".csv", ".parquet", ".xlsx", *STAT_SUFFIXES)
SKIP_REASONS = {
    ".gz": "compressed files are not read; decompress it first",
    ".zip": "compressed files are not read; extract it first",
    ".tsv": "tab-separated files are not read; save it as CSV (comma-separated)",
    ".txt": "text files are not read; save it as CSV",
    ".xlsm": "macro-enabled workbooks are not read; save it as .xlsx",
    ".xls": "the old Excel format is not read; save it as .xlsx",
    ".xlsb": "binary workbooks are not read; save it as .xlsx",
    ".ods": "OpenDocument sheets are not read; save it as .xlsx or CSV",
    ".json": "JSON is not a feed format (CSV, Excel .xlsx, Parquet, SPSS, Stata or SAS)",
}
INSTALL_FORMATS = "pip install 'outcomes[formats]'"


@dataclass
class RawFeed:
    """A feed file (or one sheet) as read: text columns, each row's place, the bytes' hash.

    ``labels`` holds value labels where the file has them (SPSS, Stata, SAS): column ->
    {code as text: label}.
    """

    path: Path
    data: pd.DataFrame
    rows: np.ndarray  # row number per record (line of its start minus one)
    sha256: str
    notes: list[str] = field(default_factory=list)
    labels: dict[str, dict[str, str]] = field(default_factory=dict)


def read_bytes(path: Path) -> tuple[bytes, str]:
    """The file's bytes and their SHA-256 (an InputError for an unknown format or no file)."""
    suffix = path.suffix.lower()
    if suffix not in FEED_SUFFIXES:
        why = SKIP_REASONS.get(suffix, "use CSV, Excel (.xlsx), Parquet, SPSS, Stata or SAS")
        raise InputError(f"{path}: unknown feed format {suffix!r}: {why}")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InputError(f"{path}: cannot be read ({err.strerror or err})") from None
    return data, hashlib.sha256(data).hexdigest()


def read_feed(
    path: Path, sheet: str | None = None, data: bytes | None = None, sha256: str = ""
) -> RawFeed:
    """Read one feed (one sheet of a workbook) with every value as the text written.

    Parameters
    ----------
    path
        The file.
    sheet
        Excel only: the sheet to read (default the first, with a note naming the others).
    data, sha256
        The file's bytes and hash when already read (:func:`read_bytes`), so that several
        sheets of one workbook are parsed from the same bytes.
    """
    if data is None:
        data, sha256 = read_bytes(path)
    suffix = path.suffix.lower()
    if sheet is not None and suffix != ".xlsx":
        raise InputError(f"{path}: `sheet: {sheet}` given, but only Excel workbooks have sheets")
    labels: dict[str, dict[str, str]] = {}
    if suffix == ".csv":
        df, rows, notes = _read_csv(path, data)
    elif suffix == ".xlsx":
        df, rows, notes = _read_xlsx(path, data, sheet)
    elif suffix == ".parquet":
        df, rows, notes = _read_parquet(path, data)
    else:
        df, rows, labels = _read_stat(path, data)
        notes = []
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
    return RawFeed(path, df.astype("string[pyarrow]"), rows, sha256, notes, labels)


def sheet_names(path: Path, data: bytes) -> list[str]:
    """The sheets of an Excel workbook, in order."""
    from openpyxl import load_workbook

    try:
        wb = load_workbook(io.BytesIO(data), read_only=True)
    except Exception as err:  # any openpyxl failure means the workbook cannot be read
        raise InputError(f"{path}: cannot be read as XLSX ({err})") from None
    try:
        return list(wb.sheetnames)
    finally:
        wb.close()


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
    if isinstance(value, datetime) and value.time() == time(0):
        return value.date().isoformat()
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)


def _read_xlsx(path: Path, data: bytes, sheet: str | None = None):
    from openpyxl import load_workbook

    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as err:  # any openpyxl failure means the workbook cannot be read
        raise InputError(f"{path}: cannot be read as XLSX ({err})") from None
    try:
        sheets = wb.sheetnames
        if sheet is not None and sheet not in sheets:
            raise InputError(
                f"{path}: no sheet {sheet!r}; the workbook has {', '.join(map(repr, sheets))} "
                "[sheet]"
            )
        name = sheets[0] if sheet is None else sheet
        ws = wb[name]
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
                    f"{path}: sheet {name!r} row {number} has values beyond the header's "
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
        which = "the first sheet" if sheet is None else "sheet"
        raise InputError(f"{path}: {which} {name!r} is empty")
    notes = []
    if sheet is None and len(sheets) > 1:
        notes.append(
            f"{path}: only the first sheet {sheets[0]!r} was read; sheet(s) "
            f"{', '.join(map(repr, sheets[1:]))} skipped (one table per file; a mapping's "
            "`sheet:` reads the others)"
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


def _read_stat(path: Path, data: bytes):
    """An SPSS, Stata or SAS file through pyreadstat: text values and value labels."""
    try:
        import pyreadstat
    except ImportError:
        raise InputError(
            f"{path}: reading {path.suffix} files needs pyreadstat, the optional extra "
            f"'formats': {INSTALL_FORMATS}"
        ) from None
    suffix = path.suffix.lower()
    readers: dict[str, Any] = {
        ".sav": pyreadstat.read_sav,
        ".zsav": pyreadstat.read_sav,
        ".dta": pyreadstat.read_dta,
        ".sas7bdat": pyreadstat.read_sas7bdat,
        ".xpt": pyreadstat.read_xport,
    }
    # pyreadstat reads from a path: parse a private copy of the bytes already hashed
    fd, tmp = tempfile.mkstemp(suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        df, meta = readers[suffix](tmp)
    except Exception as err:  # any pyreadstat failure means the file cannot be read
        raise InputError(f"{path}: cannot be read as {suffix[1:].upper()} ({err})") from None
    finally:
        os.unlink(tmp)
    columns = {}
    for i, name in enumerate(df.columns):
        columns[i] = pd.array([_stat_text(v) for v in df[name]], dtype="string[pyarrow]")
    out_df = pd.DataFrame(columns, index=pd.RangeIndex(len(df)))
    out_df.columns = [str(c) for c in df.columns]
    labels = {
        str(column): {_stat_text(k): str(v) for k, v in meta.value_labels[label_set].items()}
        for column, label_set in (meta.variable_to_label or {}).items()
        if label_set in (meta.value_labels or {})
    }
    return out_df, np.arange(1, len(df) + 1, dtype=np.int64), labels


def _stat_text(value: Any) -> str:
    """A value from pyreadstat as text: missing as empty, whole numbers without ``.0``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if value is pd.NaT:
        return ""
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    return _cell_text(value)
