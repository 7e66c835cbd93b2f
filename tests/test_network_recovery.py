"""Recovery: simulated networks with known component effects (component_meta, network_meta).

Each simulated network has split-face and parallel trials (two- and three-arm) of treatments
built from components MN, PRP, RF, vitC and laser against an untreated control; patients'
outcomes are normal, split-face sides correlated (rho = 0.5, the r given to the model). The
95% CIs of the incremental component effects must cover the truth 93-97% of the time.
The quick version runs in the default suite; the slow one (``nox -s recovery``) uses more
networks and also between-study heterogeneity with the random-effects model.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from outcomes.errors import OutcomesWarning
from outcomes.models.network import component_meta, network_meta

TRUTH = {"MN": -0.50, "PRP": -0.30, "RF": -0.20, "laser": -0.60, "vitC": -0.10}
RHO = 0.5
SD = 1.0
# (treatments, split-face?) of each trial design, repeated ``reps`` times per network
DESIGNS = [
    (("untreated", "MN"), False),
    (("MN", "MN+PRP"), True),
    (("MN", "MN+PRP"), True),
    (("MN", "MN+RF"), True),
    (("MN+PRP", "MN+vitC"), True),
    (("laser", "MN"), True),
    (("MN", "MN+PRP", "MN+RF"), False),
    (("untreated", "laser"), False),
]


def effect(treatment: str) -> float:
    return 0.0 if treatment == "untreated" else sum(TRUTH[c] for c in treatment.split("+"))


def simulate(rng: np.random.Generator, reps: int, tau: float) -> pd.DataFrame:
    """Arm-level means, SDs and sizes of one simulated network."""
    rows = []
    for r in range(reps):
        for d, (arms, split) in enumerate(DESIGNS):
            study = f"s{r}_{d}"
            n = int(rng.integers(20, 41))
            k = len(arms)
            # study-specific effects: consistent random effects with correlation 1/2
            cov = tau**2 * (np.eye(k - 1) + np.ones((k - 1, k - 1))) / 2
            delta = np.concatenate([[0.0], rng.multivariate_normal(np.zeros(k - 1), cov)])
            mu = np.array([effect(a) for a in arms]) + delta + 3.0
            if split:
                c = SD**2 * (RHO * np.ones((k, k)) + (1 - RHO) * np.eye(k))
                y = rng.multivariate_normal(mu, c, size=n)
                cols = [y[:, j] for j in range(k)]
            else:
                cols = [rng.normal(m, SD, size=n) for m in mu]
            for a, y in zip(arms, cols, strict=True):
                rows.append(
                    {
                        "study": study,
                        "treatment": a,
                        "mean": y.mean(),
                        "sd": y.std(ddof=1),
                        "n": n,
                        "design": "split_body" if split else "parallel",
                    }
                )
    return pd.DataFrame(rows)


def coverage(n_networks: int, reps: int, tau: float, model: str, seed: int) -> pd.Series:
    rng = np.random.default_rng(seed)
    hits = []
    for _ in range(n_networks):
        data = simulate(rng, reps, tau)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OutcomesWarning)
            res = component_meta(data, "MD", inactive="untreated", r=RHO)
        comp = res.components[res.components["model"] == model].set_index("term")
        truth = pd.Series(TRUTH).reindex(comp.index)
        hits.append((comp["conf_low"] <= truth) & (truth <= comp["conf_high"]))
    return pd.DataFrame(hits).mean()


def test_component_effects_recovered_quick():
    cov = coverage(n_networks=120, reps=2, tau=0.0, model="common", seed=20261207)
    overall = cov.mean()
    assert 0.93 <= overall <= 0.97, cov.to_dict()
    assert (cov > 0.88).all(), cov.to_dict()


def test_split_face_r_sensitivity_moves_precision_not_estimate():
    rng = np.random.default_rng(7)
    data = simulate(rng, 1, 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OutcomesWarning)
        lo = network_meta(data, "MD", reference="MN", r=0.0)
        hi = network_meta(data, "MD", reference="MN", r=0.8)
    pair = ("MN+PRP", "MN")
    se = [
        r.effects.set_index(["model", "treatment", "comparator"]).loc[
            ("common", *pair), "std_error"
        ]
        for r in (lo, hi)
    ]
    assert se[1] < se[0]
    # a parallel trial's contrast does not depend on r
    par = [r.contrasts.set_index("study").loc["s0_0", "seTE"] for r in (lo, hi)]
    assert par[0] == par[1]


@pytest.mark.slow
@pytest.mark.parametrize("tau,model", [(0.0, "common"), (0.15, "random")])
def test_component_effects_recovered_slow(tau, model):
    cov = coverage(n_networks=1000, reps=4, tau=tau, model=model, seed=19)
    overall = cov.mean()
    assert 0.93 <= overall <= 0.97, cov.to_dict()
    assert (cov > 0.92).all(), cov.to_dict()
