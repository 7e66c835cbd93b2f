"""Synthetic data feeds with known truth: split-body and parallel trials, and registries.

The simulator writes the same six tables real sites send (``studies``, ``subjects``, ``units``,
``sessions``, ``assessments``, ``adverse_events``; columns and codes exactly as in the data
dictionary, every row valid) plus ``truth.json``, the parameters that generated them, so
models can be checked by recovery.

- :func:`simulate_trial`: a randomised trial (split-body or parallel) with a continuous outcome
  from a stated linear mixed model (``gb_quant``), an ordinal outcome with exact latent
  improvement times (``gb_qual``), blinded photo raters, patient-reported pain and
  satisfaction, sessions, dropout, missed visits and adverse events.
- :func:`simulate_registry`: an observational registry where clinicians choose the modality
  from phototype, baseline severity and clinic preference (confounding by construction), with a
  homogeneous true effect of each combination, irregular visits, loss to follow-up, loss of
  response and retreatments. Vectorised: about 100,000 subjects (a million assessment rows)
  take seconds.

Defaults are calibrated to published arm-level numbers (acne scars): :data:`CALIBRATION` holds
each target's design value, published range, unit, definition and source, and the trial's LMM,
baseline grade, dropout, PIH and the registry's acne-scar outcome are derived from it;
:func:`calibration_table` lists the targets, and ``truth.json`` repeats them (``calibration``).

Same seed, same bytes: all randomness comes from ``numpy.random.SeedSequence(seed)``, rows are
in a fixed order and floats are written with a fixed format (CSV and Parquet; XLSX workbooks
store the time they were written).

``truth.json`` of a trial: ``simulator, seed, study_id, design, options`` (every argument),
``arms``, ``lmm`` (``formula``; ``fixed`` with terms ``(Intercept), week, combo, week:combo``;
``sd_subject_intercept, sd_subject_week, corr_subject, sd_unit, sd_residual``; ``n_clipped``;
notes on rounding and clipping), ``calibration`` (``targets``, ``assumptions``,
``implied_side_correlation``), ``survival`` (``endpoint, instrument, definition,
weibull_shape, control_scale_days, control_median_days, hazard_ratio,
combination_scale_days``), ``event_times.first_improvement`` (every unit id -> true day of the
first one-grade improvement, including units censored in the data), ``raters``,
``patient_reported``, ``follow_up``, ``adverse_events``.

``truth.json`` of a registry: ``simulator, seed, study_id, design, options``, ``calibration``
(as for trials, plus ``registry``: what is calibrated and what has no target), ``effects``
(``outcome: "pct_improvement_day168", vs: "MN"``, and the true effect in percentage points of
``MN+PRP, MN+RF, MN+laser``), ``confounders`` (``phototype, baseline_severity, site_id``),
``outcome``, ``baseline_severity``, ``phototype_model``, ``treatment_model`` (coefficients and
clinic preferences), ``outcome_model`` (coefficients and clinic effects),
``durability``, ``event_times.loss_of_response`` (unit id -> true day the improvement fell
below 50%, for the responders who lose it, including days after the end of follow-up),
``retreatment``, ``follow_up``, ``gais``, ``pain_vas``, ``adverse_events``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from outcomes.data.dictionary import Dictionary, load_dictionary
from outcomes.errors import InputError

__all__ = [
    "CALIBRATION",
    "Feeds",
    "Target",
    "calibration_table",
    "simulate_registry",
    "simulate_trial",
    "write_feeds",
]

FORMATS = ("csv", "parquet", "xlsx")
FLOAT_FORMAT = "%.10g"
XLSX_MAX_ROWS = 1_048_575
REGISTRY_MODALITIES = ("MN", "MN+PRP", "MN+RF", "MN+laser")
PHOTOTYPES = ("I", "II", "III", "IV", "V", "VI")
AE_TERMS = ("erythema", "edema", "dryness", "pih", "infection")

# --------------------------------------------------------------------------------------------
# calibration: published targets, in one place; the defaults below are derived from them


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
# Treatment choice: multinomial logit, reference MN.
CHOICE_MODEL: dict[str, Any] = {
    "intercept": {"MN+PRP": 0.0, "MN+RF": -0.5, "MN+laser": -0.3},
    "severity_z": {"MN+PRP": -0.6, "MN+RF": 0.9, "MN+laser": 0.3},
    "phototype": {"MN+PRP": 0.0, "MN+RF": 0.1, "MN+laser": -0.9},
    "clinic_preference_sd": 0.6,
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


@dataclass
class Feeds:
    """Simulated feeds and the truth that generated them.

    Attributes
    ----------
    tables
        One DataFrame per dictionary table, keyed in dictionary order, with exactly the
        dictionary's columns.
    truth
        JSON-serialisable parameters, options and latent event times.
    """

    tables: dict[str, pd.DataFrame]
    truth: dict[str, Any]


# --------------------------------------------------------------------------------------------
# small helpers


def _ids(prefix: str, n: int, width: int = 3) -> np.ndarray:
    width = max(width, len(str(n)))
    return np.array([f"{prefix}{i:0{width}d}" for i in range(1, n + 1)], dtype=object)


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _draw_categories(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One category index per row of ``probs`` (rows sum to 1), by inverse CDF."""
    cum = np.cumsum(probs, axis=1)
    u = rng.random(len(probs))[:, None]
    return np.minimum((u > cum).sum(axis=1), probs.shape[1] - 1)


def _choice(rng: np.random.Generator, options: Mapping[str, float], n: int) -> np.ndarray:
    keys = np.array(list(options), dtype=object)
    p = np.array(list(options.values()), dtype=float)
    return keys[rng.choice(len(keys), size=n, p=p / p.sum())]


def _frame(d: Dictionary, name: str, data: Mapping[str, Any], n: int) -> pd.DataFrame:
    """A DataFrame with exactly the dictionary's columns, in order, with plain dtypes."""
    out: dict[str, Any] = {}
    for col in d.table(name).columns.values():
        values = data.get(col.name)
        if col.type in ("string", "code", "instrument"):
            arr = np.full(n, None, dtype=object) if values is None else values
            out[col.name] = pd.array(np.asarray(arr, dtype=object), dtype="string")
        elif col.type == "integer":
            if values is None:
                out[col.name] = pd.array([pd.NA] * n, dtype="Int64")
            else:
                arr = np.asarray(values, dtype=float)
                has_na = bool(np.isnan(arr).any())
                out[col.name] = pd.array(arr, dtype="Int64") if has_na else arr.astype(np.int64)
        elif col.type == "number":
            out[col.name] = np.full(n, np.nan) if values is None else np.asarray(values, float)
        elif col.type == "boolean":
            out[col.name] = np.asarray(values, dtype=bool)
        else:  # pragma: no cover - the dictionary has no other types
            raise InputError(f"unknown column type {col.type!r} in the dictionary")
    return pd.DataFrame(out)


def _plain(obj: Any) -> Any:
    """Convert NumPy scalars and arrays inside ``obj`` to JSON-serialisable Python values."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | np.ndarray):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def _check_modality(d: Dictionary, name: str, value: str) -> None:
    if value not in d.codelists["modality"]:
        known = ", ".join(d.codelists["modality"])
        raise InputError(f"{name}={value!r} is not a modality code; use one of: {known}")


# --------------------------------------------------------------------------------------------
# sessions and adverse events, shared by trials and registries


def _session_settings(
    rng: np.random.Generator, modality: np.ndarray, unit_of_row: np.ndarray, n_units: int
) -> dict[str, np.ndarray]:
    """Device settings for session rows; adjuncts only where the modality has them."""
    n = len(modality)
    has_prp = np.char.find(modality.astype(str), "PRP") >= 0
    has_rf = np.char.find(modality.astype(str), "RF") >= 0
    has_laser = np.char.find(modality.astype(str), "laser") >= 0
    # depth and numbing are chosen once per unit
    depth_unit = rng.integers(0, 7, size=n_units) * 0.25 + 1.0  # 1.0 .. 2.5 mm
    numbing_unit = np.array(["lidocaine", "lidocaine_prilocaine", "tetracaine"], dtype=object)[
        rng.choice(3, size=n_units, p=[0.5, 0.4, 0.1])
    ]
    laser_unit = np.array(["co2", "er_yag", "erglass_1550"], dtype=object)[
        rng.choice(3, size=n_units, p=[0.5, 0.25, 0.25])
    ]
    passes = rng.integers(2, 7, size=n)
    prp = np.round(rng.uniform(2.0, 5.0, size=n), 1)
    rf = np.round(rng.uniform(20.0, 60.0, size=n), 0)
    fluence = np.round(rng.uniform(10.0, 60.0, size=n), 1)
    device = np.where(has_rf, "mn_rf", "pen").astype(object)
    return {
        "device": device,
        "needle_depth_mm": depth_unit[unit_of_row],
        "passes": passes,
        "numbing_agent": numbing_unit[unit_of_row],
        "prp_volume_ml": np.where(has_prp, prp, np.nan),
        "rf_energy_mj": np.where(has_rf, rf, np.nan),
        "laser_type": np.asarray(np.where(has_laser, laser_unit[unit_of_row], None), dtype=object),
        "laser_fluence_j_cm2": np.where(has_laser, fluence, np.nan),
    }


def _adverse_events(
    rng: np.random.Generator,
    *,
    unit: np.ndarray,
    session_day: np.ndarray,
    session_modality: np.ndarray,
    unit_subject: np.ndarray,
    subject_phototype: np.ndarray,
    subject_end_day: np.ndarray,
    severe_erythema_or: Mapping[str, float],
    pih_rr: Mapping[str, float],
    params: Mapping[str, Any],
) -> dict[str, np.ndarray]:
    """Adverse events from session rows (one row per unit and session delivered).

    Severe erythema is decided once per unit (a unit-level odds ratio by modality, as reported
    per side/patient in the literature) and placed at one of the unit's sessions; the other
    events are per session. Events with onset after the subject's end_day are not observed.
    """
    n = len(unit)
    subj = unit_subject[unit]
    photo = subject_phototype[subj]
    mods = np.asarray(session_modality, dtype=object)
    rr = pd.Series(mods).map(pih_rr).fillna(1.0).to_numpy(dtype=float)
    # severe erythema: per unit, at one random session of the unit
    n_units = len(unit_subject)
    counts = np.bincount(unit, minlength=n_units)
    first = np.zeros(n_units, dtype=np.int64)
    first[1:] = np.cumsum(counts)[:-1]
    order = np.arange(n) - first[unit]  # rows are sorted by unit, then session
    unit_mod = np.empty(n_units, dtype=object)
    unit_mod[unit] = mods
    unit_or = pd.Series(unit_mod).map(severe_erythema_or).fillna(1.0).to_numpy(dtype=float)
    p_sev = _expit(_logit(params["p_severe_erythema_unit"]) + np.log(unit_or))
    severe_unit = rng.random(n_units) < p_sev
    pick = np.floor(rng.random(n_units) * np.maximum(counts, 1)).astype(np.int64)
    severe = severe_unit[unit] & (order == pick[unit])
    u = rng.random((n, 5))
    mild_ery = ~severe & (u[:, 0] < params["p_erythema_session"])
    edema = u[:, 1] < params["p_edema_session"]
    dryness = u[:, 2] < params["p_dryness_session"]
    p_pih = np.array([params["p_pih_session_by_phototype"][p] for p in PHOTOTYPES])[photo] * rr
    pih = u[:, 3] < p_pih
    infection = u[:, 4] < params["p_infection_session"]

    rows: list[dict[str, np.ndarray]] = []

    def add(mask, term, onset_lag, duration, severity, serious, related):
        idx = np.flatnonzero(mask)
        k = len(idx)
        rows.append(
            {
                "row": idx,
                "term": np.full(k, term, dtype=object),
                "onset": session_day[idx] + onset_lag[idx],
                "duration": duration[idx].astype(float),
                "severity": severity[idx],
                "serious": serious[idx],
                "related": np.full(k, related, dtype=object),
            }
        )

    zeros = np.zeros(n, dtype=np.int64)
    false = np.zeros(n, dtype=bool)
    mild_or_mod = np.where(rng.random(n) < 0.7, "mild", "moderate").astype(object)
    ery_dur = np.where(mild_or_mod == "mild", rng.integers(1, 4, n), rng.integers(2, 6, n))
    add(
        severe,
        "erythema",
        zeros,
        rng.integers(4, 11, n),
        np.full(n, "severe", dtype=object),
        false,
        "definite",
    )
    add(mild_ery, "erythema", zeros, ery_dur, mild_or_mod, false, "definite")
    add(
        edema,
        "edema",
        zeros,
        rng.integers(1, 5, n),
        np.where(rng.random(n) < 0.8, "mild", "moderate").astype(object),
        false,
        "definite",
    )
    add(
        dryness,
        "dryness",
        rng.integers(1, 4, n),
        rng.integers(3, 8, n),
        np.full(n, "mild", dtype=object),
        false,
        "probable",
    )
    add(
        pih,
        "pih",
        rng.integers(7, 22, n),
        rng.integers(30, 121, n),
        np.where(rng.random(n) < 0.6, "mild", "moderate").astype(object),
        false,
        "probable",
    )
    serious = rng.random(n) < params["p_serious_given_infection"]
    add(
        infection,
        "infection",
        rng.integers(2, 6, n),
        rng.integers(7, 15, n),
        np.where(serious, "severe", "moderate").astype(object),
        serious,
        "possible",
    )

    ev = {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}
    ev_unit = unit[ev["row"]]
    ev_subj = unit_subject[ev_unit]
    keep = ev["onset"] <= subject_end_day[ev_subj]
    ev = {k: v[keep] for k, v in ev.items()}
    ev_unit, ev_subj = ev_unit[keep], ev_subj[keep]
    term_code = np.searchsorted(np.array(sorted(AE_TERMS)), ev["term"].astype(str))
    sev_code = np.searchsorted(np.array(["mild", "moderate", "severe"]), ev["severity"].astype(str))
    o = np.lexsort((sev_code, term_code, ev_unit, ev["onset"], ev_subj))
    ev = {k: v[o] for k, v in ev.items()}
    ev_unit, ev_subj = ev_unit[o], ev_subj[o]
    starts = np.r_[True, ev_subj[1:] != ev_subj[:-1]] if len(ev_subj) else np.zeros(0, bool)
    group_start = np.maximum.accumulate(np.where(starts, np.arange(len(ev_subj)), 0))
    seq = np.arange(len(ev_subj)) - group_start + 1
    return {"subject": ev_subj, "unit": ev_unit, "ae_seq": seq, **ev}


def _ae_table(d, study_id, subject_ids, unit_ids, ev, *, with_unit: bool) -> pd.DataFrame:
    n = len(ev["ae_seq"])
    return _frame(
        d,
        "adverse_events",
        {
            "study_id": np.full(n, study_id, dtype=object),
            "subject_id": subject_ids[ev["subject"]],
            "ae_seq": ev["ae_seq"],
            "unit_id": unit_ids[ev["unit"]] if with_unit else None,
            "term": ev["term"],
            "onset_day": ev["onset"],
            "duration_days": ev["duration"],
            "severity": ev["severity"],
            "serious": ev["serious"],
            "relatedness": ev["related"],
        },
        n,
    )


def _assessment_table(
    d: Dictionary, study_id: str, unit_ids: np.ndarray, parts: Sequence[dict[str, Any]]
) -> pd.DataFrame:
    """Concatenate assessment parts and sort by unit, day, instrument, rater."""
    instruments = np.array(list(d.instruments), dtype=object)
    roles = np.array(list(d.codelists["rater_role"]), dtype=object)
    inst_key = np.concatenate(
        [
            np.full(len(p["unit"]), list(instruments).index(p["instrument"]), dtype=np.int64)
            for p in parts
        ]
    )
    role_key = np.concatenate(
        [np.full(len(p["unit"]), list(roles).index(p["rater_role"]), dtype=np.int64) for p in parts]
    )
    a = {
        k: np.concatenate([p[k] for p in parts])
        for k in ("unit", "visit", "day", "value", "rater_id")
    }
    rater_key = pd.factorize(a["rater_id"], sort=True)[0]
    o = np.lexsort((rater_key, inst_key, a["day"], a["unit"]))
    n = len(o)
    return _frame(
        d,
        "assessments",
        {
            "study_id": np.full(n, study_id, dtype=object),
            "unit_id": unit_ids[a["unit"][o]],
            "instrument": instruments[inst_key[o]],
            "visit": a["visit"][o],
            "day": a["day"][o],
            "value": a["value"][o],
            "rater_role": roles[role_key[o]],
            "rater_id": a["rater_id"][o],
        },
        n,
    )


def _part(unit, instrument: str, visit, day, value, role: str, rater) -> dict[str, Any]:
    k = len(unit)

    def full(x):
        return np.full(k, x, dtype=object) if isinstance(x, str) else np.asarray(x, dtype=object)

    return {
        "unit": np.asarray(unit, dtype=np.int64),
        "instrument": instrument,
        "visit": full(visit),
        "day": np.asarray(day, dtype=np.int64),
        "value": np.asarray(value, dtype=float),
        "rater_role": role,
        "rater_id": full(rater),
    }


# --------------------------------------------------------------------------------------------
# trials


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
        "simulator": "outcomes.simulate.simulate_trial",
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


# --------------------------------------------------------------------------------------------
# registries


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
        "simulator": "outcomes.simulate.simulate_registry",
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


# --------------------------------------------------------------------------------------------
# writing


def write_feeds(feeds: Feeds, out_dir: str | Path, format: str = "csv") -> list[Path]:
    """Write the six tables (one file per table) and ``truth.json`` into ``out_dir``.

    Parameters
    ----------
    feeds
        Simulated feeds.
    out_dir
        Folder to write into (created if needed).
    format
        ``"csv"`` (UTF-8, ``\\n`` line ends, floats as ``%.10g``), ``"parquet"`` (pyarrow) or
        ``"xlsx"`` (one workbook per table; not byte-reproducible, as the workbook stores the
        time it was written).

    Returns
    -------
    list of Path
        The files written, tables in dictionary order, then ``truth.json``.
    """
    if format not in FORMATS:
        raise InputError(f"format={format!r}: use one of {', '.join(FORMATS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, df in feeds.tables.items():
        path = out / f"{name}.{format}"
        if format == "csv":
            df.to_csv(path, index=False, float_format=FLOAT_FORMAT, lineterminator="\n")
        elif format == "parquet":
            df.to_parquet(path, index=False, engine="pyarrow")
        else:
            if len(df) > XLSX_MAX_ROWS:
                raise InputError(
                    f"table {name} has {len(df)} rows, more than an xlsx sheet holds; "
                    "use csv or parquet"
                )
            df.to_excel(path, index=False, sheet_name=name)
        paths.append(path)
    truth_path = out / "truth.json"
    truth_path.write_text(json.dumps(feeds.truth, indent=2) + "\n", encoding="utf-8")
    paths.append(truth_path)
    return paths
