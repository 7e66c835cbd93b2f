"""Slow recovery check: propensity-weighted vs naive registry comparisons over many registries.

Run with ``pytest -m slow tests/test_comparison_recovery.py`` (``nox -s recovery``).
"""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

from outcomes.comparisons.comparison import compare
from outcomes.simulate.registry import simulate_registry

SEEDS = range(101, 111)


@pytest.mark.slow
def test_weighted_estimates_are_unbiased_and_cover_naive_do_not():
    rows = []
    for seed in SEEDS:
        # 12,000 subjects: the calibrated registry's percent improvement spreads more (SD
        # about 22 points per arm, was about 15), so n grows by (22 / 15)^2 to keep the naive
        # bias as many standard errors away as before
        registry = simulate_registry(seed=seed, n_subjects=12000)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = compare(registry, ae_outcomes=())
        t = res.table[res.table["measure"] == "mean_difference"].copy()
        t["truth"] = t["comparison"].str.split(" vs ").str[0].map(registry.truth["effects"])
        rows.append(t.assign(seed=seed))
    d = pd.concat(rows, ignore_index=True)
    d["error"] = d["estimate"] - d["truth"]
    d["covered"] = (d["conf_low"] < d["truth"]) & (d["truth"] < d["conf_high"])
    summary = d.groupby(["adjustment", "comparison"]).agg(
        bias=("error", "mean"), coverage=("covered", "mean")
    )
    print(summary)
    weighted = summary.loc["weighted"]
    naive = summary.loc["naive"]
    # 10 registries x 2 indications: the mean error of the weighted estimate has an SE of
    # about 1.1 / sqrt(20) = 0.25 points; allow 3 SE
    assert (weighted["bias"].abs() < 0.75).all(), weighted
    # nominal 95% intervals (t, 11 df, 12 clinics): at least 16 of 20 cover the truth
    assert (weighted["coverage"] >= 0.8).all(), weighted
    # confounding by severity: MN+RF goes to severe cases, so the naive estimate is too low
    assert naive.loc["MN+RF vs MN", "bias"] < -2.5
    assert naive.loc["MN+RF vs MN", "coverage"] < 0.5
