"""Adverse-event risks: paired and independent risk ratios and differences, trial and registry."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from outcomes.comparisons.effects import _TIDY_NUM, _registry_glm
from outcomes.comparisons.table import AE_OUTCOMES, _Collector, _diff_values, _ratio_values
from outcomes.errors import InputError, ModelError

# --------------------------------------------------------------------------------------------
# adverse-event risk differences and ratios
# --------------------------------------------------------------------------------------------


def _paired_risks(y1: np.ndarray, y0: np.ndarray, level: float) -> tuple[dict, dict, list[str]]:
    """Paired (split-body) risk difference and ratio, Wald intervals."""
    a = float(np.sum((y1 == 1) & (y0 == 1)))
    b = float(np.sum((y1 == 1) & (y0 == 0)))
    c = float(np.sum((y1 == 0) & (y0 == 1)))
    n = float(len(y1))
    notes = []
    rd = (b - c) / n
    var_rd = ((b + c) - (b - c) ** 2 / n) / n**2
    rd_vals = _diff_values(rd, np.sqrt(var_rd), np.nan, level)
    if a + b == 0 or a + c == 0:
        notes.append(
            "no events on one side: the paired risk ratio is not estimable (risk difference kept)"
        )
        rr_vals = {}
    else:
        log_rr = np.log((a + b) / (a + c))
        rr_vals = _ratio_values(log_rr, np.sqrt((b + c) / ((a + b) * (a + c))), np.nan, level)
    if var_rd == 0:
        notes.append("no discordant pairs: the paired risk difference has no variance")
    return rd_vals, rr_vals, notes


def _independent_risks(
    e1: float, n1: float, e0: float, n0: float, level: float
) -> tuple[dict, dict, list[str]]:
    """Two independent groups: Newcombe (hybrid score) RD interval, Wald interval on log RR.

    ``statistic``/``p_value`` of the difference are the Wald z test (unpooled variance).
    """
    from statsmodels.stats.proportion import confint_proportions_2indep

    notes: list[str] = []
    p1, p0 = e1 / n1, e0 / n0
    rd = p1 - p0
    se_rd = np.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
    rd_vals = _diff_values(rd, se_rd, np.nan, level)
    low, high = confint_proportions_2indep(
        e1, n1, e0, n0, method="newcomb", compare="diff", alpha=1 - level
    )
    rd_vals["conf_low"], rd_vals["conf_high"] = float(low), float(high)
    if se_rd == 0:
        rd_vals["statistic"] = rd_vals["p_value"] = np.nan
    if e1 == 0 and e0 == 0:
        notes.append("no events in either group: the risk ratio is not estimable")
        return rd_vals, {}, notes
    if e1 == 0 or e0 == 0:
        notes.append("a group without events: 0.5 added to each cell for the risk ratio")
        e1, e0, n1, n0 = e1 + 0.5, e0 + 0.5, n1 + 1.0, n0 + 1.0
    log_rr = np.log((e1 / n1) / (e0 / n0))
    se = np.sqrt(1 / e1 - 1 / n1 + 1 / e0 - 1 / n0)
    return rd_vals, _ratio_values(log_rr, se, np.nan, level), notes


def _trial_ae(
    u: pd.DataFrame,
    outcome: str,
    row: Mapping[str, Any],
    split: bool,
    col: _Collector,
    level: float,
) -> None:
    term, sev = AE_OUTCOMES[outcome]
    what = f"any {'/'.join(sev)} {term}" if sev else f"any {term}"
    r = {
        **row,
        "outcome": f"ae_{outcome}",
        "definition": f"{what} during follow-up, per treated unit",
    }
    if split:
        wide = u.pivot_table(index="subject_id", columns="arm", values=outcome, aggfunc="max")
        wide = wide.dropna()
        if wide.shape[1] < 2 or len(wide) == 0:
            return
        rd, rr, notes = _paired_risks(wide[1.0].to_numpy(), wide[0.0].to_numpy(), level)
        n = float(2 * len(wide))
        method = "paired by subject (both sides), Wald interval"
        n_cl = float(len(wide))
    else:
        g = u.groupby("arm")[outcome].agg(["sum", "size"])
        if len(g) < 2:
            return
        e1, n1, e0, n0 = (float(g[c].loc[a]) for a in (1.0, 0.0) for c in ("sum", "size"))
        rd, rr, notes = _independent_risks(e1, n1, e0, n0, level)
        n = float(len(u))
        method = "independent groups: Newcombe hybrid score interval"
        n_cl = np.nan
    col.add(
        {**r, "measure": "risk_difference", "method": method + " (z test: Wald)"},
        notes,
        **rd,
        n=n,
        n_clusters=n_cl,
    )
    rr_method = (
        "paired ratio of proportions, Wald interval on log RR"
        if split
        else "Wald interval on log RR"
    )
    if rr:
        col.add(
            {**r, "measure": "risk_ratio", "method": rr_method}, notes, **rr, n=n, n_clusters=n_cl
        )
    else:
        col.add({**r, "measure": "risk_ratio", "method": rr_method}, notes, n=n, n_clusters=n_cl)


def _registry_ae(
    col: _Collector,
    u: pd.DataFrame,
    outcome: str,
    levels: Sequence[str],
    base: Mapping[str, Any],
    comps: Mapping[str, str],
    ps_text: str,
    adj_notes: Sequence[str],
    level: float,
) -> None:
    from outcomes.models.propensity import weighted_effect

    name = f"ae_{outcome}"
    term, sev = AE_OUTCOMES[outcome]
    what = f"any {'/'.join(sev)} {term}" if sev else f"any {term}"
    defn = f"{what} during follow-up, per treated unit"
    ref = levels[0]
    # naive: the plain 2 x 2 table of each combination against the reference
    for lv in levels[1:]:
        e1 = float(u.loc[u["modality"] == lv, name].sum())
        n1 = float((u["modality"] == lv).sum())
        e0 = float(u.loc[u["modality"] == ref, name].sum())
        n0 = float((u["modality"] == ref).sum())
        rd, rr, notes = _independent_risks(e1, n1, e0, n0, level)
        r = {
            **base,
            "outcome": name,
            "comparison": comps[lv],
            "adjustment": "naive",
            "definition": defn,
        }
        note = "ignores clustering by clinic"
        col.add(
            {
                **r,
                "measure": "risk_difference",
                "method": f"2 x 2 table: Newcombe hybrid score interval, z test Wald ({note})",
            },
            notes,
            **rd,
            n=n1 + n0,
        )
        col.add(
            {
                **r,
                "measure": "risk_ratio",
                "method": f"2 x 2 table: Wald interval on log RR ({note})",
            },
            notes,
            **rr,
            n=n1 + n0,
        )
    # weighted: risk difference by weighted linear model, risk ratio by weighted Poisson
    r = {**base, "outcome": name, "adjustment": "weighted", "definition": defn}
    if u[name].sum() == 0:
        col.add(
            {**r, "measure": "risk_ratio", "comparison": "all", "method": ps_text},
            ["no events: not estimable"],
        )
        return
    try:
        we, notes = col.run(
            weighted_effect,
            u,
            name,
            "modality",
            "weight",
            cluster="site_id",
            reference=ref,
            level=level,
        )
        for _, s in we.summary.iterrows():
            col.add(
                {
                    **r,
                    "measure": "risk_difference",
                    "comparison": s["term"],
                    "method": f"{ps_text}; weighted linear probability model, cluster-robust SE by "
                    "clinic (t, clusters - 1 df)",
                },
                [*notes, *adj_notes],
                **{k: float(s[k]) for k in _TIDY_NUM},
                n=float(u["modality"].isin([ref, s["term"].split(" vs ")[0]]).sum()),
                n_clusters=float(s["n_clusters"]),
            )
    except (InputError, ModelError, np.linalg.LinAlgError) as exc:
        col.failed({**r, "measure": "risk_difference"}, "weighted risk difference", exc)
    _registry_glm(
        col, u, name, "poisson", levels, "weighted", base, comps, defn, ps_text, adj_notes, level
    )
