"""GEE for binary and ordinal repeated outcomes.

R reference (tests/r/mixed/gee.R, on gee.csv from tests/r/mixed/make_data.py): with an
independence working correlation the GEE estimates are ``glm(responder ~ time + arm,
binomial)`` and the robust SEs the cluster sandwich written out in the script. Exchangeable
fits: R geepack 1.3.9 (tests/r/mixed/gee_exchangeable.R, on gee.csv and the CAMIS respiratory
trial resp_gee.csv) for ``convention="geepack"``; the default (SAS's moment estimators) is
checked against its formula. Unstructured and ordinal fits are checked by recovery of a known
marginal model (make_data.correlated_outcomes: Gaussian copula, exact logit margins).
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from outcomes.errors import InputError, StatisticalWarning
from outcomes.models.gee import gee

R_DIR = Path(__file__).parent / "r" / "mixed"
_spec = importlib.util.spec_from_file_location("make_data", R_DIR / "make_data.py")
make_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_data)

DATA = pd.read_csv(R_DIR / "gee.csv")
REF = json.loads((R_DIR / "gee.json").read_text())
# the truth of correlated_outcomes(): P(grade > k) = expit(alphas[k] + 0.3 time + 0.8 combo)
ALPHAS, BETA_TIME, BETA_ARM = (1.0, -0.5, -2.0), 0.3, 0.8


def quiet_gee(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return gee(*args, **kwargs)


def test_independence_gee_matches_glm_and_cluster_sandwich():
    fit = quiet_gee(DATA, "responder ~ time + arm", groups="subject", cov_struct="independence")
    coef = fit.coefficients.set_index("term")
    names = {"(Intercept)": "Intercept", "time": "time", "armcontrol": "arm[T.control]"}
    ours = coef.loc[[names[t] for t in REF["term"]]]
    # coef(glm(responder ~ time + arm, binomial, d)); sqrt(diag(bread %*% meat %*% bread))
    np.testing.assert_allclose(ours["estimate"], REF["estimate"], rtol=1e-6)
    np.testing.assert_allclose(ours["std_error"], REF["robust_se"], rtol=1e-4)


GEEPACK = json.loads((R_DIR / "gee_exchangeable.json").read_text())
RESP = pd.read_csv(R_DIR / "resp_gee.csv")
GEEPACK_CASES = {
    # geeglm(responder ~ time + arm, binomial, id = subject, corstr = "exchangeable")
    "simulated": (
        DATA,
        "responder ~ time + arm",
        "subject",
        {"(Intercept)": "Intercept", "time": "time", "armcontrol": "arm[T.control]"},
    ),
    # geeglm(outcome ~ trtp + sex + age + base + avisitn, binomial, id = usubjid, ...)
    "resp": (
        RESP,
        "outcome ~ trtp + sex + age + base + avisitn",
        "usubjid",
        {
            "(Intercept)": "Intercept",
            "trtpP": "trtp[T.P]",
            "sexM": "sex[T.M]",
            "age": "age",
            "base": "base",
            "avisitn": "avisitn",
        },
    ),
}


@pytest.mark.parametrize("name", list(GEEPACK_CASES))
def test_exchangeable_matches_geepack(name):
    data, formula, groups, names = GEEPACK_CASES[name]
    ref = GEEPACK[name]
    fit = quiet_gee(data, formula, groups=groups, convention="geepack")
    ours = fit.coefficients.set_index("term").loc[[names[t] for t in ref["term"]]]
    scale = np.maximum(np.abs(ref["estimate"]), ref["robust_se"])
    np.testing.assert_array_less(np.abs(ours["estimate"] - ref["estimate"]) / scale, 1e-6)
    np.testing.assert_allclose(ours["std_error"], ref["robust_se"], rtol=1e-5)
    rho = fit.dependence.set_index("parameter").loc["correlation", "value"]
    assert rho == pytest.approx(ref["alpha"], rel=1e-6)
    assert fit.ngroups == ref["n_clusters"]


def test_default_exchangeable_follows_sas_moment_estimators():
    # SAS PROC GENMOD: phi = sum r^2 / (N - p), alpha = sum_pairs r_j r_k / ((pairs - p) phi)
    fit = quiet_gee(RESP, "outcome ~ trtp + sex + age + base + avisitn", groups="usubjid")
    res = fit.result
    r = np.asarray(res.resid_pearson)
    n, p = len(r), len(res.params)
    pairs = products = 0.0
    for _, idx in RESP.groupby("usubjid").indices.items():
        g = r[idx]
        products += (g.sum() ** 2 - (g**2).sum()) / 2
        pairs += len(g) * (len(g) - 1) / 2
    phi = (r**2).sum() / (n - p)
    rho = fit.dependence.set_index("parameter").loc["correlation", "value"]
    assert rho == pytest.approx(products / ((pairs - p) * phi), rel=1e-4)
    # and it differs from geepack's by about p / N, as documented
    assert abs(rho - GEEPACK["resp"]["alpha"]) > 1e-4


def test_geepack_convention_is_for_exchangeable_only():
    with pytest.raises(InputError, match="exchangeable working correlation only"):
        gee(
            DATA,
            "responder ~ time + arm",
            groups="subject",
            cov_struct="independence",
            convention="geepack",
        )
    with pytest.raises(InputError, match="convention='spss'"):
        gee(DATA, "responder ~ time + arm", groups="subject", convention="spss")


def test_exchangeable_binary_recovers_the_marginal_model():
    fit = quiet_gee(DATA, "responder ~ time + arm", groups="subject")
    c = fit.coefficients.set_index("term")
    truth = {"Intercept": ALPHAS[1] + BETA_ARM, "time": BETA_TIME, "arm[T.control]": -BETA_ARM}
    for term, value in truth.items():
        assert abs(c.loc[term, "estimate"] - value) < 3 * c.loc[term, "std_error"], term
    np.testing.assert_allclose(c["odds_ratio"], np.exp(c["estimate"]))
    np.testing.assert_allclose(c["or_conf_low"], np.exp(c["conf_low"]))
    assert fit.cov_struct == "exchangeable"
    rho = fit.dependence.set_index("parameter").loc["correlation", "value"]
    assert 0 < rho < 1
    assert list(fit.coefficients.columns[:8]) == [
        "term",
        "estimate",
        "std_error",
        "statistic",
        "df",
        "p_value",
        "conf_low",
        "conf_high",
    ]


def test_unstructured_needs_time_and_reports_pairwise_correlations():
    with pytest.raises(InputError, match="needs time="):
        gee(DATA, "responder ~ time + arm", groups="subject", cov_struct="unstructured")
    fit = quiet_gee(
        DATA, "responder ~ time + arm", groups="subject", cov_struct="unstructured", time="visit"
    )
    assert len(fit.dependence) == 6  # 4 visits: 6 correlations
    assert fit.dependence["parameter"].iloc[0] == "correlation(v0,v1)"


def test_ordinal_gee_recovers_thresholds_and_log_odds_ratios():
    fit = quiet_gee(DATA, "grade ~ time + arm", groups="subject", family="ordinal")
    c = fit.coefficients.set_index("term")
    assert fit.cov_struct == "global_odds_ratio"
    # thresholds: log odds of a grade above k for the reference arm (combo) at time 0
    thresholds = c[c.index.str.startswith("threshold")]
    assert len(thresholds) == 3
    for est, se, alpha in zip(thresholds["estimate"], thresholds["std_error"], ALPHAS, strict=True):
        assert abs(est - (alpha + BETA_ARM)) < 3 * se
    assert abs(c.loc["time", "estimate"] - BETA_TIME) < 3 * c.loc["time", "std_error"]
    assert (
        abs(c.loc["arm[T.control]", "estimate"] + BETA_ARM)
        < 3 * c.loc["arm[T.control]", "std_error"]
    )
    assert "GEE (ordinal" in str(fit) and "<table" in fit._repr_html_()
    ard = fit.to_ard(analysis="gee")
    assert set(ard["stat_name"]) >= {"estimate", "odds_ratio"}


def test_bad_gee_input_gives_input_errors():
    with pytest.raises(InputError, match="0/1 outcome"):
        gee(DATA, "grade ~ time", groups="subject")
    with pytest.raises(InputError, match="not available"):
        gee(DATA, "grade ~ time", groups="subject", family="ordinal", cov_struct="unstructured")
    with pytest.raises(InputError, match="family="):
        gee(DATA, "grade ~ time", groups="subject", family="poisson")
    with pytest.raises(InputError, match="not in the data"):
        gee(DATA, "responder ~ time", groups="patient")


def test_few_clusters_are_flagged():
    small = DATA[DATA["subject"].isin(DATA["subject"].unique()[:12])]
    with pytest.warns(StatisticalWarning, match="clusters"):
        fit = gee(small, "responder ~ time", groups="subject")
    assert "few_clusters" in set(fit.diagnostics["code"])


@pytest.mark.slow
@pytest.mark.parametrize("family", ["binomial", "ordinal"])
def test_gee_ci_coverage_over_300_simulated_data_sets(family):
    covered = []
    for seed in range(300):
        d = make_data.correlated_outcomes(120, seed=50_000 + seed)
        y = "responder" if family == "binomial" else "grade"
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            fit = gee(d, f"{y} ~ time + arm", groups="subject", family=family)
        row = fit.coefficients.set_index("term").loc["arm[T.control]"]
        covered.append(row["conf_low"] <= -BETA_ARM <= row["conf_high"])
    coverage = float(np.mean(covered))
    print(f"\nGEE {family}: coverage of the arm log odds ratio {coverage:.3f} over 300 data sets")
    # 300 data sets: the Monte Carlo SE of a 95% coverage is 1.3 points
    assert 0.92 <= coverage <= 0.98


def test_tidy_puts_the_shared_columns_first_and_keeps_odds_ratios():
    from outcomes.results import TIDY_COLUMNS

    fit = quiet_gee(DATA, "responder ~ time + arm", groups="subject")
    tidy = fit.tidy()
    assert tuple(tidy.columns[: len(TIDY_COLUMNS)]) == TIDY_COLUMNS
    assert set(fit.coefficients.columns) == set(tidy.columns)
    assert tidy["estimate"].tolist() == fit.coefficients["estimate"].tolist()
