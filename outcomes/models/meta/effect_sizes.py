"""Effect sizes and their sampling variances from study-level summaries (metafor's ``escalc``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import special
from statsmodels.stats.meta_analysis import effectsize_2proportions

from outcomes.errors import InputError

__all__ = ["MEASURES", "escalc", "phi_limits"]

MEASURES: tuple[str, ...] = ("MD", "SMD", "OR", "RR", "RD", "GEN")


RATIO_MEASURES = ("OR", "RR")
PAIRED_DESIGNS = ("split_body", "paired")
PARALLEL_DESIGNS = ("parallel", "observational", "single_arm")


_CONTINUOUS = ("mean1", "sd1", "n1", "mean2", "sd2")
_BINARY = ("events1", "n1", "events2")


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


def require_columns(data: pd.DataFrame, cols: Sequence[str], what: str) -> None:
    """Refuse ``data`` without ``cols``, naming them and the columns it has; ``what`` is the
    subject of the sentence (``"measure='OR'"``, ``"Network data"``)."""
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise InputError(
            f"{what} needs the column(s) {', '.join(missing)}; "
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


def phi_limits(events1, events2, n) -> tuple[np.ndarray, np.ndarray]:
    """Attainable range of the correlation (phi) of two binary sides with the given margins.

    Two yes/no outcomes on the same ``n`` patients with ``events1`` and ``events2`` responders
    have ``max(0, p1 + p2 - 1) <= P(both) <= min(p1, p2)`` (the Fréchet bounds), so phi lies
    between ``(max(0, p1 + p2 - 1) - p1 p2) / s`` and ``(min(p1, p2) - p1 p2) / s`` with
    ``s = sqrt(p1 (1 - p1) p2 (1 - p2))``. NaN where a side has no or only responders (phi is
    then undefined).

    Returns
    -------
    (low, high)
        Arrays of the smallest and largest attainable correlation.
    """
    p1 = np.asarray(events1, dtype=float) / np.asarray(n, dtype=float)
    p2 = np.asarray(events2, dtype=float) / np.asarray(n, dtype=float)
    s = np.sqrt(p1 * (1 - p1) * p2 * (1 - p2))
    with np.errstate(divide="ignore", invalid="ignore"):
        low = (np.maximum(0.0, p1 + p2 - 1) - p1 * p2) / s
        high = (np.minimum(p1, p2) - p1 * p2) / s
    defined = s > 0
    return np.where(defined, low, np.nan), np.where(defined, high, np.nan)


def _check_attainable(data, paired, a, c, n, r) -> None:
    """Refuse a within-patient correlation the two sides' counts cannot have."""
    low, high = phi_limits(a, c, n)
    tol = 1e-12
    bad = paired & np.isfinite(low) & ((r < low - tol) | (r > high + tol))
    if not bad.any():
        return
    lines = [
        f"row {i} (study {data['study'].iloc[i]!s}): {a[i]:g}/{n[i]:g} vs {c[i]:g}/{n[i]:g} "
        f"responders allow r from {low[i]:.3f} to {high[i]:.3f}, not r = {r[i]:g}"
        for i in np.flatnonzero(bad)
    ]
    raise InputError(
        "The within-patient correlation of two yes/no sides is bounded by their response "
        "rates, and the assumed r describes no possible data: "
        + "; ".join(lines)
        + ". Choose r within the attainable range (for a sensitivity analysis, vary r inside it)."
    )


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
        _check_attainable(data, paired, a, c, n1, r)
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
        Within-patient correlation for paired rows that have no ``r`` of their own. For yes/no
        measures it must lie in the range the two sides' counts allow (:func:`phi_limits`;
        e.g. at most 0.41 for 20/50 vs 5/50 responders), otherwise an :class:`InputError`.

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
        require_columns(data, ["yi"], f"measure={measure!r}")
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
            require_columns(data, _CONTINUOUS, f"measure={measure!r}")
            yi, vi, corrected = _continuous(data, measure, paired, r_rows)
        else:
            require_columns(data, _BINARY, f"measure={measure!r}")
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
