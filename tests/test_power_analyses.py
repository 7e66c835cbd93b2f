"""Power analyses beyond the LMM (outcomes.power(analysis=...)): the interval-censored time to
a full result, checked against derive_tte, interval_model and R, and responders at the primary
visit (exact McNemar / Fisher), checked against independent computations; type I error by
simulation."""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats

import outcomes
from outcomes.errors import InputError
from outcomes.planning.analyse import Analysis, analyse
from outcomes.planning.design import Design
from outcomes.planning.generate import simulate_replicate
from outcomes.planning.interval import (
    interval_bounds,
    log_likelihood,
    row_scores,
    weibull_interval_fit,
)
from outcomes.planning.responder import responder_table
from outcomes.planning.results import mc_interval
from outcomes.planning.run import plan_chunks, replicate_seed, run_chunks

R_DIR = Path(__file__).parent / "r" / "power"
MONTHLY = (0, 28, 56, 84, 112, 140, 168)


def _replicate(design: Design, n: int, r: int, seed: int = 4):
    return simulate_replicate(design, n, np.random.default_rng(replicate_seed(seed, "null", n, r)))


def test_interval_bounds_are_derive_tte_of_the_full_result_endpoint():
    design = Design(visit_days=MONTHLY, dropout=0.3, missed_visit=0.2)
    for r in range(3):
        rep = _replicate(design, 15, r)
        y = rep.y.copy()
        y[:2] = 0.0  # the first unit's baseline is 0: no percent change, no information
        rep = dataclasses.replace(rep, y=y)
        unit_subject = np.zeros(rep.n_units, dtype=int)
        unit_subject[rep.unit] = rep.subject
        units = pd.DataFrame(
            {
                "study_id": "S",
                "unit_id": [f"u{u}" for u in range(rep.n_units)],
                "subject_id": [f"p{s}" for s in unit_subject],
                "modality": "mn",
            }
        )
        sessions = units[["study_id", "unit_id"]].assign(day=0)
        assessments = pd.DataFrame(
            {
                "study_id": "S",
                "unit_id": [f"u{u}" for u in rep.unit],
                "instrument": "gb_quant",
                "day": np.asarray(design.visit_days)[rep.visit],
                "value": rep.y,
                "rater_role": "investigator",
                "rater_id": "INV1",
            }
        )
        tables = {"units": units, "sessions": sessions, "assessments": assessments}
        tte = outcomes.derive_tte(tables, "full_result")
        bounds = interval_bounds(rep, design)
        assert tte["lower"].tolist() == bounds["lower"].tolist()
        assert tte["upper"].tolist() == bounds["upper"].tolist()
        assert (tte["cnsr"] == 10).sum() >= 1


@pytest.mark.parametrize("design", [Design(visit_days=MONTHLY), Design(design="parallel")])
def test_fast_interval_fit_equals_interval_model(design):
    checked = 0
    for r in range(4):
        rep = _replicate(design, 20, r)
        bounds = pd.DataFrame(interval_bounds(rep, design))
        x = np.column_stack([np.ones(len(bounds)), bounds["arm"]])
        fast = weibull_interval_fit(x, bounds["lower"].to_numpy(), bounds["upper"].to_numpy())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # few_events / not_converged warn; they are data
            public = outcomes.interval_model(bounds, by="arm")
        converged = "not_converged" not in set(public.diagnostics.get("code", []))
        assert fast["converged"] == converged
        if not converged:
            continue
        checked += 1
        assert fast["loglik"] == pytest.approx(public.loglik, rel=1e-10)
        table = public.table.set_index("term")
        assert fast["theta"] == pytest.approx(table["estimate"].to_numpy(), rel=1e-6, abs=1e-8)
        se = np.sqrt(np.diag(fast["vcov"]))
        assert se == pytest.approx(table["std_error"].to_numpy(), rel=1e-5)
        out = analyse(rep, design, Analysis(analysis="interval"))
        if design.design == "parallel":
            assert out["std_error"] == pytest.approx(table.loc["arm[T.1.0]", "std_error"], 1e-5)
    assert checked >= 2


def test_fit_and_row_scores_equal_r_survreg():
    data = pd.read_csv(R_DIR / "interval_bounds.csv")
    reference = json.loads((R_DIR / "interval_cluster.json").read_text())
    for ref in reference:
        part = data[data["replicate"] == ref["replicate"]].set_index("unit").loc[ref["unit"]]
        x = np.column_stack([np.ones(len(part)), part["arm"]])
        lo, hi = part["lower"].to_numpy(), part["upper"].to_numpy()
        fit = weibull_interval_fit(x, lo, hi, part["subject"].to_numpy())
        assert fit["loglik"] == pytest.approx(ref["loglik"], rel=1e-9)
        assert fit["theta"] == pytest.approx([*ref["coef"], ref["log_scale"]], abs=1e-6)
        assert np.sqrt(fit["vcov"][1, 1]) == pytest.approx(ref["se_arm"], rel=1e-5)
        # the sandwich's pieces: every row's score; R's coefficient columns are the reference
        ours, r_scores = row_scores(fit["theta"], x, lo, hi), np.asarray(ref["scores"])
        assert ours[:, :2] == pytest.approx(r_scores[:, :2], abs=1e-5)
        interval = (lo > 0) & np.isfinite(hi)
        assert ours[~interval, 2] == pytest.approx(r_scores[~interval, 2], abs=1e-5)
        # R's log(scale) column on interval rows has the opposite sign: it does not sum to 0
        # at the maximum (ours does), so R's robust SE (built from it) is not the reference
        assert ours[interval, 2] == pytest.approx(-r_scores[interval, 2], abs=1e-5)
        assert abs(ours.sum(axis=0)).max() < 1e-5 < abs(r_scores[:, 2].sum())
        assert np.sqrt(fit["robust_vcov"][1, 1]) != pytest.approx(ref["robust_se_arm"], 1e-3)


def test_row_scores_are_the_derivatives_of_each_rows_log_likelihood():
    rep = _replicate(Design(visit_days=MONTHLY), 12, 0)
    b = interval_bounds(rep, Design(visit_days=MONTHLY))
    keep = (b["lower"] > 0) | np.isfinite(b["upper"])
    x = np.column_stack([np.ones(keep.sum()), b["arm"][keep]])
    lo, hi = b["lower"][keep], b["upper"][keep]
    theta = np.array([5.2, -0.2, -1.1])
    numeric = np.zeros((len(lo), 3))
    for i in range(len(lo)):
        for j in range(3):
            e = np.zeros(3)
            e[j] = 1e-6
            row = (x[i : i + 1], lo[i : i + 1], hi[i : i + 1])
            up, down = log_likelihood(theta + e, *row)[0], log_likelihood(theta - e, *row)[0]
            numeric[i, j] = (up - down) / 2e-6
    assert row_scores(theta, x, lo, hi) == pytest.approx(numeric, abs=1e-6)


def _type_one(design: Design, n: int, reps: int, seed: int) -> tuple[int, int, pd.DataFrame]:
    chunks = [c for c in plan_chunks([n], reps, True, reps // 2) if c.scenario == "null"]
    table = run_chunks(design, Analysis(analysis="interval"), seed, chunks)
    return int((table["p_value"] < 0.05).sum()), len(table), table


def test_interval_type_one_error_within_its_monte_carlo_interval():
    # a trial large enough for the Wald test (60 patients, monthly visits), no difference
    rejected, m, table = _type_one(Design(visit_days=MONTHLY), 60, 300, 31)
    low, high = mc_interval(rejected, m)
    assert low <= 0.05 <= high
    assert (table["truth"] == 0).all() and (table["error"] == "").mean() > 0.95


def test_interval_failures_are_counted_and_never_significant():
    # the demo visit grid: most results fall between days 84 and 168, and small trials often
    # have no maximum-likelihood estimate (the Weibull scale tends to 0)
    res = outcomes.power(n=[8], reps=40, seed=2, analysis="interval", progress=False)
    reps = res.replicates
    failed = reps["error"] != ""
    assert failed.any() and reps.loc[failed, "p_value"].isna().all()
    assert res.summary["failed"].iloc[0] == failed.sum()
    assert "fit_failed" in set(res.diagnostics["code"])
    assert np.isnan(res.summary["bias"].iloc[0]) and np.isnan(res.summary["coverage"].iloc[0])
    assert "interval-censored Weibull" in res.analysis.label()


def test_new_analyses_give_the_same_results_on_every_backend():
    from dask.distributed import Client, LocalCluster

    small = {"n": [6], "reps": 4, "seed": 3, "chunk_size": 2, "progress": False}
    small |= {"visit_days": MONTHLY}
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        for analysis in ("interval", "responder", "mmrm"):
            serial = outcomes.power(**small, analysis=analysis)
            joblib = outcomes.power(**small, analysis=analysis, backend="joblib", n_jobs=2)
            dask = outcomes.power(**small, analysis=analysis, client=client)
            pd.testing.assert_frame_equal(serial.replicates, joblib.replicates)
            pd.testing.assert_frame_equal(serial.replicates, dask.replicates)


@pytest.mark.slow
@pytest.mark.parametrize("design", ["split_body", "parallel"])
def test_interval_type_one_error_large_run(design):
    res = outcomes.power(
        design,
        n=[40, 60],
        reps=2000,
        seed=12,
        analysis="interval",
        visit_days=MONTHLY,
        backend="joblib",
        n_jobs=2,
    )
    for row in res.summary.itertuples():
        # conservative at worst: the Wald test of a Weibull model is not liberal here
        assert row.type1_low <= 0.05 and row.type1_high >= 0.03
        assert row.failed < 0.02 * (row.power_reps + row.type1_reps)


# --------------------------------------------------------------------------------------------
# responders at the primary visit (analysis="responder")
# --------------------------------------------------------------------------------------------


def _responders_by_pandas(rep, design: Design) -> pd.DataFrame:
    """Responder status at the primary visit, derived independently with pandas."""
    frame = rep.to_frame()
    base = frame[frame["visit"] == 0].set_index("unit")["y"]
    last = frame[frame["visit"] == len(design.visit_days) - 1].copy()
    b = last["unit"].map(base)
    last["responder"] = (100 * (b - last["y"]) / b >= 50).astype(int)
    return last[b > 0]


@pytest.mark.parametrize("design", [Design(), Design(design="parallel", dropout=0.3)])
def test_responder_table_and_test_agree_with_independent_computations(design):
    from statsmodels.stats.contingency_tables import mcnemar

    for r in range(4):
        rep = _replicate(design, 25, r)
        table = responder_table(rep, design)
        resp = _responders_by_pandas(rep, design)
        out = analyse(rep, design, Analysis(analysis="responder"))
        if design.design == "split_body":
            wide = resp.pivot_table(index="subject", columns="arm", values="responder").dropna()
            expected = pd.crosstab(wide[1.0], wide[0.0]).reindex(
                index=[1, 0], columns=[1, 0], fill_value=0
            )
            assert table.tolist() == expected.to_numpy().tolist()
            if table[0, 1] + table[1, 0]:
                assert out["p_value"] == pytest.approx(mcnemar(table, exact=True).pvalue)
                with np.errstate(divide="ignore"):
                    expected_log_or = np.log(table[0, 1]) - np.log(table[1, 0])
                assert out["estimate"] == pytest.approx(expected_log_or)
        else:
            expected = pd.crosstab(resp["arm"], resp["responder"]).reindex(
                index=[1.0, 0.0], columns=[1, 0], fill_value=0
            )
            assert table.tolist() == expected.to_numpy().tolist()
            assert out["p_value"] == pytest.approx(
                scipy.stats.fisher_exact(table).pvalue, rel=1e-12
            )
            assert out["conf_low"] < out["estimate"] < out["conf_high"]


def test_responder_type_one_error_is_the_exact_tests_size():
    # split-face, no difference: given m discordant pairs the exact McNemar test rejects with
    # probability size(m), so the count of rejections is Poisson-binomial around sum size(m)
    design, n, reps = Design(), 40, 300
    chunks = [c for c in plan_chunks([n], reps, True, reps) if c.scenario == "null"]
    table = run_chunks(design, Analysis(analysis="responder"), 17, chunks)
    sizes = []
    for r in range(reps):
        rng = np.random.default_rng(replicate_seed(17, "null", n, r))
        counts = responder_table(simulate_replicate(design.null(), n, rng), design)
        m = int(counts[0, 1] + counts[1, 0])
        k = np.arange(m + 1)
        p = np.array([scipy.stats.binomtest(int(j), m).pvalue for j in k]) if m else np.ones(1)
        sizes.append(float(scipy.stats.binom.pmf(k, m, 0.5)[p < 0.05].sum()))
    size = np.array(sizes)
    rejected = int((table["p_value"] < 0.05).sum())
    assert abs(rejected - size.sum()) <= 3.5 * np.sqrt((size * (1 - size)).sum()) + 0.5
    low, _ = mc_interval(rejected, reps)
    assert low <= 0.05  # an exact test is never liberal


@pytest.mark.slow
@pytest.mark.parametrize("design", ["split_body", "parallel"])
def test_responder_type_one_error_large_run(design):
    res = outcomes.power(design, n=[20, 60], reps=2000, seed=13, analysis="responder")
    for row in res.summary.itertuples():
        assert row.type1_low <= 0.05


# --------------------------------------------------------------------------------------------
# MMRM through outcomes.mmrm (analysis="mmrm")
# --------------------------------------------------------------------------------------------


def test_mmrm_is_the_declared_trial_mmrm_at_the_primary_visit():
    design = Design(design="parallel", missed_visit=0.2)
    rep = _replicate(design, 12, 0)
    out = analyse(rep, design, Analysis(analysis="mmrm", ddf="kenward-roger"))
    frame = rep.to_frame()
    base = frame[frame["visit"] == 0].set_index("unit")["y"]
    later = frame[frame["visit"] > 0].assign(baseline=lambda f: f["unit"].map(base))
    later["arm"] = np.where(later["arm"] == 1, "b_combination", "a_control")
    fit = outcomes.mmrm(later, "y ~ baseline + arm * visit", subject="unit", visit="visit")
    # the arm effect at the last visit: arm main effect plus its interaction with that visit
    names = list(fit.tidy()["term"])
    contrast = np.zeros(len(names))
    last = len(design.visit_days) - 1
    contrast[names.index("arm[T.b_combination]")] = 1.0
    contrast[names.index(f"arm[T.b_combination]:visit[T.{last}]")] = 1.0
    expected = fit.test(contrast[None, :]).iloc[0]
    for key in ("estimate", "std_error", "df", "p_value"):
        assert out[key] == pytest.approx(expected[key], rel=1e-8), key


def test_mmrm_type_one_error_within_its_monte_carlo_interval():
    design = Design(design="parallel")
    chunks = [c for c in plan_chunks([10], 120, True, 60) if c.scenario == "null"]
    table = run_chunks(design, Analysis(analysis="mmrm", ddf="kenward-roger"), 23, chunks)
    rejected = int((table["p_value"] < 0.05).sum())
    low, high = mc_interval(rejected, len(table))
    assert (table["error"] == "").all() and low <= 0.05 <= high


def test_mmrm_trouble_is_counted_and_failed_fits_are_never_significant():
    # small split-face trials: the patient intercept often sits on its boundary
    res = outcomes.power(n=[5], reps=12, seed=4, analysis="mmrm", null=False, progress=False)
    reps = res.replicates
    assert (reps["warnings"] != "").any()
    failed = reps["error"] != ""
    assert reps.loc[failed, "p_value"].isna().all()
    assert res.summary["failed"].iloc[0] == failed.sum()


@pytest.mark.slow
@pytest.mark.parametrize("design", ["split_body", "parallel"])
def test_mmrm_type_one_error_large_run(design):
    res = outcomes.power(
        design,
        n=[10, 20],
        reps=400,
        seed=14,
        analysis="mmrm",
        ddf="kenward-roger",
        backend="joblib",
        n_jobs=2,
    )
    for row in res.summary.itertuples():
        assert row.type1_low <= 0.05  # split-face: conservative (see outcomes.planning.mmrm)
        if design == "parallel":
            assert row.type1_low <= 0.05 <= row.type1_high


@pytest.mark.parametrize("analysis", ["mmrm", "interval", "responder"])
def test_analyses_of_change_from_baseline_need_a_later_primary_visit(analysis):
    with pytest.raises(InputError, match="later primary_day"):
        outcomes.power(n=[5], reps=2, analysis=analysis, visit_days=(168,), progress=False)


@pytest.mark.parametrize(
    ("analysis", "words"),
    [("mmrm", "LS-mean difference in score points"), ("responder", "log odds ratio")],
)
def test_estimand_says_what_the_estimate_is_not_how_it_is_tested(analysis, words):
    from outcomes.planning.analyse import Analysis

    a = Analysis(analysis=analysis)
    assert words in a.estimand() and a.estimand() != a.label()
