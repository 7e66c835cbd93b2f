"""Time-to-result models: Kaplan-Meier, log-rank, Cox, interval-censored AFT, competing risks.

Every function takes a time-to-event DataFrame (see :func:`outcomes.derive.derive_tte`; any
frame with a duration and a 0/1 event column works) and returns a result object whose tables
use the toolkit's tidy columns. Defaults follow R ``survival`` (checked in
``tests/test_survival.py`` against numbers produced by the scripts in ``tests/r/survival/``):

- Kaplan-Meier: Greenwood variance, ``conf.type = "log"`` confidence intervals, medians and
  quantiles with their CIs computed as ``quantile.survfit`` does (``print.survfit``), survival
  at chosen days as ``summary(fit, times = ...)``.
- Log-rank: ``survdiff`` (``rho = 0``), stratified with ``strata(x)``.
- Cox: Efron ties by default: lifelines' ``CoxPHFitter`` fit, polished by Newton-Raphson on
  the exact partial likelihood (lifelines stops ~1e-6 relative short of the optimum);
  Breslow ties by the same Newton-Raphson (lifelines has only Efron). Cluster-robust
  (sandwich) standard errors as ``coxph(..., cluster = id)``, from score residuals computed
  here: lifelines' ``cluster_col`` standard errors differ from R's by up to ~40% on data with
  tied times. The proportional-hazards test is R >= 3.0 ``cox.zph`` (``transform = "km"``),
  a score test computed here: lifelines' ``proportional_hazard_test`` is the older
  approximate test and does not match it (nor give a global test).
- Interval-censored Weibull and log-normal models (lifelines AFT fitters, polished by
  Newton-Raphson with exact derivatives so estimates match
  ``survreg(Surv(l, r, type = "interval2") ~ arm)``).
- Cumulative incidence: Aalen-Johansen, computed here (lifelines' ``AalenJohansenFitter``
  randomly jitters tied times, and visit-day data are full of ties) with R's infinitesimal
  jackknife standard errors and log-scale CIs, as ``survfit`` with a factor status.

Rows with a missing time, event or covariate are dropped (R's ``na.omit``); the count is
reported in each result's ``diagnostics``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from outcomes.errors import ConvergenceWarning, InputError, ModelError, StatisticalWarning
from outcomes.results import Diagnostic, diagnostics_frame, tidy_frame, to_ard

__all__ = [
    "CoxResult",
    "CumulativeIncidenceResult",
    "IntervalModelResult",
    "KaplanMeierResult",
    "LogrankResult",
    "cox",
    "cumulative_incidence",
    "interval_model",
    "kaplan_meier",
    "logrank",
]

HR_COLUMNS = ("hazard_ratio", "hr_conf_low", "hr_conf_high")
FEW_EVENTS = 10  # events per estimated coefficient below which a Cox fit is flagged


# --------------------------------------------------------------------------------------------
# input handling


def _as_list(by: str | Sequence[str] | None) -> list[str]:
    if by is None:
        return []
    return [by] if isinstance(by, str) else list(by)


def _prepare(
    data: pd.DataFrame, time: str, event: str, columns: Sequence[str], what: str
) -> tuple[pd.DataFrame, list[Diagnostic]]:
    """Check columns, coerce time/event, drop incomplete rows (reported as a diagnostic)."""
    if not isinstance(data, pd.DataFrame):
        raise InputError(f"{what} needs a pandas DataFrame, got {type(data).__name__}")
    needed = [time, event, *columns]
    missing = [c for c in dict.fromkeys(needed) if c not in data.columns]
    if missing:
        raise InputError(f"{what}: column(s) not in the data: {', '.join(missing)}")
    df = data[list(dict.fromkeys(needed))].copy()
    df[time] = pd.to_numeric(df[time], errors="coerce")
    df[event] = pd.to_numeric(df[event], errors="coerce")
    diags = []
    incomplete = df.isna().any(axis=1)
    if incomplete.any():
        diags.append(
            Diagnostic(
                "rows_dropped",
                f"{int(incomplete.sum())} of {len(df)} rows with a missing time, event or "
                "covariate were dropped (as R's na.omit)",
                "info",
            )
        )
        df = df.loc[~incomplete]
    if df.empty:
        raise InputError(f"{what}: no complete rows to analyse")
    if (df[time] < 0).any():
        raise InputError(f"{what}: column {time!r} has negative times")
    if not df[event].isin([0, 1]).all():
        raise InputError(f"{what}: column {event!r} must be 1 (event) or 0 (censored)")
    return df, diags


def _label(keys: tuple, by: list[str]) -> str:
    return ", ".join(f"{b}={k}" for b, k in zip(by, keys, strict=True)) if by else "all"


def _groups(df: pd.DataFrame, by: list[str]) -> list[tuple[tuple, pd.DataFrame]]:
    if not by:
        return [((), df)]
    return [((k if isinstance(k, tuple) else (k,)), g) for k, g in df.groupby(by, sort=True)]


def _z(conf_level: float) -> float:
    if not 0 < conf_level < 1:
        raise InputError(f"conf_level must be between 0 and 1, got {conf_level}")
    return float(stats.norm.ppf(0.5 + conf_level / 2))


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


def _theme() -> Any:
    import plotnine as p9

    return p9.theme_bw(base_size=10) + p9.theme(
        legend_position="top", panel_grid_minor=p9.element_blank()
    )


def _km_plot(km: KaplanMeierResult, conf_int: bool, title: str | None) -> Any:
    import plotnine as p9

    parts = []
    for strata, g in km.table.groupby("strata", sort=False):
        start = pd.DataFrame(
            {
                "strata": [strata],
                "time": [0.0],
                "surv": [1.0],
                "conf_low": [1.0],
                "conf_high": [1.0],
            }
        )
        parts.append(pd.concat([start, g[["strata", "time", "surv", "conf_low", "conf_high"]]]))
    steps = pd.concat(parts, ignore_index=True)
    # a step ribbon: repeat each point at the next time so geom_ribbon draws steps
    ribbon = []
    for _, g in steps.groupby("strata", sort=False):
        nxt = g.assign(time=g["time"].shift(-1)).dropna(subset=["time"])
        # at a shared time the previous level comes first, so the ribbon steps vertically
        ribbon.append(pd.concat([nxt, g]).sort_values("time", kind="stable"))
    ribbon_df = pd.concat(ribbon, ignore_index=True)
    censored = km.table.loc[km.table["n_censor"] > 0]
    breaks = _breaks(km.table["time"].max())
    plot = p9.ggplot(steps, p9.aes("time", "surv", color="strata"))
    if conf_int:
        plot += p9.geom_ribbon(
            p9.aes(ymin="conf_low", ymax="conf_high", fill="strata"),
            data=ribbon_df,
            alpha=0.15,
            color=None,
        )
    plot += p9.geom_step(size=0.8)
    plot += p9.geom_point(data=censored, shape="+", size=3)
    plot += p9.scale_x_continuous(
        breaks=breaks, limits=(0, max(breaks[-1], km.table["time"].max()))
    )
    plot += p9.scale_y_continuous(limits=(0, 1))
    plot += p9.labs(
        x="days", y="probability without the event", color="", fill="", title=title or ""
    )
    return plot + _theme()


def risk_table_plot(km: KaplanMeierResult) -> Any:
    """The numbers-at-risk table as a plotnine figure, on the same axis as :meth:`plot`."""
    import plotnine as p9

    rt = km.risk_table
    breaks = _breaks(km.table["time"].max())
    order = list(dict.fromkeys(rt["strata"]))[::-1]
    rt = rt.assign(strata=pd.Categorical(rt["strata"], categories=order))
    return (
        p9.ggplot(rt, p9.aes("time", "strata", label="n_risk"))
        + p9.geom_text(size=8)
        + p9.scale_x_continuous(breaks=breaks, limits=(0, max(breaks[-1], km.table["time"].max())))
        + p9.labs(x="days", y="", title="number at risk")
        + _theme()
        + p9.theme(panel_grid=p9.element_blank())
    )


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


# --------------------------------------------------------------------------------------------
# Cox proportional hazards


def _risk_sets(
    time: np.ndarray, event: np.ndarray, strata: np.ndarray
) -> list[dict[str, np.ndarray]]:
    """Per stratum: order by decreasing time and tie-group ids (shared by every Cox pass)."""
    out = []
    for s in pd.unique(strata):
        idx = np.flatnonzero(strata == s)
        idx = idx[np.argsort(-time[idx], kind="stable")]
        ts = time[idx]
        new = np.r_[True, ts[1:] != ts[:-1]]
        gid = np.cumsum(new) - 1
        ends = np.r_[np.flatnonzero(new)[1:] - 1, len(ts) - 1]
        out.append({"idx": idx, "gid": gid, "ends": ends, "event": event[idx]})
    return out


def _cox_pass(
    sets: list[dict[str, np.ndarray]],
    x: np.ndarray,
    beta: np.ndarray,
    efron: bool,
    gtime: np.ndarray | None = None,
) -> dict[str, Any]:
    """Log partial likelihood, score and information of a Cox model at ``beta``.

    With ``gtime`` (one value per row), also the score and the ``2p x 2p`` information for
    adding ``x * g(t)`` terms at coefficient 0: the pieces of R's ``cox.zph`` score test.
    """
    p = x.shape[1]
    loglik, u, imat = 0.0, np.zeros(p), np.zeros((p, p))
    ug, ibg, igg = np.zeros(p), np.zeros((p, p)), np.zeros((p, p))
    for rs in sets:
        xs = x[rs["idx"]]
        xs = xs - xs.mean(axis=0)  # centring for stability; partial likelihood is unchanged
        eta = xs @ beta
        risk = np.exp(eta)
        dead = rs["event"] == 1
        if not dead.any():
            continue
        gid, ends = rs["gid"], rs["ends"]
        ng = len(ends)
        s0 = np.cumsum(risk)[ends]
        s1 = np.cumsum(risk[:, None] * xs, axis=0)[ends]
        s2 = np.cumsum(risk[:, None, None] * xs[:, :, None] * xs[:, None, :], axis=0)[ends]
        dg = np.bincount(gid[dead], minlength=ng).astype(float)
        d0 = np.bincount(gid[dead], weights=risk[dead], minlength=ng)
        d1 = np.zeros((ng, p))
        np.add.at(d1, gid[dead], risk[dead, None] * xs[dead])
        d2 = np.zeros((ng, p, p))
        np.add.at(d2, gid[dead], risk[dead, None, None] * xs[dead, :, None] * xs[dead, None, :])
        # one term per death; Efron removes k/d of the tied deaths' risk for the k-th death
        gd = gid[dead]
        first_dead = np.r_[0, np.cumsum(dg)[:-1]]
        k = np.arange(dead.sum()) - first_dead[gd]
        f = k / dg[gd] if efron else np.zeros(len(gd))
        den = s0[gd] - f * d0[gd]
        a = s1[gd] - f[:, None] * d1[gd]
        c = s2[gd] - f[:, None, None] * d2[gd]
        mean = a / den[:, None]
        info = c / den[:, None, None] - mean[:, :, None] * mean[:, None, :]
        loglik += float(eta[dead].sum() - np.log(den).sum())
        resid = xs[dead] - mean
        u += resid.sum(axis=0)
        imat += info.sum(axis=0)
        if gtime is not None:
            gt = gtime[rs["idx"]][dead]
            ug += (gt[:, None] * resid).sum(axis=0)
            ibg += (gt[:, None, None] * info).sum(axis=0)
            igg += (gt[:, None, None] ** 2 * info).sum(axis=0)
    out: dict[str, Any] = {"loglik": loglik, "u": u, "imat": imat}
    if gtime is not None:
        out["zph_u"] = ug
        out["zph_imat"] = np.block([[imat, ibg], [ibg.T, igg]])
    return out


def _sum_by(
    group: np.ndarray, n_groups: int, w: np.ndarray, vec: np.ndarray | None = None
) -> np.ndarray:
    """Sum ``w`` (or ``w * vec`` row-wise) within groups ``0 .. n_groups - 1``."""
    if vec is None:
        return np.bincount(group, weights=w, minlength=n_groups)
    out = np.zeros((n_groups, vec.shape[1]))
    np.add.at(out, group, w[:, None] * vec)
    return out


def _score_residuals(
    sets: list[dict[str, np.ndarray]], x: np.ndarray, beta: np.ndarray, n: int, efron: bool
) -> np.ndarray:
    """Score residuals of a Cox model (rows in the input order), as R's ``coxph.detail``.

    A subject at risk at an event time takes ``risk_i (x_i - mean_k) / den_k`` for each of the
    time's (Efron) terms ``k``; a subject dying then takes a share ``1 - k/d`` of term ``k``.
    """
    p = x.shape[1]
    res = np.zeros((n, p))
    for rs in sets:
        idx, gid, ends, ev = rs["idx"], rs["gid"], rs["ends"], rs["event"]
        xs = x[idx] - x[idx].mean(axis=0)
        risk = np.exp(xs @ beta)
        dead = ev == 1
        if not dead.any():
            continue
        ng = len(ends)
        s0 = np.cumsum(risk)[ends]
        s1 = np.cumsum(risk[:, None] * xs, axis=0)[ends]
        gd = gid[dead]
        dg = np.bincount(gd, minlength=ng).astype(float)
        d0 = np.bincount(gd, weights=risk[dead], minlength=ng)
        d1 = np.zeros((ng, p))
        np.add.at(d1, gd, risk[dead, None] * xs[dead])
        first_dead = np.r_[0, np.cumsum(dg)[:-1]]
        f = (np.arange(dead.sum()) - first_dead[gd]) / dg[gd] if efron else np.zeros(len(gd))
        den = s0[gd] - f * d0[gd]
        mean = (s1[gd] - f[:, None] * d1[gd]) / den[:, None]

        a_all, b_all = _sum_by(gd, ng, 1 / den), _sum_by(gd, ng, 1 / den, mean)
        a_dead, b_dead = _sum_by(gd, ng, (1 - f) / den), _sum_by(gd, ng, (1 - f) / den, mean)
        m_dead = _sum_by(gd, ng, 1 / dg[gd], mean)
        # sums over event times <= t: groups run in decreasing time, so accumulate from the end
        a_cum = np.cumsum(a_all[::-1])[::-1]
        b_cum = np.cumsum(b_all[::-1], axis=0)[::-1]
        a_i, b_i = a_cum[gid].copy(), b_cum[gid].copy()
        g = gid[dead]
        a_i[dead] += a_dead[g] - a_all[g]
        b_i[dead] += b_dead[g] - b_all[g]
        r = -risk[:, None] * (xs * a_i[:, None] - b_i)
        r[dead] += xs[dead] - m_dead[g]
        res[idx] = r
    return res


def _newton_cox(
    sets: list[dict[str, np.ndarray]],
    x: np.ndarray,
    efron: bool,
    start: np.ndarray | None = None,
    max_iter: int = 50,
) -> tuple[np.ndarray, dict[str, Any], bool]:
    """Newton-Raphson with step halving, to full convergence (as R's coxph.fit).

    Stops when the log-likelihood no longer changes; the fit counts as converged only if the
    last step was also negligible (otherwise the likelihood is monotone: a coefficient is
    heading to infinity, as with complete separation).
    """
    beta = np.zeros(x.shape[1]) if start is None else np.asarray(start, dtype=float)
    cur = _cox_pass(sets, x, beta, efron)
    for _ in range(max_iter):
        try:
            step = np.linalg.solve(cur["imat"], cur["u"])
        except np.linalg.LinAlgError:
            return beta, cur, False
        for _half in range(30):
            new = _cox_pass(sets, x, beta + step, efron)
            if new["loglik"] >= cur["loglik"] - 1e-12 * abs(cur["loglik"]):
                break
            step = step / 2
        beta = beta + step
        flat = abs(new["loglik"] - cur["loglik"]) <= 1e-11 * max(1.0, abs(cur["loglik"]))
        cur = new
        if np.max(np.abs(step) / np.maximum(1.0, np.abs(beta))) < 1e-10:
            return beta, cur, True
        if flat and np.max(np.abs(step)) > 1e-3:  # big moves, no gain: monotone likelihood
            return beta, cur, False
    return beta, cur, False


def _km_transform(time: np.ndarray, event: np.ndarray) -> np.ndarray:
    """R cox.zph ``transform = "km"``: 1 - left-continuous KM of the whole data at each time."""
    times, inv = np.unique(time, return_inverse=True)
    d = np.bincount(inv, weights=event.astype(float))
    n = np.bincount(inv)[::-1].cumsum()[::-1]
    surv = np.cumprod(1 - d / n)
    km_times, km_surv = times, surv
    pos = np.searchsorted(km_times, time, side="left")  # number of KM times strictly < t
    return 1 - np.r_[1.0, km_surv][pos]


def _zph(
    sets: list[dict[str, np.ndarray]],
    x: np.ndarray,
    beta: np.ndarray,
    efron: bool,
    time: np.ndarray,
    event: np.ndarray,
    assign: dict[str, list[int]],
) -> pd.DataFrame:
    """R >= 3.0 ``cox.zph`` score test (transform "km"), per term and global."""
    tt = _km_transform(time, event)
    gtime = tt - tt[event == 1].mean()
    res = _cox_pass(sets, x, beta, efron, gtime=gtime)
    p = x.shape[1]
    u = np.r_[np.zeros(p), res["zph_u"]]
    imat = res["zph_imat"]
    rows = []
    for term, cols in assign.items():
        kk = [*range(p), *(p + j for j in cols)]
        uu = np.r_[np.zeros(p), res["zph_u"][cols]]
        chisq = float(uu @ np.linalg.solve(imat[np.ix_(kk, kk)], uu))
        rows.append({"term": term, "chisq": chisq, "df": len(cols)})
    chisq = float(u @ np.linalg.solve(imat, u))
    rows.append({"term": "GLOBAL", "chisq": chisq, "df": p})
    out = pd.DataFrame(rows)
    out["p_value"] = stats.chi2.sf(out["chisq"], out["df"])
    return out


@dataclass
class CoxResult:
    """A fitted Cox proportional-hazards model.

    Attributes
    ----------
    table
        Tidy coefficients (log hazard ratios): ``term, estimate, std_error, statistic (z),
        df (NaN), p_value, conf_low, conf_high`` plus ``hazard_ratio, hr_conf_low,
        hr_conf_high``. With ``cluster``, ``std_error`` is the robust (sandwich) one.
    ph_test
        Proportional-hazards test per term and ``GLOBAL`` (R ``cox.zph``, transform "km"):
        ``term, chisq, df, p_value``.
    loglik
        Log partial likelihood at 0 and at the estimate (R ``fit$loglik``).
    vcov
        Covariance of the coefficients (robust with ``cluster``).
    naive_std_error
        Model-based standard errors (R's ``se(coef)`` next to the robust one).
    n, n_events
        Rows used and events.
    ties
        ``"efron"`` or ``"breslow"``.
    diagnostics
        Dropped rows, few events per coefficient, non-convergence, PH violation.
    fitter
        The lifelines ``CoxPHFitter`` whose estimate starts the Newton polish (Efron ties;
        model-based variance, covariates named ``x0, x1, ...``), else ``None``.
    """

    table: pd.DataFrame
    ph_test: pd.DataFrame
    loglik: tuple[float, float]
    vcov: pd.DataFrame
    naive_std_error: pd.Series
    n: int
    n_events: int
    ties: str
    diagnostics: pd.DataFrame
    fitter: Any = field(default=None, repr=False)

    def to_ard(self, analysis: str = "cox") -> pd.DataFrame:
        """Analysis-results-dataset rows (coefficients and hazard ratios)."""
        return to_ard(self.table, analysis=analysis, diagnostics=self.diagnostics)


def _design(df: pd.DataFrame, formula: str) -> tuple[pd.DataFrame, dict[str, list[int]]]:
    from formulaic import model_matrix

    # text columns (object or pandas "string" dtype, which formulaic would not treat as a
    # factor) become categoricals with sorted levels: treatment contrasts vs the first level
    df = df.copy()
    for col in df.columns:
        if not pd.api.types.is_numeric_dtype(df[col]) and not isinstance(
            df[col].dtype, pd.CategoricalDtype
        ):
            df[col] = pd.Categorical(df[col].astype(str))
    try:
        mm = model_matrix(formula, df, na_action="raise")
    except Exception as exc:  # formulaic raises many types for a bad formula
        raise InputError(f"cannot build the design from formula {formula!r}: {exc}") from None
    x = pd.DataFrame(mm).drop(columns=["Intercept"], errors="ignore")
    if x.shape[1] == 0:
        raise InputError(f"formula {formula!r} has no covariates")
    assign: dict[str, list[int]] = {}
    all_columns = list(pd.DataFrame(mm).columns)
    for term, cols in mm.model_spec.term_slices.items():
        if str(term) == "1":
            continue
        assign[str(term)] = [list(x.columns).index(c) for c in all_columns[cols]]
    return x, assign


def _formula_variables(formula: str) -> list[str]:
    from formulaic import Formula

    try:
        return sorted(Formula(formula).required_variables)
    except Exception as exc:
        raise InputError(f"cannot parse formula {formula!r}: {exc}") from None


def cox(
    tte: pd.DataFrame,
    formula: str,
    *,
    cluster: str | None = None,
    strata: str | Sequence[str] | None = None,
    ties: str = "efron",
    time: str = "time",
    event: str = "event",
    conf_level: float = 0.95,
) -> CoxResult:
    """Cox proportional-hazards model, as R ``coxph(Surv(time, event) ~ formula, ...)``.

    Parameters
    ----------
    tte
        Time-to-event data.
    formula
        Right-hand side in Wilkinson notation, e.g. ``"arm + phototype"`` (formulaic; text
        columns become treatment contrasts against their first level in sorted order).
        Column names must be Python identifiers (rename R-style ``ph.ecog`` to ``ph_ecog``).
    cluster
        Column identifying clusters (e.g. ``"subject_id"`` for split-face units within
        patients): robust sandwich standard errors, as ``coxph(..., cluster = id)``.
    strata
        Stratification column(s): separate baseline hazards (``+ strata(x)``).
    ties
        ``"efron"`` (R's default, via lifelines) or ``"breslow"`` (SAS's default).
    time, event
        Duration and 0/1 event columns.
    conf_level
        Confidence level of Wald intervals.

    Returns
    -------
    CoxResult
    """
    if ties not in ("efron", "breslow"):
        raise InputError(f"ties must be 'efron' or 'breslow', got {ties!r}")
    strata_cols = _as_list(strata)
    variables = _formula_variables(formula)
    extra = [c for c in [cluster, *strata_cols] if c is not None]
    df, diags = _prepare(tte, time, event, [*variables, *extra], "cox")
    x_df, assign = _design(df, formula)
    names = list(x_df.columns)
    x = x_df.to_numpy(float)
    t = df[time].to_numpy(float)
    d = df[event].to_numpy(float)
    strata_codes = (
        df[strata_cols].astype(str).agg("\x1f".join, axis=1).to_numpy()
        if strata_cols
        else np.zeros(len(df), dtype=int)
    )
    sets = _risk_sets(t, d, strata_codes)
    n_events = int(d.sum())
    p = x.shape[1]
    if n_events == 0:
        raise ModelError("cox: there are no events; a Cox model cannot be fitted")
    const = [names[j] for j in range(p) if np.ptp(x[:, j]) == 0]
    if const:
        raise ModelError(f"cox: covariate column(s) constant in the data: {', '.join(const)}")
    efron = ties == "efron"
    fitter, start = None, None
    if efron:
        start, fitter = _lifelines_cox(x_df, t, d, df, strata_cols)
    # Newton-Raphson on the exact partial likelihood: polishes lifelines' Efron estimate (its
    # stopping rule leaves ~1e-6 relative error) and fits Breslow ties, which lifelines lacks
    beta, res, converged = _newton_cox(sets, x, efron, start=start)
    try:
        naive_var = np.linalg.inv(res["imat"])
    except np.linalg.LinAlgError:
        naive_var = np.full((p, p), np.nan)
    if not converged or np.isnan(naive_var).any():
        diags.append(
            Diagnostic(
                "not_converged",
                "the Cox fit did not converge: a coefficient may be infinite (e.g. a group in "
                "which every unit has the event first); estimates and standard errors are "
                "unreliable",
            )
        )
    robust_var = None
    if cluster is not None:
        # R's robust variance: D'D with D the dfbeta residuals summed within clusters
        dfbeta = _score_residuals(sets, x, beta, len(df), efron) @ naive_var
        by_cluster = pd.DataFrame(dfbeta).groupby(df[cluster].to_numpy()).sum().to_numpy()
        robust_var = by_cluster.T @ by_cluster
    final = _cox_pass(sets, x, beta, efron)
    null = _cox_pass(sets, x, np.zeros(p), efron)
    var = robust_var if robust_var is not None else naive_var
    se = np.sqrt(np.diag(var))
    zval = beta / se
    zq = _z(conf_level)
    with np.errstate(over="ignore"):  # an infinite-looking fit gives inf bounds, flagged
        hr = np.exp(np.column_stack([beta, beta - zq * se, beta + zq * se]))
    table = tidy_frame(
        pd.DataFrame(
            {
                "term": names,
                "estimate": beta,
                "std_error": se,
                "statistic": zval,
                "p_value": 2 * stats.norm.sf(np.abs(zval)),
                "conf_low": beta - zq * se,
                "conf_high": beta + zq * se,
                "hazard_ratio": hr[:, 0],
                "hr_conf_low": hr[:, 1],
                "hr_conf_high": hr[:, 2],
            }
        ),
        extra=list(HR_COLUMNS),
    )
    try:
        ph = _zph(sets, x, beta, efron, t, d, assign)
    except np.linalg.LinAlgError:
        ph = pd.DataFrame(columns=["term", "chisq", "df", "p_value"])
        diags.append(
            Diagnostic("ph_test_failed", "the proportional-hazards test matrix is singular")
        )
    if n_events < FEW_EVENTS * p:
        diags.append(
            Diagnostic(
                "few_events",
                f"{n_events} events for {p} coefficient(s) (fewer than {FEW_EVENTS} per "
                "coefficient): estimates may be biased and intervals too narrow",
            )
        )
    if len(ph) and ph["p_value"].iloc[-1] < 0.05:
        diags.append(
            Diagnostic(
                "ph_violation",
                f"proportional-hazards test (cox.zph, km transform): global p = "
                f"{ph['p_value'].iloc[-1]:.3g}; hazard ratios may change over time",
            )
        )
    for diag in diags:
        diag.emit(ConvergenceWarning if diag.code == "not_converged" else StatisticalWarning)
    return CoxResult(
        table=table,
        ph_test=ph,
        loglik=(null["loglik"], final["loglik"]),
        vcov=pd.DataFrame(var, index=names, columns=names),
        naive_std_error=pd.Series(np.sqrt(np.diag(naive_var)), index=names),
        n=len(df),
        n_events=n_events,
        ties=ties,
        diagnostics=diagnostics_frame(diags),
        fitter=fitter,
    )


def _safe_inv(m: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.inv(m)
    except np.linalg.LinAlgError:
        raise ModelError(
            "the information matrix is singular: a covariate may be collinear or "
            "perfectly separate events"
        ) from None


def _lifelines_cox(
    x_df: pd.DataFrame,
    t: np.ndarray,
    d: np.ndarray,
    df: pd.DataFrame,
    strata_cols: list[str],
) -> tuple[np.ndarray, Any]:
    """Efron-ties fit by lifelines' CoxPHFitter (model-based variance; no cluster)."""
    from lifelines import CoxPHFitter
    from lifelines.exceptions import ConvergenceError

    cols = [f"x{j}" for j in range(x_df.shape[1])]
    data = pd.DataFrame(x_df.to_numpy(float), columns=cols)
    data["__time"], data["__event"] = t, d
    kwargs: dict[str, Any] = {}
    if strata_cols:
        for j, s in enumerate(strata_cols):
            data[f"__strata{j}"] = df[s].astype(str).to_numpy()
        kwargs["strata"] = [f"__strata{j}" for j in range(len(strata_cols))]
    fitter = CoxPHFitter()
    with warnings.catch_warnings():
        # lifelines' own convergence warnings: convergence is judged after the Newton polish
        warnings.simplefilter("ignore")
        try:
            fitter.fit(data, "__time", "__event", **kwargs)
        except ConvergenceError as exc:
            raise ModelError(f"Cox model did not converge: {str(exc).splitlines()[0]}") from None
    return fitter.params_[cols].to_numpy(), fitter


# --------------------------------------------------------------------------------------------
# interval-censored parametric models


@dataclass
class IntervalModelResult:
    """An interval-censored accelerated-failure-time model (Weibull or log-normal).

    Attributes
    ----------
    table
        Coefficients in R ``survreg``'s parametrisation, tidy columns: ``(Intercept)``, one
        row per group contrast (``by[T.level]``) on the log-time scale, and ``Log(scale)``.
    medians
        Median time to the event per group with a CI (delta method on the log scale):
        ``by`` column, ``median``, ``std_error_log``, ``conf_low``, ``conf_high``.
    loglik
        Maximised log-likelihood (equal to ``survreg``'s ``loglik``).
    dist
        ``"weibull"`` or ``"lognormal"``.
    diagnostics
        Dropped rows, few events, non-convergence.
    fitter
        The lifelines AFT fitter.
    """

    table: pd.DataFrame
    medians: pd.DataFrame
    loglik: float
    vcov: pd.DataFrame
    dist: str
    n: int
    diagnostics: pd.DataFrame
    fitter: Any = field(default=None, repr=False)

    def to_ard(self, analysis: str = "interval_model") -> pd.DataFrame:
        """Analysis-results-dataset rows (coefficients and medians)."""
        med = self.medians.rename(columns={"median": "estimate"})
        med = med.assign(term="median: " + med.iloc[:, 0].astype(str))
        both = pd.concat([self.table, tidy_frame(med)], ignore_index=True)
        return to_ard(both, analysis=analysis, diagnostics=self.diagnostics)


def _aft_loglik_fn(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, dist: str) -> Any:
    """Interval-censored AFT log-likelihood in survreg's parameters ``(beta, log sigma)``.

    Written with autograd (a lifelines dependency) for exact derivatives. Rows are split into
    left-censored (``lo == 0``), right-censored (``hi == inf``) and interval rows, so no
    infinite value enters the arithmetic.
    """
    import autograd.numpy as anp
    from autograd.scipy.stats import norm

    right = np.isinf(hi) & (lo > 0)
    left = (lo == 0) & ~np.isinf(hi)
    mid = (lo > 0) & ~np.isinf(hi)  # rows with (0, inf) carry no information and drop out
    x_left, x_right, x_mid = x[left], x[right], x[mid]
    log_hi_left, log_lo_right = np.log(hi[left]), np.log(lo[right])
    log_lo_mid, log_hi_mid = np.log(lo[mid]), np.log(hi[mid])

    def log_surv(z: Any) -> Any:
        return -anp.exp(z) if dist == "weibull" else norm.logcdf(-z)

    def log_cdf(z: Any) -> Any:
        return anp.log(-anp.expm1(-anp.exp(z))) if dist == "weibull" else norm.logcdf(z)

    def loglik(theta: Any) -> Any:
        beta, sigma = theta[:-1], anp.exp(theta[-1])
        sl = log_surv((log_lo_mid - anp.dot(x_mid, beta)) / sigma)
        sh = log_surv((log_hi_mid - anp.dot(x_mid, beta)) / sigma)
        return (
            anp.sum(log_cdf((log_hi_left - anp.dot(x_left, beta)) / sigma))
            + anp.sum(log_surv((log_lo_right - anp.dot(x_right, beta)) / sigma))
            + anp.sum(sl + anp.log(-anp.expm1(sh - sl)))
        )

    return loglik


def _polish(theta: np.ndarray, f: Any, steps: int = 50) -> tuple[np.ndarray, np.ndarray, bool]:
    """Newton-Raphson with step halving on a log-likelihood, exact derivatives by autograd."""
    from autograd import grad, hessian

    gradient, hess_fn = grad(f), hessian(f)
    for _ in range(steps):
        g, hess = gradient(theta), hess_fn(theta)
        try:
            step = -np.linalg.solve(hess, g)
        except np.linalg.LinAlgError:
            return theta, hess, False
        current = f(theta)
        for _half in range(40):
            if f(theta + step) >= current - 1e-12 * abs(current):
                break
            step = step / 2
        theta = theta + step
        if np.max(np.abs(step)) < 1e-11:
            return theta, hess_fn(theta), True
    return theta, hess_fn(theta), False


def interval_model(
    tte: pd.DataFrame,
    by: str | None = "arm",
    *,
    dist: str = "weibull",
    lower: str = "lower",
    upper: str = "upper",
    conf_level: float = 0.95,
) -> IntervalModelResult:
    """Interval-censored Weibull or log-normal model of time to the event, per group.

    Each row's event lies in ``(lower, upper]`` (visit-schedule data); ``upper = inf`` is
    right-censoring and ``lower = 0`` left-censoring. Matches R
    ``survreg(Surv(l, r, type = "interval2") ~ by, dist = dist)`` (with ``l = NA`` for 0 and
    ``r = NA`` for inf).

    lifelines' AFT fitter (``fit_interval_censoring``) gives the fit; its parameters are
    converted to survreg's (Weibull: ``lambda_`` coefficients are survreg's coefficients and
    ``log(scale) = -log(rho)``; log-normal: ``mu_`` and ``log(scale) = sigma_``) and polished
    by Newton-Raphson on the same likelihood with exact (autograd) derivatives (lifelines'
    optimiser stops around 1e-7 relative), so estimates and standard errors agree with R to
    ~1e-12. Rows with ``(0, inf)`` carry no information; R drops them, here they add 0 to the
    log-likelihood.

    Parameters
    ----------
    tte
        Time-to-event data with interval bounds (``derive_tte`` gives ``lower``/``upper``).
    by
        Group column (one coefficient per level against the first in sorted order), or
        ``None`` for a single group.
    dist
        ``"weibull"`` or ``"lognormal"``.
    lower, upper
        Interval bound columns.
    conf_level
        Confidence level of Wald intervals (medians: on the log scale, then exponentiated).

    Returns
    -------
    IntervalModelResult
        ``.table`` (survreg coefficients), ``.medians`` per group with CI, ``.loglik``.
    """
    from lifelines import LogNormalAFTFitter, WeibullAFTFitter

    if dist not in ("weibull", "lognormal"):
        raise InputError(f"dist must be 'weibull' or 'lognormal', got {dist!r}")
    cols = [lower, upper, *_as_list(by)]
    missing = [c for c in cols if c not in tte.columns]
    if missing:
        raise InputError(f"interval_model: column(s) not in the data: {', '.join(missing)}")
    df = tte[cols].copy()
    diags = []
    df[lower] = pd.to_numeric(df[lower], errors="coerce")
    df[upper] = pd.to_numeric(df[upper], errors="coerce")
    bad = df.isna().any(axis=1)
    if bad.any():
        diags.append(
            Diagnostic(
                "rows_dropped",
                f"{int(bad.sum())} rows with missing bounds or group dropped",
                "info",
            )
        )
        df = df.loc[~bad]
    if (df[lower] < 0).any() or (df[upper] < df[lower]).any():
        raise InputError("interval_model: bounds must satisfy 0 <= lower <= upper")
    if (df[upper] == 0).any():
        raise InputError(
            "interval_model: an event at time 0 (upper = 0) cannot enter a Weibull or "
            "log-normal model; drop or shift those rows"
        )
    exact = df[lower] == df[upper]
    if exact.any():
        raise InputError(
            "interval_model handles interval- and right-censored rows only; "
            f"{int(exact.sum())} rows have lower == upper (an exact time)"
        )
    levels = sorted(df[by].unique()) if by else []
    x = np.ones((len(df), 1))
    names = ["(Intercept)"]
    for lev in levels[1:]:
        x = np.column_stack([x, (df[by] == lev).to_numpy(float)])
        names.append(f"{by}[T.{lev}]")
    n_events = int(np.isfinite(df[upper]).sum())
    if n_events < FEW_EVENTS * len(names):
        diags.append(
            Diagnostic(
                "few_events",
                f"{n_events} interval-censored events for "
                f"{len(names) + 1} parameters: estimates are imprecise",
            )
        )
    data = pd.DataFrame(x[:, 1:], columns=[f"x{j}" for j in range(1, x.shape[1])])
    lo, hi = df[lower].to_numpy(float), df[upper].to_numpy(float)
    # lifelines' gradient is NaN at a lower bound of exactly 0 (log 0): give it a bound far
    # below any visit; the polish below uses the exact likelihood with 0
    tiny = 1e-6 * np.min(hi[hi > 0], initial=1.0)
    data["__lo"] = np.maximum(lo, tiny)
    data["__hi"] = hi
    fitter = WeibullAFTFitter() if dist == "weibull" else LogNormalAFTFitter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fitter.fit_interval_censoring(data, "__lo", "__hi")
        except Exception as exc:
            raise ModelError(f"interval_model: lifelines could not fit the model: {exc}") from None
    par = fitter.params_
    loc_name = "lambda_" if dist == "weibull" else "mu_"
    start = np.r_[
        [par[(loc_name, "Intercept")]],
        [par[(loc_name, f"x{j}")] for j in range(1, x.shape[1])],
        [-par[("rho_", "Intercept")]] if dist == "weibull" else [par[("sigma_", "Intercept")]],
    ]
    f = _aft_loglik_fn(x, lo, hi, dist)
    theta, hess, converged = _polish(start.astype(float), f)
    if not converged or not np.isfinite(f(theta)):
        diags.append(Diagnostic("not_converged", "the interval-censored model did not converge"))
    vcov = _safe_inv(-hess)
    se = np.sqrt(np.diag(vcov))
    zq = _z(conf_level)
    all_names = [*names, "Log(scale)"]
    zval = theta / se
    table = tidy_frame(
        pd.DataFrame(
            {
                "term": all_names,
                "estimate": theta,
                "std_error": se,
                "statistic": zval,
                "p_value": 2 * stats.norm.sf(np.abs(zval)),
                "conf_low": theta - zq * se,
                "conf_high": theta + zq * se,
            }
        )
    )
    # median: log T50 = x beta + sigma * q, q = log(log 2) (Weibull) or 0 (log-normal)
    q = np.log(np.log(2.0)) if dist == "weibull" else 0.0
    sigma = np.exp(theta[-1])
    med_rows = []
    for i, lev in enumerate(levels or ["all"]):
        xi = np.zeros(len(names))
        xi[0] = 1.0
        if i > 0:
            xi[i] = 1.0
        grad = np.r_[xi, sigma * q]
        log_med = float(xi @ theta[:-1] + sigma * q)
        se_log = float(np.sqrt(grad @ vcov @ grad))
        med_rows.append(
            {
                by or "group": lev,
                "median": np.exp(log_med),
                "std_error_log": se_log,
                "conf_low": np.exp(log_med - zq * se_log),
                "conf_high": np.exp(log_med + zq * se_log),
            }
        )
    for diag in diags:
        diag.emit(ConvergenceWarning if diag.code == "not_converged" else StatisticalWarning)
    return IntervalModelResult(
        table=table,
        medians=pd.DataFrame(med_rows),
        loglik=float(f(theta)),
        vcov=pd.DataFrame(vcov, index=all_names, columns=all_names),
        dist=dist,
        n=len(df),
        diagnostics=diagnostics_frame(diags),
        fitter=fitter,
    )


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
