"""Split-face trial (side nested in patient), emmeans marginal means and contrasts, singular fit.

Reference numbers: tests/r/mixed/splitface.R -> splitface.json (lme4 1.1-31, lmerTest 3.1-3,
emmeans with ``emm_options(lmer.df = "satterthwaite")``), on splitface.csv and singular.csv
written by tests/r/mixed/make_data.py (fixed seeds). Tolerances (relative): fixed effects and
log-likelihood 1e-6; standard errors, variance components and marginal means' SEs 1e-4;
Satterthwaite df 1e-3.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from outcomes.errors import InputError, SingularFitWarning
from outcomes.models.lmm.fit import lmm

_spec = importlib.util.spec_from_file_location("rref", Path(__file__).parent / "r/mixed/rref.py")
rref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rref)

REF = rref.load_json("splitface.json")
DATA = rref.load_csv("splitface.csv")
FACTORS = {"visit": ["week_04", "week_08", "week_12"], "arm": ["PRP", "RF"]}


def quiet_lmm(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return lmm(*args, engine="statsmodels", **kwargs)


@pytest.fixture(scope="module")
def fits():
    post = DATA[DATA["week"] > 0]
    return {
        # lmer(score ~ visit * arm + (1 | patient/side), d, REML = TRUE)
        "visit": quiet_lmm(DATA, "score ~ visit * arm", groups="patient", nested="side"),
        # lmer(score ~ week * arm + (week | patient) + (1 | patient:side), d, REML = TRUE)
        "week": quiet_lmm(
            DATA, "score ~ week * arm", groups="patient", re_formula="~week", nested="side"
        ),
        # same, REML = FALSE
        "week_ml": quiet_lmm(
            DATA,
            "score ~ week * arm",
            groups="patient",
            re_formula="~week",
            nested="side",
            reml=False,
        ),
        # lmer(score ~ baseline + age + visit * arm + (1 | patient/side), post, REML = TRUE)
        "ancova": quiet_lmm(
            post, "score ~ baseline + age + visit * arm", groups="patient", nested="side"
        ),
    }


@pytest.mark.parametrize("name", ["visit", "week", "week_ml", "ancova"])
def test_nested_fit_matches_lme4(fits, name):
    fit, ref = fits[name], REF[name]
    r = rref.r_fixed(ref, FACTORS)
    ours = fit.fixed.set_index("term")
    assert sorted(ours.index) == sorted(r.index)
    ours = ours.loc[r.index]
    # the criterion first -- logLik(fit), AIC(fit), BIC(fit) -- then the estimates
    rref.assert_rel(fit.loglik, ref["loglik"], 1e-10, f"{name} logLik")
    rref.assert_rel(fit.aic, ref["aic"], 1e-10, f"{name} AIC")
    rref.assert_rel(fit.bic, ref["bic"], 1e-10, f"{name} BIC")
    # summary(fit)$coefficients (lmerTest, Satterthwaite)
    rref.assert_coef(ours["estimate"], r["estimate"], r["std_error"], 1e-6, f"{name} estimate")
    rref.assert_rel(ours["std_error"], r["std_error"], 1e-4, f"{name} std_error")
    rref.assert_rel(ours["df"], r["df"], 1e-3, f"{name} df")
    # as.data.frame(VarCorr(fit))$vcov
    ours_vc = rref.our_varcorr(fit)
    for key, value in rref.r_varcorr(ref).items():
        got = fit.residual_variance if key[0] == "Residual" else ours_vc[key]
        rref.assert_rel(got, value, 1e-4, f"{name} {key}")
    assert fit.ngroups["patient"] == 40 and fit.ngroups["patient:side"] == 80


def test_statsmodels_stops_short_and_the_refinement_reaches_lme4(fits):
    """On the random-slope split-face model statsmodels' own optimum is several deviance units
    short of lme4's; the refined fit matches lme4 (checked above) and says so."""
    diag = fits["week"].diagnostics.set_index("code")
    assert "statsmodels_polished" in diag.index
    assert diag.loc["statsmodels_polished", "severity"] == "info"


def test_deviance_at_r_optimum_equals_lme4_nested(fits):
    """lme4 orders theta (side:patient, patient); ours is outermost first (patient, side)."""
    ref = REF["visit"]
    theta_r = ref["theta"]
    varpar = np.array([theta_r[1], theta_r[0], ref["sigma"]])
    # REMLcrit(m_visit)
    rref.assert_rel(fits["visit"].fit.deviance(varpar), ref["deviance"], 1e-9, "deviance")


def test_split_body_design_nests_unit_in_subject():
    """design="split_body" nests the unit in the subject without being told."""
    df = DATA.rename(columns={"patient": "subject_id", "unit": "unit_id"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = lmm(df, "score ~ visit * arm", design="split_body", engine="statsmodels")
        also = lmm(
            df,
            "score ~ visit * arm",
            groups="subject_id",
            design="split_body",
            engine="statsmodels",
        )
    assert set(fit.ngroups) == {"subject_id", "subject_id:unit_id"}
    assert set(also.ngroups) == {"subject_id", "subject_id:unit_id"}
    # a registry nests subjects in clinics the same way
    reg = DATA.rename(columns={"patient": "site_id", "unit": "subject_id"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        registry = lmm(reg, "score ~ visit * arm", design="observational", engine="statsmodels")
    assert registry.ngroups == {"site_id": 40, "site_id:subject_id": 80}
    # same model as (1 | patient/side) in R
    rref.assert_rel(fit.loglik, REF["visit"]["loglik"], 1e-6, "split_body logLik")


def _r_emm(rows: list[dict], keys: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows).set_index(keys)


def test_emmeans_by_visit_match_r(fits):
    # emmeans(m_visit, ~ arm | visit)
    r = _r_emm(REF["visit"]["emmeans"], ["visit", "arm"])
    ours = fits["visit"].emmeans("arm", by="visit").set_index(["visit", "arm"]).loc[r.index]
    rref.assert_rel(ours["estimate"], r["emmean"], 1e-6, "emmean")
    rref.assert_rel(ours["std_error"], r["SE"], 1e-4, "SE")
    rref.assert_rel(ours["df"], r["df"], 1e-3, "df")
    rref.assert_rel(ours["conf_low"], r["lower.CL"], 1e-4, "lower.CL")
    rref.assert_rel(ours["conf_high"], r["upper.CL"], 1e-4, "upper.CL")


@pytest.mark.parametrize(("adjust", "key"), [("none", "contrast"), ("bonferroni", "contrast_bonf")])
def test_combination_minus_control_at_each_visit_match_r(fits, adjust, key):
    # confint(contrast(emmeans(m_visit, ~ arm | visit), "trt.vs.ctrl", adjust = ...)) and the
    # p-values of the same contrast() summary
    r = _r_emm(REF["visit"][key], ["visit", "contrast"])
    rp = _r_emm(REF["visit"][key + "_p"], ["visit", "contrast"])
    ours = fits["visit"].contrasts("arm", by="visit", adjust=adjust)
    ours = ours.set_index(["visit", "contrast"]).loc[r.index]
    rref.assert_rel(ours["estimate"], r["estimate"], 1e-6, "estimate")
    rref.assert_rel(ours["std_error"], r["SE"], 1e-4, "SE")
    rref.assert_rel(ours["df"], r["df"], 1e-3, "df")
    rref.assert_rel(ours["conf_low"], r["lower.CL"], 1e-4, "lower.CL")
    rref.assert_rel(ours["conf_high"], r["upper.CL"], 1e-4, "upper.CL")
    rref.assert_rel(ours["p_value"], rp.loc[r.index, "p.value"], 1e-3, "p.value")


def test_contrast_at_a_time_on_continuous_week_match_r(fits):
    fit = fits["week"]
    # emmeans(m_week, ~ arm, at = list(week = 12))
    r = _r_emm(REF["week"]["emmeans"], ["arm"])
    ours = fit.emmeans("arm", at={"week": 12}).set_index("arm").loc[r.index]
    rref.assert_rel(ours["estimate"], r["emmean"], 1e-6, "emmean")
    rref.assert_rel(ours["std_error"], r["SE"], 1e-4, "SE")
    rref.assert_rel(ours["df"], r["df"], 1e-3, "df")
    # confint(contrast(emm_week, "trt.vs.ctrl", adjust = "none"))
    r = _r_emm(REF["week"]["contrast"], ["contrast"])
    ours = fit.contrasts("arm", at={"week": 12}).set_index("contrast").loc[r.index]
    rref.assert_rel(ours["estimate"], r["estimate"], 1e-6, "estimate")
    rref.assert_rel(ours["std_error"], r["SE"], 1e-4, "SE")
    rref.assert_rel(ours["df"], r["df"], 1e-3, "df")
    rref.assert_rel(ours["conf_low"], r["lower.CL"], 1e-4, "lower.CL")


def test_custom_linear_contrast_matches_contest(fits):
    fit = fits["week"]
    names = list(fit.fixed["term"])
    lvec = np.zeros(len(names))
    lvec[names.index("week:arm[T.PRP]")] = 1
    lvec[names.index("week:arm[T.RF]")] = -1
    ours = fit.test(lvec, terms=["PRP - RF slope"]).iloc[0]
    # contest(m_week, L, joint = FALSE, confint = TRUE), L = week:armPRP - week:armRF
    r = REF["week"]["contest"][0]
    rref.assert_rel(ours["estimate"], r["Estimate"], 1e-6, "Estimate")
    rref.assert_rel(ours["std_error"], r["Std. Error"], 1e-4, "Std. Error")
    rref.assert_rel(ours["df"], r["df"], 1e-3, "df")
    rref.assert_rel(ours["conf_low"], r["lower"], 1e-4, "lower")
    rref.assert_rel(ours["p_value"], r["Pr(>|t|)"], 1e-3, "p")


def test_ancova_emmeans_put_covariates_at_their_mean(fits):
    fit = fits["ancova"]
    # emmeans(m_ancova, ~ arm | visit): baseline and age at their means over the post rows
    r = _r_emm(REF["ancova"]["emmeans"], ["visit", "arm"])
    ours = fit.emmeans("arm", by="visit").set_index(["visit", "arm"]).loc[r.index]
    rref.assert_rel(ours["estimate"], r["emmean"], 1e-6, "emmean")
    rref.assert_rel(ours["std_error"], r["SE"], 1e-4, "SE")
    rref.assert_rel(ours["df"], r["df"], 1e-3, "df")
    # contrast(emm_ancova, "pairwise", adjust = "holm"); CIs are Bonferroni in emmeans
    r = _r_emm(REF["ancova"]["pairwise_holm"], ["visit", "contrast"])
    rci = _r_emm(REF["ancova"]["pairwise_holm_ci"], ["visit", "contrast"])
    ours = fit.contrasts("arm", by="visit", method="pairwise", adjust="holm")
    ours = ours.set_index(["visit", "contrast"]).loc[r.index]
    rref.assert_rel(ours["estimate"], r["estimate"], 1e-6, "estimate")
    rref.assert_rel(ours["p_value"], r["p.value"], 1e-3, "holm p")
    rref.assert_rel(ours["conf_low"], rci["lower.CL"], 1e-4, "bonferroni lower.CL")
    rref.assert_rel(ours["conf_high"], rci["upper.CL"], 1e-4, "bonferroni upper.CL")


def test_emmeans_input_errors(fits):
    fit = fits["visit"]
    with pytest.raises(InputError, match="not a variable"):
        fit.emmeans("dose")
    with pytest.raises(InputError, match="levels are"):
        fit.emmeans("arm", at={"arm": ["XX"]})
    with pytest.raises(InputError, match="not supported"):
        fit.contrasts("arm", by="visit", adjust="scheffe")
    with pytest.raises(InputError, match="'pairwise' only"):
        fit.contrasts("arm", by="visit", adjust="tukey")
    with pytest.raises(InputError, match="ref="):
        fit.contrasts("arm", by="visit", ref="laser")


def test_deliberately_singular_data_give_a_singular_fit_diagnostic():
    data = rref.load_csv("singular.csv")
    # lmer(score ~ week * arm + (1 | patient), s): isSingular(m_sing) is TRUE, variance 0
    assert REF["singular"]["singular"] is True
    with pytest.warns(SingularFitWarning, match="Singular"):
        fit = lmm(data, "score ~ week * arm", groups="patient", engine="statsmodels")
    diag = fit.diagnostics
    row = diag[diag["code"] == "singular_fit"]
    assert len(row) == 1 and row["severity"].item() == "warning"
    assert "variance at zero" in row["message"].item()
    vc = fit.variance_components
    assert vc.loc[vc["group"] == "patient", "variance"].item() == pytest.approx(0, abs=1e-8)
    # fixed effects still match lme4's boundary fit
    r = rref.r_fixed(REF["singular"], {"arm": ["B"]})
    ours = fit.fixed.set_index("term").loc[r.index]
    rref.assert_rel(ours["estimate"], r["estimate"], 1e-6, "estimate")
    rref.assert_rel(ours["std_error"], r["std_error"], 1e-4, "std_error")
    rref.assert_rel(ours["df"], r["df"], 1e-3, "df")
    rref.assert_rel(fit.loglik, REF["singular"]["loglik"], 1e-6, "logLik")
    # the warning is carried into every ARD row
    ard = fit.to_ard(analysis="singular")
    assert ard["warning"].str.contains("Singular").all()


def test_transformed_response_and_emmeans_on_the_model_scale():
    """np.log(score) as response: the fit and the reference grid still work."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = lmm(
            DATA,
            "np.log(score) ~ visit * arm",
            groups="patient",
            nested="side",
            engine="statsmodels",
        )
    emm = fit.emmeans("arm", by="visit")
    assert len(emm) == 12 and np.all(np.isfinite(emm["estimate"]))


def test_outcomes_engine_through_lmm_matches_lme4():
    """The same API on the toolkit's engine gives lme4's numbers (shared LmmFit contract)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = lmm(
            DATA,
            "score ~ week * arm",
            groups="patient",
            re_formula="~week",
            nested="side",
            engine="outcomes",
        )
    assert fit.engine == "outcomes"
    ref = REF["week"]
    r = rref.r_fixed(ref, FACTORS)
    ours = fit.fixed.set_index("term").loc[r.index]
    rref.assert_rel(fit.loglik, ref["loglik"], 1e-10, "logLik")
    rref.assert_coef(ours["estimate"], r["estimate"], r["std_error"], 1e-6, "estimate")
    rref.assert_rel(ours["std_error"], r["std_error"], 1e-4, "std_error")
    rref.assert_rel(ours["df"], r["df"], 1e-3, "df")
    con = fit.contrasts("arm", at={"week": 12}).set_index("contrast")
    rc = _r_emm(REF["week"]["contrast"], ["contrast"])
    rref.assert_rel(con.loc[rc.index, "df"], rc["df"], 1e-3, "contrast df")


def test_nested_group_codes_are_sorted_text_combinations():
    """Inner groups are the distinct (outer, inner) pairs, labelled "outer:inner" and sorted as
    text, whatever the column types (the definition, computed row by row here)."""
    from outcomes.models.lmm.design import _joined_codes

    rng = np.random.default_rng(5)
    frame = pd.DataFrame(
        {
            "clinic": rng.choice(["b", "a", "c10", "c9"], 400),
            "patient": rng.integers(0, 40, 400),
            "side": pd.Categorical(rng.choice(["right", "left"], 400)),
            "dose": rng.choice([0.5, 1.0, 10.0], 400),
        }
    )
    for path in (["clinic", "patient"], ["patient", "side"], ["clinic", "dose", "side"]):
        text = frame[path].astype(str).agg("\x1f".join, axis=1)
        want_codes, want_levels = pd.factorize(text, sort=True)
        codes, levels = _joined_codes(frame, path)
        np.testing.assert_array_equal(codes, want_codes)
        assert list(levels) == [lev.replace("\x1f", ":") for lev in want_levels]
