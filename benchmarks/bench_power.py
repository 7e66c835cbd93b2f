"""Benchmark: a power study of 1,000 split-face trials (60 patients, 5 visits) by simulation.

Each trial is simulated (calibrated defaults: dropout 0.15, missed visits 0.05, whole-point
scores) and fitted with the split-face LMM ``y ~ week * arm + (week | patient) +
(1 | patient:side)``, REML, Satterthwaite df at the primary visit, through
:func:`outcomes.power`: serially and with joblib on 2 processes. Target (issue 20): under 60 s
on a 2-core machine. The load average is printed beside the result (the machine is shared), and
the CPU time of the calling process (all of it when serial; joblib's runs in its workers).

    python benchmarks/run.py power            1,000 trials
    python benchmarks/run.py power --quick    100 trials
"""

from __future__ import annotations

import os

from measure import measure


def _study(reps: int, backend: str) -> dict:
    import time

    import outcomes

    cpu = time.process_time()
    res = outcomes.power(n=60, reps=reps, seed=1, null=False, backend=backend, n_jobs=2)
    if backend == "joblib":
        # stop joblib's idle workers now: in this forked child they would otherwise keep the
        # benchmark waiting for loky's idle timeout (5 minutes) at exit
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=True)
    row = res.summary.iloc[0]
    return {
        "cpu_seconds": time.process_time() - cpu,
        "power": float(row.power),
        "warnings_share": float(row.warnings_share),
        "failed": int(row.failed),
        "mean_rows": float(row.mean_n_obs),
    }


def run(quick: bool) -> list[dict]:
    """Time the study serially and with joblib (2 workers)."""
    reps = 100 if quick else 1000
    rows = []
    for backend in ("serial", "joblib"):
        load_before = os.getloadavg()[0]
        res = measure(_study, reps, backend)
        extra = res["extra"]
        rows.append(
            {
                "name": f"power: {reps:,} split-face trials (60 x 5 visits), LMM + Satt, {backend}",
                "seconds": res["seconds"],
                "peak_mb": res["peak_mb"],
                "target": "< 60 s for 1,000" if not quick else "",
                "note": (
                    f"{1000 * res['seconds'] / reps:.1f} ms/trial wall, "
                    f"{1000 * extra['cpu_seconds'] / reps:.1f} ms/trial CPU in this process; "
                    f"power {extra['power']:.3f}; "
                    f"warnings {extra['warnings_share']:.1%}; failed {extra['failed']}; "
                    f"{extra['mean_rows']:.0f} rows/trial; load {load_before:.2f} -> "
                    f"{os.getloadavg()[0]:.2f}"
                ),
            }
        )
    return rows
