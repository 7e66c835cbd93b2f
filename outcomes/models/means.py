"""Marginal means, contrasts and tests of linear functions of any model's coefficients.

One implementation of emmeans' reference grid, ``emmeans()``, ``contrast()`` and lmerTest's
``contest()`` for every model family: a model hands over a :class:`LinearPredictor` (its
fixed-effect design, coefficients, their covariance and a degrees-of-freedom rule) and
:func:`emmeans`, :func:`contrasts` and :func:`linear_test` do the rest.

Degrees of freedom come from ``df_fn(L)`` for a contrast matrix ``L`` (Satterthwaite or
Kenward-Roger for linear mixed models); ``np.inf`` gives z tests (GLMMs, GLMs). With a
``link`` (an object with ``inverse`` and ``inverse_deriv``, e.g. a statsmodels link), means can
be reported on the response scale as emmeans' ``type = "response"`` does.
"""

from __future__ import annotations

import ast
import functools
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import patsy
from scipy import optimize, special, stats

from outcomes.errors import InputError
from outcomes.results import tidy_frame

__all__ = [
    "ADJUST_METHODS",
    "LinearPredictor",
    "adjusted_critical_values",
    "adjusted_p_values",
    "cell_means_matrix",
    "contrasts",
    "emmeans",
    "linear_test",
    "reference_grid",
]

#: Multiplicity adjustments of :func:`contrasts`: emmeans' ``tukey``, ``dunnettx`` and ``mvt``,
#: and statsmodels ``multipletests`` names (emmeans' ``"BH"``/``"fdr"`` are aliases of
#: ``"fdr_bh"``).
ADJUST_METHODS = (
    "none",
    "tukey",
    "dunnettx",
    "mvt",
    "bonferroni",
    "sidak",
    "holm",
    "holm-sidak",
    "hochberg",
    "fdr_bh",
)
_ADJUST_ALIASES = {"bh": "fdr_bh", "fdr": "fdr_bh", "fdr_bh": "fdr_bh"}
#: Seed of the Monte-Carlo integration behind ``adjust="mvt"`` (fixed, so reruns agree).
MVT_SEED = 20261207
_MVT_POINTS = 2**18


@dataclass(frozen=True)
class LinearPredictor:
    """What :func:`emmeans`, :func:`contrasts` and :func:`linear_test` need from a model.

    Attributes
    ----------
    names
        Coefficient names, in the order of ``beta``.
    beta
        Fixed-effect coefficients.
    vcov
        Their covariance matrix.
    df_fn
        ``df_fn(L)`` gives one degrees-of-freedom value per row of the contrast matrix ``L``
        (``np.inf`` for z tests).
    design_info
        The patsy ``DesignInfo`` of the fixed effects (builds the reference grid's rows).
    data
        The model frame the fit used (covariate means for the reference grid).
    level
        Default confidence level.
    link
        Optional link with ``inverse(eta)`` and ``inverse_deriv(eta)`` (statsmodels links have
        both), for means on the response scale.
    """

    names: Sequence[str]
    beta: np.ndarray
    vcov: np.ndarray
    df_fn: Callable[[np.ndarray], np.ndarray]
    design_info: Any
    data: pd.DataFrame
    level: float = 0.95
    link: Any = None


def _t_table(est: np.ndarray, se: np.ndarray, df: np.ndarray, level: float) -> dict[str, Any]:
    with np.errstate(divide="ignore", invalid="ignore"):
        tval = est / se
    q = stats.t.ppf(0.5 + level / 2, df)
    return {
        "estimate": est,
        "std_error": se,
        "statistic": tval,
        "df": df,
        "p_value": 2 * stats.t.sf(np.abs(tval), df),
        "conf_low": est - q * se,
        "conf_high": est + q * se,
    }


def linear_test(
    lp: LinearPredictor,
    contrasts: np.ndarray,
    terms: Sequence[str] | None = None,
    level: float | None = None,
) -> pd.DataFrame:
    """t-tests of linear contrasts ``L beta`` (lmerTest's ``contest``; z tests when df is inf).

    Parameters
    ----------
    lp
        The model's linear predictor.
    contrasts
        Shape ``(k, p)``, one contrast per row, columns in the order of ``lp.names``.
    terms
        Labels of the rows (default ``"L1", "L2", ...``).
    level
        Confidence level (default ``lp.level``).
    """
    lmat = np.atleast_2d(np.asarray(contrasts, dtype=float))
    if lmat.shape[1] != len(lp.beta):
        raise InputError(
            f"A contrast needs {len(lp.beta)} coefficients (one per fixed effect), "
            f"got {lmat.shape[1]}."
        )
    est = lmat @ lp.beta
    se = np.sqrt(np.einsum("ki,ij,kj->k", lmat, lp.vcov, lmat))
    df = np.broadcast_to(np.asarray(lp.df_fn(lmat), dtype=float), est.shape)
    table = _t_table(est, se, df, lp.level if level is None else level)
    table["term"] = list(terms) if terms is not None else [f"L{i + 1}" for i in range(len(lmat))]
    return tidy_frame(pd.DataFrame(table))


def _code_variables(code: str, columns: Sequence[str]) -> list[str]:
    """Data columns named in one patsy factor's code, e.g. ``C(arm, Treatment('MN'))``."""
    tree = ast.parse(code, mode="eval")
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in columns and node.id not in names:
            names.append(node.id)
    return names


def reference_grid(
    lp: LinearPredictor, at: Mapping[str, Any] | None = None
) -> tuple[pd.DataFrame, list[str]]:
    """emmeans' reference grid: factor levels crossed, covariates at their mean.

    Returns the grid and the names of its factors (the other columns are covariates).
    """
    frame = lp.data
    columns = list(frame.columns)
    values: dict[str, list[Any]] = {}
    factors: list[str] = []
    for factor, finfo in lp.design_info.factor_infos.items():
        names = _code_variables(factor.code, columns)
        if len(names) != 1:
            raise InputError(
                f"Marginal means need one data column per model term; {factor.code!r} uses "
                f"{len(names)}."
            )
        name = names[0]
        if finfo.type == "categorical":
            values[name] = list(finfo.categories)
            factors.append(name)
        elif name not in values:
            values[name] = [float(frame[name].mean())]
    for name, value in (at or {}).items():
        if name not in values:
            raise InputError(
                f"at= names {name!r}, which is not a variable of the fixed effects "
                f"({', '.join(values)})."
            )
        vals = list(np.atleast_1d(value))
        if name in factors:
            bad = [v for v in vals if v not in values[name]]
            if bad:
                raise InputError(f"at= gives {bad} for {name!r}; levels are {values[name]}.")
        values[name] = vals
    grid = pd.DataFrame(list(itertools.product(*values.values())), columns=list(values))
    return grid, factors


def cell_means_matrix(
    lp: LinearPredictor, specs: Sequence[str], by: Sequence[str], at: Mapping[str, Any] | None
) -> tuple[pd.DataFrame, np.ndarray]:
    """Cells of ``by`` x ``specs`` and the rows of ``L`` giving their (equally weighted) means."""
    grid, _ = reference_grid(lp, at)
    for name in [*specs, *by]:
        if name not in grid.columns:
            raise InputError(
                f"{name!r} is not a variable of the fixed effects ({', '.join(grid.columns)})."
            )
    (xg,) = patsy.build_design_matrices([lp.design_info], grid)
    xg = np.asarray(xg)
    keys = [*by, *specs]
    cells = grid[keys].drop_duplicates().reset_index(drop=True)
    lmat = np.empty((len(cells), xg.shape[1]))
    for i, (_, row) in enumerate(cells.iterrows()):
        mask = np.ones(len(grid), dtype=bool)
        for k in keys:
            mask &= (grid[k] == row[k]).to_numpy()
        lmat[i] = xg[mask].mean(axis=0)
    return cells, lmat


def _as_list(value: str | Sequence[str] | None) -> list[str]:
    return [] if value is None else ([value] if isinstance(value, str) else list(value))


def emmeans(
    lp: LinearPredictor,
    specs: str | Sequence[str],
    by: str | Sequence[str] | None = None,
    at: Mapping[str, Any] | None = None,
    level: float | None = None,
    scale: str = "link",
) -> pd.DataFrame:
    """Estimated marginal means, as R's ``emmeans(fit, specs, by = by, at = at)``.

    The reference grid crosses every factor's levels and puts each numeric covariate at its
    mean (or at the values given in ``at``); means of ``specs`` (within ``by``) average the
    grid with equal weights over the other factors.

    Parameters
    ----------
    lp
        The model's linear predictor.
    specs
        Variable(s) whose levels get a mean each, e.g. ``"arm"``.
    by
        Variable(s) to condition on, e.g. ``"visit"``.
    at
        Values for covariates or a subset of factor levels, e.g. ``{"week": 24}``.
    level
        Confidence level (default ``lp.level``).
    scale
        ``"link"`` (default) or ``"response"``, emmeans' ``type = "response"``: means
        through ``lp.link.inverse`` (probabilities for a logit link), delta-method standard
        errors, and intervals back-transformed from the link scale. The statistic, df and
        p-value stay those of the link scale (the test of a zero linear predictor), as in
        emmeans.

    Returns
    -------
    pandas.DataFrame
        Tidy columns (``term`` labels the cell) followed by the ``by`` and ``specs`` columns.
    """
    if scale not in ("link", "response"):
        raise InputError(f"scale={scale!r}: use 'link' or 'response'.")
    if scale == "response" and lp.link is None:
        raise InputError("scale='response' needs a model with a link function (lp.link).")
    specs_l = _as_list(specs)
    by_l = _as_list(by)
    cells, lmat = cell_means_matrix(lp, specs_l, by_l, at)
    labels = [", ".join(f"{k}={row[k]}" for k in [*by_l, *specs_l]) for _, row in cells.iterrows()]
    table = linear_test(lp, lmat, terms=labels, level=level)
    if scale == "response":
        eta, se = table["estimate"].to_numpy(), table["std_error"].to_numpy()
        ends = lp.link.inverse(table[["conf_low", "conf_high"]].to_numpy())
        table["estimate"] = lp.link.inverse(eta)
        table["std_error"] = np.abs(lp.link.inverse_deriv(eta)) * se
        table["conf_low"], table["conf_high"] = ends.min(axis=1), ends.max(axis=1)
    for k in [*by_l, *specs_l]:
        table[k] = cells[k].to_numpy()
    return tidy_frame(table, extra=[*by_l, *specs_l])


# --------------------------------------------------------------------------------------------
# Multiplicity adjustments (emmeans' .adj.p.value and .adj.critval, two-sided)
# --------------------------------------------------------------------------------------------


def _zapsmall(x: np.ndarray, digits: int = 7) -> np.ndarray:
    """R's ``zapsmall``: round to ``digits`` significant digits of the largest value."""
    mx = np.max(np.abs(x))
    if not mx > 0:
        return x
    dig = max(0.0, digits - np.log10(mx))
    return np.round(x, int(np.floor(dig + 0.5)))


def _mvt_df(df: float) -> float:
    """emmeans' ``.fix.df``: mvtnorm takes whole df, and df above 9999 as normal (inf)."""
    d = max(1.0, df) if df > 0 else df
    return np.inf if (np.isinf(d) or d > 9999) else float(np.floor(d + 0.25))


def _pdunnx(x: np.ndarray, k: int, df: np.ndarray) -> np.ndarray:
    """emmeans' ``.pdunnx``: Dunnett's P(max |T| < x) as a Tukey-Sidak mixture, k contrasts."""
    twt = (k - 1) / k
    tukey = stats.studentized_range.cdf(np.sqrt(2) * x, (1 + np.sqrt(1 + 8 * k)) / 2, df)
    sidak = (1 - 2 * stats.t.sf(x, df)) ** k  # R's pf(x^2, 1, df)^k
    return twt * tukey + (1 - twt) * sidak


@functools.lru_cache(maxsize=32)
def _max_abs_z(corr_bytes: bytes, k: int) -> np.ndarray:
    """Quasi-Monte-Carlo draws of ``max_i |Z_i|``, Z normal with the given correlation.

    A scrambled Sobol sequence (seed :data:`MVT_SEED`) through the normal quantile, times a
    square root of the correlation matrix (which may be singular, as pairwise contrasts' is).
    """
    from scipy.stats import qmc

    corr = np.frombuffer(corr_bytes).reshape(k, k)
    vals, vecs = np.linalg.eigh(corr)
    keep = vals > 1e-10 * vals.max()
    root = vecs[:, keep] * np.sqrt(vals[keep])
    u = qmc.Sobol(int(keep.sum()), scramble=True, seed=MVT_SEED).random(_MVT_POINTS)
    return np.abs(special.ndtri(np.clip(u, 1e-16, 1 - 1e-16)) @ root.T).max(axis=1)


def _max_abs_t(df: float, corr: np.ndarray | None) -> np.ndarray:
    """Sorted Monte-Carlo draws of ``max_i |T_i|``, T multivariate t with correlation corr.

    :func:`_max_abs_z` divided by seeded draws of ``sqrt(chi2_df / df)`` (none when df is inf).
    """
    if corr is None:
        raise InputError("adjust='mvt' needs the correlation matrix of the contrasts (corr=).")
    corr = np.ascontiguousarray(corr, dtype=float)
    draws = _max_abs_z(corr.tobytes(), len(corr))
    if not np.isinf(df):
        chi2 = np.random.default_rng(MVT_SEED).chisquare(df, _MVT_POINTS)
        draws = draws / np.sqrt(chi2 / df)
    return np.sort(draws)


def adjusted_p_values(
    t: np.ndarray,
    df: np.ndarray,
    adjust: str,
    n_means: int | None = None,
    corr: np.ndarray | None = None,
) -> np.ndarray:
    """Two-sided p-values of one family of contrasts, adjusted as emmeans does.

    Parameters
    ----------
    t, df
        t ratios and degrees of freedom (``np.inf`` for z) of the family's contrasts.
    adjust
        One of :data:`ADJUST_METHODS` (aliases resolved).
    n_means
        Number of means compared (``"tukey"`` only: the studentized range's size).
    corr
        Correlation matrix of the contrast estimates (``"mvt"`` only).

    Notes
    -----
    ``tukey``: ``ptukey(sqrt(2) |t|, n_means, df)`` upper tail (emmeans first rounds the df
    of all families with R's ``zapsmall``; :func:`contrasts` does too). ``dunnettx``:
    emmeans' approximation to Dunnett,
    ``1 - .pdunnx(|t|, k, df)``. ``mvt``: ``1 - P(max |T| < |t|)`` for a multivariate t with
    whole df (as mvtnorm takes them), by Monte-Carlo (as mvtnorm, whose error is about 1e-3)
    with the fixed seed :data:`MVT_SEED`. A family of one contrast is not adjusted by these
    three (as emmeans).
    Other methods are statsmodels' ``multipletests`` of the unadjusted p-values.
    """
    from statsmodels.stats.multitest import multipletests

    t = np.asarray(t, dtype=float)
    df = np.broadcast_to(np.asarray(df, dtype=float), t.shape)
    abst = np.abs(t)
    p = 2 * stats.t.sf(abst, df)
    k = len(t)
    if adjust == "none" or (k == 1 and adjust in ("tukey", "dunnettx", "mvt")):
        return p
    if adjust == "tukey":
        return stats.studentized_range.sf(np.sqrt(2) * abst, n_means, df)
    if adjust == "dunnettx":
        return 1 - _pdunnx(abst, k, df)
    if adjust == "mvt":
        out = np.empty(k)
        for i, (a, d) in enumerate(zip(abst, df, strict=True)):
            draws = _max_abs_t(_mvt_df(d), corr)
            out[i] = 1 - np.searchsorted(draws, a) / len(draws)
        return out
    return multipletests(p, method=adjust)[1]


def adjusted_critical_values(
    level: float,
    df: np.ndarray,
    adjust: str,
    n_means: int | None = None,
    corr: np.ndarray | None = None,
) -> np.ndarray:
    """Critical values ``c`` of simultaneous intervals ``estimate +/- c * SE`` (emmeans').

    Parameters as :func:`adjusted_p_values`. ``sidak`` and ``bonferroni`` use t quantiles at
    ``level ** (1/k)`` and ``1 - (1 - level)/k``; the step-wise methods (``holm`` and the
    others), which have no intervals of their own, get Bonferroni's, as in emmeans.
    ``tukey``: ``qtukey(level, n_means, df) / sqrt(2)``. ``dunnettx``: the root of
    ``.pdunnx(c) = level`` (emmeans stops its root search at a tolerance of 5e-4; this one at
    1e-8). ``mvt``: the ``level`` quantile of the Monte-Carlo draws of ``max |T|``.
    """
    df = np.atleast_1d(np.asarray(df, dtype=float))
    k = len(df)
    if k == 1 and adjust in ("tukey", "dunnettx", "mvt"):
        adjust = "none"
    if adjust == "none":
        return stats.t.ppf(0.5 + level / 2, df)
    if adjust == "sidak":
        return stats.t.ppf(0.5 + level ** (1 / k) / 2, df)
    bonferroni = stats.t.ppf(0.5 + (1 - (1 - level) / k) / 2, df)
    if adjust == "tukey":
        return stats.studentized_range.ppf(level, n_means, df) / np.sqrt(2)
    if adjust not in ("dunnettx", "mvt"):
        return bonferroni
    unadjusted = stats.t.ppf(0.5 + level / 2, df)
    out = np.empty(k)
    for i, d in enumerate(df):
        if adjust == "mvt":
            out[i] = np.quantile(_max_abs_t(_mvt_df(d), corr), level)
        else:  # the root lies between the unadjusted and the Bonferroni quantile
            out[i] = optimize.brentq(
                lambda x, d=d: _pdunnx(np.array(x), k, d) - level,
                unadjusted[i],
                bonferroni[i],
                xtol=1e-8,
            )
    return out


def contrasts(
    lp: LinearPredictor,
    specs: str,
    by: str | Sequence[str] | None = None,
    at: Mapping[str, Any] | None = None,
    method: str = "trt.vs.ctrl",
    ref: Any = None,
    adjust: str = "none",
    level: float | None = None,
) -> pd.DataFrame:
    """Contrasts of marginal means, as ``contrast(emmeans(fit, specs, by = by), method)``.

    Parameters
    ----------
    lp
        The model's linear predictor.
    specs
        The factor compared, e.g. ``"arm"``.
    by
        Compare within each level of these variables, e.g. ``"visit"``.
    at
        Covariate values or factor levels for the reference grid, e.g. ``{"week": 24}``.
    method
        ``"trt.vs.ctrl"``: each level minus ``ref`` (default: the first level), emmeans'
        ``trt.vs.ctrl``; ``"pairwise"``: every earlier level minus every later one, as
        emmeans' ``pairwise``.
    ref
        Control level for ``"trt.vs.ctrl"``.
    adjust
        Multiplicity adjustment of p-values and intervals within each ``by`` group, one of
        :data:`ADJUST_METHODS` (see :func:`adjusted_p_values` and
        :func:`adjusted_critical_values`). The default is ``"none"``; emmeans' defaults are
        ``"dunnettx"`` for ``trt.vs.ctrl`` and ``"tukey"`` for ``pairwise``. ``"tukey"`` is for
        pairwise comparisons only (emmeans switches it to ``"sidak"`` otherwise; here that is
        an error).
    level
        Confidence level (default ``lp.level``).
    """
    adjust_key = _ADJUST_ALIASES.get(adjust.lower(), adjust.lower())
    if adjust_key not in ADJUST_METHODS:
        raise InputError(
            f"adjust={adjust!r} is not supported; use one of {', '.join(ADJUST_METHODS)}."
        )
    if method not in ("trt.vs.ctrl", "pairwise"):
        raise InputError(f"method={method!r}: use 'trt.vs.ctrl' or 'pairwise'.")
    if adjust_key == "tukey" and method != "pairwise":
        raise InputError(
            "adjust='tukey' is for method='pairwise' only; use 'dunnettx' or 'mvt' for "
            "comparisons with a control."
        )
    by_l = _as_list(by)
    cells, lmat = cell_means_matrix(lp, [specs], by_l, at)
    level = lp.level if level is None else level
    families = []  # (by key, labels, contrast rows, number of means)
    group_iter = cells.groupby(by_l, sort=False) if by_l else [((), cells)]
    for key, sub in group_iter:
        levels = list(sub[specs])
        rows = sub.index.to_numpy()
        if method == "trt.vs.ctrl":
            ref_level = levels[0] if ref is None else ref
            if ref_level not in levels:
                raise InputError(f"ref={ref!r} is not a level of {specs!r}: {levels}.")
            r = levels.index(ref_level)
            pairs = [(i, r) for i in range(len(levels)) if i != r]
        else:
            pairs = list(itertools.combinations(range(len(levels)), 2))
        lc = np.array([lmat[rows[i]] - lmat[rows[j]] for i, j in pairs])
        labels = [f"{levels[i]} - {levels[j]}" for i, j in pairs]
        keyt = key if isinstance(key, tuple) else (key,)
        families.append((keyt, labels, lc, len(levels)))
    lc_all = np.vstack([f[2] for f in families])
    table = linear_test(lp, lc_all, terms=[lab for f in families for lab in f[1]], level=level)
    est, se = table["estimate"].to_numpy(), table["std_error"].to_numpy()
    df = table["df"].to_numpy()
    df_p = _zapsmall(df)  # emmeans' df for Tukey p-values, rounded over all families at once
    start = 0
    pieces = []
    for keyt, labels, lc, n_means in families:
        idx = slice(start, start + len(labels))
        start += len(labels)
        corr = None
        if adjust_key == "mvt":
            cov = lc @ lp.vcov @ lc.T
            sd = np.sqrt(np.diag(cov))
            corr = cov / np.outer(sd, sd)
        piece = table.iloc[idx].copy()
        if adjust_key != "none":
            tval = piece["statistic"].to_numpy()
            p_df = df_p[idx] if adjust_key == "tukey" and len(labels) > 1 else df[idx]
            piece["p_value"] = adjusted_p_values(tval, p_df, adjust_key, n_means, corr)
            cv = adjusted_critical_values(level, df[idx], adjust_key, n_means, corr)
            piece["conf_low"] = est[idx] - cv * se[idx]
            piece["conf_high"] = est[idx] + cv * se[idx]
        for name, value in zip(by_l, keyt, strict=True):
            piece[name] = pd.Series([value] * len(piece), index=piece.index)
        piece["contrast"] = labels
        piece["adjust"] = adjust_key
        pieces.append(piece)
    out = pd.concat(pieces, ignore_index=True)
    return tidy_frame(out, extra=[*by_l, "contrast", "adjust"])
