"""Time-to-result speed and peak memory on a simulated registry.

Steps: derive the time-to-event datasets (onset, durability, retreatment) from a registry of
100,000 subjects (quick: 10,000), then Kaplan-Meier by modality, a clustered Cox model, the
cumulative incidence of retreatment, and an interval-censored Weibull model. Each step runs in
its own child process (see :func:`measure`); the registry is simulated once per child.
"""

from __future__ import annotations

import warnings

from measure import measure

from outcomes.derive import derive_tte
from outcomes.models.survival import cox, cumulative_incidence, interval_model, kaplan_meier
from outcomes.simulate import simulate_registry


def _tables(n: int) -> dict:
    return simulate_registry(seed=1, n_subjects=n).tables


def _derive(n: int) -> dict:
    tables = _tables(n)
    return {
        ep: len(derive_tte(tables, ep))
        for ep in ("gais_much_improved", "durability", "retreatment")
    }


def _models(n: int, what: str) -> int:
    tables = _tables(n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PH or few-event warnings are not what is timed
        if what == "retreatment":
            ci = cumulative_incidence(derive_tte(tables, "retreatment"), by="arm")
            return len(ci.table)
        tte = derive_tte(tables, "gais_much_improved")
        if what == "kaplan_meier":
            return len(kaplan_meier(tte, by="arm").median)
        if what == "cox":
            return len(cox(tte, "arm + phototype", cluster="site_id").table)
        return len(interval_model(tte, by="arm").table)


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
            "seconds": res["seconds"] - base["seconds"],
            "peak_mb": res["peak_mb"],
            "target": "< 10 s at 100k subjects",
            "note": f"rows {res['extra']}",
        }
    )
    for what, target in (
        ("kaplan_meier", "< 5 s"),
        ("cox", "< 20 s"),
        ("retreatment", "< 5 s"),
        ("interval_weibull", "< 60 s"),
    ):
        res = measure(_models, n, what)
        rows.append(
            {
                "name": f"{what} (incl. simulate + derive)",
                "seconds": res["seconds"],
                "peak_mb": res["peak_mb"],
                "target": target,
            }
        )
    return rows
