"""Benchmark: a random-slope linear mixed model on 30,000 rows (5,000 patients x 6 visits).

``score ~ week * arm`` with ``(week | patient)``, fitted by :func:`outcomes.models.lmm.fit.lmm`
with the statsmodels engine (statsmodels MixedLM, then refined on lme4's profiled deviance,
plus Satterthwaite's derivatives). When R with lme4 is installed, the same data are also
fitted once with ``lmer`` (timed inside R with ``system.time``) for comparison; that row has
no memory figure.

    python benchmarks/run.py mixed            full size
    python benchmarks/run.py mixed --quick    500 patients
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from measure import measure

R_SCRIPT = """
suppressPackageStartupMessages(library(lme4))
d <- read.csv("{path}")
t <- system.time(m <- lmer(score ~ week * arm + (week | patient), d, REML = TRUE))
cat(t[["elapsed"]], as.numeric(logLik(m)), "\\n")
"""


def make_data(n_patients: int, seed: int = 1) -> pd.DataFrame:
    """Random intercept and slope per patient, 6 visits (weeks 0-20), two arms."""
    rng = np.random.default_rng(seed)
    weeks = np.arange(0, 24, 4, dtype=float)
    patient = np.repeat(np.arange(n_patients), len(weeks))
    week = np.tile(weeks, n_patients)
    arm = np.repeat(rng.integers(0, 2, n_patients), len(weeks))
    u0 = np.repeat(rng.normal(0, 4.0, n_patients), len(weeks))
    u1 = np.repeat(rng.normal(0, 0.15, n_patients), len(weeks))
    score = 30 + u0 + (-0.5 + u1 - 0.2 * arm) * week + rng.normal(0, 2.0, len(week))
    return pd.DataFrame(
        {
            "patient": [f"P{i:05d}" for i in patient],
            "week": week,
            "arm": np.where(arm == 1, "combo", "control"),
            "score": score,
        }
    )


def _fit(df: pd.DataFrame) -> dict:
    from outcomes.models.lmm.fit import lmm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = lmm(
            df, "score ~ week * arm", groups="patient", re_formula="~week", engine="statsmodels"
        )
        fixed = fit.fixed  # includes the Satterthwaite df
    return {"loglik": fit.loglik, "converged": fit.converged, "n_fixed": len(fixed)}


def _r_fit(df: pd.DataFrame) -> tuple[float, float] | None:
    """Seconds and logLik of lme4's fit of the same model, or None without R and lme4."""
    if shutil.which("Rscript") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.csv"
        df.to_csv(path, index=False)
        proc = subprocess.run(
            ["Rscript", "-e", R_SCRIPT.format(path=path)],
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
    if proc.returncode != 0:
        return None
    seconds, loglik = proc.stdout.split()[-2:]
    return float(seconds), float(loglik)


def run(quick: bool) -> list[dict]:
    """Time the statsmodels-engine fit (and lme4's, when R is there) on the same data."""
    n_patients = 500 if quick else 5000
    df = make_data(n_patients)
    res = measure(_fit, df)
    rows = [
        {
            "name": f"lmm random slope, {len(df):,} rows, statsmodels engine",
            "seconds": res["seconds"],
            "peak_mb": res["peak_mb"],
            "note": f"logLik {res['extra']['loglik']:.2f}, converged {res['extra']['converged']}",
        }
    ]
    r_fit = _r_fit(df)
    if r_fit is not None:
        rows.append(
            {
                "name": f"R lme4::lmer same model, {len(df):,} rows (reference)",
                "seconds": r_fit[0],
                "peak_mb": float("nan"),
                "note": f"logLik {r_fit[1]:.2f}; system.time() inside R, fit only",
            }
        )
    return rows
