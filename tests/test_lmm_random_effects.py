"""Conditional modes, fitted values and residuals of a linear mixed model against lme4.

Reference: tests/r/mixed/ranef.R -> ranef.json (lmer with a tight bobyqa optimum) on the
simulated split-face data splitface.csv: ``(week | patient) + (1 | patient:side)``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from outcomes.models.lmm.fit import lmm
from outcomes.models.lmm.random_effects import conditional_modes, fitted_residuals

_spec = importlib.util.spec_from_file_location("rref", Path(__file__).parent / "r/mixed/rref.py")
rref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rref)  # type: ignore[union-attr]

REF = rref.load_json("ranef.json")
DATA = rref.load_csv("splitface.csv")


@pytest.fixture(scope="module")
def fit():
    result = lmm(DATA, "score ~ week * arm", groups="patient", re_formula="~week", nested="side")
    assert result.loglik == pytest.approx(REF["loglik"], abs=1e-8)
    return result


def test_conditional_modes_equal_lme4_ranef(fit) -> None:
    modes = conditional_modes(fit.fit)
    patient = modes.loc[modes["group"] == "patient"].pivot(
        index="level", columns="effect", values="estimate"
    )
    ref = REF["patient"]
    got = patient.loc[ref["level"]]
    np.testing.assert_allclose(got["Intercept"], ref["intercept"], atol=1e-5)
    np.testing.assert_allclose(got["week"], ref["week"], atol=1e-6)
    side = modes.loc[modes["group"] == "patient:side"].set_index("level")["estimate"]
    ref_side = REF["patient_side"]
    np.testing.assert_allclose(side.loc[ref_side["level"]], ref_side["intercept"], atol=1e-5)


def test_fitted_values_and_residuals_equal_lme4(fit) -> None:
    fr = fitted_residuals(fit.fit)
    np.testing.assert_allclose(fr["fitted"], REF["fitted"], atol=1e-5)
    np.testing.assert_allclose(fr["residual"], REF["residual"], atol=1e-5)
    np.testing.assert_allclose(fr["fitted"] + fr["residual"], DATA["score"], atol=1e-12)
