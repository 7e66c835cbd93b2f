"""What the shipped split-face networks can and cannot tell: loops, and the assumed r.

- :func:`closed_loops`: independent closed loops of a network (none: heterogeneity and
  inconsistency cannot be estimated).
- :func:`max_correlation` / :func:`correlation_limits`: the largest within-patient correlation
  two sides' binary outcomes can have given their counts.
- :func:`r_sensitivity`: every treatment against the reference refitted at other assumed
  within-patient correlations ``r``, flagging values the counts do not allow.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from outcomes.models.network.nma import network_meta

__all__ = ["closed_loops", "correlation_limits", "max_correlation", "r_sensitivity"]


def closed_loops(arms: pd.DataFrame) -> int:
    """Independent closed loops of the network: compared pairs - treatments + parts."""
    pairs: set[tuple[str, str]] = set()
    for _, g in arms.groupby("study"):
        t = sorted(g["treatment"])
        pairs.update((a, b) for i, a in enumerate(t) for b in t[i + 1 :])
    treatments = set(arms["treatment"])
    parent = {t: t for t in treatments}

    def find(x: str) -> str:
        while parent[x] != x:
            x = parent[x]
        return x

    for a, b in pairs:
        parent[find(a)] = find(b)
    parts = len({find(t) for t in treatments})
    return len(pairs) - len(treatments) + parts


def max_correlation(events1: float, n1: float, events2: float, n2: float) -> float:
    """Largest correlation (phi) two sides' binary outcomes can have, given their counts.

    With response proportions ``p1``, ``p2`` the joint probability of both responding cannot
    exceed ``min(p1, p2)``, which bounds phi by
    ``sqrt(min(p) (1 - max(p)) / (max(p) (1 - min(p))))``.
    """
    p1, p2 = events1 / n1, events2 / n2
    lo, hi = min(p1, p2), max(p1, p2)
    if lo <= 0 or hi >= 1:
        return 0.0
    return float(np.sqrt(lo * (1 - hi) / (hi * (1 - lo))))


def correlation_limits(arms: pd.DataFrame) -> pd.Series:
    """Per split-face study with counts: the largest attainable within-patient correlation."""
    out = {}
    for study, g in arms.groupby("study", sort=False):
        if g["events"].isna().any() or (g["design"] != "split_body").any() or len(g) != 2:
            continue
        a, b = g.iloc[0], g.iloc[1]
        out[study] = max_correlation(a["events"], a["n"], b["events"], b["n"])
    return pd.Series(out, dtype=float)


def r_sensitivity(
    arms: pd.DataFrame,
    measure: str,
    r_values: list[float],
    *,
    reference: str,
    small_values: str = "desirable",
    model: str = "random",
) -> pd.DataFrame:
    """Every treatment against ``reference`` refitted at each within-patient correlation.

    Returns
    -------
    pandas.DataFrame
        Tidy rows (``term, estimate, ..., conf_high``, on the analysis scale: log for ratios)
        with ``r`` and ``attainable``: False when ``r`` exceeds the largest correlation the
        counts of a split-face trial allow (:func:`correlation_limits`), i.e. the assumed
        correlation describes no possible data.
    """
    limits = correlation_limits(arms)
    parts = []
    for r in r_values:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the diagnostics of the main fit, at each r
            fit = network_meta(arms, measure, reference=reference, r=r, small_values=small_values)
        rows = fit.relative_effects(model)
        rows["r"] = float(r)
        rows["attainable"] = not (len(limits) and r > limits.min())
        parts.append(rows)
    return pd.concat(parts, ignore_index=True)
