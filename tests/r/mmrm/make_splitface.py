"""Write splitface.csv: a simulated split-face trial for the nlme::lme comparison.

60 patients; the two sides of each face get different arms (combination vs MN alone); four
visits; a patient random intercept (variance 4) shared by both sides plus an unstructured
covariance over visits within a side; about 10% of visits missing at random.
Run: python make_splitface.py (seeded: the same file every time).
"""

import numpy as np
import pandas as pd

rng = np.random.default_rng(20261207)
sigma = np.array(
    [[6.0, 3.0, 2.0, 1.0], [3.0, 7.0, 3.5, 2.5], [2.0, 3.5, 8.0, 4.0], [1.0, 2.5, 4.0, 9.0]]
)
means = {"MN": np.array([10.0, 8.0, 6.5, 5.5]), "MN+PRP": np.array([10.0, 7.0, 5.0, 3.5])}
rows = []
for p in range(60):
    b = rng.normal(0, 2.0)
    arms = ["MN", "MN+PRP"] if rng.random() < 0.5 else ["MN+PRP", "MN"]
    for side, arm in zip(["left", "right"], arms, strict=True):
        e = rng.multivariate_normal(np.zeros(4), sigma)
        for v in range(4):
            if v > 0 and rng.random() < 0.1:
                continue
            rows.append(
                {
                    "patient_id": f"P{p:03d}",
                    "unit_id": f"P{p:03d}-{side}",
                    "side": side,
                    "arm": arm,
                    "visit": f"Week {4 * (v + 1)}",
                    "visit_index": v + 1,
                    "score": round(means[arm][v] + b + e[v], 6),
                }
            )
pd.DataFrame(rows).to_csv("splitface.csv", index=False)
