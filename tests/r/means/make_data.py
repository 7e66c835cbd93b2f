"""Write the simulated data sets that means.R fits (run once; the CSVs are committed).

    python tests/r/means/make_data.py

parallel.csv: a parallel trial, 60 patients in four arms ("MN", "PRP", "RF", "TCA") x three
visits, a patient random intercept; about 10% of visits are missing (so Satterthwaite df differ
between contrasts).

binary.csv: 300 patients in three arms with a binary response (logistic in arm and age).
"""

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent
ARMS = ["MN", "PRP", "RF", "TCA"]
VISITS = ["week_04", "week_08", "week_12"]


def parallel(seed: int = 20261207) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    arm_effect = {"MN": 0.0, "PRP": -2.0, "RF": -1.0, "TCA": -3.5}
    rows = []
    for i in range(60):
        arm = ARMS[i % 4]
        u = rng.normal(0, 5)
        for v, visit in enumerate(VISITS):
            score = 50 - 3 * v + arm_effect[arm] * (1 + v / 2) + u + rng.normal(0, 4)
            rows.append({"patient": f"P{i:02d}", "arm": arm, "visit": visit, "score": score})
    d = pd.DataFrame(rows)
    return d.loc[rng.random(len(d)) > 0.1].reset_index(drop=True)


def binary(seed: int = 20261208) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    arm = rng.choice(ARMS[:3], size=300)
    age = rng.normal(45, 12, size=300).round(1)
    eta = -0.3 + pd.Series(arm).map({"MN": 0.0, "PRP": 0.7, "RF": 0.3}).to_numpy()
    eta += 0.02 * (age - 45)
    y = (rng.random(300) < 1 / (1 + np.exp(-eta))).astype(int)
    return pd.DataFrame({"arm": arm, "age": age, "y": y})


if __name__ == "__main__":
    parallel().to_csv(HERE / "parallel.csv", index=False)
    binary().to_csv(HERE / "binary.csv", index=False)
