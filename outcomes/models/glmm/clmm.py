"""``clmm``: cumulative-link mixed models for ordered grades, as R's ``ordinal::clmm``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from outcomes.errors import InputError
from outcomes.models.glmm.core import fit_design
from outcomes.models.glmm.families import CLMM_LINKS, Cumulative
from outcomes.models.glmm.problem import Spec, build_design, design_from, ordinal_codes
from outcomes.models.glmm.result import GlmmResult
from outcomes.models.lmm.design import design_structure
from outcomes.results import Diagnostic

__all__ = ["check_nagq", "clmm", "fit_notes", "resolve_structure"]


def resolve_structure(
    data: pd.DataFrame,
    groups: str | None,
    nested: str | Sequence[str] | None,
    design: str | None,
    what: str,
) -> tuple[str, str | Sequence[str] | None]:
    """``groups`` and ``nested`` from the arguments or the study design (as ``lmm``)."""
    if design is not None:
        default = design_structure(design)
        if groups is None:
            groups = default["groups"]
            nested = nested or (default["nested"] or None)
        elif design == "split_body" and not nested:
            unit = default["nested"][0]
            if unit not in data.columns:
                raise InputError(
                    f"A split-body design needs the unit column {unit!r} to nest sides within "
                    "subjects; pass nested= with the unit column."
                )
            nested = unit
    if groups is None:
        raise InputError(f"{what}() needs groups= (the subject or clinic column) or design=.")
    return groups, nested


def check_nagq(nagq: int, nested: Any) -> int:
    """``nagq`` as an int; adaptive quadrature only with one scalar random effect (as R)."""
    if isinstance(nagq, bool) or not isinstance(nagq, (int, np.integer)) or nagq < 1:
        raise InputError(f"nagq={nagq!r} must be a whole number >= 1 (1 is Laplace).")
    if nagq > 1 and nested:
        raise InputError(
            f"nagq={nagq}: adaptive Gauss-Hermite quadrature needs a single scalar random effect "
            "(as lme4::glmer and ordinal::clmm require); with nested random intercepts use "
            "nagq=1 (Laplace)."
        )
    if nagq > 50:
        raise InputError(f"nagq={nagq} is more nodes than useful; use at most 50.")
    return int(nagq)


def fit_notes(spec: Spec) -> list[Diagnostic]:
    """Information about the data kept (dropped rows, categories never observed)."""
    notes = []
    if spec.n_dropped:
        shown = ", ".join(map(str, spec.dropped_rows[:10]))
        more = " ..." if spec.n_dropped > 10 else ""
        notes.append(
            Diagnostic(
                "rows_dropped",
                f"{spec.n_dropped} row(s) with missing values in model variables were left out "
                f"(index {shown}{more}).",
                "info",
            )
        )
    if spec.unobserved:
        notes.append(
            Diagnostic(
                "unobserved_category",
                f"Categor{'y' if len(spec.unobserved) == 1 else 'ies'} "
                f"{', '.join(map(str, spec.unobserved))} of {spec.response!r} never observed in "
                "the complete rows: the thresholds are estimated for the observed categories "
                "only, and predictions give these categories no probability.",
                "warning",
            )
        )
    return notes


def clmm(
    data: pd.DataFrame,
    formula: str,
    *,
    groups: str | None = None,
    nested: str | Sequence[str] | None = None,
    design: str | None = None,
    link: str = "logit",
    nagq: int = 1,
    levels: Sequence[Any] | None = None,
    weights: str | None = None,
    level: float = 0.95,
) -> GlmmResult:
    """Fit a cumulative-link mixed model (proportional odds with random intercepts).

    ``link(P(Y <= j)) = alpha_j - x' beta - b_group (- b_nested)``, as ``ordinal::clmm``:
    a positive coefficient makes higher categories more likely.

    Parameters
    ----------
    data
        One row per observation (e.g. side x visit).
    formula
        ``"grade ~ visit * arm"`` (patsy); the thresholds replace the intercept.
    groups
        Column of the subject (or clinic) with a random intercept.
    nested
        Column nested in ``groups`` with its own random intercept, e.g. the side in a
        split-face trial (``(1 | patient) + (1 | patient:side)`` in R).
    design
        Study design code: fills ``groups``/``nested`` as :func:`outcomes.lmm`
        does (``"split_body"`` nests the unit in the subject).
    link
        ``"logit"`` (proportional odds) or ``"probit"``.
    nagq
        1: Laplace; more: adaptive Gauss-Hermite quadrature with that many nodes (one random
        intercept only, as R).
    levels
        The response categories lowest first; needed for string grades that are not an ordered
        categorical. Integer grades (1-4) are ordered numerically.
    weights
        Optional column of frequency weights.
    level
        Confidence level.

    Returns
    -------
    GlmmResult
    """
    if link not in CLMM_LINKS:
        raise InputError(f"link={link!r}: use one of {', '.join(CLMM_LINKS)}.")
    groups, nested = resolve_structure(data, groups, nested, design, "clmm")
    nagq = check_nagq(nagq, nested)
    if not 0 < level < 1:
        raise InputError(f"level={level} must be between 0 and 1.")
    extra = [weights] if weights else []
    frame, x, spec = build_design(
        data,
        formula,
        groups=groups,
        nested=nested,
        extra_columns=extra,
        intercept=False,
        what="clmm",
    )
    codes, cats, unobserved = ordinal_codes(frame[spec.response], spec.response, levels)
    spec = Spec(**{**spec.__dict__, "categories": cats, "unobserved": unobserved})
    wts = np.ones(len(frame)) if weights is None else frame[weights].to_numpy(dtype=float)
    if np.any(wts < 0):
        raise InputError(f"Column {weights!r}: weights must be non-negative.")
    family = Cumulative(codes, len(cats), wts, link)
    arrays = design_from(spec, x, family, np.zeros(len(frame)))
    cum = np.cumsum(np.bincount(codes, wts, minlength=len(cats)))[:-1] / wts.sum()
    inverse = special.logit if link == "logit" else special.ndtri
    start = np.concatenate([inverse(cum), np.zeros(x.shape[1]), np.ones(arrays.n_sd)])
    state = fit_design(arrays, nagq, start)
    return GlmmResult(
        kind="clmm",
        family="cumulative",
        link=link,
        nagq=nagq,
        spec=spec,
        design=arrays,
        state=state,
        level=level,
        notes=fit_notes(spec),
    )
