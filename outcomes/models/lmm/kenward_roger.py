"""Kenward-Roger adjusted covariance and degrees of freedom, as pbkrtest computes them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from outcomes.errors import InputError
from outcomes.models.lmm.types import LmmFit, LmmProblem

__all__ = ["KenwardRogerState", "kenward_roger"]


# --------------------------------------------------------------------------------------------
# Kenward-Roger
# --------------------------------------------------------------------------------------------

KR_MAX_ROWS = 2500


@dataclass(frozen=True)
class KenwardRogerState:
    """Kenward-Roger's adjusted covariance and the pieces its degrees of freedom need.

    Follows pbkrtest (``vcovAdj`` and ``Lb_ddf``, Halekoh & Hojsgaard 2014): the marginal
    covariance ``Sigma = sum_r gamma_r G_r`` is linear in the variance and covariance
    components and the residual variance; ``P_r = -X' Sigma^-1 G_r Sigma^-1 X``,
    ``W = 2 (information)^-1`` (expected REML information), and the adjusted covariance is
    ``Phi_A = Phi + 2 Phi U Phi``. Dense ``n x n`` matrices: at most
    :data:`KR_MAX_ROWS` rows.
    """

    vcov: np.ndarray
    phi: np.ndarray
    p_list: tuple[np.ndarray, ...]
    w: np.ndarray

    def df(self, contrasts: np.ndarray) -> np.ndarray:
        """Kenward-Roger denominator degrees of freedom of each single-row contrast."""
        out = []
        m = len(self.p_list)
        for lvec in np.atleast_2d(np.asarray(contrasts, dtype=float)):
            lrow = lvec[None, :]
            theta = lrow.T @ np.linalg.solve(lrow @ self.phi @ lrow.T, lrow)
            tv = theta @ self.phi
            u = [tv @ p @ self.phi for p in self.p_list]
            a1 = a2 = 0.0
            for r in range(m):
                for s in range(r, m):
                    e = 1.0 if r == s else 2.0
                    a1 += e * self.w[r, s] * np.trace(u[r]) * np.trace(u[s])
                    a2 += e * self.w[r, s] * float(np.sum(u[r] * u[s].T))
            q = 1.0
            b = (a1 + 6 * a2) / (2 * q)
            g = ((q + 1) * a1 - (q + 4) * a2) / ((q + 2) * a2)
            den = 3 * q + 2 * (1 - g)
            c1, c2, c3 = g / den, (q - g) / den, (q + 2 - g) / den
            v0, v1, v2 = 1 + c1 * b, 1 - c2 * b, 1 - c3 * b
            rho = ((1 - a2 / q) / v1) ** 2 * v0 / v2 / q
            out.append(4 + (q + 2) / (q * rho - 1))
        return np.array(out)


def kenward_roger(fit: LmmFit) -> KenwardRogerState:
    """Kenward-Roger adjusted covariance of the fixed effects of a REML fit (pbkrtest's)."""
    problem = fit.problem
    n = len(problem.y)
    if not problem.reml:
        raise InputError("Kenward-Roger degrees of freedom need a REML fit (reml=True).")
    if n > KR_MAX_ROWS:
        raise InputError(
            f"Kenward-Roger works on dense {n} x {n} matrices; it is limited to "
            f"{KR_MAX_ROWS} rows here. Use ddf='satterthwaite'."
        )
    x = problem.x
    sigma2 = fit.sigma**2
    g_list: list[np.ndarray] = []
    gamma: list[float] = []
    for term, lam in zip(problem.terms, _lambdas(fit.theta, problem), strict=True):
        cov = sigma2 * lam @ lam.T
        same = term.codes[:, None] == term.codes[None, :]
        q = term.z.shape[1]
        for j in range(q):
            for i in range(j, q):
                g = np.outer(term.z[:, i], term.z[:, j])
                if i != j:
                    g = g + g.T
                g_list.append(same * g)
                gamma.append(cov[i, j])
    g_list.append(np.eye(n))
    gamma.append(sigma2)
    sigma = sum(v * g for v, g in zip(gamma, g_list, strict=True))
    sigma_inv = np.linalg.inv(sigma)
    phi = np.linalg.inv(x.T @ sigma_inv @ x)
    tt = sigma_inv @ x
    hh = [g @ sigma_inv for g in g_list]
    oo = [h @ x for h in hh]
    pp = [-(o.T @ tt) for o in oo]
    m = len(g_list)
    qq = {(r, s): oo[r].T @ sigma_inv @ oo[s] for r in range(m) for s in range(r, m)}
    info = np.empty((m, m))
    for r in range(m):
        for s in range(r, m):
            info[r, s] = info[s, r] = (
                np.sum(hh[r].T * hh[s])
                - 2 * np.sum(phi * qq[r, s])
                + np.sum((phi @ pp[r]) * (pp[s] @ phi))
            )
    w = 2 * np.linalg.pinv(info)
    u = np.zeros_like(phi)
    for r in range(m):
        for s in range(r, m):
            piece = w[r, s] * (qq[r, s] - pp[r] @ phi @ pp[s])
            u += piece if r == s else piece + piece.T
    return KenwardRogerState(vcov=phi + 2 * phi @ u @ phi, phi=phi, p_list=tuple(pp), w=w)


def _lambdas(theta: np.ndarray, problem: LmmProblem) -> list[np.ndarray]:
    """``Lambda_k`` of each term from ``theta`` (column-wise lower triangles, lme4's order)."""
    out = []
    at = 0
    for term in problem.terms:
        q = term.z.shape[1]
        rows, cols = np.tril_indices(q)
        order = np.lexsort((rows, cols))
        lam = np.zeros((q, q))
        size = q * (q + 1) // 2
        lam[rows[order], cols[order]] = theta[at : at + size]
        at += size
        out.append(lam)
    return out
