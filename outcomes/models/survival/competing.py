"""Cumulative incidence under competing risks: Aalen-Johansen with R's standard errors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from outcomes.errors import InputError, StatisticalWarning
from outcomes.models.survival.common import _as_list, _groups, _label, _prepare, _z
from outcomes.results import Diagnostic, diagnostics_frame, tidy_frame, to_ard

__all__ = ["CumulativeIncidenceResult", "cumulative_incidence"]

# --------------------------------------------------------------------------------------------
# competing risks


@dataclass
class CumulativeIncidenceResult:
    """Aalen-Johansen cumulative incidence of one event type with competing events.

    Attributes
    ----------
    table
        Per group and distinct time: ``by`` columns, ``strata``, ``time``, ``n_risk``,
        ``n_event`` (of interest), ``n_competing``, ``n_censor``, ``estimate`` (cumulative
        incidence), ``std_error`` (infinitesimal jackknife, as R), ``conf_low``,
        ``conf_high`` (log scale, as R's default).
    event, competing
        Names of the event of interest and the competing events.
    diagnostics
        Dropped rows and other trouble.
    """

    table: pd.DataFrame
    by: list[str]
    event: str
    competing: list[str]
    diagnostics: pd.DataFrame

    def at(self, times: Sequence[float]) -> pd.DataFrame:
        """Cumulative incidence at chosen times (step function, right-continuous)."""
        rows = []
        for strata, g in self.table.groupby("strata", sort=False):
            t = g["time"].to_numpy()
            keys: dict[str, Any] = {b: g[b].iloc[0] for b in self.by}
            cols = ["estimate", "std_error", "conf_low", "conf_high"]
            for ti in times:
                k = np.searchsorted(t, ti, side="right") - 1
                values = [0.0, 0.0, np.nan, np.nan] if k < 0 else list(g.iloc[k][cols])
                vals: dict[str, Any] = dict(zip(cols, values, strict=True))
                rows.append({**keys, "strata": strata, "time": float(ti), **vals})
        return pd.DataFrame(rows)

    def to_ard(
        self, times: Sequence[float], analysis: str = "cumulative_incidence"
    ) -> pd.DataFrame:
        """Cumulative incidence at ``times`` as analysis-results-dataset rows."""
        a = self.at(times)
        tidy = tidy_frame(a.assign(term=a["strata"] + " @ " + a["time"].map("{:g}".format)))
        return to_ard(tidy, analysis=analysis, diagnostics=self.diagnostics)


def _aj_ij_se(
    k: np.ndarray,
    status: np.ndarray,
    n: np.ndarray,
    d: np.ndarray,
    d1: np.ndarray,
    s_minus: np.ndarray,
    cif: np.ndarray,
) -> np.ndarray:
    """Infinitesimal-jackknife standard error of the cumulative incidence (R's default).

    The influence of observation ``i`` (time index ``k_i``) on ``F(t)`` is ``Q(t)`` while it
    is still at risk (``k_i > t``) and ``beta_i + F(t) R_i`` afterwards, so the variance
    ``sum_i infl_i(t)^2`` needs only cumulative sums: O(n + m) time and memory instead of an
    n x m influence matrix.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        open_ = n - d > 0
        c = np.where(open_, d / (n * (n - d)), 0.0)  # all-cause d log S per unit at risk
        inv_nd = np.where(open_, 1 / (n - d), 0.0)
    big_c = np.cumsum(c)
    dcif = s_minus * d1 / n
    q = np.cumsum(dcif * np.r_[0.0, big_c[:-1]]) - np.cumsum(dcif / n)
    r = big_c[k] - (status > 0) * inv_nd[k]
    beta = q[k] + (status == 1) * s_minus[k] / n[k] - cif[k] * r
    m = len(n)
    cum = [np.cumsum(np.bincount(k, weights=w, minlength=m)) for w in (beta**2, beta * r, r**2)]
    still_at_risk = len(k) - np.cumsum(np.bincount(k, minlength=m))
    var = still_at_risk * q**2 + cum[0] + 2 * cif * cum[1] + cif**2 * cum[2]
    return np.sqrt(np.maximum(var, 0.0))


def _aalen_johansen(t: np.ndarray, status: np.ndarray, z: float) -> pd.DataFrame:
    """Aalen-Johansen CIF of status 1 with IJ standard errors (0 censored, 2 competing)."""
    times, inv = np.unique(t, return_inverse=True)
    m = len(times)
    d1 = np.bincount(inv, weights=(status == 1), minlength=m)
    d2 = np.bincount(inv, weights=(status == 2), minlength=m)
    removed = np.bincount(inv, minlength=m).astype(float)
    n = removed[::-1].cumsum()[::-1]
    d = d1 + d2
    surv = np.cumprod(1 - d / n)
    s_minus = np.r_[1.0, surv[:-1]]
    cif = np.cumsum(s_minus * d1 / n)
    se = _aj_ij_se(inv, status, n, d, d1, s_minus, cif)
    with np.errstate(divide="ignore", invalid="ignore"):
        lo = cif * np.exp(-z * se / cif)
        hi = np.minimum(cif * np.exp(z * se / cif), 1.0)
    undefined = cif == 0
    lo[undefined] = np.nan
    hi[undefined] = np.nan
    return pd.DataFrame(
        {
            "time": times,
            "n_risk": n,
            "n_event": d1,
            "n_competing": d2,
            "n_censor": removed - d,
            "estimate": cif,
            "std_error": se,
            "conf_low": lo,
            "conf_high": hi,
        }
    )


def cumulative_incidence(
    tte: pd.DataFrame,
    event: str = "retreated",
    competing: str | Sequence[str] = "lost_to_follow_up",
    by: str | Sequence[str] | None = None,
    *,
    time: str = "time",
    event_type: str = "event_type",
    conf_level: float = 0.95,
) -> CumulativeIncidenceResult:
    """Cumulative incidence of one event type, with competing events (Aalen-Johansen).

    Matches R ``survfit(Surv(time, factor(status)) ~ by)`` (a multi-state fit), with the
    competing events pooled into one competing state.

    Parameters
    ----------
    tte
        Time-to-event data with an ``event_type`` column naming what ended each record
        (e.g. from ``derive_tte(tables, "retreatment")``); any other value is censoring.
    event
        The event of interest.
    competing
        Event type(s) that preclude it.
    by
        Grouping column(s).
    time, event_type
        Duration column and the column naming each record's event type.
    conf_level
        Confidence level (log-scale intervals, R's default).

    Returns
    -------
    CumulativeIncidenceResult
        ``.table`` (the curve per group), ``.at(times)``, ``.to_ard(times)``.
    """
    by_cols = _as_list(by)
    comp = _as_list(competing)
    if event in comp:
        raise InputError(f"event {event!r} cannot also be a competing event")
    if not isinstance(tte, pd.DataFrame) or event_type not in tte.columns:
        raise InputError(f"cumulative_incidence needs a DataFrame with an {event_type!r} column")
    data = tte.assign(
        __ev=(tte[event_type] == event).astype(int), __comp=tte[event_type].isin(comp).astype(int)
    )
    df, diags = _prepare(data, time, "__ev", [*by_cols, "__comp"], "cumulative_incidence")
    z = _z(conf_level)
    parts = []
    for keys, g in _groups(df, by_cols):
        st = np.where(g["__ev"] == 1, 1, np.where(g["__comp"] == 1, 2, 0))
        tab = _aalen_johansen(g[time].to_numpy(float), st, z)
        for j, b in enumerate(by_cols):
            tab.insert(j, b, keys[j])
        tab.insert(len(by_cols), "strata", _label(keys, by_cols))
        parts.append(tab)
        if (st == 1).sum() == 0:
            diags.append(
                Diagnostic("no_events", f"group {_label(keys, by_cols)} has no {event!r} events")
            )
    for d in diags:
        d.emit(StatisticalWarning)
    return CumulativeIncidenceResult(
        table=pd.concat(parts, ignore_index=True),
        by=by_cols,
        event=event,
        competing=comp,
        diagnostics=diagnostics_frame(diags),
    )
