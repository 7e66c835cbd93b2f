"""Generalised linear mixed models with random intercepts, matching ordinal::clmm and lme4::glmer.

``clmm`` (ordered grades) and ``glmm`` (binomial responders, Poisson counts) share the Laplace
and adaptive Gauss-Hermite likelihood of :mod:`.core` and the result class
:class:`~.result.GlmmResult`.
"""

from outcomes.models.glmm.clmm import clmm
from outcomes.models.glmm.glmm import glmm
from outcomes.models.glmm.result import GlmmResult

__all__ = ["GlmmResult", "clmm", "glmm"]
