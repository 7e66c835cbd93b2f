"""Conditional modes (BLUPs), fitted values and residuals of a linear mixed model.

:func:`conditional_modes` gives lme4's ``ranef(fit)``; :func:`fitted_residuals` gives
``fitted(fit)`` and ``residuals(fit)`` (conditional on the random effects). Both are computed
from the fit's variance parameters as ``b = G Z' V^{-1} (y - X beta)`` with
``V = Z G Z' + sigma^2 I``, which equals lme4's penalised least-squares solution at the same
estimates (checked in ``tests/test_lmm_random_effects.py`` against ``tests/r/mixed/ranef.R``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from outcomes.models.lmm.kenward_roger import _lambdas
from outcomes.models.lmm.types import LmmFit

__all__ = ["conditional_modes", "fitted_residuals"]


def _solve(fit: LmmFit) -> tuple[list[np.ndarray], np.ndarray]:
    """Each term's conditional modes (groups x columns) and the fitted values."""
    problem = fit.problem
    lams = _lambdas(fit.theta, problem)
    blocks, covs = [], []
    for term, lam in zip(problem.terms, lams, strict=True):
        n_groups, q = len(term.levels), term.z.shape[1]
        z = np.zeros((len(problem.y), n_groups * q))
        for j in range(q):
            z[np.arange(len(problem.y)), term.codes * q + j] = term.z[:, j]
        blocks.append(z)
        covs.append(np.kron(np.eye(n_groups), fit.sigma**2 * lam @ lam.T))
    z_all = np.hstack(blocks)
    g = np.zeros((z_all.shape[1], z_all.shape[1]))
    at = 0
    for c in covs:
        g[at : at + len(c), at : at + len(c)] = c
        at += len(c)
    v = z_all @ g @ z_all.T + fit.sigma**2 * np.eye(len(problem.y))
    marginal = problem.x @ fit.beta
    b = g @ z_all.T @ np.linalg.solve(v, problem.y - marginal)
    out, at = [], 0
    for term in problem.terms:
        size = len(term.levels) * term.z.shape[1]
        out.append(b[at : at + size].reshape(len(term.levels), term.z.shape[1]))
        at += size
    return out, marginal + z_all @ b


def conditional_modes(fit: LmmFit) -> pd.DataFrame:
    """The random effects' conditional modes, one row per group level and effect.

    Returns
    -------
    pandas.DataFrame
        ``group`` (e.g. ``"subject_id"`` or ``"subject_id:unit_id"``), ``level``, ``effect``
        (``"Intercept"``, ``"week"``, ...) and ``estimate``, as lme4's ``ranef(fit)``.
    """
    modes, _ = _solve(fit)
    rows = []
    for term, b in zip(fit.problem.terms, modes, strict=True):
        for j, name in enumerate(term.z_names):
            rows.append(
                pd.DataFrame(
                    {"group": term.group, "level": term.levels, "effect": name, "estimate": b[:, j]}
                )
            )
    return pd.concat(rows, ignore_index=True)


def fitted_residuals(fit: LmmFit) -> pd.DataFrame:
    """Fitted values (fixed plus random effects) and conditional residuals, in data order."""
    _, fitted = _solve(fit)
    return pd.DataFrame({"fitted": fitted, "residual": fit.problem.y - fitted})
