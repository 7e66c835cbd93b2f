"""Interval-censored Weibull and log-normal models (R ``survreg`` with ``interval2``)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from outcomes.errors import ConvergenceWarning, InputError, ModelError, StatisticalWarning
from outcomes.models.survival.common import FEW_EVENTS, _as_list, _z
from outcomes.results import Diagnostic, diagnostics_frame, tidy_frame, to_ard

__all__ = ["IntervalModelResult", "interval_model"]


def _safe_inv(m: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.inv(m)
    except np.linalg.LinAlgError:
        raise ModelError(
            "the information matrix is singular: a covariate may be collinear or "
            "perfectly separate events"
        ) from None


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

    def tidy(self) -> pd.DataFrame:
        """The coefficients (log-time scale) with the shared tidy columns."""
        return tidy_frame(self.table)

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
