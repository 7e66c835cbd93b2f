"""``outcomes report NAME -P key=value --to html,pdf,docx --out DIR``: render a report.

``NAME`` is a ``.qmd`` file or the name of one in the reports folder (``reports/`` of the
current directory by default): ``trial``, ``registry`` or ``comparison``. Parameters are
``key=value`` pairs; values are read as Python literals when they are one (``snapshot=3``,
``indication=None``, ``published=True``) and as text otherwise (``study=TRIAL1``). A ``store``
path is taken relative to the current directory (the report's cells run in its own folder).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from outcomes.errors import InputError
from outcomes.report.lookup import report_file, resolve_report

__all__ = ["cli_report", "parse_params", "resolve_report"]

#: Parameters holding a file path, made absolute before the report runs.
PATH_PARAMS = ("store",)


def parse_params(pairs: Sequence[str] | None) -> dict[str, Any]:
    """Turn ``["key=value", ...]`` into a dict of Python values.

    Examples
    --------
    >>> parse_params(["snapshot=2", "study=TRIAL1", "indication=None"])
    {'snapshot': 2, 'study': 'TRIAL1', 'indication': None}
    """
    params: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise InputError(f"-P expects key=value with a Python name as key, got {pair!r}")
        try:
            value: Any = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        if key in PATH_PARAMS and isinstance(value, str):
            value = str(Path(value).resolve())
        params[key] = value
    return params


def cli_report(args: Any) -> int:
    """Handler of ``outcomes report``: render, print the files written and any warnings."""
    from outcomes.report import render

    formats = [f.strip() for f in args.to.split(",") if f.strip()]
    with report_file(args.name, args.reports) as path:
        result = render(
            path,
            to=formats,
            params=parse_params(args.param),
            out_dir=args.out,
            engine=args.engine,
            on_warning="error" if args.strict else "record",
        )
    for fmt, out in result.items():
        print(f"{fmt:5s} {out}")
    print(f"rendered {path.name} with the {result.engine} engine in {result.seconds:.1f} s")
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0
