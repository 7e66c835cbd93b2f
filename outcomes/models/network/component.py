"""Additive component network meta-analysis (:func:`component_meta`; R netmeta's ``netcomb``
and ``discomb``).

Treatments are built from components ("MN+PRP" = MN and PRP). The additive model says a
treatment's effect is the sum of its components' effects: ``TE = B C beta`` with ``B`` the
comparison-treatment incidence matrix and ``C`` the treatment-component matrix (one row per
treatment, 1 where it contains the component). ``beta`` (incremental component effects) is the
weighted least-squares solution ``(X' W X)^+ X' W TE``, ``X = B C``, with netmeta's multi-arm
adjusted weights (Rücker, Petropoulou & Schwarzer 2020).

- ``inactive`` names a treatment with no active component (placebo, saline, untreated): its
  row of ``C`` is zero, so combination effects are against it.
- ``Q_additive`` (df = sum(arms - 1) - rank(X)) against the standard NMA's Q: their difference
  tests additivity (df = n - 1 - rank(X) for a connected network).
- tau^2: the method-of-moments estimator of the additive model (netmeta's), then the random-
  effects fit with weights ``1/(seTE^2 + tau^2)``.
- A disconnected network (``discomb``) can be analysed when components shared across the parts
  identify every component; the standard-model Q is then the sum over the parts, with
  ``df = sum(arms - 1) - (n - parts)``, and additivity is tested on ``n - parts - rank(X)`` df.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from outcomes.errors import InputError, StatisticalWarning
from outcomes.models.network.contrasts import Contrasts, sort_key, to_contrasts
from outcomes.models.network.graph import adjusted_weights, fit_graph, incidence
from outcomes.models.network.nma import NetworkMetaResult, i_squared, subnetworks
from outcomes.results import Diagnostic, diagnostics_frame, tidy_frame, to_ard

__all__ = ["ComponentMetaResult", "component_matrix", "component_meta"]


def component_matrix(
    treatments: list[str], sep: str = "+", inactive: str | None = None
) -> pd.DataFrame:
    """Treatment x component matrix from labels such as ``"MN + PRP"`` (netmeta ``createC``).

    Components are the labels split at ``sep`` with spaces trimmed, in case-insensitive
    alphabetical order; the ``inactive`` treatment (matched ignoring case) has no component.
    """
    match = None
    if inactive is not None:
        hits = [t for t in treatments if t.casefold() == str(inactive).casefold()]
        if not hits:
            raise InputError(
                f"inactive={inactive!r} is not a treatment of the network "
                f"({', '.join(treatments)})."
            )
        match = hits[0]
    parts = {
        t: ([] if t == match else [c.strip() for c in t.split(sep) if c.strip()])
        for t in treatments
    }
    comps = sorted({c for p in parts.values() for c in p}, key=sort_key)
    C = pd.DataFrame(0.0, index=treatments, columns=comps)
    for t, p in parts.items():
        C.loc[t, p] = 1.0
    return C


def _unidentified(X: np.ndarray, names: list[str]) -> list[str]:
    """Components whose effect the design matrix cannot separate (null-space members)."""
    _, s, vt = np.linalg.svd(X)
    tol = max(X.shape) * np.finfo(float).eps * (s[0] if len(s) else 1.0) * 100
    rank = int((s > tol).sum())
    null = vt[rank:]
    hit = (np.abs(null) > 1e-8).any(axis=0) if len(null) else np.zeros(len(names), bool)
    return [n for n, h in zip(names, hit, strict=True) if h]


@dataclass
class _Additive:
    beta: np.ndarray
    cov: np.ndarray
    fitted: np.ndarray
    H: np.ndarray
    q: float
    weights: np.ndarray


def _fit_additive(TE: np.ndarray, weights: np.ndarray, X: np.ndarray) -> _Additive:
    W = np.diag(weights)
    cov = np.linalg.pinv(X.T @ W @ X, hermitian=True)
    beta = cov @ X.T @ W @ TE
    fitted = X @ beta
    H = X @ cov @ X.T @ W
    resid = TE - fitted
    return _Additive(beta, cov, fitted, H, float(resid @ W @ resid), weights)


@dataclass
class ComponentMetaResult:
    """A fitted additive component NMA (returned by :func:`component_meta`).

    Attributes
    ----------
    components
        Incremental effect of each component per model: ``model, term, estimate, std_error,
        statistic, p_value, conf_low, conf_high``.
    combinations
        Effect of each treatment (sum of its components) against the inactive treatment (or
        against "no component"), per model, same columns.
    comparisons
        Every ordered treatment pair under the additive model per model (``treatment,
        comparator`` and the estimate columns).
    C
        The treatment x component matrix used.
    heterogeneity
        One row: ``tau2, tau, i2, i2_low, i2_high``, ``q_additive, df_additive,
        p_additive``, ``q_standard, df_standard, p_standard``, ``q_diff, df_diff, p_diff``
        (the test of additivity) and ``subnetworks``.
    diagnostics
        Trouble as data: disconnected network, zero cells, assumed split-face r, ...
    """

    measure: str
    inactive: str | None
    level: float
    tau2: float
    C: pd.DataFrame
    components: pd.DataFrame
    combinations: pd.DataFrame
    comparisons: pd.DataFrame
    heterogeneity: pd.DataFrame
    diagnostics: pd.DataFrame

    def tidy(self, model: str = "random", exponentiate: bool = False) -> pd.DataFrame:
        """Component effects (``term`` = component) of one model, or of ``"both"``."""
        out = (
            self.components
            if model == "both"
            else self.components[self.components["model"] == model]
        )
        if model not in ("common", "random", "both"):
            raise InputError(f"model={model!r}: use 'common', 'random' or 'both'.")
        out = tidy_frame(out, extra=["model"])
        if exponentiate:
            if self.measure not in ("OR", "RR"):
                raise InputError(f"exponentiate=True is for OR/RR, not {self.measure}.")
            for col in ("estimate", "conf_low", "conf_high"):
                out[col] = np.exp(out[col])
        return out

    def to_ard(
        self, analysis: str = "component_meta", groups: dict[str, object] | None = None
    ) -> pd.DataFrame:
        """ARD rows of component and combination effects per model, and heterogeneity."""
        base = {"measure": self.measure, "inactive": self.inactive or "", **(groups or {})}
        parts = []
        for what, table in (("component", self.components), ("combination", self.combinations)):
            for m in ("common", "random"):
                t = tidy_frame(table[table["model"] == m])
                parts.append(
                    to_ard(
                        t,
                        analysis=analysis,
                        groups={**base, "model": m, "effect": what},
                        diagnostics=self.diagnostics,
                    )
                )
        het = self.heterogeneity.assign(term="network")
        parts.append(to_ard(het, analysis=analysis, groups=base, diagnostics=self.diagnostics))
        return pd.concat(parts, ignore_index=True)

    def forest_plot(self, model: str = "random", **kwargs):
        """Forest plot of the incremental component effects (:func:`.plots.component_forest`)."""
        from outcomes.models.network.plots import component_forest

        return component_forest(self, model, **kwargs)


def _rows(names: list[str], est: np.ndarray, cov: np.ndarray, model: str, z: float) -> list[dict]:
    se = np.sqrt(np.clip(np.diag(cov), 0, None))
    out = []
    for name, e, s in zip(names, est, se, strict=True):
        stat = e / s if s > 0 else np.nan
        out.append(
            {
                "model": model,
                "term": name,
                "estimate": e,
                "std_error": s,
                "statistic": stat,
                "df": np.nan,
                "p_value": 2 * stats.norm.sf(abs(stat)) if s > 0 else np.nan,
                "conf_low": e - z * s,
                "conf_high": e + z * s,
            }
        )
    return out


def component_meta(
    data: pd.DataFrame | NetworkMetaResult,
    measure: str = "GEN",
    *,
    inactive: str | None = None,
    sep: str = "+",
    C: pd.DataFrame | None = None,
    r: float | None = None,
    tau2: float | None = None,
    level: float = 0.95,
) -> ComponentMetaResult:
    """Additive component network meta-analysis (netmeta ``netcomb``; ``discomb`` when
    the network is disconnected).

    Parameters
    ----------
    data
        Network data as for :func:`network_meta`, or a fitted :class:`NetworkMetaResult`.
    measure
        As for :func:`network_meta` (ignored when ``data`` is a fitted result).
    inactive
        Treatment with no active component (e.g. ``"saline"``), matched ignoring case.
    sep
        Separator of components in treatment labels (``"MN+PRP"``).
    C
        Treatment x component matrix (rows named by treatment) instead of splitting labels,
        e.g. to add interaction columns.
    r
        Within-patient correlation of split-face studies lacking an ``r`` value.
    tau2
        Fix tau^2 instead of estimating it (netmeta ``tau.preset``, squared).
    level
        Confidence level.
    """
    if not 0 < level < 1:
        raise InputError(f"level must lie strictly between 0 and 1, got {level!r}.")
    if isinstance(data, NetworkMetaResult):
        con: Contrasts = data._data
        measure = data.measure
    else:
        con = to_contrasts(data, measure, r)
        measure = str(measure).upper()
    table, trts = con.table, con.treatments
    if C is None:
        C = component_matrix(trts, sep, inactive)
        inactive = next(
            (t for t in trts if inactive is not None and t.casefold() == str(inactive).casefold()),
            None,
        )
    else:
        missing = sorted(set(trts) - set(map(str, C.index)), key=sort_key)
        if missing:
            raise InputError(f"C has no row for treatment(s) {', '.join(missing)}.")
        C = C.loc[trts].astype(float)
    comps = [str(c) for c in C.columns]
    TE = table["TE"].to_numpy(float)
    seTE = table["seTE"].to_numpy(float)
    study = table["study"].to_numpy()
    B = incidence(table["treat1"].to_numpy(), table["treat2"].to_numpy(), trts)
    X = B @ C.to_numpy()
    bad = _unidentified(X, comps)
    if bad:
        raise InputError(
            "The additive model cannot separate the effect(s) of component(s) "
            f"{', '.join(bad)}: no comparison isolates them (check that the parts of a "
            "disconnected network share components, or merge components)."
        )
    rank = X.shape[1]
    n_arms = sum(
        len(set(g["treat1"]) | set(g["treat2"])) - 1 for _, g in table.groupby("study", sort=False)
    )
    df_add = n_arms - rank
    parts = subnetworks(table)
    q_std = 0.0
    for p in parts:
        sub = table[table["treat1"].isin(p)]
        t_sub = sorted(p, key=sort_key)
        q_std += fit_graph(
            sub["TE"].to_numpy(float),
            sub["seTE"].to_numpy(float),
            sub["treat1"].to_numpy(),
            sub["treat2"].to_numpy(),
            sub["study"].to_numpy(),
            t_sub,
        ).Q
    df_std = n_arms - (len(trts) - len(parts))
    df_diff = len(trts) - len(parts) - rank
    w0, notes = adjusted_weights(seTE, study, 0.0)
    common = _fit_additive(TE, w0, X)
    if tau2 is None:
        same = (study[:, None] == study[None, :]).astype(float)
        P = (B @ B.T) * same / 2
        denom = float(np.trace((np.eye(len(TE)) - common.H) @ P @ np.diag(w0)))
        tau2 = max(0.0, (common.q - df_add) / denom) if df_add > 0 else float("nan")
    w1, _ = adjusted_weights(seTE, study, 0.0 if np.isnan(tau2) else tau2)
    random = _fit_additive(TE, w1, X)
    z = stats.norm.isf((1 - level) / 2)
    Cm = C.to_numpy()
    comp_rows, comb_rows, pair_rows = [], [], []
    for model, fit in (("common", common), ("random", random)):
        comp_rows += _rows(comps, fit.beta, fit.cov, model, z)
        comb_rows += _rows(trts, Cm @ fit.beta, Cm @ fit.cov @ Cm.T, model, z)
        for i, a in enumerate(trts):
            for j, b in enumerate(trts):
                if i != j:
                    d = Cm[i] - Cm[j]
                    row = _rows(
                        [f"{a} vs {b}"],
                        np.array([d @ fit.beta]),
                        np.array([[d @ fit.cov @ d]]),
                        model,
                        z,
                    )[0]
                    pair_rows.append({**row, "treatment": a, "comparator": b})
    q_diff = common.q - q_std
    i2, i2_lo, i2_hi = i_squared(common.q, df_add, level)
    het = {
        "tau2": tau2,
        "tau": np.sqrt(tau2),
        "i2": i2,
        "i2_low": i2_lo,
        "i2_high": i2_hi,
        "q_additive": common.q,
        "df_additive": df_add,
        "p_additive": stats.chi2.sf(common.q, df_add) if df_add > 0 else np.nan,
        "q_standard": q_std,
        "df_standard": df_std,
        "p_standard": stats.chi2.sf(q_std, df_std) if df_std > 0 else np.nan,
        "q_diff": q_diff,
        "df_diff": df_diff,
        "p_diff": stats.chi2.sf(q_diff, df_diff) if df_diff > 0 else np.nan,
        "subnetworks": len(parts),
    }
    diagnostics = list(con.diagnostics) + notes
    if len(parts) > 1:
        listing = "; ".join("{" + ", ".join(p) + "}" for p in parts)
        diagnostics.append(
            Diagnostic(
                "disconnected_network",
                f"The network has {len(parts)} sub-networks ({listing}); they are linked only "
                "through shared components, so their comparison rests on the additive model.",
            )
        )
    if df_diff > 0 and het["p_diff"] < 0.05:
        diagnostics.append(
            Diagnostic(
                "additivity_rejected",
                f"The additive model fits worse than the standard NMA (Q diff = {q_diff:.2f} on "
                f"{df_diff} df, p = {het['p_diff']:.3g}): component effects may interact.",
            )
        )
    for d in diagnostics:
        d.emit(StatisticalWarning, stacklevel=3)
    return ComponentMetaResult(
        measure=measure,
        inactive=inactive,
        level=level,
        tau2=tau2,
        C=C,
        components=pd.DataFrame(comp_rows),
        combinations=pd.DataFrame(comb_rows),
        comparisons=pd.DataFrame(pair_rows),
        heterogeneity=pd.DataFrame([het]),
        diagnostics=diagnostics_frame(diagnostics),
    )
