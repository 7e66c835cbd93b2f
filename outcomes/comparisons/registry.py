"""Registries: propensity-weighted effects by indication, responders and interaction tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from outcomes.comparisons.adverse_events import _registry_ae
from outcomes.comparisons.datasets import (
    _ae_flags,
    _at_primary_visit,
    _comparisons,
    _endpoint,
    _endpoint_label,
    _groups,
    _instrument_scores,
    _pct_improvement,
    _primary_instrument,
    _unit_frame,
)
from outcomes.comparisons.effects import (
    _TIDY_NUM,
    _degenerate,
    _dummies,
    _glm_cluster,
    _naive_cox,
    _ols_cluster,
    _registry_glm,
    _weighted_cox,
)
from outcomes.comparisons.table import PHOTOTYPE_NUMBER, _Collector, _diff_values, _ratio_values
from outcomes.errors import InputError, ModelError

#: Propensity diagnostics that make a weighted estimate doubtful, in plain words.
PS_DOUBTS = {
    "ps_not_converged": "propensity model not converged",
    "ps_separation": "positivity violated (separation in the propensity model)",
    "empty_cells": "positivity violated (a covariate level without some modality)",
    "ps_extreme": "near-violation of positivity (propensity scores below 0.01 or above 0.99)",
    "extreme_weights": "extreme weights (a few patients dominate)",
}
#: Words in an outcome model's own warnings that make its estimate doubtful.
MODEL_DOUBTS = {
    "converge": "outcome model not converged",
    "singular": "singular fit",
    "separation": "separation in the outcome model",
}

# --------------------------------------------------------------------------------------------
# registries
# --------------------------------------------------------------------------------------------


def _registry(
    t: Mapping[str, pd.DataFrame],
    study: pd.Series,
    col: _Collector,
    opts: Mapping[str, Any],
    balance: list[pd.DataFrame],
    weight_tables: list[pd.DataFrame],
) -> None:
    from outcomes.derive.tte import derive_tte

    reference = opts["reference"]
    units = _unit_frame(t)
    if reference not in set(units["modality"]):
        col.note(f"study {study['study_id']}: no {reference} units; registry not compared")
        return
    units["phototype_num"] = units["phototype"].map(PHOTOTYPE_NUMBER).astype(float)
    has_gais = bool((t["assessments"]["instrument"] == "gais").any())
    endpoint = _endpoint(t)
    tte_all = None
    tte_notes: list[str] = []
    if endpoint is not None:
        tte_all, tte_notes = col.run(derive_tte, t, endpoint)
    responder_frames: list[pd.DataFrame] = []
    pct_frames: list[pd.DataFrame] = []
    doubts_by_fit: dict[tuple[str, str], list[str]] = {}
    ps_messages: set[str] = set()
    for (indication, site), u in _groups(units, opts["by_body_site"]):
        u = u.reset_index(drop=True)
        base = {
            "source": "registry",
            "study_id": study["study_id"],
            "design": str(study["design"]),
            "indication": indication,
            "body_site": site,
        }
        levels = [reference, *_comparisons(u["modality"], reference)]
        counts = u["modality"].value_counts()
        levels = [lv for lv in levels if counts.get(lv, 0) >= 5]
        if len(levels) < 2 or levels[0] != reference:
            continue
        # one propensity model per combination vs the reference (pairwise), or one for all
        fits = (
            [(combo, [reference, combo]) for combo in levels[1:]]
            if opts["ps_model"] == "pairwise"
            else [("all", levels)]
        )
        for fit, fit_levels in fits:
            u_fit = u.loc[u["modality"].isin(fit_levels)].reset_index(drop=True)
            doubts, messages = _registry_fit(
                t,
                col,
                opts,
                base,
                u_fit,
                fit,
                fit_levels,
                has_gais,
                (tte_all, tte_notes, endpoint),
                (balance, weight_tables, responder_frames, pct_frames),
            )
            doubts_by_fit[(str(indication), fit)] = doubts
            ps_messages.update(messages)

    # treatment-by-indication interaction
    start = len(col.rows)
    if responder_frames:
        _interaction(col, pd.concat(responder_frames, ignore_index=True), "responder", study, opts)
    if pct_frames:
        _interaction(col, pd.concat(pct_frames, ignore_index=True), "pct_improvement", study, opts)
    for row in col.rows[start:]:
        combo = str(row["comparison"]).split(" vs ")[0]
        covered = [
            (i, f) for i, f in doubts_by_fit if i in str(row["indication"]) and f in (combo, "all")
        ]
        ps = [f"{d} ({i})" for i, f in covered for d in doubts_by_fit[(i, f)]]
        _mark_row(row, ps, ps_messages, None, None, opts)


def _registry_fit(
    t: Mapping[str, pd.DataFrame],
    col: _Collector,
    opts: Mapping[str, Any],
    base: dict[str, Any],
    u: pd.DataFrame,
    fit: str,
    levels: list[str],
    has_gais: bool,
    tte_inputs: tuple[pd.DataFrame | None, list[str], Any],
    frames: tuple[list[pd.DataFrame], ...],
) -> tuple[list[str], list[str]]:
    """One propensity model (of ``levels``' units of one indication) and every outcome it
    weights; returns the weights' doubts and the propensity model's messages.

    ``fit`` is the combination of a pairwise model, or ``"all"`` for one multinomial model;
    the responder and percent-improvement frames carry it (``ps_fit``) for the interaction.
    """
    from outcomes.models.propensity import propensity_weights, weighted_effect

    level = opts["level"]
    reference = opts["reference"]
    indication, site = base["indication"], base["body_site"]
    tte_all, tte_notes, endpoint = tte_inputs
    balance, weight_tables, responder_frames, pct_frames = frames
    treated = u["modality"].value_counts()
    start = len(col.rows)
    inst = _primary_instrument(t, indication)
    covariates = ["phototype_num", "site_id"]
    confounder_note = []
    if inst is not None:
        scores = _instrument_scores(t, inst)
        pre = scores.merge(u[["unit_id", "first_session_day"]], on="unit_id")
        pre = pre.loc[pre["day"] <= pre["first_session_day"]].sort_values("day")
        u = u.merge(
            pre.groupby("unit_id")["value"].last().rename("baseline_score"),
            on="unit_id",
            how="left",
        )
        covariates.insert(1, "baseline_score")
        u = u.loc[u["baseline_score"].notna()].reset_index(drop=True)
    else:
        confounder_note = [
            f"no baseline severity is recorded for {indication}: the weights adjust for "
            "phototype and clinic only"
        ]
    try:
        pw, ps_notes = col.run(
            propensity_weights,
            u,
            "modality",
            covariates,
            estimand=opts["estimand"],
            reference=reference,
            stabilize=True,
            trim=opts["trim"],
        )
    except (InputError, ModelError, np.linalg.LinAlgError) as exc:
        col.failed({**base, "outcome": "all", "adjustment": "weighted"}, "propensity", exc)
        return [], []
    w = pw.weights.to_numpy()
    u["weight"] = w
    bal = pw.balance(comparisons="reference")
    bal.insert(0, "body_site", site)
    bal.insert(0, "indication", indication)
    bal.insert(0, "study_id", base["study_id"])
    balance.append(bal)
    ws = pw.summary.rename(columns={"modality": "modality"})
    ws.insert(0, "body_site", site)
    ws.insert(0, "indication", indication)
    ws.insert(0, "comparison", "all" if fit == "all" else f"{fit} vs {reference}")
    ws.insert(0, "study_id", base["study_id"])
    weight_tables.append(ws)
    adj_notes = [*ps_notes, *confounder_note]
    ps_doubts = _ps_doubts(pw.diagnostics, bal)
    weight_label = (
        "overlap weights"
        if opts["estimand"] == "overlap"
        else "stabilised inverse-probability weights (ATE)"
    )
    model_label = (
        "a multinomial propensity model"
        if fit == "all"
        else f"a logistic propensity model of {fit} vs {reference}"
    )
    ps_text = f"{weight_label} from {model_label} on " + ", ".join(
        c.replace("_num", "") for c in covariates
    )
    comps = {lv: f"{lv} vs {reference}" for lv in levels[1:]}

    # (a) percent improvement at the primary visit
    if inst is not None:
        visit = _at_primary_visit(scores, u, opts["primary_day"], opts["window"]).merge(
            u, on="unit_id"
        )
        visit["pct_improvement"] = _pct_improvement(visit["value"], visit["base"], inst)
        visit = visit.loc[visit["pct_improvement"].notna()].reset_index(drop=True)
        pct_frames.append(visit.assign(ps_fit=fit))
        defn = (
            f"percent improvement on {inst} at the visit nearest day "
            f"{opts['primary_day']:g} (days {opts['window'][0]:g}-{opts['window'][1]:g})"
        )
        for adjustment, weights in (("naive", None), ("weighted", "weight")):
            method = "linear model, cluster-robust SE by clinic (t, clusters - 1 df)"
            if weights:
                method = f"{ps_text}; weighted " + method
            try:
                we, notes = col.run(
                    weighted_effect,
                    visit,
                    "pct_improvement",
                    "modality",
                    weights,
                    cluster="site_id",
                    reference=reference,
                    level=level,
                )
            except (InputError, ModelError, np.linalg.LinAlgError) as exc:
                col.failed({**base, "outcome": "pct_improvement"}, "mean difference", exc)
                continue
            for _, s in we.summary.iterrows():
                col.add(
                    {
                        **base,
                        "outcome": "pct_improvement",
                        "measure": "mean_difference",
                        "comparison": s["term"],
                        "adjustment": adjustment,
                        "definition": defn,
                        "method": method,
                    },
                    [*notes, *(adj_notes if weights else [])],
                    **{k: float(s[k]) for k in _TIDY_NUM},
                    n=float(visit["modality"].isin([reference, s["term"].split(" vs ")[0]]).sum()),
                    n_clusters=float(s["n_clusters"]),
                )

    # (b) responders at the primary visit
    resp = _registry_responders(t, u, inst, has_gais, opts)
    if resp is not None:
        data, defn = resp
        responder_frames.append(data.assign(ps_fit=fit))
        for adjustment in ("naive", "weighted"):
            _registry_glm(
                col,
                data,
                "responder",
                "binomial",
                levels,
                adjustment,
                base,
                comps,
                defn,
                ps_text,
                adj_notes,
                level,
            )

    # (c) time to result
    if tte_all is not None and endpoint is not None:
        tte = tte_all.merge(u[["unit_id", "modality", "weight"]], on="unit_id")
        tte = tte.loc[tte["time"] > 0].reset_index(drop=True)
        defn = _endpoint_label(endpoint) + " (units with follow-up after the first session)"
        for adjustment in ("naive", "weighted"):
            tte_weights = tte["weight"].to_numpy() if adjustment == "weighted" else None
            method = "Cox (Efron ties), robust SE clustered by clinic"
            if tte_weights is not None:
                method = f"{ps_text}; weighted " + method + " (lifelines)"
            r = {
                **base,
                "outcome": "time_to_result",
                "measure": "hazard_ratio",
                "adjustment": adjustment,
                "definition": defn,
                "method": method,
            }
            # one model per indication with every modality that has events
            events = tte.groupby("modality")["event"].sum().reindex(levels).fillna(0)
            fitted = [lv for lv in levels if events[lv] > 0]
            d = tte.loc[tte["modality"].isin(fitted)].reset_index(drop=True)
            beta = se = None
            cox_notes: list[str] = []
            if reference in fitted and len(fitted) > 1:
                try:
                    if tte_weights is None:
                        (beta, se, g), cox_notes = col.run(_naive_cox, d, fitted, level)
                    else:
                        (beta, se, g), cox_notes = col.run(
                            _weighted_cox, d, fitted, d["weight"].to_numpy(), "site_id"
                        )
                except Exception as exc:  # lifelines raises its own convergence errors
                    for lv in levels[1:]:
                        col.failed({**r, "comparison": comps[lv]}, "hazard ratio", exc)
                    continue
            for lv in levels[1:]:
                row = {**r, "comparison": comps[lv]}
                extra = list(adj_notes) if tte_weights is not None else []
                n = float(tte["modality"].isin([reference, lv]).sum())
                pair = (events[lv], events[reference])
                if beta is None or se is None or lv not in fitted:
                    empty = lv if pair[0] == 0 else reference
                    col.add(
                        row,
                        [f"no events with {empty}: the hazard ratio is not estimable", *extra],
                        n=n,
                    )
                    continue
                if min(pair) < 5:
                    extra.append(f"few events ({pair[0]:.0f} vs {pair[1]:.0f})")
                col.add(
                    row,
                    [*tte_notes, *cox_notes, *extra],
                    **_ratio_values(beta[lv], se[lv], np.nan, level),
                    n=n,
                    n_clusters=float(g),
                )

    # (d) adverse events per unit
    for outcome in opts["ae_outcomes"]:
        u[f"ae_{outcome}"] = _ae_flags(t, u, outcome).to_numpy()
        _registry_ae(col, u, outcome, levels, base, comps, ps_text, adj_notes, level)

    with_baseline = u["modality"].value_counts()
    for row in col.rows[start:]:
        _mark_row(row, ps_doubts, set(ps_notes), treated, with_baseline, opts)
    return ps_doubts, list(ps_notes)


def _ps_doubts(diagnostics: pd.DataFrame, balance: pd.DataFrame) -> list[str]:
    """Why the weights of one propensity model are doubtful, in plain words (empty if not)."""
    from outcomes.models.propensity import SMD_THRESHOLD

    found = set(diagnostics["code"]) if len(diagnostics) else set()
    doubts = [text for code, text in PS_DOUBTS.items() if code in found]
    worst = float(balance["smd_weighted"].abs().max()) if len(balance) else 0.0
    if worst > SMD_THRESHOLD:
        doubts.append(f"imbalance after weighting (largest |SMD| {worst:.2f})")
    return doubts


def _mark_row(
    row: dict[str, Any],
    ps_doubts: list[str],
    ps_messages: set[str],
    treated: pd.Series | None,
    with_baseline: pd.Series | None,
    opts: Mapping[str, Any],
) -> None:
    """Fill a registry row's ``doubt`` and ``missing_data`` columns.

    ``doubt``: the propensity model's problems (weighted rows) and the outcome model's own
    non-convergence, singular fit or separation. ``missing_data``: complete cases, with how
    many treated areas of the two modalities (``treated``; ``with_baseline`` of them with a
    baseline score) were left out and why.
    """
    own = [m for m in str(row["warning"]).split(" | ") if m and m not in ps_messages]
    doubts = list(ps_doubts) if row["adjustment"] == "weighted" else []
    doubts += [text for word, text in MODEL_DOUBTS.items() if any(word in m.lower() for m in own)]
    row["doubt"] = "; ".join(dict.fromkeys(doubts))
    n = row["n"]
    if not np.isfinite(n):
        return
    if treated is None or with_baseline is None or " vs " not in str(row["comparison"]):
        row["missing_data"] = f"complete cases: {n:.0f} treated areas analysed"
        return
    pair = str(row["comparison"]).split(" vs ")
    total = int(treated.reindex(pair).fillna(0).sum())
    based = int(with_baseline.reindex(pair).fillna(0).sum())
    window = f"days {opts['window'][0]:g}-{opts['window'][1]:g}"
    reasons = [f"{total - based} without a baseline score"] if total > based else []
    if row["outcome"] == "time_to_result":
        gone = "without follow-up after the first session"
        tail = "; follow-up ending before a result is censored"
    elif str(row["outcome"]).startswith("ae_"):
        gone, tail = "", "; areas without a reported event count as without one"
    else:
        gone, tail = f"without an assessment in {window}", ""
    if based > n and gone:
        reasons.append(f"{based - n:.0f} {gone}")
    left = f"; left out: {', '.join(reasons)}" if reasons else ""
    row["missing_data"] = f"complete cases: {n:.0f} of {total} treated areas analysed{left}{tail}"


def _registry_responders(
    t: Mapping[str, pd.DataFrame],
    u: pd.DataFrame,
    inst: str | None,
    has_gais: bool,
    opts: Mapping[str, Any],
) -> tuple[pd.DataFrame, str] | None:
    """Responders at the primary visit: GAIS <= 2 when GAIS is recorded (one definition for
    every indication), else percent improvement >= threshold on the primary instrument."""
    window = f"at the visit nearest day {opts['primary_day']:g} (days {opts['window'][0]:g}-" + (
        f"{opts['window'][1]:g})"
    )
    if has_gais:
        g = _instrument_scores(t, "gais")
        g = g.loc[g["unit_id"].isin(set(u["unit_id"]))]
        visit = g.loc[(g["day"] >= opts["window"][0]) & (g["day"] <= opts["window"][1])].copy()
        visit["distance"] = (visit["day"] - opts["primary_day"]).abs()
        visit = visit.sort_values(["unit_id", "distance", "day"]).groupby("unit_id").first()
        visit = visit.reset_index().merge(u, on="unit_id")
        visit["responder"] = (visit["value"] <= 2).astype(float)
        return visit, f"GAIS <= 2 (much improved or better) {window}"
    if inst is None:
        return None
    visit = _at_primary_visit(_instrument_scores(t, inst), u, opts["primary_day"], opts["window"])
    visit = visit.merge(u, on="unit_id")
    pct = _pct_improvement(visit["value"], visit["base"], inst)
    visit["responder"] = (pct >= opts["responder_threshold"]).astype(float)
    return visit.loc[
        pct.notna()
    ], f">= {opts['responder_threshold']:g}% improvement on {inst} {window}"


def _interaction(
    col: _Collector,
    data: pd.DataFrame,
    outcome: str,
    study: pd.Series,
    opts: Mapping[str, Any],
) -> None:
    """Treatment-by-indication interaction, one saturated model per combination.

    For each combination, the units of that combination and of the reference in the
    indications where the comparison is estimable are fitted with ``modality * indication``
    terms (logistic for responders, linear for percent improvement), naive and weighted, with
    clinic-clustered sandwich covariance. Rows: the ratio of odds ratios (difference of mean
    differences) of each indication against the reference indication (acne scars when
    present), and a Wald chi-square test that the effect is the same in every indication.
    """
    reference = opts["reference"]
    level = opts["level"]
    binary = outcome == "responder"
    measure = "ratio_of_odds_ratios" if binary else "difference_in_mean_differences"
    base = {
        "source": "registry",
        "study_id": study["study_id"],
        "design": str(study["design"]),
        "body_site": "all",
        "outcome": outcome,
    }
    for combo in _comparisons(data["modality"], reference):
        comp = f"{combo} vs {reference}"
        # the units and weights of this combination's propensity model (or the joint one)
        pair = data["modality"].isin([reference, combo])
        d = data.loc[pair & data["ps_fit"].isin([combo, "all"])]
        skipped: list[str] = []
        keep: list[str] = []
        for ind_key, sub in d.groupby("indication", sort=True):
            ind = str(ind_key)
            y = sub[outcome].to_numpy(float)
            why = _degenerate(y, sub["modality"], [reference, combo], True) if binary else ""
            if set(sub["modality"]) != {reference, combo}:
                why = "one of the two modalities is absent"
            if why:
                skipped.append(f"{ind} left out ({why})")
            else:
                keep.append(ind)
        if len(keep) < 2:
            continue
        ref_ind = "acne_scars" if "acne_scars" in keep else keep[0]
        inds = [ref_ind, *[i for i in keep if i != ref_ind]]
        d = d.loc[d["indication"].isin(inds)].reset_index(drop=True)
        m = _dummies(d["modality"], [reference, combo], "m:")[f"m:{combo}"]
        ind_d = _dummies(d["indication"], inds, "i:")
        inter = pd.DataFrame({i: m * ind_d[f"i:{i}"] for i in inds[1:]})
        x = pd.concat([pd.Series(1.0, index=d.index, name="const"), m, ind_d, inter], axis=1)
        y = d[outcome].to_numpy(float)
        for adjustment in ("naive", "weighted"):
            weights = d["weight"].to_numpy() if adjustment == "weighted" else None
            model = "logistic" if binary else "linear"
            method = (
                f"{model} model of {reference} and {combo} with modality x indication terms, "
                "cluster-robust SE by clinic"
                + (
                    (
                        "; propensity weights from each indication's model"
                        + (f" of {combo} vs {reference}" if opts["ps_model"] == "pairwise" else "")
                    )
                    if weights is not None
                    else ""
                )
            )
            try:
                if binary:
                    (params, cov, g), notes = col.run(
                        _glm_cluster, y, x, "binomial", weights, d["site_id"].to_numpy()
                    )
                else:
                    (params, cov, g), notes = col.run(
                        _ols_cluster, y, x, weights, d["site_id"].to_numpy()
                    )
            except (ModelError, ValueError, np.linalg.LinAlgError) as exc:
                col.failed(
                    {
                        **base,
                        "indication": "all",
                        "comparison": comp,
                        "adjustment": adjustment,
                        "measure": "interaction_wald",
                    },
                    "interaction test",
                    exc,
                )
                continue
            notes = [*notes, *skipped]
            for ind in inds[1:]:
                est, se = float(params[ind]), float(np.sqrt(cov.loc[ind, ind]))
                values = (
                    _ratio_values(est, se, g - 1.0, level)
                    if binary
                    else _diff_values(est, se, g - 1.0, level)
                )
                col.add(
                    {
                        **base,
                        "indication": f"{ind} vs {ref_ind}",
                        "measure": measure,
                        "comparison": comp,
                        "adjustment": adjustment,
                        "definition": f"{combo} effect in {ind} relative to {ref_ind}",
                        "method": method + " (t, clusters - 1 df)",
                    },
                    notes,
                    **values,
                    n=float(d["indication"].isin([ref_ind, ind]).sum()),
                    n_clusters=float(g),
                )
            names = inds[1:]
            b = params[names].to_numpy()
            v = cov.loc[names, names].to_numpy()
            q = len(names)
            extra = []
            if q > g - 1:
                extra.append(
                    f"{q} interaction terms but only {g} clinics: the cluster-robust covariance "
                    "is rank-deficient and the test unreliable"
                )
            try:
                chi2 = float(b @ np.linalg.solve(v, b))
            except np.linalg.LinAlgError:
                chi2 = np.nan
                extra.append("singular covariance of the interaction terms")
            col.add(
                {
                    **base,
                    "indication": "all (" + ", ".join(inds) + ")",
                    "measure": "interaction_wald",
                    "comparison": comp,
                    "adjustment": adjustment,
                    "definition": f"{combo} effect on {outcome} the same in every indication",
                    "method": method + " (Wald chi-square)",
                },
                [*notes, *extra],
                statistic=chi2,
                df=float(q),
                p_value=float(stats.chi2.sf(chi2, q)) if np.isfinite(chi2) else np.nan,
                n=float(len(d)),
                n_clusters=float(g),
            )
