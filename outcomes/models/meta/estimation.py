"""Pooling: the between-study variance (REML, Paule-Mandel, DerSimonian-Laird) and the fit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize, stats
from statsmodels.stats.meta_analysis import combine_effects

from outcomes.results import Diagnostic

FEW_STUDIES = 5
DOMINANT_WEIGHT = 0.5


_TAU2_ZERO = 1e-10


# --------------------------------------------------------------------------------------------
# pooling
# --------------------------------------------------------------------------------------------


@dataclass
class _Fit:
    """One pooled model (overall or one subgroup)."""

    term: str
    k: int
    estimate: float
    se: float
    df: float
    tau2: float
    tau2_se: float
    q: float
    i2: float
    h2: float
    weights: np.ndarray
    level: float
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def crit(self) -> float:
        alpha = 1 - self.level
        if np.isfinite(self.df):
            return float(stats.t.isf(alpha / 2, self.df))
        return float(stats.norm.isf(alpha / 2))

    def row(self) -> dict[str, Any]:
        stat = self.estimate / self.se
        if np.isfinite(self.df):
            p = 2 * stats.t.sf(abs(stat), self.df)
        else:
            p = 2 * stats.norm.sf(abs(stat))
        return {
            "term": self.term,
            "estimate": self.estimate,
            "std_error": self.se,
            "statistic": stat,
            "df": self.df,
            "p_value": p,
            "conf_low": self.estimate - self.crit * self.se,
            "conf_high": self.estimate + self.crit * self.se,
            "k": self.k,
            "tau2": self.tau2,
            "i2": self.i2,
        }


def _reml_tau2(y: np.ndarray, v: np.ndarray) -> float:
    """REML estimate of tau^2: root of the restricted-likelihood score, or 0 at the boundary.

    The score of the restricted log-likelihood (times -2) of the model
    ``y_i ~ N(mu, v_i + tau^2)`` is ``sum(w) - sum(w^2)/sum(w) - sum(w^2 (y - mu_hat)^2)``
    with ``w = 1/(v + tau^2)``; it is negative where the likelihood still rises.
    """

    def score(tau2: float) -> float:
        w = 1 / (v + tau2)
        sw = w.sum()
        mu = (w * y).sum() / sw
        return float(sw - (w**2).sum() / sw - (w**2 * (y - mu) ** 2).sum())

    if score(0.0) >= 0:
        return 0.0
    upper = max(float(np.var(y)), float(v.max()), 1e-8)
    while score(upper) < 0:
        upper *= 4
    return float(optimize.brentq(score, 0.0, upper, xtol=1e-14, rtol=1e-14, maxiter=500))


def _generalised_q(tau2: float, y: np.ndarray, v: np.ndarray) -> float:
    w = 1 / (v + tau2)
    mu = (w * y).sum() / w.sum()
    return float((w * (y - mu) ** 2).sum())


def _pm_tau2(y: np.ndarray, v: np.ndarray) -> float:
    """Paule-Mandel tau^2: the root of ``Q(tau^2) = k - 1``, or 0 when ``Q(0) < k - 1``.

    ``Q(tau^2)`` decreases in tau^2, so the root is bracketed and found with
    :func:`scipy.optimize.brentq` (as metafor does with ``uniroot``). statsmodels'
    ``combine_effects(method_re="pm")`` is not used: its Newton-type iteration returns 0 whenever
    a step overshoots the root, which happens with tight tolerances.
    """
    k = len(y)
    if _generalised_q(0.0, y, v) <= k - 1:
        return 0.0
    upper = max(float(np.var(y)), float(v.max()), 1e-8)
    while _generalised_q(upper, y, v) > k - 1:
        upper *= 4
    return float(
        optimize.brentq(
            lambda t: _generalised_q(t, y, v) - (k - 1), 0.0, upper, xtol=1e-14, rtol=1e-14
        )
    )


def _fit(
    term: str,
    y: np.ndarray,
    v: np.ndarray,
    method: str,
    knapp_hartung: bool,
    level: float,
) -> _Fit:
    k = len(y)
    diags: list[Diagnostic] = []
    if k == 1:
        diags.append(
            Diagnostic(
                "single_study",
                f"{term}: only one study, so its own estimate is reported; nothing is pooled "
                "and heterogeneity cannot be estimated.",
            )
        )
        return _Fit(
            term,
            1,
            float(y[0]),
            float(np.sqrt(v[0])),
            np.nan,
            np.nan,
            np.nan,
            np.nan,
            np.nan,
            np.nan,
            np.ones(1),
            level,
            diags,
        )
    # statsmodels leaves the DL tau^2 untruncated, which can make its (unused) random-effects
    # numbers NaN: silence numpy there; Q is what is taken from it.
    with np.errstate(all="ignore"):
        q = float(combine_effects(y, v, method_re="dl").q)
    w0 = 1 / v
    c = w0.sum() - (w0**2).sum() / w0.sum()
    if method == "FE":
        tau2 = 0.0
    elif method == "DL":
        tau2 = max(0.0, (q - (k - 1)) / c)
    elif method == "PM":
        tau2 = _pm_tau2(y, v)
    else:
        tau2 = _reml_tau2(y, v)
    w = 1 / (v + tau2)
    sw = w.sum()
    estimate = float((w * y).sum() / sw)
    se = float(np.sqrt(1 / sw))
    df = np.nan  # normal-theory inference: no degrees of freedom
    if knapp_hartung:
        s2 = float((w * (y - estimate) ** 2).sum() / (k - 1))
        se = float(np.sqrt(s2 / sw))
        df = float(k - 1)
    if method == "FE":
        i2 = max(0.0, 100 * (q - (k - 1)) / q) if q > 0 else 0.0
        h2 = q / (k - 1)
    else:
        typical = (k - 1) / c
        i2 = 100 * tau2 / (tau2 + typical)
        h2 = (tau2 + typical) / typical
    tau2_se = np.nan
    if method == "REML":
        tr_pp = (w**2).sum() - 2 * (w**3).sum() / sw + ((w**2).sum() / sw) ** 2
        tau2_se = float(np.sqrt(2 / tr_pp))
    elif method == "PM":
        tau2_se = float(np.sqrt(2 * k**2 / (k - 1) / sw**2))
    elif method == "DL":
        # metafor's rma.uni: the variance of the moment estimator with fixed-effect weights,
        # sqrt(2 (k - 1) + 4 tau^2 tr(P) + 2 tau^2^2 tr(P P)) / tr(P), where tr(P) = c
        pp = (w0**2).sum() - 2 * (w0**3).sum() / w0.sum() + ((w0**2).sum() / w0.sum()) ** 2
        tau2_se = float(np.sqrt(2 * (k - 1) + 4 * tau2 * c + 2 * tau2**2 * pp) / c)
    if method != "FE":
        if k < FEW_STUDIES:
            diags.append(
                Diagnostic(
                    "few_studies",
                    f"{term}: only {k} studies, so tau^2 is poorly estimated and normal-theory "
                    "intervals are too narrow; consider knapp_hartung=True.",
                )
            )
        if tau2 < _TAU2_ZERO:
            diags.append(
                Diagnostic(
                    "tau2_boundary",
                    f"{term}: tau^2 estimated at the zero boundary; the random-effects result "
                    "equals the fixed-effect one, which does not prove homogeneity.",
                )
            )
    weights = w / sw
    if k > 2 and weights.max() > DOMINANT_WEIGHT:
        diags.append(
            Diagnostic(
                "dominant_study",
                f"{term}: one study carries {100 * weights.max():.0f}% of the weight.",
                severity="info",
            )
        )
    return _Fit(term, k, estimate, se, df, tau2, tau2_se, q, i2, h2, weights, level, diags)
