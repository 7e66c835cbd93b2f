"""Node-splitting: direct against indirect evidence for each comparison (netmeta ``netsplit``).

``"back-calculation"`` (netmeta's default for ``netmeta`` objects; König, Krahn & Binder 2013)
    The direct estimate pools the comparison's own rows by inverse variance (with tau^2 added
    under random effects); the direct evidence proportion is ``P = se_network^2 / se_direct^2``;
    the indirect estimate is ``(TE_network - P TE_direct) / (1 - P)`` with variance
    ``se_network^2 / (1 - P)``.
``"SIDDE"`` (separate indirect from direct design evidence; Efthimiou et al. 2019)
    The indirect estimate is the network estimate after removing every study that contains
    the comparison (refitted, with its own tau^2 under random effects).

Both compare direct and indirect estimates by ``z = (direct - indirect) / sqrt(se_d^2 +
se_i^2)``. A comparison informed by direct evidence only (``P`` within 0.0005 of 1, or over 1)
or whose indirect network falls apart has no indirect estimate.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["SPLIT_METHODS", "netsplit"]

SPLIT_METHODS = ("back-calculation", "SIDDE")
_TOL_DIRECT = 0.0005


def _direct(table: pd.DataFrame, a: str, b: str, tau2: float) -> tuple[float, float, int]:
    rows = table[(table["treat1"] == a) & (table["treat2"] == b)]
    w = 1.0 / (rows["seTE"].to_numpy() ** 2 + tau2)
    te = float((w * rows["TE"].to_numpy()).sum() / w.sum())
    return te, float(np.sqrt(1.0 / w.sum())), rows["study"].nunique()


def netsplit(
    table: pd.DataFrame,
    treatments: list[str],
    fits: dict[str, tuple[np.ndarray, np.ndarray, float]],
    method: str,
    refit: Callable[[pd.DataFrame], dict[str, tuple[np.ndarray, np.ndarray, list[str]]] | None],
    level: float,
) -> pd.DataFrame:
    """Direct, indirect and network estimates of every comparison with direct evidence.

    Parameters
    ----------
    table
        Contrast rows (``treat1`` sorting before ``treat2``).
    treatments
        Treatment order of the fitted matrices.
    fits
        ``{"common": (TE, seTE, 0.0), "random": (TE, seTE, tau2)}`` network matrices.
    method
        One of :data:`SPLIT_METHODS`.
    refit
        Fits a reduced data table; returns per model ``(TE, seTE, treatments)`` or None when
        the reduced network is disconnected (used by ``"SIDDE"``).
    level
        Confidence level.
    """
    z = stats.norm.isf((1 - level) / 2)
    pos = {t: i for i, t in enumerate(treatments)}
    pairs = list(dict.fromkeys(zip(table["treat1"], table["treat2"], strict=True)))
    pairs.sort(key=lambda p: (pos[p[0]], pos[p[1]]))
    rows = []
    for a, b in pairs:
        reduced = None
        if method == "SIDDE":
            drop = table.loc[(table["treat1"] == a) & (table["treat2"] == b), "study"].unique()
            rest = table[~table["study"].isin(drop)]
            reduced = refit(rest) if len(rest) else None
        for model, (TE, seTE, tau2) in fits.items():
            net, se_net = TE[pos[a], pos[b]], seTE[pos[a], pos[b]]
            d, se_d, k = _direct(table, a, b, tau2)
            prop = se_net**2 / se_d**2
            ind = se_ind = np.nan
            if method == "back-calculation":
                if abs(prop - 1) >= _TOL_DIRECT and prop < 1:
                    ind = (net - prop * d) / (1 - prop)
                    se_ind = se_net / np.sqrt(1 - prop)
            elif reduced is not None and a in reduced[model][2] and b in reduced[model][2]:
                TE_r, se_r, trts_r = reduced[model]
                ia, ib = trts_r.index(a), trts_r.index(b)
                ind, se_ind = TE_r[ia, ib], se_r[ia, ib]
            diff = d - ind
            se_diff = np.sqrt(se_d**2 + se_ind**2)
            stat = diff / se_diff
            rows.append(
                {
                    "comparison": f"{a} vs {b}",
                    "treat1": a,
                    "treat2": b,
                    "model": model,
                    "k": k,
                    "prop_direct": prop if method == "back-calculation" else np.nan,
                    "network": net,
                    "network_se": se_net,
                    "direct": d,
                    "direct_se": se_d,
                    "direct_low": d - z * se_d,
                    "direct_high": d + z * se_d,
                    "indirect": ind,
                    "indirect_se": se_ind,
                    "indirect_low": ind - z * se_ind,
                    "indirect_high": ind + z * se_ind,
                    "difference": diff,
                    "difference_se": se_diff,
                    "statistic": stat,
                    "p_value": 2 * stats.norm.sf(abs(stat)),
                }
            )
    return pd.DataFrame(rows)
