"""Linear mixed models on long data, with lme4's numbers, lmerTest's tests and emmeans' means.

``lmm(data, "score ~ week * arm", groups="patient", re_formula="~week")`` fits a linear mixed
model with random intercepts (and slopes) for ``groups`` and, optionally, random intercepts for
levels ``nested`` within it (side within patient in split-face trials, patient within clinic in
registries). The study design picks that structure by default (:func:`design_structure`), so
the two sides of one face are never treated as two independent patients.

Engines
-------
``engine="statsmodels"`` fits with :class:`statsmodels.regression.mixed_linear_model.MixedLM`
(``exog_vc`` for the nested levels) and then refines the optimum by minimising lme4's profiled
deviance (written here in NumPy, :class:`ProfiledDeviance`) with SciPy from statsmodels'
estimate: statsmodels often stops a little short of the optimum, which is enough to move
estimates in the fourth digit. ``engine="outcomes"`` calls the toolkit's own profiled engine
(:mod:`outcomes.models.lmm_engine`). ``engine="auto"`` uses the toolkit's engine when it is
installed and otherwise statsmodels, and says so in the diagnostics. Both engines return an
:class:`~outcomes.models.lmm_types.LmmFit`; everything here (Satterthwaite degrees of freedom,
marginal means, contrasts, diagnostics) works on that alone.

Inference: t-tests, intervals, marginal means and contrasts use Satterthwaite's degrees of
freedom computed as lmerTest does (:mod:`outcomes.models.satterthwaite`), or, with
``ddf="kenward-roger"``, pbkrtest's Kenward-Roger adjusted covariance and degrees of freedom
(:func:`kenward_roger`; REML fits up to :data:`KR_MAX_ROWS` rows).

Definitions follow lme4: ``theta`` holds the column-wise lower triangle of each relative
covariance factor ``Lambda`` (random-effect covariance ``sigma^2 Lambda Lambda'``); the
log-likelihood is REML or ML as fitted; ``AIC = -2 logLik + 2 k`` and
``BIC = -2 logLik + log(n) k`` with ``k = p + len(theta) + 1``; a fit is singular when a
diagonal element of ``Lambda`` is below ``1e-4`` (lme4's ``isSingular``).
"""

from __future__ import annotations

import ast
import itertools
import textwrap
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import patsy
from scipy import optimize

from outcomes.errors import ConvergenceWarning, InputError, ModelError, SingularFitWarning
from outcomes.models import means
from outcomes.models.lmm_types import LmmFit, LmmProblem, RandomTerm
from outcomes.models.means import ADJUST_METHODS, LinearPredictor
from outcomes.models.satterthwaite import SatterthwaiteState, hessian, jacobian, satterthwaite
from outcomes.results import Diagnostic, diagnostics_frame, to_ard

__all__ = [
    "ADJUST_METHODS",
    "KenwardRogerState",
    "LmmResult",
    "ProfiledDeviance",
    "build_problem",
    "design_structure",
    "fit_statsmodels",
    "kenward_roger",
    "lmm",
]

SINGULAR_TOL = 1e-4
CONVERGENCE_TOL = 2e-3
ENGINES = ("auto", "statsmodels", "outcomes")
_DESIGNS = ("parallel", "split_body", "single_arm", "observational")


# --------------------------------------------------------------------------------------------
# Design -> structure
# --------------------------------------------------------------------------------------------


def design_structure(
    design: str,
    *,
    subject: str = "subject_id",
    unit: str = "unit_id",
    site: str = "site_id",
) -> dict[str, Any]:
    """Default random-effects structure for a study design code (data dictionary ``design``).

    Parameters
    ----------
    design
        ``"split_body"``: sides (units) nested in subjects, ``groups=subject, nested=unit``.
        ``"parallel"`` or ``"single_arm"``: one unit per subject, ``groups=subject``.
        ``"observational"`` (registries): subjects nested in clinics,
        ``groups=site, nested=subject``.
    subject, unit, site
        Column names (the data dictionary's by default).

    Returns
    -------
    dict
        ``{"groups": ..., "nested": [...]}``, keyword arguments for :func:`lmm`.

    Examples
    --------
    >>> design_structure("split_body")
    {'groups': 'subject_id', 'nested': ['unit_id']}
    """
    if design == "split_body":
        return {"groups": subject, "nested": [unit]}
    if design in ("parallel", "single_arm"):
        return {"groups": subject, "nested": []}
    if design == "observational":
        return {"groups": site, "nested": [subject]}
    raise InputError(f"Unknown study design {design!r}; expected one of {', '.join(_DESIGNS)}.")


# --------------------------------------------------------------------------------------------
# Problem building
# --------------------------------------------------------------------------------------------


def _formula_variables(formula: str, columns: Sequence[str]) -> list[str]:
    """Data columns named in a patsy formula (in order of appearance)."""
    names: list[str] = []
    for side in formula.split("~"):
        text = side.strip()
        if not text:
            continue
        # Formula operators are Python operators too, so ast can find the names.
        try:
            tree = ast.parse(text.replace("|", "+"), mode="eval")
        except SyntaxError as exc:
            raise InputError(f"Cannot read the formula {formula!r}: {exc.msg}.") from None
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id in columns and node.id not in names:
                names.append(node.id)
    return names


def _check_columns(data: pd.DataFrame, names: Sequence[str], what: str) -> None:
    missing = [c for c in names if c not in data.columns]
    if missing:
        raise InputError(
            f"The {what} names column(s) {', '.join(map(repr, missing))} not in the data; "
            f"available columns: {', '.join(map(str, data.columns))}."
        )


@dataclass(frozen=True)
class _Spec:
    """What :func:`build_problem` kept besides the arrays (for marginal means and tables)."""

    formula: str
    groups: str
    nested: tuple[str, ...]
    re_formula: str
    design_info: Any
    frame: pd.DataFrame
    n_dropped: int


def build_problem(
    data: pd.DataFrame,
    formula: str,
    *,
    groups: str,
    re_formula: str = "~1",
    nested: Sequence[str] = (),
    reml: bool = True,
) -> tuple[LmmProblem, _Spec]:
    """Turn a DataFrame and formulas into an :class:`LmmProblem` (rows with missing values dropped).

    Raises
    ------
    InputError
        Unknown columns, a formula patsy cannot read, a non-numeric response, or too few rows
        or groups to fit.
    """
    if not isinstance(data, pd.DataFrame):
        raise InputError(f"lmm() needs a pandas DataFrame, got {type(data).__name__}.")
    if not isinstance(formula, str) or "~" not in formula:
        raise InputError(f"The formula must look like 'y ~ x1 + x2', got {formula!r}.")
    if not re_formula.strip().startswith("~"):
        re_formula = "~" + re_formula
    nested = tuple(nested)
    _check_columns(data, [groups, *nested], "grouping")
    fixed_vars = _formula_variables(formula, list(data.columns))
    re_vars = _formula_variables(re_formula, list(data.columns))
    lhs = formula.split("~")[0].strip()
    responses = _formula_variables(lhs, list(data.columns))
    if len(responses) != 1:
        raise InputError(f"The response {lhs!r} must name one column of the data.")
    response = responses[0]
    used = list(dict.fromkeys([*fixed_vars, *re_vars, groups, *nested]))
    frame = data[used].dropna()
    n_dropped = len(data) - len(frame)
    if not pd.api.types.is_numeric_dtype(frame[response]) or pd.api.types.is_bool_dtype(
        frame[response]
    ):
        raise InputError(
            f"The response {response!r} must be numeric for a linear mixed model "
            f"(got {frame[response].dtype}); use gee() for binary or ordinal outcomes."
        )
    frame = frame.reset_index(drop=True)
    try:
        y_mat, x_mat = patsy.dmatrices(formula, frame, return_type="dataframe", NA_action="raise")
        z_mat = patsy.dmatrix(re_formula, frame, return_type="dataframe", NA_action="raise")
    except patsy.PatsyError as exc:
        raise InputError(f"Cannot build the model from the formula: {exc}") from None
    top_codes, top_levels = pd.factorize(frame[groups], sort=True)
    terms = [
        RandomTerm(
            group=groups,
            codes=top_codes.astype(np.intp),
            levels=np.asarray(top_levels),
            z=z_mat.to_numpy(dtype=float),
            z_names=tuple(z_mat.columns),
        )
    ]
    path = [groups]
    for name in nested:
        path.append(name)
        keys = frame[path].astype(str).agg("\x1f".join, axis=1)
        codes, levels = pd.factorize(keys, sort=True)
        terms.append(
            RandomTerm(
                group=":".join(path),
                codes=codes.astype(np.intp),
                levels=np.array([lev.replace("\x1f", ":") for lev in levels], dtype=object),
                z=np.ones((len(frame), 1)),
                z_names=("Intercept",),
            )
        )
    x = x_mat.to_numpy(dtype=float)
    n, p = x.shape
    if terms[0].n_groups < 2:
        raise InputError(f"The grouping column {groups!r} has fewer than 2 groups.")
    if n <= p + 1:
        raise InputError(f"Only {n} complete rows for {p} fixed effects: too few to fit.")
    if np.linalg.matrix_rank(x) < p:
        raise InputError(
            "The fixed-effects design is rank deficient (some terms are confounded or a level "
            "never occurs): simplify the formula."
        )
    problem = LmmProblem(
        y=y_mat.to_numpy(dtype=float)[:, 0],
        x=x,
        x_names=tuple(x_mat.columns),
        terms=tuple(terms),
        reml=reml,
    )
    spec = _Spec(
        formula=formula,
        groups=groups,
        nested=nested,
        re_formula=re_formula,
        design_info=x_mat.design_info,
        frame=frame,
        n_dropped=n_dropped,
    )
    return problem, spec


# --------------------------------------------------------------------------------------------
# lme4's profiled deviance for nested problems
# --------------------------------------------------------------------------------------------


@dataclass
class _Bucket:
    """Top-level groups with the same block layout, processed together."""

    comp: tuple[int, ...]
    size: int
    ztz: np.ndarray
    ztx: np.ndarray
    zty: np.ndarray


class ProfiledDeviance:
    """lme4's penalised least squares for a nested :class:`LmmProblem`, in NumPy.

    Random effects of nested terms live inside the blocks of the outermost grouping factor, so
    ``Lambda' Z' Z Lambda + I`` is block diagonal by outermost group; the blocks are
    accumulated once as sufficient statistics and factorised in batches.

    Parameters
    ----------
    problem
        Terms must be nested: every group of a later term lies within one group of the first.

    Notes
    -----
    For ``theta``: ``L L' = Lambda' Z' Z Lambda + I``, ``R_X' R_X`` the Schur complement of
    ``X' X``, ``pwrss`` the penalised residual sum of squares. The deviance with ``sigma``
    profiled out is (Bates et al. 2015, eq. 34 and 41)

    * ML: ``log|L|^2 + n (1 + log(2 pi pwrss / n))``
    * REML: ``log|L|^2 + log|R_X|^2 + (n - p)(1 + log(2 pi pwrss / (n - p)))``

    and at a given ``sigma`` (lmerTest's ``devfun_vp``):
    ``log|L|^2 + pwrss / sigma^2 + n log(2 pi sigma^2)``, plus
    ``log|R_X|^2 - p log(2 pi sigma^2)`` for REML.
    """

    def __init__(self, problem: LmmProblem) -> None:
        self.problem = problem
        y, x, terms = problem.y, problem.x, problem.terms
        self.n, self.p = x.shape
        self.reml = problem.reml
        self.qs = [t.z.shape[1] for t in terms]
        top = terms[0].codes
        n_top = terms[0].n_groups
        # theta layout and bounds: lme4 stores each Lambda's lower triangle column by column
        self._tril = []
        self._theta_slices = []
        start = 0
        lower: list[float] = []
        for q in self.qs:
            rows, cols = np.tril_indices(q)
            order = np.lexsort((rows, cols))
            rows, cols = rows[order], cols[order]
            self._tril.append((rows, cols))
            self._theta_slices.append(slice(start, start + len(rows)))
            start += len(rows)
            lower.extend(0.0 if r == c else -np.inf for r, c in zip(rows, cols, strict=True))
        self.n_theta = start
        self.lower = np.array(lower)
        # nesting: each group of a later term must sit in a single top-level group
        local = []
        counts = np.zeros((n_top, len(terms)), dtype=np.intp)
        counts[:, 0] = 1
        for k, term in enumerate(terms[1:], start=1):
            pairs = np.unique(np.column_stack([term.codes, top]), axis=0)
            if len(pairs) != term.n_groups:
                raise InputError(
                    f"Groups of {term.group!r} cross groups of {terms[0].group!r}: only nested "
                    "random effects are supported."
                )
            top_of = np.empty(term.n_groups, dtype=np.intp)
            top_of[pairs[:, 0]] = pairs[:, 1]
            # rank of each group within its top-level group
            order = np.lexsort((np.arange(term.n_groups), top_of))
            rank = np.empty(term.n_groups, dtype=np.intp)
            first = np.searchsorted(top_of[order], top_of[order], side="left")
            rank[order] = np.arange(term.n_groups) - first
            counts[:, k] = np.bincount(top_of, minlength=n_top)
            local.append(rank[term.codes])
        # column offsets of each row's effects inside its block
        offsets = np.zeros((n_top, len(terms)), dtype=np.intp)
        for k in range(1, len(terms)):
            offsets[:, k] = offsets[:, k - 1] + counts[:, k - 1] * self.qs[k - 1]
        idx_parts = [np.arange(self.qs[0])[None, :].repeat(self.n, 0)]
        for k in range(1, len(terms)):
            base = offsets[top, k] + local[k - 1] * self.qs[k]
            idx_parts.append(base[:, None] + np.arange(self.qs[k])[None, :])
        idx = np.hstack(idx_parts)
        val = np.hstack([t.z for t in terms])
        comps = [tuple(row) for row in counts[:, 1:]]
        comp_codes, comp_levels = pd.factorize(pd.Series(comps, dtype=object))
        self.buckets: list[_Bucket] = []
        for b, comp in enumerate(comp_levels):
            groups_in = np.flatnonzero(comp_codes == b)
            pos = np.full(n_top, -1, dtype=np.intp)
            pos[groups_in] = np.arange(len(groups_in))
            rows = np.flatnonzero(pos[top] >= 0)
            m = self.qs[0] + sum(c * q for c, q in zip(comp, self.qs[1:], strict=True))
            nb = len(groups_in)
            pr, ir, vr = pos[top[rows]], idx[rows], val[rows]
            flat = (pr[:, None, None] * m + ir[:, :, None]) * m + ir[:, None, :]
            ztz = np.bincount(
                flat.ravel(), (vr[:, :, None] * vr[:, None, :]).ravel(), minlength=nb * m * m
            ).reshape(nb, m, m)
            flat = (pr[:, None, None] * m + ir[:, :, None]) * self.p + np.arange(self.p)
            ztx = np.bincount(
                flat.ravel(),
                (vr[:, :, None] * x[rows][:, None, :]).ravel(),
                minlength=nb * m * self.p,
            ).reshape(nb, m, self.p)
            flat = pr[:, None] * m + ir
            zty = np.bincount(flat.ravel(), (vr * y[rows, None]).ravel(), minlength=nb * m).reshape(
                nb, m
            )
            self.buckets.append(_Bucket(tuple(comp), m, ztz, ztx, zty))
        self.xtx = x.T @ x
        self.xty = x.T @ y
        self.yty = float(y @ y)

    # -- parametrisation --------------------------------------------------------------------

    def lambdas(self, theta: np.ndarray) -> list[np.ndarray]:
        """The relative covariance factor ``Lambda_k`` of each term."""
        out = []
        for q, sl, (rows, cols) in zip(self.qs, self._theta_slices, self._tril, strict=True):
            lam = np.zeros((q, q))
            lam[rows, cols] = theta[sl]
            out.append(lam)
        return out

    def theta_from_covariances(self, covs: Sequence[np.ndarray], scale: float) -> np.ndarray:
        """``theta`` from random-effect covariances and the residual variance."""
        theta = np.empty(self.n_theta)
        for cov, sl, (rows, cols) in zip(covs, self._theta_slices, self._tril, strict=True):
            rel = np.atleast_2d(cov) / scale
            values, vectors = np.linalg.eigh((rel + rel.T) / 2)
            rel = (vectors * np.clip(values, 1e-10, None)) @ vectors.T
            theta[sl] = np.linalg.cholesky(rel)[rows, cols]
        return theta

    def _block_lambda(self, lams: list[np.ndarray], comp: tuple[int, ...], size: int) -> np.ndarray:
        lam = np.zeros((size, size))
        q0 = self.qs[0]
        lam[:q0, :q0] = lams[0]
        at = q0
        for k, count in enumerate(comp, start=1):
            q = self.qs[k]
            for _ in range(count):
                lam[at : at + q, at : at + q] = lams[k]
                at += q
        return lam

    # -- penalised least squares --------------------------------------------------------------

    def pls(self, theta: np.ndarray) -> dict[str, Any]:
        """Solve the penalised least squares problem at ``theta``.

        Returns
        -------
        dict
            ``beta``, ``pwrss``, ``ldL2`` (``log|L|^2``), ``ldRX2`` (``log|R_X|^2``) and
            ``rxtrx`` (``R_X' R_X``; ``vcov(beta) = sigma^2 (R_X' R_X)^-1``).
        """
        lams = self.lambdas(np.asarray(theta, dtype=float))
        ctc = np.zeros((self.p, self.p))
        ctcy = np.zeros(self.p)
        cc = 0.0
        ld_l2 = 0.0
        for bucket in self.buckets:
            lam = self._block_lambda(lams, bucket.comp, bucket.size)
            a = np.einsum("ji,bjk,kl->bil", lam, bucket.ztz, lam)
            a += np.eye(bucket.size)
            chol = np.linalg.cholesky(a)
            ld_l2 += 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum()
            rhs = np.concatenate(
                [np.einsum("ji,bjk->bik", lam, bucket.ztx), (bucket.zty @ lam)[:, :, None]], axis=2
            )
            sol = np.linalg.solve(chol, rhs)
            c_x, c_y = sol[:, :, : self.p], sol[:, :, self.p]
            ctc += np.einsum("bip,biq->pq", c_x, c_x)
            ctcy += np.einsum("bip,bi->p", c_x, c_y)
            cc += float(np.einsum("bi,bi->", c_y, c_y))
        rxtrx = self.xtx - ctc
        rhs_x = self.xty - ctcy
        chol_x = np.linalg.cholesky(rxtrx)
        beta = np.linalg.solve(rxtrx, rhs_x)
        pwrss = self.yty - cc - float(rhs_x @ beta)
        return {
            "beta": beta,
            "pwrss": pwrss,
            "ldL2": ld_l2,
            "ldRX2": 2.0 * np.log(np.diag(chol_x)).sum(),
            "rxtrx": rxtrx,
        }

    def objective(self, theta: np.ndarray) -> float:
        """Deviance with ``sigma`` profiled out (lme4's optimisation criterion)."""
        try:
            s = self.pls(theta)
        except np.linalg.LinAlgError:
            return np.inf
        if s["pwrss"] <= 0:
            return np.inf
        if self.reml:
            dof = self.n - self.p
            return s["ldL2"] + s["ldRX2"] + dof * (1 + np.log(2 * np.pi * s["pwrss"] / dof))
        return s["ldL2"] + self.n * (1 + np.log(2 * np.pi * s["pwrss"] / self.n))

    def sigma(self, theta: np.ndarray) -> float:
        """Residual standard deviation at ``theta`` (lme4's ``sigma()``)."""
        dof = self.n - self.p if self.reml else self.n
        return float(np.sqrt(self.pls(theta)["pwrss"] / dof))

    def deviance(self, varpar: np.ndarray) -> float:
        """``-2 log L`` at ``varpar = (*theta, sigma)`` with beta profiled (lmerTest's form)."""
        theta, sigma = np.asarray(varpar[:-1], dtype=float), float(varpar[-1])
        s = self.pls(theta)
        sigma2 = sigma**2
        dev = s["ldL2"] + s["pwrss"] / sigma2 + self.n * np.log(2 * np.pi * sigma2)
        if self.reml:
            dev += s["ldRX2"] - self.p * np.log(2 * np.pi * sigma2)
        return float(dev)

    def vcov_at(self, varpar: np.ndarray) -> np.ndarray:
        """``vcov(beta) = sigma^2 (R_X' R_X)^-1`` at ``varpar`` (lmerTest's ``get_covbeta``)."""
        theta, sigma = np.asarray(varpar[:-1], dtype=float), float(varpar[-1])
        return sigma**2 * np.linalg.inv(self.pls(theta)["rxtrx"])

    def gradient(self, theta: np.ndarray) -> np.ndarray:
        """Central-difference gradient of :meth:`objective`."""
        theta = np.asarray(theta, dtype=float)
        grad = np.empty_like(theta)
        for i in range(len(theta)):
            h = 1e-6 * max(abs(theta[i]), 1e-2)
            e = np.zeros_like(theta)
            e[i] = h
            grad[i] = (self.objective(theta + e) - self.objective(theta - e)) / (2 * h)
        return grad

    def minimise(self, theta0: np.ndarray) -> optimize.OptimizeResult:
        """Minimise :meth:`objective` from ``theta0`` with L-BFGS-B within lme4's bounds."""
        bounds = [(lo if np.isfinite(lo) else None, None) for lo in self.lower]
        start = np.maximum(np.asarray(theta0, dtype=float), self.lower)
        return optimize.minimize(
            self.objective,
            start,
            jac=self.gradient,
            method="L-BFGS-B",
            bounds=bounds,
            options={"ftol": 1e-15, "gtol": 1e-9, "maxiter": 2000, "maxcor": 20},
        )

    def on_boundary(self, theta: np.ndarray) -> bool:
        """Whether a diagonal element of some ``Lambda`` is below lme4's singular tolerance."""
        return any(np.diag(lam).min() < SINGULAR_TOL for lam in self.lambdas(theta))

    def boundary_probes(self, theta: np.ndarray) -> list[np.ndarray]:
        """Starting points with each parameter at its bound moved a little inside."""
        theta = np.asarray(theta, dtype=float)
        probes = []
        for i in np.flatnonzero(np.isfinite(self.lower) & (theta < SINGULAR_TOL)):
            for value in (0.01, 0.1, 0.5):
                start = theta.copy()
                start[i] = value
                probes.append(start)
        return probes

    def _restricted(self, theta: np.ndarray, free: np.ndarray, at: np.ndarray) -> float:
        """:meth:`objective` varying only the ``free`` parameters of ``at``."""
        return self.objective(np.where(free, theta, at))

    def newton(self, theta: np.ndarray, steps: int = 6) -> tuple[np.ndarray, float]:
        """Polish an optimum with Newton steps; return it and lme4's convergence measure.

        Gradient and Hessian of :meth:`objective` are numerical (Richardson extrapolation, as
        numDeriv), over the parameters not held at a bound by an outward gradient. A step is
        kept only if it lowers the deviance. The measure is lme4's scaled gradient
        ``max |H^-1 g|`` (lme4 calls a fit converged below 0.002); if ``H`` is not positive
        definite it is ``max |g|``.
        """
        theta = np.maximum(np.asarray(theta, dtype=float), self.lower)
        current = self.objective(theta)
        measure = np.inf
        for _ in range(steps):
            grad = jacobian(lambda t: np.array([self.objective(t)]), theta)[0]
            free = ~((theta <= self.lower + 1e-10) & (grad >= 0))
            if not free.any():
                return theta, 0.0
            hess = hessian(partial(self._restricted, free=free, at=theta), theta)
            hess = hess[np.ix_(free, free)]
            try:
                np.linalg.cholesky(hess)
            except np.linalg.LinAlgError:
                return theta, float(np.max(np.abs(grad[free])))
            step = np.linalg.solve(hess, grad[free])
            measure = float(np.max(np.abs(step)))
            candidate = theta.copy()
            candidate[free] -= step
            candidate = np.maximum(candidate, self.lower)
            value = self.objective(candidate)
            if not value < current:
                break
            theta, current = candidate, value
            if measure < 1e-9:
                break
        return theta, measure


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
        converged=converged,
        optimizer=optimizer,
        n_evaluations=n_evaluations,
        diagnostics=diagnostics,
    )


def _fit_outcomes(problem: LmmProblem) -> LmmFit:
    from outcomes.models import lmm_engine  # lazy: the engine is optional

    return lmm_engine.fit(problem)


def _engine_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("outcomes.models.lmm_engine") is not None


# --------------------------------------------------------------------------------------------
# Kenward-Roger
# --------------------------------------------------------------------------------------------

KR_MAX_ROWS = 2500


@dataclass(frozen=True)
class KenwardRogerState:
    """Kenward-Roger's adjusted covariance and the pieces its degrees of freedom need.

    Follows pbkrtest (``vcovAdj`` and ``Lb_ddf``, Halekoh & Hojsgaard 2014): the marginal
    covariance ``Sigma = sum_r gamma_r G_r`` is linear in the variance and covariance
    components and the residual variance; ``P_r = -X' Sigma^-1 G_r Sigma^-1 X``,
    ``W = 2 (information)^-1`` (expected REML information), and the adjusted covariance is
    ``Phi_A = Phi + 2 Phi U Phi``. Dense ``n x n`` matrices: at most
    :data:`KR_MAX_ROWS` rows.
    """

    vcov: np.ndarray
    phi: np.ndarray
    p_list: tuple[np.ndarray, ...]
    w: np.ndarray

    def df(self, contrasts: np.ndarray) -> np.ndarray:
        """Kenward-Roger denominator degrees of freedom of each single-row contrast."""
        out = []
        m = len(self.p_list)
        for lvec in np.atleast_2d(np.asarray(contrasts, dtype=float)):
            lrow = lvec[None, :]
            theta = lrow.T @ np.linalg.solve(lrow @ self.phi @ lrow.T, lrow)
            tv = theta @ self.phi
            u = [tv @ p @ self.phi for p in self.p_list]
            a1 = a2 = 0.0
            for r in range(m):
                for s in range(r, m):
                    e = 1.0 if r == s else 2.0
                    a1 += e * self.w[r, s] * np.trace(u[r]) * np.trace(u[s])
                    a2 += e * self.w[r, s] * float(np.sum(u[r] * u[s].T))
            q = 1.0
            b = (a1 + 6 * a2) / (2 * q)
            g = ((q + 1) * a1 - (q + 4) * a2) / ((q + 2) * a2)
            den = 3 * q + 2 * (1 - g)
            c1, c2, c3 = g / den, (q - g) / den, (q + 2 - g) / den
            v0, v1, v2 = 1 + c1 * b, 1 - c2 * b, 1 - c3 * b
            rho = ((1 - a2 / q) / v1) ** 2 * v0 / v2 / q
            out.append(4 + (q + 2) / (q * rho - 1))
        return np.array(out)


def kenward_roger(fit: LmmFit) -> KenwardRogerState:
    """Kenward-Roger adjusted covariance of the fixed effects of a REML fit (pbkrtest's)."""
    problem = fit.problem
    n = len(problem.y)
    if not problem.reml:
        raise InputError("Kenward-Roger degrees of freedom need a REML fit (reml=True).")
    if n > KR_MAX_ROWS:
        raise InputError(
            f"Kenward-Roger works on dense {n} x {n} matrices; it is limited to "
            f"{KR_MAX_ROWS} rows here. Use ddf='satterthwaite'."
        )
    x = problem.x
    sigma2 = fit.sigma**2
    g_list: list[np.ndarray] = []
    gamma: list[float] = []
    for term, lam in zip(problem.terms, _lambdas(fit.theta, problem), strict=True):
        cov = sigma2 * lam @ lam.T
        same = term.codes[:, None] == term.codes[None, :]
        q = term.z.shape[1]
        for j in range(q):
            for i in range(j, q):
                g = np.outer(term.z[:, i], term.z[:, j])
                if i != j:
                    g = g + g.T
                g_list.append(same * g)
                gamma.append(cov[i, j])
    g_list.append(np.eye(n))
    gamma.append(sigma2)
    sigma = sum(v * g for v, g in zip(gamma, g_list, strict=True))
    sigma_inv = np.linalg.inv(sigma)
    phi = np.linalg.inv(x.T @ sigma_inv @ x)
    tt = sigma_inv @ x
    hh = [g @ sigma_inv for g in g_list]
    oo = [h @ x for h in hh]
    pp = [-(o.T @ tt) for o in oo]
    m = len(g_list)
    qq = {(r, s): oo[r].T @ sigma_inv @ oo[s] for r in range(m) for s in range(r, m)}
    info = np.empty((m, m))
    for r in range(m):
        for s in range(r, m):
            info[r, s] = info[s, r] = (
                np.sum(hh[r].T * hh[s])
                - 2 * np.sum(phi * qq[r, s])
                + np.sum((phi @ pp[r]) * (pp[s] @ phi))
            )
    w = 2 * np.linalg.pinv(info)
    u = np.zeros_like(phi)
    for r in range(m):
        for s in range(r, m):
            piece = w[r, s] * (qq[r, s] - pp[r] @ phi @ pp[s])
            u += piece if r == s else piece + piece.T
    return KenwardRogerState(vcov=phi + 2 * phi @ u @ phi, phi=phi, p_list=tuple(pp), w=w)


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
        The engine's :class:`~outcomes.models.lmm_types.LmmFit`.
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


def _lambdas(theta: np.ndarray, problem: LmmProblem) -> list[np.ndarray]:
    """``Lambda_k`` of each term from ``theta`` (column-wise lower triangles, lme4's order)."""
    out = []
    at = 0
    for term in problem.terms:
        q = term.z.shape[1]
        rows, cols = np.tril_indices(q)
        order = np.lexsort((rows, cols))
        lam = np.zeros((q, q))
        size = q * (q + 1) // 2
        lam[rows[order], cols[order]] = theta[at : at + size]
        at += size
        out.append(lam)
    return out


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
    problem, spec = build_problem(
        data, formula, groups=groups, re_formula=re_formula, nested=nested_l, reml=reml
    )
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
                    "engine='auto': the toolkit's engine (outcomes.models.lmm_engine) is not "
                    "installed; used statsmodels.",
                    "info",
                )
            )
    fit.diagnostics = [*notes, *fit.diagnostics]
    return LmmResult(fit=fit, spec=spec, level=level, ddf=ddf)
