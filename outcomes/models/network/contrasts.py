"""Network input: arm-level or contrast-level data as one row per within-study comparison.

A network meta-analysis works on contrasts: each study contributes every pairwise comparison of
its arms (one for two arms, three for three arms, ...), as netmeta's ``pairwise()`` builds them.

Arm-level input (one row per study arm)
    ``study``, ``treatment`` and either ``events``, ``n`` (measures ``"OR"``, ``"RR"``,
    ``"RD"``) or ``mean``, ``sd``, ``n`` (``"MD"``).
Contrast-level input (one row per comparison)
    ``study``, ``treat1``, ``treat2``, ``TE`` and ``seTE`` (``measure="GEN"`` or the measure
    the effects are on); ``yi``/``sei`` are accepted for ``TE``/``seTE``. A multi-arm study
    must give all its comparisons.

Split-face (split-body) studies
    Rows whose ``design`` is ``"split_body"`` (or ``"paired"``) compare sides of the same
    patients. Their contrasts get the paired variance of :func:`outcomes.escalc`
    with the within-patient correlation ``r`` (a column, or the ``r`` argument), which is
    rarely reported and so a sensitivity parameter. ``n`` is the number of patients on every
    arm. A three-arm split-body study (three sites of the same patients) has covariances of
    the same form, so its pairwise variances still define the study's covariance exactly.

Zero cells (binary measures)
    As netmeta's ``pairwise()``: 1/2 is added to every cell of every arm of a study with a
    zero cell (``"OR"``, ``"RR"``), and a comparison in which both arms have no events (or
    only events) is left out, with a diagnostic. Effect sizes and variances are those of
    :func:`outcomes.escalc` (metafor's formulas); for ``"OR"`` they equal
    netmeta's, while netmeta's ``"RR"`` and ``"RD"`` handle zero cells slightly differently
    (``"RD"`` gets no correction here). Standardised mean differences are not offered:
    trials on different scales are not pooled here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd

from outcomes.errors import InputError
from outcomes.models.meta.effect_sizes import (
    PAIRED_DESIGNS,
    PARALLEL_DESIGNS,
    escalc,
    require_columns,
)
from outcomes.results import Diagnostic

__all__ = ["NETWORK_MEASURES", "Contrasts", "sort_key", "to_contrasts"]

NETWORK_MEASURES: tuple[str, ...] = ("MD", "OR", "RR", "RD", "GEN")
_BINARY = ("OR", "RR", "RD")
_CONTRAST_ALIASES = {"yi": "TE", "sei": "seTE"}


def sort_key(label: str) -> tuple[str, str]:
    """Treatment order: case-insensitive alphabetical (as R sorts them in netmeta)."""
    return (label.casefold(), label)


@dataclass
class Contrasts:
    """One row per within-study comparison, oriented so that ``treat1`` sorts before ``treat2``.

    Attributes
    ----------
    table
        ``study, treat1, treat2, TE, seTE, paired, corrected`` (and the arm columns when
        built from arms), rows grouped by study.
    treatments
        All treatments, in :func:`sort_key` order.
    diagnostics
        What was done to the data (continuity corrections, dropped comparisons, assumed r).
    """

    table: pd.DataFrame
    treatments: list[str]
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def studies(self) -> list[str]:
        """Study labels in order of first appearance."""
        return list(dict.fromkeys(self.table["study"]))


def _text(values: pd.Series, column: str) -> pd.Series:
    if values.isna().any():
        rows = ", ".join(str(i + 1) for i in np.flatnonzero(values.isna().to_numpy()))
        raise InputError(f"Column {column!r} is empty in data row(s) {rows}.")
    return values.astype(str).str.strip()


def _number(data: pd.DataFrame, column: str) -> np.ndarray:
    values = pd.to_numeric(data[column], errors="coerce")
    if values.isna().any():
        rows = ", ".join(str(i + 1) for i in np.flatnonzero(values.isna().to_numpy()))
        raise InputError(f"Column {column!r} must be a number; check data row(s) {rows}.")
    return values.to_numpy(dtype=float)


def _designs(data: pd.DataFrame) -> pd.Series:
    if "design" not in data.columns:
        return pd.Series("parallel", index=data.index)
    design = data["design"].fillna("parallel").astype(str)
    unknown = sorted(set(design) - set(PAIRED_DESIGNS) - set(PARALLEL_DESIGNS))
    if unknown:
        raise InputError(
            f"Unknown design value(s) {unknown}; use one of "
            f"{', '.join(PARALLEL_DESIGNS + PAIRED_DESIGNS)}."
        )
    return design


def to_contrasts(data: pd.DataFrame, measure: str, r: float | None = None) -> Contrasts:
    """Turn arm-level or contrast-level data into within-study comparisons.

    Parameters
    ----------
    data
        Arm-level rows (``treatment`` column) or contrast rows (``treat1``/``treat2``).
    measure
        One of :data:`NETWORK_MEASURES`.
    r
        Within-patient correlation for split-face studies without an ``r`` of their own.
    """
    if not isinstance(data, pd.DataFrame) or data.empty:
        raise InputError("data must be a non-empty pandas DataFrame.")
    measure = str(measure).upper()
    if measure not in NETWORK_MEASURES:
        raise InputError(f"Unknown measure {measure!r}; use one of {', '.join(NETWORK_MEASURES)}.")
    require_columns(data, ["study"], "Network data")
    data = data.reset_index(drop=True).rename(
        columns={k: v for k, v in _CONTRAST_ALIASES.items() if k in data.columns}
    )
    if {"treat1", "treat2"} <= set(data.columns):
        out = _from_contrasts(data)
    elif "treatment" in data.columns:
        if measure == "GEN":
            raise InputError(
                "Arm-level data (a 'treatment' column) needs a measure: 'MD' for means or "
                "'OR', 'RR', 'RD' for event counts."
            )
        out = _from_arms(data, measure, r)
    else:
        raise InputError(
            "Network data needs either a 'treatment' column (one row per study arm) or "
            "'treat1' and 'treat2' columns (one row per comparison)."
        )
    _check_counts(out.table)
    return out


def _from_contrasts(data: pd.DataFrame) -> Contrasts:
    require_columns(
        data, ["study", "treat1", "treat2", "TE", "seTE"], "Contrast-level network data"
    )
    table = pd.DataFrame(
        {
            "study": _text(data["study"], "study"),
            "treat1": _text(data["treat1"], "treat1"),
            "treat2": _text(data["treat2"], "treat2"),
            "TE": _number(data, "TE"),
            "seTE": _number(data, "seTE"),
        }
    )
    bad = ~(table["seTE"] > 0)
    if bad.any():
        rows = ", ".join(str(i + 1) for i in np.flatnonzero(bad.to_numpy()))
        raise InputError(f"Column 'seTE' must be positive; check data row(s) {rows}.")
    same = table["treat1"] == table["treat2"]
    if same.any():
        rows = ", ".join(str(i + 1) for i in np.flatnonzero(same.to_numpy()))
        raise InputError(f"treat1 and treat2 must differ; check data row(s) {rows}.")
    table["paired"] = _designs(data).isin(PAIRED_DESIGNS).to_numpy()
    table["corrected"] = False
    return _finish(table, [])


def _from_arms(data: pd.DataFrame, measure: str, r: float | None) -> Contrasts:
    cols = (
        ["study", "treatment", "events", "n"]
        if measure in _BINARY
        else ["study", "treatment", "mean", "sd", "n"]
    )
    require_columns(data, cols, f"Arm-level data with measure={measure!r}")
    arms = data.copy()
    arms["study"] = _text(arms["study"], "study")
    arms["treatment"] = _text(arms["treatment"], "treatment")
    arms["design"] = _designs(arms)
    for c in cols[2:]:
        arms[c] = _number(arms, c)
    dup = arms.duplicated(["study", "treatment"])
    if dup.any():
        where = ", ".join(str(i + 1) for i in np.flatnonzero(dup.to_numpy()))
        raise InputError(
            f"A study lists the same treatment twice (data row(s) {where}); combine those arms."
        )
    diagnostics: list[Diagnostic] = []
    rows: list[dict] = []
    corrected: list[str] = []
    dropped: list[str] = []
    for study, g in arms.groupby("study", sort=False):
        if len(g) < 2:
            raise InputError(f"Study {study!r} has only one arm; a network needs comparisons.")
        design = set(g["design"])
        if len(design) > 1:
            raise InputError(f"Study {study!r} mixes designs {sorted(design)} across its arms.")
        paired = design.pop() in PAIRED_DESIGNS
        g = g.copy()
        if measure in ("OR", "RR"):
            zero = ((g["events"] == 0) | (g["events"] == g["n"])).any()
            if zero:
                g["events"] = g["events"] + 0.5
                g["n"] = g["n"] + 1.0
                corrected.append(str(study))
        for (_, a), (_, b) in combinations(g.iterrows(), 2):
            if measure in _BINARY:
                both = (a["events"] == b["events"] == 0) or (
                    a["events"] == a["n"] and b["events"] == b["n"]
                )
                if both and measure != "RD":
                    dropped.append(f"{study} ({a['treatment']} vs {b['treatment']})")
                    continue
                row = {"events1": a["events"], "n1": a["n"], "events2": b["events"], "n2": b["n"]}
            else:
                row = {
                    "mean1": a["mean"],
                    "sd1": a["sd"],
                    "n1": a["n"],
                    "mean2": b["mean"],
                    "sd2": b["sd"],
                    "n2": b["n"],
                }
            rows.append(
                {
                    "study": str(study),
                    "treat1": a["treatment"],
                    "treat2": b["treatment"],
                    "design": "split_body" if paired else "parallel",
                    "r": a["r"] if "r" in g.columns else np.nan,
                    **row,
                }
            )
    if not rows:
        raise InputError("No comparison is left to analyse (every comparison had no events).")
    pairs = pd.DataFrame(rows)
    names = (
        pairs["study"].astype(str)
        + " ("
        + pairs["treat1"].astype(str)
        + " vs "
        + pairs["treat2"].astype(str)
        + ")"
    )
    if names.duplicated().any():  # reported below as a comparison given twice
        names = pd.Series([f"{i}" for i in range(len(pairs))])
    labelled = pairs.assign(study=names.to_numpy())
    es = escalc(labelled, measure, r=r)
    table = pairs[["study", "treat1", "treat2"]].copy()
    table["TE"] = es["yi"].to_numpy()
    table["seTE"] = es["sei"].to_numpy()
    for c in ("events1", "n1", "events2", "n2", "mean1", "sd1", "mean2", "sd2"):
        if c in pairs.columns:
            table[c] = pairs[c].to_numpy()
    table["paired"] = es["paired"].to_numpy()
    table["corrected"] = table["study"].isin(corrected).to_numpy()
    if corrected:
        diagnostics.append(
            Diagnostic(
                "zero_cells",
                "1/2 added to every cell of every arm of the studies with a zero cell: "
                f"{', '.join(corrected)}.",
                severity="info",
            )
        )
    if dropped:
        diagnostics.append(
            Diagnostic(
                "double_zero_dropped",
                "Comparisons with no events (or only events) in both arms carry no information "
                f"on the {measure} and were left out: {', '.join(dropped)}.",
            )
        )
    if table["paired"].any():
        used = es.loc[es["paired"], "r"] if "r" in es.columns else pd.Series(dtype=float)
        values = sorted(set(np.round(used.fillna(r if r is not None else np.nan), 3)))
        diagnostics.append(
            Diagnostic(
                "assumed_correlation",
                "Split-face studies analysed as paired with within-patient correlation r = "
                f"{', '.join(map(str, values))}; vary r in a sensitivity analysis.",
                severity="info",
            )
        )
    return _finish(table, diagnostics)


def _finish(table: pd.DataFrame, diagnostics: list[Diagnostic]) -> Contrasts:
    """Orient each row so that treat1 sorts before treat2, and group rows by study."""
    flip = np.array(
        [sort_key(a) > sort_key(b) for a, b in zip(table["treat1"], table["treat2"], strict=True)]
    )
    if flip.any():
        table = table.copy()
        table.loc[flip, "TE"] = -table.loc[flip, "TE"]
        t1 = table.loc[flip, "treat1"].copy()
        table.loc[flip, "treat1"] = table.loc[flip, "treat2"]
        table.loc[flip, "treat2"] = t1
        for a, b in (("events1", "events2"), ("n1", "n2"), ("mean1", "mean2"), ("sd1", "sd2")):
            if a in table.columns:
                va = table.loc[flip, a].copy()
                table.loc[flip, a] = table.loc[flip, b]
                table.loc[flip, b] = va
    order = {s: i for i, s in enumerate(dict.fromkeys(table["study"]))}
    table = table.assign(_o=table["study"].map(order)).sort_values(
        ["_o", "treat1", "treat2"],
        kind="stable",
        key=lambda s: s.map(lambda v: sort_key(v) if isinstance(v, str) else v),
    )
    table = table.drop(columns="_o").reset_index(drop=True)
    treatments = sorted(set(table["treat1"]) | set(table["treat2"]), key=sort_key)
    return Contrasts(table=table, treatments=treatments, diagnostics=diagnostics)


def _check_counts(table: pd.DataFrame) -> None:
    """Each study must give all k(k-1)/2 comparisons of its k arms, each once."""
    for study, g in table.groupby("study", sort=False):
        pairs = list(zip(g["treat1"], g["treat2"], strict=True))
        if len(set(pairs)) != len(pairs):
            raise InputError(f"Study {study!r} gives the same comparison twice.")
        arms = set(g["treat1"]) | set(g["treat2"])
        k = len(arms)
        if len(g) != k * (k - 1) // 2:
            raise InputError(
                f"Study {study!r} has {k} arms ({', '.join(sorted(arms))}) but {len(g)} "
                f"comparison(s); a {k}-arm study needs all {k * (k - 1) // 2}."
            )
