"""Network meta-analysis (outcomes.models.network) against R netmeta 3.6-2.

Reference numbers: tests/r/network/netmeta_reference.json (netmeta's Senn2013 and Linde2016
examples; R calls in its ``calls`` entry, provenance in tests/r/network/README.md) and
tests/r/network/rma_mv_reml.json (metafor rma.mv REML, script rma_mv_reml.R beside it).
Tolerance: 1e-5 absolute for effects, SEs, tau^2, Q and P-scores, as the issue asks.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from outcomes.errors import InputError, StatisticalWarning
from outcomes.models.meta.effect_sizes import escalc
from outcomes.models.network import microneedling_network, network_meta
from outcomes.models.network.designs import blocks, gls
from outcomes.models.network.graph import fit_graph
from outcomes.results import ARD_COLUMNS, TIDY_COLUMNS

HERE = Path(__file__).parent / "r" / "network"
R = json.loads((HERE / "netmeta_reference.json").read_text())
REML = json.loads((HERE / "rma_mv_reml.json").read_text())
TOL = 1e-5


def quiet(fn, *args, **kwargs):
    """Fit with the toolkit's statistical warnings silenced (they are checked separately)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatisticalWarning)
        return fn(*args, **kwargs)


def senn() -> pd.DataFrame:
    d = pd.read_csv(HERE / "senn2013.csv")
    return d.rename(columns={"studlab": "study"})[["study", "treat1", "treat2", "TE", "seTE"]]


def linde(face: bool = False) -> pd.DataFrame:
    a = pd.read_csv(HERE / "linde2016_arm.csv")
    if face:
        a = a[a["id"].isin([16, 24, 49, 118])]
    return pd.DataFrame(
        {
            "study": a["author"] + " " + a["year"].astype(str),
            "treatment": a["int"],
            "events": a["resp"],
            "n": a["n"],
        }
    )


@pytest.fixture(scope="module")
def fits():
    return {
        "senn2013": (quiet(network_meta, senn(), reference="plac"), R["senn2013"]),
        "linde2016": (
            quiet(network_meta, linde(), "OR", reference="Placebo"),
            R["linde2016"]["nma"],
        ),
        "linde2016_face": (
            quiet(network_meta, linde(True), "OR", reference="Placebo"),
            R["linde2016_face"]["nma"],
        ),
    }


NAMES = ["senn2013", "linde2016", "linde2016_face"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("model", ["common", "random"])
def test_effects_vs_reference(fits, name, model):
    # netmeta(...)$TE.<model>[, reference] and friends (the "common"/"random" JSON entries)
    res, ref = fits[name]
    t = res.relative_effects(model).set_index("treatment")
    exp = ref[model]
    cols = {
        "estimate": "TE",
        "std_error": "seTE",
        "conf_low": "lower",
        "conf_high": "upper",
        "statistic": "statistic",
        "p_value": "pval",
    }
    for i, trt in enumerate(exp["treat"]):
        if trt == res.reference:
            continue
        for ours, theirs in cols.items():
            assert t.loc[trt, ours] == pytest.approx(exp[theirs][i], abs=TOL), (trt, ours)
        if model == "random":
            e = res.effects.set_index(["model", "treatment", "comparator"])
            row = e.loc[("random", trt, res.reference)]
            assert row["pi_low"] == pytest.approx(exp["lower.predict"][i], abs=TOL)
            assert row["pi_high"] == pytest.approx(exp["upper.predict"][i], abs=TOL)


@pytest.mark.parametrize("name", NAMES)
def test_league_matrices(fits, name):
    # netmeta(...)$TE.common / seTE.common / TE.random / seTE.random, every pair
    res, ref = fits[name]
    e = res.effects.set_index(["model", "treatment", "comparator"])
    for model in ("common", "random"):
        te, se = ref["matrices"][f"TE.{model}"], ref["matrices"][f"seTE.{model}"]
        for i, a in enumerate(te["rownames"]):
            for j, b in enumerate(te["colnames"]):
                if a != b:
                    assert e.loc[(model, a, b), "estimate"] == pytest.approx(
                        te["values"][i][j], abs=TOL
                    )
                    assert e.loc[(model, a, b), "std_error"] == pytest.approx(
                        se["values"][i][j], abs=TOL
                    )


@pytest.mark.parametrize("name", NAMES)
def test_comparisons_multiarm_adjusted(fits, name):
    # netmeta(...)$seTE.adj.common / seTE.adj.random / TE.nma.common / TE.nma.random by row
    res, ref = fits[name]
    c = ref["comparisons"]
    ours = res.contrasts.set_index(["study", "treat1", "treat2"])
    for k in range(len(c["studlab"])):
        key, sign = (c["studlab"][k], c["treat1"][k], c["treat2"][k]), 1.0
        if key not in ours.index:
            key, sign = (c["studlab"][k], c["treat2"][k], c["treat1"][k]), -1.0
        row = ours.loc[key]
        assert row["seTE_adj_common"] == pytest.approx(c["seTE.adj.common"][k], abs=TOL)
        assert row["seTE_adj_random"] == pytest.approx(c["seTE.adj.random"][k], abs=TOL)
        assert sign * row["fitted_common"] == pytest.approx(c["TE.nma.common"][k], abs=TOL)
        assert sign * row["fitted_random"] == pytest.approx(c["TE.nma.random"][k], abs=TOL)
        assert sign * row["TE"] == pytest.approx(c["TE"][k], abs=TOL)
        assert row["seTE"] == pytest.approx(c["seTE"][k], abs=TOL)


@pytest.mark.parametrize("name", NAMES)
def test_heterogeneity(fits, name):
    # netmeta(...)$tau2, I2 (+ CI), Q, Q.heterogeneity, Q.inconsistency with df and p
    res, ref = fits[name]
    h = res.heterogeneity.iloc[0]
    exp = ref["heterogeneity"]
    pairs = {
        "tau2": "tau2",
        "tau": "tau",
        "i2": "I2",
        "i2_low": "lower.I2",
        "i2_high": "upper.I2",
        "q": "Q",
        "df": "df.Q",
        "p_value": "pval.Q",
    }
    if exp["df.Q.heterogeneity"] > 0:
        pairs.update(
            q_within="Q.heterogeneity",
            df_within="df.Q.heterogeneity",
            p_within="pval.Q.heterogeneity",
        )
    pairs.update(
        q_between="Q.inconsistency",
        df_between="df.Q.inconsistency",
        p_between="pval.Q.inconsistency",
    )
    for ours, theirs in pairs.items():
        assert h[ours] == pytest.approx(exp[theirs], abs=TOL), ours


@pytest.mark.parametrize("name", ["senn2013", "linde2016"])
def test_design_decomposition(fits, name):
    # decomp.design(net): Q.het.design per design, Q.inc.design per design contrast,
    # Q.inc.random (between-design Q at tau.within)
    res, _ = fits[name]
    dd = R[name]["decomp.design"]
    within = res.design_q["within"].set_index("design")
    for row in dd["Q.het.design"]:
        assert within.loc[row["design"], "q"] == pytest.approx(row["Q"], abs=TOL)
        assert within.loc[row["design"], "df"] == row["df"]
    between = res.design_q["between"]
    for label, value in dd["Q.inc.design"].items():
        design, _, idx = label.partition(".")
        if idx and not idx.isdigit():  # a design whose name has a dot: not in these data
            design, idx = label, ""
        rows = between[between["design"] == design]
        assert rows.iloc[int(idx or 0)]["q"] == pytest.approx(value, abs=TOL), label
    rnd = dd["Q.inc.random"][0]
    h = res.heterogeneity.iloc[0]
    assert h["tau_within"] == pytest.approx(rnd["tau.within"], abs=TOL)
    assert h["q_between_random"] == pytest.approx(rnd["Q"], abs=TOL)
    assert h["p_between_random"] == pytest.approx(rnd["pval"], abs=TOL)


@pytest.mark.parametrize("name", ["senn2013", "linde2016"])
@pytest.mark.parametrize("direction", ["desirable", "undesirable"])
def test_p_scores(name, direction):
    # netrank(net, small.values = direction)$ranking.<model>
    data, kw = (
        (senn(), {"reference": "plac"})
        if name == "senn2013"
        else (linde(), {"measure": "OR", "reference": "Placebo"})
    )
    res = quiet(network_meta, data, small_values=direction, **kw)
    exp = R[name]["netrank"][f"small.values.{direction}"]
    ps = res.p_scores.set_index("treatment")
    for model in ("common", "random"):
        for trt, value in exp[model].items():
            assert ps.loc[trt, f"p_score_{model}"] == pytest.approx(value, abs=TOL)


def test_arm_level_contrasts_match_pairwise():
    # netmeta::pairwise(treat = int, event = resp, n = n, sm = "OR") -> linde2016_pairwise.csv
    res = quiet(network_meta, linde(), "OR", reference="Placebo")
    pw = pd.read_csv(HERE / "linde2016_pairwise.csv")
    ours = res.contrasts.set_index(["study", "treat1", "treat2"])
    for r in pw.itertuples():
        key, sign = (r.studlab, r.treat1, r.treat2), 1.0
        if key not in ours.index:
            key, sign = (r.studlab, r.treat2, r.treat1), -1.0
        assert sign * ours.loc[key, "TE"] == pytest.approx(r.TE, abs=1e-10)
        assert ours.loc[key, "seTE"] == pytest.approx(r.seTE, abs=1e-10)


@pytest.mark.parametrize("name,ref", [("senn2013", "plac"), ("linde2016", "Placebo")])
def test_reml_matches_metafor(name, ref):
    # rma.mv(yi, V, mods = treatments, random = ~ factor(comparison) | study, struct = "CS",
    # rho = 0.5, method = "REML") with BFGS reltol 1e-14: see rma_mv_reml.R
    data = senn() if name == "senn2013" else linde()
    kw = {} if name == "senn2013" else {"measure": "OR"}
    res = quiet(network_meta, data, reference=ref, method_tau="REML", **kw)
    exp = REML[name]
    assert res.tau2 == pytest.approx(exp["tau2"], abs=TOL)
    t = res.relative_effects("random").set_index("treatment")
    for trt, est, se in zip(exp["treatments"], exp["estimate"], exp["std_error"], strict=True):
        assert t.loc[trt, "estimate"] == pytest.approx(est, abs=TOL)
        assert t.loc[trt, "std_error"] == pytest.approx(se, abs=TOL)


def test_reml_at_least_as_good_as_metafor():
    # The criterion first: our tau^2 reaches a restricted likelihood no lower than R's optimum.
    from outcomes.models.network.designs import _consistency_X, _restricted_deviance

    res = quiet(network_meta, senn(), reference="plac", method_tau="REML")
    bl = blocks(res._data.table, "plac")
    X = _consistency_X(bl, res.treatments, "plac")
    ours = _restricted_deviance(res.tau2, bl, X)
    theirs = _restricted_deviance(REML["senn2013"]["tau2"], bl, X)
    assert ours <= theirs + 1e-9


def test_rucker_equals_gls_for_three_arm_split_body_study():
    # A three-site split-body study: the pairwise variances with r define its covariance, and
    # Rücker's multi-arm reduction must give the same estimates as GLS on the exact covariance.
    arms = pd.DataFrame(
        {
            "study": ["A"] * 3 + ["B"] * 2 + ["C"] * 2,
            "treatment": ["MN", "MN+PRP", "MN+RF", "MN", "MN+PRP", "MN+RF", "MN"],
            "mean": [2.4, 2.0, 2.1, 2.5, 2.2, 2.0, 2.6],
            "sd": [0.6, 0.5, 0.7, 0.5, 0.6, 0.6, 0.5],
            "n": [20, 20, 20, 30, 30, 25, 25],
            "design": ["split_body"] * 3 + ["parallel"] * 4,
        }
    )
    res = quiet(network_meta, arms, "MD", reference="MN", r=0.4)
    bl = blocks(res._data.table, "MN")
    from outcomes.models.network.designs import _consistency_X

    theta, cov, q = gls(bl, _consistency_X(bl, res.treatments, "MN"))
    t = res.relative_effects("common").set_index("treatment")
    others = [x for x in res.treatments if x != "MN"]
    for i, trt in enumerate(others):
        assert t.loc[trt, "estimate"] == pytest.approx(theta[i], abs=1e-10)
        assert t.loc[trt, "std_error"] == pytest.approx(np.sqrt(cov[i, i]), abs=1e-10)
    assert res.heterogeneity["q"].iloc[0] == pytest.approx(q, abs=1e-10)
    # and the paired contrast variance is the one escalc gives a split-face study
    row = res.contrasts.set_index(["study", "treat1", "treat2"]).loc[("A", "MN", "MN+PRP")]
    es = escalc(
        pd.DataFrame(
            {
                "study": ["A"],
                "mean1": [2.4],
                "sd1": [0.6],
                "n1": [20],
                "mean2": [2.0],
                "sd2": [0.5],
                "n2": [20],
                "design": ["split_body"],
                "r": [0.4],
            }
        ),
        "MD",
    )
    assert row["seTE"] == pytest.approx(float(es["sei"].iloc[0]), abs=1e-12)


def test_netsplit_back_calculation_equals_sidde_without_multiarm_studies():
    # With two-arm studies only, the back-calculated indirect estimate of the common-effect
    # model is exactly the network estimate without that comparison's studies (SIDDE).
    d = senn()
    d = d[d["study"] != "Willms1999"]
    res = quiet(network_meta, d, reference="plac")
    back = quiet(res.netsplit).query("model == 'common'").set_index("comparison")
    sidde = quiet(res.netsplit, "SIDDE").query("model == 'common'").set_index("comparison")
    both = back["indirect"].notna() & sidde["indirect"].notna()
    assert both.sum() >= 5
    for col in ("indirect", "indirect_se", "difference", "p_value"):
        np.testing.assert_allclose(back.loc[both, col], sidde.loc[both, col], atol=1e-9)
    # direct-only comparisons have no indirect estimate
    assert back.loc[back["prop_direct"] > 0.9995, "indirect"].isna().all()


def test_netsplit_direct_is_pooled_direct_evidence():
    res = quiet(network_meta, senn(), reference="plac")
    ns = quiet(res.netsplit).query("model == 'common'").set_index("comparison")
    rows = senn().query("(treat1 == 'rosi' and treat2 == 'plac')")
    w = 1 / rows["seTE"] ** 2
    direct = -(w * rows["TE"]).sum() / w.sum()  # plac vs rosi orientation
    assert ns.loc["plac vs rosi", "direct"] == pytest.approx(direct, abs=1e-12)
    assert ns.loc["plac vs rosi", "k"] == len(rows)


def test_tidy_and_ard_shapes():
    res = quiet(network_meta, senn(), reference="plac")
    tidy = res.tidy()
    assert list(tidy.columns[: len(TIDY_COLUMNS)]) == list(TIDY_COLUMNS)
    assert len(tidy) == 2 * 9 and set(tidy["model"]) == {"common", "random"}
    ard = res.to_ard("nma_demo", {"outcome": "hba1c"})
    assert list(ard.columns) == list(ARD_COLUMNS)
    assert ard["group"].str.contains("outcome=hba1c").all()
    assert ard["warning"].str.contains("Between-design Q").all()  # inconsistency carried
    league = res.league("random")
    assert league.shape == (10, 10) and league.loc["rosi", "rosi"] == "rosi"


def test_inconsistency_and_boundary_reported_as_data():
    with pytest.warns(StatisticalWarning, match="Between-design"):
        res = network_meta(senn(), reference="plac")
    assert "inconsistency" in set(res.diagnostics["code"])


def test_disconnected_network_is_refused_with_the_parts():
    d = pd.DataFrame(
        {
            "study": ["a", "b"],
            "treat1": ["MN", "laser"],
            "treat2": ["MN+PRP", "MN+RF"],
            "TE": [0.1, 0.2],
            "seTE": [0.1, 0.1],
        }
    )
    with pytest.raises(InputError, match=r"2 sub-networks.*component_meta"):
        network_meta(d)


@pytest.mark.parametrize(
    "data,match",
    [
        (
            pd.DataFrame(
                {
                    "study": ["a", "a"],
                    "treat1": ["A", "A"],
                    "treat2": ["B", "C"],
                    "TE": [0.1, 0.2],
                    "seTE": [0.1, 0.1],
                }
            ),
            "needs all 3",
        ),
        (
            pd.DataFrame(
                {"study": ["a"], "treat1": ["A"], "treat2": ["A"], "TE": [0.1], "seTE": [0.1]}
            ),
            "must differ",
        ),
        (
            pd.DataFrame(
                {"study": ["a"], "treat1": ["A"], "treat2": ["B"], "TE": [0.1], "seTE": [0.0]}
            ),
            "must be positive",
        ),
        (
            pd.DataFrame(
                {"study": ["a"], "treat1": ["A"], "treat2": ["B"], "TE": ["x"], "seTE": [0.1]}
            ),
            "row\\(s\\) 1",
        ),
        (pd.DataFrame({"study": ["a"], "arm": ["A"]}), "treatment"),
    ],
)
def test_bad_input_messages(data, match):
    with pytest.raises(InputError, match=match):
        network_meta(data)


def test_split_face_without_r_asks_for_it():
    arms = microneedling_network("gb_grade_final")
    with pytest.raises(InputError, match="within-patient correlation"):
        network_meta(arms, "MD", reference="MN")


def test_unknown_reference():
    with pytest.raises(InputError, match="reference='XYZ'"):
        quiet(network_meta, senn(), reference="XYZ")


def test_shipped_microneedling_network_is_traceable_and_fits():
    data = microneedling_network()
    assert set(data["source_status"]) <= {"abstract", "full_paper"}
    for col in ("citation", "confirmed_at", "quoted", "derivation"):
        assert data[col].notna().all(), col
    assert not data["study"].str.contains("llustrative").any()
    res = quiet(
        network_meta,
        microneedling_network("excellent_response"),
        "OR",
        reference="MN",
        r=0.2,
        small_values="undesirable",
    )
    t = res.tidy("common", exponentiate=True).set_index("term")
    # Asif 2016 alone informs MN+PRP vs MN: OR (20/30)/(5/45) = 6 whatever r is
    assert t.loc["MN+PRP vs MN", "estimate"] == pytest.approx(6.0, rel=1e-12)
    assert "no_heterogeneity_df" in set(res.diagnostics["code"])
    # r moves only the precision: a higher within-patient correlation narrows the interval
    res2 = quiet(
        network_meta,
        microneedling_network("excellent_response"),
        "OR",
        reference="MN",
        r=0.4,
        small_values="undesirable",
    )
    se = [
        r.relative_effects("common").set_index("treatment").loc["MN+PRP", "std_error"]
        for r in (res, res2)
    ]
    assert se[1] < se[0]


def test_unattainable_r_is_refused_and_flagged_in_the_sensitivity_table():
    from outcomes.models.network.sensitivity import correlation_limits, r_sensitivity

    arms = microneedling_network("excellent_response")
    # Asif 2016, 20/50 vs 5/50 responders: phi at most sqrt(0.1 * 0.6 / (0.4 * 0.9)) = 0.408
    with pytest.raises(InputError, match=r"Asif 2016.*20/50 vs 5/50.*-0\.272 to 0\.408"):
        network_meta(arms, "OR", reference="MN", r=0.5)
    limits = correlation_limits(arms)
    assert limits.loc["Asif 2016", "high"] == pytest.approx(np.sqrt(0.1 * 0.6 / (0.4 * 0.9)))
    assert limits.loc["Chawla 2014", "high"] == pytest.approx(0.5933, abs=1e-4)
    sens = r_sensitivity(arms, "OR", [0.0, 0.4, 0.5], reference="MN", small_values="undesirable")
    assert sens.groupby("r")["attainable"].all().to_dict() == {0.0: True, 0.4: True, 0.5: False}
    assert sens.loc[sens["attainable"], "estimate"].notna().all()
    assert sens.loc[~sens["attainable"], "estimate"].isna().all()
    with pytest.raises(InputError, match=r"None of r = 0\.5, 0\.7"):
        r_sensitivity(arms, "OR", [0.5, 0.7], reference="MN")


def test_figures_render(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = quiet(network_meta, linde(True), "OR", reference="Placebo")
    for fig in (res.forest_plot(), res.network_plot(title="Face-to-face PST")):
        path = tmp_path / "f.png"
        fig.savefig(path, dpi=80)
        assert path.stat().st_size > 5000
        plt.close(fig)


def test_graph_fit_is_order_invariant():
    d = senn()
    a = quiet(network_meta, d, reference="plac")
    b = quiet(network_meta, d.sample(frac=1.0, random_state=3), reference="plac")
    ta = a.relative_effects("random").set_index("treatment")["estimate"]
    tb = b.relative_effects("random").set_index("treatment")["estimate"]
    pd.testing.assert_series_equal(ta.sort_index(), tb.sort_index(), atol=1e-12)
    # the graph engine directly: potentials differences are the effects
    t = a._data.table
    f = fit_graph(
        t["TE"].to_numpy(),
        t["seTE"].to_numpy(),
        t["treat1"].to_numpy(),
        t["treat2"].to_numpy(),
        t["study"].to_numpy(),
        a.treatments,
    )
    assert np.allclose(f.TE, -f.TE.T)


def test_real_pairs_for_pairwise_meta_analysis():
    from outcomes.models.network import microneedling_pairs

    pairs = microneedling_pairs("gb_grade_final", "MN+PRP")
    assert pairs[["study", "mean1", "mean2", "n1"]].values.tolist() == [
        ["Sharma (J Pak Assoc Dermatol)", 2.13, 2.36, 40]
    ]
    assert (pairs["source_status"] == "abstract").all()
    assert microneedling_pairs("excellent_response", "MN+RF").empty
