"""Rater agreement: ICC (pingouin) and weighted kappa (statsmodels), checked by arithmetic.

R's irr/psych packages are not installed, so the reference values are computed in the tests
from their textbook formulas (Shrout & Fleiss 1979 mean squares; Cohen 1968 weighted kappa).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from outcomes.errors import InputError
from outcomes.models.agreement import fleiss_kappa, icc, weighted_kappa

# Shrout & Fleiss (1979) table 2: 6 targets rated by 4 judges
SF = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]])


def long(mat: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"photo": f"t{i}", "rater": f"J{j + 1}", "grade": float(mat[i, j])}
            for i, j in itertools.product(range(mat.shape[0]), range(mat.shape[1]))
        ]
    )


def test_icc_equals_shrout_fleiss_formulas():
    n, k = SF.shape
    grand = SF.mean()
    ss_total = ((SF - grand) ** 2).sum()
    ss_rows = k * ((SF.mean(axis=1) - grand) ** 2).sum()
    ss_cols = n * ((SF.mean(axis=0) - grand) ** 2).sum()
    msr = ss_rows / (n - 1)
    msc = ss_cols / (k - 1)
    mse = (ss_total - ss_rows - ss_cols) / ((n - 1) * (k - 1))
    msw = (ss_total - ss_rows) / (n * (k - 1))
    expected = {
        "ICC1": (msr - msw) / (msr + (k - 1) * msw),
        "ICC2": (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n),
        "ICC3": (msr - mse) / (msr + (k - 1) * mse),
        "ICC1k": (msr - msw) / msr,
        "ICC2k": (msr - mse) / (msr + (msc - mse) / n),
        "ICC3k": (msr - mse) / msr,
    }
    out = icc(long(SF), targets="photo", raters="rater", ratings="grade").set_index("term")
    for name, value in expected.items():
        assert out.loc[name, "estimate"] == pytest.approx(value, rel=1e-10), name
    assert out.loc["ICC3", "statistic"] == pytest.approx(msr / mse)
    assert (out["n_targets"] == 6).all() and (out["n_raters"] == 4).all()
    # ICC3 interval (Shrout & Fleiss): F_L = F / F(0.975; n-1, (n-1)(k-1)), unrounded
    from scipy.stats import f

    f3 = msr / mse
    f_low = f3 / f.ppf(0.975, n - 1, (n - 1) * (k - 1))
    f_up = f3 * f.ppf(0.975, (n - 1) * (k - 1), n - 1)
    assert out.loc["ICC3", "conf_low"] == pytest.approx((f_low - 1) / (f_low + k - 1), rel=1e-10)
    assert out.loc["ICC3", "conf_high"] == pytest.approx((f_up - 1) / (f_up + k - 1), rel=1e-10)
    assert out.loc["ICC2", "mcgraw_wong"] == "ICC(A,1)"


def _kappa(a: np.ndarray, b: np.ndarray, cats: list[float], power: int | None) -> float:
    """Cohen's weighted kappa: 1 - sum(v * observed) / sum(v * expected)."""
    k = len(cats)
    idx = {c: i for i, c in enumerate(cats)}
    obs = np.zeros((k, k))
    for x, y in zip(a, b, strict=True):
        obs[idx[x], idx[y]] += 1
    obs /= obs.sum()
    exp = np.outer(obs.sum(axis=1), obs.sum(axis=0))
    i, j = np.indices((k, k))
    v = (i != j).astype(float) if power is None else (np.abs(i - j) / (k - 1)) ** power
    return 1 - (v * obs).sum() / (v * exp).sum()


@pytest.mark.parametrize(("weights", "power"), [(None, None), ("linear", 1), ("quadratic", 2)])
def test_pairwise_kappa_equals_cohen_formula(weights, power):
    rng = np.random.default_rng(5)
    truth = rng.integers(1, 5, 60)
    mat = np.column_stack([np.clip(truth + rng.integers(-1, 2, 60), 1, 4) for _ in range(3)])
    out = weighted_kappa(
        long(mat), targets="photo", raters="rater", ratings="grade", weights=weights
    ).set_index("term")
    cats = [1.0, 2.0, 3.0, 4.0]
    pairs = {}
    for a, b in itertools.combinations(range(3), 2):
        pairs[f"J{a + 1} vs J{b + 1}"] = _kappa(mat[:, a], mat[:, b], cats, power)
        assert out.loc[f"J{a + 1} vs J{b + 1}", "estimate"] == pytest.approx(
            pairs[f"J{a + 1} vs J{b + 1}"], rel=1e-10
        )
    assert out.loc["mean (Light)", "estimate"] == pytest.approx(np.mean(list(pairs.values())))
    assert (out.loc[list(pairs), "std_error"] > 0).all()


def test_declared_but_unused_category_changes_linear_distances():
    mat = np.array([[1, 1], [2, 1], [2, 2], [4, 4], [4, 2], [1, 2]])
    observed = weighted_kappa(long(mat), targets="photo", raters="rater", ratings="grade")
    declared = weighted_kappa(
        long(mat), targets="photo", raters="rater", ratings="grade", categories=[1, 2, 3, 4]
    )
    assert observed["estimate"].iloc[0] == pytest.approx(_kappa(mat[:, 0], mat[:, 1], [1, 2, 4], 1))
    assert declared["estimate"].iloc[0] == pytest.approx(
        _kappa(mat[:, 0], mat[:, 1], [1, 2, 3, 4], 1)
    )


def test_fleiss_kappa_equals_formula():
    rng = np.random.default_rng(9)
    mat = rng.integers(1, 4, (40, 3))
    n, m = mat.shape
    counts = np.stack([(mat == c).sum(axis=1) for c in (1, 2, 3)], axis=1)
    p = counts.sum(axis=0) / (n * m)
    p_i = ((counts**2).sum(axis=1) - m) / (m * (m - 1))
    expected = (p_i.mean() - (p**2).sum()) / (1 - (p**2).sum())
    out = fleiss_kappa(long(mat), targets="photo", raters="rater", ratings="grade")
    assert out["estimate"].item() == pytest.approx(expected, rel=1e-10)


def test_simulated_blinded_photo_ratings_agree():
    from outcomes.simulate.trial import simulate_trial

    a = simulate_trial(seed=4, design="split_body").tables["assessments"]
    photos = a[a["rater_role"] == "blinded_photo_rater"]
    kap = weighted_kappa(
        photos,
        targets=["unit_id", "visit"],
        raters="rater_id",
        ratings="value",
        categories=[1, 2, 3, 4],
    )
    # the simulator's raters are one grade off with probability 0.15 each: strong agreement
    assert kap["estimate"].iloc[0] > 0.6
    out = icc(photos, targets=["unit_id", "visit"], raters="rater_id", ratings="value")
    assert out.set_index("term").loc["ICC2", "estimate"] > 0.6


def test_agreement_input_errors():
    df = long(SF)
    with pytest.raises(InputError, match="not in the ratings"):
        icc(df, targets="photo", raters="judge", ratings="grade")
    with pytest.raises(InputError, match="rated twice"):
        weighted_kappa(
            pd.concat([df, df.iloc[:1]]), targets="photo", raters="rater", ratings="grade"
        )
    with pytest.raises(InputError, match="not among categories"):
        weighted_kappa(df, targets="photo", raters="rater", ratings="grade", categories=[1, 2])
    with pytest.raises(InputError, match="at least two raters"):
        icc(df[df["rater"] == "J1"], targets="photo", raters="rater", ratings="grade")
