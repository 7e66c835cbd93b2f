"""Propensity scores, weights, balance, weighted outcome models and E-values.

Checked three ways: a small example computed by hand (arithmetic in the comments), base-R
reference numbers (tests/r/propensity/ipw_reference.R -> ipw_reference.json), and the
simulator's confounded registry, where the weighted estimate must recover truth["effects"]
and the naive one must not.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from outcomes.errors import ConvergenceWarning, InputError, StatisticalWarning
from outcomes.models.propensity import (
    balance_table,
    e_value,
    love_plot,
    propensity_weights,
    weighted_effect,
)
from outcomes.results import TIDY_COLUMNS

HERE = Path(__file__).parent / "r" / "propensity"
R = json.loads((HERE / "ipw_reference.json").read_text())


# ------------------------------------------------------------------------------ by hand


def hand() -> pd.DataFrame:
    """8 patients; PRP is chosen more often for darker skin, which also improves more.

    dark = no : MN (y 10), MN (12), MN (14), MN+PRP (20)   -> P(PRP | no)  = 1/4
    dark = yes: MN (30), MN+PRP (36), MN+PRP (38), MN+PRP (40) -> P(PRP | yes) = 3/4
    Within each stratum PRP is 8 points better (20 - 12 = 8, 38 - 30 = 8): the effect is 8.
    """
    return pd.DataFrame(
        {
            "dark": ["no"] * 4 + ["yes"] * 4,
            "modality": ["MN", "MN", "MN", "MN+PRP", "MN", "MN+PRP", "MN+PRP", "MN+PRP"],
            "y": [10.0, 12, 14, 20, 30, 36, 38, 40],
            "clinic": ["A", "B", "A", "B", "A", "B", "A", "B"],
        }
    )


def test_hand_example_scores_weights_means_and_smd():
    d = hand()
    pw = propensity_weights(d, "modality", ["dark"])
    # A logit on one binary covariate is saturated: the scores are the stratum shares.
    np.testing.assert_allclose(pw.data["ps_MN+PRP"], [0.25] * 4 + [0.75] * 4, atol=1e-9)
    # Stabilised ATE weights P(T) / e_T(x) with P(PRP) = P(MN) = 4/8 = 0.5:
    #   PRP, no : 0.5 / 0.25 = 2        MN, no : 0.5 / 0.75 = 2/3
    #   PRP, yes: 0.5 / 0.75 = 2/3      MN, yes: 0.5 / 0.25 = 2
    np.testing.assert_allclose(pw.weights, [2 / 3, 2 / 3, 2 / 3, 2, 2, 2 / 3, 2 / 3, 2 / 3])
    bal = pw.balance().set_index("level")
    yes = bal.loc["yes"]
    # Unweighted share of dark skin: PRP 3/4, MN 1/4; variances 3/4 * 1/4 = 0.1875 in both,
    # SMD = (0.75 - 0.25) / sqrt(0.1875) = 1.1547
    assert (yes["mean1"], yes["mean2"]) == (0.75, 0.25)
    assert yes["smd"] == pytest.approx(0.5 / np.sqrt(0.1875))
    # Weighted: PRP (2 * 0 + 3 * 2/3 * 1) / (2 + 3 * 2/3) = 2 / 4 = 0.5; MN (3 * 2/3 * 0 + 2 * 1)
    # / (3 * 2/3 + 2) = 0.5, so SMD 0 and no flag.
    assert yes["mean1_weighted"] == pytest.approx(0.5)
    assert yes["mean2_weighted"] == pytest.approx(0.5)
    assert yes["smd_weighted"] == pytest.approx(0.0, abs=1e-9)
    assert not bal["flag"].any()
    # Weighted means of y: PRP (2 * 20 + 2/3 * (36 + 38 + 40)) / 4 = (40 + 76) / 4 = 29;
    # MN (2/3 * (10 + 12 + 14) + 2 * 30) / 4 = (24 + 60) / 4 = 21; effect 29 - 21 = 8.
    # Naive: (20 + 36 + 38 + 40) / 4 - (10 + 12 + 14 + 30) / 4 = 33.5 - 16.5 = 17.
    adj = weighted_effect(d, "y", "modality", pw).summary.iloc[0]
    naive = weighted_effect(d, "y", "modality").summary.iloc[0]
    assert adj["term"] == "MN+PRP vs MN"
    assert adj["estimate"] == pytest.approx(8.0)
    assert naive["estimate"] == pytest.approx(17.0)
    assert np.isnan(adj["df"])  # HC1, normal-theory
    # Adding the covariate to the outcome model: the stratum x modality means (12, 20; 30, 38)
    # are additive (PRP +8, dark +18), so any weights give exactly 8.
    dr = weighted_effect(d, "y", "modality", pw, covariates=["dark"]).summary.iloc[0]
    assert dr["estimate"] == pytest.approx(8.0)
    assert weighted_effect(d, "y", "modality", covariates=["dark"]).summary["estimate"].iloc[
        0
    ] == pytest.approx(8.0)


def test_hand_example_overlap_weights_and_trimming():
    d = hand()
    ov = propensity_weights(d, "modality", ["dark"], estimand="overlap")
    # Overlap weights: 1 - e for PRP, e for MN (e = P(PRP | x)):
    #   no : PRP 0.75, MN 0.25;   yes: PRP 0.25, MN 0.75
    np.testing.assert_allclose(ov.weights, [0.25] * 3 + [0.75, 0.75] + [0.25] * 3, atol=1e-9)
    # PRP: (0.75 * 20 + 0.25 * 114) / 1.5 = 29;  MN: (0.25 * 36 + 0.75 * 30) / 1.5 = 21
    assert weighted_effect(d, "y", "modality", ov).summary["estimate"].iloc[0] == pytest.approx(8)
    # Trimming at the 0.8 quantile of the stabilised ATE weights: sorted weights are six 2/3
    # and two 2; numpy's linear quantile sits at position 0.8 * 7 = 5.6, i.e.
    # 2/3 + 0.6 * (2 - 2/3) = 1.4667. The two weights of 2 are capped there.
    pw = propensity_weights(d, "modality", ["dark"], trim=0.8)
    cap = 2 / 3 + 0.6 * (2 - 2 / 3)
    assert pw.trimmed["row"].tolist() == [3, 4]
    np.testing.assert_allclose(pw.trimmed["weight_before"], [2, 2])
    np.testing.assert_allclose(pw.trimmed["weight_after"], [cap, cap])
    assert pw.weights.max() == pytest.approx(cap)
    assert "weights_trimmed" in set(pw.diagnostics["code"])


def test_hand_example_three_modalities_multinomial():
    # no : MN, MN, MN+PRP, MN+RF   -> e = (1/2, 1/4, 1/4)
    # yes: MN, MN+PRP, MN+PRP, MN+RF -> e = (1/4, 1/2, 1/4)
    d = pd.DataFrame(
        {
            "dark": ["no"] * 4 + ["yes"] * 4,
            "modality": ["MN", "MN", "MN+PRP", "MN+RF", "MN", "MN+PRP", "MN+PRP", "MN+RF"],
        }
    )
    ov = propensity_weights(d, "modality", ["dark"], estimand="overlap")
    np.testing.assert_allclose(ov.scores["ps_MN"], [0.5] * 4 + [0.25] * 4, atol=1e-7)
    np.testing.assert_allclose(ov.scores["ps_MN+PRP"], [0.25] * 4 + [0.5] * 4, atol=1e-7)
    # Generalised overlap weights (1/e_T) / sum_k (1/e_k); sum_k 1/e_k = 2 + 4 + 4 = 10 in both
    # strata: no -> MN 2/10, PRP 4/10, RF 4/10;  yes -> MN 4/10, PRP 2/10, RF 4/10.
    np.testing.assert_allclose(ov.weights, [0.2, 0.2, 0.4, 0.4, 0.4, 0.2, 0.2, 0.4], atol=1e-7)
    # Unstabilised ATE weights 1/e_T: no -> MN 2, PRP 4, RF 4; yes -> MN 4, PRP 2, RF 4.
    ate = propensity_weights(d, "modality", ["dark"], stabilize=False)
    np.testing.assert_allclose(ate.weights, [2, 2, 4, 4, 4, 2, 2, 4], rtol=1e-6)
    # ATT for MN+PRP patients: e_PRP / e_T -> no: MN 1/2, PRP 1, RF 1; yes: MN 2, PRP 1, RF 2.
    att = propensity_weights(d, "modality", ["dark"], estimand="ATT", target="MN+PRP")
    np.testing.assert_allclose(att.weights, [0.5, 0.5, 1, 1, 2, 1, 1, 2], rtol=1e-6)
    bal = balance_table(d, "modality", ["dark"], ov)
    assert len(bal) == 2 * 3  # two levels x three pairs
    assert set(zip(bal["group1"], bal["group2"], strict=True)) == {
        ("MN+PRP", "MN"),
        ("MN+RF", "MN"),
        ("MN+RF", "MN+PRP"),
    }


def test_empty_cell_is_reported_and_overlap_weights_drop_it():
    # two more patients with dark = "very", both MN: P(PRP | very) = 0, the logit separates
    d = pd.concat(
        [hand(), pd.DataFrame({"dark": ["very"] * 2, "modality": ["MN"] * 2, "y": [5.0, 6]})],
        ignore_index=True,
    )
    with pytest.warns((ConvergenceWarning, StatisticalWarning)) as record:
        ov = propensity_weights(d, "modality", ["dark"], estimand="overlap")
    assert ConvergenceWarning in {type(w.message) for w in record}
    assert {"ps_not_converged", "empty_cells", "ps_extreme"} <= set(ov.diagnostics["code"])
    assert "dark = very (no MN+PRP)" in " ".join(ov.diagnostics["message"])
    # overlap weight of an MN patient is e_PRP -> 0; the other patients keep their weights
    np.testing.assert_allclose(ov.weights[-2:], 0.0, atol=1e-6)
    np.testing.assert_allclose(ov.weights[:8], [0.25] * 3 + [0.75, 0.75] + [0.25] * 3, atol=1e-6)


# ------------------------------------------------------------------------------ against R


def r_data() -> pd.DataFrame:
    return pd.read_csv(HERE / "ipw_data.csv")


def test_binary_scores_and_weights_match_r_glm():
    d = r_data()
    pw = propensity_weights(d, "modality", ["x1", "x2"])
    # glm(t1 ~ x1 + x2, family = binomial); fitted(ps_fit)
    np.testing.assert_allclose(pw.model.params, R["ps_coef"], rtol=1e-6)
    np.testing.assert_allclose(pw.data["ps_MN+PRP"], R["ps"], rtol=1e-6)
    # ifelse(t1 == 1, p1 / ps, (1 - p1) / (1 - ps))
    np.testing.assert_allclose(pw.weights, R["w_ate"], rtol=1e-6)
    ov = propensity_weights(d, "modality", ["x1", "x2"], estimand="overlap")
    # ifelse(t1 == 1, 1 - ps, ps)
    np.testing.assert_allclose(ov.weights, R["w_overlap"], rtol=1e-6)


def test_balance_matches_r():
    d = r_data()
    pw = propensity_weights(d, "modality", ["x1", "x2"])
    ov = propensity_weights(d, "modality", ["x1", "x2"], estimand="overlap")
    bal = pw.balance().set_index(["covariate", "level"])
    bov = ov.balance().set_index(["covariate", "level"])
    x1, x2b = bal.loc[("x1", "")], bal.loc[("x2", "b")]
    # c(wmean(x1[t1 == 1], w_ate[t1 == 1]), wmean(x1[t1 == 0], w_ate[t1 == 0]))
    assert x1["mean1_weighted"] == pytest.approx(R["mean_x1_ate"][0], rel=1e-6)
    assert x1["mean2_weighted"] == pytest.approx(R["mean_x1_ate"][1], rel=1e-6)
    # smd(x1, w, binary = FALSE): unweighted denominators sqrt((var1 + var0) / 2)
    assert x1["smd"] == pytest.approx(R["smd_x1"]["unweighted"], rel=1e-9)
    assert x1["smd_weighted"] == pytest.approx(R["smd_x1"]["ate"], rel=1e-5)
    assert x2b["smd"] == pytest.approx(R["smd_x2b"]["unweighted"], rel=1e-9)
    assert x2b["smd_weighted"] == pytest.approx(R["smd_x2b"]["ate"], rel=1e-5)
    # overlap weights balance the logit's covariates exactly (R: ~1e-8 from glm's tolerance)
    assert bov.loc[("x1", ""), "smd_weighted"] == pytest.approx(0.0, abs=1e-6)
    assert bov.loc[("x2", "b"), "smd_weighted"] == pytest.approx(0.0, abs=1e-6)
    assert x1["flag"] == (abs(R["smd_x1"]["ate"]) >= 0.1)
    assert bool(bal["flag"].any()) is False
    assert bool(pw.balance(comparisons="reference").shape[0] == 4)


@pytest.mark.parametrize(
    ("estimand", "key"), [("ATE", "outcome_ate"), ("overlap", "outcome_overlap")]
)
def test_weighted_outcome_model_and_robust_ses_match_r(estimand, key):
    d = r_data()
    pw = propensity_weights(d, "modality", ["x1", "x2"], estimand=estimand)
    ref = R[key]
    # lm(y ~ t1, weights = w) with HC1: bread %*% meat %*% bread * n / (n - k)
    hc1 = weighted_effect(d, "y", "modality", pw).summary.iloc[0]
    assert hc1["estimate"] == pytest.approx(ref["estimate"], rel=1e-6)
    assert hc1["std_error"] == pytest.approx(ref["se_hc1"], rel=1e-5)
    # cluster-robust by clinic, CR1 factor G/(G-1) * (n-1)/(n-k), t with G - 1 df
    with pytest.warns(StatisticalWarning, match="only 10 clusters"):
        cl = weighted_effect(d, "y", "modality", pw, cluster="clinic")
    s = cl.summary.iloc[0]
    assert list(cl.summary.columns[:8]) == list(TIDY_COLUMNS)
    assert s["std_error"] == pytest.approx(ref["se_cluster"], rel=1e-5)
    assert s["df"] == ref["n_clusters"] - 1
    assert s["conf_low"] == pytest.approx(ref["ci_cluster"][0], rel=1e-5)
    assert s["conf_high"] == pytest.approx(ref["ci_cluster"][1], rel=1e-5)
    assert s["p_value"] == pytest.approx(ref["p_cluster"], rel=1e-4)
    assert "few_clusters" in set(cl.diagnostics["code"])
    ard = cl.to_ard()
    assert ard["warning"].str.contains("only 10 clusters").all()
    assert set(ard["stat_name"]) >= {"estimate", "std_error", "conf_low", "n_clusters"}


def test_naive_model_matches_r():
    d = r_data()
    with pytest.warns(StatisticalWarning):
        s = weighted_effect(d, "y", "modality", cluster="clinic").summary.iloc[0]
    # lm(y ~ t1) with the same cluster-robust sandwich
    assert s["estimate"] == pytest.approx(R["outcome_naive"]["estimate"], rel=1e-9)
    assert s["std_error"] == pytest.approx(R["outcome_naive"]["se_cluster"], rel=1e-6)


# ------------------------------------------------------------------------------ simulator


def registry_frame(seed: int, n_subjects: int) -> tuple[pd.DataFrame, dict]:
    """Percent improvement at the visit nearest day 168 (window 140-210) in a simulated registry.

    Only acne scars (gb_quant) and pigmentation (mmasi) record a baseline severity score; for
    the other indications severity is latent, so they cannot be adjusted and are left out.
    Baseline severity is the baseline score standardised within indication.
    """
    from outcomes.simulate.registry import simulate_registry

    feeds = simulate_registry(seed=seed, n_subjects=n_subjects)
    t = feeds.tables
    instrument = feeds.truth["outcome"]["primary_instrument"]
    lo, hi = feeds.truth["outcome"]["window_days"]
    target = feeds.truth["outcome"]["target_day"]
    units = t["units"].merge(t["subjects"], on=["study_id", "subject_id"])
    units["instrument"] = units["indication"].map(instrument)
    units = units.dropna(subset=["instrument"])
    a = t["assessments"].merge(units[["unit_id", "instrument"]], on=["unit_id", "instrument"])
    base = a[a["day"] == 0].groupby("unit_id")["value"].mean().rename("baseline")
    win = a[(a["day"] >= lo) & (a["day"] <= hi)].assign(dist=lambda x: (x["day"] - target).abs())
    final = (
        win.sort_values(["unit_id", "dist", "day"])
        .groupby("unit_id")
        .head(1)
        .set_index("unit_id")["value"]
        .rename("final")
    )
    df = units.set_index("unit_id").join(base, how="inner").join(final, how="inner")
    df["pct"] = 100 * (df["baseline"] - df["final"]) / df["baseline"]
    df["severity"] = df.groupby("indication")["baseline"].transform(
        lambda s: (s - s.mean()) / s.std()
    )
    roman = {"I": 1, "II": 2, "III": 3, "IV": 4, "V": 5, "VI": 6}
    df["phototype_num"] = df["phototype"].map(roman)
    return df.reset_index(), feeds.truth


CONFOUNDERS = ["phototype", "severity", "site_id", "indication"]


def naive_and_adjusted(df: pd.DataFrame, covariates=CONFOUNDERS):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatisticalWarning)
        naive = weighted_effect(df, "pct", "modality", cluster="site_id").summary
        ov = propensity_weights(df, "modality", covariates, estimand="overlap")
        ate = propensity_weights(df, "modality", covariates)
        adj = weighted_effect(df, "pct", "modality", ov, cluster="site_id").summary
        adj_ate = weighted_effect(df, "pct", "modality", ate, cluster="site_id").summary
    return naive, adj, adj_ate, ov, ate


def test_simulated_registry_adjusted_recovers_truth_naive_does_not():
    df, truth = registry_frame(seed=2, n_subjects=8000)
    assert truth["confounders"] == ["phototype", "baseline_severity", "site_id"]
    naive, adj, adj_ate, ov, ate = naive_and_adjusted(df)
    for s in (naive, adj, adj_ate):
        s["truth"] = [truth["effects"][t.split(" vs ")[0]] for t in s["term"]]
    # naive: every CI misses the true effect (confounding by severity, phototype, clinic)
    assert ((naive["conf_low"] > naive["truth"]) | (naive["conf_high"] < naive["truth"])).all()
    assert ((naive["estimate"] - naive["truth"]).abs() > 1.5).all()
    # overlap-weighted (the estimand equals the ATE here: effects are homogeneous)
    assert ((adj["conf_low"] <= adj["truth"]) & (adj["truth"] <= adj["conf_high"])).all()
    # one registry: cluster-robust CIs from 12 clinics are about +/- 3.5 points wide, so the
    # check is on the average error, well under half the naive one (3.6 points here)
    adj_error = (adj["estimate"] - adj["truth"]).abs().mean()
    assert adj_error < (naive["estimate"] - naive["truth"]).abs().mean() / 2
    # stabilised inverse-probability weights: wider, but cover too
    assert (
        (adj_ate["conf_low"] <= adj_ate["truth"]) & (adj_ate["truth"] <= adj_ate["conf_high"])
    ).all()
    # balance: confounded before (|SMD| up to ~1.2), every |SMD| < 0.1 with overlap weights
    bal = ov.balance()
    assert bal["smd"].abs().max() > 0.5
    assert bal["smd_weighted"].abs().max() < 0.1
    assert not bal["flag"].any()
    # the IPW weights are uneven here, and say so
    assert {"extreme_weights", "ps_extreme"} <= set(ate.diagnostics["code"])
    assert "extreme_weights" not in set(ov.diagnostics["code"])


@pytest.mark.slow
def test_simulated_registry_coverage_over_seeds():
    """Over 20 registries the overlap-weighted CIs (cluster-robust, t with 11 df) cover the
    true effects in most cases, and the naive CIs rarely do.

    Phototype enters as a number (as in the simulator's choice model): with about 4,000 patients
    some phototype x modality cells are empty, and dummies would separate.
    """
    hits_adj = hits_naive = total = 0
    covariates = ["phototype_num", "severity", "site_id", "indication"]
    for seed in range(100, 120):
        # 10,000 subjects: the calibrated registry's percent improvement spreads more (SD
        # about 22 points per arm, was about 15), so n grows by (22 / 15)^2 to keep the naive
        # bias as many standard errors away as before
        df, truth = registry_frame(seed=seed, n_subjects=10000)
        # In some registries a small clinic never used one modality: the propensity model then
        # separates (reported as ps_not_converged + empty_cells), and overlap weights give
        # that clinic's patients almost no weight, which is the sensible answer.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            naive, adj, _, ov, _ = naive_and_adjusted(df, covariates)
        if "ps_not_converged" in set(ov.diagnostics["code"]):
            assert "empty_cells" in set(ov.diagnostics["code"])
        for s, counter in ((adj, "adj"), (naive, "naive")):
            tr = np.array([truth["effects"][t.split(" vs ")[0]] for t in s["term"]])
            covered = int(((s["conf_low"] <= tr) & (tr <= s["conf_high"])).sum())
            if counter == "adj":
                hits_adj += covered
                total += len(tr)
            else:
                hits_naive += covered
    assert hits_adj / total >= 0.85
    assert hits_naive / total <= 0.5


# ------------------------------------------------------------------------------ E-values


def test_e_value_published_example_and_formulas():
    # VanderWeele & Ding 2017 (Ann Intern Med), breastfeeding example: RR 3.9 (1.8, 8.4)
    # gives E-values 7.26 for the estimate and 3.02 for the lower limit:
    # 3.9 + sqrt(3.9 * 2.9) = 7.263;  1.8 + sqrt(1.8 * 0.8) = 3.0
    e = e_value(3.9, 1.8, 8.4).iloc[0]
    assert e["e_value"] == pytest.approx(3.9 + np.sqrt(3.9 * 2.9))
    assert round(e["e_value"], 2) == 7.26
    assert e["e_value_ci"] == pytest.approx(1.8 + np.sqrt(1.8 * 0.8))
    # protective RR 0.5 (0.3, 0.8): invert -> 2 + sqrt(2) and 1.25 + sqrt(1.25 * 0.25)
    e = e_value(0.5, 0.3, 0.8).iloc[0]
    assert e["e_value"] == pytest.approx(2 + np.sqrt(2))
    assert e["e_value_ci"] == pytest.approx(1.25 + np.sqrt(1.25 * 0.25))
    # an interval including 1 has an E-value of 1 for the interval
    assert e_value(1.3, 0.9, 1.8)["e_value_ci"].iloc[0] == 1.0
    # common-outcome OR: RR = sqrt(OR) = sqrt(4) = 2 -> 2 + sqrt(2)
    e = e_value(4.0, 2.25, 9.0, measure="OR", rare=False).iloc[0]
    assert e["rr"] == pytest.approx(2.0)
    assert e["rr_low"] == pytest.approx(1.5)
    # common-outcome HR 2: (1 - 0.5^sqrt(2)) / (1 - 0.5^sqrt(0.5)) = 0.6248 / 0.3873 = 1.613
    hr = e_value(2.0, measure="HR", rare=False).iloc[0]
    assert hr["rr"] == pytest.approx((1 - 0.5 ** np.sqrt(2)) / (1 - 0.5 ** np.sqrt(0.5)))
    # SMD d = 0.5, se 0.1: RR = exp(0.91 * 0.5) = 1.5762, lower exp(0.455 - 0.178) = 1.3192
    s = e_value(0.5, measure="SMD", se=0.1).iloc[0]
    assert s["rr"] == pytest.approx(np.exp(0.455))
    assert s["rr_low"] == pytest.approx(np.exp(0.455 - 0.178))
    rr = np.exp(0.455)
    assert s["e_value"] == pytest.approx(rr + np.sqrt(rr * (rr - 1)))


def test_e_value_rejects_bad_input():
    with pytest.raises(InputError, match="positive"):
        e_value(-0.2, measure="RR")
    with pytest.raises(InputError, match="measure"):
        e_value(1.2, measure="MD")
    with pytest.raises(InputError, match="conf_low <= estimate"):
        e_value(2.0, 2.5, 3.0)


# ------------------------------------------------------------------------------ input, plots


def test_bad_input_gives_input_errors():
    d = hand()
    with pytest.raises(InputError, match="not in data"):
        propensity_weights(d, "modality", ["age"])
    with pytest.raises(InputError, match="Missing values"):
        propensity_weights(d.assign(dark=[None, *d["dark"][1:]]), "modality", ["dark"])
    with pytest.raises(InputError, match="estimand"):
        propensity_weights(d, "modality", ["dark"], estimand="ATC")
    with pytest.raises(InputError, match="single value"):
        propensity_weights(d.assign(modality="MN"), "modality", ["dark"])
    with pytest.raises(InputError, match="trim"):
        propensity_weights(d, "modality", ["dark"], trim=5)
    with pytest.raises(InputError, match="reference"):
        propensity_weights(d, "modality", ["dark"], reference="laser")
    with pytest.raises(InputError, match="collinear"):
        propensity_weights(d.assign(light=d["dark"]), "modality", ["dark", "light"])
    with pytest.raises(InputError, match="Weights must be"):
        weighted_effect(d, "y", "modality", weights=[1, 2, 3, -1, 1, 1, 1, 1])
    with pytest.raises(InputError, match="3 weights for 8 rows"):
        weighted_effect(d, "y", "modality", weights=[1, 2, 3])
    with pytest.raises(InputError, match="repeated index"):
        propensity_weights(pd.concat([d, d]), "modality", ["dark"])
    with pytest.raises(InputError, match="numeric"):
        weighted_effect(d, "dark", "modality")
    with pytest.raises(InputError, match="comparisons"):
        balance_table(d, "modality", ["dark"], comparisons="some")


def test_love_plot_builds():
    d = r_data()
    pw = propensity_weights(d, "modality", ["x1", "x2", "clinic"])
    plot = pw.love_plot()
    plot.draw()
    assert love_plot(pw.balance()).layers
    with pytest.raises(InputError):
        love_plot(pd.DataFrame({"x": [1]}))
