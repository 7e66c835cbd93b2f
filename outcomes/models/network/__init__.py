"""Network meta-analysis: every treatment compared at once (R netmeta's methods).

- :func:`network_meta` (``nma.py``): Rücker's graph-theoretical NMA, common and random effects,
  league table, P-scores, design decomposition of Q, node-splitting, figures.
- :func:`component_meta` (``component.py``): additive component NMA (``netcomb``/``discomb``).
- :func:`microneedling_network` (``published.py``): the shipped published-trial network.
"""

from outcomes.models.network.component import (
    ComponentMetaResult,
    component_matrix,
    component_meta,
)
from outcomes.models.network.nma import NetworkMetaResult, network_meta
from outcomes.models.network.published import (
    NETWORK_OUTCOMES,
    microneedling_network,
    microneedling_pairs,
)

__all__ = [
    "NETWORK_OUTCOMES",
    "ComponentMetaResult",
    "NetworkMetaResult",
    "component_matrix",
    "component_meta",
    "microneedling_network",
    "microneedling_pairs",
    "network_meta",
]
