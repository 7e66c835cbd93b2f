"""The published numbers behind the simulators' defaults, and the defaults derived from them.

:data:`CALIBRATION` holds each target's design value, published range, unit, definition and
source (acne scars); :func:`calibration_table` lists them. The trial's LMM, baseline grade,
dropout, PIH and the registry's acne-scar outcome model are derived here; the other constants
are simulation choices, each with its reason beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

__all__ = ["CALIBRATION", "Target", "calibration_table"]


REGISTRY_MODALITIES = ("MN", "MN+PRP", "MN+RF", "MN+laser")


PHOTOTYPES = ("I", "II", "III", "IV", "V", "VI")


AE_TERMS = ("erythema", "edema", "dryness", "pih", "infection")


@dataclass(frozen=True)
class Target:
    """A published arm-level number the simulator's defaults reproduce.

    ``low``-``high`` is the published range (or confidence interval); ``value`` is the design
    value inside it that the defaults aim at. Acne scars, the end of treatment (day 168).
    """

    value: float
    low: float
    high: float
    unit: str
    definition: str
    source: str


#: Published calibration targets (numbers and sources collected in the team's domain notes).
CALIBRATION: dict[str, Target] = {
    "baseline_gb_quant_mean": Target(
        12.4,
        11.88,
        12.80,
        "points",
        "mean baseline Goodman & Baron quantitative score",
        "Saleh & Alkhayer 2020-21 (12.80 and 11.88); Navyadevi, J Cutan Aesthet Surg (12.65)",
    ),
    "baseline_gb_quant_sd": Target(
        4.2,
        3.9,
        4.5,
        "points",
        "SD of the baseline G&B quantitative score (per arm)",
        "Saleh & Alkhayer 2020-21 (3.9 and 4.5)",
    ),
    "baseline_gb_qual_mean": Target(
        3.3,
        3.20,
        3.53,
        "grade",
        "mean baseline G&B qualitative grade (1-4)",
        "Sharma, J Pak Assoc Dermatol (3.20); Krishnegowda 2023 (3.45); IDOJ 2024 (3.53)",
    ),
    "baseline_gb_qual_sd": Target(
        0.46,
        0.40,
        0.50,
        "grade",
        "SD of the baseline G&B qualitative grade",
        "Sharma (0.40); domain.md calibration note (0.4-0.5)",
    ),
    "improvement_control": Target(
        45.5,
        27.9,
        45.8,
        "%",
        "mean percent improvement of G&B quantitative, MN alone",
        "Saleh & Alkhayer 2020-21 (11.88 -> 8.57: 27.9%); Asif 2016 (45.8%)",
    ),
    "improvement_combination": Target(
        58.0,
        50.2,
        62.2,
        "%",
        "mean percent improvement of G&B quantitative, MN+PRP",
        "Saleh & Alkhayer 2020-21 (12.80 -> 6.37: 50.2%); Asif 2016 (62.2%)",
    ),
    "improvement_sd": Target(
        22.0,
        15.0,
        25.0,
        "percentage points",
        "SD of percent improvement within each arm",
        "domain.md / issue 16 (published trials 15-25; secondary, no single primary source)",
    ),
    "excellent_control": Target(
        0.085,
        0.07,
        0.10,
        "proportion",
        "excellent response (>= 75% improvement), MN alone",
        "Asif 2016 (5/50); Chawla 2014 (2/27); cut 75% assumed, not confirmed in the papers",
    ),
    "excellent_combination": Target(
        0.22,
        0.18,
        0.40,
        "proportion",
        "excellent response (>= 75% improvement), MN+PRP",
        "Asif 2016 (20/50); Chawla 2014 (5/27); cut 75% assumed, not confirmed in the papers",
    ),
    "responder_odds_ratio": Target(
        2.97,
        1.96,
        4.51,
        "odds ratio",
        ">= 50% improvement, MN+PRP vs MN",
        "Kang & Lu, Front Med 2022 (14 studies, random effects; 95% CI)",
    ),
    "gb_qual_change_control": Target(
        -0.84,
        -0.84,
        -0.12,
        "grade",
        "mean change of the G&B qualitative grade, MN alone",
        "Sharma (3.20 -> 2.36); IDOJ 2024 (3.53 -> 3.20); Krishnegowda 2023 (3.45 -> 3.33)",
    ),
    "gb_qual_mean_difference": Target(
        -0.32,
        -0.44,
        -0.20,
        "grade",
        "final G&B qualitative grade, MN+PRP minus MN",
        "Kang & Lu, Front Med 2022 (95% CI); Sharma (2.13 vs 2.36)",
    ),
    "gb_qual_final_sd": Target(
        0.56,
        0.53,
        0.56,
        "grade",
        "SD of the final G&B qualitative grade (per arm)",
        "Sharma (0.56 both arms); Krishnegowda 2023 (0.56, 0.53); NOT reproduced: about 0.75",
    ),
    "dropout": Target(
        0.15,
        0.10,
        0.25,
        "proportion",
        "subjects lost before the last visit",
        "Chawla 2014 (3/30); Alam 2014 (5/20)",
    ),
    "pih_control": Target(
        0.06,
        0.0,
        0.07,
        "proportion",
        "units with PIH over the course, MN alone",
        "IDOJ 2024 (6.7%); 1,340 nm laser vs MN RCT (0%)",
    ),
    "pih_ablative_laser": Target(
        0.165,
        0.14,
        0.30,
        "proportion",
        "units with PIH over the course, ablative CO2 laser (implied by pih_control and the RR)",
        "IDOJ 2024 (30%); 1,340 nm laser vs MN RCT (13.6%)",
    ),
    "pih_relative_risk_laser": Target(
        3.04,
        1.49,
        6.21,
        "risk ratio",
        "PIH, fractional CO2 laser vs MN (per session here; per course about 2.6)",
        "Lasers Med Sci 2026 (meta-analysis; 95% CI)",
    ),
    "severe_erythema_odds_ratio": Target(
        1.59,
        0.73,
        3.46,
        "odds ratio",
        "severe erythema, MN+PRP vs MN",
        "Kang & Lu, Front Med 2022 (95% CI)",
    ),
}


#: Choices the literature does not report, stated as assumptions (also in ``truth.json``).
CALIBRATION_ASSUMPTIONS: dict[str, Any] = {
    "endpoint_day": 168,
    "excellent_cut_pct": 75.0,
    "responder_cut_pct": 50.0,
    "sd_unit": 1.0,
    "sd_residual": 0.5,
    "within_patient": (
        "never reported: the two sides share the subject's random intercept and week slope; "
        "the side-specific parts are the unit intercept (sd_unit) and the residual"
    ),
    "weibull_shape": 2.5,
    "control_median_days": 130.0,
    "grade_model_fit": (
        "weibull_shape and control_median_days chosen by simulating the grade model over "
        "shape 1.7-5, median 63-220 days and HR 1.8-3.5 to match the G&B grade change and "
        "mean difference; no setting gives a final-grade SD near 0.56 (whole-grade steps "
        "from event counts spread more, about 0.75)"
    ),
    "trial_phototype_probs": {"II": 0.2, "III": 0.35, "IV": 0.3, "V": 0.15},
    "pih_phototype_weights": {"I": 0.3, "II": 0.6, "III": 1.0, "IV": 2.0, "V": 3.3, "VI": 4.0},
}


def calibration_table() -> pd.DataFrame:
    """The calibration targets as a table: name, value, low, high, unit, definition, source."""
    return pd.DataFrame(
        [{"name": k, **t.__dict__} for k, t in CALIBRATION.items()],
        columns=["name", "value", "low", "high", "unit", "definition", "source"],
    )


def _trial_lmm_defaults() -> dict[str, float]:
    """LMM parameters of ``gb_quant`` implied by the calibration targets.

    Baseline: intercept and total SD from the targets, with ``sd_unit`` and ``sd_residual``
    assumed and rounding (variance 1/12) included. Mean change: the arm's mean improvement
    times the baseline by the endpoint week. The subject's week slope is ``gamma * u + v0``:
    ``gamma`` makes the expected drop proportional to the subject's baseline (improvement is
    a percentage), ``v0`` gives the target SD of percent improvement, by the delta method with
    ``E[1 / Y0^2] ~ (1 + 3 cv^2) / mean^2``.
    """
    c, a = CALIBRATION, CALIBRATION_ASSUMPTIONS
    weeks = a["endpoint_day"] / 7.0
    base, base_sd = c["baseline_gb_quant_mean"].value, c["baseline_gb_quant_sd"].value
    sd_unit, sd_res = a["sd_unit"], a["sd_residual"]
    sd_u = math.sqrt(base_sd**2 - sd_unit**2 - sd_res**2 - 1 / 12)
    m_c = c["improvement_control"].value / 100
    m_t = c["improvement_combination"].value / 100
    m_bar = (m_c + m_t) / 2
    gamma = -m_bar / weeks
    target_var = (c["improvement_sd"].value / 100 * base) ** 2 / (1 + 3 * (base_sd / base) ** 2)
    noise_var = 2 * (sd_res**2 + 1 / 12) + m_bar**2 * (sd_unit**2 + sd_res**2 + 1 / 12)
    sd_v0 = math.sqrt(max(target_var - noise_var, 0.0)) / weeks
    sd_week = math.sqrt((gamma * sd_u) ** 2 + sd_v0**2)
    return {
        "intercept": base,
        "week": -m_c * base / weeks,
        "combo": 0.0,
        "week_combo": -(m_t - m_c) * base / weeks,
        "sd_subject_intercept": sd_u,
        "sd_subject_week": sd_week,
        "corr_subject": gamma * sd_u / sd_week,
        "sd_unit": sd_unit,
        "sd_residual": sd_res,
    }


def _pih_session_probs() -> dict[str, float]:
    """Per-session PIH probability by phototype giving the MN course target in a trial.

    The phototype weights are relative risks (assumed); the base is solved so that a unit
    of the trial's phototype mix has PIH in 3 sessions with the target probability.
    """
    a = CALIBRATION_ASSUMPTIONS
    w, mix = a["pih_phototype_weights"], a["trial_phototype_probs"]
    target = CALIBRATION["pih_control"].value

    def course(base: float) -> float:
        return sum(p * (1 - (1 - base * w[k]) ** 3) for k, p in mix.items())

    lo, hi = 0.0, 1.0 / max(w.values())
    for _ in range(60):  # bisection: course() increases with base
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if course(mid) < target else (lo, mid)
    base = (lo + hi) / 2
    return {k: round(base * v, 6) for k, v in w.items()}


def _side_correlation() -> dict[str, float]:
    """Correlation of the two sides of a subject implied by the default LMM (no rounding)."""
    m = TRIAL_LMM
    weeks = CALIBRATION_ASSUMPTIONS["endpoint_day"] / 7.0
    res = m["sd_residual"] ** 2 + 1 / 12
    shared_base = m["sd_subject_intercept"] ** 2
    shared_change = (weeks * m["sd_subject_week"]) ** 2
    return {
        "baseline_gb_quant": shared_base / (shared_base + m["sd_unit"] ** 2 + res),
        "change_gb_quant_day168": shared_change / (shared_change + 2 * res),
    }


def _calibration_truth() -> dict[str, Any]:
    """The calibration targets and assumptions, as written to ``truth.json``."""
    return {
        "targets": {k: t.__dict__ for k, t in CALIBRATION.items()},
        "assumptions": CALIBRATION_ASSUMPTIONS,
        "implied_side_correlation": _side_correlation(),
        "note": (
            "the default options are derived from these targets (value: the design value, "
            "low-high: the published range); they describe the defaults, not options a caller "
            "overrides"
        ),
    }


TRIAL_LMM = _trial_lmm_defaults()


# Baseline G&B grade 3 or 4 with P(4) = mean - 3: mean 3.3, SD sqrt(0.3 * 0.7) = 0.46.
P_GRADE_4 = round(CALIBRATION["baseline_gb_qual_mean"].value - 3.0, 10)


# Adverse events: probabilities per unit and session unless stated (simulation choices, except
# PIH, calibrated to CALIBRATION["pih_control"], and the odds ratio and relative risks taken
# from CALIBRATION where it has them).
AE_DEFAULTS: dict[str, Any] = {
    "p_severe_erythema_unit": 0.10,
    "p_erythema_session": 0.6,
    "p_edema_session": 0.3,
    "p_dryness_session": 0.15,
    "p_pih_session_by_phototype": _pih_session_probs(),
    "p_infection_session": 0.002,
    "p_serious_given_infection": 0.3,
}


# Pain VAS mean (0-10) by modality: MN about 4; PRP adds injections; laser hurts most
# (Argobi 2026: pain MD 2.14 for CO2 vs microneedle RF). Simulation choices.
PAIN_MEAN = {
    "MN": 4.0,
    "MN+PRP": 4.5,
    "MN+RF": 4.8,
    "MN+laser": 6.9,
    "MN+TXA": 4.2,
    "MN+saline": 4.0,
    "MN+vitC": 4.1,
    "laser": 6.5,
    "subcision": 5.5,
}


# Registry: indications, body sites, primary instruments and baseline severity.
INDICATION_MIX = {
    "acne_scars": 0.35,
    "wrinkles": 0.25,
    "enlarged_pores": 0.12,
    "pigmentation": 0.15,
    "striae": 0.13,
}


BODY_SITES = {
    "acne_scars": {"face": 0.8, "back": 0.2},
    "wrinkles": {"face": 0.7, "neck": 0.3},
    "enlarged_pores": {"face": 1.0},
    "pigmentation": {"face": 1.0},
    "striae": {"abdomen": 0.6, "thighs": 0.4},
}


# Baseline value = centre + scale * severity_z, rounded and bounded as below; severity_z is
# then recomputed from the recorded baseline, so the confounder is observed exactly.
PRIMARY_INSTRUMENT: dict[str, dict[str, Any]] = {
    "acne_scars": {
        "instrument": "gb_quant",
        "centre": CALIBRATION["baseline_gb_quant_mean"].value,
        "scale": CALIBRATION["baseline_gb_quant_sd"].value,
        "low": 3.0,
        "high": 40.0,
        "decimals": 0,
    },
    "pigmentation": {
        "instrument": "mmasi",
        "centre": 9.0,
        "scale": 2.5,
        "low": 1.5,
        "high": 22.0,
        "decimals": 1,
    },
}


# Mean percent improvement by day 168 with MN alone at severity_z 0, phototype III, average
# clinic (acne scars: CALIBRATION["improvement_control"]; others are simulation choices).
MU_INDICATION = {
    "acne_scars": CALIBRATION["improvement_control"].value,
    "wrinkles": 30.0,
    "enlarged_pores": 30.0,
    "pigmentation": 35.0,
    "striae": 25.0,
}


# MN+PRP: the calibrated trial difference; MN+RF and MN+laser: simulation choices (no target).
REGISTRY_EFFECTS = {
    "MN+PRP": CALIBRATION["improvement_combination"].value
    - CALIBRATION["improvement_control"].value,
    "MN+RF": 6.0,
    "MN+laser": 9.0,
}


# Treatment choice: multinomial logit, reference MN. No registry publishes how microneedling
# clinics choose a combination, so these are stated assumptions (also in truth.json):
# - phototype, MN+laser: -0.5 per phototype step (odds of laser vs MN 0.22 in phototype VI vs
#   III): clinicians avoid fractional laser in dark skin for PIH (domain.md: PIH RR 3.04 with
#   CO2 laser) but do not exclude it. The earlier -0.9 (odds 0.07) put the true score of
#   laser below 0.01 for 4.5% of patients (phototype V-VI), a built-in positivity
#   near-violation no registry report documents; -0.5 leaves about 1% below 0.01.
# - clinic_preference_sd: 0.6 on the logit scale, a median odds ratio between clinics of
#   exp(0.954 * 0.6) = 1.8 (Merlo et al. 2006's measure): clear practice variation, but every
#   clinic offers every modality (no structural zero).
# - severity_z: the most severe patients get RF (odds ratio 2.5 per SD of baseline severity),
#   milder ones PRP or laser (0.55 and 0.74). Laser's -0.3 (was +0.3) keeps the demo
#   confounded for every combination once the weaker phototype effect is in place: lighter,
#   milder patients (who improve more) get laser, so a naive comparison overstates it.
CHOICE_MODEL: dict[str, Any] = {
    "intercept": {"MN+PRP": 0.0, "MN+RF": -0.5, "MN+laser": -0.3},
    "severity_z": {"MN+PRP": -0.6, "MN+RF": 0.9, "MN+laser": -0.3},
    "phototype": {"MN+PRP": 0.0, "MN+RF": 0.1, "MN+laser": -0.5},
    "clinic_preference_sd": 0.6,
    "assumptions": (
        "no published target: phototype -0.5 per step for MN+laser (laser avoided, not "
        "excluded, in dark skin); severity: RF for severe, PRP and laser for milder patients; "
        "clinic preference SD 0.6 (median odds ratio 1.8, every clinic offers every modality); "
        "chosen so that true propensity scores lie in (0.01, 0.99) for "
        "about 99% of patients"
    ),
}


OUTCOME_MODEL = {
    "severity_z": -6.0,
    "phototype": -4.0,
    "clinic_sd": 4.0,
    "measurement_cv": 0.05,
    "plateau_day": 120,
}


# subject_sd: what is left of the calibrated within-arm SD of percent improvement once severity
# (SD 1), phototype (SD about 1.15 in the registry's mix), clinic and measurement error
# (measurement_cv x 100 points) are counted; shared by every indication (targets: acne scars).
OUTCOME_MODEL["subject_sd"] = round(
    math.sqrt(
        CALIBRATION["improvement_sd"].value ** 2
        - OUTCOME_MODEL["severity_z"] ** 2
        - (OUTCOME_MODEL["phototype"] * 1.15) ** 2
        - OUTCOME_MODEL["clinic_sd"] ** 2
        - (100 * OUTCOME_MODEL["measurement_cv"]) ** 2
    ),
    2,
)


SEVERE_ERYTHEMA_OR = {
    "MN": 1.0,
    "MN+PRP": CALIBRATION["severe_erythema_odds_ratio"].value,
    "MN+RF": 1.3,
    "MN+laser": 2.5,
}


# Per-session relative risk of PIH; "laser" (ablative CO2 alone) from the calibration.
PIH_RR = {
    "MN": 1.0,
    "MN+PRP": 1.0,
    "MN+RF": 1.3,
    "MN+laser": 3.0,
    "laser": CALIBRATION["pih_relative_risk_laser"].value,
}


# Registry visits: nominal days, labels, probability a subject has each one.
REGISTRY_VISITS = (
    (30, "month_1", 0.5),
    (60, "month_2", 0.4),
    (90, "month_3", 0.6),
    (168, "month_6", 0.9),
    (240, "month_8", 0.5),
    (300, "month_10", 0.4),
    (365, "month_12", 0.5),
)


VISIT_JITTER_SD, VISIT_JITTER_MAX = 5.0, 12  # days; keeps nominal visits apart


DECLINE_START_MIN, DECLINE_START_MEAN_EXTRA, DECLINE_RATE = 200.0, 150.0, 0.2


GAIS_CUTS = (75.0, 50.0, 25.0, -10.0)  # pct improvement >= cut -> GAIS 1, 2, 3, 4; else 5
