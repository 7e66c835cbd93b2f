"""Linear mixed models against lme4/lmerTest on lme4's sleepstudy, plus API behaviour.

Reference numbers: tests/r/mixed/sleepstudy.R -> sleepstudy.json (lme4 1.1-31, lmerTest 3.1-3,
bobyqa with rhoend = 1e-12 so R's numbers are lme4's optimum). Tolerances (relative): fixed
effects and log-likelihood 1e-6; standard errors and variance components 1e-4; Satterthwaite
df 1e-3.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from outcomes.errors import InputError, SingularFitWarning
from outcomes.models.lmm.design import build_problem, design_structure
from outcomes.models.lmm.deviance import ProfiledDeviance
from outcomes.models.lmm.fit import lmm
from outcomes.models.numderiv import hessian, jacobian

_spec = importlib.util.spec_from_file_location("rref", Path(__file__).parent / "r/mixed/rref.py")
rref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rref)

REF = rref.load_json("sleepstudy.json")
SLEEP = rref.load_csv("sleepstudy.csv")
FACTORS: dict[str, list[str]] = {}


def fit_sleep(**kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return lmm(SLEEP, "Reaction ~ Days", groups="Subject", engine="statsmodels", **kwargs)


CASES = {
    # lmer(Reaction ~ Days + (Days | Subject), sleepstudy, REML = TRUE)
    "slope_reml": {"re_formula": "~Days"},
    # lmer(Reaction ~ Days + (Days | Subject), sleepstudy, REML = FALSE)
    "slope_ml": {"re_formula": "~Days", "reml": False},
    # lmer(Reaction ~ Days + (1 | Subject), sleepstudy, REML = TRUE)
    "intercept_reml": {},
}


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
    return request.param, fit_sleep(**CASES[request.param]), REF[request.param]


def test_fixed_effects_match_lmertest(case):
    name, fit, ref = case
    r = rref.r_fixed(ref, FACTORS)
    ours = fit.fixed.set_index("term").loc[r.index]
    # summary(fit)$coefficients (lmerTest): Estimate, Std. Error, df, t value, Pr(>|t|)
    rref.assert_rel(fit.loglik, ref["loglik"], 1e-10, f"{name} logLik")  # the criterion first
    rref.assert_coef(ours["estimate"], r["estimate"], r["std_error"], 1e-6, f"{name} estimate")
    rref.assert_rel(ours["std_error"], r["std_error"], 1e-4, f"{name} std_error")
    rref.assert_rel(ours["df"], r["df"], 1e-3, f"{name} Satterthwaite df")
    rref.assert_rel(ours["statistic"], r["statistic"], 1e-4, f"{name} t")
    rref.assert_rel(ours["p_value"], r["p_value"], 1e-3, f"{name} p")


def test_likelihood_and_information_criteria_match_lme4(case):
    name, fit, ref = case
    # logLik(fit), AIC(fit), BIC(fit)
    rref.assert_rel(fit.loglik, ref["loglik"], 1e-10, f"{name} logLik")
    rref.assert_rel(fit.aic, ref["aic"], 1e-10, f"{name} AIC")
    rref.assert_rel(fit.bic, ref["bic"], 1e-10, f"{name} BIC")
    assert fit.nobs == ref["nobs"]
    assert fit.ngroups == {"Subject": 18}


def test_variance_components_match_lme4(case):
    name, fit, ref = case
    # as.data.frame(VarCorr(fit))$vcov, and sigma(fit)
    r = rref.r_varcorr(ref)
    ours = rref.our_varcorr(fit)
    for key, value in r.items():
        if key[0] == "Residual":
            rref.assert_rel(fit.residual_variance, value, 1e-4, f"{name} residual variance")
        else:
            rref.assert_rel(ours[key], value, 1e-4, f"{name} {key}")
    rref.assert_rel(fit.fit.sigma, ref["sigma"], 1e-4, f"{name} sigma")
    rref.assert_rel(fit.fit.theta, ref["theta"], 1e-4, f"{name} theta")


def test_deviance_function_equals_lme4_at_r_optimum(case):
    """Our numpy deviance, evaluated at R's (theta, sigma), is lme4's -2 logLik there."""
    name, fit, ref = case
    varpar = np.append(ref["theta"], ref["sigma"])
    # REMLcrit(fit) for REML fits, deviance(fit) for ML fits: both -2 logLik at the optimum
    rref.assert_rel(fit.fit.deviance(varpar), ref["deviance"], 1e-9, f"{name} deviance")
    rref.assert_rel(-2 * fit.loglik, ref["deviance"], 1e-6, f"{name} -2 logLik")


def test_default_lme4_optimizer_is_looser_than_ours():
    """lme4's default optimizer stops ~1e-5 from the optimum; ours is within lme4's tight one."""
    fit = fit_sleep(re_formula="~Days")
    tight, default = REF["slope_reml"], REF["slope_reml_default_optimizer"]
    # the two R fits agree on logLik to 1e-9 relative, and so do we
    rref.assert_rel(fit.loglik, default["loglik"], 1e-9, "logLik vs default lme4")
    assert abs(fit.loglik - tight["loglik"]) <= abs(default["loglik"] - tight["loglik"]) + 1e-9


def test_numerical_derivatives_on_known_functions():
    # d/dx of (x0^2 x1, sin x1) at (1.5, 0.7) is [[2 x0 x1, x0^2], [0, cos x1]]
    x = np.array([1.5, 0.7])
    jac = jacobian(lambda v: np.array([v[0] ** 2 * v[1], np.sin(v[1])]), x)
    np.testing.assert_allclose(jac, [[2 * 1.5 * 0.7, 1.5**2], [0, np.cos(0.7)]], rtol=1e-9)
    # Hessian of x0^3 + x0 x1^2 is [[6 x0, 2 x1], [2 x1, 2 x0]]
    hes = hessian(lambda v: v[0] ** 3 + v[0] * v[1] ** 2, x)
    np.testing.assert_allclose(hes, [[9.0, 1.4], [1.4, 3.0]], rtol=1e-7)


def test_profiled_deviance_matches_dense_formula():
    """The blocked computation equals -2 log L written densely from V = Z G Z' + sigma^2 I."""
    problem, _ = build_problem(
        SLEEP, "Reaction ~ Days", groups="Subject", re_formula="~Days", reml=False
    )
    prof = ProfiledDeviance(problem)
    theta, sigma = np.array([0.9, 0.1, 0.25]), 24.0
    lam = np.array([[0.9, 0.0], [0.1, 0.25]])
    g = sigma**2 * lam @ lam.T
    term = problem.terms[0]
    z = np.zeros((len(problem.y), 2 * term.n_groups))
    for k in range(2):
        z[np.arange(len(problem.y)), 2 * term.codes + k] = term.z[:, k]
    v = z @ np.kron(np.eye(term.n_groups), g) @ z.T + sigma**2 * np.eye(len(problem.y))
    vinv = np.linalg.inv(v)
    x, y = problem.x, problem.y
    beta = np.linalg.solve(x.T @ vinv @ x, x.T @ vinv @ y)
    r = y - x @ beta
    dense = np.linalg.slogdet(v)[1] + r @ vinv @ r + len(y) * np.log(2 * np.pi)
    np.testing.assert_allclose(prof.deviance(np.append(theta, sigma)), dense, rtol=1e-10)
    np.testing.assert_allclose(
        prof.vcov_at(np.append(theta, sigma)), np.linalg.inv(x.T @ vinv @ x), rtol=1e-8
    )


def test_tidy_output_shapes_and_ard():
    fit = fit_sleep(re_formula="~Days")
    assert list(fit.fixed.columns) == [
        "term",
        "estimate",
        "std_error",
        "statistic",
        "df",
        "p_value",
        "conf_low",
        "conf_high",
    ]
    assert fit.engine == "statsmodels"
    assert fit.converged
    assert fit.diagnostics.empty or set(fit.diagnostics["severity"]) <= {"info"}
    ard = fit.to_ard(analysis="sleep", groups={"study": "lme4"})
    assert {"analysis", "group", "term", "stat_name", "stat_value"} <= set(ard.columns)
    assert (ard["analysis"] == "sleep").all()
    ll = ard.loc[(ard["term"] == "model") & (ard["stat_name"] == "loglik"), "stat_value"]
    assert ll.item() == pytest.approx(fit.loglik)
    text = str(fit)
    assert "Fixed effects" in text and "Variance components" in text and "Days" in text
    html = fit._repr_html_()
    assert "<table" in html and "Satterthwaite" in html


def test_confidence_interval_uses_t_with_satterthwaite_df():
    fit = fit_sleep(re_formula="~Days")
    row = fit.fixed.set_index("term").loc["Days"]
    from scipy import stats

    q = stats.t.ppf(0.975, row["df"])
    assert row["conf_low"] == pytest.approx(row["estimate"] - q * row["std_error"])
    assert row["conf_high"] == pytest.approx(row["estimate"] + q * row["std_error"])


def test_auto_engine_records_its_choice():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = lmm(SLEEP, "Reaction ~ Days", groups="Subject")
    if fit.engine == "statsmodels":
        assert "engine_fallback" in set(fit.diagnostics["code"])
    else:
        assert fit.engine == "outcomes"


def test_design_structure_codes():
    assert design_structure("split_body") == {"groups": "subject_id", "nested": ["unit_id"]}
    assert design_structure("parallel") == {"groups": "subject_id", "nested": []}
    assert design_structure("observational") == {"groups": "site_id", "nested": ["subject_id"]}
    with pytest.raises(InputError, match="Unknown study design"):
        design_structure("crossover")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"formula": "Reaction ~ Dayz"}, "Cannot build the model"),
        ({"formula": "Reaction Days"}, "formula must look like"),
        ({"groups": "Patient"}, "not in the data"),
        ({"formula": "Missing ~ Days"}, "response 'Missing' must name one column"),
        ({"engine": "sas"}, "engine='sas'"),
    ],
)
def test_bad_input_gives_clear_input_error(kwargs, match):
    args = {"formula": "Reaction ~ Days", "groups": "Subject", "engine": "statsmodels"} | kwargs
    formula = args.pop("formula")
    with pytest.raises(InputError, match=match):
        lmm(SLEEP, formula, **args)


@pytest.mark.parametrize("engine", ["outcomes", "statsmodels"])
def test_infinite_design_values_are_named_by_row(engine):
    # dropna() keeps inf; the model matrices are checked after the formula is applied
    data = SLEEP.assign(dose=np.where(SLEEP.index.isin([3, 40]), np.inf, 1.0))
    with pytest.raises(InputError, match=r"'dose' in 2 row\(s\) \(data index 3, 40\)"):
        lmm(data, "Reaction ~ Days + dose", groups="Subject", engine=engine)


def test_quoted_column_names_are_model_variables():
    """Q("...") names a column that is not a Python name (spaces, as in real exports)."""
    data = SLEEP.rename(columns={"Days": "days of deprivation", "Reaction": "reaction time"})
    quoted = lmm(
        data, "Q('reaction time') ~ Q('days of deprivation')", groups="Subject", engine="outcomes"
    )
    plain = lmm(SLEEP, "Reaction ~ Days", groups="Subject", engine="outcomes")
    np.testing.assert_allclose(quoted.fixed["estimate"], plain.fixed["estimate"], rtol=1e-12)
    assert list(quoted.fixed["term"]) == ["Intercept", "Q('days of deprivation')"]


def test_non_numeric_response_is_refused():
    df = SLEEP.assign(grade=np.where(SLEEP["Reaction"] > 300, "bad", "good"))
    with pytest.raises(InputError, match="must be numeric"):
        lmm(df, "grade ~ Days", groups="Subject", engine="statsmodels")


def test_missing_values_are_dropped_and_reported():
    df = SLEEP.copy()
    df.loc[[3, 50], "Reaction"] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = lmm(df, "Reaction ~ Days", groups="Subject", engine="statsmodels")
    assert fit.nobs == len(SLEEP) - 2
    assert "rows_dropped" in set(fit.diagnostics["code"])


def test_singular_random_slope_is_reported_as_data_and_warning():
    """A random slope with no slope variation at all: correlation/variance at the boundary."""
    rng = np.random.default_rng(3)
    weeks = np.arange(5.0)
    rows = []
    for i in range(20):
        noise = rng.normal(0, 1, 5)
        # take out each subject's own least-squares slope: no slope variation is left at all
        noise -= np.polyval(np.polyfit(weeks, noise, 1), weeks) - noise.mean()
        u = rng.normal(0, 3)
        rows += [
            {"id": i, "week": w, "y": 5 + u + 0.4 * w + e}
            for w, e in zip(weeks, noise, strict=True)
        ]
    df = pd.DataFrame(rows)
    with pytest.warns(SingularFitWarning, match="Singular"):
        fit = lmm(df, "y ~ week", groups="id", re_formula="~week", engine="statsmodels")
    assert "singular_fit" in set(fit.diagnostics["code"])


def test_tidy_is_the_fixed_effects_with_the_shared_columns() -> None:
    from outcomes.results import TIDY_COLUMNS

    fit = lmm(SLEEP, "Reaction ~ Days", groups="Subject", re_formula="~Days")
    tidy = fit.tidy()
    assert tuple(tidy.columns) == TIDY_COLUMNS
    assert tidy["term"].tolist() == ["Intercept", "Days"]
    assert tidy["estimate"].tolist() == fit.fixed["estimate"].tolist()
