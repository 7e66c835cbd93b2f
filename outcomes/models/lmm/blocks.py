"""The random-effects structures of :mod:`outcomes.models.lmm.engine` as per-group algebra.

Per-group cross-products, ``theta`` <-> ``Lambda``, and the one-level and two-level nested
structures: each gives ``log|L|^2`` and the quadratic term of the profiled criterion
(:mod:`.criterion`) at one theta or many, and the criterion's gradient.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse

from outcomes.errors import InputError
from outcomes.models.lmm.batched import (
    _bmm,
    _bt,
    _chol,
    _gram,
    _left,
    _lower_by_columns,
    _maps_q2,
    _plus_identity,
    _relative_precision,
    _relative_precision_many,
    _right,
    _tril_inv,
    _upper,
)
from outcomes.models.lmm.types import RandomTerm

_TENSOR_BUDGET = 20_000_000  # max elements of the pattern tensor (160 MB) before falling back
_BATCH_BUDGET = 2_000_000  # elements of M (thetas x groups) per batched product (16 MB)
_CACHE_BUDGET = 100_000  # elements (thetas x groups) per block of the other batched paths (0.8 MB)


class _Groups:
    """One grouping factor's rows and design ``z``: per-group cross-products ``Z_i' R_i``.

    For each column of ``z``, the sparse (groups x rows) matrix whose row ``g`` holds that
    column's values on group ``g``'s rows; a cross-product with ``R`` is one sparse product per
    column of ``z``, with no (rows x columns) temporary. The matrices are built once, so the
    products with a new response (a refit) cost one sparse product each.
    """

    def __init__(self, codes: np.ndarray, n_groups: int, z: np.ndarray) -> None:
        self.n_groups = n_groups
        n = len(codes)
        pattern = scipy.sparse.csr_matrix((np.ones(n), (codes, np.arange(n))), shape=(n_groups, n))
        indices, indptr = pattern.indices, pattern.indptr
        self._weights = [
            scipy.sparse.csr_matrix((z[indices, a], indices, indptr), shape=(n_groups, n))
            for a in range(z.shape[1])
        ]

    def crossprod(self, right: np.ndarray) -> np.ndarray:
        """Per-group ``Z_i' right_i`` as a (q, b, G) array."""
        out = np.empty((len(self._weights), right.shape[1], self.n_groups))
        for a, weights in enumerate(self._weights):
            out[a] = (weights @ right).T
        return out


def _row_patterns(keys: np.ndarray, most: int) -> tuple[np.ndarray, int]:
    """Integer label of each distinct row of ``keys`` (by hashing, not sorting).

    Stops early, returning the labels so far, once there are more than ``most`` of them (the
    caller then has no use for them).
    """
    label = np.zeros(len(keys), dtype=np.int64)
    n_labels = 1
    for col in keys.T:
        codes, uniques = pd.factorize(col)
        label, labels = pd.factorize(label * len(uniques) + codes)
        n_labels = len(labels)
        if n_labels > most:
            break
    return label, n_labels


# --------------------------------------------------------------------------------------------
# Theta <-> Lambda
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ThetaBlock:
    """Where one term's Lambda sits in theta."""

    q: int
    start: int

    @property
    def size(self) -> int:
        return self.q * (self.q + 1) // 2

    @property
    def index(self) -> tuple[np.ndarray, np.ndarray]:
        """Rows and columns of Lambda's non-zero elements, column by column (lme4's order)."""
        return _lower_by_columns(self.q)

    def lam(self, theta: np.ndarray) -> np.ndarray:
        out = np.zeros((self.q, self.q))
        rows, cols = self.index
        out[rows, cols] = theta[self.start : self.start + self.size]
        return out

    def lams(self, thetas: np.ndarray) -> np.ndarray:
        """:meth:`lam` for each row of ``thetas``, shape (T, q, q)."""
        out = np.zeros((len(thetas), self.q, self.q))
        rows, cols = self.index
        out[:, rows, cols] = thetas[:, self.start : self.start + self.size]
        return out

    def lower(self) -> np.ndarray:
        rows, cols = self.index
        return np.where(rows == cols, 0.0, -np.inf)

    def start_values(self) -> np.ndarray:
        rows, cols = self.index
        return np.where(rows == cols, 1.0, 0.0)


# --------------------------------------------------------------------------------------------
# Structures. Each exposes blocks, n_theta, parts(theta) -> (log|L|^2, A'Z Lambda H^-1 Lambda'
# Z'A, state) with A = [X y] and H = Lambda'Z'Z Lambda + I, and grad(theta, omega, state).
# --------------------------------------------------------------------------------------------


class _OneLevel:
    """One grouping factor with a q-dimensional random effect (unstructured covariance).

    For each group ``i`` (or each pattern of groups sharing ``G_i = Z_i'Z_i``, weight
    ``w_i`` groups), ``H_i = Lambda' G_i Lambda + I``; ``log|L|^2 = sum_i w_i log|H_i|`` and
    ``A'Z Lambda H^-1 Lambda' Z'A = sum_i V_i' H_i^-1 V_i`` with ``V_i = Lambda' Z_i'A_i``.

    Per group (not compressed) with q = 2, :meth:`parts` and :meth:`grad` reuse scratch
    arrays of the structure: one structure serves one fit at a time (:meth:`with_response`
    gives each response its own).
    """

    def __init__(self, term: RandomTerm, x: np.ndarray, r: np.ndarray) -> None:
        self.block = _ThetaBlock(term.z.shape[1], 0)
        self.blocks = (self.block,)
        q = self.block.q
        g = term.n_groups
        z = np.asarray(term.z, dtype=float)
        self._groups = _Groups(np.asarray(term.codes), g, z)
        ztz = self._groups.crossprod(z)
        self._ztx = self._groups.crossprod(x)
        self.p_a = x.shape[1] + 1
        # Groups sharing Z_i'Z_i share everything but their cross-products with [X y].
        rows, cols = np.triu_indices(q)
        self._pattern, k = _row_patterns(ztz[rows, cols].T, most=min(g // 4, 5_000))
        m = q * self.p_a
        self.compressed = 4 * k <= g and k <= 5_000 and k * m * m <= _TENSOR_BUDGET
        if self.compressed:
            first = np.unique(self._pattern, return_index=True)[1]
            self.ztz = ztz[:, :, first]
            self.weight = np.bincount(self._pattern, minlength=k).astype(float)
        else:
            self.ztz = ztz
            self.weight = np.ones(g)
        self._set_response(r)

    def _set_response(self, r: np.ndarray) -> None:
        """The cross-products with the response column of ``A = [X r]``."""
        zta = np.concatenate([self._ztx, self._groups.crossprod(r[:, None])], axis=1)
        if self.compressed:
            self.tensor = self._pattern_tensor(zta, self._pattern, len(self.weight))
        else:
            self.zta = zta
        self._products: np.ndarray | None = None  # of this response; made when first needed
        self._work: dict[str, np.ndarray] | None = None  # q = 2 scratch of parts() and grad()
        self._filled = 0  # fillings of the scratch: grad() checks it still holds its theta's

    def with_response(self, r: np.ndarray) -> _OneLevel:
        """The same structure for another response column (nothing else is recomputed)."""
        new = copy.copy(self)
        new._set_response(r)
        return new

    @property
    def n_theta(self) -> int:
        return self.block.size

    def _pattern_tensor(self, zta: np.ndarray, pattern: np.ndarray, k: int) -> np.ndarray:
        """``T[(a, b, k), (c, d)] = sum over groups i of pattern k of ZtA_i[a, c] ZtA_i[b, d]``.

        One BLAS product per pattern (there are at most 5,000 patterns, and at most a quarter
        as many as groups).
        """
        q, p_a, g = zta.shape
        flat = zta.transpose(2, 0, 1).reshape(g, q * p_a)
        order = np.argsort(pattern, kind="stable")
        bounds = np.r_[0, np.cumsum(np.bincount(pattern, minlength=k))]
        tensor = np.empty((k, q * p_a, q * p_a))
        for j in range(k):
            rows = flat[order[bounds[j] : bounds[j + 1]]]
            tensor[j] = rows.T @ rows
        # (k, a, c, b, d) -> (a, b, k, c, d), matching the (q, q, K) batch layout
        tensor = tensor.reshape(k, q, p_a, q, p_a).transpose(1, 3, 0, 2, 4)
        return np.ascontiguousarray(tensor.reshape(q * q * k, p_a * p_a))

    def parts(self, theta: np.ndarray) -> tuple[float, np.ndarray, dict]:
        """``log|L|^2`` and ``sum_i A_i'Z_i Lambda H_i^-1 Lambda' Z_i'A_i``."""
        lam = self.block.lam(theta)
        if self.compressed:
            hinv, m, logdet = _relative_precision(lam, self.ztz)  # m = Lambda H^-1 Lambda'
            quad = (m.reshape(-1) @ self.tensor).reshape(self.p_a, self.p_a)
            return float(logdet @ self.weight), quad, {"lam": lam, "hinv": hinv}
        if lam.shape[0] == 2:
            ld_l2, m_rows = self._precision_q2(lam)
            return ld_l2, self._quad(m_rows), {"lam": lam, "filled": self._filled}
        hinv, m, logdet = _relative_precision(lam, self.ztz)
        m_rows = m[_upper(lam.shape[0])]
        return float(np.sum(logdet)), self._quad(m_rows), {"lam": lam, "hinv": hinv}

    def _scratch(self) -> dict[str, np.ndarray]:
        """(rows, G) arrays reused by every q = 2 evaluation: fresh temporaries this big cost
        page faults. ``g_one`` holds the rows (0, 0), (0, 1), (1, 1) of ``Z_i'Z_i`` and ones."""
        if self._work is None:
            g = self.ztz.shape[-1]
            g_one = np.vstack([self.ztz[(0, 0, 1), (0, 1, 1)], np.ones(g)])
            self._work = {"g_one": g_one}
            for name, rows in (("hm", 6), ("delta", 1), ("o", 3), ("t", 1)):
                self._work[name] = np.empty((rows, g))
        return self._work

    def _precision_q2(self, lam: np.ndarray) -> tuple[float, np.ndarray]:
        """For q = 2: ``log|L|^2`` and, in the scratch arrays, the rows (0, 0), (0, 1), (1, 1)
        of each ``H_i`` (``hm[:3]``) and ``M_i = Lambda H_i^-1 Lambda'`` (``hm[3:]``), and
        ``1 / |H_i|`` (``delta``). ``H_i^-1 = adj(H_i) / |H_i|`` is left implicit."""
        w = self._scratch()
        hm, delta, tmp = w["hm"], w["delta"][0], w["t"][0]
        to_h, to_m = _maps_q2(lam)
        coef = np.empty((6, 4))  # to H (+ I, on the ones of g_one), then to |H| M
        coef[:3, :3] = to_h
        coef[:3, 3] = (1.0, 0.0, 1.0)
        np.matmul(to_m, coef[:3], out=coef[3:])
        np.matmul(coef, w["g_one"], out=hm)
        h, m = hm[:3], hm[3:]
        np.multiply(h[0], h[2], out=delta)
        delta -= np.multiply(h[1], h[1], out=tmp)
        ld_l2 = float(np.sum(np.log(delta, out=tmp)))
        np.divide(1.0, delta, out=delta)
        m *= delta
        self._filled += 1
        return ld_l2, m

    def _fits_budget(self) -> bool:
        """Whether the pair products ``S_i`` of :meth:`parts_many` may be kept in memory."""
        q, p_a, g = self.zta.shape
        return q * (q + 1) // 2 * p_a * p_a * g <= _TENSOR_BUDGET

    def _quad(self, m_rows: np.ndarray) -> np.ndarray:
        """``sum_i ZtA_i' M_i ZtA_i`` from the rows ``a <= b`` of each ``M_i`` (pairs, G).

        One product with the pair products ``S_i`` when they fit in memory, else one BLAS
        product per pair of random effects.
        """
        q, p_a, _ = self.zta.shape
        if self._fits_budget():
            upper = self._pair_products() @ m_rows.reshape(-1)
            rc, rd = _upper(p_a)
            quad = np.empty((p_a, p_a))
            quad[rc, rd] = upper
            quad[rd, rc] = upper
            return quad
        quad = np.zeros((p_a, p_a))
        for k, (a, b) in enumerate(zip(*_upper(q), strict=True)):
            part = (self.zta[a] * m_rows[k]) @ self.zta[b].T
            quad += part if a == b else part + part.T
        return quad

    def _omega_rows(self, omega: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Rows ``a <= b`` of each ``O_i = Z_i'A_i Omega_s A_i'Z_i`` (``Omega_s`` the symmetric
        part of ``Omega``), into ``out`` (pairs, G); the rows ``a < b`` doubled (``O_i[a, b] +
        O_i[b, a]``, as in the pair products)."""
        q, p_a, _ = self.zta.shape
        ra, rb = _upper(q)
        if self._fits_budget():
            rc, rd = _upper(p_a)
            weights = omega[rc, rd] + omega[rd, rc]
            weights[rc == rd] *= 0.5
            products = self._pair_products()
            return np.matmul(weights, products, out=out.reshape(-1)).reshape(out.shape)
        both = omega + omega.T
        for a in range(q):
            weighted = both @ self.zta[a]
            for k in np.flatnonzero(ra == a):
                out[k] = np.einsum("cg,cg->g", weighted, self.zta[rb[k]])
        out[ra == rb] *= 0.5
        return out

    def parts_many(self, thetas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``log|L|^2`` (shape ``(T,)``) and the quadratic term (``(T, p_A, p_A)``) of
        :meth:`parts` at each of the ``T`` rows of ``thetas``, evaluated together.

        Used by Satterthwaite's numerical derivatives (about 75 thetas). With patterns:
        ``M = Lambda H^-1 Lambda'`` for every theta and pattern at once, then the product of
        :meth:`parts` with the pattern tensor, theta by theta (the same numbers as
        :meth:`parts`). Without: :meth:`_parts_many_q2` for q = 2, else
        :meth:`_parts_many_chunked`.
        """
        thetas = np.atleast_2d(np.asarray(thetas, dtype=float))
        n, q, p_a = len(thetas), self.block.q, self.p_a
        lams = self.block.lams(thetas)
        if self.compressed:
            m, logdet = _relative_precision_many(lams, self.ztz)
            # vector-matrix products, one per theta, as in parts
            ld_l2 = np.matmul(logdet[:, None, :], self.weight[:, None])[:, 0, 0]
            quad = np.matmul(m.reshape(n, 1, -1), self.tensor)
            return ld_l2, quad.reshape(n, p_a, p_a)
        if not self._fits_budget():
            parts = [self.parts(theta) for theta in thetas]
            return np.array([part[0] for part in parts]), np.array([part[1] for part in parts])
        if q == 2:
            return self._parts_many_q2(lams)
        return self._parts_many_chunked(lams)

    def _parts_many_q2(self, lams: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`parts_many` without patterns for q = 2, by the adjugate.

        For 2 x 2 matrices ``adj`` is linear and ``Lambda adj(Lambda) = det(Lambda) I``, so
        ``det(H_i) M_i = d^2 adj(G_i) + Psi`` and ``det(H_i) = d^2 det(G_i) + tr(G_i Psi) + 1``
        with ``d = det(Lambda)`` and ``Psi = Lambda Lambda'``. The quadratic term
        ``sum_i sum_{a <= b} M_i[a, b] S_i[a, b]`` is then
        ``sum_i (d^2 Q_i + Psi_00 S_i[0, 0] + Psi_01 S_i[0, 1] + Psi_11 S_i[1, 1]) / det(H_i)``
        with ``Q_i = sum_{a <= b} adj(G_i)[a, b] S_i[a, b]``: per theta and group only
        ``det(H_i)``, then one product of the reciprocals (thetas x groups) with the products
        of :meth:`_adjugate_products` (groups x 4 upper triangles), block by block of groups
        (cache-sized, so nothing of the size of the data is allocated).
        """
        n, g = len(lams), self.ztz.shape[-1]
        l0, l1, l2 = lams[:, 0, 0], lams[:, 1, 0], lams[:, 1, 1]
        d2 = (l0 * l2) ** 2
        psi = (l0 * l0, l0 * l1, l1 * l1 + l2 * l2)
        to_det = np.column_stack([d2, psi[0], 2.0 * psi[1], psi[2]])  # on (det G, G rows)
        block = min(g, max(1, _CACHE_BUDGET // n))
        det_buffer, recip_buffer = np.empty((n, block)), np.empty((n, block))
        ld_l2 = np.zeros(n)
        n_products = 2 * self.p_a * (self.p_a + 1)  # 4 upper triangles
        sums = np.zeros((n, n_products))
        scratch = np.empty((4 + 2 * n_products, block))
        for start in range(0, g, block):
            stop = min(g, start + block)
            features = self._adjugate_products(start, stop, scratch)
            g_rows, products = features[:4], features[4:]
            det = np.matmul(to_det, g_rows, out=det_buffer[:, : stop - start])
            det += 1.0
            recip = np.divide(1.0, det, out=recip_buffer[:, : stop - start])
            ld_l2 += np.sum(np.log(det, out=det), axis=1)
            sums += recip @ products.T
        coef = np.column_stack([d2, *psi])
        return ld_l2, self._symmetric(np.einsum("tk,tke->te", coef, sums.reshape(n, 4, -1)))

    def _adjugate_products(self, start: int, stop: int, out: np.ndarray) -> np.ndarray:
        """For :meth:`_parts_many_q2` and groups ``start:stop``, into ``out`` (at least
        (4 + 8 x elements, stop - start)): the rows ``(det G_i, G_i[0, 0], G_i[0, 1], G_i[1, 1])``,
        then the upper triangles of ``Q_i``, ``S_i[0, 0]``, ``S_i[0, 1]`` and ``S_i[1, 1]``
        (one row per element, groups along the columns; the rest is scratch space)."""
        n = stop - start
        rc, rd = np.triu_indices(self.p_a)
        e = len(rc)
        g00, g01, g11 = (self.ztz[a, b, start:stop] for a, b in ((0, 0), (0, 1), (1, 1)))
        np.multiply(g00, g11, out=out[0, :n])
        out[0, :n] -= g01 * g01
        out[1:4, :n] = g00, g01, g11
        q_rows, s00, s01, s11 = (out[4 + k * e : 4 + (k + 1) * e, :n] for k in range(4))
        z0c, z0d, z1c, z1d = (out[4 + k * e : 4 + (k + 1) * e, :n] for k in range(4, 8))
        # the rows c and d of each element (c, d); mode "clip" (the indices are valid) writes
        # straight into out, where the default mode goes through a buffer
        for z, rows, scratch in ((0, rc, z0c), (0, rd, z0d), (1, rc, z1c), (1, rd, z1d)):
            np.take(self.zta[z, :, start:stop], rows, axis=0, out=scratch, mode="clip")
        np.multiply(z0c, z0d, out=s00)
        np.multiply(z0c, z1d, out=s01)
        s01 += np.multiply(z1c, z0d, out=z0d)
        np.multiply(z1c, z1d, out=s11)
        # Q = adj(G)[0, 0] S[0, 0] + adj(G)[0, 1] S[0, 1] + adj(G)[1, 1] S[1, 1]
        np.multiply(s00, g11, out=q_rows)
        q_rows -= np.multiply(s01, g01, out=z0c)
        q_rows += np.multiply(s11, g00, out=z0c)
        return out[: 4 + 4 * e, :n]

    def _parts_many_chunked(self, lams: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`parts_many` without patterns for any q.

        Per group, the quadratic term is ``sum_{a <= b} M_i[a, b] S_i[a, b]`` with the fixed
        products ``S_i[a, b] = Z_i'A_i[a]' Z_i'A_i[b]`` (plus its transpose when ``a != b``,
        :meth:`_pair_products`): for a chunk of thetas, one product of the ``M``
        (thetas x groups, at most ``_BATCH_BUDGET`` elements) with the ``S``.
        """
        products = self._pair_products()
        ra, rb = np.triu_indices(self.block.q)
        g = self.ztz.shape[-1]
        per_chunk = max(1, _BATCH_BUDGET // (len(ra) * g))
        ld_l2, rows = [], []
        for start in range(0, len(lams), per_chunk):
            m, logdet = _relative_precision_many(lams[start : start + per_chunk], self.ztz)
            ld_l2.append(np.sum(logdet, axis=1))
            rows.append(m[:, ra, rb].reshape(len(m), -1) @ products.T)
        return np.concatenate(ld_l2), self._symmetric(np.concatenate(rows))

    def _symmetric(self, rows: np.ndarray) -> np.ndarray:
        """(T, p_A, p_A) symmetric matrices from their upper triangles (T, elements)."""
        rc, rd = np.triu_indices(self.p_a)
        out = np.empty((len(rows), self.p_a, self.p_a))
        out[:, rc, rd] = rows
        out[:, rd, rc] = rows
        return out

    def _pair_products(self) -> np.ndarray:
        """The ``S_i[a, b]`` of :meth:`_parts_many_chunked`: upper triangles, shape
        (elements, pairs x G); made once per response, when first needed."""
        if self._products is not None:
            return self._products
        q, p_a, g = self.zta.shape
        pairs = list(zip(*np.triu_indices(q), strict=True))
        elements = list(zip(*np.triu_indices(p_a), strict=True))
        out = np.empty((len(elements), len(pairs), g))
        for e, (c, d) in enumerate(elements):
            for k, (a, b) in enumerate(pairs):
                np.multiply(self.zta[a, c], self.zta[b, d], out=out[e, k])
                if a != b:
                    out[e, k] += self.zta[b, c] * self.zta[a, d]
        self._products = out.reshape(len(elements), len(pairs) * g)
        return self._products

    def grad(self, theta: np.ndarray, omega: np.ndarray, state: dict) -> np.ndarray:
        """Gradient of the profiled criterion with respect to theta.

        Uses the q x q matrix ``D`` whose ``[r, c]`` element is the derivative with respect
        to ``Lambda[r, c]``: ``D = 2 sum_i w_i G_i Lambda H_i^-1 - 2 sum_i R_i Omega U_i'``,
        with ``U_i = P_i Z_i'A_i``, ``P_i = H_i^-1 Lambda'`` and ``R_i = Z_i'A_i - G_i Lambda
        U_i``, so that ``R_i Omega U_i' = (I - G_i Lambda P_i) O_i P_i'`` with ``O_i =
        Z_i'A_i Omega A_i'Z_i`` (summed within patterns by the tensor). Per group (``w_i = 1``)
        that is ``D / 2 = sum_i (G_i - O_i) Lambda H_i^-1 + sum_i G_i Lambda N_i`` with
        ``N_i = P_i O_i P_i'``.
        """
        lam = state["lam"]
        if not self.compressed and lam.shape[0] == 2:
            return self._grad_q2(lam, omega, state)
        rows, cols = self.block.index
        if not self.compressed:
            return self._grad_groups(lam, omega, state)[rows, cols]
        hinv = state["hinv"]
        q, _, u = hinv.shape
        g_lam = _right(self.ztz, lam)  # G Lambda
        d1 = _gram(g_lam * self.weight, _bt(hinv))
        p = _right(hinv, lam.T)  # P = H^-1 Lambda'
        om = (self.tensor @ omega.reshape(-1)).reshape(q, q, u)
        resid = _plus_identity(_bmm(g_lam, p), -1.0)  # I - G Lambda P
        d2 = _gram(_bmm(resid, om), p)
        full = 2.0 * d1 - 2.0 * d2
        return full[rows, cols]

    def _grad_groups(self, lam: np.ndarray, omega: np.ndarray, state: dict) -> np.ndarray:
        """``D`` of :meth:`grad` group by group (not compressed; q = 1 or q >= 3)."""
        q, g = lam.shape[0], self.ztz.shape[-1]
        ra, rb = _upper(q)
        pair = np.empty((q, q), dtype=int)
        pair[ra, rb] = pair[rb, ra] = np.arange(len(ra))
        om = self._omega_rows(omega, np.empty((len(ra), g)))
        om[ra != rb] *= 0.5
        om = om[pair]
        hinv = state["hinv"]
        p = _right(hinv, lam.T)  # P = H^-1 Lambda'
        n = _bmm(_bmm(p, om), _bt(p))
        return 2.0 * (_gram(_right(self.ztz - om, lam), hinv) + _gram(_right(self.ztz, lam), n))

    def _grad_q2(self, lam: np.ndarray, omega: np.ndarray, state: dict) -> np.ndarray:
        """The gradient for q = 2 (not compressed), by 2 x 2 identities on the rows (0, 0),
        (0, 1), (1, 1).

        With ``A_i = H_i^-1``, ``B_i = Lambda' O_i Lambda`` and ``t_i = tr(A_i B_i) =
        tr(M_i O_i)``, ``N_i = A_i B_i A_i = t_i A_i - |A_i| adj(B_i)``, so ``D / 2 =
        sum_i ((1 + t_i) G_i - O_i) Lambda A_i - sum_i G_i Lambda |A_i| adj(B_i)``, and
        ``Lambda adj(B_i) = |Lambda| adj(O_i) adj(Lambda)'``. The elements of ``D`` below the
        diagonal are then sums of 11 dot products over the groups of rows of ``X_i = ((1 +
        t_i) G_i - O_i) |A_i|`` with those of ``adj(H_i)`` (``A_i = |A_i| adj(H_i)``), and of
        rows of ``G_i`` with those of ``|A_i| O_i``.
        """
        if state.get("filled") != self._filled:  # the scratch holds another theta's pieces
            self._precision_q2(lam)
        w = self._scratch()
        g_rows, h, m, delta, t = w["g_one"][:3], w["hm"][:3], w["hm"][3:], w["delta"][0], w["t"][0]
        o = self._omega_rows(omega, w["o"])
        m *= o  # m is used up: tr(M O) is the sum of its rows (the row (0, 1) of o is doubled)
        np.add(m[0], m[1], out=t)
        t += m[2]
        o[1] *= 0.5
        t += 1.0
        x = np.multiply(g_rows, t, out=m)
        x -= o
        x *= delta
        o *= delta
        self._filled += 1  # m is overwritten
        # X Lambda A: adj(H) has the rows (h11, -h01, h00)
        x0h2, x1h2, x1h1, x2h2, x2h1, x2h0 = (
            np.dot(x[i], h[j]) for i, j in ((0, 2), (1, 2), (1, 1), (2, 2), (2, 1), (2, 0))
        )
        # G adj(O) with |A| O in o
        g0o2, g1o1, g1o2, g2o1, g2o0 = (
            np.dot(g_rows[i], o[j]) for i, j in ((0, 2), (1, 1), (1, 2), (2, 1), (2, 0))
        )
        l0, l1, l2 = lam[0, 0], lam[1, 0], lam[1, 1]
        det = l0 * l2
        half = np.array(
            [
                l0 * x0h2 + l1 * x1h2 - l2 * x1h1 - det * l2 * (g0o2 - g1o1),
                l0 * x1h2 + l1 * x2h2 - l2 * x2h1 - det * l2 * (g1o2 - g2o1),
                l2 * x2h0 - l0 * x1h1 - l1 * x2h1 + det * (l0 * (g1o1 - g2o0) + l1 * (g1o2 - g2o1)),
            ]
        )
        return 2.0 * half


class _TwoLevel:
    """Two nested grouping factors: an outer term (q1) and an inner term (q2) within it."""

    def __init__(self, outer: RandomTerm, inner: RandomTerm, x: np.ndarray, r: np.ndarray) -> None:
        self.outer_block = _ThetaBlock(outer.z.shape[1], 0)
        self.inner_block = _ThetaBlock(inner.z.shape[1], self.outer_block.size)
        self.blocks = (self.outer_block, self.inner_block)
        n_outer, n_inner = outer.n_groups, inner.n_groups
        outer_codes, inner_codes = np.asarray(outer.codes), np.asarray(inner.codes)
        parent = np.full(n_inner, -1)
        parent[inner_codes] = outer_codes
        if np.any(parent[inner_codes] != outer_codes):
            raise InputError(
                f"The groups of '{inner.group}' are not nested within '{outer.group}': some "
                f"'{inner.group}' group has rows in more than one '{outer.group}' group. Code "
                f"the inner factor as the combination of both (e.g. '{outer.group}:side')."
            )
        # Inner levels without rows contribute nothing (H = I); give them any parent.
        parent[parent < 0] = 0
        self.parent = parent
        self.p_a = x.shape[1] + 1
        z1 = np.asarray(outer.z, dtype=float)
        z2 = np.asarray(inner.z, dtype=float)
        self._inner = _Groups(inner_codes, n_inner, z2)
        self._outer = _Groups(outer_codes, n_outer, z1)
        self.ww = self._inner.crossprod(z2)
        self.wz = self._inner.crossprod(z1)
        self.zz = self._outer.crossprod(z1)
        self._wx = self._inner.crossprod(x)
        self._zx = self._outer.crossprod(x)
        self._set_response(r)
        # sums over the inner groups of each outer group: (J, S) @ (S, ...)
        self.to_outer = scipy.sparse.csr_matrix(
            (np.ones(n_inner), (parent, np.arange(n_inner))), shape=(n_outer, n_inner)
        )

    def _set_response(self, r: np.ndarray) -> None:
        """The cross-products with the response column of ``A = [X r]``."""
        self.wa = np.concatenate([self._wx, self._inner.crossprod(r[:, None])], axis=1)
        self.za = np.concatenate([self._zx, self._outer.crossprod(r[:, None])], axis=1)

    def with_response(self, r: np.ndarray) -> _TwoLevel:
        """The same structure for another response column (nothing else is recomputed)."""
        new = copy.copy(self)
        new._set_response(r)
        return new

    @property
    def n_theta(self) -> int:
        return self.outer_block.size + self.inner_block.size

    def _sum_to_outer(self, x: np.ndarray) -> np.ndarray:
        shape = x.shape[:-1]
        flat = x.reshape(-1, x.shape[-1])
        return np.asarray(self.to_outer @ flat.T).T.reshape(*shape, -1)

    def parts(self, theta: np.ndarray) -> tuple[float, np.ndarray, dict]:
        """``log|L|^2`` and ``A'Z Lambda H^-1 Lambda' Z'A`` by the inner-first block Cholesky.

        With inner blocks first, ``L = [[L2, 0], [B, L1]]``: ``L2_s L2_s' = Lambda2' W_s'W_s
        Lambda2 + I``; ``B_s' = L2_s^-1 K_s`` with ``K_s = Lambda2' W_s'Z_s Lambda1``;
        ``L1_j L1_j' = S_j = Lambda1' Z_j'Z_j Lambda1 + I - sum_{s in j} B_s B_s'`` (the Schur
        complement); and the forward solve gives ``c_s = L2_s^-1 Lambda2' W_s'A_s``,
        ``c_j = L1_j^-1 (Lambda1' Z_j'A_j - sum_{s in j} B_s c_s)``.
        """
        lam1 = self.outer_block.lam(theta)
        lam2 = self.inner_block.lam(theta)
        q1, q2 = lam1.shape[0], lam2.shape[0]
        h2 = _plus_identity(_right(_left(lam2.T, self.ww), lam2))
        low2 = _chol(h2)
        linv2 = _tril_inv(low2)
        bt = _bmm(linv2, _right(_left(lam2.T, self.wz), lam1))  # B_s', (q2, q1, S)
        c2 = _bmm(linv2, _left(lam2.T, self.wa))  # (q2, pA, S)
        bb = self._sum_to_outer(_bmm(_bt(bt), bt))
        h1 = _plus_identity(_right(_left(lam1.T, self.zz), lam1) - bb)
        low1 = _chol(h1)
        linv1 = _tril_inv(low1)
        rhs = _left(lam1.T, self.za) - self._sum_to_outer(_bmm(_bt(bt), c2))
        c1 = _bmm(linv1, rhs)
        ld_l2 = 2.0 * float(
            np.sum(np.log(low2[np.arange(q2), np.arange(q2)]))
            + np.sum(np.log(low1[np.arange(q1), np.arange(q1)]))
        )
        f2 = c2.transpose(1, 0, 2).reshape(self.p_a, -1)
        f1 = c1.transpose(1, 0, 2).reshape(self.p_a, -1)
        state = {"linv2": linv2, "linv1": linv1, "bt": bt, "c2": c2, "c1": c1}
        return ld_l2, f2 @ f2.T + f1 @ f1.T, state

    def parts_many(self, thetas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``log|L|^2`` (T,) and the quadratic term (T, p_A, p_A) of :meth:`parts` at each of
        the ``T`` rows of ``thetas``: the same algebra with the thetas as one more batch axis
        before the groups, in cache-sized chunks of thetas."""
        thetas = np.atleast_2d(np.asarray(thetas, dtype=float))
        q1, q2 = self.outer_block.q, self.inner_block.q
        # several arrays of this size are alive at once: a quarter of the budget each
        size = self.ww.shape[-1] * q2 * max(q1, self.p_a)
        per_chunk = max(1, _CACHE_BUDGET // (4 * size))
        chunks = [
            self._parts_stacked(thetas[start : start + per_chunk])
            for start in range(0, len(thetas), per_chunk)
        ]
        return np.concatenate([c[0] for c in chunks]), np.concatenate([c[1] for c in chunks])

    def _parts_stacked(self, thetas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`parts_many` for one chunk: batches of shape (q, r, T, groups)."""
        # Lambda and Lambda' of each theta (q, q, T, 1); the data (q, r, 1, groups)
        lam1, lam2 = (b.lams(thetas).transpose(1, 2, 0)[..., None] for b in self.blocks)
        lam1t, lam2t = lam1.swapaxes(0, 1), lam2.swapaxes(0, 1)
        ww, wz, wa, zz, za = (
            x[:, :, None, :] for x in (self.ww, self.wz, self.wa, self.zz, self.za)
        )
        h2 = _plus_identity(_bmm(_bmm(lam2t, ww), lam2))
        low2 = _chol(h2)
        linv2 = _tril_inv(low2)
        bt = _bmm(linv2, _bmm(_bmm(lam2t, wz), lam1))  # B_s'
        c2 = _bmm(linv2, _bmm(lam2t, wa))
        bb = self._sum_to_outer(_bmm(bt.swapaxes(0, 1), bt))
        h1 = _plus_identity(_bmm(_bmm(lam1t, zz), lam1) - bb)
        low1 = _chol(h1)
        linv1 = _tril_inv(low1)
        rhs = _bmm(lam1t, za) - self._sum_to_outer(_bmm(bt.swapaxes(0, 1), c2))
        c1 = _bmm(linv1, rhs)
        d1, d2 = np.arange(low1.shape[0]), np.arange(low2.shape[0])
        ld_l2 = 2.0 * (
            np.sum(np.log(low2[d2, d2]), axis=(0, 2)) + np.sum(np.log(low1[d1, d1]), axis=(0, 2))
        )
        n = len(thetas)
        f2 = c2.transpose(2, 1, 0, 3).reshape(n, self.p_a, -1)
        f1 = c1.transpose(2, 1, 0, 3).reshape(n, self.p_a, -1)
        return ld_l2, f2 @ f2.transpose(0, 2, 1) + f1 @ f1.transpose(0, 2, 1)

    def grad(self, theta: np.ndarray, omega: np.ndarray, state: dict) -> np.ndarray:
        """Gradient of the profiled criterion with respect to theta.

        For a term ``t`` the derivative with respect to ``Lambda_t[r, c]`` is element ``[r, c]``
        of ``D_t = 2 sum_g sum_h (Z'Z)_gh Lambda_h (H^-1)_hg - 2 sum_g (Z'R)_g Omega U_g'``
        over the blocks ``g`` of term ``t``, where ``U = H^-1 Lambda' Z'A`` (by back
        substitution) and ``Z'R = Z'A - Z'Z Lambda U``. The blocks of ``H^-1`` come from the
        partitioned inverse: ``(H^-1)_jj = S_j^-1``, ``(H^-1)_sj = -H2_s^-1 K_s S_j^-1`` and
        ``(H^-1)_ss = H2_s^-1 + H2_s^-1 K_s S_j^-1 K_s' H2_s^-1``.
        """
        lam1 = self.outer_block.lam(theta)
        lam2 = self.inner_block.lam(theta)
        linv2, linv1, bt = state["linv2"], state["linv1"], state["bt"]
        parent = self.parent
        # back substitution L' U = c
        u1 = _bmm(_bt(linv1), state["c1"])
        u2 = _bmm(_bt(linv2), state["c2"] - _bmm(bt, u1[:, :, parent]))
        # blocks of H^-1
        s_inv = _bmm(_bt(linv1), linv1)
        h2k = _bmm(_bt(linv2), bt)  # H2^-1 K
        h_sj = -_bmm(h2k, s_inv[:, :, parent])
        h_ss = _bmm(_bt(linv2), linv2) - _bmm(h_sj, _bt(h2k))
        # Z'R for both levels
        zr1 = (
            self.za
            - _bmm(_right(self.zz, lam1), u1)
            - self._sum_to_outer(_bmm(_right(_bt(self.wz), lam2), u2))
        )
        zr2 = (
            self.wa
            - _bmm(_right(self.ww, lam2), u2)
            - _bmm(_right(self.wz, lam1), u1[:, :, parent])
        )
        # sums over groups of products X_g Y_g are single BLAS products: _gram(X, Y')
        d1 = _gram(_right(self.zz, lam1), _bt(s_inv)) + _gram(_right(_bt(self.wz), lam2), _bt(h_sj))
        d2 = _gram(_right(self.ww, lam2), _bt(h_ss)) + _gram(_right(self.wz, lam1), h_sj)
        d1 = 2.0 * d1 - 2.0 * _gram(_right(zr1, omega), u1)
        d2 = 2.0 * d2 - 2.0 * _gram(_right(zr2, omega), u2)
        rows1, cols1 = self.outer_block.index
        rows2, cols2 = self.inner_block.index
        return np.concatenate([d1[rows1, cols1], d2[rows2, cols2]])
