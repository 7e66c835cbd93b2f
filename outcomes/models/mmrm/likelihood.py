"""The MMRM likelihood on per-subject blocks, batched by visit pattern, and its optimiser.

Rows of one independent block (a subject; in a split-face MMRM, a patient with both sides)
are correlated; blocks are independent. Blocks with the same covariance group and the same
observed (unit, visit) positions share one covariance matrix ``V``, so each *pattern* is
factorised once per evaluation and its blocks are whitened together: the log-likelihood, its
gradient and everything Kenward-Roger needs cost ``O(N m p)``, never an ``n x n`` matrix.

``V`` of a block is ``Sigma[visits, visits]`` within each unit (zero across units) plus, in a
split-face MMRM, ``tau2`` everywhere: the patient's random intercept shared by both sides.

The deviance is ``-2`` times the (restricted) log-likelihood as SAS PROC MIXED and
``nlme::gls`` print it::

    ML:    N log(2 pi) + sum_i log|V_i| + r' V^-1 r
    REML:  (N - p) log(2 pi) + sum_i log|V_i| + log|X' V^-1 X| + r' V^-1 r

Its gradient in the natural (SAS) covariance parameters is analytic; the optimiser moves the
unconstrained parameters of :mod:`outcomes.models.mmrm.covariance` and finishes with Newton
steps on a finite-difference Hessian of that gradient, so the optimum is found to ~1e-10.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import linalg, optimize

from outcomes.models.mmrm.covariance import Structure

__all__ = [
    "Layout",
    "Likelihood",
    "OptimResult",
    "Pattern",
    "build_layout",
    "optimise",
]

LOG2PI = float(np.log(2 * np.pi))


@dataclass(frozen=True)
class Pattern:
    """Blocks sharing one covariance matrix.

    Attributes
    ----------
    groups, visits, units
        Covariance group (index into the levels of ``cov_by``), visit index and unit slot
        (side) of each position, length ``m_b``.
    rows
        Row indices into the data, shape ``(n_blocks, m_b)``.
    same_unit
        ``(m_b, m_b)``: whether two positions belong to the same unit.
    """

    groups: np.ndarray
    visits: np.ndarray
    units: np.ndarray
    rows: np.ndarray
    same_unit: np.ndarray

    @property
    def n_blocks(self) -> int:
        """Number of blocks with this pattern."""
        return self.rows.shape[0]


@dataclass(frozen=True)
class SizeClass:
    """All patterns with ``s`` positions, stacked so one NumPy call serves them all.

    Attributes
    ----------
    groups, visits, same_unit
        Per pattern: shapes ``(P, s)``, ``(P, s)``, ``(P, s, s)``.
    counts
        Blocks per pattern, ``(P,)``; blocks are stored pattern by pattern.
    pattern_of_block
        ``(n_blocks,)``.
    rows
        ``(n_blocks, s)`` row indices into the data.
    """

    groups: np.ndarray
    visits: np.ndarray
    same_unit: np.ndarray
    counts: np.ndarray
    pattern_of_block: np.ndarray
    rows: np.ndarray

    @property
    def starts(self) -> np.ndarray:
        """Index of each pattern's first block (for ``np.add.reduceat``)."""
        return np.concatenate([[0], np.cumsum(self.counts)[:-1]])


@dataclass(frozen=True)
class Layout:
    """Data arranged for the likelihood."""

    y: np.ndarray
    x: np.ndarray
    n_visits: int
    n_groups: int
    nested: bool
    patterns: tuple[Pattern, ...]
    classes: tuple[SizeClass, ...]
    block_of_row: np.ndarray

    @property
    def n_blocks(self) -> int:
        """Number of independent blocks (subjects, or patients when nested)."""
        return sum(p.n_blocks for p in self.patterns)


def build_layout(
    y: np.ndarray,
    x: np.ndarray,
    block: np.ndarray,
    unit: np.ndarray,
    visit: np.ndarray,
    group: np.ndarray,
    n_visits: int,
    n_groups: int,
    nested: bool,
) -> Layout:
    """Group blocks by their positions; ``block``, ``unit``, ``visit``, ``group`` are codes.

    ``group`` (the covariance group) must be constant within a unit.
    """
    order = np.lexsort((visit, unit, block))
    bounds = np.flatnonzero(np.diff(block[order])) + 1
    by_key: dict[tuple[Any, ...], list[np.ndarray]] = defaultdict(list)
    for rows in np.split(order, bounds):
        key = (tuple(group[rows]), tuple(unit[rows]), tuple(visit[rows]))
        by_key[key].append(rows)
    patterns = []
    for (g, units, visits), blocks in by_key.items():
        u = np.array(units)
        patterns.append(
            Pattern(
                groups=np.array(g),
                visits=np.array(visits),
                units=u,
                rows=np.vstack(blocks),
                same_unit=u[:, None] == u[None, :],
            )
        )
    classes = []
    for size in sorted({len(p.visits) for p in patterns}):
        pats = [p for p in patterns if len(p.visits) == size]
        classes.append(
            SizeClass(
                groups=np.array([p.groups for p in pats]),
                visits=np.array([p.visits for p in pats]),
                same_unit=np.array([p.same_unit for p in pats]),
                counts=np.array([p.n_blocks for p in pats]),
                pattern_of_block=np.repeat(np.arange(len(pats)), [p.n_blocks for p in pats]),
                rows=np.vstack([p.rows for p in pats]),
            )
        )
    return Layout(
        y=y,
        x=x,
        n_visits=n_visits,
        n_groups=n_groups,
        nested=nested,
        patterns=tuple(patterns),
        classes=tuple(classes),
        block_of_row=block,
    )


def _complex_step_jacobian(fun: Any, t: np.ndarray) -> np.ndarray:
    """``d fun(t) / d t_k`` stacked on the first axis, exact to rounding."""
    h = 1e-30
    out = []
    for k in range(len(t)):
        tc = t.astype(complex)
        tc[k] += 1j * h
        out.append(np.imag(fun(tc)) / h)
    return np.array(out)


@dataclass
class Likelihood:
    """Deviance and gradient of an MMRM in the natural covariance parameters.

    The parameter vector is the natural parameters of each covariance group in turn, then
    (split-face) ``tau2``, the patient random-intercept variance.
    """

    layout: Layout
    structure: Structure
    reml: bool = True
    sizes: list[int] = field(init=False)
    _linear_dsig: list[np.ndarray] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        m = self.layout.n_visits
        self.sizes = [self.structure.n_params(m)] * self.layout.n_groups
        if self.layout.nested:
            self.sizes.append(1)

    @property
    def n_params(self) -> int:
        """Number of covariance parameters."""
        return int(sum(self.sizes))

    def split(self, theta: np.ndarray) -> tuple[list[np.ndarray], Any]:
        """Natural parameters of each group, and ``tau2`` (0 when not nested)."""
        parts = np.split(theta, np.cumsum(self.sizes)[:-1])
        tau2 = parts.pop()[0] if self.layout.nested else 0.0
        return parts, tau2

    def sigmas(self, theta: np.ndarray) -> tuple[list[np.ndarray], Any]:
        """Each group's ``m x m`` covariance and ``tau2``."""
        m = self.layout.n_visits
        parts, tau2 = self.split(theta)
        return [self.structure.natural_cov(p, m) for p in parts], tau2

    def natural(self, free: np.ndarray) -> np.ndarray:
        """Natural parameters from the optimiser's unconstrained ones."""
        m = self.layout.n_visits
        parts = np.split(free, np.cumsum(self.sizes)[:-1])
        out = [self.structure.free_to_natural(p, m) for p in parts[: self.layout.n_groups]]
        if self.layout.nested:
            out.append(np.exp(2 * parts[-1]))
        return np.concatenate(out)

    def natural_jacobian(self, free: np.ndarray) -> np.ndarray:
        """``d natural / d free``, shape ``(k, k)`` (row: natural, column: free)."""
        return _complex_step_jacobian(self.natural, free).T

    def sigma_derivatives(self, theta: np.ndarray) -> list[np.ndarray]:
        """``d Sigma_g / d theta`` for each group: shape ``(k_g, m, m)`` (constant, so computed
        once, when the structure is linear)."""
        if self.structure.linear and self._linear_dsig is not None:
            return self._linear_dsig
        m = self.layout.n_visits
        parts, _ = self.split(theta)
        out = [_complex_step_jacobian(lambda t: self.structure.natural_cov(t, m), p) for p in parts]
        if self.structure.linear:
            self._linear_dsig = out
        return out

    def class_cov(self, cls: SizeClass, sigmas: list[np.ndarray], tau2: Any) -> np.ndarray:
        """``V`` of every pattern of a size class, shape ``(P, s, s)``."""
        sig = np.asarray(sigmas)
        v = cls.visits
        return sig[cls.groups[:, :, None], v[:, :, None], v[:, None, :]] * cls.same_unit + tau2

    def whiten(self, theta: np.ndarray) -> dict[str, Any] | None:
        """Cholesky-whiten every block; ``None`` when a ``V`` is not positive definite.

        Returns the whitened design and response of each size class (``xw``: ``(n_b, s, p)``,
        ``yw``: ``(n_b, s)``), each pattern's inverse Cholesky factor, ``beta``,
        ``phi = (X' V^-1 X)^-1`` and the pieces of the deviance.
        """
        sigmas, tau2 = self.sigmas(theta)
        y, x = self.layout.y, self.layout.x
        parts = []
        logdet = 0.0
        for cls in self.layout.classes:
            v = self.class_cov(cls, sigmas, tau2)
            try:
                chol = np.linalg.cholesky(v)
            except np.linalg.LinAlgError:
                return None
            linv = np.linalg.inv(chol)
            lb = linv[cls.pattern_of_block]
            xw = lb @ x[cls.rows]
            yw = (lb @ y[cls.rows][:, :, None])[:, :, 0]
            diag = np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
            logdet += 2.0 * float(diag @ cls.counts)
            parts.append((linv, xw, yw))
        p = x.shape[1]
        xw_all = np.concatenate([xw.reshape(-1, p) for _, xw, _ in parts])
        yw_all = np.concatenate([yw.ravel() for _, _, yw in parts])
        xtx = xw_all.T @ xw_all
        try:
            cho = linalg.cho_factor(xtx, lower=True)
        except linalg.LinAlgError:
            return None
        beta = linalg.cho_solve(cho, xw_all.T @ yw_all)
        phi = linalg.cho_solve(cho, np.eye(p))
        return {
            "parts": parts,
            "logdet": logdet,
            "beta": beta,
            "phi": phi,
            "logdet_xtx": 2.0 * float(np.sum(np.log(np.diag(cho[0])))),
            "quad": float(np.sum((yw_all - xw_all @ beta) ** 2)),
        }

    def deviance_from(self, w: dict[str, Any]) -> float:
        """``-2 log L`` from :meth:`whiten`'s output."""
        n, p = self.layout.x.shape
        if self.reml:
            return (n - p) * LOG2PI + w["logdet"] + w["logdet_xtx"] + w["quad"]
        return n * LOG2PI + w["logdet"] + w["quad"]

    def deviance(self, theta: np.ndarray) -> float:
        """``-2 log L`` at natural parameters ``theta`` (``inf`` outside the valid region)."""
        w = self.whiten(theta)
        return np.inf if w is None else self.deviance_from(w)

    def gradient(self, theta: np.ndarray, w: dict[str, Any] | None = None) -> np.ndarray:
        """Analytic gradient of the deviance in the natural parameters.

        ``d dev / d theta_k = sum_i <dV_i/d theta_k, G_i>`` with
        ``G_i = V^-1 - V^-1 r_i r_i' V^-1 - V^-1 X_i Phi X_i' V^-1`` (the last term for REML);
        the ``G_i`` of a pattern are summed in whitened form before one back-transformation.
        """
        w = self.whiten(theta) if w is None else w
        if w is None:
            return np.full(len(theta), np.nan)
        m = self.layout.n_visits
        gsig = np.zeros((self.layout.n_groups, m, m))
        gtau = 0.0
        for cls, (linv, xw, yw) in zip(self.layout.classes, w["parts"], strict=True):
            rw = yw - xw @ w["beta"]
            per_block = rw[:, :, None] * rw[:, None, :]
            if self.reml:
                per_block += (xw @ w["phi"]) @ xw.transpose(0, 2, 1)
            size = linv.shape[1]
            inner = cls.counts[:, None, None] * np.eye(size) - np.add.reduceat(
                per_block, cls.starts, axis=0
            )
            g = linv.transpose(0, 2, 1) @ inner @ linv
            v = cls.visits
            idx = (cls.groups[:, :, None], v[:, :, None], v[:, None, :])
            np.add.at(gsig, idx, g * cls.same_unit)
            gtau += float(np.sum(g))
        dsig = self.sigma_derivatives(theta)
        out = [np.einsum("kij,ij->k", d, gs) for d, gs in zip(dsig, gsig, strict=True)]
        if self.layout.nested:
            out.append(np.array([gtau]))
        return np.concatenate(out)

    def hessian(self, theta: np.ndarray) -> np.ndarray:
        """Observed Hessian of the deviance in the natural parameters (central differences of
        the analytic gradient)."""
        k = len(theta)
        out = np.empty((k, k))
        for j in range(k):
            h = 1e-5 * max(1.0, abs(theta[j]))
            up, down = theta.copy(), theta.copy()
            up[j] += h
            down[j] -= h
            out[:, j] = (self.gradient(up) - self.gradient(down)) / (2 * h)
        return 0.5 * (out + out.T)


@dataclass
class OptimResult:
    """How the optimiser ended.

    ``hessian`` is the Hessian of the deviance in the natural parameters at (or, after a last
    Newton step shorter than 1e-6 of the parameters, next to) ``theta``.
    """

    theta: np.ndarray
    deviance: float
    hessian: np.ndarray
    converged: bool
    gradient_norm: float
    method: str
    n_evaluations: int
    messages: list[str]


def optimise(lik: Likelihood, start: np.ndarray, max_newton: int = 10) -> OptimResult:
    """Minimise the deviance: BFGS on the unconstrained parameters, then Newton steps.

    BFGS moves the unconstrained parameters from ``start`` (its first inverse Hessian from
    finite differences there, when positive definite); if it stops with an error other
    than lost precision, L-BFGS-B is tried from the same start (recorded in ``messages``).
    Newton steps on the natural parameters (finite-difference Hessian of the analytic
    gradient, step halving) then polish the optimum. Converged: the largest gradient element
    in the natural parameters is below ``1e-6`` of the deviance after the polish, and the
    Hessian is finite.
    """
    calls = {"n": 0}

    def fun(free: np.ndarray) -> tuple[float, np.ndarray]:
        calls["n"] += 1
        theta = lik.natural(free)
        w = lik.whiten(theta)
        if w is None:
            return 1e300, np.zeros_like(free)
        dev = lik.deviance_from(w)
        grad = lik.natural_jacobian(free).T @ lik.gradient(theta, w)
        return dev, grad

    messages: list[str] = []
    options: dict[str, Any] = {"gtol": 1e-6}
    hess0 = _free_hessian(fun, start)
    if np.all(np.isfinite(hess0)) and np.linalg.eigvalsh(hess0)[0] > 0:
        # BFGS from the Hessian at the start: a third of the evaluations of an identity start
        inv0 = np.linalg.inv(hess0)
        options["hess_inv0"] = 0.5 * (inv0 + inv0.T)
    res = optimize.minimize(fun, start, jac=True, method="BFGS", options=options)
    method = "BFGS"
    if not np.isfinite(res.fun) or res.fun >= 1e300 or res.status not in (0, 2):
        messages.append(f"BFGS stopped ({res.message}); retried with L-BFGS-B.")
        res2 = optimize.minimize(
            fun, start, jac=True, method="L-BFGS-B", options={"maxiter": 2000, "ftol": 1e-14}
        )
        if res2.fun < res.fun:
            res, method = res2, "L-BFGS-B"
    theta = lik.natural(np.asarray(res.x, dtype=float))
    dev = lik.deviance(theta)
    grad = lik.gradient(theta)
    hess = lik.hessian(theta)
    steps = 0
    for _ in range(max_newton):
        if not (np.all(np.isfinite(hess)) and np.all(np.isfinite(grad))):
            break
        if np.max(np.abs(grad)) < 1e-8:
            break
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            break
        if np.any(np.linalg.eigvalsh(hess) <= 0):
            break
        t = 1.0
        while t > 1e-4:
            new_dev = lik.deviance(theta - t * step)
            if new_dev <= dev + 1e-12 * abs(dev):
                break
            t /= 2
        else:
            break
        theta, dev = theta - t * step, new_dev
        grad = lik.gradient(theta)
        steps += 1
        if np.max(np.abs(t * step) / np.maximum(1.0, np.abs(theta))) < 1e-6:
            break
        hess = lik.hessian(theta)
    if steps:
        method = f"{method} + {steps} Newton steps"
    gnorm = float(np.max(np.abs(grad))) if np.all(np.isfinite(grad)) else float("inf")
    converged = bool(
        np.isfinite(dev) and gnorm < 1e-6 * max(1.0, abs(dev)) and np.all(np.isfinite(hess))
    )
    return OptimResult(
        theta=theta,
        deviance=float(dev),
        hessian=hess,
        converged=converged,
        gradient_norm=gnorm,
        method=method,
        n_evaluations=calls["n"],
        messages=messages,
    )


def _free_hessian(fun: Any, free: np.ndarray) -> np.ndarray:
    """Central differences of ``fun``'s gradient (``fun(free) -> (value, gradient)``)."""
    k = len(free)
    out = np.empty((k, k))
    for j in range(k):
        h = 1e-5 * max(1.0, abs(free[j]))
        up, down = free.copy(), free.copy()
        up[j] += h
        down[j] -= h
        out[:, j] = (fun(up)[1] - fun(down)[1]) / (2 * h)
    return 0.5 * (out + out.T)
