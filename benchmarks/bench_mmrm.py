"""Benchmark: MMRM (unstructured covariance, REML, Kenward-Roger) beside lme4 on the same data.

Two data sets:

- the CAMIS FEV data (200 subjects x 4 visits, 537 observed rows),
  ``FEV1 ~ RACE + SEX + ARMCD * AVISIT + FEV1_BL``;
- a simulated 1,000-subject x 10-visit trial (unstructured covariance, about 15% of visits
  missing), ``y ~ arm * visit + baseline`` (``--quick``: 200 subjects).

``outcomes.models.mmrm.mmrm`` is timed for the whole call (fit, Kenward-Roger, result). When
R with lme4 is installed, lme4's ``lmer`` is timed inside R (``system.time``, after loading)
on the same CSV for the two models the MMRM literature compares with: the unstructured
covariance written as visit random effects ``(0 + visit | subject)`` (lme4 cannot fit a
residual covariance; this is the closest it gets) and a random intercept and slope
``(1 + time | subject)``. The machine is shared: the load average is written in the notes.

    python benchmarks/run.py mmrm            full size
    python benchmarks/run.py mmrm --quick    200 subjects for the simulated trial
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from measure import measure

from outcomes.models.mmrm import mmrm

FEV = Path(__file__).parents[1] / "tests" / "r" / "mmrm" / "fev_data.csv"

R_SCRIPT = """
suppressPackageStartupMessages(library(lme4))
d <- read.csv("{path}")
d <- d[!is.na(d${y}), ]
d${visit} <- factor(d${visit})
ctrl <- lmerControl(check.nobs.vs.nRE = "ignore", check.nobs.vs.nlev = "ignore",
                    calc.derivs = FALSE)
t1 <- system.time(m1 <- lmer({y} ~ {fixed} + (0 + {visit} | {subject}), d, control = ctrl))
t2 <- system.time(m2 <- lmer({y} ~ {fixed} + (1 + {time} | {subject}), d))
cat(t1[["elapsed"]], t2[["elapsed"]], "\\n")
"""


def simulate_trial(n: int, m: int = 10, seed: int = 1) -> pd.DataFrame:
    """``n`` subjects x ``m`` visits, unstructured (AR-like, heterogeneous) covariance."""
    rng = np.random.default_rng(seed)
    lag = np.abs(np.subtract.outer(np.arange(m), np.arange(m)))
    sd = np.linspace(2.0, 4.0, m)
    sigma = np.outer(sd, sd) * (0.3 + 0.6 * 0.8**lag) / 0.9
    arm = rng.integers(0, 2, n)
    base = rng.normal(20, 3, n)
    e = rng.multivariate_normal(np.zeros(m), sigma, size=n)
    rows = []
    for i in range(n):
        for v in range(m):
            if v > 0 and rng.random() < 0.15:
                continue
            y = base[i] * 0.5 + 10 - 0.4 * v - 0.3 * v * arm[i] + e[i, v]
            rows.append(
                (f"S{i:04d}", f"V{v + 1}", v + 1, ("placebo", "active")[arm[i]], base[i], y)
            )
    return pd.DataFrame(rows, columns=["subject", "visit", "time", "arm", "baseline", "y"])


def _fit(df: pd.DataFrame, formula: str, subject: str, visit: str) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = mmrm(df, formula, subject=subject, visit=visit, cov="us", ddf="kenward-roger")
        fit.tidy()
    return {"loglik": fit.loglik, "converged": fit.converged}


def _r_times(df: pd.DataFrame, **names: str) -> tuple[float, float] | None:
    if shutil.which("Rscript") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.csv"
        df.to_csv(path, index=False)
        proc = subprocess.run(
            ["Rscript", "-e", R_SCRIPT.format(path=path, **names)],
            capture_output=True,
            text=True,
            check=False,
            timeout=1200,
        )
    if proc.returncode != 0:
        return None
    first, second = proc.stdout.split()[:2]
    return float(first), float(second)


def _case(label: str, df: pd.DataFrame, formula: str, r_names: dict) -> list[dict]:
    load = f"load {os.getloadavg()[0]:.1f}"
    subject, visit = r_names["subject"], r_names["visit"]
    best = min(
        (measure(_fit, df, formula, subject, visit) for _ in range(3)), key=lambda r: r["seconds"]
    )
    rows = [
        {
            "name": f"mmrm us/KR {label}",
            "seconds": best["seconds"],
            "peak_mb": best["peak_mb"],
            "note": f"best of 3; converged={best['extra']['converged']}; {load}",
        }
    ]
    r = _r_times(df, **r_names)
    if r is not None:
        rows.append(
            {
                "name": f"lme4 (0 + visit | subject) {label}",
                "seconds": r[0],
                "peak_mb": float("nan"),
                "note": f"lmer in R; {load}",
            }
        )
        rows.append(
            {
                "name": f"lme4 (1 + time | subject) {label}",
                "seconds": r[1],
                "peak_mb": float("nan"),
                "note": f"lmer in R; {load}",
            }
        )
    return rows


def run(quick: bool) -> list[dict]:
    """FEV data and a simulated trial, each beside lme4."""
    fev = pd.read_csv(FEV)
    # warm up once in this process (BLAS controller, caches), as R has lme4 loaded before
    # system.time; the timed calls run in forked children that inherit it
    _fit(fev, "FEV1 ~ ARMCD", "USUBJID", "AVISIT")
    rows = _case(
        "FEV (200 x 4)",
        fev,
        "FEV1 ~ RACE + SEX + ARMCD * AVISIT + FEV1_BL",
        {
            "y": "FEV1",
            "fixed": "RACE + SEX + ARMCD * AVISIT + FEV1_BL",
            "visit": "AVISIT",
            "subject": "USUBJID",
            "time": "VISITN",
        },
    )
    n = 200 if quick else 1000
    sim = simulate_trial(n)
    rows += _case(
        f"simulated ({n} x 10)",
        sim,
        "y ~ arm * visit + baseline",
        {
            "y": "y",
            "fixed": "arm * visit + baseline",
            "visit": "visit",
            "subject": "subject",
            "time": "time",
        },
    )
    return rows
