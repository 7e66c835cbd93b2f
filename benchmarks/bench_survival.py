"""Time-to-result speed and peak memory on a simulated registry.

Steps: derive the time-to-event datasets (onset, durability, retreatment) from a registry of
100,000 subjects (quick: 10,000), then Kaplan-Meier by modality, a clustered Cox model, the
cumulative incidence of retreatment, and an interval-censored Weibull model. Each step runs in
its own child process (see :func:`measure`) that simulates the registry first; the seconds
reported are those of the step alone, the peak memory that of the whole child.
"""

from __future__ import annotations

import time
import warnings

import formulaic  # noqa: F401 (imported here so forked children do not time the imports)
import lifelines  # noqa: F401
from measure import measure

from outcomes.derive.tte import derive_tte
from outcomes.models.survival.competing import cumulative_incidence
from outcomes.models.survival.cox import cox
from outcomes.models.survival.interval import interval_model
from outcomes.models.survival.kaplan_meier import kaplan_meier
from outcomes.simulate.registry import simulate_registry


def _tables(n: int) -> dict:
    return simulate_registry(seed=1, n_subjects=n).tables


def _derive(n: int) -> dict:
    tables = _tables(n)
    start = time.perf_counter()
    rows = {
        ep: len(derive_tte(tables, ep))
        for ep in ("gais_much_improved", "durability", "retreatment")
    }
    return {"rows": rows, "seconds": time.perf_counter() - start}


def _models(n: int, what: str) -> dict:
    tables = _tables(n)
    tte = derive_tte(tables, "retreatment" if what == "retreatment" else "gais_much_improved")
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PH or few-event warnings are not what is timed
        if what == "retreatment":
            cumulative_incidence(tte, by="arm")
        elif what == "kaplan_meier":
            kaplan_meier(tte, by="arm").median  # noqa: B018 (the quantile search is timed)
        elif what == "cox":
            cox(tte, "arm + phototype", cluster="site_id")
        else:
            interval_model(tte, by="arm")
    return {"rows": len(tte), "seconds": time.perf_counter() - start}


def run(quick: bool) -> list[dict]:
    """Measure each step; rows carry name, seconds, peak_mb, target and note."""
    n = 10_000 if quick else 100_000
    rows = []
    base = measure(_tables, n)
    rows.append(
        {
            "name": f"simulate registry ({n:,} subjects; baseline for the rest)",
            "seconds": base["seconds"],
            "peak_mb": base["peak_mb"],
        }
    )
    res = measure(_derive, n)
    rows.append(
        {
            "name": "derive_tte x3 (GAIS onset, durability, retreatment)",
            "seconds": res["extra"]["seconds"],
            "peak_mb": res["peak_mb"],
            "target": "< 10 s at 100k subjects",
            "note": f"rows {res['extra']['rows']}",
        }
    )
    for what, target in (
        ("kaplan_meier", "< 2 s"),
        ("cox", "< 20 s"),
        ("retreatment", "< 2 s"),
        ("interval_weibull", "< 60 s"),
    ):
        res = measure(_models, n, what)
        rows.append(
            {
                "name": f"{what} on {res['extra']['rows']:,} units (model step only)",
                "seconds": res["extra"]["seconds"],
                "peak_mb": res["peak_mb"],
                "target": target,
                "note": "peak includes simulate + derive",
            }
        )
    return rows
