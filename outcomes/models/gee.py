"""Binary and ordinal repeated outcomes: generalised estimating equations (statsmodels GEE).

``gee(data, "responder ~ week * arm", groups="subject_id", family="binomial")`` fits a
population-averaged logistic model with an exchangeable (default), unstructured or independence
working correlation; ``family="ordinal"`` fits a cumulative-logit model for ordered grades
(statsmodels ``OrdinalGEE``; working dependence by a global odds ratio, or independence).
Standard errors are robust (sandwich), so inference stays valid when the working correlation is
wrong; coefficients are log odds ratios and the table adds odds ratios with their intervals.

Ordinal coefficients follow statsmodels (and R ``ordinal::clm``): a positive coefficient moves
the outcome towards higher grades. The thresholds ``y>k`` are the log odds of a grade above
``k`` at zero covariates.

Validation: with an independence working correlation, the binary estimates equal R's ``glm``
and the robust standard errors the cluster sandwich written out in R
(``tests/r/mixed/gee.R``); the exchangeable binary fit with ``convention="geepack"`` equals R's
``geepack::geeglm`` 1.3.9 (``tests/r/mixed/gee_exchangeable.R``: estimates, robust SEs, the
correlation and the scale); unstructured and ordinal fits are checked by recovery on simulated
data with a known marginal model.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import patsy
from scipy import stats

from outcomes.errors import ConvergenceWarning, InputError, StatisticalWarning
from outcomes.results import TIDY_COLUMNS, Diagnostic, diagnostics_frame, tidy_frame, to_ard

__all__ = ["FAMILIES", "GeeResult", "gee"]

FAMILIES = ("binomial", "ordinal")
COV_STRUCTS = {
    "binomial": ("exchangeable", "unstructured", "independence"),
    "ordinal": ("global_odds_ratio", "independence"),
}
FEW_CLUSTERS = 20
#: Moment estimators of the working correlation: divide by ``N - p`` and ``pairs - p`` (SAS
#: PROC GENMOD, statsmodels) or by ``N`` and ``pairs`` (R geepack).
CONVENTIONS = ("sas", "geepack")


@dataclass(repr=False)
class GeeResult:
    """A fitted GEE: tidy coefficients with odds ratios, working dependence, diagnostics.

    Attributes
    ----------
    coefficients
        Tidy columns (log odds ratios, robust standard errors, z statistics; ``df`` is empty
        because inference is normal-theory) plus ``odds_ratio``, ``or_conf_low``,
        ``or_conf_high``.
    dependence
        ``parameter, value``: the estimated working correlation (or global odds ratio).
    family, cov_struct, formula, nobs, ngroups
        The model as fitted.
    diagnostics
        ``code, severity, message``.
    """

    coefficients: pd.DataFrame
    dependence: pd.DataFrame
    family: str
    cov_struct: str
    formula: str
    nobs: int
    ngroups: int
    converged: bool
    result: Any = field(repr=False)
    _diagnostics: list[Diagnostic] = field(default_factory=list, repr=False)

    @property
    def diagnostics(self) -> pd.DataFrame:
        """Model trouble as data: ``code, severity, message``."""
        return diagnostics_frame(self._diagnostics)

    def tidy(self) -> pd.DataFrame:
        """The coefficients with the shared tidy columns first."""
        extra = [c for c in self.coefficients.columns if c not in TIDY_COLUMNS]
        return tidy_frame(self.coefficients, extra=extra)

    def to_ard(self, analysis: str, groups: Mapping[str, object] | None = None) -> pd.DataFrame:
        """Analysis-results-dataset rows of the coefficients (and odds ratios)."""
        return to_ard(
            self.coefficients, analysis=analysis, groups=groups, diagnostics=self.diagnostics
        )

    def __repr__(self) -> str:
        return f"<GeeResult {self.family} ({self.cov_struct}) {self.formula!r}, nobs {self.nobs}>"

    def _header(self) -> str:
        return (
            f"GEE ({self.family}, working dependence {self.cov_struct}, robust SE): "
            f"{self.formula}\nnobs {self.nobs}; clusters {self.ngroups}; "
            f"converged {self.converged}"
        )

    def __str__(self) -> str:
        parts = [
            self._header(),
            "",
            self.coefficients.to_string(index=False, float_format=lambda v: f"{v:.4g}"),
            "",
            "Working dependence:",
            self.dependence.to_string(index=False, float_format=lambda v: f"{v:.4g}"),
        ]
        parts += [f"[{d.severity}] {d.code}: {d.message}" for d in self._diagnostics]
        return "\n".join(parts)

    def _repr_html_(self) -> str:
        head = self._header().replace("&", "&amp;").replace("<", "&lt;").replace("\n", "<br>")
        html = [
            f"<p><b>{head}</b></p>",
            self.coefficients.to_html(index=False, float_format=lambda v: f"{v:.4g}"),
            "<p>Working dependence</p>",
            self.dependence.to_html(index=False, float_format=lambda v: f"{v:.4g}"),
        ]
        if self._diagnostics:
            html.append(self.diagnostics.to_html(index=False))
        return "\n".join(html)


def _cov_struct(name: str, family: str) -> Any:
    import statsmodels.api as sm

    if name not in COV_STRUCTS[family]:
        raise InputError(
            f"cov_struct={name!r} is not available for family={family!r}; use one of "
            f"{', '.join(COV_STRUCTS[family])}."
        )
    return {
        "exchangeable": sm.cov_struct.Exchangeable,
        "unstructured": sm.cov_struct.Unstructured,
        "independence": sm.cov_struct.Independence,
        "global_odds_ratio": lambda: sm.cov_struct.GlobalOddsRatio("ordinal"),
    }[name]()


def _dependence(result: Any, cov_struct: str, time_levels: list[Any] | None) -> pd.DataFrame:
    dep = result.cov_struct.dep_params
    if cov_struct == "exchangeable":
        rows = [("correlation", float(dep))]
    elif cov_struct == "global_odds_ratio":
        rows = [("global_odds_ratio", float(dep))]
    elif cov_struct == "unstructured":
        mat = np.asarray(dep)
        labels = time_levels or list(range(len(mat)))
        rows = [
            (f"correlation({labels[i]},{labels[j]})", float(mat[i, j]))
            for i in range(len(mat))
            for j in range(i + 1, len(mat))
        ]
    else:
        rows = []
    return pd.DataFrame(rows, columns=["parameter", "value"])


def gee(
    data: pd.DataFrame,
    formula: str,
    *,
    groups: str,
    family: str = "binomial",
    cov_struct: str | None = None,
    time: str | None = None,
    level: float = 0.95,
    convention: str = "sas",
) -> GeeResult:
    """Fit a GEE for a binary or ordinal repeated outcome.

    Parameters
    ----------
    data
        Long data, one row per subject (or unit) and visit.
    formula
        patsy formula, e.g. ``"responder ~ C(visit) * arm"``. For ``family="ordinal"`` the
        intercept is replaced by one threshold per grade boundary.
    groups
        Cluster column (subject; the unit is nested in it for split-body data, so cluster on
        the subject).
    family
        ``"binomial"`` (outcome 0/1 or boolean) or ``"ordinal"`` (ordered integer grades).
    cov_struct
        Working dependence: ``"exchangeable"`` (binomial default), ``"unstructured"`` (needs
        ``time``), ``"independence"``; for ordinal ``"global_odds_ratio"`` (default) or
        ``"independence"``.
    time
        Visit column ordering the repeated measures (required for ``"unstructured"``).
    level
        Confidence level.
    convention
        How the exchangeable correlation ``alpha`` and the scale ``phi`` behind it are
        estimated from the Pearson residuals ``r`` (N observations, p coefficients, pairs =
        within-cluster pairs). ``"sas"`` (default; SAS PROC GENMOD and statsmodels):
        ``phi = sum r^2 / (N - p)``, ``alpha = sum_pairs r_j r_k / ((pairs - p) phi)``.
        ``"geepack"`` (R ``geepack::geeglm``): the same without ``- p``. The two differ by
        O(p / N) in ``alpha`` and less in the coefficients; the robust SEs use the same
        sandwich. Only the exchangeable working correlation depends on it.

    Returns
    -------
    GeeResult
    """
    import statsmodels.api as sm
    from statsmodels.genmod.generalized_estimating_equations import GEE, OrdinalGEE

    if not isinstance(data, pd.DataFrame):
        raise InputError(f"gee() needs a pandas DataFrame, got {type(data).__name__}.")
    if family not in FAMILIES:
        raise InputError(f"family={family!r}: use one of {', '.join(FAMILIES)}.")
    cov_struct = cov_struct or COV_STRUCTS[family][0]
    cs = _cov_struct(cov_struct, family)
    if convention not in CONVENTIONS:
        raise InputError(f"convention={convention!r}: use one of {', '.join(CONVENTIONS)}.")
    if convention == "geepack" and cov_struct != "exchangeable":
        raise InputError(
            "convention='geepack' applies to the exchangeable working correlation only."
        )
    needed = [groups] + ([time] if time else [])
    missing = [c for c in needed if c not in data.columns]
    if missing:
        raise InputError(f"Column(s) {missing} are not in the data.")
    if cov_struct == "unstructured" and time is None:
        raise InputError("An unstructured working correlation needs time= (the visit column).")
    try:
        y_df, x_df = patsy.dmatrices(formula, data, return_type="dataframe", NA_action="drop")
    except patsy.PatsyError as exc:
        raise InputError(f"Cannot build the model from the formula: {exc}") from None
    rows = y_df.index
    frame = data.loc[rows]
    keep = frame[needed].notna().all(axis=1).to_numpy()
    y = y_df.to_numpy(dtype=float)[keep, 0]
    x_df = x_df.loc[keep]
    frame = frame.loc[keep]
    diagnostics: list[Diagnostic] = []
    if len(data) - len(frame):
        diagnostics.append(
            Diagnostic(
                "rows_dropped",
                f"{len(data) - len(frame)} row(s) with missing values were left out.",
                "info",
            )
        )
    levels = np.unique(y)
    if family == "binomial" and not set(levels) <= {0.0, 1.0}:
        raise InputError(
            f"family='binomial' needs a 0/1 outcome; found values {levels[:6].tolist()}. "
            "Use family='ordinal' for grades."
        )
    if len(levels) < 2:
        raise InputError("The outcome takes a single value: there is nothing to model.")
    group_codes, _ = pd.factorize(frame[groups], sort=True)
    time_codes = time_levels = None
    if time is not None:
        time_codes, tl = pd.factorize(frame[time], sort=True)
        time_levels = list(tl)
    names = list(x_df.columns)
    x = x_df.to_numpy(dtype=float)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if family == "binomial":
            model = GEE(
                y,
                x,
                groups=group_codes,
                time=time_codes,
                family=sm.families.Binomial(),
                cov_struct=cs,
            )
        else:
            if "Intercept" in names:
                keep_cols = [i for i, n in enumerate(names) if n != "Intercept"]
                x, names = x[:, keep_cols], [names[i] for i in keep_cols]
            model = OrdinalGEE(y, x, groups=group_codes, time=time_codes, cov_struct=cs)
        # ddof_scale = 0 drops the "- p" from both denominators of the exchangeable update
        extra = {"ddof_scale": 0} if convention == "geepack" else {}
        result = model.fit(maxiter=100, **extra)
    messages = list(dict.fromkeys(str(w.message).strip() for w in caught))
    converged = bool(getattr(result, "converged", True))
    if messages or not converged:
        diagnostics.append(
            Diagnostic(
                "not_converged" if not converged else "statsmodels_warning",
                "statsmodels GEE reported: "
                + ("; ".join(messages) or "no convergence")
                + ". Estimates may be unreliable.",
                "warning",
            )
        )
    n_groups = int(group_codes.max()) + 1
    if n_groups < FEW_CLUSTERS:
        diagnostics.append(
            Diagnostic(
                "few_clusters",
                f"Only {n_groups} clusters: robust (sandwich) standard errors are too small "
                "with few clusters; treat p-values and intervals as optimistic.",
                "warning",
            )
        )
    if family == "ordinal":
        exog_names = list(result.model.exog_names)
        n_thr = len(exog_names) - len(names)
        terms = [f"threshold {n}" for n in exog_names[:n_thr]] + names
    else:
        terms = names
    est = np.asarray(result.params, dtype=float)
    se = np.asarray(result.bse, dtype=float)
    z = est / se
    q = stats.norm.ppf(0.5 + level / 2)
    low, high = est - q * se, est + q * se
    table = tidy_frame(
        pd.DataFrame(
            {
                "term": terms,
                "estimate": est,
                "std_error": se,
                "statistic": z,
                "p_value": 2 * stats.norm.sf(np.abs(z)),
                "conf_low": low,
                "conf_high": high,
                "odds_ratio": np.exp(est),
                "or_conf_low": np.exp(low),
                "or_conf_high": np.exp(high),
            }
        ),
        extra=["odds_ratio", "or_conf_low", "or_conf_high"],
    )
    for d in diagnostics:
        d.emit(ConvergenceWarning if d.code != "few_clusters" else StatisticalWarning)
    return GeeResult(
        coefficients=table,
        dependence=_dependence(result, cov_struct, time_levels),
        family=family,
        cov_struct=cov_struct,
        formula=formula,
        nobs=len(y),
        ngroups=n_groups,
        converged=converged,
        result=result,
        _diagnostics=diagnostics,
    )
