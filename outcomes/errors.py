"""Typed errors and warnings of `outcomes`, in one place.

Errors derived from :class:`OutcomesError` are meant for people: the CLI prints their message
and exits with a documented code, never a traceback. Warnings derived from
:class:`OutcomesWarning` are also recorded as data (see :mod:`outcomes.results`), so model
trouble is never hidden.
"""

from __future__ import annotations

__all__ = [
    "ConvergenceWarning",
    "InputError",
    "ModelError",
    "OutcomesError",
    "OutcomesWarning",
    "SingularFitWarning",
    "StatisticalWarning",
]


class OutcomesError(Exception):
    """An error whose message is written for the user."""


class InputError(OutcomesError):
    """A feed, mapping, dataset or option the toolkit cannot use as given."""


class ModelError(OutcomesError):
    """A model that cannot be fitted to the data as specified."""


class OutcomesWarning(UserWarning):
    """Base class of the toolkit's warnings."""


class ConvergenceWarning(OutcomesWarning):
    """An optimizer stopped without meeting its convergence criteria."""


class SingularFitWarning(OutcomesWarning):
    """A variance component at (or near) zero, or a correlation at +/-1: a boundary fit."""


class StatisticalWarning(OutcomesWarning):
    """A result that is valid to compute but doubtful to interpret (e.g. few events)."""
