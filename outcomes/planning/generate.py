"""One simulated trial as arrays: the score model of :class:`~.design.Design`, vectorised.

The draws follow :func:`outcomes.simulate_trial` (same model, dropout and missed visits) but
skip everything a power study does not analyse (tables, grades, adverse events), so one
replicate of 60 patients takes well under a millisecond.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from outcomes.planning.design import Design

__all__ = ["Replicate", "simulate_replicate"]


@dataclass(frozen=True)
class Replicate:
    """One simulated trial in long form, rows ordered by unit then visit.

    ``subject`` and ``unit`` are codes ``0 .. k - 1``; ``arm`` is 1 for the combination;
    ``visit`` indexes ``design.visit_days``; ``week`` is day / 7.
    """

    y: np.ndarray
    week: np.ndarray
    arm: np.ndarray
    visit: np.ndarray
    subject: np.ndarray
    unit: np.ndarray
    n_subjects: int
    n_units: int

    def to_frame(self) -> pd.DataFrame:
        """The replicate as a DataFrame (``y, week, visit, arm, subject, unit``)."""
        return pd.DataFrame(
            {
                "y": self.y,
                "week": self.week,
                "visit": self.visit,
                "arm": self.arm,
                "subject": self.subject,
                "unit": self.unit,
            }
        )


def simulate_replicate(design: Design, n: int, rng: np.random.Generator) -> Replicate:
    """Simulate one trial with ``n`` patients per arm.

    Split-face: ``n`` patients, each with one side in each arm. Parallel: ``2 n`` patients,
    ``n`` in each arm. Arms are assigned in a fixed order (sides and patients are exchangeable
    in the model, so this is the same in distribution as randomising them).
    """
    split = design.design == "split_body"
    n_subj = n if split else 2 * n
    days = np.asarray(design.visit_days, dtype=float)
    wk = days / 7.0
    n_vis = len(days)
    if split:
        unit_subject = np.repeat(np.arange(n_subj), 2)
        arm = np.tile(np.array([1.0, 0.0]), n_subj)
    else:
        unit_subject = np.arange(n_subj)
        arm = (np.arange(n_subj) < n).astype(float)
    n_units = len(unit_subject)

    # follow-up: dropout at a uniform day, missed intermediate visits
    dropped = rng.random(n_subj) < design.dropout
    drop_day = np.where(dropped, rng.uniform(1.0, max(days[-1], 1.0), n_subj), np.inf)
    missed = rng.random((n_subj, n_vis)) < design.missed_visit
    missed[:, 0] = False
    missed[:, -1] = False
    attended = (days[None, :] < drop_day[:, None]) & ~missed

    # score model
    z = rng.standard_normal((n_subj, 2))
    u = design.sd_subject_intercept * z[:, 0]
    rho = design.corr_subject
    v = design.sd_subject_week * (rho * z[:, 0] + math.sqrt(1 - rho**2) * z[:, 1])
    w = (design.sd_unit or 0.0) * rng.standard_normal(n_units)
    e = design.sd_residual * rng.standard_normal((n_units, n_vis))
    s = unit_subject
    score = (
        design.intercept
        + design.week * wk[None, :]
        + (design.combo + design.week_combo * wk[None, :]) * arm[:, None]
        + u[s, None]
        + v[s, None] * wk[None, :]
        + w[:, None]
        + e
    )
    if design.round_scores:
        score = np.clip(np.rint(score), 0.0, 84.0)

    ui, vi = np.nonzero(attended[s])
    return Replicate(
        y=score[ui, vi],
        week=wk[vi],
        arm=arm[ui],
        visit=vi.astype(np.intp),
        subject=s[ui].astype(np.intp),
        unit=ui.astype(np.intp),
        n_subjects=n_subj,
        n_units=n_units,
    )
