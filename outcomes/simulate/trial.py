"""Simulated randomised trials (split-body or parallel) with known truth: :func:`simulate_trial`."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from outcomes.data.dictionary import load_dictionary
from outcomes.errors import InputError
from outcomes.simulate.calibration import (
    AE_DEFAULTS,
    CALIBRATION,
    CALIBRATION_ASSUMPTIONS,
    P_GRADE_4,
    PAIN_MEAN,
    PHOTOTYPES,
    PIH_RR,
    TRIAL_LMM,
    _calibration_truth,
)
from outcomes.simulate.output import Feeds
from outcomes.simulate.parts import (
    _adverse_events,
    _ae_table,
    _assessment_table,
    _check_modality,
    _frame,
    _ids,
    _part,
    _plain,
    _session_settings,
)

__all__ = ["simulate_trial"]


def _trial_visit_label(day: int) -> str:
    if day == 0:
        return "baseline"
    return f"week_{day // 7}" if day % 7 == 0 else f"day_{day}"


def simulate_trial(
    seed: int = 1,
    design: str = "split_body",
    n_subjects: int = 50,
    *,
    combination: str = "MN+PRP",
    control: str = "MN",
    indication: str = "acne_scars",
    n_sessions: int = 3,
    session_interval_days: int = 28,
    visit_days: Sequence[int] = (0, 28, 56, 84, 168),
    dropout: float = CALIBRATION["dropout"].value,
    missed_visit: float = 0.05,
    intercept: float = TRIAL_LMM["intercept"],
    week: float = TRIAL_LMM["week"],
    combo: float = TRIAL_LMM["combo"],
    week_combo: float = TRIAL_LMM["week_combo"],
    sd_subject_intercept: float = TRIAL_LMM["sd_subject_intercept"],
    sd_subject_week: float = TRIAL_LMM["sd_subject_week"],
    corr_subject: float = TRIAL_LMM["corr_subject"],
    sd_unit: float | None = None,
    sd_residual: float = TRIAL_LMM["sd_residual"],
    weibull_shape: float = CALIBRATION_ASSUMPTIONS["weibull_shape"],
    control_median_days: float = CALIBRATION_ASSUMPTIONS["control_median_days"],
    hazard_ratio: float = 1.8,
    photo_rater_error: float = 0.15,
    study_id: str = "TRIAL1",
    start_year: int = 2024,
) -> Feeds:
    """Simulate a randomised split-body or parallel trial of a combination vs a control.

    Parameters
    ----------
    seed
        Seed of ``numpy.random.SeedSequence``; the same seed gives the same feeds.
    design
        ``"split_body"`` (two units per subject, left and right face, one randomised to the
        combination) or ``"parallel"`` (one whole-face unit per subject, randomised 1:1).
    n_subjects
        Number of subjects.
    combination, control
        Modality codes of the two arms.
    indication
        Indication code; the trial outcomes are acne scar instruments, so only
        ``"acne_scars"`` is supported.
    n_sessions, session_interval_days
        Treatment course: sessions on days 0, interval, 2 x interval, ... (3-6 sessions).
    visit_days
        Assessment visits (study days, starting at 0); the last one is the end of follow-up.
    dropout
        Probability of loss to follow-up before the last visit (uniform time).
    missed_visit
        Probability of missing each intermediate visit (baseline and last are not missed).
    intercept, week, combo, week_combo
        Fixed effects of ``gb_quant ~ week * combo`` (week = day / 7). Defaults derived from
        :data:`CALIBRATION` (see :func:`calibration_table`): baseline mean and SD, mean
        percent improvement per arm and its SD by day 168.
    sd_subject_intercept, sd_subject_week, corr_subject
        Subject random intercept and week slope (SDs, correlation); calibrated defaults.
    sd_unit
        SD of the unit (side) random intercept; default 1.0 (an assumption) for split-body,
        and it must be 0 (or None) for parallel trials, where unit and subject coincide.
    sd_residual
        Residual SD before rounding to an integer score.
    weibull_shape, control_median_days, hazard_ratio
        Weibull model of the time to each one-grade improvement of ``gb_qual``: control
        median time to the first improvement, and the hazard ratio of the combination.
    photo_rater_error
        Probability that a blinded photo rater's grade is one grade off the true grade.
    study_id, start_year
        Written to the ``studies`` table.

    Returns
    -------
    Feeds
        The six tables and the truth (``truth.json`` keys: see the module documentation).

    Examples
    --------
    >>> feeds = simulate_trial(seed=1, n_subjects=20)
    >>> round(feeds.truth["lmm"]["fixed"]["week:combo"], 4)
    -0.0646
    >>> sorted(feeds.tables["units"]["side"].unique())
    ['left', 'right']
    """
    d = load_dictionary()
    if design not in ("split_body", "parallel"):
        raise InputError(f"design={design!r}: a trial is 'split_body' or 'parallel'")
    _check_modality(d, "combination", combination)
    _check_modality(d, "control", control)
    if combination == control:
        raise InputError("combination and control must be different modalities")
    if indication != "acne_scars":
        raise InputError(
            f"indication={indication!r}: simulated trials use acne scar instruments "
            "(gb_quant, gb_qual), so only 'acne_scars' is supported"
        )
    if not 3 <= int(n_sessions) <= 6:
        raise InputError(f"n_sessions={n_sessions}: use 3 to 6 sessions")
    if int(n_subjects) < 2:
        raise InputError(f"n_subjects={n_subjects}: simulate at least 2 subjects")
    vd = np.asarray(visit_days, dtype=np.int64)
    if len(vd) < 2 or vd[0] != 0 or np.any(np.diff(vd) <= 0):
        raise InputError(f"visit_days={list(visit_days)}: need >= 2 increasing days from 0")
    sess_days = session_interval_days * np.arange(n_sessions, dtype=np.int64)
    if session_interval_days < 1 or sess_days[-1] > vd[-1]:
        raise InputError("all sessions must fall between day 0 and the last visit")
    for name, p in (
        ("dropout", dropout),
        ("missed_visit", missed_visit),
        ("photo_rater_error", photo_rater_error),
    ):
        if not 0.0 <= p < 1.0:
            raise InputError(f"{name}={p}: a probability in [0, 1)")
    if hazard_ratio <= 0 or weibull_shape <= 0 or control_median_days <= 0:
        raise InputError("hazard_ratio, weibull_shape and control_median_days must be > 0")
    if not -1.0 <= corr_subject <= 1.0:
        raise InputError(f"corr_subject={corr_subject}: a correlation in [-1, 1]")
    split = design == "split_body"
    if sd_unit is None:
        sd_unit = TRIAL_LMM["sd_unit"] if split else 0.0
    if not split and sd_unit != 0.0:
        raise InputError("sd_unit must be 0 in a parallel trial (one unit per subject)")

    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(8)]
    r_subj, r_arm, r_follow, r_lmm, r_qual, r_pro, r_sess, r_ae = streams

    # subjects
    n = int(n_subjects)
    subject_ids = _ids("S", n)
    age = r_subj.integers(18, 56, size=n)
    sex = np.where(r_subj.random(n) < 0.75, "female", "male").astype(object)
    photo_probs = CALIBRATION_ASSUMPTIONS["trial_phototype_probs"]
    photo = r_subj.choice(
        [PHOTOTYPES.index(k) for k in photo_probs], size=n, p=list(photo_probs.values())
    )
    if split:
        site = np.full(n, "SITE1", dtype=object)
    else:
        site = np.array(["SITE1", "SITE2", "SITE3"], dtype=object)[r_subj.integers(0, 3, n)]

    # units and randomisation
    if split:
        unit_subject = np.repeat(np.arange(n), 2)
        side = np.tile(np.array(["left", "right"], dtype=object), n)
        combo_left = r_arm.random(n) < 0.5
        is_combo = np.column_stack([combo_left, ~combo_left]).ravel()
        unit_ids = np.array([f"{s}-{x}" for s in subject_ids for x in ("L", "R")], dtype=object)
    else:
        unit_subject = np.arange(n)
        side = np.full(n, "whole", dtype=object)
        is_combo = r_arm.permutation(np.arange(n) % 2 == 0)
        unit_ids = np.array([f"{s}-W" for s in subject_ids], dtype=object)
    n_units = len(unit_subject)
    modality = np.where(is_combo, combination, control).astype(object)
    xc = is_combo.astype(float)

    # follow-up: dropout, missed visits, sessions delivered
    n_visits = len(vd)
    dropped = r_follow.random(n) < dropout
    drop_day = np.where(dropped, r_follow.uniform(1.0, float(vd[-1]), n), np.inf)
    missed = r_follow.random((n, n_visits)) < missed_visit
    missed[:, 0] = False
    missed[:, -1] = False
    attended = (vd[None, :] < drop_day[:, None]) & ~missed
    done = sess_days[None, :] < drop_day[:, None]
    last_visit = np.where(attended, vd[None, :], 0).max(axis=1)
    last_session = np.where(done, sess_days[None, :], 0).max(axis=1)
    end_day = np.where(dropped, np.maximum(last_visit, last_session), vd[-1])
    end_reason = np.where(dropped, "lost_to_follow_up", "completed").astype(object)

    # gb_quant from the linear mixed model
    wk = vd / 7.0
    z = r_lmm.standard_normal((n, 2))
    u = sd_subject_intercept * z[:, 0]
    v = sd_subject_week * (corr_subject * z[:, 0] + math.sqrt(1 - corr_subject**2) * z[:, 1])
    w = sd_unit * r_lmm.standard_normal(n_units)
    e = sd_residual * r_lmm.standard_normal((n_units, n_visits))
    s_ = unit_subject
    score = (
        intercept
        + week * wk[None, :]
        + (combo + week_combo * wk[None, :]) * xc[:, None]
        + u[s_, None]
        + v[s_, None] * wk[None, :]
        + w[:, None]
        + e
    )
    gbq = np.rint(score)
    unit_att = attended[s_]
    n_clipped = int((((gbq < 0) | (gbq > 84)) & unit_att).sum())
    gbq = np.clip(gbq, 0, 84)

    # gb_qual: baseline grade and Weibull improvement times
    base_grade = r_qual.choice([3, 4], size=n, p=[1 - P_GRADE_4, P_GRADE_4])[s_]
    k = float(weibull_shape)
    control_scale = control_median_days / math.log(2) ** (1 / k)
    scale = control_scale * np.where(is_combo, hazard_ratio ** (-1 / k), 1.0)
    times = np.round(np.cumsum(r_qual.weibull(k, (n_units, 3)), axis=1) * scale[:, None], 3)
    times = np.maximum(times, 0.001)
    n_events = (times[:, :, None] <= vd[None, None, :]).sum(axis=1)
    grade = np.maximum(1, base_grade[:, None] - n_events)

    def photo_rating(true: np.ndarray) -> np.ndarray:
        wrong = r_qual.random(true.shape) < photo_rater_error
        step = np.where(r_qual.random(true.shape) < 0.5, -1, 1) * wrong
        rated = true + step
        return np.where((rated < 1) | (rated > 4), true - step, rated)

    ends = [0, n_visits - 1]
    photo_r = {r: photo_rating(grade[:, ends]) for r in ("R1", "R2")}

    # patient-reported: pain at each session, satisfaction at the last visit
    pain_subject = r_pro.standard_normal(n)
    pain_mean = np.array([PAIN_MEAN.get(m, 4.5) for m in modality])
    pain = np.round(
        np.clip(
            pain_mean[:, None]
            + pain_subject[s_, None]
            + 1.2 * r_pro.standard_normal((n_units, n_sessions)),
            0,
            10,
        ),
        1,
    )
    pct_final = 100 * (gbq[:, 0] - gbq[:, -1]) / np.maximum(gbq[:, 0], 1)
    sat_latent = pct_final + 10 * r_pro.standard_normal(n_units)
    satisfaction = 1 + (sat_latent >= 25) + (sat_latent >= 45) + (sat_latent >= 65)

    # assessments
    labels = np.array([_trial_visit_label(int(x)) for x in vd], dtype=object)
    ui, vi = np.nonzero(unit_att)
    parts = [
        _part(ui, "gb_quant", labels[vi], vd[vi], gbq[ui, vi], "investigator", "INV1"),
        _part(ui, "gb_qual", labels[vi], vd[vi], grade[ui, vi], "investigator", "INV1"),
    ]
    for j, vj in enumerate(ends):
        uj = np.flatnonzero(unit_att[:, vj])
        for rater, vals in photo_r.items():
            parts.append(
                _part(
                    uj,
                    "gb_qual",
                    labels[vj],
                    np.full(len(uj), vd[vj]),
                    vals[uj, j],
                    "blinded_photo_rater",
                    rater,
                )
            )
    su, ss = np.nonzero(done[s_])
    parts.append(
        _part(
            su,
            "pain_vas",
            np.array([f"session_{x + 1}" for x in ss], dtype=object),
            sess_days[ss],
            pain[su, ss],
            "patient",
            subject_ids[s_[su]],
        )
    )
    uf = np.flatnonzero(unit_att[:, -1])
    parts.append(
        _part(
            uf,
            "satisfaction_4",
            labels[-1],
            np.full(len(uf), vd[-1]),
            satisfaction[uf],
            "patient",
            subject_ids[s_[uf]],
        )
    )
    assessments = _assessment_table(d, study_id, unit_ids, parts)

    # sessions and adverse events
    smod = modality[su]
    settings = _session_settings(r_sess, smod, su, n_units)
    n_rows = len(su)
    sessions = _frame(
        d,
        "sessions",
        {
            "study_id": np.full(n_rows, study_id, dtype=object),
            "unit_id": unit_ids[su],
            "session_number": ss + 1,
            "day": sess_days[ss],
            "modality": smod,
            **settings,
        },
        n_rows,
    )
    sev_or = {control: 1.0, combination: CALIBRATION["severe_erythema_odds_ratio"].value}
    ev = _adverse_events(
        r_ae,
        unit=su,
        session_day=sess_days[ss],
        session_modality=smod,
        unit_subject=unit_subject,
        subject_phototype=photo,
        subject_end_day=end_day,
        severe_erythema_or=sev_or,
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
                    [
                        f"Simulated {design.replace('_', '-')} trial: {combination} vs "
                        f"{control} for {indication.replace('_', ' ')}"
                    ],
                    dtype=object,
                ),
                "design": np.array([design], dtype=object),
                "indication": np.array([indication], dtype=object),
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
                "site_id": site,
                "age": age,
                "sex": sex,
                "phototype": np.array(PHOTOTYPES, dtype=object)[photo],
                "indication": np.full(n, indication, dtype=object),
                "end_day": end_day,
                "end_reason": end_reason,
            },
            n,
        ),
        "units": _frame(
            d,
            "units",
            {
                "study_id": np.full(n_units, study_id, dtype=object),
                "unit_id": unit_ids,
                "subject_id": subject_ids[unit_subject],
                "body_site": np.full(n_units, "face"),
                "side": side,
                "modality": modality,
                "randomised": np.ones(n_units, dtype=bool),
            },
            n_units,
        ),
        "sessions": sessions,
        "assessments": assessments,
        "adverse_events": _ae_table(d, study_id, subject_ids, unit_ids, ev, with_unit=True),
    }

    p12_c = 1 - math.exp(-((84 / control_scale) ** k))
    p12_t = 1 - math.exp(-hazard_ratio * (84 / control_scale) ** k)
    or12 = (p12_t / (1 - p12_t)) / (p12_c / (1 - p12_c))
    truth = {
        "simulator": "outcomes.simulate_trial",
        "seed": seed,
        "study_id": study_id,
        "design": design,
        "options": {
            "design": design,
            "n_subjects": n,
            "combination": combination,
            "control": control,
            "indication": indication,
            "n_sessions": int(n_sessions),
            "session_interval_days": int(session_interval_days),
            "visit_days": [int(x) for x in vd],
            "dropout": dropout,
            "missed_visit": missed_visit,
            "intercept": intercept,
            "week": week,
            "combo": combo,
            "week_combo": week_combo,
            "sd_subject_intercept": sd_subject_intercept,
            "sd_subject_week": sd_subject_week,
            "corr_subject": corr_subject,
            "sd_unit": sd_unit,
            "sd_residual": sd_residual,
            "weibull_shape": k,
            "control_median_days": control_median_days,
            "hazard_ratio": hazard_ratio,
            "photo_rater_error": photo_rater_error,
            "study_id": study_id,
            "start_year": start_year,
        },
        "arms": {
            "combination": combination,
            "control": control,
            "combo": "1 for units assigned the combination, 0 for the control",
            "allocation": (
                "side randomised within subject" if split else "1:1 permutation of subjects"
            ),
        },
        "lmm": {
            "formula": "gb_quant ~ week * combo",
            "fixed": {
                "(Intercept)": intercept,
                "week": week,
                "combo": combo,
                "week:combo": week_combo,
            },
            "sd_subject_intercept": sd_subject_intercept,
            "sd_subject_week": sd_subject_week,
            "corr_subject": corr_subject,
            "sd_unit": sd_unit,
            "sd_residual": sd_residual,
            "model": (
                "gb_quant = (Intercept) + week*week + combo*combo + week:combo*week*combo"
                " + u_subject + v_subject*week + w_unit + e, week = day / 7; "
                "(u, v) bivariate normal per subject, w per unit (split-body only), "
                "e per unit and visit; rated by the investigator (rater_id INV1)"
            ),
            "rounding": (
                "rounded to the nearest integer: adds about uniform(-0.5, 0.5) error "
                "(variance 1/12) to the residual"
            ),
            "clipping": "values outside 0-84 set to the bound; n_clipped counts them",
            "n_clipped": n_clipped,
            "source": (
                "defaults derived from the calibration targets (see 'calibration'): "
                "baseline mean and SD, percent improvement per arm and its SD at day 168"
            ),
        },
        "survival": {
            "endpoint": "first_improvement",
            "instrument": "gb_qual",
            "definition": ">= 1 grade lower than baseline",
            "weibull_shape": k,
            "control_scale_days": control_scale,
            "control_median_days": control_median_days,
            "hazard_ratio": hazard_ratio,
            "combination_scale_days": control_scale * hazard_ratio ** (-1 / k),
            "hazard_ratio_source": (
                f"HR {hazard_ratio:g} gives P(first improvement by day 84) {p12_c:.3f} "
                f"(control) vs {p12_t:.3f}, odds ratio {or12:.2f}; Kang & Lu 2022 report "
                "OR 2.97 for >50% improvement with MN+PRP vs MN"
            ),
            "grade_model": (
                "grade(day) = max(1, baseline - #{T_k <= day}); T_1 < T_2 < T_3 are cumulative "
                "sums of independent Weibull gaps with the unit's arm scale; times rounded to "
                "0.001 day; the investigator rates the true grade without error"
            ),
            "baseline_grade_probs": {"3": 1 - P_GRADE_4, "4": P_GRADE_4},
        },
        "calibration": _calibration_truth(),
        "event_times": {
            "first_improvement": dict(zip(unit_ids.tolist(), times[:, 0].tolist(), strict=True)),
        },
        "raters": {
            "investigator": "INV1 rates gb_quant and gb_qual at every attended visit",
            "blinded_photo_raters": ["R1", "R2"],
            "photo_visits": [str(labels[0]), str(labels[-1])],
            "photo_rater_error": photo_rater_error,
            "photo_rater_model": (
                "each rater independently reports the true gb_qual grade, "
                "or one grade off with probability photo_rater_error"
            ),
        },
        "patient_reported": {
            "pain_vas": {
                "when": "each session day (visit session_k)",
                "mean_by_modality": {m: PAIN_MEAN.get(m, 4.5) for m in (control, combination)},
                "sd_subject": 1.0,
                "sd_residual": 1.2,
                "rounding": "clipped to 0-10, one decimal",
            },
            "satisfaction_4": {
                "when": "last visit",
                "model": (
                    "latent = observed gb_quant percent improvement + N(0, 10); "
                    "cut at 25, 45, 65 into 1-4"
                ),
            },
        },
        "follow_up": {
            "dropout": dropout,
            "missed_visit": missed_visit,
            "dropout_model": "uniform day in (1, last visit) for dropped subjects",
            "n_dropped": int(dropped.sum()),
        },
        "adverse_events": {
            **AE_DEFAULTS,
            "severe_erythema_odds_ratio": sev_or,
            "severe_erythema_level": "unit (any severe erythema over the course)",
            "pih_relative_risk": {m: PIH_RR.get(m, 1.0) for m in (control, combination)},
            "source": "severe erythema OR 1.59 for MN+PRP vs MN (Kang & Lu 2022)",
        },
    }
    return Feeds(tables=tables, truth=_plain(truth))
