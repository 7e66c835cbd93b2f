"""Each combination versus microneedling alone, by indication: one tidy comparison table.

:func:`compare` reads the studies in a set of schema tables (or a store), picks the analysis
by each study's design, and returns one long table -- one row per source, indication (and body
site, with ``by_body_site=True``), outcome, measure, comparison and adjustment -- plus a
forest plot. Primary scores: ``gb_quant`` (else ``ecca``) for acne scars, ``mmasi`` (else
``masi``) for pigmentation; the other indications have no continuous instrument in the data
dictionary, so they get no mean difference.

Randomised trials (``split_body``, ``parallel``), ``adjustment="randomised"``
    (a) ``mean_difference`` of the primary score at the primary visit: emmeans contrast of
        ``value ~ week * arm`` at ``week = primary_day / 7`` from :func:`outcomes.lmm`
        (random intercept and week slope per subject; the side nested in the subject for
        split-body trials), Satterthwaite df.
    (b) ``odds_ratio`` of response (percent improvement >= ``responder_threshold`` at the visit
        nearest the primary day): :func:`~outcomes.models.gee.gee`, binomial, exchangeable
        working correlation, clusters = subjects (robust SE; both sides of a face are one
        cluster); marginal (population-averaged). With ``responder_model="glmm"``:
        :func:`outcomes.glmm`, random intercept per subject, conditional odds ratio.
    (b2) with ``grade_model="clmm"``, acne scars with ``gb_qual``: ``odds_ratio`` of a higher
        qualitative grade at the primary visit, conditional, from :func:`outcomes.clmm` of
        ``grade ~ week * arm`` (random intercept per subject; the side nested in the subject
        for split-body trials). Each row's ``method`` names the model and says whether its
        odds ratio is conditional or marginal.
    (c) ``hazard_ratio`` of time to result (:func:`outcomes.derive_tte`, endpoint
        ``first_improvement`` when ``gb_qual`` is recorded, else ``gais_much_improved``, else
        ``full_result``; time is the first visit showing the result):
        :func:`outcomes.cox`, Efron ties, robust SE clustered by subject in
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
        :func:`outcomes.cox` with ``cluster="site_id"``);
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
    Each combination vs microneedling alone (controls ``MN`` or ``MN+saline``) per indication
    and outcome: one study gives its own estimate (``adjustment="single_study"``), two or
    more are pooled by random-effects (REML) meta-analysis (``"random_effects"``;
    :func:`outcomes.meta_analysis`). Split-face rows are paired with ``r = 0.3`` unless the
    data give ``r`` (a yes/no outcome's counts bound r: Asif 2016's allow at most 0.41).
    ``published=True`` uses only the shipped real trials.

Conventions: ratio measures are reported on the ratio scale (``estimate``, ``conf_low``,
``conf_high``) with ``std_error`` and ``statistic`` on the log scale (as broom's
``exponentiate = TRUE``); ``df`` is empty for normal-theory (z) inference. Every model's
warnings are kept in the row's ``warning`` column and re-emitted once as typed warnings.
Registry rows also say how missing data were handled (``missing_data``: complete cases, how
many treated areas were analysed and why the others were left out) and why an estimate is
doubtful (``doubt``: propensity model not converged, positivity violated, extreme weights,
imbalance after weighting, outcome model not converged or singular; empty when none), so a
report can mark each doubtful estimate where it prints it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from outcomes.comparisons.datasets import _load_tables, _study
from outcomes.comparisons.forest import _forest_plot, _save_plot
from outcomes.comparisons.published import _published, _published_data
from outcomes.comparisons.registry import _registry
from outcomes.comparisons.table import (
    AE_OUTCOMES,
    COMPARISON_COLUMNS,
    ESTIMANDS,
    GRADE_MODELS,
    PS_MODELS,
    RESPONDER_MODELS,
    TRIAL_DESIGNS,
    _Collector,
    _sorted,
    format_table,
)
from outcomes.comparisons.trial import _trial
from outcomes.errors import InputError
from outcomes.results import TIDY_COLUMNS, to_ard

__all__ = ["ComparisonResult", "compare"]


# --------------------------------------------------------------------------------------------
# result object
# --------------------------------------------------------------------------------------------


#: The numeric columns of a comparison row: the tidy statistics and the counts.
STAT_COLUMNS = (*TIDY_COLUMNS[1:], "n", "n_clusters")


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
        for _, row in self.table.iterrows():
            tidy = pd.DataFrame([{"term": row["adjustment"], **{c: row[c] for c in STAT_COLUMNS}}])
            tidy[list(STAT_COLUMNS)] = tidy[list(STAT_COLUMNS)].astype(float)
            ard = to_ard(
                tidy,
                analysis="compare",
                groups={k: row[k] for k in keys},
                stats=list(STAT_COLUMNS),
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
        adjustment (randomised, naive, weighted, random effects); a filled point is an estimate
        whose ``doubt`` column names a problem.

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
    ps_model: str = "pairwise",
    trim: float | None = None,
    ae_outcomes: Sequence[str] = ("severe_erythema", "pih"),
    published: Any = None,
    by_body_site: bool = False,
    responder_model: str = "gee",
    grade_model: str | None = None,
    level: float = 0.95,
) -> ComparisonResult:
    """Compare each combination with microneedling alone, by indication, in every study.

    Parameters
    ----------
    data
        A store (:class:`~outcomes.data.store.Store` or the path of its file), simulated
        :class:`~outcomes.simulate.output.Feeds`, or a mapping of the six schema tables.
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
    ps_model
        Registry propensity model: ``"pairwise"`` (default) fits one logistic model per
        combination and its reference patients, so each comparison has its own weights and
        target population, and overlap weights balance the mean of every covariate exactly;
        ``"multinomial"`` fits one model of all modalities per indication (one set of
        weights for every comparison; overlap weights balance only approximately, Li & Li
        2019).
    trim
        Cap registry weights at this quantile (ATE weights only make sense to trim).
    ae_outcomes
        Adverse events compared (keys of :data:`AE_OUTCOMES`).
    published
        Also add published evidence: ``True`` for the shipped real trials
        (:func:`outcomes.models.network.microneedling_pairs`; one trial per comparison, so
        each row is that trial's own estimate), or a DataFrame of study summaries in the
        layout of :func:`outcomes.escalc` (two or more studies per comparison are pooled by
        REML random-effects meta-analysis).
    by_body_site
        Compare within each indication and body site (e.g. acne scars on the face and on the
        back), each with its own propensity model in registries; ``body_site`` is ``"all"``
        otherwise. Interaction tests stay by indication.
    responder_model
        Trials' responder odds ratio: ``"gee"`` (default; logistic GEE, marginal odds ratio)
        or ``"glmm"`` (:func:`outcomes.glmm`, random intercept by subject; conditional odds
        ratio). The row's ``method`` says which.
    grade_model
        ``"clmm"`` adds, for acne-scar trials with ``gb_qual``, the cumulative odds ratio of a
        higher qualitative grade at the primary visit from :func:`outcomes.clmm`
        (``grade ~ week * arm``, random intercept by subject and, split-face, by side;
        conditional odds ratio). ``None`` (default): no grade row.
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
    if responder_model not in RESPONDER_MODELS:
        raise InputError(
            f"responder_model={responder_model!r}: use one of {', '.join(RESPONDER_MODELS)}"
        )
    if ps_model not in PS_MODELS:
        raise InputError(f"ps_model={ps_model!r}: use one of {', '.join(PS_MODELS)}")
    if grade_model not in GRADE_MODELS:
        raise InputError(f"grade_model={grade_model!r}: use None or 'clmm'")
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
        "ps_model": ps_model,
        "trim": trim,
        "ae_outcomes": list(ae_outcomes),
        "by_body_site": bool(by_body_site),
        "responder_model": responder_model,
        "grade_model": grade_model,
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
    for c in STAT_COLUMNS:
        table[c] = table[c].astype(float)
    table = _sorted(table)
    col.emit()
    return ComparisonResult(
        table=table,
        balance=pd.concat(balance, ignore_index=True) if balance else pd.DataFrame(),
        weights=pd.concat(weight_tables, ignore_index=True) if weight_tables else pd.DataFrame(),
        options={**opts, "published": pub is not None},
    )
