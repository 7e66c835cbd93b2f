"""The result of :func:`outcomes.models.lmm.fit.lmm`: tests, means, contrasts, diagnostics."""

from __future__ import annotations

import itertools
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from outcomes.errors import ConvergenceWarning, InputError, ModelError, SingularFitWarning
from outcomes.models import means
from outcomes.models.blas import one_blas_thread
from outcomes.models.lmm.design import _Spec
from outcomes.models.lmm.deviance import SINGULAR_TOL
from outcomes.models.lmm.kenward_roger import KenwardRogerState, _lambdas, kenward_roger
from outcomes.models.lmm.satterthwaite import SatterthwaiteState, satterthwaite
from outcomes.models.lmm.types import LmmFit
from outcomes.models.means import LinearPredictor
from outcomes.results import Diagnostic, diagnostics_frame, tidy_frame, to_ard

__all__ = ["LmmResult"]


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


_WARNING_CATEGORY = {
    "singular_fit": SingularFitWarning,
    "not_converged": ConvergenceWarning,
    "hessian_not_pd": ConvergenceWarning,
    "optimizer_retry": ConvergenceWarning,
}


@dataclass(repr=False)
class LmmResult:
    """A fitted linear mixed model: tidy tables, marginal means, contrasts and diagnostics.

    Attributes
    ----------
    fit
        The engine's :class:`~outcomes.models.lmm.types.LmmFit`.
    engine
        Engine used (``"statsmodels"`` or ``"outcomes"``).
    formula, groups, nested, re_formula, reml
        The model as specified.
    fixed
        Fixed effects, tidy columns, Satterthwaite (or Kenward-Roger) degrees of freedom.
    variance_components
        ``group, term, term2, variance, sd, correlation``: one row per variance (``term2``
        empty), one per covariance/correlation, and the residual.
    residual_variance, loglik, aic, bic, nobs, ngroups, converged
        As lme4 reports them.
    diagnostics
        ``code, severity, message``.
    """

    fit: LmmFit
    spec: _Spec
    level: float = 0.95
    ddf: str = "satterthwaite"
    satt: SatterthwaiteState = field(init=False, repr=False)
    kr: KenwardRogerState | None = field(init=False, repr=False, default=None)
    _diagnostics: list[Diagnostic] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.satt = satterthwaite(self.fit)
        if self.ddf == "kenward-roger":
            self.kr = kenward_roger(self.fit)
        self._diagnostics = list(self.fit.diagnostics)
        codes = {d.code for d in self._diagnostics}
        problem = self.fit.problem
        prof_lambdas = _lambdas(self.fit.theta, problem)
        boundary = []
        for term, lam in zip(problem.terms, prof_lambdas, strict=True):
            small = np.diag(lam) < SINGULAR_TOL
            if np.any(small):
                names = [n for n, s in zip(term.z_names, small, strict=True) if s]
                boundary.append(f"{term.group} ({', '.join(names)})")
        if boundary and "singular_fit" not in codes:
            self._diagnostics.append(
                Diagnostic(
                    "singular_fit",
                    "Singular (boundary) fit: the random-effects covariance of "
                    f"{'; '.join(boundary)} is at the edge of its range (a variance at zero or "
                    "a correlation at +/-1). The data do not support this random-effects "
                    "structure; consider removing the term. Standard errors and degrees of "
                    "freedom of the fixed effects are less reliable.",
                    "warning",
                )
            )
        eig = self.satt.hessian_eigenvalues
        if np.any(eig < -1e-8) and "hessian_not_pd" not in codes:
            self._diagnostics.append(
                Diagnostic(
                    "hessian_not_pd",
                    "The Hessian of the deviance is not positive definite (eigenvalues "
                    f"{', '.join(f'{v:.2g}' for v in eig[eig < -1e-8])}): the fit may not be at "
                    "a minimum, and Satterthwaite degrees of freedom are doubtful.",
                    "warning",
                )
            )
        for d in self._diagnostics:
            d.emit(_WARNING_CATEGORY.get(d.code, ConvergenceWarning), stacklevel=4)

    def refit(self, y: Any) -> LmmResult:
        """The same model fitted to another response: for simulation studies (power, coverage).

        Rows, designs, groups, engine, ``ddf`` and ``level`` are this fit's; only the response
        changes. With the toolkit's engine nothing that depends only on the design is computed
        again (input checks, group structure, the cross-products ``Z'Z`` and ``Z'X``). Every
        refit starts from lme4's default start, so it does not depend on earlier fits and
        gives the numbers of a fresh :func:`~outcomes.models.lmm.fit.lmm` on the same data.

        Parameters
        ----------
        y
            One value per row of the model frame (``spec.frame``: the data's rows without
            missing values in model variables), in its order.

        Returns
        -------
        LmmResult
            Diagnostics are emitted as warnings as by ``lmm()``; in a simulation loop, silence
            them (``warnings.catch_warnings``) and count them from ``.diagnostics``.

        Examples
        --------
        >>> first = lmm(df, "score ~ week * arm", groups="patient")  # doctest: +SKIP
        >>> again = first.refit(simulated_scores)  # doctest: +SKIP
        """
        values = np.asarray(y, dtype=float)
        if values.shape != (self.nobs,) or not np.all(np.isfinite(values)):
            raise InputError(
                f"refit() needs {self.nobs} finite response values, one per row of the model "
                f"frame; got shape {values.shape}"
                + ("." if values.shape != (self.nobs,) else " with missing values.")
            )
        if self.fit.refit is None:
            raise ModelError(f"The {self.engine} engine's fit cannot be refitted.")
        with one_blas_thread():
            fit = self.fit.refit(values)
            kept = [
                d for d in self.fit.diagnostics if d.code in ("rows_dropped", "engine_fallback")
            ]
            fit.diagnostics = [*kept, *fit.diagnostics]
            frame = self.spec.frame.copy()
            frame[self.spec.response] = values
            spec = replace(self.spec, frame=frame)
            return LmmResult(fit=fit, spec=spec, level=self.level, ddf=self.ddf)

    # -- basic quantities ---------------------------------------------------------------------

    @property
    def engine(self) -> str:
        """The engine that fitted the model."""
        return self.fit.engine

    @property
    def formula(self) -> str:
        """Fixed-effects formula."""
        return self.spec.formula

    @property
    def reml(self) -> bool:
        """Whether the fit is REML (else ML)."""
        return self.fit.problem.reml

    @property
    def nobs(self) -> int:
        """Number of rows used."""
        return len(self.fit.problem.y)

    @property
    def ngroups(self) -> dict[str, int]:
        """Number of groups of each grouping factor."""
        return {t.group: t.n_groups for t in self.fit.problem.terms}

    @property
    def converged(self) -> bool:
        """Whether the optimizer converged."""
        return self.fit.converged

    @property
    def loglik(self) -> float:
        """Log-likelihood (REML or ML, as fitted), lme4's ``logLik()``."""
        return float(self.fit.loglik)

    @property
    def df_model(self) -> int:
        """Number of parameters: fixed effects, ``theta`` and ``sigma``."""
        return len(self.fit.beta) + len(self.fit.theta) + 1

    @property
    def aic(self) -> float:
        """``-2 logLik + 2 k`` (lme4)."""
        return -2 * self.loglik + 2 * self.df_model

    @property
    def bic(self) -> float:
        """``-2 logLik + log(n) k`` (lme4)."""
        return -2 * self.loglik + np.log(self.nobs) * self.df_model

    @property
    def residual_variance(self) -> float:
        """``sigma^2``."""
        return float(self.fit.sigma**2)

    @property
    def diagnostics(self) -> pd.DataFrame:
        """Model trouble as data: ``code, severity, message``."""
        return diagnostics_frame(self._diagnostics)

    @property
    def fixed(self) -> pd.DataFrame:
        """Fixed effects: estimate, standard error, t, Satterthwaite df, p, confidence interval."""
        p = len(self.fit.beta)
        return self.test(np.eye(p), terms=list(self.fit.problem.x_names))

    @property
    def variance_components(self) -> pd.DataFrame:
        """Random-effect variances, covariances and correlations, and the residual variance."""
        rows = []
        sigma2 = self.fit.sigma**2
        lams = _lambdas(self.fit.theta, self.fit.problem)
        for term, lam in zip(self.fit.problem.terms, lams, strict=True):
            cov = sigma2 * lam @ lam.T
            sd = np.sqrt(np.diag(cov))
            for i, name in enumerate(term.z_names):
                rows.append(
                    {
                        "group": term.group,
                        "term": name,
                        "term2": None,
                        "variance": cov[i, i],
                        "sd": sd[i],
                        "correlation": np.nan,
                    }
                )
            for i, j in itertools.combinations(range(len(term.z_names)), 2):
                with np.errstate(divide="ignore", invalid="ignore"):
                    corr = cov[i, j] / (sd[i] * sd[j])
                rows.append(
                    {
                        "group": term.group,
                        "term": term.z_names[i],
                        "term2": term.z_names[j],
                        "variance": cov[i, j],
                        "sd": np.nan,
                        "correlation": corr,
                    }
                )
        rows.append(
            {
                "group": "Residual",
                "term": None,
                "term2": None,
                "variance": sigma2,
                "sd": self.fit.sigma,
                "correlation": np.nan,
            }
        )
        return pd.DataFrame(rows)

    # -- contrasts ----------------------------------------------------------------------------

    @property
    def linear_predictor(self) -> LinearPredictor:
        """Coefficients, covariance (Kenward-Roger's when chosen) and df rule for :mod:`means`."""
        kr = self.kr
        return LinearPredictor(
            names=list(self.fit.problem.x_names),
            beta=self.fit.beta,
            vcov=self.fit.vcov_beta if kr is None else kr.vcov,
            df_fn=self.satt.df if kr is None else kr.df,
            design_info=self.spec.design_info,
            data=self.spec.frame,
            level=self.level,
        )

    def test(
        self, contrasts: np.ndarray, terms: Sequence[str] | None = None, level: float | None = None
    ) -> pd.DataFrame:
        """t-tests of linear contrasts ``L beta`` with Satterthwaite df (lmerTest's ``contest``).

        See :func:`outcomes.models.means.linear_test`; ``contrasts`` has one column per
        ``fixed.term``.
        """
        return means.linear_test(self.linear_predictor, contrasts, terms=terms, level=level)

    def emmeans(
        self,
        specs: str | Sequence[str],
        by: str | Sequence[str] | None = None,
        at: Mapping[str, Any] | None = None,
        level: float | None = None,
    ) -> pd.DataFrame:
        """Estimated marginal means, as R's ``emmeans(fit, specs, by = by, at = at)``.

        Degrees of freedom are Satterthwaite's (emmeans' ``lmer.df = "satterthwaite"``) or
        Kenward-Roger's. See :func:`outcomes.models.means.emmeans` for the parameters.
        """
        return means.emmeans(self.linear_predictor, specs, by=by, at=at, level=level)

    def contrasts(
        self,
        specs: str,
        by: str | Sequence[str] | None = None,
        at: Mapping[str, Any] | None = None,
        method: str = "trt.vs.ctrl",
        ref: Any = None,
        adjust: str = "none",
        level: float | None = None,
    ) -> pd.DataFrame:
        """Contrasts of marginal means, as ``contrast(emmeans(fit, specs, by = by), method)``.

        See :func:`outcomes.models.means.contrasts` for the parameters and adjustments.
        """
        return means.contrasts(
            self.linear_predictor,
            specs,
            by=by,
            at=at,
            method=method,
            ref=ref,
            adjust=adjust,
            level=level,
        )

    # -- output ------------------------------------------------------------------------------

    def tidy(self) -> pd.DataFrame:
        """The fixed effects with the shared tidy columns (:attr:`fixed`)."""
        return tidy_frame(self.fixed)

    def to_ard(self, analysis: str, groups: Mapping[str, object] | None = None) -> pd.DataFrame:
        """Analysis-results-dataset rows: fixed effects, variance components and fit statistics."""
        diag = self.diagnostics
        fixed = to_ard(self.fixed, analysis=analysis, groups=groups, diagnostics=diag)
        vc = self.variance_components
        vc_tidy = pd.DataFrame(
            {
                "term": [
                    f"{g}|{t}" + (f"|{t2}" if t2 is not None else "") if g != "Residual" else g
                    for g, t, t2 in zip(vc["group"], vc["term"], vc["term2"], strict=True)
                ],
                "variance": vc["variance"],
                "sd": vc["sd"],
                "correlation": vc["correlation"],
            }
        )
        vc_ard = to_ard(vc_tidy, analysis=analysis, groups=groups, diagnostics=diag)
        vc_ard = vc_ard[vc_ard["stat_value"].notna()]
        model = pd.DataFrame(
            [
                {
                    "term": "model",
                    "loglik": self.loglik,
                    "aic": self.aic,
                    "bic": self.bic,
                    "nobs": float(self.nobs),
                    "reml": float(self.reml),
                }
            ]
        )
        model_ard = to_ard(model, analysis=analysis, groups=groups, diagnostics=diag)
        return pd.concat([fixed, vc_ard, model_ard], ignore_index=True)

    @property
    def _ddf_label(self) -> str:
        return "Kenward-Roger" if self.kr is not None else "Satterthwaite"

    def __repr__(self) -> str:
        return (
            f"<LmmResult {'REML' if self.reml else 'ML'} ({self.engine}) {self.formula!r}, "
            f"nobs {self.nobs}, logLik {self.loglik:.4f}>"
        )

    def _header(self) -> str:
        groups = ", ".join(f"{k}: {v}" for k, v in self.ngroups.items())
        return (
            f"Linear mixed model ({'REML' if self.reml else 'ML'}, engine {self.engine}): "
            f"{self.formula}\n"
            f"random: {self.spec.re_formula} | {self.spec.groups}"
            + "".join(f" / {n}" for n in self.spec.nested)
            + f"\nnobs {self.nobs}; groups {groups}\n"
            f"logLik {self.loglik:.4f}  AIC {self.aic:.4f}  BIC {self.bic:.4f}  "
            f"converged {self.converged}"
        )

    def __str__(self) -> str:
        with pd.option_context("display.width", 120, "display.max_columns", 20):
            parts = [
                self._header(),
                f"\nFixed effects ({self._ddf_label} df):",
                self.fixed.to_string(index=False, float_format=lambda v: f"{v:.4g}"),
                "\nVariance components:",
                self.variance_components.fillna("").to_string(
                    index=False, float_format=lambda v: f"{v:.4g}"
                ),
            ]
            serious = [d for d in self._diagnostics if d.severity != "info"]
            notes = [d.code for d in self._diagnostics if d.severity == "info"]
            if serious:
                parts.append("\nDiagnostics:")
                parts += [
                    textwrap.fill(
                        f"[{d.severity}] {d.code}: {d.message}", width=100, subsequent_indent="  "
                    )
                    for d in serious
                ]
            if notes:
                parts.append(f"\nNotes: {', '.join(notes)} (see .diagnostics)")
        return "\n".join(parts)

    def _repr_html_(self) -> str:
        header = "<br>".join(
            line.replace("&", "&amp;").replace("<", "&lt;") for line in self._header().splitlines()
        )
        html = [
            f"<p><b>{header}</b></p>",
            f"<p>Fixed effects ({self._ddf_label} df)</p>",
            self.fixed.to_html(index=False, float_format=lambda v: f"{v:.4g}"),
            "<p>Variance components</p>",
            self.variance_components.to_html(
                index=False, na_rep="", float_format=lambda v: f"{v:.4g}"
            ),
        ]
        if len(self._diagnostics):
            html += ["<p>Diagnostics</p>", self.diagnostics.to_html(index=False)]
        return "\n".join(html)
