"""Responders at the primary visit in one simulated trial: exact McNemar or Fisher test.

``analysis="responder"``: a unit responds when its score at the primary visit shows a full
result (at least 50% improvement from baseline, the declared endpoint ``full_result`` and the
calibrated simulator's responder cut; :func:`~outcomes.planning.interval.full_result`). Units
not seen at the primary visit, or with a baseline score of 0, are left out.

- Split-face: the patients with both sides seen. The two sides share the patient's random
  effects, so most pairs agree; only discordant pairs carry the arm effect. The test is the
  exact McNemar test (``b`` pairs with only the treated side responding against ``c`` with
  only the control side: two-sided binomial test of ``b`` in ``b + c`` at 1/2); the estimate
  is the conditional (within-patient) log odds ratio ``log(b / c)`` with the exact interval
  from the Clopper-Pearson interval of ``b / (b + c)``.
- Parallel: the 2 x 2 table of response by arm; Fisher's exact test, the conditional
  maximum-likelihood log odds ratio and its exact interval
  (:func:`scipy.stats.contingency.odds_ratio`).

Exact tests never exceed alpha (they are conservative with few discordant pairs or
responders). A trial with no discordant pair (split-face) or no variation in response
(parallel) has no test: counted as failed. An odds ratio of 0 or infinity (an empty cell) is
reported as such, with the warning ``zero_cell``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.stats
from scipy.stats.contingency import odds_ratio

from outcomes.planning.design import Design
from outcomes.planning.generate import Replicate
from outcomes.planning.interval import full_result

__all__ = ["analyse_responder", "responder_table"]


def responder_table(rep: Replicate, design: Design) -> np.ndarray:
    """The 2 x 2 counts of the primary visit.

    Split-face: rows treated side responds (yes, no), columns control side (yes, no), one
    count per patient with both sides seen. Parallel: rows arm (combination, control),
    columns response (yes, no).
    """
    primary = design.visit_days.index(int(design.primary_day or 0))
    met = full_result(rep)
    at = (rep.visit == primary) & ~np.isnan(met)
    resp, arm, subject = met[at], rep.arm[at], rep.subject[at]
    if design.design == "split_body":
        treated = np.full(rep.n_subjects, np.nan)
        control = np.full(rep.n_subjects, np.nan)
        treated[subject[arm == 1]] = resp[arm == 1]
        control[subject[arm == 0]] = resp[arm == 0]
        both = ~np.isnan(treated) & ~np.isnan(control)
        t, c = treated[both], control[both]
        return np.array(
            [
                [np.sum((t == 1) & (c == 1)), np.sum((t == 1) & (c == 0))],
                [np.sum((t == 0) & (c == 1)), np.sum((t == 0) & (c == 0))],
            ]
        )
    return np.array(
        [
            [np.sum((arm == 1) & (resp == 1)), np.sum((arm == 1) & (resp == 0))],
            [np.sum((arm == 0) & (resp == 1)), np.sum((arm == 0) & (resp == 0))],
        ]
    )


def _result(est: float, se: float, p: float, low: float, high: float) -> dict[str, Any]:
    zero_cell = not np.isfinite(est)
    return {
        "estimate": est,
        "std_error": se,
        "df": float("inf"),
        "p_value": float(p),
        "conf_low": low,
        "conf_high": high,
        "warnings": "zero_cell" if zero_cell else "",
        "error": "",
    }


def analyse_responder(rep: Replicate, design: Design, alpha: float) -> dict[str, Any]:
    """Exact test and conditional log odds ratio of response, combination against control."""
    table = responder_table(rep, design)
    nan = float("nan")
    failed: dict[str, Any] = {"estimate": nan, "std_error": nan, "df": nan, "p_value": nan}
    failed |= {"conf_low": nan, "conf_high": nan, "warnings": ""}
    with np.errstate(divide="ignore"):
        if design.design == "split_body":
            b, c = int(table[0, 1]), int(table[1, 0])
            if b + c == 0:
                return failed | {"error": "no discordant pair at the primary visit: no test"}
            test = scipy.stats.binomtest(b, b + c, 0.5)
            ci = test.proportion_ci(1 - alpha, method="exact")
            est = float(np.log(b) - np.log(c))
            se = float(np.sqrt(1 / b + 1 / c)) if b and c else nan
            low = float(np.log(ci.low) - np.log1p(-ci.low))
            high = float(np.log(ci.high) - np.log1p(-ci.high))
            return _result(est, se, test.pvalue, low, high)
        if (table.sum(axis=0) == 0).any():
            return failed | {"error": "all or no patients responded: no test"}
        p = scipy.stats.fisher_exact(table).pvalue
        ratio = odds_ratio(table, kind="conditional")
        ci = ratio.confidence_interval(1 - alpha)
        se = float(np.sqrt((1 / table).sum())) if table.all() else nan
        est = float(np.log(ratio.statistic))
        return _result(est, se, p, float(np.log(ci.low)), float(np.log(ci.high)))
