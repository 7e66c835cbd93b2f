"""Rücker's graph-theoretical network meta-analysis, as R's netmeta computes it.

The network is an electrical network: treatments are nodes, comparisons are edges with
conductance ``w = 1/variance``. The weighted Laplacian ``L = B' W B`` (``B`` the edge-node
incidence matrix) has the Moore-Penrose pseudoinverse ``L+``; node potentials ``L+ B' W TE``
give every relative effect, ``L+[i,i] + L+[j,j] - 2 L+[i,j]`` its variance (Rücker 2012).

Multi-arm studies (netmeta's ``multiarm()``): the k(k-1)/2 correlated comparisons of a k-arm
study are replaced by an equivalent set of independent edges whose variances are inflated so
that the study's information is counted once. From the comparison variances ``R`` (a
resistance matrix), ``Lt = -1/2 (B'B) R (B'B) / k^2`` is the pseudoinverse of the study's
Laplacian; the adjusted edge weights are its off-diagonal entries with sign reversed.

Heterogeneity (netmeta's default): ``Q = (TE - TE_fit)' W (TE - TE_fit)`` with
``df = sum(arms - 1) - (n - 1)``, and the method-of-moments tau^2
``max(0, (Q - df) / tr((I - H) P W))`` with ``H`` the hat matrix and ``P = (B B' o E) / 2``
(``E`` marks comparisons of the same study): the generalised DerSimonian-Laird estimator of
Jackson et al. (2012) in Rücker's notation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from outcomes.results import Diagnostic

__all__ = ["GraphFit", "fit_graph", "laplacian_pinv", "multiarm_variances", "tau2_dl"]

_NEGATIVE_WEIGHT_SHARE = 0.001


def laplacian_pinv(L: np.ndarray) -> np.ndarray:
    """Pseudoinverse of a matrix whose rows sum to zero (netmeta's ``invmat``).

    ``(L + J/n)^-1 - J/n`` equals the Moore-Penrose inverse when the kernel is the ones vector.
    """
    n = L.shape[0]
    J = np.full((n, n), 1.0 / n)
    out = np.linalg.solve(L + J, np.eye(n)) - J
    return (out + out.T) / 2


def complete_incidence(k: int) -> np.ndarray:
    """Edge-node incidence matrix of the complete graph on k nodes (edges i<j in order)."""
    edges = [(i, j) for i in range(k) for j in range(i + 1, k)]
    B = np.zeros((len(edges), k))
    for e, (i, j) in enumerate(edges):
        B[e, i], B[e, j] = 1.0, -1.0
    return B


def multiarm_variances(v: np.ndarray, study: str) -> tuple[np.ndarray, Diagnostic | None]:
    """Adjusted (independent-edge) variances of one k-arm study's k(k-1)/2 comparisons.

    ``v`` holds the comparison variances in edge order (arm i vs arm j, i<j). Small negative
    weights (under 0.1% of the total) are set to zero as netmeta does; larger ones are kept and
    reported.
    """
    m = len(v)
    k = round((1 + np.sqrt(8 * m + 1)) / 2)
    B = complete_incidence(k)
    BtVB = B.T @ np.diag(v) @ B
    R = np.diag(np.diag(BtVB)) - BtVB
    M = B.T @ B
    Lt = -0.5 * M @ R @ M / k**2
    L = laplacian_pinv(Lt)
    W = np.diag(np.diag(L)) - L
    lower = np.abs(W[np.tril_indices(k, -1)]).sum()
    small = (W < 0) & (np.abs(W) / lower < _NEGATIVE_WEIGHT_SHARE)
    W[small] = 0.0
    note = None
    if (W < 0).any():
        note = Diagnostic(
            "negative_multiarm_weight",
            f"Multi-arm study {study!r}: its comparison variances imply a negative weight "
            "(the variances are not those of independent arms); results are computed as "
            "netmeta does, but check the study's standard errors.",
        )
    with np.errstate(divide="ignore"):
        adjusted = np.array([1.0 / W[i, j] for i in range(k) for j in range(i + 1, k)])
    return adjusted, note


def adjusted_weights(
    seTE: np.ndarray, study: np.ndarray, tau2: float
) -> tuple[np.ndarray, list[Diagnostic]]:
    """Weights ``1/(seTE^2 + tau^2)``, reduced for multi-arm studies (netmeta ``prepare``).

    Rows of a study must be in edge order of its sorted arms (as :mod:`.contrasts` leaves them).
    """
    var = seTE**2 + tau2
    weights = 1.0 / var
    notes: list[Diagnostic] = []
    for s in dict.fromkeys(study):
        idx = np.flatnonzero(study == s)
        if len(idx) > 1:
            adjusted, note = multiarm_variances(var[idx], str(s))
            weights[idx] = 1.0 / adjusted
            if note is not None:
                notes.append(note)
    return weights, notes


@dataclass
class GraphFit:
    """One fitted network (common effect, or random effects at a given tau^2)."""

    TE: np.ndarray  # n x n, TE[i, j] = treatment i vs j
    seTE: np.ndarray  # n x n
    Lplus: np.ndarray
    fitted: np.ndarray  # network estimate of each comparison row
    weights: np.ndarray  # adjusted weights of the rows
    H: np.ndarray  # hat matrix (m x m)
    B: np.ndarray  # incidence matrix (m x n)
    Q: float
    df: int
    notes: list[Diagnostic]

    @property
    def seTE_adj(self) -> np.ndarray:
        """Standard errors of the rows after the multi-arm adjustment (netmeta ``seTE.adj``)."""
        with np.errstate(divide="ignore"):
            return 1.0 / np.sqrt(self.weights)


def incidence(t1: np.ndarray, t2: np.ndarray, treatments: list[str]) -> np.ndarray:
    """Edge-node incidence matrix: +1 for treat1, -1 for treat2."""
    pos = {t: i for i, t in enumerate(treatments)}
    B = np.zeros((len(t1), len(treatments)))
    for e, (a, b) in enumerate(zip(t1, t2, strict=True)):
        B[e, pos[a]], B[e, pos[b]] = 1.0, -1.0
    return B


def fit_graph(
    TE: np.ndarray,
    seTE: np.ndarray,
    t1: np.ndarray,
    t2: np.ndarray,
    study: np.ndarray,
    treatments: list[str],
    tau2: float = 0.0,
) -> GraphFit:
    """Fit the network by Rücker's method with weights ``1/(seTE^2 + tau^2)``."""
    weights, notes = adjusted_weights(seTE, study, tau2)
    B = incidence(t1, t2, treatments)
    W = np.diag(weights)
    L = B.T @ W @ B
    Lplus = laplacian_pinv(L)
    potentials = Lplus @ B.T @ W @ TE
    TE_all = potentials[:, None] - potentials[None, :]
    d = np.diag(Lplus)
    var_all = np.clip(d[:, None] + d[None, :] - 2 * Lplus, 0.0, None)
    G = B @ Lplus @ B.T
    H = G @ W
    fitted = H @ TE
    resid = TE - fitted
    Q = float(resid @ W @ resid)
    n_arms = {s: len(set(t1[study == s]) | set(t2[study == s])) for s in dict.fromkeys(study)}
    df = int(sum(k - 1 for k in n_arms.values()) - (len(treatments) - 1))
    return GraphFit(
        TE=TE_all,
        seTE=np.sqrt(var_all),
        Lplus=Lplus,
        fitted=fitted,
        weights=weights,
        H=H,
        B=B,
        Q=Q,
        df=df,
        notes=notes,
    )


def tau2_dl(
    Q: float, df: int, H: np.ndarray, B: np.ndarray, weights: np.ndarray, study: np.ndarray
) -> float:
    """netmeta's method-of-moments tau^2: ``max(0, (Q - df) / tr((I - H) P W))``."""
    if df <= 0:
        return float("nan")
    same = (study[:, None] == study[None, :]).astype(float)
    P = (B @ B.T) * same / 2
    denom = float(np.trace((np.eye(len(weights)) - H) @ P @ np.diag(weights)))
    return max(0.0, (Q - df) / denom)
