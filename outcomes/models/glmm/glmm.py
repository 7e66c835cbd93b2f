"""``glmm``: binomial and Poisson GLMMs with random intercepts, as R's ``lme4::glmer``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import special

from outcomes.errors import InputError
from outcomes.models.glmm.clmm import check_nagq, fit_notes, resolve_structure
from outcomes.models.glmm.core import fit_design
from outcomes.models.glmm.families import BINOMIAL_LINKS, Binomial, Poisson
from outcomes.models.glmm.problem import build_design, design_from
from outcomes.models.glmm.result import GlmmResult

__all__ = ["glmm"]

FAMILIES = ("binomial", "poisson")


def _bad_rows(frame: pd.DataFrame, mask: np.ndarray) -> str:
    idx = frame.index[mask]
    return ", ".join(map(str, idx[:5])) + (" ..." if len(idx) > 5 else "")


def _binomial_response(
    frame: pd.DataFrame, response: str, trials: str | None
) -> tuple[np.ndarray, np.ndarray]:
    col = frame[response]
    if pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col):
        y = col.to_numpy(dtype=float)
    else:
        raise InputError(
            f"Column {response!r} holds {col.dtype} values: a binomial response must be 0/1, "
            "True/False, or a count of successes with trials=."
        )
    if trials is None:
        bad = ~np.isin(y, (0.0, 1.0))
        if bad.any():
            raise InputError(
                f"Column {response!r}, row(s) {_bad_rows(frame, bad)}: a binary response must be "
                "0 or 1 (for counts of successes pass trials= with the number of trials)."
            )
        return y, np.ones(len(y))
    n = frame[trials].to_numpy(dtype=float)
    bad = (y < 0) | (y != np.round(y)) | (n != np.round(n)) | (y > n) | (n < 1)
    if bad.any():
        raise InputError(
            f"Columns {response!r}/{trials!r}, row(s) {_bad_rows(frame, bad)}: successes must be "
            "whole numbers between 0 and the number of trials (at least 1)."
        )
    return y, n


def glmm(
    data: pd.DataFrame,
    formula: str,
    *,
    groups: str | None = None,
    nested: str | Sequence[str] | None = None,
    design: str | None = None,
    family: str = "binomial",
    link: str | None = None,
    nagq: int = 1,
    trials: str | None = None,
    offset: str | None = None,
    level: float = 0.95,
) -> GlmmResult:
    """Fit a binomial or Poisson GLMM with random intercepts.

    Parameters
    ----------
    data
        One row per observation.
    formula
        ``"responder ~ visit * arm"`` (patsy).
    groups
        Column with a random intercept (subject, clinic).
    nested
        Column nested in ``groups`` with its own random intercept (side within patient).
    design
        Study design code: fills ``groups``/``nested`` as :func:`outcomes.lmm`
        does.
    family
        ``"binomial"`` (0/1 response, or successes with ``trials=``) or ``"poisson"``.
    link
        Binomial: ``"logit"`` (default), ``"probit"`` or ``"cloglog"``; Poisson: ``"log"``.
    nagq
        1: Laplace; more: adaptive Gauss-Hermite quadrature (one random intercept only), as
        ``glmer(nAGQ = )``. lme4 reports the log-likelihood of ``nAGQ > 1`` fits without some
        constant terms, so compare those fits' estimates, not their ``logLik``, with R.
    trials
        Column with the number of trials when the response counts successes (R's
        ``cbind(successes, trials - successes)``).
    offset
        Column added to the linear predictor (e.g. log exposure for counts).
    level
        Confidence level.

    Returns
    -------
    GlmmResult
    """
    if family not in FAMILIES:
        raise InputError(f"family={family!r}: use one of {', '.join(FAMILIES)}.")
    if family == "binomial":
        link = link or "logit"
        if link not in BINOMIAL_LINKS:
            raise InputError(f"link={link!r}: a binomial GLMM takes {', '.join(BINOMIAL_LINKS)}.")
    else:
        link = link or "log"
        if link != "log":
            raise InputError(f"link={link!r}: a Poisson GLMM takes the log link.")
        if trials is not None:
            raise InputError("trials= is for binomial responses; use offset= for exposure.")
    groups, nested = resolve_structure(data, groups, nested, design, "glmm")
    nagq = check_nagq(nagq, nested)
    if not 0 < level < 1:
        raise InputError(f"level={level} must be between 0 and 1.")
    extra = [c for c in (trials, offset) if c]
    frame, x, spec = build_design(
        data,
        formula,
        groups=groups,
        nested=nested,
        extra_columns=extra,
        intercept=True,
        what="glmm",
    )
    off = np.zeros(len(frame)) if offset is None else frame[offset].to_numpy(dtype=float)
    if family == "binomial":
        y, n = _binomial_response(frame, spec.response, trials)
        fam: Binomial | Poisson = Binomial(y, n, link)
        p = np.clip(y.sum() / n.sum(), 1e-3, 1 - 1e-3)
        mean_eta = {
            "logit": special.logit(p),
            "probit": special.ndtri(p),
            "cloglog": np.log(-np.log1p(-p)),
        }[link]
    else:
        col = frame[spec.response]
        y = col.to_numpy(dtype=float) if pd.api.types.is_numeric_dtype(col) else np.array([-1.0])
        bad = (y < 0) | (y != np.round(y))
        if bad.any() or not pd.api.types.is_numeric_dtype(col):
            rows = _bad_rows(frame, bad) if pd.api.types.is_numeric_dtype(col) else "all"
            raise InputError(
                f"Column {spec.response!r}, row(s) {rows}: a Poisson response must be a "
                "non-negative whole number."
            )
        fam = Poisson(y)
        mean_eta = np.log(max(y.mean(), 1e-3)) - off.mean()
    arrays = design_from(spec, x, fam, off)
    beta0 = np.zeros(x.shape[1])
    if "Intercept" in spec.x_names:
        beta0[spec.x_names.index("Intercept")] = mean_eta
    start = np.concatenate([beta0, np.ones(arrays.n_sd)])
    state = fit_design(arrays, nagq, start)
    return GlmmResult(
        kind="glmm",
        family=family,
        link=link,
        nagq=nagq,
        spec=spec,
        design=arrays,
        state=state,
        level=level,
        notes=fit_notes(spec),
    )
