"""Recovery: clmm and glmm find the true treatment effect, and their 95% Wald intervals cover it.

Simulated parallel trials: 80 subjects (half on MN + PRP), 4 visits, a subject random intercept
(SD 1), treatment effect 0.7 on the logit scale (conditional, the model's parameter). The slow
studies (500 trials each, ``nox -s recovery``) check coverage within 93-97%; the default test
checks the estimate's mean over 40 trials.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import special

from outcomes.models.glmm import clmm, glmm

TRUE_ARM = 0.7
THRESHOLDS = np.array([-1.0, 0.5, 2.0])
TERM = "arm[T.PRP]"


def simulate(seed: int, n: int = 80, sd: float = 1.0) -> pd.DataFrame:
    """One trial: grade (1-4) and responder (0/1) per subject x visit."""
    rng = np.random.default_rng(seed)
    subject = np.repeat(np.arange(n), 4)
    visit = np.tile(np.arange(4), n)
    arm = (subject % 2).astype(float)
    eta = 0.3 * visit + TRUE_ARM * arm + rng.normal(0, sd, n)[subject]
    latent = eta + rng.logistic(size=len(eta))
    grade = 1 + (latent[:, None] > THRESHOLDS).sum(axis=1)
    responder = (rng.random(len(eta)) < special.expit(eta - 1.0)).astype(int)
    return pd.DataFrame(
        {
            "subject": subject,
            "visit": [f"v{k}" for k in visit],
            "arm": np.where(arm == 1, "PRP", "MN"),
            "grade": grade,
            "responder": responder,
        }
    )


def study(kind: str, n_trials: int, seed0: int) -> tuple[np.ndarray, np.ndarray]:
    """Estimates of the arm effect and whether each 95% interval covered the truth."""
    est, covered = [], []
    for seed in range(seed0, seed0 + n_trials):
        d = simulate(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if kind == "clmm":
                fit = clmm(d, "grade ~ visit + arm", groups="subject")
            else:
                fit = glmm(d, "responder ~ visit + arm", groups="subject")
        row = fit.fixed.set_index("term").loc[TERM]
        est.append(row["estimate"])
        covered.append(row["conf_low"] <= TRUE_ARM <= row["conf_high"])
    return np.array(est), np.array(covered)


@pytest.mark.parametrize("kind", ["clmm", "glmm"])
def test_treatment_effect_recovered(kind):
    est, _ = study(kind, 40, seed0=1000)
    # mean within 3 Monte-Carlo standard errors (plus the small-sample bias allowance)
    assert abs(est.mean() - TRUE_ARM) < 3 * est.std(ddof=1) / np.sqrt(len(est)) + 0.05


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["clmm", "glmm"])
def test_coverage_of_treatment_effect(kind):
    est, covered = study(kind, 500, seed0=1)
    print(f"{kind}: coverage {covered.mean():.3f}, mean estimate {est.mean():.4f}")
    assert 0.93 <= covered.mean() <= 0.97
    assert abs(est.mean() - TRUE_ARM) < 0.05
