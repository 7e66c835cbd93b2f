"""Results in and out: writing the ARD, estimates and figures, and reading a results folder back."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from outcomes.errors import InputError
from outcomes.results import TIDY_COLUMNS

ESTIMATE_COLUMNS: tuple[str, ...] = ("analysis", "table", "group", *TIDY_COLUMNS)
RESULT_FILES = ("ard.csv", "ard.parquet", "estimates.csv", "estimates.parquet")
EXPECTED_FILES = ("ard.csv", "estimates.csv", "manifest.json")
_FIGURE_DPI = 100


# --------------------------------------------------------------------------------------------
# writing and reading results
# --------------------------------------------------------------------------------------------


def _format_floats(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for col in out.columns:
        if pd.api.types.is_float_dtype(out[col]):
            out[col] = [
                "" if (v is None or (isinstance(v, float) and math.isnan(v))) else repr(float(v))
                for v in out[col].astype(object)
            ]
    return out


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    from outcomes.data.safety import neutralise

    _format_floats(neutralise(df)).to_csv(path, index=False, lineterminator="\n")


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False).replace_schema_metadata(None)
    pq.write_table(table, path, compression="zstd")


def _save_figure(plot: Any, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    fig = plot if isinstance(plot, Figure) else plot.draw()  # a matplotlib or plotnine figure
    try:
        fig.savefig(path, format="png", dpi=_FIGURE_DPI, metadata={"Software": None})
    finally:
        plt.close(fig)


def _read_csv(path: Path, numeric: Sequence[str]) -> pd.DataFrame:
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    for col in numeric:
        if col in df.columns:
            df[col] = pd.to_numeric(df[col].replace("", np.nan), errors="raise").astype(float)
    return df


def read_ard(path: str | Path) -> pd.DataFrame:
    """An ``ard.csv`` as a DataFrame (``stat_value`` float, texts with ``""`` for none)."""
    return _read_csv(Path(path), ["stat_value"])


@dataclass
class AnalysisResults:
    """A results folder read back (see :func:`load_results`).

    Attributes
    ----------
    name, path
        The analysis and its folder.
    ard
        The analysis results dataset (:data:`~outcomes.results.ARD_COLUMNS`).
    estimates
        Tidy estimate tables stacked: ``analysis, table, group`` + the tidy columns.
    manifest
        The run manifest (dict).
    figures
        Figure files by name.
    """

    name: str
    path: Path
    ard: pd.DataFrame
    estimates: pd.DataFrame
    manifest: dict[str, Any]
    figures: dict[str, Path]

    def table(self, table: str) -> pd.DataFrame:
        """One tidy table (``"fixed"``, ``"contrast"``, ``"emmeans"``, ``"median"``, ``"cox"``)."""
        known = list(dict.fromkeys(self.estimates["table"]))
        if table not in known:
            raise InputError(f"{self.name}: no table {table!r}; tables: {', '.join(known)}")
        out = self.estimates.loc[self.estimates["table"] == table]
        return out.drop(columns=["analysis", "table"]).reset_index(drop=True)

    def stat(self, term: str, stat_name: str, table: str | None = None, **group: object) -> float:
        """One statistic of the ARD.

        Parameters
        ----------
        term, stat_name
            The row's term and statistic, e.g. ``"MN+PRP - MN"`` and ``"estimate"``.
        table
            The result table (``group`` holds ``table=...``), e.g. ``"contrast"``.
        **group
            Further ``key=value`` parts the row's group must hold, e.g. ``at_week=24``.

        Examples
        --------
        >>> res.stat("MN+PRP - MN", "estimate", table="contrast", at_week=24)  # doctest: +SKIP
        """
        wanted = {f"{k}={v}" for k, v in group.items()} | ({f"table={table}"} if table else set())
        rows = self.ard.loc[(self.ard["term"] == term) & (self.ard["stat_name"] == stat_name)]
        rows = rows.loc[[wanted <= set(g.split(";")) for g in rows["group"]]]
        if len(rows) != 1:
            hint = "; give table= or group parts to choose one" if len(rows) > 1 else ""
            raise InputError(
                f"{self.name}: {len(rows)} rows for term {term!r}, stat {stat_name!r}"
                f"{' with ' + ', '.join(sorted(wanted)) if wanted else ''}{hint}"
            )
        return float(rows["stat_value"].iloc[0])


def load_results(name_or_path: str | Path, root: str | Path = "results") -> AnalysisResults:
    """Read a results folder: ``results/NAME`` by name, or any folder by path.

    Examples
    --------
    >>> res = load_results("trial_lmm_gb_quant")            # doctest: +SKIP
    >>> res.table("contrast")                               # doctest: +SKIP
    >>> res.stat("MN+PRP - MN", "estimate", table="contrast")  # doctest: +SKIP
    """
    path = Path(name_or_path)
    if not path.is_dir():
        path = Path(root) / str(name_or_path)
    if not (path / "ard.csv").is_file():
        raise InputError(f"{path}: no results here (no ard.csv); run `outcomes run` first")
    if (path / "ard.parquet").is_file():
        ard = pd.read_parquet(path / "ard.parquet")
    else:
        ard = read_ard(path / "ard.csv")
    if (path / "estimates.parquet").is_file():
        estimates = pd.read_parquet(path / "estimates.parquet")
    else:
        estimates = _read_csv(path / "estimates.csv", TIDY_COLUMNS[1:])
    manifest = (
        json.loads((path / "manifest.json").read_text())
        if (path / "manifest.json").is_file()
        else {}
    )
    figures = {p.stem: p for p in sorted((path / "figures").glob("*.png"))}
    return AnalysisResults(
        name=str(manifest.get("analysis", path.name)),
        path=path,
        ard=ard,
        estimates=estimates,
        manifest=manifest,
        figures=figures,
    )
