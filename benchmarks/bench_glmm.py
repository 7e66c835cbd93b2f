"""Benchmark: GLMMs at registry size, 20,000 subjects x 5 visits, one random intercept.

``responder ~ visit * arm`` (binomial, logit) with :func:`outcomes.models.glmm.glmm` and
``grade ~ visit * arm`` (4 ordered grades, logit) with :func:`outcomes.models.glmm.clmm`,
both Laplace. When R is installed, the same data are fitted with ``lme4::glmer`` and
``ordinal::clmm`` (defaults; timed inside R with ``system.time``, elapsed and user CPU); those
rows have no memory figure. The machine may be shared: the CPU seconds are the steadier figure.

    python benchmarks/run.py glmm            full size
    python benchmarks/run.py glmm --quick    2,000 subjects
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from measure import measure

R_SCRIPT = """
suppressPackageStartupMessages({{library(lme4); library(ordinal)}})
d <- read.csv("{path}")
d$visit <- factor(d$visit); d$arm <- factor(d$arm); d$subject <- factor(d$subject)
d$grade_f <- factor(d$grade, ordered = TRUE)
t1 <- system.time(m1 <- glmer(responder ~ visit * arm + (1 | subject), d, binomial))
t2 <- system.time(m2 <- clmm(grade_f ~ visit * arm + (1 | subject), data = d))
cat(t1[["elapsed"]], t1[["user.self"]], as.numeric(logLik(m1)),
    t2[["elapsed"]], t2[["user.self"]], as.numeric(logLik(m2)), "\\n")
"""


def make_data(n_subjects: int, seed: int = 1) -> pd.DataFrame:
    """Two arms, 5 visits, subject random intercept (SD 1); a 0/1 responder and a 1-4 grade."""
    rng = np.random.default_rng(seed)
    visits = np.arange(5)
    subject = np.repeat(np.arange(n_subjects), len(visits))
    visit = np.tile(visits, n_subjects)
    arm = np.repeat(rng.integers(0, 2, n_subjects), len(visits))
    eta = -0.3 * visit - 0.5 * arm - 0.1 * visit * arm + np.repeat(rng.normal(0, 1, n_subjects), 5)
    latent = eta + rng.logistic(size=len(eta))
    grade = 1 + (latent[:, None] > np.array([-1.5, 0.0, 1.5])).sum(axis=1)
    responder = (rng.random(len(eta)) < 1 / (1 + np.exp(-(0.2 + eta)))).astype(int)
    return pd.DataFrame(
        {
            "subject": subject,
            "visit": [f"v{k}" for k in visit],
            "arm": np.where(arm == 1, "PRP", "MN"),
            "grade": grade,
            "responder": responder,
        }
    )


def _fit(kind: str, df: pd.DataFrame) -> dict:
    from outcomes.models.glmm import clmm, glmm

    cpu = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "glmm":
            fit = glmm(df, "responder ~ visit * arm", groups="subject")
        else:
            fit = clmm(df, "grade ~ visit * arm", groups="subject")
    return {"loglik": fit.loglik, "converged": fit.converged, "cpu": time.process_time() - cpu}


def _r_fit(df: pd.DataFrame) -> list[float] | None:
    """Elapsed and CPU seconds and logLik of glmer and clmm, or None without R."""
    if shutil.which("Rscript") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.csv"
        df.to_csv(path, index=False)
        try:
            proc = subprocess.run(
                ["Rscript", "-e", R_SCRIPT.format(path=path)],
                capture_output=True,
                text=True,
                check=False,
                timeout=1800,
            )
        except subprocess.TimeoutExpired:
            return None
    if proc.returncode != 0:
        return None
    return [float(v) for v in proc.stdout.split()[-6:]]


def run(quick: bool) -> list[dict]:
    """Time both fits (and R's, when R is there) on the same data."""
    n_subjects = 2000 if quick else 20000
    df = make_data(n_subjects)
    rows = []
    for kind, label in (("glmm", "binomial glmm"), ("clmm", "clmm (4 grades)")):
        res = measure(_fit, kind, df)
        extra = res["extra"]
        rows.append(
            {
                "name": f"{label}, {len(df):,} rows, Laplace",
                "seconds": res["seconds"],
                "peak_mb": res["peak_mb"],
                "note": f"CPU {extra['cpu']:.1f} s; logLik {extra['loglik']:.2f}, "
                f"converged {extra['converged']}",
            }
        )
    r_fit = _r_fit(df)
    if r_fit is not None:
        for (elapsed, cpu, loglik), label in zip(
            (r_fit[:3], r_fit[3:]), ("R lme4::glmer", "R ordinal::clmm"), strict=True
        ):
            rows.append(
                {
                    "name": f"{label} same model, {len(df):,} rows (reference)",
                    "seconds": elapsed,
                    "peak_mb": float("nan"),
                    "note": f"CPU {cpu:.1f} s; logLik {loglik:.2f}; system.time() inside R",
                }
            )
    return rows
