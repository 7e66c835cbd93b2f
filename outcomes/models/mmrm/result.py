"""The fitted MMRM: tidy tables, covariance, LS means and contrasts, diagnostics, ARD rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from outcomes.errors import ConvergenceWarning, InputError, SingularFitWarning
from outcomes.models import means
from outcomes.models.blas import one_blas_thread
from outcomes.models.mmrm.data import MmrmData
from outcomes.models.mmrm.dof import Inference
from outcomes.models.mmrm.likelihood import Likelihood, OptimResult
from outcomes.results import Diagnostic, diagnostics_frame, tidy_frame, to_ard

__all__ = ["MmrmResult"]

_DDF_LABEL = {
    "kenward-roger": "Kenward-Roger",
    "kenward-roger-linear": "Kenward-Roger (linear)",
    "satterthwaite": "Satterthwaite",
    "between-within": "between-within",
    "residual": "residual",
}


@dataclass(repr=False)
class MmrmResult:
    """A fitted MMRM.

    Attributes
    ----------
    data
        The arrays and bookkeeping (:class:`~outcomes.models.mmrm.data.MmrmData`).
    cov, requested_cov
        Covariance structure fitted, and the one asked for (they differ after a fallback).
    likelihood, optim, hessian, inference
        The likelihood, how the optimiser ended, the Hessian of the deviance in SAS's
        covariance parameters, and the fixed-effects covariance and df rule.
    """

    data: MmrmData
    formula: str
    cov: str
    requested_cov: str
    likelihood: Likelihood
    optim: OptimResult
    hessian: np.ndarray
    inference: Inference
    subject: str
    visit: str
    nested_in: str | None
    cov_by: str | None
    vcov_type: str
    level: float = 0.95
    extra_diagnostics: list[Diagnostic] = field(default_factory=list)
    _diagnostics: list[Diagnostic] = field(init=False)

    def __post_init__(self) -> None:
        diags = list(self.extra_diagnostics)
        d = self.data
        counts = np.bincount(d.block * (d.unit.max() + 1) + d.unit)
        counts = counts[counts > 0]
        m = len(d.visit_levels)
        partial = int(np.sum(counts < m))
        diags.append(
            Diagnostic(
                "missing_visits",
                f"{partial} of {len(counts)} subjects miss at least one of {m} visits; "
                f"{d.n_dropped} rows were dropped for a missing outcome or covariate. Every "
                "observed visit enters the likelihood (valid if missing at random); nothing "
                "is imputed.",
                "info",
            )
        )
        diags.append(
            Diagnostic(
                "visit_order",
                f"Visits ordered {d.visit_order_rule}: {', '.join(map(str, d.visit_levels))}.",
                "info",
            )
        )
        aliased = [n for n, k in zip(d.names, d.kept, strict=True) if not k]
        if aliased:
            diags.append(
                Diagnostic(
                    "aliased_terms",
                    f"Fixed effects {aliased} are not estimable from these data (e.g. a visit "
                    "never observed in one arm) and were dropped; means and contrasts that "
                    "need them are reported as NaN.",
                    "warning",
                )
            )
        for g, sig in enumerate(self._sigmas()):
            vals = np.linalg.eigvalsh(sig)
            if vals[0] <= 1e-8 * vals[-1]:
                diags.append(
                    Diagnostic(
                        "covariance_not_pd",
                        f"The estimated {self.cov} covariance of group "
                        f"{d.group_levels[g]!r} is (nearly) singular (smallest eigenvalue "
                        f"{vals[0]:.3g}); a simpler structure may suit the data better.",
                        "warning",
                    )
                )
        if self.nested_in is not None:
            tau2 = self.random_intercept_variance
            if tau2 < 1e-6 * float(np.mean(np.diag(self._sigmas()[0]))):
                diags.append(
                    Diagnostic(
                        "singular_fit",
                        f"The {self.nested_in!r} random-intercept variance is at its "
                        "boundary (zero): sides of one patient are no more alike than the "
                        "within-side covariance says.",
                        "warning",
                    )
                )
        self._diagnostics = diags
        categories = {
            "not_converged": ConvergenceWarning,
            "fallback_structure": ConvergenceWarning,
            "covariance_not_pd": ConvergenceWarning,
            "singular_fit": SingularFitWarning,
            "aliased_terms": ConvergenceWarning,
        }
        for diag in diags:
            diag.emit(categories.get(diag.code, ConvergenceWarning), stacklevel=4)

    # -- fit summaries ---------------------------------------------------------------------

    def _sigmas(self) -> list[np.ndarray]:
        return self.likelihood.sigmas(self.optim.theta)[0]

    @property
    def reml(self) -> bool:
        """Whether the fit is REML (else ML)."""
        return self.likelihood.reml

    @property
    def ddf(self) -> str:
        """Degrees-of-freedom method."""
        return self.inference.method

    @property
    def nobs(self) -> int:
        """Rows used."""
        return len(self.data.y)

    @property
    def n_subjects(self) -> int:
        """Independent blocks: subjects (patients in a split-face MMRM)."""
        return self.likelihood.layout.n_blocks

    @property
    def converged(self) -> bool:
        """Whether the optimiser converged."""
        return self.optim.converged

    @property
    def loglik(self) -> float:
        """(Restricted) log-likelihood, as SAS (``-2 Res Log Likelihood`` / -2) and nlme::gls."""
        return -0.5 * self.optim.deviance

    @property
    def n_params(self) -> int:
        """Parameters counted by AIC/BIC: covariance parameters, plus fixed effects for ML."""
        k = self.likelihood.n_params
        return k if self.reml else k + self.data.x.shape[1]

    @property
    def aic(self) -> float:
        """``-2 logLik + 2 k`` (SAS's convention for ``k``, see :attr:`n_params`)."""
        return -2 * self.loglik + 2 * self.n_params

    @property
    def bic(self) -> float:
        """``-2 logLik + log(n_subjects) k`` (SAS's)."""
        return -2 * self.loglik + np.log(self.n_subjects) * self.n_params

    @property
    def diagnostics(self) -> pd.DataFrame:
        """Model trouble and notes as data: ``code, severity, message``."""
        return diagnostics_frame(self._diagnostics)

    @property
    def random_intercept_variance(self) -> float:
        """Split-face MMRM: variance of the patient random intercept (``nan`` otherwise)."""
        if self.nested_in is None:
            return float("nan")
        return float(self.optim.theta[-1])

    def covariance_matrix(self, group: Any = None) -> pd.DataFrame:
        """Estimated covariance over visits (within a side when split-face).

        Parameters
        ----------
        group
            Level of ``cov_by`` (default: the only or first group).
        """
        levels = self.data.group_levels
        g = 0 if group is None else levels.index(group) if group in levels else None
        if g is None:
            raise InputError(f"group={group!r} is not a level of {self.cov_by!r}: {levels}.")
        names = [str(v) for v in self.data.visit_levels]
        return pd.DataFrame(self._sigmas()[g], index=names, columns=names)

    def correlation_matrix(self, group: Any = None) -> pd.DataFrame:
        """Estimated correlation over visits."""
        cov = self.covariance_matrix(group)
        sd = np.sqrt(np.diag(cov.to_numpy()))
        return pd.DataFrame(cov.to_numpy() / np.outer(sd, sd), index=cov.index, columns=cov.columns)

    @property
    def covariance_parameters(self) -> pd.DataFrame:
        """SAS's covariance parameters: ``group, parameter, estimate, std_error``.

        Standard errors are from the inverse observed information (``2 H^-1``).
        """
        m = len(self.data.visit_levels)
        names = self.likelihood.structure.names(m)
        rows = []
        for level in self.data.group_levels:
            rows += [(level, n) for n in names]
        if self.nested_in is not None:
            rows.append((self.nested_in, "var[intercept]"))
        se = np.full(len(self.optim.theta), np.nan)
        if np.all(np.isfinite(self.hessian)):
            with np.errstate(invalid="ignore"):
                se = np.sqrt(np.diag(2 * np.linalg.pinv(self.hessian)))
        return pd.DataFrame(
            {
                "group": [r[0] for r in rows],
                "parameter": [r[1] for r in rows],
                "estimate": self.optim.theta,
                "std_error": se,
            }
        )

    # -- fixed effects, tests, means ---------------------------------------------------------

    def _reduced(self, lmat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Contrast columns on the kept design and whether each row is estimable."""
        lmat = np.atleast_2d(np.asarray(lmat, dtype=float))
        nb = self.data.null_basis
        scale = np.maximum(1.0, np.abs(lmat).max(axis=1))
        estimable = (
            np.all(np.abs(lmat @ nb) <= 1e-8 * scale[:, None], axis=1)
            if nb.size
            else np.ones(len(lmat), dtype=bool)
        )
        return lmat[:, self.data.kept], estimable

    def _df(self, lmat: np.ndarray) -> np.ndarray:
        red, estimable = self._reduced(lmat)
        out = np.full(len(red), np.nan)
        if estimable.any():
            with one_blas_thread():
                out[estimable] = self.inference.df(red[estimable])
        return out

    @property
    def predictor(self) -> means.LinearPredictor:
        """The fixed effects for :mod:`outcomes.models.means` (aliased columns at zero)."""
        p = len(self.data.names)
        beta = np.zeros(p)
        vcov = np.zeros((p, p))
        kept = self.data.kept
        beta[kept] = self.beta
        vcov[np.ix_(kept, kept)] = self.inference.vcov
        return means.LinearPredictor(
            names=self.data.names,
            beta=beta,
            vcov=vcov,
            df_fn=self._df,
            design_info=self.data.design_info,
            data=self.data.frame,
            level=self.level,
        )

    @property
    def beta(self) -> np.ndarray:
        """Estimates of the estimable (kept) fixed effects."""
        return self.inference.beta

    def _mask(self, table: pd.DataFrame) -> pd.DataFrame:
        """Blank the rows :meth:`_df` marked non-estimable (NaN df) when terms are aliased."""
        if self.data.null_basis.size:
            cols = ["estimate", "std_error", "statistic", "p_value", "conf_low", "conf_high"]
            table.loc[table["df"].isna(), cols] = np.nan
        return table

    def test(
        self, contrasts: np.ndarray, terms: Sequence[str] | None = None, level: float | None = None
    ) -> pd.DataFrame:
        """t-tests of contrasts ``L beta`` (one per row; columns as :meth:`tidy`'s terms)."""
        return self._mask(means.linear_test(self.predictor, contrasts, terms=terms, level=level))

    def f_test(self, contrasts: np.ndarray) -> dict[str, float]:
        """Joint F test of ``L beta = 0`` with the fit's df method (SAS ``CONTRAST``)."""
        red, estimable = self._reduced(contrasts)
        if not estimable.all():
            raise InputError("The contrast is not estimable (it involves aliased terms).")
        return self.inference.f_test(red, self.beta)

    def tidy(self) -> pd.DataFrame:
        """Fixed effects: estimate, SE, t, df, p, confidence interval (aliased terms NaN)."""
        return self.test(np.eye(len(self.data.names)), terms=list(self.data.names))

    @property
    def fixed(self) -> pd.DataFrame:
        """Same as :meth:`tidy`."""
        return self.tidy()

    def emmeans(
        self,
        specs: str | Sequence[str],
        by: str | Sequence[str] | None = None,
        at: Mapping[str, Any] | None = None,
        level: float | None = None,
    ) -> pd.DataFrame:
        """LS means (SAS ``LSMEANS``, emmeans), e.g. ``emmeans("arm", by="visit")``.

        Factors not named are averaged with equal weights and covariates held at their mean,
        as SAS and emmeans do; degrees of freedom follow the fit's method.
        """
        return self._mask(means.emmeans(self.predictor, specs, by=by, at=at, level=level))

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
        """Contrasts of LS means, e.g. arm differences at each visit
        (``contrasts("arm", by="visit", ref="placebo")``); see
        :func:`outcomes.models.means.contrasts`."""
        table = means.contrasts(
            self.predictor,
            specs,
            by=by,
            at=at,
            method=method,
            ref=ref,
            adjust=adjust,
            level=level,
        )
        return self._mask(table)

    # -- output ------------------------------------------------------------------------------

    def to_ard(self, analysis: str, groups: Mapping[str, object] | None = None) -> pd.DataFrame:
        """ARD rows: fixed effects, covariance parameters and fit statistics."""
        diag = self.diagnostics
        fixed = to_ard(self.tidy(), analysis=analysis, groups=groups, diagnostics=diag)
        cp = self.covariance_parameters
        cp_tidy = pd.DataFrame(
            {
                "term": [f"cov:{g}|{p}" for g, p in zip(cp["group"], cp["parameter"], strict=True)],
                "estimate": cp["estimate"],
                "std_error": cp["std_error"],
            }
        )
        cov_ard = to_ard(cp_tidy, analysis=analysis, groups=groups, diagnostics=diag)
        model = pd.DataFrame(
            [
                {
                    "term": "model",
                    "loglik": self.loglik,
                    "aic": self.aic,
                    "bic": self.bic,
                    "nobs": float(self.nobs),
                    "n_subjects": float(self.n_subjects),
                    "reml": float(self.reml),
                }
            ]
        )
        model_ard = to_ard(model, analysis=analysis, groups=groups, diagnostics=diag)
        return pd.concat([fixed, cov_ard, model_ard], ignore_index=True)

    def __repr__(self) -> str:
        return (
            f"<MmrmResult {self.formula!r}, cov={self.cov}"
            + (f" by {self.cov_by}" if self.cov_by else "")
            + (f", random intercept {self.nested_in}" if self.nested_in else "")
            + f", {'REML' if self.reml else 'ML'}, {_DDF_LABEL[self.ddf]} df, "
            f"{self.nobs} rows, {self.n_subjects} subjects, logLik {self.loglik:.4f}>"
        )

    def __str__(self) -> str:
        table = tidy_frame(self.tidy())
        lines = [repr(self), table.to_string(index=False, float_format=lambda v: f"{v:.4g}")]
        if len(self.diagnostics):
            lines.append("Diagnostics:")
            lines += [
                f"  [{r.severity}] {r.code}: {r.message}" for r in self.diagnostics.itertuples()
            ]
        return "\n".join(lines)
