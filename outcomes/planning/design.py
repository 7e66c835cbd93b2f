"""The trial to plan: design, visit schedule, dropout, effect and variance components.

:class:`Design` holds everything a power study simulates, with defaults from the calibrated
trial simulator (:mod:`outcomes.simulate.calibration`): the Goodman & Baron quantitative score
follows ``score = (Intercept) + week*week + combo*arm + week_combo*week*arm + u + v*week + w + e``
(week = day / 7; ``(u, v)`` per patient, ``w`` per treated side in split-face trials, ``e`` per
side and visit), rounded to whole points and kept within 0-84 as the instrument is scored.
:meth:`Design.assumptions` lists each value with its source.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import pandas as pd

from outcomes.errors import InputError
from outcomes.simulate.calibration import CALIBRATION, CALIBRATION_ASSUMPTIONS, TRIAL_LMM

__all__ = ["DESIGNS", "Design"]


DESIGNS = ("split_body", "parallel")

#: Where each default comes from (the calibration targets behind ``TRIAL_LMM``).
_LMM_SOURCE = "derived in outcomes.simulate.calibration (_trial_lmm_defaults) from"


def _target(name: str) -> str:
    t = CALIBRATION[name]
    return f"{name} {t.value:g} (published {t.low:g} to {t.high:g} {t.unit}; {t.source})"


@dataclass(frozen=True)
class Design:
    """A split-face or parallel trial of a combination against a control, as simulated.

    Parameters
    ----------
    design
        ``"split_body"`` (each patient's two sides randomised, one to each arm) or
        ``"parallel"`` (patients randomised 1:1).
    visit_days
        Assessment days, starting at 0 (baseline).
    primary_day
        Day of the primary comparison; one of ``visit_days`` (default: the last).
    n_sessions, session_interval_days
        Treatment course (sessions on days 0, interval, ...), recorded for the report; the
        calibrated outcome model is linear in time from day 0, so it does not use them.
    dropout
        Probability that a patient is lost before the last visit (at a uniform day).
    missed_visit
        Probability of missing each visit between baseline and the last one.
    intercept, week, combo, week_combo
        Fixed effects of the score model (``week_combo``: the combination's extra change per
        week; the difference at the primary visit is ``combo + week_combo * primary_week``).
    sd_subject_intercept, sd_subject_week, corr_subject
        Patient random intercept and week slope (SDs, correlation).
    sd_unit
        SD of the side's random intercept (split-face only; 0 in parallel trials).
    sd_residual
        Residual SD (before rounding).
    round_scores
        Round to whole points and keep within 0-84, as the instrument is scored.
    """

    design: str = "split_body"
    visit_days: tuple[int, ...] = (0, 28, 56, 84, 168)
    primary_day: int | None = None
    n_sessions: int = 3
    session_interval_days: int = 28
    dropout: float = CALIBRATION["dropout"].value
    missed_visit: float = 0.05
    intercept: float = TRIAL_LMM["intercept"]
    week: float = TRIAL_LMM["week"]
    combo: float = TRIAL_LMM["combo"]
    week_combo: float = TRIAL_LMM["week_combo"]
    sd_subject_intercept: float = TRIAL_LMM["sd_subject_intercept"]
    sd_subject_week: float = TRIAL_LMM["sd_subject_week"]
    corr_subject: float = TRIAL_LMM["corr_subject"]
    sd_unit: float | None = None
    sd_residual: float = TRIAL_LMM["sd_residual"]
    round_scores: bool = True
    overridden: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if self.design not in DESIGNS:
            raise InputError(f"design={self.design!r}: use one of {', '.join(DESIGNS)}.")
        days = tuple(int(d) for d in self.visit_days)
        if len(days) < 1 or days[0] < 0 or any(b <= a for a, b in itertools.pairwise(days)):
            raise InputError(f"visit_days={list(self.visit_days)}: increasing days from 0.")
        object.__setattr__(self, "visit_days", days)
        primary = days[-1] if self.primary_day is None else int(self.primary_day)
        if primary not in days:
            raise InputError(f"primary_day={primary}: not one of the visit days {list(days)}.")
        object.__setattr__(self, "primary_day", primary)
        if self.sd_unit is None:
            object.__setattr__(
                self, "sd_unit", TRIAL_LMM["sd_unit"] if self.design == "split_body" else 0.0
            )
        if self.design == "parallel" and self.sd_unit != 0:
            raise InputError("sd_unit must be 0 in a parallel trial (one unit per patient).")
        for name in ("dropout", "missed_visit"):
            p = getattr(self, name)
            if not 0.0 <= p < 1.0:
                raise InputError(f"{name}={p}: a probability in [0, 1).")
        for name in ("sd_subject_intercept", "sd_subject_week", "sd_unit", "sd_residual"):
            if not getattr(self, name) >= 0:
                raise InputError(f"{name}={getattr(self, name)}: a standard deviation >= 0.")
        if self.sd_residual <= 0:
            raise InputError("sd_residual must be > 0.")
        if not -1.0 <= self.corr_subject <= 1.0:
            raise InputError(f"corr_subject={self.corr_subject}: a correlation in [-1, 1].")
        if not 1 <= self.n_sessions <= 20 or self.session_interval_days < 1:
            raise InputError("n_sessions must be 1 to 20 and session_interval_days >= 1.")

    @classmethod
    def build(cls, effect: float | None = None, **options: Any) -> Design:
        """A design from keyword options, recording which defaults were overridden.

        ``effect`` sets the true difference (combination minus control) at the primary visit
        through ``week_combo`` (with ``combo`` 0 unless given): ``effect / primary_week``.
        """
        names = {f for f in cls.__dataclass_fields__ if f != "overridden"}
        unknown = sorted(set(options) - names)
        if unknown:
            raise InputError(
                f"Unknown design option(s) {', '.join(unknown)}; use {', '.join(sorted(names))}."
            )
        given = {k: v for k, v in options.items() if v is not None}
        design = cls(**given, overridden=tuple(sorted(set(given) - {"design"})))
        if effect is not None:
            design = design.with_effect(effect)
        return design

    @property
    def primary_week(self) -> float:
        """The primary visit in weeks (day / 7)."""
        return float(self.primary_day or 0) / 7.0

    @property
    def effect(self) -> float:
        """True difference, combination minus control, at the primary visit (score points)."""
        return self.combo + self.week_combo * self.primary_week

    def with_effect(self, effect: float) -> Design:
        """The same design with ``effect`` at the primary visit (through ``week_combo``)."""
        if self.primary_week == 0:
            return replace(self, combo=float(effect), overridden=(*self.overridden, "effect"))
        slope = (float(effect) - self.combo) / self.primary_week
        return replace(self, week_combo=slope, overridden=(*self.overridden, "effect"))

    def null(self) -> Design:
        """The same design with no difference between the arms (for the type I error)."""
        return replace(self, combo=0.0, week_combo=0.0)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (JSON-ready), as recorded with the results."""
        out = asdict(self)
        out["visit_days"] = list(self.visit_days)
        out["overridden"] = list(self.overridden)
        return out

    @property
    def size_label(self) -> str:
        """What ``n`` counts: patients (split-face: each in both arms) or patients per arm."""
        return "patients" if self.design == "split_body" else "patients per arm"

    def paired_sd(self) -> float:
        """SD of the difference between arms at one visit, without rounding.

        Split-face: the two sides share the patient's intercept and slope, so the difference
        is ``w_1 - w_2 + e_1 - e_2``; parallel: the SD of one patient's score at the primary
        visit (for a two-sample comparison). Used by the closed-form check.
        """
        assert self.sd_unit is not None
        if self.design == "split_body":
            return math.sqrt(2 * (self.sd_unit**2 + self.sd_residual**2))
        wk = self.primary_week
        var = (
            self.sd_subject_intercept**2
            + (wk * self.sd_subject_week) ** 2
            + 2 * wk * self.corr_subject * self.sd_subject_intercept * self.sd_subject_week
            + self.sd_residual**2
        )
        return math.sqrt(var)

    def assumptions(self) -> pd.DataFrame:
        """Each design value with its source: ``parameter, value, default, source``."""
        a = CALIBRATION_ASSUMPTIONS
        lmm = f"{_LMM_SOURCE} {_target('improvement_control')}"
        sources = {
            "design": "chosen by the user (default: split-face)",
            "visit_days": "chosen by the user (default: the simulated demo trial's schedule)",
            "primary_day": "chosen by the user (default: the last visit)",
            "n_sessions": "chosen by the user (not used by the outcome model)",
            "session_interval_days": "chosen by the user (not used by the outcome model)",
            "dropout": _target("dropout"),
            "missed_visit": "assumption (simulated demo trial: 5% of intermediate visits)",
            "intercept": _target("baseline_gb_quant_mean"),
            "week": lmm,
            "combo": "assumption: no difference at baseline (randomised)",
            "week_combo": (
                f"{_target('improvement_combination')} minus improvement_control, spread "
                "evenly over the weeks to the endpoint"
            ),
            "sd_subject_intercept": f"{_LMM_SOURCE} {_target('baseline_gb_quant_sd')}",
            "sd_subject_week": f"{_LMM_SOURCE} {_target('improvement_sd')}",
            "corr_subject": (
                "derived: improvement proportional to the baseline score (percent improvement)"
            ),
            "sd_unit": f"assumption, never reported ({a['within_patient']})",
            "sd_residual": "assumption, never reported",
            "round_scores": "the instrument is scored in whole points, 0-84",
        }
        default = Design(design=self.design)
        rows = []
        for name, source in sources.items():
            value = getattr(self, name)
            given = name in self.overridden or (
                name == "week_combo" and "effect" in self.overridden
            )
            rows.append(
                {
                    "parameter": name,
                    "value": list(value) if isinstance(value, tuple) else value,
                    "default": getattr(default, name) == value,
                    "source": "given by the user" if given else source,
                }
            )
        return pd.DataFrame(rows, columns=["parameter", "value", "default", "source"])
