"""Satterthwaite degrees of freedom for linear mixed models, computed the way lmerTest does.

lmerTest (Kuznetsova, Brockhoff & Christensen 2017, ``as_lmerModLT`` and
``contest1D.lmerModLmerTest``) works with the variance parameters ``varpar = (*theta, sigma)``:

1. ``H`` = numerical Hessian of the deviance ``-2 log L(varpar)`` (beta profiled out), at the
   optimum; the asymptotic covariance of ``varpar`` is ``A = 2 H^-1`` (over the eigenvalues
   of ``H`` above ``1e-8``);
2. ``J_i = d vcov(beta) / d varpar_i``, a numerical Jacobian;
3. for a contrast ``L``: ``v = L V L'``, ``g_i = L J_i L'`` and ``df = 2 v^2 / (g' A g)``.

The numerical derivatives reproduce numDeriv's Richardson extrapolation (``hessian`` with
relative step ``d = 0.1``, ``jacobian`` with ``d = 1e-4``; 4 steps halved each time), so the
degrees of freedom agree with lmerTest's to well within ``1e-3``. Everything here needs only
``fit.deviance`` and ``fit.vcov_at`` of an :class:`~outcomes.models.lmm.types.LmmFit`, so every
engine shares it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from outcomes.models.lmm.types import LmmFit
from outcomes.models.numderiv import hessian, jacobian

__all__ = ["SatterthwaiteState", "satterthwaite", "satterthwaite_df"]


_EIGEN_TOL = 1e-8


@dataclass(frozen=True)
class SatterthwaiteState:
    """What Satterthwaite's approximation needs, computed once per fit.

    Attributes
    ----------
    vcov_beta
        Covariance of the fixed effects at the optimum.
    vcov_varpar
        ``A = 2 H^-1``, asymptotic covariance of ``varpar`` (generalised inverse over the
        positive eigenvalues of ``H``, as lmerTest).
    jac
        ``d vcov_beta / d varpar``, shape ``(p, p, n_varpar)``.
    hessian_eigenvalues
        Eigenvalues of ``H``: negative or near-zero ones mean the optimum is doubtful.
    """

    vcov_beta: np.ndarray
    vcov_varpar: np.ndarray
    jac: np.ndarray
    hessian_eigenvalues: np.ndarray

    def df(self, contrasts: np.ndarray) -> np.ndarray:
        """Satterthwaite degrees of freedom of each row of ``contrasts`` (shape ``(k, p)``)."""
        lmat = np.atleast_2d(np.asarray(contrasts, dtype=float))
        var = np.einsum("ki,ij,kj->k", lmat, self.vcov_beta, lmat)
        grad = np.einsum("ki,ijm,kj->km", lmat, self.jac, lmat)
        denom = np.einsum("km,mn,kn->k", grad, self.vcov_varpar, grad)
        with np.errstate(divide="ignore", invalid="ignore"):
            return 2 * var**2 / denom


def satterthwaite(fit: LmmFit) -> SatterthwaiteState:
    """Derivatives of the deviance and of ``vcov(beta)`` at the optimum of ``fit``."""
    varpar = fit.varpar
    h = hessian(fit.deviance, varpar, many=fit.deviance_many)
    values, vectors = np.linalg.eigh(h)
    pos = values > _EIGEN_TOL
    h_inv = (vectors[:, pos] / values[pos]) @ vectors[:, pos].T
    jac = jacobian(fit.vcov_at, varpar, many=fit.vcov_many)
    return SatterthwaiteState(
        vcov_beta=np.asarray(fit.vcov_beta),
        vcov_varpar=2 * h_inv,
        jac=jac,
        hessian_eigenvalues=values,
    )


def satterthwaite_df(fit: LmmFit, contrasts: np.ndarray) -> np.ndarray:
    """Satterthwaite degrees of freedom of linear contrasts of the fixed effects of ``fit``.

    Parameters
    ----------
    fit
        A fitted linear mixed model from any engine.
    contrasts
        One contrast per row, shape ``(k, p)`` (or a single vector of length ``p``).

    Returns
    -------
    numpy.ndarray
        ``k`` degrees of freedom, as lmerTest's ``contest(..., ddf = "Satterthwaite")``.
    """
    return satterthwaite(fit).df(contrasts)
