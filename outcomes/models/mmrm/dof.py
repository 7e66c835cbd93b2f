"""Covariance of the fixed effects and denominator degrees of freedom of an MMRM.

All pieces are sums over per-subject blocks, computed pattern by pattern in whitened form
(``Xw = L^-1 X`` with ``V = L L'``), so nothing here builds an ``n x n`` matrix.

Methods
-------
``kenward-roger``
    Kenward & Roger (1997) as SAS PROC MIXED ``DDFM=KENWARDROGER``: the adjusted covariance
    ``Phi_A = Phi + 2 Phi [sum_kl W_kl (Q_kl - P_k Phi P_l - R_kl / 4)] Phi`` in SAS's
    covariance parameters (:mod:`outcomes.models.mmrm.covariance`), ``W`` the inverse observed
    information of those parameters; the degrees of freedom use the unadjusted ``Phi``
    (as SAS and R's mmrm). For ``us``, ``toep`` and ``cs`` the covariance is linear in SAS's
    parameters, so ``R = 0`` and this equals the linear variant.
``kenward-roger-linear``
    The same without the second-derivative term ``R`` (SAS ``DDFM=KR(FIRSTORDER)``).
``satterthwaite``
    ``2 (l Phi l')^2 / (g' W g)`` with ``g_k = l (d Phi / d theta_k) l'`` (SAS
    ``DDFM=SATTERTHWAITE``); ``F`` tests as lmerTest / mmrm (eigen-decomposition of the
    contrast covariance).
``between-within``
    SAS ``DDFM=BW``: a contrast touching only columns constant within every block gets
    ``n_blocks - rank(X_between)``, else ``N - n_blocks - rank(X_within)``.
``residual``
    ``N - rank(X)``.

``vcov="empirical"`` replaces ``Phi`` by the sandwich ``Phi (sum_i X_i' V_i^-1 r_i r_i' V_i^-1
X_i) Phi`` (SAS ``EMPIRICAL``, no small-sample correction); it goes with ``between-within``
or ``residual`` degrees of freedom.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from outcomes.errors import InputError
from outcomes.models.mmrm.likelihood import Likelihood

__all__ = ["DDF_METHODS", "Inference", "build_inference"]

DDF_METHODS = (
    "kenward-roger",
    "kenward-roger-linear",
    "satterthwaite",
    "between-within",
    "residual",
)


@dataclass
class Inference:
    """The fixed-effects covariance and degrees of freedom of one fit.

    Attributes
    ----------
    method
        One of :data:`DDF_METHODS`.
    beta
        GLS estimates of the fixed effects at the covariance estimate.
    phi
        Model-based ``(X' V^-1 X)^-1``.
    vcov
        The covariance used for standard errors (adjusted for Kenward-Roger, sandwich for
        ``empirical``).
    w
        Covariance of the covariance-parameter estimates (``2 H^-1``, ``H`` the Hessian of the
        deviance); empty for ``between-within`` and ``residual``.
    p_list
        ``P_k = -X' V^-1 dV_k V^-1 X``, one per covariance parameter (``(k, p, p)``).
    """

    method: str
    beta: np.ndarray
    phi: np.ndarray
    vcov: np.ndarray
    w: np.ndarray
    p_list: np.ndarray
    between: np.ndarray
    df_between: float
    df_within: float
    df_residual: float

    def _sat_grad(self, lvec: np.ndarray) -> np.ndarray:
        # d (l Phi l') / d theta_k = -l Phi P_k Phi l'
        u = self.phi @ lvec
        return -np.einsum("i,kij,j->k", u, self.p_list, u)

    def df(self, contrasts: np.ndarray) -> np.ndarray:
        """Denominator degrees of freedom of each single-row contrast."""
        out = []
        for lvec in np.atleast_2d(contrasts):
            if self.method in ("kenward-roger", "kenward-roger-linear"):
                out.append(self._kr_df(lvec[None, :])[0])
            elif self.method == "satterthwaite":
                g = self._sat_grad(lvec)
                var = float(lvec @ self.phi @ lvec)
                out.append(2 * var**2 / float(g @ self.w @ g))
            elif self.method == "between-within":
                out.append(self._bw(lvec[None, :]))
            else:
                out.append(self.df_residual)
        return np.array(out, dtype=float)

    def _bw(self, lmat: np.ndarray) -> float:
        touches_within = np.any(np.abs(lmat[:, ~self.between]) > 0)
        return self.df_within if touches_within else self.df_between

    def _kr_df(self, lmat: np.ndarray) -> tuple[float, float]:
        """Kenward-Roger's ``(m, lambda)`` for contrast rows ``lmat`` (rank ``q``)."""
        q = np.linalg.matrix_rank(lmat)
        theta = lmat.T @ np.linalg.solve(lmat @ self.phi @ lmat.T, lmat)
        tp = theta @ self.phi
        u = tp @ self.p_list @ self.phi
        tr = np.einsum("kii->k", u)
        a1 = float(tr @ self.w @ tr)
        a2 = float(np.einsum("kl,kij,lji->", self.w, u, u, optimize=True))
        b = (a1 + 6 * a2) / (2 * q)
        g = ((q + 1) * a1 - (q + 4) * a2) / ((q + 2) * a2)
        den = 3 * q + 2 * (1 - g)
        c1, c2, c3 = g / den, (q - g) / den, (q + 2 - g) / den
        e_star = 1 / (1 - a2 / q)
        v_star = 2 / q * (1 + c1 * b) / ((1 - c2 * b) ** 2 * (1 - c3 * b))
        rho = v_star / (2 * e_star**2)
        m = 4 + (q + 2) / (q * rho - 1)
        lam = m / (e_star * (m - 2))
        return float(m), float(lam)

    def f_test(self, lmat: np.ndarray, beta: np.ndarray) -> dict[str, float]:
        """Joint test of ``lmat beta = 0``: ``num_df``, ``den_df``, ``f_statistic``, ``p_value``."""
        lmat = np.atleast_2d(lmat)
        q = int(np.linalg.matrix_rank(lmat))
        est = lmat @ beta
        fstat = float(est @ np.linalg.solve(lmat @ self.vcov @ lmat.T, est)) / q
        if self.method in ("kenward-roger", "kenward-roger-linear"):
            den, lam = self._kr_df(lmat)
            fstat *= lam
        elif self.method == "satterthwaite":
            _, vecs = np.linalg.eigh(lmat @ self.phi @ lmat.T)
            rows = vecs.T @ lmat
            nu = np.array([self.df(r[None, :])[0] for r in rows])
            e_sum = float(np.sum(nu[nu > 2] / (nu[nu > 2] - 2)))
            den = (
                2.0
                if np.any(nu <= 2)
                else (float(np.mean(nu)) if np.ptp(nu) < 1e-8 else 2 * e_sum / (e_sum - q))
            )
        elif self.method == "between-within":
            den = self._bw(lmat)
        else:
            den = self.df_residual
        return {
            "num_df": float(q),
            "den_df": float(den),
            "f_statistic": fstat,
            "p_value": float(stats.f.sf(fstat, q, den)),
        }


def _pattern_dcov(lik: Likelihood, dsig: list[np.ndarray], cls: Any) -> np.ndarray:
    """``dV / dtheta`` of every pattern of a size class, shape ``(P, k, s, s)``."""
    v = cls.visits
    size = v.shape[1]
    out = np.zeros((len(v), lik.n_params, size, size))
    offsets = np.concatenate([[0], np.cumsum(lik.sizes)])
    for g, d in enumerate(dsig):
        in_g = (cls.groups == g)[:, :, None] & (cls.groups == g)[:, None, :] & cls.same_unit
        block = d[:, v[:, :, None], v[:, None, :]]  # (k_g, P, s, s)
        out[:, offsets[g] : offsets[g] + len(d)] = np.moveaxis(block, 0, 1) * in_g[:, None]
    if lik.layout.nested:
        out[:, -1] = 1.0
    return out


def _second_derivatives(lik: Likelihood, theta: np.ndarray, w: np.ndarray) -> list[np.ndarray]:
    """``sum_kl W_kl d^2 Sigma_g / d theta_k d theta_l`` for each group (zero when linear)."""
    m = lik.layout.n_visits
    out = []
    offsets = np.concatenate([[0], np.cumsum(lik.sizes)])
    for g in range(lik.layout.n_groups):
        if lik.structure.linear:
            out.append(np.zeros((m, m)))
            continue
        sl = slice(offsets[g], offsets[g + 1])
        acc = np.zeros((m, m))
        for j in range(offsets[g], offsets[g + 1]):
            h = 1e-6 * max(1.0, abs(theta[j]))
            up, down = theta.copy(), theta.copy()
            up[j] += h
            down[j] -= h
            d2 = (lik.sigma_derivatives(up)[g] - lik.sigma_derivatives(down)[g]) / (2 * h)
            acc += np.einsum("k,kij->ij", w[sl, j], d2)
        out.append(acc)
    return out


def _between_columns(lik: Likelihood) -> np.ndarray:
    """Columns of ``X`` constant within every block."""
    x = lik.layout.x
    block = lik.layout.block_of_row
    order = np.argsort(block, kind="stable")
    xs, bs = x[order], block[order]
    first = np.concatenate([[True], bs[1:] != bs[:-1]])
    starts = np.cumsum(first) - 1
    return np.all(np.isclose(xs, xs[first][starts]), axis=0)


def build_inference(
    lik: Likelihood,
    theta: np.ndarray,
    method: str,
    empirical: bool,
    hessian: np.ndarray | None,
) -> Inference:
    """Everything the tests of fixed effects need, at the optimum ``theta``."""
    wt = lik.whiten(theta)
    if wt is None:
        raise InputError("The covariance at the estimate is not positive definite.")
    phi = wt["phi"]
    x = lik.layout.x
    n, p = x.shape
    n_blocks = lik.layout.n_blocks
    between = _between_columns(lik)
    rank_b = np.linalg.matrix_rank(x[:, between]) if between.any() else 0
    rank_w = np.linalg.matrix_rank(x) - rank_b
    k = lik.n_params
    w = np.zeros((k, k))
    p_list = np.zeros((k, p, p))
    vcov = phi
    needs_w = method in ("kenward-roger", "kenward-roger-linear", "satterthwaite")
    if needs_w:
        if hessian is None:
            hessian = lik.hessian(theta)
        w = 2 * np.linalg.pinv(hessian) if np.all(np.isfinite(hessian)) else w * np.nan
    meat = np.zeros((p, p))
    qw = np.zeros((p, p))  # sum_kl W_kl (Q_kl - R_kl / 4)
    dsig = lik.sigma_derivatives(theta) if needs_w else []
    d2 = (
        _second_derivatives(lik, theta, w)
        if method == "kenward-roger" and needs_w
        else [np.zeros((lik.layout.n_visits,) * 2)] * lik.layout.n_groups
    )
    for cls, (linv, xw, yw) in zip(lik.layout.classes, wt["parts"], strict=True):
        if empirical:
            rw = yw - xw @ wt["beta"]
            score = np.einsum("nip,ni->np", xw, rw)
            meat += score.T @ score
        if not needs_w:
            continue
        size = linv.shape[1]
        # T[pattern] = sum over its blocks of xw_n (x) xw_n, shape (s, p, s, p)
        flat = xw.reshape(len(xw), size * p)
        t = np.array(
            [
                (flat[a : a + c].T @ flat[a : a + c]).reshape(size, p, size, p)
                for a, c in zip(cls.starts, cls.counts, strict=True)
            ]
        )
        n_pat, k = len(t), lik.n_params
        # (pattern, a, b) rows against (q, r) columns, so the sums below are matrix products
        t2 = t.transpose(0, 1, 3, 2, 4).reshape(n_pat * size * size, p * p)
        dv = _pattern_dcov(lik, dsig, cls)
        e = linv[:, None] @ dv @ linv.transpose(0, 2, 1)[:, None]
        e2 = e.transpose(1, 0, 2, 3).reshape(k, n_pat * size * size)
        p_list -= (e2 @ t2).reshape(k, p, p)
        if method.startswith("kenward-roger"):
            ew = np.tensordot(w, e, axes=(1, 1)).transpose(1, 0, 2, 3)
            ee = (e @ ew).sum(axis=1)
            v = cls.visits
            d2v = np.asarray(d2)[cls.groups[:, :, None], v[:, :, None], v[:, None, :]]
            r = linv @ (d2v * cls.same_unit) @ linv.transpose(0, 2, 1)
            qw += ((ee - 0.25 * r).reshape(-1) @ t2).reshape(p, p)
    if method.startswith("kenward-roger"):
        pw = np.tensordot(w, p_list, axes=(1, 0))  # sum_l W_kl P_l
        pwp = (p_list @ phi @ pw).sum(axis=0)
        u = qw - pwp
        vcov = phi + 2 * phi @ u @ phi
    if empirical:
        vcov = phi @ meat @ phi
    return Inference(
        method=method,
        beta=wt["beta"],
        phi=phi,
        vcov=0.5 * (vcov + vcov.T),
        w=w,
        p_list=p_list,
        between=between,
        df_between=float(n_blocks - rank_b),
        df_within=float(n - n_blocks - rank_w),
        df_residual=float(n - np.linalg.matrix_rank(x)),
    )
