"""The comparison table: its columns and measures, and how rows are collected and sorted."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from outcomes.errors import OutcomesWarning, StatisticalWarning

#: Columns of :attr:`ComparisonResult.table`, in order.
COMPARISON_COLUMNS: tuple[str, ...] = (
    "source",
    "study_id",
    "design",
    "indication",
    "body_site",
    "outcome",
    "measure",
    "comparison",
    "adjustment",
    "estimate",
    "std_error",
    "statistic",
    "df",
    "p_value",
    "conf_low",
    "conf_high",
    "n",
    "n_clusters",
    "definition",
    "method",
    "warning",
    "missing_data",
    "doubt",
)
MEASURES: tuple[str, ...] = (
    "mean_difference",
    "odds_ratio",
    "hazard_ratio",
    "risk_difference",
    "risk_ratio",
    "ratio_of_odds_ratios",
    "difference_in_mean_differences",
    "interaction_wald",
)
RATIO_MEASURES = ("odds_ratio", "hazard_ratio", "risk_ratio", "ratio_of_odds_ratios")
ESTIMANDS = ("overlap", "ATE")
TRIAL_DESIGNS = ("split_body", "parallel")
CONTROLS = ("MN", "MN+saline")
#: Primary continuous instrument of each indication, in order of preference.
PRIMARY_INSTRUMENTS: dict[str, tuple[str, ...]] = {
    "acne_scars": ("gb_quant", "ecca"),
    "pigmentation": ("mmasi", "masi"),
}
#: Ordered grade analysed with ``grade_model="clmm"`` (acne scars).
GRADE_INSTRUMENT = "gb_qual"
#: Models for the trial's responders and grade: option value -> what it fits.
RESPONDER_MODELS = ("gee", "glmm")
GRADE_MODELS = (None, "clmm")
#: Registry propensity models: one logistic model per combination vs the reference (pairwise;
#: overlap weights then balance every covariate's mean exactly, Li, Morgan & Zaslavsky 2018),
#: or one multinomial model of all modalities (overlap weights do not balance exactly).
PS_MODELS = ("pairwise", "multinomial")
#: Adverse-event outcomes: name -> (term, severities counted or None for any severity).
AE_OUTCOMES: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "severe_erythema": ("erythema", ("severe",)),
    "pih": ("pih", None),
    "edema": ("edema", None),
    "dryness": ("dryness", None),
    "infection": ("infection", None),
}
PHOTOTYPE_NUMBER = {"I": 1, "II": 2, "III": 3, "IV": 4, "V": 5, "VI": 6}


def format_table(table: pd.DataFrame) -> str:
    """The comparison table for people: one line per row, estimates with their intervals."""
    if table.empty:
        return "no comparisons"
    t = table.copy()

    def fmt(v: float) -> str:
        if not np.isfinite(v):
            return "NA"
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"

    t["estimate (CI)"] = [
        f"chi2 {fmt(st)} on {df:.0f} df"
        if m == "interaction_wald"
        else f"{fmt(e)} ({fmt(lo)}, {fmt(hi)})"
        for m, e, lo, hi, st, df in zip(
            t["measure"],
            t["estimate"],
            t["conf_low"],
            t["conf_high"],
            t["statistic"],
            t["df"],
            strict=True,
        )
    ]
    t["p"] = [
        ("<0.001" if p < 0.001 else f"{p:.3f}") if np.isfinite(p) else "" for p in t["p_value"]
    ]
    t["warn"] = np.where(t["warning"].astype(str) != "", "*", "")
    cols = [
        "source",
        "indication",
        "outcome",
        "measure",
        "comparison",
        "adjustment",
        "estimate (CI)",
        "p",
        "n",
        "warn",
    ]
    t["n"] = t["n"].map(lambda v: "" if not np.isfinite(v) else f"{v:.0f}")
    with pd.option_context("display.width", 200, "display.max_rows", 1000):
        text = t[cols].to_string(index=False)
    if (t["warn"] == "*").any():
        text += "\n* the row has warnings (see the warning column of comparison.csv)"
    return text


# --------------------------------------------------------------------------------------------
# rows and warnings
# --------------------------------------------------------------------------------------------


class _Collector:
    """Rows of the table and the warnings of the models that made them."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.emitted: dict[tuple[type[Warning], str], None] = {}

    def run(self, func: Any, *args: Any, **kwargs: Any) -> tuple[Any, list[str]]:
        """Call ``func``; return its value and the messages of the warnings it raised."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = func(*args, **kwargs)
        messages = []
        for w in caught:
            category = w.category if issubclass(w.category, OutcomesWarning) else StatisticalWarning
            message = str(w.message).strip()
            self.emitted.setdefault((category, message), None)
            messages.append(message)
        return value, list(dict.fromkeys(messages))

    def add(self, base: Mapping[str, Any], warning: Sequence[str] = (), **values: Any) -> None:
        """Add a row; its caveats become its ``warning`` and (once each) typed warnings."""
        row: dict[str, Any] = {c: np.nan for c in COMPARISON_COLUMNS}
        row.update({"missing_data": "", "doubt": ""})
        row.update(base)
        row.update(values)
        messages = list(dict.fromkeys(m for m in warning if m))
        row["warning"] = " | ".join(messages)
        known = {message for _, message in self.emitted}
        for message in messages:
            if message not in known:
                self.emitted[(StatisticalWarning, message)] = None
        self.rows.append(row)

    def failed(self, base: Mapping[str, Any], what: str, exc: Exception) -> None:
        """Record a comparison that could not be estimated (a row of NaN with the reason)."""
        self.add(base, [f"{what} not estimated: {exc}"])

    def note(self, message: str) -> None:
        """A warning about a whole study (no row)."""
        self.emitted.setdefault((StatisticalWarning, message), None)

    def emit(self) -> None:
        """Emit each distinct warning once, with its category."""
        for category, message in self.emitted:
            warnings.warn(message, category, stacklevel=3)


def _ratio_values(log_est: float, se: float, df: float, level: float) -> dict[str, float]:
    """Ratio-scale estimate and limits from a log estimate (t with ``df``, else normal)."""
    crit = stats.t.isf((1 - level) / 2, df) if np.isfinite(df) else stats.norm.isf((1 - level) / 2)
    z = log_est / se if se > 0 else np.nan
    p = 2 * (stats.t.sf(abs(z), df) if np.isfinite(df) else stats.norm.sf(abs(z)))
    with np.errstate(over="ignore"):
        return {
            "estimate": float(np.exp(log_est)),
            "std_error": float(se),
            "statistic": float(z),
            "df": float(df),
            "p_value": float(p),
            "conf_low": float(np.exp(log_est - crit * se)),
            "conf_high": float(np.exp(log_est + crit * se)),
        }


def _diff_values(est: float, se: float, df: float, level: float) -> dict[str, float]:
    crit = stats.t.isf((1 - level) / 2, df) if np.isfinite(df) else stats.norm.isf((1 - level) / 2)
    z = est / se if se > 0 else np.nan
    p = 2 * (stats.t.sf(abs(z), df) if np.isfinite(df) else stats.norm.sf(abs(z)))
    return {
        "estimate": float(est),
        "std_error": float(se),
        "statistic": float(z),
        "df": float(df),
        "p_value": float(p),
        "conf_low": float(est - crit * se),
        "conf_high": float(est + crit * se),
    }


def _sorted(table: pd.DataFrame) -> pd.DataFrame:
    """Trials, then registries, then published; efficacy before adverse events."""
    source = table["source"].map({"trial": 0, "registry": 1, "published": 2})
    interaction = table["measure"].isin(
        ["ratio_of_odds_ratios", "difference_in_mean_differences", "interaction_wald"]
    )
    outcome = [
        3 if str(o).startswith("ae_") else {"responder": 1, "time_to_result": 2}.get(o, 0)
        for o in table["outcome"]
    ]
    measure = table["measure"].map({m: i for i, m in enumerate(MEASURES)})
    adjustment = table["adjustment"].map({"naive": 0, "weighted": 1}).fillna(0)
    keys = pd.DataFrame(
        {
            "a": source,
            "b": table["study_id"].astype(str),
            "c": interaction,
            "d": table["indication"].astype(str) + "/" + table["body_site"].astype(str),
            "e": outcome,
            "f": table["outcome"].astype(str),
            "g": measure,
            "h": table["comparison"].astype(str),
            "i": adjustment,
        }
    )
    order = keys.sort_values(list(keys.columns), kind="stable").index
    return table.loc[order].reset_index(drop=True)
