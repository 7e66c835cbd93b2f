"""Meta-analysis (outcomes.models.meta) against R metafor 3.8.1.

Reference numbers: tests/r/meta/metafor_reference.json, written by
tests/r/meta/metafor_reference.R (the R call producing each number is quoted next to its
assertion). Tolerances: 1e-6 relative for estimates, 1e-4 for tau^2 and standard errors.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from outcomes.errors import InputError, SingularFitWarning, StatisticalWarning
from outcomes.models.meta.effect_sizes import escalc, phi_limits
from outcomes.models.meta.meta_analysis import meta_analysis
from outcomes.models.network.published import microneedling_pairs
from outcomes.results import TIDY_COLUMNS

R = json.loads((Path(__file__).parent / "r" / "meta" / "metafor_reference.json").read_text())
EST = {"rel": 1e-6, "abs": 1e-12}
SE = {"rel": 1e-4, "abs": 1e-10}
TAU2 = {"rel": 1e-4, "abs": 1e-8}


def bcg() -> pd.DataFrame:
    b = R["bcg_data"]
    return pd.DataFrame(
        {
            "study": [f"{a} {y}" for a, y in zip(b["author"], b["year"], strict=True)],
            "events1": b["tpos"],
            "n1": np.add(b["tpos"], b["tneg"]),
            "events2": b["cpos"],
            "n2": np.add(b["cpos"], b["cneg"]),
            "alloc": b["alloc"],
        }
    )


def normand() -> pd.DataFrame:
    d = pd.DataFrame(R["normand_data"])
    return d.rename(
        columns={
            "m1i": "mean1",
            "sd1i": "sd1",
            "n1i": "n1",
            "m2i": "mean2",
            "sd2i": "sd2",
            "n2i": "n2",
        }
    ).assign(study=lambda x: x["study"].astype(str))


def quiet(*args, **kwargs):
    """meta_analysis with the (expected, separately tested) warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return meta_analysis(*args, **kwargs)


def check_fit(res, ref, term="overall"):
    s = res.summary.set_index("term").loc[term]
    h = res.heterogeneity.set_index("term").loc[term]
    assert s["estimate"] == pytest.approx(ref["estimate"], **EST)
    assert s["std_error"] == pytest.approx(ref["se"], **SE)
    assert s["conf_low"] == pytest.approx(ref["ci_lb"], **EST)
    assert s["conf_high"] == pytest.approx(ref["ci_ub"], **EST)
    assert s["statistic"] == pytest.approx(ref["zval"], **EST)
    assert s["p_value"] == pytest.approx(ref["pval"], rel=1e-5)
    assert h["tau2"] == pytest.approx(ref["tau2"], **TAU2)
    assert h["i2"] == pytest.approx(ref["I2"], rel=1e-6, abs=1e-6)
    assert h["h2"] == pytest.approx(ref["H2"], rel=1e-6)
    assert h["q"] == pytest.approx(ref["QE"], rel=1e-9)
    assert h["q_p"] == pytest.approx(ref["QEp"], rel=1e-6)
    assert h["k"] == ref["k"]
    # res$se.tau2: metafor reports one for every random-effects method (NA/0 for FE)
    if ref["se_tau2"] is None or res.method == "FE":
        assert np.isnan(h["tau2_se"])
    else:
        assert h["tau2_se"] == pytest.approx(ref["se_tau2"], **SE)


# ------------------------------------------------------------------------------ effect sizes


def test_escalc_rr_or_rd_match_metafor_on_bcg():
    d = bcg()
    # escalc(measure="RR", ai=tpos, bi=tneg, ci=cpos, di=cneg, data=dat.bcg)
    e = escalc(d, "RR")
    np.testing.assert_allclose(e["yi"], R["bcg_rr_escalc"]["yi"], rtol=1e-10)
    np.testing.assert_allclose(e["vi"], R["bcg_rr_escalc"]["vi"], rtol=1e-10)
    # escalc(measure="OR", ...)
    e = escalc(d, "OR")
    np.testing.assert_allclose(e["yi"], R["bcg_or_escalc"]["yi"], rtol=1e-10)
    np.testing.assert_allclose(e["vi"], R["bcg_or_escalc"]["vi"], rtol=1e-10)
    # escalc(measure="RD", ...)
    e = escalc(d, "RD")
    np.testing.assert_allclose(e["yi"], R["bcg_rd_escalc"]["yi"], rtol=1e-10)
    np.testing.assert_allclose(e["vi"], R["bcg_rd_escalc"]["vi"], rtol=1e-10)
    assert not e["continuity_corrected"].any()


def test_zero_cells_get_metafor_half_correction_only_where_needed():
    z = R["zero_data"]
    d = pd.DataFrame(
        {
            "study": list("abcd"),
            "events1": z["ai"],
            "n1": z["n1i"],
            "events2": z["ci"],
            "n2": z["n2i"],
        }
    )
    # escalc(measure="RR", ai=ai, n1i=n1i, ci=ci, n2i=n2i, data=zero)   (add=1/2, to="only0")
    e = escalc(d, "RR")
    np.testing.assert_allclose(e["yi"], R["zero_rr_escalc"]["yi"], rtol=1e-10)
    np.testing.assert_allclose(e["vi"], R["zero_rr_escalc"]["vi"], rtol=1e-10)
    # studies a, b have a zero cell, d has events1 == n1 (a zero non-event cell)
    assert e["continuity_corrected"].tolist() == [True, True, False, True]
    # escalc(measure="OR", ...)
    e = escalc(d, "OR")
    np.testing.assert_allclose(e["yi"], R["zero_or_escalc"]["yi"], rtol=1e-10)
    np.testing.assert_allclose(e["vi"], R["zero_or_escalc"]["vi"], rtol=1e-10)


def test_escalc_smd_and_md_match_metafor_on_normand1999():
    d = normand()
    # escalc(measure="SMD", m1i=m1i, sd1i=sd1i, n1i=n1i, m2i=m2i, sd2i=sd2i, n2i=n2i,
    #        data=dat.normand1999)
    e = escalc(d, "SMD")
    np.testing.assert_allclose(e["yi"], R["normand_smd_escalc"]["yi"], rtol=1e-10)
    np.testing.assert_allclose(e["vi"], R["normand_smd_escalc"]["vi"], rtol=1e-10)
    # escalc(measure="MD", ...)
    e = escalc(d, "MD")
    np.testing.assert_allclose(e["yi"], R["normand_md_escalc"]["yi"], rtol=1e-10)
    np.testing.assert_allclose(e["vi"], R["normand_md_escalc"]["vi"], rtol=1e-10)


def test_metafor_column_names_are_accepted():
    b = R["bcg_data"]
    table = pd.DataFrame({"ai": b["tpos"], "bi": b["tneg"], "ci": b["cpos"], "di": b["cneg"]})
    # escalc(measure="RR", ai=tpos, bi=tneg, ci=cpos, di=cneg, data=dat.bcg)
    e = escalc(table, "RR")
    np.testing.assert_allclose(e["yi"], R["bcg_rr_escalc"]["yi"], rtol=1e-10)
    assert e["study"].tolist()[:3] == ["1", "2", "3"]
    raw = pd.DataFrame(R["normand_data"]).drop(columns=["study"])
    # rma(yi, vi, data=escalc("SMD", m1i=m1i, ...), method="REML")
    check_fit(meta_analysis(raw, "SMD", "REML"), R["normand_smd_reml"])


def paired_continuous() -> pd.DataFrame:
    p = R["paired_data"]
    return pd.DataFrame(
        {
            "study": ["p1", "p2", "p3"],
            "design": "split_body",
            "mean1": p["m1i"],
            "sd1": p["sd1i"],
            "n1": p["ni"],
            "mean2": p["m2i"],
            "sd2": p["sd2i"],
            "n2": p["ni"],
            "r": p["ri"],
        }
    )


def test_split_face_continuous_is_paired():
    d = paired_continuous()
    # escalc(measure="MC", m1i, m2i, sd1i, sd2i, ni, ri)
    e = escalc(d, "MD")
    np.testing.assert_allclose(e["yi"], R["paired_mc_escalc"]["yi"], rtol=1e-12)
    np.testing.assert_allclose(e["vi"], R["paired_mc_escalc"]["vi"], rtol=1e-12)
    # by hand, study 1: sd_d^2 = 15^2 + 15^2 - 2 * 0.5 * 15 * 15 = 225; vi = 225 / 50 = 4.5
    assert e["vi"].iloc[0] == pytest.approx(4.5, rel=1e-12)
    # escalc(measure="SMCR", m1i, m2i, sd1i, ni, ri): equal SDs make our raw-score SMD equal
    e = escalc(d, "SMD")
    np.testing.assert_allclose(e["yi"], R["paired_smcr_escalc"]["yi"], rtol=1e-10)
    np.testing.assert_allclose(e["vi"], R["paired_smcr_escalc"]["vi"], rtol=1e-10)
    # analysing the sides as independent groups would give a larger variance when r > 0
    indep = escalc(d.drop(columns=["design", "r"]), "MD")
    assert (indep["vi"] > escalc(d, "MD")["vi"]).all()


@pytest.mark.parametrize("e1, e2, n", [(20, 5, 50), (5, 2, 27), (30, 40, 50), (1, 49, 50)])
def test_phi_limits_are_the_extremes_over_all_tables_with_those_margins(e1, e2, n):
    # every 2x2 table of n patients with e1 and e2 responders: "both respond" runs from
    # max(0, e1 + e2 - n) to min(e1, e2); phi of each computed directly from its four cells
    phis = []
    for both in range(max(0, e1 + e2 - n), min(e1, e2) + 1):
        a, b, c = both, e1 - both, e2 - both
        d = n - a - b - c
        phis.append((a * d - b * c) / np.sqrt(e1 * (n - e1) * e2 * (n - e2)))
    low, high = phi_limits(e1, e2, n)
    assert float(low) == pytest.approx(min(phis), abs=1e-12)
    assert float(high) == pytest.approx(max(phis), abs=1e-12)


def test_phi_limits_undefined_when_a_side_is_constant():
    low, high = phi_limits([0, 3], [4, 10], [10, 10])
    assert np.isnan(low).all() and np.isnan(high).all()


def test_split_face_binary_refuses_an_unattainable_r():
    d = pd.DataFrame(
        {
            "study": ["Asif 2016", "ok"],
            "design": "split_body",
            "events1": [20, 10],
            "n1": [50, 50],
            "events2": [5, 10],
            "n2": [50, 50],
        }
    )
    with pytest.raises(InputError) as err:
        escalc(d, "OR", r=0.5)
    msg = str(err.value)
    assert "row 0 (study Asif 2016)" in msg and "20/50 vs 5/50" in msg
    assert "-0.272 to 0.408" in msg and "Choose r within" in msg and "study ok" not in msg
    # the same through meta_analysis; r at the bound itself is accepted
    with pytest.raises(InputError, match="Asif 2016"):
        meta_analysis(d, "RR", "FE", r=0.5)
    at_bound = d.iloc[[0]].assign(r=np.sqrt(0.1 * 0.6 / (0.4 * 0.9)))
    assert np.isfinite(escalc(at_bound, "OR")["vi"]).all()
    # equal margins (20/50 each side) allow r up to 1 but not below -2/3
    with pytest.raises(InputError, match=r"r from -0\.667 to 1\.000, not r = -1"):
        escalc(d.iloc[[0]].assign(events2=20), "RD", r=-1)


def test_split_face_binary_uses_correlation():
    p = R["paired_binary_data"]
    n = np.add(p["ai"], p["bi"])
    d = pd.DataFrame(
        {
            "study": ["asif", "other"],
            "design": "split_body",
            "events1": p["ai"],
            "n1": n,
            "events2": p["ci"],
            "n2": n,
            "r": p["ri"],
        }
    )
    # escalc(measure="MPORM", ai, bi, ci, di, ri): marginal paired log OR
    e = escalc(d, "OR")
    np.testing.assert_allclose(e["yi"], R["paired_mporm_escalc"]["yi"], rtol=1e-12)
    np.testing.assert_allclose(e["vi"], R["paired_mporm_escalc"]["vi"], rtol=1e-10)
    # RR (no metafor counterpart from marginal counts): delta method by hand for Asif 2016,
    # p1 = 20/50 = 0.4, p2 = 5/50 = 0.1, r = 0.3, n = 50:
    # var = q1/(n p1) + q2/(n p2) - 2 r sqrt(p1 q1 p2 q2)/(n p1 p2)
    #     = 0.6/20 + 0.9/5 - 2*0.3*sqrt(0.4*0.6*0.1*0.9)/(50*0.04) = 0.03 + 0.18 - 0.0441 ...
    rr = escalc(d, "RR")
    expected = 0.6 / 20 + 0.9 / 5 - 2 * 0.3 * np.sqrt(0.4 * 0.6 * 0.1 * 0.9) / (50 * 0.04)
    assert rr["yi"].iloc[0] == pytest.approx(np.log(4.0), rel=1e-12)
    assert rr["vi"].iloc[0] == pytest.approx(expected, rel=1e-12)
    # r = 0 gives back the independent-groups variance
    r0 = escalc(d.assign(r=0.0), "RR")
    assert r0["vi"].iloc[0] == pytest.approx(1 / 20 - 1 / 50 + 1 / 5 - 1 / 50, rel=1e-12)


# ------------------------------------------------------------------------------ pooling


@pytest.mark.parametrize(
    ("method", "key"),
    [("FE", "bcg_rr_fe"), ("DL", "bcg_rr_dl"), ("REML", "bcg_rr_reml"), ("PM", "bcg_rr_pm")],
)
def test_bcg_risk_ratio_pooling_matches_metafor(method, key):
    # rma(yi, vi, data=dat, method=<method>)  (REML/PM with control=list(tol=1e-12, ...))
    res = meta_analysis(bcg(), "RR", method)
    check_fit(res, R[key])
    assert list(res.summary.columns[:8]) == list(TIDY_COLUMNS)


@pytest.mark.parametrize(
    ("method", "key"), [("REML", "bcg_rr_reml_knha"), ("DL", "bcg_rr_dl_knha")]
)
def test_knapp_hartung_matches_metafor(method, key):
    # rma(yi, vi, data=dat, method=<method>, test="knha")
    res = meta_analysis(bcg(), "RR", method, knapp_hartung=True)
    s = res.summary.iloc[0]
    ref = R[key]
    assert s["df"] == ref["ddf"] == 12
    assert s["estimate"] == pytest.approx(ref["estimate"], **EST)
    assert s["std_error"] == pytest.approx(ref["se"], **SE)
    assert s["statistic"] == pytest.approx(ref["zval"], **EST)
    assert s["p_value"] == pytest.approx(ref["pval"], rel=1e-5)
    assert s["conf_low"] == pytest.approx(ref["ci_lb"], **EST)
    assert s["conf_high"] == pytest.approx(ref["ci_ub"], **EST)


def test_study_weights_and_other_levels_match_metafor():
    res = meta_analysis(bcg(), "RR", "REML")
    # weights(rma(yi, vi, data=dat, method="REML"))
    np.testing.assert_allclose(res.studies["weight"], R["bcg_rr_reml_weights"], rtol=1e-6)
    # rma(yi, vi, data=dat, method="REML", level=90) and predict() of it
    res90 = meta_analysis(bcg(), "RR", "REML", level=0.90)
    s, p = res90.summary.iloc[0], res90.predict().iloc[0]
    ref = R["bcg_rr_reml_level90"]
    assert s["conf_low"] == pytest.approx(ref["ci_lb"], **EST)
    assert s["conf_high"] == pytest.approx(ref["ci_ub"], **EST)
    assert p["pi_low"] == pytest.approx(ref["pi_lb"], **EST)
    assert p["pi_high"] == pytest.approx(ref["pi_ub"], **EST)


def test_prediction_intervals_match_metafor_predict():
    res = meta_analysis(bcg(), "RR", "REML")
    p = res.predict().iloc[0]
    ref = R["bcg_rr_reml_predict"]  # predict(rma(yi, vi, data=dat, method="REML"))
    for ours, theirs in [
        ("estimate", "pred"),
        ("conf_low", "ci_lb"),
        ("conf_high", "ci_ub"),
        ("pi_low", "pi_lb"),
        ("pi_high", "pi_ub"),
    ]:
        assert p[ours] == pytest.approx(ref[theirs], **EST)
    assert p["std_error"] == pytest.approx(ref["se"], **SE)
    # predict(res, transf=exp)
    pe = res.predict(exponentiate=True).iloc[0]
    ref = R["bcg_rr_reml_predict_exp"]
    for ours, theirs in [("estimate", "pred"), ("pi_low", "pi_lb"), ("pi_high", "pi_ub")]:
        assert pe[ours] == pytest.approx(ref[theirs], **EST)
    # predict(rma(..., test="knha")): t quantile with k - 1 df in the prediction interval
    pk = meta_analysis(bcg(), "RR", "REML", knapp_hartung=True).predict().iloc[0]
    ref = R["bcg_rr_reml_knha_predict"]
    assert pk["pi_low"] == pytest.approx(ref["pi_lb"], **EST)
    assert pk["pi_high"] == pytest.approx(ref["pi_ub"], **EST)


def test_smd_and_md_pooling_match_metafor():
    d = normand()
    # rma(yi, vi, data=escalc("SMD", ...), method="REML")
    res = meta_analysis(d, "SMD", "REML")
    check_fit(res, R["normand_smd_reml"])
    p = res.predict().iloc[0]
    assert p["pi_low"] == pytest.approx(R["normand_smd_reml_predict"]["pi_lb"], **EST)
    assert p["pi_high"] == pytest.approx(R["normand_smd_reml_predict"]["pi_ub"], **EST)
    # rma(yi, vi, data=escalc("SMD", ...), method="DL")
    check_fit(meta_analysis(d, "SMD", "DL"), R["normand_smd_dl"])
    # rma(yi, vi, data=escalc("MD", ...), method="PM")
    check_fit(meta_analysis(d, "MD", "PM"), R["normand_md_pm"])


def test_odds_ratio_dl_matches_metafor():
    # rma(yi, vi, data=escalc("OR", ai=tpos, ...), method="DL")
    check_fit(meta_analysis(bcg(), "OR", "DL"), R["bcg_or_dl"])


def test_subgroups_and_test_of_differences_match_metafor():
    with pytest.warns(StatisticalWarning) as record:
        res = meta_analysis(bcg(), "RR", "REML", by="alloc")
    messages = sorted(str(w.message) for w in record)
    assert messages[0].startswith("alternate: only 2 studies")
    assert messages[1].startswith("systematic: only 4 studies")
    for group in ("alternate", "random", "systematic"):
        # rma(yi, vi, data=dat, subset=alloc==<group>, method="REML")
        check_fit(res, R["bcg_rr_reml_by_alloc"][group], term=group)
    # rma(est, sei=sei, method="FE")$QE over the three subgroup estimates
    t = res.subgroup_test.iloc[0]
    ref = R["bcg_rr_reml_by_alloc_test"]
    assert t["q"] == pytest.approx(ref["Q"], rel=1e-6)
    assert t["df"] == ref["df"]
    assert t["p_value"] == pytest.approx(ref["p"], rel=1e-6)
    # weights are percentages within each subgroup
    w = res.studies.groupby("alloc")["weight"].sum()
    np.testing.assert_allclose(w, 100.0)
    assert set(res.diagnostics["code"]) >= {"few_studies"}


def test_tau2_at_boundary_is_reported_and_warned():
    z = R["zero_data"]
    d = pd.DataFrame(
        {
            "study": list("abcd"),
            "events1": z["ai"],
            "n1": z["n1i"],
            "events2": z["ci"],
            "n2": z["n2i"],
        }
    )
    with pytest.warns((SingularFitWarning, StatisticalWarning)) as record:
        res = meta_analysis(d, "RR", "REML")
    assert {type(w.message) for w in record} == {SingularFitWarning, StatisticalWarning}
    assert any("zero boundary" in str(w.message) for w in record)
    # rma(yi, vi, data=zr, method="REML"): tau^2 = 1.6e-14, i.e. at the boundary
    ref = R["zero_rr_reml"]
    s = res.summary.iloc[0]
    assert res.heterogeneity["tau2"].iloc[0] == 0.0
    assert ref["tau2"] < 1e-10
    assert s["estimate"] == pytest.approx(ref["estimate"], rel=1e-6)
    assert s["std_error"] == pytest.approx(ref["se"], **SE)
    codes = set(res.diagnostics["code"])
    assert {"tau2_boundary", "few_studies", "continuity_correction"} <= codes


def test_reml_equals_fixed_effect_when_tau2_is_zero():
    d = pd.DataFrame({"study": list("abc"), "yi": [0.1, 0.11, 0.12], "vi": [0.05, 0.04, 0.06]})
    fe = meta_analysis(d, "GEN", "FE")
    with pytest.warns((SingularFitWarning, StatisticalWarning)):
        re = meta_analysis(d, "GEN", "REML")
    # hand computation: w = 20, 25, 16.667; sum 61.667; mean = (2 + 2.75 + 2) / 61.667
    w = np.array([20, 25, 1 / 0.06])
    assert fe.summary["estimate"].iloc[0] == pytest.approx((w * [0.1, 0.11, 0.12]).sum() / w.sum())
    assert re.summary["estimate"].iloc[0] == pytest.approx(fe.summary["estimate"].iloc[0])
    assert re.summary["std_error"].iloc[0] == pytest.approx(np.sqrt(1 / w.sum()))


def test_single_study_subgroup_is_reported_not_pooled():
    d = pd.DataFrame(
        {
            "study": list("abcd"),
            "yi": [0.1, 0.4, 0.2, 0.3],
            "vi": [0.02, 0.03, 0.02, 0.04],
            "g": ["x", "x", "x", "y"],
        }
    )
    with pytest.warns(StatisticalWarning):
        res = meta_analysis(d, "GEN", "FE", by="g")
    y = res.summary.set_index("term").loc["y"]
    assert y["estimate"] == pytest.approx(0.3)
    assert y["std_error"] == pytest.approx(np.sqrt(0.04))
    assert "single_study" in set(res.diagnostics["code"])


# ------------------------------------------------------------------------------ recovery


def coverage(reps: int, seed: int) -> tuple[float, float, float]:
    """Simulate meta-analyses with known mu and tau^2; return mean estimate and coverages."""
    rng = np.random.default_rng(seed)
    mu, tau2, k = 0.3, 0.04, 12
    cover = {False: 0, True: 0}
    estimates = []
    for _ in range(reps):
        vi = rng.uniform(0.01, 0.1, k)
        yi = mu + rng.normal(0, np.sqrt(tau2 + vi))
        d = pd.DataFrame({"study": np.arange(k).astype(str), "yi": yi, "vi": vi})
        for kh in (False, True):
            s = quiet(d, "GEN", "REML", knapp_hartung=kh).summary.iloc[0]
            cover[kh] += s["conf_low"] <= mu <= s["conf_high"]
            if not kh:
                estimates.append(s["estimate"])
    return float(np.mean(estimates)) - mu, cover[False] / reps, cover[True] / reps


def test_recovery_quick():
    """80 simulated meta-analyses (mu = 0.3, tau^2 = 0.04, k = 12): unbiased, CIs cover."""
    bias, wald, kh = coverage(80, seed=11)
    assert abs(bias) < 0.03
    assert 0.78 <= wald <= 1.0
    assert 0.85 <= kh <= 1.0


@pytest.mark.slow
def test_recovery_coverage_of_reml_and_knapp_hartung():
    """1000 simulated meta-analyses: Knapp-Hartung near 95%, REML Wald intervals undercover.

    Wald intervals of REML undercover with 12 studies and sizeable tau^2 (a known property;
    about 0.92 here), which is why knapp_hartung=True exists.
    """
    bias, wald, kh = coverage(1000, seed=3)
    assert abs(bias) < 0.01
    assert 0.90 <= wald <= 0.95
    assert 0.93 <= kh <= 0.965
    assert kh > wald


# ------------------------------------------------------------------------------ data + input


def test_shipped_published_pairs_are_real_trials_and_need_r():
    pairs = microneedling_pairs("excellent_response", "MN+PRP")
    assert list(pairs["study"]) == ["Asif 2016"]
    asif = pairs.iloc[0]
    assert (asif["events1"], asif["n1"], asif["events2"], asif["n2"]) == (20, 50, 5, 50)
    assert asif["doi"] == "10.1111/jocd.12207" and asif["source_status"] == "abstract"
    with pytest.raises(InputError, match="within-patient correlation"):
        meta_analysis(pairs, "OR", "REML")
    res = quiet(pairs, "OR", "FE", r=0.3)
    assert np.exp(res.summary["estimate"].iloc[0]) == pytest.approx(6.0, rel=1e-12)
    assert "assumed_correlation" in set(res.diagnostics["code"])
    # every shipped pair is a trial arm of the network file, with its citation
    everything = microneedling_pairs()
    assert everything["citation"].notna().all()
    assert set(everything["arm2"]) == {"MN"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.drop(columns=["events2"]), "needs the column"),
        (lambda d: d.assign(events1=d["n1"] + 1), "between 0 and"),
        (lambda d: d.assign(study="same"), "unique"),
        (lambda d: d.assign(n1="many"), "must be a number"),
        (lambda d: d.assign(design="crossover"), "Unknown design"),
    ],
)
def test_bad_input_gives_clear_input_error(change, message):
    with pytest.raises(InputError, match=message):
        meta_analysis(change(bcg()), "RR", "REML")


def test_bad_options_give_input_errors():
    with pytest.raises(InputError, match="Unknown measure"):
        meta_analysis(bcg(), "HR")
    with pytest.raises(InputError, match="Unknown method"):
        meta_analysis(bcg(), "RR", "SJ")
    with pytest.raises(InputError, match="by="):
        meta_analysis(bcg(), "RR", by="region")
    with pytest.raises(InputError, match="level"):
        meta_analysis(bcg(), "RR", level=95)
    with pytest.raises(InputError, match="exponentiate"):
        meta_analysis(normand(), "MD", "FE").tidy(exponentiate=True)
    d = paired_continuous().assign(n2=[50, 31, 24])
    with pytest.raises(InputError, match="n1 must equal n2"):
        escalc(d, "MD")


def test_plots_and_ard_build():
    res = quiet(bcg(), "RR", "REML", by="alloc")
    forest = res.forest_plot()
    funnel = res.funnel_plot()
    assert forest.layers and funnel.layers
    forest.draw()
    funnel.draw()
    ard = res.to_ard()
    assert {"analysis", "stat_name", "stat_value", "warning"} <= set(ard.columns)
    assert ard["warning"].str.contains("only 2 studies").all()
