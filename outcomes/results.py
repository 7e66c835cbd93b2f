"""The one tidy shape of every result in the toolkit.

Every model returns estimates as a DataFrame with :data:`TIDY_COLUMNS` (broom's names in
snake_case), model trouble as a diagnostics DataFrame with :data:`DIAGNOSTIC_COLUMNS`, and can
become rows of the analysis results dataset (ARD, :data:`ARD_COLUMNS`): one row per statistic,
which reports render from and auditors diff.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from outcomes.errors import OutcomesWarning

__all__ = [
    "ARD_COLUMNS",
    "DIAGNOSTIC_COLUMNS",
    "TIDY_COLUMNS",
    "Diagnostic",
    "diagnostics_frame",
    "tidy_frame",
    "to_ard",
]

TIDY_COLUMNS: tuple[str, ...] = (
    "term",
    "estimate",
    "std_error",
    "statistic",
    "df",
    "p_value",
    "conf_low",
    "conf_high",
)
DIAGNOSTIC_COLUMNS: tuple[str, ...] = ("code", "severity", "message")
ARD_COLUMNS: tuple[str, ...] = (
    "analysis",
    "group",
    "term",
    "stat_name",
    "stat_value",
    "warning",
    "error",
)


@dataclass(frozen=True)
class Diagnostic:
    """One piece of model trouble, stated in plain language.

    Parameters
    ----------
    code
        A stable machine-readable code, e.g. ``"singular_fit"``, ``"not_converged"``,
        ``"optimizer_retry"``, ``"hessian_not_pd"``.
    message
        What happened and what it means for the results, for a person.
    severity
        ``"info"``, ``"warning"`` or ``"error"``.
    """

    code: str
    message: str
    severity: str = "warning"

    def emit(self, category: type[Warning] = OutcomesWarning, stacklevel: int = 3) -> None:
        """Also raise this diagnostic as a Python warning (for notebook users)."""
        if self.severity != "info":
            warnings.warn(self.message, category, stacklevel=stacklevel)


def diagnostics_frame(diagnostics: Iterable[Diagnostic]) -> pd.DataFrame:
    """Diagnostics as a DataFrame with :data:`DIAGNOSTIC_COLUMNS` (empty when none)."""
    rows = [(d.code, d.severity, d.message) for d in diagnostics]
    return pd.DataFrame(rows, columns=list(DIAGNOSTIC_COLUMNS))


def tidy_frame(
    rows: pd.DataFrame | Sequence[Mapping[str, object]], extra: Sequence[str] = ()
) -> pd.DataFrame:
    """Order (and complete with NaN) the tidy columns, keeping any ``extra`` columns after them."""
    df = pd.DataFrame(rows).copy()
    for col in TIDY_COLUMNS:
        if col not in df:
            df[col] = np.nan
    return df[[*TIDY_COLUMNS, *extra]].reset_index(drop=True)


def to_ard(
    tidy: pd.DataFrame,
    *,
    analysis: str,
    groups: Mapping[str, object] | None = None,
    diagnostics: pd.DataFrame | None = None,
    stats: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Turn a tidy table into analysis-results-dataset rows.

    Parameters
    ----------
    tidy
        A table with a ``term`` column and numeric statistic columns.
    analysis
        The analysis name written on every row.
    groups
        Grouping of the whole table (e.g. ``{"indication": "acne_scars"}``), written as
        ``key=value`` pairs joined by ``;`` in sorted key order.
    diagnostics
        A :func:`diagnostics_frame`; warnings and errors are joined into the ``warning`` and
        ``error`` columns of every row, so no row can be read without its caveats.
    stats
        Which columns become statistics; by default every numeric column but ``term``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`ARD_COLUMNS`, one row per term x statistic.
    """
    group = ";".join(f"{k}={v}" for k, v in sorted((groups or {}).items()))
    if stats is None:
        stats = [c for c in tidy.columns if c != "term" and pd.api.types.is_numeric_dtype(tidy[c])]
    long = tidy.melt(
        id_vars=["term"], value_vars=list(stats), var_name="stat_name", value_name="stat_value"
    )
    long["stat_value"] = long["stat_value"].astype(float)
    warning = error = ""
    if diagnostics is not None and len(diagnostics):
        warning = " | ".join(diagnostics.loc[diagnostics["severity"] == "warning", "message"])
        error = " | ".join(diagnostics.loc[diagnostics["severity"] == "error", "message"])
    long.insert(0, "analysis", analysis)
    long.insert(1, "group", group)
    long["warning"] = warning
    long["error"] = error
    return long[list(ARD_COLUMNS)]
