"""Simulated observational registries, confounded by construction: :func:`simulate_registry`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from statistics import NormalDist

import numpy as np
import pandas as pd

from outcomes.data.dictionary import load_dictionary
from outcomes.errors import InputError
from outcomes.simulate.calibration import (
    AE_DEFAULTS,
    BODY_SITES,
    CALIBRATION,
    CHOICE_MODEL,
    DECLINE_RATE,
    DECLINE_START_MEAN_EXTRA,
    DECLINE_START_MIN,
    GAIS_CUTS,
    INDICATION_MIX,
    MU_INDICATION,
    OUTCOME_MODEL,
    PAIN_MEAN,
    PHOTOTYPES,
    PIH_RR,
    PRIMARY_INSTRUMENT,
    REGISTRY_EFFECTS,
    REGISTRY_MODALITIES,
    REGISTRY_VISITS,
    SEVERE_ERYTHEMA_OR,
    VISIT_JITTER_MAX,
    VISIT_JITTER_SD,
    _calibration_truth,
)
from outcomes.simulate.output import Feeds
from outcomes.simulate.parts import (
    _adverse_events,
    _ae_table,
    _assessment_table,
    _choice,
    _draw_categories,
    _frame,
    _ids,
    _part,
    _plain,
    _session_settings,
)

__all__ = ["simulate_registry"]


def _plateau(day: np.ndarray, plateau_day: float) -> np.ndarray:
    """Share of the final improvement reached by ``day``: rises, then flat from plateau_day."""
    return 1.0 - (1.0 - np.minimum(day, plateau_day) / plateau_day) ** 2


def simulate_registry(
    seed: int = 2,
    n_subjects: int = 2000,
    n_clinics: int = 12,
    *,
    effects: Mapping[str, float] | None = None,
    loss_to_follow_up: float = CALIBRATION["dropout"].value,
    p_lose_response: float = 0.5,
    study_id: str = "REG1",
    start_year: int = 2020,
) -> Feeds:
    """Simulate an observational registry with confounded treatment choice and known effects.

    Clinicians choose MN, MN+PRP, MN+RF or MN+laser through a multinomial logistic model of
    baseline severity, phototype and clinic preference; the same variables (and a clinic
    effect) drive the outcome, so a naive comparison is biased while an analysis adjusted for
    ``phototype``, ``baseline_severity`` and ``site_id`` is not. The effect of each
    combination vs MN on the percent improvement at day 168 is the same for everyone.

    Parameters
    ----------
    seed
        Seed of ``numpy.random.SeedSequence``; the same seed gives the same feeds.
    n_subjects
        Number of subjects (one treated unit each). About 100,000 subjects give about a
        million assessment rows.
    n_clinics
        Number of clinics (``site_id`` C01, C02, ...).
    effects
        True effects in percentage points of improvement vs MN for ``"MN+PRP"``, ``"MN+RF"``
        and ``"MN+laser"``; defaults: MN+PRP the calibrated trial difference (+12.5), MN+RF
        +6 and MN+laser +9 (simulation choices: no published target).
    loss_to_follow_up
        Probability of loss to follow-up at a uniform time during follow-up.
    p_lose_response
        Probability that a responder (true improvement >= 50%) later loses the response.
    study_id, start_year
        Written to the ``studies`` table.

    Returns
    -------
    Feeds
        The six tables and the truth (``truth.json`` keys: see the module documentation).

    Examples
    --------
    >>> feeds = simulate_registry(seed=2, n_subjects=200)
    >>> feeds.truth["effects"]["MN+PRP"]
    12.5
    >>> feeds.truth["confounders"]
    ['phototype', 'baseline_severity', 'site_id']
    """
    d = load_dictionary()
    n = int(n_subjects)
    if n < 1:
        raise InputError(f"n_subjects={n_subjects}: simulate at least 1 subject")
    if not 1 <= int(n_clinics) <= 999:
        raise InputError(f"n_clinics={n_clinics}: use 1 to 999 clinics")
    eff = dict(REGISTRY_EFFECTS)
    if effects is not None:
        unknown = set(effects) - set(eff)
        if unknown:
            raise InputError(f"effects for {sorted(unknown)}: only {sorted(eff)} vs MN")
        eff.update({k: float(v) for k, v in effects.items()})
    for name, p in (("loss_to_follow_up", loss_to_follow_up), ("p_lose_response", p_lose_response)):
        if not 0.0 <= p <= 1.0:
            raise InputError(f"{name}={p}: a probability in [0, 1]")

    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(8)]
    r_subj, r_choice, r_out, r_visit, r_sess, r_ae, r_pro, r_dur = streams
    n_c = int(n_clinics)
    clinic_ids = _ids("C", n_c, 2)

    # subjects: clinic, phototype (clinic mix varies), indication, body site, age, sex
    clinic_w = r_subj.gamma(4.0, size=n_c)
    clinic = r_subj.choice(n_c, size=n, p=clinic_w / clinic_w.sum())
    photo_shift_sd = 0.6
    photo_shift = photo_shift_sd * r_subj.standard_normal(n_c)
    photo_probs = np.array([0.05, 0.2, 0.3, 0.25, 0.15, 0.05])
    cuts = np.array([NormalDist().inv_cdf(q) for q in np.cumsum(photo_probs)[:-1]])
    cuts *= math.sqrt(1 + photo_shift_sd**2)
    photo = np.searchsorted(cuts, photo_shift[clinic] + r_subj.standard_normal(n))  # 0..5
    photo_num = photo + 1
    indication = _choice(r_subj, INDICATION_MIX, n)
    body_site = np.empty(n, dtype=object)
    age = np.empty(n, dtype=np.int64)
    female = np.empty(n, dtype=bool)
    age_range = {
        "acne_scars": (18, 46),
        "wrinkles": (35, 76),
        "enlarged_pores": (20, 56),
        "pigmentation": (25, 61),
        "striae": (18, 51),
    }
    severity = r_subj.standard_normal(n)
    baseline = np.full(n, np.nan)
    for ind in INDICATION_MIX:
        m = indication == ind
        k = int(m.sum())
        body_site[m] = _choice(r_subj, BODY_SITES[ind], k)
        age[m] = r_subj.integers(*age_range[ind], size=k)
        female[m] = r_subj.random(k) < (0.9 if ind == "striae" else 0.8)
        spec = PRIMARY_INSTRUMENT.get(ind)
        if spec is not None:  # severity observed through the baseline score
            y0 = np.clip(
                np.round(spec["centre"] + spec["scale"] * severity[m], spec["decimals"]),
                spec["low"],
                spec["high"],
            )
            baseline[m] = y0
            severity[m] = (y0 - spec["centre"]) / spec["scale"]

    # treatment choice: multinomial logit (reference MN)
    combos = REGISTRY_MODALITIES[1:]
    pref = CHOICE_MODEL["clinic_preference_sd"] * r_choice.standard_normal((n_c, 3))
    eta = np.zeros((n, 4))
    for col, m in enumerate(combos):
        eta[:, col + 1] = (
            CHOICE_MODEL["intercept"][m]
            + CHOICE_MODEL["severity_z"][m] * severity
            + CHOICE_MODEL["phototype"][m] * (photo_num - 3)
            + pref[clinic, col]
        )
    probs = np.exp(eta - eta.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    mod_idx = _draw_categories(r_choice, probs)
    modality = np.array(REGISTRY_MODALITIES, dtype=object)[mod_idx]

    # outcome: final percent improvement (homogeneous effects)
    om = OUTCOME_MODEL
    clinic_eff = om["clinic_sd"] * r_out.standard_normal(n_c)
    eff_vec = np.array([0.0] + [eff[m] for m in combos])
    mu = pd.Series(indication).map(MU_INDICATION).to_numpy(dtype=float)
    pct_final = (
        mu
        + eff_vec[mod_idx]
        + om["severity_z"] * severity
        + om["phototype"] * (photo_num - 3)
        + clinic_eff[clinic]
        + om["subject_sd"] * r_out.standard_normal(n)
    )

    # durability: some responders lose the response after day 200 (after the primary window)
    responder = pct_final >= 50.0
    loser = responder & (r_dur.random(n) < p_lose_response)
    decline_start = DECLINE_START_MIN + r_dur.exponential(DECLINE_START_MEAN_EXTRA, n)
    loss_day = np.round(decline_start + (pct_final - 50.0) / DECLINE_RATE, 3)

    # visits: jittered nominal days, 2-6 after baseline
    n_nom = len(REGISTRY_VISITS)
    nom = np.array([v[0] for v in REGISTRY_VISITS])
    vlab = np.array(["baseline"] + [v[1] for v in REGISTRY_VISITS], dtype=object)
    jit = np.clip(
        np.rint(r_visit.normal(0.0, VISIT_JITTER_SD, (n, n_nom))),
        -VISIT_JITTER_MAX,
        VISIT_JITTER_MAX,
    ).astype(np.int64)
    vday = nom[None, :] + jit
    keep = r_visit.random((n, n_nom)) < np.array([v[2] for v in REGISTRY_VISITS])[None, :]
    keep[:, 3] |= ~keep[:, 4:].any(axis=1)  # follow-up reaches at least month 6
    keep[keep.sum(axis=1) < 2, 2] = True
    keep[keep.all(axis=1), 1] = False
    planned_end = np.where(keep, vday, 0).max(axis=1)
    lost = r_visit.random(n) < loss_to_follow_up
    lost_day = np.where(lost, r_visit.uniform(20.0, planned_end.astype(float)), np.inf)

    # initial course: 3-5 sessions about 4 weeks apart
    n_init = r_sess.integers(3, 6, size=n)
    init_days = np.column_stack(
        [np.zeros(n, np.int64), np.cumsum(28 + r_sess.integers(-5, 6, (n, 4)), axis=1)]
    )
    init_done = (np.arange(5)[None, :] < n_init[:, None]) & (init_days < lost_day[:, None])

    # retreatment: after loss of response, or for non-responders after day 200
    retreat_day = np.where(
        loser,
        np.ceil(np.minimum(loss_day, 1e6)).astype(np.int64) + r_dur.integers(7, 46, n),
        r_dur.integers(200, 301, n),
    )
    wants = np.where(loser, r_dur.random(n) < 0.6, (pct_final < 25.0) & (r_dur.random(n) < 0.3))
    retreated = wants & (retreat_day <= planned_end) & (retreat_day < lost_day)
    n_re = r_dur.integers(1, 3, size=n)
    re_days = retreat_day[:, None] + np.array([0, 28])[None, :]
    re_done = retreated[:, None] & (np.arange(2)[None, :] < n_re[:, None])

    attended = (
        keep & (vday < lost_day[:, None]) & ~(retreated[:, None] & (vday >= retreat_day[:, None]))
    )
    sess_day = np.column_stack([init_days, re_days])
    sess_done = np.column_stack([init_done, re_done])
    last_contact = np.maximum(
        np.where(attended, vday, 0).max(axis=1), np.where(sess_done, sess_day, 0).max(axis=1)
    )
    end_reason = np.where(
        retreated, "retreated", np.where(lost, "lost_to_follow_up", "completed")
    ).astype(object)

    # assessments
    subject_ids = _ids("P", n, 5)
    unit_ids = np.array([f"{s}-U1" for s in subject_ids], dtype=object)
    inv = np.array([f"{c}-INV" for c in clinic_ids], dtype=object)[clinic]
    all_days = np.column_stack([np.zeros(n, np.int64), vday])
    all_att = np.column_stack([np.ones(n, bool), attended])
    pct_at = pct_final[:, None] * _plateau(all_days, om["plateau_day"]) - (loser * DECLINE_RATE)[
        :, None
    ] * np.clip(all_days - decline_start[:, None], 0.0, None)
    noise = r_out.standard_normal((n, n_nom + 1))
    noise[:, 0] = 0.0  # the baseline score is the reference, recorded as is
    parts = []
    for ind, spec in PRIMARY_INSTRUMENT.items():
        m = indication == ind
        inst = d.instruments[spec["instrument"]]
        y = baseline[m, None] * (1 - pct_at[m] / 100 + om["measurement_cv"] * noise[m])
        y = np.clip(np.round(y, spec["decimals"]), inst.low, inst.high)
        rows = np.flatnonzero(m)
        i, j = np.nonzero(all_att[m])
        parts.append(
            _part(
                rows[i],
                spec["instrument"],
                vlab[j],
                all_days[rows[i], j],
                y[i, j],
                "investigator",
                inv[rows[i]],
            )
        )
    gais_latent = pct_at + 8.0 * r_out.standard_normal((n, n_nom + 1))
    gais = 5 - sum((gais_latent >= c).astype(np.int64) for c in GAIS_CUTS)
    i, j = np.nonzero(all_att[:, 1:])
    parts.append(
        _part(i, "gais", vlab[j + 1], all_days[i, j + 1], gais[i, j + 1], "investigator", inv[i])
    )
    si, sj = np.nonzero(sess_done)
    snum = np.cumsum(sess_done, axis=1)[si, sj]
    smod = modality[si]
    pain_mean = pd.Series(smod).map(PAIN_MEAN).to_numpy(dtype=float)
    pain = np.round(
        np.clip(
            pain_mean + r_pro.standard_normal(n)[si] + 1.2 * r_pro.standard_normal(len(si)), 0, 10
        ),
        1,
    )
    parts.append(
        _part(
            si,
            "pain_vas",
            pd.Series(snum).map("session_{}".format).to_numpy(object),
            sess_day[si, sj],
            pain,
            "patient",
            subject_ids[si],
        )
    )
    assessments = _assessment_table(d, study_id, unit_ids, parts)

    # sessions and adverse events
    settings = _session_settings(r_sess, smod, si, n)
    n_rows = len(si)
    sessions = _frame(
        d,
        "sessions",
        {
            "study_id": np.full(n_rows, study_id, dtype=object),
            "unit_id": unit_ids[si],
            "session_number": snum,
            "day": sess_day[si, sj],
            "modality": smod,
            **settings,
        },
        n_rows,
    )
    ev = _adverse_events(
        r_ae,
        unit=si,
        session_day=sess_day[si, sj],
        session_modality=smod,
        unit_subject=np.arange(n),
        subject_phototype=photo,
        subject_end_day=last_contact,
        severe_erythema_or=SEVERE_ERYTHEMA_OR,
        pih_rr=PIH_RR,
        params=AE_DEFAULTS,
    )

    tables = {
        "studies": _frame(
            d,
            "studies",
            {
                "study_id": np.array([study_id], dtype=object),
                "title": np.array(
                    [f"Simulated microneedling registry ({n_c} clinics)"], dtype=object
                ),
                "design": np.array(["observational"], dtype=object),
                "start_year": [start_year],
                "n_planned": [n],
            },
            1,
        ),
        "subjects": _frame(
            d,
            "subjects",
            {
                "study_id": np.full(n, study_id, dtype=object),
                "subject_id": subject_ids,
                "site_id": clinic_ids[clinic],
                "age": age,
                "sex": np.where(female, "female", "male").astype(object),
                "phototype": np.array(PHOTOTYPES, dtype=object)[photo],
                "indication": indication,
                "end_day": last_contact,
                "end_reason": end_reason,
            },
            n,
        ),
        "units": _frame(
            d,
            "units",
            {
                "study_id": np.full(n, study_id, dtype=object),
                "unit_id": unit_ids,
                "subject_id": subject_ids,
                "body_site": body_site,
                "side": np.full(n, "whole", dtype=object),
                "modality": modality,
                "randomised": np.zeros(n, dtype=bool),
            },
            n,
        ),
        "sessions": sessions,
        "assessments": assessments,
        "adverse_events": _ae_table(d, study_id, subject_ids, unit_ids, ev, with_unit=True),
    }

    truth = {
        "simulator": "outcomes.simulate_registry",
        "seed": seed,
        "study_id": study_id,
        "design": "observational",
        "options": {
            "n_subjects": n,
            "n_clinics": n_c,
            "effects": eff,
            "loss_to_follow_up": loss_to_follow_up,
            "p_lose_response": p_lose_response,
            "study_id": study_id,
            "start_year": start_year,
        },
        "effects": {"outcome": "pct_improvement_day168", "vs": "MN", **eff},
        "confounders": ["phototype", "baseline_severity", "site_id"],
        "outcome": {
            "name": "pct_improvement_day168",
            "definition": (
                "100 * (baseline - value) / baseline of the primary instrument "
                "(investigator) at the visit nearest day 168 within days 140-210"
            ),
            "target_day": 168,
            "window_days": [140, 210],
            "primary_instrument": {
                i: PRIMARY_INSTRUMENT.get(i, {}).get("instrument") for i in INDICATION_MIX
            },
            "note": (
                "the dictionary has no continuous severity instrument for wrinkles, "
                "enlarged_pores or striae: for them the outcome and baseline severity "
                "are latent, and only GAIS (rated vs baseline) is recorded"
            ),
            "homogeneous": True,
        },
        "baseline_severity": {
            "variable": "severity_z",
            "definition": {
                i: (
                    f"(baseline {s['instrument']} - {s['centre']:g}) / "
                    f"{s['scale']:g}, from the recorded baseline value "
                    f"(drawn N(0,1), rounded, bounded {s['low']:g}-{s['high']:g})"
                )
                for i, s in PRIMARY_INSTRUMENT.items()
            },
            "other_indications": "latent N(0, 1), not recorded",
        },
        "phototype_model": {
            "coding": "phototype number I=1 ... VI=6; models use (phototype - 3)",
            "marginal_probs": dict(zip(PHOTOTYPES, photo_probs.tolist(), strict=True)),
            "clinic_shift_sd": photo_shift_sd,
            "note": "clinics differ in phototype mix (ordered probit with a clinic shift)",
        },
        "calibration": {
            **_calibration_truth(),
            "registry": (
                "calibrated (acne scars, gb_quant): baseline mean and SD (severity "
                "centre and scale), MN mean improvement (mu), the MN+PRP effect, the within-arm "
                "SD of percent improvement (subject_sd), loss to follow-up (trial dropout "
                "range) and PIH per session (AE model shared with trials). No published "
                "target: the other indications (mu, mmasi baseline), MN+RF and MN+laser "
                "effects, confounding (treatment and phototype models), clinic effects, "
                "visits, loss of response, retreatment, GAIS and pain"
            ),
        },
        "treatment_model": {
            "type": "multinomial logit, reference MN",
            "linear_predictor": (
                "intercept[m] + severity_z[m] * severity_z + phototype[m] * "
                "(phototype - 3) + clinic_preference[site, m]"
            ),
            "intercept": CHOICE_MODEL["intercept"],
            "severity_z": CHOICE_MODEL["severity_z"],
            "phototype": CHOICE_MODEL["phototype"],
            "clinic_preference_sd": CHOICE_MODEL["clinic_preference_sd"],
            "assumptions": CHOICE_MODEL["assumptions"],
            "clinic_preference": {
                c: dict(zip(combos, pref[k].tolist(), strict=True))
                for k, c in enumerate(clinic_ids)
            },
            "description": (
                "darker phototypes get less laser; more severe baseline gets more "
                "RF and laser and less PRP; clinics have their own preferences"
            ),
        },
        "outcome_model": {
            "formula": (
                "pct_improvement_day168 = mu[indication] + effect[modality] + "
                "severity_z * severity_z + phototype * (phototype - 3) + "
                "clinic_effect[site] + N(0, subject_sd^2)"
            ),
            "mu": MU_INDICATION,
            "severity_z": om["severity_z"],
            "phototype": om["phototype"],
            "clinic_sd": om["clinic_sd"],
            "clinic_effect": dict(zip(clinic_ids.tolist(), clinic_eff.tolist(), strict=True)),
            "subject_sd": om["subject_sd"],
            "trajectory": (
                "improvement at day t = final * (1 - (1 - min(t, 120) / 120)^2): "
                "flat from day 120, so any visit in the window measures the final "
                "improvement; declines start after day 200 (loss of response)"
            ),
            "measurement": (
                "value = baseline * (1 - improvement / 100 + measurement_cv * "
                "N(0, 1)), rounded to the instrument's precision, within its range"
            ),
            "measurement_cv": om["measurement_cv"],
        },
        "durability": {
            "responder_threshold_pct": 50.0,
            "responder": "true final improvement >= 50 (before measurement error)",
            "p_lose_response": p_lose_response,
            "decline": (
                f"losers decline by {DECLINE_RATE} points/day from day "
                f"{DECLINE_START_MIN:g} + Exponential(mean "
                f"{DECLINE_START_MEAN_EXTRA:g}); loss = true improvement below 50"
            ),
            "n_responders": int(responder.sum()),
            "n_losers": int(loser.sum()),
        },
        "event_times": {
            "loss_of_response": dict(
                zip(unit_ids[loser].tolist(), loss_day[loser].tolist(), strict=True)
            ),
        },
        "retreatment": {
            "who": (
                "60% of losers, 7-45 days after the loss; 30% of non-responders (true "
                "improvement < 25) at day 200-300; only within planned follow-up"
            ),
            "sessions": "1 or 2, 28 days apart; assessments stop at retreatment",
            "end_reason": "retreated (end_day = last retreatment session)",
            "n_retreated": int(retreated.sum()),
        },
        "follow_up": {
            "visits": {lab: day for day, lab, _ in REGISTRY_VISITS},
            "visit_probability": {lab: p for _, lab, p in REGISTRY_VISITS},
            "jitter": f"N(0, {VISIT_JITTER_SD:g}) days, within +/-{VISIT_JITTER_MAX}",
            "loss_to_follow_up": loss_to_follow_up,
            "loss_model": "uniform day in (20, planned end), independent of everything",
            "n_lost": int((lost & ~retreated).sum()),
        },
        "gais": {
            "cuts_pct_improvement": list(GAIS_CUTS),
            "model": "true improvement at the visit + N(0, 8), >= cuts -> 1, 2, 3, 4, else 5",
        },
        "pain_vas": {
            "mean_by_modality": {m: PAIN_MEAN[m] for m in REGISTRY_MODALITIES},
            "sd_subject": 1.0,
            "sd_residual": 1.2,
        },
        "adverse_events": {
            **AE_DEFAULTS,
            "severe_erythema_odds_ratio": SEVERE_ERYTHEMA_OR,
            "severe_erythema_level": "unit (any severe erythema over the course)",
            "pih_relative_risk": PIH_RR,
            "pih_level": "per session, vs MN, multiplying the phototype probability",
            "source": (
                "PIH RR 3.04 laser vs MN (Lasers Med Sci 2026); severe erythema OR "
                "1.59 MN+PRP vs MN (Kang & Lu 2022); RF values are simulation choices"
            ),
        },
    }
    return Feeds(tables=tables, truth=_plain(truth))
