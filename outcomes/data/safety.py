"""What keeps identifiers out and hostile text harmless.

- :func:`identifier_cells` finds values that look like direct identifiers (e-mail, phone,
  national numbers, person names; patterns from the dictionary's ``identifier_values``);
- :func:`write_csv` writes every CSV of the toolkit with text cells that a spreadsheet would
  run as a formula (starting ``=``, ``+``, ``-``, ``@``, tab or carriage return) prefixed by
  ``'``, as OWASP advises; numbers stay numbers;
- :func:`printable` escapes control and bidirectional-override characters before text
  reaches a terminal.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TextIO

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from outcomes.errors import InputError

__all__ = ["EscapingStream", "identifier_cells", "neutralise", "printable", "write_csv"]

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# C0/C1 controls (tab and newline are allowed in printed text) and bidi/zero-width format chars
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def printable(text: str, *, keep_newlines: bool = True) -> str:
    """Escape control characters (``\\x1b`` -> ``\\x1b`` as four visible characters)."""

    def esc(m: re.Match[str]) -> str:
        c = m.group()
        return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"

    out = _CONTROL.sub(esc, text)
    return out if keep_newlines else out.replace("\n", "\\n").replace("\t", "\\t")


class EscapingStream:
    """A text stream that escapes control characters before writing to ``stream``."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        return self.stream.write(printable(text))

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name: str):  # encoding, isatty, fileno, ...
        return getattr(self.stream, name)


def identifier_cells(values: pd.Series, patterns: dict[str, str]) -> pd.Series:
    """For each value, the kind of the first identifier pattern it matches (else missing).

    Parameters
    ----------
    values
        Text values.
    patterns
        Regular expression (RE2, searched in each value) -> kind, e.g. ``"e-mail address"``.
    """
    arr = pa.array(values.astype("string[pyarrow]").array)
    out = pd.Series(pd.NA, index=values.index, dtype="string[pyarrow]")
    if not patterns or len(arr) == 0:
        return out
    anything = "|".join(f"(?:{p})" for p in patterns)
    if not pc.any(pc.match_substring_regex(arr, anything)).as_py():
        return out
    hit = pa.nulls(len(arr), pa.string())
    for regex, kind in reversed(list(patterns.items())):
        match = pc.fill_null(pc.match_substring_regex(arr, regex), False)
        hit = pc.if_else(match, pa.scalar(kind), hit)
    return pd.Series(hit.to_pandas().to_numpy(), index=values.index, dtype="string[pyarrow]")


def neutralise(df: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text cells cannot start a spreadsheet formula (numbers untouched)."""
    out = df.copy()
    for name in out.columns:
        s = out[name]
        if not (pd.api.types.is_string_dtype(s) or s.dtype == object):
            continue
        risky = s.map(lambda v: isinstance(v, str) and v.startswith(FORMULA_START)).astype(bool)
        if risky.any():
            out[name] = s.astype(object).where(~risky, "'" + s[risky].astype(str))
    return out


def write_csv(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a CSV with formula prefixes neutralised; a clear error for a missing folder."""
    path = check_out_path(path)
    neutralise(df).to_csv(path, index=False)
    return path


def check_out_path(path: str | Path) -> Path:
    """``path`` if its folder exists, else an InputError naming it."""
    path = Path(path)
    if not path.parent.is_dir():
        raise InputError(f"{path}: folder {path.parent} does not exist (create it first)")
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give a file name")
    return path


def wrap_std_streams() -> tuple[TextIO, TextIO]:
    """Replace stdout and stderr by escaping streams; return the originals."""
    old = (sys.stdout, sys.stderr)
    sys.stdout = EscapingStream(sys.stdout)  # type: ignore[assignment]
    sys.stderr = EscapingStream(sys.stderr)  # type: ignore[assignment]
    return old
