"""The outcomes LMM engine against lme4, statsmodels, and itself.

Reference numbers come from ``tests/r/engine/engine_reference.R`` (lme4 1.1-31 and lmerTest
3.1-3, tight optimiser tolerances), which also wrote the CSV data sets beside it. Tolerances
follow the engine's promise: fixed effects and log-likelihood to 1e-6 (relative), variance
components and standard errors to 1e-4.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.regression.mixed_linear_model import MixedLM

from outcomes.models.lmm.engine import fit
from outcomes.models.lmm.types import LmmProblem, RandomTerm

HERE = Path(__file__).parent / "r" / "engine"
REFERENCE = json.loads((HERE / "reference.json").read_text())

# name -> data file, response, fixed-effect columns (":" = product), random terms outermost
# first as (column in the data, lme4's group name, random-effect columns), REML, R call.
CASES: dict[str, dict] = {
    "sleep_slope_reml": {
        "csv": "sleepstudy.csv",
        "y": "Reaction",
        "x": ["Days"],
        "terms": [("Subject", "Subject", ["1", "Days"])],
        "reml": True,
        "r": "lmer(Reaction ~ Days + (Days | Subject), sleepstudy)",
    },
    "sleep_slope_ml": {
        "csv": "sleepstudy.csv",
        "y": "Reaction",
        "x": ["Days"],
        "terms": [("Subject", "Subject", ["1", "Days"])],
        "reml": False,
        "r": "lmer(Reaction ~ Days + (Days | Subject), sleepstudy, REML = FALSE)",
    },
    "sleep_intercept_reml": {
        "csv": "sleepstudy.csv",
        "y": "Reaction",
        "x": ["Days"],
        "terms": [("Subject", "Subject", ["1"])],
        "reml": True,
        "r": "lmer(Reaction ~ Days + (1 | Subject), sleepstudy)",
    },
    "splitface_reml": {
        "csv": "splitface.csv",
        "y": "y",
        "x": ["visit", "treated", "visit:treated"],
        "terms": [("patient", "patient", ["1"]), ("patient_side", "side:patient", ["1"])],
        "reml": True,
        "r": "lmer(y ~ visit * treated + (1 | patient / side), sf)",
    },
    "splitface_ml": {
        "csv": "splitface.csv",
        "y": "y",
        "x": ["visit", "treated", "visit:treated"],
        "terms": [("patient", "patient", ["1"]), ("patient_side", "side:patient", ["1"])],
        "reml": False,
        "r": "lmer(y ~ visit * treated + (1 | patient / side), sf, REML = FALSE)",
    },
    "clinic_reml": {
        "csv": "clinic.csv",
        "y": "y",
        "x": ["visit", "arm", "visit:arm"],
        "terms": [("clinic", "clinic", ["1"]), ("patient", "clinic:patient", ["1", "visit"])],
        "reml": True,
        "r": "lmer(y ~ visit * arm + (1 | clinic) + (visit | clinic:patient), pc)",
    },
    "boundary_intercept_reml": {
        "csv": "boundary.csv",
        "y": "y",
        "x": ["visit", "arm"],
        "terms": [("id", "id", ["1"])],
        "reml": True,
        "r": "lmer(y ~ visit + arm + (1 | id), bd)",
    },
    "boundary_intercept_ml": {
        "csv": "boundary.csv",
        "y": "y",
        "x": ["visit", "arm"],
        "terms": [("id", "id", ["1"])],
        "reml": False,
        "r": "lmer(y ~ visit + arm + (1 | id), bd, REML = FALSE)",
    },
    "boundary_slope_reml": {
        "csv": "boundary.csv",
        "y": "y",
        "x": ["visit", "arm"],
        "terms": [("id", "id", ["1", "visit"])],
        "reml": True,
        "r": "lmer(y ~ visit + arm + (visit | id), bd)",
    },
    "boundary_corr_reml": {
        "csv": "boundary_corr.csv",
        "y": "y",
        "x": ["visit", "arm"],
        "terms": [("id", "id", ["1", "visit"])],
        "reml": True,
        "r": "lmer(y ~ visit + arm + (visit | id), bc)",
    },
}


def load(name: str) -> pd.DataFrame:
    data = pd.read_csv(HERE / CASES[name]["csv"])
    if "side" in data:
        data["patient_side"] = data["patient"] + ":" + data["side"]
    return data


def column(data: pd.DataFrame, spec: str) -> np.ndarray:
    if spec == "1":
        return np.ones(len(data))
    return np.prod([data[part].to_numpy(float) for part in spec.split(":")], axis=0)


def problem_for(name: str, data: pd.DataFrame | None = None) -> LmmProblem:
    case = CASES[name]
    data = load(name) if data is None else data
    x = np.column_stack([column(data, c) for c in ["1", *case["x"]]])
    terms = []
    for col, _, z_cols in case["terms"]:
        codes, levels = pd.factorize(data[col], sort=True)
        z = np.column_stack([column(data, c) for c in z_cols])
        terms.append(RandomTerm(col, codes, np.asarray(levels), z, tuple(z_cols)))
    names = ("(Intercept)", *case["x"])
    return LmmProblem(data[case["y"]].to_numpy(float), x, names, tuple(terms), case["reml"])


def lme4_order(name: str) -> list[int]:
    """Positions in lme4's theta of the engine's theta (outermost term first).

    lme4 orders terms by decreasing number of levels and names theta elements
    ``"group.(Intercept)"``, ``"group.visit.(Intercept)"``, ``"group.visit"``.
    """
    names = np.atleast_1d(REFERENCE[name]["theta_names"])
    return [
        i
        for _, group, _ in CASES[name]["terms"]
        for i, label in enumerate(names)
        if label.split(".")[0] == group
    ]


def lme4_theta(name: str) -> np.ndarray:
    return np.atleast_1d(REFERENCE[name]["theta"])[lme4_order(name)]


def covariances(theta: np.ndarray, sigma: float, problem: LmmProblem) -> list[np.ndarray]:
    """``sigma^2 Lambda Lambda'`` per term, from theta taken column by column."""
    out, start = [], 0
    for term in problem.terms:
        q = term.z.shape[1]
        lam = np.zeros((q, q))
        rows, cols = np.tril_indices(q)
        order = np.lexsort((rows, cols))
        lam[rows[order], cols[order]] = theta[start : start + len(rows)]
        start += len(rows)
        out.append(sigma**2 * lam @ lam.T)
    return out


@pytest.fixture(scope="module")
def fits() -> dict:
    return {name: fit(problem_for(name)) for name in CASES}


@pytest.mark.parametrize("name", list(CASES))
def test_matches_lme4(name: str, fits: dict) -> None:
    ref, result, problem = REFERENCE[name], fits[name], problem_for(name)
    r_call = CASES[name]["r"]  # m <- r_call; then fixef(m), logLik(m), vcov(m), sigma(m), theta
    # the criterion first: a worse optimum would explain any difference below
    np.testing.assert_allclose(result.loglik, ref["loglik"], rtol=1e-10, err_msg=r_call)
    # fixed effects on the scale of their uncertainty: |diff| <= 1e-6 max(|beta|, SE)
    scale = np.maximum(np.abs(ref["beta"]), ref["se"])
    np.testing.assert_array_less(
        np.abs(result.beta - ref["beta"]) / scale, 1e-6, err_msg=f"{r_call} beta"
    )
    se = np.sqrt(np.diag(result.vcov_beta))
    np.testing.assert_allclose(se, ref["se"], rtol=1e-4, err_msg=r_call)
    np.testing.assert_allclose(result.sigma, ref["sigma"], rtol=1e-4, err_msg=r_call)
    ours = covariances(result.theta, result.sigma, problem)
    theirs = covariances(lme4_theta(name), ref["sigma"], problem)
    for mine, r_cov in zip(ours, theirs, strict=True):
        scale = max(np.abs(r_cov).max(), ref["sigma"] ** 2 * 1e-8)
        np.testing.assert_allclose(mine, r_cov, rtol=1e-4, atol=1e-4 * scale, err_msg=r_call)
    # never a worse optimum than lme4's
    assert result.loglik >= ref["loglik"] - 1e-9 * abs(ref["loglik"])


@pytest.mark.parametrize("name", list(CASES))
def test_deviance_and_vcov_at_varpar_match_lmertest(name: str, fits: dict) -> None:
    ref, result = REFERENCE[name], fits[name]
    varpar_r = np.atleast_1d(ref["varpar"])
    varpar = np.append(varpar_r[:-1][lme4_order(name)], varpar_r[-1])
    # R: lmerTest:::devfun_vp(varpar, devfun, reml) at varpar = 1.1 * c(theta, sigma)
    np.testing.assert_allclose(result.deviance(varpar), ref["deviance_at_varpar"], rtol=1e-9)
    # R: lmerTest:::get_covbeta(varpar, devfun)
    expected = np.array(ref["vcov_at_varpar"])
    np.testing.assert_allclose(
        result.vcov_at(varpar), expected, rtol=1e-8, atol=1e-10 * np.abs(expected).max()
    )


@pytest.mark.parametrize("name", list(CASES))
def test_deviance_at_the_optimum_is_minus_twice_the_loglik(name: str, fits: dict) -> None:
    result = fits[name]
    np.testing.assert_allclose(result.deviance(result.varpar), -2 * result.loglik, rtol=1e-12)
    np.testing.assert_allclose(result.vcov_at(result.varpar), result.vcov_beta, rtol=1e-12)


@pytest.mark.parametrize("name", list(CASES))
def test_singular_fits_are_reported_as_lme4_does(name: str, fits: dict) -> None:
    result = fits[name]
    codes = [d.code for d in result.diagnostics]
    # R: isSingular(m, tol = 1e-4)
    assert ("singular_fit" in codes) == REFERENCE[name]["singular"]
    assert result.converged
    assert "not_converged" not in codes
    assert result.engine == "outcomes"
    assert result.theta.shape == lme4_theta(name).shape


def test_beats_default_lme4_where_it_stops_on_the_boundary(fits: dict) -> None:
    # R: lmer(y ~ visit + arm + (visit | id), bc) with default settings stops at an intercept
    # variance of zero ("Model failed to converge with 1 negative eigenvalue"); tight BOBYQA
    # and the engine both find the better point with correlation +1.
    ref = REFERENCE["boundary_corr_reml_default"]
    result = fits["boundary_corr_reml"]
    assert result.loglik > ref["loglik"] + 0.01
    # the engine's own criterion at lme4's point agrees with lme4's logLik there
    lme4_point = np.append(np.atleast_1d(ref["theta"]), ref["sigma"])
    np.testing.assert_allclose(result.deviance(lme4_point), -2 * ref["loglik"], rtol=1e-9)


def statsmodels_fit(name: str):
    """The same model in statsmodels MixedLM (clinic: without the intercept-slope correlation,
    which statsmodels' variance components cannot express -- a sub-model of ours)."""
    data, case = load(name), CASES[name]
    problem = problem_for(name, data)
    groups = data[case["terms"][0][0]]
    if len(case["terms"]) == 1:
        model = MixedLM(problem.y, problem.x, groups=groups, exog_re=problem.terms[0].z)
    else:
        inner = case["terms"][1][0]
        vc = {"inner": "0 + C(inner)"}
        if name == "clinic_reml":
            vc["inner_slope"] = "0 + C(inner):visit"
        frame = data.assign(inner=data[inner], yy=problem.y)
        for j in range(problem.x.shape[1]):
            frame[f"x{j}"] = problem.x[:, j]
        formula = "yy ~ 0 + " + " + ".join(f"x{j}" for j in range(problem.x.shape[1]))
        model = MixedLM.from_formula(formula, frame, groups=groups, re_formula="1", vc_formula=vc)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(reml=case["reml"])


@pytest.mark.parametrize(
    "name",
    [
        "sleep_slope_reml",
        "sleep_slope_ml",
        "sleep_intercept_reml",
        "splitface_reml",
        "splitface_ml",
        "clinic_reml",
        "boundary_intercept_reml",
        "boundary_intercept_ml",
        # statsmodels needs ~5 s for each of these boundary fits
        pytest.param("boundary_slope_reml", marks=pytest.mark.slow),
        pytest.param("boundary_corr_reml", marks=pytest.mark.slow),
    ],
)
def test_at_least_as_good_as_statsmodels(name: str, fits: dict) -> None:
    sm = statsmodels_fit(name)
    assert fits[name].loglik >= sm.llf - 1e-6 * abs(sm.llf)


@pytest.mark.parametrize("name", list(CASES))
def test_satterthwaite_df_from_the_engine_match_lmertest(name: str, fits: dict) -> None:
    from outcomes.models.lmm.satterthwaite import satterthwaite_df

    result = fits[name]
    # R: summary(m)$coefficients[, "df"] (lmerTest, Satterthwaite)
    df = satterthwaite_df(result, np.eye(len(result.beta)))
    np.testing.assert_allclose(df, REFERENCE[name]["satterthwaite_df"], rtol=1e-4)


def test_reaches_the_high_precision_optimum_of_sleepstudy() -> None:
    # tests/r/mixed/sleepstudy_highprec.py: Newton in 50-digit arithmetic on sleepstudy's REML
    # criterion. R refitted tightly (bobyqa, rhoend = 1e-12) agrees on logLik to 1e-12 but,
    # the criterion being that flat, only to ~1e-6 on cov(Intercept, Days); the engine,
    # stopping on the Newton step, agrees to 1e-8.
    exact = json.loads((HERE.parent / "mixed" / "sleepstudy_highprec.json").read_text())
    r_tight = REFERENCE["sleep_slope_reml"]
    np.testing.assert_allclose(r_tight["loglik"], exact["loglik"], rtol=1e-12)
    r_cov = r_tight["varcorr"][2]["vcov"]
    assert r_tight["varcorr"][2]["var2"] == "Days"
    np.testing.assert_allclose(r_cov, exact["cov_intercept_days"], rtol=1e-6)
    result = fit(problem_for("sleep_slope_reml"))
    np.testing.assert_allclose(result.loglik, exact["loglik"], rtol=1e-13)
    cov = covariances(result.theta, result.sigma, problem_for("sleep_slope_reml"))[0]
    np.testing.assert_allclose(cov[0, 1], exact["cov_intercept_days"], rtol=1e-8)
    np.testing.assert_allclose(result.theta, exact["theta"], rtol=1e-8)
    np.testing.assert_allclose(result.beta, exact["beta"], rtol=1e-12)
