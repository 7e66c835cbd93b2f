"""Kaplan-Meier curves (R ``survfit``) and the log-rank test (R ``survdiff``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from outcomes.errors import InputError, StatisticalWarning
from outcomes.models.survival.common import _as_list, _groups, _label, _prepare, _z
from outcomes.results import Diagnostic, diagnostics_frame, tidy_frame, to_ard

__all__ = ["KaplanMeierResult", "LogrankResult", "kaplan_meier", "logrank"]

# --------------------------------------------------------------------------------------------
# Kaplan-Meier


CONF_TYPES = ("log", "log-log", "plain")


def _km_limits(
    surv: np.ndarray, se_log: np.ndarray, z: float, conf_type: str
) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise limits as R's ``survfit_confint`` (``se_log``: SE of the cumulative hazard)."""
    if conf_type == "plain":
        half = z * se_log * surv
        return np.maximum(surv - half, 0.0), np.minimum(surv + half, 1.0)
    if conf_type == "log":
        s = np.where(surv == 0, np.nan, surv)
        return s * np.exp(-z * se_log), np.minimum(s * np.exp(z * se_log), 1.0)
    s = np.where((surv == 0) | (surv == 1), np.nan, surv)
    shift = z * se_log / np.log(s)
    loglog = np.log(-np.log(s))
    return np.exp(-np.exp(loglog - shift)), np.exp(-np.exp(loglog + shift))


def _km_curve(t: np.ndarray, d: np.ndarray, z: float, conf_type: str) -> pd.DataFrame:
    """R's survfit KM: one row per distinct time (events and censorings)."""
    times, inverse = np.unique(t, return_inverse=True)
    n_event = np.bincount(inverse, weights=d, minlength=len(times))
    n_removed = np.bincount(inverse, minlength=len(times)).astype(float)
    n_risk = n_removed[::-1].cumsum()[::-1]
    surv = np.cumprod(1 - n_event / n_risk)
    with np.errstate(divide="ignore", invalid="ignore"):
        greenwood = np.cumsum(np.where(n_event > 0, n_event / (n_risk * (n_risk - n_event)), 0.0))
        se_log = np.sqrt(greenwood)
        lower, upper = _km_limits(surv, se_log, z, conf_type)
        std_err = surv * se_log
    undefined = (surv == 0) | ~np.isfinite(se_log)
    lower[undefined] = np.nan
    upper[undefined] = np.nan
    return pd.DataFrame(
        {
            "time": times,
            "n_risk": n_risk,
            "n_event": n_event,
            "n_censor": n_removed - n_event,
            "surv": surv,
            "std_err": std_err,
            "conf_low": lower,
            "conf_high": upper,
        }
    )


def _approx_constant(xs: np.ndarray, ys: np.ndarray, v: np.ndarray) -> np.ndarray:
    """R's ``approx(xs, ys, v, method = "constant", f = 1)`` for distinct ``xs``.

    As R: pairs with a missing value are dropped and the rest sorted by ``xs`` first, so an
    ``xs`` that is not monotone (a non-monotone confidence band) is searched correctly. Each
    ``v`` gets the ``ys`` of the smallest ``xs >= v``; NaN outside the range of ``xs``.
    """
    good = ~np.isnan(xs)
    order = np.argsort(xs[good], kind="stable")
    xs, ys = xs[good][order], ys[good][order]
    out = np.full(len(v), np.nan)
    if len(xs) == 0:
        return out
    inside = (v >= xs[0]) & (v <= xs[-1])
    out[inside] = ys[np.searchsorted(xs, v[inside], side="left")]
    return out


def _findq(x: np.ndarray, y: np.ndarray, p: np.ndarray, tol: float) -> np.ndarray:
    """Port of ``findq`` inside R survival's ``quantile.survfit`` (survival 3.5).

    ``x`` are the times (the start time first), ``y`` the cumulative event probability
    ``1 - S`` (or ``1 -`` a confidence limit, which need not be monotone).
    """
    if np.isnan(y).all() or np.nanmax(y) < p.min():
        return np.full(len(p), np.nan)
    xmax = x[-1]
    keep = ~pd.Series(y).duplicated().to_numpy()
    x, y = x[keep], y[keep]
    index = np.arange(len(y), dtype=float)
    i1 = _approx_constant(y + tol, index, p)
    i2 = _approx_constant(y - tol, index, p)

    def at(i: np.ndarray) -> np.ndarray:
        res = np.full(len(i), np.nan)
        good = ~np.isnan(i)
        res[good] = x[i[good].astype(int)]
        return res

    quant = (at(i1) + at(i2)) / 2
    quant[p == 0] = x[0]
    if not np.isnan(y[-1]):
        last = np.abs(p - y[-1]) < tol
        quant[last] = (at(i1[last]) + xmax) / 2
    return quant


@dataclass
class KaplanMeierResult:
    """Kaplan-Meier curves per group.

    Attributes
    ----------
    table
        One row per group and distinct time: the ``by`` columns, ``strata`` (R-style label),
        ``time``, ``n_risk``, ``n_event``, ``n_censor``, ``surv``, ``std_err`` (of the
        survival probability, as R's ``summary``), ``conf_low``, ``conf_high``.
    by
        Grouping columns.
    conf_level
        Confidence level of every interval.
    diagnostics
        Dropped rows and other trouble (:func:`outcomes.results.diagnostics_frame`).
    conf_type
        Scale of the pointwise intervals: ``"log"``, ``"log-log"`` or ``"plain"``.
    """

    table: pd.DataFrame
    by: list[str]
    conf_level: float
    diagnostics: pd.DataFrame
    counts: pd.DataFrame = field(repr=False)
    conf_type: str = "log"

    def quantile(self, probs: float | Sequence[float] = (0.25, 0.5, 0.75)) -> pd.DataFrame:
        """Time by which ``probs`` of units had the event, with CIs (R ``quantile.survfit``).

        Parameters
        ----------
        probs
            One probability or several, each in [0, 1].

        Returns
        -------
        pandas.DataFrame
            ``by`` columns, ``strata``, ``prob``, ``estimate``, ``conf_low``, ``conf_high``;
            NaN where a curve (or its confidence limit) never reaches ``prob``.
        """
        p = np.atleast_1d(np.asarray(probs, dtype=float))
        if ((p < 0) | (p > 1)).any():
            raise InputError("quantile probabilities must lie in [0, 1]")
        tol = np.sqrt(np.finfo(float).eps)
        rows = []
        for strata, g in self.table.groupby("strata", sort=False):
            x = np.r_[0.0, g["time"].to_numpy()]
            est = _findq(x, np.r_[0.0, 1 - g["surv"].to_numpy()], p, tol)
            low = _findq(x, np.r_[0.0, 1 - g["conf_low"].to_numpy()], p, tol)
            high = _findq(x, np.r_[0.0, 1 - g["conf_high"].to_numpy()], p, tol)
            keys = g.iloc[0][self.by].to_dict()
            for i, pi in enumerate(p):
                rows.append(
                    {
                        **keys,
                        "strata": strata,
                        "prob": pi,
                        "estimate": est[i],
                        "conf_low": low[i],
                        "conf_high": high[i],
                    }
                )
        return pd.DataFrame(rows)

    @property
    def median(self) -> pd.DataFrame:
        """Median time per group with its CI, as R's ``print(survfit(...))``.

        Columns: ``by`` columns, ``strata``, ``records``, ``events``, ``median``,
        ``conf_low``, ``conf_high``.
        """
        q = self.quantile([0.5]).drop(columns="prob").rename(columns={"estimate": "median"})
        return self.counts.merge(q, on=[*self.by, "strata"], how="left")

    def survival_at(self, times: Sequence[float]) -> pd.DataFrame:
        """Survival at chosen days, as R's ``summary(fit, times = ...)``.

        ``n_risk`` is the number at risk at each time, ``n_event`` the events since the
        previous requested time. Times after a group's last follow-up are left out (as R).
        """
        req = np.sort(np.asarray(times, dtype=float))
        rows = []
        for strata, g in self.table.groupby("strata", sort=False):
            t = g["time"].to_numpy()
            keys = g.iloc[0][self.by].to_dict()
            prev = -np.inf
            for ti in req:
                if ti > t[-1]:
                    break
                k = np.searchsorted(t, ti, side="right") - 1  # last time <= ti
                after = np.searchsorted(t, ti, side="left")  # first time >= ti
                window = (t > prev) & (t <= ti)
                row = {
                    **keys,
                    "strata": strata,
                    "time": ti,
                    "n_risk": g["n_risk"].iloc[after],
                    "n_event": g["n_event"].to_numpy()[window].sum(),
                }
                if k < 0:
                    row.update(surv=1.0, std_err=0.0, conf_low=1.0, conf_high=1.0)
                else:
                    row.update(g.iloc[k][["surv", "std_err", "conf_low", "conf_high"]].to_dict())
                rows.append(row)
                prev = ti
        return pd.DataFrame(rows)

    def risk_table_at(self, times: Sequence[float]) -> pd.DataFrame:
        """Numbers at risk (and cumulative events and censorings) at chosen times."""
        rows = []
        for strata, g in self.table.groupby("strata", sort=False):
            keys = g.iloc[0][self.by].to_dict()
            t = g["time"].to_numpy()
            total = g["n_risk"].iloc[0]
            for ti in times:
                before = t < ti
                at_or_before = t <= ti
                rows.append(
                    {
                        **keys,
                        "strata": strata,
                        "time": float(ti),
                        "n_risk": int(
                            total - (g["n_event"] + g["n_censor"]).to_numpy()[before].sum()
                        ),
                        "cum_events": int(g["n_event"].to_numpy()[at_or_before].sum()),
                        "cum_censored": int(g["n_censor"].to_numpy()[at_or_before].sum()),
                    }
                )
        return pd.DataFrame(rows)

    @property
    def risk_table(self) -> pd.DataFrame:
        """Numbers at risk at evenly spaced times (the plot's axis breaks)."""
        return self.risk_table_at(_breaks(self.table["time"].max()))

    def tidy(self) -> pd.DataFrame:
        """Medians in the tidy columns (``term`` = stratum, ``estimate`` = median)."""
        m = self.median
        return tidy_frame(
            m.rename(columns={"strata": "term", "median": "estimate"}), extra=["records", "events"]
        )

    def to_ard(self, analysis: str = "kaplan_meier") -> pd.DataFrame:
        """Medians as analysis-results-dataset rows."""
        return to_ard(self.tidy(), analysis=analysis, diagnostics=self.diagnostics)

    def plot(self, risk_table: bool = True, conf_int: bool = True, title: str | None = None) -> Any:
        """Kaplan-Meier curves (plotnine), with the numbers-at-risk table underneath.

        Returns a plotnine composition (curves over risk table) when ``risk_table`` is true,
        otherwise the curves alone; see :func:`risk_table_plot` for the table on its own.
        """
        from outcomes.models.survival.plots import _km_plot, risk_table_plot

        curves = _km_plot(self, conf_int=conf_int, title=title)
        if not risk_table:
            return curves
        return curves / risk_table_plot(self)


def kaplan_meier(
    tte: pd.DataFrame,
    by: str | Sequence[str] | None = None,
    *,
    time: str = "time",
    event: str = "event",
    conf_level: float = 0.95,
    conf_type: str = "log",
) -> KaplanMeierResult:
    """Kaplan-Meier estimates per group, as R ``survfit(Surv(time, event) ~ by)``.

    Parameters
    ----------
    tte
        One row per unit: duration, event indicator (1 = event) and grouping columns.
    by
        Grouping column(s); ``None`` for one curve.
    time, event
        Names of the duration and event columns.
    conf_level
        Confidence level of the pointwise intervals and of the quantile limits.
    conf_type
        Scale of the pointwise intervals, as R's ``survfit(conf.type = ...)``: ``"log"``
        (R's default), ``"log-log"`` (SAS PROC LIFETEST's default, ``CONFTYPE=LOGLOG``) or
        ``"plain"`` (linear). Quantile limits follow from the chosen band, as in R; SAS
        computes quantile limits differently, so they may not match SAS.

    Returns
    -------
    KaplanMeierResult
        ``.table``, ``.median``, ``.quantile()``, ``.survival_at()``, ``.risk_table``,
        ``.plot()``.

    Examples
    --------
    >>> km = kaplan_meier(tte, by="arm")  # doctest: +SKIP
    >>> km.median  # doctest: +SKIP
    >>> km.survival_at([28, 56, 84])  # doctest: +SKIP
    """
    by_cols = _as_list(by)
    df, diags = _prepare(tte, time, event, by_cols, "kaplan_meier")
    z = _z(conf_level)
    if conf_type not in CONF_TYPES:
        raise InputError(f"conf_type must be one of {', '.join(CONF_TYPES)}, got {conf_type!r}")
    tables, counts = [], []
    for keys, g in _groups(df, by_cols):
        curve = _km_curve(g[time].to_numpy(float), g[event].to_numpy(float), z, conf_type)
        label = _label(keys, by_cols)
        for j, (b, k) in enumerate(zip(by_cols, keys, strict=True)):
            curve.insert(j, b, k)
        curve.insert(len(by_cols), "strata", label)
        tables.append(curve)
        counts.append(
            {
                **dict(zip(by_cols, keys, strict=True)),
                "strata": label,
                "records": len(g),
                "events": int(g[event].sum()),
            }
        )
        if g[event].sum() == 0:
            diags.append(
                Diagnostic("no_events", f"group {label} has no events: its curve stays at 1")
            )
    for d in diags:
        d.emit(StatisticalWarning)
    return KaplanMeierResult(
        table=pd.concat(tables, ignore_index=True),
        by=by_cols,
        conf_level=conf_level,
        diagnostics=diagnostics_frame(diags),
        counts=pd.DataFrame(counts),
        conf_type=conf_type,
    )


# --------------------------------------------------------------------------------------------
# plots: one theme for curves and risk tables


def _breaks(tmax: float) -> list[float]:
    from matplotlib.ticker import MaxNLocator

    ticks = MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 7, 10]).tick_values(0, float(tmax))
    return [float(t) for t in ticks if 0 <= t <= tmax]


# --------------------------------------------------------------------------------------------
# log-rank


@dataclass
class LogrankResult:
    """Log-rank test (R ``survdiff``).

    Attributes
    ----------
    table
        One tidy row: ``term`` (``"log-rank"`` or ``"stratified log-rank"``), ``statistic``
        (chi-square), ``df``, ``p_value``.
    groups
        Per group: ``n``, ``observed``, ``expected``, ``o_minus_e``, ``variance`` (diagonal of
        the variance of O - E).
    diagnostics
        Dropped rows and other trouble.
    """

    table: pd.DataFrame
    groups: pd.DataFrame
    diagnostics: pd.DataFrame

    @property
    def chisq(self) -> float:
        """The chi-square statistic."""
        return float(self.table["statistic"].iloc[0])

    @property
    def p_value(self) -> float:
        """Its p-value."""
        return float(self.table["p_value"].iloc[0])

    def tidy(self) -> pd.DataFrame:
        """The test as one row with the shared tidy columns."""
        return tidy_frame(self.table)

    def to_ard(self, analysis: str = "logrank") -> pd.DataFrame:
        """Analysis-results-dataset rows."""
        return to_ard(self.table, analysis=analysis, diagnostics=self.diagnostics)


def logrank(
    tte: pd.DataFrame,
    by: str | Sequence[str],
    strata: str | Sequence[str] | None = None,
    *,
    time: str = "time",
    event: str = "event",
) -> LogrankResult:
    """Log-rank test of equal survival across groups, optionally stratified.

    Matches R ``survdiff(Surv(time, event) ~ by)`` and, with ``strata``,
    ``survdiff(Surv(time, event) ~ by + strata(strata))``: observed minus expected events and
    their hypergeometric covariance are summed over strata.

    Parameters
    ----------
    tte
        Time-to-event data.
    by
        Grouping column(s) compared (several columns are crossed).
    strata
        Stratification column(s); rows with a missing stratum are dropped (as R).
    time, event
        Duration and 0/1 event columns.

    Returns
    -------
    LogrankResult
        ``.table`` (one tidy row: chi-square, df, p), ``.groups`` (observed and expected
        events per group), ``.diagnostics`` (a group with fewer than 5 expected events makes
        the chi-square approximation doubtful: warned as a ``StatisticalWarning``).
    """
    by_cols, strata_cols = _as_list(by), _as_list(strata)
    if not by_cols:
        raise InputError("logrank needs a grouping column in `by`")
    df, diags = _prepare(tte, time, event, [*by_cols, *strata_cols], "logrank")
    group = df[by_cols].astype(str).agg(", ".join, axis=1) if len(by_cols) > 1 else df[by_cols[0]]
    levels = sorted(group.unique())
    if len(levels) < 2:
        raise InputError(f"logrank needs at least two groups in {by_cols}; found {levels}")
    g_code = pd.Categorical(group, categories=levels).codes
    k = len(levels)
    o_minus_e, var = np.zeros(k), np.zeros((k, k))
    observed, expected = np.zeros(k), np.zeros(k)
    strata_codes = (
        df[strata_cols].astype(str).agg("\x1f".join, axis=1)
        if strata_cols
        else pd.Series(0, index=df.index)
    )
    t_all, d_all = df[time].to_numpy(float), df[event].to_numpy(float)
    for s in pd.unique(strata_codes):
        m = (strata_codes == s).to_numpy()
        t, d, g = t_all[m], d_all[m], g_code[m]
        times, inv = np.unique(t, return_inverse=True)
        removed = np.zeros((len(times), k))
        deaths = np.zeros((len(times), k))
        np.add.at(removed, (inv, g), 1.0)
        np.add.at(deaths, (inv, g), d)
        at_risk = removed[::-1].cumsum(axis=0)[::-1]
        n, dd = at_risk.sum(axis=1), deaths.sum(axis=1)
        use = dd > 0
        at_risk, deaths, n, dd = at_risk[use], deaths[use], n[use], dd[use]
        e = dd[:, None] * at_risk / n[:, None]
        observed += deaths.sum(axis=0)
        expected += e.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            f = np.where(n > 1, dd * (n - dd) / (n - 1), 0.0) / n
        p = at_risk / n[:, None]
        var += np.einsum("t,ti,ij->ij", f * n, p, np.eye(k)) - np.einsum("t,ti,tj->ij", f * n, p, p)
    o_minus_e = observed - expected
    rank = np.linalg.matrix_rank(var[:-1, :-1]) if k > 1 else 0
    chisq = float(o_minus_e[:-1] @ np.linalg.pinv(var[:-1, :-1]) @ o_minus_e[:-1])
    df_ = int(rank)
    p_value = float(stats.chi2.sf(chisq, df_)) if df_ > 0 else np.nan
    term = "stratified log-rank" if strata_cols else "log-rank"
    table = tidy_frame([{"term": term, "statistic": chisq, "df": float(df_), "p_value": p_value}])
    groups = pd.DataFrame(
        {
            "group": levels,
            "n": np.bincount(g_code, minlength=k),
            "observed": observed,
            "expected": expected,
            "o_minus_e": o_minus_e,
            "variance": np.diag(var),
        }
    )
    if observed.sum() == 0:
        diags.append(Diagnostic("no_events", "no events: the log-rank test is undefined", "error"))
    elif expected.min() < 5:
        small = ", ".join(str(lv) for lv, e in zip(levels, expected, strict=True) if e < 5)
        diags.append(
            Diagnostic(
                "few_events",
                f"fewer than 5 expected events in group(s) {small}: the chi-square approximation "
                "of the log-rank test may be poor",
            )
        )
    for d in diags:
        d.emit(StatisticalWarning)
    return LogrankResult(table=table, groups=groups, diagnostics=diagnostics_frame(diags))
