"""The analysis of one simulated trial: the primary contrast, its test and its interval.

``analysis="lmm"`` (default) is the toolkit's mixed model of the score over time: fixed effects
``y ~ week * arm`` (``time="linear"``, the model the declared trial analysis uses) or
``y ~ C(visit) * arm`` (``time="categorical"``); random effects ``(week | patient)`` plus, in
split-face trials, ``(1 | patient:side)``; REML; the contrast is combination minus control at
the primary visit, with Satterthwaite's or Kenward-Roger's degrees of freedom. The model is
built directly as arrays (no formula parsing) and fitted by the toolkit's engine
(:func:`outcomes.models.lmm.engine.fit`) with lmerTest's Satterthwaite computation, so it gives
the numbers :func:`outcomes.lmm` gives on the same data (a test checks this to 1e-8).

``analysis="interval"``: the time to a full result (>= 50% improvement), interval-censored
on the visit grid, and the arm's log time ratio in a Weibull AFT model
(:mod:`~outcomes.planning.interval`); its estimate is on the log-time scale, not in score
points, so no true value is set for bias and coverage (``truth`` is NaN under the alternative).

``analysis="mmrm"``: the trial's declared MMRM through :func:`outcomes.mmrm`, LS-mean
difference at the primary visit (:mod:`~outcomes.planning.mmrm`; one public call per trial).

``analysis="responder"``: a full result at the primary visit, exact McNemar test of the
discordant pairs (split-face) or Fisher's exact test (parallel), log odds ratio
(:mod:`~outcomes.planning.responder`; no true value set, as for ``"interval"``).

``analysis="t-test"``: the paired t-test of the two sides at the primary visit (split-face) or
the two-sample t-test (parallel), on patients seen at that visit: the textbook analysis, for
comparison and for the closed-form check.

Model trouble is returned as data (``warnings``: diagnostic codes joined by ``;``; ``error``:
why a fit failed), never printed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.stats

from outcomes.errors import InputError, OutcomesError
from outcomes.models.lmm.engine import fit as engine_fit
from outcomes.models.lmm.kenward_roger import kenward_roger
from outcomes.models.lmm.satterthwaite import satterthwaite
from outcomes.models.lmm.types import LmmProblem, RandomTerm
from outcomes.planning.design import Design
from outcomes.planning.generate import Replicate
from outcomes.planning.interval import ENDPOINT, analyse_interval
from outcomes.planning.mmrm import analyse_mmrm
from outcomes.planning.responder import analyse_responder

__all__ = ["ANALYSES", "Analysis", "analyse"]


ANALYSES = ("lmm", "t-test", "mmrm", "interval", "responder")
DDF = ("satterthwaite", "kenward-roger")
TIMES = ("linear", "categorical")
RANDOM = ("slope", "intercept")


@dataclass(frozen=True)
class Analysis:
    """How each simulated trial is analysed.

    Parameters
    ----------
    analysis
        ``"lmm"``, ``"t-test"``, ``"mmrm"`` (:mod:`~outcomes.planning.mmrm`), ``"interval"``
        (time to a full result, interval-censored Weibull model:
        :mod:`~outcomes.planning.interval`) or ``"responder"`` (full result at the primary
        visit, exact McNemar or Fisher test: :mod:`~outcomes.planning.responder`).
    ddf
        LMM and MMRM degrees of freedom: ``"satterthwaite"`` or ``"kenward-roger"``.
    time
        LMM mean over time: ``"linear"`` in weeks (as the simulated truth) or
        ``"categorical"`` (one mean per visit and arm).
    random
        LMM patient random effects: ``"slope"`` (intercept and week slope) or ``"intercept"``.
    alpha
        Two-sided significance level; intervals are ``1 - alpha``.
    """

    analysis: str = "lmm"
    ddf: str = "satterthwaite"
    time: str = "linear"
    random: str = "slope"
    alpha: float = 0.05

    def __post_init__(self) -> None:
        for name, allowed in (
            ("analysis", ANALYSES),
            ("ddf", DDF),
            ("time", TIMES),
            ("random", RANDOM),
        ):
            if getattr(self, name) not in allowed:
                raise InputError(
                    f"{name}={getattr(self, name)!r}: use one of {', '.join(allowed)}."
                )
        if not 0 < self.alpha < 0.5:
            raise InputError(f"alpha={self.alpha}: a significance level between 0 and 0.5.")

    def truth(self, design: Design) -> float:
        """The true value of the estimate: the effect in score points, or for ``"interval"``
        0 under the null and NaN otherwise (a log time ratio the score model does not fix)."""
        if self.analysis in ("interval", "responder"):
            return 0.0 if design.effect == 0 else float("nan")
        return design.effect

    def estimand(self) -> str:
        """What the estimate is, in words, for reports."""
        if self.analysis == "interval":
            return (
                "the log of the ratio of times to a full result, combination over control "
                "(negative: faster with the combination); the score model fixes no true value "
                "on this scale, so bias and coverage are not computed"
            )
        if self.analysis == "responder":
            return (
                "the log odds ratio of a full result at the primary visit, combination over "
                "control (split-face: within the patient, from the discordant pairs; parallel: "
                "conditional maximum likelihood); the score model fixes no true value on this "
                "scale, so bias and coverage are not computed"
            )
        if self.analysis == "mmrm":
            return (
                "the LS-mean difference in score points, combination minus control, at the "
                "primary visit, adjusted for the side's baseline score"
            )
        return "the difference in score points, combination minus control, at the primary visit"

    def label(self) -> str:
        """One line for tables and reports."""
        if self.analysis == "t-test":
            return "t-test at the primary visit (paired for split-face), patients seen then"
        if self.analysis == "mmrm":
            return (
                "MMRM y ~ baseline + arm * visit (post-baseline visits, visit a factor), "
                "unstructured covariance within a side [+ (1 | patient) in split-face], REML, "
                f"{self.ddf} df; LS-mean difference at the primary visit"
            )
        if self.analysis == "responder":
            return (
                f"responders ({ENDPOINT.label.removeprefix('time to ')}) at the primary visit: "
                "exact McNemar test of the discordant pairs (split-face) or Fisher's exact test "
                "(parallel), patients seen then"
            )
        if self.analysis == "interval":
            return (
                f"{ENDPOINT.label} on the visit grid, interval-censored Weibull AFT model "
                "~ arm, Wald z of the log time ratio (split-face: SE clustered by patient)"
            )
        mean = "week * arm" if self.time == "linear" else "C(visit) * arm"
        re = "(week | patient)" if self.random == "slope" else "(1 | patient)"
        return f"LMM y ~ {mean} + {re} [+ (1 | patient:side)], REML, {self.ddf} df"


def lmm_problem(
    rep: Replicate, design: Design, analysis: Analysis
) -> tuple[LmmProblem, np.ndarray]:
    """The LMM of ``rep`` as arrays, and the contrast vector of the primary comparison.

    Columns are ordered as patsy orders ``y ~ week * arm`` (``Intercept, week, arm,
    week:arm``) or ``y ~ C(visit) * arm``, so results line up with :func:`outcomes.lmm`.
    """
    n = len(rep.y)
    ones = np.ones(n)
    primary = design.visit_days.index(int(design.primary_day or 0))
    n_vis = len(design.visit_days)
    if analysis.time == "linear" and n_vis > 1:
        x = np.column_stack([ones, rep.week, rep.arm, rep.week * rep.arm])
        names: tuple[str, ...] = ("Intercept", "week", "arm", "week:arm")
        contrast = np.array([0.0, 0.0, 1.0, design.primary_week])
    else:
        dummies = (rep.visit[:, None] == np.arange(1, n_vis)[None, :]).astype(float)
        x = np.column_stack([ones, dummies, rep.arm, dummies * rep.arm[:, None]])
        labels = [f"C(visit)[T.{v}]" for v in range(1, n_vis)]
        names = ("Intercept", *labels, "arm", *(f"{v}:arm" for v in labels))
        contrast = np.zeros(x.shape[1])
        contrast[n_vis] = 1.0
        if primary > 0:
            contrast[n_vis + primary] = 1.0
    slope = analysis.random == "slope" and n_vis > 1
    z = np.column_stack([ones, rep.week]) if slope else ones[:, None]
    z_names = ("(Intercept)", "week") if slope else ("(Intercept)",)
    terms = [RandomTerm("patient", rep.subject, np.arange(rep.n_subjects), z, z_names)]
    if design.design == "split_body" and n_vis > 1:
        terms.append(
            RandomTerm(
                "patient:side", rep.unit, np.arange(rep.n_units), ones[:, None], ("Intercept",)
            )
        )
    problem = LmmProblem(y=rep.y, x=x, x_names=names, terms=tuple(terms), reml=True)
    return problem, contrast


def _failed(reason: str) -> dict[str, Any]:
    nan = float("nan")
    return {
        "estimate": nan,
        "std_error": nan,
        "df": nan,
        "p_value": nan,
        "conf_low": nan,
        "conf_high": nan,
        "warnings": "",
        "error": reason,
    }


def _finish(est: float, se: float, df: float, alpha: float, warnings: str) -> dict[str, Any]:
    t = est / se
    p = float(2 * scipy.stats.t.sf(abs(t), df))
    half = float(scipy.stats.t.ppf(1 - alpha / 2, df)) * se
    return {
        "estimate": est,
        "std_error": se,
        "df": df,
        "p_value": p,
        "conf_low": est - half,
        "conf_high": est + half,
        "warnings": warnings,
        "error": "",
    }


def _lmm(rep: Replicate, design: Design, analysis: Analysis) -> dict[str, Any]:
    problem, contrast = lmm_problem(rep, design, analysis)
    try:
        fit = engine_fit(problem)
        codes = [d.code for d in fit.diagnostics if d.severity != "info"]
        satt = satterthwaite(fit)
        if np.any(satt.hessian_eigenvalues < -1e-8) and "hessian_not_pd" not in codes:
            codes.append("hessian_not_pd")
        if analysis.ddf == "kenward-roger":
            kr = kenward_roger(fit)
            var = float(contrast @ kr.vcov @ contrast)
            df = float(kr.df(contrast)[0])
        else:
            var = float(contrast @ fit.vcov_beta @ contrast)
            df = float(satt.df(contrast)[0])
    except (OutcomesError, np.linalg.LinAlgError) as exc:
        return _failed(f"{type(exc).__name__}: {exc}")
    if not (np.isfinite(var) and var > 0 and np.isfinite(df) and df > 0):
        return _failed("no usable standard error or degrees of freedom")
    est = float(contrast @ fit.beta)
    return _finish(est, float(np.sqrt(var)), df, analysis.alpha, ";".join(codes))


def _t_test(rep: Replicate, design: Design, analysis: Analysis) -> dict[str, Any]:
    at = rep.visit == design.visit_days.index(int(design.primary_day or 0))
    y, arm, subject = rep.y[at], rep.arm[at], rep.subject[at]
    if design.design == "split_body":
        treated = np.full(rep.n_subjects, np.nan)
        control = np.full(rep.n_subjects, np.nan)
        treated[subject[arm == 1]] = y[arm == 1]
        control[subject[arm == 0]] = y[arm == 0]
        diff = treated - control
        diff = diff[np.isfinite(diff)]
        if len(diff) < 2 or np.std(diff) == 0:
            return _failed("fewer than 2 patients (or no variation) at the primary visit")
        se = float(np.std(diff, ddof=1) / np.sqrt(len(diff)))
        return _finish(float(diff.mean()), se, len(diff) - 1.0, analysis.alpha, "")
    a, b = y[arm == 1], y[arm == 0]
    if len(a) < 2 or len(b) < 2:
        return _failed("fewer than 2 patients per arm at the primary visit")
    df = len(a) + len(b) - 2.0
    pooled = ((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / df
    se = float(np.sqrt(pooled * (1 / len(a) + 1 / len(b))))
    if se == 0:
        return _failed("no variation at the primary visit")
    return _finish(float(a.mean() - b.mean()), se, df, analysis.alpha, "")


def analyse(rep: Replicate, design: Design, analysis: Analysis) -> dict[str, Any]:
    """Estimate, SE, df, p-value and interval of the primary contrast of one trial.

    Returns
    -------
    dict
        ``estimate, std_error, df, p_value, conf_low, conf_high, warnings, error``;
        a failed fit has NaN numbers and says why in ``error``.
    """
    if analysis.analysis == "t-test":
        return _t_test(rep, design, analysis)
    if analysis.analysis == "interval":
        return analyse_interval(rep, design, analysis.alpha)
    if analysis.analysis == "responder":
        return analyse_responder(rep, design, analysis.alpha)
    if analysis.analysis == "mmrm":
        return analyse_mmrm(rep, design, analysis.alpha, analysis.ddf)
    return _lmm(rep, design, analysis)
