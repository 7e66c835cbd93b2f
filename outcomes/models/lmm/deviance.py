"""lme4's profiled deviance in NumPy, used to refine the statsmodels optimum."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize

from outcomes.errors import InputError
from outcomes.models.lmm.types import LmmProblem
from outcomes.models.numderiv import hessian, jacobian

__all__ = ["ProfiledDeviance"]


SINGULAR_TOL = 1e-4


# --------------------------------------------------------------------------------------------
# lme4's profiled deviance for nested problems
# --------------------------------------------------------------------------------------------


@dataclass
class _Bucket:
    """Top-level groups with the same block layout, processed together."""

    comp: tuple[int, ...]
    size: int
    ztz: np.ndarray
    ztx: np.ndarray
    zty: np.ndarray


class ProfiledDeviance:
    """lme4's penalised least squares for a nested :class:`LmmProblem`, in NumPy.

    Random effects of nested terms live inside the blocks of the outermost grouping factor, so
    ``Lambda' Z' Z Lambda + I`` is block diagonal by outermost group; the blocks are
    accumulated once as sufficient statistics and factorised in batches.

    Parameters
    ----------
    problem
        Terms must be nested: every group of a later term lies within one group of the first.

    Notes
    -----
    For ``theta``: ``L L' = Lambda' Z' Z Lambda + I``, ``R_X' R_X`` the Schur complement of
    ``X' X``, ``pwrss`` the penalised residual sum of squares. The deviance with ``sigma``
    profiled out is (Bates et al. 2015, eq. 34 and 41)

    * ML: ``log|L|^2 + n (1 + log(2 pi pwrss / n))``
    * REML: ``log|L|^2 + log|R_X|^2 + (n - p)(1 + log(2 pi pwrss / (n - p)))``

    and at a given ``sigma`` (lmerTest's ``devfun_vp``):
    ``log|L|^2 + pwrss / sigma^2 + n log(2 pi sigma^2)``, plus
    ``log|R_X|^2 - p log(2 pi sigma^2)`` for REML.
    """

    def __init__(self, problem: LmmProblem) -> None:
        self.problem = problem
        x, terms = np.asarray(problem.x, dtype=float), problem.terms
        # Work on the least-squares residual of y (as the default engine does): the criterion
        # sees y only through its residual from the span of X, and y'y would otherwise be
        # orders of magnitude larger than pwrss, so its rounding would swamp the optimum.
        self.shift = np.linalg.lstsq(x, np.asarray(problem.y, dtype=float), rcond=None)[0]
        y = np.asarray(problem.y, dtype=float) - x @ self.shift
        self.n, self.p = x.shape
        self.reml = problem.reml
        self.qs = [t.z.shape[1] for t in terms]
        top = terms[0].codes
        n_top = terms[0].n_groups
        # theta layout and bounds: lme4 stores each Lambda's lower triangle column by column
        self._tril = []
        self._theta_slices = []
        start = 0
        lower: list[float] = []
        for q in self.qs:
            rows, cols = np.tril_indices(q)
            order = np.lexsort((rows, cols))
            rows, cols = rows[order], cols[order]
            self._tril.append((rows, cols))
            self._theta_slices.append(slice(start, start + len(rows)))
            start += len(rows)
            lower.extend(0.0 if r == c else -np.inf for r, c in zip(rows, cols, strict=True))
        self.n_theta = start
        self.lower = np.array(lower)
        # nesting: each group of a later term must sit in a single top-level group
        local = []
        counts = np.zeros((n_top, len(terms)), dtype=np.intp)
        counts[:, 0] = 1
        for k, term in enumerate(terms[1:], start=1):
            pairs = np.unique(np.column_stack([term.codes, top]), axis=0)
            if len(pairs) != term.n_groups:
                raise InputError(
                    f"Groups of {term.group!r} cross groups of {terms[0].group!r}: only nested "
                    "random effects are supported."
                )
            top_of = np.empty(term.n_groups, dtype=np.intp)
            top_of[pairs[:, 0]] = pairs[:, 1]
            # rank of each group within its top-level group
            order = np.lexsort((np.arange(term.n_groups), top_of))
            rank = np.empty(term.n_groups, dtype=np.intp)
            first = np.searchsorted(top_of[order], top_of[order], side="left")
            rank[order] = np.arange(term.n_groups) - first
            counts[:, k] = np.bincount(top_of, minlength=n_top)
            local.append(rank[term.codes])
        # column offsets of each row's effects inside its block
        offsets = np.zeros((n_top, len(terms)), dtype=np.intp)
        for k in range(1, len(terms)):
            offsets[:, k] = offsets[:, k - 1] + counts[:, k - 1] * self.qs[k - 1]
        idx_parts = [np.arange(self.qs[0])[None, :].repeat(self.n, 0)]
        for k in range(1, len(terms)):
            base = offsets[top, k] + local[k - 1] * self.qs[k]
            idx_parts.append(base[:, None] + np.arange(self.qs[k])[None, :])
        idx = np.hstack(idx_parts)
        val = np.hstack([t.z for t in terms])
        comps = [tuple(row) for row in counts[:, 1:]]
        comp_codes, comp_levels = pd.factorize(pd.Series(comps, dtype=object))
        self.buckets: list[_Bucket] = []
        for b, comp in enumerate(comp_levels):
            groups_in = np.flatnonzero(comp_codes == b)
            pos = np.full(n_top, -1, dtype=np.intp)
            pos[groups_in] = np.arange(len(groups_in))
            rows = np.flatnonzero(pos[top] >= 0)
            m = self.qs[0] + sum(c * q for c, q in zip(comp, self.qs[1:], strict=True))
            nb = len(groups_in)
            pr, ir, vr = pos[top[rows]], idx[rows], val[rows]
            flat = (pr[:, None, None] * m + ir[:, :, None]) * m + ir[:, None, :]
            ztz = np.bincount(
                flat.ravel(), (vr[:, :, None] * vr[:, None, :]).ravel(), minlength=nb * m * m
            ).reshape(nb, m, m)
            flat = (pr[:, None, None] * m + ir[:, :, None]) * self.p + np.arange(self.p)
            ztx = np.bincount(
                flat.ravel(),
                (vr[:, :, None] * x[rows][:, None, :]).ravel(),
                minlength=nb * m * self.p,
            ).reshape(nb, m, self.p)
            flat = pr[:, None] * m + ir
            zty = np.bincount(flat.ravel(), (vr * y[rows, None]).ravel(), minlength=nb * m).reshape(
                nb, m
            )
            self.buckets.append(_Bucket(tuple(comp), m, ztz, ztx, zty))
        self.xtx = x.T @ x
        self.xty = x.T @ y
        self.yty = float(y @ y)

    # -- parametrisation --------------------------------------------------------------------

    def lambdas(self, theta: np.ndarray) -> list[np.ndarray]:
        """The relative covariance factor ``Lambda_k`` of each term."""
        out = []
        for q, sl, (rows, cols) in zip(self.qs, self._theta_slices, self._tril, strict=True):
            lam = np.zeros((q, q))
            lam[rows, cols] = theta[sl]
            out.append(lam)
        return out

    def theta_from_covariances(self, covs: Sequence[np.ndarray], scale: float) -> np.ndarray:
        """``theta`` from random-effect covariances and the residual variance."""
        theta = np.empty(self.n_theta)
        for cov, sl, (rows, cols) in zip(covs, self._theta_slices, self._tril, strict=True):
            rel = np.atleast_2d(cov) / scale
            values, vectors = np.linalg.eigh((rel + rel.T) / 2)
            rel = (vectors * np.clip(values, 1e-10, None)) @ vectors.T
            theta[sl] = np.linalg.cholesky(rel)[rows, cols]
        return theta

    def _block_lambda(self, lams: list[np.ndarray], comp: tuple[int, ...], size: int) -> np.ndarray:
        lam = np.zeros((size, size))
        q0 = self.qs[0]
        lam[:q0, :q0] = lams[0]
        at = q0
        for k, count in enumerate(comp, start=1):
            q = self.qs[k]
            for _ in range(count):
                lam[at : at + q, at : at + q] = lams[k]
                at += q
        return lam

    # -- penalised least squares --------------------------------------------------------------

    def pls(self, theta: np.ndarray) -> dict[str, Any]:
        """Solve the penalised least squares problem at ``theta``.

        Returns
        -------
        dict
            ``beta``, ``pwrss``, ``ldL2`` (``log|L|^2``), ``ldRX2`` (``log|R_X|^2``) and
            ``rxtrx`` (``R_X' R_X``; ``vcov(beta) = sigma^2 (R_X' R_X)^-1``).
        """
        lams = self.lambdas(np.asarray(theta, dtype=float))
        ctc = np.zeros((self.p, self.p))
        ctcy = np.zeros(self.p)
        cc = 0.0
        ld_l2 = 0.0
        for bucket in self.buckets:
            lam = self._block_lambda(lams, bucket.comp, bucket.size)
            a = np.einsum("ji,bjk,kl->bil", lam, bucket.ztz, lam)
            a += np.eye(bucket.size)
            chol = np.linalg.cholesky(a)
            ld_l2 += 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum()
            rhs = np.concatenate(
                [np.einsum("ji,bjk->bik", lam, bucket.ztx), (bucket.zty @ lam)[:, :, None]], axis=2
            )
            sol = np.linalg.solve(chol, rhs)
            c_x, c_y = sol[:, :, : self.p], sol[:, :, self.p]
            ctc += np.einsum("bip,biq->pq", c_x, c_x)
            ctcy += np.einsum("bip,bi->p", c_x, c_y)
            cc += float(np.einsum("bi,bi->", c_y, c_y))
        rxtrx = self.xtx - ctc
        rhs_x = self.xty - ctcy
        chol_x = np.linalg.cholesky(rxtrx)
        beta = np.linalg.solve(rxtrx, rhs_x)
        pwrss = self.yty - cc - float(rhs_x @ beta)
        return {
            "beta": beta + self.shift,
            "pwrss": pwrss,
            "ldL2": ld_l2,
            "ldRX2": 2.0 * np.log(np.diag(chol_x)).sum(),
            "rxtrx": rxtrx,
        }

    def objective(self, theta: np.ndarray) -> float:
        """Deviance with ``sigma`` profiled out (lme4's optimisation criterion)."""
        try:
            s = self.pls(theta)
        except np.linalg.LinAlgError:
            return np.inf
        if s["pwrss"] <= 0:
            return np.inf
        if self.reml:
            dof = self.n - self.p
            return s["ldL2"] + s["ldRX2"] + dof * (1 + np.log(2 * np.pi * s["pwrss"] / dof))
        return s["ldL2"] + self.n * (1 + np.log(2 * np.pi * s["pwrss"] / self.n))

    def sigma(self, theta: np.ndarray) -> float:
        """Residual standard deviation at ``theta`` (lme4's ``sigma()``)."""
        dof = self.n - self.p if self.reml else self.n
        return float(np.sqrt(self.pls(theta)["pwrss"] / dof))

    def deviance(self, varpar: np.ndarray) -> float:
        """``-2 log L`` at ``varpar = (*theta, sigma)`` with beta profiled (lmerTest's form)."""
        theta, sigma = np.asarray(varpar[:-1], dtype=float), float(varpar[-1])
        s = self.pls(theta)
        sigma2 = sigma**2
        dev = s["ldL2"] + s["pwrss"] / sigma2 + self.n * np.log(2 * np.pi * sigma2)
        if self.reml:
            dev += s["ldRX2"] - self.p * np.log(2 * np.pi * sigma2)
        return float(dev)

    def vcov_at(self, varpar: np.ndarray) -> np.ndarray:
        """``vcov(beta) = sigma^2 (R_X' R_X)^-1`` at ``varpar`` (lmerTest's ``get_covbeta``)."""
        theta, sigma = np.asarray(varpar[:-1], dtype=float), float(varpar[-1])
        return sigma**2 * np.linalg.inv(self.pls(theta)["rxtrx"])

    def gradient(self, theta: np.ndarray) -> np.ndarray:
        """Central-difference gradient of :meth:`objective`."""
        theta = np.asarray(theta, dtype=float)
        grad = np.empty_like(theta)
        for i in range(len(theta)):
            h = 1e-6 * max(abs(theta[i]), 1e-2)
            e = np.zeros_like(theta)
            e[i] = h
            grad[i] = (self.objective(theta + e) - self.objective(theta - e)) / (2 * h)
        return grad

    def minimise(self, theta0: np.ndarray) -> optimize.OptimizeResult:
        """Minimise :meth:`objective` from ``theta0`` with L-BFGS-B within lme4's bounds."""
        bounds = [(lo if np.isfinite(lo) else None, None) for lo in self.lower]
        start = np.maximum(np.asarray(theta0, dtype=float), self.lower)
        return optimize.minimize(
            self.objective,
            start,
            jac=self.gradient,
            method="L-BFGS-B",
            bounds=bounds,
            options={"ftol": 1e-15, "gtol": 1e-9, "maxiter": 2000, "maxcor": 20},
        )

    def on_boundary(self, theta: np.ndarray) -> bool:
        """Whether a diagonal element of some ``Lambda`` is below lme4's singular tolerance."""
        return any(np.diag(lam).min() < SINGULAR_TOL for lam in self.lambdas(theta))

    def boundary_probes(self, theta: np.ndarray) -> list[np.ndarray]:
        """Starting points with each parameter at its bound moved a little inside."""
        theta = np.asarray(theta, dtype=float)
        probes = []
        for i in np.flatnonzero(np.isfinite(self.lower) & (theta < SINGULAR_TOL)):
            for value in (0.01, 0.1, 0.5):
                start = theta.copy()
                start[i] = value
                probes.append(start)
        return probes

    def _restricted(self, theta: np.ndarray, free: np.ndarray, at: np.ndarray) -> float:
        """:meth:`objective` varying only the ``free`` parameters of ``at``."""
        return self.objective(np.where(free, theta, at))

    def newton(self, theta: np.ndarray, steps: int = 12) -> tuple[np.ndarray, float]:
        """Polish an optimum with Newton steps; return it and lme4's convergence measure.

        Gradient and Hessian of :meth:`objective` are numerical (Richardson extrapolation, as
        numDeriv), over the parameters not held at a bound by an outward gradient. A step is
        kept if it lowers the deviance, or leaves it within rounding noise and shrinks the
        gradient (near the optimum the change is below the noise while the step still moves
        the estimates); it stops when the step is below 1e-10 relative to ``theta``. The
        measure is lme4's scaled gradient ``max |H^-1 g|`` (lme4 calls a fit converged below
        0.002); if ``H`` is not positive definite it is ``max |g|``.
        """

        def gradient(t: np.ndarray) -> np.ndarray:
            return jacobian(lambda u: np.array([self.objective(u)]), t)[0]

        theta = np.maximum(np.asarray(theta, dtype=float), self.lower)
        current = self.objective(theta)
        grad = gradient(theta)
        measure = np.inf
        for _ in range(steps):
            free = ~((theta <= self.lower + 1e-10) & (grad >= 0))
            if not free.any():
                return theta, 0.0
            hess = hessian(partial(self._restricted, free=free, at=theta), theta)
            hess = hess[np.ix_(free, free)]
            try:
                np.linalg.cholesky(hess)
            except np.linalg.LinAlgError:
                return theta, float(np.max(np.abs(grad[free])))
            step = np.linalg.solve(hess, grad[free])
            measure = float(np.max(np.abs(step)))
            if measure <= 1e-10 * max(1.0, float(np.max(np.abs(theta)))):
                break
            candidate = theta.copy()
            candidate[free] -= step
            candidate = np.maximum(candidate, self.lower)
            value = self.objective(candidate)
            new_grad = gradient(candidate)
            noise = 1e-13 * max(1.0, abs(current))
            better = value < current or (
                value <= current + noise
                and np.linalg.norm(new_grad[free]) < np.linalg.norm(grad[free])
            )
            if not better:
                break
            theta, current, grad = candidate, value, new_grad
        return theta, measure
