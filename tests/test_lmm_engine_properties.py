"""Properties of the outcomes LMM engine: cross-checks with statsmodels on random designs,
exact gradients, invariances, input errors, recovery of known truth and memory use."""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.regression.mixed_linear_model import MixedLM

from outcomes.errors import InputError, ModelError
from outcomes.models.lmm import blocks, engine
from outcomes.models.lmm.criterion import _Criterion
from outcomes.models.lmm.engine import fit
from outcomes.models.lmm.types import LmmProblem, RandomTerm

X_NAMES = ("(Intercept)", "time", "arm", "time:arm")


def simulate(
    seed: int,
    n_groups: int,
    n_visits: int,
    sd: tuple[float, float] = (1.0, 0.3),
    *,
    corr: float = 0.3,
    drop: float = 0.0,
    jitter: float = 0.0,
    beta: tuple[float, ...] = (10.0, 0.5, 1.0, -0.4),
    sigma: float = 1.0,
) -> pd.DataFrame:
    """Patients x visits from a random intercept and slope model (known truth)."""
    rng = np.random.default_rng(seed)
    ids = np.repeat(np.arange(n_groups), n_visits)
    time = np.tile(np.arange(n_visits, dtype=float), n_groups) + rng.uniform(
        -jitter, jitter, len(ids)
    )
    arm = (np.arange(n_groups) % 2).astype(float)[ids]
    cov = np.array([[sd[0] ** 2, corr * sd[0] * sd[1]], [corr * sd[0] * sd[1], sd[1] ** 2]])
    b = rng.multivariate_normal([0.0, 0.0], cov, n_groups)
    x = np.column_stack([np.ones(len(ids)), time, arm, time * arm])
    y = x @ np.array(beta) + b[ids, 0] + b[ids, 1] * time + rng.normal(0, sigma, len(ids))
    data = pd.DataFrame({"id": ids, "time": time, "arm": arm, "y": y})
    keep = rng.random(len(data)) >= drop
    keep[np.unique(ids, return_index=True)[1]] = True  # every patient keeps a visit
    return data[keep].reset_index(drop=True)


def problem(data: pd.DataFrame, *, slope: bool = True, reml: bool = True) -> LmmProblem:
    time, arm = data["time"].to_numpy(), data["arm"].to_numpy()
    x = np.column_stack([np.ones(len(data)), time, arm, time * arm])
    z = np.column_stack([np.ones(len(data)), time]) if slope else np.ones((len(data), 1))
    codes, levels = pd.factorize(data["id"])
    names = ("(Intercept)", "time") if slope else ("(Intercept)",)
    term = RandomTerm("id", codes, np.asarray(levels), z, names)
    return LmmProblem(data["y"].to_numpy(), x, X_NAMES, (term,), reml)


def nested_problem(seed: int, n_outer: int, n_inner: int, n_visits: int) -> LmmProblem:
    """Split-face-like data: inner units (sides) within outer units (patients)."""
    rng = np.random.default_rng(seed)
    outer = np.repeat(np.arange(n_outer), n_inner * n_visits)
    inner = np.repeat(np.arange(n_outer * n_inner), n_visits)
    time = np.tile(np.arange(n_visits, dtype=float), n_outer * n_inner)
    treated = (inner % 2).astype(float)
    y = (
        5
        + 0.3 * time
        + 0.5 * treated
        + rng.normal(0, 1.0, n_outer)[outer]
        + rng.normal(0, 0.5, n_outer * n_inner)[inner]
        + rng.normal(0, 0.8, len(time))
    )
    x = np.column_stack([np.ones(len(y)), time, treated])
    one = np.ones((len(y), 1))
    terms = (
        RandomTerm("patient", outer, np.arange(n_outer), one, ("(Intercept)",)),
        RandomTerm("patient:side", inner, np.arange(n_outer * n_inner), one, ("(Intercept)",)),
    )
    return LmmProblem(y, x, ("(Intercept)", "time", "treated"), terms)


def statsmodels_loglik(prob: LmmProblem) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if len(prob.terms) == 1:
            model = MixedLM(prob.y, prob.x, groups=prob.terms[0].codes, exog_re=prob.terms[0].z)
        else:
            frame = pd.DataFrame(prob.x, columns=[f"x{j}" for j in range(prob.x.shape[1])])
            frame["y"] = prob.y
            frame["outer"] = prob.terms[0].codes
            frame["inner"] = prob.terms[1].codes
            formula = "y ~ 0 + " + " + ".join(frame.columns[: prob.x.shape[1]])
            model = MixedLM.from_formula(
                formula, frame, groups="outer", re_formula="1", vc_formula={"s": "0 + C(inner)"}
            )
        try:
            return float(model.fit(reml=prob.reml).llf)
        except (np.linalg.LinAlgError, ValueError):
            return np.nan  # statsmodels could not fit: nothing to compare with


# ----------------------------------------------------------------------------------------------
# statsmodels on random designs: the engine's optimum is the same or better
# ----------------------------------------------------------------------------------------------


@settings(max_examples=8, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n_groups=st.integers(6, 14),
    n_visits=st.integers(3, 6),
    sd=st.sampled_from([(1.0, 0.3), (2.0, 0.0), (0.0, 0.5), (0.5, 0.5)]),
    drop=st.sampled_from([0.0, 0.2]),
    reml=st.booleans(),
)
def test_same_or_better_optimum_than_statsmodels_random_slopes(
    seed: int, n_groups: int, n_visits: int, sd: tuple, drop: float, reml: bool
) -> None:
    prob = problem(simulate(seed, n_groups, n_visits, sd, drop=drop), reml=reml)
    # dropout can leave as many random effects as rows (not identifiable): draw again
    assume(2 * n_groups < len(prob.y))
    ours = fit(prob)
    sm = statsmodels_loglik(prob)
    assume(np.isfinite(sm))
    assert ours.loglik >= sm - 1e-6 * abs(sm)
    assert ours.converged


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 10_000), n_outer=st.integers(6, 12), n_visits=st.integers(2, 4))
def test_same_or_better_optimum_than_statsmodels_nested(
    seed: int, n_outer: int, n_visits: int
) -> None:
    prob = nested_problem(seed, n_outer, 2, n_visits)
    ours = fit(prob)
    sm = statsmodels_loglik(prob)
    assume(np.isfinite(sm))
    assert ours.loglik >= sm - 1e-6 * abs(sm)
    assert ours.converged


# ----------------------------------------------------------------------------------------------
# The analytic gradient is the derivative of the criterion
# ----------------------------------------------------------------------------------------------


def criterion(prob: LmmProblem) -> _Criterion:
    a = np.column_stack([prob.x, prob.y])
    if len(prob.terms) == 1:
        structure = blocks._OneLevel(prob.terms[0], prob.x, prob.y)
    else:
        structure = blocks._TwoLevel(prob.terms[0], prob.terms[1], prob.x, prob.y)
    return _Criterion(prob, structure, a.T @ a)


def clinic_problem(seed: int) -> LmmProblem:
    """Patients (intercept and slope) within clinics (intercept)."""
    data = simulate(seed, 40, 4, drop=0.1, jitter=0.2)
    clinic = data["id"].to_numpy() % 8
    base = problem(data)
    outer = RandomTerm("clinic", clinic, np.arange(8), np.ones((len(data), 1)), ("(Intercept)",))
    return LmmProblem(base.y, base.x, base.x_names, (outer, base.terms[0]), base.reml)


@pytest.mark.parametrize(
    ("label", "prob", "compressed"),
    [
        ("fixed visits, REML", problem(simulate(1, 30, 5)), True),
        ("irregular visits, ML", problem(simulate(2, 30, 5, jitter=0.3), reml=False), False),
        ("split-face, REML", nested_problem(3, 10, 2, 3), None),
        ("patients within clinics, REML", clinic_problem(4), None),
    ],
)
def test_gradient_matches_finite_differences(
    label: str, prob: LmmProblem, compressed: bool | None
) -> None:
    crit = criterion(prob)
    assert getattr(crit.structure, "compressed", None) is compressed, label
    theta = np.linspace(0.4, 1.1, len(crit.lower)) * np.where(crit.lower == 0, 1, -0.3)
    _, grad = crit.value_and_grad(theta)
    h = 1e-5
    numeric = [(crit(theta + h * e) - crit(theta - h * e)) / (2 * h) for e in np.eye(len(theta))]
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-5 * np.abs(grad).max())


def with_z(prob: LmmProblem, z: np.ndarray, names: tuple[str, ...]) -> LmmProblem:
    """``prob`` with another random-effects design for its one grouping factor."""
    term = prob.terms[0]
    return LmmProblem(
        prob.y, prob.x, prob.x_names, (RandomTerm("id", term.codes, term.levels, z, names),)
    )


def irregular_problem(q: int, seed: int) -> LmmProblem:
    """Irregular visit times (every group its own Z'Z) with q = 1, 2 or 3 random effects."""
    prob = problem(simulate(seed, 30, 5, jitter=0.3, drop=0.1))
    time = prob.x[:, 1]
    columns = {1: [time], 2: [np.ones_like(time), time], 3: [np.ones_like(time), time, time**2]}
    names = {1: ("time",), 2: ("(Intercept)", "time"), 3: ("(Intercept)", "time", "time^2")}
    return with_z(prob, np.column_stack(columns[q]), names[q])


@pytest.mark.parametrize("q", [1, 2, 3])
@pytest.mark.parametrize("products_fit", [True, False])
def test_gradient_per_group_matches_finite_differences(
    monkeypatch, q: int, products_fit: bool
) -> None:
    """Each non-compressed path: q = 1, 2 (closed forms), 3, with the pair products kept in
    memory and without (the per-pair BLAS products used beyond the tensor budget)."""
    crit = criterion(irregular_problem(q, 10 + q))
    structure = crit.structure
    assert isinstance(structure, blocks._OneLevel) and not structure.compressed
    if not products_fit:
        monkeypatch.setattr(blocks, "_TENSOR_BUDGET", 0)
    assert structure._fits_budget() is products_fit
    theta = np.linspace(0.4, 1.1, len(crit.lower)) * np.where(crit.lower == 0, 1, -0.3)
    for point in (theta, 0.5 * theta):  # a second theta: the scratch arrays are refilled
        _, grad = crit.value_and_grad(point)
        h = 1e-5
        numeric = [
            (crit(point + h * e) - crit(point - h * e)) / (2 * h) for e in np.eye(len(point))
        ]
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-5 * np.abs(grad).max())


def test_gradient_after_other_evaluations_is_of_its_own_theta() -> None:
    """grad() gets the state of its theta even when parts() ran at another theta since."""
    crit = criterion(irregular_problem(2, 14))
    structure = crit.structure
    theta = np.array([0.8, -0.2, 0.5])
    pieces = crit.pieces(theta)
    w = np.append(-pieces.beta, 1.0)
    omega = (crit.df / pieces.r2) * np.outer(w, w)
    omega[: crit.p, : crit.p] += np.linalg.inv(pieces.xtvx)
    expected = structure.grad(theta, omega, crit.pieces(theta).state)
    structure.parts(2.0 * theta)  # overwrites the scratch arrays
    np.testing.assert_allclose(structure.grad(theta, omega, pieces.state), expected, rtol=1e-12)


def test_pattern_sharing_gives_the_same_fit_as_per_group_algebra(monkeypatch) -> None:
    prob = problem(simulate(5, 40, 5, drop=0.1))
    shared = fit(prob)
    monkeypatch.setattr(blocks, "_TENSOR_BUDGET", 0)
    per_group = fit(prob)
    np.testing.assert_allclose(shared.loglik, per_group.loglik, rtol=1e-11)
    np.testing.assert_allclose(shared.beta, per_group.beta, rtol=1e-8)
    np.testing.assert_allclose(shared.theta, per_group.theta, rtol=1e-5, atol=1e-8)


# ----------------------------------------------------------------------------------------------
# Invariances
# ----------------------------------------------------------------------------------------------


def test_row_order_and_group_labels_do_not_matter() -> None:
    prob = clinic_problem(6)
    rng = np.random.default_rng(0)
    rows = rng.permutation(len(prob.y))
    relabel = [rng.permutation(t.n_groups) for t in prob.terms]
    shuffled = LmmProblem(
        prob.y[rows],
        prob.x[rows],
        prob.x_names,
        tuple(
            RandomTerm(t.group, new[t.codes][rows], t.levels[np.argsort(new)], t.z[rows], t.z_names)
            for t, new in zip(prob.terms, relabel, strict=True)
        ),
        prob.reml,
    )
    a, b = fit(prob), fit(shuffled)
    np.testing.assert_allclose(a.loglik, b.loglik, rtol=1e-10)
    np.testing.assert_allclose(a.beta, b.beta, rtol=1e-6)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-4, atol=1e-6)


def test_a_large_offset_in_the_response_changes_only_the_intercept() -> None:
    prob = problem(simulate(15, 25, 5, jitter=0.2))
    shifted = LmmProblem(prob.y + 1e7, prob.x, prob.x_names, prob.terms, prob.reml)
    a, b = fit(prob), fit(shifted)
    np.testing.assert_allclose(b.loglik, a.loglik, rtol=1e-10)
    np.testing.assert_allclose(b.theta, a.theta, rtol=1e-5)
    np.testing.assert_allclose(b.beta - [1e7, 0, 0, 0], a.beta, rtol=1e-6, atol=1e-6)


def test_unused_group_levels_change_nothing() -> None:
    prob = problem(simulate(7, 20, 4))
    term = prob.terms[0]
    padded = RandomTerm(
        term.group, term.codes, np.append(term.levels, [-1, -2]), term.z, term.z_names
    )
    wider = LmmProblem(prob.y, prob.x, prob.x_names, (padded,), prob.reml)
    np.testing.assert_allclose(fit(prob).loglik, fit(wider).loglik, rtol=1e-11)


# ----------------------------------------------------------------------------------------------
# Optimiser checks and restarts
# ----------------------------------------------------------------------------------------------


def test_a_start_on_a_stationary_boundary_point_is_refitted() -> None:
    # theta = 0 is a stationary point of the criterion for a random intercept (it is even in
    # theta); starting there, the first search cannot move, and the boundary probe refits.
    prob = problem(simulate(8, 20, 5, (1.5, 0.0)), slope=False)
    default = fit(prob)
    stuck = fit(prob, start=np.zeros(1))
    np.testing.assert_allclose(stuck.loglik, default.loglik, rtol=1e-10)
    assert "optimizer_retry" in [d.code for d in stuck.diagnostics]
    assert stuck.converged
    assert default.theta[0] > 0.5


def test_an_unverified_optimum_is_reported_not_hidden(monkeypatch) -> None:
    # Make every Hessian check fail: the engine retries, then says it did not converge.
    prob = problem(simulate(14, 20, 4))
    monkeypatch.setattr(
        engine, "_free_hessian", lambda crit, theta, grad, free: -np.eye(int(free.sum()))
    )
    result = fit(prob)
    codes = [d.code for d in result.diagnostics]
    assert not result.converged
    assert "optimizer_retry" in codes
    assert "not_converged" in codes
    (warning,) = [d for d in result.diagnostics if d.code == "not_converged"]
    assert warning.severity == "warning"


def test_singular_fit_is_reported_with_a_zero_variance() -> None:
    # Residuals centred within each patient: the patient means carry no noise at all, so the
    # between-patient variance estimate is at its lower bound, zero.
    data = simulate(2, 30, 5, (0.0, 0.0), corr=0.0)
    noise = np.random.default_rng(3).normal(0, 2.0, len(data))
    noise -= pd.Series(noise).groupby(data["id"]).transform("mean").to_numpy()
    data["y"] = data["y"] + noise
    result = fit(problem(data, slope=False))
    assert result.theta[0] == 0.0
    (diag,) = [d for d in result.diagnostics if d.code == "singular_fit"]
    assert diag.severity == "warning"
    assert "'id'" in diag.message
    assert result.converged


# ----------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------


def test_bad_input_is_refused_with_a_clear_message() -> None:
    prob = problem(simulate(9, 10, 4))
    term = prob.terms[0]
    y_nan = prob.y.copy()
    y_nan[3] = np.nan
    with pytest.raises(InputError, match="missing values"):
        fit(LmmProblem(y_nan, prob.x, prob.x_names, prob.terms))
    with pytest.raises(InputError, match="one row per observation"):
        fit(LmmProblem(prob.y[:-1], prob.x, prob.x_names, prob.terms))
    with pytest.raises(InputError, match="one grouping factor or two nested"):
        fit(LmmProblem(prob.y, prob.x, prob.x_names, (term, term, term)))
    bad_codes = RandomTerm("id", term.codes + 1, term.levels, term.z, term.z_names)
    with pytest.raises(InputError, match=r"integers 0 \.\. 9"):
        fit(LmmProblem(prob.y, prob.x, prob.x_names, (bad_codes,)))
    with pytest.raises(InputError, match="start must have 3"):
        fit(prob, start=np.ones(2))
    with pytest.raises(InputError, match="varpar must have 4"):
        fit(prob).deviance(np.ones(3))


def test_inner_groups_must_be_nested() -> None:
    nested = nested_problem(10, 6, 2, 3)
    outer, inner = nested.terms
    side = inner.codes % 2  # "L"/"R" coded without the patient: crossed, not nested
    crossed = RandomTerm("side", side, np.array(["L", "R"]), inner.z, inner.z_names)
    with pytest.raises(InputError, match="not nested within 'patient'"):
        fit(LmmProblem(nested.y, nested.x, nested.x_names, (outer, crossed)))


def test_unfittable_models_raise_model_error() -> None:
    prob = problem(simulate(11, 10, 4))
    twice = np.column_stack([prob.x, prob.x[:, 1]])
    with pytest.raises(ModelError, match="rank deficient"):
        fit(LmmProblem(prob.y, twice, (*prob.x_names, "again"), prob.terms))
    n = len(prob.y)
    each_row = RandomTerm("row", np.arange(n), np.arange(n), np.ones((n, 1)), ("(Intercept)",))
    with pytest.raises(ModelError, match="as many groups"):
        fit(LmmProblem(prob.y, prob.x, prob.x_names, (each_row,)))


# ----------------------------------------------------------------------------------------------
# Recovery of known truth
# ----------------------------------------------------------------------------------------------


def test_recovers_known_parameters_on_a_large_simulation() -> None:
    truth = {"beta": np.array([10.0, 0.5, 1.0, -0.4]), "sd": (2.0, 0.5), "corr": 0.3}
    data = simulate(12, 3000, 6, truth["sd"], corr=truth["corr"], jitter=0.3, sigma=1.5)
    result = fit(problem(data))
    se = np.sqrt(np.diag(result.vcov_beta))
    assert np.all(np.abs(result.beta - truth["beta"]) < 4 * se)
    lam = np.array([[result.theta[0], 0.0], [result.theta[1], result.theta[2]]])
    cov = result.sigma**2 * lam @ lam.T
    sd = np.sqrt(np.diag(cov))
    np.testing.assert_allclose(sd, truth["sd"], rtol=0.08)
    np.testing.assert_allclose(cov[0, 1] / sd.prod(), truth["corr"], atol=0.08)
    np.testing.assert_allclose(result.sigma, 1.5, rtol=0.03)


@pytest.mark.slow
def test_wald_intervals_cover_the_truth() -> None:
    # 300 simulated trials of 40 patients; the 95% Wald interval for time:arm (large-sample
    # normal quantile) should cover the truth about 95% of the time.
    z = stats.norm.ppf(0.975)
    hits = []
    for seed in range(300):
        result = fit(problem(simulate(1000 + seed, 40, 5, drop=0.1)))
        se = np.sqrt(result.vcov_beta[3, 3])
        hits.append(abs(result.beta[3] + 0.4) <= z * se)
    low, high = stats.binom.ppf([0.001, 0.999], 300, 0.95) / 300
    assert low - 0.02 <= np.mean(hits) <= high


@pytest.mark.slow
def test_split_face_intervals_cover_the_truth() -> None:
    # 300 simulated split-face trials (12 patients, 2 sides, 3 visits): the 95% Wald interval
    # for the within-patient treatment effect (truth 0.5) should cover it about 95% of the time.
    z = stats.norm.ppf(0.975)
    hits = []
    for seed in range(300):
        result = fit(nested_problem(2000 + seed, 12, 2, 3))
        hits.append(abs(result.beta[2] - 0.5) <= z * np.sqrt(result.vcov_beta[2, 2]))
    low, high = stats.binom.ppf([0.001, 0.999], 300, 0.95) / 300
    assert low - 0.02 <= np.mean(hits) <= high


# ----------------------------------------------------------------------------------------------
# Memory
# ----------------------------------------------------------------------------------------------


def test_memory_grows_linearly_with_rows() -> None:
    peaks = []
    for n_groups in (2_000, 8_000):
        prob = problem(simulate(13, n_groups, 6, jitter=0.3))
        tracemalloc.start()
        fit(prob)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    # four times the rows: about four times the memory, never the square
    assert peaks[1] < 6 * peaks[0]
    # and a small multiple of the data itself (rows x 7 doubles)
    assert peaks[1] < 20 * (8_000 * 6 * 7 * 8)
