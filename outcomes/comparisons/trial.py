"""Trials (split-face and parallel).

Percent improvement, responders, GEE and mixed-model effects, time to result, adverse events.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from outcomes.comparisons.adverse_events import _trial_ae
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
    _subset,
    _unit_frame,
)
from outcomes.comparisons.effects import _TIDY_NUM, _contrast_row, _degenerate
from outcomes.comparisons.table import CONTROLS, GRADE_INSTRUMENT, _Collector, _ratio_values
from outcomes.errors import InputError, ModelError

# --------------------------------------------------------------------------------------------
# trials
# --------------------------------------------------------------------------------------------


def _trial(
    t: Mapping[str, pd.DataFrame], study: pd.Series, col: _Collector, opts: Mapping[str, Any]
) -> None:
    from outcomes.derive.tte import derive_tte
    from outcomes.models.survival.cox import cox

    design = str(study["design"])
    split = design == "split_body"
    level = opts["level"]
    units = _unit_frame(t)
    controls = [m for m in CONTROLS if m in set(units["modality"])]
    if not controls:
        col.note(
            f"study {study['study_id']}: no microneedling-alone arm ({', '.join(CONTROLS)});"
            " not compared"
        )
        return
    control = controls[0]
    for (indication, site), u_ind in _groups(units, opts["by_body_site"]):
        base = {
            "source": "trial",
            "study_id": study["study_id"],
            "design": design,
            "indication": indication,
            "body_site": site,
            "adjustment": "randomised",
        }
        for combo in _comparisons(u_ind["modality"], control):
            u = u_ind.loc[u_ind["modality"].isin([control, combo])].copy()
            u["arm"] = np.where(u["modality"] == combo, 1.0, 0.0)
            comp = f"{combo} vs {control}"
            row = {**base, "comparison": comp}
            n_subj = u["subject_id"].nunique()
            inst = _primary_instrument(t, indication)
            primary_day = opts["primary_day"]
            # (a) mixed model contrast at the primary visit
            if inst is not None:
                scores = _instrument_scores(t, inst).merge(
                    u[["unit_id", "subject_id", "arm", "first_session_day"]], on="unit_id"
                )
                scores["week"] = scores["day"] / 7.0
                at_week = primary_day / 7.0
                last_day = float(scores["day"].max())
                r = {
                    **row,
                    "outcome": inst,
                    "measure": "mean_difference",
                    "definition": (
                        f"{inst} score at day {primary_day:g} (combination minus control; "
                        "negative favours the combination on a higher-is-worse scale)"
                    ),
                    "method": (
                        f"lmm {inst} ~ week * arm, random intercept and week slope by subject"
                        + (", side nested in subject" if split else "")
                        + f"; emmeans contrast at week {at_week:g}, Satterthwaite df"
                    ),
                }
                if primary_day > last_day:
                    col.add(
                        r,
                        [
                            f"primary day {primary_day:g} is after the last {inst} visit (day "
                            f"{last_day:g}): not extrapolated; choose primary_day within follow-up"
                        ],
                        n=float(u["unit_id"].nunique()),
                    )
                else:
                    _trial_lmm(col, r, scores, split, at_week, comp, level, u, n_subj)

                # (b) responders at the primary visit
                visit = _at_primary_visit(
                    _instrument_scores(t, inst), u, primary_day, opts["window"]
                ).merge(u[["unit_id", "subject_id", "arm"]], on="unit_id")
                visit["responder"] = (
                    _pct_improvement(visit["value"], visit["base"], inst)
                    >= opts["responder_threshold"]
                ).astype(float)
                r = {
                    **row,
                    "outcome": "responder",
                    "measure": "odds_ratio",
                    "definition": (
                        f">= {opts['responder_threshold']:g}% improvement on {inst} at the visit "
                        f"nearest day {primary_day:g} (days {opts['window'][0]:g}-"
                        f"{opts['window'][1]:g})"
                    ),
                    "method": (
                        "GEE logistic, exchangeable working correlation, robust SE clustered "
                        "by subject; marginal (population-averaged) odds ratio"
                    ),
                }
                why = (
                    "no assessment in the window"
                    if visit.empty
                    else _degenerate(
                        visit["responder"].to_numpy(),
                        visit["arm"].map({1.0: combo, 0.0: control}),
                        [control, combo],
                        binary=True,
                    )
                )
                if why:
                    col.add(r, [f"responder odds ratio not estimated: {why}"], n=float(len(visit)))
                elif opts["responder_model"] == "glmm":
                    r["method"] = (
                        "GLMM logistic (Laplace), random intercept by subject; conditional "
                        "(subject-specific) odds ratio"
                    )
                    _trial_glmm(col, r, visit, level)
                else:
                    _trial_gee(col, r, visit, level)

            # (b2) qualitative grade: cumulative-logit mixed model
            if opts["grade_model"] == "clmm" and indication == "acne_scars":
                _trial_clmm(col, row, t, u, split, primary_day, level)

            # (c) time to result
            endpoint = _endpoint(t)
            if endpoint is not None:
                r = {
                    **row,
                    "outcome": "time_to_result",
                    "measure": "hazard_ratio",
                    "definition": _endpoint_label(endpoint),
                    "method": "Cox (Efron ties)"
                    + (", robust SE clustered by subject" if split else ""),
                }
                try:
                    tte, notes1 = col.run(derive_tte, _subset(t, u["unit_id"]), endpoint)
                    tte = tte.merge(u[["unit_id", "arm"]].rename(columns={"arm": "treated"}))
                    fit, notes2 = col.run(
                        cox,
                        tte,
                        "treated",
                        cluster="subject_id" if split else None,
                        conf_level=level,
                    )
                    c = fit.table.iloc[0]
                    col.add(
                        r,
                        [*notes1, *notes2],
                        **_ratio_values(c["estimate"], c["std_error"], np.nan, level),
                        n=float(fit.n),
                        n_clusters=float(tte["subject_id"].nunique()),
                    )
                except (InputError, ModelError, np.linalg.LinAlgError) as exc:
                    col.failed(r, "time-to-result hazard ratio", exc)

            # (d) adverse events per unit
            for outcome in opts["ae_outcomes"]:
                u[outcome] = _ae_flags(t, u, outcome).to_numpy()
                _trial_ae(u, outcome, row, split, col, level)


def _trial_gee(col: _Collector, r: Mapping[str, Any], visit: pd.DataFrame, level: float) -> None:
    """GEE logistic model of responders on arm, clusters = subjects."""
    from outcomes.models.gee import gee

    try:
        g, notes = col.run(gee, visit, "responder ~ arm", groups="subject_id", level=level)
    except (InputError, ModelError, ValueError, np.linalg.LinAlgError) as exc:
        col.failed(r, "responder odds ratio", exc)
        return
    c = g.coefficients.set_index("term").loc["arm"]
    col.add(
        r,
        notes,
        **_ratio_values(c["estimate"], c["std_error"], np.nan, level),
        n=float(len(visit)),
        n_clusters=float(visit["subject_id"].nunique()),
    )


def _trial_glmm(col: _Collector, r: Mapping[str, Any], visit: pd.DataFrame, level: float) -> None:
    """Binomial GLMM of responders on arm with a random intercept per subject."""
    from outcomes.models.glmm.glmm import glmm

    try:
        g, notes = col.run(
            glmm, visit, "responder ~ arm", groups="subject_id", family="binomial", level=level
        )
    except (InputError, ModelError, np.linalg.LinAlgError) as exc:
        col.failed(r, "responder odds ratio", exc)
        return
    c = g.fixed.set_index("term").loc["arm"]
    col.add(
        r,
        notes,
        **_ratio_values(c["estimate"], c["std_error"], np.nan, level),
        n=float(len(visit)),
        n_clusters=float(visit["subject_id"].nunique()),
    )


def _trial_clmm(
    col: _Collector,
    row: Mapping[str, Any],
    t: Mapping[str, pd.DataFrame],
    u: pd.DataFrame,
    split: bool,
    primary_day: float,
    level: float,
) -> None:
    """Cumulative odds ratio of a higher ``gb_qual`` grade at the primary visit (CLMM)."""
    from outcomes.models.glmm.clmm import clmm

    grades = _instrument_scores(t, GRADE_INSTRUMENT).merge(
        u[["unit_id", "subject_id", "arm", "modality"]], on="unit_id"
    )
    if grades.empty:
        return
    at_week = primary_day / 7.0
    r = {
        **row,
        "outcome": GRADE_INSTRUMENT,
        "measure": "odds_ratio",
        "definition": (
            f"cumulative odds of a higher (worse) {GRADE_INSTRUMENT} grade at day "
            f"{primary_day:g}, combination vs control (below 1 favours the combination)"
        ),
        "method": (
            f"CLMM (cumulative logit, Laplace) {GRADE_INSTRUMENT} ~ week * arm, random "
            "intercept by subject"
            + (", side nested in subject" if split else "")
            + f"; conditional (subject-specific) odds ratio at week {at_week:g}"
        ),
    }
    if primary_day > float(grades["day"].max()):
        col.add(r, [f"primary day {primary_day:g} is after the last {GRADE_INSTRUMENT} visit"])
        return
    grades["grade"] = grades["value"].round().astype(int)
    grades["week"] = grades["day"] / 7.0
    control, combo = (str(grades.loc[grades["arm"] == a, "modality"].iloc[0]) for a in (0.0, 1.0))
    grades["arm"] = pd.Categorical(grades["modality"].astype(str), categories=[control, combo])
    try:
        fit, notes = col.run(
            clmm,
            grades,
            "grade ~ week * arm",
            groups="subject_id",
            nested="unit_id" if split else None,
            level=level,
        )
        ors = fit.odds_ratios("arm", at={"week": at_week}, ref=control)
    except (InputError, ModelError, np.linalg.LinAlgError) as exc:
        col.failed(r, "grade odds ratio", exc)
        return
    c = ors.loc[ors["type"] == "conditional"].iloc[0]
    col.add(
        r,
        notes,
        **_ratio_values(np.log(c["estimate"]), c["std_error"], np.nan, level),
        n=float(grades["unit_id"].nunique()),
        n_clusters=float(grades["subject_id"].nunique()),
    )


def _trial_lmm(
    col: _Collector,
    r: Mapping[str, Any],
    scores: pd.DataFrame,
    split: bool,
    at_week: float,
    comp: str,
    level: float,
    u: pd.DataFrame,
    n_subj: int,
) -> None:
    """Mixed model ``value ~ week * arm`` and its arm contrast at ``at_week``."""
    from outcomes.models.lmm.fit import lmm

    try:
        fit, notes = col.run(
            lmm,
            scores,
            "value ~ week * arm",
            groups="subject_id",
            re_formula="~week",
            nested="unit_id" if split else None,
            level=level,
        )
        con = fit.test(_contrast_row(fit, at_week), terms=[comp], level=level).iloc[0]
    except (InputError, ModelError, np.linalg.LinAlgError) as exc:
        col.failed(r, "mixed-model contrast", exc)
        return
    col.add(
        r,
        notes,
        **{k: float(con[k]) for k in _TIDY_NUM},
        n=float(u["unit_id"].nunique()),
        n_clusters=float(n_subj),
    )
