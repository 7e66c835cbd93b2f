"""Recovery: simulate from the MMRM with known truth, fit, check estimates and CI coverage.

Data: two arms, four visits, an unstructured covariance over visits, and dropout at random
(MAR: a subject is more likely to leave after a poor score), which the likelihood handles
without imputation. The split-face version adds a patient random intercept shared by the two
sides (arms randomised to sides). The fast tests fit one large data set each; the slow ones
(``nox -s recovery``) fit hundreds and check that 95% Kenward-Roger intervals of the arm
difference at each visit cover the truth 95% of the time (binomial band, +/- 2.6 SE).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from outcomes.models.mmrm import mmrm

SIGMA = np.array(
    [[6.0, 3.0, 2.0, 1.5], [3.0, 7.0, 3.5, 2.5], [2.0, 3.5, 8.0, 4.5], [1.5, 2.5, 4.5, 10.0]]
)
MEANS = {
    "control": np.array([20.0, 18.0, 16.5, 15.5]),
    "active": np.array([20.0, 17.0, 15.0, 13.0]),
}
EFFECT = MEANS["active"] - MEANS["control"]
VISITS = ["Week 4", "Week 8", "Week 12", "Week 16"]


def simulate(n: int, rng: np.random.Generator, split_face: bool = False, tau: float = 2.0):
    """Long data from the model; MAR dropout (more likely after a score above 19)."""
    rows = []
    for i in range(n):
        arms = ["control", "active"] if split_face else [("control", "active")[i % 2]]
        b = rng.normal(0, tau) if split_face else 0.0
        if split_face:
            rng.shuffle(arms)
        for side, arm in enumerate(arms):
            e = rng.multivariate_normal(np.zeros(4), SIGMA)
            y = MEANS[arm] + b + e
            for v in range(4):
                rows.append(
                    {
                        "patient": f"P{i}",
                        "unit": f"P{i}-{side}",
                        "arm": arm,
                        "visit": VISITS[v],
                        "y": y[v],
                    }
                )
                if v < 3 and rng.random() < (0.25 if y[v] > 19 else 0.05):
                    break
    return pd.DataFrame(rows)


def _check_covariance(fit) -> None:
    """Each covariance parameter within 3.5 of its standard errors of the truth."""
    cp = fit.covariance_parameters.iloc[:10]
    z = (cp["estimate"] - SIGMA[np.tril_indices(4)]) / cp["std_error"]
    assert np.all(np.abs(z) < 3.5), z


def _effects(fit) -> pd.DataFrame:
    return fit.contrasts("arm", by="visit", ref="control").set_index("visit").loc[VISITS]


def test_parallel_recovery_one_large_trial():
    rng = np.random.default_rng(1)
    fit = mmrm(simulate(600, rng), "y ~ arm * visit", subject="unit", visit="visit")
    con = _effects(fit)
    z = (con["estimate"] - EFFECT) / con["std_error"]
    assert np.all(np.abs(z) < 3.5)
    _check_covariance(fit)


def test_splitface_recovery_one_large_trial():
    rng = np.random.default_rng(2)
    fit = mmrm(
        simulate(400, rng, split_face=True),
        "y ~ arm * visit",
        subject="unit",
        nested_in="patient",
        visit="visit",
    )
    con = _effects(fit)
    z = (con["estimate"] - EFFECT) / con["std_error"]
    assert np.all(np.abs(z) < 3.5)
    assert fit.random_intercept_variance == pytest.approx(4.0, rel=0.3)
    _check_covariance(fit)


def _coverage(n_trials: int, n: int, split_face: bool, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    hits, est = [], []
    for _ in range(n_trials):
        data = simulate(n, rng, split_face=split_face)
        fit = mmrm(
            data,
            "y ~ arm * visit",
            subject="unit",
            visit="visit",
            nested_in="patient" if split_face else None,
        )
        con = _effects(fit)
        hits.append(((con["conf_low"] <= EFFECT) & (con["conf_high"] >= EFFECT)).to_numpy())
        est.append(con["estimate"].to_numpy())
    return np.array(hits), np.array(est)


@pytest.mark.slow
def test_parallel_kenward_roger_coverage():
    n_trials = 400
    hits, est = _coverage(n_trials, 60, split_face=False, seed=11)
    band = 2.6 * np.sqrt(0.95 * 0.05 / n_trials)
    cover = hits.mean(axis=0)
    assert np.all(np.abs(cover - 0.95) < band), cover
    bias = est.mean(axis=0) - EFFECT
    assert np.all(np.abs(bias) < 3 * est.std(axis=0) / np.sqrt(n_trials)), bias


@pytest.mark.slow
def test_splitface_kenward_roger_coverage():
    n_trials = 300
    hits, est = _coverage(n_trials, 40, split_face=True, seed=12)
    band = 2.6 * np.sqrt(0.95 * 0.05 / n_trials)
    cover = hits.mean(axis=0)
    assert np.all(np.abs(cover - 0.95) < band), cover
    bias = est.mean(axis=0) - EFFECT
    assert np.all(np.abs(bias) < 3 * est.std(axis=0) / np.sqrt(n_trials)), bias
