"""outcomes.mmrm on what users meet: odd visits, gaps, ties, failures, bad arguments."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from outcomes.errors import ConvergenceWarning, InputError
from outcomes.models.mmrm import STRUCTURES, mmrm
from outcomes.models.mmrm.covariance import get_structure
from outcomes.results import ARD_COLUMNS, DIAGNOSTIC_COLUMNS, TIDY_COLUMNS

FEV = Path(__file__).parent / "r" / "mmrm" / "fev_data.csv"


@pytest.fixture(scope="module")
def fev() -> pd.DataFrame:
    return pd.read_csv(FEV)


def _ar1_data(n: int, m: int, seed: int, label: str = "Week {}") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    s = 4.0 * 0.6 ** np.abs(np.subtract.outer(np.arange(m), np.arange(m)))
    rows = []
    for i in range(n):
        e = rng.multivariate_normal(np.zeros(m), s)
        arm = "A" if i % 2 else "B"
        for v in range(m):
            rows.append(
                {
                    "id": f"S{i}",
                    "arm": arm,
                    "visit": label.format(4 * (v + 1)),
                    "y": 10 - v + (arm == "A") * 0.5 * v + e[v],
                }
            )
    return pd.DataFrame(rows)


def test_result_shapes(fev):
    fit = mmrm(fev, "FEV1 ~ ARMCD * AVISIT", subject="USUBJID", visit="AVISIT")
    assert list(fit.tidy().columns) == list(TIDY_COLUMNS)
    assert list(fit.diagnostics.columns) == list(DIAGNOSTIC_COLUMNS)
    ard = fit.to_ard("primary", {"endpoint": "FEV1"})
    assert list(ard.columns) == list(ARD_COLUMNS)
    assert set(ard["group"]) == {"endpoint=FEV1"}
    assert {"loglik", "aic", "bic"} <= set(ard["stat_name"])
    assert "cov:all|var[1]" in set(ard["term"])
    codes = set(fit.diagnostics["code"])
    assert {"missing_visits", "visit_order"} <= codes
    message = fit.diagnostics.set_index("code").loc["missing_visits", "message"]
    assert "nothing is imputed" in message and "263 rows were dropped" in message
    assert fit.aic == pytest.approx(-2 * fit.loglik + 2 * 10)
    assert fit.bic == pytest.approx(-2 * fit.loglik + np.log(197) * 10)
    assert "Kenward-Roger" in repr(fit)


def test_subjects_with_one_visit(fev):
    keep = fev.groupby("USUBJID").cumcount() == 0
    some = fev["USUBJID"].isin(fev["USUBJID"].unique()[:60])
    data = fev[~some | keep]
    fit = mmrm(data, "FEV1 ~ ARMCD * AVISIT", subject="USUBJID", visit="AVISIT")
    assert fit.converged
    assert np.all(np.isfinite(fit.tidy()["std_error"]))


def test_visit_never_observed_in_one_arm(fev):
    data = fev[~((fev["ARMCD"] == "TRT") & (fev["AVISIT"] == "VIS4"))]
    with pytest.warns(ConvergenceWarning, match="not estimable"):
        fit = mmrm(data, "FEV1 ~ ARMCD * AVISIT", subject="USUBJID", visit="AVISIT")
    tidy = fit.tidy().set_index("term")
    assert np.isnan(tidy.loc["ARMCD[T.TRT]:AVISIT[T.VIS4]", "estimate"])
    assert np.isfinite(tidy.loc["ARMCD[T.TRT]", "estimate"])
    assert "aliased_terms" in set(fit.diagnostics["code"])
    em = fit.emmeans("ARMCD", by="AVISIT").set_index(["AVISIT", "ARMCD"])
    assert np.isnan(em.loc[("VIS4", "TRT"), "estimate"])
    assert np.isfinite(em.loc[("VIS4", "PBO"), "estimate"])
    assert np.isfinite(em.loc[("VIS3", "TRT"), "df"])
    con = fit.contrasts("ARMCD", by="AVISIT").set_index("AVISIT")
    assert np.isnan(con.loc["VIS4", "estimate"]) and np.isfinite(con.loc["VIS1", "estimate"])


def test_fallback_structure_is_tried_and_recorded():
    # 4 subjects cannot support a 6 x 6 unstructured covariance
    data = _ar1_data(4, 6, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit = mmrm(data, "y ~ visit", subject="id", visit="visit", fallback=["ar1"])
        failed = mmrm(data, "y ~ visit", subject="id", visit="visit")
    assert fit.cov == "ar1" and fit.requested_cov == "us"
    assert fit.converged
    assert {"not_converged", "fallback_structure"} <= set(fit.diagnostics["code"])
    diag = failed.diagnostics.set_index("code")
    assert diag.loc["not_converged", "severity"] == "error"


def test_visit_labels_order_by_their_number():
    data = _ar1_data(40, 4, seed=2)  # Week 4, Week 8, Week 12, Week 16
    fit = mmrm(
        data.sample(frac=1, random_state=0),
        "y ~ visit",
        subject="id",
        visit="visit",
        cov="ar1",
        ddf="residual",
    )
    assert fit.data.visit_levels == ["Week 4", "Week 8", "Week 12", "Week 16"]
    assert "by the number in each label" in " ".join(fit.diagnostics["message"])
    months = _ar1_data(40, 4, seed=2, label="month_{}")
    fit_m = mmrm(months, "y ~ visit", subject="id", visit="visit", cov="ar1", ddf="residual")
    assert fit_m.data.visit_levels == ["month_4", "month_8", "month_12", "month_16"]
    assert fit_m.loglik == pytest.approx(fit.loglik, abs=1e-9)


def test_visit_order_argument_and_errors():
    data = _ar1_data(20, 3, seed=3, label="V{}")
    data["visit"] = data["visit"].map({"V4": "baseline", "V8": "mid", "V12": "end"})
    with pytest.raises(InputError, match="visit_order"):
        mmrm(data, "y ~ visit", subject="id", visit="visit", cov="ar1")
    fit = mmrm(
        data,
        "y ~ visit",
        subject="id",
        visit="visit",
        cov="ar1",
        visit_order=["baseline", "mid", "end"],
        ddf="residual",
    )
    assert fit.data.visit_levels == ["baseline", "mid", "end"]
    with pytest.raises(InputError, match=r"row\(s\) \[2, 5.*not in visit_order"):
        mmrm(data, "y ~ visit", subject="id", visit="visit", visit_order=["baseline", "mid"])
    twice = data.assign(
        visit=data["visit"].map({"baseline": "Week 1", "mid": "Day 1", "end": "Week 2"})
    )
    with pytest.raises(InputError, match="share numbers"):
        mmrm(twice, "y ~ visit", subject="id", visit="visit")


def test_tied_visits_name_the_rows():
    data = _ar1_data(10, 3, seed=4)
    dup = pd.concat([data, data.iloc[[4]]], ignore_index=True)
    with pytest.raises(InputError, match=r"rows \[4, 30\]"):
        mmrm(dup, "y ~ visit", subject="id", visit="visit")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ddf": "containment"}, "ddf="),
        ({"reml": False}, "REML"),
        ({"vcov": "empirical"}, "between-within"),
        ({"cov": "ar2"}, "Unknown covariance"),
        ({"subject": "patient"}, "not found"),
        ({"vcov": "robust"}, "vcov="),
    ],
)
def test_bad_arguments(kwargs, match):
    data = _ar1_data(10, 3, seed=5)
    args = {"subject": "id", "visit": "visit", **kwargs}
    with pytest.raises(InputError, match=match):
        mmrm(data, "y ~ visit", **args)


def test_cov_by_must_be_constant_within_subject():
    data = _ar1_data(10, 3, seed=6)
    data.loc[0, "arm"] = "B" if data.loc[0, "arm"] == "A" else "A"
    with pytest.raises(InputError, match="constant within each subject"):
        mmrm(data, "y ~ visit", subject="id", visit="visit", cov_by="arm")


def test_side_in_two_patients_is_refused():
    sf = pd.read_csv(Path(__file__).parent / "r" / "mmrm" / "splitface.csv")
    sf.loc[0, "patient_id"] = "P999"
    with pytest.raises(InputError, match="more than one"):
        mmrm(sf, "score ~ arm * visit", subject="unit_id", nested_in="patient_id", visit="visit")


@pytest.mark.parametrize("code", sorted(STRUCTURES))
def test_every_free_value_gives_a_positive_definite_covariance(code):
    rng = np.random.default_rng(7)
    structure = get_structure(code)
    m = 5
    for _ in range(50):
        free = rng.normal(0, 1.5, structure.n_params(m))
        sigma = structure.natural_cov(structure.free_to_natural(free, m), m)
        assert np.allclose(sigma, sigma.T)
        assert np.linalg.eigvalsh(sigma)[0] > 0


@pytest.mark.parametrize("code", sorted(STRUCTURES))
def test_structures_fit_fev(fev, code):
    fit = mmrm(
        fev,
        "FEV1 ~ ARMCD * AVISIT",
        subject="USUBJID",
        visit="AVISIT",
        cov=code,
        ddf="satterthwaite",
    )
    assert fit.converged
    cp = fit.covariance_parameters
    assert len(cp) == get_structure(code).n_params(4)
    assert np.all(np.isfinite(cp["std_error"]))


def test_unstructured_is_the_best_fit(fev):
    """us nests every other structure: its REML logLik is the highest."""
    logliks = {
        c: mmrm(
            fev, "FEV1 ~ ARMCD", subject="USUBJID", visit="AVISIT", cov=c, ddf="residual"
        ).loglik
        for c in STRUCTURES
    }
    assert max(logliks, key=logliks.get) == "us"


def _dense_v(lik, theta):
    """The full n x n covariance of the data (the thing the block-wise code never builds)."""
    lay = lik.layout
    sig, tau2 = lik.sigmas(theta)
    sig = np.asarray(sig)
    n = len(lay.y)
    block = lay.block_of_row
    same_block = block[:, None] == block[None, :]
    v = np.zeros((n, n), dtype=sig.dtype)
    for pat in lay.patterns:
        for rows in pat.rows:
            g = pat.groups
            sub = sig[g[:, None], pat.visits[:, None], pat.visits[None, :]] * pat.same_unit
            v[np.ix_(rows, rows)] = sub + tau2
    return v * same_block


@pytest.mark.parametrize(
    ("kwargs", "ddf"),
    [
        ({"cov": "ar1h", "cov_by": "arm"}, "kenward-roger"),
        ({"cov": "us", "nested_in": "patient_id"}, "kenward-roger"),
        ({"cov": "toeph", "nested_in": "patient_id"}, "kenward-roger"),
    ],
)
def test_blockwise_kenward_roger_equals_dense(kwargs, ddf):
    """Pattern-batched Kenward-Roger = the textbook n x n computation on a small data set."""
    sf = pd.read_csv(Path(__file__).parent / "r" / "mmrm" / "splitface.csv")
    sf = sf[sf["patient_id"].isin(sorted(sf["patient_id"].unique())[:25])]
    subject = "unit_id"
    if "cov_by" in kwargs:
        sf = sf[sf["unit_id"].str.endswith("left")]
        subject = "patient_id"
    fit = mmrm(sf, "score ~ arm * visit", subject=subject, visit="visit", ddf=ddf, **kwargs)
    lik, theta = fit.likelihood, fit.optim.theta
    x = lik.layout.x
    k = len(theta)
    vinv = np.linalg.inv(_dense_v(lik, theta))
    dv = []
    for j in range(k):
        tc = theta.astype(complex)
        tc[j] += 1e-30j
        dv.append(np.imag(_dense_v(lik, tc)) / 1e-30)
    d2 = np.zeros((k, k, *vinv.shape))
    for j in range(k):
        h = 1e-6 * max(1.0, abs(theta[j]))
        for sign in (1, -1):
            tt = theta.copy()
            tt[j] += sign * h
            for i in range(k):
                tc = tt.astype(complex)
                tc[i] += 1e-30j
                d2[i, j] += sign * np.imag(_dense_v(lik, tc)) / 1e-30 / (2 * h)
    phi = np.linalg.inv(x.T @ vinv @ x)
    w = fit.inference.w
    pk = [-(x.T @ vinv @ d @ vinv @ x) for d in dv]
    u = np.zeros_like(phi)
    for i in range(k):
        for j in range(k):
            q = x.T @ vinv @ dv[i] @ vinv @ dv[j] @ vinv @ x
            r = x.T @ vinv @ d2[i, j] @ vinv @ x
            u += w[i, j] * (q - pk[i] @ phi @ pk[j] - 0.25 * r)
    np.testing.assert_allclose(fit.inference.phi, phi, rtol=1e-8)
    np.testing.assert_allclose(fit.inference.p_list, np.array(pk), rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(fit.inference.vcov, phi + 2 * phi @ u @ phi, rtol=1e-6)


def test_singular_covariance_is_reported_not_raised():
    """Visit 2 = visit 1 + 1 exactly: no positive-definite optimum exists; the fit says so."""
    data = _ar1_data(40, 3, seed=8)
    first = data[data["visit"] == "Week 4"].set_index("id")["y"]
    second = data["visit"] == "Week 8"
    data.loc[second, "y"] = data.loc[second, "id"].map(first).to_numpy() + 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit = mmrm(data, "y ~ visit", subject="id", visit="visit", ddf="satterthwaite")
    codes = set(fit.diagnostics["code"])
    assert codes & {"not_converged", "covariance_not_pd"}
    assert "error" in set(fit.diagnostics["severity"]) or "covariance_not_pd" in codes
    tidy = fit.tidy()
    assert list(tidy["term"]) == ["Intercept", "visit[T.Week 8]", "visit[T.Week 12]"]
    assert tidy.loc[1, "estimate"] == pytest.approx(1.0)  # visit 2 - visit 1, exactly
