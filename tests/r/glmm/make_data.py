"""Write the simulated split-face grades used by the GLMM reference numbers (fixed seed).

Run from the repository root:  python tests/r/glmm/make_data.py
then:                         Rscript tests/r/glmm/reference.R

80 patients; each face has two sides (left/right), one randomised to MN + PRP and the other
to MN alone; the qualitative grade (1-4, lower is better) is scored at weeks 4, 8, 12 and 24.
Latent scale: patient and side-within-patient random intercepts (SD 1.2 and 0.6), a grade
threshold model, and a PRP effect growing over visits. ``responder`` is ``grade <= 2``.
Three grades are missing (set to empty) so that dropped rows are exercised.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

OUT = Path(__file__).parent / "splitface_grades.csv"


def simulate(n_patients: int = 80, seed: int = 17) -> pd.DataFrame:
    """One row per patient x side x visit."""
    rng = np.random.default_rng(seed)
    weeks = np.array([4, 8, 12, 24])
    thresholds = np.array([-1.5, 0.2, 1.8])
    rows = []
    for p in range(n_patients):
        b_patient = rng.normal(0, 1.2)
        prp_side = rng.choice(["L", "R"])
        for side in ("L", "R"):
            b_side = rng.normal(0, 0.6)
            arm = "PRP" if side == prp_side else "MN"
            for k, week in enumerate(weeks):
                eta = -0.35 * k - (0.4 + 0.25 * k) * (arm == "PRP") + b_patient + b_side
                latent = eta + rng.logistic()
                grade = 1 + int(np.sum(latent > thresholds))
                rows.append(
                    {
                        "patient": f"P{p + 1:03d}",
                        "side": side,
                        "arm": arm,
                        "week": int(week),
                        "visit": f"week_{week:02d}",
                        "grade": grade,
                    }
                )
    d = pd.DataFrame(rows)
    d["responder"] = (d["grade"] <= 2).astype("Int64")
    missing = rng.choice(len(d), size=3, replace=False)
    d["grade"] = d["grade"].astype("Int64")
    d.loc[missing, "grade"] = pd.NA
    d.loc[missing, "responder"] = pd.NA
    return d


if __name__ == "__main__":
    simulate().to_csv(OUT, index=False)
