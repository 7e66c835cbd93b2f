"""Simulated feeds (:class:`Feeds`) and writing them as files (:func:`write_feeds`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from outcomes.errors import InputError

__all__ = ["Feeds", "write_feeds"]


FORMATS = ("csv", "parquet", "xlsx")


FLOAT_FORMAT = "%.10g"


XLSX_MAX_ROWS = 1_048_575


@dataclass
class Feeds:
    """Simulated feeds and the truth that generated them.

    Attributes
    ----------
    tables
        One DataFrame per dictionary table, keyed in dictionary order, with exactly the
        dictionary's columns.
    truth
        JSON-serialisable parameters, options and latent event times.
    """

    tables: dict[str, pd.DataFrame]
    truth: dict[str, Any]


def write_feeds(feeds: Feeds, out_dir: str | Path, format: str = "csv") -> list[Path]:
    """Write the six tables (one file per table) and ``truth.json`` into ``out_dir``.

    Parameters
    ----------
    feeds
        Simulated feeds.
    out_dir
        Folder to write into (created if needed).
    format
        ``"csv"`` (UTF-8, ``\\n`` line ends, floats as ``%.10g``), ``"parquet"`` (pyarrow) or
        ``"xlsx"`` (one workbook per table; not byte-reproducible, as the workbook stores the
        time it was written).

    Returns
    -------
    list of Path
        The files written, tables in dictionary order, then ``truth.json``.
    """
    if format not in FORMATS:
        raise InputError(f"format={format!r}: use one of {', '.join(FORMATS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, df in feeds.tables.items():
        path = out / f"{name}.{format}"
        if format == "csv":
            df.to_csv(path, index=False, float_format=FLOAT_FORMAT, lineterminator="\n")
        elif format == "parquet":
            df.to_parquet(path, index=False, engine="pyarrow")
        else:
            if len(df) > XLSX_MAX_ROWS:
                raise InputError(
                    f"table {name} has {len(df)} rows, more than an xlsx sheet holds; "
                    "use csv or parquet"
                )
            df.to_excel(path, index=False, sheet_name=name)
        paths.append(path)
    truth_path = out / "truth.json"
    truth_path.write_text(json.dumps(feeds.truth, indent=2) + "\n", encoding="utf-8")
    paths.append(truth_path)
    return paths
