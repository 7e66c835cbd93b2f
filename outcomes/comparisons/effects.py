"""Cluster-robust GLM, OLS and Cox building blocks shared by the trial and registry comparisons."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from outcomes.comparisons.table import _Collector, _ratio_values
from outcomes.errors import ModelError

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
    """Unweighted Cox model with robust SE by clinic (:func:`outcomes.cox`);
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

    The toolkit's :func:`outcomes.cox` takes no weights. lifelines' estimate
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
