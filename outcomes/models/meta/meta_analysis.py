"""Random- and fixed-effect meta-analysis of effect sizes (metafor's ``rma``), with subgroups."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from outcomes.errors import InputError, SingularFitWarning, StatisticalWarning
from outcomes.models.meta.effect_sizes import RATIO_MEASURES, _check_measure, _correlation, escalc
from outcomes.models.meta.estimation import _Fit, _fit
from outcomes.results import Diagnostic, diagnostics_frame, tidy_frame, to_ard

__all__ = ["METHODS", "MetaAnalysisResult", "meta_analysis"]

METHODS: tuple[str, ...] = ("FE", "DL", "PM", "REML")


@dataclass
class MetaAnalysisResult:
    """A fitted meta-analysis (returned by :func:`meta_analysis`).

    Attributes
    ----------
    summary
        Tidy table (:data:`outcomes.results.TIDY_COLUMNS` plus ``k``, ``tau2``, ``i2``): one
        row per subgroup and an ``"overall"`` row, on the analysis scale (log for OR/RR).
    studies
        One row per study: ``study``, subgroup, ``yi``, ``vi``, ``sei``, ``conf_low``,
        ``conf_high``, ``weight`` (percent of its subgroup's, or the overall, model),
        ``paired``, ``continuity_corrected``.
    heterogeneity
        One row per fit: ``term, k, tau2, tau2_se, tau, i2, h2, q, q_df, q_p``.
    subgroup_test
        Test of subgroup differences (``q, df, p_value``) when ``by`` was given, else None.
    diagnostics
        Model trouble as data (``code, severity, message``).
    """

    measure: str
    method: str
    knapp_hartung: bool
    level: float
    by: str | None
    summary: pd.DataFrame
    studies: pd.DataFrame
    heterogeneity: pd.DataFrame
    subgroup_test: pd.DataFrame | None
    diagnostics: pd.DataFrame
    fits: dict[str, _Fit] = field(repr=False)

    @property
    def is_ratio(self) -> bool:
        """Whether estimates are log ratios (OR, RR)."""
        return self.measure in RATIO_MEASURES

    def tidy(self, exponentiate: bool = False) -> pd.DataFrame:
        """The summary table, with OR/RR estimates and limits exponentiated on request."""
        out = self.summary.copy()
        if exponentiate:
            if not self.is_ratio:
                raise InputError(f"exponentiate=True is for OR/RR, not {self.measure}.")
            for col in ("estimate", "conf_low", "conf_high"):
                out[col] = np.exp(out[col])
        return out

    def predict(self, level: float | None = None, exponentiate: bool = False) -> pd.DataFrame:
        """Pooled estimates with confidence and prediction intervals (metafor ``predict()``).

        The prediction interval is ``estimate +/- crit * sqrt(se^2 + tau^2)``, with ``crit``
        from the normal distribution, or from t with ``k - 1`` df under Knapp-Hartung.

        Returns
        -------
        pandas.DataFrame
            ``term, estimate, std_error, conf_low, conf_high, pi_low, pi_high``.
        """
        level = self.level if level is None else _check_level(level)
        rows = []
        for term, fit in self.fits.items():
            alpha = 1 - level
            crit = (
                stats.t.isf(alpha / 2, fit.df) if np.isfinite(fit.df) else stats.norm.isf(alpha / 2)
            )
            tau2 = 0.0 if not np.isfinite(fit.tau2) else fit.tau2
            spread = np.sqrt(fit.se**2 + tau2)
            rows.append(
                {
                    "term": term,
                    "estimate": fit.estimate,
                    "std_error": fit.se,
                    "conf_low": fit.estimate - crit * fit.se,
                    "conf_high": fit.estimate + crit * fit.se,
                    "pi_low": fit.estimate - crit * spread,
                    "pi_high": fit.estimate + crit * spread,
                }
            )
        out = pd.DataFrame(rows)
        if exponentiate:
            if not self.is_ratio:
                raise InputError(f"exponentiate=True is for OR/RR, not {self.measure}.")
            for col in ("estimate", "conf_low", "conf_high", "pi_low", "pi_high"):
                out[col] = np.exp(out[col])
        return out

    def to_ard(self, analysis: str = "meta_analysis") -> pd.DataFrame:
        """Analysis-results-dataset rows of the summary, with the diagnostics attached."""
        return to_ard(
            self.summary,
            analysis=analysis,
            groups={"measure": self.measure, "method": self.method},
            diagnostics=self.diagnostics,
        )

    def forest_plot(self, exponentiate: bool | None = None):
        """A forest plot (plotnine): studies with their CIs, pooled estimates as diamonds.

        Parameters
        ----------
        exponentiate
            Show OR/RR on the ratio scale (log axis). Default: True for OR/RR.
        """
        from outcomes.models.meta.plots import _forest

        return _forest(self, self.is_ratio if exponentiate is None else exponentiate)

    def funnel_plot(self):
        """A funnel plot (plotnine): effect sizes against their SEs with pseudo 95% limits."""
        from outcomes.models.meta.plots import _funnel

        return _funnel(self)


def _check_level(level: float) -> float:
    if not 0 < level < 1:
        raise InputError(f"level must lie strictly between 0 and 1, got {level!r}.")
    return float(level)


def meta_analysis(
    data: pd.DataFrame,
    measure: str = "GEN",
    method: str = "REML",
    *,
    knapp_hartung: bool = False,
    by: str | None = None,
    level: float = 0.95,
    r: float | None = None,
) -> MetaAnalysisResult:
    """Pool study-level summaries with a fixed- or random-effects model.

    Parameters
    ----------
    data
        One row per study (see :func:`escalc` for the columns of each measure); if it already
        has ``yi``/``vi`` columns use ``measure="GEN"``.
    measure
        ``"MD"``, ``"SMD"``, ``"OR"``, ``"RR"``, ``"RD"`` or ``"GEN"``.
    method
        ``"REML"`` (default), ``"DL"``, ``"PM"`` or ``"FE"`` (fixed/common effect).
    knapp_hartung
        Knapp-Hartung SEs and t intervals with ``k - 1`` df (metafor ``test="knha"``).
    by
        Column to form subgroups (e.g. ``"indication"``); adds one row per subgroup and a test
        of subgroup differences.
    level
        Confidence level.
    r
        Within-patient correlation for split-face rows lacking an ``r`` column value.

    Returns
    -------
    MetaAnalysisResult

    Warns
    -----
    StatisticalWarning
        Fewer than 5 studies in a random-effects fit, or a single study.
    SingularFitWarning
        tau^2 estimated at zero.

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"study": ["a", "b", "c"], "yi": [0.1, 0.3, 0.2],
    ...                   "vi": [0.01, 0.02, 0.015]})
    >>> round(float(meta_analysis(d, method="FE").summary["estimate"].iloc[0]), 4)
    0.1769
    """
    measure = _check_measure(measure)
    method_u = {"FIXED": "FE", "EE": "FE", "CE": "FE"}.get(str(method).upper(), str(method).upper())
    if method_u not in METHODS:
        raise InputError(f"Unknown method {method!r}; use one of {', '.join(METHODS)}.")
    level = _check_level(level)
    es = escalc(data, measure, r=r)
    if by is not None:
        if by not in es.columns:
            raise InputError(f"by={by!r} is not a column of data.")
        if es[by].isna().any():
            raise InputError(f"Column {by!r} has missing values; every study needs a subgroup.")
    fits: dict[str, _Fit] = {}
    studies = es.copy()
    studies["weight"] = np.nan
    if by is not None:
        for level_name, idx in es.groupby(by, sort=True).groups.items():
            rows = es.loc[idx]
            fit = _fit(
                str(level_name),
                rows["yi"].to_numpy(),
                rows["vi"].to_numpy(),
                method_u,
                knapp_hartung,
                level,
            )
            fits[str(level_name)] = fit
            studies.loc[idx, "weight"] = 100 * fit.weights
    overall = _fit(
        "overall", es["yi"].to_numpy(), es["vi"].to_numpy(), method_u, knapp_hartung, level
    )
    fits["overall"] = overall
    if by is None:
        studies["weight"] = 100 * overall.weights
    crit = stats.norm.isf((1 - level) / 2)
    studies["conf_low"] = studies["yi"] - crit * studies["sei"]
    studies["conf_high"] = studies["yi"] + crit * studies["sei"]
    keep = [
        "study",
        *([by] if by else []),
        "yi",
        "vi",
        "sei",
        "conf_low",
        "conf_high",
        "weight",
        "paired",
        "continuity_corrected",
    ]
    studies = studies[keep].reset_index(drop=True)

    summary = tidy_frame([f.row() for f in fits.values()], extra=["k", "tau2", "i2"])
    heterogeneity = pd.DataFrame(
        {
            "term": list(fits),
            "k": [f.k for f in fits.values()],
            "tau2": [f.tau2 for f in fits.values()],
            "tau2_se": [f.tau2_se for f in fits.values()],
            "tau": [np.sqrt(f.tau2) for f in fits.values()],
            "i2": [f.i2 for f in fits.values()],
            "h2": [f.h2 for f in fits.values()],
            "q": [f.q for f in fits.values()],
            "q_df": [f.k - 1 for f in fits.values()],
        }
    )
    heterogeneity["q_p"] = np.where(
        heterogeneity["k"] > 1,
        stats.chi2.sf(heterogeneity["q"], heterogeneity["q_df"].clip(lower=1)),
        np.nan,
    )

    diagnostics: list[Diagnostic] = []
    for f in fits.values():
        diagnostics.extend(f.diagnostics)
    subgroup_test = None
    if by is not None:
        groups = [f for name, f in fits.items() if name != "overall"]
        if len(groups) > 1:
            est = np.array([g.estimate for g in groups])
            wts = 1 / np.array([g.se for g in groups]) ** 2
            pooled = (wts * est).sum() / wts.sum()
            q_between = float((wts * (est - pooled) ** 2).sum())
            dfb = len(groups) - 1
            subgroup_test = pd.DataFrame(
                {"q": [q_between], "df": [dfb], "p_value": [stats.chi2.sf(q_between, dfb)]}
            )
    if es["continuity_corrected"].any():
        names = ", ".join(map(str, es.loc[es["continuity_corrected"], "study"]))
        diagnostics.append(
            Diagnostic(
                "continuity_correction",
                f"1/2 added to every cell of the tables with a zero cell: {names}.",
                severity="info",
            )
        )
    if es["paired"].any():
        rs = sorted(set(np.round(_correlation(es, es["paired"].to_numpy(), r)[es["paired"]], 3)))
        diagnostics.append(
            Diagnostic(
                "assumed_correlation",
                f"Split-face studies analysed as paired with within-patient correlation r = "
                f"{', '.join(map(str, rs))}; vary r in a sensitivity analysis.",
                severity="info",
            )
        )
    for d in diagnostics:
        category = SingularFitWarning if d.code == "tau2_boundary" else StatisticalWarning
        d.emit(category, stacklevel=3)
    return MetaAnalysisResult(
        measure=measure,
        method=method_u,
        knapp_hartung=knapp_hartung,
        level=level,
        by=by,
        summary=summary,
        studies=studies,
        heterogeneity=heterogeneity,
        subgroup_test=subgroup_test,
        diagnostics=diagnostics_frame(diagnostics),
        fits=fits,
    )
