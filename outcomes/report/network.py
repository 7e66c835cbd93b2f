"""The network section of the comparison report: tables and figures from fitted networks.

The report fits one network per outcome of the shipped real trials
(:func:`outcomes.models.network.microneedling_network`, :func:`outcomes.network_meta`,
:mod:`outcomes.models.network.sensitivity`) and hands the fits here as
:class:`OutcomeNetwork`. Every label printed comes from the data or the results (outcome
descriptions from :data:`outcomes.models.network.NETWORK_OUTCOMES`, treatment and study names
from the data). Nothing here fits a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from outcomes.report.tables import format_ci, format_number, format_p

__all__ = [
    "OutcomeNetwork",
    "heterogeneity_text",
    "league_rows",
    "provenance_rows",
    "sensitivity_rows",
]

MISSING = "\N{EN DASH}"


@dataclass
class OutcomeNetwork:
    """One outcome's network: its arms, the fit and what the outcome is.

    Attributes
    ----------
    outcome
        Outcome code in the data (``gb_grade_final``, ...).
    description
        What the outcome is, from :data:`~outcomes.models.network.NETWORK_OUTCOMES`.
    measure, small_values
        How it is analysed (``"MD"``/``"OR"``) and which direction is better.
    arms
        The arm-level rows (with provenance columns).
    fit
        The network meta-analysis at the report's within-patient correlation
        (:class:`outcomes.NetworkMetaResult`).
    loops
        Independent closed loops of the network
        (:func:`outcomes.models.network.sensitivity.closed_loops`).
    """

    outcome: str
    description: str
    measure: str
    small_values: str
    arms: pd.DataFrame
    fit: Any
    loops: int

    @property
    def title(self) -> str:
        """Panel and table heading: the outcome as described in the data."""
        better = "lower is better" if self.small_values == "desirable" else "higher is better"
        return f"{self.description} ({better})"


def _label(net: OutcomeNetwork, value: float) -> float:
    return float(np.exp(value)) if net.fit.is_ratio else float(value)


def league_rows(networks: list[OutcomeNetwork]) -> pd.DataFrame:
    """Every pair of treatments per outcome (random effects), best P-score first.

    Columns: ``Comparison``, ``Estimate (95% CI)``, ``Direct evidence`` (the trial comparing
    the pair, or "indirect only") and the first treatment's ``P-score``; a heading row per
    outcome. (p-values of the pairs are in ``fit.effects``; a league table does not print
    them.)
    """
    rows = []
    for net in networks:
        res = net.fit
        name = {"MD": "mean difference", "OR": "odds ratio"}.get(res.measure, res.measure)
        rows.append({"Comparison": f"{net.title}; {name}"})
        ps = res.p_scores.set_index("treatment")["p_score_random"].sort_values(ascending=False)
        order = list(ps.index)
        direct = res.contrasts.groupby(["treat1", "treat2"])["study"].agg(", ".join)
        e = res.effects[res.effects["model"] == "random"].set_index(["treatment", "comparator"])
        for i, a in enumerate(order):
            for b in order[i + 1 :]:
                row = e.loc[(a, b)]
                key = (a, b) if (a, b) in direct.index else (b, a)
                rows.append(
                    {
                        "Comparison": f"\N{EM SPACE}{a} vs {b}",
                        "Estimate (95% CI)": format_ci(
                            _label(net, row["estimate"]),
                            _label(net, row["conf_low"]),
                            _label(net, row["conf_high"]),
                        ),
                        "Direct evidence": direct.get(key, "none (indirect only)"),
                        "P-score": format_number(ps[a], 2),
                    }
                )
    return pd.DataFrame(rows).fillna("")


def heterogeneity_text(net: OutcomeNetwork) -> str:
    """One paragraph: heterogeneity and inconsistency, or why they cannot be estimated."""
    loops = net.loops
    het = net.fit.heterogeneity.iloc[0]
    k = net.arms["study"].nunique()
    if het["df"] == 0:
        return (
            f"*{net.title}*: {k} trials, {len(net.fit.treatments)} treatments, "
            f"{loops} closed loops; every comparison rests on a single trial, so there are no "
            "degrees of freedom for heterogeneity (τ², I²) and no loop in which direct and "
            "indirect evidence could disagree: heterogeneity and inconsistency cannot be "
            "estimated, and the random-effects results equal the common-effect ones."
        )
    text = (
        f"*{net.title}*: {k} trials, {loops} closed loops. Q = {format_number(het['q'])} on "
        f"{int(het['df'])} df (p = {format_p(het['p_value'])}), τ² = "
        f"{format_number(het['tau2'], 3)}, I² = {format_number(100 * het['i2'], 0)}%."
    )
    if np.isfinite(het["q_between"]) and het["df_between"] > 0:
        text += (
            f" Between designs (inconsistency): Q = {format_number(het['q_between'])} on "
            f"{int(het['df_between'])} df (p = {format_p(het['p_between'])})."
        )
    else:
        text += " No design differs from another in a closed loop: inconsistency not estimable."
    return text


def sensitivity_rows(
    networks: list[OutcomeNetwork], sensitivity: list[pd.DataFrame], limits: list[pd.Series]
) -> tuple[pd.DataFrame, list[str]]:
    """Display rows of :func:`~outcomes.models.network.sensitivity.r_sensitivity` per outcome.

    Returns
    -------
    (table, notes)
        Rows ``Comparison, r, Estimate (95% CI)`` (a heading row per outcome; "not
        attainable" where the counts do not allow that ``r``) and the sentences for the note.
    """
    rows, notes = [], []
    for net, sens, lim in zip(networks, sensitivity, limits, strict=True):
        rows.append({"Comparison": net.title})
        notes += [
            f"{study}: the counts allow a within-patient correlation of at most "
            f"{format_number(value, 2)}."
            for study, value in lim["high"].items()
        ]
        for term, g in sens.groupby("term", sort=False):
            for i, (_, t) in enumerate(g.iterrows()):
                text = (
                    format_ci(
                        _label(net, t["estimate"]),
                        _label(net, t["conf_low"]),
                        _label(net, t["conf_high"]),
                    )
                    if t["attainable"]
                    else "not attainable"
                )
                rows.append(
                    {
                        "Comparison": f"\N{EM SPACE}{term}" if i == 0 else "",
                        "r": f"{t['r']:g}",
                        "Estimate (95% CI)": text,
                    }
                )
    return pd.DataFrame(rows).fillna(""), notes


def provenance_rows(networks: list[OutcomeNetwork]) -> pd.DataFrame:
    """One row per trial and outcome: source, numbers used, what was quoted and derived.

    "read in" is the data's ``source_status`` (``abstract``: numbers read in the published
    abstract only).
    """
    rows = []
    for net in networks:
        for study, g in net.arms.groupby("study", sort=False):
            first = g.iloc[0]
            ids = []
            if pd.notna(first.get("doi")):
                ids.append(f"doi:{first['doi']}")
            if pd.notna(first.get("pmid")):
                ids.append(f"PMID {first['pmid']}")
            if not ids:
                ids.append(str(first["confirmed_at"]))
            arms = "; ".join(
                f"{t}: n = {int(n)}, "
                + (f"{int(ev)} events" if pd.notna(ev) else f"mean {m:g} (SD {sd:g})")
                for t, n, ev, m, sd in zip(
                    g["treatment"], g["n"], g["events"], g["mean"], g["sd"], strict=True
                )
            )
            rows.append(
                {
                    "Trial and source": f"{study}: {first['citation']} {'; '.join(ids)} "
                    f"(read in: {', '.join(sorted(set(g['source_status'])))})",
                    "Numbers used": arms,
                    "Quoted": " / ".join(dict.fromkeys(g["quoted"])),
                    "Derived": " / ".join(dict.fromkeys(g["derivation"])),
                }
            )
    return pd.DataFrame(rows)
