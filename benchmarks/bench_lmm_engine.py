"""Speed and memory of the outcomes LMM engine against statsmodels MixedLM and mixedlm-rs.

The model is the registry workhorse ``y ~ time * arm + (time | id)`` fitted by REML, on
5,000 patients x 6 visits (30,000 rows) and 50,000 patients x 6 visits (300,000 rows), with
every engine given the same arrays (no formula parsing in the timings). Two shapes of data:

* ``fixed``: every patient seen at visits 0..5 (a trial-like fixed schedule);
* ``irregular``: visit times jittered per patient and about 20% of patients dropping out
  early, so nearly every patient has a distinct design (the registry case, where the engine
  cannot share factorisations between patients).

mixedlm-rs is timed when it is installed (``pip install mixedlm-rs``). statsmodels is timed
on the 30,000-row fixed-visit data only; it takes about 9 s there and 90 s at 300,000 rows on
an idle 2-core machine (the issue's numbers), and far longer on a shared one: set
``OUTCOMES_BENCH_STATSMODELS_ALL=1`` to time it on every data set. R lme4 was timed by hand
on the same data (:func:`make_data` written to CSV) with ``tests/r/engine/time_lme4.R``, which
records its timings: 1.2 s at 30,000 rows and 19 s at 300,000 rows (fixed visits) on the
shared development machine.
"""

from __future__ import annotations

import importlib.util
import os
import warnings

import numpy as np
import pandas as pd
from measure import measure

from outcomes.models.lmm.engine import fit
from outcomes.models.lmm.types import LmmProblem, RandomTerm

_STATSMODELS_ALL = os.environ.get("OUTCOMES_BENCH_STATSMODELS_ALL") == "1"


def make_data(n_patients: int, *, irregular: bool = False, seed: int = 20261125) -> pd.DataFrame:
    """Simulate ``n_patients`` x 6 visits from a random intercept and slope model."""
    rng = np.random.default_rng(seed)
    visits = 6
    ids = np.repeat(np.arange(n_patients), visits)
    time = np.tile(np.arange(visits, dtype=float), n_patients)
    arm = (np.arange(n_patients) % 2).astype(float)[ids]
    keep = np.ones(len(ids), dtype=bool)
    if irregular:
        time = time + rng.uniform(-0.4, 0.4, len(ids))
        time[time < 0] = 0.0
        last = np.where(rng.random(n_patients) < 0.2, rng.integers(2, visits, n_patients), visits)
        keep = np.tile(np.arange(visits), n_patients) < last[ids]
    b = rng.multivariate_normal([0, 0], [[4.0, 0.3], [0.3, 0.25]], n_patients)
    y = (
        10
        + 0.5 * time
        + 1.0 * arm
        - 0.4 * time * arm
        + b[ids, 0]
        + b[ids, 1] * time
        + rng.normal(0, 1.5, len(ids))
    )
    frame = pd.DataFrame({"id": ids, "time": time, "arm": arm, "y": y})
    return frame[keep].reset_index(drop=True)


def arrays(data: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Response, fixed design ``[1, time, arm, time:arm]``, random design ``[1, time]``, ids."""
    time, arm = data["time"].to_numpy(), data["arm"].to_numpy()
    x = np.column_stack([np.ones(len(data)), time, arm, time * arm])
    z = np.column_stack([np.ones(len(data)), time])
    return data["y"].to_numpy(), x, z, data["id"].to_numpy()


def fit_outcomes(data: pd.DataFrame) -> dict:
    """Fit with the outcomes engine; return the REML log-likelihood."""
    y, x, z, ids = arrays(data)
    codes, levels = pd.factorize(ids)
    term = RandomTerm("id", codes, np.asarray(levels), z, ("(Intercept)", "time"))
    result = fit(LmmProblem(y, x, ("(Intercept)", "time", "arm", "time:arm"), (term,)))
    return {"loglik": result.loglik, "converged": result.converged}


def fit_statsmodels(data: pd.DataFrame) -> dict:
    """Fit with statsmodels MixedLM (REML, its default optimisers)."""
    from statsmodels.regression.mixed_linear_model import MixedLM

    y, x, z, ids = arrays(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = MixedLM(y, x, groups=ids, exog_re=z).fit(reml=True)
    return {"loglik": float(result.llf), "converged": bool(result.converged)}


def fit_mixedlm_rs(data: pd.DataFrame) -> dict:
    """Fit with mixedlm-rs (REML), when installed."""
    import mixedlm_rs

    y, x, z, ids = arrays(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = mixedlm_rs.MixedLM(endog=y, exog=x, groups=ids, exog_re=z).fit()
    return {"loglik": float(result.llf), "converged": bool(result.converged)}


def run(quick: bool) -> list[dict]:
    """Time every engine at each size; ratios are relative to the outcomes engine.

    Each engine first fits a tiny data set in this process, so that the timed fits (in forked
    children) measure a refit, not imports and first-call set-up.
    """
    sizes = [1_000] if quick else [5_000, 50_000]
    have_rs = importlib.util.find_spec("mixedlm_rs") is not None
    tiny = make_data(30)
    for warm_up in (fit_outcomes, fit_statsmodels, *([fit_mixedlm_rs] if have_rs else [])):
        warm_up(tiny)
    rows: list[dict] = []
    for n_patients in sizes:
        for irregular in (False, True):
            data = make_data(n_patients, irregular=irregular)
            label = f"{len(data):,} rows, {'irregular' if irregular else 'fixed'} visits"
            ours = measure(fit_outcomes, data)
            rows.append(
                {
                    "name": f"outcomes engine, {label}",
                    "seconds": ours["seconds"],
                    "peak_mb": ours["peak_mb"],
                    "target": "faster than mixedlm-rs; at least faster than lme4",
                    "note": f"logLik {ours['extra']['loglik']:.4f}, "
                    f"baseline {ours['baseline_mb']:.0f} MB",
                }
            )
            others = [("mixedlm-rs", fit_mixedlm_rs)] if have_rs else []
            if quick or (n_patients <= 5_000 and not irregular) or _STATSMODELS_ALL:
                others.append(("statsmodels MixedLM", fit_statsmodels))
            for name, fn in others:
                got = measure(fn, data)
                gap = got["extra"]["loglik"] - ours["extra"]["loglik"]
                rows.append(
                    {
                        "name": f"{name}, {label}",
                        "seconds": got["seconds"],
                        "peak_mb": got["peak_mb"],
                        "note": f"{got['seconds'] / ours['seconds']:.1f}x the outcomes engine's "
                        f"time; logLik minus ours {gap:+.2e}",
                    }
                )
    return rows
