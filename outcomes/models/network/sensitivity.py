"""What the shipped split-face networks can and cannot tell: loops, and the assumed r.

- :func:`closed_loops`: independent closed loops of a network (none: heterogeneity and
  inconsistency cannot be estimated).
- :func:`correlation_limits`: the within-patient correlations two sides' binary outcomes can
  have given their counts (:func:`outcomes.models.meta.effect_sizes.phi_limits`).
- :func:`r_sensitivity`: every treatment against the reference refitted at other assumed
  within-patient correlations ``r``, flagging values the counts do not allow.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from outcomes.errors import InputError
from outcomes.models.meta.effect_sizes import phi_limits
from outcomes.models.network.nma import network_meta

__all__ = ["closed_loops", "correlation_limits", "r_sensitivity"]


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


def correlation_limits(arms: pd.DataFrame) -> pd.DataFrame:
    """Per split-face study with counts: the attainable within-patient correlations.

    Returns
    -------
    pandas.DataFrame
        Indexed by study, columns ``low`` and ``high``: the phi limits of the two sides' counts
        (:func:`outcomes.models.meta.effect_sizes.phi_limits`; NaN when a side has no or only
        responders).
    """
    out = {}
    for study, g in arms.groupby("study", sort=False):
        if g["events"].isna().any() or (g["design"] != "split_body").any() or len(g) != 2:
            continue
        a, b = g.iloc[0], g.iloc[1]
        low, high = phi_limits(a["events"], b["events"], a["n"])
        out[study] = {"low": float(low), "high": float(high)}
    return pd.DataFrame.from_dict(out, orient="index", columns=["low", "high"], dtype=float)


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
        with ``r`` and ``attainable``: False (and no estimate) when ``r`` lies outside the
        correlations the counts of a split-face trial allow (:func:`correlation_limits`), i.e.
        the assumed correlation describes no possible data and :func:`network_meta` refuses it.
    """
    limits = correlation_limits(arms)
    fits = {}
    for r in r_values:
        if ((limits["low"] > r) | (limits["high"] < r)).any():
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the diagnostics of the main fit, at each r
            fit = network_meta(arms, measure, reference=reference, r=r, small_values=small_values)
        fits[r] = fit.relative_effects(model)
    if not fits:
        raise InputError(
            f"None of r = {', '.join(f'{r:g}' for r in r_values)} is attainable for every "
            "split-face trial; the counts allow:\n" + limits.round(3).to_string()
        )
    template = next(iter(fits.values()))
    parts = []
    for r in r_values:
        rows = (
            fits[r].copy()
            if r in fits
            else template.assign(
                **{c: np.nan for c in template.columns if template[c].dtype.kind == "f"}
            )
        )
        rows["r"] = float(r)
        rows["attainable"] = r in fits
        parts.append(rows)
    return pd.concat(parts, ignore_index=True)
