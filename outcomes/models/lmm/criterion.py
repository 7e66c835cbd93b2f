"""lme4's profiled REML/ML criterion on top of a random-effects structure, with its gradient.

:class:`_Criterion` turns a structure's ``log|L|^2`` and quadratic term (:mod:`.blocks`) into the
profiled deviance, its analytic gradient, and the deviance and ``vcov(beta)`` at given variance
parameters for Satterthwaite's derivatives (evaluated in batches).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from outcomes.errors import InputError
from outcomes.models.lmm.blocks import _OneLevel, _TwoLevel
from outcomes.models.lmm.types import LmmProblem

_LOG_2PI = np.log(2.0 * np.pi)
_THETA_CACHE = 128  # pieces kept for deviance_at / vcov_at (Satterthwaite needs about 75)


@dataclass
class _Pieces:
    ld_l2: float
    ld_rx2: float
    r2: float
    beta: np.ndarray
    xtvx: np.ndarray  # X' V0^-1 X = R_X' R_X
    state: dict


class _Criterion:
    """lme4's profiled deviance (REML or ML) as a function of theta."""

    def __init__(
        self, problem: LmmProblem, structure: _OneLevel | _TwoLevel, ata: np.ndarray
    ) -> None:
        self.structure = structure
        self.reml = problem.reml
        self.n, self.p = problem.x.shape
        self.ata = ata  # A'A for A = [X r]
        self.df = self.n - self.p if self.reml else self.n
        self.lower = np.concatenate([b.lower() for b in structure.blocks])
        self.n_evaluations = 0
        self._last: tuple[bytes, float, np.ndarray] | None = None  # the latest value_and_grad
        # Pieces by theta for deviance_at and vcov_at: numerical derivatives over
        # varpar = (*theta, sigma) revisit the same theta with other sigmas.
        self._by_theta: dict[bytes, _Pieces] = {}

    def pieces(self, theta: np.ndarray) -> _Pieces:
        self.n_evaluations += 1
        return self._finish(*self.structure.parts(theta))

    def _finish(self, ld_l2: float, quad: np.ndarray, state: dict) -> _Pieces:
        """Pieces from ``log|L|^2`` and ``A'Z Lambda H^-1 Lambda' Z'A``."""
        r, ld_rx2, xtvx, beta = self._factor(quad)
        return _Pieces(ld_l2, float(ld_rx2), float(r) ** 2, beta, xtvx, state)

    def _finish_many(self, ld_l2: np.ndarray, quad: np.ndarray) -> list[_Pieces]:
        """:meth:`_finish` for stacked ``log|L|^2`` (T,) and quadratic terms (T, p_A, p_A)
        (LAPACK runs matrix by matrix, so each theta gets the numbers of :meth:`_finish`)."""
        r, ld_rx2, xtvx, beta = self._factor(quad)
        return [
            _Pieces(float(a), float(b), float(c) ** 2, d, e, {})
            for a, b, c, d, e in zip(ld_l2, ld_rx2, r, beta, xtvx, strict=True)
        ]

    def _factor(self, quad: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """From ``A'Z Lambda H^-1 Lambda' Z'A`` (or a stack of them): ``r`` (``r^2`` is the
        penalised residual sum of squares), ``log|X'V0^-1 X|``, ``X'V0^-1 X`` and beta."""
        m = self.ata - quad  # A' V0^-1 A
        p = self.p
        chol = np.linalg.cholesky(m)  # raises LinAlgError if not positive definite
        ld_rx2 = 2.0 * np.sum(np.log(np.diagonal(chol, axis1=-2, axis2=-1)[..., :p]), axis=-1)
        xtvx = m[..., :p, :p]
        beta = np.linalg.solve(xtvx, m[..., :p, p:])[..., 0]
        return chol[..., p, p], ld_rx2, xtvx, beta

    def profiled(self, pieces: _Pieces) -> float:
        dev = pieces.ld_l2 + self.df * (1.0 + _LOG_2PI + np.log(pieces.r2 / self.df))
        return dev + pieces.ld_rx2 if self.reml else dev

    def __call__(self, theta: np.ndarray) -> float:
        try:
            return self.profiled(self.pieces(theta))
        except np.linalg.LinAlgError:
            return np.inf

    def value_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """The profiled deviance and its analytic gradient.

        The derivative of ``log|L|^2 + log|X'V0^-1 X|`` (REML) ``+ df log r^2`` with respect
        to ``Lambda`` is ``2 tr(H^-1 Lambda'Z'Z dLambda) - 2 tr(Omega (Z'R)' dLambda U)``
        with ``U = H^-1 Lambda'Z'A``, ``Z'R = Z'A - Z'Z Lambda U`` and
        ``Omega = (df / r^2) w w' + [[C, 0], [0, 0]]`` (``w = (-beta, 1)``,
        ``C = (X'V0^-1 X)^-1``, REML only): the envelope theorem on the profiled ``beta``
        and ``d V0^-1 = -V0^-1 Z (dLambda Lambda' + Lambda dLambda') Z' V0^-1``.
        """
        key = np.asarray(theta, dtype=float).tobytes()
        if self._last is not None and self._last[0] == key:
            return self._last[1], self._last[2].copy()
        pieces = self.pieces(theta)
        value = self.profiled(pieces)
        w = np.append(-pieces.beta, 1.0)
        omega = (self.df / pieces.r2) * np.outer(w, w)
        if self.reml:
            omega[: self.p, : self.p] += np.linalg.inv(pieces.xtvx)
        grad = self.structure.grad(theta, omega, pieces.state)
        self._last = (key, value, grad)
        return value, grad.copy()

    def _remembered(self, thetas: np.ndarray) -> list[_Pieces]:
        """Pieces at each row of ``thetas``, remembered by the exact bits of theta.

        Numerical derivatives over ``varpar = (*theta, sigma)`` revisit the same theta with
        other sigmas (those cost nothing and give identical numbers). New thetas are evaluated
        together when the structure can batch them (``parts_many``).
        """
        keys = [t.tobytes() for t in thetas]
        new = {k: t for k, t in zip(keys, thetas, strict=True) if k not in self._by_theta}
        found = {k: self._by_theta[k] for k in keys if k in self._by_theta}
        if new:
            points = np.array(list(new.values()))
            parts_many = getattr(self.structure, "parts_many", None)
            if parts_many is None:
                parts = [self.structure.parts(t) for t in points]
                ld_l2, quad = np.array([p[0] for p in parts]), np.array([p[1] for p in parts])
            else:
                ld_l2, quad = parts_many(points)
            self.n_evaluations += len(new)
            found.update(zip(new, self._finish_many(ld_l2, quad), strict=True))
        for key, pieces in found.items():
            self._by_theta.pop(key, None)
            self._by_theta[key] = pieces
        while len(self._by_theta) > _THETA_CACHE:
            del self._by_theta[next(iter(self._by_theta))]
        return [found[k] for k in keys]

    def _varpars(self, varpars: np.ndarray) -> np.ndarray:
        varpars = np.asarray(varpars, dtype=float)
        if varpars.shape[-1:] != (len(self.lower) + 1,):
            raise InputError(
                f"varpar must have {len(self.lower) + 1} elements (*theta, sigma), "
                f"got shape {varpars.shape}."
            )
        return varpars

    def deviance_at(self, varpar: np.ndarray) -> float:
        """-2 log-likelihood at ``varpar = (*theta, sigma)`` with beta profiled (lmerTest's
        devfun_vp)."""
        return float(self.deviance_many(self._varpars(varpar)[None])[0])

    def deviance_many(self, varpars: np.ndarray) -> np.ndarray:
        """:meth:`deviance_at` at each row of ``varpars``, the new thetas evaluated together."""
        varpars = self._varpars(varpars)
        pieces = self._remembered(varpars[:, :-1])
        ld_l2, ld_rx2, r2 = np.array([(p.ld_l2, p.ld_rx2, p.r2) for p in pieces]).T
        s2 = np.array([float(s) ** 2 for s in varpars[:, -1]])
        dev = ld_l2 + r2 / s2 + self.df * np.log(2.0 * np.pi * s2)
        return dev + ld_rx2 if self.reml else dev

    def vcov_at(self, varpar: np.ndarray) -> np.ndarray:
        """``sigma^2 (X' V0^-1 X)^-1`` at ``varpar = (*theta, sigma)``."""
        return self.vcov_many(self._varpars(varpar)[None])[0]

    def vcov_many(self, varpars: np.ndarray) -> np.ndarray:
        """:meth:`vcov_at` at each row of ``varpars``, stacked."""
        varpars = self._varpars(varpars)
        pieces = self._remembered(varpars[:, :-1])
        s2 = np.array([float(s) ** 2 for s in varpars[:, -1]])
        return s2[:, None, None] * np.linalg.inv(np.array([p.xtvx for p in pieces]))
