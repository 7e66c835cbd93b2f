"""Numerical derivatives as R's numDeriv computes them (Richardson extrapolation).

``hessian`` uses relative step ``d = 0.1`` and ``jacobian`` ``d = 1e-4``, with 4 steps halved each
time, so the derivatives (and lmerTest-style degrees of freedom built on them) agree with R's.
Shared by the mixed-model families.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["hessian", "jacobian"]


_EPS = 1e-4
_ZERO_TOL = np.sqrt(np.finfo(float).eps / 7e-7)
_STEPS = 4


def _steps(x: np.ndarray, d: float) -> np.ndarray:
    """numDeriv's first step: relative ``d``, absolute ``1e-4`` where ``x`` is near zero."""
    return np.abs(d * x) + _EPS * (np.abs(x) < _ZERO_TOL)


def _richardson(approx: np.ndarray) -> np.ndarray:
    """Richardson extrapolation over the first axis (steps halved each time)."""
    a = approx
    for m in range(1, _STEPS):
        a = (a[1:] * 4.0**m - a[:-1]) / (4.0**m - 1.0)
    return a[0]


def _evaluate(
    func: Callable[[np.ndarray], object],
    many: Callable[[np.ndarray], np.ndarray] | None,
    points: list[np.ndarray],
) -> list:
    """``func`` at every point, or ``many`` at all of them at once (a ``(k, n)`` array)."""
    if many is None:
        return [func(point) for point in points]
    return list(many(np.array(points)))


def jacobian(
    func: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    d: float = 1e-4,
    *,
    many: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Jacobian of a vector (or array) valued ``func`` at ``x`` (numDeriv's ``jacobian``).

    ``many``, when given, evaluates ``func`` at a ``(k, len(x))`` array of points in one call
    (returning the ``k`` values stacked): every point is known before any is evaluated, so a
    function that batches its work gives the same derivative faster.

    Returns
    -------
    numpy.ndarray
        Shape ``(*func(x).shape, len(x))``.
    """
    x = np.asarray(x, dtype=float)
    h = _steps(x, d)
    points = []
    for i in range(len(x)):
        hi = h[i]
        for _ in range(_STEPS):
            e = np.zeros_like(x)
            e[i] = hi
            points += [x + e, x - e]
            hi /= 2
    values = [np.asarray(v) for v in _evaluate(func, many, points)]
    out = np.empty((*values[0].shape, len(x)))
    at = iter(values)
    for i in range(len(x)):
        approx = []
        hi = h[i]
        for _ in range(_STEPS):
            approx.append((next(at) - next(at)) / (2 * hi))
            hi /= 2
        out[..., i] = _richardson(np.array(approx))
    return out


def hessian(
    func: Callable[[np.ndarray], float],
    x: np.ndarray,
    d: float = 0.1,
    *,
    many: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Hessian of a scalar ``func`` at ``x`` (numDeriv's ``hessian``/``genD``).

    ``many``: as for :func:`jacobian`.
    """
    x = np.asarray(x, dtype=float)
    n = len(x)
    h0 = _steps(x, d)
    unit = np.eye(n)
    points = [x]
    for i in range(n):
        h = h0.copy()
        for _ in range(_STEPS):
            points += [x + unit[i] * h, x - unit[i] * h]
            h /= 2
    for i in range(n):
        for j in range(i):
            h = h0.copy()
            for _ in range(_STEPS):
                step = unit[i] * h + unit[j] * h
                points += [x + step, x - step]
                h /= 2
    values = iter(_evaluate(func, many, points))
    f0 = next(values)
    diag = np.empty(n)
    for i in range(n):
        approx = []
        h = h0.copy()
        for _ in range(_STEPS):
            f1, f2 = next(values), next(values)
            approx.append((f1 - 2 * f0 + f2) / h[i] ** 2)
            h /= 2
        diag[i] = _richardson(np.array(approx))
    out = np.diag(diag)
    for i in range(n):
        for j in range(i):
            approx = []
            h = h0.copy()
            for _ in range(_STEPS):
                f1, f2 = next(values), next(values)
                approx.append(
                    (f1 - 2 * f0 + f2 - diag[i] * h[i] ** 2 - diag[j] * h[j] ** 2)
                    / (2 * h[i] * h[j])
                )
                h /= 2
            out[i, j] = out[j, i] = _richardson(np.array(approx))
    return out
