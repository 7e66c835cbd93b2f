"""``mmrm()``: the public entry of the mixed model for repeated measures.

Fits ``outcome ~ fixed effects`` with a within-subject covariance over visits (SAS PROC MIXED
``REPEATED visit / SUBJECT=subject TYPE=...``), REML or ML, optionally grouped by a column
(``GROUP=``) and, for split-face trials, inside a patient random intercept shared by both
sides (``RANDOM intercept / SUBJECT=patient`` beside the ``REPEATED``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from outcomes.errors import InputError
from outcomes.models.blas import one_blas_thread
from outcomes.models.mmrm.covariance import STRUCTURES, get_structure
from outcomes.models.mmrm.data import MmrmData, prepare
from outcomes.models.mmrm.dof import DDF_METHODS, build_inference
from outcomes.models.mmrm.likelihood import (
    Likelihood,
    OptimResult,
    build_layout,
    optimise,
)
from outcomes.models.mmrm.result import MmrmResult
from outcomes.results import Diagnostic

__all__ = ["mmrm"]

_DDF_ALIASES = {
    "kr": "kenward-roger",
    "kenward-roger": "kenward-roger",
    "kenwardroger": "kenward-roger",
    "kr-linear": "kenward-roger-linear",
    "kenward-roger-linear": "kenward-roger-linear",
    "satterthwaite": "satterthwaite",
    "between-within": "between-within",
    "bw": "between-within",
    "residual": "residual",
}


def _start_covariance(d: MmrmData, m: int) -> np.ndarray:
    """Pairwise covariance of OLS residuals over visits, made positive definite."""
    beta = np.linalg.lstsq(d.x, d.y, rcond=None)[0]
    resid = d.y - d.x @ beta
    wide = pd.DataFrame({"b": d.block, "u": d.unit, "v": d.visit, "r": resid}).pivot_table(
        index=["b", "u"], columns="v", values="r"
    )
    wide = wide.reindex(columns=range(m))
    cov = wide.cov(min_periods=3).to_numpy()
    overall = float(np.var(resid)) if len(resid) > 1 else 1.0
    overall = overall if overall > 0 else 1.0
    diag = np.diag(cov)
    cov[np.isnan(cov)] = 0.0
    fill = np.isnan(diag) | (diag <= 0)
    cov[np.diag_indices(m)] = np.where(fill, overall, np.diag(cov))
    vals, vecs = np.linalg.eigh(cov)
    vals = np.maximum(vals, 0.05 * float(np.mean(np.diag(cov))))
    return (vecs * vals) @ vecs.T


def _fit_structure(
    d: MmrmData, code: str, reml: bool, nested: bool
) -> tuple[Likelihood, OptimResult, np.ndarray]:
    m = len(d.visit_levels)
    structure = get_structure(code)
    layout = build_layout(
        d.y, d.x, d.block, d.unit, d.visit, d.group, m, len(d.group_levels), nested
    )
    lik = Likelihood(layout, structure, reml)
    start_cov = _start_covariance(d, m)
    share = 0.8 if nested else 1.0
    start = [structure.start_free(share * start_cov, m) for _ in d.group_levels]
    if nested:
        start.append(np.array([0.5 * np.log(0.2 * np.mean(np.diag(start_cov)))]))
    res = optimise(lik, np.concatenate(start))
    return lik, res, res.hessian


def _fit_with_fallback(
    d: MmrmData, cov: str, fallback: Sequence[str], reml: bool, nested: bool
) -> tuple[str, Likelihood, OptimResult, np.ndarray, list[Diagnostic]]:
    """Fit ``cov``, then each fallback in turn until one converges to a definite optimum."""
    diagnostics: list[Diagnostic] = []
    chosen = None
    for attempt, code in enumerate([cov, *fallback]):
        lik, res, hess = _fit_structure(d, code.lower(), reml, nested)
        trouble = []
        if not res.converged:
            trouble.append(
                f"the optimiser did not converge (largest gradient {res.gradient_norm:.2g})"
            )
        if not np.all(np.isfinite(hess)):
            trouble.append(
                "the Hessian of the deviance cannot be computed (the estimate is at the edge "
                "of the positive-definite covariances)"
            )
        else:
            eig = np.linalg.eigvalsh(hess)
            if np.any(eig <= 1e-8 * max(1.0, float(np.max(np.abs(eig))))):
                trouble.append("the Hessian of the deviance is not positive definite")
        for msg in res.messages:
            diagnostics.append(Diagnostic("optimizer_retry", msg, "info"))
        if attempt == 0:
            chosen = (code, lik, res, hess)
        if not trouble:
            chosen = (code, lik, res, hess)
            if attempt > 0:
                diagnostics.append(
                    Diagnostic(
                        "fallback_structure",
                        f"Covariance {cov!r} failed; fitted with fallback {code!r} instead.",
                        "warning",
                    )
                )
            break
        severity = "warning" if attempt < len(fallback) else "error"
        diagnostics.append(
            Diagnostic(
                "not_converged",
                f"Covariance {code!r}: {'; '.join(trouble)}."
                + (" Trying the next fallback structure." if attempt < len(fallback) else ""),
                severity,
            )
        )
    assert chosen is not None
    code, lik, res, hess = chosen
    return code, lik, res, hess, diagnostics


def mmrm(
    data: pd.DataFrame,
    formula: str,
    subject: str,
    visit: str,
    cov: str = "us",
    *,
    cov_by: str | None = None,
    nested_in: str | None = None,
    reml: bool = True,
    ddf: str = "kenward-roger",
    vcov: str = "model",
    visit_order: Sequence[Any] | None = None,
    fallback: Sequence[str] = (),
    level: float = 0.95,
) -> MmrmResult:
    """Fit a mixed model for repeated measures (MMRM), as SAS PROC MIXED does.

    Parameters
    ----------
    data
        Long data: one row per subject (or side) and visit. Rows with a missing outcome or
        covariate are dropped and counted; each subject's observed visits enter the
        likelihood (valid under missing at random); nothing is imputed.
    formula
        ``"outcome ~ fixed effects"`` (patsy), e.g. ``"change ~ arm * visit + baseline"``. The
        ``visit`` column is treated as a factor with the order below.
    subject
        Column identifying the unit measured repeatedly (a subject; in a split-face trial, a
        side of one face).
    visit
        Column of visits. Order: ``visit_order`` if given; else an ordered categorical's
        categories; else numeric order; else the number in each label (``"Week 4"`` before
        ``"Week 12"``).
    cov
        Covariance over visits: ``us`` (unstructured), ``toep``, ``toeph``, ``ar1``, ``ar1h``,
        ``ad``, ``adh``, ``cs``, ``csh`` (``h``: heterogeneous variances).
    cov_by
        Column (constant within subject, e.g. the arm) giving each level its own covariance
        (SAS ``GROUP=``).
    nested_in
        Split-face MMRM: the column of the patient that ``subject`` (a side) belongs to. Adds a
        patient random intercept shared by both sides beside the covariance over visits within
        a side: ``V = blockdiag_sides(Sigma) + tau2 J``.
    reml
        REML (default) or ML.
    ddf
        ``"kenward-roger"`` (default; SAS's ``DDFM=KR`` in SAS's covariance parameters, which
        for ``us`` equals its linear variant), ``"kenward-roger-linear"``,
        ``"satterthwaite"``, ``"between-within"`` or ``"residual"``.
    vcov
        ``"model"`` or ``"empirical"`` (sandwich over subjects, SAS ``EMPIRICAL``; use with
        ``ddf="between-within"`` or ``"residual"``).
    fallback
        Structures to try in order when ``cov`` does not converge to a positive-definite
        optimum (e.g. ``["toeph", "ar1h", "cs"]``); what was tried is in the diagnostics.
    level
        Confidence level of intervals.

    Returns
    -------
    MmrmResult
    """
    ddf_key = _DDF_ALIASES.get(str(ddf).lower().replace("_", "-"))
    if ddf_key is None:
        raise InputError(f"ddf={ddf!r}: use one of {', '.join(DDF_METHODS)}.")
    if vcov not in ("model", "empirical"):
        raise InputError(f"vcov={vcov!r}: use 'model' or 'empirical'.")
    if vcov == "empirical" and ddf_key not in ("between-within", "residual"):
        raise InputError(
            "vcov='empirical' goes with ddf='between-within' or 'residual' (as SAS "
            "EMPIRICAL); Kenward-Roger and Satterthwaite use the model-based covariance."
        )
    if ddf_key.startswith("kenward-roger") and not reml:
        raise InputError("Kenward-Roger degrees of freedom need a REML fit (reml=True).")
    for code in [cov, *fallback]:
        if code.lower() not in STRUCTURES:
            raise InputError(
                f"Unknown covariance structure {code!r}; use one of {', '.join(STRUCTURES)}."
            )
    d = prepare(data, formula, subject, visit, nested_in, cov_by, visit_order)
    if len(d.y) <= d.x.shape[1]:
        raise InputError(f"{len(d.y)} usable rows cannot estimate {d.x.shape[1]} fixed effects.")
    with one_blas_thread():
        code, lik, res, hess, diagnostics = _fit_with_fallback(
            d, cov, fallback, reml, nested_in is not None
        )
        inference = build_inference(lik, res.theta, ddf_key, vcov == "empirical", hess)
    return MmrmResult(
        data=d,
        formula=formula,
        cov=code.lower(),
        requested_cov=cov.lower(),
        likelihood=lik,
        optim=res,
        hessian=hess,
        inference=inference,
        subject=subject,
        visit=visit,
        nested_in=nested_in,
        cov_by=cov_by,
        vcov_type=vcov,
        level=level,
        extra_diagnostics=diagnostics,
    )
