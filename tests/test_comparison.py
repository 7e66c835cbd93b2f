"""Tests of outcomes.compare: the one comparison table and its forest plot.

Checked against R (tests/r/comparison/weighted.R), against hand arithmetic (paired and
independent risk differences and ratios), against the simulator's truth (trial LMM contrast and
hazard ratio; registry effects recovered by the weighted, not the naive, estimate), and for
bad input.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from outcomes.comparisons.adverse_events import _independent_risks, _paired_risks
from outcomes.comparisons.comparison import ComparisonResult, compare
from outcomes.comparisons.effects import _dummies, _glm_cluster, _naive_cox, _weighted_cox
from outcomes.comparisons.published import SPLIT_FACE_R
from outcomes.comparisons.table import COMPARISON_COLUMNS, PHOTOTYPE_NUMBER
from outcomes.errors import InputError
from outcomes.models.propensity import propensity_weights
from outcomes.results import ARD_COLUMNS
from outcomes.simulate.registry import simulate_registry
from outcomes.simulate.trial import simulate_trial

R_DIR = Path(__file__).parent / "r" / "comparison"


def _quiet_compare(data, **kwargs) -> ComparisonResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compare(data, **kwargs)


@pytest.fixture(scope="module")
def trial_registry():
    trial = simulate_trial(seed=1)
    registry = simulate_registry(seed=2)
    tables = {
        k: pd.concat([trial.tables[k], registry.tables[k]], ignore_index=True) for k in trial.tables
    }
    return trial, registry, _quiet_compare(tables)


def _row(table: pd.DataFrame, **keys) -> pd.Series:
    mask = np.ones(len(table), dtype=bool)
    for k, v in keys.items():
        mask &= (table[k] == v).to_numpy()
    rows = table.loc[mask]
    assert len(rows) == 1, f"{len(rows)} rows for {keys}"
    return rows.iloc[0]


# --------------------------------------------------------------------------------------------
# shape of the table


def test_table_shape_and_keys(trial_registry):
    _, _, res = trial_registry
    t = res.table
    assert list(t.columns) == list(COMPARISON_COLUMNS)
    assert set(t["source"]) == {"trial", "registry"}
    assert set(t.loc[t["source"] == "trial", "adjustment"]) == {"randomised"}
    assert set(t.loc[t["source"] == "registry", "adjustment"]) == {"naive", "weighted"}
    keys = ["source", "study_id", "indication", "outcome", "measure", "comparison", "adjustment"]
    assert not t.duplicated(keys).any()
    # every registry efficacy row has its naive twin next to the weighted one
    reg = t[(t["source"] == "registry") & t["measure"].isin(["mean_difference", "odds_ratio"])]
    pairs = reg.groupby(["indication", "outcome", "measure", "comparison"])["adjustment"].agg(set)
    assert all(v == {"naive", "weighted"} for v in pairs)
    # the four measures of the issue, for the trial
    trial = t[t["source"] == "trial"]
    assert set(trial["measure"]) == {
        "mean_difference",
        "odds_ratio",
        "hazard_ratio",
        "risk_difference",
        "risk_ratio",
    }
    # ratio rows: estimate inside its interval, on the ratio scale
    est = t.dropna(subset=["estimate", "conf_low", "conf_high"])
    assert (est["conf_low"] <= est["estimate"]).all() and (
        est["estimate"] <= est["conf_high"]
    ).all()
    ratios = est[est["measure"].isin(["odds_ratio", "hazard_ratio", "risk_ratio"])]
    assert (ratios["estimate"] > 0).all()


def test_registry_rows_by_indication(trial_registry):
    _, registry, res = trial_registry
    t = res.table
    t = t[
        (t["source"] == "registry")
        & t["measure"].isin(["mean_difference", "odds_ratio", "hazard_ratio"])
    ]
    indications = set(registry.tables["subjects"]["indication"])
    # responders (GAIS) and time to result exist for every indication ...
    assert set(t.loc[t["outcome"] == "responder", "indication"]) == indications
    assert set(t.loc[t["outcome"] == "time_to_result", "indication"]) == indications
    # ... percent improvement only where a continuous instrument is recorded
    assert set(t.loc[t["outcome"] == "pct_improvement", "indication"]) == {
        "acne_scars",
        "pigmentation",
    }
    # indications without a recorded severity say so on their weighted rows
    w = t[(t["indication"] == "striae") & (t["adjustment"] == "weighted")]
    assert w["warning"].str.contains("no baseline severity is recorded for striae").all()


def test_interaction_rows(trial_registry):
    _, _, res = trial_registry
    t = res.table
    wald = t[(t["measure"] == "interaction_wald") & (t["outcome"] == "responder")]
    assert set(wald["comparison"]) == {"MN+PRP vs MN", "MN+RF vs MN", "MN+laser vs MN"}
    assert set(wald["adjustment"]) == {"naive", "weighted"}
    assert (wald["df"] >= 1).all() and wald["p_value"].between(0, 1).all()
    ror = t[t["measure"] == "ratio_of_odds_ratios"]
    assert ror["indication"].str.endswith(" vs acne_scars").all()
    # with a single interaction term the Wald chi-square is the square of the row's z
    pct = t[(t["outcome"] == "pct_improvement") & (t["adjustment"] == "weighted")]
    d = _row(pct, measure="difference_in_mean_differences", comparison="MN+RF vs MN")
    w = _row(pct, measure="interaction_wald", comparison="MN+RF vs MN")
    assert w["df"] == 1
    assert w["statistic"] == pytest.approx(d["statistic"] ** 2, rel=1e-10)


def test_rows_not_estimable_are_flagged(trial_registry):
    # striae: no MN unit reaches GAIS <= 2 (0 responders), so the odds ratio is not
    # estimable: the row has no estimate and says why, instead of 1e10. The calibrated
    # registry has striae MN responders, so the zero cell is made here: their GAIS is
    # raised to at least 3 ("improved", not a responder).
    _, registry, _ = trial_registry
    tables = {k: v.copy() for k, v in registry.tables.items()}
    u = tables["units"].merge(tables["subjects"][["subject_id", "indication"]])
    mn_striae = u.loc[(u["indication"] == "striae") & (u["modality"] == "MN"), "unit_id"]
    a = tables["assessments"]
    hit = a["unit_id"].isin(set(mn_striae)) & (a["instrument"] == "gais")
    a.loc[hit, "value"] = a.loc[hit, "value"].clip(lower=3)
    t = _quiet_compare(tables).table
    striae = t[(t["indication"] == "striae") & (t["outcome"] == "responder")]
    mn_events = striae["warning"].str.contains("units of MN have the event")
    assert mn_events.all()
    assert striae["estimate"].isna().all()


# --------------------------------------------------------------------------------------------
# trial: recovery of the simulator's truth and agreement with the building blocks


def test_trial_contrast_and_hazard_ratio_near_truth(trial_registry):
    trial, _, res = trial_registry
    t = res.table
    md = _row(t, source="trial", measure="mean_difference")
    fixed = trial.truth["lmm"]["fixed"]
    truth_md = fixed["combo"] + fixed["week:combo"] * 168 / 7  # -4.92 gb_quant points
    assert abs(md["estimate"] - truth_md) < 3 * md["std_error"]
    assert md["conf_low"] < truth_md < md["conf_high"]
    assert md["df"] > 10  # Satterthwaite, not a normal approximation
    hr = _row(t, source="trial", measure="hazard_ratio")
    log_truth = math.log(trial.truth["survival"]["hazard_ratio"])
    assert abs(math.log(hr["estimate"]) - log_truth) < 3 * hr["std_error"]


def test_trial_contrast_is_the_lmm_emmeans_contrast(trial_registry):
    from outcomes.models.lmm.fit import lmm

    trial, _, res = trial_registry
    a = trial.tables["assessments"]
    a = a[(a["instrument"] == "gb_quant") & (a["rater_role"] == "investigator")]
    d = a.merge(trial.tables["units"][["unit_id", "subject_id", "modality"]], on="unit_id")
    d = d.assign(
        week=d["day"] / 7.0,
        arm=d["modality"].astype(str),
        value=d["value"].astype(float),
        subject_id=d["subject_id"].astype(str),
        unit_id=d["unit_id"].astype(str),
    )
    fit = lmm(d, "value ~ week * arm", groups="subject_id", re_formula="~week", nested="unit_id")
    con = fit.contrasts("arm", at={"week": 24}, ref="MN").iloc[0]
    md = _row(res.table, source="trial", measure="mean_difference")
    for col in ("estimate", "std_error", "df", "conf_low", "conf_high"):
        assert md[col] == pytest.approx(con[col], rel=1e-6)


def test_trial_adverse_events_are_paired(trial_registry):
    trial, _, res = trial_registry
    t = res.table
    rd = _row(t, source="trial", outcome="ae_severe_erythema", measure="risk_difference")
    rr = _row(t, source="trial", outcome="ae_severe_erythema", measure="risk_ratio")
    # recount by hand: any severe erythema per unit, both sides of each subject
    ae = trial.tables["adverse_events"]
    hit = set(ae.loc[(ae["term"] == "erythema") & (ae["severity"] == "severe"), "unit_id"])
    u = trial.tables["units"].assign(event=lambda d: d["unit_id"].isin(hit).astype(int))
    wide = u.pivot_table(index="subject_id", columns="modality", values="event")
    e1, e0 = wide["MN+PRP"].to_numpy(), wide["MN"].to_numpy()
    n = len(wide)
    assert rd["estimate"] == pytest.approx(e1.mean() - e0.mean())
    assert rr["estimate"] == pytest.approx(e1.mean() / e0.mean())
    assert rd["n"] == 2 * n and rd["n_clusters"] == n
    assert "paired" in rd["method"] and "paired" in rr["method"]


# --------------------------------------------------------------------------------------------
# registry: propensity weighting against the simulator's truth


@pytest.fixture(scope="module")
def big_registry():
    registry = simulate_registry(seed=7, n_subjects=20_000)
    return registry, _quiet_compare(registry, ae_outcomes=())


def test_registry_weighted_recovers_truth_naive_does_not(big_registry):
    registry, res = big_registry
    truth = registry.truth["effects"]  # MN+PRP 10, MN+RF 6, MN+laser 9 (homogeneous)
    t = res.table[(res.table["measure"] == "mean_difference")]
    for indication in ("acne_scars", "pigmentation"):
        for combo in ("MN+PRP", "MN+RF", "MN+laser"):
            keys = {"indication": indication, "comparison": f"{combo} vs MN"}
            w = _row(t, adjustment="weighted", **keys)
            assert abs(w["estimate"] - truth[combo]) < 3 * w["std_error"], (keys, w["estimate"])
    # the naive comparison is confounded: MN+RF goes to the more severe cases, who improve
    # less, so the naive difference is biased down, away from the truth
    for indication in ("acne_scars", "pigmentation"):
        n = _row(t, adjustment="naive", indication=indication, comparison="MN+RF vs MN")
        w = _row(t, adjustment="weighted", indication=indication, comparison="MN+RF vs MN")
        assert n["estimate"] < truth["MN+RF"] - 3 * n["std_error"], n["estimate"]
        assert not n["conf_low"] < truth["MN+RF"] < n["conf_high"]
        assert w["conf_low"] < truth["MN+RF"] < w["conf_high"]
    # over all six comparisons the weighted estimates are closer to the truth
    err = t.assign(err=(t["estimate"] - t["comparison"].str.split(" vs ").str[0].map(truth)).abs())
    mean_err = err.groupby("adjustment")["err"].mean()
    assert mean_err["weighted"] < mean_err["naive"] / 3, mean_err


def test_registry_balance_after_weighting(big_registry):
    _, res = big_registry
    b = res.balance
    acne = b[b["indication"] == "acne_scars"]
    # one logistic model per combination: overlap weights balance every covariate's mean
    # exactly (Li, Morgan & Zaslavsky 2018), in every indication
    assert acne["smd"].abs().max() > 0.5
    assert b["smd_weighted"].abs().max() < 1e-8
    assert set(res.weights["indication"]) == set(b["indication"])
    assert set(res.weights["comparison"]) == {"MN+PRP vs MN", "MN+RF vs MN", "MN+laser vs MN"}


def test_registry_propensity_scores_of_a_large_registry_lie_inside_0_01_0_99(big_registry):
    registry, _ = big_registry
    t = registry.tables
    u = t["units"].merge(t["subjects"], on=["study_id", "subject_id"])
    u = u.assign(phototype_num=u["phototype"].map(PHOTOTYPE_NUMBER).astype(float))
    u = u.loc[u["indication"] == "wrinkles"]  # no baseline score: phototype and clinic only
    for combo in ("MN+PRP", "MN+RF", "MN+laser"):
        pair = u.loc[u["modality"].isin(["MN", combo])].reset_index(drop=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pw = propensity_weights(pair, "modality", ["phototype_num", "site_id"], reference="MN")
        ps = pw.scores[f"ps_{combo}"]
        assert ps.between(0.01, 0.99).mean() > 0.99, combo
        assert "ps_not_converged" not in set(pw.diagnostics["code"])


def test_demo_registry_weights_balance_and_mark_only_real_problems():
    """The demo registry (seed 2, 2,000 patients): no weighted estimate is doubtful for
    imbalance; what is marked comes from the data (a clinic without one modality)."""
    res = _quiet_compare(simulate_registry(seed=2), ae_outcomes=())
    assert res.balance["smd_weighted"].abs().max() < 0.1
    weighted = res.table.loc[
        (res.table["source"] == "registry")
        & (res.table["adjustment"] == "weighted")
        & res.table["measure"].isin(["mean_difference", "odds_ratio", "hazard_ratio"])
        & res.table["estimate"].notna()
    ]
    doubts = weighted["doubt"].fillna("")
    assert not doubts.str.contains("imbalance").any()
    assert (doubts == "").sum() > len(doubts) / 2
    for _, row in weighted.loc[doubts.str.contains("not converged")].iterrows():
        # every non-converged model has a clinic where one of its two modalities is absent
        assert "positivity violated (a covariate level without some modality)" in row["doubt"]
    acne = weighted.loc[weighted["indication"] == "acne_scars", "doubt"]
    assert (acne == "").all()


def test_compare_multinomial_option_fits_one_model_per_indication():
    res = _quiet_compare(
        simulate_registry(seed=2, n_subjects=800), ae_outcomes=(), ps_model="multinomial"
    )
    assert set(res.weights["comparison"]) == {"all"}
    assert res.options["ps_model"] == "multinomial"
    weighted = res.table.loc[
        (res.table["adjustment"] == "weighted")
        & res.table["measure"].isin(["mean_difference", "odds_ratio", "hazard_ratio"])
    ]
    assert len(weighted) > 0
    assert weighted["method"].str.contains("multinomial propensity model").all()
    with pytest.raises(InputError, match="ps_model"):
        compare(simulate_registry(seed=2, n_subjects=50), ps_model="joint")


# --------------------------------------------------------------------------------------------
# against R


@pytest.fixture(scope="module")
def r_weighted():
    data = pd.read_csv(R_DIR / "weighted_data.csv")
    ref = json.loads((R_DIR / "weighted.json").read_text())
    return data, ref


@pytest.mark.parametrize(
    ("key", "family", "weighted"),
    [
        ("logistic_weighted", "binomial", True),
        ("logistic_naive", "binomial", False),
        ("poisson_weighted", "poisson", True),
    ],
)
def test_weighted_glm_cluster_matches_r(r_weighted, key, family, weighted):
    data, ref = r_weighted
    r = data[data["responder"].notna()].reset_index(drop=True)
    x = _dummies(r["modality"], ["MN", "MN+RF"], "")
    x.insert(0, "const", 1.0)
    w = r["weight"].to_numpy() if weighted else None
    params, cov, g = _glm_cluster(
        r["responder"].to_numpy(float), x, family, w, r["site_id"].to_numpy()
    )
    # R: glm(responder ~ rf, family = quasibinomial / quasipoisson, weights = weight), cluster
    # sandwich by clinic with factor G/(G-1) (n-1)/(n-k) (tests/r/comparison/weighted.R)
    np.testing.assert_allclose(params.to_numpy(), ref[key]["coef"], rtol=1e-6)
    np.testing.assert_allclose(np.sqrt(np.diag(cov)), ref[key]["se"], rtol=1e-6)
    assert g == ref[key]["G"]


def test_pairwise_propensity_model_matches_r(r_weighted):
    data, ref = r_weighted
    # R: glm(rf ~ phototype_num + baseline_score + factor(site_id), binomial), tight control
    pw = propensity_weights(
        data, "modality", ["phototype_num", "baseline_score", "site_id"], estimand="overlap"
    )
    assert ref["ps_converged"]
    assert pw.model.llf == pytest.approx(ref["ps_loglik"], rel=1e-10)
    np.testing.assert_allclose(pw.model.params.to_numpy(), ref["ps_coef"], rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(pw.weights.to_numpy(), ref["w_overlap"], atol=1e-10)
    # the comparison's weighted responder odds ratio uses these weights (rounded to 1e-6)
    res = _quiet_compare(simulate_registry(seed=2), ae_outcomes=())
    row = _row(
        res.table,
        source="registry",
        indication="acne_scars",
        comparison="MN+RF vs MN",
        measure="odds_ratio",
        adjustment="weighted",
    )
    assert math.log(row["estimate"]) == pytest.approx(ref["logistic_weighted"]["coef"][1], rel=1e-5)
    assert row["std_error"] == pytest.approx(ref["logistic_weighted"]["se"][1], rel=1e-5)


def test_cox_by_clinic_matches_r(r_weighted):
    data, ref = r_weighted
    s = data[data["time"].notna() & (data["time"] > 0)].reset_index(drop=True)
    # R: coxph(Surv(time, event) ~ rf, cluster = site_id): the toolkit's cox() matches R
    beta, se, _ = _naive_cox(s, ["MN", "MN+RF"], 0.95)
    assert beta["MN+RF"] == pytest.approx(ref["cox_naive"]["coef"], rel=1e-6)
    assert se["MN+RF"] == pytest.approx(ref["cox_naive"]["se"], rel=1e-5)
    # R: coxph(Surv(time, event) ~ rf, weights = weight, cluster = site_id): lifelines gives
    # R's estimate; its robust SE (Breslow-type residuals, tied visit days) is 1.9% smaller
    beta, se, _ = _weighted_cox(s, ["MN", "MN+RF"], s["weight"].to_numpy(), "site_id")
    assert beta["MN+RF"] == pytest.approx(ref["cox_weighted"]["coef"], rel=1e-5)
    assert se["MN+RF"] == pytest.approx(ref["cox_weighted"]["se"], rel=0.03)


# --------------------------------------------------------------------------------------------
# adverse-event arithmetic


def test_paired_risks_by_hand():
    # 20 subjects: a = 3 both sides, b = 7 combination side only, c = 2 control side only
    y1 = np.array([1] * 3 + [1] * 7 + [0] * 2 + [0] * 8)
    y0 = np.array([1] * 3 + [0] * 7 + [1] * 2 + [0] * 8)
    rd, rr, notes = _paired_risks(y1, y0, 0.95)
    a, b, c, n = 3, 7, 2, 20
    se_rd = math.sqrt(((b + c) - (b - c) ** 2 / n) / n**2)  # sqrt(0.019375)
    assert rd["estimate"] == pytest.approx((b - c) / n)  # 0.25
    assert rd["std_error"] == pytest.approx(se_rd)
    assert rd["conf_low"] == pytest.approx(0.25 - stats.norm.ppf(0.975) * se_rd)
    se_log_rr = math.sqrt((b + c) / ((a + b) * (a + c)))  # sqrt(9 / 50)
    assert rr["estimate"] == pytest.approx((a + b) / (a + c))  # 2
    assert rr["std_error"] == pytest.approx(se_log_rr)
    assert rr["conf_high"] == pytest.approx(2 * math.exp(stats.norm.ppf(0.975) * se_log_rr))
    assert notes == []


def test_independent_risks_newcombe_and_log_rr():
    e1, n1, e0, n0 = 56, 70, 48, 80  # Newcombe (1998), example (a)
    rd, rr, notes = _independent_risks(e1, n1, e0, n0, 0.95)
    p1, p0 = e1 / n1, e0 / n0
    l1, u1 = proportion_confint(e1, n1, method="wilson")
    l0, u0 = proportion_confint(e0, n0, method="wilson")
    # Newcombe's method 10: Wilson limits of each proportion combined
    low = p1 - p0 - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2)
    high = p1 - p0 + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)
    assert rd["estimate"] == pytest.approx(0.2)
    assert (rd["conf_low"], rd["conf_high"]) == pytest.approx((low, high))
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)  # as printed by Newcombe
    se = math.sqrt(1 / e1 - 1 / n1 + 1 / e0 - 1 / n0)
    assert rr["estimate"] == pytest.approx(p1 / p0)
    assert rr["std_error"] == pytest.approx(se)
    assert notes == []
    # a group without events: Haldane correction for the ratio, stated
    _, rr0, notes0 = _independent_risks(0, 30, 4, 30, 0.95)
    assert rr0["estimate"] == pytest.approx((0.5 / 31) / (4.5 / 31))
    assert "0.5 added" in notes0[0]


# --------------------------------------------------------------------------------------------
# outputs


def test_to_ard(trial_registry):
    _, _, res = trial_registry
    ard = res.to_ard()
    assert list(ard.columns) == list(ARD_COLUMNS)
    assert len(ard) == 9 * len(res.table)
    first = ard.iloc[0]
    assert "source=trial" in first["group"] and "measure=mean_difference" in first["group"]
    assert first["term"] == "randomised"
    est = ard[(ard["stat_name"] == "estimate")]["stat_value"].to_numpy()
    np.testing.assert_array_equal(est, res.table["estimate"].to_numpy())


def test_str_prints_every_row(trial_registry):
    _, _, res = trial_registry
    text = str(res)
    assert len(text.splitlines()) >= len(res.table) + 1
    assert "chi2" in text  # interaction tests show their statistic


def test_forest_plot_panels(trial_registry):
    import matplotlib.pyplot as plt

    _, _, res = trial_registry
    plot = res.forest_plot()
    assert plot.get_size_inches()[0] == pytest.approx(6.3)  # the text width of an A4 page
    texts = [t for ax in plot.axes for t in ax.texts] + plot.texts
    assert any("Favours" in t.get_text() for t in texts)
    sizes = [t.get_fontsize() for t in plot.findobj(lambda a: hasattr(a, "get_fontsize"))]
    assert min(sizes) >= 7  # legible at print size
    plt.close(plot)
    single = res.forest_plot(measures=["hazard_ratio"], sources=["trial"])
    labels = [t.get_text() for ax in single.axes for t in ax.get_yticklabels()]
    assert labels and all(label.endswith("(trial)") for label in labels)
    plt.close(single)
    with pytest.raises(InputError, match="nothing to plot"):
        res.forest_plot(measures=["hazard_ratio"], sources=["published"])


def test_clipped_interval_marks_each_cut_end_with_an_arrowhead():
    import matplotlib.pyplot as plt

    from outcomes.models.network.plots import clipped_interval

    fig, ax = plt.subplots()
    ax.set_xlim(0.1, 10)
    clipped_interval(ax, 0, 0.01, 100, "black")  # cut at both ends
    clipped_interval(ax, 1, 0.5, 2, "black")  # inside: no arrowhead
    markers = [line.get_marker() for line in ax.lines]
    assert sorted(markers) == ["<", ">"]
    (segments,) = [c.get_segments() for c in ax.collections[:1]]
    assert segments[0][:, 0].tolist() == [0.1, 10]
    plt.close(fig)


def test_published_rows_are_the_shipped_real_trials_only():
    from outcomes.models.network.published import microneedling_network

    trial = simulate_trial(seed=3, n_subjects=12)
    res = _quiet_compare(trial, published=True, ae_outcomes=())
    pub = res.table[res.table["source"] == "published"]
    arms = microneedling_network()
    with_mn = set(arms.loc[arms["treatment"] == "MN", "study"])
    # every published row is one real trial with a microneedling-alone arm; nothing invented
    assert (
        set(pub["study_id"])
        == with_mn
        == {
            "Asif 2016",
            "Krishnegowda 2023",
            "Sharma (J Pak Assoc Dermatol)",
        }
    )
    assert not pub["study_id"].str.contains("llustrative").any()
    # one trial per comparison: its own estimate, never called pooled
    assert set(pub["adjustment"]) == {"single_study"}
    assert pub["method"].str.startswith("the study's own estimate").all()
    # Asif 2016: excellent response 20/50 (PRP side) vs 5/50 (distilled-water side), paired
    orow = _row(pub, outcome="excellent_response")
    assert orow["measure"] == "odds_ratio" and orow["comparison"] == "MN+PRP vs MN"
    assert orow["estimate"] == pytest.approx((20 * 45) / (30 * 5), rel=1e-12)
    # paired at the default r (SPLIT_FACE_R = 0.3, the comparison report's split_r): within
    # the range Asif's counts allow (at most 0.41), where the earlier 0.5 was not
    assert SPLIT_FACE_R == 0.3
    p1, p2, n, r = 0.4, 0.1, 50, SPLIT_FACE_R
    v = 1 / (n * p1 * (1 - p1)) + 1 / (n * p2 * (1 - p2))
    v -= 2 * r * math.sqrt(p1 * (1 - p1) * p2 * (1 - p2)) / (n * p1 * (1 - p1) * p2 * (1 - p2))
    z = stats.norm.isf(0.025)
    assert orow["conf_low"] == pytest.approx(6.0 * math.exp(-z * math.sqrt(v)), rel=1e-10)
    assert orow["conf_high"] == pytest.approx(6.0 * math.exp(z * math.sqrt(v)), rel=1e-10)
    assert "r = 0.3 unless given" in orow["method"]
    # Sharma: final G&B grade 2.13 vs 2.36 (SD 0.56 each, 40 patients), paired at r = 0.3:
    # sd of the difference sqrt(2 * 0.56^2 * (1 - 0.3))
    mrow = _row(pub, outcome="gb_grade_final", comparison="MN+PRP vs MN")
    assert mrow["estimate"] == pytest.approx(2.13 - 2.36, abs=1e-12)
    assert mrow["std_error"] == pytest.approx(0.56 * math.sqrt(1.4 / 40), rel=1e-12)


def test_default_split_face_r_is_attainable_for_every_shipped_trial():
    from outcomes.models.meta.effect_sizes import phi_limits
    from outcomes.models.network.published import microneedling_pairs

    pairs = microneedling_pairs()
    binary = pairs.loc[pairs["events1"].notna() & pairs["design"].eq("split_body")]
    assert len(binary) >= 1
    low, high = phi_limits(binary["events1"], binary["events2"], binary["n1"])
    assert (low <= SPLIT_FACE_R).all() and (high >= SPLIT_FACE_R).all()
    # the comparison report uses the same assumed r
    report = (Path(__file__).parents[1] / "reports" / "comparison.qmd").read_text()
    assert f"split_r = {SPLIT_FACE_R}" in report


def test_published_rows_pool_two_or_more_studies_and_refuse_example_names():
    from outcomes.models.meta.meta_analysis import meta_analysis

    studies = pd.DataFrame(
        {
            "study": ["Study A", "Study B", "Study C"],
            "design": "parallel",
            "indication": "acne_scars",
            "outcome": "excellent_response",
            "arm1": "MN+PRP",
            "arm2": ["MN", "MN+saline", "MN"],
            "events1": [12, 9, 15],
            "n1": [30, 25, 40],
            "events2": [5, 6, 7],
            "n2": [30, 25, 40],
        }
    )
    trial = simulate_trial(seed=3, n_subjects=12)
    res = _quiet_compare(trial, published=studies, ae_outcomes=())
    row = _row(res.table, source="published")
    assert (row["adjustment"], row["study_id"], row["design"]) == (
        "random_effects",
        "3 studies",
        "meta-analysis",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        direct = meta_analysis(studies, "OR", "REML").summary.iloc[-1]
    assert row["estimate"] == pytest.approx(math.exp(direct["estimate"]), rel=1e-12)
    assert "MN+saline" in row["definition"]
    with pytest.raises(InputError, match="real trials"):
        compare(trial, published="prp_acne_scars_response")


# --------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"estimand": "ATT"}, "estimand"),
        ({"primary_day": 300, "window": (140, 210)}, "primary_day"),
        ({"ae_outcomes": ("nausea",)}, "unknown adverse-event"),
        ({"level": 1.5}, "level"),
    ],
)
def test_bad_options(kwargs, message):
    with pytest.raises(InputError, match=message):
        compare(simulate_trial(seed=1, n_subjects=4), **kwargs)


def test_bad_data():
    with pytest.raises(InputError, match="needs a store"):
        compare(42)
    with pytest.raises(InputError, match="does not exist"):
        compare("no/such/store.duckdb")
    tables = dict(simulate_trial(seed=1, n_subjects=4).tables)
    del tables["sessions"]
    with pytest.raises(InputError, match="sessions"):
        compare(tables)


def test_model_warnings_are_data_and_typed_warnings():
    from outcomes.errors import OutcomesWarning

    # 12 subjects: GEE with few clusters warns; the row carries the same message
    trial = simulate_trial(seed=3, n_subjects=12)
    with pytest.warns(OutcomesWarning) as record:
        res = compare(trial, ae_outcomes=())
    row = _row(res.table, measure="odds_ratio")
    messages = {str(w.message) for w in record}
    assert row["warning"] and row["warning"].split(" | ")[0] in messages


def test_by_body_site():
    registry = simulate_registry(seed=2, n_subjects=1500)
    res = _quiet_compare(registry, by_body_site=True, ae_outcomes=())
    t = res.table
    md = t[t["measure"] == "mean_difference"]
    # acne scars are treated on the face and the back, pigmentation on the face only
    assert set(zip(md["indication"], md["body_site"], strict=True)) == {
        ("acne_scars", "face"),
        ("acne_scars", "back"),
        ("pigmentation", "face"),
    }
    units = registry.tables["units"].merge(registry.tables["subjects"], on="subject_id")
    back = units[(units["indication"] == "acne_scars") & (units["body_site"] == "back")]
    row = _row(md, body_site="back", adjustment="naive", comparison="MN+PRP vs MN")
    assert row["n"] <= back["modality"].isin(["MN", "MN+PRP"]).sum()
    assert set(res.balance["body_site"]) == set(t.loc[t["body_site"] != "all", "body_site"])
    # interaction tests stay by indication, over all body sites
    assert (t.loc[t["measure"] == "interaction_wald", "body_site"] == "all").all()


def test_parallel_trial():
    trial = simulate_trial(seed=5, design="parallel", n_subjects=60)
    res = _quiet_compare(trial)
    t = res.table
    md = _row(t, measure="mean_difference")
    assert "side nested" not in md["method"] and md["n_clusters"] == 60
    hr = _row(t, measure="hazard_ratio")
    assert "clustered" not in hr["method"]
    rd = _row(t, outcome="ae_severe_erythema", measure="risk_difference")
    assert "Newcombe" in rd["method"] and pd.isna(rd["n_clusters"])
    # the Newcombe interval of the row is the one of the 2 x 2 table
    ae = trial.tables["adverse_events"]
    hit = set(ae.loc[(ae["term"] == "erythema") & (ae["severity"] == "severe"), "unit_id"])
    u = trial.tables["units"].assign(event=lambda d: d["unit_id"].isin(hit))
    counts = u.groupby("modality")["event"].agg(["sum", "size"])
    rd2, _, _ = _independent_risks(
        counts.loc["MN+PRP", "sum"],
        counts.loc["MN+PRP", "size"],
        counts.loc["MN", "sum"],
        counts.loc["MN", "size"],
        0.95,
    )
    assert (rd["conf_low"], rd["conf_high"]) == pytest.approx((rd2["conf_low"], rd2["conf_high"]))
