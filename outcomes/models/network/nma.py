"""Frequentist network meta-analysis (:func:`network_meta`), matching R's netmeta.

Every treatment is compared with every other at once, using direct evidence (trials that
compare them) and indirect evidence (through common comparators). The estimator is Rücker's
graph-theoretical method (:mod:`.graph`), with netmeta's multi-arm adjustment, common and
random effects. tau^2 is netmeta's default method-of-moments estimator (``method_tau="DL"``)
or the restricted-likelihood estimator (``"REML"``, a contrast-based model with correlation
1/2 between a study's contrasts, as netmeta passes to metafor's ``rma.mv``). Inference is
normal-theory (z tests, Wald intervals), as in netmeta; prediction intervals of the random
model use ``sqrt(se^2 + tau^2)`` and a t quantile on the df of Q (netmeta 3.6).

Also: all relative effects (league table), P-scores (Rücker & Schwarzer 2015), Q total,
within and between designs (:mod:`.designs`), node-splitting (:mod:`.split`), a network graph
and a forest plot against a reference (:mod:`.plots`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from outcomes.errors import InputError, SingularFitWarning, StatisticalWarning
from outcomes.models.network import designs as dz
from outcomes.models.network.contrasts import Contrasts, to_contrasts
from outcomes.models.network.graph import GraphFit, fit_graph, tau2_dl
from outcomes.models.network.split import SPLIT_METHODS, netsplit
from outcomes.results import Diagnostic, diagnostics_frame, tidy_frame, to_ard

__all__ = ["TAU_METHODS", "NetworkMetaResult", "i_squared", "network_meta", "subnetworks"]

TAU_METHODS = ("DL", "REML")
MODELS = ("common", "random")
RATIO_MEASURES = ("OR", "RR")
_ALPHA_INCONSISTENCY = 0.05


def subnetworks(table: pd.DataFrame) -> list[list[str]]:
    """Connected parts of the network (treatments linked by at least one comparison)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in zip(table["treat1"], table["treat2"], strict=True):
        parent[find(a)] = find(b)
    groups: dict[str, list[str]] = {}
    for t in parent:
        groups.setdefault(find(t), []).append(t)
    return sorted((sorted(g) for g in groups.values()), key=len, reverse=True)


def i_squared(q: float, df: int, level: float) -> tuple[float, float, float]:
    """I^2 = (Q - df) / Q with the Higgins-Thompson interval (R meta's ``isquared``)."""
    if df <= 0 or not np.isfinite(q):
        return (np.nan, np.nan, np.nan)
    z = stats.norm.isf((1 - level) / 2)
    h = np.sqrt(max(q / df, 1.0))
    if q > df + 1:
        se = 0.5 * (np.log(q) - np.log(df)) / (np.sqrt(2 * q) - np.sqrt(2 * df - 1))
    elif df > 1:
        se = np.sqrt(1 / (2 * (df - 1)) * (1 - 1 / (3 * (df - 1) ** 2)))
    else:
        se = np.nan
    lo, hi = max(np.exp(np.log(h) - z * se), 1.0), max(np.exp(np.log(h) + z * se), 1.0)
    i2 = max(0.0, (q - df) / q) if q > 0 else 0.0
    return (i2, (lo**2 - 1) / lo**2, (hi**2 - 1) / hi**2)


def _p_scores(TE: np.ndarray, seTE: np.ndarray, small_values: str) -> np.ndarray:
    """P-scores: mean over competitors of the one-sided probability of being better."""
    n = TE.shape[0]
    sign = -1.0 if small_values == "desirable" else 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        p = stats.norm.cdf(sign * TE / seTE)
    np.fill_diagonal(p, 0.0)
    return p.sum(axis=1) / (n - 1)


@dataclass
class NetworkMetaResult:
    """A fitted network meta-analysis (returned by :func:`network_meta`).

    Attributes
    ----------
    measure, reference, method_tau, level, small_values
        The settings of the fit.
    treatments
        Treatments in the order of the matrices.
    contrasts
        One row per within-study comparison: ``study, treat1, treat2, TE, seTE``, the
        multi-arm adjusted ``seTE_adj_common``/``seTE_adj_random`` and the network estimates
        ``fitted_common``/``fitted_random``.
    effects
        Every ordered pair of treatments per model: ``model, treatment, comparator, estimate,
        std_error, statistic, p_value, conf_low, conf_high`` (and ``pi_low``, ``pi_high`` for
        the random model): the league table in long form.
    p_scores
        ``treatment, p_score_common, p_score_random``.
    heterogeneity
        One row: ``tau2, tau, i2, i2_low, i2_high, q, df, p_value``, the within- and
        between-design ``q``/``df``/``p``, and the random-effects between-design Q with its
        ``tau_within``.
    design_q
        Q of each design (``design, q, df, p_value``) and each design's contributions to the
        between-design Q (``between``), as netmeta's ``decomp.design``.
    diagnostics
        Model and data trouble as data (``code, severity, message``).
    """

    measure: str
    reference: str
    method_tau: str
    level: float
    small_values: str
    treatments: list[str]
    tau2: float
    contrasts: pd.DataFrame
    effects: pd.DataFrame
    p_scores: pd.DataFrame
    heterogeneity: pd.DataFrame
    design_q: dict[str, pd.DataFrame]
    diagnostics: pd.DataFrame
    _fits: dict[str, GraphFit] = field(repr=False)
    _data: Contrasts = field(repr=False)

    @property
    def is_ratio(self) -> bool:
        """Whether effects are log ratios (OR, RR)."""
        return self.measure in RATIO_MEASURES

    def _model(self, model: str) -> str:
        if model not in MODELS:
            raise InputError(f"model={model!r}: use 'common' or 'random'.")
        return model

    def relative_effects(
        self, model: str = "random", reference: str | None = None, exponentiate: bool = False
    ) -> pd.DataFrame:
        """Tidy rows of every treatment against ``reference`` (default the fit's reference)."""
        model = self._model(model)
        ref = self.reference if reference is None else self._treatment(reference)
        rows = self.effects[
            (self.effects["model"] == model)
            & (self.effects["comparator"] == ref)
            & (self.effects["treatment"] != ref)
        ].copy()
        rows["term"] = rows["treatment"] + " vs " + ref
        rows["df"] = np.nan
        out = tidy_frame(rows, extra=["model", "treatment", "comparator"])
        if exponentiate:
            self._check_ratio()
            for col in ("estimate", "conf_low", "conf_high"):
                out[col] = np.exp(out[col])
        return out

    def tidy(self, model: str = "both", exponentiate: bool = False) -> pd.DataFrame:
        """Every treatment against the reference: ``model="common"``, ``"random"`` or both."""
        models = MODELS if model == "both" else (self._model(model),)
        return pd.concat(
            [self.relative_effects(m, exponentiate=exponentiate) for m in models],
            ignore_index=True,
        )

    def league(
        self, model: str = "random", exponentiate: bool | None = None, digits: int = 2
    ) -> pd.DataFrame:
        """League table: cell (row, column) is the row treatment vs the column treatment.

        Estimates with their confidence intervals as text, e.g. ``"0.52 (0.31 to 0.74)"``;
        the diagonal names the treatment. Treatments are ordered by P-score (best first).
        """
        model = self._model(model)
        exponentiate = self.is_ratio if exponentiate is None else exponentiate
        if exponentiate:
            self._check_ratio()
        order = self.p_scores.sort_values(f"p_score_{model}", ascending=False)["treatment"]
        e = self.effects[self.effects["model"] == model].set_index(["treatment", "comparator"])
        f = np.exp if exponentiate else (lambda v: v)
        table = pd.DataFrame(index=list(order), columns=list(order), dtype=object)
        for a in order:
            for b in order:
                if a == b:
                    table.loc[a, b] = a
                    continue
                row = e.loc[(a, b)]
                table.loc[a, b] = (
                    f"{f(row['estimate']):.{digits}f} ({f(row['conf_low']):.{digits}f} to "
                    f"{f(row['conf_high']):.{digits}f})"
                )
        return table

    def netsplit(self, method: str = "back-calculation") -> pd.DataFrame:
        """Direct vs indirect evidence of each comparison (see :mod:`.split`).

        ``method="back-calculation"`` is netmeta's default; ``"SIDDE"`` refits the network
        without the studies of each comparison.
        """
        if method not in SPLIT_METHODS:
            raise InputError(f"method={method!r}: use one of {', '.join(SPLIT_METHODS)}.")
        fits = {
            m: (f.TE, f.seTE, self.tau2 if m == "random" else 0.0) for m, f in self._fits.items()
        }

        def refit(rest: pd.DataFrame):
            if len(subnetworks(rest)) > 1:
                return None
            trts = sorted(set(rest["treat1"]) | set(rest["treat2"]), key=self.treatments.index)
            ref = self.reference if self.reference in trts else trts[0]
            fc, fr, _, _ = _fit_models(rest, trts, ref, self.method_tau)
            return {"common": (fc.TE, fc.seTE, trts), "random": (fr.TE, fr.seTE, trts)}

        return netsplit(self._data.table, self.treatments, fits, method, refit, self.level)

    def to_ard(
        self, analysis: str = "network_meta", groups: dict[str, object] | None = None
    ) -> pd.DataFrame:
        """ARD rows: effects vs the reference per model, P-scores and heterogeneity."""
        base = {
            "measure": self.measure,
            "method_tau": self.method_tau,
            "reference": self.reference,
            **(groups or {}),
        }
        parts = []
        for m in MODELS:
            t = self.relative_effects(m).drop(columns=["model", "treatment", "comparator"])
            parts.append(
                to_ard(
                    t, analysis=analysis, groups={**base, "model": m}, diagnostics=self.diagnostics
                )
            )
        ps = self.p_scores.rename(columns={"treatment": "term"})
        parts.append(to_ard(ps, analysis=analysis, groups=base, diagnostics=self.diagnostics))
        het = self.heterogeneity.assign(term="network")
        parts.append(to_ard(het, analysis=analysis, groups=base, diagnostics=self.diagnostics))
        return pd.concat(parts, ignore_index=True)

    def forest_plot(self, model: str = "random", reference: str | None = None, **kwargs: Any):
        """Forest plot of every treatment against ``reference`` (see :func:`.plots.forest`)."""
        from outcomes.models.network.plots import forest

        return forest(self, self._model(model), reference, **kwargs)

    def network_plot(self, **kwargs: Any):
        """Network graph: nodes sized by patients (or studies), edges by number of studies."""
        from outcomes.models.network.plots import network_graph

        return network_graph(self._data.table, self.treatments, **kwargs)

    def _treatment(self, name: str) -> str:
        if name not in self.treatments:
            raise InputError(
                f"Unknown treatment {name!r}; the network has {', '.join(self.treatments)}."
            )
        return name

    def _check_ratio(self) -> None:
        if not self.is_ratio:
            raise InputError(f"exponentiate=True is for OR/RR, not {self.measure}.")


def _fit_models(
    table: pd.DataFrame, treatments: list[str], reference: str, method_tau: str
) -> tuple[GraphFit, GraphFit, float, list[dz.Block]]:
    args = (
        table["TE"].to_numpy(float),
        table["seTE"].to_numpy(float),
        table["treat1"].to_numpy(),
        table["treat2"].to_numpy(),
        table["study"].to_numpy(),
    )
    common = fit_graph(*args, treatments)
    bl = dz.blocks(table, reference)
    if method_tau == "DL":
        tau2 = tau2_dl(common.Q, common.df, common.H, common.B, common.weights, args[4])
    else:
        tau2 = dz.reml_tau2(bl, treatments, reference) if common.df > 0 else float("nan")
    random = fit_graph(*args, treatments, 0.0 if np.isnan(tau2) else tau2)
    return common, random, tau2, bl


def network_meta(
    data: pd.DataFrame,
    measure: str = "GEN",
    *,
    reference: str | None = None,
    method_tau: str = "DL",
    r: float | None = None,
    small_values: str = "desirable",
    level: float = 0.95,
) -> NetworkMetaResult:
    """Network meta-analysis of arm-level or contrast-level data (R netmeta's ``netmeta``).

    Parameters
    ----------
    data
        One row per study arm (``study, treatment`` and ``events, n`` or ``mean, sd, n``) or
        one row per comparison (``study, treat1, treat2, TE, seTE``); see :mod:`.contrasts`.
        Optional ``design`` (``"split_body"`` for split-face studies) and ``r``.
    measure
        ``"MD"``, ``"OR"``, ``"RR"``, ``"RD"``, or ``"GEN"`` for contrasts already on their
        analysis scale (log scale for ratios).
    reference
        Treatment the others are compared with (e.g. ``"MN"``); default the first in order.
    method_tau
        ``"DL"`` (netmeta's default method-of-moments estimator) or ``"REML"``.
    r
        Within-patient correlation of split-face studies lacking an ``r`` value.
    small_values
        ``"desirable"`` when lower effects are better (e.g. scar grades), else
        ``"undesirable"``; sets the direction of P-scores only.
    level
        Confidence level.

    Returns
    -------
    NetworkMetaResult

    Raises
    ------
    InputError
        Bad data, or a disconnected network (use :func:`component_meta` when components
        connect the parts).
    """
    method_tau = str(method_tau).upper()
    if method_tau not in TAU_METHODS:
        raise InputError(f"method_tau={method_tau!r}: use one of {', '.join(TAU_METHODS)}.")
    if small_values not in ("desirable", "undesirable"):
        raise InputError("small_values must be 'desirable' or 'undesirable'.")
    if not 0 < level < 1:
        raise InputError(f"level must lie strictly between 0 and 1, got {level!r}.")
    con = to_contrasts(data, measure, r)
    measure = str(measure).upper()
    parts = subnetworks(con.table)
    if len(parts) > 1:
        listing = "; ".join("{" + ", ".join(p) + "}" for p in parts)
        raise InputError(
            f"The network falls apart into {len(parts)} sub-networks: {listing}. Analyse them "
            "separately, or use component_meta() when shared components connect them."
        )
    trts = con.treatments
    reference = trts[0] if reference is None else reference
    if reference not in trts:
        raise InputError(
            f"reference={reference!r} is not a treatment of the network ({', '.join(trts)})."
        )
    table = con.table
    common, random, tau2, bl = _fit_models(table, trts, reference, method_tau)
    fits = {"common": common, "random": random}
    z = stats.norm.isf((1 - level) / 2)
    n = len(trts)
    rows = []
    for model, f in fits.items():
        for i in range(n):
            for j in range(n):
                if i == j:
                    continue
                est, se = f.TE[i, j], f.seTE[i, j]
                row = {
                    "model": model,
                    "treatment": trts[i],
                    "comparator": trts[j],
                    "estimate": est,
                    "std_error": se,
                    "statistic": est / se,
                    "p_value": 2 * stats.norm.sf(abs(est / se)),
                    "conf_low": est - z * se,
                    "conf_high": est + z * se,
                }
                if model == "random":
                    lo = hi = np.nan
                    if common.df >= 2:
                        tq = stats.t.isf((1 - level) / 2, common.df)
                        sp = np.sqrt(se**2 + tau2)
                        lo, hi = est - tq * sp, est + tq * sp
                    row.update(pi_low=lo, pi_high=hi)
                rows.append(row)
    effects = pd.DataFrame(rows)
    p_scores = pd.DataFrame(
        {
            "treatment": trts,
            **{f"p_score_{m}": _p_scores(f.TE, f.seTE, small_values) for m, f in fits.items()},
        }
    )
    dec = dz.decompose(bl, trts, reference) if len({b.design for b in bl}) > 1 else None
    tau_w = dz.tau_within(bl) if dec is not None else np.nan
    dec_r = dz.decompose(bl, trts, reference, tau_w**2) if dec is not None else None
    i2, i2_lo, i2_hi = i_squared(common.Q, common.df, level)
    het = {
        "tau2": tau2,
        "tau": np.sqrt(tau2),
        "i2": i2,
        "i2_low": i2_lo,
        "i2_high": i2_hi,
        "q": common.Q,
        "df": common.df,
        "p_value": stats.chi2.sf(common.Q, common.df) if common.df > 0 else np.nan,
    }
    for key, label in (("within", "within_designs"), ("between", "between_designs")):
        if dec is None:
            het.update({f"q_{key}": np.nan, f"df_{key}": np.nan, f"p_{key}": np.nan})
        else:
            r_ = dec["Q"].set_index("term").loc[label]
            het.update({f"q_{key}": r_["q"], f"df_{key}": r_["df"], f"p_{key}": r_["p_value"]})
    if dec_r is not None:
        r_ = dec_r["Q"].set_index("term").loc["between_designs"]
        het.update(q_between_random=r_["q"], p_between_random=r_["p_value"], tau_within=tau_w)
    else:
        het.update(q_between_random=np.nan, p_between_random=np.nan, tau_within=np.nan)
    contrasts = table[["study", "treat1", "treat2", "TE", "seTE"]].copy()
    contrasts["seTE_adj_common"] = common.seTE_adj
    contrasts["seTE_adj_random"] = random.seTE_adj
    contrasts["fitted_common"] = common.fitted
    contrasts["fitted_random"] = random.fitted
    diagnostics = _diagnostics(con, common, random, tau2, het, method_tau)
    return NetworkMetaResult(
        measure=measure,
        reference=reference,
        method_tau=method_tau,
        level=level,
        small_values=small_values,
        treatments=trts,
        tau2=tau2,
        contrasts=contrasts,
        effects=effects,
        p_scores=p_scores,
        heterogeneity=pd.DataFrame([het]),
        design_q={} if dec is None else {"within": dec["within"], "between": dec["between"]},
        diagnostics=diagnostics_frame(diagnostics),
        _fits=fits,
        _data=con,
    )


def _diagnostics(
    con: Contrasts,
    common: GraphFit,
    random: GraphFit,
    tau2: float,
    het: dict[str, float],
    method_tau: str,
) -> list[Diagnostic]:
    out = list(con.diagnostics)
    out.extend({d.message: d for d in common.notes + random.notes}.values())
    k = len(con.studies)
    if common.df == 0:
        out.append(
            Diagnostic(
                "no_heterogeneity_df",
                "No degrees of freedom for heterogeneity (every comparison rests on one study or "
                "one loop-free path): tau^2 cannot be estimated and the random-effects model "
                "equals the common-effect model.",
            )
        )
    elif tau2 == 0:
        out.append(
            Diagnostic(
                "tau2_boundary",
                f"tau^2 ({method_tau}) estimated at zero: the random-effects results equal the "
                "common-effect ones, which does not prove homogeneity.",
            )
        )
    if k < 5:
        out.append(
            Diagnostic(
                "few_studies",
                f"Only {k} studies: tau^2 is poorly estimated and normal-theory intervals may be "
                "too narrow.",
                severity="info",
            )
        )
    if np.isfinite(het["p_between"]) and het["p_between"] < _ALPHA_INCONSISTENCY:
        out.append(
            Diagnostic(
                "inconsistency",
                f"Between-design Q = {het['q_between']:.2f} on {int(het['df_between'])} df "
                f"(p = {het['p_between']:.3g}) under the common-effect model: direct and indirect "
                "evidence disagree somewhere; see netsplit() and the design Q table.",
            )
        )
    for d in out:
        category = SingularFitWarning if d.code == "tau2_boundary" else StatisticalWarning
        d.emit(category, stacklevel=4)
    return out
