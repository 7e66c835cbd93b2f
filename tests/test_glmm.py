"""clmm and glmm as a user meets them: predictions, odds ratios, ARD, diagnostics, bad input."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

from outcomes.errors import InputError, SingularFitWarning, StatisticalWarning
from outcomes.models.glmm import clmm, glmm
from outcomes.models.glmm.core import Design, Objective
from outcomes.models.glmm.families import Binomial, Cumulative
from outcomes.results import ARD_COLUMNS, TIDY_COLUMNS

_spec = importlib.util.spec_from_file_location("gref", Path(__file__).parent / "r/glmm/gref.py")
gref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gref)  # type: ignore[union-attr]

WINE = gref.load_csv("wine.csv")
SPLIT = gref.load_csv("splitface_grades.csv")


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def simulate(n=60, seed=3, sd=1.0, zero_arm=False):
    """Parallel trial: arm x 3 visits, binary responder and a 1-4 grade."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        arm = "PRP" if i % 2 else "MN"
        b = rng.normal(0, sd)
        for k, visit in enumerate(("w04", "w12", "w24")):
            eta = -0.5 + 0.4 * k + 0.8 * (arm == "PRP") + b
            resp = int(rng.random() < special.expit(eta))
            if zero_arm and arm == "MN":
                resp = 0
            latent = eta + rng.logistic()
            grade = 1 + int(np.sum(latent > np.array([-1.0, 0.5, 2.0])))
            rows.append((f"S{i:03d}", arm, visit, resp, grade))
    return pd.DataFrame(rows, columns=["subject", "arm", "visit", "responder", "grade"])


# -- the analytic gradient is the derivative of the objective --------------------------------


@pytest.mark.parametrize("link", ["logit", "probit"])
def test_clmm_gradient_matches_finite_differences(link):
    y = WINE["rating"].to_numpy() - 1
    x = np.column_stack([(WINE.temp == "warm"), (WINE.contact == "yes")]).astype(float)
    fam = Cumulative(y, 5, np.ones(len(y)), link)
    design = Design(
        x=x, offset=np.zeros(len(y)), group=WINE.judge.to_numpy() - 1, n_group=9, family=fam
    )
    obj = Objective(design)
    par = np.array([-1.3, 1.1, 3.9, 5.7, 2.5, 1.5, 0.8])
    assert np.max(np.abs(obj.gradient(par) - obj._numeric_gradient(par))) < 1e-6


@pytest.mark.parametrize("link", ["logit", "probit", "cloglog"])
def test_binomial_gradient_matches_finite_differences(link):
    d = simulate()
    x = np.column_stack([np.ones(len(d)), d.arm == "PRP", d.visit == "w24"]).astype(float)
    design = Design(
        x=x,
        offset=np.zeros(len(d)),
        group=pd.factorize(d.subject)[0],
        n_group=d.subject.nunique(),
        family=Binomial(d.responder, np.ones(len(d)), link),
    )
    obj = Objective(design)
    par = np.array([-0.3, 0.6, 0.5, 0.9])
    assert np.max(np.abs(obj.gradient(par) - obj._numeric_gradient(par))) < 1e-6


@pytest.mark.parametrize("kind", ["clmm", "binomial"])
def test_nested_gradient_matches_finite_differences(kind):
    """Side nested in patient: the analytic gradient (adjoint of the arrowhead Hessian)."""
    if kind == "clmm":
        fit = quiet(clmm, SPLIT, "grade ~ visit * arm", groups="patient", nested="side")
    else:
        fit = quiet(glmm, SPLIT, "responder ~ visit * arm", groups="patient", nested="side")
    obj = Objective(fit.design)
    par = fit.state.par + 0.05 * np.sin(np.arange(len(fit.state.par)))
    assert np.max(np.abs(obj.gradient(par) - obj._numeric_gradient(par))) < 1e-6


# -- predictions and odds ratios --------------------------------------------------------------


def test_clmm_probabilities_sum_to_one_and_marginal_integrates_random_effect():
    fit = clmm(WINE, "rating ~ temp + contact", groups="judge")
    pp = fit.predict_probabilities("temp", by="contact")
    sums = pp.groupby(["type", "contact", "temp"])["estimate"].sum()
    assert np.allclose(sums, 1.0, atol=1e-12)
    assert list(pp.columns[: len(TIDY_COLUMNS)]) == list(TIDY_COLUMNS)
    # marginal P(Y = 1 | cold, no) by direct integration over the judge effect
    alpha = fit.thresholds["estimate"].to_numpy()
    sd = fit.sd.iloc[0]
    direct = integrate.quad(
        lambda b: special.expit(alpha[0] - b) * stats.norm.pdf(b, scale=sd), -12 * sd, 12 * sd
    )[0]
    cell = pp[(pp.type == "marginal") & (pp.temp == "cold") & (pp.contact == "no")]
    assert cell.loc[cell.category == 1, "estimate"].item() == pytest.approx(direct, rel=1e-9)


def test_clmm_conditional_probabilities_match_emmeans():
    ref = pd.DataFrame(gref.REF["emmeans"]["wine_prob"])
    fit = clmm(WINE, "rating ~ temp + contact", groups="judge")
    pp = fit.predict_probabilities("temp", by="contact")
    pp = pp[pp.type == "conditional"].set_index(["temp", "contact", "category"])
    for rating, temp, contact, prob, se in zip(
        ref["rating"], ref["temp"], ref["contact"], ref["prob"], ref["SE"], strict=True
    ):
        row = pp.loc[(temp, contact, int(rating))]
        assert row["estimate"] == pytest.approx(prob, rel=1e-4, abs=1e-8)
        assert row["std_error"] == pytest.approx(se, rel=2e-2)  # R's vcov is step-1e-4 rough


def test_glmm_emmeans_and_dunnettx_contrasts_match_emmeans():
    cbpp = gref.load_csv("cbpp.csv").assign(period=lambda d: d.period.astype(str))
    fit = glmm(cbpp, "incidence ~ period", groups="herd", trials="size")
    ref = pd.DataFrame(gref.REF["emmeans"]["cbpp_response"])
    emm = fit.emmeans("period", scale="response")
    assert np.allclose(emm["estimate"], ref["prob"], rtol=1e-5)
    assert np.allclose(emm["std_error"], ref["SE"], rtol=1e-4)
    assert np.allclose(emm["conf_low"], ref["asymp.LCL"], rtol=1e-4)
    assert np.all(np.isinf(emm["df"]))
    ref = pd.DataFrame(gref.REF["emmeans"]["cbpp_dunnettx"])
    con = fit.contrasts("period", adjust="dunnettx")
    assert np.allclose(con["estimate"], ref["estimate"], rtol=1e-5)
    assert np.allclose(con["p_value"], ref["p.value"], rtol=1e-3)
    assert np.allclose(con["conf_high"], ref["asymp.UCL"], rtol=1e-4)


def test_clmm_latent_contrast_matches_emmeans():
    ref = pd.DataFrame(gref.REF["emmeans"]["wine_contrast"])
    fit = clmm(WINE, "rating ~ temp + contact", groups="judge")
    con = fit.contrasts("temp", by="contact")
    assert np.allclose(con["estimate"], ref["estimate"], rtol=1e-5)


def test_odds_ratios_conditional_and_marginal_side_by_side():
    d = simulate(n=200, sd=2.0)
    fit = glmm(d, "responder ~ arm + visit", groups="subject")
    ors = fit.odds_ratios("arm", by="visit")
    assert set(ors["type"]) == {"conditional", "marginal"}
    cond = ors[ors.type == "conditional"]
    marg = ors[ors.type == "marginal"]
    # conditional OR is exp(coefficient); the population-averaged one is attenuated toward 1
    assert np.allclose(cond["estimate"], np.exp(fit.coef["arm[T.PRP]"]), rtol=1e-10)
    assert np.all(np.abs(np.log(marg["estimate"])) < np.abs(np.log(cond["estimate"].to_numpy())))
    assert np.all(marg["conf_low"] < marg["estimate"]) and np.all(
        marg["estimate"] < marg["conf_high"]
    )
    # clmm: one conditional OR, a marginal one per cut
    g = clmm(d, "grade ~ arm + visit", groups="subject")
    ors = g.odds_ratios("arm", at={"visit": ["w24"]})
    assert (ors.type == "marginal").sum() == 3 and (ors.type == "conditional").sum() == 1


def test_odds_ratios_refused_for_probit():
    fit = clmm(WINE, "rating ~ temp + contact", groups="judge", link="probit")
    with pytest.raises(InputError, match="logit link"):
        fit.odds_ratios("temp")


def test_to_ard_and_tidy():
    fit = quiet(clmm, SPLIT, "grade ~ visit * arm", groups="patient", nested="side")
    ard = fit.to_ard("grade_clmm", {"indication": "acne_scars"})
    assert list(ard.columns) == list(ARD_COLUMNS)
    terms = set(ard["term"])
    assert {"threshold 1|2", "arm[T.PRP]", "patient|(Intercept)", "model"} <= terms
    assert ard.loc[ard.stat_name == "n_dropped", "stat_value"].item() == 3
    tidy = fit.tidy()
    assert list(tidy.columns[:8]) == list(TIDY_COLUMNS)
    assert set(tidy["component"]) == {"threshold", "fixed"}
    assert (tidy["test"] == "Wald z (df = Inf)").all()
    assert "Wald z" in str(fit)
    assert "Thresholds" in fit._repr_html_() and "singular" not in fit._repr_html_()


# -- edge cases -------------------------------------------------------------------------------


def test_integer_and_ordered_string_grades_give_the_same_fit():
    d = simulate()
    a = clmm(d, "grade ~ arm", groups="subject")
    words = {1: "none", 2: "mild", 3: "moderate", 4: "severe"}
    d2 = d.assign(grade=d.grade.map(words))
    with pytest.raises(InputError, match="levels="):
        clmm(d2, "grade ~ arm", groups="subject")
    b = clmm(d2, "grade ~ arm", groups="subject", levels=["none", "mild", "moderate", "severe"])
    d3 = d2.assign(
        grade=pd.Categorical(d2.grade, ["none", "mild", "moderate", "severe"], ordered=True)
    )
    c = clmm(d3, "grade ~ arm", groups="subject")
    assert a.loglik == pytest.approx(b.loglik, abs=1e-9) == pytest.approx(c.loglik, abs=1e-9)
    assert b.alpha_names == ["none|mild", "mild|moderate", "moderate|severe"]


def test_never_observed_category_is_reported():
    d = simulate()
    d = d.assign(grade=d.grade.clip(upper=3))
    with pytest.warns(StatisticalWarning, match="never observed"):
        fit = clmm(d, "grade ~ arm", groups="subject", levels=[1, 2, 3, 4])
    assert fit.alpha_names == ["1|2", "2|3"]
    assert "unobserved_category" in set(fit.diagnostics["code"])


def test_separation_is_reported():
    d = simulate(zero_arm=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = glmm(d, "responder ~ arm", groups="subject")
    assert any(issubclass(w.category, StatisticalWarning) for w in caught)
    diag = fit.diagnostics.set_index("code")
    assert "arm[T.PRP]" in diag.loc["separation", "message"]
    assert fit.coef["arm[T.PRP]"] > 5


def test_weakly_identified_fit_is_reported():
    """Parallel trial (simulate_trial seed 3): many subjects keep one grade, SD 10.7."""
    d = gref.load_csv("parallel_grades.csv")
    with pytest.warns(StatisticalWarning, match="Weakly identified"):
        fit = clmm(d, "grade ~ week * modality", groups="subject_id")
    msg = fit.diagnostics.set_index("code").loc["large_random_effect_sd", "message"]
    assert "subject_id 10.7" in msg and "18 of 50 subject_id groups" in msg
    assert (fit.to_ard("parallel")["warning"].str.contains("Weakly identified")).all()


def test_splitface_demo_grade_fit_is_not_weakly_identified():
    """The demo split-face trial (seed 1): SDs 4.3 and 2.0, below the limit of 5."""
    from outcomes.report.sections import primary_dataset
    from outcomes.simulate.trial import simulate_trial

    d = primary_dataset(simulate_trial(seed=1).tables, "gb_qual")
    d["grade"] = d["value"].round().astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = clmm(d, "grade ~ week * modality", design="split_body")
    assert 4 < fit.sd.max() < 5
    assert fit.diagnostics.empty


def test_missing_values_dropped_and_counted():
    d = simulate()
    d.loc[[3, 10], "grade"] = np.nan
    d.loc[5, "arm"] = None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = clmm(d, "grade ~ arm", groups="subject")
    assert fit.nobs == len(d) - 3 and fit.spec.n_dropped == 3
    msg = fit.diagnostics.set_index("code").loc["rows_dropped", "message"]
    assert "3 row(s)" in msg and "3, 5, 10" in msg


def test_singular_fit_is_reported():
    d = simulate(sd=0.0, n=40)
    with pytest.warns(SingularFitWarning):
        fit = glmm(d, "responder ~ arm", groups="subject")
    assert "singular_fit" in set(fit.diagnostics["code"])
    assert fit.sd.iloc[0] < 1e-4


def test_design_fills_the_nesting():
    d = SPLIT.rename(columns={"patient": "subject_id", "side": "unit_id"})
    fit = quiet(clmm, d, "grade ~ visit * arm", design="split_body")
    assert fit.ngroups == {"subject_id": 80, "subject_id:unit_id": 160}
    with pytest.raises(InputError, match="groups="):
        glmm(d, "responder ~ arm")


def test_bad_input_messages():
    d = simulate()
    with pytest.raises(InputError, match="single scalar random effect"):
        clmm(SPLIT, "grade ~ arm", groups="patient", nested="side", nagq=5)
    with pytest.raises(InputError, match=r"row\(s\) 0"):
        glmm(d.assign(responder=d.grade), "responder ~ arm", groups="subject")
    with pytest.raises(InputError, match="whole numbers"):
        glmm(d.assign(n=1), "grade ~ arm", groups="subject", trials="n")
    with pytest.raises(InputError, match="take the place of the intercept"):
        clmm(d, "grade ~ 0 + arm", groups="subject")
    with pytest.raises(InputError, match="not in the data"):
        glmm(d, "responder ~ arm", groups="patient")
    with pytest.raises(InputError, match="nagq"):
        glmm(d, "responder ~ arm", groups="subject", nagq=0)
    with pytest.raises(InputError, match="non-negative whole"):
        glmm(d.assign(responder=-1), "responder ~ arm", groups="subject", family="poisson")
