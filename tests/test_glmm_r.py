"""clmm and glmm against ordinal::clmm and lme4::glmer (tests/r/glmm/reference.R).

Tolerances are the issue's: logLik and estimates to 1e-5 relative, standard errors to 1e-4.
Our optimum must be at least R's (logLik first). For estimates near zero a relative difference
means little (R's optimisers stop within about 1e-6 of the optimum on these flat likelihoods,
with logLik equal to 1e-10), so the estimate difference is scaled by ``max(|estimate|, SE)``.
R was refitted tightly (reference.R says how); where R's own standard errors are numerically
rough (clmm's vcov uses step-1e-4 differences), the comparison is with R's objective
differentiated by numDeriv, and R's printed SEs are checked more loosely.
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from outcomes.models.glmm import clmm, glmm

_spec = importlib.util.spec_from_file_location("gref", Path(__file__).parent / "r/glmm/gref.py")
gref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gref)  # type: ignore[union-attr]

EST, SE, LL = 1e-5, 1e-4, 1e-5


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def est_diff(ours, r_est, ours_se):
    """Largest ``|ours - R| / max(|R|, SE)``."""
    ours, r_est, se = (np.asarray(v, dtype=float) for v in (ours, r_est, ours_se))
    return float(np.max(np.abs(ours - r_est) / np.maximum(np.abs(r_est), se)))


def check_clmm(fit, ref, factors, se_key="se_numderiv", se_tol=SE):
    assert fit.loglik >= ref["loglik"] - 1e-7 * abs(ref["loglik"]), "optimum below R's"
    assert gref.rel_diff(fit.loglik, ref["loglik"]) < LL
    thr = fit.thresholds.set_index("term")
    thr_r = thr.loc[list(ref["alpha"])]
    assert est_diff(thr_r["estimate"], list(ref["alpha"].values()), thr_r["std_error"]) < EST
    fixed = fit.fixed.set_index("term")
    names = [gref.patsy_term(t, factors) for t in ref["beta"]]
    fx = fixed.loc[names]
    assert est_diff(fx["estimate"], list(ref["beta"].values()), fx["std_error"]) < EST
    ses = ref[se_key] or ref["se"]
    r_se = [ses[t] for t in ref["beta"]]
    assert gref.rel_diff(fixed.loc[names, "std_error"], r_se) < se_tol
    r_thr_se = [ses[t] for t in ref["alpha"]]
    assert gref.rel_diff(thr.loc[list(ref["alpha"]), "std_error"], r_thr_se) < se_tol
    assert fit.aic == pytest.approx(ref["aic"], rel=LL)
    assert fit.nobs == ref["nobs"]


def check_glmer(fit, ref, factors, loglik=True):
    if loglik:
        assert fit.loglik >= ref["loglik"] - 1e-7 * abs(ref["loglik"]), "optimum below R's"
        assert gref.rel_diff(fit.loglik, ref["loglik"]) < LL
        assert fit.bic == pytest.approx(ref["bic"], rel=LL)
    fixed = fit.fixed.set_index("term")
    names = [gref.patsy_term(t, factors) for t in ref["fixed"]["term"]]
    fx = fixed.loc[names]
    assert est_diff(fx["estimate"], ref["fixed"]["estimate"], fx["std_error"]) < EST
    assert gref.rel_diff(fixed.loc[names, "std_error"], ref["fixed"]["std_error"]) < SE
    assert gref.rel_diff(fixed.loc[names, "p_value"], ref["fixed"]["p_value"]) < 1e-3
    assert fit.nobs == ref["nobs"]


# -- ordinal::clmm, wine ------------------------------------------------------------------

WINE = gref.load_csv("wine.csv")


@pytest.mark.parametrize(
    ("key", "nagq", "link"),
    [
        ("laplace", 1, "logit"),
        ("agq5", 5, "logit"),
        ("agq10", 10, "logit"),
        ("probit", 1, "probit"),
        ("probit_agq7", 7, "probit"),
    ],
)
def test_wine_clmm(key, nagq, link):
    ref = gref.REF["wine"][key]
    fit = clmm(WINE, "rating ~ temp + contact", groups="judge", nagq=nagq, link=link)
    check_clmm(fit, ref, ("temp", "contact"))
    assert fit.sd.iloc[0] == pytest.approx(ref["sd"], rel=EST)
    # R's vcov() itself (step-1e-4 differences) agrees to its own precision, about 1%
    fixed = fit.fixed.set_index("term")
    r_se = [ref["se"][t] for t in ref["beta"]]
    names = [gref.patsy_term(t, ("temp", "contact")) for t in ref["beta"]]
    assert gref.rel_diff(fixed.loc[names, "std_error"], r_se) < 1e-2


def test_wine_laplace_and_agq_differ_and_agq_converges():
    """AGQ with more nodes moves toward the integral; Laplace is a different approximation."""
    lap, agq5, agq10 = (gref.REF["wine"][k]["loglik"] for k in ("laplace", "agq5", "agq10"))
    assert abs(lap - agq10) > 1e-2 and abs(agq5 - agq10) < 1e-4


# -- lme4::glmer, cbpp (binomial successes/trials) -----------------------------------------

CBPP = gref.load_csv("cbpp.csv")
CBPP["period"] = CBPP["period"].astype(str)


@pytest.mark.parametrize(
    ("key", "nagq", "link"),
    [
        ("laplace", 1, "logit"),
        ("agq5", 5, "logit"),
        ("agq10", 10, "logit"),
        ("probit", 1, "probit"),
        ("cloglog", 1, "cloglog"),
    ],
)
def test_cbpp_glmer(key, nagq, link):
    ref = gref.REF["cbpp"][key]
    fit = glmm(CBPP, "incidence ~ period", groups="herd", trials="size", nagq=nagq, link=link)
    check_glmer(fit, ref, ("period",), loglik=nagq == 1)
    assert fit.sd.iloc[0] == pytest.approx(ref["theta"], rel=EST)


def test_cbpp_agq_loglik_differs_from_lme4_by_a_constant():
    """lme4 leaves constant terms out of its nAGQ > 1 logLik; the offset does not depend on
    the number of nodes, so estimates (checked above) are what to compare."""
    offsets = []
    for key, nagq in (("agq5", 5), ("agq10", 10)):
        fit = glmm(CBPP, "incidence ~ period", groups="herd", trials="size", nagq=nagq)
        offsets.append(fit.loglik - gref.REF["cbpp"][key]["loglik"])
    assert offsets[0] == pytest.approx(offsets[1], abs=1e-5)


# -- lme4::glmer, grouseticks (Poisson; nested LOCATION/BROOD) -------------------------------

TICKS = gref.load_csv("grouseticks.csv")
TICKS["YEAR"] = TICKS["YEAR"].astype(str)


@pytest.mark.parametrize(("key", "nagq"), [("laplace", 1), ("agq10", 10)])
def test_grouseticks_poisson(key, nagq):
    ref = gref.REF["grouseticks"][key]
    fit = glmm(TICKS, "TICKS ~ YEAR + cHEIGHT", groups="BROOD", family="poisson", nagq=nagq)
    check_glmer(fit, ref, ("YEAR",), loglik=nagq == 1)


def test_grouseticks_nested_poisson():
    ref = gref.REF["grouseticks"]["nested"]
    fit = glmm(TICKS, "TICKS ~ YEAR + cHEIGHT", groups="LOCATION", nested="BROOD", family="poisson")
    check_glmer(fit, ref, ("YEAR",))
    r_sd = dict(zip(ref["varcorr"]["grp"], ref["varcorr"]["sdcor"], strict=True))
    assert fit.sd["LOCATION"] == pytest.approx(r_sd["LOCATION"], rel=1e-4)
    assert fit.sd["LOCATION:BROOD"] == pytest.approx(r_sd["BROOD:LOCATION"], rel=1e-4)


# -- simulated split-face grades --------------------------------------------------------------

SPLIT = gref.load_csv("splitface_grades.csv")
SF_FACTORS = ("visit", "arm")


def test_splitface_clmm_nested():
    ref = gref.REF["splitface"]["clmm_nested"]
    fit = quiet(clmm, SPLIT, "grade ~ visit * arm", groups="patient", nested="side")
    check_clmm(fit, ref, SF_FACTORS, se_key="se", se_tol=1e-2)
    r_sd = dict(zip(ref["sd_names"], ref["sd"], strict=True))
    assert fit.sd["patient"] == pytest.approx(r_sd["patient"], rel=1e-4)
    assert fit.sd["patient:side"] == pytest.approx(r_sd["patient:side"], rel=1e-4)
    assert fit.spec.n_dropped == 3
    assert "rows_dropped" in set(fit.diagnostics["code"])


def test_splitface_clmm_agq10():
    ref = gref.REF["splitface"]["clmm_agq10"]
    fit = quiet(clmm, SPLIT, "grade ~ visit * arm", groups="patient", nagq=10)
    check_clmm(fit, ref, SF_FACTORS)


def test_splitface_glmer_nested():
    ref = gref.REF["splitface"]["glmer_nested"]
    fit = quiet(glmm, SPLIT, "responder ~ visit * arm", groups="patient", nested="side")
    check_glmer(fit, ref, SF_FACTORS)


def test_splitface_glmer_agq10():
    ref = gref.REF["splitface"]["glmer_agq10"]
    fit = quiet(glmm, SPLIT, "responder ~ visit * arm", groups="patient", nagq=10)
    check_glmer(fit, ref, SF_FACTORS, loglik=False)


# -- a weakly identified fit: simulated parallel trial, seed 3 (parallel_grade.R) ------------

PARALLEL = gref.load_csv("parallel_grades.csv")


def test_parallel_grade_clmm_matches_r_at_a_large_sd():
    """Same optimum as R; the likelihood is so flat (SD 10.7) that two fits equal in logLik to
    1e-10 differ in estimates by about 2e-5 of an SE, and the Hessian (hence SEs) by about 1.5%."""
    ref = json.loads((gref.R_DIR / "parallel_grade.json").read_text())
    fit = quiet(clmm, PARALLEL, "grade ~ week * modality", groups="subject_id")
    assert fit.loglik >= ref["loglik"] - 1e-7 * abs(ref["loglik"]), "optimum below R's"
    assert gref.rel_diff(fit.loglik, ref["loglik"]) < LL
    assert fit.sd.iloc[0] == pytest.approx(ref["sd"][0][0], rel=1e-4)
    tidy = fit.tidy().set_index("term")
    names = list(ref["alpha"]) + [gref.patsy_term(t, ("modality",)) for t in ref["beta"]]
    r_est = [*ref["alpha"].values(), *ref["beta"].values()]
    assert est_diff(tidy.loc[names, "estimate"], r_est, tidy.loc[names, "std_error"]) < 1e-4
    r_se = [ref["se_numderiv"][t] for t in [*ref["alpha"], *ref["beta"]]]
    assert gref.rel_diff(tidy.loc[names, "std_error"], r_se) < 0.03
    # R's default stopping point is short of the optimum on this flat likelihood
    assert ref["default"]["loglik"] < fit.loglik - 0.01
    assert "large_random_effect_sd" in set(fit.diagnostics["code"])
