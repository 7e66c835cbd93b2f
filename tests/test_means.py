"""Marginal means, contrasts and emmeans' multiplicity adjustments (outcomes.models.means).

Reference numbers: tests/r/means/means.R -> means.json (emmeans 1.8.4-1, lme4 1.1-31, mvtnorm
1.1-3) on parallel.csv and binary.csv written by tests/r/means/make_data.py (fixed seeds).

Two layers: the adjustments alone, fed R's own t ratios, df and contrast correlations (so only
the port is tested), and whole fits (our lmm and a statsmodels GLM through a LinearPredictor)
against R's fits. ``mvt`` is Monte-Carlo in both R (mvtnorm, error about 1e-3; R's interval
ends move by about 0.006 between seeds here) and here, so it gets Monte-Carlo tolerances.
emmeans solves the ``dunnettx`` critical value only to 5e-4 and R's ``qtukey`` to 1e-4, so
their intervals get 5e-4 * SE and 1e-4 * SE.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy import stats

from outcomes.errors import InputError
from outcomes.models import means
from outcomes.models.mixed import lmm

HERE = Path(__file__).parent / "r" / "means"
REF = json.loads((HERE / "means.json").read_text())
LMER = REF["lmer"]["contrasts"]
GLM = REF["glm"]["contrasts"]


def _ci_tol(adjust: str, se: np.ndarray, base: float) -> np.ndarray:
    # R's qtukey iterates to eps = 1e-4; emmeans' dunnettx root to 5e-4
    return {"tukey": 1e-4 * se, "dunnettx": 5e-4 * se, "mvt": 0.01 * se}.get(adjust, base * se)


def _family_rows(table: pd.DataFrame) -> list[np.ndarray]:
    by = table["visit"] if "visit" in table else pd.Series(["all"] * len(table))
    return [np.flatnonzero(by == v) for v in dict.fromkeys(by)]


@pytest.mark.parametrize(("model", "key"), [("lmer", k) for k in LMER] + [("glm", k) for k in GLM])
def test_adjustments_of_r_statistics_match_emmeans(model, key):
    # summary(contrast(emm, method, adjust = a), infer = c(TRUE, TRUE)): p-values from R's own
    # t ratios and df; intervals as estimate -/+ critical value * SE
    method, adjust = key.split("/")
    r = pd.DataFrame(REF[model]["contrasts"][key])
    lower = "lower.CL" if "lower.CL" in r else "asymp.LCL"
    stat = "t.ratio" if "t.ratio" in r else "z.ratio"
    df = r["df"].astype(float).fillna(np.inf).to_numpy() if "df" in r else np.full(len(r), np.inf)
    df_tukey = means._zapsmall(df)  # emmeans rounds all families' df together for Tukey
    corrs = REF[model]["corr"][method]
    n_means = {"lmer": 4, "glm": 3}[model]
    for rows, corr in zip(_family_rows(r), corrs.values(), strict=True):
        t = r[stat].to_numpy()[rows]
        p_df = df_tukey[rows] if adjust == "tukey" else df[rows]
        p = means.adjusted_p_values(t, p_df, adjust, n_means, np.array(corr))
        cv = means.adjusted_critical_values(0.95, df[rows], adjust, n_means, np.array(corr))
        rp = r["p.value"].to_numpy()[rows]
        if adjust == "mvt":
            np.testing.assert_allclose(p, rp, atol=2e-3)
        else:
            np.testing.assert_allclose(p, rp, rtol=1e-6, atol=1e-12)
        se = r["SE"].to_numpy()[rows]
        low = r["estimate"].to_numpy()[rows] - cv * se
        assert np.all(np.abs(low - r[lower].to_numpy()[rows]) <= _ci_tol(adjust, se, 1e-9))


@pytest.fixture(scope="module")
def lmer_fit():
    d = pd.read_csv(HERE / "parallel.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return lmm(d, "score ~ visit * arm", groups="patient", engine="statsmodels")


@pytest.mark.parametrize("key", list(LMER))
def test_lmm_contrasts_match_emmeans(lmer_fit, key):
    # contrast(emmeans(m, ~ arm | visit), method, adjust = a) on
    # lmer(score ~ visit * arm + (1 | patient), REML = TRUE), Satterthwaite df
    np.testing.assert_allclose(lmer_fit.loglik, REF["lmer"]["loglik"], rtol=1e-9)
    method, adjust = key.split("/")
    r = pd.DataFrame(LMER[key]).set_index(["visit", "contrast"])
    ours = lmer_fit.contrasts("arm", by="visit", method=method, adjust=adjust)
    ours = ours.set_index(["visit", "contrast"]).loc[r.index]
    assert (ours["adjust"] == adjust).all()
    np.testing.assert_allclose(ours["estimate"], r["estimate"], rtol=1e-6)
    np.testing.assert_allclose(ours["std_error"], r["SE"], rtol=1e-5)
    np.testing.assert_allclose(ours["df"], r["df"], rtol=1e-5)
    atol = 3e-3 if adjust == "mvt" else 1e-6
    np.testing.assert_allclose(ours["p_value"], r["p.value"], atol=atol)
    tol = _ci_tol(adjust, r["SE"].to_numpy(), 1e-6)
    assert np.all(np.abs(ours["conf_low"] - r["lower.CL"]).to_numpy() <= tol)
    assert np.all(np.abs(ours["conf_high"] - r["upper.CL"]).to_numpy() <= tol)


def test_lmm_emmeans_match_emmeans(lmer_fit):
    r = pd.DataFrame(REF["lmer"]["emmeans"]).set_index(["visit", "arm"])
    ours = lmer_fit.emmeans("arm", by="visit").set_index(["visit", "arm"]).loc[r.index]
    np.testing.assert_allclose(ours["estimate"], r["emmean"], rtol=1e-7)
    np.testing.assert_allclose(ours["std_error"], r["SE"], rtol=1e-5)
    np.testing.assert_allclose(ours["conf_low"], r["lower.CL"], rtol=1e-5)


@pytest.fixture(scope="module")
def glm_predictor():
    b = pd.read_csv(HERE / "binary.csv")
    g = smf.glm("y ~ arm + age", b, family=sm.families.Binomial()).fit(tol=1e-14)
    np.testing.assert_allclose(g.params.to_numpy(), REF["glm"]["coef"], rtol=1e-8)
    return means.LinearPredictor(
        names=list(g.params.index),
        beta=g.params.to_numpy(),
        vcov=g.cov_params().to_numpy(),
        df_fn=lambda lmat: np.full(len(lmat), np.inf),
        design_info=g.model.data.orig_exog.design_info,
        data=b,
        link=sm.families.links.Logit(),
    )


def test_glm_response_scale_means_match_emmeans(glm_predictor):
    # summary(emmeans(glm(y ~ arm + age, binomial), ~ arm, type = "response"), infer = TRUE)
    r = pd.DataFrame(REF["glm"]["response"]).set_index("arm")
    ours = means.emmeans(glm_predictor, "arm", scale="response").set_index("arm").loc[r.index]
    np.testing.assert_allclose(ours["estimate"], r["prob"], rtol=1e-7)
    np.testing.assert_allclose(ours["std_error"], r["SE"], rtol=1e-6)
    np.testing.assert_allclose(ours["conf_low"], r["asymp.LCL"], rtol=1e-6)
    np.testing.assert_allclose(ours["conf_high"], r["asymp.UCL"], rtol=1e-6)
    np.testing.assert_allclose(ours["statistic"], r["z.ratio"], rtol=1e-6)
    np.testing.assert_allclose(ours["p_value"], r["p.value"], rtol=1e-6)
    assert np.isinf(ours["df"]).all()
    link = means.emmeans(glm_predictor, "arm").set_index("arm").loc[r.index]
    rl = pd.DataFrame(REF["glm"]["link"]).set_index("arm")
    np.testing.assert_allclose(link["estimate"], rl["emmean"], rtol=1e-7)
    np.testing.assert_allclose(link["conf_low"], rl["asymp.LCL"], rtol=1e-6)


@pytest.mark.parametrize("key", list(GLM))
def test_glm_z_contrasts_match_emmeans(glm_predictor, key):
    method, adjust = key.split("/")
    r = pd.DataFrame(GLM[key]).set_index("contrast")
    ours = means.contrasts(glm_predictor, "arm", method=method, adjust=adjust)
    ours = ours.set_index("contrast").loc[r.index]
    np.testing.assert_allclose(ours["estimate"], r["estimate"], rtol=1e-7)
    atol = 3e-3 if adjust == "mvt" else 1e-8
    np.testing.assert_allclose(ours["p_value"], r["p.value"], atol=atol)
    tol = _ci_tol(adjust, r["SE"].to_numpy(), 1e-7)
    assert np.all(np.abs(ours["conf_low"] - r["asymp.LCL"]).to_numpy() <= tol)


def test_mvt_of_independent_contrasts_is_sidak():
    # Known truth: for independent normal contrasts P(max |Z| < x) = (1 - p)^k exactly
    t = np.array([1.2, 2.1, 2.7, 0.4])
    p = means.adjusted_p_values(t, np.inf, "mvt", corr=np.eye(4))
    sidak = 1 - (1 - 2 * stats.norm.sf(np.abs(t))) ** 4
    np.testing.assert_allclose(p, sidak, atol=1e-3)
    cv = means.adjusted_critical_values(0.95, np.full(4, np.inf), "mvt", corr=np.eye(4))
    np.testing.assert_allclose(cv, stats.norm.ppf(0.5 + 0.95 ** (1 / 4) / 2), atol=2e-3)
    again = means.adjusted_p_values(t, np.inf, "mvt", corr=np.eye(4))
    np.testing.assert_array_equal(p, again)  # fixed seed: reruns agree


def test_single_contrast_is_not_adjusted(lmer_fit):
    # emmeans drops tukey/dunnettx/mvt for a family of one contrast
    at = {"arm": ["MN", "PRP"]}
    none = lmer_fit.contrasts("arm", by="visit", at=at, method="pairwise")
    for adjust in ("tukey", "dunnettx", "mvt"):
        adj = lmer_fit.contrasts("arm", by="visit", at=at, method="pairwise", adjust=adjust)
        np.testing.assert_allclose(adj["p_value"], none["p_value"], rtol=1e-12)
        np.testing.assert_allclose(adj["conf_low"], none["conf_low"], rtol=1e-12)


def test_input_errors(lmer_fit, glm_predictor):
    with pytest.raises(InputError, match="'pairwise' only"):
        lmer_fit.contrasts("arm", by="visit", adjust="tukey")
    with pytest.raises(InputError, match="not supported"):
        lmer_fit.contrasts("arm", adjust="scheffe")
    with pytest.raises(InputError, match="needs a model with a link"):
        means.emmeans(lmer_fit.linear_predictor, "arm", scale="response")
    with pytest.raises(InputError, match="scale="):
        means.emmeans(glm_predictor, "arm", scale="odds")
