"""Building blocks shared by the trial and registry simulators: identifiers, draws, sessions,
adverse events and the tables they fill.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from outcomes.data.dictionary import Dictionary
from outcomes.errors import InputError
from outcomes.simulate.calibration import AE_TERMS, PHOTOTYPES


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
