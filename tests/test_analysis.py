"""Declared analyses: spec validation, results folders, determinism, and the audit.

The audit tests work on a small workspace (a simulated 12-subject split-face trial written as
feeds, two specs, their expected results made once per session) and change one thing at a
time -- a value in a feed, an option of a spec, a package version in the expected manifest --
to check that the audit fails and names the cause.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from outcomes.analysis.audit import AUDIT_FAILED, AuditReport, audit, audit_results
from outcomes.analysis.provenance import git_state
from outcomes.analysis.results import load_results
from outcomes.analysis.run import run_analyses, run_analysis
from outcomes.analysis.spec import discover_specs, load_spec
from outcomes.cli import main
from outcomes.errors import InputError
from outcomes.results import ARD_COLUMNS, TIDY_COLUMNS
from outcomes.simulate.output import write_feeds
from outcomes.simulate.trial import simulate_trial

LMM_SPEC = """\
name: tiny_lmm
question: Does MN+PRP lower gb_quant faster than MN?
data: {feeds: data/trial}
population: {study_id: TRIAL1}
outcome: {instrument: gb_quant, rater_role: investigator}
model:
  kind: lmm
  formula: value ~ week * modality
  groups: subject_id
  nested: unit_id
  reml: true
comparisons:
  - {specs: modality, at: {week: 12}, ref: MN}
seed: 3
"""
TTE_SPEC = """\
name: tiny_tte
question: How soon is a first improvement seen?
data: {feeds: data/trial}
outcome: {endpoint: first_improvement}
model: {kind: time_to_result, by: arm, times: [28, 56]}
comparisons:
  - {test: logrank}
  - {test: cox, formula: arm, cluster: subject_id}
seed: 3
figures: false
"""


def _write_workspace(root: Path) -> Path:
    analyses = root / "analyses"
    write_feeds(simulate_trial(seed=3, n_subjects=12), analyses / "data" / "trial")
    (analyses / "tiny_lmm.yaml").write_text(LMM_SPEC)
    (analyses / "tiny_tte.yaml").write_text(TTE_SPEC)
    return analyses


@pytest.fixture(scope="session")
def _workspace_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("workspace")
    analyses = _write_workspace(root)
    run_analyses(sorted(analyses.glob("*.yaml")), root / "results", save_expected=True)
    return root


@pytest.fixture
def workspace(tmp_path: Path, _workspace_template: Path) -> Path:
    """A copy of the workspace: analyses/ (specs, feeds, expected/) and results/."""
    shutil.copytree(_workspace_template, tmp_path / "ws")
    return tmp_path / "ws"


def _spec(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


# --------------------------------------------------------------------------------------------
# spec validation: InputError naming the file and the key


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"modle": {}}, "key 'modle': unknown key"),
        ({"model": {"kind": "lmx", "formula": "y ~ x"}}, "key 'model.kind': unknown model kind"),
        ({"model": {"formula": "y ~ x"}}, "key 'model.kind': missing required key"),
        (
            {"model": {"kind": "lmm", "formula": "value ~ week", "engin": "auto"}},
            "key 'model.engin': unknown key",
        ),
        ({"model": {"kind": "lmm"}}, "key 'model.formula': missing required key"),
        ({"seed": None}, "key 'seed': must be a whole number"),
        ({"seed": "1"}, "key 'seed': must be a whole number"),
        ({"data": {"feeds": "no/such/folder"}}, "key 'data.feeds': 'no/such/folder': no such"),
        ({"data": {"store": "x.duckdb"}}, "key 'data.store'"),
        ({"data": {"feeds": "data/trial", "simulate": "trial"}}, "key 'data': give exactly one"),
        ({"data": {"simulate": "trial", "options": {"n_subject": 3}}}, "'data.options.n_subject'"),
        ({"outcome": {"rater_role": "investigator"}}, "key 'outcome.instrument': missing"),
        ({"comparisons": [{"at": {"week": 12}}]}, "key 'comparisons[0].specs': missing"),
        ({"tolerance": {"relative": 1e-6}}, "key 'tolerance.reason': a tolerance looser"),
        (
            {"tolerance": {"stats": {"df": {"relative": 1e-6}}}},
            "key 'tolerance.reason': a tolerance looser",
        ),
        ({"tolerance": {"stats": {"df": {"rel": 1e-6}}}}, "key 'tolerance.stats.df.rel'"),
        ({"tolerance": {"relative": 2}}, "key 'tolerance.relative': must be in [0, 1)"),
        ({"name": "bad name/with slash"}, "key 'name'"),
        ({"population": ["study_id"]}, "key 'population': must be a mapping, got list"),
        ({"model": {"kind": {"lmm": 1}}}, "key 'model.kind': unknown model kind {'lmm': 1}"),
        ({"tolerance": {"relative": None}}, "key 'tolerance.relative': must be a number, got None"),
        ({"figures": None}, "key 'figures': must be true or false, got None"),
    ],
)
def test_bad_spec_names_file_and_key(tmp_path: Path, change: dict, message: str) -> None:
    import yaml

    (tmp_path / "data" / "trial").mkdir(parents=True)
    content = yaml.safe_load(LMM_SPEC)
    content.update(change)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(content))
    with pytest.raises(InputError) as err:
        load_spec(path)
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


def test_missing_required_top_level_key(tmp_path: Path) -> None:
    path = _spec(tmp_path, LMM_SPEC.replace("seed: 3\n", ""))
    with pytest.raises(InputError, match=r"spec\.yaml: key 'seed': missing required key"):
        load_spec(path)


def test_looser_tolerance_with_reason_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "data" / "trial").mkdir(parents=True)
    text = LMM_SPEC + (
        "tolerance: {relative: 1.0e-7, stats: {df: {relative: 1.0e-6}}, reason: optimizer}\n"
    )
    spec = load_spec(_spec(tmp_path, text))
    assert spec.tolerance == {
        "relative": 1e-7,
        "absolute": 0.0,
        "stats": {"df": {"relative": 1e-6}},
        "reason": "optimizer",
    }


def test_unknown_population_column_names_the_key(workspace: Path) -> None:
    spec = workspace / "analyses" / "tiny_lmm.yaml"
    spec.write_text(LMM_SPEC.replace("population: {study_id: TRIAL1}", "population: {agee: 30}"))
    with pytest.raises(InputError, match=r"tiny_lmm\.yaml: key 'population\.agee': no such column"):
        run_analyses([spec], workspace / "out")


# --------------------------------------------------------------------------------------------
# results folders


def test_results_folder_layout_and_read_back(workspace: Path) -> None:
    res = load_results("tiny_lmm", root=workspace / "results")
    assert list(res.ard.columns) == list(ARD_COLUMNS)
    assert list(res.estimates.columns) == ["analysis", "table", "group", *TIDY_COLUMNS]
    assert set(res.figures) == {"observed_means"}
    assert not res.ard.duplicated(["analysis", "group", "term", "stat_name"]).any()
    # the contrast at week 12 is the main effect plus 12 x the interaction (arithmetic)
    fixed = res.table("fixed").set_index("term")["estimate"]
    contrast = res.stat("MN+PRP - MN", "estimate", table="contrast")
    expected = fixed["modality[T.MN+PRP]"] + 12 * fixed["week:modality[T.MN+PRP]"]
    assert contrast == pytest.approx(expected, rel=1e-10)
    # CSV and Parquet hold the same numbers, exactly
    csv = load_results(res.path.as_posix())
    (res.path / "ard.parquet").unlink()
    from_csv = load_results(res.path)
    pd.testing.assert_frame_equal(csv.ard, from_csv.ard)
    # the population counts are exact: 12 subjects, 24 sides
    assert res.stat("analysis_set", "n_subjects") == 12
    assert res.stat("analysis_set", "n_units") == 24
    with pytest.raises(InputError, match="no table 'cox'"):
        res.table("cox")
    assert res.stat("MN+PRP - MN", "estimate", table="contrast", at_week=12) == contrast
    with pytest.raises(InputError, match=r"0 rows for term 'MN\+PRP - MN'.* at_week=24"):
        res.stat("MN+PRP - MN", "estimate", table="contrast", at_week=24)


def test_manifest_records_provenance(workspace: Path) -> None:
    m = load_results(workspace / "results" / "tiny_tte").manifest
    assert m["data"]["snapshot"] == 1
    assert set(m["data"]["tables"]) == {
        "studies",
        "subjects",
        "units",
        "sessions",
        "assessments",
        "adverse_events",
    }
    assert all(len(t["sha256"]) == 64 for t in m["data"]["tables"].values())
    files = {f["path"]: f for f in m["data"]["files"]}
    feed = workspace / "analyses" / "data" / "trial" / "assessments.csv"
    import hashlib

    assert (
        files["data/trial/assessments.csv"]["sha256"]
        == hashlib.sha256(feed.read_bytes()).hexdigest()
    )
    assert len(m["data"]["dictionary_sha256"]) == 64
    assert m["spec"]["content"]["model"]["kind"] == "time_to_result"
    assert m["seeds"]["spec_seed"] == 3
    assert m["seeds"]["seed_sequence_entropy"] == 3
    assert "outcomes/models/survival/cox.py" in m["code"]["files"]
    assert {"outcomes/models/survival/cox.py", "outcomes/derive/tte.py"} <= set(m["code"]["loaded"])
    assert {"commit", "dirty"} <= set(m["code"]["git"])
    assert "numpy" in m["environment"]["packages"]
    assert m["started_at"] <= m["finished_at"]
    for name, digest in m["results"]["files"].items():
        assert (
            hashlib.sha256((workspace / "results" / "tiny_tte" / name).read_bytes()).hexdigest()
            == digest
        )


def test_two_runs_are_byte_identical(workspace: Path) -> None:
    specs = sorted((workspace / "analyses").glob("*.yaml"))
    run_analyses(specs, workspace / "again")
    for name in ("tiny_lmm", "tiny_tte"):
        first, second = workspace / "results" / name, workspace / "again" / name
        files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
        assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
        for f in files:
            if f.name != "manifest.json":
                assert (first / f).read_bytes() == (second / f).read_bytes(), f
        a = json.loads((first / "manifest.json").read_text())
        b = json.loads((second / "manifest.json").read_text())
        # time stamps differ; so does the spec's path (the workspace was copied)
        for key in ("data", "seeds", "results", "warnings", "environment", "tolerance"):
            assert a[key] == b[key], key
        assert a["spec"]["sha256"] == b["spec"]["sha256"]
        assert a["started_at"] < b["started_at"]


def test_quarantined_feed_rows_are_recorded(workspace: Path) -> None:
    feed = workspace / "analyses" / "data" / "trial" / "assessments.csv"
    df = pd.read_csv(feed, dtype=str, keep_default_na=False)
    row = df.index[(df["instrument"] == "gb_qual")][0]
    df.loc[row, "value"] = "9"  # gb_qual is graded 1-4
    df.to_csv(feed, index=False, lineterminator="\n")
    res = run_analysis(workspace / "analyses" / "tiny_tte.yaml", workspace / "q")
    assert res.manifest["data"]["rows_quarantined"] == 1
    assert res.manifest["warnings"][0].startswith(
        "OutcomesWarning: 1 violation(s) quarantined at ingest of the data of tiny_tte"
    )


def test_simulate_data_source_gives_the_same_inputs_as_its_feeds(workspace: Path) -> None:
    text = LMM_SPEC.replace(
        "data: {feeds: data/trial}",
        "data: {simulate: trial, seed: 3, options: {n_subjects: 12}}",
    )
    path = workspace / "analyses" / "sim.yaml"
    path.write_text(text.replace("name: tiny_lmm", "name: sim_lmm"))
    res = run_analysis(path, workspace / "sim")
    feeds = load_results(workspace / "results" / "tiny_lmm")
    assert res.manifest["data"]["tables"] == feeds.manifest["data"]["tables"]
    assert res.manifest["seeds"]["data_seed"] == 3
    pd.testing.assert_frame_equal(
        res.ard.drop(columns="analysis"), feeds.ard.drop(columns="analysis")
    )


def test_store_data_source_pins_a_snapshot(workspace: Path) -> None:
    from outcomes.data.ingest import ingest

    analyses = workspace / "analyses"
    ingest([analyses / "data" / "trial"], analyses / "store.duckdb")
    path = analyses / "from_store.yaml"
    text = TTE_SPEC.replace("name: tiny_tte", "name: store_tte")
    path.write_text(text.replace("data: {feeds: data/trial}", "data: {store: store.duckdb}"))
    with pytest.raises(InputError, match=r"key 'data\.snapshot': a store source must pin"):
        load_spec(path)
    path.write_text(
        text.replace("data: {feeds: data/trial}", "data: {store: store.duckdb, snapshot: 2}")
    )
    with pytest.raises(InputError, match=r"key 'data\.snapshot': .* has no snapshot 2"):
        run_analyses([path], workspace / "store_results")
    path.write_text(
        text.replace("data: {feeds: data/trial}", "data: {store: store.duckdb, snapshot: 1}")
    )
    res = run_analysis(path, workspace / "store_results")
    feeds = load_results(workspace / "results" / "tiny_tte")
    assert res.manifest["data"]["source"] == "store"
    assert res.manifest["data"]["tables"] == feeds.manifest["data"]["tables"]
    pd.testing.assert_frame_equal(
        res.ard.drop(columns="analysis"), feeds.ard.drop(columns="analysis")
    )


# --------------------------------------------------------------------------------------------
# the audit


def test_audit_passes_on_unchanged_workspace(workspace: Path) -> None:
    report = audit([workspace / "analyses"])
    assert report.ok, report.text()
    assert "AUDIT PASSED" in report.text()


def test_changed_feed_value_fails_and_names_the_input(workspace: Path) -> None:
    feed = workspace / "analyses" / "data" / "trial" / "assessments.csv"
    df = pd.read_csv(feed, dtype=str, keep_default_na=False)
    row = df.index[(df["instrument"] == "gb_quant") & (df["rater_role"] == "investigator")][5]
    df.loc[row, "value"] = str(float(df.loc[row, "value"]) + 3)
    df.to_csv(feed, index=False, lineterminator="\n")
    report = audit([workspace / "analyses"])
    assert not report.ok
    text = report.text()
    assert "[FAIL] tiny_lmm" in text
    lmm = next(e for e in report.entries if e.name == "tiny_lmm")
    assert any(
        d.term == "week:modality[T.MN+PRP]" and d.stat_name == "estimate" for d in lmm.differences
    )
    assert "input table assessments: content sha256" in text
    assert "source file data/trial/assessments.csv: sha256" in text
    assert "AUDIT FAILED" in text


def test_changed_option_fails_and_names_the_option(workspace: Path) -> None:
    spec = workspace / "analyses" / "tiny_lmm.yaml"
    spec.write_text(spec.read_text().replace("reml: true", "reml: false"))
    report = audit([workspace / "analyses" / "tiny_lmm.yaml"])
    assert not report.ok
    text = report.text()
    assert "analysis spec model.reml: True -> False" in text
    assert "reml" in {d.stat_name for d in report.entries[0].differences}
    assert "input table" not in text  # the data did not change
    # an intended change is accepted with update_expected (after the same report)
    updated = audit([workspace / "analyses" / "tiny_lmm.yaml"], update_expected=True)
    assert updated.ok and updated.entries[0].differences
    assert "UPDATED the expected results of tiny_lmm" in updated.text()
    expected = workspace / "analyses" / "expected" / "tiny_lmm" / "manifest.json"
    assert json.loads(expected.read_text())["spec"]["content"]["model"]["reml"] is False


def test_analysis_that_fails_to_run_is_reported_and_others_still_audited(
    workspace: Path,
) -> None:
    spec = workspace / "analyses" / "tiny_lmm.yaml"
    spec.write_text(spec.read_text().replace("value ~ week * modality", "value ~ weeks"))
    expected = workspace / "analyses" / "expected"
    shutil.copytree(expected / "tiny_tte", expected / "removed_analysis")
    report = audit([workspace / "analyses"])
    lmm, tte = report.entries
    assert (lmm.name, tte.name) == ("tiny_lmm", "tiny_tte")
    assert not lmm.ok and tte.ok
    assert lmm.problems[0].startswith(f"the analysis did not run: {spec}: analysis tiny_lmm: ")
    assert "weeks" in lmm.problems[0]
    assert report.problems == [
        f"{expected / 'removed_analysis'}: expected results of no declared analysis (a spec "
        "was removed or renamed?)"
    ]
    assert "AUDIT FAILED: 1 of 2 analyses fail; expected results without a spec" in report.text()


def test_dependency_version_differs_warns_and_fails_when_strict(workspace: Path) -> None:
    path = workspace / "analyses" / "expected" / "tiny_tte" / "manifest.json"
    manifest = json.loads(path.read_text())
    real = manifest["environment"]["packages"]["numpy"]
    manifest["environment"]["packages"]["numpy"] = "1.0.0"
    path.write_text(json.dumps(manifest))
    spec = workspace / "analyses" / "tiny_tte.yaml"
    results = workspace / "results" / "tiny_tte"
    lenient = audit_results(spec, results)
    assert lenient.ok and not lenient.differences
    assert f"warning: package numpy: 1.0.0 -> {real} (differs from the manifest)" in lenient.notes
    strict = audit_results(spec, results, strict=True)
    assert not strict.ok and not strict.differences
    assert strict.problems == [
        f"package numpy: 1.0.0 -> {real} (differs from the manifest; --strict)"
    ]
    report = AuditReport(entries=[strict], strict=True)
    assert "[FAIL] tiny_tte" in report.text() and "AUDIT FAILED" in report.text()


def test_missing_expected_results_fail(workspace: Path) -> None:
    shutil.rmtree(workspace / "analyses" / "expected" / "tiny_tte")
    entry = audit_results(
        workspace / "analyses" / "tiny_tte.yaml", workspace / "results" / "tiny_tte"
    )
    assert not entry.ok
    assert "no expected results in" in entry.problems[0]
    assert "--save-expected" in entry.problems[0]


def test_edited_expected_results_fail_the_audit(workspace: Path) -> None:
    expected = workspace / "analyses" / "expected" / "tiny_tte" / "estimates.csv"
    expected.write_text(expected.read_text().replace("0.", "0.0", 1))
    entry = audit_results(
        workspace / "analyses" / "tiny_tte.yaml", workspace / "results" / "tiny_tte"
    )
    assert not entry.ok
    assert any("estimates.csv: sha256" in p and "edited" in p for p in entry.problems)


def test_loosened_tolerance_fails_under_strict(workspace: Path) -> None:
    spec = workspace / "analyses" / "tiny_tte.yaml"
    spec.write_text(spec.read_text() + "tolerance: {relative: 0.5, reason: results may move}\n")
    results = workspace / "results" / "tiny_tte"
    lenient = audit_results(spec, results)
    assert lenient.ok and any("tolerance" in n for n in lenient.notes)
    strict = audit_results(spec, results, strict=True)
    assert not strict.ok
    assert any("tolerance" in p and "--strict" in p for p in strict.problems)


def test_inputs_outside_the_analysed_subset_fail_under_strict(workspace: Path) -> None:
    analyses = workspace / "analyses"
    feed = analyses / "data" / "trial" / "adverse_events.csv"  # not used by tiny_lmm
    df = pd.read_csv(feed, dtype=str, keep_default_na=False)
    df.loc[0, "severity"] = "severe" if df.loc[0, "severity"] != "severe" else "mild"
    df.to_csv(feed, index=False, lineterminator="\n")
    spec = analyses / "tiny_lmm.yaml"
    assert audit([spec]).ok
    strict = audit([spec], strict=True)
    assert not strict.ok
    assert any("adverse_events.csv" in p and "--strict" in p for p in strict.entries[0].problems)


def test_extra_feed_file_and_changed_dictionary_fail_under_strict(workspace: Path) -> None:
    analyses = workspace / "analyses"
    (analyses / "data" / "trial" / "more_assessments.tsv").write_text("a\tb\n")
    manifest_path = analyses / "expected" / "tiny_tte" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["data"]["dictionary_sha256"] = "0" * 64  # made under another dictionary
    manifest_path.write_text(json.dumps(manifest))
    report = audit([analyses / "tiny_tte.yaml"], strict=True)
    problems = " ".join(report.entries[0].problems)
    assert "more_assessments.tsv" in problems and "data dictionary" in problems
    assert not report.ok


def test_store_with_deleted_quarantine_rows_is_refused(workspace: Path) -> None:
    import duckdb

    from outcomes.data.ingest import ingest

    analyses = workspace / "analyses"
    feeds = analyses / "data" / "trial"
    df = pd.read_csv(feeds / "assessments.csv", dtype=str, keep_default_na=False)
    df.loc[0, "value"] = "-5"
    df.to_csv(feeds / "assessments.csv", index=False, lineterminator="\n")
    store = analyses / "store.duckdb"
    assert ingest([feeds], store).exit_code == 3
    con = duckdb.connect(str(store))
    con.execute("DELETE FROM quarantine")
    con.close()
    path = analyses / "from_store.yaml"
    text = TTE_SPEC.replace("name: tiny_tte", "name: store_tte")
    path.write_text(
        text.replace("data: {feeds: data/trial}", "data: {store: store.duckdb, snapshot: 1}")
    )
    with pytest.raises(InputError, match=r"records 1 quarantined row.*quarantine holds 0"):
        run_analyses([path], workspace / "store_results")


def test_cli_run_and_audit_exit_codes(workspace: Path, capsys: pytest.CaptureFixture) -> None:
    analyses = workspace / "analyses"
    spec = analyses / "tiny_tte.yaml"
    assert main(["run", str(spec), "--results", str(workspace / "cli")]) == 0
    assert "tiny_tte/: " in capsys.readouterr().out
    spec.write_text(spec.read_text().replace("times: [28, 56]", "times: [28, 84]"))
    assert main(["audit", str(spec)]) == AUDIT_FAILED
    out = capsys.readouterr().out
    assert "analysis spec model.times: [28, 56] -> [28, 84]" in out
    assert "12 statistic(s) expected but not produced" in out  # 6 day-56 stats x 2 arms
    assert "expected results of no declared analysis" not in out  # tiny_lmm: not audited
    assert "table=survival | arm=MN, day=84 | n_risk" in out  # the day-84 ones are new
    bad = analyses / "bad.yaml"
    bad.write_text(TTE_SPEC.replace("time_to_result", "kaplan"))
    assert main(["run", str(bad)]) == 2
    assert "bad.yaml: key 'model.kind': unknown model kind 'kaplan'" in capsys.readouterr().err


def test_git_state_outside_a_checkout(tmp_path: Path) -> None:
    state = git_state(tmp_path)
    assert state["commit"] is None and state["dirty"] is None
    assert "not in a git checkout" in state["note"]


# --------------------------------------------------------------------------------------------
# the demo analyses shipped in analyses/ (what `nox -s audit` checks)

ANALYSES = Path(__file__).resolve().parents[1] / "analyses"


@pytest.mark.slow
def test_demo_analyses_twice_give_byte_identical_files(tmp_path: Path) -> None:
    specs = discover_specs([ANALYSES])
    first, second = run_analyses(specs, tmp_path / "a"), run_analyses(specs, tmp_path / "b")
    for a, b in zip(first, second, strict=True):
        files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
        assert "figures" in {f.parts[0] for f in files}
        for f in files:
            if f.name != "manifest.json":
                assert (a / f).read_bytes() == (b / f).read_bytes(), f"{a.name}/{f}"


@pytest.mark.slow
def test_demo_analyses_reproduce_their_expected_results() -> None:
    report = audit([ANALYSES])
    assert report.ok, report.text()
