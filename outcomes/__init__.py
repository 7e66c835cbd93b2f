"""outcomes: clinical outcomes research on microneedling (collagen induction therapy).

The Python API in one namespace. Data: :func:`ingest`, :func:`open_store`, :func:`validate`,
:func:`simulate_trial`, :func:`simulate_registry`, :func:`load_dictionary`. Models are
imported on first use (statsmodels, lifelines and plotnine are slow to import), so the
command line starts quickly.
"""

from __future__ import annotations

import importlib
from typing import Any

from outcomes.dictionary import load_dictionary
from outcomes.ingest import ingest
from outcomes.schema import validate_table as validate
from outcomes.simulate import simulate_registry, simulate_trial
from outcomes.store import open_store

__version__ = "0.1.0"

# public name -> module that defines it (imported lazily)
_LAZY: dict[str, str] = {
    "lmm": "outcomes.models.lmm.fit",
    "LmmResult": "outcomes.models.lmm.result",
    "gee": "outcomes.models.gee",
    "icc": "outcomes.models.agreement",
    "weighted_kappa": "outcomes.models.agreement",
    "fleiss_kappa": "outcomes.models.agreement",
    "meta_analysis": "outcomes.models.meta.meta_analysis",
    "escalc": "outcomes.models.meta.effect_sizes",
    "published_data": "outcomes.models.meta.published",
    "propensity_weights": "outcomes.models.propensity",
    "balance_table": "outcomes.models.propensity",
    "love_plot": "outcomes.models.propensity",
    "weighted_effect": "outcomes.models.propensity",
    "e_value": "outcomes.models.propensity",
    "derive_tte": "outcomes.derive",
    "Endpoint": "outcomes.derive",
    "ENDPOINTS": "outcomes.derive",
    "kaplan_meier": "outcomes.models.survival.kaplan_meier",
    "logrank": "outcomes.models.survival.kaplan_meier",
    "cox": "outcomes.models.survival.cox",
    "interval_model": "outcomes.models.survival.interval",
    "cumulative_incidence": "outcomes.models.survival.competing",
    "risk_table_plot": "outcomes.models.survival.plots",
    "compare": "outcomes.models.comparison",
    "run_analysis": "outcomes.analysis",
    "run_analyses": "outcomes.analysis",
    "load_results": "outcomes.analysis",
    "load_spec": "outcomes.analysis",
    "audit": "outcomes.analysis",
    "ComparisonResult": "outcomes.models.comparison",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'outcomes' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "__version__",
    "ingest",
    "load_dictionary",
    "open_store",
    "simulate_registry",
    "simulate_trial",
    "validate",
    *_LAZY,
]
