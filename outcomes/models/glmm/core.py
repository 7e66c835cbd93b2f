"""Laplace and adaptive Gauss-Hermite likelihood of GLMMs with scalar random intercepts.

The model: ``eta = X beta + offset + s1 u[group] (+ s2 v[nested])`` with ``u, v ~ N(0, 1)``
(the spherical random effects of lme4 and ordinal), and a family (:mod:`.families`) giving the
per-row log-likelihood in ``eta`` (and the thresholds ``alpha`` of a cumulative-link model).

For each top-level group the conditional modes maximise
``h(u) = sum_rows l(eta) - |u|^2 / 2`` by Newton's method (vectorised over all groups at once
with ``numpy.bincount``; nested levels through the Schur complement of the arrowhead Hessian),
with step halving per group. Then, per group,

* Laplace (``nagq = 1``): ``log L_i = h(u_hat) - log|H_i| / 2``;
* adaptive Gauss-Hermite (``nagq > 1``, one level only): with ``sigma_i = H_i^(-1/2)`` and
  Gauss-Hermite nodes ``x_k`` and weights ``w_k``, ``log L_i = log sigma_i - log(pi) / 2 +
  log sum_k w_k exp(h(u_hat + sqrt(2) sigma_i x_k) + x_k^2)``,

where ``H_i`` is ``-d2 h / du2`` with the family's determinant weight (observed information for
clmm as in ordinal; Fisher information for glmer's binomial and Poisson families, as lme4's
PIRLS). The parameter vector is ``(alpha, beta, s)`` with ``s >= 0`` (lme4's ``theta``).

The gradient is analytic for Laplace with one level (implicit differentiation of the
modes, using the third derivatives of the family); otherwise central differences.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize

from outcomes.models.numderiv import hessian as richardson_hessian

__all__ = ["Design", "FitState", "Objective", "fit_design"]

MODE_TOL = 1e-10
MAX_NEWTON = 200


@dataclass
class Design:
    """Arrays of one GLMM problem.

    Attributes
    ----------
    x
        Fixed-effects design, shape ``(n, p)`` (no intercept column for clmm).
    offset
        Known part of ``eta``.
    group
        Top-level group code of each row, ``0 .. n_group - 1``.
    nested
        Nested group code of each row (``None`` for one level); each nested group lies in one
        top-level group, whose code is ``nested_top[code]``.
    family
        A family of :mod:`.families`.
    """

    x: np.ndarray
    offset: np.ndarray
    group: np.ndarray
    n_group: int
    family: Any
    nested: np.ndarray | None = None
    n_nested: int = 0
    nested_top: np.ndarray | None = None

    @property
    def n_alpha(self) -> int:
        """Number of thresholds."""
        return int(self.family.n_alpha)

    @property
    def n_sd(self) -> int:
        """Number of random-effect standard deviations."""
        return 1 if self.nested is None else 2

    @property
    def n_par(self) -> int:
        """Length of the parameter vector ``(alpha, beta, s)``."""
        return self.n_alpha + self.x.shape[1] + self.n_sd


class Objective:
    """Negative approximate log-likelihood of a :class:`Design` (Laplace or AGQ).

    Keeps the last conditional modes as the start of the next solve.
    """

    def __init__(self, design: Design, nagq: int = 1) -> None:
        self.d = design
        self.nagq = nagq
        self.nodes, self.weights = np.polynomial.hermite.hermgauss(nagq)
        empty = np.zeros(0, dtype=np.intp)
        self.nested_codes = design.nested if design.nested is not None else empty
        self.top = design.nested_top if design.nested_top is not None else empty
        self.u = np.zeros(design.n_group)
        self.v = np.zeros(design.n_nested)
        self.mode_failures = 0
        self.modes_converged = True
        self.n_eval = 0
        self._cache: tuple[bytes, dict[str, Any]] | None = None

    # -- parameters -------------------------------------------------------------------------

    def split(self, par: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``alpha, beta, s`` from the parameter vector."""
        k, p = self.d.n_alpha, self.d.x.shape[1]
        return par[:k], par[k : k + p], par[k + p :]

    def _bincount(self, values: np.ndarray, nested: bool = False) -> np.ndarray:
        if nested:
            return np.bincount(self.nested_codes, values, minlength=self.d.n_nested)
        return np.bincount(self.d.group, values, minlength=self.d.n_group)

    # -- conditional modes ------------------------------------------------------------------

    def _eta(self, eta0: np.ndarray, s: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        eta = eta0 + s[0] * u[self.d.group]
        if self.d.nested is not None:
            eta = eta + s[1] * v[self.d.nested]
        return eta

    def _h(self, eta: np.ndarray, alpha: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """``h`` per top-level group."""
        return self._h_from(self.d.family.loglik(eta, alpha), u, v)

    def _h_from(self, loglik: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """``h`` per top-level group from the per-row log-likelihood."""
        h = self._bincount(loglik) - 0.5 * u * u
        if self.d.nested is not None:
            h -= np.bincount(self.top, 0.5 * v * v, minlength=self.d.n_group)
        return h

    def modes(self, alpha: np.ndarray, beta: np.ndarray, s: np.ndarray) -> dict[str, Any]:
        """Conditional modes and the per-group pieces of the Laplace approximation.

        Returns
        -------
        dict
            ``u``, ``v``, ``eta``, ``pieces`` (at the modes), ``h`` per group, ``logdet`` per
            group (``log|H_i|`` with determinant weights) and ``hobs`` (one level: the observed
            ``H_i``).
        """
        d = self.d
        fam = d.family
        eta0 = d.x @ beta + d.offset
        u, v = self.u.copy(), self.v.copy()
        if not np.all(np.isfinite(u)):
            u[:] = 0.0
        eta = self._eta(eta0, s, u, v)
        pc = fam.pieces(eta, alpha, third=False)
        h = self._h_from(pc.l, u, v)
        if not np.all(np.isfinite(h)):
            u[:], v[:] = 0.0, 0.0
            eta = self._eta(eta0, s, u, v)
            pc = fam.pieces(eta, alpha, third=False)
            h = self._h_from(pc.l, u, v)
        converged = False
        for _ in range(MAX_NEWTON):
            gu = s[0] * self._bincount(pc.l1) - u
            a = 1.0 + s[0] ** 2 * self._bincount(-pc.l2)
            if d.nested is None:
                largest = np.max(np.abs(gu), initial=0.0)
                du, dv = gu / a, v
            else:
                gv = s[1] * self._bincount(pc.l1, nested=True) - v
                largest = max(np.max(np.abs(gu), initial=0.0), np.max(np.abs(gv), initial=0.0))
                wv = self._bincount(-pc.l2, nested=True)
                b = s[0] * s[1] * wv
                dd = 1.0 + s[1] ** 2 * wv
                top = self.top
                schur = a - np.bincount(top, b * b / dd, minlength=d.n_group)
                du = (gu - np.bincount(top, b * gv / dd, minlength=d.n_group)) / schur
                dv = (gv - b * du[top]) / dd
            if largest < MODE_TOL:
                # one last full Newton step: the modes are then exact to rounding, so the
                # objective is smooth enough for finite differences
                u = u + du
                v = v + dv if d.nested is not None else v
                eta = self._eta(eta0, s, u, v)
                converged = True
                break
            step = np.ones(d.n_group)
            for _half in range(40):
                u_new = u + step * du
                v_new = v + step[self.top] * dv if d.nested is not None else v
                eta_new = self._eta(eta0, s, u_new, v_new)
                pc_new = fam.pieces(eta_new, alpha, third=False)
                h_new = self._h_from(pc_new.l, u_new, v_new)
                worse = ~(h_new >= h - 1e-12 * np.abs(h))
                if not worse.any():
                    break
                step[worse] *= 0.5
            u, v, eta, h, pc = u_new, v_new, eta_new, h_new, pc_new
        self.modes_converged = converged
        if not converged:
            self.mode_failures += 1
        self.u, self.v = u, v
        pc = fam.pieces(eta, alpha, third=True)
        h = self._h_from(pc.l, u, v)
        a_det = 1.0 + s[0] ** 2 * self._bincount(pc.w)
        if d.nested is None:
            logdet = np.log(a_det)
        else:
            wv = self._bincount(pc.w, nested=True)
            b = s[0] * s[1] * wv
            dd = 1.0 + s[1] ** 2 * wv
            top = self.top
            schur = a_det - np.bincount(top, b * b / dd, minlength=d.n_group)
            logdet = np.log(schur) + np.bincount(top, np.log(dd), minlength=d.n_group)
        return {
            "u": u,
            "v": v,
            "eta": eta,
            "eta0": eta0,
            "pieces": pc,
            "h": h,
            "logdet": logdet,
            "a_det": a_det,
            "hobs": 1.0 + s[0] ** 2 * self._bincount(-pc.l2),
        }

    # -- objective --------------------------------------------------------------------------

    def _cached_modes(self, par: np.ndarray) -> dict[str, Any]:
        """:meth:`modes` at ``par``, reusing the last result when ``par`` is unchanged (the
        optimiser asks for the value and the gradient at the same point)."""
        key = par.tobytes()
        if self._cache is None or self._cache[0] != key:
            alpha, beta, s = self.split(par)
            self._cache = (key, self.modes(alpha, beta, np.abs(s)))
        return self._cache[1]

    def value(self, par: np.ndarray) -> float:
        """``-log L`` (approximate) at ``par``; ``inf`` where it cannot be evaluated."""
        self.n_eval += 1
        par = np.asarray(par, dtype=float)
        alpha, _, s = self.split(par)
        s = np.abs(s)  # the likelihood is even in each s
        if len(alpha) > 1 and np.any(np.diff(alpha) <= 0):
            return np.inf
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            m = self._cached_modes(par)
            ll = np.sum(m["h"] - 0.5 * m["logdet"]) if self.nagq == 1 else self._agq(m, alpha, s)
        total = -(ll + self.d.family.constant)
        return float(total) if np.isfinite(total) else np.inf

    def _agq(self, m: dict[str, Any], alpha: np.ndarray, s: np.ndarray) -> float:
        sigma = 1.0 / np.sqrt(m["a_det"])
        terms = []
        for x_k, w_k in zip(self.nodes, self.weights, strict=True):
            u_k = m["u"] + np.sqrt(2.0) * sigma * x_k
            eta = m["eta0"] + s[0] * u_k[self.d.group]
            h_k = self._bincount(self.d.family.loglik(eta, alpha)) - 0.5 * u_k * u_k
            terms.append(np.log(w_k) + h_k + x_k * x_k)
        stacked = np.array(terms)
        top = stacked.max(axis=0)
        log_sum = top + np.log(np.exp(stacked - top).sum(axis=0))
        return float(np.sum(np.log(sigma) - 0.5 * np.log(np.pi) + log_sum))

    def gradient(self, par: np.ndarray) -> np.ndarray:
        """Gradient of :meth:`value`: analytic for Laplace, central differences for AGQ."""
        par = np.asarray(par, dtype=float)
        if self.nagq > 1:
            return self._numeric_gradient(par)
        if self.d.nested is not None:
            return self._nested_gradient(par)
        s = float(self.split(par)[2][0])
        m = self._cached_modes(par)
        s_abs = abs(s)
        pc = m["pieces"]
        g = self.d.group
        u = m["u"]
        hobs, a_det = m["hobs"], m["a_det"]
        big_g = self._bincount(pc.w1)
        c = s_abs**2 / (2.0 * a_det)
        r = c * s_abs**2 * big_g / hobs
        coef = pc.l1 - c[g] * pc.w1 - r[g] * pc.l2
        grad_beta = self.d.x.T @ coef
        l1_sum = self._bincount(pc.l1)
        l2_sum = self._bincount(pc.l2)
        w_sum = self._bincount(pc.w)
        du_ds = (l1_sum + s_abs * u * l2_sum) / hobs
        d_adet = 2 * s_abs * w_sum + s_abs**2 * big_g * (u + s_abs * du_ds)
        grad_s = np.sum(u * l1_sum - d_adet / (2.0 * a_det)) * (1.0 if s >= 0 else -1.0)
        contrib = None
        if self.d.n_alpha:
            contrib = pc.la - c[g, None] * pc.wa - r[g, None] * pc.l1a
        grad_alpha = self._alpha_gradient(pc, contrib)
        return -np.concatenate([grad_alpha, grad_beta, [grad_s]])

    def _alpha_gradient(self, pc: Any, contrib: np.ndarray | None) -> np.ndarray:
        """Scatter per-row threshold contributions (two columns) onto the thresholds."""
        grad = np.zeros(self.d.n_alpha)
        if self.d.n_alpha and contrib is not None:
            for col in range(2):
                idx = pc.ia[:, col]
                ok = idx >= 0
                grad += np.bincount(idx[ok], contrib[ok, col], minlength=self.d.n_alpha)
        return grad

    def _nested_gradient(self, par: np.ndarray) -> np.ndarray:
        """Analytic gradient of the nested Laplace likelihood.

        Per top-level group, ``log|H| = log(1 + s1^2 sum_k W_k / D_k) + sum_k log D_k`` with
        ``W_k`` the determinant weight of nested group ``k`` and ``D_k = 1 + s2^2 W_k``; the
        modes' dependence on the parameters enters through one adjoint solve with the
        (observed) arrowhead Hessian.
        """
        s_signed = self.split(par)[2]
        s1, s2 = np.abs(s_signed)
        m = self._cached_modes(par)
        pc = m["pieces"]
        u, v = m["u"], m["v"]
        gi, gk, top = self.d.group, self.nested_codes, self.top
        n_top = self.d.n_group

        def by_top(values: np.ndarray) -> np.ndarray:
            return np.bincount(top, values, minlength=n_top)

        w_k = self._bincount(pc.w, nested=True)
        g_k = self._bincount(pc.w1, nested=True)
        l1_k = self._bincount(pc.l1, nested=True)
        l2_k = self._bincount(pc.l2, nested=True)
        d_k = 1.0 + s2**2 * w_k
        q = by_top(w_k / d_k)
        big_s = 1.0 + s1**2 * q
        c_k = s1**2 / (big_s[top] * d_k**2) + s2**2 / d_k
        # adjoint: mu = H_obs^-1 lambda, lambda = d(sum c_k W_k) / d(modes) / ...
        lam_v = s2 * c_k * g_k
        lam_u = s1 * by_top(c_k * g_k)
        o_k = -l2_k
        a_o = 1.0 + s1**2 * by_top(o_k)
        b_o = s1 * s2 * o_k
        d_o = 1.0 + s2**2 * o_k
        schur = a_o - by_top(b_o * b_o / d_o)
        mu_u = (lam_u - by_top(b_o * lam_v / d_o)) / schur
        mu_v = (lam_v - b_o * mu_u[top]) / d_o
        mode_term = s1 * mu_u[gi] + s2 * mu_v[gk]
        coef = pc.l1 - 0.5 * c_k[gk] * pc.w1 - 0.5 * pc.l2 * mode_term
        grad_beta = self.d.x.T @ coef
        u_k = u[top]
        l1_i = by_top(l1_k)
        l2_i = by_top(l2_k)
        direct_s1 = 2.0 * s1 * q / big_s
        grad_s1 = np.sum(u * l1_i) - 0.5 * (
            np.sum(c_k * g_k * u_k)
            + np.sum(direct_s1)
            + np.sum(mu_u * (l1_i + s1 * u * l2_i))
            + np.sum(mu_v * s2 * u_k * l2_k)
        )
        direct_s2 = np.sum(-2.0 * s1**2 * s2 * w_k**2 / (big_s[top] * d_k**2)) + np.sum(
            2.0 * s2 * w_k / d_k
        )
        grad_s2 = np.sum(v * l1_k) - 0.5 * (
            np.sum(c_k * g_k * v)
            + direct_s2
            + np.sum(mu_u * s1 * by_top(l2_k * v))
            + np.sum(mu_v * (l1_k + s2 * v * l2_k))
        )
        contrib = None
        if self.d.n_alpha:
            contrib = pc.la - 0.5 * c_k[gk, None] * pc.wa - 0.5 * pc.l1a * mode_term[:, None]
        grad_alpha = self._alpha_gradient(pc, contrib)
        signs = np.where(s_signed >= 0, 1.0, -1.0)
        grad_s = np.array([grad_s1, grad_s2]) * signs
        return -np.concatenate([grad_alpha, grad_beta, grad_s])

    def _numeric_gradient(self, par: np.ndarray) -> np.ndarray:
        grad = np.empty_like(par)
        for i in range(len(par)):
            step = 1e-5 * max(1.0, abs(par[i]))
            e = np.zeros_like(par)
            e[i] = step
            grad[i] = (self.value(par + e) - self.value(par - e)) / (2 * step)
        return grad

    def hessian(self, par: np.ndarray) -> np.ndarray:
        """Hessian of :meth:`value`: central differences of the analytic gradient, or
        numDeriv's Richardson extrapolation on the value."""
        if self.nagq > 1:
            return richardson_hessian(self.value, par)
        # central differences of the analytic gradient (error of order 1e-10)
        jac = np.empty((len(par), len(par)))
        for i in range(len(par)):
            step = 1e-5 * max(1.0, abs(par[i]))
            e = np.zeros_like(par)
            e[i] = step
            jac[:, i] = (self.gradient(par + e) - self.gradient(par - e)) / (2 * step)
        return (jac + jac.T) / 2


@dataclass
class FitState:
    """The optimum of an :class:`Objective`."""

    par: np.ndarray
    nll: float
    gradient: np.ndarray
    hessian: np.ndarray
    vcov: np.ndarray
    hessian_pd: bool
    converged: bool
    boundary: np.ndarray
    mode_failures: int
    n_eval: int
    u: np.ndarray
    v: np.ndarray
    optimizer: str
    newton_step: float


def fit_design(design: Design, nagq: int, start: np.ndarray) -> FitState:
    """Maximise the approximate likelihood of ``design`` from ``start`` (original units).

    The columns of ``X`` are scaled to unit root mean square while optimising (so that a
    covariate measured in large units cannot throw the first line search into overflow); the
    optimum, gradient, Hessian and covariance are returned in the original units.
    """
    scale = np.sqrt(np.mean(design.x**2, axis=0))
    scale[scale == 0] = 1.0
    k, p = design.n_alpha, design.x.shape[1]
    units = np.ones(design.n_par)
    units[k : k + p] = scale  # par_scaled = par * units
    scaled = Design(**{**design.__dict__, "x": design.x / scale})
    state = _minimise(Objective(scaled, nagq), np.asarray(start, dtype=float) * units)
    state.par = state.par / units
    state.gradient = state.gradient * units
    state.hessian = state.hessian * np.outer(units, units)
    state.vcov = state.vcov / np.outer(units, units)
    return state


def _minimise(objective: Objective, start: np.ndarray) -> FitState:
    """Minimise ``objective`` from ``start``: L-BFGS-B (``s >= 0``), then Newton steps.

    The covariance of the parameters is the inverse Hessian at the optimum (over the free
    parameters: a standard deviation at zero is held fixed there).
    """
    d = objective.d
    n_sd = d.n_sd
    bounds = [(None, None)] * (d.n_par - n_sd) + [(0.0, None)] * n_sd
    res = optimize.minimize(
        objective.value,
        start,
        jac=objective.gradient,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-9, "maxcor": 20},
    )
    par = np.asarray(res.x, dtype=float)
    nll = objective.value(par)
    optimizer = "L-BFGS-B"
    # Newton-chord polish: one Hessian, steps until they vanish (L-BFGS-B stops short).
    free = np.ones(d.n_par, dtype=bool)
    free[-n_sd:] = par[-n_sd:] > 1e-6
    hess = objective.hessian(par)
    start_par = par.copy()
    sub = hess[np.ix_(free, free)]
    if np.all(np.isfinite(sub)) and np.all(np.linalg.eigvalsh(sub) > 0):
        for _ in range(30):
            step = np.linalg.solve(sub, objective.gradient(par)[free])
            candidate = par.copy()
            candidate[free] -= step
            candidate[-n_sd:] = np.maximum(candidate[-n_sd:], 0.0)
            value = objective.value(candidate)
            if not value <= nll + 1e-13 * abs(nll):
                break
            optimizer = "L-BFGS-B + Newton"
            par, nll = candidate, value
            if np.max(np.abs(step)) < 1e-10:
                break
    objective.value(par)  # leave the modes at the optimum
    grad = objective.gradient(par)
    if np.max(np.abs(par - start_par)) > 1e-6:
        hess = objective.hessian(par)
    boundary = np.zeros(d.n_par, dtype=bool)
    boundary[-n_sd:] = par[-n_sd:] < 1e-4
    free = ~boundary
    sub = hess[np.ix_(free, free)]
    vcov = np.full((d.n_par, d.n_par), np.nan)
    try:
        np.linalg.cholesky(sub)
        hessian_pd = True
    except np.linalg.LinAlgError:
        hessian_pd = False
    with contextlib.suppress(np.linalg.LinAlgError):
        vcov[np.ix_(free, free)] = np.linalg.inv(sub)
    free_grad = np.where(free, grad, 0.0)
    if hessian_pd:
        scaled = float(np.max(np.abs(np.linalg.solve(sub, free_grad[free]))))
    else:
        scaled = float(np.max(np.abs(free_grad)))
    converged = bool(np.isfinite(nll) and scaled < 1e-3 and objective.modes_converged)
    return FitState(
        par=par,
        nll=float(nll),
        gradient=grad,
        hessian=hess,
        vcov=vcov,
        hessian_pd=hessian_pd,
        converged=converged,
        boundary=boundary,
        mode_failures=objective.mode_failures,
        n_eval=objective.n_eval,
        u=objective.u.copy(),
        v=objective.v.copy(),
        optimizer=optimizer,
        newton_step=scaled,
    )
