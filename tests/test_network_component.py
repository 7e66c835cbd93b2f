"""Additive component NMA (outcomes.models.network.component_meta) against R netmeta 3.6-2.

Reference: tests/r/network/netmeta_reference.json, entries ``linde2016_face`` and ``linde2016``
(``netcomb(nma, inactive = "placebo")`` and, for the face-to-face subset, ``netcomb(nma1,
C.matrix = createC(cnma1))`` with every interaction). Tolerance 1e-5 absolute.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from outcomes.errors import InputError, StatisticalWarning
from outcomes.models.network import component_matrix, component_meta, network_meta
from outcomes.results import ARD_COLUMNS, TIDY_COLUMNS

HERE = Path(__file__).parent / "r" / "network"
R = json.loads((HERE / "netmeta_reference.json").read_text())
TOL = 1e-5


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatisticalWarning)
        return fn(*args, **kwargs)


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


def check(res, ref):
    for model in ("common", "random"):
        exp = ref[model]
        comp = res.components[res.components["model"] == model].set_index("term")
        assert list(comp.index) == exp["comps"]
        for ours, theirs in (
            ("estimate", "Comp"),
            ("std_error", "seComp"),
            ("conf_low", "lower.Comp"),
            ("conf_high", "upper.Comp"),
            ("p_value", "pval.Comp"),
        ):
            np.testing.assert_allclose(comp[ours], exp[theirs], atol=TOL, err_msg=ours)
        comb = res.combinations[res.combinations["model"] == model].set_index("term")
        for ours, theirs in (("estimate", "Comb"), ("std_error", "seComb")):
            np.testing.assert_allclose(comb.loc[exp["comb"], ours], exp[theirs], atol=TOL)
        pairs = res.comparisons[res.comparisons["model"] == model].set_index(
            ["treatment", "comparator"]
        )
        te, se = exp["TE.matrix"], exp["seTE.matrix"]
        for i, a in enumerate(te["rownames"]):
            for j, b in enumerate(te["colnames"]):
                if a != b:
                    assert pairs.loc[(a, b), "estimate"] == pytest.approx(
                        te["values"][i][j], abs=TOL
                    )
                    assert pairs.loc[(a, b), "std_error"] == pytest.approx(
                        se["values"][i][j], abs=TOL
                    )
    s = ref["statistics"]
    h = res.heterogeneity.iloc[0]
    pairs = {
        "tau2": "tau2",
        "i2": "I2",
        "i2_low": "lower.I2",
        "i2_high": "upper.I2",
        "q_additive": "Q.additive",
        "df_additive": "df.Q.additive",
        "p_additive": "pval.Q.additive",
        "q_standard": "Q.standard",
        "df_standard": "df.Q.standard",
        "p_standard": "pval.Q.standard",
        "q_diff": "Q.diff",
        "df_diff": "df.Q.diff",
    }
    for ours, theirs in pairs.items():
        assert h[ours] == pytest.approx(s[theirs], abs=TOL), ours
    if s["df.Q.diff"] > 0:
        assert h["p_diff"] == pytest.approx(s["pval.Q.diff"], abs=TOL)
    else:
        assert np.isnan(h["p_diff"])


@pytest.mark.parametrize("name,face", [("linde2016_face", True), ("linde2016", False)])
def test_netcomb_additive(name, face):
    nma = quiet(network_meta, linde(face), "OR", reference="Placebo")
    res = quiet(component_meta, nma, inactive="placebo")
    check(res, R[name]["cnma"])
    # C matrix as createC builds it
    C = R[name]["cnma"]["C.matrix"]
    ours = res.C.loc[C["rownames"], C["colnames"]].to_numpy()
    np.testing.assert_array_equal(ours, np.array(C["values"], dtype=float))


def test_netcomb_with_interaction_equals_standard_nma():
    ref = R["linde2016_face"]["cnma_interaction_all"]
    C = pd.DataFrame(
        ref["C.matrix"]["values"],
        index=ref["C.matrix"]["rownames"],
        columns=ref["C.matrix"]["colnames"],
        dtype=float,
    )
    res = quiet(component_meta, linde(True), "OR", C=C)
    check(res, ref)


def test_data_frame_and_fitted_network_give_the_same_fit():
    a = quiet(component_meta, linde(True), "OR", inactive="Placebo")
    b = quiet(component_meta, quiet(network_meta, linde(True), "OR"), inactive="placebo")
    pd.testing.assert_frame_equal(a.components, b.components)


def test_discomb_disconnected_network_linked_by_components():
    # {saline, MN, MN+PRP} and {PRP, RF+PRP} share no treatment, but the additive model
    # identifies MN, PRP and RF; with one study per row the fit is exact.
    d = pd.DataFrame(
        {
            "study": ["s1", "s2", "s3", "s4"],
            "treat1": ["MN", "MN+PRP", "RF+PRP", "MN+PRP"],
            "treat2": ["saline", "saline", "PRP", "MN"],
            "TE": [-0.30, -0.55, -0.20, -0.22],
            "seTE": [0.10, 0.12, 0.15, 0.11],
        }
    )
    res = quiet(component_meta, d, inactive="saline")
    assert res.heterogeneity["subnetworks"].iloc[0] == 2
    assert "disconnected_network" in set(res.diagnostics["code"])
    # weighted least squares by hand: rows = MN, MN+PRP, RF, PRP
    X = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 1, 0]], dtype=float)
    W = np.diag(1 / d["seTE"].to_numpy() ** 2)
    beta = np.linalg.solve(X.T @ W @ X, X.T @ W @ d["TE"].to_numpy())
    comp = res.components.query("model == 'common'").set_index("term")
    np.testing.assert_allclose(comp.loc[["MN", "PRP", "RF"], "estimate"], beta, atol=1e-12)
    comb = res.combinations.query("model == 'common'").set_index("term")
    assert comb.loc["RF+PRP", "estimate"] == pytest.approx(beta[1] + beta[2], abs=1e-12)
    # the standard-model Q is the sum over the parts; the additive model adds 1 df here
    assert res.heterogeneity["df_standard"].iloc[0] == 1
    assert res.heterogeneity["df_additive"].iloc[0] == 1
    with pytest.raises(InputError, match="sub-networks"):
        network_meta(d)


def test_unidentifiable_component_is_refused():
    d = pd.DataFrame(
        {
            "study": ["s1", "s2"],
            "treat1": ["MN+PRP", "RF+PRP"],
            "treat2": ["MN", "RF"],
            "TE": [-0.3, -0.2],
            "seTE": [0.1, 0.1],
        }
    )
    with pytest.raises(InputError, match=r"cannot separate.*MN, RF"):
        component_meta(d)


def test_component_matrix_from_labels():
    C = component_matrix(["MN", "MN + PRP", "MN+RF", "saline"], inactive="Saline")
    assert list(C.columns) == ["MN", "PRP", "RF"]
    assert C.loc["saline"].sum() == 0
    assert C.loc["MN + PRP"].tolist() == [1.0, 1.0, 0.0]
    with pytest.raises(InputError, match="inactive='placebo'"):
        component_matrix(["MN", "MN+PRP"], inactive="placebo")


def test_shapes():
    res = quiet(component_meta, linde(True), "OR", inactive="placebo")
    tidy = res.tidy("random", exponentiate=True)
    assert list(tidy.columns[: len(TIDY_COLUMNS)]) == list(TIDY_COLUMNS)
    assert (tidy["estimate"] > 0).all()
    ard = res.to_ard("cnma", {"indication": "depression"})
    assert list(ard.columns) == list(ARD_COLUMNS)
    assert {"effect=component", "effect=combination"} <= {
        p for g in ard["group"] for p in g.split(";")
    }
