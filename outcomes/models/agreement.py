"""Rater agreement for blinded photo ratings: intraclass correlation and (weighted) kappa.

- :func:`icc`: the six Shrout-Fleiss intraclass correlations from pingouin's
  ``intraclass_corr``, in the toolkit's tidy columns.
- :func:`weighted_kappa`: Cohen's kappa (unweighted, linear or quadratic weights) for every
  pair of raters, from statsmodels' ``cohens_kappa`` on the full square table of categories,
  plus their mean (Light's kappa).
- :func:`fleiss_kappa`: Fleiss' kappa for several raters (statsmodels).

All take long data: one row per rated target (e.g. unit x visit photo) and rater.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from outcomes.errors import InputError
from outcomes.results import tidy_frame

__all__ = ["fleiss_kappa", "icc", "weighted_kappa"]

WEIGHTS = (None, "linear", "quadratic")
#: pingouin's six ICCs, in its order: Shrout-Fleiss name, McGraw-Wong name, meaning.
ICC_TYPES = (
    ("ICC1", "ICC(1,1)", "single rater, one-way random effects (absolute agreement)"),
    ("ICC2", "ICC(A,1)", "single rater, two-way random effects, absolute agreement"),
    ("ICC3", "ICC(C,1)", "single rater, two-way mixed effects, consistency"),
    ("ICC1k", "ICC(1,k)", "mean of k raters, one-way random effects"),
    ("ICC2k", "ICC(A,k)", "mean of k raters, two-way random effects, absolute agreement"),
    ("ICC3k", "ICC(C,k)", "mean of k raters, two-way mixed effects, consistency"),
)


def _long(
    data: pd.DataFrame, targets: str | Sequence[str], raters: str, ratings: str
) -> tuple[pd.DataFrame, list[str]]:
    """Check and tidy long ratings; several target columns are joined into one key."""
    if not isinstance(data, pd.DataFrame):
        raise InputError(f"Ratings must be a pandas DataFrame, got {type(data).__name__}.")
    target_cols = [targets] if isinstance(targets, str) else list(targets)
    missing = [c for c in [*target_cols, raters, ratings] if c not in data.columns]
    if missing:
        raise InputError(f"Column(s) {missing} are not in the ratings data.")
    df = data[[*target_cols, raters, ratings]].dropna()
    if not pd.api.types.is_numeric_dtype(df[ratings]):
        raise InputError(f"Ratings in {ratings!r} must be numeric grades.")
    df = df.assign(_target=df[target_cols].astype(str).agg("|".join, axis=1))
    dup = df.duplicated(["_target", raters])
    if dup.any():
        raise InputError(
            f"{int(dup.sum())} target(s) were rated twice by the same rater; keep one rating "
            "per target and rater."
        )
    rater_levels = sorted(df[raters].astype(str).unique())
    if len(rater_levels) < 2:
        raise InputError("Agreement needs at least two raters.")
    return df, rater_levels


def icc(
    data: pd.DataFrame,
    *,
    targets: str | Sequence[str],
    raters: str,
    ratings: str,
) -> pd.DataFrame:
    """Intraclass correlations (Shrout & Fleiss) of ratings by several raters.

    Targets not rated by every rater are left out (pingouin's ``nan_policy="omit"``).

    Returns
    -------
    pandas.DataFrame
        Tidy columns, one row per ICC type (Shrout-Fleiss ``ICC1``, ``ICC2``, ``ICC3``,
        ``ICC1k``, ``ICC2k``, ``ICC3k``): ``estimate`` the ICC, ``statistic`` the F ratio,
        ``df`` its numerator df, 95% interval (pingouin's, unrounded); extra columns
        ``mcgraw_wong`` (the same ICC in McGraw & Wong's names), ``description``, ``df2``,
        ``n_targets``, ``n_raters``.
    """
    import pingouin

    df, rater_levels = _long(data, targets, raters, ratings)
    wide = df.pivot_table(index="_target", columns=raters, values=ratings, aggfunc="first").dropna()
    if len(wide) < 3:
        raise InputError("Fewer than 3 targets were rated by every rater: no ICC.")
    long = wide.reset_index().melt(id_vars="_target", var_name="rater", value_name="rating")
    saved = pingouin.options.get("round.column.CI95")
    pingouin.options["round.column.CI95"] = None  # pingouin rounds intervals to 2 decimals
    try:
        res = pingouin.intraclass_corr(long, targets="_target", raters="rater", ratings="rating")
    finally:
        pingouin.options["round.column.CI95"] = saved
    if len(res) != len(ICC_TYPES):
        raise RuntimeError(f"pingouin returned {len(res)} ICC rows, expected 6")
    ci_col = "CI95" if "CI95" in res else "CI95%"
    ci = np.vstack(res[ci_col].to_numpy())
    return tidy_frame(
        pd.DataFrame(
            {
                "term": [t[0] for t in ICC_TYPES],
                "estimate": res["ICC"].to_numpy(),
                "statistic": res["F"].to_numpy(),
                "df": res["df1"].to_numpy(dtype=float),
                "p_value": res["pval"].to_numpy(),
                "conf_low": ci[:, 0],
                "conf_high": ci[:, 1],
                "mcgraw_wong": [t[1] for t in ICC_TYPES],
                "description": [t[2] for t in ICC_TYPES],
                "df2": res["df2"].to_numpy(dtype=float),
                "n_targets": len(wide),
                "n_raters": len(rater_levels),
            }
        ),
        extra=["mcgraw_wong", "description", "df2", "n_targets", "n_raters"],
    )


def weighted_kappa(
    data: pd.DataFrame,
    *,
    targets: str | Sequence[str],
    raters: str,
    ratings: str,
    weights: str | None = "linear",
    categories: Sequence[float] | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """Cohen's (weighted) kappa for each pair of raters, and their mean.

    Parameters
    ----------
    data, targets, raters, ratings
        Long ratings and their columns.
    weights
        ``"linear"`` (default; disagreement ``|i - j| / (k - 1)``), ``"quadratic"``
        (``((i - j) / (k - 1))^2``) or ``None`` (unweighted). Distances are between category
        positions, so the categories should be equally spaced grades.
    categories
        All possible grades in order (e.g. ``[1, 2, 3, 4]``); default: the grades observed.
        Unobserved grades still count as categories when given.
    level
        Confidence level of the (asymptotic) intervals.

    Returns
    -------
    pandas.DataFrame
        One row per rater pair (``term`` ``"R1 vs R2"``; ``statistic`` is kappa over its
        standard error under no agreement, ``p_value`` two-sided, ``std_error`` and interval
        from the asymptotic variance of statsmodels' ``cohens_kappa``), then a row
        ``"mean (Light)"`` with the average of the pairwise kappas. Extra column
        ``n_targets``.
    """
    from statsmodels.stats.inter_rater import cohens_kappa

    if weights not in WEIGHTS:
        raise InputError(f"weights={weights!r}: use 'linear', 'quadratic' or None.")
    df, rater_levels = _long(data, targets, raters, ratings)
    cats = sorted(df[ratings].unique()) if categories is None else list(categories)
    unknown = sorted(set(df[ratings].unique()) - set(cats))
    if unknown:
        raise InputError(f"Ratings {unknown} are not among categories={cats}.")
    wide = df.assign(_r=df[raters].astype(str)).pivot_table(
        index="_target", columns="_r", values=ratings, aggfunc="first"
    )
    q = stats.norm.ppf(0.5 + level / 2)
    rows = []
    for a, b in itertools.combinations(rater_levels, 2):
        pair = wide[[a, b]].dropna()
        if len(pair) < 2:
            raise InputError(f"Raters {a} and {b} rated fewer than 2 targets in common.")
        table = pd.crosstab(
            pd.Categorical(pair[a], categories=cats),
            pd.Categorical(pair[b], categories=cats),
            dropna=False,
        ).to_numpy(dtype=float)
        res = cohens_kappa(table, wt=weights) if weights else cohens_kappa(table)
        kappa, se = float(res.kappa), float(res.std_kappa)
        z = kappa / float(res.std_kappa0)
        rows.append(
            {
                "term": f"{a} vs {b}",
                "estimate": kappa,
                "std_error": se,
                "statistic": z,
                "p_value": 2 * stats.norm.sf(abs(z)),
                "conf_low": kappa - q * se,
                "conf_high": kappa + q * se,
                "n_targets": len(pair),
            }
        )
    out = pd.DataFrame(rows)
    if len(out) > 1:
        light = {
            "term": "mean (Light)",
            "estimate": out["estimate"].mean(),
            "n_targets": int(out["n_targets"].min()),
        }
        out = pd.concat([out, pd.DataFrame([light])], ignore_index=True)
    out["weights"] = weights or "none"
    return tidy_frame(out, extra=["n_targets", "weights"])


def fleiss_kappa(
    data: pd.DataFrame, *, targets: str | Sequence[str], raters: str, ratings: str
) -> pd.DataFrame:
    """Fleiss' kappa (unweighted) for targets rated by the same number of raters.

    Targets with fewer ratings than the most common number are left out.
    """
    from statsmodels.stats.inter_rater import aggregate_raters
    from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

    df, rater_levels = _long(data, targets, raters, ratings)
    wide = df.pivot_table(index="_target", columns=raters, values=ratings, aggfunc="first").dropna()
    counts, _ = aggregate_raters(wide.to_numpy())
    return tidy_frame(
        pd.DataFrame(
            [
                {
                    "term": "fleiss",
                    "estimate": float(sm_fleiss(counts, method="fleiss")),
                    "n_targets": len(wide),
                    "n_raters": len(rater_levels),
                }
            ]
        ),
        extra=["n_targets", "n_raters"],
    )
