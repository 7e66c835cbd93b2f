"""Meta-analysis of published study-level summaries (aggregate data).

Two steps, as in R's metafor: :func:`escalc` turns each study's summary (means, SDs and sizes,
or event counts) into an effect size ``yi`` with its sampling variance ``vi``, and
:func:`meta_analysis` pools them with a fixed-effect or random-effects model.

Effect sizes (``measure``)
--------------------------
``"MD"``
    Mean difference ``mean1 - mean2``; ``vi = sd1^2/n1 + sd2^2/n2`` (metafor ``"MD"``).
``"SMD"``
    Hedges' g: ``(mean1 - mean2) / sd_pooled`` times the exact small-sample correction
    ``J(m) = Gamma(m/2) / (sqrt(m/2) Gamma((m-1)/2))``, ``m = n1 + n2 - 2``;
    ``vi = 1/n1 + 1/n2 + g^2 / (2 (n1 + n2))`` (metafor ``escalc(measure="SMD")``, ``vtype="LS"``).
``"OR"``, ``"RR"``
    Log odds ratio and log risk ratio from event counts; a table with a zero cell gets 1/2
    added to each of its four cells (metafor's default ``add=1/2, to="only0"``).
``"RD"``
    Risk difference (no correction needed for zero cells).
``"GEN"``
    Generic: the data already holds ``yi`` and ``vi`` (or ``sei``).

Group 1 is the experimental arm (e.g. MN+PRP), group 2 the comparator.

Paired (split-face, split-body) studies
---------------------------------------
Rows with ``design`` ``"split_body"`` (or ``"paired"``) compare two sides of the same patients
and need the within-patient correlation ``r`` (a column, or the ``r`` argument; it is rarely
reported, so it is usually an assumption to vary in a sensitivity analysis). ``n1`` is the
number of patients (``n2`` must equal it). The SD of the within-patient difference is
``sd_d = sqrt(sd1^2 + sd2^2 - 2 r sd1 sd2)``:

- ``"MD"``: ``vi = sd_d^2 / n`` (metafor ``"MC"``).
- ``"SMD"``: standardised by the raw-score SD ``s = sqrt((sd1^2 + sd2^2) / 2)`` so that paired
  and parallel studies estimate the same quantity: ``g = J(n-1) (mean1 - mean2) / s``,
  ``vi = sd_d^2 / (s^2 n) + g^2 / (2 n)``; with ``sd1 == sd2`` this is metafor's ``"SMCR"``.
- Binary measures use the marginal counts of each side and ``r`` as the phi correlation of the
  two sides' outcomes (Elbourne et al. 2002): the covariance of the two sides' proportions is
  subtracted in the delta-method variance. For ``"OR"`` this is metafor's ``"MPORM"``.

Pooling (``method``)
--------------------
``"FE"`` (fixed/common effect, inverse-variance), ``"DL"`` (DerSimonian-Laird), ``"PM"``
(Paule-Mandel) and ``"REML"``. Cochran's Q comes from
:func:`statsmodels.stats.meta_analysis.combine_effects`, and the binary effect sizes from its
``effectsize_2proportions``. The rest is written here, because statsmodels does not serve:
its DerSimonian-Laird tau^2 is not truncated at zero, its Paule-Mandel iteration returns 0
when a step overshoots the root (so the PM tau^2 is the root of the generalised Q equation,
found with :func:`scipy.optimize.brentq` as metafor does with ``uniroot``), its Hedges' g uses
an approximate correction and another variance than metafor, and it has no REML: REML tau^2
is the root of the restricted-likelihood score equation (``brentq``).

``knapp_hartung=True`` gives the Knapp-Hartung (Hartung-Knapp-Sidik-Jonkman) standard error
and t-based intervals with ``k - 1`` degrees of freedom (metafor ``test="knha"``, not
truncated). I^2 and H^2 follow metafor: for random-effects fits
``I^2 = tau^2 / (tau^2 + s^2)`` with the "typical" within-study variance ``s^2``; for
fixed-effect fits ``I^2 = (Q - (k-1)) / Q``.

Subgroups (``by``) are fitted separately (each with its own tau^2), and the test of subgroup
differences is the fixed-effect Q of the subgroup estimates (``df = groups - 1``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special, stats
from statsmodels.stats.meta_analysis import combine_effects, effectsize_2proportions

from outcomes.errors import InputError, SingularFitWarning, StatisticalWarning
from outcomes.results import Diagnostic, diagnostics_frame, tidy_frame, to_ard

__all__ = [
    "MEASURES",
    "METHODS",
    "MetaAnalysisResult",
    "escalc",
    "meta_analysis",
    "published_data",
]

MEASURES: tuple[str, ...] = ("MD", "SMD", "OR", "RR", "RD", "GEN")
METHODS: tuple[str, ...] = ("FE", "DL", "PM", "REML")
RATIO_MEASURES = ("OR", "RR")
PAIRED_DESIGNS = ("split_body", "paired")
PARALLEL_DESIGNS = ("parallel", "observational", "single_arm")
FEW_STUDIES = 5
DOMINANT_WEIGHT = 0.5
_CONTINUOUS = ("mean1", "sd1", "n1", "mean2", "sd2")
_BINARY = ("events1", "n1", "events2")
_TAU2_ZERO = 1e-10


def published_data(name: str) -> pd.DataFrame:
    """Load an example study-level data set shipped in ``outcomes/data/published``.

    Parameters
    ----------
    name
        ``"prp_acne_scars_response"`` (event counts) or ``"microneedling_continuous"`` (means,
        SDs, sizes). Rows with ``source_type == "illustrative"`` are invented reconstructions,
        not real studies: see the README in that folder.
    """
    from importlib import resources

    folder = resources.files("outcomes") / "data" / "published"
    available = sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".csv"))
    if name not in available:
        raise InputError(f"No published example {name!r}; available: {', '.join(available)}.")
    with (folder / f"{name}.csv").open("r", encoding="utf-8") as fh:
        return pd.read_csv(fh)


# --------------------------------------------------------------------------------------------
# effect sizes
# --------------------------------------------------------------------------------------------


def _hedges_j(m: np.ndarray) -> np.ndarray:
    """Exact small-sample correction of Hedges' g (metafor's ``.cmicalc``)."""
    m = np.asarray(m, dtype=float)
    return np.exp(special.gammaln(m / 2) - np.log(np.sqrt(m / 2)) - special.gammaln((m - 1) / 2))


def _numeric(data: pd.DataFrame, col: str) -> np.ndarray:
    values = pd.to_numeric(data[col], errors="coerce")
    bad = values.isna()
    if bad.any():
        studies = ", ".join(map(str, data.loc[bad, "study"].tolist()))
        raise InputError(f"Column {col!r} must be a number for every study; check: {studies}.")
    return values.to_numpy(dtype=float)


def _require(data: pd.DataFrame, cols: Sequence[str], measure: str) -> None:
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise InputError(
            f"measure={measure!r} needs the column(s) {', '.join(missing)}; "
            f"the data has {', '.join(map(str, data.columns))}."
        )


def _paired_mask(data: pd.DataFrame) -> np.ndarray:
    if "design" not in data.columns:
        return np.zeros(len(data), dtype=bool)
    design = data["design"].fillna("parallel").astype(str)
    unknown = sorted(set(design) - set(PAIRED_DESIGNS) - set(PARALLEL_DESIGNS))
    if unknown:
        raise InputError(
            f"Unknown design value(s) {unknown}; use one of "
            f"{', '.join(PARALLEL_DESIGNS + PAIRED_DESIGNS)}."
        )
    return design.isin(PAIRED_DESIGNS).to_numpy()


def _correlation(data: pd.DataFrame, paired: np.ndarray, r: float | None) -> np.ndarray:
    """The within-patient correlation of each paired row (NaN for parallel rows)."""
    out = np.full(len(data), np.nan)
    if not paired.any():
        return out
    col = (
        pd.to_numeric(data["r"], errors="coerce").to_numpy(dtype=float)
        if "r" in data.columns
        else np.full(len(data), np.nan)
    )
    if r is not None:
        col = np.where(np.isnan(col), float(r), col)
    out[paired] = col[paired]
    missing = paired & np.isnan(out)
    if missing.any():
        studies = ", ".join(map(str, data.loc[missing, "study"]))
        raise InputError(
            "Split-face/split-body studies need the within-patient correlation r (a column 'r' "
            f"or the r= argument, e.g. r=0.5 with a sensitivity analysis); missing for: {studies}."
        )
    if (np.abs(out[paired]) > 1).any():
        raise InputError("Within-patient correlations r must lie between -1 and 1.")
    return out


def _check_sizes(data: pd.DataFrame, paired: np.ndarray, n1: np.ndarray) -> np.ndarray:
    if "n2" in data.columns:
        n2 = pd.to_numeric(data["n2"], errors="coerce").to_numpy(dtype=float)
    else:
        n2 = np.full(len(data), np.nan)
    n2 = np.where(paired & np.isnan(n2), n1, n2)
    if np.isnan(n2).any():
        raise InputError("Column 'n2' (comparator sample size) is required for parallel studies.")
    if (paired & (n2 != n1)).any():
        studies = ", ".join(map(str, data.loc[paired & (n2 != n1), "study"]))
        raise InputError(
            "In a split-face study both sides come from the same patients: n1 must equal n2 "
            f"(the number of patients); check: {studies}."
        )
    if (n1 < 1).any() or (n2 < 1).any():
        raise InputError("Sample sizes n1 and n2 must be at least 1.")
    return n2


def _continuous(data, measure, paired, r):
    m1, sd1, n1, m2, sd2 = (_numeric(data, c) for c in _CONTINUOUS)
    n2 = _check_sizes(data, paired, n1)
    if (sd1 < 0).any() or (sd2 < 0).any():
        raise InputError("Standard deviations must not be negative.")
    if measure == "SMD" and ((n1 + n2 - 2 <= 1) | (paired & (n1 <= 2))).any():
        raise InputError("A standardised mean difference needs at least 2 patients per arm.")
    diff = m1 - m2
    if measure == "MD":
        yi = diff
        vi = sd1**2 / n1 + sd2**2 / n2
    else:
        m = n1 + n2 - 2
        sd_pooled = np.sqrt(((n1 - 1) * sd1**2 + (n2 - 1) * sd2**2) / m)
        yi = _hedges_j(m) * diff / sd_pooled
        vi = 1 / n1 + 1 / n2 + yi**2 / (2 * (n1 + n2))
    if paired.any():
        rr = np.where(paired, r, 0.0)
        var_d = sd1**2 + sd2**2 - 2 * rr * sd1 * sd2
        if measure == "MD":
            yi_p, vi_p = diff, var_d / n1
        else:
            s_raw = np.sqrt((sd1**2 + sd2**2) / 2)
            yi_p = _hedges_j(n1 - 1) * diff / s_raw
            vi_p = var_d / (s_raw**2 * n1) + yi_p**2 / (2 * n1)
        yi = np.where(paired, yi_p, yi)
        vi = np.where(paired, vi_p, vi)
    return yi, vi, np.zeros(len(data), dtype=bool)


def _binary(data, measure, paired, r):
    a, n1, c = (_numeric(data, col) for col in _BINARY)
    n2 = _check_sizes(data, paired, n1)
    if (a < 0).any() or (c < 0).any() or (a > n1).any() or (c > n2).any():
        raise InputError("Event counts must lie between 0 and the arm's sample size.")
    zero = (a == 0) | (a == n1) | (c == 0) | (c == n2)
    statistic = {"OR": "odds-ratio", "RR": "risk-ratio", "RD": "diff"}[measure]
    # metafor's add=1/2, to="only0": 1/2 is added to the four cells of tables with a zero cell
    # only. (statsmodels' zero_correction=0.5 adds it to the counts of every table, so the
    # correction is applied here and statsmodels gets the corrected counts.)
    cc = np.where(zero, 0.5, 0.0) if measure in RATIO_MEASURES else np.zeros(len(a))
    yi, vi = effectsize_2proportions(a + cc, n1 + 2 * cc, c + cc, n2 + 2 * cc, statistic=statistic)
    yi, vi = np.asarray(yi, dtype=float), np.asarray(vi, dtype=float)
    corrected = cc > 0
    if paired.any():
        n = n1 + 2 * cc
        p1, p2 = (a + cc) / n, (c + cc) / n
        q1, q2 = 1 - p1, 1 - p2
        rr = np.where(paired, r, 0.0)
        root = np.sqrt(p1 * q1 * p2 * q2)
        with np.errstate(divide="ignore", invalid="ignore"):
            if measure == "OR":
                v_ind = 1 / (n * p1 * q1) + 1 / (n * p2 * q2)
                cov = rr * root / (n * p1 * q1 * p2 * q2)
            elif measure == "RR":
                v_ind = q1 / (n * p1) + q2 / (n * p2)
                cov = rr * root / (n * p1 * p2)
            else:
                v_ind = (p1 * q1 + p2 * q2) / n
                cov = rr * root / n
        vi = np.where(paired, v_ind - 2 * cov, vi)
    return yi, vi, corrected


def escalc(
    data: pd.DataFrame,
    measure: str,
    *,
    r: float | None = None,
) -> pd.DataFrame:
    """Compute each study's effect size and sampling variance.

    Parameters
    ----------
    data
        One row per study with a ``study`` label (numbered 1..k when absent) and, by
        ``measure``: ``mean1, sd1, n1, mean2, sd2, n2`` (``"MD"``, ``"SMD"``); ``events1, n1,
        events2, n2`` (``"OR"``, ``"RR"``, ``"RD"``); ``yi`` and ``vi`` or ``sei``
        (``"GEN"``). Optional ``design`` (``"parallel"``, the default, or
        ``"split_body"``/``"paired"``) and ``r`` (within-patient correlation of paired rows).
        metafor's names are accepted too: ``m1i, sd1i, n1i, m2i, sd2i, n2i, ri`` and a 2x2
        table ``ai, bi, ci, di``.
    measure
        One of :data:`MEASURES` (see the module documentation for the formulas).
    r
        Within-patient correlation for paired rows that have no ``r`` of their own.

    Returns
    -------
    pandas.DataFrame
        ``data`` with ``yi``, ``vi``, ``sei``, ``paired`` and ``continuity_corrected`` added.
        For ``"OR"``/``"RR"`` ``yi`` is on the log scale.

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"study": ["a"], "events1": [20], "n1": [50], "events2": [5], "n2": [50]})
    >>> round(float(escalc(d, "RR")["yi"].iloc[0]), 4)  # log(0.4 / 0.1)
    1.3863
    """
    measure = _check_measure(measure)
    if not isinstance(data, pd.DataFrame):
        raise InputError("data must be a pandas DataFrame with one row per study.")
    if len(data) == 0:
        raise InputError("data has no studies.")
    data = _metafor_names(data)
    if data["study"].duplicated().any():
        dups = sorted(set(data.loc[data["study"].duplicated(), "study"].astype(str)))
        raise InputError(f"Study labels must be unique; repeated: {', '.join(dups)}.")
    out = data.copy()
    paired = _paired_mask(data)
    if measure == "GEN":
        _require(data, ["yi"], measure)
        yi = _numeric(data, "yi")
        if "vi" in data.columns:
            vi = _numeric(data, "vi")
        elif "sei" in data.columns:
            vi = _numeric(data, "sei") ** 2
        else:
            raise InputError("measure='GEN' needs a 'vi' (variance) or 'sei' (SE) column.")
        corrected = np.zeros(len(data), dtype=bool)
    else:
        r_rows = _correlation(data, paired, r)
        if measure in ("MD", "SMD"):
            _require(data, _CONTINUOUS, measure)
            yi, vi, corrected = _continuous(data, measure, paired, r_rows)
        else:
            _require(data, _BINARY, measure)
            yi, vi, corrected = _binary(data, measure, paired, r_rows)
    if not (np.isfinite(yi).all() and np.isfinite(vi).all()) or (vi <= 0).any():
        bad = ~(np.isfinite(yi) & np.isfinite(vi) & (vi > 0))
        studies = ", ".join(map(str, data.loc[bad, "study"]))
        raise InputError(
            f"No finite effect size with a positive variance for: {studies} (check zero SDs, "
            "events equal to the sample size in a risk difference, or a correlation of 1)."
        )
    out["yi"] = yi
    out["vi"] = vi
    out["sei"] = np.sqrt(vi)
    out["paired"] = paired
    out["continuity_corrected"] = corrected
    return out


_METAFOR_NAMES = {
    "m1i": "mean1",
    "sd1i": "sd1",
    "n1i": "n1",
    "m2i": "mean2",
    "sd2i": "sd2",
    "n2i": "n2",
    "ri": "r",
}


def _metafor_names(data: pd.DataFrame) -> pd.DataFrame:
    """Accept metafor's argument names as columns, and number the studies if unlabelled.

    ``m1i, sd1i, n1i, m2i, sd2i, n2i, ri`` become ``mean1 ... r``; a 2x2 table ``ai, bi, ci,
    di`` becomes ``events1 = ai, n1 = ai + bi, events2 = ci, n2 = ci + di``. Columns with the
    toolkit's own names win.
    """
    out = data.copy()
    for old, new in _METAFOR_NAMES.items():
        if old in out.columns and new not in out.columns:
            out[new] = out[old]
    table = {"ai", "bi", "ci", "di"}
    if table <= set(out.columns) and not {"events1", "events2"} & set(out.columns):
        ai, bi, ci, di = (pd.to_numeric(out[c], errors="coerce") for c in ("ai", "bi", "ci", "di"))
        out["events1"], out["n1"], out["events2"], out["n2"] = ai, ai + bi, ci, ci + di
    if "study" not in out.columns:
        out.insert(0, "study", [str(i) for i in range(1, len(out) + 1)])
    return out


def _check_measure(measure: str) -> str:
    m = str(measure).upper()
    if m not in MEASURES:
        raise InputError(f"Unknown measure {measure!r}; use one of {', '.join(MEASURES)}.")
    return m


# --------------------------------------------------------------------------------------------
# pooling
# --------------------------------------------------------------------------------------------


@dataclass
class _Fit:
    """One pooled model (overall or one subgroup)."""

    term: str
    k: int
    estimate: float
    se: float
    df: float
    tau2: float
    tau2_se: float
    q: float
    i2: float
    h2: float
    weights: np.ndarray
    level: float
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def crit(self) -> float:
        alpha = 1 - self.level
        if np.isfinite(self.df):
            return float(stats.t.isf(alpha / 2, self.df))
        return float(stats.norm.isf(alpha / 2))

    def row(self) -> dict[str, Any]:
        stat = self.estimate / self.se
        if np.isfinite(self.df):
            p = 2 * stats.t.sf(abs(stat), self.df)
        else:
            p = 2 * stats.norm.sf(abs(stat))
        return {
            "term": self.term,
            "estimate": self.estimate,
            "std_error": self.se,
            "statistic": stat,
            "df": self.df,
            "p_value": p,
            "conf_low": self.estimate - self.crit * self.se,
            "conf_high": self.estimate + self.crit * self.se,
            "k": self.k,
            "tau2": self.tau2,
            "i2": self.i2,
        }


def _reml_tau2(y: np.ndarray, v: np.ndarray) -> float:
    """REML estimate of tau^2: root of the restricted-likelihood score, or 0 at the boundary.

    The score of the restricted log-likelihood (times -2) of the model
    ``y_i ~ N(mu, v_i + tau^2)`` is ``sum(w) - sum(w^2)/sum(w) - sum(w^2 (y - mu_hat)^2)``
    with ``w = 1/(v + tau^2)``; it is negative where the likelihood still rises.
    """

    def score(tau2: float) -> float:
        w = 1 / (v + tau2)
        sw = w.sum()
        mu = (w * y).sum() / sw
        return float(sw - (w**2).sum() / sw - (w**2 * (y - mu) ** 2).sum())

    if score(0.0) >= 0:
        return 0.0
    upper = max(float(np.var(y)), float(v.max()), 1e-8)
    while score(upper) < 0:
        upper *= 4
    return float(optimize.brentq(score, 0.0, upper, xtol=1e-14, rtol=1e-14, maxiter=500))


def _generalised_q(tau2: float, y: np.ndarray, v: np.ndarray) -> float:
    w = 1 / (v + tau2)
    mu = (w * y).sum() / w.sum()
    return float((w * (y - mu) ** 2).sum())


def _pm_tau2(y: np.ndarray, v: np.ndarray) -> float:
    """Paule-Mandel tau^2: the root of ``Q(tau^2) = k - 1``, or 0 when ``Q(0) < k - 1``.

    ``Q(tau^2)`` decreases in tau^2, so the root is bracketed and found with
    :func:`scipy.optimize.brentq` (as metafor does with ``uniroot``). statsmodels'
    ``combine_effects(method_re="pm")`` is not used: its Newton-type iteration returns 0 whenever
    a step overshoots the root, which happens with tight tolerances.
    """
    k = len(y)
    if _generalised_q(0.0, y, v) <= k - 1:
        return 0.0
    upper = max(float(np.var(y)), float(v.max()), 1e-8)
    while _generalised_q(upper, y, v) > k - 1:
        upper *= 4
    return float(
        optimize.brentq(
            lambda t: _generalised_q(t, y, v) - (k - 1), 0.0, upper, xtol=1e-14, rtol=1e-14
        )
    )


def _fit(
    term: str,
    y: np.ndarray,
    v: np.ndarray,
    method: str,
    knapp_hartung: bool,
    level: float,
) -> _Fit:
    k = len(y)
    diags: list[Diagnostic] = []
    if k == 1:
        diags.append(
            Diagnostic(
                "single_study",
                f"{term}: only one study, so its own estimate is reported; nothing is pooled "
                "and heterogeneity cannot be estimated.",
            )
        )
        return _Fit(
            term,
            1,
            float(y[0]),
            float(np.sqrt(v[0])),
            np.nan,
            np.nan,
            np.nan,
            np.nan,
            np.nan,
            np.nan,
            np.ones(1),
            level,
            diags,
        )
    # statsmodels leaves the DL tau^2 untruncated, which can make its (unused) random-effects
    # numbers NaN: silence numpy there; Q is what is taken from it.
    with np.errstate(all="ignore"):
        q = float(combine_effects(y, v, method_re="dl").q)
    w0 = 1 / v
    c = w0.sum() - (w0**2).sum() / w0.sum()
    if method == "FE":
        tau2 = 0.0
    elif method == "DL":
        tau2 = max(0.0, (q - (k - 1)) / c)
    elif method == "PM":
        tau2 = _pm_tau2(y, v)
    else:
        tau2 = _reml_tau2(y, v)
    w = 1 / (v + tau2)
    sw = w.sum()
    estimate = float((w * y).sum() / sw)
    se = float(np.sqrt(1 / sw))
    df = np.nan  # normal-theory inference: no degrees of freedom
    if knapp_hartung:
        s2 = float((w * (y - estimate) ** 2).sum() / (k - 1))
        se = float(np.sqrt(s2 / sw))
        df = float(k - 1)
    if method == "FE":
        i2 = max(0.0, 100 * (q - (k - 1)) / q) if q > 0 else 0.0
        h2 = q / (k - 1)
    else:
        typical = (k - 1) / c
        i2 = 100 * tau2 / (tau2 + typical)
        h2 = (tau2 + typical) / typical
    tau2_se = np.nan
    if method == "REML":
        tr_pp = (w**2).sum() - 2 * (w**3).sum() / sw + ((w**2).sum() / sw) ** 2
        tau2_se = float(np.sqrt(2 / tr_pp))
    elif method == "PM":
        tau2_se = float(np.sqrt(2 * k**2 / (k - 1) / sw**2))
    elif method == "DL":
        # metafor's rma.uni: the variance of the moment estimator with fixed-effect weights,
        # sqrt(2 (k - 1) + 4 tau^2 tr(P) + 2 tau^2^2 tr(P P)) / tr(P), where tr(P) = c
        pp = (w0**2).sum() - 2 * (w0**3).sum() / w0.sum() + ((w0**2).sum() / w0.sum()) ** 2
        tau2_se = float(np.sqrt(2 * (k - 1) + 4 * tau2 * c + 2 * tau2**2 * pp) / c)
    if method != "FE":
        if k < FEW_STUDIES:
            diags.append(
                Diagnostic(
                    "few_studies",
                    f"{term}: only {k} studies, so tau^2 is poorly estimated and normal-theory "
                    "intervals are too narrow; consider knapp_hartung=True.",
                )
            )
        if tau2 < _TAU2_ZERO:
            diags.append(
                Diagnostic(
                    "tau2_boundary",
                    f"{term}: tau^2 estimated at the zero boundary; the random-effects result "
                    "equals the fixed-effect one, which does not prove homogeneity.",
                )
            )
    weights = w / sw
    if k > 2 and weights.max() > DOMINANT_WEIGHT:
        diags.append(
            Diagnostic(
                "dominant_study",
                f"{term}: one study carries {100 * weights.max():.0f}% of the weight.",
                severity="info",
            )
        )
    return _Fit(term, k, estimate, se, df, tau2, tau2_se, q, i2, h2, weights, level, diags)


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
        return _forest(self, self.is_ratio if exponentiate is None else exponentiate)

    def funnel_plot(self):
        """A funnel plot (plotnine): effect sizes against their SEs with pseudo 95% limits."""
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


# --------------------------------------------------------------------------------------------
# plots
# --------------------------------------------------------------------------------------------


def _axis_label(result: MetaAnalysisResult, exponentiate: bool) -> str:
    names = {
        "MD": "Mean difference",
        "SMD": "Standardised mean difference (Hedges' g)",
        "OR": "Odds ratio",
        "RR": "Risk ratio",
        "RD": "Risk difference",
        "GEN": "Effect",
    }
    name = names[result.measure]
    if result.is_ratio and not exponentiate:
        name = f"log {name.lower()}"
    return name


def _forest(result: MetaAnalysisResult, exponentiate: bool):
    import plotnine as p9

    if exponentiate and not result.is_ratio:
        raise InputError(f"exponentiate=True is for OR/RR, not {result.measure}.")
    transform = np.exp if exponentiate else (lambda x: x)
    summary = result.summary.set_index("term")
    studies = result.studies
    rows, diamonds, labels = [], [], []
    y = 0.0

    def diamond(term: str, label: str) -> None:
        nonlocal y
        y -= 1
        s = summary.loc[term]
        xs = transform(np.array([s["conf_low"], s["estimate"], s["conf_high"], s["estimate"]]))
        diamonds.append(pd.DataFrame({"x": xs, "y": [y, y + 0.35, y, y - 0.35], "id": term}))
        labels.append((y, label))

    blocks = (
        [
            (g, studies[studies[result.by] == g])
            for g in sorted(studies[result.by].unique(), key=str)
        ]
        if result.by
        else [(None, studies)]
    )
    for group, block in blocks:
        if group is not None:
            y -= 1
            labels.append((y, str(group)))
        for _, st in block.iterrows():
            y -= 1
            rows.append(
                {
                    "y": y,
                    "x": transform(st["yi"]),
                    "lo": transform(st["conf_low"]),
                    "hi": transform(st["conf_high"]),
                    "weight": st["weight"],
                }
            )
            labels.append((y, f"  {st['study']}" if group is not None else str(st["study"])))
        if group is not None:
            diamond(str(group), f"  {group} (k = {result.fits[str(group)].k})")
    y -= 0.5
    diamond("overall", f"Overall ({result.method}, k = {result.fits['overall'].k})")
    pts = pd.DataFrame(rows)
    dia = pd.concat(diamonds, ignore_index=True)
    ypos, ytext = zip(*labels, strict=True)
    plot = (
        p9.ggplot()
        + p9.geom_vline(xintercept=1.0 if exponentiate else 0.0, linetype="dashed", color="grey")
        + p9.geom_segment(p9.aes(x="lo", xend="hi", y="y", yend="y"), data=pts)
        + p9.geom_point(p9.aes(x="x", y="y", size="weight"), data=pts, shape="s")
        + p9.geom_polygon(p9.aes(x="x", y="y", group="id"), data=dia, fill="black")
        + p9.scale_y_continuous(
            breaks=list(ypos), labels=list(ytext), limits=(min(ypos) - 0.6, max(ypos) + 0.6)
        )
        + p9.scale_size_continuous(range=(1, 5), name="Weight (%)")
        + p9.labs(x=_axis_label(result, exponentiate), y="")
        + p9.theme_bw()
    )
    if exponentiate:
        plot += p9.scale_x_log10()
    return plot


def _funnel(result: MetaAnalysisResult):
    import plotnine as p9

    studies = result.studies
    mu = result.fits["overall"].estimate
    top = float(studies["sei"].max()) * 1.05
    z = stats.norm.isf(0.025)
    limits = pd.DataFrame({"x": [mu - z * top, mu, mu + z * top], "y": [top, 0.0, top]})
    return (
        p9.ggplot(studies, p9.aes(x="yi", y="sei"))
        + p9.geom_path(p9.aes(x="x", y="y"), data=limits, linetype="dashed", color="grey")
        + p9.geom_vline(xintercept=mu, color="grey")
        + p9.geom_point()
        + p9.scale_y_reverse()
        + p9.labs(x=_axis_label(result, False), y="Standard error")
        + p9.theme_bw()
    )
