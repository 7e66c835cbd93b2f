"""The two LMM engines agree with each other to 1e-8 on every mixed model in tests/r/.

``engine="outcomes"`` (analytic gradient, Newton polishing) and ``engine="statsmodels"``
(statsmodels' MixedLM as a start, then lme4's profiled deviance) optimise the same criterion,
so at the optimum they must agree far more closely than either agrees with R's optimiser.
Both work on the least-squares residual of the response, so the agreement does not depend on
the BLAS kernel. Scales: fixed effects by ``max(|beta|, SE)``, standard errors and sigma
relative, theta by ``max(1, |theta|)``, the log-likelihood absolute.

The clinic model of tests/r/engine (a random slope at the nested level) is left out: the
statsmodels engine supports random intercepts only below the top level.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest

from outcomes.models.lmm import engine as lmm_engine
from outcomes.models.lmm.fit import lmm
from outcomes.models.lmm.statsmodels_path import fit_statsmodels


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rref = _load("rref", Path(__file__).parent / "r/mixed/rref.py")
engine_cases = _load("engine_cases", Path(__file__).parent / "test_lmm_engine.py")
CASES, problem_for = engine_cases.CASES, engine_cases.problem_for

TOL = 1e-8
SLEEP = rref.load_csv("sleepstudy.csv")
SPLIT = rref.load_csv("splitface.csv")
SINGULAR = rref.load_csv("singular.csv")

# tests/r/mixed: the lmm() calls of test_mixed.py and test_mixed_splitface.py
LMM_CALLS = {
    "sleep_slope_reml": (SLEEP, "Reaction ~ Days", {"groups": "Subject", "re_formula": "~Days"}),
    "sleep_slope_ml": (
        SLEEP,
        "Reaction ~ Days",
        {"groups": "Subject", "re_formula": "~Days", "reml": False},
    ),
    "sleep_intercept_reml": (SLEEP, "Reaction ~ Days", {"groups": "Subject"}),
    "split_visit": (SPLIT, "score ~ visit * arm", {"groups": "patient", "nested": "side"}),
    "split_week": (
        SPLIT,
        "score ~ week * arm",
        {"groups": "patient", "re_formula": "~week", "nested": "side"},
    ),
    "split_week_ml": (
        SPLIT,
        "score ~ week * arm",
        {"groups": "patient", "re_formula": "~week", "nested": "side", "reml": False},
    ),
    "split_ancova": (
        SPLIT[SPLIT["week"] > 0],
        "score ~ baseline + age + visit * arm",
        {"groups": "patient", "nested": "side"},
    ),
    "singular": (SINGULAR, "score ~ week * arm", {"groups": "patient"}),
}


def assert_agree(a, b, what: str) -> None:
    """Two LmmFit results agree to TOL on the criterion first, then on every estimate."""
    assert abs(a.loglik - b.loglik) <= TOL, f"{what}: logLik {a.loglik} vs {b.loglik}"
    se_a, se_b = np.sqrt(np.diag(a.vcov_beta)), np.sqrt(np.diag(b.vcov_beta))
    scale = np.maximum(np.abs(a.beta), se_a)
    np.testing.assert_array_less(np.abs(a.beta - b.beta) / scale, TOL, err_msg=f"{what} beta")
    np.testing.assert_allclose(se_b, se_a, rtol=TOL, err_msg=f"{what} SE")
    np.testing.assert_allclose(b.sigma, a.sigma, rtol=TOL, err_msg=f"{what} sigma")
    np.testing.assert_array_less(
        np.abs(a.theta - b.theta) / np.maximum(1.0, np.abs(a.theta)), TOL, err_msg=f"{what} theta"
    )


@pytest.mark.parametrize("name", [c for c in CASES if c != "clinic_reml"])
def test_engines_agree_on_the_engine_references(name):
    problem = problem_for(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # boundary fits warn; the warning is tested elsewhere
        ours, theirs = lmm_engine.fit(problem), fit_statsmodels(problem)
    assert_agree(ours, theirs, name)


@pytest.mark.parametrize("name", list(LMM_CALLS))
def test_engines_agree_through_lmm(name):
    data, formula, kwargs = LMM_CALLS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = lmm(data, formula, engine="outcomes", **kwargs)
        theirs = lmm(data, formula, engine="statsmodels", **kwargs)
    assert (ours.engine, theirs.engine) == ("outcomes", "statsmodels")
    assert_agree(ours.fit, theirs.fit, name)
