"""Confounding adjustment for registries: propensity scores, weights, balance, E-values.

In a registry the clinician chooses the modality, from the patient's phototype, baseline
severity and the clinic's habits, which also drive the outcome (confounding by indication).
The steps, each a function returning DataFrames:

1. :func:`propensity_weights` fits the propensity score model -- a logistic regression
   (statsmodels ``Logit``) for two modalities, a multinomial logit (``MNLogit``) for more --
   and turns the scores into weights: inverse-probability weights for the average treatment
   effect (``"ATE"``, optionally stabilised by the marginal share of each modality), weights
   for the effect in one modality's patients (``"ATT"``), or overlap weights (``"overlap"``,
   Li, Morgan & Zaslavsky 2018; Li & Li 2019 for several treatments). Trimming caps the
   weights at a quantile and reports which were capped.
2. :func:`balance_table` gives standardised mean differences (SMD) before and after weighting
   for every covariate (categorical covariates level by level) and every pair of modalities,
   flagging ``|SMD| >= 0.1``; :func:`love_plot` draws them.
3. :func:`weighted_effect` fits the weighted outcome model (statsmodels ``WLS``) with robust
   standard errors: HC1 by default, or cluster-robust by clinic (``cluster="site_id"``, t with
   ``clusters - 1`` df).
4. :func:`e_value` says how strong unmeasured confounding would have to be to explain the
   estimate away (VanderWeele & Ding 2017).

SMD convention (as R's cobalt): the difference of (weighted) means divided by
``sqrt((s1^2 + s2^2) / 2)`` from the *unweighted* groups, so before and after use the same
denominator; variances are ``p (1 - p)`` for a 0/1 covariate and the sample variance
(``ddof=1``) otherwise.

The robust standard errors treat the weights as known: they ignore the estimation of the
propensity score, which for inverse-probability weights of the ATE makes them conservative
(Lunceford & Davidian 2004).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

from outcomes.errors import ConvergenceWarning, InputError, StatisticalWarning
from outcomes.results import Diagnostic, diagnostics_frame, tidy_frame, to_ard

__all__ = [
    "ESTIMANDS",
    "PropensityWeights",
    "WeightedEffect",
    "balance_table",
    "e_value",
    "love_plot",
    "propensity_weights",
    "weighted_effect",
]

ESTIMANDS: tuple[str, ...] = ("ATE", "ATT", "overlap")
SMD_THRESHOLD = 0.1
PS_EXTREME = 0.01
FEW_CLUSTERS = 30


# --------------------------------------------------------------------------------------------
# input helpers
# --------------------------------------------------------------------------------------------


def _check_frame(data: pd.DataFrame, columns: Sequence[str]) -> None:
    if not isinstance(data, pd.DataFrame):
        raise InputError("data must be a pandas DataFrame with one row per treated unit.")
    missing = [c for c in columns if c not in data.columns]
    if missing:
        raise InputError(
            f"Column(s) {', '.join(map(repr, missing))} not in data; it has "
            f"{', '.join(map(str, data.columns))}."
        )
    if data.index.has_duplicates:
        raise InputError("data has a repeated index: reset it (data.reset_index(drop=True)).")
    gaps = {c: int(data[c].isna().sum()) for c in columns if data[c].isna().any()}
    if gaps:
        listed = ", ".join(f"{c} ({n} rows)" for c, n in gaps.items())
        raise InputError(
            f"Missing values in {listed}: complete or drop those rows first (weights for rows "
            "with missing covariates are not defined)."
        )


def _levels(data: pd.DataFrame, treatment: str, reference: str | None) -> list[str]:
    values = data[treatment].astype(str)
    levels = sorted(values.unique())
    if len(levels) < 2:
        raise InputError(f"Column {treatment!r} has a single value ({levels}): nothing to compare.")
    reference = levels[0] if reference is None else str(reference)
    if reference not in levels:
        raise InputError(f"reference={reference!r} is not a value of {treatment!r}: {levels}.")
    return [reference, *[lv for lv in levels if lv != reference]]


def _is_categorical(s: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)


def _design(data: pd.DataFrame, covariates: Sequence[str]) -> pd.DataFrame:
    """Model matrix: numeric covariates as they are, categorical ones as 0/1 dummies (first
    level dropped), plus a constant."""
    parts = []
    for c in covariates:
        s = data[c]
        if _is_categorical(s):
            levels = sorted(s.astype(str).unique())
            cat = pd.Categorical(s.astype(str), categories=levels)
            dummies = pd.get_dummies(cat, prefix=c, prefix_sep="=", drop_first=True, dtype=float)
            dummies.index = data.index
            parts.append(dummies)
        else:
            parts.append(s.astype(float).rename(c).to_frame())
    x = pd.concat(parts, axis=1) if parts else pd.DataFrame(index=data.index)
    x.insert(0, "const", 1.0)
    return x


def _weights_vector(data: pd.DataFrame, weights) -> np.ndarray | None:
    if weights is None:
        return None
    if isinstance(weights, PropensityWeights):
        w = weights.weights.reindex(data.index)
    elif isinstance(weights, str):
        _check_frame(data, [weights])
        w = data[weights]
    else:
        values = np.asarray(weights, dtype=float).ravel()
        if len(values) != len(data):
            raise InputError(f"{len(values)} weights for {len(data)} rows of data.")
        w = pd.Series(values, index=data.index)
    w = pd.to_numeric(w, errors="coerce")
    if w.isna().any() or (w < 0).any() or not np.isfinite(w).all():
        raise InputError("Weights must be finite, non-negative numbers for every row of data.")
    return w.to_numpy(dtype=float)


# --------------------------------------------------------------------------------------------
# propensity scores and weights
# --------------------------------------------------------------------------------------------


@dataclass
class PropensityWeights:
    """Propensity scores and weights (returned by :func:`propensity_weights`).

    Attributes
    ----------
    data
        The input data with ``ps_<level>`` columns (probability of each modality given the
        covariates) and ``weight`` added.
    weights
        The final weights (after trimming), indexed like ``data``.
    scores
        The ``ps_<level>`` columns.
    summary
        Per modality: ``n``, ``sum_weights``, ``mean_weight``, ``min_weight``,
        ``max_weight``, ``ess`` (Kish effective sample size ``(sum w)^2 / sum w^2``).
    trimmed
        One row per capped weight: the row's index label, modality, ``weight_before``,
        ``weight_after`` (empty when nothing was trimmed).
    model
        The fitted statsmodels ``Logit``/``MNLogit`` results.
    diagnostics
        Trouble as data (``code, severity, message``).
    """

    treatment: str
    covariates: list[str]
    levels: list[str]
    estimand: str
    target: str | None
    data: pd.DataFrame
    weights: pd.Series
    scores: pd.DataFrame
    summary: pd.DataFrame
    trimmed: pd.DataFrame
    model: object = field(repr=False)
    diagnostics: pd.DataFrame = field(repr=False)

    @property
    def reference(self) -> str:
        """The reference modality (first level)."""
        return self.levels[0]

    def balance(self, covariates: Sequence[str] | None = None, **kwargs) -> pd.DataFrame:
        """:func:`balance_table` of these weights (by default on the model's covariates)."""
        return balance_table(
            self.data,
            self.treatment,
            list(covariates or self.covariates),
            weights=self.weights,
            reference=self.reference,
            **kwargs,
        )

    def love_plot(self, covariates: Sequence[str] | None = None, **kwargs):
        """:func:`love_plot` of :meth:`balance`."""
        return love_plot(self.balance(covariates, **kwargs))


def _fit_ps(y_codes: np.ndarray, x: pd.DataFrame, n_levels: int):
    """Fit Logit/MNLogit and return (results, n x L probabilities, diagnostics)."""
    diags: list[Diagnostic] = []
    rank = np.linalg.matrix_rank(x.to_numpy())
    if rank < x.shape[1]:
        raise InputError(
            "The propensity model's covariates are collinear (e.g. a level present in one "
            "clinic only, or two columns carrying the same information); drop or merge some."
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if n_levels == 2:
            model = sm.Logit((y_codes == 1).astype(float), x)
        else:
            model = sm.MNLogit(y_codes, x)
        res = model.fit(method="newton", maxiter=200, disp=False)
    converged = bool(res.mle_retvals.get("converged", True))
    messages = [str(w.message) for w in caught]
    if not converged or any("converge" in m.lower() for m in messages):
        diags.append(
            Diagnostic(
                "ps_not_converged",
                "The propensity score model did not converge; scores and weights are doubtful "
                "(often quasi-separation: a covariate pattern that predicts the modality).",
            )
        )
    if any("separation" in m.lower() for m in messages):
        diags.append(
            Diagnostic(
                "ps_separation",
                "Perfect or quasi-perfect separation in the propensity model: some patients "
                "could only have received one modality (positivity violated).",
            )
        )
    probs = np.asarray(res.predict(x), dtype=float)
    if n_levels == 2:
        probs = np.column_stack([1 - probs, probs])
    return res, probs, diags


def _empty_cells(data: pd.DataFrame, treatment: str, covariates: Sequence[str]) -> list[str]:
    """Levels of categorical covariates in which some modality has no patient."""
    out = []
    for c in covariates:
        if _is_categorical(data[c]):
            table = pd.crosstab(data[c].astype(str), data[treatment].astype(str))
            for level, row in table.iterrows():
                missing = row.index[row == 0].tolist()
                if missing:
                    out.append(f"{c} = {level} (no {', '.join(missing)})")
    return out


def propensity_weights(
    data: pd.DataFrame,
    treatment: str,
    covariates: Sequence[str],
    *,
    estimand: str = "ATE",
    reference: str | None = None,
    target: str | None = None,
    stabilize: bool = True,
    trim: float | None = None,
) -> PropensityWeights:
    """Fit a propensity score model and compute balancing weights.

    Parameters
    ----------
    data
        One row per treated unit.
    treatment
        Column with the modality (two or more values).
    covariates
        Confounders; numeric columns enter linearly, categorical (text, category, bool)
        columns as dummies. Add transformed columns (squares, splines) yourself if needed.
    estimand
        ``"ATE"``: weight ``1 / e_T(x)`` (``P(T) / e_T(x)`` if ``stabilize``), the effect had
        everyone received each modality. ``"ATT"``: weight ``e_target(x) / e_T(x)``, the effect
        in the patients who received ``target``. ``"overlap"``: weight
        ``(1 / e_T(x)) / sum_k (1 / e_k(x))`` (for two modalities ``1 - e`` for the treated,
        ``e`` for the others), the effect in the patients with most clinical equipoise;
        bounded, so no trimming is needed.
    reference
        Reference modality (first sorted value by default).
    target
        The modality whose patients define the ATT (default: the first non-reference one).
    stabilize
        Multiply ATE weights by the marginal share of the patient's modality (the mean weight
        in each group is then about 1). Ignored for ATT and overlap weights.
    trim
        Cap weights at this quantile of their distribution (e.g. ``0.99``); the capped rows
        are listed in ``.trimmed``. ``None`` (default) trims nothing.

    Returns
    -------
    PropensityWeights

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"modality": ["MN", "MN", "MN+PRP", "MN+PRP", "MN", "MN+PRP"],
    ...                   "dark": ["no", "no", "no", "yes", "yes", "yes"]})
    >>> pw = propensity_weights(d, "modality", ["dark"], stabilize=False)
    >>> pw.data["ps_MN+PRP"].round(4).tolist()  # 1/3 among "no", 2/3 among "yes"
    [0.3333, 0.3333, 0.3333, 0.6667, 0.6667, 0.6667]
    """
    if estimand not in ESTIMANDS:
        raise InputError(f"estimand={estimand!r}: use one of {', '.join(ESTIMANDS)}.")
    covariates = list(covariates)
    if treatment in covariates:
        raise InputError(f"The treatment {treatment!r} cannot also be a covariate.")
    _check_frame(data, [treatment, *covariates])
    levels = _levels(data, treatment, reference)
    if trim is not None and not 0.5 < float(trim) < 1:
        raise InputError(f"trim={trim!r}: give the quantile to cap weights at, e.g. 0.99.")
    if estimand == "ATT":
        target = levels[1] if target is None else str(target)
        if target not in levels:
            raise InputError(f"target={target!r} is not a value of {treatment!r}: {levels}.")
    counts = data[treatment].astype(str).value_counts()
    small = [lv for lv in levels if counts[lv] < 2]
    if small:
        raise InputError(f"Modality {small} has fewer than 2 patients: no model can be fitted.")

    t = data[treatment].astype(str).to_numpy()
    codes = np.array([levels.index(v) for v in t])
    empty = _empty_cells(data, treatment, covariates)
    x = _design(data, covariates)
    if x.shape[0] <= x.shape[1] * (len(levels) - 1):
        raise InputError(
            f"{x.shape[0]} rows for a propensity model with {x.shape[1] * (len(levels) - 1)} "
            "parameters: too few patients for these covariates."
        )
    model, probs, diags = _fit_ps(codes, x, len(levels))
    if empty:
        diags.append(
            Diagnostic(
                "empty_cells",
                f"No patients received some modality in: {'; '.join(empty)}. Their scores for "
                "that modality go to 0 (positivity violated): merge levels, drop them, or use "
                "overlap weights, which give such patients (almost) no weight.",
            )
        )
    rows = np.arange(len(data))
    own = probs[rows, codes]
    if estimand == "ATE":
        w = 1 / own
        if stabilize:
            share = np.bincount(codes, minlength=len(levels)) / len(codes)
            w = w * share[codes]
    elif estimand == "ATT":
        w = probs[:, levels.index(str(target))] / own
    else:
        w = (1 / own) / (1 / probs).sum(axis=1)

    extreme = int(((probs < PS_EXTREME) | (probs > 1 - PS_EXTREME)).any(axis=1).sum())
    if extreme:
        diags.append(
            Diagnostic(
                "ps_extreme",
                f"{extreme} patients have a propensity score below {PS_EXTREME} or above "
                f"{1 - PS_EXTREME} for some modality: near-violations of positivity; "
                "consider overlap weights, trimming or restricting the population.",
            )
        )
    trimmed = pd.DataFrame(columns=["row", treatment, "weight_before", "weight_after"])
    if trim is not None:
        cap = float(np.quantile(w, trim))
        hit = w > cap
        trimmed = pd.DataFrame(
            {
                "row": data.index[hit],
                treatment: t[hit],
                "weight_before": w[hit],
                "weight_after": cap,
            }
        )
        w = np.minimum(w, cap)
        diags.append(
            Diagnostic(
                "weights_trimmed",
                f"{int(hit.sum())} weights above the {trim:g} quantile ({cap:.3g}) were capped "
                "at it (listed in .trimmed).",
                severity="info",
            )
        )
    weights = pd.Series(w, index=data.index, name="weight")
    summary = (
        pd.DataFrame({treatment: t, "w": w})
        .groupby(treatment, sort=False)["w"]
        .agg(
            n="size",
            sum_weights="sum",
            mean_weight="mean",
            min_weight="min",
            max_weight="max",
            ess=lambda s: s.sum() ** 2 / (s**2).sum(),
        )
        .reindex(levels)
        .reset_index()
    )
    # Overlap weights shrink the patients far from equipoise by design, so a low ESS there is
    # not a warning sign; for ATE/ATT weights it means a few patients dominate.
    low_ess = summary[summary["ess"] < 0.5 * summary["n"]]
    if len(low_ess) and estimand != "overlap":
        groups = ", ".join(
            f"{r[treatment]} (ESS {r['ess']:.0f} of {r['n']})" for _, r in low_ess.iterrows()
        )
        diags.append(
            Diagnostic(
                "extreme_weights",
                f"Weights are very uneven in {groups}: a few patients dominate the weighted "
                "analysis; consider overlap weights or trimming.",
            )
        )
    for d in diags:
        category = ConvergenceWarning if d.code == "ps_not_converged" else StatisticalWarning
        d.emit(category, stacklevel=3)
    scores = pd.DataFrame(probs, index=data.index, columns=[f"ps_{lv}" for lv in levels])
    out = pd.concat([data, scores], axis=1)
    out["weight"] = w
    return PropensityWeights(
        treatment=treatment,
        covariates=covariates,
        levels=levels,
        estimand=estimand,
        target=target,
        data=out,
        weights=weights,
        scores=scores,
        summary=summary,
        trimmed=trimmed.reset_index(drop=True),
        model=model,
        diagnostics=diagnostics_frame(diags),
    )


# --------------------------------------------------------------------------------------------
# balance
# --------------------------------------------------------------------------------------------


def _balance_columns(data: pd.DataFrame, covariates: Sequence[str]):
    """Yield (covariate, level, is_binary, values) for each balance row."""
    for c in covariates:
        s = data[c]
        if _is_categorical(s):
            for lv in sorted(s.astype(str).unique()):
                yield c, lv, True, (s.astype(str) == lv).to_numpy(dtype=float)
        else:
            values = s.to_numpy(dtype=float)
            binary = bool(np.isin(values, [0.0, 1.0]).all())
            yield c, "", binary, values


def _wmean(x: np.ndarray, w: np.ndarray | None) -> float:
    return float(x.mean() if w is None else (w * x).sum() / w.sum())


def _var(x: np.ndarray, binary: bool) -> float:
    if binary:
        p = x.mean()
        return float(p * (1 - p))
    return float(x.var(ddof=1)) if len(x) > 1 else 0.0


def balance_table(
    data: pd.DataFrame,
    treatment: str,
    covariates: Sequence[str],
    weights=None,
    *,
    reference: str | None = None,
    comparisons: str = "all",
    threshold: float = SMD_THRESHOLD,
) -> pd.DataFrame:
    """Standardised mean differences of covariates between modalities, before and after weighting.

    Parameters
    ----------
    data
        One row per unit.
    treatment
        Modality column.
    covariates
        Covariates to check; categorical ones are shown level by level.
    weights
        Weights (array, column name or :class:`PropensityWeights`); ``None`` shows the
        unweighted table only.
    reference
        Reference modality (first sorted value by default).
    comparisons
        ``"all"`` (every pair of modalities) or ``"reference"`` (each vs the reference).
    threshold
        ``|SMD|`` at or above which a row is flagged (default 0.1).

    Returns
    -------
    pandas.DataFrame
        Columns ``covariate, level, type, group1, group2, mean1, mean2, smd`` (unweighted),
        ``mean1_weighted, mean2_weighted, smd_weighted`` and ``flag`` (``|SMD| >= threshold``,
        after weighting when weights are given). ``smd = (mean1 - mean2) / sqrt((s1^2 +
        s2^2) / 2)`` with unweighted group variances.
    """
    covariates = list(covariates)
    _check_frame(data, [treatment, *covariates])
    if comparisons not in ("all", "reference"):
        raise InputError(f"comparisons={comparisons!r}: use 'all' or 'reference'.")
    levels = _levels(data, treatment, reference)
    w = _weights_vector(data, weights)
    t = data[treatment].astype(str).to_numpy()
    pairs = (
        [(lv, levels[0]) for lv in levels[1:]]
        if comparisons == "reference"
        else [(b, a) for a, b in combinations(levels, 2)]
    )
    rows = []
    for cov, level, binary, x in _balance_columns(data, covariates):
        for g1, g2 in pairs:
            m1, m2 = t == g1, t == g2
            denom = np.sqrt((_var(x[m1], binary) + _var(x[m2], binary)) / 2)
            row = {
                "covariate": cov,
                "level": level,
                "type": "binary" if binary else "continuous",
                "group1": g1,
                "group2": g2,
                "mean1": _wmean(x[m1], None),
                "mean2": _wmean(x[m2], None),
            }
            row["smd"] = (row["mean1"] - row["mean2"]) / denom if denom > 0 else 0.0
            if w is not None:
                row["mean1_weighted"] = _wmean(x[m1], w[m1])
                row["mean2_weighted"] = _wmean(x[m2], w[m2])
                diff = row["mean1_weighted"] - row["mean2_weighted"]
                row["smd_weighted"] = diff / denom if denom > 0 else 0.0
            rows.append(row)
    out = pd.DataFrame(rows)
    if w is None:
        out["mean1_weighted"] = np.nan
        out["mean2_weighted"] = np.nan
        out["smd_weighted"] = np.nan
        out["flag"] = out["smd"].abs() >= threshold
    else:
        out["flag"] = out["smd_weighted"].abs() >= threshold
    return out


def love_plot(balance: pd.DataFrame, threshold: float = SMD_THRESHOLD):
    """Love plot (plotnine): largest ``|SMD|`` over modality pairs, before and after weighting.

    Parameters
    ----------
    balance
        A :func:`balance_table`.
    threshold
        Where to draw the dashed reference line.
    """
    import plotnine as p9

    if not {"covariate", "level", "smd", "smd_weighted"} <= set(balance.columns):
        raise InputError("love_plot needs a balance_table().")
    b = balance.copy()
    b["label"] = np.where(b["level"] == "", b["covariate"], b["covariate"] + " = " + b["level"])
    long = (
        b.assign(unweighted=b["smd"].abs(), weighted=b["smd_weighted"].abs())
        .groupby("label", sort=False)[["unweighted", "weighted"]]
        .max()
        .reset_index()
        .melt(id_vars="label", var_name="sample", value_name="abs_smd")
        .dropna()
    )
    order = long[long["sample"] == "unweighted"].sort_values("abs_smd")["label"].tolist()
    long["label"] = pd.Categorical(long["label"], categories=order)
    return (
        p9.ggplot(long, p9.aes(x="abs_smd", y="label", color="sample", shape="sample"))
        + p9.geom_vline(xintercept=threshold, linetype="dashed", color="grey")
        + p9.geom_point(size=2.5)
        + p9.labs(x="Largest |standardised mean difference| over modality pairs", y="")
        + p9.theme_bw()
    )


# --------------------------------------------------------------------------------------------
# outcome model
# --------------------------------------------------------------------------------------------


@dataclass
class WeightedEffect:
    """A weighted outcome model (returned by :func:`weighted_effect`).

    Attributes
    ----------
    summary
        Tidy table: one row per modality vs the reference (``term`` like ``"MN+PRP vs MN"``),
        plus ``n`` and ``n_clusters``.
    model
        The statsmodels ``WLS`` results (with the robust covariance).
    diagnostics
        Trouble as data.
    """

    summary: pd.DataFrame
    model: object = field(repr=False)
    diagnostics: pd.DataFrame = field(repr=False)

    def to_ard(self, analysis: str = "weighted_effect") -> pd.DataFrame:
        """Analysis-results-dataset rows of the summary, with the diagnostics attached."""
        return to_ard(self.summary, analysis=analysis, diagnostics=self.diagnostics)


def weighted_effect(
    data: pd.DataFrame,
    outcome: str,
    treatment: str,
    weights=None,
    *,
    covariates: Sequence[str] = (),
    cluster: str | None = None,
    reference: str | None = None,
    cov_type: str = "HC1",
    level: float = 0.95,
) -> WeightedEffect:
    """Effect of each modality vs the reference from a weighted regression with robust SEs.

    Parameters
    ----------
    data
        One row per unit.
    outcome
        Numeric outcome column (e.g. percent improvement at day 168).
    treatment
        Modality column.
    weights
        Weights (array, column name or :class:`PropensityWeights`); ``None`` gives the naive,
        unweighted comparison.
    covariates
        Optional covariates added to the outcome model ("doubly robust"-style adjustment).
    cluster
        Column of clusters (clinic): cluster-robust covariance (statsmodels
        ``cov_type="cluster"``), t with ``clusters - 1`` df.
    reference
        Reference modality (first sorted value by default).
    cov_type
        Heteroscedasticity-robust covariance when there is no ``cluster``: ``"HC0"``..``"HC3"``.
    level
        Confidence level.

    Returns
    -------
    WeightedEffect
    """
    covariates = list(covariates)
    cols = [outcome, treatment, *covariates, *([cluster] if cluster else [])]
    _check_frame(data, cols)
    if not pd.api.types.is_numeric_dtype(data[outcome]):
        raise InputError(f"The outcome {outcome!r} must be numeric.")
    if cov_type not in ("HC0", "HC1", "HC2", "HC3"):
        raise InputError(f"cov_type={cov_type!r}: use HC0, HC1, HC2 or HC3 (or cluster=).")
    if not 0 < level < 1:
        raise InputError(f"level must lie strictly between 0 and 1, got {level!r}.")
    levels = _levels(data, treatment, reference)
    w = _weights_vector(data, weights)
    t = pd.Categorical(data[treatment].astype(str), categories=levels)
    dummies = pd.get_dummies(t, drop_first=True, dtype=float)
    dummies.index = data.index
    x = pd.concat([dummies, _design(data, covariates).drop(columns="const")], axis=1)
    x.insert(0, "const", 1.0)
    if np.linalg.matrix_rank(x.to_numpy()) < x.shape[1]:
        raise InputError("The outcome model's columns are collinear; drop some covariates.")
    y = data[outcome].to_numpy(dtype=float)
    model = sm.WLS(y, x, weights=np.ones(len(y)) if w is None else w)
    diags: list[Diagnostic] = []
    n_clusters = np.nan
    if cluster is not None:
        groups = pd.factorize(data[cluster])[0]
        n_clusters = int(groups.max() + 1)
        if n_clusters < 2:
            raise InputError(f"cluster={cluster!r} has a single value: no cluster-robust SE.")
        res = model.fit(cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)
        df = float(n_clusters - 1)
        if n_clusters < FEW_CLUSTERS:
            diags.append(
                Diagnostic(
                    "few_clusters",
                    f"Cluster-robust SEs from only {n_clusters} clusters are imprecise; t with "
                    f"{n_clusters - 1} df is used, and intervals may still be somewhat narrow.",
                )
            )
    else:
        res = model.fit(cov_type=cov_type)
        df = np.nan  # normal-theory inference: no degrees of freedom
    crit = stats.t.isf((1 - level) / 2, df) if np.isfinite(df) else stats.norm.isf((1 - level) / 2)
    rows = []
    for lv in levels[1:]:
        est = float(res.params[lv])
        se = float(res.bse[lv])
        stat = est / se
        p = 2 * (stats.t.sf(abs(stat), df) if np.isfinite(df) else stats.norm.sf(abs(stat)))
        rows.append(
            {
                "term": f"{lv} vs {levels[0]}",
                "estimate": est,
                "std_error": se,
                "statistic": stat,
                "df": df,
                "p_value": p,
                "conf_low": est - crit * se,
                "conf_high": est + crit * se,
                "n": len(y),
                "n_clusters": n_clusters,
            }
        )
    for d in diags:
        d.emit(StatisticalWarning, stacklevel=3)
    return WeightedEffect(
        summary=tidy_frame(rows, extra=["n", "n_clusters"]),
        model=res,
        diagnostics=diagnostics_frame(diags),
    )


# --------------------------------------------------------------------------------------------
# sensitivity to unmeasured confounding
# --------------------------------------------------------------------------------------------


def _e(rr: float) -> float:
    rr = rr if rr >= 1 else 1 / rr
    return float(rr + np.sqrt(rr * (rr - 1)))


def e_value(
    estimate: float,
    conf_low: float | None = None,
    conf_high: float | None = None,
    *,
    measure: str = "RR",
    rare: bool = True,
    se: float | None = None,
) -> pd.DataFrame:
    """E-value for an estimate and its confidence limit (VanderWeele & Ding 2017).

    The E-value is the minimum strength of association, on the risk-ratio scale, that an
    unmeasured confounder would need with both the treatment and the outcome to explain the
    estimate away: ``E = RR + sqrt(RR (RR - 1))`` (with ``1/RR`` for ``RR < 1``). For the
    interval it is computed for the limit closer to the null, and is 1 when the interval
    includes the null.

    Parameters
    ----------
    estimate, conf_low, conf_high
        The estimate and (optionally) its confidence limits, on the natural scale (a ratio,
        not its log; a standardised difference for ``"SMD"``).
    measure
        ``"RR"``; ``"OR"`` (``RR = OR`` when the outcome is rare, else ``sqrt(OR)``); ``"HR"``
        (``RR = HR`` when rare, else ``(1 - 0.5^sqrt(HR)) / (1 - 0.5^sqrt(1/HR))``); ``"SMD"``
        (a standardised mean difference ``d``: ``RR = exp(0.91 d)``, and with ``se`` the limits
        ``exp(0.91 d -/+ 1.78 se)``). For a mean difference divide it, and its SE, by the
        outcome's SD first.
    rare
        Whether the outcome is rare (< 15%) -- for ``"OR"`` and ``"HR"``.
    se
        Standard error of ``d`` (``"SMD"`` only), used when no limits are given.

    Returns
    -------
    pandas.DataFrame
        One row: ``measure, estimate, conf_low, conf_high, rr, rr_low, rr_high, e_value,
        e_value_ci``.

    Examples
    --------
    >>> round(float(e_value(3.9, 1.8, 8.4)["e_value"].iloc[0]), 2)  # VanderWeele & Ding
    7.26
    """
    measure = str(measure).upper()
    if measure not in ("RR", "OR", "HR", "SMD"):
        raise InputError(f"measure={measure!r}: use RR, OR, HR or SMD.")
    values = [v for v in (estimate, conf_low, conf_high) if v is not None]
    if not all(np.isfinite(float(v)) for v in values):
        raise InputError("estimate and limits must be finite numbers.")
    if measure != "SMD" and any(float(v) <= 0 for v in values):
        raise InputError(f"A {measure} must be positive (give the ratio, not its logarithm).")
    if conf_low is not None and conf_high is not None and not conf_low <= estimate <= conf_high:
        raise InputError("Expected conf_low <= estimate <= conf_high.")

    def to_rr(x: float | None) -> float:
        if x is None:
            return np.nan
        x = float(x)
        if measure == "RR" or (measure in ("OR", "HR") and rare):
            return x
        if measure == "OR":
            return float(np.sqrt(x))
        if measure == "HR":
            return float((1 - 0.5 ** np.sqrt(x)) / (1 - 0.5 ** np.sqrt(1 / x)))
        return float(np.exp(0.91 * x))

    rr = to_rr(estimate)
    rr_low, rr_high = to_rr(conf_low), to_rr(conf_high)
    if measure == "SMD" and se is not None and conf_low is None and conf_high is None:
        if se <= 0:
            raise InputError("se must be positive.")
        rr_low = float(np.exp(0.91 * estimate - 1.78 * se))
        rr_high = float(np.exp(0.91 * estimate + 1.78 * se))
    e_ci = np.nan
    if rr >= 1 and np.isfinite(rr_low):
        e_ci = 1.0 if rr_low <= 1 else _e(rr_low)
    elif rr < 1 and np.isfinite(rr_high):
        e_ci = 1.0 if rr_high >= 1 else _e(rr_high)
    return pd.DataFrame(
        [
            {
                "measure": measure,
                "estimate": float(estimate),
                "conf_low": np.nan if conf_low is None else float(conf_low),
                "conf_high": np.nan if conf_high is None else float(conf_high),
                "rr": rr,
                "rr_low": rr_low,
                "rr_high": rr_high,
                "e_value": _e(rr),
                "e_value_ci": e_ci,
            }
        ]
    )
