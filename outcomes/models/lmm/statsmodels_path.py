"""The statsmodels engine: MixedLM, then the optimum refined on lme4's profiled deviance."""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import Any

import numpy as np
from scipy import optimize

from outcomes.models.lmm.deviance import ProfiledDeviance
from outcomes.models.lmm.types import LmmFit, LmmProblem
from outcomes.results import Diagnostic

__all__ = ["fit_statsmodels"]


CONVERGENCE_TOL = 2e-3


# --------------------------------------------------------------------------------------------
# statsmodels engine
# --------------------------------------------------------------------------------------------


def _statsmodels_vc(problem: LmmProblem) -> Any:
    """statsmodels ``exog_vc`` as a ``VCSpec``: per top-level group, one indicator column per
    nested group, for each nested term."""
    from statsmodels.regression.mixed_linear_model import VCSpec

    terms = problem.terms
    if len(terms) == 1:
        return None
    top = terms[0].codes
    order = np.argsort(top, kind="stable")
    splits = np.split(order, np.cumsum(np.bincount(top, minlength=terms[0].n_groups))[:-1])
    names, colnames, mats = [], [], []
    for term in terms[1:]:
        term_cols, term_mats = [], []
        for rows in splits:
            levels, inv = np.unique(term.codes[rows], return_inverse=True)
            mat = np.zeros((len(rows), len(levels)))
            mat[np.arange(len(rows)), inv] = term.z[rows, 0]
            term_mats.append(mat)
            term_cols.append([str(v) for v in levels])
        names.append(term.group)
        colnames.append(term_cols)
        mats.append(term_mats)
    return VCSpec(names, colnames, mats)


def _run_statsmodels(problem: LmmProblem, method: list[str] | None) -> tuple[Any, list[str]]:
    """Fit statsmodels' MixedLM; return its results and the warnings it raised."""
    from statsmodels.regression.mixed_linear_model import MixedLM

    top = problem.terms[0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = MixedLM(
            problem.y,
            problem.x,
            groups=top.codes,
            exog_re=top.z,
            exog_vc=_statsmodels_vc(problem),
        )
        result = model.fit(reml=problem.reml, method=method)
    messages = list(dict.fromkeys(str(w.message).strip() for w in caught))
    return result, messages


def fit_statsmodels(problem: LmmProblem) -> LmmFit:
    """Fit ``problem`` with statsmodels' MixedLM, then polish on lme4's profiled deviance.

    statsmodels' estimate is the starting point; L-BFGS-B (SciPy) minimises lme4's profiled
    deviance from there, within lme4's bounds; if that stops with a non-zero gradient, it is
    retried with Nelder-Mead and L-BFGS-B again. statsmodels' own warnings, its failures and
    every retry are recorded in ``diagnostics`` (never silent).
    """
    prof = ProfiledDeviance(problem)
    diagnostics: list[Diagnostic] = []
    n_eval = 0
    try:
        sm_result, messages = _run_statsmodels(problem, ["lbfgs"])
    except (np.linalg.LinAlgError, ValueError, ZeroDivisionError) as exc:
        sm_result, messages = None, [f"{type(exc).__name__}: {exc}"]
    if messages:
        diagnostics.append(
            Diagnostic(
                "statsmodels_warning",
                f"statsmodels MixedLM reported: {'; '.join(messages)}. Its estimate is only the "
                "starting point of the refinement on lme4's deviance.",
                "info",
            )
        )
    if sm_result is not None and not bool(getattr(sm_result, "converged", False)):
        diagnostics.append(
            Diagnostic(
                "optimizer_retry",
                "statsmodels MixedLM (L-BFGS) did not converge; the optimum was searched with "
                "SciPy's L-BFGS-B on lme4's deviance from its last estimate.",
                "info",
            )
        )
    if sm_result is not None and np.all(np.isfinite(np.asarray(sm_result.cov_re))):
        scale = float(sm_result.scale)
        covs = [np.asarray(sm_result.cov_re, dtype=float)]
        covs.extend(np.atleast_2d(v) for v in np.asarray(sm_result.vcomp, dtype=float))
        theta0 = prof.theta_from_covariances(covs, scale)
        from_statsmodels = True
        n_eval += int(getattr(sm_result, "mle_retvals", {}).get("iterations", 0) or 0)
    else:
        theta0 = np.where(np.isfinite(prof.lower), 1.0, 0.0)
        from_statsmodels = False
        diagnostics.append(
            Diagnostic(
                "optimizer_retry",
                "statsmodels could not fit the model; the optimum was searched from lme4's "
                "default start (identity relative covariance) instead.",
                "info",
            )
        )
    start_dev = prof.objective(theta0)
    res = prof.minimise(theta0)
    n_eval += int(res.nfev)
    first_fun = res.fun
    optimizer = "statsmodels MixedLM + L-BFGS-B and Newton on lme4 deviance"
    if from_statsmodels and (prof.on_boundary(res.x) or not res.success):
        # A boundary optimum reached from statsmodels' start may be a local one: look again
        # from lme4's default start, keep the better optimum.
        default = prof.minimise(np.where(np.isfinite(prof.lower), 1.0, 0.0))
        n_eval += int(default.nfev)
        if default.fun < res.fun:
            res = default
    if prof.on_boundary(res.x):
        # L-BFGS-B can stall on a bound; restart with each boundary parameter moved inside.
        for start in prof.boundary_probes(res.x):
            probe = prof.minimise(start)
            n_eval += int(probe.nfev)
            if probe.fun < res.fun:
                res = probe
    if first_fun - res.fun > 1e-6:
        optimizer += " (restarted)"
        diagnostics.append(
            Diagnostic(
                "optimizer_retry",
                "The first optimum was on the boundary or not converged; restarts (from lme4's "
                "default start and from inside the boundary) found a better one (deviance "
                f"lower by {first_fun - res.fun:.3g}), which is reported.",
                "info",
            )
        )
    theta, grad = prof.newton(res.x)
    converged = bool(grad < CONVERGENCE_TOL and np.isfinite(prof.objective(theta)))
    if not converged:
        nm = optimize.minimize(
            lambda t: prof.objective(np.maximum(t, prof.lower)),
            theta,
            method="Nelder-Mead",
            options={"xatol": 1e-10, "fatol": 1e-12, "maxfev": 20000},
        )
        n_eval += int(nm.nfev)
        res_nm = prof.minimise(np.maximum(nm.x, prof.lower))
        n_eval += int(res_nm.nfev)
        diagnostics.append(
            Diagnostic(
                "optimizer_retry",
                f"L-BFGS-B and Newton stopped with a scaled gradient of {grad:.2g}; retried "
                "with Nelder-Mead then L-BFGS-B.",
                "info",
            )
        )
        if res_nm.fun <= prof.objective(theta):
            theta, grad = prof.newton(res_nm.x)
        converged = bool(grad < CONVERGENCE_TOL and np.isfinite(prof.objective(theta)))
        optimizer += " + Nelder-Mead retry"
    res.fun = prof.objective(theta)
    if from_statsmodels and np.isfinite(start_dev) and start_dev - res.fun > 1e-6:
        diagnostics.append(
            Diagnostic(
                "statsmodels_polished",
                f"statsmodels stopped {start_dev - res.fun:.3g} deviance units short of the "
                "optimum; the estimate was refined on lme4's profiled deviance.",
                "info",
            )
        )
    if not converged:
        diagnostics.append(
            Diagnostic(
                "not_converged",
                f"The optimizer did not converge (scaled gradient {grad:.2g}, lme4's limit "
                f"{CONVERGENCE_TOL}): estimates may not be at the optimum; simplify "
                "the random effects or check the data.",
                "warning",
            )
        )
    return _lmm_fit_from_theta(
        prof, theta, "statsmodels", optimizer, converged, n_eval, diagnostics
    )


def _lmm_fit_from_theta(
    prof: ProfiledDeviance,
    theta: np.ndarray,
    engine: str,
    optimizer: str,
    converged: bool,
    n_evaluations: int,
    diagnostics: list[Diagnostic],
) -> LmmFit:
    s = prof.pls(theta)
    sigma = prof.sigma(theta)
    return LmmFit(
        engine=engine,
        problem=prof.problem,
        beta=s["beta"],
        vcov_beta=sigma**2 * np.linalg.inv(s["rxtrx"]),
        theta=np.asarray(theta, dtype=float),
        sigma=sigma,
        loglik=-0.5 * prof.objective(theta),
        deviance=prof.deviance,
        vcov_at=prof.vcov_at,
        refit=lambda y: fit_statsmodels(replace(prof.problem, y=np.asarray(y, dtype=float))),
        converged=converged,
        optimizer=optimizer,
        n_evaluations=n_evaluations,
        diagnostics=diagnostics,
    )
