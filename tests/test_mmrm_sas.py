"""outcomes.mmrm against SAS PROC MIXED's printed numbers on the CAMIS FEV data.

Reference numbers: SAS PROC MIXED output quoted in R mmrm's own test suite
(openpharma/mmrm, tests/testthat/test-kenwardroger.R, test-satterthwaite.R,
test-between-within.R, test-tmb.R / test-fit.R, test-mmrm-methods.R, test-interop-emmeans.R);
the first (FEV1 ~ ARMCD, us, KR) is the number the issue quotes. They were produced by SAS,
never by this code, so each is a held-out check.

Tolerances: SE to 1e-4 and df to 1e-3, relative (as in mmrm's tests), for the issue's model;
SE to 2e-4 for the other structures. Where SAS reached the REML optimum (ar1, cs: its -2 Res
Log Likelihood equals ours to 1e-8) our Kenward-Roger SE and df equal SAS's to 1e-6
relative. Where it did not (us, ar1h, csh, adh: SAS's -2 Res Log Likelihood is 1.6e-6 to
1.3e-5 above ours and nlme::gls's), the gap is SAS's optimiser, not the formula: evaluated
at SAS's own printed covariance parameters, our SE and df equal SAS's within what the
rounding of those parameters allows (test_kenward_roger_at_sas_estimate).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from outcomes.models.mmrm import mmrm
from outcomes.models.mmrm.dof import build_inference

HERE = Path(__file__).parent / "r" / "mmrm"
FEV = HERE / "fev_data.csv"


@pytest.fixture(scope="module")
def fev() -> pd.DataFrame:
    return pd.read_csv(FEV)


def _arm(fev: pd.DataFrame, cov: str, ddf: str) -> tuple[float, float]:
    fit = mmrm(fev, "FEV1 ~ ARMCD", subject="USUBJID", visit="AVISIT", cov=cov, ddf=ddf)
    row = fit.tidy().set_index("term").loc["ARMCD[T.TRT]"]
    return float(row["std_error"]), float(row["df"])


# (structure, ddf): (SAS SE, SAS df), from test-kenwardroger.R. "kenward-roger" is SAS's
# DDFM=KR; "kenward-roger-linear" is DDFM=KR(FIRSTORDER).
SAS_KR = {
    ("us", "kenward-roger"): (0.66124382270307, 160.733266403768),
    ("us", "kenward-roger-linear"): (0.66124382270307, 160.73326640376),
    ("ar1", "kenward-roger"): (0.95865439662225, 188.46934887972),
    ("ar1", "kenward-roger-linear"): (0.96058142305176, 188.46934887972),
    ("ar1h", "kenward-roger"): (0.7590316099633, 188.225339095373),
    ("ar1h", "kenward-roger-linear"): (0.75924807546934, 188.225339095373),
    ("cs", "kenward-roger-linear"): (0.7964696053595, 177.038485931223),
    ("csh", "kenward-roger"): (0.67414806011886, 190.737701349941),
    ("csh", "kenward-roger-linear"): (0.67403858183242, 190.737701349941),
    ("adh", "kenward-roger"): (0.66172017349971, 162.393385281755),
    ("adh", "kenward-roger-linear"): (0.66158550758897, 162.393385281755),
    ("toep", "kenward-roger"): (0.87839805519623, 160.027408337368),
    ("toeph", "kenward-roger"): (0.72543828853831, 180.062730071701),
    ("toeph", "kenward-roger-linear"): (0.72537324518435, 180.062730071701),
}


def test_issue_number_unstructured_kenward_roger(fev):
    se, df = _arm(fev, "us", "kenward-roger")
    assert se == pytest.approx(0.66124382270307, rel=1e-4)
    assert df == pytest.approx(160.733266403768, rel=1e-3)


@pytest.mark.parametrize(("cov", "ddf"), list(SAS_KR))
def test_kenward_roger_matches_sas(fev, cov, ddf):
    sas_se, sas_df = SAS_KR[cov, ddf]
    se, df = _arm(fev, cov, ddf)
    # worst seen: csh 1.2e-4 and adh 1.1e-4 relative (R mmrm's own tests allow 1e-2 there)
    assert se == pytest.approx(sas_se, rel=2e-4)
    assert df == pytest.approx(sas_df, rel=1e-3)


# SAS's end point for FEV1 ~ ARMCD, REML, DDFM=KR (openpharma/mmrm design/KR/kr_<cov>.txt):
# the last -2 Res Log Likelihood of its iteration history, and its "Covariance Parameter
# Estimates" as printed, in the order of fit.covariance_parameters (us: UN(1,1), UN(2,1),
# UN(2,2), ...; the others: Var(1)..Var(4), then the correlation(s)).
SAS_END = {
    "us": (
        3667.96276376,
        "108.39 45.4113 40.1721 -2.6971 0.7771 24.6058 -47.0103 -13.0998 18.7346 152.36",
    ),
    "ar1h": (3715.28043805, "88.7252 34.6829 32.6996 169.66 0.3674"),
    "csh": (3754.18491472, "100.98 35.2903 28.6359 168.89 0.09475"),
    "adh": (3682.44560955, "110.47 41.1742 24.0872 151.80 0.6996 -0.01585 0.3180"),
}
GLS_SAS_MODELS = json.loads((HERE / "gls_sas_models.json").read_text())


def _kr_at(fit, theta: np.ndarray) -> tuple[float, float]:
    """Kenward-Roger SE and df of ARMCD[T.TRT] with the covariance parameters set to ``theta``."""
    inf = build_inference(fit.likelihood, theta, "kenward-roger", False, None)
    lvec = np.array([0.0, 1.0])
    return float(np.sqrt(lvec @ inf.vcov @ lvec)), float(inf.df(lvec[None, :])[0])


@pytest.mark.parametrize("cov", list(SAS_END))
def test_sas_stops_short_of_the_reml_optimum(fev, cov):
    """SAS's -2 Res Log Likelihood is above the optimum that ours and nlme::gls reach.

    Differences (SAS minus ours): us 7.6e-6, ar1h 1.6e-6, csh 1.04e-5, adh 1.30e-5; at
    SAS's printed parameters our -2 Res Log Likelihood is within 8e-7 of SAS's (the rest is
    the rounding of those parameters), so they are where SAS stopped.
    """
    sas_dev, printed = SAS_END[cov]
    fit = mmrm(fev, "FEV1 ~ ARMCD", subject="USUBJID", visit="AVISIT", cov=cov)
    assert fit.converged
    assert -2 * fit.loglik < sas_dev - 1e-6
    if cov in GLS_SAS_MODELS:  # nlme::gls (tight control) finds the same optimum as ours
        assert -2 * GLS_SAS_MODELS[cov]["loglik"] < sas_dev - 1e-6
    theta = np.array(printed.split(), dtype=float)
    assert fit.likelihood.deviance(theta) == pytest.approx(sas_dev, abs=1e-6)


@pytest.mark.parametrize("cov", list(SAS_END))
def test_kenward_roger_at_sas_estimate(fev, cov):
    """At SAS's own covariance parameters, our Kenward-Roger SE and df are SAS's.

    At our optimum vs at SAS's printed parameters (SAS minus ours), SE relative and df:
    us 8.6e-5 / 2.5e-7 and 0.0427 / 0.0003; csh 1.2e-4 / 1.4e-6 and 0.070 / 0.0009;
    adh 1.1e-4 / 4.8e-6 and 0.065 / 0.0011; ar1h 8.6e-6 / 9.9e-6 and 0.014 / 0.003. What is
    left is within the effect of rounding SAS's printed parameters to their last digit (df:
    us 0.002, csh 0.006, adh 0.003, ar1h 0.007; SE: 0.4e-5 to 1.6e-5 absolute).
    """
    sas_se, sas_df = SAS_KR[cov, "kenward-roger"]
    fit = mmrm(fev, "FEV1 ~ ARMCD", subject="USUBJID", visit="AVISIT", cov=cov)
    _, df_opt = _kr_at(fit, fit.optim.theta)
    se, df = _kr_at(fit, np.array(SAS_END[cov][1].split(), dtype=float))
    assert se == pytest.approx(sas_se, rel=1e-6 if cov == "us" else 2e-5)
    assert df == pytest.approx(sas_df, abs=1e-3 if cov == "us" else 5e-3)
    # SAS's stopping point explains the df gap at our optimum
    assert abs(df - sas_df) < abs(df_opt - sas_df) / 4


def test_kr_variants_differ_where_sas_says_they_do(fev):
    """ar1 is not linear in SAS's parameters: the two SEs differ by 2e-3, as in SAS."""
    se_kr, _ = _arm(fev, "ar1", "kenward-roger")
    se_lin, _ = _arm(fev, "ar1", "kenward-roger-linear")
    assert se_lin - se_kr == pytest.approx(0.96058142305176 - 0.95865439662225, rel=1e-2)


def test_ml_intercept_only(fev):
    """sas_log_simple.txt: FEV1 ~ 1, us, ML (quoted in mmrm's test-tmb.R)."""
    fit = mmrm(fev, "FEV1 ~ 1", subject="USUBJID", visit="AVISIT", reml=False, ddf="residual")
    assert -2 * fit.loglik == pytest.approx(3700.68707570, abs=2e-5)
    assert -2 * fit.loglik <= 3700.68707570  # ours is at least as far down as SAS got
    row = fit.tidy().iloc[0]
    assert row["estimate"] == pytest.approx(42.8367, rel=1e-4)
    assert row["std_error"] == pytest.approx(0.3499, rel=1e-3)
    cov = fit.covariance_matrix().to_numpy()
    # R's lower.tri order: column by column
    lower = [cov[i, j] for j in range(4) for i in range(j + 1, 4)]
    expected = np.array([49.8121, 2.6246, -40.5833, 4.8398, -8.6607, 22.9163])
    # R's all.equal() measure, as mmrm's test: mean absolute difference / mean absolute value
    # (SAS's ML optimum is a little off: 2.6205 here vs 2.6246 printed, 8e-6 in -2 log L)
    assert np.mean(np.abs(np.array(lower) - expected)) / np.mean(np.abs(expected)) < 1e-3


def test_satterthwaite_intercept_only(fev):
    """sas_log_simple_reml.txt (test-satterthwaite.R): est, SE, df rounded, t."""
    fit = mmrm(fev, "FEV1 ~ 1", subject="USUBJID", visit="AVISIT", ddf="satterthwaite")
    row = fit.tidy().iloc[0]
    assert row["estimate"] == pytest.approx(42.8338, rel=1e-4)
    assert row["std_error"] == pytest.approx(0.3509, rel=1e-4)
    assert round(row["df"]) == 171
    # SAS prints 122.07 from its estimate 42.8338; nlme::gls and this fit agree on 42.83299
    # (logLik equal to 1e-11), so the t statistic is 1e-4 below SAS's
    assert row["statistic"] == pytest.approx(122.07, rel=2e-4)


def test_between_within(fev):
    """test-between-within.R: FEV1 ~ 1 has 196 df (197 subjects - 1)."""
    fit = mmrm(fev, "FEV1 ~ 1", subject="USUBJID", visit="AVISIT", ddf="between-within")
    assert fit.tidy().iloc[0]["df"] == 196


FULL = "FEV1 ~ RACE + C(SEX, Treatment('Male')) + ARMCD * AVISIT"


def _f_contrast(fit, cols):
    lmat = np.zeros((len(cols), len(fit.data.names)))
    for i, c in enumerate(cols):
        lmat[i, c] = 1.0
    return fit.f_test(lmat)


def test_between_within_f_tests(fev):
    """SAS via test-between-within.R (get_mmrm: RACE + SEX + ARMCD * AVISIT, us)."""
    fit = mmrm(fev, FULL, subject="USUBJID", visit="AVISIT", ddf="between-within")
    names = list(fit.data.names)
    race = [i for i, n in enumerate(names) if n.startswith("RACE")]
    visit = [names.index("AVISIT[T.VIS2]"), names.index("AVISIT[T.VIS3]")]
    between = _f_contrast(fit, race)
    assert round(between["den_df"]) == 192
    assert between["f_statistic"] == pytest.approx(36.91, rel=1e-3)
    within = _f_contrast(fit, visit)
    assert round(within["den_df"]) == 334
    assert within["f_statistic"] == pytest.approx(80.96, rel=1e-3)


def test_satterthwaite_f_test(fev):
    """test-satterthwaite.R (sas_log_simple_reml.txt): RACE, 2 df, F 36.92, denom 166."""
    fit = mmrm(fev, FULL, subject="USUBJID", visit="AVISIT", ddf="satterthwaite")
    race = [i for i, n in enumerate(fit.data.names) if n.startswith("RACE")]
    res = _f_contrast(fit, race)
    assert res["num_df"] == 2
    assert round(res["den_df"]) == 166
    assert res["f_statistic"] == pytest.approx(36.92, rel=1e-3)


def test_ls_means_by_visit_and_arm(fev):
    """sas_log_reml.txt (test-interop-emmeans.R): LSMEANS ARMCD*AVISIT, Satterthwaite."""
    fit = mmrm(fev, FULL, subject="USUBJID", visit="AVISIT", ddf="satterthwaite")
    em = fit.emmeans("ARMCD", by="AVISIT")
    em = em.sort_values(["AVISIT", "ARMCD"]).reset_index(drop=True)
    np.testing.assert_allclose(
        em["estimate"],
        [33.3318, 37.1063, 38.1715, 41.9037, 43.6740, 46.7546, 48.3855, 52.7841],
        rtol=1e-4,
    )
    np.testing.assert_allclose(
        em["std_error"],
        [0.7554, 0.7626, 0.6117, 0.6023, 0.4617, 0.5086, 1.1886, 1.1877],
        rtol=1e-3,
    )
    # SAS prints whole df; 143.49 here against SAS's 144 for TRT at VIS2 (as mmrm's test,
    # the check is a difference below 1)
    assert np.all(np.abs(em["df"] - [148, 143, 147, 144, 130, 130, 134, 133]) < 1)


@pytest.mark.parametrize(
    ("reml", "cis"),
    [
        (False, [(40.0071, 42.1609), (2.5714, 5.0838), (-1.3968, 1.1204)]),
        (True, [(39.9890, 42.1634), (2.5584, 5.0945), (-1.4108, 1.1301)]),
    ],
)
def test_confidence_intervals(fev, reml, cis):
    """sas_coef_ci_ml_un.txt / sas_coef_ci_reml_un.txt (test-mmrm-methods.R)."""
    fit = mmrm(
        fev,
        "FEV1 ~ ARMCD + C(SEX, Treatment('Male'))",
        subject="USUBJID",
        visit="AVISIT",
        reml=reml,
        ddf="satterthwaite",
    )
    t = fit.tidy()
    # worst relative difference 1.03e-4 (SAS's optimum, see test_satterthwaite_intercept_only)
    np.testing.assert_allclose(t[["conf_low", "conf_high"]].to_numpy(), cis, rtol=2e-4)


def test_empirical_sandwich_matches_mmrm(fev):
    """R mmrm's vcov = "Empirical" (test-satterthwaite.R): intercept 40.94273, SE 0.68615.

    Not a SAS number (SAS prints no Satterthwaite df with EMPIRICAL); the sandwich itself
    is the same (no small-sample correction).
    """
    fit = mmrm(
        fev,
        "FEV1 ~ RACE + C(SEX, Treatment('Male'))",
        subject="USUBJID",
        visit="AVISIT",
        vcov="empirical",
        ddf="between-within",
    )
    row = fit.tidy().iloc[0]
    assert row["estimate"] == pytest.approx(40.94273, rel=1e-4)
    assert row["std_error"] == pytest.approx(0.68615, rel=1e-4)
