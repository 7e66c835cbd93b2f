"""Write the simulated data sets that splitface.R fits (run once; the CSVs are committed).

    /tmp/dev/bin/python tests/r/mixed/make_data.py

splitface.csv: a split-face trial, 40 patients x 2 sides x 4 visits (weeks 0, 4, 8, 12). One
side of each face gets microneedling alone ("MN"), the other one of two combinations ("PRP",
"RF"). Patient and side-within-patient random intercepts, a patient random slope in week.

singular.csv: 30 patients x 4 visits with no between-patient variation at all (each patient's
residuals are centred on zero), so the patient variance is estimated at zero: a singular fit
in lme4 and here.

gee.csv: 150 subjects x 4 visits with a binary and an ordinal (0-3) outcome whose marginal
models are known (see correlated_outcomes), for the GEE checks.
"""

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent


def splitface(seed: int = 20240611) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    weeks = np.array([0, 4, 8, 12])
    effect = {"MN": 0.0, "PRP": -0.25, "RF": -0.15}  # extra change per week vs MN
    for i in range(40):
        patient = f"P{i + 1:02d}"
        combo = "PRP" if i % 2 == 0 else "RF"
        arms = {"L": "MN", "R": combo} if rng.random() < 0.5 else {"L": combo, "R": "MN"}
        u_int, u_slope = rng.normal(0, 4.0), rng.normal(0, 0.12)
        baseline_age = rng.integers(18, 60)
        for side, arm in arms.items():
            u_side = rng.normal(0, 2.0)
            for w in weeks:
                score = (
                    30 + u_int + u_side + (-0.5 + u_slope + effect[arm]) * w + rng.normal(0, 2.5)
                )
                rows.append(
                    {
                        "patient": patient,
                        "side": side,
                        "unit": f"{patient}-{side}",
                        "arm": arm,
                        "week": int(w),
                        "visit": f"week_{w:02d}",
                        "age": int(baseline_age),
                        "score": round(float(score), 4),
                    }
                )
    df = pd.DataFrame(rows)
    base = df[df["week"] == 0].set_index("unit")["score"]
    df["baseline"] = df["unit"].map(base)
    return df


def singular(seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(30):
        arm = "A" if i % 2 == 0 else "B"
        noise = rng.normal(0, 1.0, 4)
        noise -= noise.mean()
        for w, e in zip((0, 4, 8, 12), noise, strict=True):
            score = 10 + 0.3 * w + (0.5 if arm == "B" else 0.0) + e
            rows.append({"patient": f"S{i:02d}", "arm": arm, "week": w, "score": round(score, 4)})
    return pd.DataFrame(rows)


def correlated_outcomes(
    n: int, seed: int, beta=(0.3, 0.8), alphas=(1.0, -0.5, -2.0), rho: float = 0.4
) -> pd.DataFrame:
    """Repeated binary and ordinal outcomes with exact marginal logit models.

    A Gaussian copula with exchangeable correlation ``rho`` links a subject's visits; the
    margins are ``P(grade > k) = expit(alphas[k] + beta_time * time + beta_arm * arm)`` and
    ``responder = grade >= 2``, so ``logit P(responder) = alphas[1] + ...``.
    """
    from scipy import stats

    rng = np.random.default_rng(seed)
    t = 4
    subject = np.repeat(np.arange(n), t)
    time = np.tile(np.arange(t), n)
    arm = np.repeat(rng.integers(0, 2, n), t)
    z = np.sqrt(rho) * np.repeat(rng.normal(size=n), t) + np.sqrt(1 - rho) * rng.normal(size=n * t)
    u = stats.norm.cdf(z)
    lin = beta[0] * time + beta[1] * arm
    p_above = 1 / (1 + np.exp(-(np.asarray(alphas)[None, :] + lin[:, None])))
    grade = (u[:, None] < p_above).sum(axis=1)
    return pd.DataFrame(
        {
            "subject": [f"G{i:03d}" for i in subject],
            "time": time,
            "visit": [f"v{k}" for k in time],
            "arm": np.where(arm == 1, "combo", "control"),
            "grade": grade,
            "responder": (grade >= 2).astype(int),
        }
    )


if __name__ == "__main__":
    correlated_outcomes(150, seed=11).to_csv(HERE / "gee.csv", index=False)
    splitface().to_csv(HERE / "splitface.csv", index=False)
    singular().to_csv(HERE / "singular.csv", index=False)
