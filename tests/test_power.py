"""Power by simulation (outcomes.power): agreement with closed-form power, type I error, the
fast LMM path against outcomes.lmm, reproducibility across backends, resuming, the CLI."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.stats

import outcomes
from outcomes.errors import InputError
from outcomes.planning.analyse import Analysis, analyse, lmm_problem
from outcomes.planning.design import Design
from outcomes.planning.generate import simulate_replicate
from outcomes.planning.results import mc_interval
from outcomes.planning.run import plan_chunks, replicate_seed, run_chunks
from outcomes.progress import progress


def paired_t_power(effect: float, sd: float, n: int, alpha: float = 0.05) -> float:
    """Closed-form power of a two-sided paired t-test: noncentral t with n - 1 df."""
    df = n - 1
    ncp = effect / (sd / np.sqrt(n))
    crit = scipy.stats.t.ppf(1 - alpha / 2, df)
    return float(scipy.stats.nct.sf(crit, df, ncp) + scipy.stats.nct.cdf(-crit, df, ncp))


def test_closed_form_helper_against_a_published_value():
    # Cohen's d = 0.5, n = 34 pairs, alpha 0.05 two-sided: power 0.8078 (G*Power, pwr::pwr.t.test)
    assert paired_t_power(0.5, 1.0, 34) == pytest.approx(0.8078, abs=5e-4)


# --------------------------------------------------------------------------------------------
# (a) agreement with closed-form power; type I error
# --------------------------------------------------------------------------------------------


def test_paired_t_power_of_the_demo_design_matches_the_closed_form():
    # the demo split-face design, complete follow-up, unrounded scores: the t-test at the
    # primary visit is exactly the textbook paired t-test
    res = outcomes.power(
        n=[6, 8, 12],
        reps=2000,
        seed=11,
        analysis="t-test",
        dropout=0,
        missed_visit=0,
        round_scores=False,
        null=True,
        chunk_size=500,
    )
    sd = res.design.paired_sd()
    for row in res.summary.itertuples():
        closed = paired_t_power(abs(res.design.effect), sd, row.n)
        assert row.power_low <= closed <= row.power_high, (row.n, closed, row.power)
        assert row.type1_low <= 0.05 <= row.type1_high
    # the check can fail: a wrong SD (no side effect, 0.5 less) falls outside the intervals
    wrong = paired_t_power(abs(res.design.effect), sd * 0.8, 8)
    at8 = res.summary.set_index("n").loc[8]
    assert not at8.power_low <= wrong <= at8.power_high


def test_lmm_power_in_the_paired_case_matches_the_closed_form():
    # one visit: the split-face LMM y ~ arm + (1 | patient) is the paired t-test (REML,
    # Satterthwaite df = n - 1) whenever the patient variance is not at zero
    design = Design(visit_days=(168,), dropout=0.0, round_scores=False)
    res = outcomes.power(design, n=8, reps=600, seed=5, null=False, chunk_size=300)
    closed = paired_t_power(abs(design.effect), design.paired_sd(), 8)
    row = res.summary.iloc[0]
    assert row.power_low <= closed <= row.power_high
    ok = res.replicates[res.replicates["warnings"] == ""]
    assert len(ok) > 550
    np.testing.assert_allclose(ok["df"], 7.0, rtol=1e-5)


def test_lmm_equals_the_paired_t_test_replicate_by_replicate():
    design = Design(visit_days=(168,), dropout=0.0, round_scores=False)
    for r in range(5):
        rng = np.random.default_rng(replicate_seed(2, "null", 10, r))
        rep = simulate_replicate(design, 10, rng)
        lmm = analyse(rep, design, Analysis())
        t = analyse(rep, design, Analysis(analysis="t-test"))
        if lmm["warnings"]:
            continue
        for key in ("estimate", "std_error", "p_value", "conf_low", "conf_high"):
            assert lmm[key] == pytest.approx(t[key], rel=1e-6), key


def test_type_one_error_of_the_demo_design_lmm_satterthwaite():
    # the demo split-face design as simulated (dropout, missed visits, whole points), no effect
    chunks = [c for c in plan_chunks([10], 300, True, 150) if c.scenario == "null"]
    table = run_chunks(Design(), Analysis(), 21, chunks, backend="joblib", n_jobs=2)
    rejected = int((table["p_value"] < 0.05).sum())
    low, high = mc_interval(rejected, len(table))
    assert len(table) == 300 and (table["error"] == "").all()
    assert low <= 0.05 <= high
    covered = (table["conf_low"] <= 0) & (table["conf_high"] >= 0)
    assert covered.mean() == 1 - rejected / 300
    assert abs(table["estimate"].mean()) < 3 * table["estimate"].std() / np.sqrt(300)


@pytest.mark.slow
def test_type_one_error_and_power_large_run():
    # Two sizes checked against 95% intervals would fail by chance for about one seed in ten;
    # 99% Wilson intervals keep that near one in fifty. With this seed n = 10 rejects 6.15%
    # of 2,000 null trials (2.3 Monte Carlo SEs above 5%); seed 23 gives 4.6%: chance, not bias.
    from statsmodels.stats.proportion import proportion_confint

    res = outcomes.power(n=[6, 10], reps=2000, seed=22, backend="joblib", n_jobs=2)
    for row in res.summary.itertuples():
        low, high = proportion_confint(
            round(row.type1 * row.type1_reps), row.type1_reps, alpha=0.01, method="wilson"
        )
        assert low <= 0.05 <= high, (row.n, row.type1)
        assert 0.93 <= row.coverage <= 0.97


@pytest.mark.slow
def test_closed_form_paired_case_large_run():
    design = Design(visit_days=(168,), dropout=0.0, round_scores=False)
    res = outcomes.power(design, n=[6, 8, 10], reps=3000, seed=6, backend="joblib", n_jobs=2)
    for row in res.summary.itertuples():
        closed = paired_t_power(abs(design.effect), design.paired_sd(), row.n)
        assert row.power_low <= closed <= row.power_high
        assert row.type1_low <= 0.05 <= row.type1_high


# --------------------------------------------------------------------------------------------
# the fast LMM path is the toolkit's LMM
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("design", "analysis"),
    [
        (Design(), Analysis()),
        (Design(), Analysis(ddf="kenward-roger")),
        (Design(), Analysis(time="categorical")),
        (Design(design="parallel"), Analysis()),
        (Design(), Analysis(random="intercept")),
    ],
)
def test_fast_path_equals_outcomes_lmm(design, analysis):
    for r in range(3):
        rng = np.random.default_rng(replicate_seed(9, "null", 12, r))
        rep = simulate_replicate(design, 12, rng)
        fast = analyse(rep, design, analysis)
        frame = rep.to_frame()
        formula = "y ~ week * arm" if analysis.time == "linear" else "y ~ C(visit) * arm"
        nested = "unit" if design.design == "split_body" else None
        re = "~week" if analysis.random == "slope" else "~1"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a singular replicate warns in lmm(); same numbers
            fit = outcomes.lmm(
                frame, formula, groups="subject", re_formula=re, nested=nested, ddf=analysis.ddf
            )
        _, contrast = lmm_problem(rep, design, analysis)
        assert list(fit.fit.problem.x_names) == list(lmm_problem(rep, design, analysis)[0].x_names)
        vcov = fit.kr.vcov if fit.kr is not None else fit.fit.vcov_beta
        df = fit.kr.df(contrast) if fit.kr is not None else fit.satt.df(contrast)
        estimate = float(contrast @ fit.fit.beta)
        assert fast["estimate"] == pytest.approx(estimate, rel=1e-8, abs=1e-10)
        assert fast["std_error"] == pytest.approx(np.sqrt(contrast @ vcov @ contrast), rel=1e-8)
        assert fast["df"] == pytest.approx(float(df[0]), rel=1e-8)


# --------------------------------------------------------------------------------------------
# (c) reproducible whatever the backend; interrupted runs resume
# --------------------------------------------------------------------------------------------


def test_replicate_streams_are_spawned_children_of_the_seed():
    child = np.random.SeedSequence(7).spawn(2)[1].spawn(9)[8].spawn(4)[3]
    assert (
        replicate_seed(7, "null", 8, 3).generate_state(4).tolist()
        == child.generate_state(4).tolist()
    )


SMALL = {"n": [5, 7], "reps": 6, "seed": 3, "chunk_size": 2}


def test_serial_joblib_and_dask_local_cluster_give_identical_results():
    from dask.distributed import Client, LocalCluster

    serial = outcomes.power(**SMALL)
    joblib = outcomes.power(**SMALL, backend="joblib", n_jobs=2)
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        dask = outcomes.power(**SMALL, client=client)
        by_address = outcomes.power(**SMALL, scheduler=cluster.scheduler_address)
    pd.testing.assert_frame_equal(serial.replicates, joblib.replicates)
    pd.testing.assert_frame_equal(serial.replicates, dask.replicates)
    pd.testing.assert_frame_equal(serial.replicates, by_address.replicates)
    assert len(serial.replicates) == 2 * 2 * 6
    # the same seed with another chunking (another split of the work) changes nothing either
    other = outcomes.power(**{**SMALL, "chunk_size": 4})
    pd.testing.assert_frame_equal(serial.replicates, other.replicates)


def test_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    import outcomes.planning.run as run_module

    store = tmp_path / "power"
    design, analysis = Design(), Analysis()
    chunks = plan_chunks([5, 7], 6, True, 2)

    class Interrupt(Exception):
        pass

    finished = []

    def stop_after_three(chunk):
        finished.append(chunk)
        if len(finished) == 3:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_chunks(
            design, analysis, 3, chunks, store=store, chunk_size=2, on_chunk=stop_after_three
        )
    assert len(list((store / "chunks").glob("*.parquet"))) == 3

    calls = []
    real = run_module.run_chunk
    monkeypatch.setattr(run_module, "run_chunk", lambda *a: calls.append(a[-1]) or real(*a))
    resumed = outcomes.power(**SMALL, store=store)
    assert len(calls) == len(chunks) - 3  # only the chunks not yet done
    monkeypatch.setattr(run_module, "run_chunk", real)
    whole = outcomes.power(**SMALL)
    pd.testing.assert_frame_equal(resumed.replicates, whole.replicates)
    pd.testing.assert_frame_equal(resumed.summary, whole.summary)
    # the store alone rebuilds the result (for reports)
    loaded = outcomes.load_power(store)
    pd.testing.assert_frame_equal(loaded.summary, whole.summary)
    assert loaded.design == whole.design


def test_a_store_refuses_other_settings(tmp_path):
    outcomes.power(n=5, reps=2, seed=1, store=tmp_path / "s")
    with pytest.raises(InputError, match=r"other settings .*seed"):
        outcomes.power(n=5, reps=2, seed=2, store=tmp_path / "s")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="not a power-study store"):
        outcomes.power(n=5, reps=2, store=tmp_path / "other")


def test_more_replicates_extend_a_store(tmp_path):
    outcomes.power(n=5, reps=4, seed=1, chunk_size=2, store=tmp_path / "s", null=False)
    more = outcomes.power(n=5, reps=6, seed=1, chunk_size=2, store=tmp_path / "s", null=False)
    fresh = outcomes.power(n=5, reps=6, seed=1, chunk_size=2, null=False)
    pd.testing.assert_frame_equal(more.replicates, fresh.replicates)


def test_missing_dask_gives_a_clear_message(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_dask(name, *args, **kwargs):
        if name.startswith("dask"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_dask)
    with pytest.raises(InputError, match=r"pip install 'outcomes\[cluster\]'"):
        outcomes.power(n=5, reps=2, backend="dask")


# --------------------------------------------------------------------------------------------
# results, design, progress, CLI
# --------------------------------------------------------------------------------------------


def test_monte_carlo_intervals():
    from statsmodels.stats.proportion import proportion_confint

    for k, n in ((0, 50), (13, 50), (50, 50), (412, 500)):
        for method, sm in (("wilson", "wilson"), ("exact", "beta")):
            low, high = mc_interval(k, n, method=method)
            ref = proportion_confint(k, n, method=sm)
            assert (float(low), float(high)) == pytest.approx(ref, abs=1e-12)


def test_warnings_are_counted_as_data_not_printed(recwarn):
    # tiny trials often give singular fits: they are counted, and nothing is emitted
    res = outcomes.power(n=3, reps=20, seed=4, dropout=0.4, null=False)
    assert len(recwarn) == 0
    d = res.diagnostics
    assert set(d["code"]) <= {"singular_fit", "not_converged", "hessian_not_pd", "fit_failed"}
    assert res.summary["with_warnings"].iloc[0] == int((res.replicates["warnings"] != "").sum())


def test_sample_size_reaching_the_target():
    res = outcomes.power(n=[4, 8, 16], reps=200, seed=8, analysis="t-test", null=False)
    power = res.summary.set_index("n")["power"]
    assert power.is_monotonic_increasing
    size = res.sample_size
    assert size["estimate"] == min(n for n, p in power.items() if p >= 0.8)
    assert size["conservative"] >= size["estimate"]


def test_design_overrides_and_sources():
    d = Design.build(effect=-1.0, dropout=0.2, visit_days=(0, 84, 168))
    assert d.effect == pytest.approx(-1.0)
    a = d.assumptions().set_index("parameter")
    assert a.loc["dropout", "source"] == "given by the user"
    assert a.loc["week_combo", "source"] == "given by the user"
    assert "Chawla" in Design().assumptions().set_index("parameter").loc["dropout", "source"]
    assert a["source"].str.len().min() > 10
    with pytest.raises(InputError, match="Unknown design option"):
        Design.build(dropuot=0.1)
    with pytest.raises(InputError, match="primary_day"):
        Design(primary_day=100)
    with pytest.raises(InputError, match="sd_unit must be 0"):
        Design(design="parallel", sd_unit=1.0)


def test_simulated_replicate_follows_the_design():
    design = Design(dropout=0.0, missed_visit=0.0, round_scores=False)
    ys = []
    for r in range(400):
        rep = simulate_replicate(design, 10, np.random.default_rng(r))
        assert len(rep.y) == 10 * 2 * 5
        last = rep.visit == 4
        diff = rep.y[last & (rep.arm == 1)] - rep.y[last & (rep.arm == 0)]
        ys.append(diff)
    diffs = np.concatenate(ys)
    assert diffs.mean() == pytest.approx(design.effect, abs=4 * design.paired_sd() / 63)
    assert diffs.std() == pytest.approx(design.paired_sd(), rel=0.05)


def test_progress_is_silent_off_a_terminal_and_drawn_when_asked(capsys):
    with progress(10, "work") as bar:
        bar.update(10)
    assert capsys.readouterr().err == ""
    with progress(10, "work", unit="trial", enabled=True) as bar:
        bar.update(10)
    err = capsys.readouterr().err
    assert "work" in err and "10/10" in err and "trial/s" in err


def test_cli_power_prints_the_table_and_writes_files(tmp_path, capsys):
    from outcomes.cli import main

    code = main(
        [
            "power",
            "--n",
            "5,8",
            "--reps",
            "4",
            "--analysis",
            "t-test",
            "--store",
            str(tmp_path / "s"),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "Power % (MC interval)" in out and "reaching 80% power" in out
    assert (tmp_path / "out" / "power_curve.png").stat().st_size > 1000
    assert outcomes.load_power(tmp_path / "s").reps == 4


def test_cli_power_bad_input_is_a_message(capsys):
    from outcomes.cli import main

    assert main(["power", "--n", "five"]) == 2
    assert "--n 'five'" in capsys.readouterr().err
    assert main(["power", "--n", "5", "--dropout", "1.5"]) == 2
    assert "dropout=1.5" in capsys.readouterr().err
