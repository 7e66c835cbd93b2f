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
    points: np.ndarray,
) -> np.ndarray:
    """``func`` at every row of ``points``, or ``many`` at all of them at once, stacked."""
    if many is None:
        return np.array([np.asarray(func(point), dtype=float) for point in points])
    return np.asarray(many(points), dtype=float)


def _halved(h: np.ndarray) -> np.ndarray:
    """``h, h / 2, h / 4, ...``: the ``_STEPS`` step vectors, shape ``(_STEPS, len(h))``."""
    return h / 2.0 ** np.arange(_STEPS)[:, None]


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
    n = len(x)
    steps = _halved(_steps(x, d))  # (_STEPS, n)
    # for each coordinate i and step k: x + h_ik e_i, then x - h_ik e_i
    shift = np.eye(n)[:, None, :] * steps.T[:, :, None]  # (n, _STEPS, n)
    points = np.stack([x + shift, x - shift], axis=2).reshape(-1, n)
    values = _evaluate(func, many, points)
    values = values.reshape(n, _STEPS, 2, *values.shape[1:])
    width = (2 * steps.T).reshape(n, _STEPS, *([1] * (values.ndim - 3)))
    approx = (values[:, :, 0] - values[:, :, 1]) / width  # (n, _STEPS, ...)
    return np.moveaxis(_richardson(np.moveaxis(approx, 1, 0)), 0, -1)


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
    steps = _halved(_steps(x, d)).T  # (n, _STEPS): h[i] halved each step
    rows, cols = np.tril_indices(n, -1)
    # directions e_i, then e_i + e_j for i > j; for each and each step: x + h * dir, x - h * dir
    directions = np.vstack([np.eye(n), np.eye(n)[rows] + np.eye(n)[cols]])
    shift = directions[:, None, :] * steps.T[None, :, :]  # (directions, _STEPS, n)
    points = np.vstack([x[None, :], np.stack([x + shift, x - shift], axis=2).reshape(-1, n)])
    values = _evaluate(func, many, points)
    f0 = values[0]
    f1, f2 = values[1:].reshape(-1, _STEPS, 2).transpose(2, 0, 1)  # (directions, _STEPS)
    diag = _richardson(((f1[:n] - 2 * f0 + f2[:n]) / steps**2).T)
    h_i, h_j = steps[rows], steps[cols]
    cross = (f1[n:] - 2 * f0 + f2[n:] - diag[rows, None] * h_i**2 - diag[cols, None] * h_j**2) / (
        2 * h_i * h_j
    )
    out = np.diag(diag)
    out[rows, cols] = out[cols, rows] = _richardson(cross.T)
    return out
