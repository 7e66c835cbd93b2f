"""Batched small-matrix algebra for the LMM engine (:mod:`outcomes.models.lmm.blocks`).

A batch of q x r matrices is an array of shape (q, r, G): the group is the last, contiguous
axis, and loops run over the tiny q, never over groups. Closed forms for q <= 2 (a random
intercept, or intercept and slope) avoid the general batched Cholesky.
"""

from __future__ import annotations

import functools

import numpy as np


def _bmm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batched product ``a @ b`` of (q, r, G) and (r, s, G) arrays."""
    out = a[:, 0, None, :] * b[None, 0, :, :]
    for j in range(1, a.shape[1]):
        out += a[:, j, None, :] * b[None, j, :, :]
    return out


def _bt(a: np.ndarray) -> np.ndarray:
    """Batched transpose of a (q, r, G) array."""
    return a.transpose(1, 0, 2)


def _left(m: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``m @ b_g`` for one fixed (q, r) matrix and a (r, s, G) batch."""
    r, s, g = b.shape
    return (m @ b.reshape(r, s * g)).reshape(m.shape[0], s, g)


def _right(b: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``b_g @ m`` for a (q, r, G) batch and one fixed (r, s) matrix."""
    return np.einsum("rsg,st->rtg", b, m)


def _chol(h: np.ndarray) -> np.ndarray:
    """Batched lower Cholesky factor of symmetric positive definite (q, q, G) matrices."""
    q = h.shape[0]
    low = np.zeros_like(h)
    for j in range(q):
        d = h[j, j] - np.sum(low[j, :j] ** 2, axis=0)
        low[j, j] = np.sqrt(d)
        for i in range(j + 1, q):
            low[i, j] = (h[i, j] - np.sum(low[i, :j] * low[j, :j], axis=0)) / low[j, j]
    return low


def _tril_inv(low: np.ndarray) -> np.ndarray:
    """Batched inverse of lower-triangular (q, q, G) matrices."""
    q = low.shape[0]
    inv = np.zeros_like(low)
    for j in range(q):
        inv[j, j] = 1.0 / low[j, j]
        for i in range(j + 1, q):
            inv[i, j] = -np.sum(low[i, j:i] * inv[j:i, j], axis=0) / low[i, i]
    return inv


def _plus_identity(h: np.ndarray, sign: float = 1.0) -> np.ndarray:
    """``I + sign * h`` for a (q, q, G) batch, in place."""
    if sign != 1.0:
        h *= sign
    for j in range(h.shape[0]):
        h[j, j] += 1.0
    return h


def _spd_inverse(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse and log-determinant of a (q, q, G) batch of symmetric positive definite
    matrices: closed forms for q <= 2 (the common case), Cholesky otherwise."""
    q = h.shape[0]
    if q == 1:
        return 1.0 / h, np.log(h[0, 0])
    if q == 2:
        det = h[0, 0] * h[1, 1] - h[0, 1] * h[1, 0]
        inv = np.empty_like(h)
        inv[0, 0] = h[1, 1] / det
        inv[1, 1] = h[0, 0] / det
        inv[0, 1] = inv[1, 0] = -h[0, 1] / det
        return inv, np.log(det)
    low = _chol(h)
    linv = _tril_inv(low)
    return _bmm(_bt(linv), linv), 2.0 * np.sum(np.log(low[np.arange(q), np.arange(q)]), axis=0)


def _relative_precision(
    lam: np.ndarray, ztz: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``H^-1``, ``Lambda H^-1 Lambda'`` and ``log|H|`` for ``H = Lambda' G Lambda + I``, for
    one fixed lower-triangular ``Lambda`` (q, q) and a (q, q, G) batch of symmetric ``G``.

    Closed forms on the (G,) element arrays for q <= 2 (the common case: a random intercept,
    or intercept and slope); batched products and Cholesky otherwise.
    """
    q = lam.shape[0]
    if q == 1:
        h = lam[0, 0] ** 2 * ztz + 1.0
        hinv = 1.0 / h
        return hinv, lam[0, 0] ** 2 * hinv, np.log(h[0, 0])
    if q == 2:
        h, det, to_m = _rows_q2(lam, ztz[(0, 0, 1), (0, 1, 1)])
        hinv = np.empty_like(ztz)
        hinv[0, 0] = h[2] / det
        hinv[1, 1] = h[0] / det
        hinv[0, 1] = hinv[1, 0] = -h[1] / det
        rows = to_m @ h / det
        m = np.empty_like(ztz)
        m[0, 0], m[0, 1], m[1, 0], m[1, 1] = rows[0], rows[1], rows[1], rows[2]
        return hinv, m, np.log(det)
    hinv, logdet = _spd_inverse(_plus_identity(_right(_left(lam.T, ztz), lam)))
    return hinv, _right(_left(lam, hinv), lam.T), logdet


def _rows_q2(lam: np.ndarray, g_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For q = 2: the rows (0, 0), (0, 1), (1, 1) of ``H = Lambda' G Lambda + I``, ``det(H)``
    and the 3 x 3 matrix taking the rows of ``H`` to those of ``det(H) Lambda H^-1 Lambda'``.

    Both maps are linear in the rows, so each is one 3 x 3 matrix product over the groups.
    """
    to_h, to_m = _maps_q2(lam)
    h = to_h @ g_rows
    h[0] += 1.0
    h[2] += 1.0
    det = h[0] * h[2] - h[1] * h[1]
    return h, det, to_m


def _maps_q2(lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For q = 2, on the rows (0, 0), (0, 1), (1, 1) of symmetric 2 x 2 matrices: the 3 x 3
    maps ``G -> Lambda' G Lambda`` and ``H -> Lambda adj(H) Lambda'`` (``Lambda`` lower
    triangular; ``adj(H) = det(H) H^-1`` has the rows ``(h11, -h01, h00)``).

    ``lam`` is one ``Lambda`` (2, 2), giving (3, 3) maps, or a stack (T, 2, 2), giving (3, 3, T).
    """
    l0, l1, l2 = lam[..., 0, 0], lam[..., 1, 0], lam[..., 1, 1]
    zero = np.zeros_like(l0)
    to_h = np.array(
        [[l0 * l0, 2 * l0 * l1, l1 * l1], [zero, l0 * l2, l1 * l2], [zero, zero, l2 * l2]]
    )
    to_m = np.array(
        [[zero, zero, l0 * l0], [zero, -l0 * l2, l0 * l1], [l2 * l2, -2 * l1 * l2, l1 * l1]]
    )
    return to_h, to_m


@functools.cache
def _upper(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.triu_indices(n)``, made once per size (it costs more than a small product);
    the arrays are shared, so read-only."""
    rows, cols = np.triu_indices(n)
    rows.flags.writeable = cols.flags.writeable = False
    return rows, cols


@functools.cache
def _lower_by_columns(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the lower triangle of an n x n matrix, column by column (shared,
    read-only arrays, as :func:`_upper`)."""
    cols, rows = _upper(n)
    return rows, cols


def _relative_precision_many(lams: np.ndarray, ztz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``Lambda H^-1 Lambda'`` (T, q, q, G) and ``log|H|`` (T, G) of :func:`_relative_precision`
    for a stack of ``Lambda`` (T, q, q), all at once for q <= 2 with the same arithmetic (the
    same numbers: stacked matrix products run per matrix, and ``float_power`` is the ``**`` of
    a scalar), one ``Lambda`` at a time otherwise."""
    n, q = lams.shape[:2]
    if q == 1:
        lam2 = np.float_power(lams[:, 0, 0], 2.0)[:, None, None, None]
        h = lam2 * ztz + 1.0
        return lam2 * (1.0 / h), np.log(h[:, 0, 0])
    if q == 2:
        # contiguous (T, 3, 3) stacks, so that matmul takes the BLAS path of a single matrix
        to_h, to_m = (np.ascontiguousarray(x.transpose(2, 0, 1)) for x in _maps_q2(lams))
        h = np.matmul(to_h, ztz[(0, 0, 1), (0, 1, 1)])
        h[:, 0] += 1.0
        h[:, 2] += 1.0
        det = h[:, 0] * h[:, 2] - h[:, 1] * h[:, 1]
        rows = np.matmul(to_m, h) / det[:, None, :]  # M[0, 0], M[0, 1], M[1, 1]
        return rows[:, (0, 1, 1, 2)].reshape(n, 2, 2, -1), np.log(det)
    each = [_relative_precision(lam, ztz) for lam in lams]
    return np.array([m for _, m, _ in each]), np.array([logdet for _, _, logdet in each])


def _gram(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``sum_g a[i, k, g] b[j, k, g]`` for (i, k, G) and (j, k, G) batches: one BLAS product."""
    return a.reshape(a.shape[0], -1) @ b.reshape(b.shape[0], -1).T
