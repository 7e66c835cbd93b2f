"""The result of :func:`~outcomes.models.glmm.clmm` and :func:`~outcomes.models.glmm.glmm`.

Fixed effects and thresholds are tested with Wald z statistics (``df`` is infinite), as
``summary()`` of ordinal::clmm and lme4::glmer print them. Standard errors come from the
inverse Hessian of the approximate log-likelihood in ``(alpha, beta, s)``; R's ``vcov`` of
clmm reports the same for ``(alpha, beta, log s)``.

Predicted probabilities follow emmeans' reference grid (factors crossed, covariates at their
means, equal weights over factors not named). *Conditional* probabilities are for a subject
whose random effects are zero (emmeans' ``type = "response"`` on a GLMM); *marginal*
(population-averaged) ones integrate the random effects out (Gauss-Hermite, 40 nodes), which is
what a GEE estimates. Odds ratios come in both kinds, side by side: the conditional odds ratio
compares two arms for the same subject, the marginal one compares the two populations, and is
closer to 1.
"""

from __future__ import annotations

import functools
import itertools
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import special, stats

from outcomes.errors import ConvergenceWarning, InputError, SingularFitWarning, StatisticalWarning
from outcomes.models import means
from outcomes.models.glmm.core import Design, FitState
from outcomes.models.glmm.families import link_cdf
from outcomes.models.glmm.problem import Spec
from outcomes.models.means import LinearPredictor
from outcomes.results import Diagnostic, diagnostics_frame, tidy_frame, to_ard

__all__ = ["SINGULAR_TOL", "GlmmResult"]

SINGULAR_TOL = 1e-4
# A random-intercept SD above this (link scale) makes the fit weakly identified: on the logit
# scale an SD of 5 spreads subjects' odds over a factor of about 10^8 (+-1.96 SD) and makes
# conditional log odds ratios about 3 times the marginal ones (1 / sqrt(1 + 0.346 SD^2), Zeger
# et al. 1988). The probit scale is about 1.7 times narrower.
LARGE_SD = {"logit": 5.0, "probit": 3.0, "cloglog": 5.0, "log": 5.0}
_WARNING_CATEGORY = {
    "singular_fit": SingularFitWarning,
    "separation": StatisticalWarning,
    "large_random_effect_sd": StatisticalWarning,
    "unobserved_category": StatisticalWarning,
}
_NODES, _WEIGHTS = np.polynomial.hermite.hermgauss(40)
TEST_LABEL = "Wald z (df = Inf)"


class _InverseLink:
    """``inverse`` and ``inverse_deriv`` of a GLMM link, as :mod:`outcomes.models.means` wants."""

    def __init__(self, link: str) -> None:
        self.link = link

    def inverse(self, eta: np.ndarray) -> np.ndarray:
        """Mean from the linear predictor."""
        return np.exp(eta) if self.link == "log" else link_cdf(self.link, eta)

    def inverse_deriv(self, eta: np.ndarray) -> np.ndarray:
        """Derivative of :meth:`inverse`."""
        return np.exp(eta) if self.link == "log" else link_cdf(self.link, eta, 1)


def _wald(est: np.ndarray, se: np.ndarray, level: float) -> dict[str, Any]:
    with np.errstate(divide="ignore", invalid="ignore"):
        z = est / se
    q = stats.norm.ppf(0.5 + level / 2)
    return {
        "estimate": est,
        "std_error": se,
        "statistic": z,
        "df": np.full(len(est), np.inf),
        "p_value": 2 * stats.norm.sf(np.abs(z)),
        "conf_low": est - q * se,
        "conf_high": est + q * se,
    }


@dataclass(repr=False)
class GlmmResult:
    """A fitted cumulative-link (``kind="clmm"``) or binomial/Poisson (``kind="glmm"``) GLMM.

    Attributes
    ----------
    kind, family, link, nagq
        The model fitted (``nagq = 1`` is Laplace).
    spec, design, state
        The problem as built, its arrays and the optimum (:class:`~.core.FitState`).
    level
        Confidence level of every interval.
    """

    kind: str
    family: str
    link: str
    nagq: int
    spec: Spec
    design: Design
    state: FitState
    level: float = 0.95
    notes: list[Diagnostic] = field(default_factory=list)
    _diagnostics: list[Diagnostic] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._diagnostics = [*self.notes, *self._check()]
        for d in self._diagnostics:
            d.emit(_WARNING_CATEGORY.get(d.code, ConvergenceWarning), stacklevel=5)

    # -- parameters -------------------------------------------------------------------------

    @property
    def alpha_names(self) -> list[str]:
        """Threshold names as ordinal prints them (``"1|2"``, ...)."""
        cats = [str(c) for c in self.spec.categories]
        return [f"{a}|{b}" for a, b in itertools.pairwise(cats)]

    @property
    def sd_names(self) -> list[str]:
        """Grouping factor of each random-intercept standard deviation."""
        names = [self.spec.groups]
        if self.spec.nested:
            names.append(f"{self.spec.groups}:{self.spec.nested[0]}")
        return names

    def _slices(self) -> tuple[slice, slice, slice]:
        k, p = self.design.n_alpha, self.design.x.shape[1]
        return slice(0, k), slice(k, k + p), slice(k + p, None)

    @property
    def coef(self) -> pd.Series:
        """Fixed effects (R's ``fixef`` / clmm's ``beta``)."""
        return pd.Series(self.state.par[self._slices()[1]], index=list(self.spec.x_names))

    @property
    def sd(self) -> pd.Series:
        """Random-intercept standard deviations (lme4's ``theta``, ordinal's ``ST``)."""
        return pd.Series(self.state.par[self._slices()[2]], index=self.sd_names)

    @property
    def vcov(self) -> pd.DataFrame:
        """Covariance of ``(alpha, beta, s)`` (inverse Hessian; NaN for an SD at zero)."""
        names = [*self.alpha_names, *self.spec.x_names, *(f"sd {n}" for n in self.sd_names)]
        return pd.DataFrame(self.state.vcov, index=names, columns=names)

    # -- fit statistics ---------------------------------------------------------------------

    @property
    def loglik(self) -> float:
        """Approximate log-likelihood (Laplace or AGQ) at the optimum."""
        return -self.state.nll

    @property
    def df_model(self) -> int:
        """Number of parameters: thresholds, fixed effects and standard deviations."""
        return self.design.n_par

    @property
    def aic(self) -> float:
        """``-2 logLik + 2 k``."""
        return -2 * self.loglik + 2 * self.df_model

    @property
    def bic(self) -> float:
        """``-2 logLik + log(n) k`` with ``n`` the number of rows."""
        return -2 * self.loglik + np.log(self.nobs) * self.df_model

    @property
    def nobs(self) -> int:
        """Rows used."""
        return len(self.design.group)

    @property
    def ngroups(self) -> dict[str, int]:
        """Number of groups per grouping factor."""
        out = {self.spec.groups: self.design.n_group}
        if self.spec.nested:
            out[self.sd_names[1]] = self.design.n_nested
        return out

    @property
    def converged(self) -> bool:
        """Whether the optimiser met its criteria (see :attr:`diagnostics`)."""
        return self.state.converged

    # -- tables -----------------------------------------------------------------------------

    def _table(self, sl: slice, names: Sequence[str]) -> pd.DataFrame:
        est = self.state.par[sl]
        se = np.sqrt(np.diag(self.state.vcov)[sl])
        table = pd.DataFrame(_wald(est, se, self.level))
        table["term"] = list(names)
        table["test"] = TEST_LABEL
        return tidy_frame(table, extra=["test"])

    @property
    def fixed(self) -> pd.DataFrame:
        """Fixed effects, Wald z tests (tidy columns and ``test``)."""
        return self._table(self._slices()[1], self.spec.x_names)

    @property
    def thresholds(self) -> pd.DataFrame:
        """Thresholds ``alpha_j`` of ``P(Y <= j) = F(alpha_j - eta)`` (clmm only; else empty)."""
        return self._table(self._slices()[0], self.alpha_names)

    def tidy(self) -> pd.DataFrame:
        """Thresholds then fixed effects, with a ``component`` column."""
        parts = []
        for name, table in (("threshold", self.thresholds), ("fixed", self.fixed)):
            if len(table):
                parts.append(table.assign(component=name))
        return tidy_frame(pd.concat(parts, ignore_index=True), extra=["test", "component"])

    @property
    def variance_components(self) -> pd.DataFrame:
        """``group, term, variance, sd`` of each random intercept."""
        sd = self.sd.to_numpy()
        return pd.DataFrame(
            {"group": self.sd_names, "term": "(Intercept)", "variance": sd**2, "sd": sd}
        )

    @property
    def diagnostics(self) -> pd.DataFrame:
        """Model trouble as data: ``code, severity, message``."""
        return diagnostics_frame(self._diagnostics)

    def _check(self) -> list[Diagnostic]:
        st = self.state
        out: list[Diagnostic] = []
        if st.mode_failures and not st.converged:
            out.append(
                Diagnostic(
                    "modes_not_converged",
                    "The conditional modes of the random effects did not converge at the "
                    "optimum: the likelihood approximation there is not reliable.",
                    "warning",
                )
            )
        if not st.converged:
            grad = float(np.max(np.abs(np.where(st.boundary, 0.0, st.gradient))))
            out.append(
                Diagnostic(
                    "not_converged",
                    f"The optimizer did not converge (largest gradient {grad:.2g}, remaining "
                    f"Newton step {st.newton_step:.2g}; the limit is 1e-3): estimates may not be "
                    "at the optimum (an estimate running off to infinity under separation does "
                    "this too); simplify the model or check the data.",
                    "warning",
                )
            )
        if not st.hessian_pd:
            out.append(
                Diagnostic(
                    "hessian_not_pd",
                    "The Hessian of the log-likelihood is not positive definite at the optimum: "
                    "standard errors are unreliable (often separation or too little data).",
                    "warning",
                )
            )
        small = [n for n, s in zip(self.sd_names, self.sd, strict=True) if s < SINGULAR_TOL]
        if small:
            out.append(
                Diagnostic(
                    "singular_fit",
                    f"Singular (boundary) fit: the random-intercept SD of {', '.join(small)} is "
                    "at zero; the data show no variation between these groups beyond the fixed "
                    "effects. Consider removing the term.",
                    "warning",
                )
            )
        out.extend(self._separation())
        out.extend(self._large_sd())
        return out

    def _large_sd(self) -> list[Diagnostic]:
        """Random-intercept SDs so large that conditional effects are extrapolations."""
        limit = LARGE_SD[self.link]
        large = [(n, s) for n, s in zip(self.sd_names, self.sd, strict=True) if s > limit]
        if not large:
            return []
        fam = self.design.family
        y = fam.y if self.kind == "clmm" else fam.y / np.maximum(getattr(fam, "trials", 1.0), 1)
        per_group = pd.Series(y).groupby(self.spec.group_codes)
        one = int((per_group.max() == per_group.min()).sum())
        sds = ", ".join(f"{n} {s:.1f}" for n, s in large)
        return [
            Diagnostic(
                "large_random_effect_sd",
                f"Weakly identified: the random-intercept SD ({sds}) is above {limit:g} on the "
                f"{self.link} scale, and {one} of {self.design.n_group} {self.spec.groups} "
                "groups have every response the same. The data barely fix how far subjects "
                "differ, so conditional (subject-specific) effects are extrapolations with "
                "very wide intervals; prefer the marginal (population-averaged) effects.",
                "warning",
            )
        ]

    def _separation(self) -> list[Diagnostic]:
        """Indicator columns whose rows all share one extreme response (or huge estimates)."""
        x = self.design.x
        fam = self.design.family
        if self.kind == "clmm":
            low = fam.y == 0
            high = fam.y == fam.n_cat - 1
        elif self.family == "binomial":
            low = fam.y == 0
            high = fam.y == fam.trials
        else:
            low = fam.y == 0
            high = np.zeros_like(low)
        terms = []
        for j, name in enumerate(self.spec.x_names):
            col = x[:, j]
            if not np.all(np.isin(col, (0.0, 1.0))) or name == "Intercept":
                continue
            rows = col == 1
            if rows.any() and (low[rows].all() or high[rows].all()):
                terms.append(name)
        est = self.coef
        se = np.sqrt(np.diag(self.state.vcov)[self._slices()[1]])
        huge = [n for n, b, s in zip(est.index, est, se, strict=True) if abs(b) > 10 and s > 10]
        terms += [t for t in huge if t not in terms]
        if not terms:
            return []
        return [
            Diagnostic(
                "separation",
                f"Separation: {', '.join(terms)} has every response at one extreme (e.g. no "
                "responders in that group), so its estimate runs off to infinity and its Wald "
                "test and interval are meaningless. Merge levels, or report the counts.",
                "warning",
            )
        ]

    # -- marginal means and contrasts (outcomes.models.means) --------------------------------

    def linear_predictor(self) -> LinearPredictor:
        """The fixed-effects linear predictor for :mod:`outcomes.models.means` (z tests).

        For clmm the intercept column of the design is kept with a coefficient fixed at 0
        (the thresholds replace it), so means are on the latent scale without thresholds and
        contrasts are log cumulative odds ratios (of a higher category).
        """
        names = list(self.spec.design_info.column_names)
        beta_sl = self._slices()[1]
        beta = np.zeros(len(names))
        vcov = np.zeros((len(names), len(names)))
        idx = [names.index(n) for n in self.spec.x_names]
        beta[idx] = self.state.par[beta_sl]
        vcov[np.ix_(idx, idx)] = np.nan_to_num(self.state.vcov[beta_sl, beta_sl])
        link = None if self.kind == "clmm" else _InverseLink(self.link)
        return LinearPredictor(
            names=names,
            beta=beta,
            vcov=vcov,
            df_fn=lambda lmat: np.full(len(np.atleast_2d(lmat)), np.inf),
            design_info=self.spec.design_info,
            data=self.spec.frame,
            level=self.level,
            link=link,
        )

    def emmeans(
        self,
        specs: str | Sequence[str],
        by: str | Sequence[str] | None = None,
        at: Mapping[str, Any] | None = None,
        scale: str = "link",
        level: float | None = None,
    ) -> pd.DataFrame:
        """Marginal means with z tests, as ``emmeans(fit, specs, by = by, type = ...)``.

        ``scale="response"`` (binomial, Poisson) gives probabilities or mean counts for a
        subject with random effects at zero, intervals back-transformed from the link scale;
        :meth:`predict_probabilities` adds the population-averaged ones (and clmm's categories).
        """
        if scale == "response" and self.kind == "clmm":
            raise InputError(
                "clmm means on the response scale are category probabilities: use "
                "predict_probabilities()."
            )
        return means.emmeans(self.linear_predictor(), specs, by=by, at=at, level=level, scale=scale)

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
        """Contrasts of marginal means on the link scale (log odds ratios for logit links),
        z tests, with emmeans' adjustments (``"dunnettx"``, ``"tukey"``, ``"mvt"``, ...); see
        :func:`outcomes.models.means.contrasts`."""
        return means.contrasts(
            self.linear_predictor(),
            specs,
            by=by,
            at=at,
            method=method,
            ref=ref,
            adjust=adjust,
            level=level,
        )

    def linfct(
        self, specs: Sequence[str], by: Sequence[str] = (), at: Mapping[str, Any] | None = None
    ) -> tuple[pd.DataFrame, np.ndarray]:
        """emmeans' cells of ``by`` x ``specs`` and the rows ``L`` with ``eta = L beta``."""
        cells, lmat = means.cell_means_matrix(self.linear_predictor(), list(specs), list(by), at)
        names = list(self.spec.design_info.column_names)
        return cells, lmat[:, [names.index(n) for n in self.spec.x_names]]

    # -- predictions ------------------------------------------------------------------------

    def _probabilities(self, par: np.ndarray, lmat: np.ndarray, marginal: bool) -> np.ndarray:
        """Per cell: category probabilities (clmm), success probability or mean count."""
        alpha, beta, sd = par[self._slices()[0]], par[self._slices()[1]], par[self._slices()[2]]
        eta = lmat @ beta
        if marginal:
            tau = float(np.sqrt(np.sum(sd**2)))
            shifts = np.sqrt(2.0) * tau * _NODES
            weights = _WEIGHTS / np.sqrt(np.pi)
        else:
            shifts, weights = np.zeros(1), np.ones(1)
        etas = eta[:, None] + shifts[None, :]
        if self.kind == "clmm":
            cum = link_cdf(self.link, alpha[None, :, None] - etas[:, None, :])
            cum = np.concatenate([cum, np.ones((len(eta), 1, len(shifts)))], axis=1)
            prob = np.diff(cum, axis=1, prepend=0.0)
            return prob @ weights
        if self.family == "binomial":
            return link_cdf(self.link, etas) @ weights
        return np.exp(etas) @ weights

    def _delta(self, func: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Value and delta-method standard error of ``func(par)``."""
        par = self.state.par
        value = np.asarray(func(par))
        vcov = np.nan_to_num(self.state.vcov)
        jac = np.empty((value.size, len(par)))
        for i in range(len(par)):
            step = 1e-6 * max(1.0, abs(par[i]))
            e = np.zeros_like(par)
            e[i] = step
            jac[:, i] = (np.ravel(func(par + e)) - np.ravel(func(par - e))) / (2 * step)
        se = np.sqrt(np.einsum("ki,ij,kj->k", jac, vcov, jac)).reshape(value.shape)
        return value, se

    def predict_probabilities(
        self,
        specs: str | Sequence[str],
        by: str | Sequence[str] | None = None,
        at: Mapping[str, Any] | None = None,
    ) -> pd.DataFrame:
        """Predicted probabilities per cell, conditional and marginal, side by side.

        Parameters
        ----------
        specs, by, at
            As :meth:`LmmResult.emmeans`: e.g. ``specs="arm", by="visit"``.

        Returns
        -------
        pandas.DataFrame
            Tidy columns (``estimate`` the probability, or the mean count for Poisson; delta-
            method ``std_error``; interval on the logit (log for counts) scale, which for a
            logit link is emmeans' back-transformed interval), then the ``by`` and ``specs``
            columns, ``category`` (clmm: ``P(Y = category)``) and ``type``
            (``"conditional"``: random effects at zero; ``"marginal"``: averaged over them).
        """
        specs_l = [specs] if isinstance(specs, str) else list(specs)
        by_l = [] if by is None else ([by] if isinstance(by, str) else list(by))
        cells, lmat = self.linfct(specs_l, by_l, at)
        q = stats.norm.ppf(0.5 + self.level / 2)
        tables = []
        for kind in ("conditional", "marginal"):
            prob, se = self._delta(
                functools.partial(self._probabilities, lmat=lmat, marginal=kind == "marginal")
            )
            prob2 = prob if prob.ndim == 2 else prob[:, None]
            se2 = se if se.ndim == 2 else se[:, None]
            cats = list(self.spec.categories) if self.kind == "clmm" else [None]
            for j, cat in enumerate(cats):
                p, s = prob2[:, j], se2[:, j]
                with np.errstate(divide="ignore", invalid="ignore"):
                    if self.family == "poisson":
                        centre, half = np.log(p), q * s / p
                        low, high = np.exp(centre - half), np.exp(centre + half)
                    else:
                        centre, half = special.logit(p), q * s / (p * (1 - p))
                        low, high = special.expit(centre - half), special.expit(centre + half)
                table = cells.copy()
                table["estimate"], table["std_error"] = p, s
                table["conf_low"], table["conf_high"] = low, high
                table["df"] = np.inf
                table["category"] = cat
                table["type"] = kind
                label = [
                    ", ".join(f"{k}={row[k]}" for k in [*by_l, *specs_l])
                    for _, row in cells.iterrows()
                ]
                table["term"] = [f"{lab}, P(Y={cat})" if cat is not None else lab for lab in label]
                tables.append(table)
        out = pd.concat(tables, ignore_index=True)
        return tidy_frame(out, extra=[*by_l, *specs_l, "category", "type"])

    def odds_ratios(
        self,
        specs: str,
        by: str | Sequence[str] | None = None,
        at: Mapping[str, Any] | None = None,
        ref: Any = None,
    ) -> pd.DataFrame:
        """Conditional and marginal odds ratios (rate ratios for Poisson) of each level vs ``ref``.

        For clmm the conditional odds ratio is that of a higher grade, ``exp(eta_1 - eta_0)``,
        the same at every cut-point (proportional odds); the marginal one is computed per cut
        ``Y > j`` from the population-averaged probabilities (it differs between cuts).
        Intervals and z tests on the log scale; ``std_error`` is that of the log ratio.
        """
        if self.link not in ("logit", "log"):
            raise InputError(
                f"Odds ratios need a logit link (this model uses {self.link!r}); use "
                "predict_probabilities() and compare probabilities instead."
            )
        by_l = [] if by is None else ([by] if isinstance(by, str) else list(by))
        cells, lmat = self.linfct([specs], by_l, at)
        rows: list[dict[str, Any]] = []
        group_iter = cells.groupby(by_l, sort=False) if by_l else [((), cells)]
        for key, sub in group_iter:
            levels = list(sub[specs])
            ref_level = levels[0] if ref is None else ref
            if ref_level not in levels:
                raise InputError(f"ref={ref!r} is not a level of {specs!r}: {levels}.")
            idx = sub.index.to_numpy()
            r = idx[levels.index(ref_level)]
            keyt = key if isinstance(key, tuple) else (key,)
            for i, lev in zip(idx, levels, strict=True):
                if i == r:
                    continue
                pair = lmat[[i, r]]
                rows.extend(
                    self._ratio_rows(
                        pair, f"{lev} / {ref_level}", dict(zip(by_l, keyt, strict=True))
                    )
                )
        table = pd.DataFrame(rows)
        q = stats.norm.ppf(0.5 + self.level / 2)
        log_est, log_se = table.pop("log_est").to_numpy(), table.pop("log_se").to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            table["statistic"] = log_est / log_se
        table["estimate"] = np.exp(log_est)
        table["std_error"] = log_se
        table["df"] = np.inf
        table["p_value"] = 2 * stats.norm.sf(np.abs(table["statistic"]))
        table["conf_low"] = np.exp(log_est - q * log_se)
        table["conf_high"] = np.exp(log_est + q * log_se)
        return tidy_frame(table, extra=[*by_l, "contrast", "cut", "type"])

    def _ratio_rows(self, pair: np.ndarray, contrast: str, by: dict[str, Any]) -> list[dict]:
        beta_sl = self._slices()[1]
        diff = pair[0] - pair[1]
        est = float(diff @ self.state.par[beta_sl])
        se = float(np.sqrt(diff @ self.state.vcov[beta_sl, beta_sl] @ diff))
        label = "conditional"
        base = {**by, "contrast": contrast}
        rows = [
            {
                **base,
                "term": f"{contrast} ({label})",
                "cut": None,
                "type": label,
                "log_est": est,
                "log_se": se,
            }
        ]

        def marginal_log_ratio(par: np.ndarray) -> np.ndarray:
            prob = self._probabilities(par, pair, marginal=True)
            if self.family == "poisson":
                return np.atleast_1d(np.log(prob[0] / prob[1]))
            # P(Y > j) for clmm; P(success) otherwise
            upper = 1.0 - np.cumsum(prob, axis=1)[:, :-1] if self.kind == "clmm" else prob[:, None]
            logit = special.logit(upper)
            return logit[0] - logit[1]

        value, se_m = self._delta(marginal_log_ratio)
        cuts = self.alpha_names if self.kind == "clmm" else [None]
        for cut, v, s in zip(cuts, np.atleast_1d(value), np.atleast_1d(se_m), strict=True):
            name = f"{contrast} (marginal{', Y > ' + cut.split('|')[0] if cut else ''})"
            rows.append(
                {
                    **base,
                    "term": name,
                    "cut": cut,
                    "type": "marginal",
                    "log_est": float(v),
                    "log_se": float(s),
                }
            )
        return rows

    # -- output -----------------------------------------------------------------------------

    def to_ard(self, analysis: str, groups: Mapping[str, object] | None = None) -> pd.DataFrame:
        """Analysis-results-dataset rows: thresholds, fixed effects, SDs and fit statistics."""
        diag = self.diagnostics
        coef = self.tidy().drop(columns=["test", "component"])
        coef["term"] = [
            f"threshold {t}" if c == "threshold" else t
            for t, c in zip(self.tidy()["term"], self.tidy()["component"], strict=True)
        ]
        vc = self.variance_components
        vc_tidy = pd.DataFrame(
            {
                "term": [f"{g}|(Intercept)" for g in vc["group"]],
                "variance": vc["variance"],
                "sd": vc["sd"],
            }
        )
        model = pd.DataFrame(
            [
                {
                    "term": "model",
                    "loglik": self.loglik,
                    "aic": self.aic,
                    "bic": self.bic,
                    "nobs": float(self.nobs),
                    "nagq": float(self.nagq),
                    "n_dropped": float(self.spec.n_dropped),
                }
            ]
        )
        parts = [
            to_ard(t, analysis=analysis, groups=groups, diagnostics=diag)
            for t in (coef, vc_tidy, model)
        ]
        return pd.concat(parts, ignore_index=True)

    def _title(self) -> str:
        if self.kind == "clmm":
            return f"Cumulative-link mixed model ({self.link})"
        return f"GLMM ({self.family}, {self.link} link)"

    def __repr__(self) -> str:
        return (
            f"<GlmmResult {self._title()} {self.spec.formula!r}, nobs {self.nobs}, "
            f"logLik {self.loglik:.4f}>"
        )

    def __str__(self) -> str:
        method = "Laplace" if self.nagq == 1 else f"adaptive Gauss-Hermite, {self.nagq} nodes"
        groups = ", ".join(f"{k}: {v}" for k, v in self.ngroups.items())
        parts = [
            f"{self._title()}, {method}: {self.spec.formula}",
            f"random intercepts: {' / '.join([self.spec.groups, *self.spec.nested])}; "
            f"nobs {self.nobs} ({self.spec.n_dropped} dropped); groups {groups}",
            f"logLik {self.loglik:.4f}  AIC {self.aic:.4f}  BIC {self.bic:.4f}  "
            f"converged {self.converged}",
        ]

        def fmt(table: pd.DataFrame) -> str:
            return table.to_string(float_format=lambda v: f"{v:.4g}", index=False)

        with pd.option_context("display.width", 120, "display.max_columns", 20):
            if self.kind == "clmm":
                parts += ["\nThresholds:", fmt(self.thresholds.drop(columns="test"))]
            parts += [
                f"\nFixed effects ({TEST_LABEL}):",
                fmt(self.fixed.drop(columns="test")),
            ]
            parts += ["\nRandom intercepts:", fmt(self.variance_components)]
            for d in self._diagnostics:
                if d.severity != "info":
                    parts.append(textwrap.fill(f"[{d.severity}] {d.code}: {d.message}", 100))
        return "\n".join(parts)

    def _repr_html_(self) -> str:
        head = [h.replace("&", "&amp;").replace("<", "&lt;") for h in str(self).splitlines()[:3]]
        html = [f"<p><b>{'<br>'.join(head)}</b></p>"]
        if self.kind == "clmm":
            html += ["<p>Thresholds</p>", self.thresholds.to_html(index=False)]
        html += [f"<p>Fixed effects ({TEST_LABEL})</p>", self.fixed.to_html(index=False)]
        html += ["<p>Random intercepts</p>", self.variance_components.to_html(index=False)]
        if self._diagnostics:
            html += ["<p>Diagnostics</p>", self.diagnostics.to_html(index=False)]
        return "\n".join(html)
