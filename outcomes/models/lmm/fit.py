"""Linear mixed models on long data, with lme4's numbers, lmerTest's tests and emmeans' means.

``lmm(data, "score ~ week * arm", groups="patient", re_formula="~week")`` fits a linear mixed
model with random intercepts (and slopes) for ``groups`` and, optionally, random intercepts for
levels ``nested`` within it (side within patient in split-face trials, patient within clinic in
registries). The study design picks that structure by default
(:func:`~outcomes.models.lmm.design.design_structure`), so the two sides of one face are never
treated as two independent patients.

Engines
-------
``engine="statsmodels"`` fits with :class:`statsmodels.regression.mixed_linear_model.MixedLM`
(``exog_vc`` for the nested levels) and then refines the optimum by minimising lme4's profiled
deviance (written here in NumPy,
:class:`~outcomes.models.lmm.deviance.ProfiledDeviance`) with SciPy from statsmodels' estimate:
statsmodels often stops a little short of the optimum, which is enough to move estimates in the
fourth digit. ``engine="outcomes"`` calls the toolkit's own profiled engine
(:mod:`outcomes.models.lmm.engine`). ``engine="auto"`` uses the toolkit's engine when it is
installed and otherwise statsmodels, and says so in the diagnostics. Both engines return an
:class:`~outcomes.models.lmm.types.LmmFit`; everything here (Satterthwaite degrees of freedom,
marginal means, contrasts, diagnostics) works on that alone.

Inference: t-tests, intervals, marginal means and contrasts use Satterthwaite's degrees of
freedom computed as lmerTest does (:mod:`outcomes.models.lmm.satterthwaite`), or, with
``ddf="kenward-roger"``, pbkrtest's Kenward-Roger adjusted covariance and degrees of freedom
(:func:`~outcomes.models.lmm.kenward_roger.kenward_roger`; REML fits up to
:data:`~outcomes.models.lmm.kenward_roger.KR_MAX_ROWS` rows).

Definitions follow lme4: ``theta`` holds the column-wise lower triangle of each relative
covariance factor ``Lambda`` (random-effect covariance ``sigma^2 Lambda Lambda'``); the
log-likelihood is REML or ML as fitted; ``AIC = -2 logLik + 2 k`` and
``BIC = -2 logLik + log(n) k`` with ``k = p + len(theta) + 1``; a fit is singular when a
diagonal element of ``Lambda`` is below ``1e-4`` (lme4's ``isSingular``).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from outcomes.errors import InputError, ModelError
from outcomes.models.blas import one_blas_thread
from outcomes.models.lmm.design import _Spec, build_problem, design_structure
from outcomes.models.lmm.result import LmmResult
from outcomes.models.lmm.statsmodels_path import fit_statsmodels
from outcomes.models.lmm.types import LmmFit, LmmProblem
from outcomes.results import Diagnostic

__all__ = ["lmm"]


ENGINES = ("auto", "statsmodels", "outcomes")


def _fit_outcomes(problem: LmmProblem) -> LmmFit:
    from outcomes.models.lmm import engine  # lazy: the engine is optional

    return engine.fit(problem)


def _engine_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("outcomes.models.lmm.engine") is not None


# --------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------


def lmm(
    data: pd.DataFrame,
    formula: str,
    *,
    groups: str | None = None,
    re_formula: str = "~1",
    nested: str | Sequence[str] | None = None,
    design: str | None = None,
    reml: bool = True,
    engine: str = "auto",
    level: float = 0.95,
    ddf: str = "satterthwaite",
) -> LmmResult:
    """Fit a linear mixed model to long data.

    Parameters
    ----------
    data
        One row per observation (e.g. unit x visit).
    formula
        Fixed effects, patsy syntax: ``"score ~ week * arm"``, ``"chg ~ base + C(visit) * arm"``.
    groups
        Column of the outermost grouping factor (patient; clinic in registries).
    re_formula
        Random effects of ``groups``: ``"~1"`` (random intercept, default) or ``"~week"``
        (random intercept and slope, correlated).
    nested
        Column(s) nested within ``groups``, outer to inner, each with a random intercept: the
        unit (side) within the patient in split-body trials, ``(1 | patient/side)`` in lme4.
    design
        Study design code (``"split_body"``, ``"parallel"``, ``"single_arm"``,
        ``"observational"``): fills ``groups``/``nested`` from :func:`design_structure` when not
        given; a split-body design always nests the unit in the subject.
    reml
        REML (default) or ML.
    engine
        ``"auto"`` (the toolkit's engine when installed, else statsmodels), ``"statsmodels"``
        or ``"outcomes"``.
    level
        Confidence level of intervals.
    ddf
        Degrees of freedom of every t-test, interval, marginal mean and contrast:
        ``"satterthwaite"`` (default; lmerTest's) or ``"kenward-roger"`` (pbkrtest's, which
        also uses its adjusted covariance for the standard errors; REML fits with at most
        :data:`KR_MAX_ROWS` rows).

    Returns
    -------
    LmmResult

    Examples
    --------
    >>> fit = lmm(df, "score ~ week * arm", groups="patient", re_formula="~week")  # doctest: +SKIP
    >>> fit.emmeans("arm", at={"week": 24})  # doctest: +SKIP
    """
    nested_l: list[str] = (
        [] if nested is None else ([nested] if isinstance(nested, str) else list(nested))
    )
    if design is not None:
        default = design_structure(design)
        if groups is None:
            groups = default["groups"]
            if not nested_l:
                nested_l = list(default["nested"])
        elif design == "split_body" and not nested_l:
            unit = default["nested"][0]
            if unit not in data.columns:
                raise InputError(
                    f"A split-body design needs the unit column {unit!r} to nest sides within "
                    "subjects; pass nested= with the unit column."
                )
            nested_l = [unit]
    if groups is None:
        raise InputError("lmm() needs groups= (the subject or clinic column) or design=.")
    if engine not in ENGINES:
        raise InputError(f"engine={engine!r}: use one of {', '.join(ENGINES)}.")
    if not 0 < level < 1:
        raise InputError(f"level={level} must be between 0 and 1.")
    if ddf not in ("satterthwaite", "kenward-roger"):
        raise InputError(f"ddf={ddf!r}: use 'satterthwaite' or 'kenward-roger'.")
    if ddf == "kenward-roger" and not reml:
        raise InputError("Kenward-Roger degrees of freedom need a REML fit (reml=True).")
    # The fit and Satterthwaite's derivatives are many small matrix products: BLAS threads
    # only add cost there (a lot of it on a busy machine).
    with one_blas_thread():
        problem, spec = build_problem(
            data, formula, groups=groups, re_formula=re_formula, nested=nested_l, reml=reml
        )
        return _fit_problem(problem, spec, engine=engine, level=level, ddf=ddf)


def _fit_problem(
    problem: LmmProblem, spec: _Spec, *, engine: str, level: float, ddf: str
) -> LmmResult:
    """Fit a built problem with the chosen engine and wrap it in an :class:`LmmResult`."""
    notes: list[Diagnostic] = []
    if spec.n_dropped:
        notes.append(
            Diagnostic(
                "rows_dropped",
                f"{spec.n_dropped} row(s) with missing values in model variables were left out.",
                "info",
            )
        )
    if engine == "outcomes" or (engine == "auto" and _engine_available()):
        try:
            fit = _fit_outcomes(problem)
        except ImportError as exc:
            if engine == "outcomes":
                raise ModelError(f"The toolkit's LMM engine is not available: {exc}") from None
            fit = fit_statsmodels(problem)
            notes.append(
                Diagnostic("engine_fallback", f"engine='auto': {exc}; used statsmodels.", "info")
            )
    else:
        fit = fit_statsmodels(problem)
        if engine == "auto":
            notes.append(
                Diagnostic(
                    "engine_fallback",
                    "engine='auto': the toolkit's engine (outcomes.models.lmm.engine) is not "
                    "installed; used statsmodels.",
                    "info",
                )
            )
    fit.diagnostics = [*notes, *fit.diagnostics]
    return LmmResult(fit=fit, spec=spec, level=level, ddf=ddf)
