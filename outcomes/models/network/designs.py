"""Study-level contrast model: design decomposition of Q (netmeta ``decomp.design``) and REML.

Each study is written as its basic contrasts, every arm against one baseline arm (the
reference treatment when the study has it, else its first treatment), with the exact
covariance implied by the comparison variances: ``cov(a-b, a-c) = (v_ab + v_ac - v_bc) / 2``.
Random effects add ``tau^2`` to each comparison variance, i.e. ``tau^2 (I + J) / 2`` to a
study's block (a common tau^2 and correlation 1/2 between a study's contrasts, as netmeta and
metafor's ``rma.mv(..., struct = "CS", rho = 0.5)`` assume).

- The consistency model (one effect per treatment vs the reference) fitted by generalised least
  squares gives the same estimates and Q as Rücker's method.
- The design-by-treatment interaction model (one effect per design and contrast) gives the
  within-design Q; between designs is the difference (Krahn, Binder & König 2013).
- ``tau_within``: the method-of-moments tau of the design-by-treatment interaction model
  (Jackson, White & Riley 2012), which netmeta uses for its random-effects between-design Q.
- ``reml_tau2``: the restricted-likelihood tau^2 of the consistency model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, stats

from outcomes.models.network.contrasts import sort_key

__all__ = ["Block", "blocks", "decompose", "gls", "reml_tau2", "tau_within"]


@dataclass
class Block:
    """One study: basic contrasts ``others[j] - baseline`` with their covariance at tau^2 = 0."""

    study: str
    design: str
    baseline: str
    others: list[str]
    y: np.ndarray
    V: np.ndarray

    def cov(self, tau2: float) -> np.ndarray:
        """Covariance with between-study variance tau^2 added (compound symmetry, rho 1/2)."""
        k = len(self.y)
        return self.V + tau2 * (np.eye(k) + np.ones((k, k))) / 2


def blocks(table: pd.DataFrame, reference: str) -> list[Block]:
    """Basic contrasts of every study (``table`` from :func:`.contrasts.to_contrasts`)."""
    out = []
    for study, g in table.groupby("study", sort=False):
        te, var = {}, {}
        for a, b, t, s in zip(g["treat1"], g["treat2"], g["TE"], g["seTE"], strict=True):
            te[(a, b)], te[(b, a)] = t, -t
            var[(a, b)] = var[(b, a)] = s**2
        arms = sorted(set(g["treat1"]) | set(g["treat2"]), key=sort_key)
        base = reference if reference in arms else arms[0]
        others = [a for a in arms if a != base]
        y = np.array([te[(o, base)] for o in others])
        V = np.array(
            [
                [
                    var[(base, oi)]
                    if oi == oj
                    else (var[(base, oi)] + var[(base, oj)] - var[(oi, oj)]) / 2
                    for oj in others
                ]
                for oi in others
            ]
        )
        out.append(Block(str(study), ":".join([base, *others]), base, others, y, V))
    return out


def _consistency_rows(block: Block, columns: dict[str, int]) -> np.ndarray:
    X = np.zeros((len(block.others), len(columns)))
    for j, o in enumerate(block.others):
        if o in columns:
            X[j, columns[o]] += 1.0
        if block.baseline in columns:
            X[j, columns[block.baseline]] -= 1.0
    return X


def _design_rows(block: Block, columns: dict[str, int]) -> np.ndarray:
    X = np.zeros((len(block.others), len(columns)))
    for j, o in enumerate(block.others):
        X[j, columns[f"{block.design}|{o}"]] = 1.0
    return X


def gls(
    bl: list[Block], X: list[np.ndarray], tau2: float = 0.0
) -> tuple[np.ndarray, np.ndarray, float]:
    """Generalised least squares over study blocks: estimates, their covariance, residual Q."""
    p = X[0].shape[1]
    XtWX = np.zeros((p, p))
    XtWy = np.zeros(p)
    inv = []
    for b, Xb in zip(bl, X, strict=True):
        Wb = np.linalg.inv(b.cov(tau2))
        inv.append(Wb)
        XtWX += Xb.T @ Wb @ Xb
        XtWy += Xb.T @ Wb @ b.y
    cov = np.linalg.pinv(XtWX, hermitian=True)
    theta = cov @ XtWy
    Q = float(
        sum(
            (b.y - Xb @ theta) @ Wb @ (b.y - Xb @ theta)
            for b, Xb, Wb in zip(bl, X, inv, strict=True)
        )
    )
    return theta, cov, Q


def _consistency_X(bl: list[Block], treatments: list[str], reference: str) -> list[np.ndarray]:
    cols = {t: i for i, t in enumerate(t for t in treatments if t != reference)}
    return [_consistency_rows(b, cols) for b in bl]


def _design_X(bl: list[Block]) -> tuple[list[np.ndarray], int]:
    keys = list(dict.fromkeys(f"{b.design}|{o}" for b in bl for o in b.others))
    cols = {k: i for i, k in enumerate(keys)}
    return [_design_rows(b, cols) for b in bl], len(cols)


def decompose(
    bl: list[Block], treatments: list[str], reference: str, tau2: float = 0.0
) -> dict[str, pd.DataFrame]:
    """Design-based decomposition of Q (netmeta ``decomp.design`` at a given tau^2).

    Returns
    -------
    dict
        ``"Q"``: rows total / within designs / between designs with ``q, df, p_value``;
        ``"within"``: Q of each design (``design, q, df, p_value``); ``"between"``: each
        design's contribution to the between-design Q, one row per basic contrast (``design,
        contrast, q``).
    """
    Xc = _consistency_X(bl, treatments, reference)
    theta, _, q_net = gls(bl, Xc, tau2)
    n_rows = sum(len(b.y) for b in bl)
    df_net = n_rows - (len(treatments) - 1)
    within_rows, between_rows = [], []
    q_het = 0.0
    df_het = 0
    for design in dict.fromkeys(b.design for b in bl):
        members = [b for b in bl if b.design == design]
        Xd, p = _design_X(members)
        mu, cov_mu, q = gls(members, Xd, tau2)
        df = len(members) * p - p
        within_rows.append(
            {
                "design": design,
                "q": q,
                "df": df,
                "p_value": stats.chi2.sf(q, df) if df > 0 else np.nan,
            }
        )
        q_het += q
        df_het += df
        fit = (
            _consistency_rows(
                members[0], {t: i for i, t in enumerate(t for t in treatments if t != reference)}
            )
            @ theta
        )
        resid = mu - fit
        contrib = (np.linalg.solve(cov_mu, resid)) * resid
        for o, c in zip(members[0].others, contrib, strict=True):
            between_rows.append(
                {"design": design, "contrast": f"{o} vs {members[0].baseline}", "q": float(c)}
            )
    q_inc = q_net - q_het
    df_inc = df_net - df_het
    Q = pd.DataFrame(
        {
            "term": ["total", "within_designs", "between_designs"],
            "q": [q_net, q_het, q_inc],
            "df": [df_net, df_het, df_inc],
        }
    )
    Q["p_value"] = [
        stats.chi2.sf(q, d) if d > 0 else np.nan for q, d in zip(Q["q"], Q["df"], strict=True)
    ]
    return {"Q": Q, "within": pd.DataFrame(within_rows), "between": pd.DataFrame(between_rows)}


def tau_within(bl: list[Block]) -> float:
    """Method-of-moments tau of the full design-by-treatment interaction model (netmeta)."""
    X, p = _design_X(bl)
    W0 = [np.linalg.inv(b.V) for b in bl]
    V0 = [(np.eye(len(b.y)) + np.ones((len(b.y),) * 2)) / 2 for b in bl]
    XtWX = sum(Xb.T @ Wb @ Xb for Xb, Wb in zip(X, W0, strict=True))
    C = np.linalg.pinv(XtWX, hermitian=True)
    theta = C @ sum(Xb.T @ Wb @ b.y for b, Xb, Wb in zip(bl, X, W0, strict=True))
    Q = sum(
        (b.y - Xb @ theta) @ Wb @ (b.y - Xb @ theta) for b, Xb, Wb in zip(bl, X, W0, strict=True)
    )
    trace1 = sum(np.trace(Wb @ V0b) for Wb, V0b in zip(W0, V0, strict=True))
    M = sum(Xb.T @ Wb @ V0b @ Wb @ Xb for Xb, Wb, V0b in zip(X, W0, V0, strict=True))
    trace2 = float(np.trace(C @ M))
    n_rows = sum(len(b.y) for b in bl)
    if np.isclose(trace1, trace2):
        return 0.0
    return float(np.sqrt(max(0.0, (Q - n_rows + p) / (trace1 - trace2))))


def _restricted_deviance(tau2: float, bl: list[Block], X: list[np.ndarray]) -> float:
    """-2 x restricted log-likelihood of the consistency model, up to a constant."""
    p = X[0].shape[1]
    XtWX = np.zeros((p, p))
    XtWy = np.zeros(p)
    logdet = 0.0
    yWy = 0.0
    for b, Xb in zip(bl, X, strict=True):
        c = np.linalg.cholesky(b.cov(tau2))
        logdet += 2 * np.log(np.diag(c)).sum()
        Wb = np.linalg.inv(b.cov(tau2))
        XtWX += Xb.T @ Wb @ Xb
        XtWy += Xb.T @ Wb @ b.y
        yWy += b.y @ Wb @ b.y
    _, logdet_x = np.linalg.slogdet(XtWX)
    theta = np.linalg.solve(XtWX, XtWy)
    return float(logdet + logdet_x + yWy - XtWy @ theta)


def reml_tau2(bl: list[Block], treatments: list[str], reference: str) -> float:
    """REML tau^2 of the consistency model (maximised on ``[0, upper]``, boundary included)."""
    X = _consistency_X(bl, treatments, reference)
    y = np.concatenate([b.y for b in bl])
    upper = max(10.0 * float(np.var(y)), 10.0 * max(float(np.max(np.diag(b.V))) for b in bl), 1.0)
    # a coarse grid finds the basin, then a bounded search polishes it
    grid = np.concatenate([[0.0], np.geomspace(1e-8, upper, 120)])
    values = [_restricted_deviance(t, bl, X) for t in grid]
    i = int(np.argmin(values))
    lo = grid[max(i - 1, 0)]
    hi = grid[min(i + 1, len(grid) - 1)]
    res = optimize.minimize_scalar(
        _restricted_deviance,
        bounds=(lo, hi),
        args=(bl, X),
        method="bounded",
        options={"xatol": 1e-12, "maxiter": 500},
    )
    best = float(res.x)
    if _restricted_deviance(0.0, bl, X) <= res.fun:
        best = 0.0
    return best
