"""Speed and memory of the outcomes LMM against mixedlm-rs and statsmodels MixedLM.

The model is the registry workhorse ``y ~ time * arm + (time | id)`` fitted by REML, each
package through its public formula API in one run (``outcomes.lmm(data, "y ~ time * arm",
groups="id", re_formula="~time")`` with Satterthwaite df for every coefficient;
``mixedlm_rs.mixedlm(...).fit()``; ``statsmodels.formula.api.mixedlm(...).fit()``), on
5,000 patients x 6 visits (30,000 rows) and 50,000 patients x 6 visits (300,000 rows). Two
shapes of data:

* ``fixed``: every patient seen at visits 0..5 (a trial-like fixed schedule);
* ``irregular``: visit times jittered per patient and about 20% of patients dropping out
  early, so nearly every patient has a distinct design (the registry case, where the engine
  cannot share factorisations between patients).

Every fit runs in a fresh Python process (spawned, as a user's script or a loky/Dask worker
runs), after a warm-up fit on tiny data in that process, and times itself; see
:func:`measure.measure_fresh` for why a forked child is not used. Two rows, for information,
time the first fit in a forked child on the 30,000-row fixed-visit data. Timings on a shared
machine are noisy: every fit is repeated (``REPEATS``, interleaved between packages so that
they see the same load) and the minimum is reported, with the load average
(``os.getloadavg``) in the note. mixedlm-rs is timed when it is installed (``nox -s
benchmark`` installs it in the benchmark session only). statsmodels is timed on the
30,000-row fixed-visit data only (15 s there and 208 s at 300,000 rows on the loaded
development machine); set ``OUTCOMES_BENCH_STATSMODELS_ALL=1`` to time it on every data set.
One more row times :meth:`~outcomes.models.lmm.result.LmmResult.refit` (a new response, the
design reused), the step a power study repeats. R lme4 was timed by hand on the same data
(:func:`make_data` written to CSV) with ``tests/r/engine/time_lme4.R``: 1.2 s at 30,000 rows
and 19 s at 300,000 rows (fixed visits) on the shared development machine.
"""

from __future__ import annotations

import importlib.util
import os
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from measure import measure, measure_fresh

import outcomes

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


FORMULA = "y ~ time * arm"
REPEATS = 3
MODULE = "bench_lmm_engine"


def _quiet(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` with warnings silenced (their counts are not timed here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def fit_outcomes(data: pd.DataFrame) -> dict:
    """Fit with ``outcomes.lmm`` (the toolkit's engine, Satterthwaite df); return the logLik."""
    result = _quiet(outcomes.lmm, data, FORMULA, groups="id", re_formula="~time")
    return {"loglik": result.loglik, "converged": result.converged}


def refit_outcomes(data: pd.DataFrame) -> dict:
    """Time ``LmmResult.refit`` with a new response (the first fit is not timed)."""
    first = _quiet(outcomes.lmm, data, FORMULA, groups="id", re_formula="~time")
    y = first.spec.frame["y"].to_numpy()[::-1].copy()
    start = time.perf_counter()
    result = _quiet(first.refit, y)
    return {"loglik": result.loglik, "refit_seconds": time.perf_counter() - start}


def fit_statsmodels(data: pd.DataFrame) -> dict:
    """Fit with statsmodels MixedLM's formula API (REML, its default optimisers)."""
    import statsmodels.formula.api as smf

    model = smf.mixedlm(FORMULA, data, groups=data["id"], re_formula="~time")
    result = _quiet(model.fit, reml=True)
    return {"loglik": float(result.llf), "converged": bool(result.converged)}


def fit_mixedlm_rs(data: pd.DataFrame) -> dict:
    """Fit with mixedlm-rs's formula API (REML), when installed."""
    import mixedlm_rs

    model = mixedlm_rs.mixedlm(FORMULA, data, groups=data["id"], re_formula="~time")
    result = _quiet(model.fit)
    return {"loglik": float(result.llf), "converged": bool(result.converged)}


def timed_fit(package: str, n_patients: int, irregular: bool) -> dict:
    """In a fresh process: warm up on tiny data, then time one fit of ``package``.

    The warm-up takes imports and first-call set-up out of the timing, for every package alike.
    """
    fit = FITTERS[package]
    fit(make_data(30))
    data = make_data(n_patients, irregular=irregular)
    start = time.perf_counter()
    extra = fit(data)
    return {"seconds": time.perf_counter() - start, **extra}


def timed_refit(n_patients: int, irregular: bool) -> dict:
    """In a fresh process: fit once, then time :meth:`LmmResult.refit` with a new response."""
    fit_outcomes(make_data(30))
    extra = refit_outcomes(make_data(n_patients, irregular=irregular))
    return {"seconds": extra.pop("refit_seconds"), **extra}


FITTERS: dict[str, Callable[[pd.DataFrame], dict]] = {
    "outcomes": fit_outcomes,
    "mixedlm-rs": fit_mixedlm_rs,
    "statsmodels MixedLM": fit_statsmodels,
}


def _forked_rows(data: pd.DataFrame, label: str, names: list[str]) -> list[dict]:
    """For information: the first fit in a child forked after a warm-up in this process.

    There OpenBLAS restarts its thread pool on the child's first BLAS call or thread-count
    change, and the new threads busy-wait for about 0.1 s: a cost of NumPy/SciPy code in
    forked workers (``multiprocessing`` with the fork start method), not of the engine.
    """
    rows = []
    for name in ["outcomes", *[n for n in names if n == "mixedlm-rs"]]:
        FITTERS[name](make_data(30))
        best = min(
            (measure(FITTERS[name], data) for _ in range(REPEATS)), key=lambda r: r["seconds"]
        )
        rows.append(
            {
                "name": f"{name}, {label}, forked child",
                "seconds": best["seconds"],
                "peak_mb": best["peak_mb"],
                "note": f"min of {REPEATS}; information: first fit in a forked child",
            }
        )
    return rows


def run(quick: bool) -> list[dict]:
    """Time every package on every data set; ratios are relative to outcomes.

    Every fit runs in its own fresh Python process (:func:`measure_fresh`), after a warm-up fit
    on tiny data there, so that the timing is of a fit, not of imports and first-call set-up.
    """
    sizes = [1_000] if quick else [5_000, 50_000]
    have_rs = importlib.util.find_spec("mixedlm_rs") is not None
    rows: list[dict] = []
    for n_patients in sizes:
        for irregular in (False, True):
            n_rows = len(make_data(n_patients, irregular=irregular))
            label = f"{n_rows:,} rows, {'irregular' if irregular else 'fixed'} visits"
            others = ["mixedlm-rs"] if have_rs else []
            if quick or (n_patients <= 5_000 and not irregular) or _STATSMODELS_ALL:
                others.append("statsmodels MixedLM")
            runs: dict[str, list[dict]] = {name: [] for name in ["outcomes", *others]}
            for _ in range(REPEATS):  # interleaved, so that every package sees the same load
                for name in runs:
                    runs[name].append(
                        measure_fresh(MODULE, "timed_fit", name, n_patients, irregular)
                    )
            load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
            ours = min(runs["outcomes"], key=lambda r: r["seconds"])
            rows.append(
                {
                    "name": f"outcomes.lmm, {label}",
                    "seconds": ours["seconds"],
                    "peak_mb": ours["peak_mb"],
                    "target": "at or below mixedlm-rs",
                    "note": f"min of {REPEATS}; logLik {ours['extra']['loglik']:.4f}; load {load}",
                }
            )
            for name in others:
                got = min(runs[name], key=lambda r: r["seconds"])
                gap = got["extra"]["loglik"] - ours["extra"]["loglik"]
                rows.append(
                    {
                        "name": f"{name}, {label}",
                        "seconds": got["seconds"],
                        "peak_mb": got["peak_mb"],
                        "note": f"min of {REPEATS}; {got['seconds'] / ours['seconds']:.1f}x "
                        f"outcomes' time; logLik minus ours {gap:+.2e}",
                    }
                )
            if n_patients == min(sizes) and not irregular:
                rows.extend(_forked_rows(make_data(n_patients), label, others))
            if irregular and n_patients == max(sizes):
                refits = [
                    measure_fresh(MODULE, "timed_refit", n_patients, irregular)
                    for _ in range(REPEATS)
                ]
                best = min(r["seconds"] for r in refits)
                rows.append(
                    {
                        "name": f"outcomes LmmResult.refit, {label}",
                        "seconds": best,
                        "peak_mb": max(r["peak_mb"] for r in refits),
                        "target": "below a fresh outcomes.lmm",
                        "note": f"min of {REPEATS}; new response, design reused",
                    }
                )
    return rows
