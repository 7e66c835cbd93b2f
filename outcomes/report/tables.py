"""Journal tables: numbers formatted for people, full precision kept in the data.

:func:`journal_table` turns a DataFrame (typically a tidy result with the shared
``term, estimate, std_error, statistic, df, p_value, conf_low, conf_high`` columns) into a
:class:`JournalTable`: the original frame stays untouched in ``.data``, the formatted strings
are in ``.display``, and ``to_markdown()`` gives a pandoc pipe table. In a report cell the table
is shown by making it the cell's last expression: it displays as ``text/markdown``, which both
Quarto and the built-in renderer place in the document as a real table (numbered and captioned
through the cell's ``tbl-cap``), so HTML, Word and PDF get the same journal-style table.

Formatting rules (BMJ/Lancet-like):

* estimate with interval: ``1.23 (0.98 to 1.54)`` -- "to" rather than a dash, so negative
  limits stay readable: ``−0.32 (−0.44 to −0.20)``; negative numbers use the minus sign U+2212;
* p-values: ``<0.001`` below 0.001, ``>0.99`` above 0.99, otherwise three decimals;
* other floats: ``digits`` decimals (one number or a per-column mapping); whole-number integer
  columns: no decimals, thousands separated by commas;
* missing values: an en dash.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from outcomes.errors import InputError

__all__ = ["JournalTable", "format_ci", "format_number", "format_p", "journal_table"]

MINUS = "\N{MINUS SIGN}"
MISSING = "\N{EN DASH}"

#: People's labels for the shared tidy columns (see :data:`outcomes.results.TIDY_COLUMNS`).
TIDY_LABELS: dict[str, str] = {
    "term": "Term",
    "estimate": "Estimate",
    "std_error": "SE",
    "statistic": "Statistic",
    "df": "df",
    "p_value": "p",
}

_MARKDOWN_SPECIAL = set("\\`*_[]<>|#$~^@")


def format_number(value: object, digits: int = 2) -> str:
    """Format one number for a table: fixed decimals, U+2212 minus, en dash when missing.

    Parameters
    ----------
    value
        A number (or ``None``/NaN for missing).
    digits
        Decimal places.

    Returns
    -------
    str

    Examples
    --------
    >>> format_number(-0.3249, 2)
    '−0.32'
    >>> format_number(float("nan"))
    '–'
    """
    if value is None or (isinstance(value, float | np.floating) and math.isnan(value)):
        return MISSING
    text = f"{float(value):.{digits}f}"  # type: ignore[arg-type]
    if text.startswith("-"):
        # "-0.00" is zero, not a negative number
        text = text[1:] if float(text) == 0 else MINUS + text[1:]
    return text


def format_ci(estimate: object, low: object, high: object, digits: int = 2) -> str:
    """Format an estimate with its interval as ``"1.23 (0.98 to 1.54)"``.

    Examples
    --------
    >>> format_ci(-0.32, -0.44, -0.2)
    '−0.32 (−0.44 to −0.20)'
    """
    est = format_number(estimate, digits)
    if est == MISSING:
        return MISSING
    lo, hi = format_number(low, digits), format_number(high, digits)
    if lo == MISSING and hi == MISSING:
        return est
    return f"{est} ({lo} to {hi})"


def format_p(p: object) -> str:
    """Format a p-value: ``"<0.001"``, ``">0.99"`` or three decimals.

    Examples
    --------
    >>> format_p(0.00002), format_p(0.0314), format_p(0.999)
    ('<0.001', '0.031', '>0.99')
    """
    if p is None or (isinstance(p, float | np.floating) and math.isnan(p)):
        return MISSING
    value = float(p)  # type: ignore[arg-type]
    if not 0.0 <= value <= 1.0:
        raise InputError(f"p-value {value!r} is outside [0, 1]")
    if value < 0.001:
        return "<0.001"
    if value > 0.99:
        return ">0.99"
    return f"{value:.3f}"


def _escape_markdown(text: str) -> str:
    return "".join("\\" + ch if ch in _MARKDOWN_SPECIAL else ch for ch in text).replace("\n", " ")


@dataclass(frozen=True)
class JournalTable:
    """A table ready for a report: the data at full precision and its formatted display.

    Attributes
    ----------
    data
        The frame as given (never modified).
    display
        One string per cell, as printed.
    align
        ``"left"`` or ``"right"`` per display column (numbers right, text left).
    caption
        Optional caption used by :meth:`to_markdown`. In a report, give the caption with the
        cell option ``tbl-cap`` instead, so the table is numbered.
    note
        Optional footnote set in small type under the table (abbreviations, tests used).
    """

    data: pd.DataFrame
    display: pd.DataFrame
    align: tuple[str, ...]
    caption: str | None = None
    note: str | None = None

    def to_markdown(self) -> str:
        """Return a pandoc pipe table, then a ``: caption`` line and the note, when set.

        The note is a ``table-note`` div: small type in HTML (the built-in stylesheet), the
        "Table Note" paragraph style in Word, and 9 pt text in Typst.

        Separator dashes set the columns' shares of the width when pandoc wraps a wide table
        (see :func:`_column_widths`).
        """
        header = [_escape_markdown(str(c)) for c in self.display.columns]
        rows = [[_escape_markdown(v) for v in row] for row in self.display.itertuples(index=False)]
        widths = _column_widths(header, rows)
        rules = [
            ":" + "-" * max(w - 1, 2) if a == "left" else "-" * max(w - 1, 2) + ":"
            for w, a in zip(widths, self.align, strict=True)
        ]
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rules) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        text = "\n".join(lines) + "\n"
        if self.caption:
            text += f"\n: {self.caption}\n"
        if self.note:
            text += (
                '\n::: {.table-note custom-style="Table Note"}\n'
                "```{=typst}\n#set text(size: 9pt)\n```\n\n"
                f"{self.note}\n:::\n"
            )
        return text

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def __repr__(self) -> str:
        return self.display.to_string(index=False)


#: Characters beyond which a long cell no longer widens its column (it wraps instead).
_WRAP_AT = 30
#: Longest word that widens a column (longer ones, e.g. web addresses, break anyway).
_WORD_AT = 20
#: Narrowest column, in characters: Word breaks "0.3" or "P-score" in narrower ones.
_NARROWEST = 9
#: Characters a heading row (text in the first cell only) may claim of the first column.
_HEADING_AT = 30
#: Characters of cell padding (left and right margins of a Word or Typst cell).
_PADDING = 2
#: Characters of 11 pt text on one line of the page's text width (A4, 2.5 cm margins), counted
#: for a sans-serif font: Word or LibreOffice may set the tables in one when Times is missing.
_LINE = 70


def _column_widths(header: list[str], rows: list[list[str]]) -> list[int]:
    """Column widths in characters of one line: words are never broken, long text wraps.

    A column wants its widest cell up to :data:`_WRAP_AT` characters and needs its longest
    word (up to :data:`_WORD_AT`), plus the cell padding. The widths are shares of the text
    width, so a table wider than a line (:data:`_LINE`) first gives every column what it
    needs and shares only the rest in proportion to what columns want beyond that; scaling
    every width down alike would squeeze short columns below their longest word
    ("Compariso-n", "<0.00-1"). Heading rows claim at most :data:`_HEADING_AT` characters of
    the first column.
    """
    need, want = [], []
    for i, h in enumerate(header):
        words, full = len(max(h.split() or [""], key=len)), len(h)
        for r in rows:
            heading = not any(v.strip() for v in r[1:])
            if heading and i > 0:
                continue
            words = max(words, len(max(r[i].split() or [""], key=len)))
            full = max(full, min(len(r[i]), _HEADING_AT) if heading else len(r[i]))
        need.append(max(min(words, _WORD_AT), _NARROWEST) + _PADDING)
        want.append(max(need[-1], min(full, _WRAP_AT) + _PADDING))
    spare, extra = _LINE - sum(need), sum(want) - sum(need)
    if spare >= extra:
        return want
    if spare <= 0:
        return need
    return [n + round(spare * (w - n) / extra) for n, w in zip(need, want, strict=True)]


def journal_table(
    df: pd.DataFrame,
    *,
    caption: str | None = None,
    note: str | None = None,
    digits: int | Mapping[str, int] = 2,
    labels: Mapping[str, str] | None = None,
    ci_label: str = "95% CI",
) -> JournalTable:
    """Format a DataFrame as a journal table.

    Parameters
    ----------
    df
        Any DataFrame; tidy result columns get journal treatment: ``estimate`` with
        ``conf_low``/``conf_high`` become one ``"Estimate (95% CI)"`` column, ``p_value`` becomes
        ``"p"``, and the other tidy columns get people's labels. The index is not shown
        (reset it first if it carries data).
    caption
        Caption for standalone use; in a report use the cell option ``tbl-cap``.
    note
        Footnote under the table (Markdown), e.g. ``"CI, confidence interval."``.
    digits
        Decimal places for floats: one number, or a mapping from (original) column name to
        decimals, with the rest at 2.
    labels
        Column headers to use instead of the defaults, keyed by original column name
        (``"estimate"`` labels the combined estimate-and-interval column).
    ci_label
        How the interval is named in the combined column's header.

    Returns
    -------
    JournalTable

    Raises
    ------
    InputError
        If only one of ``conf_low``/``conf_high`` is present, or a p-value lies outside [0, 1].

    Examples
    --------
    >>> import pandas as pd
    >>> t = journal_table(pd.DataFrame({"term": ["MN+PRP"], "estimate": [1.234],
    ...                                 "conf_low": [0.98], "conf_high": [1.54],
    ...                                 "p_value": [0.0004]}))
    >>> t.display.iloc[0].tolist()
    ['MN+PRP', '1.23 (0.98 to 1.54)', '<0.001']
    """
    if not isinstance(df, pd.DataFrame):
        raise InputError(f"journal_table needs a pandas DataFrame, got {type(df).__name__}")
    has_low, has_high = "conf_low" in df.columns, "conf_high" in df.columns
    if has_low != has_high:
        raise InputError("journal_table: give both conf_low and conf_high, or neither")
    combine = has_low and "estimate" in df.columns
    names = dict(TIDY_LABELS)
    names.update(labels or {})

    def decimals(column: str) -> int:
        if isinstance(digits, Mapping):
            return int(digits.get(column, 2))
        return int(digits)

    display: dict[str, list[str]] = {}
    align: list[str] = []
    for column in df.columns:
        if combine and column in ("conf_low", "conf_high"):
            continue
        values = df[column]
        if combine and column == "estimate":
            header = f"{names['estimate']} ({ci_label})"
            cells = [
                format_ci(e, lo, hi, decimals("estimate"))
                for e, lo, hi in zip(values, df["conf_low"], df["conf_high"], strict=True)
            ]
            is_number = True
        elif column == "p_value":
            header, cells, is_number = names["p_value"], [format_p(p) for p in values], True
        else:
            header = names.get(str(column), str(column))
            cells, is_number = _format_column(values, decimals(str(column)))
        if header in display:
            raise InputError(f"journal_table: two columns would both be labelled {header!r}")
        display[header] = cells
        align.append("right" if is_number else "left")
    return JournalTable(
        data=df, display=pd.DataFrame(display), align=tuple(align), caption=caption, note=note
    )


def _format_column(values: pd.Series, digits: int) -> tuple[list[str], bool]:
    if pd.api.types.is_bool_dtype(values):
        return [MISSING if pd.isna(v) else ("Yes" if v else "No") for v in values], False
    if pd.api.types.is_integer_dtype(values):
        return [MISSING if pd.isna(v) else f"{int(v):,}".replace("-", MINUS) for v in values], True
    if pd.api.types.is_float_dtype(values):
        return [format_number(v, digits) for v in values], True
    return [MISSING if v is None or v is pd.NA or v != v else str(v) for v in values], False
