"""Each combination versus microneedling alone, by indication: one tidy comparison table.

:func:`compare` reads the studies in a set of schema tables (or a store), picks the analysis
by each study's design, and returns one long table -- one row per source, indication (and body
site, with ``by_body_site=True``), outcome, measure, comparison and adjustment -- plus a
forest plot. Primary scores: ``gb_quant`` (else ``ecca``) for acne scars, ``mmasi`` (else
``masi``) for pigmentation; the other indications have no continuous instrument in the data
dictionary, so they get no mean difference.

Randomised trials (``split_body``, ``parallel``), ``adjustment="randomised"``
    (a) ``mean_difference`` of the primary score at the primary visit: emmeans contrast of
        ``value ~ week * arm`` at ``week = primary_day / 7`` from :func:`~outcomes.models.mixed.lmm`
        (random intercept and week slope per subject; the side nested in the subject for
        split-body trials), Satterthwaite df.
    (b) ``odds_ratio`` of response (percent improvement >= ``responder_threshold`` at the visit
        nearest the primary day): :func:`~outcomes.models.gee.gee`, binomial, exchangeable
        working correlation, clusters = subjects (robust SE; both sides of a face are one
        cluster).
    (c) ``hazard_ratio`` of time to result (:func:`~outcomes.derive.derive_tte`, endpoint
        ``first_improvement`` when ``gb_qual`` is recorded, else ``gais_much_improved``, else
        ``full_result``; time is the first visit showing the result):
        :func:`~outcomes.models.survival.cox`, Efron ties, robust SE clustered by subject in
        split-body trials. A contrast past the trial's last visit is not extrapolated.
    (d) adverse events per treated unit: ``risk_difference`` and ``risk_ratio``. Split-body
        trials are analysed as paired (both sides of one subject): Wald intervals for the
        paired difference (variance ``(b + c - (b - c)^2 / n) / n^2``) and for the log ratio
        of paired proportions (variance ``(b + c) / ((a + b)(a + c))``; ``a`` = both sides,
        ``b`` = combination side only, ``c`` = control side only). Parallel trials: Newcombe's
        hybrid score interval for the difference and a Wald interval on the log ratio.

Registries (``observational``), ``adjustment="naive"`` and ``"weighted"``
    Within each indication a propensity model (:func:`~outcomes.models.propensity.
    propensity_weights`, multinomial logit) of the modality on phototype (I-VI as 1-6), the
    baseline score of the primary instrument when the indication has one, and the clinic gives
    overlap weights (default) or stabilised inverse-probability weights. Then, with the clinic
    as cluster (cluster-robust SE):

    (a) weighted regression of the percent improvement at the visit nearest the primary day
        (:func:`~outcomes.models.propensity.weighted_effect`, t with clusters - 1 df);
    (b) weighted logistic regression of response -- GAIS <= 2 at the visit nearest the primary
        day when GAIS is recorded (one definition for every indication), else percent
        improvement >= ``responder_threshold`` -- (statsmodels GLM, cluster-robust sandwich
        written here, t with clusters - 1 df);
    (c) weighted Cox model (lifelines ``CoxPHFitter`` with weights and ``cluster_col``, robust
        sandwich SE, as R ``coxph(..., weights = w, cluster = clinic)``; the naive model is
        :func:`~outcomes.models.survival.cox` with ``cluster="site_id"``);
    (d) adverse events per unit: weighted risk difference (weighted linear model) and risk
        ratio (weighted Poisson model with log link, "modified Poisson"), cluster-robust.

    The naive rows are the same models without weights, except adverse events: naive rows are
    the plain 2 x 2 comparison (Newcombe interval for the difference, Wald on the log ratio),
    which ignores the clustering by clinic. Comparisons in which a group has no events (or
    only events) are not estimable: their rows have no estimate and say why.

    Treatment-by-indication interaction: saturated weighted (and naive) models with
    ``modality * indication`` terms (logistic for response, linear for percent improvement),
    clinic-clustered; per combination a Wald test that its effect is the same in every
    indication (``measure="interaction_wald"``, chi-square on ``df`` degrees of freedom), and
    the ratio of odds ratios (difference of mean differences) of each indication against the
    reference indication.

Published study-level summaries (``source="published"``)
    Random-effects (REML) meta-analysis of each combination vs microneedling alone (controls
    ``MN`` or ``MN+saline``) per indication and outcome (:func:`~outcomes.models.meta.
    meta_analysis`; split-face rows paired with ``r = 0.5`` unless the data give ``r``).

Conventions: ratio measures are reported on the ratio scale (``estimate``, ``conf_low``,
``conf_high``) with ``std_error`` and ``statistic`` on the log scale (as broom's
``exponentiate = TRUE``); ``df`` is empty for normal-theory (z) inference. Every model's
warnings are kept in the row's ``warning`` column and re-emitted once as typed warnings.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from outcomes.errors import InputError, ModelError, OutcomesWarning, StatisticalWarning
from outcomes.results import TIDY_COLUMNS, to_ard

__all__ = [
    "COMPARISON_COLUMNS",
    "MEASURES",
    "ComparisonResult",
    "cli_compare",
    "compare",
]

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
#: Adverse-event outcomes: name -> (term, severities counted or None for any severity).
AE_OUTCOMES: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "severe_erythema": ("erythema", ("severe",)),
    "pih": ("pih", None),
    "edema": ("edema", None),
    "dryness": ("dryness", None),
    "infection": ("infection", None),
}
PHOTOTYPE_NUMBER = {"I": 1, "II": 2, "III": 3, "IV": 4, "V": 5, "VI": 6}


# --------------------------------------------------------------------------------------------
# result object
# --------------------------------------------------------------------------------------------


@dataclass
class ComparisonResult:
    """Combinations vs microneedling alone (returned by :func:`compare`).

    Attributes
    ----------
    table
        One row per source, study, indication, outcome, measure, comparison and adjustment;
        columns :data:`COMPARISON_COLUMNS`.
    balance
        Registries: covariate balance (standardised mean differences before and after
        weighting) per indication, from :func:`~outcomes.models.propensity.balance_table`.
    weights
        Registries: per indication and modality, ``n``, sum, range and effective sample size
        of the weights.
    options
        The options the comparison was run with.
    """

    table: pd.DataFrame
    balance: pd.DataFrame = field(default_factory=pd.DataFrame)
    weights: pd.DataFrame = field(default_factory=pd.DataFrame)
    options: dict[str, Any] = field(default_factory=dict)

    def to_ard(self) -> pd.DataFrame:
        """Analysis-results-dataset rows: one per statistic of each row of :attr:`table`.

        ``group`` holds ``source, study_id, indication, outcome, measure, comparison,
        adjustment`` as ``key=value`` pairs; the row's warning is kept in ``warning``.
        """
        keys = ["source", "study_id", "indication", "body_site", "outcome", "measure", "comparison"]
        parts = []
        stats_cols = [*TIDY_COLUMNS[1:], "n", "n_clusters"]
        for _, row in self.table.iterrows():
            tidy = pd.DataFrame([{"term": row["adjustment"], **{c: row[c] for c in stats_cols}}])
            tidy[stats_cols] = tidy[stats_cols].astype(float)
            ard = to_ard(
                tidy,
                analysis="compare",
                groups={k: row[k] for k in keys},
                stats=stats_cols,
            )
            ard["warning"] = row["warning"]
            parts.append(ard)
        if not parts:
            return to_ard(pd.DataFrame({"term": []}), analysis="compare", stats=[])
        return pd.concat(parts, ignore_index=True)

    def forest_plot(
        self,
        measures: Sequence[str] = ("mean_difference", "odds_ratio", "hazard_ratio", "risk_ratio"),
        sources: Sequence[str] | None = None,
    ) -> Any:
        """Forest plot (plotnine) by indication and modality, one panel per outcome and measure.

        Ratio panels use a log axis with a reference line at 1; difference panels a line at 0.
        Colour is the combination (the report theme's modality colours), the point shape the
        adjustment (randomised, naive, weighted, random effects).

        Parameters
        ----------
        measures
            Which measures to draw (default: the efficacy measures and the adverse-event risk
            ratios).
        sources
            Restrict to these sources (``"trial"``, ``"registry"``, ``"published"``).

        Returns
        -------
        plotnine.ggplot or plotnine composition
            One panel per (outcome, measure), arranged two per row.
        """
        return _forest_plot(self.table, list(measures), sources, self.options.get("level", 0.95))

    def save(self, out_dir: str | Path, formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
        """Write ``comparison.csv``, ``comparison.parquet``, ``comparison_ard.csv``,
        ``balance.csv`` (registries) and ``forest.<format>``; return the paths written."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / "comparison.csv", out / "comparison.parquet", out / "comparison_ard.csv"]
        self.table.to_csv(paths[0], index=False)
        self.table.to_parquet(paths[1], index=False)
        self.to_ard().to_csv(paths[2], index=False)
        if len(self.balance):
            paths.append(out / "balance.csv")
            self.balance.to_csv(paths[-1], index=False)
        try:
            plot = self.forest_plot()
        except InputError:  # nothing estimable to draw: the table says why, row by row
            return paths
        for fmt in formats:
            path = out / f"forest.{fmt}"
            _save_plot(plot, path)
            paths.append(path)
        return paths

    def __str__(self) -> str:
        return format_table(self.table)


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
# input handling
# --------------------------------------------------------------------------------------------


def _plain_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Copy with NumPy dtypes (the store returns Arrow strings and nullable numbers)."""
    out = {}
    for col in df.columns:
        s = df[col]
        if isinstance(s.dtype, pd.StringDtype) or s.dtype == object:
            out[col] = s.astype(object).mask(s.isna())
        elif pd.api.types.is_bool_dtype(s.dtype):
            out[col] = s.astype(object).mask(s.isna()) if s.isna().any() else s.astype(bool)
        elif pd.api.types.is_numeric_dtype(s.dtype):
            out[col] = (
                s.astype(float) if s.isna().any() or s.dtype.kind == "f" else s.astype(np.int64)
            )
        else:
            out[col] = s
    return pd.DataFrame(out, index=df.index)


def _load_tables(data: Any, snapshot: int | None) -> dict[str, pd.DataFrame]:
    from outcomes.store import Store

    if isinstance(getattr(data, "tables", None), Mapping):
        tables = dict(data.tables)  # simulator Feeds
    elif isinstance(data, Store):
        tables = data.tables(snapshot)
    elif isinstance(data, str | Path):
        path = Path(data)
        if not path.exists():
            raise InputError(f"store {str(path)!r} does not exist")
        with Store(path) as store:
            tables = store.tables(snapshot)
    elif isinstance(data, Mapping):
        tables = dict(data)
    else:
        raise InputError(
            "compare() needs a store (path or Store), simulated Feeds, or a mapping of schema "
            f"tables; got {type(data).__name__}"
        )
    needed = ("studies", "subjects", "units", "sessions", "assessments", "adverse_events")
    missing = [n for n in needed if n not in tables]
    if missing:
        raise InputError(
            f"compare() needs the tables {', '.join(missing)}; got {', '.join(tables)}"
        )
    for name in needed:
        if not isinstance(tables[name], pd.DataFrame):
            raise InputError(f"table {name!r} must be a pandas DataFrame")
    return {n: _plain_frame(tables[n]) for n in needed}


def _study(tables: Mapping[str, pd.DataFrame], study_id: str) -> dict[str, pd.DataFrame]:
    return {
        n: df.loc[df["study_id"] == study_id].reset_index(drop=True) for n, df in tables.items()
    }


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


# --------------------------------------------------------------------------------------------
# analysis datasets
# --------------------------------------------------------------------------------------------


def _unit_frame(t: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Treated units with subject covariates and the day of their first session."""
    units = t["units"][["unit_id", "subject_id", "modality"]].copy()
    units["body_site"] = t["units"].get("body_site", "other")
    subj_cols = [
        c for c in ("subject_id", "site_id", "phototype", "indication") if c in t["subjects"]
    ]
    units = units.merge(t["subjects"][subj_cols], on="subject_id", how="left")
    first = t["sessions"].groupby("unit_id")["day"].min().rename("first_session_day")
    units = units.merge(first, on="unit_id", how="inner")  # untreated units are not analysed
    units["modality"] = units["modality"].astype(str)
    units["indication"] = units["indication"].fillna("other").astype(str)
    return units.reset_index(drop=True)


def _instrument_scores(t: Mapping[str, pd.DataFrame], instrument: str) -> pd.DataFrame:
    """Per unit and day: the score (investigator's if any, raters averaged)."""
    a = t["assessments"]
    a = a.loc[a["instrument"] == instrument]
    if (a["rater_role"] == "investigator").any():
        a = a.loc[a["rater_role"] == "investigator"]
    return pd.DataFrame(a.groupby(["unit_id", "day"], as_index=False)["value"].mean())


def _primary_instrument(t: Mapping[str, pd.DataFrame], indication: str) -> str | None:
    present = set(t["assessments"]["instrument"].astype(str))
    for inst in PRIMARY_INSTRUMENTS.get(indication, ()):
        if inst in present:
            return inst
    return None


def _at_primary_visit(
    scores: pd.DataFrame, units: pd.DataFrame, primary_day: float, window: tuple[float, float]
) -> pd.DataFrame:
    """Baseline (last score on or before the first session) and the score nearest the primary day
    within the window, one row per unit with both."""
    s = scores.merge(units[["unit_id", "first_session_day"]], on="unit_id")
    pre = s.loc[s["day"] <= s["first_session_day"]].sort_values("day")
    base = pre.groupby("unit_id")["value"].last().rename("base")
    post = s.loc[(s["day"] >= window[0]) & (s["day"] <= window[1])].copy()
    post["distance"] = (post["day"] - primary_day).abs()
    post = post.sort_values(["unit_id", "distance", "day"]).groupby("unit_id").first()
    out = post[["day", "value"]].join(base, how="inner").reset_index()
    return out


def _pct_improvement(value: pd.Series, base: pd.Series, instrument: str) -> pd.Series:
    from outcomes.dictionary import load_dictionary

    sign = 1.0 if load_dictionary().instruments[instrument].higher_is_better else -1.0
    return 100 * sign * (value - base) / base.abs().where(base != 0)


def _ae_flags(t: Mapping[str, pd.DataFrame], units: pd.DataFrame, outcome: str) -> pd.Series:
    """1 if the unit had the adverse event (any time), indexed like ``units``."""
    term, severities = AE_OUTCOMES[outcome]
    ae = t["adverse_events"]
    ae = ae.loc[ae["term"] == term]
    if severities is not None:
        ae = ae.loc[ae["severity"].isin(severities)]
    if ae["unit_id"].notna().all():
        hit = set(ae["unit_id"])
        return units["unit_id"].isin(hit).astype(int)
    # events recorded per subject: a subject's event counts for each of its units
    hit = set(ae["subject_id"])
    return units["subject_id"].isin(hit).astype(int)


def _groups(units: pd.DataFrame, by_body_site: bool) -> list[tuple[tuple[str, str], pd.DataFrame]]:
    """Units by indication (and body site): ``((indication, body_site or "all"), units)``."""
    if by_body_site:
        site = units["body_site"].fillna("other").astype(str)
        return [
            ((str(i), str(b)), g)
            for (i, b), g in units.assign(body_site=site).groupby(["indication", "body_site"])
        ]
    return [((str(i), "all"), g) for i, g in units.groupby("indication", sort=True)]


def _comparisons(modalities: Any, reference: str) -> list[str]:
    return sorted(str(m) for m in set(modalities) if m != reference)


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


# --------------------------------------------------------------------------------------------
# weighted models with cluster-robust covariance (registries)
# --------------------------------------------------------------------------------------------


def _glm_cluster(
    y: np.ndarray,
    x: pd.DataFrame,
    family: str,
    weights: np.ndarray | None,
    clusters: np.ndarray,
) -> tuple[pd.Series, pd.DataFrame, int]:
    """Weighted GLM (logistic or Poisson, canonical link) with a cluster-robust covariance.

    The fit is statsmodels ``GLM`` with ``var_weights`` (point estimates solve
    ``sum_i w_i x_i (y_i - mu_i) = 0``). The sandwich is written here, because statsmodels
    warns that its cluster covariance is not fully supported with ``var_weights``:
    ``V = c B M B`` with ``B`` the inverse of ``sum_i w_i v(mu_i) x_i x_i'``,
    ``M = sum_g s_g s_g'`` where ``s_g`` sums the weighted scores ``w_i x_i (y_i - mu_i)`` of
    cluster ``g``, and ``c = G / (G - 1) * (N - 1) / (N - K)`` (R
    ``sandwich::vcovCL(type = "HC1")``, Stata's small-sample factor).
    """
    import statsmodels.api as sm

    fam = sm.families.Binomial() if family == "binomial" else sm.families.Poisson()
    groups = pd.factorize(clusters)[0]
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)
    res = sm.GLM(y, x, family=fam, var_weights=w).fit()
    if not bool(res.converged):
        raise ModelError(f"the weighted {family} model did not converge")
    xm = x.to_numpy(dtype=float)
    mu = np.asarray(res.fittedvalues, dtype=float)
    variance = mu * (1 - mu) if family == "binomial" else mu
    bread = np.linalg.inv(xm.T @ (xm * (w * variance)[:, None]))
    scores = xm * (w * (y - mu))[:, None]
    n_groups = int(groups.max() + 1)
    summed = np.zeros((n_groups, xm.shape[1]))
    np.add.at(summed, groups, scores)
    n, k = xm.shape
    factor = n_groups / (n_groups - 1) * (n - 1) / (n - k)
    cov = factor * bread @ (summed.T @ summed) @ bread
    names = list(x.columns)
    return (
        pd.Series(np.asarray(res.params), index=names),
        pd.DataFrame(cov, index=names, columns=names),
        n_groups,
    )


def _dummies(labels: pd.Series, levels: Sequence[str], prefix: str) -> pd.DataFrame:
    cat = pd.Categorical(labels.astype(str), categories=list(levels))
    d = pd.get_dummies(cat, drop_first=True, dtype=float)
    d.columns = [f"{prefix}{lv}" for lv in levels[1:]]
    d.index = labels.index
    return d


def _naive_cox(
    data: pd.DataFrame, levels: Sequence[str], level: float
) -> tuple[pd.Series, pd.Series, int]:
    """Unweighted Cox model with robust SE by clinic (:func:`outcomes.models.survival.cox`);
    one indicator per modality in ``levels[1:]`` against ``levels[0]``."""
    from outcomes.models.survival.cox import cox

    names = [f"m{j}" for j in range(1, len(levels))]
    d = data.assign(
        **{
            n: (data["modality"] == lv).astype(float)
            for n, lv in zip(names, levels[1:], strict=True)
        }
    )
    fit = cox(d, " + ".join(names), cluster="site_id", conf_level=level)
    tab = fit.table.set_index("term")
    return (
        pd.Series(tab.loc[names, "estimate"].to_numpy(), index=list(levels[1:])),
        pd.Series(tab.loc[names, "std_error"].to_numpy(), index=list(levels[1:])),
        int(d["site_id"].nunique()),
    )


def _weighted_cox(
    data: pd.DataFrame, levels: Sequence[str], weights: np.ndarray | None, cluster: str
) -> tuple[pd.Series, pd.Series, int]:
    """Weighted Cox model with robust SE clustered by ``cluster`` (lifelines ``CoxPHFitter``).

    The toolkit's :func:`~outcomes.models.survival.cox` takes no weights. lifelines' estimate
    matches R ``coxph(..., weights = w, cluster = id)``; its robust SE is built from
    Breslow-type score residuals, so with many tied times (visit days) it differs from R's
    (Efron) by a few percent (1.9% on ``tests/r/comparison/weighted_data.csv``).
    """
    from lifelines import CoxPHFitter

    x = _dummies(data["modality"], levels, "m:")
    cols = [f"x{j}" for j in range(x.shape[1])]
    df = pd.DataFrame(x.to_numpy(), columns=cols)
    df["__time"] = data["time"].to_numpy(float)
    df["__event"] = data["event"].to_numpy(float)
    df["__w"] = 1.0 if weights is None else weights
    df["__cluster"] = pd.factorize(data[cluster])[0]
    fitter = CoxPHFitter()
    with warnings.catch_warnings():
        # lifelines warns that non-integer weights need robust=True, which is set
        warnings.filterwarnings("ignore", message=".*weights.*", category=Warning)
        fitter.fit(df, "__time", "__event", weights_col="__w", cluster_col="__cluster", robust=True)
    beta = pd.Series(fitter.params_[cols].to_numpy(), index=list(levels[1:]))
    se = pd.Series(fitter.standard_errors_[cols].to_numpy(), index=list(levels[1:]))
    return beta, se, int(df["__cluster"].max() + 1)


# --------------------------------------------------------------------------------------------
# trials
# --------------------------------------------------------------------------------------------


def _trial(
    t: Mapping[str, pd.DataFrame], study: pd.Series, col: _Collector, opts: Mapping[str, Any]
) -> None:
    from outcomes.derive import derive_tte
    from outcomes.models.survival.cox import cox

    design = str(study["design"])
    split = design == "split_body"
    level = opts["level"]
    units = _unit_frame(t)
    controls = [m for m in CONTROLS if m in set(units["modality"])]
    if not controls:
        col.note(
            f"study {study['study_id']}: no microneedling-alone arm ({', '.join(CONTROLS)});"
            " not compared"
        )
        return
    control = controls[0]
    for (indication, site), u_ind in _groups(units, opts["by_body_site"]):
        base = {
            "source": "trial",
            "study_id": study["study_id"],
            "design": design,
            "indication": indication,
            "body_site": site,
            "adjustment": "randomised",
        }
        for combo in _comparisons(u_ind["modality"], control):
            u = u_ind.loc[u_ind["modality"].isin([control, combo])].copy()
            u["arm"] = np.where(u["modality"] == combo, 1.0, 0.0)
            comp = f"{combo} vs {control}"
            row = {**base, "comparison": comp}
            n_subj = u["subject_id"].nunique()
            inst = _primary_instrument(t, indication)
            primary_day = opts["primary_day"]
            # (a) mixed model contrast at the primary visit
            if inst is not None:
                scores = _instrument_scores(t, inst).merge(
                    u[["unit_id", "subject_id", "arm", "first_session_day"]], on="unit_id"
                )
                scores["week"] = scores["day"] / 7.0
                at_week = primary_day / 7.0
                last_day = float(scores["day"].max())
                r = {
                    **row,
                    "outcome": inst,
                    "measure": "mean_difference",
                    "definition": (
                        f"{inst} score at day {primary_day:g} (combination minus control; "
                        "negative favours the combination on a higher-is-worse scale)"
                    ),
                    "method": (
                        f"lmm {inst} ~ week * arm, random intercept and week slope by subject"
                        + (", side nested in subject" if split else "")
                        + f"; emmeans contrast at week {at_week:g}, Satterthwaite df"
                    ),
                }
                if primary_day > last_day:
                    col.add(
                        r,
                        [
                            f"primary day {primary_day:g} is after the last {inst} visit (day "
                            f"{last_day:g}): not extrapolated; choose primary_day within follow-up"
                        ],
                        n=float(u["unit_id"].nunique()),
                    )
                else:
                    _trial_lmm(col, r, scores, split, at_week, comp, level, u, n_subj)

                # (b) responders at the primary visit
                visit = _at_primary_visit(
                    _instrument_scores(t, inst), u, primary_day, opts["window"]
                ).merge(u[["unit_id", "subject_id", "arm"]], on="unit_id")
                visit["responder"] = (
                    _pct_improvement(visit["value"], visit["base"], inst)
                    >= opts["responder_threshold"]
                ).astype(float)
                r = {
                    **row,
                    "outcome": "responder",
                    "measure": "odds_ratio",
                    "definition": (
                        f">= {opts['responder_threshold']:g}% improvement on {inst} at the visit "
                        f"nearest day {primary_day:g} (days {opts['window'][0]:g}-"
                        f"{opts['window'][1]:g})"
                    ),
                    "method": (
                        "GEE logistic, exchangeable working correlation, robust SE clustered "
                        "by subject"
                    ),
                }
                why = (
                    "no assessment in the window"
                    if visit.empty
                    else _degenerate(
                        visit["responder"].to_numpy(),
                        visit["arm"].map({1.0: combo, 0.0: control}),
                        [control, combo],
                        binary=True,
                    )
                )
                if why:
                    col.add(r, [f"responder odds ratio not estimated: {why}"], n=float(len(visit)))
                else:
                    _trial_gee(col, r, visit, level)

            # (c) time to result
            endpoint = _endpoint(t)
            if endpoint is not None:
                r = {
                    **row,
                    "outcome": "time_to_result",
                    "measure": "hazard_ratio",
                    "definition": _endpoint_label(endpoint),
                    "method": "Cox (Efron ties)"
                    + (", robust SE clustered by subject" if split else ""),
                }
                try:
                    tte, notes1 = col.run(derive_tte, _subset(t, u["unit_id"]), endpoint)
                    tte = tte.merge(u[["unit_id", "arm"]].rename(columns={"arm": "treated"}))
                    fit, notes2 = col.run(
                        cox,
                        tte,
                        "treated",
                        cluster="subject_id" if split else None,
                        conf_level=level,
                    )
                    c = fit.table.iloc[0]
                    col.add(
                        r,
                        [*notes1, *notes2],
                        **_ratio_values(c["estimate"], c["std_error"], np.nan, level),
                        n=float(fit.n),
                        n_clusters=float(tte["subject_id"].nunique()),
                    )
                except (InputError, ModelError, np.linalg.LinAlgError) as exc:
                    col.failed(r, "time-to-result hazard ratio", exc)

            # (d) adverse events per unit
            for outcome in opts["ae_outcomes"]:
                u[outcome] = _ae_flags(t, u, outcome).to_numpy()
                _trial_ae(u, outcome, row, split, col, level)


def _trial_gee(col: _Collector, r: Mapping[str, Any], visit: pd.DataFrame, level: float) -> None:
    """GEE logistic model of responders on arm, clusters = subjects."""
    from outcomes.models.gee import gee

    try:
        g, notes = col.run(gee, visit, "responder ~ arm", groups="subject_id", level=level)
    except (InputError, ModelError, ValueError, np.linalg.LinAlgError) as exc:
        col.failed(r, "responder odds ratio", exc)
        return
    c = g.coefficients.set_index("term").loc["arm"]
    col.add(
        r,
        notes,
        **_ratio_values(c["estimate"], c["std_error"], np.nan, level),
        n=float(len(visit)),
        n_clusters=float(visit["subject_id"].nunique()),
    )


def _trial_lmm(
    col: _Collector,
    r: Mapping[str, Any],
    scores: pd.DataFrame,
    split: bool,
    at_week: float,
    comp: str,
    level: float,
    u: pd.DataFrame,
    n_subj: int,
) -> None:
    """Mixed model ``value ~ week * arm`` and its arm contrast at ``at_week``."""
    from outcomes.models.lmm.fit import lmm

    try:
        fit, notes = col.run(
            lmm,
            scores,
            "value ~ week * arm",
            groups="subject_id",
            re_formula="~week",
            nested="unit_id" if split else None,
            level=level,
        )
        con = fit.test(_contrast_row(fit, at_week), terms=[comp], level=level).iloc[0]
    except (InputError, ModelError, np.linalg.LinAlgError) as exc:
        col.failed(r, "mixed-model contrast", exc)
        return
    col.add(
        r,
        notes,
        **{k: float(con[k]) for k in _TIDY_NUM},
        n=float(u["unit_id"].nunique()),
        n_clusters=float(n_subj),
    )


_TIDY_NUM = ("estimate", "std_error", "statistic", "df", "p_value", "conf_low", "conf_high")


def _contrast_row(fit: Any, week: float) -> np.ndarray:
    """Contrast ``L beta`` of arm 1 minus arm 0 at ``week`` for ``value ~ week * arm``."""
    names = list(fit.fit.problem.x_names)
    lvec = np.zeros(len(names))
    for i, name in enumerate(names):
        if name == "arm":
            lvec[i] = 1.0
        elif name in ("week:arm", "arm:week"):
            lvec[i] = week
    if lvec.sum() == 0:
        raise ModelError(f"the model has no arm term (terms: {', '.join(names)})")
    return lvec[None, :]


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


def _subset(t: Mapping[str, pd.DataFrame], unit_ids: pd.Series) -> dict[str, pd.DataFrame]:
    keep = set(unit_ids)
    out = dict(t)
    for name in ("units", "sessions", "assessments"):
        out[name] = t[name].loc[t[name]["unit_id"].isin(keep)]
    return out


def _endpoint(t: Mapping[str, pd.DataFrame]) -> str | None:
    """Time-to-result endpoint: first gb_qual improvement for acne scar data, else GAIS <= 2."""
    present = set(t["assessments"]["instrument"].astype(str))
    if "gb_qual" in present:
        return "first_improvement"
    if "gais" in present:
        return "gais_much_improved"
    if "gb_quant" in present:
        return "full_result"
    return None


def _endpoint_label(endpoint: str) -> str:
    from outcomes.derive import ENDPOINTS

    return ENDPOINTS[endpoint].description


# --------------------------------------------------------------------------------------------
# registries
# --------------------------------------------------------------------------------------------


def _registry(
    t: Mapping[str, pd.DataFrame],
    study: pd.Series,
    col: _Collector,
    opts: Mapping[str, Any],
    balance: list[pd.DataFrame],
    weight_tables: list[pd.DataFrame],
) -> None:
    from outcomes.derive import derive_tte
    from outcomes.models.propensity import propensity_weights, weighted_effect

    level = opts["level"]
    reference = opts["reference"]
    units = _unit_frame(t)
    if reference not in set(units["modality"]):
        col.note(f"study {study['study_id']}: no {reference} units; registry not compared")
        return
    units["phototype_num"] = units["phototype"].map(PHOTOTYPE_NUMBER).astype(float)
    has_gais = bool((t["assessments"]["instrument"] == "gais").any())
    endpoint = _endpoint(t)
    tte_all = None
    tte_notes: list[str] = []
    if endpoint is not None:
        tte_all, tte_notes = col.run(derive_tte, t, endpoint)
    responder_frames, pct_frames = [], []
    for (indication, site), u in _groups(units, opts["by_body_site"]):
        u = u.reset_index(drop=True)
        base = {
            "source": "registry",
            "study_id": study["study_id"],
            "design": str(study["design"]),
            "indication": indication,
            "body_site": site,
        }
        levels = [reference, *_comparisons(u["modality"], reference)]
        counts = u["modality"].value_counts()
        levels = [lv for lv in levels if counts.get(lv, 0) >= 5]
        if len(levels) < 2 or levels[0] != reference:
            continue
        u = u.loc[u["modality"].isin(levels)].reset_index(drop=True)
        inst = _primary_instrument(t, indication)
        covariates = ["phototype_num", "site_id"]
        confounder_note = []
        if inst is not None:
            scores = _instrument_scores(t, inst)
            pre = scores.merge(u[["unit_id", "first_session_day"]], on="unit_id")
            pre = pre.loc[pre["day"] <= pre["first_session_day"]].sort_values("day")
            u = u.merge(
                pre.groupby("unit_id")["value"].last().rename("baseline_score"),
                on="unit_id",
                how="left",
            )
            covariates.insert(1, "baseline_score")
            u = u.loc[u["baseline_score"].notna()].reset_index(drop=True)
        else:
            confounder_note = [
                f"no baseline severity is recorded for {indication}: the weights adjust for "
                "phototype and clinic only"
            ]
        try:
            pw, ps_notes = col.run(
                propensity_weights,
                u,
                "modality",
                covariates,
                estimand=opts["estimand"],
                reference=reference,
                stabilize=True,
                trim=opts["trim"],
            )
        except (InputError, ModelError, np.linalg.LinAlgError) as exc:
            col.failed({**base, "outcome": "all", "adjustment": "weighted"}, "propensity", exc)
            continue
        w = pw.weights.to_numpy()
        u["weight"] = w
        bal = pw.balance(comparisons="reference")
        bal.insert(0, "body_site", site)
        bal.insert(0, "indication", indication)
        bal.insert(0, "study_id", study["study_id"])
        balance.append(bal)
        ws = pw.summary.rename(columns={"modality": "modality"})
        ws.insert(0, "body_site", site)
        ws.insert(0, "indication", indication)
        ws.insert(0, "study_id", study["study_id"])
        weight_tables.append(ws)
        adj_notes = [*ps_notes, *confounder_note]
        weight_label = (
            "overlap weights"
            if opts["estimand"] == "overlap"
            else "stabilised inverse-probability weights (ATE)"
        )
        ps_text = f"{weight_label} from a multinomial propensity model on " + ", ".join(
            c.replace("_num", "") for c in covariates
        )
        comps = {lv: f"{lv} vs {reference}" for lv in levels[1:]}

        # (a) percent improvement at the primary visit
        if inst is not None:
            visit = _at_primary_visit(scores, u, opts["primary_day"], opts["window"]).merge(
                u, on="unit_id"
            )
            visit["pct_improvement"] = _pct_improvement(visit["value"], visit["base"], inst)
            visit = visit.loc[visit["pct_improvement"].notna()].reset_index(drop=True)
            pct_frames.append(visit)
            defn = (
                f"percent improvement on {inst} at the visit nearest day "
                f"{opts['primary_day']:g} (days {opts['window'][0]:g}-{opts['window'][1]:g})"
            )
            for adjustment, weights in (("naive", None), ("weighted", "weight")):
                method = "linear model, cluster-robust SE by clinic (t, clusters - 1 df)"
                if weights:
                    method = f"{ps_text}; weighted " + method
                try:
                    we, notes = col.run(
                        weighted_effect,
                        visit,
                        "pct_improvement",
                        "modality",
                        weights,
                        cluster="site_id",
                        reference=reference,
                        level=level,
                    )
                except (InputError, ModelError, np.linalg.LinAlgError) as exc:
                    col.failed({**base, "outcome": "pct_improvement"}, "mean difference", exc)
                    continue
                for _, s in we.summary.iterrows():
                    col.add(
                        {
                            **base,
                            "outcome": "pct_improvement",
                            "measure": "mean_difference",
                            "comparison": s["term"],
                            "adjustment": adjustment,
                            "definition": defn,
                            "method": method,
                        },
                        [*notes, *(adj_notes if weights else [])],
                        **{k: float(s[k]) for k in _TIDY_NUM},
                        n=float(
                            visit["modality"].isin([reference, s["term"].split(" vs ")[0]]).sum()
                        ),
                        n_clusters=float(s["n_clusters"]),
                    )

        # (b) responders at the primary visit
        resp = _registry_responders(t, u, inst, has_gais, opts)
        if resp is not None:
            data, defn = resp
            responder_frames.append(data)
            for adjustment in ("naive", "weighted"):
                _registry_glm(
                    col,
                    data,
                    "responder",
                    "binomial",
                    levels,
                    adjustment,
                    base,
                    comps,
                    defn,
                    ps_text,
                    adj_notes,
                    level,
                )

        # (c) time to result
        if tte_all is not None and endpoint is not None:
            tte = tte_all.merge(u[["unit_id", "modality", "weight"]], on="unit_id")
            tte = tte.loc[tte["time"] > 0].reset_index(drop=True)
            defn = _endpoint_label(endpoint) + " (units with follow-up after the first session)"
            for adjustment in ("naive", "weighted"):
                weights = tte["weight"].to_numpy() if adjustment == "weighted" else None
                method = "Cox (Efron ties), robust SE clustered by clinic"
                if weights is not None:
                    method = f"{ps_text}; weighted " + method + " (lifelines)"
                r = {
                    **base,
                    "outcome": "time_to_result",
                    "measure": "hazard_ratio",
                    "adjustment": adjustment,
                    "definition": defn,
                    "method": method,
                }
                # one model per indication with every modality that has events
                events = tte.groupby("modality")["event"].sum().reindex(levels).fillna(0)
                fitted = [lv for lv in levels if events[lv] > 0]
                d = tte.loc[tte["modality"].isin(fitted)].reset_index(drop=True)
                beta = se = None
                cox_notes: list[str] = []
                if reference in fitted and len(fitted) > 1:
                    try:
                        if weights is None:
                            (beta, se, g), cox_notes = col.run(_naive_cox, d, fitted, level)
                        else:
                            (beta, se, g), cox_notes = col.run(
                                _weighted_cox, d, fitted, d["weight"].to_numpy(), "site_id"
                            )
                    except Exception as exc:  # lifelines raises its own convergence errors
                        for lv in levels[1:]:
                            col.failed({**r, "comparison": comps[lv]}, "hazard ratio", exc)
                        continue
                for lv in levels[1:]:
                    row = {**r, "comparison": comps[lv]}
                    extra = list(adj_notes) if weights is not None else []
                    n = float(tte["modality"].isin([reference, lv]).sum())
                    pair = (events[lv], events[reference])
                    if beta is None or se is None or lv not in fitted:
                        empty = lv if pair[0] == 0 else reference
                        col.add(
                            row,
                            [f"no events with {empty}: the hazard ratio is not estimable", *extra],
                            n=n,
                        )
                        continue
                    if min(pair) < 5:
                        extra.append(f"few events ({pair[0]:.0f} vs {pair[1]:.0f})")
                    col.add(
                        row,
                        [*tte_notes, *cox_notes, *extra],
                        **_ratio_values(beta[lv], se[lv], np.nan, level),
                        n=n,
                        n_clusters=float(g),
                    )

        # (d) adverse events per unit
        for outcome in opts["ae_outcomes"]:
            u[f"ae_{outcome}"] = _ae_flags(t, u, outcome).to_numpy()
            _registry_ae(col, u, outcome, levels, base, comps, ps_text, adj_notes, level)

    # treatment-by-indication interaction
    if responder_frames:
        _interaction(col, pd.concat(responder_frames, ignore_index=True), "responder", study, opts)
    if pct_frames:
        _interaction(col, pd.concat(pct_frames, ignore_index=True), "pct_improvement", study, opts)


def _registry_responders(
    t: Mapping[str, pd.DataFrame],
    u: pd.DataFrame,
    inst: str | None,
    has_gais: bool,
    opts: Mapping[str, Any],
) -> tuple[pd.DataFrame, str] | None:
    """Responders at the primary visit: GAIS <= 2 when GAIS is recorded (one definition for
    every indication), else percent improvement >= threshold on the primary instrument."""
    window = f"at the visit nearest day {opts['primary_day']:g} (days {opts['window'][0]:g}-" + (
        f"{opts['window'][1]:g})"
    )
    if has_gais:
        g = _instrument_scores(t, "gais")
        g = g.loc[g["unit_id"].isin(set(u["unit_id"]))]
        visit = g.loc[(g["day"] >= opts["window"][0]) & (g["day"] <= opts["window"][1])].copy()
        visit["distance"] = (visit["day"] - opts["primary_day"]).abs()
        visit = visit.sort_values(["unit_id", "distance", "day"]).groupby("unit_id").first()
        visit = visit.reset_index().merge(u, on="unit_id")
        visit["responder"] = (visit["value"] <= 2).astype(float)
        return visit, f"GAIS <= 2 (much improved or better) {window}"
    if inst is None:
        return None
    visit = _at_primary_visit(_instrument_scores(t, inst), u, opts["primary_day"], opts["window"])
    visit = visit.merge(u, on="unit_id")
    pct = _pct_improvement(visit["value"], visit["base"], inst)
    visit["responder"] = (pct >= opts["responder_threshold"]).astype(float)
    return visit.loc[
        pct.notna()
    ], f">= {opts['responder_threshold']:g}% improvement on {inst} {window}"


def _degenerate(y: np.ndarray, groups: pd.Series, levels: Sequence[str], binary: bool) -> str:
    """Why a two-group comparison of a 0/1 outcome is not estimable ("" when it is)."""
    for lv in levels:
        yy = y[(groups == lv).to_numpy()]
        events, n = yy.sum(), len(yy)
        if events == 0 or (binary and events == n):
            return f"{events:.0f} of {n} units of {lv} have the event: the ratio is not estimable"
    return ""


def _registry_glm(
    col: _Collector,
    data: pd.DataFrame,
    outcome: str,
    family: str,
    levels: Sequence[str],
    adjustment: str,
    base: Mapping[str, Any],
    comps: Mapping[str, str],
    defn: str,
    ps_text: str,
    adj_notes: Sequence[str],
    level: float,
) -> None:
    """One weighted (or naive) GLM per combination against the reference, clinic-clustered."""
    measure = "odds_ratio" if family == "binomial" else "risk_ratio"
    model = "logistic model" if family == "binomial" else "Poisson (log link) model"
    method = f"{model}, cluster-robust SE by clinic (t, clusters - 1 df)"
    if adjustment == "weighted":
        method = f"{ps_text}; weighted {method}"
    r = {
        **base,
        "outcome": outcome,
        "measure": measure,
        "adjustment": adjustment,
        "definition": defn,
        "method": method,
    }
    ref = levels[0]
    for lv in levels[1:]:
        d = data.loc[data["modality"].isin([ref, lv])].reset_index(drop=True)
        y = d[outcome].to_numpy(float)
        row = {**r, "comparison": comps[lv]}
        notes = list(adj_notes) if adjustment == "weighted" else []
        why = _degenerate(y, d["modality"], [ref, lv], family == "binomial")
        if why:
            col.add(row, [why, *notes], n=float(len(d)))
            continue
        x = _dummies(d["modality"], [ref, lv], "")
        x.insert(0, "const", 1.0)
        weights = d["weight"].to_numpy() if adjustment == "weighted" else None
        try:
            (params, cov, g), fit_notes = col.run(
                _glm_cluster, y, x, family, weights, d["site_id"].to_numpy()
            )
        except (ModelError, ValueError, np.linalg.LinAlgError) as exc:
            col.failed(row, measure.replace("_", " "), exc)
            continue
        events = [y[(d["modality"] == m).to_numpy()].sum() for m in (lv, ref)]
        if min(events) < 5:
            notes.append(f"few events ({events[0]:.0f} vs {events[1]:.0f}): estimate unstable")
        if g < 30:
            notes.append(f"cluster-robust SE from only {g} clinics")
        col.add(
            row,
            [*fit_notes, *notes],
            **_ratio_values(float(params[lv]), float(np.sqrt(cov.loc[lv, lv])), g - 1.0, level),
            n=float(len(d)),
            n_clusters=float(g),
        )


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


def _interaction(
    col: _Collector,
    data: pd.DataFrame,
    outcome: str,
    study: pd.Series,
    opts: Mapping[str, Any],
) -> None:
    """Treatment-by-indication interaction, one saturated model per combination.

    For each combination, the units of that combination and of the reference in the
    indications where the comparison is estimable are fitted with ``modality * indication``
    terms (logistic for responders, linear for percent improvement), naive and weighted, with
    clinic-clustered sandwich covariance. Rows: the ratio of odds ratios (difference of mean
    differences) of each indication against the reference indication (acne scars when
    present), and a Wald chi-square test that the effect is the same in every indication.
    """
    reference = opts["reference"]
    level = opts["level"]
    binary = outcome == "responder"
    measure = "ratio_of_odds_ratios" if binary else "difference_in_mean_differences"
    base = {
        "source": "registry",
        "study_id": study["study_id"],
        "design": str(study["design"]),
        "body_site": "all",
        "outcome": outcome,
    }
    for combo in _comparisons(data["modality"], reference):
        comp = f"{combo} vs {reference}"
        d = data.loc[data["modality"].isin([reference, combo])]
        skipped: list[str] = []
        keep: list[str] = []
        for ind_key, sub in d.groupby("indication", sort=True):
            ind = str(ind_key)
            y = sub[outcome].to_numpy(float)
            why = _degenerate(y, sub["modality"], [reference, combo], True) if binary else ""
            if set(sub["modality"]) != {reference, combo}:
                why = "one of the two modalities is absent"
            if why:
                skipped.append(f"{ind} left out ({why})")
            else:
                keep.append(ind)
        if len(keep) < 2:
            continue
        ref_ind = "acne_scars" if "acne_scars" in keep else keep[0]
        inds = [ref_ind, *[i for i in keep if i != ref_ind]]
        d = d.loc[d["indication"].isin(inds)].reset_index(drop=True)
        m = _dummies(d["modality"], [reference, combo], "m:")[f"m:{combo}"]
        ind_d = _dummies(d["indication"], inds, "i:")
        inter = pd.DataFrame({i: m * ind_d[f"i:{i}"] for i in inds[1:]})
        x = pd.concat([pd.Series(1.0, index=d.index, name="const"), m, ind_d, inter], axis=1)
        y = d[outcome].to_numpy(float)
        for adjustment in ("naive", "weighted"):
            weights = d["weight"].to_numpy() if adjustment == "weighted" else None
            model = "logistic" if binary else "linear"
            method = (
                f"{model} model of {reference} and {combo} with modality x indication terms, "
                "cluster-robust SE by clinic"
                + (
                    "; propensity weights from each indication's model"
                    if weights is not None
                    else ""
                )
            )
            try:
                if binary:
                    (params, cov, g), notes = col.run(
                        _glm_cluster, y, x, "binomial", weights, d["site_id"].to_numpy()
                    )
                else:
                    (params, cov, g), notes = col.run(
                        _ols_cluster, y, x, weights, d["site_id"].to_numpy()
                    )
            except (ModelError, ValueError, np.linalg.LinAlgError) as exc:
                col.failed(
                    {
                        **base,
                        "indication": "all",
                        "comparison": comp,
                        "adjustment": adjustment,
                        "measure": "interaction_wald",
                    },
                    "interaction test",
                    exc,
                )
                continue
            notes = [*notes, *skipped]
            for ind in inds[1:]:
                est, se = float(params[ind]), float(np.sqrt(cov.loc[ind, ind]))
                values = (
                    _ratio_values(est, se, g - 1.0, level)
                    if binary
                    else _diff_values(est, se, g - 1.0, level)
                )
                col.add(
                    {
                        **base,
                        "indication": f"{ind} vs {ref_ind}",
                        "measure": measure,
                        "comparison": comp,
                        "adjustment": adjustment,
                        "definition": f"{combo} effect in {ind} relative to {ref_ind}",
                        "method": method + " (t, clusters - 1 df)",
                    },
                    notes,
                    **values,
                    n=float(d["indication"].isin([ref_ind, ind]).sum()),
                    n_clusters=float(g),
                )
            names = inds[1:]
            b = params[names].to_numpy()
            v = cov.loc[names, names].to_numpy()
            q = len(names)
            extra = []
            if q > g - 1:
                extra.append(
                    f"{q} interaction terms but only {g} clinics: the cluster-robust covariance "
                    "is rank-deficient and the test unreliable"
                )
            try:
                chi2 = float(b @ np.linalg.solve(v, b))
            except np.linalg.LinAlgError:
                chi2 = np.nan
                extra.append("singular covariance of the interaction terms")
            col.add(
                {
                    **base,
                    "indication": "all (" + ", ".join(inds) + ")",
                    "measure": "interaction_wald",
                    "comparison": comp,
                    "adjustment": adjustment,
                    "definition": f"{combo} effect on {outcome} the same in every indication",
                    "method": method + " (Wald chi-square)",
                },
                [*notes, *extra],
                statistic=chi2,
                df=float(q),
                p_value=float(stats.chi2.sf(chi2, q)) if np.isfinite(chi2) else np.nan,
                n=float(len(d)),
                n_clusters=float(g),
            )


def _ols_cluster(
    y: np.ndarray, x: pd.DataFrame, weights: np.ndarray | None, clusters: np.ndarray
) -> tuple[pd.Series, pd.DataFrame, int]:
    """(Weighted) least squares with a cluster-robust covariance (statsmodels WLS)."""
    import statsmodels.api as sm

    groups = pd.factorize(clusters)[0]
    res = sm.WLS(y, x, weights=np.ones(len(y)) if weights is None else weights).fit(
        cov_type="cluster", cov_kwds={"groups": groups}
    )
    return res.params, res.cov_params(), int(groups.max() + 1)


# --------------------------------------------------------------------------------------------
# published summaries
# --------------------------------------------------------------------------------------------


def _published(col: _Collector, data: pd.DataFrame, level: float) -> None:
    from outcomes.models.meta.meta_analysis import meta_analysis

    d = data.loc[data["arm2"].isin(CONTROLS) & ~data["arm1"].isin(CONTROLS)]
    binary = "events1" in d.columns
    for (indication, outcome, combo), sub in d.groupby(["indication", "outcome", "arm1"]):
        has_events = binary and sub["events1"].notna().all()
        controls = ", ".join(sorted(set(sub["arm2"])))
        measure = "OR" if has_events else "MD"
        base = {
            "source": "published",
            "study_id": f"{len(sub)} studies",
            "design": "meta-analysis",
            "indication": indication,
            "body_site": "all",
            "outcome": outcome,
            "measure": "odds_ratio" if measure == "OR" else "mean_difference",
            "comparison": f"{combo} vs MN",
            "adjustment": "random_effects",
            "definition": f"{outcome} as reported (controls: {controls})",
            "method": "REML random-effects meta-analysis; split-face studies paired with r = 0.5 "
            "unless given",
        }
        try:
            m, notes = col.run(meta_analysis, sub, measure, "REML", level=level, r=0.5)
        except InputError as exc:
            col.failed(base, "meta-analysis", exc)
            continue
        s = m.summary.iloc[-1]
        vals = (
            _ratio_values(float(s["estimate"]), float(s["std_error"]), np.nan, level)
            if measure == "OR"
            else _diff_values(float(s["estimate"]), float(s["std_error"]), np.nan, level)
        )
        n = float(sub["n1"].sum() + sub["n2"].sum())
        col.add(base, notes, **vals, n=n, n_clusters=float(len(sub)))


def _published_data(published: Any) -> pd.DataFrame | None:
    from outcomes.models.meta.published import published_data

    if published is None or published is False:
        return None
    if published is True:
        return pd.concat(
            [published_data("prp_acne_scars_response"), published_data("microneedling_continuous")],
            ignore_index=True,
        )
    if isinstance(published, str):
        return published_data(published)
    if isinstance(published, pd.DataFrame):
        return published
    raise InputError("published= takes True, an example name or a DataFrame of study summaries")


# --------------------------------------------------------------------------------------------
# public entry point
# --------------------------------------------------------------------------------------------


def compare(
    data: Any,
    *,
    snapshot: int | None = None,
    reference: str = "MN",
    primary_day: float = 168,
    window: tuple[float, float] | None = None,
    responder_threshold: float = 50,
    estimand: str = "overlap",
    trim: float | None = None,
    ae_outcomes: Sequence[str] = ("severe_erythema", "pih"),
    published: Any = None,
    by_body_site: bool = False,
    level: float = 0.95,
) -> ComparisonResult:
    """Compare each combination with microneedling alone, by indication, in every study.

    Parameters
    ----------
    data
        A store (:class:`~outcomes.store.Store` or the path of its file), simulated
        :class:`~outcomes.simulate.Feeds`, or a mapping of the six schema tables.
    snapshot
        Store snapshot to read (default the latest).
    reference
        Registry reference modality (microneedling alone). Trials compare with their ``MN`` or
        ``MN+saline`` arm.
    primary_day, window
        Primary visit: the contrast of the trial mixed model is taken at ``primary_day``;
        responders and registry outcomes use each unit's assessment nearest ``primary_day``
        within ``window`` (days since enrolment; default ``primary_day - 28`` to
        ``primary_day + 42``, i.e. days 140-210 for day 168, the simulator's window).
    responder_threshold
        Percent improvement from baseline that makes a responder (registries with GAIS use
        GAIS <= 2, "much improved", for every indication).
    estimand
        Registry weights: ``"overlap"`` (default; bounded, no trimming needed) or ``"ATE"``
        (stabilised inverse-probability weights).
    trim
        Cap registry weights at this quantile (ATE weights only make sense to trim).
    ae_outcomes
        Adverse events compared (keys of :data:`AE_OUTCOMES`).
    published
        Also pool published study summaries: ``True`` for the shipped examples, an example
        name, or a DataFrame in the layout of :func:`~outcomes.models.meta.escalc`.
    by_body_site
        Compare within each indication and body site (e.g. acne scars on the face and on the
        back), each with its own propensity model in registries; ``body_site`` is ``"all"``
        otherwise. Interaction tests stay by indication.
    level
        Confidence level.

    Returns
    -------
    ComparisonResult

    Examples
    --------
    >>> res = compare("outcomes.duckdb")  # doctest: +SKIP
    >>> res.table.query("measure == 'mean_difference'")  # doctest: +SKIP
    >>> res.forest_plot().save("forest.png")  # doctest: +SKIP
    """
    if estimand not in ESTIMANDS:
        raise InputError(f"estimand={estimand!r}: use one of {', '.join(ESTIMANDS)}")
    if not 0 < level < 1:
        raise InputError(f"level={level!r} must be between 0 and 1")
    if window is None:
        window = (float(primary_day) - 28, float(primary_day) + 42)
    lo, hi = (float(v) for v in window)
    if not lo <= float(primary_day) <= hi:
        raise InputError(f"primary_day={primary_day} must lie in window={tuple(window)}")
    unknown = [a for a in ae_outcomes if a not in AE_OUTCOMES]
    if unknown:
        raise InputError(
            f"unknown adverse-event outcome(s) {unknown}; use some of {', '.join(AE_OUTCOMES)}"
        )
    opts = {
        "reference": reference,
        "primary_day": float(primary_day),
        "window": (lo, hi),
        "responder_threshold": float(responder_threshold),
        "estimand": estimand,
        "trim": trim,
        "ae_outcomes": list(ae_outcomes),
        "by_body_site": bool(by_body_site),
        "level": float(level),
    }
    tables = _load_tables(data, snapshot)
    pub = _published_data(published)
    col = _Collector()
    balance: list[pd.DataFrame] = []
    weight_tables: list[pd.DataFrame] = []
    studies = tables["studies"]
    if studies.empty and pub is None:
        raise InputError("no studies in the data")
    for _, study in studies.sort_values("study_id").iterrows():
        t = _study(tables, study["study_id"])
        if study["design"] in TRIAL_DESIGNS:
            _trial(t, study, col, opts)
        elif study["design"] == "observational":
            _registry(t, study, col, opts, balance, weight_tables)
        else:
            col.note(
                f"study {study['study_id']}: design {study['design']!r} has no comparison "
                "arm; skipped"
            )
    if pub is not None:
        _published(col, pub, level)
    table = pd.DataFrame(col.rows, columns=list(COMPARISON_COLUMNS))
    for c in (
        "estimate",
        "std_error",
        "statistic",
        "df",
        "p_value",
        "conf_low",
        "conf_high",
        "n",
        "n_clusters",
    ):
        table[c] = table[c].astype(float)
    table = _sorted(table)
    col.emit()
    return ComparisonResult(
        table=table,
        balance=pd.concat(balance, ignore_index=True) if balance else pd.DataFrame(),
        weights=pd.concat(weight_tables, ignore_index=True) if weight_tables else pd.DataFrame(),
        options={**opts, "published": pub is not None},
    )


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


# --------------------------------------------------------------------------------------------
# forest plot
# --------------------------------------------------------------------------------------------

_MEASURE_LABEL = {
    "mean_difference": "mean difference",
    "odds_ratio": "odds ratio",
    "hazard_ratio": "hazard ratio",
    "risk_difference": "risk difference",
    "risk_ratio": "risk ratio",
}
_OUTCOME_LABEL = {
    "pct_improvement": "% improvement",
    "responder": "response",
    "time_to_result": "time to result",
    "ae_severe_erythema": "severe erythema",
    "ae_pih": "PIH",
}


def _forest_plot(
    table: pd.DataFrame, measures: list[str], sources: Sequence[str] | None, level: float
) -> Any:
    import plotnine as p9

    from outcomes.report.theme import MODALITY_COLOURS, theme_outcomes

    t = table.loc[table["measure"].isin(measures) & table["estimate"].notna()].copy()
    if sources is not None:
        t = t.loc[t["source"].isin(list(sources))]
    t = t.loc[np.isfinite(t["conf_low"]) & np.isfinite(t["conf_high"])]
    if t.empty:
        raise InputError("nothing to plot: no estimated rows for these measures and sources")
    t["combination"] = t["comparison"].str.split(" vs ").str[0]
    site = np.where(t["body_site"] == "all", "", ", " + t["body_site"].astype(str))
    t["row"] = t["indication"].str.replace("_", " ") + site + " (" + t["source"] + ")"
    shapes = {"randomised": "o", "naive": "^", "weighted": "s", "random_effects": "D"}
    t["adjustment"] = pd.Categorical(
        t["adjustment"], categories=[a for a in shapes if a in set(t["adjustment"])]
    )
    combos = sorted(t["combination"].unique())
    adjustments = list(t["adjustment"].cat.categories)
    panels = []
    keys = t[["outcome", "measure"]].drop_duplicates()
    published_only = set(t["outcome"]) - set(t.loc[t["source"] != "published", "outcome"])
    outcome_order = {"pct_improvement": 1, "responder": 2, "time_to_result": 3}
    keys = keys.assign(
        order=keys["measure"].map({m: i for i, m in enumerate(measures)}),
        published=keys["outcome"].isin(published_only),
        outcome_order=[
            outcome_order.get(o, 4 if str(o).startswith("ae_") else 0) for o in keys["outcome"]
        ],
    ).sort_values(["published", "order", "outcome_order", "outcome"])
    for outcome, measure in keys[["outcome", "measure"]].itertuples(index=False):
        d = t.loc[(t["outcome"] == outcome) & (t["measure"] == measure)].copy()
        order = sorted(d["row"].unique(), reverse=True)  # coord_flip: first row on top
        d["row"] = pd.Categorical(d["row"], categories=order)
        ratio = measure in RATIO_MEASURES
        dodge = p9.position_dodge(width=0.7)
        label = _OUTCOME_LABEL.get(outcome, outcome.replace("_", " "))
        if set(d["source"]) == {"trial"} and measure == "mean_difference":
            label = f"{outcome} score"
        title = f"{label}: {_MEASURE_LABEL.get(measure, measure)}"
        axis = _MEASURE_LABEL.get(measure, measure) + (" (log scale)" if ratio else "")
        if outcome == "pct_improvement":
            axis += " (percentage points)"
        elif measure == "mean_difference" and set(d["source"]) == {"trial"}:
            axis += " (score points)"
        # clip absurd intervals (few events) so one row does not flatten the panel
        if ratio:
            d["lo"] = d["conf_low"].clip(lower=1 / 50)
            d["hi"] = d["conf_high"].clip(upper=50)
        else:
            d["lo"], d["hi"] = d["conf_low"], d["conf_high"]
        group = "combination + ' ' + adjustment.astype(str)"
        p = (
            p9.ggplot(d, p9.aes(x="row", y="estimate", colour="combination", shape="adjustment"))
            + p9.geom_hline(yintercept=1.0 if ratio else 0.0, linetype="dashed", colour="grey")
            + p9.geom_linerange(p9.aes(ymin="lo", ymax="hi", group=group), position=dodge)
            + p9.geom_point(p9.aes(group=group), size=2.2, position=dodge, fill="white")
            + p9.scale_colour_manual(values=MODALITY_COLOURS, limits=combos)
            + p9.scale_shape_manual(values=shapes, limits=adjustments)
            + p9.coord_flip()
            + p9.labs(
                x="",
                y=axis,
                title=title,
                colour="combination",
                shape="adjustment",
            )
            + theme_outcomes(base_size=9, dpi=150)
        )
        if ratio:
            p = p + p9.scale_y_log10()
        panels.append(p)
    return _arrange(panels, level)


def _arrange(panels: list[Any], level: float) -> Any:
    """One figure: panels two per row (plotnine composition), sized to their rows."""
    from plotnine import labs, theme
    from plotnine.composition import Beside, Stack

    if len(panels) == 1:
        return panels[0]
    # one legend for the figure: every panel has the same scales, the last one shows them
    caption = (
        f"Points: estimates; lines: {100 * level:g}% confidence intervals (clipped at 1/50 and "
        "50). Registry: "
        "naive and propensity-weighted, clinic-clustered.\nRows that are not estimable are not "
        "drawn: see the warning column of comparison.csv."
    )
    panels = [p + theme(legend_position="none") for p in panels[:-1]] + [
        panels[-1] + labs(caption=caption)
    ]
    rows = [
        Beside(panels[i : i + 2]) if i + 1 < len(panels) else panels[i]
        for i in range(0, len(panels), 2)
    ]
    return Stack(rows) & theme(figure_size=(12.0, 3.2 * len(rows)), legend_box="vertical")


def _save_plot(plot: Any, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    plot.save(path, verbose=False) if hasattr(plot, "theme") else plot.save(path)


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------


def cli_compare(args: Any) -> int:
    """``outcomes compare``: print the table; write it and the forest plot with ``--out``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = compare(
            args.store,
            snapshot=args.snapshot,
            primary_day=args.primary_day,
            estimand=args.estimand,
            published=True if args.published else None,
            by_body_site=args.by_body_site,
        )
        print(result)
        if args.out:
            paths = result.save(args.out)
            print(f"\nwrote {len(paths)} files to {args.out}: " + ", ".join(p.name for p in paths))
    n_warn = len({str(w.message) for w in caught if issubclass(w.category, OutcomesWarning)})
    if n_warn:
        print(
            f"{n_warn} distinct model warning(s): each row's are in the warning column",
            file=sys.stderr,
        )
    return 0
