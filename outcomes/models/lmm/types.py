"""The contract between the mixed-model API and its fitting engines.

:mod:`outcomes.models.lmm.fit` builds an :class:`LmmProblem` from a DataFrame and a formula,
hands it to an engine (statsmodels, or the toolkit's own profiled engine in
:mod:`outcomes.models.lmm.engine`), and gets back an :class:`LmmFit`. Everything downstream --
tidy tables, Satterthwaite degrees of freedom, marginal means, diagnostics -- works on the
:class:`LmmFit` alone, so both engines give the same results objects.

Variance parameters follow lme4: for each random term a lower-triangular relative covariance
factor ``Lambda`` (random-effect covariance ``= sigma^2 Lambda Lambda^T``), whose non-zero
elements, taken column by column, make ``theta``; ``varpar = (*theta, sigma)`` is the vector
lmerTest differentiates for Satterthwaite's degrees of freedom.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from outcomes.results import Diagnostic

__all__ = ["LmmFit", "LmmProblem", "RandomTerm"]


@dataclass(frozen=True)
class RandomTerm:
    """One random-effects term ``(z | group)``.

    Attributes
    ----------
    group
        Name of the grouping factor, e.g. ``"subject"`` or ``"subject:unit"`` when nested.
    codes
        Integer code of each row's group, ``0 .. n_groups - 1``.
    levels
        The group labels, indexed by code.
    z
        Random-effects design for this term, shape ``(n, q)``.
    z_names
        Names of the columns of ``z``, e.g. ``["(Intercept)", "week"]``.
    """

    group: str
    codes: np.ndarray
    levels: np.ndarray
    z: np.ndarray
    z_names: tuple[str, ...]

    @property
    def n_groups(self) -> int:
        """Number of groups."""
        return len(self.levels)


@dataclass(frozen=True)
class LmmProblem:
    """A linear mixed model as arrays: ``y = X beta + sum_k Z_k b_k + e``.

    ``terms`` lists random terms outermost first; a later term is nested within an earlier
    one (side within subject; subject within clinic).
    """

    y: np.ndarray
    x: np.ndarray
    x_names: tuple[str, ...]
    terms: tuple[RandomTerm, ...]
    reml: bool = True


@dataclass
class LmmFit:
    """What an engine returns.

    Attributes
    ----------
    engine
        ``"statsmodels"`` or ``"outcomes"``: recorded in every result.
    beta, vcov_beta
        Fixed effects and their covariance at the optimum.
    theta, sigma
        lme4's relative covariance parameters and the residual standard deviation.
    loglik
        Log-likelihood (REML or ML, as fitted), on lme4's scale (``logLik()``).
    deviance
        ``varpar -> -2 log-likelihood`` with beta profiled out, ``varpar = (*theta, sigma)``.
    vcov_at
        ``varpar -> vcov_beta``; with ``deviance`` this is all Satterthwaite needs.
    converged, optimizer, n_evaluations
        How the optimizer ended.
    diagnostics
        Model trouble in plain language (singular fit, retries, non-convergence).
    deviance_many, vcov_many
        Optional: ``deviance`` and ``vcov_at`` at each row of a ``(k, n_varpar)`` array, in
        one batch (faster numerical derivatives); ``None`` when the engine has none.
    refit
        ``y -> LmmFit``: the same model fitted to another response (same rows), reusing what
        does not depend on the response when the engine can.
    """

    engine: str
    problem: LmmProblem
    beta: np.ndarray
    vcov_beta: np.ndarray
    theta: np.ndarray
    sigma: float
    loglik: float
    deviance: Callable[[np.ndarray], float]
    vcov_at: Callable[[np.ndarray], np.ndarray]
    converged: bool
    optimizer: str
    n_evaluations: int = 0
    diagnostics: list[Diagnostic] = field(default_factory=list)
    deviance_many: Callable[[np.ndarray], np.ndarray] | None = None
    vcov_many: Callable[[np.ndarray], np.ndarray] | None = None
    refit: Callable[[np.ndarray], LmmFit] | None = None

    @property
    def varpar(self) -> np.ndarray:
        """``(*theta, sigma)``, the variance parameters Satterthwaite differentiates."""
        return np.append(self.theta, self.sigma)
