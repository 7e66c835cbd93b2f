"""outcomes: clinical outcomes research on microneedling (collagen induction therapy).

The Python API in one namespace. Every name is imported on first use (pandas, statsmodels,
lifelines and plotnine are slow to import), so the command line starts quickly. The folders
follow the data path: data -> derive -> models -> comparisons -> analysis -> report;
``planning`` (power by simulation) sits beside comparisons, on simulate and models.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> (module that defines it, its name there)
_LAZY: dict[str, tuple[str, str]] = {
    # data
    "ingest": ("outcomes.data.ingest", "ingest"),
    "draft_mapping": ("outcomes.data.draft", "draft_mapping"),
    "load_dictionary": ("outcomes.data.dictionary", "load_dictionary"),
    "open_store": ("outcomes.data.store", "open_store"),
    "validate": ("outcomes.data.schema", "validate_table"),
    # simulated data with known truth
    "simulate_trial": ("outcomes.simulate.trial", "simulate_trial"),
    "simulate_registry": ("outcomes.simulate.registry", "simulate_registry"),
    "CALIBRATION": ("outcomes.simulate.calibration", "CALIBRATION"),
    "Target": ("outcomes.simulate.calibration", "Target"),
    "calibration_table": ("outcomes.simulate.calibration", "calibration_table"),
    # derive
    "derive_tte": ("outcomes.derive.tte", "derive_tte"),
    "Endpoint": ("outcomes.derive.endpoints", "Endpoint"),
    "ENDPOINTS": ("outcomes.derive.endpoints", "ENDPOINTS"),
    # models
    "lmm": ("outcomes.models.lmm.fit", "lmm"),
    "LmmResult": ("outcomes.models.lmm.result", "LmmResult"),
    "LinearPredictor": ("outcomes.models.means", "LinearPredictor"),
    "emmeans": ("outcomes.models.means", "emmeans"),
    "contrasts": ("outcomes.models.means", "contrasts"),
    "linear_test": ("outcomes.models.means", "linear_test"),
    "gee": ("outcomes.models.gee", "gee"),
    "icc": ("outcomes.models.agreement", "icc"),
    "weighted_kappa": ("outcomes.models.agreement", "weighted_kappa"),
    "fleiss_kappa": ("outcomes.models.agreement", "fleiss_kappa"),
    "meta_analysis": ("outcomes.models.meta.meta_analysis", "meta_analysis"),
    "escalc": ("outcomes.models.meta.effect_sizes", "escalc"),
    "phi_limits": ("outcomes.models.meta.effect_sizes", "phi_limits"),
    "clmm": ("outcomes.models.glmm.clmm", "clmm"),
    "glmm": ("outcomes.models.glmm.glmm", "glmm"),
    "GlmmResult": ("outcomes.models.glmm.result", "GlmmResult"),
    "mmrm": ("outcomes.models.mmrm.fit", "mmrm"),
    "MmrmResult": ("outcomes.models.mmrm.result", "MmrmResult"),
    "network_meta": ("outcomes.models.network.nma", "network_meta"),
    "NetworkMetaResult": ("outcomes.models.network.nma", "NetworkMetaResult"),
    "component_meta": ("outcomes.models.network.component", "component_meta"),
    "ComponentMetaResult": ("outcomes.models.network.component", "ComponentMetaResult"),
    "microneedling_network": ("outcomes.models.network.published", "microneedling_network"),
    "microneedling_pairs": ("outcomes.models.network.published", "microneedling_pairs"),
    "propensity_weights": ("outcomes.models.propensity", "propensity_weights"),
    "balance_table": ("outcomes.models.propensity", "balance_table"),
    "love_plot": ("outcomes.models.propensity", "love_plot"),
    "weighted_effect": ("outcomes.models.propensity", "weighted_effect"),
    "e_value": ("outcomes.models.propensity", "e_value"),
    "kaplan_meier": ("outcomes.models.survival.kaplan_meier", "kaplan_meier"),
    "logrank": ("outcomes.models.survival.kaplan_meier", "logrank"),
    "cox": ("outcomes.models.survival.cox", "cox"),
    "interval_model": ("outcomes.models.survival.interval", "interval_model"),
    "cumulative_incidence": ("outcomes.models.survival.competing", "cumulative_incidence"),
    "risk_table_plot": ("outcomes.models.survival.plots", "risk_table_plot"),
    # comparisons
    "compare": ("outcomes.comparisons.comparison", "compare"),
    "ComparisonResult": ("outcomes.comparisons.comparison", "ComparisonResult"),
    # planning the next trial
    "power": ("outcomes.planning.study", "power"),
    "load_power": ("outcomes.planning.study", "load_power"),
    "PowerResult": ("outcomes.planning.results", "PowerResult"),
    # declared analyses
    "load_spec": ("outcomes.analysis.spec", "load_spec"),
    "run_analysis": ("outcomes.analysis.run", "run_analysis"),
    "run_analyses": ("outcomes.analysis.run", "run_analyses"),
    "load_results": ("outcomes.analysis.results", "load_results"),
    "audit": ("outcomes.analysis.audit", "audit"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'outcomes' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = ["__version__", *_LAZY]
