"""A fast, exact linear mixed-model engine: lme4's profiled criterion on per-group statistics.

The engine fits ``y = X beta + Z b + e`` by REML or ML for the random-effects structures of
outcomes research:

* one grouping factor with correlated random intercept and slopes, ``(1 + time | id)``;
* two nested levels, e.g. side within patient ``(1 | patient) + (1 | patient:side)`` or patient
  (intercept and slope) within clinic ``(1 | clinic) + (1 + time | clinic:patient)``.

It follows lme4 (Bates et al. 2015, *J. Stat. Softw.* 67(1), section 3): the random-effects
covariance is ``sigma^2 Lambda(theta) Lambda(theta)^T``; the fixed effects and the residual
variance are profiled out, and the criterion is minimised over ``theta`` alone. Because ``Z``
is block diagonal, everything the criterion needs is a handful of small per-group cross-product
matrices (``Z_i'Z_i``, ``Z_i'X_i``, ``Z_i'y_i``) and the global ``X'X``, ``X'y``, ``y'y``,
computed once. Each evaluation is then batched dense algebra over all groups at once: arrays
are laid out with the group as the last (contiguous) axis and the tiny ``q x q`` algebra is
unrolled over ``q``, so there is no Python loop over groups.

Two further exact devices keep evaluations cheap:

* with one grouping factor, groups with identical ``Z_i'Z_i`` (a fixed visit schedule, possibly
  with dropout) share their factorisation, and the cross-products with ``[X y]`` are summed
  within each such pattern once, as a fourth-order tensor; an evaluation then costs as many
  small factorisations as there are distinct patterns, not groups;
* with two nested levels the inner blocks are factorised first and the outer block is their
  Schur complement (the sparse Cholesky factor of lme4 with inner levels ordered first, which
  has no fill-in), batched over inner and outer groups.

Satterthwaite's numerical derivatives (about 75 evaluation points) are evaluated in one batch:
points that differ only in ``sigma`` share one evaluation, and with irregular visits the new
thetas' quadratic terms are one matrix product of their ``Lambda H_i^-1 Lambda'`` (thetas x
groups) with fixed per-group products of ``Z_i'A_i``. :class:`PreparedModel` keeps everything
that does not depend on the response, so a simulation study refits new responses cheaply.

The gradient of the profiled criterion is analytic for both structures. The optimiser is
L-BFGS-B on the unbounded problem (the criterion is even in each column of ``Lambda``, so the
result is mapped to lme4's parameterisation with non-negative diagonal), then Newton steps on
the free parameters with a finite-difference Hessian of the analytic gradient, which also
verifies the optimum; diagonal elements that end up near zero are tried at exactly zero (a
boundary fit, as lme4 reports it) and kept there when the criterion is as good. A doubtful
optimum -- failed gradient or Hessian check, or a boundary point with a better point just
inside -- is refitted from other starts (Nelder-Mead, a smaller start) and the best kept, with
an ``optimizer_retry`` diagnostic.

``theta`` is ordered as ``problem.terms`` (outermost term first); within a term, the non-zero
elements of the lower-triangular ``Lambda`` are taken column by column, as in lme4. (lme4 itself
orders terms by decreasing number of levels, i.e. innermost first.)

Diagnostics are recorded in :attr:`LmmFit.diagnostics` but not emitted as warnings here; the
user-facing API (:mod:`outcomes.models.lmm.fit`) emits them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import scipy.optimize
import scipy.sparse

from outcomes.errors import InputError, ModelError
from outcomes.models.blas import one_blas_thread
from outcomes.models.lmm.blocks import _OneLevel, _TwoLevel
from outcomes.models.lmm.criterion import _Criterion
from outcomes.models.lmm.types import LmmFit, LmmProblem
from outcomes.results import Diagnostic

__all__ = ["PreparedModel", "fit"]


SINGULAR_TOL = 1e-4
"""A diagonal element of ``Lambda`` below this is a boundary (singular) fit, as lme4's
``isSingular(tol = 1e-4)``."""


#: Newton polishing stops when its step in theta is below this, relative to max(1, |theta|).
STEP_TOL = 1e-10


# --------------------------------------------------------------------------------------------
# Optimisation and verification
# --------------------------------------------------------------------------------------------


@dataclass
class _Optimum:
    theta: np.ndarray
    value: float
    hessian_ok: bool
    decrement: float  # Newton decrement g' H^-1 g on the free parameters

    def ok(self, tol: float) -> bool:
        return self.hessian_ok and self.decrement <= tol


def _canonical(crit: _Criterion, theta: np.ndarray) -> np.ndarray:
    """Flip the sign of every column of Lambda whose diagonal element is negative.

    ``Lambda Lambda'`` (and so the criterion) does not change, and the result satisfies lme4's
    bounds (diagonal elements non-negative).
    """
    theta = theta.copy()
    for block in crit.structure.blocks:
        rows, cols = block.index
        for c in range(block.q):
            at = block.start + np.flatnonzero(cols == c)
            if theta[block.start + np.flatnonzero((cols == c) & (rows == c))[0]] < 0:
                theta[at] = -theta[at]
    return theta


def _lbfgsb(crit: _Criterion, start: np.ndarray) -> np.ndarray:
    """L-BFGS-B on the unbounded problem, then the equivalent point within lme4's bounds.

    Bounds are not imposed during the search: the criterion is even in each column of
    Lambda, so a zero diagonal element is a stationary point of the bounded problem, where a
    step that lands on the bound stalls however much better the interior is. Unbounded, such
    a point is just a saddle the search moves through.
    """
    # Moderate tolerances (the gradient scales with the criterion): Newton polishing, which
    # converges quadratically, finishes the job.
    scale = max(1.0, abs(crit.value_and_grad(start)[0]))
    res = scipy.optimize.minimize(
        crit.value_and_grad,
        start,
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 2000, "ftol": 1e-11, "gtol": 1e-9 * scale},
    )
    return _canonical(crit, res.x)


def _snap_to_boundary(crit: _Criterion, theta: np.ndarray) -> np.ndarray | None:
    """``theta`` with near-zero diagonal elements of Lambda set to zero (None if there are none).

    An unbounded search approaches a boundary optimum only to within its tolerance; lme4
    reports such a variance as exactly zero.
    """
    near = (crit.lower == 0) & (theta < 1e-3)
    if not near.any():
        return None
    snapped = theta.copy()
    snapped[near] = 0.0
    return snapped


def _free_hessian(
    crit: _Criterion, theta: np.ndarray, grad: np.ndarray, free: np.ndarray
) -> np.ndarray:
    """Hessian over the free coordinates by forward differences of the analytic gradient."""
    idx = np.flatnonzero(free)
    hess = np.empty((len(idx), len(idx)))
    for col, k in enumerate(idx):
        h = 1e-4 * max(1.0, abs(theta[k]))
        up = theta.copy()
        up[k] += h
        hess[:, col] = (crit.value_and_grad(up)[1][idx] - grad[idx]) / h
    return (hess + hess.T) / 2


def _polish(crit: _Criterion, theta: np.ndarray, steps: int = 30) -> _Optimum:
    """Newton steps on the free coordinates; the Hessian also verifies the optimum.

    A coordinate at its lower bound whose gradient points outward (non-negative) is held
    there (a KKT boundary optimum); the rest are free. The Hessian is computed once per set of
    free coordinates and reused (a chord method: each step costs one evaluation).

    It stops when the Newton step is below ``STEP_TOL`` relative to ``theta``, not on the change
    in the criterion: near the optimum that change is below the criterion's rounding noise
    while the step still moves the estimates (sleepstudy's ``cov(Intercept, Days)`` by 1e-4).
    A step is taken when it lowers the criterion, or leaves it within rounding noise and
    shrinks the gradient.
    """
    value, grad = crit.value_and_grad(theta)
    free = np.zeros(len(theta), dtype=bool)
    hess, hessian_ok, decrement = None, False, np.inf
    for _ in range(steps):
        now_free = ~((theta <= crit.lower + 1e-12) & (grad >= 0))
        if not now_free.any():
            return _Optimum(theta, value, True, 0.0)
        if hess is None or not np.array_equal(now_free, free):
            free = now_free
            hess = _free_hessian(crit, theta, grad, free)
            eig = np.linalg.eigvalsh(hess)
            hessian_ok = bool(eig[0] > 1e-10 * max(1.0, abs(eig[-1])))
            if not hessian_ok:
                return _Optimum(theta, value, False, np.inf)
        g = grad[free]
        step = np.linalg.solve(hess, g)
        decrement = float(g @ step)
        if np.max(np.abs(step)) <= STEP_TOL * max(1.0, float(np.max(np.abs(theta)))):
            break
        candidate = theta.copy()
        candidate[free] -= step
        candidate = np.maximum(candidate, crit.lower)
        new_value, new_grad = crit.value_and_grad(candidate)
        noise = 1e-13 * max(1.0, abs(value))
        better = new_value < value or (
            new_value <= value + noise and np.linalg.norm(new_grad[free]) < np.linalg.norm(g)
        )
        if not better:
            break
        theta, value, grad = candidate, new_value, new_grad
    return _Optimum(theta, value, hessian_ok, decrement)


def _nelder_mead(crit: _Criterion, start: np.ndarray) -> np.ndarray:
    res = scipy.optimize.minimize(
        crit,
        start,
        method="Nelder-Mead",
        options={"maxiter": 5000 * len(start), "xatol": 1e-10, "fatol": 1e-12},
    )
    return _canonical(crit, res.x)


def _search(crit: _Criterion, start: np.ndarray) -> _Optimum:
    """L-BFGS-B, Newton polishing, and the boundary point when it is as good."""
    best = _polish(crit, _lbfgsb(crit, start))
    snapped = _snap_to_boundary(crit, best.theta)
    if snapped is not None:
        alt = _polish(crit, snapped)
        if alt.value <= best.value + 1e-7 + 1e-12 * abs(best.value):
            best = alt
    return best


def _boundary_probes(crit: _Criterion, opt: _Optimum) -> list[np.ndarray]:
    """Points just inside the bounds that beat a boundary optimum, if any.

    The profiled deviance is even in each column of ``Lambda``, so ``Lambda[c, c] = 0`` is a
    stationary point whenever the rest of column ``c`` is zero: a gradient method can stop
    there although the criterion falls on moving inward. Probing catches that.
    """
    probes = []
    for k in np.flatnonzero(opt.theta <= crit.lower + 1e-12):
        for h in (1e-2, 1e-1, 1.0):
            probe = opt.theta.copy()
            probe[k] = h
            if crit(probe) < opt.value:
                probes.append(probe)
                break
    return probes


def _optimise(
    crit: _Criterion, start: np.ndarray, diagnostics: list[Diagnostic]
) -> tuple[_Optimum, bool, str]:
    """Search, then refit from other starts when the optimum is in doubt.

    In doubt means: the Newton decrement or Hessian check fails, or the optimum is on the
    boundary and a point just inside it is better.
    """
    tol = 1e-6  # Newton decrement in deviance units
    first = _search(crit, start)
    probes = _boundary_probes(crit, first)
    if first.ok(tol) and not probes:
        return first, True, "L-BFGS-B + Newton"
    candidates = [first]
    candidates.extend(_search(crit, probe) for probe in probes)
    if not first.ok(tol):
        candidates.append(_search(crit, _nelder_mead(crit, first.theta)))
        alt = np.concatenate([b.start_values() * 0.1 for b in crit.structure.blocks])
        candidates.append(_search(crit, alt))
    best = min(candidates, key=lambda o: o.value)
    verified = best.ok(tol) and not _boundary_probes(crit, best)
    diagnostics.append(
        Diagnostic(
            "optimizer_retry",
            "The first optimum was in doubt (it failed the gradient or Hessian check, or lay on "
            f"the boundary with a better point just inside); the model was refitted from "
            f"{len(candidates) - 1} other starting point(s) and the best fit kept "
            f"(-2 log-likelihood improved by {first.value - best.value:.3g}).",
            "info",
        )
    )
    return best, verified, "L-BFGS-B + Newton, with restarts"


# --------------------------------------------------------------------------------------------
# Input checks and the entry point
# --------------------------------------------------------------------------------------------


def _min_relative_eigenvalue(matrix: np.ndarray) -> float:
    eig = np.linalg.eigvalsh(matrix)
    return float(eig[0] / eig[-1])


def _check(problem: LmmProblem) -> np.ndarray:
    """Refuse a problem the engine cannot fit; return ``X'X`` (computed for the rank check)."""
    y, x = np.asarray(problem.y), np.asarray(problem.x, dtype=float)
    if y.ndim != 1 or x.ndim != 2 or x.shape[0] != y.shape[0]:
        raise InputError(
            f"The response must be a vector and the fixed-effects design a matrix with one row "
            f"per observation; got shapes {y.shape} and {x.shape}."
        )
    n, p = x.shape
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(x))):
        raise InputError("The response and fixed-effects design must not contain missing values.")
    if not 1 <= len(problem.terms) <= 2:
        raise InputError(
            f"The outcomes engine fits one grouping factor or two nested ones; got "
            f"{len(problem.terms)} random terms."
        )
    for term in problem.terms:
        codes, z = np.asarray(term.codes), np.asarray(term.z)
        if z.ndim != 2 or z.shape[0] != n or codes.shape != (n,):
            raise InputError(
                f"The random-effects design of '{term.group}' must have one row per observation."
            )
        if not np.all(np.isfinite(z)):
            raise InputError(f"The random-effects design of '{term.group}' has missing values.")
        if (
            not np.issubdtype(codes.dtype, np.integer)
            or codes.min() < 0
            or (codes.max() >= term.n_groups)
        ):
            raise InputError(
                f"The group codes of '{term.group}' must be integers 0 .. {term.n_groups - 1}."
            )
        n_levels = int(np.count_nonzero(np.bincount(codes, minlength=term.n_groups)))
        if n_levels >= n:
            raise ModelError(
                f"'{term.group}' has as many groups ({n_levels}) as observations ({n}); its "
                "variance cannot be separated from the residual variance."
            )
        if n_levels * z.shape[1] >= n:
            raise ModelError(
                f"The term for '{term.group}' has {n_levels * z.shape[1]} random effects for "
                f"{n} observations; the random-effects and residual variances are not "
                "identifiable."
            )
    if n <= p:
        raise ModelError(f"{n} observations are too few for {p} fixed effects.")
    xtx = x.T @ x
    scale = np.sqrt(np.diag(xtx))
    if scale.min() == 0 or _min_relative_eigenvalue(xtx / np.outer(scale, scale)) < 1e-12:
        raise ModelError(
            "The fixed-effects design is rank deficient (some terms are linear combinations of "
            "others, or a factor level has no observations); drop or recode those terms."
        )
    return xtx


def _boundary_diagnostics(theta: np.ndarray, crit: _Criterion, problem: LmmProblem) -> list:
    out = []
    for block, term in zip(crit.structure.blocks, problem.terms, strict=True):
        lam = block.lam(theta)
        diag = np.diag(lam)
        if diag.min() < SINGULAR_TOL:
            names = [term.z_names[j] for j in np.flatnonzero(diag < SINGULAR_TOL)]
            out.append(
                Diagnostic(
                    "singular_fit",
                    f"Boundary (singular) fit for '{term.group}': the random-effects covariance "
                    f"is (nearly) singular at {', '.join(names)} -- a variance at zero or a "
                    "correlation at +/-1. Those variance components are estimated at the "
                    "boundary; consider a simpler random-effects structure.",
                    "warning",
                )
            )
    return out


def _least_squares(x: np.ndarray, y: np.ndarray, xtx: np.ndarray) -> np.ndarray:
    """Least-squares coefficients of ``y`` on ``x`` by the (column-scaled) normal equations
    (``xtx = x'x``) with one step of iterative refinement: as accurate as an SVD solve for any
    design that passes :func:`_check`, at a fraction of its cost on long data."""
    scale = np.sqrt(np.diag(xtx))
    scaled = xtx / np.outer(scale, scale)
    coef = np.linalg.solve(scaled, (x.T @ y) / scale) / scale
    return coef + np.linalg.solve(scaled, (x.T @ (y - x @ coef)) / scale) / scale


def fit(problem: LmmProblem, *, start: np.ndarray | None = None) -> LmmFit:
    """Fit a linear mixed model by REML or ML with lme4's profiled criterion.

    Parameters
    ----------
    problem
        The model as arrays: one random term, or two with the second nested within the first.
    start
        Starting ``theta`` (ordered as ``problem.terms``); by default lme4's (``Lambda = I``).

    Returns
    -------
    LmmFit
        Estimates at the optimum, with ``deviance(varpar)`` and ``vcov_at(varpar)`` for
        Satterthwaite degrees of freedom. ``theta`` is ordered as ``problem.terms``.

    Raises
    ------
    InputError
        Arrays of the wrong shape, missing values, or groups that are not nested.
    ModelError
        A model that cannot be fitted (rank-deficient design, too many random effects).

    Examples
    --------
    >>> import numpy as np
    >>> from outcomes.models.lmm.types import LmmProblem, RandomTerm
    >>> rng = np.random.default_rng(1)
    >>> ids = np.repeat(np.arange(30), 4)
    >>> x = np.column_stack([np.ones(120), np.tile(np.arange(4.0), 30)])
    >>> y = x @ [1.0, 0.5] + rng.normal(size=30)[ids] + rng.normal(size=120)
    >>> term = RandomTerm("id", ids, np.arange(30), np.ones((120, 1)), ("(Intercept)",))
    >>> result = fit(LmmProblem(y, x, ("(Intercept)", "time"), (term,)))
    >>> result.converged, result.beta.round(2).tolist()
    (True, [0.73, 0.58])
    """
    return PreparedModel(problem).fit(start=start)


class PreparedModel:
    """A model whose design is set up once, to be fitted to one response or many.

    Everything that does not depend on the response is computed here, once: the input checks,
    the group bookkeeping, the pattern detection and the cross-products ``Z'Z``, ``Z'X`` (and
    ``X'X``). :meth:`fit` then adds only the response's cross-products, so a simulation study
    that fits one design to many simulated responses pays for the design once.

    Parameters
    ----------
    problem
        The model as arrays; its ``y`` is the response fitted by ``fit()`` without arguments.

    Examples
    --------
    >>> import numpy as np
    >>> from outcomes.models.lmm.types import LmmProblem, RandomTerm
    >>> rng = np.random.default_rng(1)
    >>> ids = np.repeat(np.arange(30), 4)
    >>> x = np.column_stack([np.ones(120), np.tile(np.arange(4.0), 30)])
    >>> term = RandomTerm("id", ids, np.arange(30), np.ones((120, 1)), ("(Intercept)",))
    >>> def simulate():
    ...     return x @ [1.0, 0.5] + rng.normal(size=30)[ids] + rng.normal(size=120)
    >>> model = PreparedModel(LmmProblem(simulate(), x, ("(Intercept)", "time"), (term,)))
    >>> fits = [model.fit(simulate()) for _ in range(3)]
    >>> [f.converged for f in fits]
    [True, True, True]
    """

    def __init__(self, problem: LmmProblem) -> None:
        self._xtx = _check(problem)
        self.problem = problem
        self._x = np.asarray(problem.x, dtype=float)
        self._shift, self._r = self._residual(np.asarray(problem.y, dtype=float))
        terms = problem.terms
        if len(terms) == 1:
            self._structure: _OneLevel | _TwoLevel = _OneLevel(terms[0], self._x, self._r)
        else:
            self._structure = _TwoLevel(terms[0], terms[1], self._x, self._r)

    def _residual(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The least-squares coefficients of ``y`` on ``X`` and the residual ``r``.

        The criterion only sees y through its residual from the span of X, so working with
        the residual (``A = [X r]``) changes nothing but rounding: the cross-products no longer
        carry the mean of y, which would cancel in A'V^-1 A.
        """
        shift = _least_squares(self._x, y, self._xtx)
        return shift, y - self._x @ shift

    def _ata(self, r: np.ndarray) -> np.ndarray:
        """``A'A`` for ``A = [X r]``."""
        xtr = self._x.T @ r
        return np.block([[self._xtx, xtr[:, None]], [xtr[None, :], np.array([[r @ r]])]])

    def fit(self, y: np.ndarray | None = None, *, start: np.ndarray | None = None) -> LmmFit:
        """Fit the model to ``y`` (default: the problem's response).

        Parameters
        ----------
        y
            A response with one value per row of the problem, in the same order.
        start
            Starting ``theta``; by default lme4's (``Lambda = I``), whatever was fitted
            before, so a fit does not depend on earlier fits.

        Returns
        -------
        LmmFit
            As :func:`fit`; its ``refit`` fits another response with this prepared model.
        """
        problem, structure, shift, r = self.problem, self._structure, self._shift, self._r
        if y is not None:
            y = np.asarray(y, dtype=float)
            if y.shape != (len(problem.y),) or not np.all(np.isfinite(y)):
                raise InputError(
                    f"The response must be {len(problem.y)} finite values (one per row of the "
                    f"model), got shape {y.shape}"
                    + ("" if y.shape != (len(problem.y),) else " with missing values")
                    + "."
                )
            problem = replace(problem, y=y)
            shift, r = self._residual(y)
            structure = structure.with_response(r)
        crit = _Criterion(problem, structure, self._ata(r))
        if start is None:
            start_theta = np.concatenate([b.start_values() for b in structure.blocks])
        else:
            start_theta = np.asarray(start, dtype=float)
            if start_theta.shape != (structure.n_theta,):
                raise InputError(
                    f"start must have {structure.n_theta} theta values, got {start_theta.shape}."
                )
        diagnostics: list[Diagnostic] = []
        # The algebra is many tiny BLAS calls (L-BFGS-B's own among them): threads only add
        # synchronisation cost, which is large on a loaded machine.
        with one_blas_thread():
            optimum, verified, optimizer = _optimise(crit, start_theta, diagnostics)
        theta = optimum.theta
        pieces = crit.pieces(theta)
        sigma = float(np.sqrt(pieces.r2 / crit.df))
        if not verified:
            diagnostics.append(
                Diagnostic(
                    "not_converged",
                    "The optimiser did not reach a verified optimum (the gradient is not zero "
                    "or the Hessian is not positive definite at the best point found); "
                    "estimates and standard errors may be unreliable.",
                    "warning",
                )
            )
        diagnostics.extend(_boundary_diagnostics(theta, crit, problem))
        return LmmFit(
            engine="outcomes",
            problem=problem,
            beta=pieces.beta + shift,
            vcov_beta=sigma**2 * np.linalg.inv(pieces.xtvx),
            theta=theta,
            sigma=sigma,
            loglik=-0.5 * optimum.value,
            deviance=crit.deviance_at,
            vcov_at=crit.vcov_at,
            deviance_many=crit.deviance_many,
            vcov_many=crit.vcov_many,
            refit=self.fit,
            converged=verified,
            optimizer=optimizer,
            n_evaluations=crit.n_evaluations,
            diagnostics=diagnostics,
        )
