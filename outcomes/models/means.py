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
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import patsy
from scipy import stats

from outcomes.errors import InputError
from outcomes.results import tidy_frame

__all__ = ["ADJUST_METHODS", "LinearPredictor", "contrasts", "emmeans", "linear_test"]

#: Multiplicity adjustments of :func:`contrasts` (statsmodels ``multipletests`` names, and
#: emmeans' ``"BH"``/``"fdr"`` spelled as aliases of ``"fdr_bh"``).
ADJUST_METHODS = ("none", "bonferroni", "sidak", "holm", "holm-sidak", "hochberg", "fdr_bh")
_ADJUST_ALIASES = {"bh": "fdr_bh", "fdr": "fdr_bh", "fdr_bh": "fdr_bh"}


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


def _linfct(
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

    Returns
    -------
    pandas.DataFrame
        Tidy columns (``term`` labels the cell) followed by the ``by`` and ``specs`` columns.
    """
    specs_l = _as_list(specs)
    by_l = _as_list(by)
    cells, lmat = _linfct(lp, specs_l, by_l, at)
    labels = [", ".join(f"{k}={row[k]}" for k in [*by_l, *specs_l]) for _, row in cells.iterrows()]
    table = linear_test(lp, lmat, terms=labels, level=level)
    for k in [*by_l, *specs_l]:
        table[k] = cells[k].to_numpy()
    return tidy_frame(table, extra=[*by_l, *specs_l])


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
        Multiplicity adjustment of p-values within each ``by`` group: one of
        :data:`ADJUST_METHODS`. Confidence intervals are Sidak-adjusted for ``"sidak"`` and
        Bonferroni-adjusted for every other method (as emmeans does for ``"holm"``, which
        has no intervals of its own). emmeans' default for ``trt.vs.ctrl`` is
        ``"dunnettx"`` (and ``"tukey"`` for pairwise): those are not implemented, so pass
        ``adjust="none"`` or ``"bonferroni"`` in both to compare.
    level
        Confidence level (default ``lp.level``).
    """
    from statsmodels.stats.multitest import multipletests

    adjust_key = _ADJUST_ALIASES.get(adjust.lower(), adjust.lower())
    if adjust_key not in ADJUST_METHODS:
        raise InputError(
            f"adjust={adjust!r} is not supported; use one of {', '.join(ADJUST_METHODS)} "
            "(emmeans' dunnettx, tukey and mvt adjustments are not implemented)."
        )
    if method not in ("trt.vs.ctrl", "pairwise"):
        raise InputError(f"method={method!r}: use 'trt.vs.ctrl' or 'pairwise'.")
    by_l = _as_list(by)
    cells, lmat = _linfct(lp, [specs], by_l, at)
    level = lp.level if level is None else level
    tables = []
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
        k = len(pairs)
        if adjust_key == "none":
            ci_level = level
        elif adjust_key == "sidak":
            ci_level = level ** (1 / k)
        else:  # bonferroni; and, as emmeans, for step-wise methods that have no intervals
            ci_level = 1 - (1 - level) / k
        table = linear_test(lp, lc, terms=labels, level=ci_level)
        if adjust_key != "none":
            table["p_value"] = multipletests(table["p_value"], method=adjust_key)[1]
        keyt = key if isinstance(key, tuple) else (key,)
        for name, value in zip(by_l, keyt, strict=True):
            table[name] = pd.Series([value] * len(table), index=table.index)
        table["contrast"] = labels
        table["adjust"] = adjust_key
        tables.append(table)
    out = pd.concat(tables, ignore_index=True)
    return tidy_frame(out, extra=[*by_l, "contrast", "adjust"])
