"""Network meta-analysis: every treatment compared at once (R netmeta's methods).

- :func:`network_meta` (``nma.py``): Rücker's graph-theoretical NMA, common and random effects,
  league table, P-scores, design decomposition of Q, node-splitting, figures.
- :func:`component_meta` (``component.py``): additive component NMA (``netcomb``/``discomb``).
"""

from outcomes.models.network.component import (
    ComponentMetaResult,
    component_matrix,
    component_meta,
)
from outcomes.models.network.nma import NetworkMetaResult, network_meta

__all__ = [
    "ComponentMetaResult",
    "NetworkMetaResult",
    "component_matrix",
    "component_meta",
    "network_meta",
]
