"""The engine's batched and reused paths give the numbers of the one-at-a-time paths.

* ``parts_many`` (all of Satterthwaite's evaluation points together) equals ``parts`` (one
  theta at a time), with and without shared Z'Z patterns: subjects with one observation, very
  unbalanced sizes, singular (boundary) thetas, one, two and three random effects, and two
  nested levels;
* the batched deviance and vcov(beta) equal the independent implementation in
  :mod:`outcomes.models.lmm.deviance`;
* the closed forms of ``H^-1`` and ``Lambda H^-1 Lambda'`` for q <= 2 equal the general
  batched Cholesky path;
* the criterion equals the independent implementation in :mod:`outcomes.models.lmm.deviance`;
* Satterthwaite's df with batched derivatives equal those evaluated point by point;
* a refit with a new response equals a fresh fit of the same data.

The engine has no observation weights, so there is no weighted case to check.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from outcomes.errors import InputError
from outcomes.models import numderiv
from outcomes.models.lmm import batched, blocks
from outcomes.models.lmm.criterion import _Criterion
from outcomes.models.lmm.design import build_problem
from outcomes.models.lmm.deviance import ProfiledDeviance
from outcomes.models.lmm.engine import PreparedModel, fit
from outcomes.models.lmm.fit import lmm
from outcomes.models.lmm.satterthwaite import satterthwaite
from outcomes.models.lmm.types import LmmProblem, RandomTerm


def irregular_problem(seed: int, q: int, *, reml: bool = True) -> LmmProblem:
    """Irregular visit times; group sizes from 1 to 12 (a fifth of the groups have one row)."""
    rng = np.random.default_rng(seed)
    sizes = np.where(rng.random(60) < 0.2, 1, rng.integers(2, 13, 60))
    ids = np.repeat(np.arange(60), sizes)
    n = len(ids)
    time = rng.uniform(0, 6, n)
    arm = (np.arange(60) % 2)[ids].astype(float)
    x = np.column_stack([np.ones(n), time, arm, time * arm])
    # q = 1: a random slope alone (a random intercept alone would share Z_i'Z_i = n_i)
    z = np.column_stack([np.ones(n), time, time**2 / 6])[:, :q] if q > 1 else time[:, None]
    b = rng.normal(size=(60, 3)) * [1.0, 0.3, 0.1]
    y = x @ [10.0, 0.5, 1.0, -0.4] + np.sum(b[ids, :q] * z, axis=1) + rng.normal(size=n)
    names = ("(Intercept)", "time", "time2")[:q] if q > 1 else ("time",)
    term = RandomTerm("id", ids, np.arange(60), z, names)
    return LmmProblem(y, x, ("(Intercept)", "time", "arm", "time:arm"), (term,), reml)


def regular_problem(seed: int, q: int) -> LmmProblem:
    """Six fixed visits, a fifth of the subjects leaving early: a few shared Z'Z patterns."""
    rng = np.random.default_rng(seed)
    sizes = np.where(rng.random(80) < 0.2, rng.integers(1, 6, 80), 6)
    ids = np.repeat(np.arange(80), sizes)
    time = np.concatenate([np.arange(k, dtype=float) for k in sizes])
    n = len(ids)
    arm = (np.arange(80) % 2)[ids].astype(float)
    x = np.column_stack([np.ones(n), time, arm, time * arm])
    z = np.column_stack([np.ones(n), time, time**2 / 6])[:, :q]
    b = rng.normal(size=(80, 3)) * [1.0, 0.3, 0.1]
    y = x @ [10.0, 0.5, 1.0, -0.4] + np.sum(b[ids, :q] * z, axis=1) + rng.normal(size=n)
    names = ("(Intercept)", "time", "time2")[:q]
    term = RandomTerm("id", ids, np.arange(80), z, names)
    return LmmProblem(y, x, ("(Intercept)", "time", "arm", "time:arm"), (term,), True)


def problem(q: int, compressed: bool, seed: int) -> LmmProblem:
    return regular_problem(seed, q) if compressed else irregular_problem(seed, q)


def criterion(prob: LmmProblem) -> _Criterion:
    a = np.column_stack([prob.x, prob.y])
    return _Criterion(prob, blocks._OneLevel(prob.terms[0], prob.x, prob.y), a.T @ a)


def thetas(crit: _Criterion, seed: int) -> np.ndarray:
    """Interior points, and boundary points with each diagonal element of Lambda at zero."""
    rng = np.random.default_rng(seed)
    inside = rng.uniform(0.05, 1.5, (6, len(crit.lower))) * np.where(crit.lower == 0, 1, 0.4)
    boundary = np.repeat(inside[:1], int(np.sum(crit.lower == 0)), axis=0)
    for row, k in zip(boundary, np.flatnonzero(crit.lower == 0), strict=True):
        row[k] = 0.0
    return np.vstack([inside, boundary, np.zeros(len(crit.lower))])


@pytest.mark.parametrize("compressed", [False, True])
@pytest.mark.parametrize("q", [1, 2, 3])
def test_batched_parts_equal_one_theta_at_a_time(q: int, compressed: bool, monkeypatch) -> None:
    crit = criterion(problem(q, compressed, q))
    assert crit.structure.compressed is compressed
    points = thetas(crit, q)
    # small budgets: several blocks of groups (q = 2) and chunks of thetas (q = 1, 3)
    monkeypatch.setattr(blocks, "_CACHE_BUDGET", 7 * len(points))
    monkeypatch.setattr(blocks, "_BATCH_BUDGET", 3 * q * (q + 1) // 2 * 60)
    ld_many, quad_many = crit.structure.parts_many(points)
    for theta, ld_l2, quad in zip(points, ld_many, quad_many, strict=True):
        ld_single, quad_single, _ = crit.structure.parts(theta)
        np.testing.assert_allclose(ld_l2, ld_single, rtol=1e-12, atol=1e-10)
        np.testing.assert_allclose(quad, quad_single, rtol=1e-10, atol=1e-10 * np.abs(quad).max())


@pytest.mark.parametrize(
    ("q", "compressed", "budget"),
    [(1, False, None), (2, False, None), (3, False, None), (2, False, 0)]
    + [(q, True, None) for q in (1, 2, 3)],
)
def test_batched_deviance_and_vcov_equal_the_independent_implementation(
    q: int, compressed: bool, budget: int | None, monkeypatch
) -> None:
    """Budget 0: no pattern tensor and no batched products (one theta at a time)."""
    if budget is not None:
        monkeypatch.setattr(blocks, "_TENSOR_BUDGET", budget)
    prob = problem(q, compressed, 4 + q)
    crit, prof = criterion(prob), ProfiledDeviance(prob)
    points = thetas(crit, 4)
    # each theta twice, with two sigmas (the second visit is remembered)
    varpars = np.vstack([np.column_stack([points, np.full(len(points), s)]) for s in (0.8, 1.3)])
    np.testing.assert_allclose(
        crit.deviance_many(varpars), [prof.deviance(v) for v in varpars], rtol=1e-10
    )
    np.testing.assert_allclose(
        crit.vcov_many(varpars), [prof.vcov_at(v) for v in varpars], rtol=1e-10, atol=0
    )
    np.testing.assert_allclose(crit.deviance_at(varpars[3]), prof.deviance(varpars[3]), rtol=1e-10)
    np.testing.assert_allclose(crit.vcov_at(varpars[3]), prof.vcov_at(varpars[3]), rtol=1e-10)


@pytest.mark.parametrize("re_formula", ["~1", "~week"])
def test_nested_batched_parts_equal_one_theta_at_a_time(re_formula: str, monkeypatch) -> None:
    """Two nested levels (split-face sides within subjects), a random slope or not."""
    data = split_face(7).iloc[:-3]  # one side of the last subject with a single visit
    prob, _ = build_problem(
        data, "score ~ week", groups="subject", re_formula=re_formula, nested=["side"]
    )
    a = np.column_stack([prob.x, prob.y])
    structure = blocks._TwoLevel(prob.terms[0], prob.terms[1], prob.x, prob.y)
    crit = _Criterion(prob, structure, a.T @ a)
    points = thetas(crit, 7)
    monkeypatch.setattr(blocks, "_CACHE_BUDGET", 4 * 3 * 40 * 3)  # chunks of 3 thetas
    ld_many, quad_many = structure.parts_many(points)
    for theta, ld_l2, quad in zip(points, ld_many, quad_many, strict=True):
        ld_single, quad_single, _ = structure.parts(theta)
        np.testing.assert_allclose(ld_l2, ld_single, rtol=1e-12, atol=1e-10)
        np.testing.assert_allclose(quad, quad_single, rtol=1e-10, atol=1e-10 * np.abs(quad).max())
    prof = ProfiledDeviance(prob)
    varpars = np.column_stack([points, np.linspace(0.7, 1.2, len(points))])
    np.testing.assert_allclose(
        crit.deviance_many(varpars), [prof.deviance(v) for v in varpars], rtol=1e-10
    )
    np.testing.assert_allclose(
        crit.vcov_many(varpars), [prof.vcov_at(v) for v in varpars], rtol=1e-10, atol=0
    )


@pytest.mark.parametrize("q", [1, 2])
def test_closed_forms_equal_the_general_path(q: int) -> None:
    crit = criterion(irregular_problem(10 + q, q))
    lam = crit.structure.block.lam(thetas(crit, q)[0])
    ztz = crit.structure.ztz
    hinv, m, logdet = batched._relative_precision(lam, ztz)
    h = batched._plus_identity(batched._right(batched._left(lam.T, ztz), lam))
    hinv_ref, logdet_ref = batched._spd_inverse(h.copy()) if q == 1 else _cholesky_inverse(h)
    m_ref = batched._right(batched._left(lam, hinv_ref), lam.T)
    np.testing.assert_allclose(hinv, hinv_ref, rtol=1e-12)
    np.testing.assert_allclose(m, m_ref, rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(logdet, logdet_ref, rtol=1e-12, atol=1e-13)


def _cholesky_inverse(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The general path of :func:`batched._spd_inverse` (batched Cholesky) for any q."""
    low = batched._chol(h)
    linv = batched._tril_inv(low)
    diag = np.arange(h.shape[0])
    return batched._bmm(batched._bt(linv), linv), 2.0 * np.sum(np.log(low[diag, diag]), axis=0)


@pytest.mark.parametrize("reml", [True, False])
def test_criterion_equals_the_independent_profiled_deviance(reml: bool) -> None:
    prob = irregular_problem(20, 2, reml=reml)
    crit, prof = criterion(prob), ProfiledDeviance(prob)
    for theta in thetas(crit, 20):
        np.testing.assert_allclose(crit(theta), prof.objective(theta), rtol=1e-10)


@pytest.mark.parametrize("compressed", [False, True])
def test_batched_satterthwaite_equals_point_by_point(compressed: bool) -> None:
    """With patterns a theta's numbers do not depend on the batch it is evaluated in; without,
    the batched product sums in another order (rounding, amplified by the differences)."""
    result = fit(problem(2, compressed, 30))
    batched = satterthwaite(result)
    result = fit(problem(2, compressed, 30))
    result.deviance_many = result.vcov_many = None
    single = satterthwaite(result)
    rtol = 1e-10 if compressed else 1e-7
    np.testing.assert_allclose(batched.vcov_varpar, single.vcov_varpar, rtol=rtol)
    # small elements of the Jacobian are mostly rounding: compare them on the largest's scale
    np.testing.assert_allclose(
        batched.jac, single.jac, rtol=0, atol=rtol * np.abs(single.jac).max()
    )
    contrasts = np.eye(4)
    np.testing.assert_allclose(batched.df(contrasts), single.df(contrasts), rtol=rtol)


def test_numderiv_batched_points_equal_one_by_one() -> None:
    def func(x: np.ndarray) -> float:
        return float(np.exp(x[0]) * np.sin(x[1]) + x[0] * x[2] ** 3)

    def many(points: np.ndarray) -> np.ndarray:
        return np.array([func(p) for p in points])

    x = np.array([0.3, -1.2, 0.7])
    assert np.array_equal(numderiv.hessian(func, x), numderiv.hessian(func, x, many=many))
    vector = lambda x: np.array([func(x), x[1] * x[2]])  # noqa: E731
    assert np.array_equal(
        numderiv.jacobian(vector, x),
        numderiv.jacobian(vector, x, many=lambda p: np.array([vector(r) for r in p])),
    )


# ----------------------------------------------------------------------------------------------
# Refits with a new response reuse the design and equal fresh fits
# ----------------------------------------------------------------------------------------------


def split_face(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [(s, side, w) for s in range(20) for side in (0, 1) for w in (0.0, 4.0, 12.0, 24.0)]
    data = pd.DataFrame(rows, columns=["subject", "side", "week"])
    data["modality"] = np.where(data["side"] == 0, "MN", "MN+PRP")
    subject = rng.normal(0, 1.0, 20)[data["subject"]]
    unit = rng.normal(0, 0.5, 40)[data["subject"] * 2 + data["side"]]
    data["score"] = 10 - 0.1 * data["week"] + subject + unit + rng.normal(0, 0.7, len(data))
    return data


@pytest.mark.parametrize(
    ("label", "kwargs"),
    [
        ("irregular, intercept and slope", {"groups": "id", "re_formula": "~time"}),
        ("split-face, nested sides", {"groups": "subject", "nested": "side"}),
    ],
)
def test_refit_equals_a_fresh_fit(label: str, kwargs: dict) -> None:
    if label.startswith("irregular"):
        prob = irregular_problem(40, 2)
        data = pd.DataFrame(
            {"id": prob.terms[0].codes, "time": prob.x[:, 1], "arm": prob.x[:, 2], "y": prob.y}
        )
        formula, response = "y ~ time * arm", "y"
    else:
        data, formula, response = split_face(41), "score ~ week * modality", "score"
    rng = np.random.default_rng(42)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = lmm(data, formula, **kwargs)
        for _ in range(2):
            new = data.copy()
            new[response] = data[response] + rng.normal(0, 1.0, len(data))
            refitted = first.refit(new[response].to_numpy())
            fresh = lmm(new, formula, **kwargs)
            np.testing.assert_allclose(refitted.loglik, fresh.loglik, rtol=1e-12)
            np.testing.assert_allclose(refitted.fit.theta, fresh.fit.theta, rtol=1e-12)
            pd.testing.assert_frame_equal(refitted.fixed, fresh.fixed, rtol=1e-12)
            pd.testing.assert_frame_equal(
                refitted.variance_components, fresh.variance_components, rtol=1e-12
            )
            assert [d.code for d in refitted.diagnostics.itertuples()] == [
                d.code for d in fresh.diagnostics.itertuples()
            ]


def test_prepared_model_refits_and_checks_the_response() -> None:
    prob = irregular_problem(50, 2)
    model = PreparedModel(prob)
    again = model.fit()
    np.testing.assert_allclose(again.loglik, fit(prob).loglik, rtol=1e-12)
    y2 = prob.y[::-1].copy()
    refit = again.refit(y2)
    direct = fit(LmmProblem(y2, prob.x, prob.x_names, prob.terms, prob.reml))
    np.testing.assert_allclose(refit.loglik, direct.loglik, rtol=1e-12)
    np.testing.assert_allclose(refit.beta, direct.beta, rtol=1e-12)
    with pytest.raises(InputError, match="finite values"):
        model.fit(np.append(y2, 1.0))
    y2[3] = np.nan
    with pytest.raises(InputError, match="missing values"):
        model.fit(y2)


def test_refit_with_the_statsmodels_engine_and_bad_responses() -> None:
    data = split_face(43)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = lmm(data, "score ~ week", groups="subject", engine="statsmodels")
        new = data.assign(score=data["score"][::-1].to_numpy())
        refitted = first.refit(new["score"].to_numpy())
        fresh = lmm(new, "score ~ week", groups="subject", engine="statsmodels")
    assert refitted.engine == "statsmodels"
    np.testing.assert_allclose(refitted.loglik, fresh.loglik, rtol=1e-12)
    pd.testing.assert_frame_equal(refitted.fixed, fresh.fixed, rtol=1e-10)
    with pytest.raises(InputError, match="160 finite response values"):
        first.refit(np.ones(159))
    with pytest.raises(InputError, match="missing values"):
        first.refit(np.r_[np.nan, np.ones(159)])
